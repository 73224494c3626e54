"""Cluster credentials as plain data, and kubeconfigs parsed as data, never by the client library's loaders.

The library's loaders run ``exec`` and ``auth-provider`` commands and open any file a kubeconfig names. An
uploaded kubeconfig is untrusted input, so it is parsed here with a safe YAML loader, only inline data is
accepted, and the client ``Configuration`` is built by hand (``kube.client``).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import yaml
from django.utils.translation import gettext_lazy as _

# Keys a kubeconfig may carry that make the client run a program, read a file, or route through a proxy.
# (Extensions are inert metadata, e.g. minikube's provider info, and are simply not read.)
_FORBIDDEN_CLUSTER_KEYS = {"certificate-authority", "proxy-url"}
_FORBIDDEN_USER_KEYS = {
    "exec": _("runs a command"),
    "auth-provider": _("runs a plugin"),
    "tokenFile": _("reads a file"),
    "client-certificate": _("reads a file"),
    "client-key": _("reads a file"),
    "username": _("uses basic authentication"),
    "password": _("uses basic authentication"),
    "as": _("impersonates another user"),
    "as-groups": _("impersonates another user"),
    "as-uid": _("impersonates another user"),
    "as-user-extra": _("impersonates another user"),
}


class KubeconfigError(ValueError):
    """An uploaded kubeconfig the console will not use; the message is safe to show (no secrets, no paths)."""


class CredentialsUnreadable(Exception):
    """Stored credentials could not be decrypted with any configured key."""


@dataclass(frozen=True)
class Credentials:
    """Everything needed to reach one cluster, as plain data."""

    server: str
    ca_data: bytes = b""  # PEM; empty means the system trust store
    token: str = field(default="", repr=False)
    client_cert: bytes = field(default=b"", repr=False)  # PEM
    client_key: bytes = field(default=b"", repr=False)  # PEM
    insecure_skip_tls_verify: bool = False
    tls_server_name: str = ""  # the name to verify the server certificate against, when not the URL's host

    def __post_init__(self) -> None:
        # A bearer token goes into an HTTP header as it is: only visible ASCII can be sent (RFC 6750's b64token
        # is narrower still; the API server is the judge of the rest).
        if not isinstance(self.token, str) or not all("!" <= char <= "~" for char in self.token):
            raise KubeconfigError(_("The token must be text of visible ASCII characters, without spaces."))

    def to_dict(self) -> dict:
        return {
            "server": self.server,
            "ca_data": self.ca_data.decode(),
            "token": self.token,
            "client_cert": self.client_cert.decode(),
            "client_key": self.client_key.decode(),
            "insecure_skip_tls_verify": self.insecure_skip_tls_verify,
            "tls_server_name": self.tls_server_name,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Credentials:
        return cls(
            server=data["server"],
            ca_data=data.get("ca_data", "").encode(),
            token=data.get("token", ""),
            client_cert=data.get("client_cert", "").encode(),
            client_key=data.get("client_key", "").encode(),
            insecure_skip_tls_verify=bool(data.get("insecure_skip_tls_verify", False)),
            tls_server_name=data.get("tls_server_name", ""),
        )


class _SafeLoader(yaml.SafeLoader):
    """SafeLoader without aliases: a kubeconfig never needs them, and they make "billion laughs" possible."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases are not allowed", event.start_mark)
        return super().compose_node(parent, index)


# Kubernetes objects nest a dozen levels at most; PyYAML composes nodes recursively, so a document nested
# thousands of levels deep would exhaust Python's stack (RecursionError) before any other check ran.
MAX_YAML_DEPTH = 100


