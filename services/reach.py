"""Reaching a Service from the browser: one HTTP GET through the API server's service proxy
(``/api/v1/namespaces/N/services/NAME:PORT/proxy/PATH``), made as the signed-in user, so the cluster decides who may
(``services/proxy``, held by the Edit and Admin roles).

The request carries only what this module sets: the user's impersonation headers, the console's credential and an
``Accept`` header; nothing of the browser's request (cookies, CSRF token) is ever copied into it. The answer is read
streaming, at most ``limit`` bytes and for at most ``TIMEOUT`` seconds. The API server's own failures (a refusal, no
ready endpoint, a connection refused, a port that speaks no HTTP) are told apart from the Service's answers and said
in the user's language.

The pure helpers (``checked_path``, ``service_port``, ``shown_headers``, ``redirect_inside``, ...) hold the rules;
``fetch`` is the only call.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urljoin, urlsplit

import urllib3
from django.conf import settings
from django.utils.translation import gettext as _
from kubernetes.client.exceptions import ApiException

import kube

TIMEOUT = 5.0  # seconds the Service has to answer, body included
TEST_LIMIT = 16 * 1024  # bytes of a body a test shows
OPEN_LIMIT = 4 * 1024 * 1024  # bytes of a page opened in the browser
MAX_PATH = 2048

# Headers that describe one connection, not the answer (RFC 9110 7.6.1), and those the client's decoding voids.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding"}
    | {"upgrade", "proxy-connection"}
)


class BadPath(ValueError):
    """A path the console will not send; ``str()`` says why in the user's language."""


# --- pure helpers --------------------------------------------------------------------------------------------------

_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# An encoded slash or backslash, encoded any number of times (%2f, %252f, ...): the API server or the Service
# would read it as a separator the console did not check.
_ENCODED_SEPARATOR = re.compile(r"%(?:25)*(?:2f|5c)", re.IGNORECASE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
_QUERY_SAFE = _PATH_SAFE + "?"


def checked_path(text: str) -> str:
    """The path (and query) to ask the Service for, percent-encoded, from what a person typed or a link asked:
    ``healthz`` becomes ``/healthz``. Refused (``BadPath``): an absolute URL, a fragment, control characters,
    backslashes, malformed escapes, encoded slashes and backslashes, and any ``.`` or ``..`` segment, however
    encoded (``..%2f``, ``%2e%2e``, ``%252e%252e``)."""
    text = text.strip()
    if len(text) > MAX_PATH:
        raise BadPath(_("The path is longer than %(limit)d characters.") % {"limit": MAX_PATH})
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in text):
        raise BadPath(_("The path may not hold spaces or control characters; write a space as %20."))
    if "\\" in text:
        raise BadPath(_("The path may not hold a backslash."))
    if text.startswith("//") or (_SCHEME.match(text) and not text.startswith("/")):
        raise BadPath(_("Give only a path on the Service (such as /healthz), not a URL of a site."))
    if "#" in text:
        raise BadPath(_("A fragment (#…) is never sent to a server; leave it out."))
    if _ESCAPE.search(text):
        raise BadPath(_("A % in the path must start an escape such as %20."))
    path, mark, query = text.partition("?")
    if _ENCODED_SEPARATOR.search(path):
        raise BadPath(_("The path may not hold an encoded slash or backslash (%2F, %5C)."))
    decoded = path
    for _round in range(4):  # every layer of encoding, so that %252e%252e is seen as ".."
        decoded, before = unquote(decoded), decoded
        if decoded == before:
            break
    if any(segment in (".", "..") for segment in decoded.split("/")) or "\\" in decoded or "\x00" in decoded:
        raise BadPath(_("The path may not climb out of the Service with “.” or “..” segments."))
    path = "/" + path.lstrip("/")
    return quote(path, safe=_PATH_SAFE) + (mark + quote(query, safe=_QUERY_SAFE) if mark else "")


def service_port(service: dict, wanted: str) -> dict | None:
    """The Service's TCP port named ``wanted`` (its name, or its number as text), or None: only TCP ports can be
    reached through the proxy."""
    for port in (service.get("spec") or {}).get("ports") or []:
        if (port.get("protocol") or "TCP") == "TCP" and wanted in (port.get("name"), str(port.get("port"))):
            return port
    return None


