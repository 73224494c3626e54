"""``make bench-history``: what the history recorder (``manage.py record_history``, issue 25) costs.

Self-contained, like ``bench/run.py``: it starts its own local control plane (kube-apiserver, etcd and the
controller-manager without the EndpointSlice controller), its own PostgreSQL (Debian's binaries, as the replicas test runs it, but restarted with the
default durability: every version the recorder stores is a commit, and the flush of that commit belongs in its lag),
migrates it and registers the control plane as ``register_cluster --setup`` does (the console's least-privileged
ServiceAccount token). Then it

* fills 20 namespaces with 10,000 Services (the Services of ``bench/run.py``: two named ports, a selector, labels,
  annotations and a ``last-applied-configuration``), and starts the recorder as a process of its own, so its CPU
  time can be read from ``/proc/<pid>/stat``: the initial sync is the time until it has stored the 10,000 versions
  of its first list (change ``found``), with its CPU time and peak memory (VmHWM);
* changes the label of a random Service 10 times a second for 60 s (a merge patch, paced on a fixed schedule) and
  notes each write's resourceVersion and the moments it was sent and its answer read: the lag of a change is the
  stored version's ``recorded_at`` minus the latter (one machine, one clock); the recorder's CPU over the window,
  and the PostgreSQL backends' that serve it;
* measures the bytes per version: the table with its indexes and TOAST (``pg_total_relation_size``) over its rows
  after the initial sync, and the growth over the changes alone.

It writes ``docs/benchmarks-history.json`` and the section between ``<!-- history -->`` and ``<!-- /history -->``
of ``docs/benchmarks.md`` (``make bench`` keeps that section). Run it with the project's virtualenv:
``.venv/bin/python bench/history.py`` (``--quick``: 1,000 Services and 20 s into a temp folder).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

NAMESPACES = 20
FILL_THREADS = 8
IDLE_SECONDS = 10.0  # the recorder's CPU while nothing changes, the floor under the figures of the changes
SYNC_TIMEOUT = 900.0  # seconds the initial sync may take before the run gives up
DRAIN_TIMEOUT = 60.0  # seconds after the last change for the recorder to store the changes still on their way
LABEL = "bench.history/change"
# The parts of the initial sync, as figures ``initial_sync_<name>_seconds``.
SYNC_PHASES = (
    ("start", "process start to active (Django, lock)"),
    ("list", "active to the first version (the list of every Service, the stored versions read)"),
    ("store", "first to last version (storing)"),
    ("commit", "last version to seen committed"),
)
# Registers the control plane as ``register_cluster --setup`` does, with the administrator's credential from stdin
# (used for the set-up only): the console's ServiceAccount token is what the recorder watches with.
REGISTER = """
import json, sys
import kube
from clusters import rbac
from clusters.models import Cluster
done = rbac.set_up(kube.Credentials.from_dict(json.load(sys.stdin)))
cluster = Cluster(name="local", display_name="Local (bench)", identity_mode=done.mode, identity_reason=done.reason)
cluster.set_credentials(done.credentials)
cluster.save()
print("registered", done.mode)
"""


def log(message: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"[bench-history {stamp}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank, as ``bench/httpload.py`` reports its latencies."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(1, min(len(ordered), math.ceil(q / 100 * len(ordered)))) - 1]


def durable(database: Any) -> None:
    """Restart the throwaway PostgreSQL with fsync, synchronous commit and full-page writes on, as in production:
    ``Postgres.running()`` turns them off to speed up the tests. Its own options but those three, through the
    helper's runner (as the ``postgres`` user, which owns the data folder)."""
    options = f"-p {database.port} -k {database.folder} -c listen_addresses=127.0.0.1"
    data, server_log = str(database.folder / "data"), str(database.folder / "log")
    database._as_postgres("pg_ctl", "-D", data, "-o", options, "-l", server_log, "-w", "-t", "60", "restart")


# --- the recorder's process and the database ------------------------------------------------------------------


