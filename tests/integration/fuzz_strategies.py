"""Hypothesis strategies and an HTML form reader for tests/integration/test_fuzz.py.

Nothing here knows the console's field names or URLs: forms are read from the pages the console serves, and the
strategies draw values for whatever fields, buttons and query parameters those pages show.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import yaml
from hypothesis import strategies as st

# --- reading forms out of HTML ----------------------------------------------------------------------------------

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Field:
    """One named control as a browser sees it: what it submits untouched, and the values it offers."""

    kind: str  # text, hidden, checkbox, radio, select, textarea, file, password, ...
    default: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    disabled: bool = False


@dataclass
class Form:
    """A <form> (or a lone hx-post element) and everything that submits to it."""

    key: str
    action: str
    method: str
    enctype: str = "application/x-www-form-urlencoded"
    fields: dict[str, Field] = field(default_factory=dict)
    # (url or "" for the form's own action, extra data the submitter adds: a button's name/value or hx-vals)
    submitters: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    # choice field name -> (url, hx-vals) of the element that re-renders the form when it changes
    refresh: dict[str, list[tuple[str, dict[str, str]]]] = field(default_factory=dict)

    def data(self) -> dict[str, list[str]]:
        """What a browser submits for this form untouched (disabled controls are not sent)."""
        return {name: list(f.default) for name, f in self.fields.items() if f.default and not f.disabled}


def _hx_vals(attrs: dict[str, str | None]) -> dict[str, str]:
    raw = attrs.get("hx-vals") or attrs.get("data-hx-vals") or ""
    if raw.startswith("js:") or not raw:
        return {}
    try:
        values = json.loads(raw)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in values.items()} if isinstance(values, dict) else {}


class FormReader(HTMLParser):
    """Collect every form of a page: inputs, selects (with their options), textareas, submit buttons with their
    name/value, ``formaction`` and ``hx-post``, and hx-post elements with their hx-vals. Controls with a ``form``
    attribute join the form with that id."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._ids: dict[str, Form] = {}
        self._stack: list[tuple[str, dict[str, str | None], Form | None]] = []
        self._pending: list[tuple[str, tuple]] = []  # (form id, deferred call) for form="id" controls
        self._select: tuple[Form | None, str] | None = None
        self._option: str | None = None
        self._option_text = ""
        self._textarea: tuple[Form | None, str] | None = None
        self._textarea_text = ""
        self._lone = 0
        # Controls outside any form: a fragment swapped into a form (e.g. rows of buttons) belongs to it.
        self.orphans = Form(key="orphans", action="", method="post")

    # which form an element belongs to
    def _current(self) -> Form | None:
        for _tag, _attrs, form in reversed(self._stack):
            if form is not None:
                return form
        return None

    def _refresh_source(self) -> tuple[str, dict[str, str]] | None:
        """The element (not the form itself) whose hx-post re-renders the form when a control inside it changes."""
        for tag, attrs, _form in reversed(self._stack):
            if tag != "form" and attrs.get("hx-post"):
                return attrs["hx-post"] or "", _hx_vals(attrs)
        return None

    def _owner(self, attrs: dict[str, str | None]) -> Form | str | None:
        if attrs.get("form"):
            return self._ids.get(attrs["form"] or "") or str(attrs["form"])
        return self._current()

    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        attrs = dict(attrs_list)
        form: Form | None = None
        if tag == "form":
            form = Form(
                key=f"form#{attrs.get('id') or len(self.forms)}",
                action=attrs.get("action") or "",
                method=(attrs.get("method") or "get").lower(),
                enctype=attrs.get("enctype") or "application/x-www-form-urlencoded",
            )
            if attrs.get("hx-post"):
                form.method = "post"
                form.submitters.append((attrs["hx-post"] or "", {}))
            self.forms.append(form)
            if attrs.get("id"):
                self._ids[attrs["id"] or ""] = form
        elif attrs.get("hx-post") and tag not in ("button", "input"):
            owner = self._current()
            if owner is not None:
                owner.submitters.append((attrs["hx-post"] or "", _hx_vals(attrs)))
            else:  # an hx-post element outside any form posts only its own hx-vals
                self._lone += 1
                form = Form(key=f"hx#{self._lone}", action=attrs["hx-post"] or "", method="post")
                form.submitters.append((attrs["hx-post"] or "", _hx_vals(attrs)))
                self.forms.append(form)
        if tag == "input":
            self._control(attrs, self._input, attrs, self._refresh_source())
        elif tag == "button":
            self._control(attrs, self._button, attrs)
        elif tag == "select":
            self._select = (None, "")
            self._control(attrs, self._start_select, attrs, self._refresh_source())
        elif tag == "option" and self._select is not None:
            self._option, self._option_text = attrs.get("value"), ""
            if "selected" in attrs:
                self._selected = True
            else:
                self._selected = False
        elif tag == "textarea":
            self._textarea = (None, "")
            self._textarea_text = ""
            self._control(attrs, self._start_textarea, attrs)
        if tag not in _VOID:
            self._stack.append((tag, attrs, form))

    def _control(self, attrs: dict[str, str | None], method, *args) -> None:
        owner = self._owner(attrs)
        if owner is None:
            owner = self.orphans
        if isinstance(owner, str):
            self._pending.append((owner, (method, args)))
            method(None, *args)  # still track select/textarea state
        else:
            method(owner, *args)

    def _field(self, form: Form, name: str, kind: str, disabled: bool) -> Field:
        existing = form.fields.get(name)
        if existing is None:
            existing = form.fields[name] = Field(kind=kind, disabled=disabled)
        return existing

    def _input(self, form: Form | None, attrs: dict[str, str | None], refresh) -> None:
        if form is None:
            return
        kind = (attrs.get("type") or "text").lower()
        name = attrs.get("name")
        value = attrs.get("value")
        if kind in ("submit", "image", "button"):
            if kind != "button":
                self._submitter(form, attrs)
            return
        if not name or kind == "reset":
            return
        f = self._field(form, name, kind, "disabled" in attrs)
        if kind in ("checkbox", "radio"):
            choice = "on" if value is None else value
            if choice not in f.options:
                f.options.append(choice)
            if "checked" in attrs:
                f.default.append(choice)
            if refresh:
                form.refresh.setdefault(name, []).append(refresh)
        elif kind != "file":
            f.default = [value or ""]

    def _submitter(self, form: Form, attrs: dict[str, str | None]) -> None:
        url = attrs.get("hx-post") or attrs.get("formaction") or ""
        extra = {attrs["name"] or "": attrs.get("value") or ""} if attrs.get("name") else {}
        extra |= _hx_vals(attrs)
        if (url, extra) not in form.submitters:
            form.submitters.append((url, extra))

    def _button(self, form: Form | None, attrs: dict[str, str | None]) -> None:
        if form is None or (attrs.get("type") or "submit").lower() != "submit":
            return
        self._submitter(form, attrs)

    def _start_select(self, form: Form | None, attrs: dict[str, str | None], refresh) -> None:
        name = attrs.get("name") or ""
        self._select = (form, name)
        if form is not None and name:
            self._field(form, name, "select", "disabled" in attrs)
            if refresh:
                form.refresh.setdefault(name, []).append(refresh)

    def _start_textarea(self, form: Form | None, attrs: dict[str, str | None]) -> None:
        self._textarea = (form, attrs.get("name") or "")
        if form is not None and attrs.get("name"):
            self._field(form, attrs["name"] or "", "textarea", "disabled" in attrs)

    def handle_data(self, data: str) -> None:
        if self._option is None and self._select is not None and self._stack and self._stack[-1][0] == "option":
            self._option_text += data
        if self._textarea is not None:
            self._textarea_text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "option" and self._select is not None:
            self._end_option()
        if tag == "select":
            if self._stack and self._stack[-1][0] == "option":
                self._end_option()
            self._finish_select()
            self._select = None
        if tag == "textarea" and self._textarea is not None:
            form, name = self._textarea
            if form is not None and name:
                form.fields[name].default = [self._textarea_text.removeprefix("\n")]
            self._textarea = None
        for index in range(len(self._stack) - 1, -1, -1):
            if self._stack[index][0] == tag:
                del self._stack[index:]
                break

    def _end_option(self) -> None:
        if self._select is None:
            return
        form, name = self._select
        value = self._option if self._option is not None else self._option_text.strip()
        if form is not None and name:
            f = form.fields[name]
            if value not in f.options:
                f.options.append(value)
            if getattr(self, "_selected", False):
                f.default = [value]
        self._option, self._option_text, self._selected = None, "", False

    def _finish_select(self) -> None:
        if self._select is None:
            return
        form, name = self._select
        if form is not None and name:
            f = form.fields[name]
            if not f.default and f.options:
                f.default = [f.options[0]]

    def close(self) -> None:
        super().close()
        if self.orphans.fields or self.orphans.submitters:
            self.forms.append(self.orphans)
        for form_id, (method, args) in self._pending:
            owner = self._ids.get(form_id)
            if owner is not None and method == self._input or owner is not None and method == self._button:
                method(owner, *args)


