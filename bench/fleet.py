"""All my Services across several clusters: the part of ``make bench`` that starts ``FLEET_CLUSTERS`` more local
control planes, fills each with ``FLEET_SERVICES`` Services over ``FLEET_NAMESPACES`` namespaces, registers them as
``register_cluster --setup`` would, and times the first page of All my Services for a Cluster Admin of every cluster:

* cold: before each request the process forgets its informers, its clients (and their TLS connections) and its
  cached access reviews, as a freshly started worker would;
* warm: the cluster-wide informers have listed and follow their watches;
* with one cluster stopped (its API server and etcd gone: connection refused) and with one hung (its API server
  stopped with SIGSTOP: connections accepted, never answered; the page waits ``settings.FLEET_DEADLINE``);

against the raw calls a script would make for the same first page: ``list_service_for_all_namespaces(limit=50)`` on
every cluster at once, from reused clients.
"""

from __future__ import annotations

import gc
import os
import signal
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

FLEET_CLUSTERS = 5
FLEET_SERVICES = 2000
FLEET_NAMESPACES = 10
COLD_SAMPLES = 20
WARM_SAMPLES = 100


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000


def median(values: list[float]) -> float:
    return statistics.median(values) * 1000


def deep_size(root: Any) -> int:
    """Bytes of ``root`` and everything it holds (dicts, lists, tuples, strings, numbers), each object counted
    once: what JSON kept in memory costs."""
    seen: set[int] = set()
    total, stack = 0, [root]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set):
            stack.extend(item)
    return total


