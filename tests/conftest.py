"""Shared fixtures: one real control plane per test session, a fresh namespace per test, the standing users of a
test (``people``: editor, viewer, cluster admin, stranger) and URL helpers (``service_url``)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import translation
from kubernetes import client
from kubernetes.client.exceptions import ApiException

import kube
from clusters import epoch, rbac
from clusters.access import forget_accesses
from clusters.models import Cluster, Grant, Role
from clusters.oidc import forget_users
from kube.identity import clear_authorisations
from kube.informer import informers
from tools import localcluster


@pytest.fixture(scope="session")
def control_plane() -> Iterator[localcluster.ControlPlane]:
    """The upstream etcd, kube-apiserver and kube-controller-manager, built once and cached; stopped (and its
    data removed) at the end."""
    plane = localcluster.ControlPlane(localcluster.ensure_binaries())
    plane.start()
    yield plane
    plane.stop()


@pytest.fixture(scope="session")
def admin_credentials(control_plane: localcluster.ControlPlane) -> kube.Credentials:
    cert, key = control_plane.client_credentials("console-admin", ("system:masters",))
    return kube.Credentials(
        server=control_plane.server,
        ca_data=control_plane.ca_pem,
        client_cert=cert,
        client_key=key,
    )


@pytest.fixture(scope="session")
def console_credentials(admin_credentials: kube.Credentials) -> kube.Credentials:
    """The console's own least-privileged credential: ``register_cluster --setup``'s ServiceAccount token, made
    once (the console's ClusterRoles, its ServiceAccount and identities), as an operator would."""
    done = rbac.set_up(admin_credentials)
    assert done.mode == Cluster.IdentityMode.IMPERSONATE, done
    return done.credentials


@pytest.fixture(scope="session")
def admin_api(admin_credentials: kube.Credentials) -> client.ApiClient:
    """An API client with full rights, built by the console's own client factory."""
    return kube.build_api_client(admin_credentials)


@pytest.fixture
def namespace(admin_api: client.ApiClient) -> Iterator[str]:
    """A new namespace for this test alone, deleted afterwards: the controller-manager's namespace controller then
    removes what the test left in it (a few seconds later; the test does not wait for it)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(admin_api)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    try:
        core.delete_namespace(name)
    except ApiException as error:
        if error.status != 404:  # the test deleted it itself
            raise


@pytest.fixture(autouse=True)
def _isolated_clients() -> Iterator[None]:
    """Pooled clients and informers are keyed by cluster id; test databases reuse ids, so start each test with
    none (and leave no watch running after it)."""
    kube.clients.clear()
    informers.clear()
    clear_authorisations()
    epoch.forget()
    forget_accesses()
    forget_users()
    yield
    informers.clear()
    kube.clients.clear()
    clear_authorisations()
    # A request in another language (the django_language cookie) leaves it active in this thread; the next test
    # starts in the default language.
    translation.deactivate()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- the console's side: a registered cluster and users with roles ------------------------------------------------


@pytest.fixture
def cluster(db: None, console_credentials: kube.Credentials) -> Cluster:
    """The session's control plane registered as cluster "local" as ``register_cluster --setup`` leaves it: the
    console's ServiceAccount token, every call made as the signed-in user, each grant a binding in the cluster."""
    registered = Cluster(
        name="local",
        display_name="Local",
        identity_mode=Cluster.IdentityMode.IMPERSONATE,
        identity_reason=Cluster.IdentityReason.SET_UP,
    )
    registered.set_credentials(console_credentials)
    registered.save()
    return registered


@pytest.fixture
def make_user(db: None):
    """make_user("alice", role=Role.NS_EDIT, cluster=c, namespace="ns") -> a user holding that grant."""

    def make(username: str, *, role: Role | None = None, cluster: Cluster | None = None, namespace: str = "", **extra):
        user = get_user_model().objects.create_user(username, password="pw-" + username, **extra)
        if role is not None:
            where = "" if Role(role).is_cluster_wide else namespace
            grant = Grant.objects.create(user=user, cluster=cluster, role=role, namespace=where)
            bound = not getattr(grant, "rbac_problems", []) and not grant.waiting_for_namespace
            if cluster.impersonates and bound:  # (a grant on a namespace not created yet waits for it)
                # The API server's RBAC authorizer sees a new binding a few milliseconds after it is written.
                who = kube.Actor(cluster, rbac.identity_for(user))
                deadline = time.monotonic() + 10
                while not kube.allowed(who, "list", "services", where or "default"):
                    assert time.monotonic() < deadline, "the grant's binding never took effect"
                    clear_authorisations()
                    time.sleep(0.005)
        return user

    return make


@pytest.fixture
def people(make_user, cluster: Cluster, namespace: str) -> SimpleNamespace:
    """The standing users of a test, as healthchecks' tests have owner / member / stranger: an NS Edit and an NS
    View of the test's namespace, a Cluster Admin, and a stranger who holds no grant at all."""
    return SimpleNamespace(
        editor=make_user("editor", role=Role.NS_EDIT, cluster=cluster, namespace=namespace),
        viewer=make_user("viewer", role=Role.NS_VIEW, cluster=cluster, namespace=namespace),
        cluster_admin=make_user("cluster-admin", role=Role.CLUSTER_ADMIN, cluster=cluster),
        stranger=make_user("stranger"),
    )


@pytest.fixture
def web(client, people: SimpleNamespace):  # a django.test.Client
    """The test client signed in as the standing editor (NS Edit of the test's namespace); a module may define its
    own ``web`` for another user."""
    client.force_login(people.editor)
    return client


@pytest.fixture
def service_url(cluster: Cluster, namespace: str) -> Callable[..., str]:
    """service_url("list"), service_url("edit", "web"), service_url("list", page=2): a URL of the services app in
    the test's cluster and namespace, by its URL name, with an optional Service name and query."""

    def build(url_name: str, service: str | None = None, **query: object) -> str:
        kwargs = {"cluster": cluster.name, "namespace": namespace} | ({"name": service} if service else {})
        return reverse(f"services:{url_name}", kwargs=kwargs) + (f"?{urlencode(query)}" if query else "")

    return build


@pytest.fixture
def service_account_token(admin_api: client.ApiClient, namespace: str) -> str:
    """A real bearer token: a ServiceAccount bound to cluster-admin, and a token from the TokenRequest API."""
    core = client.CoreV1Api(admin_api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "console"}})
    client.RbacAuthorizationV1Api(admin_api).create_cluster_role_binding(
        {
            "metadata": {"name": f"console-{namespace}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": "console", "namespace": namespace}],
        }
    )
    request = core.create_namespaced_service_account_token("console", namespace, {"spec": {"expirationSeconds": 3600}})
    return request.status.token