def read_forms(html: str) -> list[Form]:
    reader = FormReader()
    reader.feed(html)
    reader.close()
    return reader.forms


# --- values a browser (or someone with curl) can send -----------------------------------------------------------

UNICODE_DIGITS = ["²", "³", "¹", "٣", "۷", "߀", "३", "৩", "๓", "０", "１２３", "８０８０", "𝟗", "①", "Ⅻ", "½", "٣٠٠٠٠"]
MARKUP = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "{{ request }}",
    "{% debug %}",
    "&amp;&lt;",
    "' OR 1=1 --",
    "../../etc/passwd",
    "%s%n",
]

unicode_digits = st.one_of(
    st.sampled_from(UNICODE_DIGITS),
    st.text(st.characters(categories=["Nd", "No", "Nl"]), min_size=1, max_size=6),
)
huge_digits = st.integers(min_value=19, max_value=6000).map(lambda n: "9" * n)
integers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["0", "-1", "1", "65535", "65536", "30000", "32767", "2147483648", "-2147483649", "1e3", "0x50"]),
)
control_text = st.text(st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp"]), min_size=1, max_size=8)
long_text = st.integers(min_value=200, max_value=5000).map(lambda n: "x" * n)

generic_value = st.one_of(
    st.just(""),
    st.text(max_size=40),
    integers,
    unicode_digits,
    huge_digits,
    control_text,
    st.sampled_from(MARKUP),
    long_text,
    st.sampled_from([" ", "\t", "\n", "on", "true", "null", "None", "-", "a/b", "x" * 64, "a-b.c/d_e"]),
)

management_count = st.one_of(
    st.integers(min_value=-5, max_value=5000).map(str),
    generic_value,
)


def is_management_field(name: str) -> bool:
    return name.endswith(("-TOTAL_FORMS", "-INITIAL_FORMS", "-MIN_NUM_FORMS", "-MAX_NUM_FORMS"))


def value_for(f: Field | None, name: str) -> st.SearchStrategy[str]:
    """A value for one control: one of its own options (often, so the rest of the form stays plausible), or
    anything at all."""
    if is_management_field(name):
        return management_count
    if f is not None and f.options:
        return st.one_of(st.sampled_from(f.options), st.sampled_from(f.options), generic_value)
    if f is not None and f.default and f.default[0]:
        return st.one_of(st.just(f.default[0]), generic_value)
    return generic_value


def index_mutations(value: str) -> list[str]:
    """Hard variants of a submitter's value: a row index (``remove_ports-0`` or ``0``) in Unicode digits, huge or
    negative; a workload reference (``Deployment/web``, ``use_workload-Deployment/web``) without a kind or name."""
    verb, sep, rest = value.rpartition("-") if "-" in value else ("", "", value)
    head = f"{verb}{sep}"
    found = []
    if rest.isdigit():
        found += [f"{head}{tail}" for tail in ("²", "٣", "99999999999999999999", "9" * 5000, "-1", "")]
    if "/" in value:
        kind, _slash, name = rest.partition("/")
        found += [f"{head}x/y", f"{head}{kind}/", f"{head}/{name}", f"{head}/", f"{head}{kind}/{name}/z", f"{head}²/²"]
    return found


def submitter_values(seen: list[dict[str, str]]) -> st.SearchStrategy[dict[str, str]]:
    """The data a submit button or hx-vals adds: those seen on the page, and mutations of them (a row index in
    Unicode digits, a huge or negative index, a workload reference without a kind, random text)."""
    seen = seen or [{}]
    keys = sorted({k for extra in seen for k in extra}) or ["_action"]
    mutated = [
        {**extra, key: variant} for extra in seen for key, value in extra.items() for variant in index_mutations(value)
    ]
    verbs = sorted({v.partition("-")[0] for extra in seen for v in extra.values() if "-" in v})
    tails = st.one_of(unicode_digits, huge_digits, integers, st.text(max_size=20), st.sampled_from(["x/y", "/", "a/"]))
    verb_tail = st.builds(
        lambda key, verb, tail: {key: f"{verb}-{tail}"}, st.sampled_from(keys), st.sampled_from(verbs or ["x"]), tails
    )
    random = st.builds(lambda key, value: {key: value}, st.sampled_from(keys), generic_value)
    options = [st.sampled_from(seen), st.sampled_from(seen), verb_tail, random]
    if mutated:
        options.append(st.sampled_from(mutated))
    return st.one_of(*options)


QUERY_KEYS = ["page", "q", "type", "continue", "namespace", "delete", "limit", "next", "sort", "lang"]

query_value = st.one_of(generic_value, st.sampled_from(["1", "2", "-1", "0", "ClusterIP", "NodePort", "default"]))


def query_params(extra_keys: list[str]) -> st.SearchStrategy[list[tuple[str, str]]]:
    keys = st.one_of(st.sampled_from(sorted(set(QUERY_KEYS) | set(extra_keys))), st.text(min_size=1, max_size=10))
    return st.lists(st.tuples(keys, query_value), max_size=5)


# --- YAML -----------------------------------------------------------------------------------------------------

nesting_depth = st.one_of(st.integers(min_value=1, max_value=60), st.integers(min_value=60, max_value=5000))


@st.composite
def deeply_nested_yaml(draw) -> str:
    depth = draw(nesting_depth)
    style = draw(st.sampled_from(["flow-list", "flow-map", "block-map", "block-list", "in-service"]))
    if style == "flow-list":
        return "[" * depth + "]" * depth
    if style == "flow-map":
        return "{a: " * depth + "1" + "}" * depth
    if style == "block-map":
        return "a: " * depth + "1"
    if style == "block-list":
        return "".join("  " * i + "-\n" for i in range(min(depth, 400))) + "  " * min(depth, 400) + "- 1\n"
    nested = "[" * depth + "]" * depth
    return f"apiVersion: v1\nkind: Service\nmetadata:\n  name: deep\n  labels: {nested}\nspec: {{}}\n"


yaml_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    unicode_digits,
)
yaml_value = st.recursive(
    yaml_scalar,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)

