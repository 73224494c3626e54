"""Profile the benchmark's slow paths in process with cProfile: the list page, its HTMX partial, the create form
POST and the raw calls they are compared with, against a fresh local control plane (same set-up as ``run.py``,
with one namespace of 1,000 Services).

    .venv/bin/python bench/profile_pages.py [--calls 200] [--sort tottime|cumulative] [--limit 40] [--only list]

Prints, for each path, the functions that take the time, and writes ``<name>.prof`` files (for snakeviz or
``python -m pstats``) into a temporary folder it names.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import itertools
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import breakdown as breakdown_  # noqa: E402 - the project root must be on the path first
from bench import run  # noqa: E402


def breakdown(timers: breakdown_.Timers, name: str, call, calls: int) -> None:
    rows = breakdown_.measure(timers, call, calls)
    total = rows[0][1]
    print(f"\n===== {name}: {total:.2f} ms per call ({calls} calls) =====")
    for label, ms, count in rows[1:]:
        print(f"  {label:66s} {ms:7.2f} ms  {ms / total:6.1%}  {count + ' per call' if count else ''}")


def parts(browser, url: str, namespace: str, calls: int) -> None:
    """The list page taken apart, each part timed alone (medians, wall clock): the templates rendered again with
    the context of one real request, with and without rows and row menus; and the view's fixed costs."""
    import statistics
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import get_user
    from django.template import loader

    from clusters.access import namespace_access
    from services import listing, views

    captured: dict = {}
    real_render = views.render

    def capture(request, template, context, *args, **kwargs):
        captured.update(request=request, context=dict(context))
        return real_render(request, template, context, *args, **kwargs)

    views.render = capture
    try:
        browser.get(url)
    finally:
        views.render = real_render
    request, context = captured["request"], captured["context"]
    full, table = loader.get_template("services/list.html"), loader.get_template("services/list.html#table")
    session_key = browser.cookies[settings.SESSION_COOKIE_NAME].value
    engine = import_module(settings.SESSION_ENGINE)

    def fresh_user() -> None:
        class Fresh:
            session = engine.SessionStore(session_key)

        get_user(Fresh())

    def rows() -> None:
        base = url
        [
            listing.row(item, [], base, listing.row_labels(True))
            for item in listing.api.list_services(context["access"].cluster, namespace, limit=20)[0]
        ]

    probes = {
        "template: full page (20 rows)": lambda: full.render(context, request),
        "template: table partial (20 rows)": lambda: table.render(context, request),
        "template: table partial, can_edit off (no row menus, no delete dialogs)": lambda: table.render(
            {**context, "can_edit": False}, request
        ),
        "template: table partial, no rows": lambda: table.render({**context, "rows": []}, request),
        "template: full page, can_edit off": lambda: full.render({**context, "can_edit": False}, request),
        "template: full page, no rows": lambda: full.render({**context, "rows": []}, request),
        "view: namespace_access (cluster + grants queries)": lambda: namespace_access(request, run.CLUSTER, namespace),
        "view: session + user loading (2 queries)": fresh_user,
        "view: list_services (API call + json) + _row x20": rows,
    }
    print()
    for label, probe in probes.items():
        for _ in range(20):
            probe()
        times = []
        for _ in range(calls):
            began = time.perf_counter()
            probe()
            times.append(time.perf_counter() - began)
        size = len(probe() or "") if label.startswith("template") else 0
        extra = f"  ({size:,} characters)" if size else ""
        print(f"  {label:75s} {statistics.median(times) * 1000:7.2f} ms{extra}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--sort", default="tottime", choices=["tottime", "cumulative"])
    parser.add_argument("--limit", type=int, default=35)
    parser.add_argument(
        "--only",
        choices=["list", "partial", "empty", "rawempty", "create", "raw", "detail", "rawcreate", "rawget"],
        action="append",
    )
    parser.add_argument(
        "--parts", action="store_true", help="time the list page's parts: templates with and without rows, access"
    )
    parser.add_argument(
        "--breakdown", action="store_true", help="wall-clock shares (API calls, DB, templates, rest) without cProfile"
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="console-profile-"))
    out = Path(tempfile.mkdtemp(prefix="console-profile-out-"))
    run.prepare_environment(tmp)
    bench = run.Bench(argparse.Namespace(quick=True, reps=0, duration=0), tmp)
    bench.sizes_override = (1000,)
    try:
        bench.setup_django()
        bench.start_cluster()
        bench.fill()
        from django.test import Client
        from django.urls import reverse

        from services.listing import PAGE_SIZE

        empty_url = reverse("services:list", args=[run.CLUSTER, bench.empty_namespace])

        browser = Client()
        browser.force_login(bench.user)
        namespace = bench.namespaces[1000]
        url = reverse("services:list", args=[run.CLUSTER, namespace])
        detail_url = reverse("services:detail", args=[run.CLUSTER, namespace, "svc-00042"])
        create_url = reverse("services:create", args=[run.CLUSTER, bench.create_namespace])
        counter = itertools.count()

        def form_create() -> None:
            browser.cookies.pop("messages", None)
            response = browser.post(
                create_url,
                urlencode(run.form_data(f"form-{next(counter):05d}")),
                run.FORM_ENCODING,
                headers={"HX-Request": "true"},
            )
            assert response.status_code == 200, response.status_code

        paths = {
            "list": lambda: browser.get(url),
            "partial": lambda: browser.get(url, headers={"HX-Request": "true"}),
            "empty": lambda: browser.get(empty_url),
            "rawempty": lambda: bench.core.list_namespaced_service(bench.empty_namespace, limit=PAGE_SIZE),
            "detail": lambda: browser.get(detail_url),
            "create": form_create,
            "raw": lambda: bench.core.list_namespaced_service(namespace, limit=PAGE_SIZE),
            "rawcreate": lambda: bench.core.create_namespaced_service(
                bench.create_namespace, run.create_body(f"raw-{next(counter):05d}")
            ),
            "rawget": lambda: bench.core.read_namespaced_service("svc-00042", namespace),
        }
        if args.parts:
            parts(browser, url, namespace, args.calls)
            return 0
        timers = breakdown_.Timers() if args.breakdown else None
        for name, call in paths.items():
            if args.only and name not in args.only:
                continue
            if args.breakdown:
                breakdown(timers, name, call, args.calls)
                continue
            for _ in range(20):  # warm-up
                call()
            profiler = cProfile.Profile()
            began = time.perf_counter()
            profiler.enable()
            for _ in range(args.calls):
                call()
            profiler.disable()
            took = (time.perf_counter() - began) / args.calls * 1000
            profiler.dump_stats(out / f"{name}.prof")
            text = io.StringIO()
            stats = pstats.Stats(profiler, stream=text)
            stats.sort_stats(args.sort).print_stats(args.limit)
            print(f"\n===== {name}: {took:.1f} ms per call under the profiler ({args.calls} calls) =====")
            print(text.getvalue())
    finally:
        bench.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"profiles in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