def _check_depth(text: str | bytes, max_depth: int) -> None:
    """Refuse a document nested deeper than ``max_depth`` by walking the parser's events, which is iterative."""
    depth = 0
    for event in yaml.parse(text, Loader=_SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > max_depth:
                raise KubeconfigError(
                    _("The YAML nests more than %(limit)d levels deep (line %(line)d).")
                    % {"limit": max_depth, "line": event.start_mark.line + 1}
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


# PyYAML's findings in English, said in the user's language; the ones it has besides these are rarer, and said
# in general terms rather than in English inside a sentence of another language.
_YAML_PROBLEMS = (
    ("mapping values are not allowed", _("a “key: value” pair where none may start (check the indentation)")),
    ("could not find expected ':'", _("a key without “:” after it")),
    ("did not find expected key", _("a line that is neither a key nor a list item at this indentation")),
    ("did not find expected '-' indicator", _("a line that is not a list item (“- ”) where the list goes on")),
    ("cannot start any token", _("a character that cannot start a value here (a tab? indent with spaces)")),
    ("tab character", _("a tab used for indentation (indent with spaces)")),
    ("found unexpected end of stream", _("the text ends inside a quoted value or a list")),
    ("found unknown escape character", _("an unknown escape (\\) in a double-quoted value")),
    ("aliases are not allowed", _("an alias (*name): aliases are not allowed")),
    ("found duplicate anchor", _("the same anchor (&name) twice")),
    ("could not determine a constructor", _("a tag (!name) that plain data does not have")),
    ("expected <block end>", _("a line indented differently from the lines before it")),
    ("found unexpected ':'", _("a “:” where a value was expected (quote values containing “: ”)")),
)


def yaml_problem(problem: str) -> str:
    """PyYAML's ``problem`` in the user's language."""
    for found, said in _YAML_PROBLEMS:
        if found in problem:
            return str(said)
    return str(_("the structure is not valid YAML here"))


def load_yaml_document(text: str | bytes, max_bytes: int, max_depth: int = MAX_YAML_DEPTH) -> object:
    """Load exactly one YAML document with no tags beyond plain data, no aliases, no deep nesting, under a size
    cap."""
    if len(text) > max_bytes:
        raise KubeconfigError(_("The YAML is larger than %(limit)d KiB.") % {"limit": max_bytes // 1024})
    try:
        _check_depth(text, max_depth)
        documents = list(yaml.load_all(text, Loader=_SafeLoader))  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = (
            _(" (line %(line)d, column %(column)d)") % {"line": mark.line + 1, "column": mark.column + 1}
            if mark is not None
            else ""
        )
        raise KubeconfigError(
            _("This is not valid YAML%(where)s: %(problem)s.")
            % {"where": where, "problem": yaml_problem(getattr(error, "problem", None) or "")}
        ) from None
    if len(documents) != 1:
        raise KubeconfigError(
            _("Give exactly one YAML document; this text holds %(count)d.") % {"count": len(documents)}
        )
    return documents[0]


def _decode_b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise KubeconfigError(_("%(what)s must be base64 text.") % {"what": what})
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise KubeconfigError(_("%(what)s is not valid base64.") % {"what": what}) from None


def _named(entries: object, name: str, kind: str) -> dict:
    if not isinstance(entries, list):
        raise KubeconfigError(_("The kubeconfig has no %(kind)s list.") % {"kind": kind})
    for entry in entries:
        if isinstance(entry, dict) and entry.get("name") == name and isinstance(entry.get(kind.rstrip("s")), dict):
            return entry[kind.rstrip("s")]
    raise KubeconfigError(
        _("The kubeconfig has no %(kind)s named “%(name)s”.") % {"kind": kind.rstrip("s"), "name": name}
    )


def kubeconfig_contexts(document: object) -> list[str]:
    if not isinstance(document, dict):
        return []
    contexts = document.get("contexts") or []
    return [c["name"] for c in contexts if isinstance(c, dict) and isinstance(c.get("name"), str)]


def parse_kubeconfig(
    text: str | bytes,
    context: str | None = None,
    *,
    max_bytes: int,
    allow_insecure: bool = False,
) -> Credentials:
    """Turn an uploaded kubeconfig into ``Credentials``, refusing anything that is not inline data."""
    document = load_yaml_document(text, max_bytes)
    if not isinstance(document, dict):
        raise KubeconfigError(_("A kubeconfig is a YAML mapping; this is not."))
    if document.get("kind", "Config") != "Config":
        raise KubeconfigError(_("This is not a kubeconfig (kind must be Config)."))
    context = context or document.get("current-context")
    if not context or not isinstance(context, str):
        raise KubeconfigError(_("Choose a context: the kubeconfig names no current context."))
    ctx = _named(document.get("contexts"), context, "contexts")
    cluster = _named(document.get("clusters"), ctx.get("cluster"), "clusters")
    user = _named(document.get("users"), ctx.get("user"), "users")

    for key in sorted(_FORBIDDEN_CLUSTER_KEYS & cluster.keys()):
        raise KubeconfigError(
            _("The cluster entry uses “%(key)s”, which the console does not accept: give inline data instead.")
            % {"key": key}
        )
    for key, reason in _FORBIDDEN_USER_KEYS.items():
        if key in user:
            raise KubeconfigError(
                _(
                    "The user entry uses “%(key)s”, which %(reason)s; the console accepts only inline tokens and certificates."
                )
                % {"key": key, "reason": reason}
            )
    insecure = bool(cluster.get("insecure-skip-tls-verify", False))
    if insecure and not allow_insecure:
        raise KubeconfigError(
            _("The cluster entry skips TLS verification; tick “Allow insecure TLS” to accept that explicitly.")
        )
    server = cluster.get("server")
    if not isinstance(server, str) or not server:
        raise KubeconfigError(_("The cluster entry has no server URL."))
    validate_server_url(server, allow_http=allow_insecure)
    credentials = Credentials(
        server=server,
        ca_data=_decode_b64(cluster["certificate-authority-data"], "certificate-authority-data")
        if "certificate-authority-data" in cluster
        else b"",
        token=user.get("token") or "",
        client_cert=_decode_b64(user["client-certificate-data"], "client-certificate-data")
        if "client-certificate-data" in user
        else b"",
        client_key=_decode_b64(user["client-key-data"], "client-key-data") if "client-key-data" in user else b"",
        insecure_skip_tls_verify=insecure,
        tls_server_name=str(cluster.get("tls-server-name") or ""),
    )
    if not isinstance(credentials.token, str):
        raise KubeconfigError(_("The user token must be text."))
    if not credentials.token and not credentials.client_cert:
        raise KubeconfigError(_("The user entry has neither a token nor a client certificate."))
    if bool(credentials.client_cert) != bool(credentials.client_key):
        raise KubeconfigError(_("A client certificate needs its key, and a key its certificate."))
    return credentials


def validate_server_url(url: str, *, allow_http: bool = False) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise KubeconfigError(_("The API server URL is not a valid URL.")) from None
    if parts.scheme not in ({"https", "http"} if allow_http else {"https"}) or not parts.hostname:
        raise KubeconfigError(_("The API server URL must be an https:// address."))
    if parts.username or parts.password or parts.query or parts.fragment:
        raise KubeconfigError(_("The API server URL must not carry a user, a query or a fragment."))
