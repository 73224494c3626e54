"""The console's roles as RBAC in each cluster, and who a user is there.

The cluster is the authority on what a user may do: every call is made as the user (``kube.identity``), and each
grant is a binding in the cluster to one of the console's ClusterRoles:

* a Cluster Admin/Edit/View grant: a ClusterRoleBinding ``<prefix>-grant-<id>`` to ``<prefix>:cluster-edit`` etc.;
* an NS Admin/Edit/View grant: a RoleBinding ``<prefix>-grant-<id>`` in its namespace to ``<prefix>:ns-edit`` etc.,
  and a ClusterRoleBinding ``<prefix>-grant-<id>-cluster-reads`` to ``<prefix>:ns-member`` (the node addresses and
  MetalLB pools the Service pages show, which are not in any namespace).

Bindings are labelled with their grant, kept in step when a grant is saved or deleted (signals below, made as the
console's ``rbac`` identity) and repaired by ``manage.py sync_rbac``. ``set_up`` creates, with an administrator's
credential once, the ClusterRoles, the console's ServiceAccount (constrained impersonation only) and its token.

User and group names in the cluster are ``<prefix>:<name>`` when the name is plain ASCII, else
``<prefix>:user:<id>`` / ``<prefix>:group:<id>`` (header values are ASCII); a name never holds a colon, so people
cannot collide with the console's own ``<prefix>:system:*`` identities or with each other.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, Group
from django.utils.translation import gettext as _
from kubernetes import client

import kube
from clusters import epoch
from clusters.models import Cluster, Grant, Role

log = logging.getLogger(__name__)

RBAC_GROUP = "rbac.authorization.k8s.io"
MANAGED_BY = {"app.kubernetes.io/managed-by": "kube-service-console"}
PREFIX_LABEL = "kube-service-console.io/prefix"
GRANT_LABEL = "kube-service-console.io/grant"
CLUSTER_LABEL = "kube-service-console.io/cluster"  # the console's name for the cluster: one API server may be
# registered twice (under two names), and each registration's sync leaves the other's bindings alone
SERVICE_ACCOUNT_NAMESPACE = "kube-service-console"
TOKEN_SECONDS = 365 * 24 * 3600  # the stored token's life; ``register_cluster --setup`` again renews it

AUTHENTICATED = "system:authenticated"

_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,120}")


# --- names ----------------------------------------------------------------------------------------------------


def cluster_user_name(user: AbstractBaseUser) -> str:
    name = user.get_username()
    return f"{kube.prefix()}:{name}" if _PLAIN_NAME.fullmatch(name) else f"{kube.prefix()}:user:{user.pk}"


def cluster_group_name(group: Group) -> str:
    return f"{kube.prefix()}:{group.name}" if _PLAIN_NAME.fullmatch(group.name) else f"{kube.prefix()}:group:{group.pk}"


def superusers_group() -> str:
    return kube.system_user("superusers")


def _oidc_user_name(user: AbstractBaseUser, cluster: Cluster) -> str | None:
    """The name the cluster's own OIDC authenticator gives ``user`` (its prefix and the claim it reads from the
    person's token), or None for a user who does not sign in through the identity provider, or lacks the claim."""
    person = getattr(user, "person_at_provider", None) if cluster.naming == Cluster.Naming.OIDC else None
    value = (person.claims or {}).get(cluster.oidc_username_claim) if person is not None else None
    # Header-safe and without ":", so that no claim can make a name of the console's own identities.
    return f"{cluster.oidc_username_prefix}{value}" if isinstance(value, str) and _PLAIN_NAME.fullmatch(value) else None


def user_name_in(user: AbstractBaseUser, cluster: Cluster | None) -> str:
    """The user's name in ``cluster``: as its OIDC authenticator names them in the OIDC naming, else the
    console's ``<prefix>:<username>``."""
    return (cluster is not None and _oidc_user_name(user, cluster)) or cluster_user_name(user)


def group_name_in(group: Group, cluster: Cluster | None) -> str:
    if cluster is not None and cluster.naming == Cluster.Naming.OIDC and _PLAIN_NAME.fullmatch(group.name):
        return f"{cluster.oidc_groups_prefix}{group.name}"
    return cluster_group_name(group)


