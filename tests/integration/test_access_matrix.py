"""Every URL of the URLconf × every kind of user: the expected status, and no cluster call when denied.

The URL list is generated from the URLconf, so a URL added later without an entry in EXPECTED fails here.
"""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from kubernetes import client as k8s

import kube
from clusters.models import Cluster, Role
from services import history
from services.models import ServiceVersion

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]

USERS = [
    "anonymous",
    "no-grant",
    "ns-view",
    "ns-edit-elsewhere",
    "ns-edit",
    "cluster-view",
    "cluster-admin",
    "superuser",
]

# Status per user, in USERS order. "login" means a redirect to the login page.
VIEW = ["login", 404, 200, 403, 200, 200, 200, 200]
WRITE = ["login", 404, 403, 403, 200, 403, 200, 200]
CLUSTER = ["login", 404, 200, 200, 200, 200, 200, 200]
# A form post that is not a valid Service (POST_DATA has no form fields): refused with the form shown again.
FORM_POST = ["login", 404, 403, 403, 422, 403, 422, 422]
# The form's interactions (live validation, type switch, rows, workloads, free node port): POST only.
INTERACTION = {"GET": [405] * 8, "POST": WRITE}
EXPECTED: dict[str, dict[str, list]] = {
    # url name: {method: statuses}
    "clusters:home": {"GET": ["login", 302, 302, 302, 302, 302, 302, 302]},
    "clusters:cluster_list": {"GET": ["login", 200, 200, 200, 200, 200, 200, 200]},
    "clusters:cluster_detail": {"GET": CLUSTER},
    "clusters:cluster_status": {"GET": CLUSTER},
    "services:pick_namespace": {"GET": ["login", 404, 302, 302, 302, 302, 302, 302]},
    "services:list": {"GET": VIEW},
    "services:detail": {"GET": VIEW},
    # A live page's poll, without a version: the region drawn (a 204 needs the version the page showed).
    "services:list_live": {"GET": VIEW},
    "services:detail_live": {"GET": VIEW},
    "services:create": {"GET": WRITE, "POST": FORM_POST},
    # The posted YAML names the existing "probe": creating it again is a 409; replacing it without the
    # resourceVersion it started from is refused (422), never written last-write-wins.
    "services:create_yaml": {"GET": WRITE, "POST": ["login", 404, 403, 403, 409, 403, 409, 409]},
    "services:edit": {"GET": WRITE, "POST": FORM_POST},
    "services:edit_yaml": {"GET": WRITE, "POST": FORM_POST},
    # A delete from an allowed user names a uid that does not match, so nothing is deleted: 302 back to the list.
    "services:delete": {"GET": [405] * 8, "POST": ["login", 404, 403, 403, 302, 403, 302, 302]},
    # Copy a Service to other clusters and namespaces: an editor of the source; the copy is refused without form
    # fields (no target chosen).
    "services:copy": {"GET": WRITE, "POST": FORM_POST},
    "services:copy_create": {"GET": [405] * 8, "POST": FORM_POST},
    "services:copy_refresh": INTERACTION,
    "services:copy_add_target": INTERACTION,
    "services:copy_remove_target": INTERACTION,
    # A Service's history (the matrix's "probe" has one recorded version) and the namespace's deleted Services.
    "services:history": {"GET": VIEW},
    "services:history_compare": {"GET": VIEW},
    "services:deleted": {"GET": VIEW},
    # Restore the version: reviewed (a dry run); a POST without the resourceVersion the person reviewed is a
    # conflict, shown again with the current one, never written.
    "services:restore": {"GET": WRITE, "POST": ["login", 404, 403, 403, 409, 403, 409, 409]},
    # "probe" exists and its history ends in no deletion: nothing to undelete (404 with a message).
    "services:undelete": {
        "GET": ["login", 404, 403, 403, 404, 403, 404, 404],
        "POST": ["login", 404, 403, 403, 404, 403, 404, 404],
    },
    # Reach a port of "probe" (no selector, so no endpoint): the test is made and says so (200); the opened page
    # answers as a gateway does when nothing can answer (503, said in the page).
    "services:reach": {"GET": WRITE, "POST": WRITE},
    "services:reach_view": {"GET": WRITE},
    "services:reach_open": {"GET": ["login", 404, 403, 403, 503, 403, 503, 503]},
    # All my Services: whoever is signed in (a user without grants sees an empty list).
    "services:fleet": {"GET": ["login", 200, 200, 200, 200, 200, 200, 200]},
    # For the platform: the probes answer everybody; the metrics answer loopback in development (no token set).
    "healthz": {"GET": [200] * 8},
    "readyz": {"GET": [200] * 8},
    "metrics": {"GET": [200] * 8},
    **{
        f"services:{page}_{interaction}": INTERACTION
        for page in ("create", "edit")
        for interaction in (
            "validate",
            "refresh",
            "add_row",
            "remove_row",
            "workloads",
            "use_workload",
            "free_node_port",
        )
    },
}
# Not the console's own pages: Django's admin (staff only, its own checks), signing in and out (with a password or
# the identity provider, tests/integration/test_sso.py) and the language switch.
OUTSIDE = {"login", "logout", "set_language", "oidc_login", "oidc_callback", "oidc_backchannel_logout"}


