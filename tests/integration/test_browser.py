"""Real-browser flows: Debian's headless Chromium driven by Playwright against a live console and the real API
server, once in English and once in Chinese. Screenshots of the main pages land in artifacts/screenshots/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from kubernetes import client as k8s
from playwright.sync_api import Browser, Page, expect, sync_playwright

from clusters.models import Cluster, Role

pytestmark = [pytest.mark.cluster, pytest.mark.browser]

SHOTS = Path(settings.BASE_DIR) / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("CONSOLE_CHROMIUM", "/usr/bin/chromium")
LANGUAGES = {
    "en": {"locale": "en-US", "services": "Services", "create": "Create Service"},
    "zh-hans": {"locale": "zh-CN", "services": "服务", "create": "创建服务"},
}


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    # Playwright's sync API keeps an event loop in this thread; the live server's ORM calls run elsewhere.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        yield launched
        launched.close()


@pytest.fixture
def console(
    live_server, transactional_db, cluster: Cluster, make_user, namespace: str, admin_api: k8s.ApiClient
) -> dict:
    make_user("editor", role=Role.NS_EDIT, cluster=cluster, namespace=namespace)
    make_user("viewer", role=Role.NS_VIEW, cluster=cluster, namespace=namespace)
    k8s.AppsV1Api(admin_api).create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "shop"},
            "spec": {
                "selector": {"matchLabels": {"app": "shop"}},
                "template": {
                    "metadata": {"labels": {"app": "shop"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]},
                },
            },
        },
    )
    return {"url": live_server.url, "services": f"{live_server.url}/clusters/local/namespaces/{namespace}/services/"}


def open_page(browser: Browser, language: str, width: int = 1280) -> Page:
    context = browser.new_context(locale=LANGUAGES[language]["locale"], viewport={"width": width, "height": 900})
    context.set_default_timeout(15_000)
    return context.new_page()


def log_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", f"pw-{username}")
    page.click("button[type=submit].primary")
    page.wait_for_url(f"{base}/clusters/")


def shot(page: Page, name: str) -> None:
    """The whole page, with the window made as tall as the page so sticky bars sit where they belong."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size or {"width": 1280, "height": 900}
    height = max(size["height"], page.evaluate("document.documentElement.scrollHeight"))
    page.set_viewport_size({"width": size["width"], "height": height})
    page.screenshot(path=str(SHOTS / f"{name}.png"))
    page.set_viewport_size(size)


def choose_type(page: Page, value: str) -> None:
    """Click an access-type card and wait for the HTMX re-render."""
    with page.expect_response(lambda r: r.request.method == "POST"):
        page.click(f"label.choice-card:has(input[value={value}])")
    expect(page.locator(f"input[name=type][value={value}]")).to_be_checked()


