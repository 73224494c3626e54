"""Real-browser flows: Debian's headless Chromium driven by Playwright against a live console and the real API
server, once in English and once in Chinese, and open pages that follow changes made elsewhere. Screenshots of the
main pages land in artifacts/screenshots/."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from kubernetes import client as k8s
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from clusters.models import AuditEntry, Cluster, Role
from tests.helpers import create_deployment, make_node, run_pod, set_pod_ready

pytestmark = [pytest.mark.cluster, pytest.mark.browser]

SHOTS = Path(settings.BASE_DIR) / "artifacts" / "screenshots"
LANGUAGES = {
    "en": {"locale": "en-US", "services": "Services", "create": "Create Service"},
    "zh-hans": {"locale": "zh-CN", "services": "服务", "create": "创建服务"},
}


@pytest.fixture
def console(
    live_server, transactional_db, cluster: Cluster, make_user, namespace: str, admin_api: k8s.ApiClient
) -> dict:
    make_user("editor", role=Role.NS_EDIT, cluster=cluster, namespace=namespace)
    make_user("viewer", role=Role.NS_VIEW, cluster=cluster, namespace=namespace)
    create_deployment(admin_api, namespace, "shop", {"app": "shop"})
    return {"url": live_server.url, "services": f"{live_server.url}/clusters/local/namespaces/{namespace}/services/"}


# Every page open_page opens reports its console errors and uncaught exceptions here, and no_browser_errors fails
# the test on any (DESIGN.md: a browser console error is a failing test). A list, not a per-test object: the layout
# tests drive their pages from a thread of their own.
BROWSER_ERRORS: list[str] = []


REFUSED = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")


def an_answer_the_page_draws(page: Page, message: ConsoleMessage) -> bool:
    """Chromium logs every answer with a 4xx status as a console error, whatever the page makes of it. Two kinds
    are the console working as designed, and the tests check what the page draws of them: 409 (a conflict) and 422
    (a form with errors), which base.html's htmx-config swaps in as answers, from the console's own URLs; and a
    403 or 404 page the test navigated to on purpose (the page's own address, not a file it loads). A static file
    that is missing, a 5xx, or a 4xx for any other request stays an error."""
    refused = REFUSED.match(message.text)
    url = message.location.get("url", "")
    if refused is None or "/static/" in url:
        return False
    status = int(refused.group(1))
    return status in (409, 422) or (status in (403, 404) and url == page.url)


def watch_for_errors(page: Page) -> None:
    def console_message(message: ConsoleMessage) -> None:
        if message.type == "error" and not an_answer_the_page_draws(page, message):
            BROWSER_ERRORS.append(f"console error at {page.url}: {message.text} ({message.location.get('url')})")

    page.on("console", console_message)
    page.on("pageerror", lambda error: BROWSER_ERRORS.append(f"uncaught exception at {page.url}: {error}"))


@pytest.fixture(autouse=True)
def no_browser_errors() -> Iterator[None]:
    """Fails the test (at teardown, once its pages are closed) on any console error or uncaught exception."""
    BROWSER_ERRORS.clear()
    yield
    errors = list(BROWSER_ERRORS)
    BROWSER_ERRORS.clear()
    assert errors == [], "the browser logged errors:\n" + "\n".join(errors)


def open_page(browser: Browser, language: str, width: int = 1280) -> Page:
    context = browser.new_context(locale=LANGUAGES[language]["locale"], viewport={"width": width, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    watch_for_errors(page)
    return page


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
    page.wait_for_url(console["services"])  # 确定 returns to the list, with the new row
    expect(page.locator(".notice-success")).to_be_visible()
    expect(page.locator("a", has_text="shop-web")).to_be_visible()
    page.goto(f"{console['services']}shop-web/")
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
    page.wait_for_url(console["services"])
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
    page.wait_for_url(console["services"])
    expect(page.locator("a", has_text="from-yaml")).to_be_visible()

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
    page.context.close()


# --- issue 13: the seed's workflow by keyboard, the service port following the container port, drafts, dblclick ---


def active(page: Page) -> str:
    """The focused element, as "id" or "tag[name=value]"."""
    return page.evaluate(
        """(() => { const e = document.activeElement;
             return e.id || `${e.tagName.toLowerCase()}[${e.name || ''}=${e.value || ''}]`; })()"""
    )


def tab_to(page: Page, selector: str, limit: int = 80) -> None:
    """Press Tab until ``selector`` has the focus."""
    for _ in range(limit):
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{selector} was not reached with Tab; the focus is on {active(page)}")


def press_and_wait(page: Page, key: str) -> None:
    with page.expect_response(lambda r: r.request.method == "POST" and "/validate/" not in r.url):
        page.keyboard.press(key)
    page.wait_for_load_state()


@pytest.mark.parametrize("width", [1280, 390], ids=["desktop", "phone"])
def test_the_whole_create_flow_by_keyboard(
    browser: Browser, console: dict, admin_api: k8s.ApiClient, namespace: str, width: int
) -> None:
    page = open_page(browser, "en", width=width)
    log_in(page, console["url"], "editor")
    page.goto(f"{console['services']}create/")

    # The access type: Tab into the radio group, an arrow key chooses NodePort; the focus stays on it.
    tab_to(page, "input[name=type]:checked")
    press_and_wait(page, "ArrowRight")
    expect(page.locator("input[name=type][value=NodePort]")).to_be_checked()
    expect(page.locator("#id_ports-0-node_port")).to_be_visible()
    expect(page.locator("input[name=type][value=NodePort]")).to_be_focused()

    page.keyboard.press("Tab")
    expect(page.locator("#id_name")).to_be_focused()
    page.keyboard.type("kb-web")

    tab_to(page, "#id_selector-0-key")
    page.keyboard.type("app")
    page.keyboard.press("Tab")
    page.keyboard.type("web")
    tab_to(page, "#add-selector")
    press_and_wait(page, "Enter")
    expect(page.locator("#id_selector-1-key")).to_be_focused()  # the new row's first field
    page.keyboard.type("tier")
    page.keyboard.press("Tab")
    page.keyboard.type("front")

    tab_to(page, "#id_ports-0-name")
    page.keyboard.type("http")
    tab_to(page, "#id_ports-0-target_port")
    page.keyboard.type("8080")
    expect(page.locator("#id_ports-0-port")).to_have_value("8080")  # the service port follows

    tab_to(page, "#add-ports")
    press_and_wait(page, "Space")
    expect(page.locator("#id_ports-1-protocol")).to_be_focused()
    tab_to(page, "button[formaction$='/rows/ports/remove/'][value='1']")
    press_and_wait(page, "Enter")
    expect(page.locator("#id_ports-0-protocol")).to_be_focused()  # the row before the removed last one

    tab_to(page, "#service-form .form-actions button.primary")
    page.keyboard.press("Enter")
    page.wait_for_url(console["services"])
    expect(page.locator(".notice-success")).to_contain_text("kb-web")
    expect(page.locator("a", has_text="kb-web")).to_be_visible()
    service = k8s.CoreV1Api(admin_api).read_namespaced_service("kb-web", namespace)
    assert service.spec.type == "NodePort"
    assert service.spec.selector == {"app": "web", "tier": "front"}
    assert [(p.name, p.port, p.target_port) for p in service.spec.ports] == [("http", 8080, 8080)]
    page.context.close()


def test_the_workload_dialog_by_keyboard_and_escape(browser: Browser, console: dict) -> None:
    page = open_page(browser, "en")
    log_in(page, console["url"], "editor")
    page.goto(f"{console['services']}create/")
    tab_to(page, "#workloads-button")
    press_and_wait(page, "Enter")
    dialog = page.locator("dialog[open]")
    expect(dialog).to_contain_text("shop")
    assert dialog.evaluate("d => d.matches(':modal')")
    expect(page.locator("button[value='Deployment/shop']")).to_be_focused()

    page.keyboard.press("Escape")
    expect(page.locator("dialog[open]")).to_have_count(0)
    expect(page.locator("#workloads-button")).to_be_focused()

    press_and_wait(page, "Enter")
    expect(page.locator("button[value='Deployment/shop']")).to_be_focused()
    press_and_wait(page, "Enter")
    expect(page.locator("#id_selector-0-key")).to_have_value("app")
    expect(page.locator("#id_selector-0-value")).to_have_value("shop")
    # The selector is done: the keyboard goes on to the next part of the form, the first port's first field.
    expect(page.locator("#id_ports-0-protocol")).to_be_focused()
    page.context.close()


def validated(page: Page, keys: str) -> None:
    """Types ``keys`` wherever the focus is, then waits for the live validation answer and for it to settle."""
    with page.expect_response(lambda r: "/validate/" in r.url):
        page.keyboard.type(keys)
    page.wait_for_timeout(600)  # htmx settles 20 ms after the swap; the reported jump came within half a second


@pytest.mark.parametrize("leave", ["close-button", "escape", "use"])
def test_a_live_validation_answer_never_takes_the_focus_after_the_workload_dialog(
    browser: Browser, console: dict, leave: str
) -> None:
    """Once the dialog had been used (its re-render marks the button it returns to with autofocus), every live
    validation answer moved the focus back to that button, and the next keystrokes went nowhere."""
    page = open_page(browser, "en")
    log_in(page, console["url"], "editor")
    page.goto(f"{console['services']}create/")
    click_and_wait(page, "#workloads-button")
    expect(page.locator("dialog[open]")).to_contain_text("shop")
    expect(page.locator("button[value='Deployment/shop']")).to_be_focused()  # modal now
    if leave == "close-button":
        click_and_wait(page, "dialog[open] .dialog-actions button")
    elif leave == "escape":
        page.keyboard.press("Escape")
    else:
        click_and_wait(page, "button[value='Deployment/shop']")
    expect(page.locator("dialog[open]")).to_have_count(0)

    field = page.locator("#id_ports-0-name")
    field.click()
    validated(page, "web")
    assert active(page) == "id_ports-0-name"  # the answer left the focus where the user is typing
    validated(page, "-api")
    assert active(page) == "id_ports-0-name"
    page.keyboard.type("-v2")
    expect(field).to_have_value("web-api-v2")  # no keystroke lost
    page.context.close()


def test_a_live_validation_answer_never_takes_the_focus_after_a_row_was_added(browser: Browser, console: dict) -> None:
    page = open_page(browser, "en")
    log_in(page, console["url"], "editor")
    page.goto(f"{console['services']}create/")
    click_and_wait(page, "#add-selector")
    expect(page.locator("#id_selector-1-key")).to_be_focused()  # the user's own action moves it: marked autofocus
    field = page.locator("#id_name")
    field.click()
    validated(page, "web")
    assert active(page) == "id_name"
    page.keyboard.type("-x")
    expect(field).to_have_value("web-x")
    page.context.close()


def test_ok_with_an_error_of_the_whole_form_puts_the_focus_on_its_message(
    browser: Browser, console: dict, admin_api: k8s.ApiClient, namespace: str
) -> None:
    """A conflict (the Service changed since the form was opened) is said in #form-errors, beside no field: the
    focus goes to that message, not to <body> (where the next Tab would start from the top of the page)."""
    core = k8s.CoreV1Api(admin_api)
    core.create_namespaced_service(namespace, {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}})
    page = open_page(browser, "en")
    log_in(page, console["url"], "editor")
    page.goto(f"{console['services']}web/edit/")
    core.patch_namespaced_service("web", namespace, {"metadata": {"annotations": {"changed": "elsewhere"}}})
    page.fill("#id_ports-0-port", "8080")
    with page.expect_response(lambda r: r.status == 409):
        page.click("#service-form .form-actions button.primary")
    message = page.locator("#form-errors .notice-error")
    expect(message).to_be_visible()
    expect(message).to_be_focused()
    page.keyboard.press("Tab")  # the keyboard goes on from the message: its link to the current version
    expect(page.locator("#form-errors a")).to_be_focused()
    page.context.close()


FOCUSABLE = "a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]:not([tabindex='-1'])"


@pytest.mark.parametrize("width", [1280, 390], ids=["desktop", "phone"])
def test_the_first_tab_stop_skips_to_the_content(browser: Browser, console: dict, width: int) -> None:
    page = open_page(browser, "en", width=width)
    page.goto(f"{console['url']}/login/")  # its user name field has the focus; the skip link still comes first
    assert page.evaluate(f"document.querySelector({FOCUSABLE!r}).className") == "skip-link"
    log_in(page, console["url"], "editor")
    page.goto(console["services"])
    assert page.evaluate(f"document.querySelector({FOCUSABLE!r}).className") == "skip-link"
    page.keyboard.press("Tab")
    skip = page.locator(".skip-link")
    expect(skip).to_be_focused()
    expect(skip).to_have_text("Skip to content")
    expect(skip).to_be_in_viewport()  # shown once the keyboard reaches it
    page.screenshot(path=str(SHOTS / f"en-skip-link-{width}.png"))
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")  # the first control of the page itself, past the top bar and the navigation
    first = f"document.querySelector('main').querySelector({FOCUSABLE!r}) === document.activeElement"
    assert page.evaluate(first), active(page)
    page.context.close()


def test_escape_closes_the_phone_menu_and_gives_the_focus_back_to_its_toggle(browser: Browser, console: dict) -> None:
    page = open_page(browser, "en", width=390)
    log_in(page, console["url"], "editor")
    page.goto(console["services"])
    menu = page.locator("details.nav-menu")
    tab_to(page, ".nav-menu > summary")
    page.keyboard.press("Enter")
    expect(menu).to_have_attribute("open", "")
    page.keyboard.press("Tab")
    expect(menu.locator(".sidenav a").first).to_be_focused()
    page.keyboard.press("Escape")
    expect(menu).not_to_have_attribute("open", "")
    expect(menu.locator("summary")).to_be_focused()
    page.context.close()


def test_a_service_port_typed_by_hand_is_never_overwritten(browser: Browser, console: dict) -> None:
    page = open_page(browser, "en")
    log_in(page, console["url"], "editor")
    page.goto(f"{console['services']}create/")
    target, port = page.locator("#id_ports-0-target_port"), page.locator("#id_ports-0-port")
    target.press_sequentially("8080")
    expect(port).to_have_value("8080")
    target.fill("")
    target.press_sequentially("9090")
    expect(port).to_have_value("9090")  # still following: the user never typed it
    port.fill("")
    port.press_sequentially("80")
    target.fill("")
    target.press_sequentially("8443")
    expect(target).to_have_value("8443")
    expect(port).to_have_value("80")  # typed by hand: kept
    port.fill("")  # emptied: it follows again
    port.dispatch_event("input")
    target.fill("")
    target.press_sequentially("7070")
    expect(port).to_have_value("7070")
    page.context.close()


def test_a_double_click_on_ok_creates_once_and_logs_no_failure(
    browser: Browser, console: dict, admin_api: k8s.ApiClient, namespace: str
) -> None:
    page = open_page(browser, "en")
    log_in(page, console["url"], "editor")
    page.goto(f"{console['services']}create/")
    page.fill("#id_name", "double")
    page.fill("#id_selector-0-key", "app")
    page.fill("#id_selector-0-value", "web")
    page.fill("#id_ports-0-port", "80")
    page.dblclick("#service-form .form-actions button.primary")
    page.wait_for_url(console["services"])
    expect(page.locator("a", has_text="double")).to_be_visible()
    assert [s.metadata.name for s in k8s.CoreV1Api(admin_api).list_namespaced_service(namespace).items] == ["double"]
    results = list(AuditEntry.objects.filter(object_name="double").values_list("action", "result"))
    assert results == [("create", "success")]
    page.context.close()


def test_a_reload_keeps_what_was_typed_until_saved_or_cancelled(
    browser: Browser, console: dict, admin_api: k8s.ApiClient, namespace: str
) -> None:
    page = open_page(browser, "en")
    log_in(page, console["url"], "editor")
    create = f"{console['services']}create/"
    page.goto(create)
    choose_type(page, "NodePort")
    page.fill("#id_name", "drafted")
    page.fill("#id_selector-0-key", "app")
    page.fill("#id_selector-0-value", "web")
    page.fill("#id_ports-0-port", "80")
    click_and_wait(page, "button[formaction$='/rows/ports/add/']")
    page.fill("#id_ports-1-name", "metrics")
    page.fill("#id_ports-1-port", "9090")
    page.fill("#id_ports-0-name", "http")

    page.reload()
    expect(page.locator("#id_ports-1-port")).to_have_value("9090")
    expect(page.locator("#id_name")).to_have_value("drafted")
    expect(page.locator("#id_ports-0-name")).to_have_value("http")
    expect(page.locator("input[name=type][value=NodePort]")).to_be_checked()

    page.click("#service-form .form-actions button.primary")
    page.wait_for_url(console["services"])
    page.goto(create)
    expect(page.locator("#id_name")).to_have_value("")  # saved: the draft is gone
    assert page.evaluate("Object.keys(sessionStorage).filter(k => k.startsWith('console-draft:'))") == []

    expect(page.locator("#draft-notice")).to_be_hidden()  # nothing was restored
    page.fill("#id_name", "never-saved")
    page.click("a[data-draft-clear]")
    page.wait_for_url(console["services"])
    page.goto(create)
    expect(page.locator("#id_name")).to_have_value("")  # cancelled: gone too
    assert [s.metadata.name for s in k8s.CoreV1Api(admin_api).list_namespaced_service(namespace).items] == ["drafted"]
    page.context.close()


def test_a_restored_draft_is_announced_and_can_be_discarded(browser: Browser, console: dict) -> None:
    page = open_page(browser, "en")
    log_in(page, console["url"], "editor")
    create = f"{console['services']}create/"
    page.goto(create)
    notice = page.locator("#draft-notice")
    expect(notice).to_be_hidden()
    page.fill("#id_name", "half-done")
    page.reload()
    expect(page.locator("#id_name")).to_have_value("half-done")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("A draft of your earlier input was restored.")
    shot(page, "en-form-draft-restored")

    with page.expect_navigation():  # the page again, as it comes
        page.click("#draft-notice button[data-draft-discard]")
    expect(page.locator("#id_name")).to_have_value("")
    expect(notice).to_be_hidden()
    assert page.evaluate("Object.keys(sessionStorage).filter(k => k.startsWith('console-draft:'))") == []
    page.reload()  # and it stays gone
    expect(page.locator("#id_name")).to_have_value("")
    expect(notice).to_be_hidden()
    page.context.close()


def test_a_delete_confirmation_opened_by_a_link_closes_with_escape(
    browser: Browser, console: dict, admin_api: k8s.ApiClient, namespace: str
) -> None:
    k8s.CoreV1Api(admin_api).create_namespaced_service(
        namespace, {"metadata": {"name": "kept"}, "spec": {"ports": [{"port": 80}]}}
    )
    page = open_page(browser, "en")
    log_in(page, console["url"], "editor")
    page.goto(f"{console['services']}kept/?delete")
    dialog = page.locator("#delete-dialog")
    expect(dialog).to_be_visible()
    assert dialog.evaluate("d => d.matches(':modal')")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert [s.metadata.name for s in k8s.CoreV1Api(admin_api).list_namespaced_service(namespace).items] == ["kept"]
    page.context.close()


@pytest.mark.parametrize(("language", "width"), [("en", 1280), ("zh-hans", 390)], ids=["en-desktop", "zh-hans-phone"])
def test_the_small_rules_of_the_form_in_the_browser(
    browser: Browser, console: dict, admin_api: k8s.ApiClient, namespace: str, language: str, width: int
) -> None:
    """A name over 63 characters is kept as typed and refused with a message; a session timeout is not judged
    while session affinity is off; a refusal the API server words in English is shown in the user's language."""
    page = open_page(browser, language, width=width)
    log_in(page, console["url"], "editor")
    page.goto(f"{console['services']}create/")
    long_name = "n" * 70
    page.fill("#id_name", long_name)
    expect(page.locator("#id_name")).to_have_value(long_name)  # not cut at 63 by the browser
    page.fill("#id_selector-0-key", "app")
    page.fill("#id_selector-0-value", "web")
    page.fill("#id_ports-0-port", "80")
    page.fill("#id_session_timeout", "999999")  # out of range, but affinity is off: not judged
    click_and_wait(page, "#service-form .form-actions button.primary")
    refused = {
        "en": "A new Service's name must be 4 to 63 characters long",
        "zh-hans": "新服务的名称长度必须为 4 到 63 个字符",
    }
    expect(page.locator("#errors-name")).to_contain_text(refused[language])
    expect(page.locator("#errors-session_timeout")).to_have_text("")
    expect(page.locator("#id_name")).to_have_value(long_name)

    # A node port outside the cluster's range: the API server says so in English; the page in the user's language.
    choose_type(page, "NodePort")
    page.fill("#id_name", "small-rules")
    page.fill("#id_ports-0-node_port", "8080")
    click_and_wait(page, "#service-form .form-actions button.primary")
    outside = {
        "en": "8080 is outside the cluster's node port range 30000-32767.",
        "zh-hans": "8080 不在集群的节点端口范围 30000-32767 内。",
    }
    expect(page.locator("#errors-ports-0-node_port")).to_contain_text(outside[language])
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    page.fill("#id_ports-0-node_port", "")
    click_and_wait(page, "#service-form .form-actions button.primary")
    page.wait_for_url(console["services"])  # saved despite the timeout typed while affinity was off
    service = k8s.CoreV1Api(admin_api).read_namespaced_service("small-rules", namespace)
    assert service.spec.session_affinity == "None" and service.spec.session_affinity_config is None
    page.context.close()


# --- issue 15: open pages that follow the cluster ------------------------------------------------------------------


def slice_ready(admin_api: k8s.ApiClient, namespace: str, service: str) -> int:
    slices = k8s.DiscoveryV1Api(admin_api).list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={service}"
    )
    return sum(1 for s in slices.items for e in s.endpoints or [] if e.conditions and e.conditions.ready)