def identity_for(
    user: AbstractBaseUser, request_id: str = "", cluster: Cluster | None = None, *, groups: list[Group] | None = None
) -> kube.Identity:
    """The user as ``cluster`` sees them: their name, their groups (``groups`` when read already), and
    ``<prefix>:system:superusers`` for a superuser (bound to the Cluster Admin role by ``set_up``), and the request
    id."""
    names = [group_name_in(group, cluster) for group in (user.groups.all() if groups is None else groups)]
    if user.is_superuser:
        names.append(superusers_group())
    # The API server would add it by itself; said explicitly, the identity is the whole of what the cluster sees.
    names.append(AUTHENTICATED)
    return kube.Identity(user_name_in(user, cluster), tuple(sorted(names))).with_request_id(request_id)


def role_name(role: str) -> str:
    return f"{kube.prefix()}:{role}"


# --- the ClusterRoles -----------------------------------------------------------------------------------------

READ = ["get", "list", "watch"]
WRITE = ["create", "update", "patch", "delete"]


def _namespaced_rules(edit: bool) -> list[dict]:
    """What the Service pages do in a namespace: Services (changed by the edit roles, and reached through the API
    server's proxy by them: ``services.reach`` sends GETs only), and reads of what a Service's pages show."""
    return [
        {"apiGroups": [""], "resources": ["services"], "verbs": READ + (WRITE if edit else [])},
        *([{"apiGroups": [""], "resources": ["services/proxy"], "verbs": ["get"]}] if edit else []),
        {"apiGroups": [""], "resources": ["pods", "events"], "verbs": READ},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": READ},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": READ},
        {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets", "daemonsets"], "verbs": READ},
    ]


_CLUSTER_READS = [
    {"apiGroups": [""], "resources": ["nodes"], "verbs": READ},
    {"apiGroups": ["metallb.io"], "resources": ["ipaddresspools"], "verbs": READ},
]
_NAMESPACE_LIST = [{"apiGroups": [""], "resources": ["namespaces"], "verbs": READ}]


def cluster_roles() -> dict[str, list[dict]]:
    """Every ClusterRole the console owns, by name."""
    roles = {}
    for role in Role:
        rules = _namespaced_rules(role.can_edit)
        roles[role_name(role.value)] = rules + (_CLUSTER_READS + _NAMESPACE_LIST if role.is_cluster_wide else [])
    roles[role_name("ns-member")] = list(_CLUSTER_READS)
    # The shared informers' watches (``kube.informer``), and a namespace's labels for the MetalLB checks.
    roles[role_name("system:cache")] = [
        {"apiGroups": [""], "resources": ["services", "namespaces", "nodes"], "verbs": READ},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
    ]
    bindable = sorted([role_name(role.value) for role in Role] + [role_name("ns-member")])
    roles[role_name("system:rbac")] = [
        {"apiGroups": [RBAC_GROUP], "resources": ["rolebindings", "clusterrolebindings"], "verbs": READ + WRITE},
        {"apiGroups": [RBAC_GROUP], "resources": ["clusterroles"], "verbs": ["bind"], "resourceNames": bindable},
    ]
    roles[role_name("system:impersonator")] = _impersonator_rules(roles)
    return roles


def _impersonator_rules(roles: dict[str, list[dict]]) -> list[dict]:
    """The console's own ServiceAccount: constrained impersonation only. It may act as a user, a group and the
    request-id extra, and, while doing so, only the verbs on the resources of the roles above (so never on secrets,
    whatever the impersonated user may do). Without impersonating, it can do nothing a plain authenticated user
    cannot."""
    allowed: dict[tuple[str, str], set[str]] = {}
    for rules in roles.values():
        for rule in rules:
            for api_group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    allowed.setdefault((api_group, resource), set()).update(v for v in rule["verbs"] if v != "bind")
    allowed[("authorization.k8s.io", "selfsubjectaccessreviews")] = {"create"}
    allowed[("authentication.k8s.io", "selfsubjectreviews")] = {"create"}
    rules = [
        {
            "apiGroups": ["authentication.k8s.io"],
            "resources": ["users", "groups", f"userextras/{kube.REQUEST_ID_EXTRA}"],
            "verbs": ["impersonate:user-info"],
        }
    ]
    for (api_group, resource), verbs in sorted(allowed.items()):
        if verbs:
            rules.append(
                {
                    "apiGroups": [api_group],
                    "resources": [resource],
                    "verbs": [f"impersonate-on:user-info:{verb}" for verb in sorted(verbs)],
                }
            )
    return rules


