"""The console acts on the cluster as the signed-in user (issue 14), proved against the real API server and its
audit log: who the API server saw, with which request id; what the console's own token can and cannot do; grants as
RBAC bindings that follow the admin; and the labelled shared-credential mode of a cluster without constrained
impersonation."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.test import Client
from kubernetes import client as k8s

import kube
from clusters import rbac
from clusters.models import AuditEntry, Cluster, Grant, Role
from services import api
from tests.helpers import HTMX, eventually, service_form, services_in
from tools import localcluster

SERVICE_ACCOUNT = f"system:serviceaccount:{rbac.SERVICE_ACCOUNT_NAMESPACE}:console"


def audit_events(control_plane: localcluster.ControlPlane, *, verb: str, namespace: str, name: str) -> list[dict]:
    return [
        event
        for event in control_plane.audit_events()
        if event.get("verb") == verb
        and (event.get("objectRef") or {}).get("resource") == "services"
        and (event.get("objectRef") or {}).get("namespace") == namespace
        and (event.get("objectRef") or {}).get("name", name) == name
        and event.get("stage") == "ResponseComplete"
    ]


def created_event(control_plane: localcluster.ControlPlane, namespace: str, name: str) -> dict:
    """The API server's audit event of the (stored, not dry-run) create of ``name``."""
    found: list[dict] = []

    def written() -> bool:
        found[:] = [
            event
            for event in audit_events(control_plane, verb="create", namespace=namespace, name=name)
            if (event.get("responseStatus") or {}).get("code") == 201
            and "dryRun" not in (event.get("requestURI") or "")
        ]
        return bool(found)

    eventually(written)
    assert len(found) == 1, found
    return found[0]


def actor(user, cluster: Cluster) -> kube.Actor:
    return kube.Actor(cluster, rbac.identity_for(user, uuid.uuid4().hex))


def cluster_allows(who: kube.Actor, namespace: str, verb: str = "create") -> bool:
    """The cluster's own answer now (no cached review): its RBAC authorizer sees a new or deleted binding a few
    milliseconds after the API call that wrote it."""
    kube.identity.clear_authorisations()
    return kube.allowed(who, verb, "services", namespace)


def manifest(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}}


# --- the person in the API server's audit log ------------------------------------------------------------------


def test_a_service_created_by_the_editor_is_audited_by_the_api_server_as_the_editor_with_the_consoles_request_id(
    web: Client, people, service_url, control_plane: localcluster.ControlPlane, admin_api, namespace: str
) -> None:
    response = web.post(service_url("create"), service_form("by-editor", ports=[{"port": 80}]))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert services_in(admin_api, namespace) == ["by-editor"]

    entry = AuditEntry.objects.get(action="create", object_name="by-editor", result="success")
    assert len(entry.request_id) == 32
    event = created_event(control_plane, namespace, "by-editor")
    assert event["user"]["username"] == SERVICE_ACCOUNT
    assert event["impersonatedUser"]["username"] == "console:editor" == rbac.cluster_user_name(people.editor)
    assert event["impersonatedUser"]["extra"][kube.REQUEST_ID_EXTRA] == [entry.request_id]
    assert event["impersonatedUser"]["groups"] == ["system:authenticated"]
    # Every call the request made carried the same id (the dry run before the create, too), and no other request's.
    same_request = [
        e
        for e in control_plane.audit_events()
        if kube.REQUEST_ID_EXTRA in ((e.get("impersonatedUser") or {}).get("extra") or {})
        and e["impersonatedUser"]["extra"][kube.REQUEST_ID_EXTRA] == [entry.request_id]
    ]
    assert {e["impersonatedUser"]["username"] for e in same_request} == {"console:editor"}


