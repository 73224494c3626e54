/* Service Console: small progressive enhancements. Every page works without this file.
   No dependencies, no eval, no inline handlers (the pages are served with a strict Content-Security-Policy). */
(function () {
  "use strict";

  var doc = document;
  if (!doc.addEventListener || !Element.prototype.closest) {
    return;
  }

  function sameOrigin(url) {
    try {
      return new URL(url, window.location.href).origin === window.location.origin;
    } catch (e) {
      return false;
    }
  }

  /* 1: select[data-autosubmit] submits its form (the namespace picker, the language switch). */
  doc.addEventListener("change", function (event) {
    var select = event.target;
    if (!(select instanceof HTMLSelectElement) || !select.hasAttribute("data-autosubmit") || !select.form) {
      return;
    }
    if (typeof select.form.requestSubmit === "function") {
      select.form.requestSubmit();
    } else {
      select.form.submit();
    }
  });

  /* Dialogs open with <button commandfor=… command="show-modal"> (Invoker Commands), which needs no script. For
     browsers that predate it, do the same two commands here. */
  if (!("commandForElement" in HTMLButtonElement.prototype)) {
    doc.addEventListener("click", function (event) {
      var button = event.target instanceof Element ? event.target.closest("button[commandfor]") : null;
      var dialog = button && doc.getElementById(button.getAttribute("commandfor"));
      if (!dialog || typeof dialog.showModal !== "function") {
        return;
      }
      var command = button.getAttribute("command");
      if (command === "show-modal" && !dialog.open) {
        dialog.showModal();
      } else if (command === "close" && dialog.open) {
        dialog.close();
      }
    });
  }

  /* The Services list has one delete dialog for all its rows: a row's Delete link (which without this script opens
     the Service's page with the confirmation shown) fills it with the row's name, uid and delete URL instead. */
  doc.addEventListener("click", function (event) {
    var link = event.target instanceof Element ? event.target.closest("a[data-delete-url]") : null;
    var dialog = link && doc.getElementById("delete-dialog");
    var form = dialog && dialog.querySelector("form");
    var url = link && link.getAttribute("data-delete-url");
    if (!form || typeof dialog.showModal !== "function" || !url || !sameOrigin(url)) {
      return;
    }
    event.preventDefault();
    form.setAttribute("action", url);
    form.elements.uid.value = link.getAttribute("data-uid") || "";
    var name = dialog.querySelector("[data-delete-name]");
    if (name) {
      name.textContent = link.getAttribute("data-name") || "";
    }
    if (!dialog.open) {
      dialog.showModal();
    }
  });

  /* 3: close an open details.menu on a click outside it, on Escape, when focus leaves it, or once an item is used. */
  function closeMenu(menu, returnFocus) {
    menu.removeAttribute("open");
    var summary = menu.querySelector("summary");
    if (returnFocus && summary) {
      summary.focus();
    }
  }

  function openMenus() {
    return doc.querySelectorAll("details.menu[open]");
  }

  doc.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target : null;
    var menus = openMenus();
    for (var i = 0; i < menus.length; i++) {
      if (!target || !menus[i].contains(target)) {
        closeMenu(menus[i], false);
      }
    }
    var item = target && target.closest("details.menu .menu-items a, details.menu .menu-items button");
    if (item) {
      var menu = item.closest("details.menu");
      // Later, so that the item's own action (a link, or a command="show-modal" button) runs first.
      window.setTimeout(function () {
        if (menu) {
          closeMenu(menu, false);
        }
      }, 0);
    }
  });

  doc.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" && event.key !== "Esc") {
      return;
    }
    var menus = openMenus();
    for (var i = 0; i < menus.length; i++) {
      closeMenu(menus[i], menus[i].contains(doc.activeElement));
    }
    // The phone's navigation menu (base.html) too; the focus goes back to its toggle only from inside it.
    var navigation = doc.querySelector("details.nav-menu[open]");
    if (navigation) {
      closeMenu(navigation, navigation.contains(doc.activeElement));
    }
  });

  doc.addEventListener("focusout", function (event) {
    var menu = event.target instanceof Element ? event.target.closest("details.menu[open]") : null;
    var next = event.relatedTarget;
    if (menu && next instanceof Node && !menu.contains(next)) {
      closeMenu(menu, false);
    }
  });

  /* 4: a failed htmx request shows a short error notice in #messages. The text can be translated through
     <body data-error-text="... {status} ..." data-network-error-text="...">. */
  function showRequestError(event) {
    var box = doc.getElementById("messages");
    if (!box) {
      return;
    }
    var detail = event.detail || {};
    if (detail.elt instanceof Element && detail.elt.hasAttribute("data-live-url")) {
      return; // a live page's poll that failed is simply asked again a second later (10, below)
    }
    var xhr = detail.xhr;
    var status = xhr && xhr.status ? xhr.status : 0;
    var texts = (doc.body && doc.body.dataset) || {};
    var text;
    if (status) {
      text = (texts.errorText || "The request failed (HTTP {status}). Please try again.").replace("{status}", String(status));
    } else {
      text = texts.networkErrorText || "The request failed: the server could not be reached. Please try again.";
    }
    var previous = box.querySelector("[data-request-error]");
    if (previous) {
      previous.remove();
    }
    var notice = doc.createElement("div");
    notice.className = "notice notice-error";
    notice.setAttribute("role", "alert");
    notice.setAttribute("data-request-error", "");
    notice.textContent = text;
    box.appendChild(notice);
    if (typeof notice.scrollIntoView === "function") {
      notice.scrollIntoView({ block: "nearest" });
    }
  }

  doc.addEventListener("htmx:responseError", showRequestError);
  doc.addEventListener("htmx:sendError", showRequestError);

  /* New content of an htmx swap carries htmx's "added" class until it settles. An answer that swapped only
     out-of-band slots (live validation: hx-swap="none") is dispatched on the form it inherits its target from, but
     brings no new form: such a background answer must never move the focus. */
  function swappedIn(element) {
    var added = (window.htmx && window.htmx.config && window.htmx.config.addedClass) || "htmx-added";
    return element.classList.contains(added);
  }

  function focusQuietly(element) {
    try {
      element.focus({ preventScroll: true });
    } catch (e) {
      element.focus();
    }
    if (typeof element.scrollIntoView === "function") {
      element.scrollIntoView({ block: "center" });
    }
  }

  /* 5: after an htmx swap that brought back errors, show the keyboard where they are: after OK (or Enter in a field,
     or Review changes) the form's own error message (#form-errors, focusable with tabindex=-1) when there is one,
     else the first invalid field. Focus is only moved when it was lost in the swap or the swap answered a form
     submission, so switching the access type does not jump. */
  doc.addEventListener("htmx:afterSwap", function (event) {
    var root = event.target instanceof Element ? event.target : null;
    if (!root || !root.isConnected || !swappedIn(root)) {
      return;
    }
    var detail = event.detail || {};
    var trigger = detail.requestConfig && detail.requestConfig.triggeringEvent;
    var submitted = !!trigger && trigger.type === "submit";
    var submitter = submitted ? trigger.submitter : null;
    var saving = !!submitter && submitter.getAttribute("name") === "_action";
    var message = saving ? root.querySelector("#form-errors [tabindex]") : null;
    var invalid = root.matches('[aria-invalid="true"]') ? root : root.querySelector('[aria-invalid="true"]');
    var target = message || invalid;
    if (!target) {
      return;
    }
    var active = doc.activeElement;
    var focusLost = !active || active === doc.body || !active.isConnected;
    if (active === target || (!focusLost && !submitted)) {
      return;
    }
    focusQuietly(target);
  });

  /* 6: the service port follows the container port (the seed: "服务端口被设置为与容器端口字段相同的值") until the user
     types a service port: a port typed by hand (data-typed) is never overwritten. Without this script the server
     does the same on save: an empty service port takes a numeric container port. */
  function rowField(input, field) {
    var name = input.name.replace(/-[a-z_]+$/, "-" + field);
    return input.form ? input.form.elements.namedItem(name) : null;
  }

  doc.addEventListener("input", function (event) {
    var input = event.target;
    if (!(input instanceof HTMLInputElement) || !input.form || input.form.id !== "service-form") {
      return;
    }
    if (/^ports-[0-9]+-port$/.test(input.name)) {
      input.removeAttribute("data-follows");
      if (input.value === "") {
        input.removeAttribute("data-typed"); // emptied: it follows the container port again
      } else {
        input.setAttribute("data-typed", "");
      }
      return;
    }
    if (!/^ports-[0-9]+-target_port$/.test(input.name)) {
      return;
    }
    var port = rowField(input, "port");
    if (!(port instanceof HTMLInputElement) || port.hasAttribute("data-typed")) {
      return;
    }
    if (port.value !== "" && !port.hasAttribute("data-follows")) {
      return; // a value the page came with: the user's, from before a re-render
    }
    var value = input.value.trim();
    port.value = /^[0-9]{1,5}$/.test(value) ? String(Number(value)) : "";
    port.setAttribute("data-follows", "");
  });

  /* 7: keyboard focus across the form's re-renders, once per new form (never on a background answer: see
     swappedIn). An interaction's button may name where the keyboard goes on (data-focus-next: a part of the form,
     whose first control gets the focus); else an interaction (a row added or removed, a dialog opened or closed, a
     free node port) marks where to continue with autofocus; otherwise the element that had the focus (the access
     type radio just chosen) gets it back. */
  var focusedBefore = null;
  var CONTROLS = "input:not([type=hidden]):not([disabled]), select:not([disabled]), textarea:not([disabled]), button:not([disabled])";
  var newForms = new WeakSet();

  doc.addEventListener("htmx:beforeRequest", function () {
    var active = doc.activeElement;
    focusedBefore = active && active.id ? active.id : null;
  });

  function serviceFormIn(event) {
    var root = event.target instanceof Element ? event.target : null;
    var form = doc.getElementById("service-form");
    return root && form && (root === form || root.contains(form)) ? form : null;
  }

  doc.addEventListener("htmx:afterSwap", function (event) {
    var form = serviceFormIn(event);
    if (form && swappedIn(event.target)) {
      newForms.add(form);
    }
  });

  function nextPartAfter(event) {
    var config = (event.detail || {}).requestConfig;
    var trigger = config && config.triggeringEvent;
    var button = trigger && trigger.submitter instanceof Element ? trigger.submitter : null;
    var selector = button && button.getAttribute("data-focus-next");
    var part = selector && doc.querySelector(selector);
    return part ? part.querySelector(CONTROLS) : null;
  }

  doc.addEventListener("htmx:afterSettle", function (event) {
    var form = serviceFormIn(event);
    if (!form || !newForms.has(form)) {
      return; // the form was not replaced: a live validation answer (or the page's first form, which the browser placed)
    }
    newForms.delete(form);
    upgradeDialogs(form);
    var next = nextPartAfter(event);
    if (next && !form.querySelector("dialog[open]")) {
      next.focus(); // (a dialog drawn again, with an error, keeps the focus)
      return;
    }
    var marked = form.querySelector("[autofocus]");
    var active = doc.activeElement;
    if (marked) {
      if (active !== marked && !marked.closest("dialog:modal")) {
        marked.focus();
      }
      return;
    }
    var lost = !active || active === doc.body || !active.isConnected;
    var again = focusedBefore && doc.getElementById(focusedBefore);
    if (lost && again) {
      again.focus();
    }
  });

  /* 8: a dialog the server renders open (引用负载标签, a delete confirmation) becomes modal: Esc closes it and the focus returns to the
     button that opened it (data-return-focus). Without this script it stays an open dialog with a Close button. */
  function upgradeDialogs(root) {
    var dialogs = root.querySelectorAll("dialog[data-modal][open]");
    for (var i = 0; i < dialogs.length; i++) {
      var dialog = dialogs[i];
      if (typeof dialog.showModal !== "function" || dialog.matches(":modal")) {
        continue;
      }
      dialog.close();
      dialog.showModal();
      dialog.addEventListener("close", function (event) {
        var closed = event.target;
        var id = closed.getAttribute("data-return-focus");
        var back = id && closed.isConnected && !closed.open && doc.getElementById(id);
        if (back) {
          back.focus();
        }
      });
    }
  }

  /* 9: a draft of a new Service's form in the tab's sessionStorage, keyed by the form's URL: a reload restores
     what was typed (the server re-renders the form from it through the refresh URL, rows and type included) and
     says so (#draft-notice, with a Discard button); a successful save, Cancel or Discard forgets it. */
  var DRAFT = "console-draft:";
  var draftDiscarded = false; // until the reload: an answer settling meanwhile must not save it again

  function draftForm() {
    var form = doc.getElementById("service-form");
    return form && form.hasAttribute("data-draft") ? form : null;
  }

  function formPairs(form) {
    var pairs = [];
    new FormData(form).forEach(function (value, key) {
      if (typeof value === "string" && key !== "csrfmiddlewaretoken" && key !== "_action" && key !== "_focus") {
        pairs.push([key, value]);
      }
    });
    return pairs;
  }

  function draftKey(form) {
    return DRAFT + form.getAttribute("data-draft");
  }

  function saveDraft() {
    var form = draftForm();
    if (!form || draftDiscarded) {
      return;
    }
    try {
      window.sessionStorage.setItem(draftKey(form), JSON.stringify(formPairs(form)));
    } catch (e) {
      /* storage full or refused: the form works without a draft */
    }
  }

  function forgetDraft(form) {
    try {
      window.sessionStorage.removeItem(draftKey(form));
    } catch (e) {
      /* nothing to forget */
    }
  }

  function restoreDraft() {
    var form = draftForm();
    var url = form && form.getAttribute("data-draft-restore");
    if (!form || !url || !sameOrigin(url) || !window.htmx || typeof window.htmx.ajax !== "function") {
      return;
    }
    var pairs;
    try {
      pairs = JSON.parse(window.sessionStorage.getItem(draftKey(form)) || "null");
    } catch (e) {
      return;
    }
    if (!Array.isArray(pairs) || JSON.stringify(pairs) === JSON.stringify(formPairs(form))) {
      return;
    }
    var values = {};
    pairs.forEach(function (pair) {
      if (Array.isArray(pair) && typeof pair[0] === "string" && typeof pair[1] === "string") {
        values[pair[0]] = pair[1];
      }
    });
    window.htmx.ajax("POST", url, { source: form, target: form, swap: "outerHTML", values: values }).then(function () {
      var notice = doc.getElementById("draft-notice");
      if (notice && doc.getElementById("service-form") !== form) {
        notice.hidden = false; // the form was redrawn from the draft
      }
    });
  }

  doc.addEventListener("input", function (event) {
    if (event.target instanceof Element && event.target.closest("form[data-draft]")) {
      saveDraft();
    }
  });
  doc.addEventListener("change", function (event) {
    if (event.target instanceof Element && event.target.closest("form[data-draft]")) {
      saveDraft();
    }
  });
  doc.addEventListener("htmx:afterSettle", function (event) {
    if (serviceFormIn(event)) {
      saveDraft();
    }
  });
  doc.addEventListener("htmx:afterRequest", function (event) {
    var detail = event.detail || {};
    var form = detail.elt instanceof Element ? detail.elt.closest("form[data-draft]") : null;
    // (htmx follows HX-Redirect before it judges the answer, so detail.successful is not set then.)
    if (form && detail.xhr && detail.xhr.status < 300 && detail.xhr.getResponseHeader("HX-Redirect")) {
      forgetDraft(form); // saved
    }
  });
  doc.addEventListener("click", function (event) {
    var cancel = event.target instanceof Element ? event.target.closest("[data-draft-clear]") : null;
    var form = cancel && cancel.closest("form[data-draft]");
    if (form) {
      forgetDraft(form);
    }
  });
  doc.addEventListener("click", function (event) {
    var discard = event.target instanceof Element ? event.target.closest("[data-draft-discard]") : null;
    var form = discard && draftForm();
    if (form) {
      draftDiscarded = true;
      forgetDraft(form);
      window.location.reload(); // the form as it comes, empty
    }
  });

  function onLoad() {
    upgradeDialogs(doc.body); // the workload picker, or a delete confirmation opened by a link (?delete)
    restoreDraft();
  }

  /* 10: live pages. A region with data-live-url (the Services list's table, a Service's details) asks every 0.8 s
     whether what it shows changed: the server answers 204 when nothing did (nothing is swapped), else the region
     drawn afresh. It waits while the tab is hidden, a menu or dialog is open, or the focus is inside the region,
     so an update never closes what the user opened or moves their place; it catches up as soon as they are done. */
  var LIVE_INTERVAL_MS = 800; // a change shows within a second: the poll's interval plus one short request

  function pollLiveRegions() {
    if (doc.visibilityState !== "visible" || typeof window.htmx === "undefined" || doc.querySelector("dialog[open]")) {
      return;
    }
    var regions = doc.querySelectorAll("[data-live-url]");
    for (var i = 0; i < regions.length; i++) {
      var region = regions[i];
      if (region.hasAttribute("data-live-pending") || region.querySelector("details[open]") || region.contains(doc.activeElement)) {
        continue;
      }
      region.setAttribute("data-live-pending", "");
      var done = (function (element) {
        return function () {
          element.removeAttribute("data-live-pending");
        };
      })(region);
      window.htmx.ajax("GET", region.getAttribute("data-live-url"), { source: region, target: region, swap: "outerHTML" }).then(done, done);
    }
  }

  window.setInterval(pollLiveRegions, LIVE_INTERVAL_MS);

  // "Nothing changed" answered after the full checks comes with the URL for the next polls (a fresh token, which
  // lets the server answer them from memory: services/live.py).
  doc.addEventListener("htmx:afterRequest", function (event) {
    var region = event.detail && event.detail.elt;
    var xhr = event.detail && event.detail.xhr;
    if (!(region instanceof Element) || !region.hasAttribute("data-live-url") || !xhr || xhr.status !== 204) {
      return;
    }
    var next = xhr.getResponseHeader("X-Live-Url");
    if (next && next.charAt(0) === "/") {
      region.setAttribute("data-live-url", next);
    }
  });

  // A poll sent while nothing was open may answer after the user opened a row's menu or moved the focus into the
  // region: that answer is dropped (the region keeps its old version, so the next poll after they are done redraws).
  doc.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail && event.detail.target;
    // Only the region's own poll (its source is the region; the list's filter form targets it too).
    if (!(target instanceof Element) || !target.hasAttribute("data-live-url") || event.detail.elt !== target) {
      return;
    }
    if (target.querySelector("details[open]") || target.contains(doc.activeElement) || doc.querySelector("dialog[open]")) {
      event.detail.shouldSwap = false;
    }
  });

  // After htmx has set itself up (this script is deferred after it, so DOMContentLoaded is still to come).
  if (doc.readyState === "complete") {
    onLoad();
  } else {
    doc.addEventListener("DOMContentLoaded", onLoad);
  }
})();