def console_url_names() -> list[str]:
    names: list[str] = []

    def walk(patterns: list, namespace: str | None) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.app_name == "admin":
                    continue
                walk(pattern.url_patterns, pattern.namespace or namespace)
            elif isinstance(pattern, URLPattern) and pattern.name:
                names.append(f"{namespace}:{pattern.name}" if namespace else pattern.name)

    walk(get_resolver().url_patterns, None)
    return [name for name in names if name not in OUTSIDE]


def test_every_url_is_in_the_matrix() -> None:
    assert sorted(console_url_names()) == sorted(EXPECTED)


@pytest.fixture
def users(make_user, cluster: Cluster, namespace: str) -> dict:
    return {
        "anonymous": None,
        "no-grant": make_user("no-grant"),
        "ns-view": make_user("ns-view", role=Role.NS_VIEW, cluster=cluster, namespace=namespace),
        "ns-edit-elsewhere": make_user("ns-edit-elsewhere", role=Role.NS_EDIT, cluster=cluster, namespace="elsewhere"),
        "ns-edit": make_user("ns-edit", role=Role.NS_EDIT, cluster=cluster, namespace=namespace),
        "cluster-view": make_user("cluster-view", role=Role.CLUSTER_VIEW, cluster=cluster),
        "cluster-admin": make_user("cluster-admin", role=Role.CLUSTER_ADMIN, cluster=cluster),
        "superuser": make_user("superuser", is_superuser=True, is_staff=True),
    }


@pytest.fixture
def cluster_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record each time a request asks for the cluster's API client (a spy: the real client is still used)."""
    calls: list[int] = []
    real = kube.api_client_for

    def spy(cluster, identity=None):
        calls.append(cluster.pk)
        return real(cluster, identity)

    monkeypatch.setattr(kube, "api_client_for", spy)
    return calls


POST_DATA = {
    "yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: probe}\nspec: {ports: [{port: 80}]}\n",
    "uid": "not-the-uid",
    "row": "0",
    "workload": "Deployment/probe",
}


@pytest.mark.parametrize("user_kind", USERS)
def test_access_matrix(
    user_kind: str,
    users: dict,
    cluster_calls: list[int],
    admin_api: k8s.ApiClient,
    namespace: str,
    cluster: Cluster,
) -> None:
    probe = k8s.CoreV1Api(admin_api).create_namespaced_service(
        namespace, {"metadata": {"name": "probe"}, "spec": {"ports": [{"port": 80}]}}, _preload_content=False
    )
    version = recorded(cluster, json.loads(probe.data))
    web = Client()
    if users[user_kind] is not None:
        web.force_login(users[user_kind])
    failures = []
    for name, methods in EXPECTED.items():
        kwargs = {"cluster": "local", "namespace": namespace, "name": "probe", "formset": "ports", "version": version}
        kwargs |= {"port": "80", "path": ""}
        needed = [k for k in kwargs if re.search(rf"<\w+:{k}>", _route_of(name))]
        url = reverse(name, kwargs={k: kwargs[k] for k in needed})
        for method, statuses in methods.items():
            expected = statuses[USERS.index(user_kind)]
            cluster_calls.clear()
            response = web.get(url) if method == "GET" else web.post(url, POST_DATA)
            if expected == "login":
                ok = response.status_code == 302 and response["Location"].startswith("/login/")
            else:
                ok = response.status_code == expected
            if not ok:
                failures.append(f"{method} {url}: {response.status_code}, expected {expected}")
            if response.status_code in (302, 403, 404, 405) and expected in ("login", 403, 404, 405) and cluster_calls:
                failures.append(f"{method} {url}: denied, yet the cluster was called")
    assert not failures, "\n".join(failures)


def recorded(cluster: Cluster, service: dict) -> int:
    """The Service stored as its first version, as the history recorder would (the id of the version)."""
    when, makers = history.change_makers(service)
    return ServiceVersion.objects.create(
        cluster=cluster,
        namespace=service["metadata"]["namespace"],
        name=service["metadata"]["name"],
        uid=service["metadata"]["uid"],
        resource_version=service["metadata"]["resourceVersion"],
        change="created",
        changed_at=when,
        managers=makers,
        manifest=history.stored_form(service),
    ).pk


def _route_of(url_name: str) -> str:
    app, name = url_name.split(":") if ":" in url_name else ("", url_name)
    for pattern in _flat_patterns():
        if pattern[0] == app and pattern[1] == name:
            return pattern[2]
    raise KeyError(url_name)


def _flat_patterns() -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []

    def walk(patterns: list, namespace: str, prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, pattern.namespace or namespace, prefix + str(pattern.pattern))
            elif pattern.name:
                found.append((namespace, pattern.name, prefix + str(pattern.pattern)))

    walk(get_resolver().url_patterns, "", "")
    return found


def test_admin_is_for_staff_only(client: Client, users: dict) -> None:
    client.force_login(users["cluster-admin"])
    assert client.get("/admin/console/cluster/").status_code == 302
    client.force_login(users["superuser"])
    assert client.get("/admin/console/cluster/").status_code == 200
