"""Where a page's wall-clock time goes, without a profiler (so without its distortion): timers wrapped around the
Kubernetes calls (``kube.call``), the database (an execute wrapper), template rendering (the template backend's
``render``, context processors included) and the view with everything inside the middleware
(``BaseHandler._get_response``). The rest of the view's time is its own Python code, including the ORM's query
building and the session and user loading that ``login_required`` triggers; the time outside is the test client
and the middleware."""

from __future__ import annotations

import time
from collections.abc import Callable

LABELS = ("kubernetes API calls", "database", "template rendering", "view")
# Parts of the request timed inclusively (their own queries included), shown under the main rows.
PARTS = (
    ("session", "of which: session and user loading (`auth.get_user`)"),
    ("access", "of which: role check (`cluster_for_user`, one query)"),
    ("form", "of which: form and formsets built and validated"),
    ("audit", "of which: audit entry written (`audit.record`)"),
)


class Timers:
    """Install before the test client's first request: its handler binds the middleware chain then."""

    def __init__(self) -> None:
        from django.contrib import auth
        from django.core.handlers import base
        from django.db import connection
        from django.template.backends import django as django_backend

        import kube
        from clusters import access, audit
        from services import api
        from services.forms import ServiceFormBundle

        self.reset()
        self._originals = [
            (kube, "call", kube.call),
            (api, "_call", api._call),
            (django_backend.Template, "render", django_backend.Template.render),
            (base.BaseHandler, "_get_response", base.BaseHandler._get_response),
            (auth, "get_user", auth.get_user),
            (access, "cluster_for_user", access.cluster_for_user),
            (ServiceFormBundle, "__init__", ServiceFormBundle.__init__),
            (ServiceFormBundle, "is_valid", ServiceFormBundle.is_valid),
            (audit, "record", audit.record),
        ]
        auth.get_user = self._timed("session", auth.get_user)
        access.cluster_for_user = self._timed("access", access.cluster_for_user)
        ServiceFormBundle.__init__ = self._timed("form", ServiceFormBundle.__init__)
        ServiceFormBundle.is_valid = self._timed("form", ServiceFormBundle.is_valid)
        audit.record = self._timed("audit", audit.record)
        kube.call = api._call = self._timed_calls(kube.call)
        django_backend.Template.render = self._timed("template rendering", django_backend.Template.render)
        base.BaseHandler._get_response = self._timed("view", base.BaseHandler._get_response)
        self._database = connection.execute_wrapper(self._query)
        self._database.__enter__()

    def uninstall(self) -> None:
        for owner, name, original in self._originals:
            setattr(owner, name, original)
        self._database.__exit__(None, None, None)

    def reset(self) -> None:
        keys = [*LABELS, *(key for key, _label in PARTS)]
        self.spent = dict.fromkeys(keys, 0.0)
        self.counts = dict.fromkeys(keys, 0)
        self.intervals: list[tuple[float, float]] = []

    def _timed(self, label: str, function):
        def wrapper(*args, **kwargs):
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.spent[label] += time.perf_counter() - began
                self.counts[label] += 1

        return wrapper

    def _timed_calls(self, function):
        """The Kubernetes calls as wall-clock intervals: the detail page makes some at once, from threads, so
        their time is the union of the intervals, not the sum."""

        def wrapper(*args, **kwargs):
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.intervals.append((began, time.perf_counter()))  # list.append is atomic

        return wrapper

    def api_time(self) -> tuple[float, int]:
        """Seconds during which at least one Kubernetes call was in flight, and how many calls there were."""
        covered, end = 0.0, float("-inf")
        for began, ended in sorted(self.intervals):
            if ended > end:
                covered += ended - max(began, end)
                end = ended
        return covered, len(self.intervals)

    def _query(self, execute, sql, params, many, context):
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.spent["database"] += time.perf_counter() - began
            self.counts["database"] += 1


def measure(timers: Timers, call: Callable[[], object], calls: int, warmup: int = 20) -> list[tuple[str, float, str]]:
    """``calls`` runs of ``call``: rows of (what, ms per call, how many per call), the first row the total."""
    for _ in range(warmup):
        call()
    timers.reset()
    began = time.perf_counter()
    for _ in range(calls):
        call()
    total = time.perf_counter() - began
    spent, counts = timers.spent, timers.counts
    spent["kubernetes API calls"], counts["kubernetes API calls"] = timers.api_time()
    view = spent["view"]
    own = view - spent["kubernetes API calls"] - spent["database"] - spent["template rendering"]

    def per_call(label: str) -> str:
        return f"{counts[label] / calls:.0f}"

    return [
        ("total", total / calls * 1000, ""),
        (
            "Kubernetes API calls (`kube.call`)",
            spent["kubernetes API calls"] / calls * 1000,
            per_call("kubernetes API calls"),
        ),
        ("database queries (execute time)", spent["database"] / calls * 1000, per_call("database")),
        ("template rendering", spent["template rendering"] / calls * 1000, per_call("template rendering")),
        ("view's own code, ORM query building, session and user loading", own / calls * 1000, ""),
        ("test client and middleware", (total - view) / calls * 1000, ""),
        *((label, spent[key] / calls * 1000, "") for key, label in PARTS),
    ]
