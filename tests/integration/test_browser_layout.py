"""Layout, accessibility and times, in a real browser: every page type audited by axe-core in both languages at
desktop (1440 px) and phone (390 px) width, the phone layout (no page-wide scroll, a folded menu, the row menu in
reach, readable port rows), a visible keyboard focus, and creation times shown as an age in the user's language.
Screenshots land in artifacts/screenshots/ (the README's images are copied from there by hand)."""

from __future__ import annotations

import os
import queue
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.test import Client
from django.utils import translation
from kubernetes import client as k8s
from playwright.sync_api import Browser, Page, expect, sync_playwright

from services import listing
from tests.chromium import launch_chromium
from tests.integration.test_browser import (  # noqa: F401 - console and no_browser_errors are fixtures
    choose_type,
    console,
    log_in,
    no_browser_errors,
    open_page,
    shot,
)

DESKTOP, PHONE = 1440, 390
BLOCKING = ("serious", "critical")


class Chromium:
    """A Chromium of this module's own, driven from a thread of its own: Playwright's sync API allows one instance
    per thread, and test_browser.py's session-wide one holds the main thread when both files run."""

    def __init__(self) -> None:
        self.jobs: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._serve, name="chromium", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            while (job := self.jobs.get()) is not None:
                steps, done = job
                try:
                    done.set_result(steps(browser))
                except BaseException as error:  # handed to the test, which raises it
                    done.set_exception(error)
            browser.close()

    def run(self, steps: Callable[[Browser], None]) -> None:
        done: Future = Future()
        self.jobs.put((steps, done))
        done.result()

    def stop(self) -> None:
        self.jobs.put(None)
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Chromium]:
    # The live server's ORM calls run in other threads than the test's.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    started = Chromium()
    yield started
    started.stop()


def make_services(admin_api: k8s.ApiClient, namespace: str) -> None:
    core = k8s.CoreV1Api(admin_api)
    ports = [{"name": "http", "port": 80, "targetPort": 8080}, {"name": "metrics", "port": 9090}]
    for name, kind in (("shop-web", "NodePort"), ("shop-edge", "LoadBalancer"), ("shop-internal", "ClusterIP")):
        core.create_namespaced_service(
            namespace, {"metadata": {"name": name}, "spec": {"type": kind, "selector": {"app": "shop"}, "ports": ports}}
        )