class Fleet:
    def __init__(self, bench: Any, log: Any, *, clusters: int, services: int, quick: bool) -> None:
        self.bench, self.log = bench, log
        self.count, self.services = clusters, services
        self.cold_samples = 5 if quick else COLD_SAMPLES
        self.warm_samples = 20 if quick else WARM_SAMPLES
        self.planes: list[Any] = []
        self.raw: list[Any] = []
        # Time the interpreter spent in full (generation 2) garbage collections, which traverse every object the
        # informers hold: a page that meets one waits for it.
        self.gc_seconds, self.last_gc, self._gc_started = 0.0, 0.0, 0.0
        gc.callbacks.append(self._gc_timer)

    def _gc_timer(self, phase: str, info: dict) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_seconds += time.perf_counter() - self._gc_started

    def start(self) -> None:
        import kube
        from bench import watches
        from clusters import rbac
        from clusters.models import Cluster
        from tools import localcluster

        binaries = localcluster.ensure_binaries(log=self.log)
        for index in range(self.count):
            plane = localcluster.ControlPlane(binaries)
            plane.start(log=self.log)
            self.planes.append(plane)
            cert, key = plane.client_credentials("console-admin", ("system:masters",))
            admin = kube.Credentials(server=plane.server, ca_data=plane.ca_pem, client_cert=cert, client_key=key)
            self.raw.append(kube.build_api_client(admin))
            if index == 0:
                self.admin_pem = (cert, key)
                self.baseline = watches.parse_watches(watches.read_metrics(plane.server, plane.ca_pem, cert, key))
            done = rbac.set_up(admin)
            registered = Cluster(name=f"fleet-{index}", identity_mode=done.mode, identity_reason=done.reason)
            registered.set_credentials(done.credentials)
            registered.save()

    def fill(self) -> None:
        from kubernetes import client

        from bench.run import FILL_THREADS, service_body

        per_namespace = self.services // FLEET_NAMESPACES
        for api in self.raw:
            for n in range(FLEET_NAMESPACES):
                client.CoreV1Api(api).create_namespace({"metadata": {"name": f"team-{n}"}})
        jobs = [(c, n, i) for c in range(self.count) for n in range(FLEET_NAMESPACES) for i in range(per_namespace)]
        self.log(f"filling {self.count} clusters with {len(jobs)} Services ({FILL_THREADS} threads)")

        def create(job: tuple[int, int, int]) -> None:
            c, n, i = job
            response = client.CoreV1Api(self.raw[c]).create_namespaced_service(
                f"team-{n}", service_body(f"svc-{i:05d}", i), _preload_content=False
            )
            response.read()
            response.release_conn()

        began = time.perf_counter()
        with ThreadPoolExecutor(FILL_THREADS) as pool:
            list(pool.map(create, jobs))
        self.log(f"filled in {time.perf_counter() - began:.0f} s; waiting for the EndpointSlice controllers")
        began = time.perf_counter()
        for api in self.raw:
            discovery = client.DiscoveryV1Api(api)
            while True:
                # No label selector: the API server counts the rest (remainingItemCount) only without one.
                page = discovery.list_endpoint_slice_for_all_namespaces(limit=1)
                if len(page.items) + (page.metadata.remaining_item_count or 0) >= self.services:
                    break
                if time.perf_counter() - began > 900:
                    raise RuntimeError("the EndpointSlice controllers did not catch up")
                time.sleep(1.0)
        self.bench.figures["fleet_endpoint_slices_catch_up_seconds"] = round(time.perf_counter() - began, 1)

    def page(self, web: Any) -> tuple[float, str]:
        collected = self.gc_seconds
        began = time.perf_counter()
        response = web.get("/services/")
        took = time.perf_counter() - began
        self.last_gc = self.gc_seconds - collected
        html = response.content.decode()
        if response.status_code != 200 or "svc-00000" not in html:
            raise RuntimeError(f"All my Services answered {response.status_code} without the first Service")
        return took, html

    def measure(self) -> None:
        from django.contrib.auth import get_user_model
        from django.test import Client
        from kubernetes import client

        import kube
        from kube.identity import clear_authorisations
        from kube.informer import informers
        from services import api

        figures = self.bench.figures
        from clusters.models import Cluster, Grant, Role

        fleet = list(Cluster.objects.filter(name__startswith="fleet-"))
        # A Cluster Admin of each fleet cluster (not a superuser: the benchmark's own "local" clusters stay out).
        admin = get_user_model().objects.create_user("fleet-admin", password=None)
        for registered in fleet:
            Grant.objects.create(user=admin, cluster=registered, role=Role.CLUSTER_ADMIN)
        time.sleep(1.0)  # the bindings reach each API server's RBAC authorizer
        web = Client()
        web.force_login(admin)

        def forget() -> None:
            informers.clear()
            kube.clients.clear()
            clear_authorisations()

        cold = []
        for _ in range(self.cold_samples):
            forget()
            cold.append(self.page(web)[0])
        # Warm: every cluster-wide informer has listed.
        self.page(web)
        deadline = time.monotonic() + 60
        for registered in fleet:
            for kind in (api.SERVICES_EVERYWHERE, api.ENDPOINT_SLICES_EVERYWHERE):
                while not ((i := informers.get(registered, kind)) and i.synced):
                    if time.monotonic() > deadline:
                        raise RuntimeError("the cluster-wide informers did not list within 60 s")
                    time.sleep(0.05)
        # What the cached Services and their EndpointSlices take: every object the informers hold, counted once.
        held = [
            list(informers.get(registered, kind)._items.values())
            for registered in fleet
            for kind in (api.SERVICES_EVERYWHERE, api.ENDPOINT_SLICES_EVERYWHERE)
        ]
        per_10k = 10_000 / (self.count * self.services) / (1 << 20)
        figures["fleet_cache_mib_per_10k_services"] = round(deep_size(held) * per_10k, 1)
        warm, raw = [], []
        pool = ThreadPoolExecutor(len(self.raw))

        def raw_first_page() -> None:
            list(pool.map(lambda a: client.CoreV1Api(a).list_service_for_all_namespaces(limit=50), self.raw))

        raw_first_page()
        warm_gc = []
        for _ in range(self.warm_samples):  # alternated, so drift of the machine falls on both
            warm.append(self.page(web)[0])
            warm_gc.append(self.last_gc)
            began = time.perf_counter()
            raw_first_page()
            raw.append(time.perf_counter() - began)
        figures |= {
            "fleet_clusters": self.count,
            "fleet_services": self.count * self.services,
            "fleet_cold_p95_ms": round(p95(cold), 1),
            "fleet_cold_median_ms": round(median(cold), 1),
            "fleet_warm_p95_ms": round(p95(warm), 1),
            "fleet_warm_median_ms": round(median(warm), 1),
            "fleet_raw_p95_ms": round(p95(raw), 1),
            "fleet_warm_vs_raw_p95": round(p95(warm) / p95(raw), 3),
            # The same pages without the time they spent waiting for a full garbage collection.
            "fleet_warm_p95_without_gc_ms": round(p95([t - g for t, g in zip(warm, warm_gc, strict=True)]), 1),
            "fleet_warm_full_collections": sum(1 for g in warm_gc if g > 0),
        }
        self.log(
            f"all my Services, {self.count} clusters × {self.services}: cold p95 {p95(cold):.0f} ms, warm p95 "
            f"{p95(warm):.0f} ms, raw first pages p95 {p95(raw):.0f} ms"
        )

        # The watches the console holds on one of them: this process, the two kinds All my Services follows.
        from bench import watches

        held = watches.measure(
            self.planes[0].server,
            self.planes[0].ca_pem,
            *self.admin_pem,
            baseline=self.baseline,
            replicas=0,
            workers=0,
            extra_processes=1,
            namespaces=0,
            cluster_kinds=2,
        )
        figures["fleet_watches"], figures["fleet_watches_formula"] = held.measured, held.formula

        # One cluster stopped: its API server and etcd are gone.
        stopped = self.planes[-1]
        stopped.stop(remove=False)
        down = []
        for _ in range(self.warm_samples):
            took, html = self.page(web)
            if 'class="row-error" data-cluster="fleet-' not in html:
                raise RuntimeError("the stopped cluster has no error row")
            down.append(took)
        figures["fleet_one_stopped_p95_ms"] = round(p95(down), 1)
        # Cold, the stopped cluster is asked once per page (its informer gives up until RESTART_AFTER).
        down_cold = []
        for _ in range(self.cold_samples):
            forget()
            down_cold.append(self.page(web)[0])
        figures["fleet_one_stopped_cold_p95_ms"] = round(p95(down_cold), 1)

        # One cluster hung: its API server accepts connections and never answers. Cold (a worker that has not
        # seen it yet) the page waits for the deadline; the process's informers of the other clusters answer.
        from django.conf import settings

        hung_plane = self.planes[-2]
        apiserver = next(p.pid for p in hung_plane._processes if Path(p.args[0]).name == "kube-apiserver")
        os.kill(apiserver, signal.SIGSTOP)
        try:
            hung = []
            for _ in range(max(5, self.cold_samples // 2)):
                clear_authorisations()
                kube.clients.clear()
                took, html = self.page(web)
                if 'data-cluster="fleet-3"' not in html:
                    raise RuntimeError("the hung cluster has no error row")
                hung.append(took)
        finally:
            os.kill(apiserver, signal.SIGCONT)
        figures["fleet_one_hung_p95_ms"] = round(p95(hung), 1)
        figures["fleet_deadline_ms"] = settings.FLEET_DEADLINE * 1000
        self.log(f"one cluster stopped: p95 {p95(down):.0f} ms; one hung: p95 {p95(hung):.0f} ms")
        pool.shutdown()

    def stop(self) -> None:
        from kube.informer import informers

        gc.callbacks.remove(self._gc_timer)
        informers.clear()
        for plane in self.planes:
            plane.stop()


def run(bench: Any, log: Any, *, quick: bool = False) -> None:
    fleet = Fleet(
        bench,
        log,
        clusters=FLEET_CLUSTERS,
        services=400 if quick else FLEET_SERVICES,
        quick=quick,
    )
    try:
        fleet.start()
        fleet.fill()
        fleet.measure()
    finally:
        fleet.stop()