@pytest.fixture
def two_pods(admin_api: k8s.ApiClient, namespace: str) -> str:
    node = f"node-{uuid.uuid4().hex[:6]}"
    make_node(admin_api, node)
    k8s.CoreV1Api(admin_api).create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]},
        },
    )
    run_pod(admin_api, namespace, "web-a", {"app": "web"}, node=node)
    run_pod(admin_api, namespace, "web-b", {"app": "web"}, node=node, ready=False)
    deadline = time.monotonic() + 15
    while slice_ready(admin_api, namespace, "web") != 1:
        assert time.monotonic() < deadline, "no EndpointSlice from the controller"
        time.sleep(0.05)
    return "web"


@pytest.fixture
def page(browser: Browser, console: dict) -> Iterator[Page]:
    """An English page signed in as the editor; closed even when the test fails, so it stops polling."""
    opened = open_page(browser, "en")
    log_in(opened, console["url"], "editor")
    yield opened
    opened.context.close()


def health_of(page, service: str):
    return page.locator(f'#service-table tr:has(a[href$="/{service}/"]) .health')


def test_a_pod_made_ready_elsewhere_shows_in_the_open_list_within_a_second(
    page: Page,
    console: dict,
    two_pods: str,
    admin_api: k8s.ApiClient,
    namespace: str,
) -> None:
    page.goto(console["services"])
    expect(health_of(page, two_pods)).to_have_text("1/2")
    page.fill("#search", "we")  # the user's place: a filter typed, kept across updates
    expect(page).to_have_url(re.compile(r"\?q=we"))
    time.sleep(1.0)  # the page has polled and settled

    set_pod_ready(admin_api, namespace, "web-b", True)
    changed = time.monotonic()
    while slice_ready(admin_api, namespace, two_pods) != 2:
        assert time.monotonic() - changed < 10, "the controller did not update the EndpointSlice"
        time.sleep(0.01)
    sliced = time.monotonic()
    expect(health_of(page, two_pods)).to_have_text("2/2", timeout=5_000)
    shown = time.monotonic()
    print(
        f"live list: EndpointSlice updated {1000 * (sliced - changed):.0f} ms after the pod, "
        f"page {1000 * (shown - sliced):.0f} ms after the EndpointSlice"
    )
    assert shown - sliced < 1.0, f"the open list took {shown - sliced:.2f} s after the EndpointSlice changed"
    expect(page.locator("#search")).to_have_value("we")


