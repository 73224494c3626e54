"""Property-based fuzzing of every input a browser can send, against the real API server.

The pages, their forms, fields, options, submit buttons (``name``/``value``, ``formaction``, ``hx-post``, ``hx-vals``)
and query forms are discovered from the URLconf and the HTML the console serves, so nothing here names a form
field or a services URL. For every example:

- no 5xx (but an opened Service port's gateway answer, 502-504 with its reason: ``gateway_answer``), and an answer
  in under ``CONSOLE_FUZZ_TIME_LIMIT`` seconds (default 2);
- a refused input (4xx) carries a message the user can act on: an ``errorlist``, an error notice or a
  ``role="alert"``, inside the layout for a full page (never Django's bare "Bad Request (400)");
- nothing is created unless the answer is a success redirect to the new Service, which must then exist.

Every distinct failure (by kind, exception and the frame that raised it) is shrunk by Hypothesis separately and
reported with a reproduction; all targets run even when some fail, and the test fails at the end with the list.

Example counts scale with ``CONSOLE_FUZZ_EXAMPLES=N`` (default 12): the POST targets share 25×N examples as
Cluster Admin and 6×N as NS Edit (at least 8 and 3 each), each GET page gets 2×N, each YAML editor 3×N,
``parse_kubeconfig`` 25×N, ``ClusterForm`` 6×N and ``register_cluster`` 4×N, plus the fixed hard cases of each
target. ``CONSOLE_FUZZ_TIME_LIMIT`` (seconds, default 2), ``CONSOLE_FUZZ_SHRINK_SECONDS`` (default 2 per target) and
``CONSOLE_FUZZ_SHRINK=0`` (no shrinking; Hypothesis then stops at a target's first defect) tune the rest. Each
target's count goes to the terminal, captured output or not, as ``fuzz: <target>: N examples (T s)``;
``CONSOLE_FUZZ_DEBUG=1`` also lists every discovered target with its fields and submitters.
"""

from __future__ import annotations

import functools
import html
import json
import logging
import os
import re
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import CommandError
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls import reverse as django_reverse
from django.urls.exceptions import NoReverseMatch, Resolver404
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

import kube
from clusters.forms import ClusterForm
from clusters.management.commands.register_cluster import register_cluster
from clusters.models import Cluster, Role
from services import history
from services.models import ServiceVersion
from tests.helpers import create_deployment
from tests.integration import fuzz_strategies as fs

pytestmark = [pytest.mark.cluster, pytest.mark.django_db, pytest.mark.fuzz]

EXAMPLES = int(os.environ.get("CONSOLE_FUZZ_EXAMPLES", "12"))
TIME_LIMIT = float(os.environ.get("CONSOLE_FUZZ_TIME_LIMIT", "2.0"))
SHRINK = os.environ.get("CONSOLE_FUZZ_SHRINK", "1") != "0"
# Hypothesis shrinks for up to 5 minutes per target; while defects are open that would dominate the run.
SHRINK_SECONDS = float(os.environ.get("CONSOLE_FUZZ_SHRINK_SECONDS", "2"))
ROOT = Path(__file__).resolve().parents[2]

# Signing in with the identity provider: its own attack tests in test_sso.py, against a real Keycloak.
SKIPPED_URL_NAMES = {"login", "logout", "set_language", "oidc_login", "oidc_callback", "oidc_backchannel_logout"}
SKIPPED_NAMESPACES = {"admin"}

# A refused input must say why: Django's error list, the console's error notice, or an ARIA alert.
ERROR_MARKERS = re.compile(r'class="[^"]*\b(errorlist|notice-error)\b|role="alert"')
LAYOUT_MARKER = re.compile(r'id="main"')


def fuzz_settings(examples: int) -> settings:
    phases = [Phase.explicit, Phase.generate, *([Phase.shrink] if SHRINK else [])]
    return settings(
        max_examples=max(1, examples),
        deadline=None,
        database=None,
        phases=phases,
        print_blob=False,
        report_multiple_bugs=True,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )


# --- failures: one exception type per distinct defect, so Hypothesis shrinks and reports each of them ----------


class FuzzFailure(AssertionError):
    """Base of the per-defect failure types."""


@functools.cache
def failure_type(signature: str) -> type[FuzzFailure]:
    name = re.sub(r"\W+", "_", signature)[:80] or "failure"
    return type(f"Fuzz_{name}", (FuzzFailure,), {"signature": signature})


def _short(value: Any, limit: int = 100) -> str:
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return repr(text) if isinstance(value, str) else text
    return f"{text[: limit // 2]!r}…(len {len(text)})"


def _traceback_tail(exc_info: Any, lines: int = 6) -> tuple[str, str]:
    """The last lines of a view's traceback, and where in the project it was raised (for the signature)."""
    if not exc_info or exc_info[1] is None:
        return "", ""
    error = exc_info[1]
    frames = traceback.extract_tb(exc_info[2])
    own = [f for f in frames if f.filename.startswith(str(ROOT)) and "/.venv/" not in f.filename]
    where = f"{Path(own[-1].filename).relative_to(ROOT)}:{own[-1].lineno}" if own else "?"
    text = "".join(traceback.format_exception(*exc_info)).rstrip().splitlines()
    return "\n".join(text[-lines:]), f"{type(error).__name__}@{where}"


# --- talking to the console -----------------------------------------------------------------------------------