def fits_the_window(page: Page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def overflowing(page: Page) -> list[str]:
    """What sticks out past the window's right edge (outside boxes that scroll on their own), for the message."""
    return page.evaluate(
        """[...document.querySelectorAll('body *')].filter(e => {
             const r = e.getBoundingClientRect();
             if (r.right + window.scrollX <= window.innerWidth + 0.5 || !r.width) return false;
             for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
               if (['auto', 'scroll', 'hidden', 'clip'].includes(getComputedStyle(p).overflowX) && p.getBoundingClientRect().right + window.scrollX <= window.innerWidth + 0.5) return false;
             }
             return true;
           }).slice(0, 8).map(e => `${e.tagName}.${e.className}#${e.id} ${Math.round(e.getBoundingClientRect().right + window.scrollX)}`)"""
    )


class Audit:
    """Runs axe on the current page, writes one line per page to the terminal, and collects what blocks."""

    def __init__(self, request: pytest.FixtureRequest, language: str, width: int) -> None:
        self.reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        self.capture = request.config.pluginmanager.get_plugin("capturemanager")
        self.language, self.width, self.axe = language, width, Axe()
        self.blocking: list[str] = []
        self.too_wide: list[str] = []

    def __call__(self, page: Page, name: str) -> None:
        violations = self.axe.run(page).response["violations"]
        blocking = [v for v in violations if v["impact"] in BLOCKING]
        minor = sorted({v["id"] for v in violations if v not in blocking})
        line = (
            f"axe: {name} {self.language} {self.width}: {len(blocking)} serious/critical "
            f"({len(violations) - len(blocking)} minor/moderate{': ' + ', '.join(minor) if minor else ''})"
        )
        if self.reporter is not None and self.capture is not None:
            # Past the output capture, so CI logs show every page's result, passing or not.
            with self.capture.global_and_fixture_disabled():
                self.reporter.write_line(line)
        for violation in blocking:
            targets = [node["target"] for node in violation["nodes"]][:3]
            self.blocking.append(f"{name} {self.language} {self.width}: {violation['id']} {targets}")
        if self.width == PHONE and not fits_the_window(page):
            self.too_wide.append(f"{name}: {overflowing(page)}")


@pytest.mark.cluster
@pytest.mark.browser
@pytest.mark.parametrize("width", [DESKTOP, PHONE])
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_every_page_type_passes_axe_and_fits_the_window(
    request: pytest.FixtureRequest,
    chromium: Chromium,
    console: dict,  # noqa: F811
    admin_api: k8s.ApiClient,
    namespace: str,
    language: str,
    width: int,
) -> None:
    make_services(admin_api, namespace)

    def steps(browser: Browser) -> None:
        audit = Audit(request, language, width)
        page = open_page(browser, language, width=width)
        services, size = console["services"], "phone" if width == PHONE else str(width)
        page.goto(f"{console['url']}/login/")
        audit(page, "login")
        log_in(page, console["url"], "editor")
        audit(page, "clusters")
        page.goto(f"{console['url']}/clusters/local/")
        audit(page, "cluster-detail")
        page.goto(services)
        expect(page.locator("time").first).to_have_attribute("title", re.compile(r"\d"))
        audit(page, "services-list")
        if width == DESKTOP or language == "en":
            shot(page, f"{language}-list-{size}")
        page.goto(f"{services}create/")
        audit(page, "create-ClusterIP")
        page.fill("#id_name", "shop-api")
        page.fill("#id_selector-0-key", "app")
        page.fill("#id_selector-0-value", "shop")
        page.fill("#id_ports-0-name", "http")
        page.fill("#id_ports-0-port", "80")
        page.fill("#id_ports-0-target_port", "8080")
        choose_type(page, "NodePort")
        audit(page, "create-NodePort")
        if language == "en" and width == DESKTOP:
            shot(page, f"{language}-form-nodeport-{size}")
        choose_type(page, "LoadBalancer")
        audit(page, "create-LoadBalancer")
        if language == "zh-hans":
            shot(page, f"{language}-form-loadbalancer-{size}")
        page.goto(f"{services}shop-web/edit/")
        audit(page, "edit")
        page.goto(f"{services}create-yaml/")
        audit(page, "yaml-create")
        page.goto(f"{services}shop-web/")
        audit(page, "detail")
        if width == PHONE:
            shot(page, f"{language}-detail-{size}")
        page.goto(f"{services}shop-web/copy/")
        audit(page, "copy")
        page.goto(f"{console['url']}/services/")
        expect(page.locator("#fleet-table")).to_contain_text("shop-web")
        audit(page, "all-services")
        shot(page, f"{language}-all-services-{size}")
        response = page.goto(f"{console['url']}/clusters/local/namespaces/kube-system/services/")
        assert response is not None and response.status == 403
        audit(page, "403")
        response = page.goto(f"{console['url']}/clusters/no-such-cluster/")
        assert response is not None and response.status == 404
        audit(page, "404")
        page.context.close()
        assert audit.blocking == []
        assert audit.too_wide == []

    chromium.run(steps)


@pytest.mark.cluster
@pytest.mark.browser
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_at_phone_width_the_menu_folds_and_every_control_stays_in_reach(
    chromium: Chromium,
    console: dict,  # noqa: F811
    admin_api: k8s.ApiClient,
    namespace: str,
    language: str,
) -> None:
    make_services(admin_api, namespace)

    def steps(browser: Browser) -> None:
        page = open_page(browser, language, width=PHONE)
        page.set_viewport_size({"width": PHONE, "height": 844})
        log_in(page, console["url"], "editor")
        page.goto(console["services"])

        # The brand is whole and the top bar does not run off the screen.
        brand = page.locator(".brand")
        assert brand.evaluate("e => e.scrollWidth <= e.clientWidth")
        box = brand.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE
        assert page.locator(".topbar").evaluate("e => e.scrollWidth <= e.clientWidth")

        # The navigation is folded into "Menu", which the keyboard opens.
        expect(page.locator(".layout > .sidenav")).to_be_hidden()
        menu = page.locator("details.nav-menu")
        expect(menu.locator("a[aria-current=page]")).to_be_hidden()
        for _ in range(12):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.matches('.nav-menu > summary')"):
                break
        else:
            pytest.fail("the Menu summary is not reachable by Tab")
        assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
        page.keyboard.press("Enter")
        expect(menu.locator("a[aria-current=page]")).to_be_visible()
        expect(page.locator(".topbar .user")).to_be_hidden()
        expect(menu.locator(".nav-account .user")).to_have_text("editor")  # who is signed in moves into the menu
        if language == "en":
            shot(page, "en-list-phone-menu")
        page.keyboard.press("Enter")
        expect(menu.locator("a[aria-current=page]")).to_be_hidden()

        # The row menu of every card is on the screen and opens.
        assert fits_the_window(page)
        row = page.locator("tr", has=page.locator("a", has_text="shop-web"))
        summary = row.locator("summary")
        summary.scroll_into_view_if_needed()
        expect(summary).to_be_in_viewport()
        summary_box = summary.bounding_box()
        assert summary_box is not None and summary_box["x"] + summary_box["width"] <= PHONE
        summary.click()
        edit = row.locator(".menu-items a").first
        expect(edit).to_be_in_viewport()
        edit_box = edit.bounding_box()
        assert edit_box is not None and edit_box["x"] >= 0 and edit_box["x"] + edit_box["width"] <= PHONE
        edit.click()
        page.wait_for_url(f"{console['services']}shop-web/edit/")

        # Port rows: each protocol select is at least as wide as its longest option, and the page still fits.
        squeezed = page.evaluate(
            """[...document.querySelectorAll('select[name$="-protocol"]')].filter(select => {
                 const pen = document.createElement('canvas').getContext('2d');
                 pen.font = getComputedStyle(select).font;
                 const widest = Math.max(...[...select.options].map(o => pen.measureText(o.text).width));
                 return select.getBoundingClientRect().width < widest + 20;
               }).map(select => select.name)"""
        )
        assert page.locator('select[name$="-protocol"]').count() >= 1
        assert squeezed == []
        assert fits_the_window(page), overflowing(page)
        if language == "zh-hans":
            page.goto(f"{console['services']}create/")
            choose_type(page, "LoadBalancer")
            shot(page, "zh-hans-form-phone")
        page.context.close()

    chromium.run(steps)


# Boxes that overlap by more than a pixel each way, among the visible labels of the form (the row cells' own labels
# are shown on a phone) and the Services cards' cell labels (drawn by ::before, so measured through the cell: a
# label taller than its cell runs over the next one).
OVERLAPPING_LABELS = """() => {
  const boxes = [...document.querySelectorAll('#service-form label, #service-form legend')]
    .map(e => [e, e.getBoundingClientRect()]).filter(([e, r]) => r.width > 1 && r.height > 1);
  const overlaps = [];
  boxes.forEach(([a, r], i) => boxes.slice(i + 1).forEach(([b, q]) => {
    if (a.contains(b) || b.contains(a)) return;
    if (Math.min(r.right, q.right) - Math.max(r.left, q.left) > 1 && Math.min(r.bottom, q.bottom) - Math.max(r.top, q.top) > 1)
      overlaps.push(`${a.textContent.trim()} / ${b.textContent.trim()}`);
  }));
  return overlaps;
}"""

TALLER_THAN_THEIR_CELLS = """() => [...document.querySelectorAll('.table.services td[data-label]')].filter(cell => {
  const label = parseFloat(getComputedStyle(cell, '::before').height);
  const inner = cell.getBoundingClientRect().height - parseFloat(getComputedStyle(cell).paddingTop);
  return label > inner + 0.5;
}).map(cell => cell.dataset.label)"""

OFF_SCREEN_ROW_CONTROLS = """width => [...document.querySelectorAll(
    '#port-configuration table.rows :is(input:not([type=hidden]), select, button)')].filter(e => {
  const r = e.getBoundingClientRect();
  return r.width < 1 || r.left < 0 || r.right > width;
}).map(e => e.name || e.getAttribute('aria-label'))"""


@pytest.mark.cluster
@pytest.mark.browser
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_at_phone_width_port_rows_and_list_cards_fit_with_no_label_over_another(
    chromium: Chromium,
    console: dict,  # noqa: F811
    admin_api: k8s.ApiClient,
    namespace: str,
    language: str,
) -> None:
    make_services(admin_api, namespace)

    def steps(browser: Browser) -> None:
        page = open_page(browser, language, width=PHONE)
        log_in(page, console["url"], "editor")
        page.goto(console["services"])
        expect(page.locator(".table.services td[data-label]").first).to_be_visible()
        assert page.evaluate(TALLER_THAN_THEIR_CELLS) == []

        page.goto(f"{console['services']}create/")
        choose_type(page, "NodePort")  # the widest row: protocol, name, ports, node port and its fill-in button
        with page.expect_response(lambda r: r.request.method == "POST"):
            page.click("#add-ports")
        assert page.locator("#port-configuration table.rows select").count() == 2
        assert page.evaluate(OFF_SCREEN_ROW_CONTROLS, PHONE) == []
        assert page.evaluate(OVERLAPPING_LABELS) == []
        for name in ("name", "port", "target_port", "node_port"):  # each field says what it is, on the screen
            expect(page.locator(f"label[for=id_ports-1-{name}]")).to_be_visible()
        assert fits_the_window(page), overflowing(page)
        page.locator("#port-configuration").scroll_into_view_if_needed()
        shot(page, f"{language}-form-ports-phone")
        page.context.close()

    chromium.run(steps)


FOCUSABLE_OUTLINE = """() => {
  const e = document.activeElement;
  const shown = el => { const s = getComputedStyle(el); return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2; };
  const card = e.closest('label.choice-card');
  return {tag: e.tagName, name: e.name || e.textContent.trim().slice(0, 20), shown: shown(e) || (!!card && shown(card))};
}"""


@pytest.mark.cluster
@pytest.mark.browser
def test_keyboard_focus_is_visible_on_every_control(
    chromium: Chromium,
    console: dict,  # noqa: F811
    admin_api: k8s.ApiClient,
    namespace: str,
) -> None:
    make_services(admin_api, namespace)

    def steps(browser: Browser) -> None:
        page = open_page(browser, "en", width=DESKTOP)
        log_in(page, console["url"], "editor")
        unseen, kinds = [], set()
        for url, presses in ((console["services"], 20), (f"{console['services']}create/", 45)):
            page.goto(url)
            for _ in range(presses):
                page.keyboard.press("Tab")
                focused = page.evaluate(FOCUSABLE_OUTLINE)
                if focused["tag"] == "BODY":
                    continue
                kinds.add(focused["tag"])
                if not focused["shown"]:
                    unseen.append(focused)
        assert unseen == []
        assert {"A", "BUTTON", "INPUT", "SELECT", "SUMMARY"} <= kinds
        page.context.close()

    chromium.run(steps)


# --- without a browser: creation times and the 403 page -------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "seconds", "age", "full"),
    [
        ("en", 10, "just now", "Dec. 3, 2026, 9:30 a.m."),
        ("en", 3 * 60 + 5, "3\xa0minutes ago", "Dec. 3, 2026, 9:30 a.m."),
        ("en", 26 * 3600, "1\xa0day ago", "Dec. 3, 2026, 9:30 a.m."),
        ("zh-hans", 3 * 60, "3\xa0分钟", "2026年12月3日 09:30"),
    ],
)
def test_a_creation_time_is_an_age_with_the_local_date_time_in_the_title(
    settings, language: str, seconds: int, age: str, full: str
) -> None:
    settings.TIME_ZONE = "Asia/Shanghai"  # 01:30 UTC is 09:30 there
    created = datetime(2026, 12, 3, 1, 30, tzinfo=UTC)
    with translation.override(language):
        html = listing.created_html("2026-12-03T01:30:00Z", now=created + timedelta(seconds=seconds))
    assert html.startswith(f'<time datetime="2026-12-03T01:30:00Z" title="{full}">')
    assert age in html