def test_impersonation_headers_sent_by_the_browser_change_nothing(
    client: Client, people, service_url, control_plane: localcluster.ControlPlane, admin_api, namespace: str
) -> None:
    forged = {
        "HTTP_IMPERSONATE_USER": "admin",
        "HTTP_IMPERSONATE_GROUP": "system:masters",
        "HTTP_IMPERSONATE_EXTRA_KUBE_SERVICE_CONSOLE.IO%2FREQUEST_ID": "forged",
        "HTTP_AUTHORIZATION": "Bearer forged",
    }
    client.force_login(people.editor)
    response = client.post(service_url("create"), service_form("forged", ports=[{"port": 80}]), **forged)
    assert response.status_code == 302
    event = created_event(control_plane, namespace, "forged")
    assert event["impersonatedUser"]["username"] == "console:editor"
    assert "system:masters" not in event["impersonatedUser"].get("groups", [])
    assert event["impersonatedUser"]["extra"][kube.REQUEST_ID_EXTRA] != ["forged"]

    # A viewer claiming to be an admin is still a viewer: refused, and nothing reaches the cluster.
    client.force_login(people.viewer)
    refused = client.post(service_url("create"), service_form("viewer-forged", ports=[{"port": 80}]), **forged)
    assert refused.status_code == 403
    assert services_in(admin_api, namespace) == ["forged"]


# --- the console's own credential ------------------------------------------------------------------------------


def test_the_stored_token_reads_nothing_by_itself_and_never_secrets_whoever_it_impersonates(
    cluster: Cluster, people, admin_api, namespace: str
) -> None:
    core = k8s.CoreV1Api(admin_api)
    core.create_namespaced_secret(namespace, {"metadata": {"name": "db-password"}, "stringData": {"password": "x"}})
    # The editor may read secrets in the cluster (a binding made outside the console): impersonating them still
    # does not reach secrets, because the console's token may not impersonate on secrets at all.
    rbac_api = k8s.RbacAuthorizationV1Api(admin_api)
    rbac_api.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "secret-reader"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}],
        },
    )
    rbac_api.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "editor-reads-secrets"},
            "roleRef": {"apiGroup": rbac.RBAC_GROUP, "kind": "Role", "name": "secret-reader"},
            "subjects": [{"kind": "User", "apiGroup": rbac.RBAC_GROUP, "name": rbac.cluster_user_name(people.editor)}],
        },
    )
    stored = cluster.credentials()
    assert stored.token and not stored.client_key  # the ServiceAccount's token, not the administrator's certificate
    token_client = kube.build_api_client(stored)
    token_core = k8s.CoreV1Api(token_client)

    def refused(call, *args, identity: kube.Identity | None = None) -> int:
        headers = identity.headers() if identity else {}
        with pytest.raises(k8s.exceptions.ApiException) as error:
            call(*args, _headers=headers, _preload_content=False)
        return error.value.status

    # Alone, nothing: not Services, pods, secrets, config maps or namespaces.
    for call, args in (
        (token_core.list_namespaced_service, (namespace,)),
        (token_core.list_namespaced_pod, (namespace,)),
        (token_core.list_namespaced_secret, (namespace,)),
        (token_core.list_namespaced_config_map, (namespace,)),
        (token_core.list_namespace, ()),
        (token_core.list_secret_for_all_namespaces, ()),
    ):
        assert refused(call, *args) == 403, call.__name__

    superuser = rbac.identity_for(type(people.editor).objects.create_user("root-like", is_superuser=True))
    identities = [
        rbac.identity_for(people.editor),
        rbac.identity_for(people.cluster_admin),
        superuser,
        kube.cache_identity(),
        kube.rbac_identity(),
        kube.Identity("admin", ("system:masters",)),
        kube.Identity("system:admin", ("system:masters",)),
    ]
    for identity in identities:
        assert refused(token_core.read_namespaced_secret, "db-password", namespace, identity=identity) == 403
        assert refused(token_core.list_secret_for_all_namespaces, identity=identity) == 403
    # ...while the same impersonation does reach what the console uses: the editor lists Services.
    listed = token_core.list_namespaced_service(namespace, _headers=identities[0].headers(), _preload_content=False)
    assert listed.status == 200


