"""Health and traffic truth (issue 15): which pods really serve a Service, and if none, why — from EndpointSlices
made by the real EndpointSlice controller (the local control plane runs kube-controller-manager); a pending load
balancer explained; and open pages that follow changes made elsewhere."""

from __future__ import annotations

import re
import time
import uuid

import pytest
from django.test import Client
from kubernetes import client as k8s

from clusters.models import Cluster
from tests.helpers import HTMX, eventually, make_node, run_pod, service_form, set_pod_ready

SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web"},
    "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
}


@pytest.fixture
def node(admin_api: k8s.ApiClient) -> str:
    name = f"node-{uuid.uuid4().hex[:6]}"
    make_node(admin_api, name)
    return name


@pytest.fixture
def three_pods(admin_api: k8s.ApiClient, namespace: str, node: str) -> dict:
    """Service "web" (port http → the pods' port named "http") and three pods it selects: one Ready with the port,
    one not Ready, one Ready without a port of that name."""
    k8s.CoreV1Api(admin_api).create_namespaced_service(namespace, SERVICE)
    run_pod(admin_api, namespace, "web-ready", {"app": "web"}, node=node)
    run_pod(admin_api, namespace, "web-starting", {"app": "web"}, node=node, ready=False)
    run_pod(
        admin_api,
        namespace,
        "web-metrics-only",
        {"app": "web"},
        node=node,
        ports=[{"name": "metrics", "containerPort": 9090}],
    )

    def sliced() -> bool:
        slices = k8s.DiscoveryV1Api(admin_api).list_namespaced_endpoint_slice(
            namespace, label_selector="kubernetes.io/service-name=web"
        )
        return sum(len(s.endpoints or []) for s in slices.items) == 3

    eventually(sliced)  # made by the EndpointSlice controller, not by the test
    return {"service": "web"}


def health_cell(html: str, service: str) -> str:
    row = re.search(rf'<tr><td class="row-name"><a href="[^"]*/{service}/">.*?</tr>', html, re.S)
    assert row, f"no row for {service}"
    cell = re.search(r'<span class="health[^"]*"[^>]*>([^<]*)</span>', row.group(0))
    assert cell
    return cell.group(1)


def test_the_list_shows_ready_of_all_endpoints(three_pods, web: Client, service_url) -> None:
    assert health_cell(web.get(service_url("list")).content.decode(), "web") == "1/3"


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        (
            "en",
            [
                "1 of 3 endpoints ready",
                "Pod web-starting is not Ready: ContainersReady=False",
                "Pod web-metrics-only has no container port named “http”.",
            ],
        ),
        (
            "zh-hans",
            [
                "3 个端点中 1 个就绪",
                "Pod web-starting 未就绪：ContainersReady=False",
                "Pod web-metrics-only 没有名为“http”的容器端口。",
            ],
        ),
    ],
)
def test_the_service_page_says_why_each_pod_gets_no_traffic(
    three_pods, web: Client, service_url, language: str, expected: list[str]
) -> None:
    web.cookies["django_language"] = language
    html = web.get(service_url("detail", "web")).content.decode()
    traffic = html.split('id="traffic"', 1)[1].split("</section>", 1)[0]
    for text in expected:
        assert text in traffic, (text, traffic)
    assert "web-ready" not in traffic  # the pod that serves is no reason
    assert "web.{}.svc.cluster.local".format(service_url("list").split("/")[4]) in html


def test_a_selector_matching_no_pod_and_a_terminating_pod_are_said(
    admin_api: k8s.ApiClient, namespace: str, node: str, web: Client, service_url
) -> None:
    core = k8s.CoreV1Api(admin_api)
    core.create_namespaced_service(
        namespace,
        {**SERVICE, "metadata": {"name": "lonely"}, "spec": {**SERVICE["spec"], "selector": {"app": "nobody"}}},
    )
    html = web.get(service_url("detail", "lonely")).content.decode()
    assert "The selector matches no pod in this namespace." in html

    core.create_namespaced_service(namespace, SERVICE)
    run_pod(admin_api, namespace, "web-leaving", {"app": "web"}, node=node)
    # A pod with a finalizer stays, terminating, after its delete.
    core.patch_namespaced_pod("web-leaving", namespace, {"metadata": {"finalizers": ["example.com/hold"]}})
    core.delete_namespaced_pod("web-leaving", namespace)
    eventually(lambda: "Pod web-leaving is terminating." in web.get(service_url("detail", "web")).content.decode())
    core.patch_namespaced_pod("web-leaving", namespace, {"metadata": {"finalizers": None}})


