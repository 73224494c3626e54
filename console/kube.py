"""Kubernetes API clients built from data, never from the client library's kubeconfig loaders.

The library's loaders run ``exec`` and ``auth-provider`` commands and open any file a kubeconfig names. An
uploaded kubeconfig is untrusted input, so it is parsed here with a safe YAML loader, only inline data is
accepted, and the ``Configuration`` is built by hand. TLS material stays in memory: the SSL context is made once
per client, loading the client certificate through an anonymous memory file, so no key touches the disk.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import ssl
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import urllib3
import yaml
from django.utils.translation import gettext_lazy as _
from kubernetes import client
from kubernetes.client.exceptions import ApiException

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

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases are not allowed", event.start_mark)
        return super().compose_node(parent, index)


def load_yaml_document(text: str | bytes, max_bytes: int) -> object:
    """Load exactly one YAML document with no tags beyond plain data, no aliases, under a size cap."""
    if len(text) > max_bytes:
        raise KubeconfigError(_("The YAML is larger than %(limit)d KiB.") % {"limit": max_bytes // 1024})
    try:
        documents = list(yaml.load_all(text, Loader=_SafeLoader))  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = _(" (line %(line)d)") % {"line": mark.line + 1} if mark is not None else ""
        problem = getattr(error, "problem", None) or _("not valid YAML")
        raise KubeconfigError(
            _("This is not valid YAML%(where)s: %(problem)s.") % {"where": where, "problem": problem}
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
    parts = urlsplit(url)
    if parts.scheme not in ({"https", "http"} if allow_http else {"https"}) or not parts.hostname:
        raise KubeconfigError(_("The API server URL must be an https:// address."))
    if parts.username or parts.password or parts.query or parts.fragment:
        raise KubeconfigError(_("The API server URL must not carry a user, a query or a fragment."))


# --- clients --------------------------------------------------------------------------------------------------


class _ConsolePoolManager(urllib3.PoolManager):
    """A pool that applies the console's timeouts to every call and never follows redirects.

    The client passes ``timeout=None`` unless each call sets ``_request_timeout``; a dead cluster would then
    hang a worker. Redirects are refused so the bearer token is never sent to another address.
    """

    def __init__(self, *, default_timeout: urllib3.Timeout, **kwargs) -> None:
        super().__init__(**kwargs)
        self._default_timeout = default_timeout

    def urlopen(self, method, url, redirect=True, **kw):  # type: ignore[no-untyped-def, override]
        if kw.get("timeout") is None:
            kw["timeout"] = self._default_timeout
        kw["retries"] = False  # retrying is decided by ``call``, per verb
        return super().urlopen(method, url, redirect=False, **kw)


def _ssl_context(credentials: Credentials) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if credentials.insecure_skip_tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif credentials.ca_data:
        try:
            context.load_verify_locations(cadata=credentials.ca_data.decode(errors="replace"))
        except (ssl.SSLError, ValueError):
            raise KubeconfigError(_("The certificate authority data is not a PEM certificate.")) from None
    if credentials.client_cert:
        # load_cert_chain only takes paths; an anonymous memory file keeps the key off every filesystem.
        fd = os.memfd_create("client-credentials", os.MFD_CLOEXEC)
        try:
            os.write(fd, credentials.client_cert.rstrip() + b"\n" + credentials.client_key)
            context.load_cert_chain(f"/proc/self/fd/{fd}")
        except ssl.SSLError:
            raise KubeconfigError(_("The client certificate and key are not a matching PEM pair.")) from None
        finally:
            os.close(fd)
    return context


def build_api_client(
    credentials: Credentials,
    *,
    connect_timeout: float = 3.0,
    read_timeout: float = 5.0,
    pool_size: int = 8,
) -> client.ApiClient:
    """An ``ApiClient`` for ``credentials``; it never touches the process-wide default configuration."""
    configuration = client.Configuration()
    configuration.host = credentials.server.rstrip("/")
    if credentials.token:
        configuration.api_key = {"authorization": credentials.token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
    # Creates and deletes are never retried blindly; GETs are retried by the client on 429/503 with Retry-After.
    configuration.retries = False
    api_client = client.ApiClient(configuration)
    api_client.rest_client.pool_manager = _ConsolePoolManager(
        default_timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
        num_pools=2,
        maxsize=pool_size,
        ssl_context=_ssl_context(credentials),
        **({"server_hostname": credentials.tls_server_name} if credentials.tls_server_name else {}),
        retries=False,
    )
    api_client.user_agent = "kube-service-console"
    return api_client


class ClientCache:
    """One pooled client per cluster, rebuilt when the cluster's credentials change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[Hashable, tuple[Hashable, client.ApiClient]] = {}

    def get(self, key: Hashable, version: Hashable, build) -> client.ApiClient:  # type: ignore[no-untyped-def]
        with self._lock:
            cached = self._clients.get(key)
            if cached is not None and cached[0] == version:
                return cached[1]
        api_client = build()
        with self._lock:
            old = self._clients.get(key)
            self._clients[key] = (version, api_client)
        if old is not None and old[1] is not api_client:
            old[1].rest_client.pool_manager.clear()
        return api_client

    def clear(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, {}
        for _version, api_client in clients.values():
            api_client.rest_client.pool_manager.clear()


clients = ClientCache()


def _credentials_of(cluster) -> Credentials:  # type: ignore[no-untyped-def]
    from console.crypto import CredentialsUnreadable

    try:
        return cluster.credentials()
    except CredentialsUnreadable:
        raise ClusterUnavailable(
            _("The console cannot decrypt this cluster's credentials (the encryption key changed).")
        ) from None


def api_client_for(cluster) -> client.ApiClient:  # type: ignore[no-untyped-def]
    """The pooled client of a ``console.models.Cluster``."""
    from django.conf import settings

    def build() -> client.ApiClient:
        return build_api_client(
            _credentials_of(cluster),
            connect_timeout=settings.KUBE_CONNECT_TIMEOUT,
            read_timeout=settings.KUBE_READ_TIMEOUT,
        )

    return clients.get(cluster.pk, cluster.credentials_version, build)


def watch_client_for(cluster) -> client.ApiClient:  # type: ignore[no-untyped-def]
    """A client of its own for one long-lived watch (``console.informer``), so watches never hold the pooled
    client's connections."""
    from django.conf import settings

    return build_api_client(
        _credentials_of(cluster),
        connect_timeout=settings.KUBE_CONNECT_TIMEOUT,
        read_timeout=settings.KUBE_READ_TIMEOUT,
        pool_size=1,
    )


# --- errors ---------------------------------------------------------------------------------------------------


class ClusterUnavailable(Exception):
    """The cluster could not be asked; ``str()`` is a message safe to show (no URLs with secrets, no tokens)."""


def unavailable_message(error: BaseException) -> str:
    """Say in plain words why a call failed, without raw exception text or credentials."""
    if isinstance(error, ApiException):
        if error.status == 401:
            return str(_("The cluster rejected the console's credentials."))
        if error.status == 403:
            return str(_("The console's credentials are not allowed to do this on the cluster."))
        if error.status in (301, 302, 303, 307, 308):
            return str(_("The API server answered with a redirect; the console does not follow it."))
        if error.status == 0:
            return str(_("The cluster's TLS certificate could not be verified."))
        if error.status == 429:
            return str(_("The cluster is busy (too many requests); try again in a moment."))
        if error.status >= 500:
            # The API server's own Status message (e.g. an etcd timeout) says what failed; it holds no secrets.
            try:
                detail = str(json.loads(error.body or "{}").get("message", ""))[:300]
            except (ValueError, AttributeError):
                detail = ""
            return str(
                _("The cluster's API server failed (HTTP %(status)d): %(detail)s")
                % {"status": error.status, "detail": detail or error.reason or ""}
            )
        return str(_("The cluster answered HTTP %(status)d.") % {"status": error.status})
    if isinstance(error, urllib3.exceptions.MaxRetryError) and error.reason is not None:
        error = error.reason
    if isinstance(error, urllib3.exceptions.SSLError | ssl.SSLError):
        return str(_("The cluster's TLS certificate could not be verified."))
    # NewConnectionError subclasses ConnectTimeoutError, so it is asked first.
    if isinstance(error, urllib3.exceptions.NewConnectionError | ConnectionRefusedError):
        return str(_("The cluster cannot be reached."))
    if isinstance(error, urllib3.exceptions.ConnectTimeoutError):
        return str(_("The cluster did not accept a connection in time."))
    if isinstance(error, urllib3.exceptions.ReadTimeoutError | TimeoutError):
        return str(_("The cluster did not answer in time."))
    if isinstance(error, urllib3.exceptions.ProtocolError):
        return str(_("The cluster closed the connection without answering."))
    return str(_("The cluster cannot be reached."))


TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, OSError)