@pytest.fixture
def limited_cluster(admin_api: client.ApiClient, control_plane: localcluster.ControlPlane, namespace: str):
    """limited_cluster(name, rules) -> a Cluster named ``name``, registered with the token of a ServiceAccount that
    holds only ``rules`` (a Role in the test's namespace): credentials the API server refuses some calls."""

    def make(name: str, rules: list[dict]) -> Cluster:
        core, rbac = client.CoreV1Api(admin_api), client.RbacAuthorizationV1Api(admin_api)
        core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
        rbac.create_namespaced_role(namespace, {"metadata": {"name": name}, "rules": rules})
        rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
            },
        )
        token = core.create_namespaced_service_account_token(name, namespace, {"spec": {"expirationSeconds": 600}})
        registered = Cluster(name=name)
        registered.set_credentials(
            kube.Credentials(control_plane.server, control_plane.ca_pem, token=token.status.token)
        )
        registered.save()
        return registered

    return make


@pytest.fixture
def metallb(admin_api: client.ApiClient) -> Iterator[list[str]]:
    """MetalLB's IPAddressPool type (a minimal CRD) with two pools; removed again afterwards, because other tests
    check what a cluster without MetalLB looks like."""
    extensions = client.ApiextensionsV1Api(admin_api)
    custom = client.CustomObjectsApi(admin_api)
    extensions.create_custom_resource_definition(IPADDRESSPOOL_CRD)
    _wait_for(lambda: custom.list_cluster_custom_object("metallb.io", "v1beta1", "ipaddresspools"))
    pools = ["public-pool", "office-pool"]
    namespace = "default"
    for pool in pools:
        custom.create_namespaced_custom_object(
            "metallb.io",
            "v1beta1",
            namespace,
            "ipaddresspools",
            {
                "apiVersion": "metallb.io/v1beta1",
                "kind": "IPAddressPool",
                "metadata": {"name": pool},
                "spec": {"addresses": ["192.0.2.0/28"]},
            },
        )
    yield pools
    extensions.delete_custom_resource_definition(IPADDRESSPOOL_CRD["metadata"]["name"])

    def gone() -> None:
        try:
            custom.list_cluster_custom_object("metallb.io", "v1beta1", "ipaddresspools")
        except ApiException as error:
            if error.status == 404:
                return
            raise
        raise AssertionError("still served")

    _wait_for(gone)