@dataclass
class Sent:
    method: str
    url: str
    htmx: bool
    data: dict[str, list[str]] | None = None
    base: dict[str, list[str]] | None = None
    body_note: str = ""
    kind: str = ""  # what sort of input this is, when that tells defects apart (e.g. "too many fields")

    def describe(self) -> str:
        lines = [f"{self.method} {self.url}{'  (HX-Request: true)' if self.htmx else ''}"]
        if self.data is not None:
            base = self.base or {}
            changed = {k: v for k, v in self.data.items() if base.get(k) != v}
            dropped = sorted(set(base) - set(self.data))
            if len(changed) > 40:
                lines.append(f"  {len(changed)} fields changed or added, e.g. {_short(list(changed)[:5], 200)}")
            else:  # fields that got the same value on one line
                by_value: dict[str, list[str]] = {}
                for key, values in changed.items():
                    by_value.setdefault(_short(values[0] if len(values) == 1 else values, 400), []).append(key)
                for shown, keys in by_value.items():
                    lines.append(f"  {', '.join(keys)} = {shown}")
            if dropped:
                lines.append(f"  dropped: {_short(dropped, 200)}")
            lines.append(f"  (the other {len(self.data) - len(changed)} fields as the page rendered them)")
        if self.body_note:
            lines.append(f"  {self.body_note}")
        return "\n".join(lines)


class Console:
    """One signed-in browser, the namespace under test, and the Service that the edit pages open."""

    def __init__(self, user, admin_api: k8s.ApiClient, namespace: str, service: str, label: str) -> None:
        self.client = Client(raise_request_exception=False)
        self.client.force_login(user)
        self.core = k8s.CoreV1Api(admin_api)
        self.namespace = namespace
        self.service = service
        self.label = label

    def services(self) -> set[tuple[str, str]]:
        """Every Service of the cluster as (namespace, name): a copy may create one in any namespace the user may
        edit, not only the one under test."""
        return {(s.metadata.namespace, s.metadata.name) for s in self.core.list_service_for_all_namespaces().items}

    def tidy(self) -> None:
        """Remove every Service of the namespace under test but the one the edit pages open."""
        for namespace, name in self.services():
            if namespace == self.namespace and name != self.service:
                delete_service(self.core, namespace, name)

    def ensure_service(self) -> None:
        """The Service the edit/detail pages need (a fuzzed delete may have removed it)."""
        try:
            self.core.read_namespaced_service(self.service, self.namespace)
        except ApiException as error:
            if error.status != 404:
                raise
            create_service(self.core, self.namespace, self.service)

    def send(self, sent: Sent, *, enctype: str = "") -> tuple[Any, float]:
        headers = {"HTTP_HX_REQUEST": "true"} if sent.htmx else {}
        started = time.monotonic()
        if sent.method == "GET":
            response = self.client.get(sent.url, **headers)
        elif enctype.startswith("multipart/"):
            response = self.client.post(sent.url, sent.data or {}, **headers)
        else:
            pairs = [(k, v) for k, values in (sent.data or {}).items() for v in values]
            body = urlencode(pairs, doseq=False)
            response = self.client.post(sent.url, body, content_type="application/x-www-form-urlencoded", **headers)
        return response, time.monotonic() - started

    def exchange(self, sent: Sent, *, enctype: str = "") -> Any:
        """Send one request and check every property; raises a FuzzFailure subtype per distinct defect."""
        self.ensure_service()
        before = self.services()
        response, elapsed = self.send(sent, enctype=enctype)
        after = self.services()
        created = after - before
        if TIME_LIMIT < elapsed < 2 * TIME_LIMIT and not created and response.status_code < 500:
            # The machine's cores are shared: a slightly slow answer counts only if it is slow twice.
            _again, elapsed_again = self.send(sent, enctype=enctype)
            elapsed = min(elapsed, elapsed_again)
            after = self.services()
            created = after - before
        try:
            check_response(response, elapsed, sent, self.label)
            success = redirect_target(response)
            # A save answers with the Services list (the seed: 确定 returns to the list); one save, one Service.
            saved_one = redirects_to_list(response) and len(created) == 1
            saved_here = bool(success) and created == {(self.namespace, success)}
            if created and not saved_here and not saved_one and not said_created(response, sent, created):
                raise failure_type(f"created-without-success {url_name(sent.url)}")(
                    f"Services {sorted(created)} were created, but the answer was {response.status_code} "
                    f"(redirect to {success or 'nowhere'}).\n{sent.describe()}"
                )
            if success and success != self.service and (self.namespace, success) not in after:
                raise failure_type(f"redirect-to-missing {url_name(sent.url)}")(
                    f"The answer redirects to Service {success!r}, which does not exist.\n{sent.describe()}"
                )
        finally:
            for namespace, name in created - {(self.namespace, self.service)}:
                delete_service(self.core, namespace, name)
        return response


def said_created(response, sent: Sent, created: set[tuple[str, str]]) -> bool:
    """A copy's summary (a page, not a redirect) that links every Service it created."""
    if url_name(sent.url) != "services:copy_create" or response.status_code != 200:
        return False
    body = response.content.decode("utf-8", "replace")
    return all(f"/namespaces/{namespace}/services/{name}/" in body for namespace, name in created)


def redirect_target(response) -> str:
    """The Service a success redirect leads to (a URL with a ``name``-like argument), or ""."""
    location = response.headers.get("HX-Redirect") or (
        response.headers.get("Location", "") if response.status_code in (301, 302, 303) else ""
    )
    if not location:
        return ""
    try:
        match = resolve(urlsplit(location).path)
    except Resolver404:
        return ""
    return str(match.kwargs.get("name") or match.kwargs.get("service") or "")


def redirects_to_list(response) -> bool:
    """Whether the answer sends the browser to a Services list."""
    location = response.headers.get("HX-Redirect") or (
        response.headers.get("Location", "") if response.status_code in (301, 302, 303) else ""
    )
    return bool(location) and url_name(location) == "services:list"


