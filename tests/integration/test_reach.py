"""Reaching a Service from the browser against a real HTTP server: a test host in a network namespace of its own
(``tests/reach_host.py``, made and removed here, as root), a Pod at its address and a Service selecting it. Every
request goes through the real API server's proxy, made as the signed-in user; only the test host is ever a target.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from django.test import Client
from kubernetes import client as k8s
from playwright.sync_api import Browser

import kube
from clusters import rbac
from clusters.models import AuditEntry, Cluster, Grant, Role
from services import reach
from tests.helpers import HTMX, eventually
from tests.integration.test_browser import log_in
from tests.reach_host import NetnsHost, netns_host, serve_from, wait_for_endpoint, web_service
from tools import localcluster

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]


@pytest.fixture(scope="module")
def host() -> Iterator[NetnsHost]:
    with netns_host() as made:
        yield made


@pytest.fixture
def web_pod(admin_api: k8s.ApiClient, namespace: str, host: NetnsHost) -> str:
    """Service ``web`` served by the test host (a ready Pod at its address); returns the Service's name."""
    serve_from(admin_api, namespace, host)
    web_service(admin_api, namespace)
    wait_for_endpoint(admin_api, namespace, "web", host.address)
    return "web"


def _url(namespace: str, port: str, rest: str = "") -> str:
    return f"/clusters/local/namespaces/{namespace}/services/web/reach/{port}/{rest}"


def _shown_body(response) -> str:
    """The body text a test result shows (its last ``<pre>``), unescaped."""
    return html.unescape(re.findall(r'<pre class="code"[^>]*>(.*?)</pre>', response.content.decode(), re.S)[-1])


# --- testing a port ------------------------------------------------------------------------------------------------


def test_an_editor_tests_a_port_and_sees_the_answer(
    web: Client, control_plane: localcluster.ControlPlane, namespace: str, web_pod: str
) -> None:
    detail = web.get(f"/clusters/local/namespaces/{namespace}/services/web/")
    assert _url(namespace, "http") in detail.content.decode()  # the Service's page offers the test per TCP port

    response = web.post(_url(namespace, "http"), {"path": "/"}, **HTMX)
    page = response.content.decode()
    assert response.status_code == 200
    assert "HTTP 200 OK" in page
    assert "X-Test-Host" in page  # the response headers
    assert "Hello from the test host" in _shown_body(response)
    assert f"{_url(namespace, 'http', 'view/')}?path=/" in page  # an HTML answer can be opened

    entry = AuditEntry.objects.get(action="test port")
    assert (entry.username, entry.namespace, entry.object_name, entry.result) == ("editor", namespace, "web", "success")
    assert entry.request_id == response["X-Request-Id"]  # the id the API server saw as the user's extra
    audit_id = re.fullmatch(r"port http, GET /: HTTP 200 in \d+ ms, Audit-Id ([0-9a-f-]{36})", entry.detail)[1]

    # The API server's audit log holds the same request: as the user, with the console's request id.
    def proxied() -> list[dict]:
        return [event for event in control_plane.audit_events() if event["auditID"] == audit_id]

    eventually(lambda: bool(proxied()), 5, interval=0.1)
    event = proxied()[0]
    wanted = {"resource": "services", "namespace": namespace, "name": "web:http", "subresource": "proxy"}
    assert {key: event["objectRef"].get(key) for key in wanted} == wanted
    assert event["impersonatedUser"]["username"] == f"{kube.prefix()}:editor"
    assert event["impersonatedUser"]["extra"][kube.REQUEST_ID_EXTRA] == [entry.request_id]


def test_nothing_of_the_browser_reaches_the_service(web: Client, namespace: str, web_pod: str) -> None:
    web.cookies["csrftoken"] = "csrf-of-the-console"
    response = web.post(
        _url(namespace, "http"), {"path": "/echo"}, HTTP_AUTHORIZATION="Bearer console", HTTP_X_CSRFTOKEN="x", **HTMX
    )
    received = json.loads(_shown_body(response))
    names = {name.lower() for name in received["headers"]}
    assert received["method"] == "GET" and received["path"] == "/echo"
    assert not names & {"cookie", "authorization", "x-csrftoken"}
    assert not [name for name in names if name.startswith("impersonate-")]
    assert "csrf-of-the-console" not in json.dumps(received) and "sessionid" not in json.dumps(received)


def test_a_test_by_number_and_a_big_body_is_cut(web: Client, namespace: str, web_pod: str) -> None:
    response = web.post(_url(namespace, "80"), {"path": "big"}, **HTMX)
    assert "HTTP 200 OK" in response.content.decode()
    assert len(_shown_body(response)) == reach.TEST_LIMIT
    assert "(the first 16.0" in response.content.decode()