dns_names = st.from_regex(r"\A[a-z][a-z0-9-]{2,20}[a-z0-9]\Z")


@st.composite
def service_documents(draw, name: str | None, namespace: str) -> str:
    """A Service document near the valid ones, with random apiVersion/kind/metadata (resourceVersion on a create,
    none on an edit), and ports/selector/type drawn from valid and wrong values."""
    metadata: dict[str, Any] = {
        "name": draw(st.one_of(st.just(name), dns_names, st.text(max_size=20), yaml_value))
        if name
        else draw(st.one_of(dns_names, dns_names, st.text(max_size=20), yaml_value))
    }
    if draw(st.booleans()):
        metadata["resourceVersion"] = draw(st.one_of(st.just("1"), integers, st.text(max_size=10), yaml_value))
    if draw(st.booleans()):
        metadata["namespace"] = draw(st.one_of(st.just(namespace), st.text(max_size=10), yaml_value))
    for key in draw(st.lists(st.sampled_from(["labels", "annotations", "uid", "generateName", "finalizers"]))):
        metadata[key] = draw(yaml_value)
    port = {
        "port": draw(st.one_of(st.integers(1, 65535), st.integers(), yaml_value)),
        "protocol": draw(st.sampled_from(["TCP", "UDP", "SCTP", "HTTP"])),
    }
    for key in draw(st.lists(st.sampled_from(["name", "targetPort", "nodePort", "appProtocol"]))):
        port[key] = draw(st.one_of(st.integers(-1, 70000), yaml_value))
    spec: Any = {
        "type": draw(st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer", "ExternalName", "Bogus"])),
        "ports": draw(st.one_of(st.just([port]), yaml_value)),
        "selector": draw(st.one_of(st.just({"app": "web"}), yaml_value)),
    }
    for key in draw(st.lists(st.sampled_from(["clusterIP", "sessionAffinity", "externalTrafficPolicy", "ipFamilies"]))):
        spec[key] = draw(yaml_value)
    if draw(st.integers(0, 9)) == 0:
        spec = draw(yaml_value)
    document: Any = {
        "apiVersion": draw(st.one_of(st.just("v1"), st.just("v1"), st.sampled_from(["apps/v1", "v2", ""]), yaml_value)),
        "kind": draw(
            st.one_of(st.just("Service"), st.just("Service"), st.sampled_from(["Pod", "service"]), yaml_value)
        ),
        "metadata": draw(st.one_of(st.just(metadata), st.just(metadata), yaml_value)),
        "spec": spec,
    }
    if draw(st.booleans()):
        document["status"] = draw(yaml_value)
    return yaml.safe_dump(document, allow_unicode=draw(st.booleans()))


def yaml_texts(name: str | None, namespace: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=300),
        deeply_nested_yaml(),
        service_documents(name, namespace),
        service_documents(name, namespace),
        st.builds(lambda a, b: a + "\n---\n" + b, service_documents(name, namespace), st.text(max_size=30)),
        st.sampled_from(["", "---", "a: &x 1\nb: *x", "!!python/object:os.system ls", "{", "\t", "~", "- - -"]),
    )