def click_and_wait(page: Page, selector: str) -> None:
    with page.expect_response(lambda r: r.request.method == "POST"):
        page.click(selector)


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_editor_flow(browser: Browser, console: dict, admin_api: k8s.ApiClient, namespace: str, language: str) -> None:
    words = LANGUAGES[language]
    page = open_page(browser, language)
    log_in(page, console["url"], "editor")
    page.goto(console["services"])
    expect(page.locator("h1")).to_have_text(words["services"])
    expect(page.locator(".empty")).to_be_visible()

    # Create a NodePort Service with two ports and session affinity.
    page.click("a[href$='/services/create/']")
    expect(page.locator("h1")).to_have_text(words["create"])
    shot(page, f"{language}-form-clusterip")
    choose_type(page, "NodePort")
    page.fill("#id_name", "shop-web")
    page.fill("#id_ports-0-name", "http")
    page.fill("#id_ports-0-port", "80")
    page.fill("#id_ports-0-target_port", "8080")
    click_and_wait(page, "button[formaction$='/rows/ports/add/']")
    page.fill("#id_ports-1-name", "metrics")
    page.fill("#id_ports-1-port", "9090")
    page.check("#id_session_affinity")
    page.fill("#id_session_timeout", "120")
    shot(page, f"{language}-form-nodeport")
    unlabelled = page.evaluate(
        """[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
             .filter(e => !e.labels.length && !e.getAttribute('aria-label') && !e.closest('[hidden]'))
             .map(e => e.name || e.id)"""
    )
    assert unlabelled == []  # every field has a label a screen reader can announce

    # Switch the type back and forth: everything typed stays.
    choose_type(page, "LoadBalancer")
    shot(page, f"{language}-form-loadbalancer")
    choose_type(page, "ClusterIP")
    choose_type(page, "NodePort")
    expect(page.locator("#id_name")).to_have_value("shop-web")
    expect(page.locator("#id_ports-1-port")).to_have_value("9090")
    expect(page.locator("#id_session_timeout")).to_have_value("120")
    expect(page.locator("#id_session_affinity")).to_be_checked()

    # 引用负载标签: pick the Deployment's labels.
    click_and_wait(page, "button[formaction$='/workloads/']")
    expect(page.locator("dialog[open]")).to_contain_text("shop")
    click_and_wait(page, "button[value='Deployment/shop']")
    expect(page.locator("#id_selector-0-key")).to_have_value("app")
    expect(page.locator("#id_selector-0-value")).to_have_value("shop")

    page.click("#service-form .form-actions button.primary")
    page.wait_for_url(f"{console['services']}shop-web/")
    expect(page.locator(".notice-success")).to_be_visible()
    shot(page, f"{language}-detail")
    service = k8s.CoreV1Api(admin_api).read_namespaced_service("shop-web", namespace)
    assert [(p.name, p.port) for p in service.spec.ports] == [("http", 80), ("metrics", 9090)]
    assert service.spec.session_affinity_config.client_ip.timeout_seconds == 120
    assert service.spec.selector == {"app": "shop"}

    # A validation error shows on its field, and the input is kept.
    page.goto(f"{console['services']}create/")
    page.fill("#id_name", "Svc-01")
    page.fill("#id_ports-0-port", "80")
    page.fill("#id_selector-0-key", "app")
    page.fill("#id_selector-0-value", "x")
    with page.expect_response(lambda r: r.status == 422):
        page.click("#service-form .form-actions button.primary")
    expect(page.locator("#id_name")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#id_name_error")).to_be_visible()
    expect(page.locator("#id_name")).to_have_value("Svc-01")

    # Edit: change a port.
    page.goto(f"{console['services']}shop-web/edit/")
    page.fill("#id_ports-1-port", "9100")
    page.click("#service-form .form-actions button.primary")
    page.wait_for_url(f"{console['services']}shop-web/")
    assert k8s.CoreV1Api(admin_api).read_namespaced_service("shop-web", namespace).spec.ports[1].port == 9100

    # Create from YAML.
    page.goto(console["services"])
    shot(page, f"{language}-list")
    page.click("a[href$='/services/create-yaml/']")
    page.fill(
        "#yaml-text",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: from-yaml\nspec:\n  ports:\n  - port: 53\n    protocol: UDP\n",
    )
    shot(page, f"{language}-yaml")
    page.click("#yaml-form button.primary")
    page.wait_for_url(f"{console['services']}from-yaml/")

    # Delete through the row menu and its confirmation dialog.
    page.goto(console["services"])
    row = page.locator("tr", has=page.locator("a", has_text="from-yaml"))
    row.locator("summary").click()
    row.locator(".menu-items .danger").click()
    dialog = page.locator("dialog[open]")
    expect(dialog).to_contain_text("from-yaml")
    assert dialog.evaluate("d => d.matches(':modal')")
    assert dialog.locator("form").get_attribute("action").endswith("/services/from-yaml/delete/")
    dialog.locator("button[type=submit]").click()
    page.wait_for_url(console["services"])
    expect(page.locator(".notice-success")).to_be_visible()
    assert [s.metadata.name for s in k8s.CoreV1Api(admin_api).list_namespaced_service(namespace).items] == ["shop-web"]
    page.context.close()


def test_viewer_sees_no_write_buttons(
    browser: Browser, console: dict, admin_api: k8s.ApiClient, namespace: str
) -> None:
    k8s.CoreV1Api(admin_api).create_namespaced_service(
        namespace, {"metadata": {"name": "visible"}, "spec": {"ports": [{"port": 80}]}}
    )
    page = open_page(browser, "en", width=1920)
    log_in(page, console["url"], "viewer")
    page.goto(console["services"])
    expect(page.locator("a", has_text="visible")).to_be_visible()
    assert page.locator("a[href$='/services/create/']").count() == 0
    assert page.locator("a[href$='/services/create-yaml/']").count() == 0
    assert page.locator("details.menu").count() == 0
    shot(page, "en-list-viewer-1920")
    page.context.close()


def test_the_namespace_picker_switches_namespace(
    browser: Browser, console: dict, cluster: Cluster, make_user, admin_api: k8s.ApiClient, namespace: str
) -> None:
    other = f"{namespace}-other"
    core = k8s.CoreV1Api(admin_api)
    core.create_namespace({"metadata": {"name": other}})
    core.create_namespaced_service(other, {"metadata": {"name": "over-there"}, "spec": {"ports": [{"port": 80}]}})
    make_user("operator", role=Role.CLUSTER_VIEW, cluster=cluster)
    page = open_page(browser, "en")
    log_in(page, console["url"], "operator")
    page.goto(console["services"])
    page.select_option("#namespace-picker", other)
    page.wait_for_url(f"{console['url']}/clusters/local/namespaces/{other}/services/")
    expect(page.locator("a", has_text="over-there")).to_be_visible()
    expect(page.locator("#namespace-picker")).to_have_value(other)
    page.context.close()


def test_live_validation_shows_the_api_servers_verdict_before_submit(
    browser: Browser, console: dict, admin_api: k8s.ApiClient, namespace: str
) -> None:
    k8s.CoreV1Api(admin_api).create_namespaced_service(
        namespace, {"metadata": {"name": "web-taken"}, "spec": {"ports": [{"port": 80}]}}
    )
    page = open_page(browser, "en")
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    log_in(page, console["url"], "editor")
    page.goto(f"{console['services']}create/")
    choose_type(page, "NodePort")
    page.fill("#id_selector-0-key", "app")
    page.fill("#id_selector-0-value", "web")
    page.fill("#id_ports-0-port", "80")
    page.fill("#id_ports-0-node_port", "8080")
    page.fill("#id_name", "web-taken")  # typed last: validation runs 0.7 s after the last keystroke
    expect(page.locator("#errors-name")).to_contain_text("already exists", timeout=10_000)
    expect(page.locator("#errors-ports-0-node_port")).to_contain_text(
        "outside the cluster's node port range 30000-32767"
    )
    expect(page.locator("#validation-status")).to_contain_text("would refuse")
    expect(page.locator("#id_name")).to_have_value("web-taken")  # nothing typed was replaced
    shot(page, "en-live-validation")
    page.fill("#id_name", "web-free")
    page.fill("#id_ports-0-node_port", "")
    expect(page.locator("#validation-status")).to_contain_text("accepts this Service", timeout=10_000)
    assert [s.metadata.name for s in k8s.CoreV1Api(admin_api).list_namespaced_service(namespace).items] == ["web-taken"]
    assert errors == []  # every error slot the answers swap exists; no CSP violation
    page.context.close()