def test_a_port_that_is_not_tcp_or_not_of_the_service_is_not_found(web: Client, namespace: str, web_pod: str) -> None:
    response = web.post(_url(namespace, "8443"), {"path": "/"})
    assert response.status_code == 404
    assert "has no TCP port “8443”" in response.content.decode()


@pytest.mark.parametrize(
    ("port", "path", "message", "status"),
    [
        ("closed", "/", "refused the connection: nothing listens", 502),
        ("garbage", "/", "did not answer in HTTP", 502),
        ("http", "/slow", "did not answer within 5 seconds", 504),
    ],
)
def test_each_failure_is_explained(
    web: Client, host: NetnsHost, namespace: str, web_pod: str, port: str, path: str, message: str, status: int
) -> None:
    started = time.monotonic()
    response = web.post(_url(namespace, port), {"path": path}, **HTMX)
    assert response.status_code == 200  # the test was made; what came back is its result
    assert message in response.content.decode()
    if port == "closed":  # the API server names the endpoint it dialled
        assert f"{host.address}:8081" in response.content.decode()
    assert time.monotonic() - started < reach.TIMEOUT + 2
    assert AuditEntry.objects.get(action="test port").result == "failed"

    opened = web.get(_url(namespace, port, f"open{path}"))
    assert opened.status_code == status
    assert message in opened.content.decode()
    assert "sandbox" in opened["Content-Security-Policy"]


def test_no_ready_endpoint_is_explained(web: Client, admin_api: k8s.ApiClient, namespace: str, host: NetnsHost) -> None:
    serve_from(admin_api, namespace, host, ready=False)
    web_service(admin_api, namespace)
    response = web.post(_url(namespace, "http"), {"path": "/"}, **HTMX)
    assert "No ready endpoint serves this port" in response.content.decode()
    assert web.get(_url(namespace, "http", "open/")).status_code == 503


@pytest.mark.parametrize("path", ["/..%2fsecret", "/%2e%2e/x", "/a/../../b", "http://other-host.invalid/", "/a%2fb"])
def test_a_path_out_of_the_service_is_refused_with_the_input_kept(
    web: Client, namespace: str, web_pod: str, path: str
) -> None:
    response = web.post(_url(namespace, "http"), {"path": path})
    page = response.content.decode()
    assert response.status_code == 422
    assert 'class="notice notice-error"' in page
    assert f'value="{html.escape(path)}"' in page
    assert not AuditEntry.objects.filter(action="test port").exists()  # nothing was sent


def test_a_traversal_in_an_opened_url_is_refused(web: Client, namespace: str, web_pod: str) -> None:
    for rest in ("open/..%2fsecret", "open/%252e%252e/x", "open/a%2f..%2f..%2fb"):
        response = web.get(_url(namespace, "http", rest))
        assert response.status_code == 422, rest
        assert "may not" in response.content.decode()
    assert web.get(_url(namespace, "http", "view/"), {"path": "/..%2f"}).status_code == 422


# --- who may ----------------------------------------------------------------------------------------------------------


def test_a_viewer_is_refused_by_the_console_and_by_the_cluster(
    client: Client, people: SimpleNamespace, cluster: Cluster, namespace: str, web_pod: str
) -> None:
    client.force_login(people.viewer)
    for method, rest in (("get", ""), ("post", ""), ("get", "view/"), ("get", "open/")):
        assert getattr(client, method)(_url(namespace, "http", rest)).status_code == 403
    assert AuditEntry.objects.filter(username="viewer", result="denied").count() == 4

    # The cluster's RBAC says the same on its own: the View roles hold no services/proxy.
    viewer = kube.Actor(cluster, rbac.identity_for(people.viewer, "a-request"))
    with pytest.raises(reach.Unreached) as refused:
        reach.fetch(viewer, namespace, "web", {"name": "http", "port": 80}, "/")
    assert refused.value.status == 403
    assert 'cannot get resource "services/proxy"' in refused.value.detail  # the API server's words, audited
    assert "The cluster refused" in refused.value.message and "services/proxy" in refused.value.message