def url_name(url: str) -> str:
    try:
        match = resolve(urlsplit(url).path)
    except Resolver404:
        return urlsplit(url).path
    return match.view_name


def url_label(url: str) -> str:
    """The URL's name, with the arguments that tell apart targets of one name (not cluster/namespace/Service)."""
    try:
        match = resolve(urlsplit(url).path)
    except Resolver404:
        return urlsplit(url).path
    extra = {k: v for k, v in match.kwargs.items() if k not in ("cluster", "namespace", "name")}
    return match.view_name + (f"[{','.join(f'{k}={v}' for k, v in extra.items())}]" if extra else "")


def _visible_text(body: str, limit: int = 240) -> str:
    """The page's error notice if it has one, else its text."""
    notice = re.search(r'(?:role="alert"|notice-error)[^>]*>(.*?)</(?:div|p|ul)>', body, re.S)
    text = html.unescape(re.sub(r"<[^>]+>", " ", notice[1] if notice else body))
    return re.sub(r"\s+", " ", text).strip()[:limit]


def gateway_answer(response, view: str, body: str) -> bool:
    """An opened Service port answers as a gateway when the Service cannot (the fuzz's Service has no endpoint:
    503), saying why in the page; not the console failing."""
    return (
        view == "services:reach_open"
        and response.status_code in (502, 503, 504)
        and getattr(response, "exc_info", None) is None
        and bool(ERROR_MARKERS.search(body))
    )


def check_response(response, elapsed: float, sent: Sent, label: str) -> None:
    status = response.status_code
    body = response.content.decode("utf-8", "replace") if response.get("Content-Type", "").startswith("text") else ""
    view = url_name(sent.url)
    if status >= 500 and not gateway_answer(response, view, body):
        tail, where = _traceback_tail(getattr(response, "exc_info", None))
        signature = f"{status} {where or view}"
        detail = tail or f"(no exception; the page says: {_visible_text(body)!r})"
        raise failure_type(signature)(f"HTTP {status} from {view} as {label}.\n{sent.describe()}\n{detail}")
    if elapsed > TIME_LIMIT:
        raise failure_type(f"slow {view}")(
            f"{view} took {elapsed:.2f}s (limit {TIME_LIMIT}s) as {label}.\n{sent.describe()}"
        )
    if 400 <= status < 500:
        kind = f" [{sent.kind}]" if sent.kind else ""
        if not ERROR_MARKERS.search(body) and not LAYOUT_MARKER.search(body):
            raise failure_type(f"bare-{status}{kind}")(
                f"A bare {status} page from {view} as {label}: no message, no layout. Page text: "
                f"{_visible_text(body)!r}\n{sent.describe()}"
            )
        if not ERROR_MARKERS.search(body):
            raise failure_type(f"silent-{status}{kind}")(
                f"HTTP {status} from {view} as {label} without an error message (errorlist / notice-error / "
                f"role=alert). Page text: {_visible_text(body)!r}\n{sent.describe()}"
            )
        if not sent.htmx and not LAYOUT_MARKER.search(body):
            raise failure_type(f"no-layout-{status}{kind}")(
                f"HTTP {status} from {view} as {label} outside the console's layout.\n{sent.describe()}"
            )


# --- Kubernetes fixtures --------------------------------------------------------------------------------------


def create_service(core: k8s.CoreV1Api, namespace: str, name: str) -> None:
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": name, "labels": {"team": "fuzz"}},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
        },
    )


def delete_service(core: k8s.CoreV1Api, namespace: str, name: str) -> None:
    try:
        core.delete_namespaced_service(name, namespace)
    except ApiException as error:
        if error.status != 404:
            raise


# --- discovering pages and forms ------------------------------------------------------------------------------


def url_patterns() -> Iterator[tuple[str, list[str]]]:
    """(namespaced URL name, its parameter names) for every named pattern of the URLconf."""

    def walk(patterns, prefix: str, params: list[str]):
        for entry in patterns:
            own = list(getattr(entry.pattern, "converters", {}) or {})
            if not own:
                own = list(re.findall(r"\(\?P<(\w+)>", str(entry.pattern)))
            if isinstance(entry, URLResolver):
                if entry.namespace in SKIPPED_NAMESPACES:
                    continue
                space = f"{prefix}{entry.namespace}:" if entry.namespace else prefix
                yield from walk(entry.url_patterns, space, params + own)
            elif isinstance(entry, URLPattern) and entry.name:
                yield f"{prefix}{entry.name}", params + own

    seen: set[str] = set()
    for name, params in walk(get_resolver().url_patterns, "", []):
        if name not in seen and name.rsplit(":", 1)[-1] not in SKIPPED_URL_NAMES:
            seen.add(name)
            yield name, params


def reverse_pages(
    cluster: str, namespace: str, service: str, version: int | None = None
) -> tuple[dict[str, str], list[str]]:
    """Every page URL for the test's cluster, namespace and Service (and a version of its history); and the patterns
    that could not be filled."""
    values = {"cluster": cluster, "namespace": namespace, "name": service, "service": service, "ns": namespace}
    values |= {"port": "http", "path": ""}  # a port of the Service (reached through the proxy), and its root
    if version is not None:
        values["version"] = version
    pages, skipped = {}, []
    for name, params in url_patterns():
        unknown = [p for p in params if p not in values]
        if unknown:
            skipped.append(f"{name} (parameters {unknown})")
            continue
        try:
            pages[name] = django_reverse(name, kwargs={p: values[p] for p in params})
        except NoReverseMatch:
            skipped.append(f"{name} (does not reverse)")
    return pages, skipped