def test_an_open_row_menu_is_not_closed_by_an_update(
    page: Page,
    console: dict,
    two_pods: str,
    admin_api: k8s.ApiClient,
    namespace: str,
) -> None:
    page.goto(console["services"])
    expect(health_of(page, two_pods)).to_have_text("1/2")
    menu = page.locator(f'#service-table tr:has(a[href$="/{two_pods}/"]) details.menu')
    menu.locator("summary").click()
    expect(menu).to_have_attribute("open", "")

    set_pod_ready(admin_api, namespace, "web-b", True)
    time.sleep(2.0)  # updates would have come by now
    expect(menu).to_have_attribute("open", "")  # still open: the update waits
    expect(health_of(page, two_pods)).to_have_text("1/2")

    page.mouse.click(5, 5)  # the menu closes; the update follows
    page.locator("h1").click()
    expect(health_of(page, two_pods)).to_have_text("2/2", timeout=3_000)


def test_an_update_answered_after_a_menu_opened_does_not_close_it(
    page: Page,
    console: dict,
    two_pods: str,
    admin_api: k8s.ApiClient,
    namespace: str,
) -> None:
    """The race behind a flaky run: a poll sent while nothing was open, answered (with a redraw) just after the
    user opened a row's menu. The answer is dropped; the update comes once the menu is closed."""
    page.goto(console["services"])
    expect(health_of(page, two_pods)).to_have_text("1/2")
    held: list = []

    def hold(route) -> None:  # polls wait here until released below
        held.append(route)

    page.route("**/_live/**", hold)
    set_pod_ready(admin_api, namespace, "web-b", True)
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(20)
    assert held, "the page sent no poll"
    menu = page.locator(f'#service-table tr:has(a[href$="/{two_pods}/"]) details.menu')
    menu.locator("summary").click()
    expect(menu).to_have_attribute("open", "")
    time.sleep(1.0)  # the EndpointSlice follows the pod: the held poll's answer will be a redraw
    for route in held:
        route.continue_()
    page.unroute("**/_live/**")
    page.wait_for_timeout(1000)
    expect(menu).to_have_attribute("open", "")  # the late answer did not close it
    expect(health_of(page, two_pods)).to_have_text("1/2")
    page.mouse.click(5, 5)
    page.locator("h1").click()
    expect(health_of(page, two_pods)).to_have_text("2/2", timeout=3_000)