# --- bindings per grant ---------------------------------------------------------------------------------------


def _subject(grant: Grant) -> dict:
    if grant.user_id:
        return {"kind": "User", "apiGroup": RBAC_GROUP, "name": user_name_in(grant.user, grant.cluster)}
    return {"kind": "Group", "apiGroup": RBAC_GROUP, "name": group_name_in(grant.group, grant.cluster)}


def _binding(grant: Grant, kind: str, name: str, role: str, namespace: str = "") -> dict:
    labels = {**MANAGED_BY, PREFIX_LABEL: kube.prefix(), CLUSTER_LABEL: grant.cluster.name, GRANT_LABEL: str(grant.pk)}
    metadata: dict[str, Any] = {"name": name, "labels": labels}
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": kind,
        "metadata": metadata,
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
        "subjects": [_subject(grant)],
    }


def desired_bindings(grant: Grant) -> list[dict]:
    """The bindings of a grant: none for a deactivated user, who keeps no access in the cluster either."""
    if grant.user_id and not grant.user.is_active:
        return []
    name = f"{kube.prefix()}-grant-{grant.pk}"
    role = Role(grant.role)
    if role.is_cluster_wide:
        return [_binding(grant, "ClusterRoleBinding", name, role_name(role.value))]
    return [
        _binding(grant, "RoleBinding", name, role_name(role.value), grant.namespace),
        _binding(grant, "ClusterRoleBinding", f"{name}-cluster-reads", role_name("ns-member")),
    ]


@dataclass
class SyncResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # "what: why", safe to show
    # Namespaces that do not exist (yet): their RoleBindings are made when they do (``bind_waiting``).
    missing_namespaces: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.created or self.updated or self.deleted or self.failed)


def _where(binding: dict) -> str:
    metadata = binding["metadata"]
    return f"{binding['kind']} {metadata.get('namespace', '') + '/' if metadata.get('namespace') else ''}{metadata['name']}"


class _Bindings:
    """Role bindings created, replaced and deleted: by a sync (``as_rbac``, the console's ``rbac`` identity), and by
    the set-up (with the administrator's client)."""

    def __init__(self, rbac: client.RbacAuthorizationV1Api) -> None:
        self.rbac = rbac

    @classmethod
    def as_rbac(cls, cluster: Cluster, request_id: str = "") -> _Bindings:
        return cls(client.RbacAuthorizationV1Api(kube.api_client_for(cluster, kube.rbac_identity(request_id))))

    def existing(self, selector: str) -> list[dict]:
        found = []
        for kind, lister in (
            ("RoleBinding", self.rbac.list_role_binding_for_all_namespaces),
            ("ClusterRoleBinding", self.rbac.list_cluster_role_binding),
        ):
            for item in kube.call(lister, label_selector=selector)["items"]:
                found.append({**item, "kind": kind})
        return found

    def create(self, binding: dict) -> None:
        """Create it; one of that name made otherwise (its cluster renamed, say) is taken over."""
        name, namespace = binding["metadata"]["name"], binding["metadata"].get("namespace")
        try:
            self._create(binding)
            return
        except kube.ApiError as error:
            if error.status != 409:
                raise
        if namespace:
            current = kube.call(self.rbac.read_namespaced_role_binding, name, namespace)
        else:
            current = kube.call(self.rbac.read_cluster_role_binding, name)
        if current.get("roleRef") != binding["roleRef"]:
            self.delete(binding)
            self._create(binding)
        else:
            self.replace(binding, current["metadata"]["resourceVersion"])

    def _create(self, binding: dict) -> None:
        namespace = binding["metadata"].get("namespace")
        if namespace:
            kube.call(self.rbac.create_namespaced_role_binding, namespace, binding)
        else:
            kube.call(self.rbac.create_cluster_role_binding, binding)

    def replace(self, binding: dict, resource_version: str) -> None:
        body = {**binding, "metadata": {**binding["metadata"], "resourceVersion": resource_version}}
        name, namespace = binding["metadata"]["name"], binding["metadata"].get("namespace")
        if namespace:
            kube.call(self.rbac.replace_namespaced_role_binding, name, namespace, body)
        else:
            kube.call(self.rbac.replace_cluster_role_binding, name, body)

    def delete(self, binding: dict) -> None:
        name, namespace = binding["metadata"]["name"], binding["metadata"].get("namespace")
        try:
            if namespace:
                kube.call(self.rbac.delete_namespaced_role_binding, name, namespace)
            else:
                kube.call(self.rbac.delete_cluster_role_binding, name)
        except kube.ApiError as error:
            if error.status != 404:
                raise