def port_key(port: dict) -> str:
    """How the console's URLs and the proxy name a port: its name, or its number when it has none."""
    return str(port.get("name") or port.get("port"))


def proxy_prefix(namespace: str, name: str, port: dict) -> str:
    """The API server's proxy path of a Service port, without the trailing slash."""
    return f"/api/v1/namespaces/{namespace}/services/{name}:{port_key(port)}/proxy"


def shown_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The response headers worth showing: all but the hop-by-hop ones."""
    return [(name, value) for name, value in headers if name.lower() not in HOP_BY_HOP]


def redirect_inside(location: str, proxied_path: str, prefix: str) -> str | None:
    """Where a redirect leads, as a path on the Service, when it stays on it: a relative ``Location`` resolved
    against ``proxied_path``, or a path under the proxy ``prefix`` (the API server rewrites the Service's own
    absolute paths so). None for any other place (another host, another part of the API server), which is never
    followed."""
    target = urlsplit(urljoin(f"{prefix}{proxied_path}", location.strip()))
    if target.scheme or target.netloc or not (target.path + "/").startswith(prefix + "/"):
        return None
    inside = target.path[len(prefix) :] or "/"
    try:
        return checked_path(inside + (f"?{target.query}" if target.query else ""))
    except BadPath:
        return None


def body_text(body: bytes, content_type: str) -> str:
    """The body as text for a person to read: decoded with the charset the answer names (UTF-8 otherwise), any
    byte that does not decode shown as �."""
    charset = re.search(r"charset=([\w.:-]+)", content_type or "", re.IGNORECASE)
    try:
        return body.decode(charset[1] if charset else "utf-8", errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


# --- the answer, and why there was none ----------------------------------------------------------------------------


@dataclass
class Answer:
    """What the Service answered: status, the seconds until the body was read, headers (in order, repeated ones
    kept), the first ``limit`` bytes of the body and whether there was more, and the API server's ``Audit-Id``."""

    status: int
    reason: str
    seconds: float
    headers: list[tuple[str, str]]
    body: bytes
    truncated: bool = False
    audit_id: str = ""

    def header(self, name: str) -> str:
        return next((value for key, value in self.headers if key.lower() == name.lower()), "")

    @property
    def content_type(self) -> str:
        return self.header("Content-Type")

    @property
    def text(self) -> str:
        return body_text(self.body, self.content_type)


# The endpoint the API server dialled, as its proxy errors name it: "dial tcp 10.0.0.7:8080: connect: ...".
_DIALED = re.compile(r"dial tcp (\[[0-9a-fA-F:.]+\]:[0-9]+|[0-9.]+:[0-9]+)")


@dataclass
class Unreached(Exception):
    """No answer of the Service: ``message`` says why in the user's language; ``status`` is what a gateway answers
    for it (403 refused by the cluster, 502 a broken answer, 503 nothing to answer, 504 too slow)."""

    message: str
    status: int
    seconds: float = 0.0
    audit_id: str = ""
    detail: str = field(default="", repr=False)  # the API server's own words, for the audit entry

    @property
    def endpoint(self) -> str:
        """The endpoint (address:port) the API server tried, when its words name it ("dial tcp 10.0.0.7:8080: ...");
        it never says which endpoint gave an answer."""
        named = _DIALED.search(self.detail)
        return named[1] if named else ""

    def __str__(self) -> str:
        return self.message


def _explained_failure(status: int, message: str) -> tuple[str, int] | None:
    """The API server's proxy failure ``message`` (of a Status it answered with ``status``) in the user's language,
    with the status a gateway answers; None when it is not one the console knows."""
    lowered = message.lower()
    if status == 404:
        return _("The Service or its port no longer exists."), 404
    if status == 403:
        return (
            _(
                "The cluster refused: your user there may not reach Services through the API server "
                "(services/proxy, which the Edit and Admin roles hold)."
            ),
            403,
        )
    if "no endpoints available" in lowered:
        return _("No ready endpoint serves this port: no Pod behind the Service is ready to answer."), 503
    if "connection refused" in lowered:
        return _("The endpoint refused the connection: nothing listens on the Service's target port."), 502
    if "malformed http" in lowered or "connection broken" in lowered or "eof" in lowered:
        return _("The endpoint did not answer in HTTP: this port may speak another protocol (or TLS)."), 502
    if "timeout" in lowered or "timed out" in lowered:
        return _("The API server could not reach the endpoint in time."), 504
    if "no route to host" in lowered or "network is unreachable" in lowered:
        return _("The API server has no route to the endpoint's address."), 502
    return None