def test_an_editor_the_cluster_refuses_is_told_so(
    web: Client, admin_api: k8s.ApiClient, people: SimpleNamespace, namespace: str, web_pod: str
) -> None:
    """The console's roles and the cluster's disagree (a cluster whose roles were set up before services/proxy was
    in them, say): the cluster's refusal is shown, audited as denied."""
    rbac_api = k8s.RbacAuthorizationV1Api(admin_api)
    binding = f"{kube.prefix()}-grant-{Grant.objects.get(user=people.editor).pk}"
    bound = rbac_api.read_namespaced_role_binding(binding, namespace)
    rbac_api.delete_namespaced_role_binding(binding, namespace)
    bound.metadata = k8s.V1ObjectMeta(name=binding)
    bound.role_ref.name = rbac.role_name(Role.NS_VIEW.value)
    rbac_api.create_namespaced_role_binding(namespace, bound)

    def refused() -> bool:
        return "The cluster refused" in web.post(_url(namespace, "http"), {"path": "/"}, **HTMX).content.decode()

    eventually(refused, 10, interval=0.1)
    assert AuditEntry.objects.filter(action="test port", result="denied").exists()


# --- opening a port in the browser -------------------------------------------------------------------------------------


def test_an_editor_opens_the_service_in_a_sandbox(web: Client, namespace: str, web_pod: str) -> None:
    view = web.get(_url(namespace, "http", "view/"), {"path": "/"})
    assert view.status_code == 200
    assert f'<iframe class="reach-frame" sandbox src="{_url(namespace, "http", "open/")}"' in view.content.decode()

    opened = web.get(_url(namespace, "http", "open/"))
    assert opened.status_code == 200
    assert b"Hello from the test host" in opened.content
    policy = opened["Content-Security-Policy"]
    assert policy.startswith("sandbox;") and "default-src 'none'" in policy and "frame-ancestors 'self'" in policy
    assert opened["X-Content-Type-Options"] == "nosniff"
    assert opened["X-Frame-Options"] == "SAMEORIGIN"
    # The Service's root-relative link (rewritten by the API server to its proxy path) points at the console's URL.
    assert f'href="{_url(namespace, "http", "open/echo")}"'.encode() in opened.content
    assert b"/api/v1/" not in opened.content
    assert AuditEntry.objects.get(action="open port").detail.startswith("port http, GET /: HTTP 200")

    assert json.loads(web.get(_url(namespace, "http", "open/echo"), {"q": "1"}).content)["path"] == "/echo?q=1"


def test_an_opened_page_sets_no_cookie_and_follows_redirects_only_inside(
    web: Client, namespace: str, web_pod: str
) -> None:
    hostile = web.get(_url(namespace, "http", "open/hostile"))
    assert hostile.status_code == 200 and b"<script>" in hostile.content  # served, but in the sandbox
    assert "Set-Cookie" not in hostile.headers and not hostile.cookies
    assert hostile["Content-Security-Policy"].startswith("sandbox;")

    inside = web.get(_url(namespace, "http", "open/inside"))
    assert (inside.status_code, inside["Location"]) == (302, _url(namespace, "http", "open/"))

    away = web.get(_url(namespace, "http", "open/away"))
    assert away.status_code == 200 and "Location" not in away.headers
    assert "redirects to http://other-host.invalid/landing" in away.content.decode()


@pytest.mark.browser
def test_a_hostile_page_changes_nothing_of_the_console(
    browser: Browser, live_server, transactional_db, make_user, cluster: Cluster, namespace: str, web_pod: str
) -> None:
    """The Service's page sets a cookie, runs scripts that write the console's cookie, storage and globals, and
    links away: in the frame and opened alone, none of it reaches the console's origin."""
    make_user("opener", role=Role.NS_EDIT, cluster=cluster, namespace=namespace)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        log_in(page, live_server.url, "opener")
        cookies = sorted((c["name"], c["value"]) for c in context.cookies())

        # The Service's page, from its test result.
        page.goto(f"{live_server.url}/clusters/local/namespaces/{namespace}/services/web/")
        page.fill("#reach-path-http", "/hostile")
        page.click("#reach form button[type=submit]")
        page.wait_for_selector("#reach-result-http >> text=HTTP 200 OK")
        page.click("#reach-result-http >> text=Open in the browser")
        frame = page.frame_locator("iframe.reach-frame")
        frame.locator("h1", has_text="Hostile page").wait_for()
        page.wait_for_timeout(300)
        assert page.evaluate("window.hostileRan") is None
        assert page.evaluate("document.body.dataset.hostile") is None
        assert page.evaluate("localStorage.getItem('hostile')") is None

        # Opened alone, at the top.
        page.goto(f"{live_server.url}{_url(namespace, 'http', 'open/hostile')}")
        page.locator("h1", has_text="Hostile page").wait_for()
        page.wait_for_timeout(300)
        assert page.evaluate("window.hostileRan") is None

        page.goto(f"{live_server.url}/clusters/")
        assert page.evaluate("localStorage.getItem('hostile')") is None
        assert sorted((c["name"], c["value"]) for c in context.cookies()) == cookies
    finally:
        context.close()