@pytest.mark.cluster
@pytest.mark.django_db
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_list_and_the_detail_page_show_creation_times_as_ages(
    client: Client, people, admin_api: k8s.ApiClient, namespace: str, service_url, language: str
) -> None:
    k8s.CoreV1Api(admin_api).create_namespaced_service(
        namespace, {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}
    )
    client.force_login(people.viewer)
    client.cookies["django_language"] = language
    for url in (service_url("list"), service_url("detail", "web")):
        html = client.get(url).content.decode()
        stamp = re.search(r'<time datetime="([^"]+)" title="([^"]+)">([^<]+)</time>', html)
        assert stamp is not None
        assert stamp.group(1).endswith("Z") and stamp.group(1)[:4] in stamp.group(2)  # the year, localized
        assert stamp.group(3) == {"en": "just now", "zh-hans": "刚刚"}[language]  # a fresh Service


@pytest.mark.cluster
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("language", "heading", "back"),
    [("en", "Not allowed", "Back to the clusters"), ("zh-hans", "无权操作", "返回集群列表")],
)
def test_the_403_page_is_translated_inside_the_layout_with_a_way_back(
    client: Client, people, language: str, heading: str, back: str
) -> None:
    client.force_login(people.editor)
    client.cookies["django_language"] = language
    response = client.get("/clusters/local/namespaces/kube-system/services/")
    html = response.content.decode()
    assert response.status_code == 403
    assert f"<h1>{heading}</h1>" in html and f'lang="{language}"' in html
    assert 'class="sidenav"' in html and "nav-menu" in html  # the navigation, wide and folded
    assert f'<a href="/clusters/">{back}</a>' in html
