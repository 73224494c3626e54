"""Beyond the basic form: live validation by the API server (dry run), selector insight, node-port help, diffs."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from kubernetes import client as k8s

from clusters.models import AuditEntry, Cluster, Role
from tests.helpers import HTMX, hold_node_port, service_form

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]


@pytest.fixture
def web(client: Client, make_user, cluster: Cluster, namespace: str) -> Client:
    client.force_login(make_user("live", role=Role.NS_EDIT, cluster=cluster, namespace=namespace))
    return client


def url(namespace: str, suffix: str = "create/") -> str:
    return f"/clusters/local/namespaces/{namespace}/services/{suffix}"


def slot(html: str, html_name: str) -> str:
    """The content of one out-of-band error slot of a live-validation answer."""
    match = re.search(
        rf'<div class="field-errors" id="errors-{re.escape(html_name)}" hx-swap-oob="true">(.*?)</div>', html, re.S
    )
    assert match, f"no slot for {html_name}"
    return match.group(1)


def services(admin_api: k8s.ApiClient, namespace: str) -> list[str]:
    return [s.metadata.name for s in k8s.CoreV1Api(admin_api).list_namespaced_service(namespace).items]


def test_the_api_servers_verdict_lands_on_the_field_before_submit(
    web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    data = service_form("live-one", type="NodePort", ports=[{"name": "a", "port": 80, "node_port": 8080}])
    response = web.post(url(namespace, "create/validate/"), data, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert "8080 is outside the cluster's node port range 30000-32767." in slot(html, "ports-0-node_port").replace(
        "&#x27;", "'"
    )
    assert slot(html, "name") == ""
    assert "would refuse" in html and 'value="live-one"' not in html  # only error slots, never the inputs
    assert services(admin_api, namespace) == []
    assert not AuditEntry.objects.exists()  # a dry run is not a change


def test_a_valid_form_is_accepted_by_a_dry_run_and_nothing_is_stored(
    web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    response = web.post(url(namespace, "create/validate/"), service_form("live-two"), **HTMX)
    assert "The API server accepts this Service (dry run)." in response.content.decode()
    assert services(admin_api, namespace) == []


def test_required_fields_are_not_nagged_while_typing(web: Client, namespace: str) -> None:
    html = web.post(
        url(namespace, "create/validate/"), service_form("", ports=[], selector={}), **HTMX
    ).content.decode()
    assert "This field is required" not in html and "Add at least one port" not in html


def test_an_existing_name_is_named_live(web: Client, admin_api: k8s.ApiClient, namespace: str) -> None:
    k8s.CoreV1Api(admin_api).create_namespaced_service(
        namespace, {"metadata": {"name": "taken"}, "spec": {"ports": [{"port": 80}]}}
    )
    html = web.post(url(namespace, "create/validate/"), service_form("taken"), **HTMX).content.decode()
    assert "already exists" in slot(html, "name")


def test_a_taken_node_port_names_its_holder_and_a_free_one_can_be_filled_in(
    web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    taken = hold_node_port(admin_api, namespace)
    data = service_form("wants-port", type="NodePort", ports=[{"name": "a", "port": 80, "node_port": taken}])
    html = web.post(url(namespace, "create/validate/"), data, **HTMX).content.decode()
    assert f"{taken} is used by {namespace}/holder." in slot(html, "ports-0-node_port")

    filled = web.post(url(namespace, "create/free-node-port/"), {**data, "row": "0"}, **HTMX).content.decode()
    port = int(re.search(r'name="ports-0-node_port" value="(\d+)"', filled).group(1))
    assert 30000 <= port <= 32767 and port != taken
    assert services(admin_api, namespace) == ["holder"]  # the free port was found with a dry run
    assert web.post(url(namespace), {**data, "ports-0-node_port": str(port)}).status_code == 302
    assert k8s.CoreV1Api(admin_api).read_namespaced_service("wants-port", namespace).spec.ports[0].node_port == port


def _pod(name: str, labels: dict, containers: list[dict]) -> dict:
    return {"metadata": {"name": name, "labels": labels}, "spec": {"containers": containers}}


def test_selector_insight_counts_pods_offers_named_ports_and_warns_of_clashes(
    web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    core = k8s.CoreV1Api(admin_api)
    web_ports = [{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090}]
    core.create_namespaced_pod(
        namespace, _pod("web-1", {"app": "web"}, [{"name": "app", "image": "nginx", "ports": web_ports}])
    )
    core.create_namespaced_pod(
        namespace,
        _pod(
            "web-2",
            {"app": "web"},
            [
                {"name": "app", "image": "nginx", "ports": [{"containerPort": 8080}]},
                {"name": "sidecar", "image": "envoy", "ports": [{"containerPort": 8080}]},
            ],
        ),
    )
    html = web.post(
        url(namespace, "create/validate/"), service_form("insight", selector={"app": "web"}), **HTMX
    ).content.decode()
    assert "Matches 2 pods: web-1, web-2" in html
    assert '<option value="http">' in html and '<option value="metrics">' in html
    assert "Containers app and sidecar of pod web-2 both declare port 8080." in html

    nothing = web.post(url(namespace, "create/validate/"), service_form("insight", selector={"app": "none"}), **HTMX)
    assert "No pod matches this selector yet" in nothing.content.decode()


def test_review_shows_the_diff_before_saving(web: Client, admin_api: k8s.ApiClient, namespace: str) -> None:
    k8s.CoreV1Api(admin_api).create_namespaced_service(
        namespace, {"metadata": {"name": "review"}, "spec": {"selector": {"app": "r"}, "ports": [{"port": 80}]}}
    )
    bundle = web.get(url(namespace, "review/edit/")).context["bundle"]
    data = service_form(
        "review", selector={"app": "r"}, ports=[{"port": 8080}], resource_version=bundle["resource_version"].value()
    )
    html = web.post(url(namespace, "review/edit/"), {**data, "_action": "review"}).content.decode()
    assert "Changes to be saved" in html
    assert re.search(r'<span class="diff-del">-[\s-]+port: 80\n?</span>', html)
    assert re.search(r'<span class="diff-add">\+[\s-]+port: 8080\n?</span>', html)
    assert k8s.CoreV1Api(admin_api).read_namespaced_service("review", namespace).spec.ports[0].port == 80


def test_a_conflict_shows_how_the_users_version_differs_from_the_current_one(
    web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    core = k8s.CoreV1Api(admin_api)
    core.create_namespaced_service(
        namespace, {"metadata": {"name": "raced"}, "spec": {"selector": {"app": "r"}, "ports": [{"port": 80}]}}
    )
    version = web.get(url(namespace, "raced/edit/")).context["bundle"]["resource_version"].value()
    current = core.read_namespaced_service("raced", namespace)
    current.spec.selector = {"app": "changed-by-someone"}
    core.replace_namespaced_service("raced", namespace, current)
    response = web.post(
        url(namespace, "raced/edit/"), service_form("raced", selector={"app": "r"}, resource_version=version)
    )
    html = response.content.decode()
    assert response.status_code == 409
    assert "Your version compared with the current one" in html
    assert (
        '<span class="diff-del">-    app: changed-by-someone' in html and '<span class="diff-add">+    app: r' in html
    )


def test_yaml_validate_asks_the_api_server_without_storing(
    web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    good = "apiVersion: v1\nkind: Service\nmetadata: {name: checked}\nspec: {ports: [{port: 80}]}\n"
    bad = "apiVersion: v1\nkind: Service\nmetadata: {name: checked}\nspec: {type: NodePort, ports: [{port: 80, nodePort: 1}]}\n"
    accepted = web.post(url(namespace, "create-yaml/"), {"yaml": good, "_action": "validate"}, **HTMX)
    assert accepted.status_code == 200 and "accepts this Service (dry run)" in accepted.content.decode()
    refused = web.post(url(namespace, "create-yaml/"), {"yaml": bad, "_action": "validate"}, **HTMX)
    assert refused.status_code == 422 and "spec.ports[0].nodePort" in refused.content.decode()
    assert services(admin_api, namespace) == []