def _reconcile(bindings: _Bindings, desired: list[dict], existing: list[dict], result: SyncResult) -> None:
    def key(binding: dict) -> tuple[str, str, str]:
        return binding["kind"], binding["metadata"].get("namespace", ""), binding["metadata"]["name"]

    wanted = {key(binding): binding for binding in desired}
    for current in existing:
        target = wanted.pop(key(current), None)
        try:
            if target is None:
                bindings.delete(current)
                result.deleted.append(_where(current))
            elif current.get("roleRef") != target["roleRef"]:  # a binding's role cannot change: make it anew
                bindings.delete(current)
                bindings.create(target)
                result.updated.append(_where(target))
            elif current.get("subjects") != target["subjects"] or current["metadata"].get("labels") != target[
                "metadata"
            ].get("labels"):
                bindings.replace(target, current["metadata"]["resourceVersion"])
                result.updated.append(_where(target))
        except kube.ApiError as error:
            result.failed.append(f"{_where(current)}: {error.message}")
    for target in wanted.values():
        try:
            bindings.create(target)
            result.created.append(_where(target))
        except kube.ApiError as error:
            if error.status == 404 and target["metadata"].get("namespace"):
                result.missing_namespaces.append(target["metadata"]["namespace"])
            else:
                result.failed.append(f"{_where(target)}: {error.message}")


def _selector(cluster: Cluster, grant_pk: int | None = None) -> str:
    grant = f"{GRANT_LABEL}={grant_pk}" if grant_pk is not None else GRANT_LABEL
    return f"{PREFIX_LABEL}={kube.prefix()},{CLUSTER_LABEL}={cluster.name},{grant}"


def sync_grant(grant: Grant, request_id: str = "") -> SyncResult:
    """Make the cluster's bindings of one grant match it (also after its role, namespace or holder changed).
    Raises ``kube.ClusterUnavailable``; refusals are in the result."""
    result = SyncResult()
    if not grant.cluster.impersonates:
        return result
    bindings = _Bindings.as_rbac(grant.cluster, request_id)
    try:
        existing = bindings.existing(_selector(grant.cluster, grant.pk))
    except kube.ApiError as error:
        result.failed.append(error.message)
        return result
    _reconcile(bindings, desired_bindings(grant), existing, result)
    return result


def remove_grant(cluster: Cluster, grant_pk: int, request_id: str = "") -> SyncResult:
    result = SyncResult()
    if not cluster.impersonates:
        return result
    bindings = _Bindings.as_rbac(cluster, request_id)
    try:
        _reconcile(bindings, [], bindings.existing(_selector(cluster, grant_pk)), result)
    except kube.ApiError as error:
        result.failed.append(error.message)
    return result


def sync_cluster(cluster: Cluster, request_id: str = "") -> SyncResult:
    """Every grant of the cluster as bindings, and no binding of the console's without a grant."""
    result = SyncResult()
    if not cluster.impersonates:
        return result
    bindings = _Bindings.as_rbac(cluster, request_id)
    grants = Grant.objects.filter(cluster=cluster).select_related("user", "group", "cluster")
    desired = [binding for grant in grants for binding in desired_bindings(grant)]
    try:
        existing = bindings.existing(_selector(cluster))
    except kube.ApiError as error:
        result.failed.append(error.message)
        return result
    _reconcile(bindings, desired, existing, result)
    waiting = Grant.objects.filter(cluster=cluster).exclude(namespace="")
    changed = waiting.filter(namespace__in=result.missing_namespaces, waiting_for_namespace=False).update(
        waiting_for_namespace=True
    )
    changed += (
        waiting.exclude(namespace__in=result.missing_namespaces)
        .filter(waiting_for_namespace=True)
        .update(waiting_for_namespace=False)
    )
    if changed:
        epoch.move()
    return result


