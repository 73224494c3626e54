"""Who may do what: the one permission API every view uses.

A user's grants on a cluster are read with one query (``cluster_for_user``), and kept by the process for the next
pages while nobody's access changes (the access epoch); every decision after that is made in memory. A write reads
them afresh. Views call ``cluster_for_user`` / ``namespace_access`` before anything touches the cluster, so a
denied request never reaches the API server.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest
from django.utils.translation import gettext as _

import kube
from clusters import audit, epoch, rbac
from clusters.models import Cluster, Grant, Role
from kube.identity import clear_authorisations


@dataclass(frozen=True)
class Access:
    """A user's roles on one cluster."""

    cluster: Cluster
    superuser: bool = False
    cluster_roles: frozenset[Role] = frozenset()
    namespace_roles: dict[str, frozenset[Role]] = field(default_factory=dict)
    # Who the cluster sees: the signed-in user with this request's id (``clusters.rbac.identity_for``).
    identity: kube.Identity | None = None
    # Grants made before their namespace existed (``rbac.bind_waiting``), and of their namespaces the ones still
    # not there once asked (``settle_waiting``).
    waiting: tuple[Grant, ...] = ()
    missing_namespaces: frozenset[str] = frozenset()

    @property
    def actor(self) -> kube.Actor:
        """The cluster and the user acting on it: what every call of ``services.api`` takes."""
        return kube.Actor(self.cluster, self.identity)

    @property
    def any(self) -> bool:
        return self.superuser or bool(self.cluster_roles) or bool(self.namespace_roles)

    @property
    def cluster_wide(self) -> bool:
        """Whether the user sees every namespace of the cluster."""
        return self.superuser or bool(self.cluster_roles)

    def roles_in(self, namespace: str) -> frozenset[Role]:
        return self.cluster_roles | self.namespace_roles.get(namespace, frozenset())

    def roles_said(self, namespace: str) -> str:
        """The user's roles in ``namespace`` as the console names them ("Superuser" for a superuser)."""
        if self.superuser:
            return str(_("Superuser (every role)"))
        return ", ".join(str(role.label) for role in sorted(self.roles_in(namespace), key=list(Role).index))

    def can_view(self, namespace: str) -> bool:
        return self.superuser or bool(self.roles_in(namespace))

    def can_edit(self, namespace: str) -> bool:
        return self.superuser or any(role.can_edit for role in self.roles_in(namespace))

    @property
    def can_edit_cluster(self) -> bool:
        return self.superuser or any(role.can_edit for role in self.cluster_roles)

    @property
    def is_cluster_admin(self) -> bool:
        return self.superuser or Role.CLUSTER_ADMIN in self.cluster_roles


def _grants(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Grant]:
    # A join through the user's group memberships (one row per grant: a user is in a group once); cheaper to build
    # than a subquery on user.groups, and this query runs on every page.
    return Grant.objects.filter(Q(user_id=user.pk) | Q(group__user=user.pk))


def access_for(user: AbstractBaseUser | AnonymousUser, cluster: Cluster) -> Access:
    if not user.is_authenticated or not user.is_active:
        return Access(cluster)
    if user.is_superuser:
        return Access(cluster, superuser=True)
    return _access_from(cluster, _grants(user).filter(cluster=cluster).values_list("namespace", "role"))


def _access_from(cluster: Cluster, grants: Iterable[tuple[str, str]]) -> Access:
    cluster_roles: set[Role] = set()
    namespace_roles: dict[str, set[Role]] = {}
    for namespace, role in grants:
        if namespace:
            namespace_roles.setdefault(namespace, set()).add(Role(role))
        else:
            cluster_roles.add(Role(role))
    return Access(
        cluster,
        cluster_roles=frozenset(cluster_roles),
        namespace_roles={ns: frozenset(roles) for ns, roles in namespace_roles.items()},
    )


def visible_clusters(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Cluster]:
    if not user.is_authenticated or not user.is_active:
        return Cluster.objects.none()
    if user.is_superuser:
        return Cluster.objects.all()
    return Cluster.objects.filter(pk__in=_grants(user).values("cluster")).distinct()


# What the grants say of a user's access to a cluster, kept per process while the access epoch stays
# (``clusters.epoch``: it moves on any change of a grant, user, group, membership or cluster, and is read again at
# most a second later in every process). A page that only reads then checks the role without a query; a write
# always reads the grants afresh (``fresh``).
_KEPT = 4096
_kept: OrderedDict[tuple, tuple[int, Access | None]] = OrderedDict()  # (epoch, access with its identity)
_kept_lock = threading.Lock()


def _read_access(user: AbstractBaseUser, cluster_name: str) -> Access | None:
    """One query: a superuser's reads the cluster; anybody else's reads their grants on it with the cluster joined
    (no grant: None)."""
    if user.is_superuser:
        cluster = Cluster.objects.filter(name=cluster_name).first()
        return Access(cluster, superuser=True) if cluster is not None else None
    grants = list(_grants(user).filter(cluster__name=cluster_name).select_related("cluster"))
    if not grants:
        return None
    access = _access_from(grants[0].cluster, ((grant.namespace, grant.role) for grant in grants))
    return replace(access, waiting=tuple(grant for grant in grants if grant.waiting_for_namespace))