def test_health_is_not_applicable_to_external_name_and_headless_services_without_selector(
    admin_api: k8s.ApiClient, namespace: str, web: Client, service_url
) -> None:
    core = k8s.CoreV1Api(admin_api)
    core.create_namespaced_service(
        namespace, {"metadata": {"name": "outside"}, "spec": {"type": "ExternalName", "externalName": "example.com"}}
    )
    core.create_namespaced_service(
        namespace, {"metadata": {"name": "by-hand"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}
    )
    html = web.get(service_url("list")).content.decode()
    assert health_cell(html, "outside") == "n/a"
    assert health_cell(html, "by-hand") == "n/a"


# --- a pending load balancer -------------------------------------------------------------------------------------


@pytest.fixture
def restricted_pool(metallb: list[str], admin_api: k8s.ApiClient) -> str:
    """A MetalLB pool that serves another namespace only (removed with MetalLB's CRD)."""
    k8s.CustomObjectsApi(admin_api).create_namespaced_custom_object(
        "metallb.io",
        "v1beta1",
        "default",
        "ipaddresspools",
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": {"name": "team-b-only"},
            "spec": {"addresses": ["198.51.100.0/30"], "serviceAllocation": {"namespaces": ["team-b"]}},
        },
    )
    return "team-b-only"


def test_a_pending_load_balancer_with_a_pool_for_another_namespace_says_so_before_and_after_create(
    restricted_pool: str, web: Client, service_url, namespace: str
) -> None:
    data = service_form(
        "public",
        type="LoadBalancer",
        ports=[{"port": 80, "target_port": 8080}],
        metallb_pool=restricted_pool,
        _action="refresh",
    )
    before = web.post(service_url("create_refresh"), data, **HTMX).content.decode()
    said = f"The MetalLB pool “{restricted_pool}” does not serve namespace “{namespace}”"
    assert said in before
    assert "team-b" not in before.replace(restricted_pool, "")  # the pool's other namespaces are not named

    created = web.post(service_url("create"), {**data, "_action": "save"})
    assert created.status_code == 302, created.content.decode()[:3000]
    after = web.get(service_url("detail", "public")).content.decode()
    assert said in after.split('id="load-balancer"', 1)[1]


def test_a_pending_load_balancer_without_metallb_says_no_controller(
    web: Client, service_url, admin_api: k8s.ApiClient, namespace: str
) -> None:
    k8s.CoreV1Api(admin_api).create_namespaced_service(
        namespace, {"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}
    )
    html = web.get(service_url("detail", "lb")).content.decode()
    assert "No load balancer controller was found in this cluster" in html


# --- live pages ---------------------------------------------------------------------------------------------------


def live_url(html: str, region: str) -> str:
    found = re.search(rf'<div id="{region}" data-live-url="([^"]+)"', html)
    assert found, f"no live region {region}"
    return found.group(1).replace("&amp;", "&")


def settle(web: Client, poll: str, region: str) -> str:
    """Poll as the browser does (each redraw brings the next poll URL) until the page is told nothing changed."""
    for _ in range(50):
        answer = web.get(poll, **HTMX)
        if answer.status_code == 204:
            return poll
        assert answer.status_code == 200
        poll = live_url(answer.content.decode(), region)
        time.sleep(0.1)
    raise AssertionError("the page never settled")


def test_an_open_list_is_told_nothing_changed_until_something_does(
    web: Client, service_url, admin_api: k8s.ApiClient, namespace: str, cluster: Cluster
) -> None:
    core = k8s.CoreV1Api(admin_api)
    core.create_namespaced_service(namespace, {**SERVICE, "metadata": {"name": "first"}})
    eventually(lambda: "first" in web.get(service_url("list")).content.decode())
    poll = settle(web, live_url(web.get(service_url("list")).content.decode(), "service-table"), "service-table")
    assert "v=" in poll and not poll.endswith("v=")
    for _ in range(3):
        unchanged = web.get(poll, **HTMX)
        assert unchanged.status_code == 204 and unchanged.content == b""

    core.create_namespaced_service(namespace, {**SERVICE, "metadata": {"name": "second"}})  # made elsewhere

    def redrawn() -> bool:
        answer = web.get(poll, **HTMX)
        return answer.status_code == 200 and "second" in answer.content.decode()

    eventually(redrawn, seconds=5)
    fresh = web.get(poll, **HTMX).content.decode()
    assert "<html" not in fresh and 'id="service-table"' in fresh
    # The redraw's own URL is told nothing changed (once the controller has made the new Service's EndpointSlice,
    # which the row's health shows: a redraw or two may come first).
    assert web.get(settle(web, live_url(fresh, "service-table"), "service-table"), **HTMX).status_code == 204


def test_an_open_service_page_follows_its_pods(
    three_pods, web: Client, service_url, admin_api: k8s.ApiClient, namespace: str
) -> None:
    page = web.get(service_url("detail", "web")).content.decode()
    poll = settle(web, live_url(page, "service-live"), "service-live")
    set_pod_ready(admin_api, namespace, "web-starting", True)

    def ready_now() -> bool:
        answer = web.get(poll, **HTMX)
        return answer.status_code == 200 and "2 of 3 endpoints ready" in answer.content.decode()

    eventually(ready_now, seconds=5)


def test_a_live_poll_checks_the_role_like_the_page(client: Client, people, service_url) -> None:
    client.force_login(people.stranger)
    assert client.get(service_url("list_live") + "?v=1-1", **HTMX).status_code == 404