def bind_waiting(grants: list[Grant]) -> list[Grant]:
    """Try again the bindings of grants whose namespace did not exist; the grants still waiting (their namespace
    is still not there, or the cluster cannot be reached) are returned. Called when the person opens the cluster
    or the namespace, so a grant made before its namespace takes effect without anyone saving it again."""
    still = []
    for grant in grants:
        try:
            result = sync_grant(grant)
        except kube.ClusterUnavailable:
            still.append(grant)
            continue
        _note_waiting(grant, result)
        if grant.waiting_for_namespace:
            still.append(grant)
    return still


def _note_waiting(grant: Grant, result: SyncResult) -> None:
    waiting = grant.namespace in result.missing_namespaces
    if waiting != grant.waiting_for_namespace:
        Grant.objects.filter(pk=grant.pk).update(waiting_for_namespace=waiting)
        epoch.move()  # what access pages kept says otherwise now
    grant.waiting_for_namespace = waiting


# --- set-up: roles, the console's ServiceAccount and its token ------------------------------------------------


@dataclass
class SetUp:
    credentials: kube.Credentials  # the ServiceAccount's token, to store
    mode: str  # Cluster.IdentityMode
    reason: str  # Cluster.IdentityReason
    version: str


def _apply_cluster_role(rbac: client.RbacAuthorizationV1Api, body: dict) -> None:
    """Create the ClusterRole ``body``, or replace the one of its name."""
    name = body["metadata"]["name"]
    try:
        kube.call(rbac.create_cluster_role, body)
    except kube.ApiError as error:
        if error.status != 409:
            raise
        version = kube.call(rbac.read_cluster_role, name)["metadata"]["resourceVersion"]
        kube.call(
            rbac.replace_cluster_role, name, {**body, "metadata": {**body["metadata"], "resourceVersion": version}}
        )


def _cluster_role_binding(name: str, role: str, subject: dict) -> dict:
    return {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": {**MANAGED_BY, PREFIX_LABEL: kube.prefix()}},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
        "subjects": [subject],
    }


def _service_account_subject() -> dict:
    return {"kind": "ServiceAccount", "name": kube.prefix(), "namespace": SERVICE_ACCOUNT_NAMESPACE}


def static_bindings() -> list[dict]:
    """The ClusterRoleBindings the set-up makes besides the grants' (``set_up``, and ``deploy/`` through
    ``manage.py rbac_manifests``): the console's ServiceAccount to the impersonator role, and the console's own
    identities (cache, rbac, superusers) to theirs."""
    account = kube.prefix()
    user = {"kind": "User", "apiGroup": RBAC_GROUP}
    subjects = {
        f"{account}-impersonator": (role_name("system:impersonator"), _service_account_subject()),
        f"{account}-cache": (role_name("system:cache"), {**user, "name": kube.system_user("cache")}),
        f"{account}-rbac": (role_name("system:rbac"), {**user, "name": kube.system_user("rbac")}),
        f"{account}-superusers": (
            role_name(Role.CLUSTER_ADMIN.value),
            {"kind": "Group", "apiGroup": RBAC_GROUP, "name": superusers_group()},
        ),
    }
    return [_cluster_role_binding(name, role, subject) for name, (role, subject) in subjects.items()]


