"""``make bench-scale``: the console at scale on the benchmark's production server. One namespace of 20,000
Services; 1,000 open list pages, spread over its first 50 pages, each polling every 0.8 s as ``console.js`` does
(a redraw's HTML, or a 204's ``X-Live-Url``, gives the page its next poll URL); and 50 editors, each creating a
Service through the console's form and deleting it through the console's delete every 5 s, with names that fall
anywhere in the namespace's order (so an edit may move every later page of the list).

It reports the polls' and the editors' latencies and errors, how many polls redrew, and the workers' CPU per open
page; it writes ``docs/benchmarks-scale.json`` and the section between ``<!-- scale -->`` and ``<!-- /scale -->``
of ``docs/benchmarks.md`` (``make bench`` keeps that section). ``--quick``: 2,000 Services, 100 pages, 5 editors,
10 s, into a temporary folder.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import run  # noqa: E402 - the project root must be on the path first

LIST_PAGES = 50  # the open pages are spread over the namespace's first LIST_PAGES list pages
EDIT_INTERVAL = 5.0  # seconds between one editor's changes
LIVE_URL = re.compile(rb'data-live-url="([^"]+)"')


@dataclass
class Tally:
    """Latencies and outcomes of one kind of request, from many threads."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, seconds: float, status: int) -> None:
        with self.lock:
            self.latencies.append(seconds)
            self.statuses[status] = self.statuses.get(status, 0) + 1

    def failed(self) -> None:
        with self.lock:
            self.errors += 1

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))] * 1000 if ordered else float("nan")


