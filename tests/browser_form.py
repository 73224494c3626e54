"""What a browser sends when a form is submitted, computed from the served HTML as the HTML standard says
("constructing the entry list"), so a test sees what a person's browser would really post, not what the server
thinks the form holds.

The page is parsed by html5lib, the WHATWG parsing algorithm in Python: character references are decoded, a NUL
becomes U+FFFD, and (done here, as html5lib misses it inside tables) a ``<textarea>``'s first line break is
dropped as in a browser. Then, per control:
- disabled controls (or ones inside a disabled fieldset), unnamed ones and those inside a ``<datalist>`` send
  nothing; of the buttons only the submitter is sent;
- a checkbox or radio only when checked (``on`` when it has no value);
- a ``<select>`` its selected options, or its first enabled option when none is marked;
- a text-like ``<input>`` its value attribute with line breaks removed (the value sanitization algorithm): this is
  how a browser flattens a multi-line value put in an ``<input>``; a number input sends "" for a value that is not
  a number;
- a ``<textarea>`` its text, every line break sent as CRLF (a browser's submission does this to every value).

``htmx`` variant: htmx reads the controls' ``.value`` (a textarea's line breaks stay LF) and adds its headers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin
from xml.etree import ElementTree

import html5lib

_TEXT_LIKE = {"text", "search", "tel", "url", "email", "password", ""}
_NOT_SENT = {"file", "image", "reset", "button"}
_TEXTAREA_START = re.compile(r"(<textarea\b[^>]*>)(?:\r\n|\r|\n)?", re.IGNORECASE)
_MARK = "\x01"
_FLOAT = re.compile(r"-?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\Z")


@dataclass
class Submission:
    action: str
    entries: list[tuple[str, str]]
    headers: dict[str, str]

    @property
    def body(self) -> str:
        return urlencode(self.entries)

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.entries if key == name]


def _text(element: ElementTree.Element) -> str:
    return "".join(element.itertext())


def _parents(root: ElementTree.Element) -> dict[ElementTree.Element, ElementTree.Element]:
    return {child: parent for parent in root.iter() for child in parent}


def _ancestors(element, parents) -> list[ElementTree.Element]:
    found = []
    while element in parents:
        element = parents[element]
        found.append(element)
    return found


def _disabled(element, parents) -> bool:
    if element.get("disabled") is not None:
        return True
    child = element
    for ancestor in _ancestors(element, parents):
        if ancestor.tag == "fieldset" and ancestor.get("disabled") is not None:
            legend = next((c for c in ancestor if c.tag == "legend"), None)
            if legend is None or child is not legend:
                return True
        child = ancestor
    return False


def _crlf(text: str) -> str:
    return re.sub(r"\r\n|\r|\n", "\r\n", text)


def submit(
    html: str | bytes, form_id: str, *, submitter: dict[str, str] | None = None, htmx: bool = False, url: str = "/"
) -> Submission:
    """The entry list a browser builds when the form ``form_id`` is submitted by ``submitter`` (attributes that
    pick the button, e.g. ``{"value": "save"}``; by default the form's default button, the first submit button in
    tree order, which Enter in a text field presses)."""
    # A browser ignores one line break right after <textarea> wherever the textarea stands; html5lib does so only
    # outside tables (in a table cell it keeps it), so the break is dropped here and a marker keeps html5lib from
    # dropping a second one.
    html = html.decode() if isinstance(html, bytes) else html
    html = _TEXTAREA_START.sub(lambda found: found.group(1) + _MARK, html)
    root = html5lib.parse(html, namespaceHTMLElements=False)
    parents = _parents(root)
    form = next((el for el in root.iter("form") if el.get("id") == form_id), None)
    assert form is not None, f"no form #{form_id} in the page"
    owned = [
        el
        for el in root.iter()
        if el.tag in ("input", "select", "textarea", "button")
        and (el.get("form") == form_id or (el.get("form") is None and form in _ancestors(el, parents)))
    ]
    buttons = [
        el
        for el in owned
        if (el.tag == "button" and el.get("type", "submit").lower() == "submit")
        or (el.tag == "input" and el.get("type", "").lower() in ("submit", "image"))
    ]
    if submitter is None:
        chosen = buttons[0] if buttons else None
    else:
        chosen = next(el for el in buttons if all(el.get(key) == value for key, value in submitter.items()))
    entries: list[tuple[str, str]] = []
    for el in owned:
        name = el.get("name")
        if not name or _disabled(el, parents) or any(a.tag == "datalist" for a in _ancestors(el, parents)):
            continue
        kind = el.get("type", "").lower()
        if el in buttons:
            if el is chosen:
                entries.append((name, el.get("value", "")))
        elif el.tag == "button" or kind in _NOT_SENT:
            continue
        elif el.tag == "select":
            options = list(el.iter("option"))
            chosen_options = [o for o in options if o.get("selected") is not None]
            if not chosen_options and el.get("multiple") is None:
                chosen_options = [o for o in options if o.get("disabled") is None][:1]
            for option in chosen_options:
                value = option.get("value")
                entries.append((name, value if value is not None else " ".join(_text(option).split())))
        elif el.tag == "textarea":
            text = _text(el).removeprefix(_MARK)
            entries.append((name, text if htmx else _crlf(text)))
        elif kind in ("checkbox", "radio"):
            if el.get("checked") is not None:
                entries.append((name, el.get("value", "on")))
        elif kind == "hidden":
            entries.append((name, el.get("value", "")))
        else:
            value = el.get("value", "")
            if kind in _TEXT_LIKE or kind not in ("number", "range", "color", "date", "time"):
                value = value.replace("\r", "").replace("\n", "")
            if kind in ("url", "email"):
                value = value.strip()
            if kind == "number" and not _FLOAT.match(value):
                value = ""
            entries.append((name, value))
    action = (chosen.get("formaction") if chosen is not None else None) or form.get("action") or url
    if htmx:
        action = form.get("hx-post") or action
    headers: dict[str, Any] = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": form_id} if htmx else {}
    return Submission(action=urljoin(url, action), entries=entries, headers=headers)
