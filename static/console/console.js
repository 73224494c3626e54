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

  /* 5: after an htmx swap that brought back invalid fields, focus the first one. Focus is only moved when it was
     lost in the swap or the swap answered a form submission, so switching the access type does not jump. */
  doc.addEventListener("htmx:afterSwap", function (event) {
    var root = event.target instanceof Element ? event.target : null;
    if (!root || !root.isConnected) {
      return;
    }
    var invalid = root.matches('[aria-invalid="true"]') ? root : root.querySelector('[aria-invalid="true"]');
    if (!invalid) {
      return;
    }
    var detail = event.detail || {};
    var trigger = detail.requestConfig && detail.requestConfig.triggeringEvent;
    var active = doc.activeElement;
    var focusLost = !active || active === doc.body || !active.isConnected;
    if (!focusLost && !(trigger && trigger.type === "submit")) {
      return;
    }
    if (active && active.getAttribute && active.getAttribute("aria-invalid") === "true") {
      return; // an earlier afterSwap of the same response already did it
    }
    try {
      invalid.focus({ preventScroll: true });
    } catch (e) {
      invalid.focus();
    }
    if (typeof invalid.scrollIntoView === "function") {
      invalid.scrollIntoView({ block: "center" });
    }
  });
})();