def test_live_validation_of_every_type_swaps_only_slots_that_exist(browser: Browser, console: dict) -> None:
    """The validation answer always sends #lb-insight out of band; a ClusterIP or NodePort form had no such slot,
    and htmx logged htmx:oobErrorNoTarget on every answer (no_browser_errors fails the test on it)."""
    page = open_page(browser, "en")
    log_in(page, console["url"], "editor")
    page.goto(f"{console['services']}create/")
    page.locator("#id_name").click()
    validated(page, "web")
    for kind in ("NodePort", "LoadBalancer", "ClusterIP"):
        choose_type(page, kind)
        page.locator("#id_name").click()
        validated(page, "x")
    expect(page.locator("#id_name")).to_have_value("webxxx")
    page.context.close()


# The lines of a diff as drawn: the line height, each span's height, and the height of all that is drawn.
DRAWN_DIFF = """pre => {
  const style = getComputedStyle(pre);
  return {
    line: parseFloat(style.lineHeight),
    spans: [...pre.children].map(span => span.getBoundingClientRect().height),
    drawn: pre.scrollHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom),
  };
}"""


def test_a_diff_shows_each_line_once_without_a_blank_line_between(
    browser: Browser, console: dict, admin_api: k8s.ApiClient, namespace: str
) -> None:
    k8s.CoreV1Api(admin_api).create_namespaced_service(
        namespace, {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}
    )
    page = open_page(browser, "en")
    log_in(page, console["url"], "editor")
    page.goto(f"{console['services']}web/edit/")
    page.fill("#id_ports-0-port", "8080")
    with page.expect_response(lambda r: r.request.method == "POST" and "/validate/" not in r.url):
        page.click("#service-form .form-actions button[value=review]")
    diff = page.locator(".diff-card pre.diff")
    expect(diff.locator(".diff-add")).to_contain_text(["8080"])
    drawn = diff.evaluate(DRAWN_DIFF)
    line, spans = drawn["line"], drawn["spans"]
    assert spans and all(abs(height - line) <= 1 for height in spans), drawn  # one line each
    assert abs(drawn["drawn"] - len(spans) * line) <= 2, drawn  # and nothing drawn between them (blank lines were)
    text = diff.inner_text()
    assert "\n\n" not in text and len(text.strip().splitlines()) == len(spans)  # copied as it reads
    shot(page, "en-form-review-diff")
    page.context.close()


def test_the_pods_of_a_service_show_whether_they_are_ready(page: Page, console: dict, two_pods: str) -> None:
    page.goto(f"{console['services']}{two_pods}/")
    pods = page.get_by_role("region", name="Pods")
    expect(pods.locator("tr", has_text="web-a").locator("td").nth(1)).to_have_text("Running · ready")
    expect(pods.locator("tr", has_text="web-b").locator("td").nth(1)).to_have_text("Running · not ready")
    pods.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "en-detail-pods.png"))