def forget_accesses() -> None:
    with _kept_lock:
        _kept.clear()


def cluster_for_user(request: HttpRequest, cluster_name: str, *, fresh: bool = False) -> Access:
    """The user's access to a cluster they hold some grant on; 404 otherwise, so names do not leak.

    Read from the grants and the user's groups (two queries), or, unless ``fresh``, as read under the current access
    epoch by an earlier request in this process."""
    user = request.user
    if not user.is_authenticated or not user.is_active:
        raise Http404
    key = (user.pk, user.is_superuser, cluster_name)
    current = epoch.current()  # before the query: a change while it runs moves the epoch past what is kept
    with _kept_lock:
        kept = _kept.get(key)
        if kept is not None:
            _kept.move_to_end(key)
    if fresh or kept is None or kept[0] != current:
        access = _read_access(user, cluster_name)
        if access is not None:  # who the cluster sees (the user's groups: one query), this request's id added below
            access = replace(access, identity=rbac.identity_for(user, "", access.cluster))
        kept = (current, access)
        with _kept_lock:
            _kept[key] = kept
            if len(_kept) > _KEPT:
                _kept.popitem(last=False)
    access = kept[1]
    if access is None:
        raise Http404
    return replace(access, identity=access.identity.with_request_id(audit.request_id(request)))


def settle_waiting(access: Access, namespace: str | None = None) -> Access:
    """Bind the user's grants made before their namespace (those of ``namespace``, or all) if it has appeared
    since; ``missing_namespaces`` then names the ones still not there. Only for a page the user may open: a
    refused request never reaches the cluster."""
    waiting = [grant for grant in access.waiting if namespace is None or grant.namespace == namespace]
    if not waiting:
        return access
    missing = frozenset(grant.namespace for grant in rbac.bind_waiting(waiting))
    if len(missing) < len({grant.namespace for grant in waiting}):
        clear_authorisations()  # a refusal remembered before the binding existed is stale
    return replace(access, missing_namespaces=access.missing_namespaces | missing)


class NamespaceNotCreated(Exception):
    """The user holds a grant on a namespace that does not exist in the cluster yet."""

    def __init__(self, access: Access, namespace: str) -> None:
        super().__init__(namespace)
        self.access, self.namespace = access, namespace


def namespace_access(request: HttpRequest, cluster_name: str, namespace: str, *, write: bool = False) -> Access:
    """Access for a view in one namespace; raises Http404 / PermissionDenied, and audits every refused write."""
    try:
        access = cluster_for_user(request, cluster_name, fresh=write)
        if not access.can_view(namespace) or (write and not access.can_edit(namespace)):
            raise PermissionDenied
        access = settle_waiting(access, namespace)
        if namespace in access.missing_namespaces and not access.cluster_wide:
            raise NamespaceNotCreated(access, namespace)
    except (Http404, PermissionDenied):
        if write and request.user.is_authenticated:
            url_name = request.resolver_match.url_name if request.resolver_match else ""
            audit.record(
                request,
                action=f"{request.method} {url_name}",
                result="denied",
                cluster=cluster_name,
                namespace=namespace,
                name=(request.resolver_match.kwargs.get("name", "") if request.resolver_match else ""),
                detail="the user's roles do not allow changes here",
            )
        raise
    return access


def every_cluster(request: HttpRequest) -> list[Access]:
    """The user's access to every cluster they hold a grant on (all clusters for a superuser), sorted by name: what
    the pages spanning clusters start from. Two queries whatever the number of clusters: the grants with their
    clusters joined, and the user's groups for the identity."""
    user = request.user
    if not user.is_authenticated or not user.is_active:
        return []
    if user.is_superuser:
        accesses = [Access(cluster, superuser=True) for cluster in Cluster.objects.order_by("name")]
    else:
        by_cluster: dict[int, list[Grant]] = {}
        for grant in _grants(user).select_related("cluster"):
            by_cluster.setdefault(grant.cluster_id, []).append(grant)
        accesses = sorted(
            (
                _access_from(grants[0].cluster, ((g.namespace, g.role) for g in grants))
                for grants in by_cluster.values()
            ),
            key=lambda access: access.cluster.name,
        )
    request_id, groups = audit.request_id(request), list(user.groups.all())  # one query for every cluster
    return [
        replace(access, identity=rbac.identity_for(user, request_id, access.cluster, groups=groups))
        for access in accesses
    ]


def may_edit_somewhere(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Whether the user holds an Edit or Admin role on any cluster or namespace (one query): what copying a
    Service elsewhere needs besides a view of the source."""
    if not user.is_authenticated or not user.is_active:
        return False
    editing = [role for role in Role if role.can_edit]
    return user.is_superuser or _grants(user).filter(role__in=editing).exists()