@dataclass
class Target:
    """One URL that accepts POSTs, with every field and submitter seen for it on any page."""

    url: str
    enctype: str = "application/x-www-form-urlencoded"
    fields: dict[str, fs.Field] = field(default_factory=dict)
    base: dict[str, list[str]] = field(default_factory=dict)
    submitters: list[dict[str, str]] = field(default_factory=list)
    refresh: dict[str, list[tuple[str, dict[str, str]]]] = field(default_factory=dict)  # absolute url, vals
    seen_on: set[str] = field(default_factory=set)

    def merge(self, form: fs.Form, extra: dict[str, str] | None, page: str) -> bool:
        grew = False
        self.seen_on.add(page)
        if form.enctype.startswith("multipart/"):
            self.enctype = form.enctype
        for name, f in form.fields.items():
            mine = self.fields.get(name)
            if mine is None:
                self.fields[name] = fs.Field(f.kind, list(f.default), list(f.options), f.disabled)
                grew = True
            else:
                for option in f.options:
                    if option not in mine.options:
                        mine.options.append(option)
                        grew = True
        for name, values in form.data().items():
            self.base.setdefault(name, values)
        if extra is not None and extra not in self.submitters:
            self.submitters.append(extra)
            grew = True
        for name, sources in form.refresh.items():
            for url, vals in sources:
                source = (urljoin(page, url) if url else urljoin(page, form.action or page), vals)
                if source not in self.refresh.setdefault(name, []):
                    self.refresh[name].append(source)
        return grew


class Site:
    """The pages and POST targets a user sees, found by crawling."""

    def __init__(self, console: Console, pages: dict[str, str]) -> None:
        self.console = console
        self.pages = pages
        self.targets: dict[str, Target] = {}
        self.query_keys: dict[str, set[str]] = {}
        self.get_pages: dict[str, str] = {}
        self.failures: list[tuple[str, str, str]] = []

    def harvest(self, html_text: str, page_url: str, inherit: Target | None = None) -> bool:
        """Add the forms of a page (or of a fragment answered to a POST of ``inherit``'s form) to the targets."""
        grew = False
        for form in fs.read_forms(html_text):
            action = urljoin(page_url, form.action or page_url)
            if form.method == "get":
                keys = self.query_keys.setdefault(urlsplit(action).path, set())
                keys.update(form.fields)
                continue
            submitters = form.submitters or [("", {})]
            for url, extra in submitters:
                path = urlsplit(urljoin(page_url, url) if url else action).path
                if url_name(path).rsplit(":", 1)[-1] in SKIPPED_URL_NAMES or path.startswith("/admin/"):
                    continue
                target = self.targets.get(path)
                if target is None:
                    target = self.targets[path] = Target(path)
                    if inherit is not None:  # a fragment's buttons post the whole form they are swapped into
                        target.fields = {
                            n: fs.Field(f.kind, list(f.default), list(f.options), f.disabled)
                            for n, f in inherit.fields.items()
                        }
                        target.base = {n: list(v) for n, v in inherit.base.items()}
                    grew = True
                grew |= target.merge(form, extra, page_url)
        return grew

    def _probes(self) -> list[tuple[Target, str, dict[str, list[str]]]]:
        """Re-render each form with every option of the choices that re-render it, and press every button once:
        type-specific fields and row buttons appear only then."""
        probes = []
        for target in list(self.targets.values()):
            for name, sources in target.refresh.items():
                for option in target.fields[name].options:
                    for url, vals in sources:
                        data = {**target.base, name: [option], **{k: [v] for k, v in vals.items()}}
                        probes.append((target, urlsplit(url).path, data))
            for extra in target.submitters or [{}]:
                probes.append((target, target.url, {**target.base, **{k: [v] for k, v in extra.items()}}))
        return probes

    def crawl(self, budget: int = 80) -> None:
        for name, url in self.pages.items():
            sent = Sent("GET", url, False)
            response, _elapsed = self.console.send(sent)
            if response.status_code == 405:  # a POST-only endpoint: fuzz it with no fields known
                self.targets.setdefault(url, Target(url, seen_on={"urlconf"}))
                continue
            try:
                self.console.exchange(sent)
            except FuzzFailure as failure:
                self.failures.append((type(failure).signature, f"crawl as {self.console.label}", str(failure)))
                continue
            self.get_pages[name] = url
            if response.status_code == 200:
                self.harvest(response.content.decode(), url)
        # A form whose action a script fills in (an empty action on a GET-only page) is not a POST target.
        for path, target in list(self.targets.items()):
            response, _elapsed = self.console.send(Sent("POST", path, False, target.base), enctype=target.enctype)
            if response.status_code == 405:
                del self.targets[path]
        self.console.tidy()
        done: set[tuple[str, str]] = set()
        for _round in range(3):
            fresh = False
            for target, url, data in self._probes():
                key = (url, repr(sorted(data.items())))
                if key in done or budget <= 0:
                    continue
                done.add(key)
                budget -= 1
                sent = Sent("POST", url, False, data, target.base)
                try:
                    response = self.console.exchange(sent, enctype=target.enctype)
                except FuzzFailure as failure:
                    self.failures.append((type(failure).signature, f"crawl as {self.console.label}", str(failure)))
                    continue
                if response.status_code < 500 and response.get("Content-Type", "").startswith("text/html"):
                    fresh |= self.harvest(response.content.decode(), url, inherit=target)
            if not fresh:
                break

    def uncovered(self) -> list[str]:
        """URL patterns that are neither a GET page nor a POST target found on a page."""
        reached = {url_name(t.url) for t in self.targets.values()} | set(self.get_pages)
        return sorted(name for name, _params in url_patterns() if name not in reached)


# --- the test's world -----------------------------------------------------------------------------------------