@dataclass
class RecorderProcess:
    """``manage.py record_history`` in its own process group, its output in a log file."""

    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen | None = None
    started: float = 0.0  # time.monotonic() of the start

    def start(self) -> None:
        with open(self.log_path, "a") as output:
            self.started = time.monotonic()
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "record_history"], cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
                stdout=output, stderr=output, start_new_session=True,
            )  # fmt: skip

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def cpu(self) -> float:
        from bench import httpload

        return httpload.cpu_seconds(self.pid)

    def active(self) -> bool:
        """Whether it holds the lock and records (its log says so)."""
        return "history recorder active" in self.log_tail(100_000)

    def log_tail(self, size: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def stop(self) -> int | None:
        from tests import replicas_helpers as rh

        if self.process is None:
            return None
        rh.stop_group(self.process, timeout=30)
        return self.process.returncode


class Database:
    """The benchmark's own connection to the console's PostgreSQL database, for reading what the recorder stored."""

    TABLE = "services_serviceversion"

    def __init__(self, url: str) -> None:
        import psycopg

        self.connection = psycopg.connect(url, autocommit=True)

    def value(self, sql: str, params: list[Any] | None = None) -> Any:
        return self.connection.execute(sql, params or []).fetchone()[0]

    def count(self, change: str) -> int:
        return self.value(f"SELECT count(*) FROM {self.TABLE} WHERE change = %s", [change])

    def recorded(self, change: str) -> dict[str, datetime.datetime]:
        """resourceVersion -> recorded_at of every stored version of one kind of change."""
        rows = self.connection.execute(
            f"SELECT resource_version, recorded_at FROM {self.TABLE} WHERE change = %s", [change]
        ).fetchall()
        return dict(rows)

    def sizes(self) -> dict[str, int]:
        """The table's bytes on disk, after a VACUUM so that its free-space and visibility maps exist at both
        readings (their creation would otherwise count as the growth of the rows between them)."""
        self.connection.execute(f"VACUUM (ANALYZE) {self.TABLE}")
        total, heap, indexes, toast = self.connection.execute(
            "SELECT pg_total_relation_size(oid), pg_relation_size(oid), pg_indexes_size(oid), "
            "COALESCE(pg_total_relation_size(NULLIF(reltoastrelid, 0)), 0) FROM pg_class WHERE relname = %s",
            [self.TABLE],
        ).fetchone()
        rows = self.value(f"SELECT count(*) FROM {self.TABLE}")
        return {"total": total, "heap": heap, "indexes": indexes, "toast": toast, "rows": rows}

    def row_sizes(self, change: str) -> dict[str, float]:
        """Average sizes of the versions of one kind of change: the manifest as JSON text, the manifest as stored
        (jsonb, compressed when large) and the whole row as stored."""
        text, stored, row = self.connection.execute(
            f"SELECT avg(octet_length(manifest::text)), avg(pg_column_size(manifest)), avg(pg_column_size(v.*)) "
            f"FROM {self.TABLE} v WHERE change = %s",
            [change],
        ).fetchone()
        return {"manifest_text": float(text or 0), "manifest_stored": float(stored or 0), "row": float(row or 0)}

    def recorder_backends(self) -> list[int]:
        """The PostgreSQL backends of the other connections to the database: the recorder's."""
        rows = self.connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        ).fetchall()
        return [pid for (pid,) in rows]


def backends_cpu(pids: list[int]) -> float:
    """CPU seconds of PostgreSQL backends so far (root reads any process's /proc); a backend gone counts 0."""
    from bench import httpload

    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += httpload.cpu_seconds(pid)
    return total


# --- the benchmark ----------------------------------------------------------------------------------------------


@dataclass
class Write:
    """One change: the resourceVersion its answer carried, when it was sent and when its answer was read
    (time.time()). The API server wrote it in between."""

    resource_version: str
    sent: float
    returned: float


