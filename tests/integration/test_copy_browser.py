"""The copy page in a real browser (Debian's headless Chromium): while a request is on its way every submit button
is disabled, whichever element sent it, and the page logs no console error."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client as k8s
from playwright.sync_api import Browser, Page, expect

from clusters.models import Cluster, Role
from tests.integration.test_browser import log_in
from tests.integration.test_copy import grant

pytestmark = [pytest.mark.cluster, pytest.mark.browser]


@pytest.fixture
def copy_page(
    browser: Browser,
    live_server,
    transactional_db,
    cluster: Cluster,
    make_user,
    admin_api: k8s.ApiClient,
    namespace,
) -> Iterator[tuple[Page, list[str], str]]:
    """A LoadBalancer Service (its copy form re-renders when a row's cluster changes: a request sent by the select)
    and the copy page of it, open as an editor of its namespace and of another; the page's console errors."""
    other = f"{namespace}-to"
    core = k8s.CoreV1Api(admin_api)
    core.create_namespace({"metadata": {"name": other}})
    core.create_namespaced_service(
        namespace, {"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 443}]}}
    )
    user = make_user("copier", role=Role.NS_EDIT, cluster=cluster, namespace=namespace)
    grant(user, Role.NS_EDIT, cluster, other)
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(page, live_server.url, "copier")
    page.goto(f"{live_server.url}/clusters/local/namespaces/{namespace}/services/lb/copy/")
    yield page, errors, other
    page.context.close()
    core.delete_namespace(other)


def held(page: Page, pattern: str) -> list:
    """Requests to ``pattern`` are held until the caller continues them."""
    routes: list = []

    def hold(route) -> None:
        routes.append(route)

    page.route(pattern, hold)
    return routes


def wait_for(page: Page, routes: list) -> None:
    for _ in range(250):
        if routes:
            return
        page.wait_for_timeout(20)
    raise AssertionError("no request was sent")


def test_every_submit_button_is_disabled_while_a_request_is_on_its_way(copy_page) -> None:
    page, errors, other = copy_page
    buttons = page.locator("#copy-form button[type=submit]")

    # The row's select sends a request of its own (the pools of the chosen cluster).
    routes = held(page, "**/copy/refresh/")
    page.select_option("#id_targets-0-target", f"local/{other}")
    wait_for(page, routes)
    count = buttons.count()
    assert count >= 4
    for index in range(count):
        expect(buttons.nth(index)).to_be_disabled()
    routes[0].continue_()
    page.unroute("**/copy/refresh/")
    expect(page.locator("#copy-form button#add-target")).to_be_enabled()

    # The form's own request (Preview).
    routes = held(page, "**/copy/")
    page.get_by_role("button", name="Preview").click()
    wait_for(page, routes)
    for index in range(buttons.count()):
        expect(buttons.nth(index)).to_be_disabled()
    routes[0].continue_()
    page.unroute("**/copy/")
    expect(page.locator(".copy-outcome")).to_contain_text("(dry run)")
    expect(page.get_by_role("button", name="Create")).to_be_enabled()
    assert errors == []


def test_the_diff_shows_each_line_once_with_no_empty_line_after_it(copy_page) -> None:
    page, errors, other = copy_page
    page.select_option("#id_targets-0-target", f"local/{other}")
    page.get_by_role("button", name="Preview").click()
    page.locator(".copy-diff > summary").first.click()
    diff = page.locator("pre.diff").first
    expect(diff).to_be_visible()
    spans = diff.locator("span")
    texts = spans.all_text_contents()
    assert len(texts) > 3
    # What a reader sees, and copies: the lines, each once, one after the other.
    assert diff.inner_text().split("\n") == texts
    boxes = [spans.nth(i).bounding_box() for i in range(len(texts))]
    steps = {round(later["y"] - earlier["y"]) for earlier, later in zip(boxes, boxes[1:], strict=False)}
    heights = {round(box["height"]) for box in boxes}
    assert len(steps) == 1 and steps == heights, f"an empty line within or between lines: {steps}, {heights}"
    assert errors == []