# --- kubeconfigs ----------------------------------------------------------------------------------------------

WRONG = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.binary(max_size=8),
    st.just(["x", {"name": 1}]),
)

SERVERS = ["https://127.0.0.1:1", "http://127.0.0.1:1", "https://", "ftp://x", "https://u:p@h/?q#f", "127.0.0.1"]


def valid_kubeconfig(server: str = "https://127.0.0.1:1") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "c",
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "clusters": [{"name": "k", "cluster": {"server": server, "certificate-authority-data": "AAAA"}}],
        "users": [{"name": "u", "user": {"token": "t0k3n"}}],
    }


def _paths(node: Any, path: tuple = ()) -> list[tuple]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*path, index))
    return found


def _replace(node: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    copy = dict(node) if isinstance(node, dict) else list(node)
    copy[head] = _replace(copy[head], rest, value)
    return copy


@st.composite
def kubeconfig_texts_structured(draw) -> str:
    """A valid inline kubeconfig with wrong types (or deep nesting, or forbidden keys) in drawn positions, as
    YAML text (deep values are written in flow style in place of a marker: the dumpers recurse)."""
    document: Any = valid_kubeconfig(draw(st.sampled_from(SERVERS)))
    deep: dict[str, str] = {}
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(_paths(document)))
        wrong = draw(st.one_of(WRONG, WRONG, yaml_value, st.just("<deep>")))
        if wrong == "<deep>":
            depth = draw(st.one_of(st.integers(1, 10), st.integers(1, 10), st.integers(300, 2000)))
            opener, closer = draw(st.sampled_from([("[", "]"), ("{a: ", "}")]))
            wrong = f"DEEP{len(deep)}MARK"
            deep[wrong] = opener * depth + "x" + closer * depth
        document = _replace(document, path, wrong)
    if draw(st.booleans()) and isinstance(document, dict):
        users = document.get("users")
        if isinstance(users, list) and users and isinstance(users[0], dict) and isinstance(users[0].get("user"), dict):
            key = draw(st.sampled_from(["exec", "auth-provider", "tokenFile", "client-certificate-data", "as"]))
            users[0]["user"][key] = draw(WRONG)
    text = yaml.safe_dump(document, default_flow_style=True, width=1 << 30)
    for marker, flow in deep.items():
        text = text.replace(marker, flow)
    return text


kubeconfig_texts = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=200),
    deeply_nested_yaml(),
    kubeconfig_texts_structured(),
    kubeconfig_texts_structured(),
    kubeconfig_texts_structured().map(str.encode),
)
