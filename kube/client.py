"""API clients for a cluster, built from ``Credentials`` by hand, and every call made through ``call``.

TLS material stays in memory where the OS allows: the SSL context is made once per client, loading the client
certificate through an anonymous memory file (Linux ``memfd_create``), so no key touches the disk.

A cluster here is anything with ``pk``, ``credentials_version`` and ``credentials()`` (``clusters.models.Cluster``
in the console); this package imports nothing of the project.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import re
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol

import urllib3
from django.conf import settings
from django.utils.translation import gettext_lazy as _
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client import Counter, Histogram

from kube.config import Credentials, CredentialsUnreadable, KubeconfigError
from kube.identity import MULTIPLE, Actor, Identity, allowed, cluster_name, prefix

log = logging.getLogger(__name__)

# Labelled by the cluster's registered name and the client method called (``list_namespaced_service``): both
# bounded, neither taken from a request. Seconds, retries of a read included.
CALL_SECONDS = Histogram(
    "console_kube_call_duration_seconds",
    "Time of a Kubernetes API call, by cluster and client method.",
    ["cluster", "operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CALL_ERRORS = Counter(
    "console_kube_call_errors_total",
    "Kubernetes API calls that failed, by cluster, client method and kind: the HTTP status the API server "
    "answered (404, 409, 422, 503, ...), or unavailable (not reached, no answer, TLS).",
    ["cluster", "operation", "kind"],
)


class ClusterRef(Protocol):
    """What the client factory needs of a registered cluster."""

    pk: Any
    credentials_version: int
    # Whether calls impersonate the signed-in user (the cluster was set up for it); else the stored credential
    # acts for everyone (the shared-credential mode).
    impersonates: bool

    def credentials(self) -> Credentials: ...


# --- clients --------------------------------------------------------------------------------------------------


class _ConsolePoolManager(urllib3.PoolManager):
    """A pool that applies the console's timeouts to every call and never follows redirects.

    The client passes ``timeout=None`` unless each call sets ``_request_timeout``; a dead cluster would then
    hang a worker. Redirects are refused so the bearer token is never sent to another address.
    """

    def __init__(self, *, default_timeout: urllib3.Timeout, **kwargs) -> None:
        super().__init__(**kwargs)
        self._default_timeout = default_timeout

    def urlopen(self, method, url, redirect=True, **kw):
        if kw.get("timeout") is None:
            kw["timeout"] = self._default_timeout
        kw["retries"] = False  # retrying is decided by ``call``, per verb
        headers = kw.get("headers")
        if headers and any(MULTIPLE in str(value) for value in headers.values()):
            # Several impersonated groups: one header line each (``kube.identity.Identity.headers``).
            repeated = urllib3.HTTPHeaderDict()
            for name, value in headers.items():
                for part in str(value).split(MULTIPLE):
                    repeated.add(name, part)
            kw["headers"] = repeated
        return super().urlopen(method, url, redirect=False, **kw)


def _ssl_context(credentials: Credentials) -> ssl.SSLContext:
    """TLS to the API server. A cluster that names its certificate authority is trusted through that authority
    alone, as kubectl does (not also through every public one the system trusts), which also spares loading the
    system's store: about 30 ms per client, paid by each informer's client and each cold page."""
    if credentials.ca_data and not credentials.insecure_skip_tls_verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # hostname checked, certificate required, TLS >= 1.2
    else:
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
        try:
            _load_cert_chain(context, credentials.client_cert.rstrip() + b"\n" + credentials.client_key)
        except (ssl.SSLError, ValueError):
            raise KubeconfigError(_("The client certificate and key are not a matching PEM pair.")) from None
    return context


def _load_cert_chain(context: ssl.SSLContext, pem: bytes) -> None:
    """``load_cert_chain`` only takes paths. Where the OS has anonymous memory files (Linux), the key goes through
    one and never touches a filesystem; elsewhere (macOS) through a file readable only by this user, in a private
    folder, removed as soon as it is read."""
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fd = os.memfd_create("client-credentials", os.MFD_CLOEXEC)
        try:
            os.write(fd, pem)
            context.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="kube-client-") as folder:  # created 0700
        path = os.path.join(folder, "client.pem")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
            handle.write(pem)
        context.load_cert_chain(path)


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

    def get(self, key: Hashable, version: Hashable, build) -> client.ApiClient:
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


def _credentials_of(cluster: ClusterRef) -> Credentials:
    try:
        return cluster.credentials()
    except CredentialsUnreadable:
        raise ClusterUnavailable(
            _("The console cannot decrypt this cluster's credentials (the encryption key changed).")
        ) from None


def _acting_as(api_client: client.ApiClient, cluster: ClusterRef, identity: Identity | None) -> client.ApiClient:
    """``api_client`` sending ``identity``'s impersonation headers on every call, when the cluster impersonates.
    A shallow copy: it shares the connection pool and configuration, and has headers of its own."""
    if identity is None or not cluster.impersonates:
        return api_client
    acting = copy.copy(api_client)
    acting.default_headers = {**api_client.default_headers, **identity.headers()}
    return acting


def api_client_for(cluster: ClusterRef, identity: Identity | None = None) -> client.ApiClient:
    """The pooled client of a registered cluster (``ClusterRef``), acting as ``identity`` when the cluster
    impersonates (``None``: the console's own credential, for the version and set-up calls only)."""

    def build() -> client.ApiClient:
        return build_api_client(
            _credentials_of(cluster),
            connect_timeout=settings.KUBE_CONNECT_TIMEOUT,
            read_timeout=settings.KUBE_READ_TIMEOUT,
        )

    return _acting_as(_named(clients.get(cluster.pk, cluster.credentials_version, build), cluster), cluster, identity)


def watch_client_for(cluster: ClusterRef, identity: Identity | None = None) -> client.ApiClient:
    """A client of its own for one long-lived watch (``kube.informer``), so watches never hold the pooled
    client's connections; acting as ``identity`` (the read-only cache identity) when the cluster impersonates."""
    api_client = build_api_client(
        _credentials_of(cluster),
        connect_timeout=settings.KUBE_CONNECT_TIMEOUT,
        read_timeout=settings.KUBE_READ_TIMEOUT,
        pool_size=1,
    )
    return _acting_as(_named(api_client, cluster), cluster, identity)


def _named(api_client: client.ApiClient, cluster: ClusterRef) -> client.ApiClient:
    """Tag a client with its cluster's name, for the metrics and log lines of the calls made through it (``call``
    receives only the bound method). Set on every use: a cluster renamed in admin keeps its pooled client."""
    api_client.console_cluster = cluster_name(cluster)
    return api_client


# --- errors ---------------------------------------------------------------------------------------------------


class ClusterUnavailable(Exception):
    """The cluster could not be asked; ``str()`` is a message safe to show (no URLs with secrets, no tokens)."""

    # For the metrics and logs: the HTTP status when the API server answered (401, 429, 5xx), else unavailable.
    kind = "unavailable"


def _unavailable(error: BaseException) -> ClusterUnavailable:
    unavailable = ClusterUnavailable(unavailable_message(error))
    if isinstance(error, ApiException) and error.status:
        unavailable.kind = str(error.status)
    return unavailable


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


_FORBIDDEN = re.compile(r' is forbidden: User "(?P<user>[^"]*)" cannot ')


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
        message = body.get("message") or error.reason or ""
        refused = _FORBIDDEN.search(message) if error.status == 403 else None
        if refused and refused["user"].startswith(f"{prefix()}:"):
            # The cluster's RBAC refused a call made as a console user: say so in the user's language.
            message = refusal_message()
        return cls(
            status=error.status,
            message=message,
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


# One warning-value of a ``Warning`` header (RFC 7234 5.5): code, agent, quoted text, optional quoted date. Several
# may share one header line, comma-separated (a plain dict of headers joins repeated lines so).
_WARNING_VALUE = re.compile(r'([0-9]{3})\s+(\S+)\s+"((?:[^"\\]|\\.)*)"(?:\s+"[^"]*")?\s*(?:,\s*|$)')


def warning_texts(headers: Any) -> list[str]:
    """The texts of the API server's ``Warning: 299 - "text"`` response headers (what kubectl prints as
    "Warning: text"), in order; other warn-codes are not the API server's and are left out, as client-go does."""
    if not headers:
        return []
    if hasattr(headers, "getlist"):  # urllib3's HTTPHeaderDict: one entry per header line
        lines = headers.getlist("Warning")
    else:
        lines = [value for key, value in headers.items() if str(key).lower() == "warning"]
    texts = []
    for line in lines:
        for code, _agent, quoted in _WARNING_VALUE.findall(str(line)):
            text = re.sub(r"\\(.)", r"\1", quoted)
            with contextlib.suppress(UnicodeError):
                # http.client reads header bytes as Latin-1; the API server sends UTF-8.
                text = text.encode("latin-1").decode("utf-8")
            if code == "299" and text.strip() and text not in texts:
                texts.append(text)
    return texts


def _collect_warnings(headers: Any, warnings: list[str] | None) -> None:
    if warnings is not None:
        warnings.extend(text for text in warning_texts(headers) if text not in warnings)


def call(function, *args, warnings: list[str] | None = None, **kwargs) -> Any:
    """Call one API method and return the raw JSON as plain data.

    A refusal (4xx, except 401 and 429) becomes ``ApiError``; an unreachable, overloaded or failing cluster
    ``ClusterUnavailable`` with a message safe to show. The client's model deserialization is skipped: pages need
    dicts, and on large lists it costs more than the request. ``warnings``, when given, receives the texts of the
    API server's ``Warning`` headers (a deprecated field or value, say), of an answer or a refusal.

    Each call is timed and its failures counted per cluster (``CALL_SECONDS``, ``CALL_ERRORS``); a failure is
    logged with the safe message only: never the request, its headers or the client's configuration.
    """
    started = time.perf_counter()
    failure = detail = ""
    try:
        return _call(function, args, kwargs, warnings)
    except ApiError as error:
        failure, detail = str(error.status), error.message
        raise
    except ClusterUnavailable as error:
        failure, detail = error.kind, str(error)
        raise
    finally:
        _observe(function, time.perf_counter() - started, failure, detail)


def _observe(function: Callable[..., Any], seconds: float, failure: str, detail: str) -> None:
    api_client = getattr(getattr(function, "__self__", None), "api_client", None)
    cluster = getattr(api_client, "console_cluster", "unregistered")
    operation = getattr(function, "__name__", "unknown")
    CALL_SECONDS.labels(cluster, operation).observe(seconds)
    if failure:
        CALL_ERRORS.labels(cluster, operation, failure).inc()
        # A refusal (404, 409, 422) is the user's or a normal answer; an unavailable cluster is the operator's.
        level = logging.DEBUG if failure.startswith("4") and failure not in ("401", "429") else logging.WARNING
        log.log(
            level,
            "kube call %s on %s failed (%s): %s",
            operation,
            cluster,
            failure,
            detail,
            extra={"cluster": cluster, "operation": operation, "error_kind": failure},
        )


def _call(function, args: tuple, kwargs: dict, warnings: list[str] | None) -> Any:
    attempts = 1 + (MAX_READ_RETRIES if function.__name__.startswith(READ_PREFIXES) else 0)
    for attempt in range(attempts):
        try:
            response = function(*args, _preload_content=False, **kwargs)
            _collect_warnings(getattr(response, "headers", None), warnings)
            return json.loads(response.data)
        except ApiException as error:
            wait = _retry_wait(error, attempt) if attempt + 1 < attempts else None
            if wait is not None:
                time.sleep(wait)
                continue
            _collect_warnings(error.headers, warnings)
            if 400 <= error.status < 500 and error.status not in (401, 429):
                raise ApiError.from_exception(error) from None
            raise _unavailable(error) from None
        except urllib3.exceptions.ProtocolError as error:
            # A pooled keep-alive connection the server has meanwhile closed: a read may try once more, on a new
            # connection; a write may not, since the server may have acted on it.
            if attempt == 0 and attempts > 1:
                continue
            raise _unavailable(error) from None
        except TRANSPORT_ERRORS as error:
            raise _unavailable(error) from None
    raise AssertionError("unreachable")


def check_connection(credentials: Credentials) -> str:
    """Reach a cluster with credentials not yet stored; return its version or raise ``ClusterUnavailable``."""
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


def server_version(cluster: ClusterRef) -> str:
    """The cluster's ``gitVersion``; raises ``ClusterUnavailable`` with a readable message."""
    try:
        return call(client.VersionApi(api_client_for(cluster)).get_code)["gitVersion"]
    except ApiError as error:
        raise ClusterUnavailable(unavailable_message(ApiException(status=error.status))) from None


# --- what informers follow (``kube.informer``) --------------------------------------------------------------

Lister = Callable[[client.ApiClient], Callable[..., Any]]
Slim = Callable[[dict], dict]


@dataclass(frozen=True)
class Kind:
    """What an informer follows: ``lister(api_client)`` is the client's list method (called with the namespace
    first; see ``cluster_scoped``), ``slim`` keeps the fields the pages need of each object."""

    name: str
    lister: Lister
    slim: Slim


def cluster_scoped(list_method: Callable[[Any], Callable[..., Any]], api: type = client.CoreV1Api) -> Lister:
    """A Lister for a list method that takes no namespace (a cluster-scoped kind, or a kind listed in every
    namespace): ``list_method`` picks it from an ``api`` (CoreV1Api unless said); the informer's namespace is ""
    and is not passed on."""

    def lister(api_client: client.ApiClient) -> Callable[..., Any]:
        list_all = list_method(api(api_client))
        return lambda _namespace, **kwargs: list_all(**kwargs)

    return lister


def _name_and_labels(item: dict) -> dict:
    """A namespace's name and labels (MetalLB pools may select namespaces by label)."""
    metadata = item["metadata"]
    kept = {key: metadata[key] for key in ("name", "uid", "resourceVersion")}
    return {"metadata": {**kept, "labels": metadata.get("labels") or {}}}


NAMESPACES = Kind("namespaces", cluster_scoped(lambda core: core.list_namespace), _name_and_labels)


def refusal_message() -> str:
    """What a user is told when the cluster's RBAC refuses a call made as them that the console's roles allowed."""
    return str(
        _(
            "The cluster refused this for your user: its access rules do not match your roles in the console. "
            "Ask an administrator to synchronise them (manage.py sync_rbac)."
        )
    )


def list_namespaces(actor: Actor) -> list[str]:
    """The cluster's namespace names, sorted: from the cluster's namespace informer once it has listed them and the
    cluster lets the actor list namespaces (the namespace picker is on every list page a cluster-wide user opens),
    else asked live as the actor."""
    from kube.informer import informers  # the informer module builds on this one

    cluster = actor.cluster
    if allowed(actor, "list", "namespaces"):
        snapshot = informers.snapshot(cluster, NAMESPACES)
        if snapshot is not None:
            return [item["metadata"]["name"] for item in snapshot]
    try:
        result = call(client.CoreV1Api(api_client_for(cluster, actor.identity)).list_namespace)
    except ApiError as error:
        if error.status == 403 and cluster.impersonates:  # the user's refusal, already said in words
            raise ClusterUnavailable(error.message) from None
        raise ClusterUnavailable(unavailable_message(ApiException(status=error.status))) from None
    return sorted(item["metadata"]["name"] for item in result["items"])
