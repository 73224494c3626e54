"""Admins set clusters up safely from Django admin, in a real browser (Debian's Chromium through Playwright), in
English and in Chinese: the set-up run from the add form stores only the console's limited token, an
administrator's credential is never stored on a cluster that acts as each user, a powerless token is refused
with its reason, grant mistakes are said on their fields, and every admin change is in the audit log."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import translation
from kubernetes import client as k8s
from playwright.sync_api import Browser, Page

import kube
from clusters import rbac
from clusters.models import AuditEntry, Cluster, Grant, Role
from tools import localcluster

pytestmark = [pytest.mark.cluster, pytest.mark.browser]

LOCALES = {"en": "en-US", "zh-hans": "zh-CN"}


@pytest.fixture(params=list(LOCALES))
def language(request) -> str:
    return request.param


@pytest.fixture
def admin_page(
    browser: Browser,
    live_server,
    transactional_db,
    make_user,
    language: str,
) -> Iterator[Page]:
    """A superuser signed in to Django admin, in ``language``; fails the test on any browser console error."""
    make_user("root", is_staff=True, is_superuser=True)
    context = browser.new_context(locale=LOCALES[language], viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors: list[str] = []
    page.on(
        "console",
        lambda message: (
            errors.append(f"{message.text} ({message.location.get('url')})") if message.type == "error" else None
        ),
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "pw-root")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    page.base = live_server.url
    yield page
    context.close()
    assert errors == [], errors


def said(language: str, message_id: str, **params: object) -> str:
    with translation.override(language):
        message = str(translation.gettext(message_id))
    return message % params if params else message


def write_kubeconfig(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / f"kubeconfig-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def save(page: Page, button: str = "input[name=_save]") -> None:
    """Press a submit button and wait for the answer's page (the set-up takes a moment)."""
    with page.expect_navigation():
        page.click(button)


def messages_of(page: Page) -> str:
    return " ".join(page.locator(".messagelist li, .errornote, .errorlist li").all_inner_texts())


def add_cluster(page: Page, name: str, *, kubeconfig: Path | None = None, use: str | None = None, **fields: str):
    page.goto(f"{page.base}/admin/console/cluster/add/")
    page.fill("#id_name", name)
    if kubeconfig is not None:
        page.set_input_files("#id_kubeconfig", str(kubeconfig))
    for field, value in fields.items():
        page.fill(f"#id_{field}", value)
    if use is not None:
        page.check(f"input[name=use][value={use}]")
    save(page)


def secrets_readable(credentials: kube.Credentials, namespace: str) -> bool:
    try:
        kube.call(k8s.CoreV1Api(kube.build_api_client(credentials)).list_namespaced_secret, namespace)
    except kube.ApiError as error:
        assert error.status == 403
        return False
    return True


