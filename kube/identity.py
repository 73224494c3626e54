"""Who a call is made as: the signed-in person, impersonated, so the cluster's RBAC, audit log and admission see
them rather than the console.

An ``Identity`` is sent as the ``Impersonate-User``, ``Impersonate-Group`` and ``Impersonate-Extra-*`` headers
(Kubernetes user impersonation). The console's own credential is meant to hold only *constrained* impersonation
rules (KEP-5284, on by default since Kubernetes 1.35): it may act as a user only on the resources and verbs the
console uses, and on nothing by itself. Nothing of the browser's request is ever copied into these headers: they are
built from the console's own user record.

Two identities belong to the console itself: ``cache_identity()`` (read-only, for the shared informers' watches)
and ``rbac_identity()`` (keeps the role bindings of the console's grants in step).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from urllib.parse import quote

from django.conf import settings
from kubernetes import client
from prometheus_client import Counter

MULTIPLE = "\n"

# The extra attribute that carries the console's request id into the API server's audit log.
REQUEST_ID_EXTRA = "kube-service-console.io/request-id"


@dataclass(frozen=True)
class Identity:
    """A user as the cluster should see them. ``extra`` maps an attribute name to its values."""

    user: str
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def headers(self) -> dict[str, str]:
        # The API server reads one group (or extra value) per header line. The client takes one value per name,
        # so several are joined with MULTIPLE (a newline, which no header value may hold) and sent as repeated
        # lines by ``kube.client``'s connection pool. ``system:authenticated`` is added by the API server itself.
        headers = {"Impersonate-User": self.user}
        if self.groups:
            headers["Impersonate-Group"] = MULTIPLE.join(self.groups)
        for key, values in self.extra:
            headers[f"Impersonate-Extra-{quote(key, safe='')}"] = MULTIPLE.join(quote(v, safe="") for v in values)
        return headers

    def with_request_id(self, request_id: str) -> Identity:
        return Identity(self.user, self.groups, ((REQUEST_ID_EXTRA, (request_id,)),) if request_id else ())

    @property
    def request_id(self) -> str:
        return next((values[0] for key, values in self.extra if key == REQUEST_ID_EXTRA and values), "")


def prefix() -> str:
    """What every cluster-side name of the console starts with: users ``<prefix>:<name>``, ClusterRoles
    ``<prefix>:<role>``, bindings ``<prefix>-grant-<id>``."""
    return settings.CONSOLE_IDENTITY_PREFIX


def system_user(name: str) -> str:
    """A user name of the console itself: ``<prefix>:system:<name>``. People's names never hold a colon
    (``clusters.rbac.cluster_user_name``), so no person can be impersonated as one of these."""
    return f"{prefix()}:system:{name}"


def cache_identity() -> Identity:
    return Identity(system_user("cache"))


def rbac_identity(request_id: str = "") -> Identity:
    return Identity(system_user("rbac")).with_request_id(request_id)


def cluster_name(cluster: object) -> str:
    """What logs and metrics call a cluster: its registered name (bounded: clusters are registered by admins), or
    its key for a cluster object without one."""
    return str(getattr(cluster, "name", "") or getattr(cluster, "pk", "") or "unregistered")


@dataclass(frozen=True)
class Actor:
    """A cluster and who acts on it. With a cluster in the shared-credential mode the identity is carried but not
    sent (the cluster cannot be asked to impersonate)."""

    cluster: object  # kube.client.ClusterRef
    identity: Identity | None = None


# --- may this user read what the shared cache holds? ---------------------------------------------------------

AUTHORISATION_TTL = 10.0  # seconds an answer of the cluster is reused

ACCESS_REVIEWS = Counter(
    "console_access_reviews_total",
    "Whether a user may read the shared cache: answered from the console's memory (hit) or asked of the cluster.",
    ["cluster", "result"],
)


@dataclass
class _Answers:
    lock: threading.Lock = field(default_factory=threading.Lock)
    by_key: dict[tuple, tuple[float, bool]] = field(default_factory=dict)


_answers = _Answers()


def clear_authorisations() -> None:
    with _answers.lock:
        _answers.by_key.clear()


def _key(actor: Actor, verb: str, resource: str, namespace: str, group: str) -> tuple:
    cluster, identity = actor.cluster, actor.identity
    assert identity is not None
    return (cluster.pk, cluster.credentials_version, identity.user, identity.groups, verb, group, resource, namespace)


def remembered(actor: Actor, verb: str, resource: str, namespace: str = "", group: str = "") -> bool | None:
    """``allowed``'s answer when it needs no call (remembered for under ``AUTHORISATION_TTL`` seconds, or a
    cluster that is not asked), else None."""
    cluster = actor.cluster
    if actor.identity is None or not getattr(cluster, "impersonates", False):
        return True
    with _answers.lock:
        cached = _answers.by_key.get(_key(actor, verb, resource, namespace, group))
    if cached is None or time.monotonic() - cached[0] >= AUTHORISATION_TTL:
        return None
    ACCESS_REVIEWS.labels(cluster_name(cluster), "hit").inc()
    return cached[1]


def allowed(actor: Actor, verb: str, resource: str, namespace: str = "", group: str = "") -> bool:
    """Whether the cluster lets the actor's identity ``verb`` ``resource`` (in ``namespace``), asked with a
    SelfSubjectAccessReview made as that identity and remembered for ``AUTHORISATION_TTL`` seconds.

    It decides whether the shared informer's copy may be served: the cluster's RBAC is the authority, including
    bindings made outside the console. A cluster in the shared-credential mode has no per-user RBAC to ask: True
    (the console's role check, made before, decides). Raises ``ClusterUnavailable`` like any call.
    """
    from kube.client import ApiError, api_client_for, call  # the client module builds on this one

    cluster = actor.cluster
    if actor.identity is None or not getattr(cluster, "impersonates", False):
        return True
    identity = actor.identity
    known = remembered(actor, verb, resource, namespace, group)
    if known is not None:
        return known
    ACCESS_REVIEWS.labels(cluster_name(cluster), "miss").inc()
    key = _key(actor, verb, resource, namespace, group)
    now = time.monotonic()
    attributes = {"verb": verb, "resource": resource, "group": group}
    if namespace:
        attributes["namespace"] = namespace
    try:
        review = call(
            client.AuthorizationV1Api(api_client_for(cluster, identity)).create_self_subject_access_review,
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attributes},
            },
        )
    except ApiError:  # not even allowed to ask: then certainly not to read the copy
        return False
    answer = bool((review.get("status") or {}).get("allowed"))
    with _answers.lock:
        if len(_answers.by_key) > 10_000:
            _answers.by_key.clear()
        _answers.by_key[key] = (now, answer)
    return answer