@dataclass
class ApiError(Exception):
    """The API server refused a request (4xx); ``causes`` are its field-level reasons (422)."""

    status: int
    message: str
    reason: str = ""
    causes: list[dict[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return self.message

    @classmethod
    def from_exception(cls, error: ApiException) -> ApiError:
        try:
            body = json.loads(error.body or "{}")
        except ValueError:
            body = {}
        return cls(
            status=error.status,
            message=body.get("message") or error.reason or "",
            reason=body.get("reason", ""),
            causes=(body.get("details") or {}).get("causes") or [],
        )


# Reads are retried when the server asks for it (429, or 503 with Retry-After), a bounded number of times and
# never longer than MAX_RETRY_WAIT each, so a page still answers in seconds. Writes are never retried: a create
# whose answer was lost may have happened, and the user decides what to do next.
READ_PREFIXES = ("list_", "read_", "get_")
MAX_READ_RETRIES = 2
MAX_RETRY_WAIT = 2.0


def _retry_wait(error: ApiException, attempt: int) -> float | None:
    if error.status not in (429, 503):
        return None
    headers = error.headers or {}
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None if error.status == 503 else min(0.25 * 2**attempt, MAX_RETRY_WAIT)
    return min(float(value), MAX_RETRY_WAIT) if str(value).strip().isdigit() else None


def call(function, *args, **kwargs) -> Any:  # type: ignore[no-untyped-def]
    """Call one API method and return the raw JSON as plain data.

    A refusal (4xx, except 401 and 429) becomes ``ApiError``; an unreachable, overloaded or failing cluster
    ``ClusterUnavailable`` with a message safe to show. The client's model deserialization is skipped: pages need
    dicts, and on large lists it costs more than the request.
    """
    attempts = 1 + (MAX_READ_RETRIES if function.__name__.startswith(READ_PREFIXES) else 0)
    for attempt in range(attempts):
        try:
            response = function(*args, _preload_content=False, **kwargs)
            return json.loads(response.data)
        except ApiException as error:
            wait = _retry_wait(error, attempt) if attempt + 1 < attempts else None
            if wait is not None:
                time.sleep(wait)
                continue
            if 400 <= error.status < 500 and error.status not in (401, 429):
                raise ApiError.from_exception(error) from None
            raise ClusterUnavailable(unavailable_message(error)) from None
        except urllib3.exceptions.ProtocolError as error:
            # A pooled keep-alive connection the server has meanwhile closed: a read may try once more, on a new
            # connection; a write may not, since the server may have acted on it.
            if attempt == 0 and attempts > 1:
                continue
            raise ClusterUnavailable(unavailable_message(error)) from None
        except TRANSPORT_ERRORS as error:
            raise ClusterUnavailable(unavailable_message(error)) from None
    raise AssertionError("unreachable")


def check_connection(credentials: Credentials) -> str:
    """Reach a cluster with credentials not yet stored; return its version or raise ``ClusterUnavailable``."""
    from django.conf import settings

    api_client = build_api_client(
        credentials, connect_timeout=settings.KUBE_CONNECT_TIMEOUT, read_timeout=settings.KUBE_READ_TIMEOUT
    )
    try:
        # /version is readable by anyone, so also ask something that needs authentication.
        call(
            client.AuthenticationV1Api(api_client).create_self_subject_review,
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
        return call(client.VersionApi(api_client).get_code)["gitVersion"]
    except ApiError as error:
        raise ClusterUnavailable(unavailable_message(ApiException(status=error.status))) from None
    finally:
        api_client.rest_client.pool_manager.clear()


def server_version(cluster) -> str:  # type: ignore[no-untyped-def]
    """The cluster's ``gitVersion``; raises ``ClusterUnavailable`` with a readable message."""
    try:
        return call(client.VersionApi(api_client_for(cluster)).get_code)["gitVersion"]
    except ApiError as error:
        raise ClusterUnavailable(unavailable_message(ApiException(status=error.status))) from None


# --- what informers follow (``console.informer``) --------------------------------------------------------------

Lister = Callable[[client.ApiClient], Callable[..., Any]]
Slim = Callable[[dict], dict]


@dataclass(frozen=True)
class Kind:
    """What an informer follows: ``lister(api_client)`` is the client's list method (called with the namespace
    first; see ``cluster_scoped``), ``slim`` keeps the fields the pages need of each object."""

    name: str
    lister: Lister
    slim: Slim


def cluster_scoped(list_method: Callable[[client.CoreV1Api], Callable[..., Any]]) -> Lister:
    """A Lister for a cluster-scoped list method: its informer's namespace is "" and is not passed on."""

    def lister(api_client: client.ApiClient) -> Callable[..., Any]:
        list_all = list_method(client.CoreV1Api(api_client))
        return lambda _namespace, **kwargs: list_all(**kwargs)

    return lister


def _name_only(item: dict) -> dict:
    return {"metadata": {key: item["metadata"][key] for key in ("name", "uid", "resourceVersion")}}


NAMESPACES = Kind("namespaces", cluster_scoped(lambda core: core.list_namespace), _name_only)


def list_namespaces(cluster) -> list[str]:  # type: ignore[no-untyped-def]
    """The cluster's namespace names, sorted: from the cluster's namespace informer once it has listed them (the
    namespace picker is on every list page a cluster-wide user opens), else asked live."""
    from console.informer import informers

    snapshot = informers.snapshot(cluster, NAMESPACES)
    if snapshot is not None:
        return [item["metadata"]["name"] for item in snapshot]
    try:
        result = call(client.CoreV1Api(api_client_for(cluster)).list_namespace)
    except ApiError as error:
        raise ClusterUnavailable(unavailable_message(ApiException(status=error.status))) from None
    return sorted(item["metadata"]["name"] for item in result["items"])