def _wait_for(probe, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            probe()
            return
        except (ApiException, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


IPADDRESSPOOL_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "ipaddresspools.metallb.io"},
    "spec": {
        "group": "metallb.io",
        "scope": "Namespaced",
        "names": {
            "kind": "IPAddressPool",
            "listKind": "IPAddressPoolList",
            "plural": "ipaddresspools",
            "singular": "ipaddresspool",
        },
        "versions": [
            {
                "name": "v1beta1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}


# --- a second cluster, for the pages that span clusters (all my Services, copy to other clusters) ----------------


@pytest.fixture(scope="session")
def second_control_plane() -> Iterator[localcluster.ControlPlane]:
    """Another real control plane, started once per session by the first test that needs one."""
    plane = localcluster.ControlPlane(localcluster.ensure_binaries())
    plane.start()
    yield plane
    plane.stop()


@pytest.fixture(scope="session")
def second_admin_api(second_control_plane: localcluster.ControlPlane) -> client.ApiClient:
    cert, key = second_control_plane.client_credentials("console-admin", ("system:masters",))
    return kube.build_api_client(
        kube.Credentials(
            server=second_control_plane.server, ca_data=second_control_plane.ca_pem, client_cert=cert, client_key=key
        )
    )


@pytest.fixture(scope="session")
def second_console_credentials(second_control_plane: localcluster.ControlPlane) -> kube.Credentials:
    cert, key = second_control_plane.client_credentials("console-admin", ("system:masters",))
    admin = kube.Credentials(
        server=second_control_plane.server, ca_data=second_control_plane.ca_pem, client_cert=cert, client_key=key
    )
    done = rbac.set_up(admin)
    assert done.mode == Cluster.IdentityMode.IMPERSONATE, done
    return done.credentials


@pytest.fixture
def second_cluster(db: None, second_console_credentials: kube.Credentials) -> Cluster:
    """The second control plane registered as cluster "remote", set up like "local"."""
    registered = Cluster(
        name="remote",
        display_name="Remote",
        identity_mode=Cluster.IdentityMode.IMPERSONATE,
        identity_reason=Cluster.IdentityReason.SET_UP,
    )
    registered.set_credentials(second_console_credentials)
    registered.save()
    return registered


@pytest.fixture
def second_namespace(second_admin_api: client.ApiClient, namespace: str) -> Iterator[str]:
    """The test's namespace name, made in the second cluster too (deleted after the test)."""
    core = client.CoreV1Api(second_admin_api)
    core.create_namespace({"metadata": {"name": namespace}})
    yield namespace
    core.delete_namespace(namespace)