@dataclass
class World:
    cluster: Cluster
    namespace: str
    service: str
    admin: Console
    editor: Console
    report: Callable[[str], None]
    version: int | None = None  # a version of the Service's history (its restore page)
    failures: list[tuple[str, str, str]] = field(default_factory=list)

    def run(
        self, title: str, test: Callable[[], None], counter: list[int], edges: list[Callable[[], None]] = ()
    ) -> None:
        """Try the hard cases ``edges`` first, then run one Hypothesis target; record the failures (Hypothesis
        shrinks each distinct defect on its own) and go on with the next target."""
        started = time.monotonic()
        for edge in edges:
            try:
                edge()
            except AssertionError as error:
                self.record(title + " (edge case)", error)
        try:
            test()
        except Exception as error:  # noqa: BLE001 - an ExceptionGroup of several defects, or one
            for one in _leaves(error):
                self.record(title, one)
        finally:
            self.report(f"fuzz: {title}: {counter[0]} examples ({time.monotonic() - started:.1f}s)")
            TOTALS["examples"] += counter[0]
            TOTALS["targets"] += 1

    def record(self, title: str, error: BaseException) -> None:
        notes = "\n".join(getattr(error, "__notes__", []) or [])
        signature = getattr(type(error), "signature", type(error).__name__)
        text = f"{error}\n{notes}".rstrip()
        if not isinstance(error, AssertionError):
            text += "\n" + "".join(traceback.format_exception(error)[-6:])
        self.failures.append((signature, title, text))


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


TOTALS = {"examples": 0, "targets": 0}


@pytest.fixture(scope="module", autouse=True)
def _totals(request) -> Iterator[None]:
    """One line for the CI log: how many examples the fuzz tests ran in all."""
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.ensure_newline()
            reporter.write_line(f"fuzz: {TOTALS['examples']} examples in all, over {TOTALS['targets']} targets")


