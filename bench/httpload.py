"""A small closed-loop HTTP load generator for a server on loopback: one thread and one connection per simulated
client, each sending its next request as soon as the previous answer is read. Standard library only.

A connection is reused while the server keeps it open (gunicorn's sync workers close it after every response, so
``http.client`` reconnects transparently; that is the server's model, and its cost is part of the latency).
"""

from __future__ import annotations

import http.client
import math
import os
import re
import statistics
import threading
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Load:
    """What one load run measured."""

    clients: int
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests only
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies) + self.errors

    def percentile(self, q: float) -> float:
        """The q-th percentile (0-100) of the latencies, in seconds (nearest-rank on the sorted samples)."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
        return ordered[rank - 1]

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    @property
    def median(self) -> float:
        return statistics.median(self.latencies) if self.latencies else float("nan")


def fetch(
    host: str, port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 30.0
) -> tuple[int, dict[str, str], bytes]:
    """One GET on a fresh connection: (status, headers with lower-case names, body)."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        connection.close()


def run(
    host: str,
    port: int,
    path: str,
    *,
    clients: int,
    headers: dict[str, str] | None = None,
    total: int | None = None,
    duration: float | None = None,
    expect: bytes = b"",
    timeout: float = 30.0,
) -> Load:
    """Drive ``clients`` concurrent clients until ``total`` requests were sent or ``duration`` seconds passed
    (whichever is given first is the bound; both may be given). A request counts as an error when it raises, does not
    answer 200, or its body lacks ``expect``."""
    if total is None and duration is None:
        raise ValueError("give total or duration, or the load would never stop")
    result = Load(clients=clients)
    lock = threading.Lock()
    tickets = iter(range(total)) if total is not None else None
    started = time.perf_counter()
    deadline = started + duration if duration is not None else float("inf")

    def take() -> bool:
        if time.perf_counter() >= deadline:
            return False
        if tickets is None:
            return True
        with lock:
            return next(tickets, None) is not None

    def client(_index: int) -> None:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
        latencies: list[float] = []
        errors: list[str] = []
        try:
            while take():
                began = time.perf_counter()
                try:
                    connection.request("GET", path, headers=headers or {})
                    response = connection.getresponse()
                    body = response.read()
                except (OSError, http.client.HTTPException) as error:
                    connection.close()
                    errors.append(f"{type(error).__name__}: {error}"[:200])
                    continue
                took = time.perf_counter() - began
                if response.status != 200:
                    errors.append(f"HTTP {response.status}")
                elif expect and expect not in body:
                    errors.append(f"HTTP 200 without {expect!r}")
                else:
                    latencies.append(took)
        finally:
            connection.close()
            with lock:
                result.latencies.extend(latencies)
                result.errors += len(errors)
                result.error_examples.extend(errors[: max(0, 5 - len(result.error_examples))])

    _all_at_once(client, clients, "load")
    result.elapsed = time.perf_counter() - started
    return result


def _all_at_once(target, count: int, name: str) -> None:
    """Run ``target(i)`` for i in range(count), each in a thread of its own, and wait for them all."""
    threads = [threading.Thread(target=target, args=(i,), name=f"{name}-{i}", daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# --- the page's assets ---------------------------------------------------------------------------------------------


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.css: list[str] = []
        self.js: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "link" and "stylesheet" in (values.get("rel") or "").split() and values.get("href"):
            self.css.append(values["href"] or "")
        elif tag == "script" and values.get("src"):
            self.js.append(values["src"] or "")


def assets_of(html: bytes) -> tuple[list[str], list[str]]:
    """The stylesheet and script URLs a page links to, in document order."""
    parser = _Assets()
    parser.feed(html.decode("utf-8", errors="replace"))
    return parser.css, parser.js


# --- worker memory -------------------------------------------------------------------------------------------------


def children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(child) for child in handle.read().split()]
    except OSError:
        pass
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    stat = handle.read()
            except OSError:
                continue
            # The command name (field 2) may hold spaces and parentheses; the parent pid follows the last ')'.
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return sorted(found)


def status_kib(pid: int, field: str) -> int:
    """A memory figure of a process's /proc status (VmRSS, VmHWM, ...), in KiB."""
    with open(f"/proc/{pid}/status") as handle:
        match = re.search(rf"^{field}:\s+(\d+)\s+kB", handle.read(), re.M)
    if match is None:
        raise RuntimeError(f"no {field} for process {pid}")
    return int(match.group(1))


def rss_kib(pid: int) -> int:
    """VmRSS of a process (resident now), in KiB."""
    return status_kib(pid, "VmRSS")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far, in seconds."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    # After the command: state is field 3; utime and stime are fields 14 and 15 (1-based in proc(5)).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Paced:
    """What a paced run measured: every answer's latency and status."""

    pages: int
    interval: float
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    bytes_received: int = 0
    errors: int = 0
    elapsed: float = 0.0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + self.errors

    def percentile(self, q: float) -> float:
        return Load(clients=self.pages, latencies=self.latencies).percentile(q)


def paced(
    host: str,
    port: int,
    path: str,
    *,
    pages: int,
    interval: float,
    duration: float,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Paced:
    """``pages`` open pages each asking ``path`` once every ``interval`` seconds (their first asks spread over the
    first interval, as pages opened at different moments are), for ``duration`` seconds."""
    result = Paced(pages=pages, interval=interval)
    lock = threading.Lock()
    started = time.perf_counter()

    def page(index: int) -> None:
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        received = errors = 0
        due = started + interval * index / pages
        while True:
            time.sleep(max(0.0, due - time.perf_counter()))
            if time.perf_counter() - started >= duration:
                break
            began = time.perf_counter()
            try:
                status, response_headers, body = fetch(host, port, path, headers, timeout)
            except (OSError, http.client.HTTPException):
                errors += 1
            else:
                latencies.append(time.perf_counter() - began)
                statuses[status] = statuses.get(status, 0) + 1
                received += len(body) + sum(len(k) + len(v) + 4 for k, v in response_headers.items())
            due += interval
        with lock:
            result.latencies.extend(latencies)
            for status, count in statuses.items():
                result.statuses[status] = result.statuses.get(status, 0) + count
            result.bytes_received += received
            result.errors += errors

    _all_at_once(page, pages, "page")
    result.elapsed = time.perf_counter() - started
    return result