@dataclass
class HistoryBench:
    """The steps of the run, in order: the cluster, the console's database, the fill, the initial sync, the idle
    recorder, the changes. ``figures`` go to benchmarks-history.json; ``details`` only into the text."""

    args: argparse.Namespace
    tmp: Path
    figures: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=lambda: {"notes": []})

    def start_cluster(self) -> None:
        from kubernetes import client, config

        from tools import localcluster

        # Without the EndpointSlice controller: the recorder watches Services only, and the controller, limited to
        # 20 writes a second, would still be writing the slices of the fill for minutes, on the same two cores.
        controllers = tuple(name for name in localcluster.CONTROLLERS if name != "endpointslice-controller")
        self.plane = localcluster.ControlPlane(localcluster.ensure_binaries(log=log), controllers=controllers)
        state = self.plane.start(log=log)
        self.etcd_binary = self.plane.binaries / "etcd"
        self.api_client = config.new_client_from_config(config_file=state.kubeconfig)
        self.core = client.CoreV1Api(self.api_client)
        self.details["kube_apiserver_version"] = client.VersionApi(self.api_client).get_code().git_version
        cert, key = self.plane.client_credentials("console-admin", ("system:masters",))
        self.admin = {
            "server": self.plane.server,
            "ca_data": self.plane.ca_pem.decode(),
            "client_cert": cert.decode(),
            "client_key": key.decode(),
        }

    def setup_console(self, database: Any) -> None:
        from cryptography.fernet import Fernet

        from tests import replicas_helpers as rh

        durable(database)
        (self.tmp / "data").mkdir()
        # The recorder's settings as production sets them; INFO, so that its log tells when it became active.
        self.env = rh.console_environment(
            database.url,
            self.tmp / "data",
            CONSOLE_SECRET_KEY=secrets.token_urlsafe(50),
            CONSOLE_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
            CONSOLE_ALLOWED_HOSTS="127.0.0.1",
            CONSOLE_LOG_LEVEL="INFO",
            CONSOLE_LOG_FORMAT="text",
        )
        rh.manage(self.env, "migrate", "--noinput")
        registered = rh.manage(self.env, "shell", "-c", REGISTER, stdin=json.dumps(self.admin))
        if "registered" not in registered:
            raise RuntimeError(f"the cluster was not registered: {registered}")
        self.db = Database(database.url)
        self.details["postgresql"] = self.db.value("SHOW server_version")
        self.details["postgresql_durability"] = {
            name: self.db.value(f"SHOW {name}") for name in ("fsync", "synchronous_commit", "full_page_writes")
        }
        self.recorder = RecorderProcess(self.env, self.tmp / "recorder.log")

    def fill(self) -> None:
        from bench.run import service_body

        count, namespaces = self.args.services, [f"history-{i:02d}" for i in range(NAMESPACES)]
        for namespace in namespaces:
            self.core.create_namespace({"metadata": {"name": namespace}})
        self.targets = [(namespaces[i % NAMESPACES], f"svc-{i // NAMESPACES:05d}") for i in range(count)]
        log(f"filling {NAMESPACES} namespaces with {count:,} Services ({FILL_THREADS} threads)")

        def create(index: int) -> None:
            namespace, name = self.targets[index]
            response = self.core.create_namespaced_service(namespace, service_body(name, index), _preload_content=False)
            response.read()  # the whole answer, so the connection can be reused
            response.release_conn()

        began = time.perf_counter()
        with ThreadPoolExecutor(FILL_THREADS) as pool:
            list(pool.map(create, range(count)))
        took = time.perf_counter() - began
        self.figures["fill_seconds"] = round(took, 1)
        log(f"filled in {took:.0f} s ({count / took:.0f} Services/s)")

    def initial_sync(self) -> None:
        """Start the recorder and wait for the versions of its first list. The relist stores them all in one
        transaction, so the count jumps from 0 to all at its commit; ``recorded_at`` of the first and the last
        row tell how the time splits between listing and storing. The cluster holds one Service more than the
        benchmark's: ``default/kubernetes``."""
        count = self.args.services + 1
        log(f"starting the recorder (manage.py record_history); waiting for {count:,} versions")
        wall_started = time.time()
        self.recorder.start()
        active_at = None
        while True:
            if not self.recorder.alive():
                raise RuntimeError(f"the recorder exited:\n{self.recorder.log_tail()}")
            if active_at is None and self.recorder.active():
                active_at = time.monotonic()
            if self.db.count("found") >= count:
                break
            if time.monotonic() - self.recorder.started > SYNC_TIMEOUT:
                raise RuntimeError(f"the initial sync took over {SYNC_TIMEOUT:.0f} s:\n{self.recorder.log_tail()}")
            time.sleep(0.05)
        synced = time.monotonic()
        cpu = self.recorder.cpu()
        from bench import httpload

        self.figures["initial_sync_hwm_kib"] = httpload.status_kib(self.recorder.pid, "VmHWM")
        found, first, last = self.db.connection.execute(
            "SELECT count(*), min(recorded_at), max(recorded_at) FROM services_serviceversion WHERE change = 'found'"
        ).fetchone()
        self.figures["found_versions"] = found
        self.figures["initial_sync_seconds"] = synced - self.recorder.started
        self.figures["initial_sync_cpu_seconds"] = cpu
        self.figures["initial_sync_cpu_ms_per_service"] = cpu / found * 1000
        # Where the time went: Django's start and the lock; the list of every Service (in pages of 500) and the
        # query of the newest stored versions; storing the rows; the commit and this poll (every 50 ms) noticing it.
        active_after = (active_at or synced) - self.recorder.started
        self.figures["initial_sync_start_seconds"] = active_after
        self.figures["initial_sync_list_seconds"] = first.timestamp() - wall_started - active_after
        self.figures["initial_sync_store_seconds"] = (last - first).total_seconds()
        self.figures["initial_sync_commit_seconds"] = (synced - self.recorder.started) - (
            last.timestamp() - wall_started
        )
        log(
            f"initial sync: {count:,} versions in {self.figures['initial_sync_seconds']:.1f} s, "
            f"{cpu:.1f} s CPU, peak RSS {self.figures['initial_sync_hwm_kib'] / 1024:.0f} MiB"
        )
        sizes, rows = self.db.sizes(), self.db.row_sizes("found")
        self.figures["found_bytes_per_version"] = sizes["total"] / sizes["rows"]
        self.figures["found_heap_bytes_per_version"] = sizes["heap"] / sizes["rows"]
        self.figures["found_index_bytes_per_version"] = sizes["indexes"] / sizes["rows"]
        self.figures["found_toast_bytes_per_version"] = sizes["toast"] / sizes["rows"]
        self.figures["found_manifest_json_bytes"] = rows["manifest_text"]
        self.figures["found_manifest_stored_bytes"] = rows["manifest_stored"]
        self.figures["found_row_stored_bytes"] = rows["row"]

    def idle(self) -> None:
        """The recorder's CPU while nothing changes: its watch (a bookmark now and then), the check of its lock
        and of the registered clusters every 10 s."""
        seconds = IDLE_SECONDS if not self.args.quick else IDLE_SECONDS / 2
        log(f"the recorder idle for {seconds:.0f} s")
        before, began = self.recorder.cpu(), time.monotonic()
        time.sleep(seconds)
        self.figures["idle_cpu_cores"] = (self.recorder.cpu() - before) / (time.monotonic() - began)

    def changes(self) -> None:
        """``rate`` label changes a second on random Services, each due at a fixed time (a late one is sent at
        once, not skipped), from one thread; then the wait until every one is stored."""
        from bench import httpload

        rate, seconds = self.args.rate, self.args.seconds
        total = int(rate * seconds)
        chooser = random.Random(25)
        writes: list[Write] = []
        backends = self.db.recorder_backends()
        log(f"{total} label changes, {rate:g} a second for {seconds:g} s")
        size_before = self.db.sizes()
        cpu_before, db_cpu_before, began = self.recorder.cpu(), backends_cpu(backends), time.monotonic()
        for number in range(total):
            due = began + number / rate
            time.sleep(max(0.0, due - time.monotonic()))
            namespace, name = chooser.choice(self.targets)
            patch = {"metadata": {"labels": {LABEL: str(number)}}}
            sent = time.time()
            response = self.core.patch_namespaced_service(name, namespace, patch, _preload_content=False)
            body = response.read()
            returned = time.time()  # the answer read; parsing it is the client's time, not the recorder's
            response.release_conn()
            writes.append(Write(json.loads(body)["metadata"]["resourceVersion"], sent, returned))
        written = time.monotonic()
        self.figures["changes_per_second"] = total / (written - began)

        # Every change stored, or the drain timeout: the CPU is read at the moment the last one is stored.
        wanted = {write.resource_version for write in writes}
        deadline = written + DRAIN_TIMEOUT
        while True:
            stored = self.db.recorded("changed")
            if wanted <= stored.keys() or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        drained = time.monotonic()
        cpu, db_cpu = self.recorder.cpu() - cpu_before, backends_cpu(backends) - db_cpu_before
        window = drained - began
        if set(self.db.recorder_backends()) != set(backends):
            self.details["notes"].append(
                "The recorder's database connections changed during the changes; the PostgreSQL CPU counts those "
                "that were open at the start only."
            )

        # The lag from the write's answer, and from its sending: the API server wrote it in between, and its watch
        # may deliver the event before the answer is read (a lag below zero).
        kept = [(stored[w.resource_version].timestamp(), w) for w in writes if w.resource_version in stored]
        lags = [(recorded - write.returned) * 1000 for recorded, write in kept]
        since_sent = [(recorded - write.sent) * 1000 for recorded, write in kept]
        write_ms = [(write.returned - write.sent) * 1000 for write in writes]
        missing = total - len(lags)
        self.figures.update(
            {
                "changes": total,
                "changes_stored": len(lags),
                "changes_missing": missing,
                "lag_p50_ms": percentile(lags, 50),
                "lag_p99_ms": percentile(lags, 99),
                "lag_max_ms": max(lags, default=float("nan")),
                "lag_min_ms": min(lags, default=float("nan")),
                "lag_mean_ms": statistics.fmean(lags) if lags else float("nan"),
                "lag_from_sent_p50_ms": percentile(since_sent, 50),
                "lag_from_sent_p99_ms": percentile(since_sent, 99),
                "write_p50_ms": percentile(write_ms, 50),
                "write_p99_ms": percentile(write_ms, 99),
                "window_seconds": window,
                "cpu_seconds": cpu,
                "cpu_cores": cpu / window,
                "cpu_ms_per_change": cpu / total * 1000,
                "cpu_ms_per_change_above_idle": (cpu - self.figures["idle_cpu_cores"] * window) / total * 1000,
                "postgres_cpu_cores": db_cpu / window,
                "postgres_cpu_ms_per_change": db_cpu / total * 1000,
            }
        )
        if missing:
            self.details["notes"].append(
                f"{missing} of the {total} changes were not stored {DRAIN_TIMEOUT:.0f} s after the last one."
            )
        size_after, rows = self.db.sizes(), self.db.row_sizes("changed")
        grown = len(lags) or 1
        self.figures["changed_bytes_per_version"] = (size_after["total"] - size_before["total"]) / grown
        self.figures["changed_manifest_json_bytes"] = rows["manifest_text"]
        self.figures["changed_manifest_stored_bytes"] = rows["manifest_stored"]
        self.figures["changed_row_stored_bytes"] = rows["row"]
        self.figures["bytes_per_version"] = size_after["total"] / size_after["rows"]
        self.figures["versions"] = size_after["rows"]
        self.figures["table_bytes"] = size_after["total"]
        self.figures["recorder_hwm_kib"] = httpload.status_kib(self.recorder.pid, "VmHWM")
        self.figures["recorder_rss_kib"] = httpload.rss_kib(self.recorder.pid)
        log(
            f"changes: lag p50 {self.figures['lag_p50_ms']:.0f} ms, p99 {self.figures['lag_p99_ms']:.0f} ms, "
            f"CPU {self.figures['cpu_cores'] * 100:.1f}% of a core, {missing} missing"
        )

    def stop_recorder(self) -> None:
        recorder = getattr(self, "recorder", None)
        if recorder is not None and recorder.alive():
            code = recorder.stop()
            if code != 0:
                self.details["notes"].append(f"The recorder exited with code {code} when stopped (SIGTERM).")

    def stop_cluster(self) -> None:
        plane = getattr(self, "plane", None)
        if plane is not None:
            plane.stop()
            self.plane = None