def set_up(admin: kube.Credentials) -> SetUp:
    """With an administrator's credential (used for this only, never stored): the console's ClusterRoles, its
    ServiceAccount bound to the impersonator role, the console's own identities bound to theirs, and a token.
    Then ask whether the cluster lets that token impersonate; if not (Kubernetes before 1.35, or the
    ``ConstrainedImpersonation`` feature off), bind the ServiceAccount to the console's roles directly instead: the
    shared-credential mode, still limited to what the console does. Raises ``kube.ClusterUnavailable`` or
    ``kube.ApiError``."""
    api_client = kube.build_api_client(admin)
    try:
        core, rbac = client.CoreV1Api(api_client), client.RbacAuthorizationV1Api(api_client)
        version = kube.call(client.VersionApi(api_client).get_code)["gitVersion"]
        account = kube.prefix()
        try:
            kube.call(core.create_namespace, {"metadata": {"name": SERVICE_ACCOUNT_NAMESPACE, "labels": MANAGED_BY}})
        except kube.ApiError as error:
            if error.status != 409:
                raise
        try:
            kube.call(
                core.create_namespaced_service_account,
                SERVICE_ACCOUNT_NAMESPACE,
                {"metadata": {"name": account, "labels": MANAGED_BY}},
            )
        except kube.ApiError as error:
            if error.status != 409:
                raise
        for name, rules in cluster_roles().items():
            body = {"metadata": {"name": name, "labels": {**MANAGED_BY, PREFIX_LABEL: kube.prefix()}}, "rules": rules}
            _apply_cluster_role(rbac, body)
        service_account = _service_account_subject()
        bindings = _Bindings(rbac)
        for binding in static_bindings():
            bindings.create(binding)
        token = kube.call(
            core.create_namespaced_service_account_token,
            account,
            SERVICE_ACCOUNT_NAMESPACE,
            {"spec": {"expirationSeconds": TOKEN_SECONDS}},
        )["status"]["token"]
        credentials = kube.Credentials(
            server=admin.server,
            ca_data=admin.ca_data,
            token=token,
            insecure_skip_tls_verify=admin.insecure_skip_tls_verify,
            tls_server_name=admin.tls_server_name,
        )
        shared = [f"{account}-shared-{suffix}" for suffix in ("roles", "cache")]
        if can_impersonate(credentials):
            for name in shared:  # left from an earlier set-up in the shared mode
                bindings.delete({"kind": "ClusterRoleBinding", "metadata": {"name": name}})
            return SetUp(credentials, Cluster.IdentityMode.IMPERSONATE, Cluster.IdentityReason.SET_UP, version)
        for name, role in zip(shared, (role_name(Role.CLUSTER_ADMIN.value), role_name("system:cache")), strict=True):
            bindings.create(_cluster_role_binding(name, role, service_account))
        reason = Cluster.IdentityReason.NO_CONSTRAINED_IMPERSONATION
        return SetUp(credentials, Cluster.IdentityMode.SHARED, reason, version)
    finally:
        api_client.rest_client.pool_manager.clear()