@pytest.fixture
def report(request) -> Callable[[str], None]:
    """Write a line to the terminal whether or not output is captured."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")

    def write(line: str) -> None:
        if reporter is None:
            return
        if capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.ensure_newline()
                reporter.write_line(line)
        else:
            reporter.ensure_newline()
            reporter.write_line(line)

    return write


@pytest.fixture(autouse=True)
def _quiet_request_log() -> Iterator[None]:
    """Each 5xx is reported with its traceback's tail already; Django's request log would repeat hundreds."""
    logger = logging.getLogger("django.request")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


@pytest.fixture(autouse=True)
def _bounded_shrinking(monkeypatch) -> None:
    """Cap the time Hypothesis spends shrinking each target's failures (its own cap is 300 s). The cap is an
    internal of Hypothesis: should it go, shrinking just takes its own time (raising=False)."""
    from hypothesis.internal.conjecture import engine

    monkeypatch.setattr(engine, "MAX_SHRINKING_SECONDS", SHRINK_SECONDS, raising=False)


@pytest.fixture
def world(cluster, namespace, admin_api, make_user, report) -> World:
    core = k8s.CoreV1Api(admin_api)
    service = "fuzz-target"
    create_service(core, namespace, service)
    create_deployment(admin_api, namespace, "web", {"app": "web", "tier": "front"})
    admin = make_user("fuzz-admin", role=Role.CLUSTER_ADMIN, cluster=cluster)
    editor = make_user("fuzz-editor", role=Role.NS_EDIT, cluster=cluster, namespace=namespace)
    return World(
        cluster,
        namespace,
        service,
        Console(admin, admin_api, namespace, service, "Cluster Admin"),
        Console(editor, admin_api, namespace, service, "NS Edit"),
        report,
        version=record_history(cluster, core, namespace, service),
    )


def record_history(cluster: Cluster, core: k8s.CoreV1Api, namespace: str, name: str) -> int:
    """Two versions of the Service as the history recorder stores them (the second relabelled, so its history page
    has a comparison and a restore that changes something), and a deleted Service with a history; returns the id of
    the first version (the restore page's)."""
    service = json.loads(core.read_namespaced_service(name, namespace, _preload_content=False).data)
    when, makers = history.change_makers(service)
    metadata = service["metadata"]
    common = {"cluster": cluster, "namespace": namespace, "changed_at": when, "managers": makers}
    first = ServiceVersion.objects.create(
        **common,
        name=name,
        uid=metadata["uid"],
        resource_version="1",
        change="created",
        manifest=history.stored_form(service),
    )
    relabelled = history.stored_form(service)
    relabelled["metadata"]["labels"] = {"team": "other"}
    ServiceVersion.objects.create(
        **common,
        name=name,
        uid=metadata["uid"],
        resource_version=metadata["resourceVersion"],
        change="changed",
        fields=history.changed_fields(first.manifest, relabelled),
        manifest=relabelled,
    )
    gone = {**relabelled, "metadata": {**relabelled["metadata"], "name": "fuzz-gone", "uid": "gone"}}
    for change in ("created", "deleted"):
        ServiceVersion.objects.create(
            **common, name="fuzz-gone", uid="gone", resource_version=change, change=change, manifest=gone
        )
    return first.pk


def _finish(world: World, *sites: Site) -> None:
    """Fail with every distinct defect once (by signature), the targets it showed on, and a reproduction (the
    shrunk one from Hypothesis when there is one)."""
    grouped: dict[str, list[tuple[str, str]]] = {}
    for site in sites:
        for signature, title, text in site.failures:
            grouped.setdefault(signature, []).append((title, text))
    for signature, title, text in world.failures:
        grouped.setdefault(signature, []).append((title, text))
    if not grouped:
        return
    blocks = []
    for signature, seen in grouped.items():
        shrunk = [entry for entry in seen if "Failing test case" in entry[1] or "Falsifying" in entry[1]]
        title, text = min(shrunk or seen, key=lambda entry: len(entry[1]))
        where = sorted({t for t, _ in seen})
        blocks.append(f"=== {signature}\n    on: {'; '.join(where)}\n{text}")
        world.report(f"fuzz: FAILURE {signature} (on {len(where)} target(s))")
    pytest.fail(f"{len(grouped)} distinct failure(s):\n\n" + "\n\n".join(blocks), pytrace=False)


def _discover(world: World, console: Console, budget: int, *, tell: bool = False) -> Site:
    pages, _skipped = reverse_pages(world.cluster.name, world.namespace, world.service, world.version)
    site = Site(console, pages)
    site.crawl(budget)
    assert site.get_pages, "no GET page found in the URLconf"
    if tell:
        for name in site.uncovered():
            world.report(f"fuzz: not covered (no page links to it, and its URL could not be filled): {name}")
    return site


# --- 1. every field of every form -----------------------------------------------------------------------------


def _row_sibling_names(names: list[str]) -> list[str]:
    """Names of rows that the page did not render: the same field at other (odd) indices."""
    out = set()
    for name in names:
        match = re.fullmatch(r"(.+)-(\d+)-(.+)", name)
        if match:
            for index in ("7", "²", "٣", "-1", "99999999999999999999", "1" * 5000):
                out.add(f"{match[1]}-{index}-{match[3]}")
    return sorted(out)


@st.composite
def post_inputs(draw, target: Target) -> dict[str, Any]:
    names = sorted(target.fields)
    changes: dict[str, str] = {}
    if names:
        for name in draw(st.lists(st.sampled_from(names), unique=True, max_size=6)):
            changes[name] = draw(fs.value_for(target.fields[name], name), label=name)
    dropped = draw(st.lists(st.sampled_from(names), unique=True, max_size=2)) if names else []
    strays = _row_sibling_names(names)
    stray_names = (
        st.one_of(st.sampled_from(strays), st.text(min_size=1, max_size=12)) if strays else st.text(max_size=12)
    )
    extra = draw(st.lists(st.tuples(stray_names, fs.generic_value), max_size=2))
    submitter = draw(fs.submitter_values(target.submitters))
    return {
        "changes": changes,
        "dropped": dropped,
        "extra": extra,
        "submitter": submitter,
        "htmx": draw(st.booleans()),
    }


def _known_edge_examples(target: Target) -> list[dict[str, Any]]:
    """Generic hard cases tried on every target before the random ones: row indices and workload references in the
    submitters replaced by Unicode digits, huge numbers, references without a kind (``fs.index_mutations``); and, with one submitter of each kind (verb), all free-text fields set to a
    Unicode digit, then to a 5,000-digit number; the same for the management-form counts."""
    cases = []
    mutated = {
        repr(sorted(variant.items())): variant
        for extra in target.submitters
        for key, value in extra.items()
        for variant in ({**extra, key: v} for v in fs.index_mutations(value))
    }
    for submitter in mutated.values():
        cases.append({"changes": {}, "dropped": [], "extra": [], "submitter": submitter, "htmx": True})
    free = [n for n, f in target.fields.items() if not f.options and not fs.is_management_field(n)]
    counts = [n for n in target.fields if fs.is_management_field(n)]
    kinds: dict[str, dict[str, str]] = {}
    for submitter in target.submitters or [{}]:
        kinds.setdefault(str(sorted((k, v.partition("-")[0]) for k, v in submitter.items())), submitter)
    for number, submitter in enumerate(kinds.values()):
        groups = [(free, ("²", "9" * 5000))] + ([(counts, ("²", "9" * 5000))] if number == 0 else [])
        totals = [n for n in counts if n.endswith("-TOTAL_FORMS")]
        if number == 0 and totals:  # every formset claiming a hundred million rows
            groups.append((totals, ("99999999",)))
        for names, values in groups:
            for value in values if names else ():
                changes = dict.fromkeys(names, value)
                cases.append({"changes": changes, "dropped": [], "extra": [], "submitter": submitter, "htmx": False})
    return cases


def _post_payload(target: Target, drawn: dict[str, Any]) -> dict[str, list[str]]:
    data = {k: list(v) for k, v in target.base.items()}
    for name in drawn["dropped"]:
        data.pop(name, None)
    for name, value in drawn["changes"].items():
        data[name] = [value]
    for name, value in drawn["extra"]:
        data.setdefault(name, []).append(value)
    for name, value in drawn["submitter"].items():
        data[name] = [value]
    return data


def fuzz_target(world: World, console: Console, target: Target, examples: int, *, edges: bool = True) -> None:
    counter = [0]

    def one(drawn: dict[str, Any]) -> None:
        counter[0] += 1
        sent = Sent("POST", target.url, drawn["htmx"], _post_payload(target, drawn), target.base)
        console.exchange(sent, enctype=target.enctype)

    test = fuzz_settings(examples)(given(drawn=post_inputs(target))(one))
    calls = [functools.partial(one, case) for case in _known_edge_examples(target)] if edges else []
    world.run(f"POST {url_label(target.url)} as {console.label}", test, counter, calls)


def test_every_form_field(world: World) -> None:
    """Every POST target found on any page, as a Cluster Admin, then (fewer examples) as an NS Edit user. The
    examples are shared out among the targets: EXAMPLES × 25 as Cluster Admin, × 6 as NS Edit."""
    site = _discover(world, world.admin, budget=80, tell=True)
    assert site.targets, "no form posts anywhere: the discovery found nothing to fuzz"
    world.report(
        f"fuzz: discovered {len(site.get_pages)} pages and {len(site.targets)} POST targets as Cluster Admin: "
        + ", ".join(
            f"{url_label(t.url)}[{len(t.fields)} fields, {len(t.submitters)} submitters]" for t in site.targets.values()
        )
    )
    assert any(t.fields for t in site.targets.values()), "POST targets, but no form fields found"
    if os.environ.get("CONSOLE_FUZZ_DEBUG"):
        for t in site.targets.values():
            world.report(
                f"fuzz: target {t.url}: submitters {t.submitters}; refresh {t.refresh}; fields {sorted(t.fields)}"
            )
    for target in site.targets.values():
        fuzz_target(world, world.admin, target, max(8, EXAMPLES * 25 // len(site.targets)))
    editor_site = _discover(world, world.editor, budget=20)
    for target in editor_site.targets.values():
        fuzz_target(world, world.editor, target, max(3, EXAMPLES * 6 // len(editor_site.targets)), edges=False)
    _finish(world, site, editor_site)


# --- 2. query parameters of every GET page --------------------------------------------------------------------


QUERY_EDGES = [
    [("page", "²")],
    [("page", "٣")],
    [("page", "9" * 5000)],
    [("page", "99999999999999999999")],
    [("page", "-1")],
    [("q", "\x00")],
    [("type", "²")],
    [("continue", "²")],
    [("namespace", "../x")],
    [("delete", "")],
]


def _query_probe(world: World, url: str, counter: list[int]) -> Callable[..., None]:
    def one(params: list[tuple[str, str]], htmx: bool) -> None:
        counter[0] += 1
        query = urlencode(params)
        world.admin.exchange(Sent("GET", f"{url}?{query}" if query else url, htmx))

    return one


def test_query_parameters(world: World) -> None:
    site = _discover(world, world.admin, budget=0)
    for name, url in site.get_pages.items():
        counter = [0]
        keys = sorted(site.query_keys.get(urlsplit(url).path, set()))
        one = _query_probe(world, url, counter)
        test = fuzz_settings(EXAMPLES * 2)(given(params=fs.query_params(keys), htmx=st.booleans())(one))
        edges = [functools.partial(one, params, False) for params in QUERY_EDGES]
        world.run(f"GET {name}?…", test, counter, edges)
    _finish(world, site)


# --- 3. YAML create and edit ----------------------------------------------------------------------------------


def _yaml_targets(site: Site) -> list[tuple[Target, str]]:
    """Targets that carry a textarea, and that textarea's name."""
    found = []
    for target in site.targets.values():
        areas = [n for n, f in target.fields.items() if f.kind == "textarea"]
        if areas:
            found.append((target, areas[0]))
    return found


def _yaml_probe(world: World, target: Target, area: str, counter: list[int]) -> Callable[..., None]:
    def one(text: str, submitter: dict[str, str], htmx: bool) -> None:
        counter[0] += 1
        data = {**target.base, area: [text], **{k: [v] for k, v in submitter.items()}}
        world.admin.exchange(Sent("POST", target.url, htmx, data, target.base), enctype=target.enctype)

    return one


def test_yaml(world: World) -> None:
    site = _discover(world, world.admin, budget=0)
    targets = _yaml_targets(site)
    assert targets, "no page with a textarea: where did the YAML editor go?"
    for target, area in targets:
        counter = [0]
        editing = resolve(target.url).kwargs.get("name")
        one = _yaml_probe(world, target, area, counter)
        submitters = st.sampled_from([e for e in target.submitters if e] or [{}])
        test = given(text=fs.yaml_texts(editing, world.namespace), submitter=submitters, htmx=st.booleans())(one)
        name = editing or f"fuzz-{uuid.uuid4().hex[:6]}"
        edges = [
            "[" * 2000 + "]" * 2000,
            "a:\n" + "".join(" " * i + "b:\n" for i in range(1, 700)),
            f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  resourceVersion: '1'\n"
            "spec:\n  selector: {app: web}\n  ports: [{port: 80}]\n",
            f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  resourceVersion: not-a-number\n"
            "spec:\n  selector: {app: web}\n  ports: [{port: 80}]\n",
            f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n"
            "spec:\n  selector: {app: web}\n  ports: [{port: 80, nodePort: ²}]\n",
        ]
        # every edge with every submit button (save, validate, ...)
        calls = [functools.partial(one, text, e, False) for text in edges for e in target.submitters if e]
        world.run(f"YAML {url_label(target.url)}", fuzz_settings(EXAMPLES * 3)(test), counter, calls)
    _finish(world, site)


# --- oversized requests ---------------------------------------------------------------------------------------


def _oversized_probe(world: World, target: Target, counter: list[int]) -> Callable[..., None]:
    max_fields = django_settings.DATA_UPLOAD_MAX_NUMBER_FIELDS or 1000
    max_bytes = django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 2_621_440
    # the field a user would paste a big text into: a textarea, else a visible text field, else any other
    rank = {"textarea": 0, "text": 1, "search": 2, "hidden": 3}
    texts = sorted(
        (n for n, f in target.fields.items() if f.kind in rank and "csrf" not in n),
        key=lambda n: rank[target.fields[n].kind],
    )
    big_field = texts[0] if texts else "x"
    submit = next((e for e in target.submitters if e), {})

    def one(kind: str, excess: int, htmx: bool) -> None:
        counter[0] += 1
        data = {k: list(v) for k, v in target.base.items()} | {k: [v] for k, v in submit.items()}
        if kind == "too many fields":
            data |= {f"extra-{i}": ["x"] for i in range(max_fields + excess)}
            note = f"plus {max_fields + excess} extra fields extra-0… (DATA_UPLOAD_MAX_NUMBER_FIELDS={max_fields})"
        else:
            data[big_field] = ["a" * (max_bytes + excess)]
            note = f"{big_field!r} holds {max_bytes + excess} bytes (DATA_UPLOAD_MAX_MEMORY_SIZE={max_bytes})"
        sent = Sent("POST", target.url, htmx, data, target.base, note, kind=kind)
        world.admin.exchange(sent, enctype=target.enctype)

    return one


def test_oversized_requests(world: World) -> None:
    """More fields than DATA_UPLOAD_MAX_NUMBER_FIELDS, a body over DATA_UPLOAD_MAX_MEMORY_SIZE: a clear answer."""
    site = _discover(world, world.admin, budget=0)
    for target in site.targets.values():
        counter = [0]
        one = _oversized_probe(world, target, counter)
        test = given(
            kind=st.sampled_from(["too many fields", "body too large"]),
            excess=st.integers(min_value=1, max_value=4096),
            htmx=st.booleans(),
        )(one)
        edges = [
            functools.partial(one, "too many fields", 1, False),
            functools.partial(one, "body too large", 1, False),
        ]
        world.run(f"oversized POST {url_label(target.url)}", fuzz_settings(2)(test), counter, edges)
    _finish(world, site)


# --- 4. kubeconfig inputs -------------------------------------------------------------------------------------

KUBECONFIG_EDGES = [
    "[" * 3000 + "]" * 3000,
    "{a: " * 3000 + "1" + "}" * 3000,
    "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts: " + "[" * 2000 + "]" * 2000,
    "current-context: [1]\n",
    "current-context: c\ncontexts: [{name: c, context: [1, 2]}]\n",
    "current-context: c\ncontexts: [{name: c, context: {cluster: [k], user: u}}]\nclusters: [{name: [k]}]\n",
]


def _kubeconfig_check(call: Callable[[], Any], text: Any, allowed: tuple[type[BaseException], ...]) -> Any:
    try:
        return call()
    except allowed as error:
        assert str(error).strip(), f"{type(error).__name__} without a message for {_short(text, 120)}"
        return error
    except Exception as error:  # noqa: BLE001 - anything else is the defect under test
        frames = traceback.extract_tb(error.__traceback__)
        own = [f for f in frames if f.filename.startswith(str(ROOT)) and "/.venv/" not in f.filename]
        where = f"{Path(own[-1].filename).relative_to(ROOT)}:{own[-1].lineno}" if own else "?"
        tail = "\n".join("".join(traceback.format_exception(error)).rstrip().splitlines()[-4:])
        raise failure_type(f"{type(error).__name__}@{where}")(
            f"{type(error).__name__} instead of {'/'.join(a.__name__ for a in allowed) or 'an answer'} for "
            f"{_short(text, 120)}\n{tail}"
        ) from None


def test_kubeconfig_parser(world: World) -> None:
    counter = [0]

    def one(text: str | bytes) -> None:
        counter[0] += 1
        result = _kubeconfig_check(
            lambda: kube.parse_kubeconfig(text, max_bytes=256 * 1024), text, (kube.KubeconfigError,)
        )
        assert isinstance(result, kube.Credentials | kube.KubeconfigError)
        if isinstance(result, kube.Credentials):
            assert result.server and (result.token or result.client_cert)

    test = fuzz_settings(EXAMPLES * 25)(given(text=fs.kubeconfig_texts)(one))
    edges = [functools.partial(one, text) for text in KUBECONFIG_EDGES]
    world.run("kube.parse_kubeconfig", test, counter, edges)
    _finish(world)


def test_cluster_form_and_register_cluster(world: World) -> None:
    counter = [0]
    before = set(Cluster.objects.values_list("name", flat=True))

    def form(text: str | bytes, context: str, insecure: bool) -> None:
        counter[0] += 1
        payload = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
        data = {"name": "fuzzed", "display_name": "", "description": "", "context": context}
        if insecure:
            data["insecure_skip_tls_verify"] = "on"
        bound = ClusterForm(data=data, files={"kubeconfig": SimpleUploadedFile("kubeconfig", payload)})
        valid = _kubeconfig_check(bound.is_valid, text, ())
        if not valid:
            assert bound.errors, "an invalid form without errors"
            assert all(str(m).strip() for messages in bound.errors.values() for m in messages)

    contexts = st.one_of(st.just(""), st.just("c"), st.text(max_size=10))
    test = given(text=fs.kubeconfig_texts, context=contexts, insecure=st.booleans())(form)
    edges = [functools.partial(form, text, "", False) for text in KUBECONFIG_EDGES]
    world.run("clusters.forms.ClusterForm(kubeconfig=…)", fuzz_settings(EXAMPLES * 6)(test), counter, edges)

    command_counter = [0]

    def command(text: str | bytes, context: str) -> None:
        command_counter[0] += 1
        payload = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
        result = _kubeconfig_check(
            lambda: register_cluster("fuzzed-cmd", payload, context=context), text, (CommandError,)
        )
        if isinstance(result, Cluster):  # only a reachable cluster with valid credentials registers
            assert result.reachable and result.kubernetes_version
            result.delete()
        else:
            assert not Cluster.objects.filter(name="fuzzed-cmd").exists(), "a refused kubeconfig left a cluster"

    test = given(text=fs.kubeconfig_texts, context=contexts)(command)
    edges = [functools.partial(command, text, "") for text in KUBECONFIG_EDGES]
    world.run("register_cluster(...)", fuzz_settings(EXAMPLES * 4)(test), command_counter, edges)
    assert set(Cluster.objects.values_list("name", flat=True)) == before
    _finish(world)