# --- grants as RBAC ---------------------------------------------------------------------------------------------


def binding_exists(admin_api, namespace: str, name: str) -> bool:
    try:
        k8s.RbacAuthorizationV1Api(admin_api).read_namespaced_role_binding(name, namespace)
    except k8s.exceptions.ApiException as error:
        assert error.status == 404
        return False
    return True


@pytest.fixture
def admin_client(client: Client, make_user) -> Client:
    client.force_login(make_user("site-admin", is_superuser=True, is_staff=True))
    return client


def test_a_grant_added_changed_and_revoked_in_admin_is_the_clusters_rbac_at_once(
    admin_client: Client, cluster: Cluster, make_user, admin_api, namespace: str
) -> None:
    dev = make_user("dev")
    added = admin_client.post(
        "/admin/console/grant/add/",
        {"cluster": cluster.pk, "namespace": namespace, "role": Role.NS_EDIT, "user": dev.pk, "group": ""},
    )
    assert added.status_code == 302, added.content.decode()[:3000]
    grant = Grant.objects.get(user=dev)
    binding = k8s.RbacAuthorizationV1Api(admin_api).read_namespaced_role_binding(f"console-grant-{grant.pk}", namespace)
    assert binding.role_ref.name == "console:ns-edit"
    assert [(s.kind, s.name) for s in binding.subjects] == [("User", "console:dev")]

    as_dev = actor(dev, cluster)
    eventually(lambda: cluster_allows(as_dev, namespace))
    api.create_service(as_dev, namespace, manifest("before-change"))

    # NS Edit -> NS View: the binding's role changes, and the cluster itself refuses the next write.
    changed = admin_client.post(
        f"/admin/console/grant/{grant.pk}/change/",
        {"cluster": cluster.pk, "namespace": namespace, "role": Role.NS_VIEW, "user": dev.pk, "group": ""},
    )
    assert changed.status_code == 302
    binding = k8s.RbacAuthorizationV1Api(admin_api).read_namespaced_role_binding(f"console-grant-{grant.pk}", namespace)
    assert binding.role_ref.name == "console:ns-view"
    eventually(lambda: not cluster_allows(as_dev, namespace))
    with pytest.raises(kube.ApiError) as refused:
        api.create_service(as_dev, namespace, manifest("after-change"))
    assert refused.value.status == 403
    assert api.get_service(as_dev, namespace, "before-change")["metadata"]["name"] == "before-change"

    # Revoked: no binding left, and even a read is the cluster's refusal, with the Python check bypassed.
    deleted = admin_client.post(f"/admin/console/grant/{grant.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    assert not binding_exists(admin_api, namespace, f"console-grant-{grant.pk}")
    eventually(lambda: not cluster_allows(as_dev, namespace, "get"))
    for call in (
        lambda: api.create_service(as_dev, namespace, manifest("after-revoke")),
        lambda: api.get_service(as_dev, namespace, "before-change"),
        lambda: api.delete_service(as_dev, namespace, "before-change", "any-uid"),
    ):
        with pytest.raises(kube.ApiError) as refused:
            call()
        assert refused.value.status == 403
        assert "sync_rbac" in str(refused.value)  # said in words, not the API server's English
    assert services_in(admin_api, namespace) == ["before-change"]


def test_a_revoked_editor_with_an_open_page_is_refused_by_the_cluster(
    web: Client, people, cluster: Cluster, service_url, admin_api, namespace: str
) -> None:
    """The page was allowed when it opened; the grant goes; the next save is the cluster's refusal, shown."""
    assert web.get(service_url("create")).status_code == 200
    grant = Grant.objects.get(user=people.editor)
    rbac.remove_grant(cluster, grant.pk)  # the binding is gone (the grant row stays: the Python check passes)
    eventually(lambda: not cluster_allows(actor(people.editor, cluster), namespace))
    response = web.post(service_url("create"), service_form("too-late", ports=[{"port": 80}]), **HTMX)
    assert response.status_code == 422
    assert "sync_rbac" in response.content.decode()
    assert services_in(admin_api, namespace) == []


def test_sync_rbac_repairs_drift_and_removes_bindings_without_a_grant(
    people, cluster: Cluster, admin_api, namespace: str
) -> None:
    rbac_api = k8s.RbacAuthorizationV1Api(admin_api)
    grant = Grant.objects.get(user=people.editor)
    name = f"console-grant-{grant.pk}"
    rbac_api.delete_namespaced_role_binding(name, namespace)
    stray = rbac.desired_bindings(grant)[0]
    stray["metadata"] = {**stray["metadata"], "name": "console-grant-999999"}
    stray["metadata"]["labels"] = {**stray["metadata"]["labels"], rbac.GRANT_LABEL: "999999"}
    rbac_api.create_namespaced_role_binding(namespace, stray)

    out = io.StringIO()
    call_command("sync_rbac", cluster="local", stdout=out)
    assert binding_exists(admin_api, namespace, name)
    assert not binding_exists(admin_api, namespace, "console-grant-999999")
    assert f"created: RoleBinding {namespace}/{name}" in out.getvalue()
    assert f"deleted: RoleBinding {namespace}/console-grant-999999" in out.getvalue()

    again = io.StringIO()
    call_command("sync_rbac", cluster="local", stdout=again)
    assert "local: 0 change(s)." in again.getvalue()


def test_group_grants_bind_the_group_and_the_user_acts_with_their_groups(
    cluster: Cluster, make_user, admin_api, namespace: str
) -> None:
    from django.contrib.auth.models import Group

    team, other = Group.objects.create(name="team-a"), Group.objects.create(name="运维")
    member = make_user("member")
    member.groups.add(team, other)
    Grant.objects.create(cluster=cluster, namespace=namespace, role=Role.NS_EDIT, group=team)
    identity = rbac.identity_for(member)
    assert identity.groups == tuple(sorted(["console:team-a", f"console:group:{other.pk}", "system:authenticated"]))
    eventually(lambda: cluster_allows(kube.Actor(cluster, identity), namespace))
    api.create_service(kube.Actor(cluster, identity), namespace, manifest("by-group"))
    assert services_in(admin_api, namespace) == ["by-group"]


def test_a_cluster_registered_later_gets_all_its_grants(
    db, control_plane: localcluster.ControlPlane, make_user, admin_api, namespace: str, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "admin.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(control_plane.kubeconfig()))
    call_command("register_cluster", name="later", kubeconfig=kubeconfig, stdout=io.StringIO())
    later = Cluster.objects.get(name="later")
    assert not later.impersonates  # a credential given by hand acts for everyone, and says so
    owner = make_user("owner", role=Role.NS_ADMIN, cluster=later, namespace=namespace)
    grant = Grant.objects.get(user=owner)
    assert not binding_exists(admin_api, namespace, f"console-grant-{grant.pk}")

    out = io.StringIO()
    call_command("register_cluster", name="later", kubeconfig=kubeconfig, setup=True, stdout=out)
    later.refresh_from_db()
    assert later.impersonates and later.credentials().token
    assert binding_exists(admin_api, namespace, f"console-grant-{grant.pk}")
    eventually(lambda: cluster_allows(actor(owner, later), namespace))
    api.create_service(actor(owner, later), namespace, manifest("by-owner"))
    assert services_in(admin_api, namespace) == ["by-owner"]


# --- the shared cache, authorised per user ---------------------------------------------------------------------


def test_the_shared_list_is_served_only_to_a_user_the_cluster_lets_list(
    web: Client, people, cluster: Cluster, service_url, admin_api, namespace: str, monkeypatch
) -> None:
    k8s.CoreV1Api(admin_api).create_namespaced_service(namespace, manifest("cached"))
    monkeypatch.setattr(kube.identity, "AUTHORISATION_TTL", 0.0)
    eventually(lambda: "cached" in web.get(service_url("list")).content.decode())
    assert api.cached_services(actor(people.editor, cluster), namespace) is not None  # from the informer

    # The binding goes (drift, or revoked outside the console): the copy is no longer served to the editor, and
    # the page says the cluster refused instead of showing what it holds.
    rbac.remove_grant(cluster, Grant.objects.get(user=people.editor).pk)
    eventually(lambda: not cluster_allows(actor(people.editor, cluster), namespace, "list"))
    assert api.cached_services(actor(people.editor, cluster), namespace) is None
    page = web.get(service_url("list")).content.decode()
    assert "cached" not in page.split("<main", 1)[1]
    assert "sync_rbac" in page
    # The viewer, still bound, is served from the same copy.
    assert api.cached_services(actor(people.viewer, cluster), namespace) is not None


# --- a cluster without constrained impersonation -----------------------------------------------------------------


@pytest.fixture(scope="module")
def old_style_plane():
    """A second control plane with constrained impersonation switched off, as on clusters before 1.35."""
    plane = localcluster.ControlPlane(
        localcluster.ensure_binaries(), apiserver_args=("--feature-gates=ConstrainedImpersonation=false",)
    )
    plane.start()
    yield plane
    plane.stop()


def test_a_cluster_without_constrained_impersonation_runs_in_the_labelled_shared_mode(
    db, old_style_plane: localcluster.ControlPlane, make_user, client: Client, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "admin.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(old_style_plane.kubeconfig()))
    admin = kube.build_api_client(kube.parse_kubeconfig(kubeconfig.read_text(), None, max_bytes=1 << 20))
    k8s.CoreV1Api(admin).create_namespace({"metadata": {"name": "team"}})
    out = io.StringIO()
    call_command("register_cluster", name="old", kubeconfig=kubeconfig, setup=True, stdout=out)
    old = Cluster.objects.get(name="old")
    assert old.identity_mode == Cluster.IdentityMode.SHARED
    assert old.identity_reason == Cluster.IdentityReason.NO_CONSTRAINED_IMPERSONATION
    assert "Shared credential" in out.getvalue()

    editor = make_user("old-editor", role=Role.NS_EDIT, cluster=old, namespace="team")
    client.force_login(editor)
    page = client.get("/clusters/old/").content.decode()
    assert 'data-identity="shared"' in page and "ConstrainedImpersonation" in page
    assert "Shared credential" in client.get("/clusters/").content.decode()

    # The console works there, as its own ServiceAccount (limited to the console's roles): no impersonation.
    created = client.post(
        "/clusters/old/namespaces/team/services/create/", service_form("shared", ports=[{"port": 80}])
    )
    assert created.status_code == 302, created.content.decode()[:2000]
    event = created_event(old_style_plane, "team", "shared")
    assert event["user"]["username"] == SERVICE_ACCOUNT and "impersonatedUser" not in event
    with pytest.raises(k8s.exceptions.ApiException) as refused:
        k8s.CoreV1Api(kube.build_api_client(old.credentials())).list_namespaced_secret("team")
    assert refused.value.status == 403


def test_make_runs_demo_sets_the_cluster_up_to_act_as_each_user(
    db, control_plane: localcluster.ControlPlane, admin_api, settings, tmp_path: Path
) -> None:
    settings.DATA_DIR = tmp_path
    kubeconfig = tmp_path / "admin.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(control_plane.kubeconfig()))
    out = io.StringIO()
    call_command("demo", kubeconfig=kubeconfig, stdout=out)
    local = Cluster.objects.get(name="local")
    assert local.impersonates and not local.credentials().client_key  # the ServiceAccount's token only
    assert "Acts as each user" in out.getvalue()
    editor_grant = Grant.objects.get(user__username="editor")
    assert binding_exists(admin_api, "demo", f"console-grant-{editor_grant.pk}")
    call_command("demo", kubeconfig=kubeconfig, stdout=io.StringIO())  # again: nothing breaks, nothing doubles
    assert Grant.objects.filter(cluster=local).count() == 2