def _request(
    port: int, method: str, path: str, headers: dict[str, str], body: str = ""
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body=body.encode() or None, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


class Scale:
    def __init__(self, bench: run.Bench, *, pages: int, editors: int, duration: float) -> None:
        self.bench, self.pages, self.editors, self.duration = bench, pages, editors, duration
        self.polls, self.edits = Tally(), Tally()
        self.stop = threading.Event()

    def poll_urls(self, namespace: str) -> list[str]:
        """The live URL of each of the namespace's first LIST_PAGES list pages."""
        bench = self.bench
        urls = []
        for page in range(1, LIST_PAGES + 1):
            status, _headers, html = _request(
                bench.port, "GET", f"{bench.list_path}?{urlencode({'page': page})}", bench.cookie
            )
            found = LIVE_URL.search(html)
            if status != 200 or not found:
                raise RuntimeError(f"list page {page} of {namespace} answered {status} without a live URL")
            urls.append(unescape(found.group(1).decode()))
        return urls

    def page(self, index: int, url: str, began: float) -> None:
        headers = {**self.bench.cookie, "HX-Request": "true"}
        due = began + run.LIVE_INTERVAL * index / self.pages
        while not self.stop.is_set():
            time.sleep(max(0.0, due - time.perf_counter()))
            started = time.perf_counter()
            try:
                status, answer_headers, body = _request(self.bench.port, "GET", url, headers)
            except (OSError, http.client.HTTPException):
                self.polls.failed()
            else:
                self.polls.add(time.perf_counter() - started, status)
                if status == 200 and (found := LIVE_URL.search(body)):
                    url = unescape(found.group(1).decode())
                elif status == 204 and answer_headers.get("x-live-url"):
                    url = answer_headers["x-live-url"]
                elif status not in (200, 204):
                    self.polls.failed()
            due += run.LIVE_INTERVAL

    def editor(self, index: int, namespace: str, csrf: str, began: float) -> None:
        bench = self.bench
        headers = {
            "Cookie": f"{bench.cookie['Cookie']}; csrftoken={csrf}",
            "X-CSRFToken": csrf,
            "HX-Request": "true",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        base = f"/clusters/{run.CLUSTER}/namespaces/{namespace}/services/"
        due, turn = began + EDIT_INTERVAL * index / self.editors, 0
        while not self.stop.is_set():
            time.sleep(max(0.0, due - time.perf_counter()))
            if self.stop.is_set():
                break
            name = f"svc-{random.randrange(bench.sizes[0]):05d}-e{index}-{turn}"
            turn += 1
            for method_path, body in (
                (f"{base}create/", urlencode(run.form_data(name))),
                (f"{base}{name}/delete/", None),
            ):
                if body is None:  # the delete names the Service's uid, as the page's form does
                    try:
                        uid = bench.core.read_namespaced_service(name, namespace).metadata.uid
                    except Exception:  # noqa: BLE001 - the create failed: counted there
                        break
                    body = urlencode({"uid": uid})
                started = time.perf_counter()
                try:
                    status, _h, _b = _request(bench.port, "POST", method_path, headers, body)
                except (OSError, http.client.HTTPException):
                    self.edits.failed()
                    continue
                self.edits.add(time.perf_counter() - started, status)
                if status not in (200, 204, 302):
                    self.edits.failed()
            due += EDIT_INTERVAL

    def measure(self) -> None:
        from bench import httpload

        bench = self.bench
        namespace = bench.namespaces[bench.sizes[0]]
        urls = self.poll_urls(namespace)
        _s, create_headers, _b = _request(bench.port, "GET", f"{bench.list_path}create/", bench.cookie)
        found = re.search(r"csrftoken=([^;]+)", create_headers.get("set-cookie", ""))
        if not found:
            raise RuntimeError("the create form set no CSRF cookie")
        workers = httpload.children_of(bench.server.pid)
        cpu_before = sum(httpload.cpu_seconds(pid) for pid in workers)
        began = time.perf_counter()
        threads = [
            threading.Thread(target=self.page, args=(i, urls[i % len(urls)], began), daemon=True)
            for i in range(self.pages)
        ] + [
            threading.Thread(target=self.editor, args=(i, namespace, found.group(1), began), daemon=True)
            for i in range(self.editors)
        ]
        for thread in threads:
            thread.start()
        time.sleep(self.duration)
        self.stop.set()
        for thread in threads:
            thread.join(90)
        elapsed = time.perf_counter() - began
        cores = (sum(httpload.cpu_seconds(pid) for pid in workers) - cpu_before) / elapsed
        answered = sum(self.polls.statuses.values())
        figures = bench.figures
        figures |= {
            "scale_services": bench.sizes[0],
            "scale_open_pages": self.pages,
            "scale_editors": self.editors,
            "scale_seconds": round(elapsed, 1),
            "scale_polls": answered,
            "scale_polls_redrawn": self.polls.statuses.get(200, 0),
            "scale_poll_p50_ms": self.polls.percentile(50),
            "scale_poll_p99_ms": self.polls.percentile(99),
            "scale_poll_errors": self.polls.errors,
            "scale_edits": sum(self.edits.statuses.values()),
            "scale_edit_p50_ms": self.edits.percentile(50),
            "scale_edit_p99_ms": self.edits.percentile(99),
            "scale_edit_errors": self.edits.errors,
            "scale_errors": self.polls.errors + self.edits.errors,
            "scale_cpu_cores": cores,
            "scale_cpu_ms_per_open_page_second": cores / self.pages * 1000,
        }


def rows(figures: dict[str, Any]) -> tuple[list[str], list[str]]:
    table = [
        ["Services in the namespace", f"{figures['scale_services']:,}"],
        ["open list pages (over its first 50 pages), each polling every 0.8 s", f"{figures['scale_open_pages']:,}"],
        ["editors, each creating and deleting a Service through the console every 5 s", f"{figures['scale_editors']}"],
        ["polls answered / of which redrawn (200)", f"{figures['scale_polls']:,} / {figures['scale_polls_redrawn']:,}"],
        ["poll latency p50 / p99", f"{figures['scale_poll_p50_ms']:.1f} / {figures['scale_poll_p99_ms']:.1f} ms"],
        ["editors' requests (create and delete POSTs)", f"{figures['scale_edits']:,}"],
        ["editors' latency p50 / p99", f"{figures['scale_edit_p50_ms']:.1f} / {figures['scale_edit_p99_ms']:.1f} ms"],
        ["errors (polls + editors)", f"{figures['scale_errors']}"],
        ["workers' CPU (cores)", f"{figures['scale_cpu_cores']:.3f}"],
        ["workers' CPU per open page (ms of CPU per second)", f"{figures['scale_cpu_ms_per_open_page_second']:.3f}"],
    ]
    return ["scale (bench/scale.py)", "value"], table


def markdown_block(figures: dict[str, Any], details: dict[str, Any]) -> str:
    from bench import report

    parts = [
        "<!-- scale -->",
        "## At scale: 20,000 Services, 1,000 open pages, 50 editors",
        "",
        f"Generated by `make bench-scale` (`bench/scale.py`) on {details['date']}; `make bench` keeps this section "
        "as it is. Every figure is also in [`benchmarks-scale.json`](benchmarks-scale.json).",
        "",
        "The benchmark's production server (gunicorn, 2 sync workers, as above) and a fresh control plane with one "
        f"namespace of {figures['scale_services']:,} Services (those of `make bench`). {figures['scale_open_pages']:,} "
        "open list pages, spread over the namespace's first 50 pages, each poll every 0.8 s and follow their "
        "answers as `console.js` does (a redraw's HTML or a 204's `X-Live-Url` gives the next poll URL); "
        f"{figures['scale_editors']} editors each create a Service through the console's form and delete it "
        "through the console every 5 s, under names that fall anywhere in the namespace's order. A page redraws "
        "only when what it shows changed (its rows, their EndpointSlices, whether more follow). The load "
        "generator runs in the benchmark's process on the same 2 cores; an error is a failed request or an "
        f"answer other than 200/204 (polls) or 200/204/302 (editors). {figures['scale_seconds']:.0f} s.",
        "",
        report.md_table(*rows(figures)),
        "",
        f"Machine: {details['nproc']} cores, load average (1 min) {details['load_start']:.2f} at the start, "
        f"{details['load_end']:.2f} at the end; run time {details['run_seconds']:.0f} s.",
        "<!-- /scale -->",
    ]
    return "\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 Services, 100 pages, 5 editors, 10 s")
    parser.add_argument("--output", type=Path, help="folder for benchmarks.md and benchmarks-scale.json")
    args = parser.parse_args()
    services, pages, editors, duration = (2_000, 100, 5, 10.0) if args.quick else (20_000, 1_000, 50, 60.0)
    output = args.output or (Path(tempfile.mkdtemp(prefix="console-bench-scale-")) if args.quick else ROOT / "docs")
    began, load_start = time.monotonic(), os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="console-bench-scale-"))

    def terminated(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)
    run.prepare_environment(tmp)
    bench = run.Bench(argparse.Namespace(reps=0, duration=duration, quick=args.quick), tmp)
    bench.sizes_override = (services,)
    try:
        bench.setup_django()
        bench.start_cluster()
        bench.fill()
        bench.start_server()
        run.log(f"scale: {pages} open pages, {editors} editors, {duration:.0f} s")
        Scale(bench, pages=pages, editors=editors, duration=duration).measure()
    finally:
        bench.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    from bench import report

    details = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
        "run_seconds": time.monotonic() - began,
    }
    print(report.text_table(*rows(bench.figures)))
    output.mkdir(parents=True, exist_ok=True)
    report.write_json(output / "benchmarks-scale.json", bench.figures)
    page = output / "benchmarks.md"
    text = page.read_text() if page.exists() else ""
    page.write_text(report.with_section(text, "scale", markdown_block(bench.figures, details)))
    run.log(f"wrote {page} and {output / 'benchmarks-scale.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