# --- the report -------------------------------------------------------------------------------------------------


def rows(figures: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The figures for people, shared by the printed table and the markdown."""
    f = figures
    phases = "; ".join(f"{label} {f[f'initial_sync_{name}_seconds']:.1f} s" for name, label in SYNC_PHASES)
    table = [
        [
            f"initial sync: {f['found_versions']:,} Services listed and stored (`found`)",
            f"{f['initial_sync_seconds']:.1f} s ({phases})",
        ],
        [
            "initial sync: recorder CPU",
            f"{f['initial_sync_cpu_seconds']:.1f} s ({f['initial_sync_cpu_ms_per_service']:.2f} ms a Service)",
        ],
        [
            "recorder memory: peak (VmHWM) after the sync / peak at the end / resident at the end (VmRSS)",
            f"{f['initial_sync_hwm_kib'] / 1024:.0f} / {f['recorder_hwm_kib'] / 1024:.0f} / "
            f"{f['recorder_rss_kib'] / 1024:.0f} MiB",
        ],
        [
            f"changes stored / written ({f['changes_per_second']:.2f} a second)",
            f"{f['changes_stored']} / {f['changes']}",
        ],
        [
            "lag, write's answer → `recorded_at`: p50 / p99 / max",
            f"{f['lag_p50_ms']:.0f} / {f['lag_p99_ms']:.0f} / {f['lag_max_ms']:.0f} ms",
        ],
        [
            "the same from the write's sending: p50 / p99 (the write itself: p50 / p99)",
            f"{f['lag_from_sent_p50_ms']:.0f} / {f['lag_from_sent_p99_ms']:.0f} ms "
            f"({f['write_p50_ms']:.0f} / {f['write_p99_ms']:.0f} ms)",
        ],
        [
            "recorder CPU while changing",
            f"{f['cpu_cores'] * 100:.1f}% of a core ({f['cpu_ms_per_change']:.2f} ms a change, "
            f"{f['cpu_ms_per_change_above_idle']:.2f} ms above idle)",
        ],
        ["recorder CPU idle (nothing changing)", f"{f['idle_cpu_cores'] * 100:.2f}% of a core"],
        [
            "PostgreSQL CPU for the recorder while changing",
            f"{f['postgres_cpu_cores'] * 100:.1f}% of a core ({f['postgres_cpu_ms_per_change']:.2f} ms a change)",
        ],
        [
            "bytes per version, all (table + indexes + TOAST / rows)",
            f"{f['bytes_per_version']:,.0f} B ({f['versions']:,} versions, {f['table_bytes'] / 1024 / 1024:.1f} MiB)",
        ],
        [
            "bytes per version, the initial sync's (`found`): heap / indexes / TOAST",
            f"{f['found_bytes_per_version']:,.0f} B: {f['found_heap_bytes_per_version']:,.0f} / "
            f"{f['found_index_bytes_per_version']:,.0f} / {f['found_toast_bytes_per_version']:,.0f}",
        ],
        [
            "bytes per version, the changes alone (the table's growth / changes)",
            f"{f['changed_bytes_per_version']:,.0f} B",
        ],
        [
            "manifest: JSON text / as stored (jsonb), `found` and `changed`",
            f"{f['found_manifest_json_bytes']:,.0f} / {f['found_manifest_stored_bytes']:,.0f} B and "
            f"{f['changed_manifest_json_bytes']:,.0f} / {f['changed_manifest_stored_bytes']:,.0f} B",
        ],
        [
            "whole row as stored (`pg_column_size`), `found` and `changed`",
            f"{f['found_row_stored_bytes']:,.0f} B and {f['changed_row_stored_bytes']:,.0f} B",
        ],
    ]
    return ["figure", "value"], table


def markdown_block(figures: dict[str, Any], details: dict[str, Any], facts: dict[str, Any]) -> str:
    from bench import report

    durability = ", ".join(f"{name} {value}" for name, value in details["postgresql_durability"].items())
    services, rate, seconds = figures["services"], figures["rate"], figures["seconds"]
    parts = [
        "<!-- history -->",
        "## The history recorder",
        "",
        f"Generated by `make bench-history` (`bench/history.py`) on {details['date']}; `make bench` keeps this "
        "section as it is. Every figure is also in [`benchmarks-history.json`](benchmarks-history.json).",
        "",
        "A fresh control plane (without the EndpointSlice controller, which has nothing to do with the "
        f"recorder) and a PostgreSQL {details['postgresql']} of the benchmark's own ({durability}); the control "
        "plane registered as `register_cluster --setup` does, so the recorder watches with the console's "
        f"ServiceAccount token. {services:,} Services (those of `make bench`, with a "
        f"`last-applied-configuration` annotation) in {NAMESPACES} namespaces, created before the recorder "
        "starts; then `manage.py record_history` is started as a process of its own, and its CPU time is read "
        "from `/proc/<pid>/stat` (all its threads; counted in 10 ms ticks), its memory from `/proc/<pid>/status`. The *initial sync* is its first "
        "list of every Service, stored as `found` versions in one transaction, counted from the process's start "
        f"(Django's start included). Then {rate:g} label changes a second for {seconds:g} s, each a merge patch "
        "of a random Service from one paced thread: the *lag* of a change is the stored version's `recorded_at` "
        "(set by the recorder just before its insert, committed with its checkpoint a few queries later) minus "
        "the moment the write's answer was read, on the same clock (the API server may send the watch event "
        "before the answer, so a lag can be below zero; the lag from the write's sending is its upper bound). "
        "The CPU of the changes is taken from the first write to the moment the last one was stored. *Bytes per "
        "version* is `pg_total_relation_size('services_serviceversion')` (heap, indexes and TOAST, after a "
        "`VACUUM`) over the rows; for the changes alone, the table's growth over them. The manifest is the "
        "Service without `status` and `managedFields`; PostgreSQL compresses a value only in a row over about "
        "2 kB, which a `found` version's row is (its `fields` lists every field of the Service) and a change's "
        "is not.",
        "",
        report.md_table(*rows(figures)),
        "",
        f"Machine: {facts['nproc']} cores ({facts['cpu'] or '?'}), {facts['memory_gib']} GiB, shared with other "
        f"work (load average, 1 min, {details['load_start']:.2f} at the start, {details['load_end']:.2f} at the "
        f"end); Python {facts['python']}, Django {facts['django']}, kube-apiserver {facts['kube_apiserver']}, etcd "
        f"{facts['etcd'] or '?'}; run time {details['run_seconds']:.0f} s.",
    ]
    if details.get("notes"):
        parts += ["", *[f"- {note}" for note in details["notes"]]]
    parts.append("<!-- /history -->")
    return "\n".join(parts)


def write_outputs(output: Path, figures: dict[str, Any], details: dict[str, Any], facts: dict[str, Any]) -> None:
    from bench import report

    output.mkdir(parents=True, exist_ok=True)
    report.write_json(output / "benchmarks-history.json", figures)
    page = output / "benchmarks.md"
    text = page.read_text() if page.exists() else ""
    page.write_text(report.with_section(text, "history", markdown_block(figures, details, facts)))


# --- main -------------------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=10_000, help="Services in the cluster (default 10,000)")
    parser.add_argument("--rate", type=float, default=10.0, help="changes a second (default 10)")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of changes (default 60)")
    parser.add_argument("--quick", action="store_true", help="1,000 Services and 20 s, written to a temp folder")
    parser.add_argument("--output", type=Path, help="folder for benchmarks.md and benchmarks-history.json (docs/)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (the recorder's log)")
    args = parser.parse_args()
    if args.quick:
        args.services, args.seconds = min(args.services, 1000), min(args.seconds, 20.0)
    return args


def main() -> int:
    args = parse_args()
    began = time.monotonic()
    load_start = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="console-bench-history-"))
    output = args.output or (Path(tempfile.mkdtemp(prefix="console-bench-quick-")) if args.quick else ROOT / "docs")

    def terminated(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)
    from tests import replicas_helpers as rh

    bench = HistoryBench(args, tmp)
    bench.figures.update({"services": args.services, "rate": args.rate, "seconds": args.seconds})
    try:
        bench.start_cluster()
        with rh.Postgres.running() as database:
            try:
                bench.setup_console(database)
                bench.fill()
                bench.initial_sync()
                bench.idle()
                bench.changes()
            finally:
                bench.stop_recorder()  # before its database stops
    except BaseException:
        recorder = getattr(bench, "recorder", None)
        if recorder is not None and recorder.log_tail():
            log(f"recorder log (tail):\n{recorder.log_tail()}")
        raise
    finally:
        bench.stop_cluster()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    from bench import report

    bench.details.update(
        {
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "load_start": load_start,
            "load_end": os.getloadavg()[0],
            "run_seconds": time.monotonic() - began,
        }
    )
    facts = report.machine_facts(bench.details, bench.etcd_binary)
    bench.figures.update(
        {
            "machine_nproc": facts["nproc"],
            "machine_memory_gib": facts["memory_gib"],
            "load_start": load_start,
            "load_end": bench.details["load_end"],
        }
    )
    header, table = rows(bench.figures)
    print()
    print(report.text_table(header, [[cell.replace("`", "") for cell in row] for row in table]))
    print(f"\nload average (1 min) at start / end: {load_start:.2f} / {bench.details['load_end']:.2f}")
    for note in bench.details["notes"]:
        print(f"note: {note}")
    write_outputs(output, bench.figures, bench.details, facts)
    log(f"wrote {output / 'benchmarks-history.json'} and the history section of {output / 'benchmarks.md'}")
    return 1 if bench.figures.get("changes_missing") else 0


if __name__ == "__main__":
    sys.exit(main())