def powerless_token(admin_api: k8s.ApiClient, namespace: str) -> str:
    """A real ServiceAccount token that may do nothing at all."""
    core = k8s.CoreV1Api(admin_api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
    request = {"spec": {"expirationSeconds": 3600}}
    return core.create_namespaced_service_account_token("nobody", namespace, request).status.token


def test_an_admin_sets_a_cluster_up_from_the_add_form_and_only_the_limited_token_is_stored(
    admin_page: Page, language: str, control_plane: localcluster.ControlPlane, namespace: str, tmp_path: Path
) -> None:
    admin_kubeconfig = write_kubeconfig(tmp_path, control_plane.kubeconfig())
    add_cluster(admin_page, "staging", kubeconfig=admin_kubeconfig)  # the default: set the cluster up
    shown = messages_of(admin_page)
    assert said(language, "Cluster “%(name)s”: %(text)s", name="staging", text="")[:8] in shown
    assert (
        said(
            language,
            "acts as each user. The credential you gave set the cluster up and was not stored; only "
            "the console's limited token is, which cannot read Secrets.",
        )
        in shown
    )
    cluster = Cluster.objects.get(name="staging")
    assert cluster.impersonates and cluster.identity_reason == Cluster.IdentityReason.SET_UP
    stored = cluster.credentials()
    assert stored.token and not stored.client_cert and not stored.client_key  # the admin's certificate is gone
    assert not secrets_readable(stored, namespace)
    assert not rbac.rights_of(stored).more_than_the_console_needs
    # The change page says which mode the cluster runs in, and why.
    admin_page.goto(f"{admin_page.base}/admin/console/cluster/{cluster.pk}/change/")
    identity = admin_page.locator(".field-identity").inner_text()
    assert str(cluster.get_identity_mode_display()) in identity or said(language, "Acts as each user") in identity


def test_an_administrators_kubeconfig_is_never_stored_on_a_cluster_that_acts_as_each_user(
    admin_page: Page, language: str, cluster: Cluster, control_plane: localcluster.ControlPlane, tmp_path: Path
) -> None:
    before = cluster.credentials()
    admin_kubeconfig = write_kubeconfig(tmp_path, control_plane.kubeconfig())
    admin_page.goto(f"{admin_page.base}/admin/console/cluster/{cluster.pk}/change/")
    admin_page.set_input_files("#id_kubeconfig", str(admin_kubeconfig))
    admin_page.check("input[name=use][value=own-token]")
    save(admin_page)
    refused = messages_of(admin_page)
    assert (
        said(
            language,
            "This credential can do more than the console needs (it can read Secrets): a cluster that "
            "acts as each user stores only the console's limited token. Choose “Set the cluster up with this "
            "credential” to use it once for the set-up instead; it is then not stored.",
        )
        in refused
    )
    cluster.refresh_from_db()
    assert cluster.credentials() == before and cluster.impersonates
    # Used for the set-up instead (the default), it is not stored either: the console's token is.
    admin_page.set_input_files("#id_kubeconfig", str(admin_kubeconfig))
    admin_page.check("input[name=use][value=set-up]")
    save(admin_page)
    cluster.refresh_from_db()
    stored = cluster.credentials()
    assert cluster.impersonates and stored.token and not stored.client_key
    assert not rbac.rights_of(stored).more_than_the_console_needs


def test_a_powerless_token_is_refused_with_its_reason(
    admin_page: Page, language: str, control_plane: localcluster.ControlPlane, admin_api, namespace: str
) -> None:
    token = powerless_token(admin_api, namespace)
    fields = {
        "server_url": control_plane.server,
        "token": token,
        "certificate_authority": control_plane.ca_pem.decode(),
    }
    add_cluster(admin_page, "nothing", use="shared", **fields)
    assert said(
        language,
        "This credential may not list Services and namespaces, so the console could show nothing "
        "with it. Give a credential bound to the console's roles (manage.py rbac_manifests), or set the "
        "cluster up with an administrator's credential.",
    ) in messages_of(admin_page)
    add_cluster(admin_page, "nothing", **fields)  # the set-up needs an administrator
    assert said(
        language,
        "This credential cannot set the cluster up: it may not create ClusterRoles, "
        "ClusterRoleBindings, a ServiceAccount and its token. Give a cluster administrator's credential (it "
        "is used once and not stored), or choose the shared mode.",
    ) in messages_of(admin_page)
    assert not Cluster.objects.filter(name="nothing").exists()
    assert token[-20:] not in admin_page.content()


def add_grant(page: Page, cluster: Cluster, role: Role, namespace: str = "", user: str = "", group: str = "") -> None:
    """The grant add form filled as an admin does; the user and group pickers are autocomplete widgets, whose
    underlying <select> gets the chosen option as the widget would put it there."""
    page.goto(f"{page.base}/admin/console/grant/add/")
    page.select_option("#id_cluster", str(cluster.pk))
    page.select_option("#id_role", role.value)
    page.fill("#id_namespace", namespace)
    chosen = {
        "user": get_user_model().objects.get(username=user).pk if user else None,
        "group": Group.objects.get(name=group).pk if group else None,
    }
    for field, pk in chosen.items():
        if pk is not None:
            page.evaluate(
                "([field, pk]) => document.querySelector('#id_' + field).append(new Option(pk, pk, true, true))",
                [field, str(pk)],
            )
    save(page)


def test_grant_mistakes_are_said_on_their_fields_and_a_missing_namespace_is_bound_when_it_appears(
    admin_page: Page, language: str, cluster: Cluster, make_user, admin_api, namespace: str
) -> None:
    make_user("alice")
    Group.objects.create(name="team-a")
    add_grant(admin_page, cluster, Role.NS_EDIT, user="alice")
    assert said(language, "An NS role needs the namespace it applies to.") in messages_of(admin_page)
    add_grant(admin_page, cluster, Role.CLUSTER_VIEW, namespace=namespace, user="alice")
    assert said(language, "A cluster role covers every namespace: leave the namespace empty.") in messages_of(
        admin_page
    )
    add_grant(admin_page, cluster, Role.NS_VIEW, namespace=namespace, user="alice", group="team-a")
    assert said(language, "Grant the role to a user or to a group, not both: make two grants.") in messages_of(
        admin_page
    )
    add_grant(admin_page, cluster, Role.NS_VIEW, namespace=namespace)
    assert said(language, "Choose the user (or the group) who gets the role.") in messages_of(admin_page)
    assert "Constraint" not in admin_page.content() and "grant_" not in messages_of(admin_page)
    add_grant(admin_page, cluster, Role.NS_VIEW, namespace=namespace, user="alice")
    add_grant(admin_page, cluster, Role.NS_VIEW, namespace=namespace, user="alice")
    assert said(language, "This grant exists already.") in messages_of(admin_page)
    assert Grant.objects.filter(user__username="alice").count() == 1

    later = f"later-{uuid.uuid4().hex[:6]}"
    add_grant(admin_page, cluster, Role.NS_EDIT, namespace=later, user="alice")
    assert said(
        language,
        "Namespace “%(namespace)s” does not exist in cluster “%(cluster)s” yet. The grant is saved, and its "
        "RoleBinding is made as soon as the namespace exists; until then the person sees that the namespace is "
        "not there yet.",
        namespace=later,
        cluster=cluster.name,
    ) in messages_of(admin_page)
    grant = Grant.objects.get(namespace=later)
    assert grant.waiting_for_namespace
    core, authz = k8s.CoreV1Api(admin_api), k8s.RbacAuthorizationV1Api(admin_api)
    core.create_namespace({"metadata": {"name": later}})
    try:
        # Nobody saves the grant again: the person opens the namespace and the binding is made.
        person = Client()
        person.force_login(get_user_model().objects.get(username="alice"))
        person.get(f"/clusters/{cluster.name}/")
        bindings = authz.list_namespaced_role_binding(later, label_selector=f"{rbac.GRANT_LABEL}={grant.pk}").items
        assert [b.role_ref.name for b in bindings] == [rbac.role_name(Role.NS_EDIT.value)]
        grant.refresh_from_db()
        assert not grant.waiting_for_namespace
    finally:
        core.delete_namespace(later)


def test_every_admin_change_is_in_the_audit_log(
    admin_page: Page, language: str, cluster: Cluster, make_user, namespace: str
) -> None:
    make_user("bob")
    add_grant(admin_page, cluster, Role.NS_VIEW, namespace=namespace, user="bob")
    grant = Grant.objects.get(user__username="bob")
    admin_page.goto(f"{admin_page.base}/admin/console/grant/{grant.pk}/delete/")
    save(admin_page, "input[type=submit]")
    bob = get_user_model().objects.get(username="bob")
    admin_page.goto(f"{admin_page.base}/admin/auth/user/{bob.pk}/change/")
    admin_page.uncheck("#id_is_active")
    save(admin_page)
    admin_page.goto(f"{admin_page.base}/admin/console/cluster/{cluster.pk}/change/")
    admin_page.fill("#id_display_name", "Local cluster")
    save(admin_page)
    actions = list(AuditEntry.objects.filter(username="root").values_list("action", flat=True))
    assert {"grant added", "grant removed", "user deactivated", "cluster changed"} <= set(actions)
    entry = AuditEntry.objects.get(action="cluster changed")
    assert entry.detail == "changed: display_name" and entry.cluster == cluster.name
    admin_page.goto(f"{admin_page.base}/admin/console/auditentry/")
    log = admin_page.locator("#result_list").inner_text()
    assert "user deactivated" in log and "grant removed" in log and "cluster changed" in log