def _api_server_status(status: int, headers: list[tuple[str, str]], body: bytes) -> str | None:
    """The message of a Status object the API server answered itself (not the Service), or None."""
    content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
    if status < 400 or not content_type.startswith("application/json"):
        return None
    try:
        status_object = json.loads(body)
    except ValueError:
        return None
    if not isinstance(status_object, dict) or status_object.get("kind") != "Status":
        return None
    return str(status_object.get("message") or "")


def _unreached(status: int, message: str, seconds: float, audit_id: str) -> Unreached:
    explained = _explained_failure(status, message)
    if explained is None:
        text = _("The API server could not reach the Service (HTTP %(status)d): %(detail)s") % {
            "status": status,
            "detail": message[:300],
        }
        explained = (text, 502 if status < 500 else status)
    return Unreached(explained[0], explained[1], seconds, audit_id, detail=message[:500])


# --- the call ------------------------------------------------------------------------------------------------------


def fetch(actor: kube.Actor, namespace: str, name: str, port: dict, path: str, *, limit: int = TEST_LIMIT) -> Answer:
    """GET ``path`` (from ``checked_path``) of the Service's ``port`` through the API server, as ``actor``; the
    Service's answer, or ``Unreached`` saying why there is none."""
    api_client = kube.api_client_for(actor.cluster, actor.identity)
    method, url, headers, _body, _post = api_client.param_serialize(
        method="GET",
        resource_path=f"{proxy_prefix(namespace, name, port)}{path}",
        header_params={"Accept": "*/*"},
        auth_settings=["BearerToken"],
    )
    started = time.monotonic()
    try:
        response = api_client.call_api(
            method, url, header_params=headers, _request_timeout=(settings.KUBE_CONNECT_TIMEOUT, TIMEOUT)
        ).response
    except urllib3.exceptions.ReadTimeoutError:
        raise _too_slow(time.monotonic() - started) from None
    except ApiException as error:  # the client's own refusal of its TLS (status 0)
        raise Unreached(kube.unavailable_message(error), 503, time.monotonic() - started) from None
    except kube.TRANSPORT_ERRORS as error:
        if isinstance(getattr(error, "reason", None), urllib3.exceptions.ReadTimeoutError):
            raise _too_slow(time.monotonic() - started) from None
        raise Unreached(kube.unavailable_message(error), 503, time.monotonic() - started) from None
    try:
        body, truncated = _read(response, limit, started + TIMEOUT)
    except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
        raise _too_slow(time.monotonic() - started) from None
    except kube.TRANSPORT_ERRORS:
        message = _("The Service's answer broke off before its end.")
        raise Unreached(message, 502, time.monotonic() - started) from None
    finally:
        response.release_conn()
    seconds = time.monotonic() - started
    header_list = list(response.headers.items())
    audit_id = response.headers.get("Audit-Id", "")
    if response.status in (401, 429):
        raise Unreached(kube.unavailable_message(ApiException(status=response.status)), 503, seconds, audit_id)
    refusal = _api_server_status(response.status, header_list, body)
    if refusal is not None:
        raise _unreached(response.status, refusal, seconds, audit_id)
    return Answer(response.status, response.reason or "", seconds, header_list, body, truncated, audit_id)


def _too_slow(seconds: float) -> Unreached:
    return Unreached(_("The Service did not answer within %(seconds)g seconds.") % {"seconds": TIMEOUT}, 504, seconds)


def _read(response: urllib3.HTTPResponse, limit: int, deadline: float) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of the body, decoded (gzip and the like), read until ``deadline``; whether there was
    more. A connection left with unread bytes is closed, never reused."""
    body = bytearray()
    for chunk in response.stream(16 * 1024, decode_content=True):
        body += chunk
        if len(body) > limit:
            response.close()
            return bytes(body[:limit]), True
        if time.monotonic() > deadline:
            raise TimeoutError
    return bytes(body), False