def can_impersonate(credentials: kube.Credentials) -> bool:
    """Whether the cluster lets ``credentials`` act as another user: a SelfSubjectReview as the console's probe
    identity must come back naming that identity."""
    probe = kube.Identity(kube.system_user("probe"))
    api_client = kube.build_api_client(credentials)
    api_client.default_headers.update(probe.headers())
    try:
        review = kube.call(
            client.AuthenticationV1Api(api_client).create_self_subject_review,
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
    except (kube.ApiError, kube.ClusterUnavailable):
        return False
    finally:
        api_client.rest_client.pool_manager.clear()
    return ((review.get("status") or {}).get("userInfo") or {}).get("username") == probe.user


# --- what a credential may do -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rights:
    """What a credential may do in its cluster, asked of the cluster (SelfSubjectAccessReviews as the credential,
    and a SelfSubjectReview while impersonating)."""

    everything: bool  # any verb on any resource: cluster administrator
    reads_secrets: bool
    impersonates: bool  # constrained impersonation works for it
    sets_up: bool  # may make the console's roles, bindings, ServiceAccount and its token
    reads_services: bool  # may list Services and namespaces everywhere: what the console shows, in the shared mode

    @property
    def more_than_the_console_needs(self) -> bool:
        return self.everything or self.reads_secrets


_SET_UP_NEEDS = (
    ("create", "namespaces", ""),
    ("create", "serviceaccounts", ""),
    ("create", "serviceaccounts/token", ""),
    ("create", "clusterroles", RBAC_GROUP),
    ("create", "clusterrolebindings", RBAC_GROUP),
)


def rights_of(credentials: kube.Credentials) -> Rights:
    """Ask the cluster what ``credentials`` may do. Raises ``kube.ClusterUnavailable``."""
    api_client = kube.build_api_client(credentials)
    reviews = client.AuthorizationV1Api(api_client)

    def may(verb: str, resource: str, group: str = "") -> bool:
        subresource = ""
        if "/" in resource:
            resource, subresource = resource.split("/", 1)
        attributes = {"verb": verb, "resource": resource, "group": group, "subresource": subresource}
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview"}
        try:
            review = kube.call(
                reviews.create_self_subject_access_review, {**body, "spec": {"resourceAttributes": attributes}}
            )
        except kube.ApiError:
            return False  # a credential that may not even ask may do nothing
        return bool((review.get("status") or {}).get("allowed"))

    try:
        return Rights(
            everything=may("*", "*", "*"),
            reads_secrets=may("get", "secrets") or may("list", "secrets"),
            impersonates=can_impersonate(credentials),
            sets_up=all(may(verb, resource, group) for verb, resource, group in _SET_UP_NEEDS),
            reads_services=may("list", "services") and may("list", "namespaces"),
        )
    finally:
        api_client.rest_client.pool_manager.clear()


# How a cluster's credential is to be used: run the set-up with it (used once, never stored), store it as the
# console's own token of a cluster that acts as each user, or store it and act with it for everyone.
SET_UP, OWN_TOKEN, SHARED = "set-up", "own-token", "shared"


def credential_problems(rights: Rights, use: str) -> list[str]:
    """Why a credential with ``rights`` cannot serve for ``use``: each reason a sentence saying what to do."""
    if use == SET_UP and not rights.sets_up:
        return [
            _(
                "This credential cannot set the cluster up: it may not create ClusterRoles, ClusterRoleBindings, "
                "a ServiceAccount and its token. Give a cluster administrator's credential (it is used once and "
                "not stored), or choose the shared mode."
            )
        ]
    if use == OWN_TOKEN and rights.more_than_the_console_needs:
        return [
            _(
                "This credential can do more than the console needs (it can read Secrets): a cluster that acts as "
                "each user stores only the console's limited token. Choose “Set the cluster up with this credential” "
                "to use it once for the set-up instead; it is then not stored."
            )
        ]
    if use == OWN_TOKEN and not rights.impersonates:
        return [
            _(
                "This credential cannot act as the console's users (constrained impersonation), so the cluster "
                "could not see who does what. Give the token of the console's ServiceAccount, or set the cluster up "
                "with an administrator's credential."
            )
        ]
    if use == SHARED and not rights.reads_services:
        return [
            _(
                "This credential may not list Services and namespaces, so the console could show nothing with it. "
                "Give a credential bound to the console's roles (manage.py rbac_manifests), or set the cluster up "
                "with an administrator's credential."
            )
        ]
    return []


# --- grants changed in admin, by ``grant`` or anywhere else -------------------------------------------------


def _report(grant: Grant, result: SyncResult) -> None:
    grant.rbac_problems = result.failed
    for problem in result.failed:
        log.warning("RBAC of grant %s on cluster %s: %s", grant.pk, grant.cluster.name, problem)


def grant_changing(sender: type, instance: Grant, **kwargs: Any) -> None:
    """Remember the cluster a grant was on, so a grant moved to another cluster leaves no binding behind."""
    if instance.pk is not None:
        instance.previous_cluster_id = Grant.objects.filter(pk=instance.pk).values_list("cluster_id", flat=True).first()


def grant_saved(sender: type, instance: Grant, **kwargs: Any) -> None:
    try:
        result = sync_grant(instance)
        _note_waiting(instance, result)
        previous = getattr(instance, "previous_cluster_id", None)
        if previous is not None and previous != instance.cluster_id:
            old = Cluster.objects.filter(pk=previous).first()
            if old is not None:
                result.failed += remove_grant(old, instance.pk).failed
        _report(instance, result)
    except kube.ClusterUnavailable as error:
        _report(instance, SyncResult(failed=[str(error)]))


def grant_deleted(sender: type, instance: Grant, **kwargs: Any) -> None:
    try:
        cluster = Cluster.objects.filter(pk=instance.cluster_id).first()
        if cluster is not None:
            _report(instance, remove_grant(cluster, instance.pk))
    except kube.ClusterUnavailable as error:
        _report(instance, SyncResult(failed=[str(error)]))


def holder_renamed(sender: type, instance: Any, update_fields: Any = None, **kwargs: Any) -> None:
    """A user or group saved: its grants' subjects follow its name, and a deactivated user's bindings go (a
    login, which saves ``last_login`` only, changes nothing)."""
    if update_fields is not None and not ({"username", "name", "is_active"} & set(update_fields)):
        return
    holder = {"user": instance} if isinstance(instance, AbstractBaseUser) else {"group": instance}
    for grant in Grant.objects.filter(**holder).select_related("cluster", "user", "group"):
        grant_saved(Grant, grant)
