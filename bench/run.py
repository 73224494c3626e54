"""``make bench``: the console's Service pages against the raw Kubernetes calls a script would make.

Self-contained: it starts its own local control plane (kube-apiserver + etcd), uses a throwaway SQLite database,
static folder and secrets in a temporary folder (the project's ``data/`` is never touched), fills three namespaces
with 100, 1,000 and 5,000 realistic Services, and then measures

* in process (Django's test ``Client`` against ``CoreV1Api`` on a reused client, both over real HTTPS to the real
  API server), with the sides of every comparison alternated call by call so machine drift cancels out: the list
  page (full and its HTMX partial) against ``list_namespaced_service(ns, limit=PAGE_SIZE)``, the detail page
  against ``read_namespaced_service``, a create through the form POST against a raw create;
* against a production server (gunicorn, ``CONSOLE_ENV=production``, workers = cores): the workers' RSS after
  1,000 and 10,000 list-page requests, the bytes of the list page with its CSS and JS, and p50/p95/p99 latency and
  errors with 8 and 32 concurrent clients.

It prints a table and writes ``docs/benchmarks.md`` and ``docs/benchmarks.json``. Run it with the project's
virtualenv: ``.venv/bin/python bench/run.py`` (``--quick`` for a short smoke run that writes to a temp folder,
``--strict`` to exit 1 when a target is missed).
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import gzip
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
# htmx posts forms url-encoded (Django's test client would default to multipart, which costs more to parse).
FORM_ENCODING = "application/x-www-form-urlencoded"
SIZES = (100, 1000, 5000)
CLUSTER = "local"
SHARED_CLUSTER = "local-shared"
LIVE_PAGES = (100, 1000)  # open list pages for the live channel's cost
LIVE_INTERVAL = 0.8  # seconds between an open page's polls (console.js LIVE_INTERVAL_MS)
FILL_THREADS = 8
# The first Service of every filled namespace: a list page without it is counted as an error.
FIRST_ROW = b"svc-00000"


def log(message: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"[bench {stamp}] {message}", file=sys.stderr, flush=True)


# --- environment (before Django is imported) ------------------------------------------------------------------------


def prepare_environment(tmp: Path) -> None:
    """Production settings over a throwaway data folder; the same Fernet key for this process and the server."""
    from cryptography.fernet import Fernet

    # A DATABASE_URL from the caller's shell (CI's PostgreSQL) must not receive the benchmark's data.
    os.environ.pop("DATABASE_URL", None)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "console.settings",
            "CONSOLE_ENV": "production",
            "CONSOLE_SECRET_KEY": secrets.token_urlsafe(50),
            "CONSOLE_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            # "testserver" is the host name of Django's test Client (the in-process half).
            "CONSOLE_ALLOWED_HOSTS": "127.0.0.1,testserver",
            "CONSOLE_SSL_REDIRECT": "0",
            "CONSOLE_DATA_DIR": str(tmp / "data"),
            "CONSOLE_STATIC_ROOT": str(tmp / "static"),
            "CONSOLE_LOG_LEVEL": "WARNING",
        }
    )
    (tmp / "data").mkdir()
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


# --- Services ---------------------------------------------------------------------------------------------------


def service_body(name: str, index: int) -> dict[str, Any]:
    """A Service as a team would apply it: two named ports, a selector, labels, a few annotations including the
    ``last-applied-configuration`` that ``kubectl apply`` leaves (about 600 bytes)."""
    spec = {
        "type": "ClusterIP",
        "selector": {"app": name, "tier": "backend"},
        "ports": [
            {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
            {"name": "metrics", "protocol": "TCP", "port": 9090, "targetPort": "metrics"},
        ],
    }
    labels = {"app": name, "team": f"team-{index % 7}", "app.kubernetes.io/part-of": f"shop-{index % 13}"}
    annotations = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9090",
        "owner": f"team-{index % 7}@example.com",
    }
    applied = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": spec,
    }
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                **annotations,
                "kubectl.kubernetes.io/last-applied-configuration": json.dumps(applied, separators=(",", ":")) + "\n",
            },
        },
        "spec": spec,
    }


def create_body(name: str) -> dict[str, Any]:
    """The Service the form benchmark creates, as a raw call would send it."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090", "owner": "team-1"},
        },
        "spec": {
            "type": "ClusterIP",
            "selector": {"app": name, "tier": "backend"},
            "ports": [
                {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
                {"name": "metrics", "protocol": "TCP", "port": 9090, "targetPort": "metrics"},
            ],
        },
    }


def form_data(name: str) -> dict[str, str]:
    """The form POST that creates the same Service as ``create_body``, as the browser sends it (built by the
    helper the tests use)."""
    from tests.helpers import service_form

    body = create_body(name)
    ports = [
        {"protocol": p["protocol"], "name": p["name"], "port": p["port"], "target_port": p["targetPort"]}
        for p in body["spec"]["ports"]
    ]
    return service_form(
        name, ports=ports, selector=body["spec"]["selector"], annotations=body["metadata"]["annotations"]
    )


# --- measuring ------------------------------------------------------------------------------------------------------


def interleaved(ops: dict[str, Callable[[], None]], *, rounds: int, warmup: int) -> dict[str, list[float]]:
    """Run every op once per round, rotating the order each round (ABC, BCA, CAB, ...), so every side sees the same
    machine; return each op's durations in seconds, warm-up rounds left out."""
    names = list(ops)
    samples: dict[str, list[float]] = {name: [] for name in names}
    clock = time.perf_counter
    for round_ in range(warmup + rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            began = clock()
            ops[name]()
            took = clock() - began
            if round_ >= warmup:
                samples[name].append(took)
    return samples


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def iqr_ms(values: list[float]) -> tuple[float, float]:
    quartiles = statistics.quantiles(values, n=4)
    return quartiles[0] * 1000, quartiles[2] * 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the benchmark dies, so a crash leaves no server behind."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.figures: dict[str, Any] = {}
        self.details: dict[str, Any] = {"notes": []}
        self.plane = None
        self.server: subprocess.Popen | None = None

    # --- set-up -------------------------------------------------------------------------------------------------

    def setup_django(self) -> None:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        call_command("collectstatic", verbosity=0, interactive=False)

    def start_cluster(self) -> None:
        from kubernetes import client, config

        import kube
        from clusters import rbac
        from clusters.models import Cluster, Grant, Role
        from tools import localcluster

        self.plane = localcluster.ControlPlane(localcluster.ensure_binaries(log=log))
        state = self.plane.start(log=log)
        cert, key = self.plane.client_credentials("console-admin", ("system:masters",))
        from bench import watches

        # The API server's open watches before the console browses it: the console's are the rise over this.
        self.admin_pem = (cert, key)
        self.watch_baseline = watches.parse_watches(
            watches.read_metrics(self.plane.server, self.plane.ca_pem, cert, key)
        )
        credentials = kube.Credentials(
            server=self.plane.server, ca_data=self.plane.ca_pem, client_cert=cert, client_key=key
        )
        # The raw side: what a script does, a client from the kubeconfig, reused for every call.
        self.kubeconfig = state.kubeconfig
        self.raw_client = config.new_client_from_config(config_file=self.kubeconfig)
        self.core = client.CoreV1Api(self.raw_client)
        self.details["kube_apiserver_version"] = client.VersionApi(self.raw_client).get_code().git_version

        self.ensure_service_addresses(sum(self.sizes) + 3 * (self.args.reps + 50))

        self.namespaces = {size: f"bench-{size}" for size in self.sizes}
        self.create_namespace = "bench-create"
        self.empty_namespace = "bench-empty"  # what a list page costs without rows
        extra = [self.create_namespace, self.empty_namespace]
        for namespace in [*self.namespaces.values(), *extra]:
            self.core.create_namespace({"metadata": {"name": namespace}})

        # As production runs: set up to act as each user (``register_cluster --setup``), the ServiceAccount's token
        # stored. The same API server is registered a second time with the administrator's credential in the
        # shared-credential mode, to price impersonation and the per-user review of cached reads.
        done = rbac.set_up(credentials)
        cluster = Cluster(
            name=CLUSTER, display_name="Local (bench)", identity_mode=done.mode, identity_reason=done.reason
        )
        cluster.set_credentials(done.credentials)
        cluster.save()
        shared = Cluster(name=SHARED_CLUSTER, display_name="Local (bench, shared credential)")
        shared.set_credentials(credentials)
        shared.save()
        from django.contrib.auth import get_user_model

        self.user = get_user_model().objects.create_user("bench", password=secrets.token_urlsafe(16))
        for namespace in [*self.namespaces.values(), *extra]:
            for registered in (cluster, shared):
                Grant.objects.create(user=self.user, cluster=registered, role=Role.NS_EDIT, namespace=namespace)
        self.actor = kube.Actor(cluster, rbac.identity_for(self.user))

    def ensure_service_addresses(self, needed: int) -> None:
        """Every benchmark Service is a ClusterIP one. If the control plane's Service range is too small for them
        (it was a /24 once), add a second ServiceCIDR, which the API server's allocator uses without a
        controller-manager."""
        import ipaddress

        from kubernetes import client

        networking = client.NetworkingV1Api(self.raw_client)
        ranges = [
            ipaddress.ip_network(cidr)
            for item in networking.list_service_cidr().items
            for cidr in item.spec.cidrs or []
            if ipaddress.ip_network(cidr).version == 4
        ]
        self.details["service_cidrs"] = [str(network) for network in ranges]
        if sum(network.num_addresses - 2 for network in ranges) >= needed + 100:
            return
        extra = next(
            network
            for network in ipaddress.ip_network("10.0.0.0/8").subnets(new_prefix=16)
            if not any(network.overlaps(existing) for existing in ranges)
        )
        networking.create_service_cidr({"metadata": {"name": "bench"}, "spec": {"cidrs": [str(extra)]}})
        self.details["service_cidrs"].append(str(extra))
        self.details["notes"].append(
            f"The control plane's Service range ({', '.join(map(str, ranges))}) is too small for {needed:,} Services; "
            f"the benchmark added the ServiceCIDR {extra}."
        )

    sizes_override: tuple[int, ...] | None = None  # the profiler fills one namespace only

    @property
    def sizes(self) -> tuple[int, ...]:
        return self.sizes_override or SIZES

    def fill(self) -> None:
        from kubernetes import client, config

        filler = config.new_client_from_config(config_file=self.kubeconfig)
        core = client.CoreV1Api(filler)
        jobs = [(namespace, i) for size, namespace in self.namespaces.items() for i in range(size)]
        log(f"filling {', '.join(self.namespaces.values())} with {len(jobs)} Services ({FILL_THREADS} threads)")

        def create(job: tuple[str, int]) -> None:
            namespace, index = job
            name = f"svc-{index:05d}"
            response = core.create_namespaced_service(namespace, service_body(name, index), _preload_content=False)
            response.read()  # the whole answer, so the connection can be reused
            response.release_conn()

        began = time.perf_counter()
        with ThreadPoolExecutor(FILL_THREADS) as pool:
            list(pool.map(create, jobs))
        took = time.perf_counter() - began
        filler.close()
        self.figures["fill_seconds"] = round(took, 1)
        self.figures["fill_services_per_second"] = round(len(jobs) / took, 1)
        for size, namespace in self.namespaces.items():
            page = self.core.list_namespaced_service(namespace, limit=1)
            count = 1 + (page.metadata.remaining_item_count or 0)
            if count != size:
                raise RuntimeError(f"{namespace} holds {count} Services, not {size}")
        log(f"filled in {took:.1f} s ({len(jobs) / took:.0f} Services/s)")
        self.wait_for_endpoint_slices()

    def wait_for_endpoint_slices(self) -> None:
        """The controller-manager makes an EndpointSlice for every new Service; measuring while it still works
        through thousands would time its load, not the console. Wait until each namespace has one per Service."""
        from kubernetes import client

        discovery = client.DiscoveryV1Api(self.raw_client)
        began = time.perf_counter()
        for size, namespace in self.namespaces.items():
            while True:
                page = discovery.list_namespaced_endpoint_slice(namespace, limit=1)
                if len(page.items) + (page.metadata.remaining_item_count or 0) >= size:
                    break
                if time.perf_counter() - began > 600:
                    raise RuntimeError(f"the EndpointSlice controller did not catch up in {namespace}")
                time.sleep(0.5)
        took = time.perf_counter() - began
        self.figures["endpoint_slices_catch_up_seconds"] = round(took, 1)
        log(f"the EndpointSlice controller caught up with the benchmark's Services {took:.1f} s after the fill")
        time.sleep(2.0)  # its last writes settle

    # --- in process ---------------------------------------------------------------------------------------------

    def in_process(self) -> None:
        from django.test import Client
        from django.urls import reverse

        import kube
        from clusters.models import Cluster
        from kube.informer import informers
        from services import api as services_api
        from services.listing import PAGE_SIZE

        self.details["page_size"] = PAGE_SIZE
        browser = Client()
        browser.force_login(self.user)
        htmx = {"HX-Request": "true"}

        def page(url: str, headers: dict[str, str] | None = None) -> Callable[[], None]:
            def get() -> None:
                response = browser.get(url, headers=headers or {})
                if response.status_code != 200:
                    raise RuntimeError(f"GET {url} answered {response.status_code}")

            return get

        def raw_list(namespace: str) -> Callable[[], None]:
            def call() -> None:
                result = self.core.list_namespaced_service(namespace, limit=PAGE_SIZE)
                if len(result.items) != PAGE_SIZE:
                    raise RuntimeError(f"raw list of {namespace} gave {len(result.items)} items")

            return call

        # Check once that the pages show what the raw call returns before timing them.
        for size, namespace in self.namespaces.items():
            url = reverse("services:list", args=[CLUSTER, namespace])
            names = [item.metadata.name for item in self.core.list_namespaced_service(namespace, limit=PAGE_SIZE).items]
            full = browser.get(url).content.decode()
            partial = browser.get(url, headers=htmx).content.decode()
            for what, html in (("page", full), ("partial", partial)):
                missing = [name for name in names if name not in html]
                if missing:
                    raise RuntimeError(f"the list {what} of {namespace} lacks {missing[:3]}")
            if "<html" in partial or "<html" not in full:
                raise RuntimeError("the HTMX partial is not a fragment, or the full page is not a page")
            self.details[f"list_html_bytes_inprocess_{size}"] = len(full.encode())
        # The first view of each namespace started its informer; time how long each takes to list its namespace,
        # and let them all answer before the timing starts.
        cluster = Cluster.objects.get(name=CLUSTER)
        for size, namespace in self.namespaces.items():
            began = time.perf_counter()
            while services_api.cached_services(self.actor, namespace) is None:
                if time.perf_counter() - began > 60:
                    raise RuntimeError(f"the informer of {namespace} did not sync within 60 s")
                time.sleep(0.002)
            informer = informers.get(cluster, services_api.SERVICES, namespace)
            self.figures[f"informer_sync_ms_{size}"] = informer.first_sync_seconds * 1000

        def live_page(url: str) -> Callable[[], None]:
            """The list page with the informer switched off: every view asks the API server (limit/continue)."""
            get = page(url)

            def without_informer() -> None:
                real = services_api.cached_services
                services_api.cached_services = lambda *args, **kwargs: None
                try:
                    get()
                finally:
                    services_api.cached_services = real

            return without_informer

        ops: dict[str, Callable[[], None]] = {}
        for size, namespace in self.namespaces.items():
            url = reverse("services:list", args=[CLUSTER, namespace])
            ops[f"raw_{size}"] = raw_list(namespace)
            ops[f"page_{size}"] = page(url)
            ops[f"partial_{size}"] = page(url, htmx)
            if size == 1000:
                ops[f"live_{size}"] = live_page(url)
                # The same page of the same API server registered in the shared-credential mode: what acting as the
                # user (impersonation headers, the cached SelfSubjectAccessReview) costs a list view.
                shared_url = reverse("services:list", args=[SHARED_CLUSTER, namespace])
                shared_actor = kube.Actor(Cluster.objects.get(name=SHARED_CLUSTER))
                browser.get(shared_url)
                while services_api.cached_services(shared_actor, namespace) is None:
                    time.sleep(0.002)
                ops[f"shared_{size}"] = page(shared_url)
        rounds, warmup = self.args.reps, max(5, self.args.reps // 10)
        log(f"list pages vs raw list: {len(ops)} sides alternated, {rounds} rounds after {warmup} warm-up rounds")
        samples = interleaved(ops, rounds=rounds, warmup=warmup)
        for size in self.sizes:
            raw, full, partial = (median_ms(samples[f"{side}_{size}"]) for side in ("raw", "page", "partial"))
            self.figures[f"list_raw_ms_{size}"] = raw
            self.figures[f"list_page_ms_{size}"] = full
            self.figures[f"list_partial_ms_{size}"] = partial
            self.figures[f"list_vs_raw_{size}"] = full / raw
            self.figures[f"list_partial_vs_raw_{size}"] = partial / raw
            if f"shared_{size}" in samples:
                self.figures[f"list_page_shared_ms_{size}"] = median_ms(samples[f"shared_{size}"])
                self.figures[f"list_impersonating_vs_shared_{size}"] = (
                    full / self.figures[f"list_page_shared_ms_{size}"]
                )
            if f"live_{size}" in samples:
                self.figures[f"list_live_ms_{size}"] = median_ms(samples[f"live_{size}"])
                self.figures[f"list_live_vs_raw_{size}"] = self.figures[f"list_live_ms_{size}"] / raw
        small, large = min(self.sizes), max(self.sizes)
        self.figures[f"list_{large}_vs_{small}"] = (
            self.figures[f"list_page_ms_{large}"] / self.figures[f"list_page_ms_{small}"]
        )
        self.figures[f"list_partial_{large}_vs_{small}"] = (
            self.figures[f"list_partial_ms_{large}"] / self.figures[f"list_partial_ms_{small}"]
        )
        self.figures[f"list_raw_{large}_vs_{small}"] = (
            self.figures[f"list_raw_ms_{large}"] / self.figures[f"list_raw_ms_{small}"]
        )
        self.details["samples_list"] = {name: iqr_ms(values) for name, values in samples.items()}
        self.live_poll_in_process(browser, reverse("services:list", args=[CLUSTER, self.namespaces[max(self.sizes)]]))
        # One SelfSubjectAccessReview as the user (what a cached read costs once per user, namespace and 10 s).
        from kube.identity import allowed, clear_authorisations

        reviews = []
        for _round in range(rounds):
            clear_authorisations()
            began = time.perf_counter()
            if not allowed(self.actor, "list", "services", self.namespaces[small]):
                raise RuntimeError("the bench user may not list its own namespace")
            reviews.append(time.perf_counter() - began)
        self.figures["authorisation_review_ms"] = statistics.median(reviews) * 1000
        self.details["rounds_list"] = rounds
        self.watch_delay(cluster)

        # Detail page vs a raw get, in the 1,000-Service namespace.
        namespace = self.namespaces[1000 if 1000 in self.namespaces else small]
        name = "svc-00042"
        detail_url = reverse("services:detail", args=[CLUSTER, namespace, name])
        if name not in browser.get(detail_url).content.decode():
            raise RuntimeError("the detail page does not show its Service")
        log(f"detail page vs raw get: {rounds} rounds")
        samples = interleaved(
            {"page": page(detail_url), "raw": lambda: self.core.read_namespaced_service(name, namespace)},
            rounds=rounds,
            warmup=warmup,
        )
        self.figures["detail_page_ms"] = median_ms(samples["page"])
        self.figures["detail_raw_ms"] = median_ms(samples["raw"])
        self.figures["detail_vs_raw"] = self.figures["detail_page_ms"] / self.figures["detail_raw_ms"]
        self.details["samples_detail"] = {side: iqr_ms(values) for side, values in samples.items()}

        self.create_comparison("")

    def live_poll_in_process(self, browser, url: str) -> None:
        """An unchanged live poll through the test client: the queries it makes and the CPU it takes (the client's
        own work included, so an upper bound), over many polls of the largest namespace's list."""
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        found = re.search(r'data-live-url="([^"]+)"', browser.get(url).content.decode())
        if not found:
            raise RuntimeError("the list page has no live URL")
        poll = found.group(1).replace("&amp;", "&")
        headers = {"HX-Request": "true"}
        poll = browser.get(poll, headers=headers).headers.get("X-Live-Url", poll)
        polls = self.args.reps * 10
        with CaptureQueriesContext(connection) as queries:
            began, wall = time.thread_time(), time.perf_counter()
            for _ in range(polls):
                if browser.get(poll, headers=headers).status_code != 204:
                    raise RuntimeError("an unchanged live poll did not answer 204")
            used, wall = time.thread_time() - began, time.perf_counter() - wall
        self.figures["live_poll_inprocess_cpu_ms"] = used / polls * 1000
        # The access epoch is read once a second per process, whatever the polls: counted apart.
        epoch_reads = [q for q in queries.captured_queries if "console_accessepoch" in q["sql"]]
        self.figures["live_queries_per_poll"] = (len(queries.captured_queries) - len(epoch_reads)) / polls
        self.figures["live_epoch_reads_per_second"] = len(epoch_reads) / wall

    def watch_delay(self, cluster) -> None:
        """How far behind the API server the informer is: the time from a raw create's answer until the informer
        of its namespace holds the new Service (the list page shows it from then on)."""
        import kube
        from services import api as services_api

        namespace = "bench-watch"
        self.core.create_namespace({"metadata": {"name": namespace}})
        watcher = kube.Actor(cluster)  # the informer itself, without a user's review: the delay is the watch's
        while services_api.cached_services(watcher, namespace) is None:
            time.sleep(0.002)
        delays = []
        for index in range(self.args.reps):
            name = f"watched-{index:05d}"
            self.core.create_namespaced_service(namespace, create_body(name))
            began = time.perf_counter()
            while not any(
                s["metadata"]["name"] == name for s in services_api.cached_services(watcher, namespace) or []
            ):
                if time.perf_counter() - began > 10:
                    raise RuntimeError(f"the informer did not receive {name} within 10 s")
                time.sleep(0.0002)
            delays.append(time.perf_counter() - began)
        quantiles = statistics.quantiles(delays, n=100, method="inclusive")
        self.figures["informer_delay_ms_p50"] = statistics.median(delays) * 1000
        self.figures["informer_delay_ms_p99"] = quantiles[98] * 1000
        self.figures["informer_delay_ms_max"] = max(delays) * 1000
        log(
            f"informer delay after a create: p50 {self.figures['informer_delay_ms_p50']:.2f} ms, "
            f"p99 {self.figures['informer_delay_ms_p99']:.2f} ms"
        )

    def create_comparison(self, suffix: str) -> None:
        """A create through the form (as htmx posts it) vs a raw create of the same Service, alternated. Run on
        the fresh cluster (``suffix`` "_fresh") and again once it holds the 6,100 benchmark Services: the API
        server's own create time grows with the number of Services in the cluster, and it is the denominator."""
        from django.test import Client
        from django.urls import reverse

        create_url = reverse("services:create", args=[CLUSTER, self.create_namespace])
        poster = Client()
        poster.force_login(self.user)
        counter = itertools.count()
        prefix = suffix.strip("_")[:5] or "n"

        def form_create() -> None:
            # A browser follows the redirect and the next page consumes the flash message; drop it instead.
            poster.cookies.pop("messages", None)
            name = f"form-{prefix}-{next(counter):05d}"
            response = poster.post(
                create_url, urlencode(form_data(name)), FORM_ENCODING, headers={"HX-Request": "true"}
            )
            if response.status_code != 200 or "HX-Redirect" not in response.headers:
                raise RuntimeError(f"the form create answered {response.status_code}: {response.content[:500]!r}")

        def raw_create() -> None:
            self.core.create_namespaced_service(self.create_namespace, create_body(f"raw-{prefix}-{next(counter):05d}"))

        services = 1 + (self.core.list_service_for_all_namespaces(limit=1).metadata.remaining_item_count or 0)
        rounds, warmup = max(20, self.args.reps), max(5, self.args.reps // 10)
        log(f"form create vs raw create ({services:,} Services in the cluster): {rounds} rounds")
        samples = interleaved({"page": form_create, "raw": raw_create}, rounds=rounds, warmup=warmup)
        self.figures[f"create_page_ms{suffix}"] = median_ms(samples["page"])
        self.figures[f"create_raw_ms{suffix}"] = median_ms(samples["raw"])
        self.figures[f"create_vs_raw{suffix}"] = median_ms(samples["page"]) / median_ms(samples["raw"])
        self.figures[f"create_overhead_ms{suffix}"] = median_ms(samples["page"]) - median_ms(samples["raw"])
        self.figures[f"create_cluster_services{suffix}"] = services
        self.details[f"samples_create{suffix}"] = {side: iqr_ms(values) for side, values in samples.items()}
        self.details["rounds_create"] = rounds

    def breakdowns(self) -> None:
        """Where the console's time goes on the compared paths, measured after the comparisons (the timers wrap
        application functions, so they must not run during them)."""
        from django.test import Client
        from django.urls import reverse

        from bench import breakdown

        timers = breakdown.Timers()
        try:
            browser = Client()  # a new client: its middleware chain is built on its first request, with the timers
            browser.force_login(self.user)
            namespace = self.namespaces[1000 if 1000 in self.namespaces else min(self.namespaces)]
            size = 1000 if 1000 in self.namespaces else min(self.namespaces)
            create_url = reverse("services:create", args=[CLUSTER, self.create_namespace])
            counter = itertools.count()

            def form_create() -> None:
                browser.cookies.pop("messages", None)
                name = f"split-{next(counter):05d}"
                response = browser.post(
                    create_url, urlencode(form_data(name)), FORM_ENCODING, headers={"HX-Request": "true"}
                )
                if response.status_code != 200:
                    raise RuntimeError(f"the form create answered {response.status_code}")

            paths = {
                f"list page, {size:,} Services": reverse("services:list", args=[CLUSTER, namespace]),
                "list page, empty namespace": reverse("services:list", args=[CLUSTER, self.empty_namespace]),
                "detail page": reverse("services:detail", args=[CLUSTER, namespace, "svc-00042"]),
            }
            calls = max(20, self.args.reps)
            log(f"where the time goes: {len(paths) + 1} paths, {calls} calls each")
            results = {
                label: breakdown.measure(timers, lambda url=url: browser.get(url), calls)
                for label, url in paths.items()
            }
            results["create (form POST)"] = breakdown.measure(timers, form_create, calls)
            htmx = {"HX-Request": "true"}
            html = browser.get(paths[f"list page, {size:,} Services"]).content.decode()
            poll = re.search(r'data-live-url="([^"]+)"', html).group(1).replace("&amp;", "&")
            poll = browser.get(poll, headers=htmx).headers.get("X-Live-Url", poll)
            results["live poll, nothing changed"] = breakdown.measure(
                timers, lambda: browser.get(poll, headers=htmx), calls
            )
            self.details["breakdown"] = results
            keys = ("total", "api", "db", "template", "view_code", "middleware", "session", "access", "form", "audit")
            for label, slug in zip(results, ("list", "list_empty", "detail", "create", "poll"), strict=True):
                for key, (_what, ms, _count) in zip(keys, results[label], strict=True):
                    self.figures[f"split_{slug}_{key}_ms"] = ms
        finally:
            timers.uninstall()

    # --- production server ----------------------------------------------------------------------------------------

    def start_server(self) -> None:
        import gunicorn

        self.workers = os.cpu_count() or 1
        self.port = free_port()
        self.server_log = self.tmp / "gunicorn.log"
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--config",
            "python:console.gunicorn",
            "console.wsgi:application",
            "--workers",
            str(self.workers),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--chdir",
            str(ROOT),
            "--timeout",
            "60",
            "--log-level",
            "warning",
            "--error-logfile",
            str(self.server_log),
        ]
        self.details["gunicorn_version"] = gunicorn.__version__
        self.details["gunicorn_command"] = (
            " ".join(command[2:])
            .replace(str(ROOT), ".")
            .replace(str(self.server_log), "<tmp>/gunicorn.log")
            .replace(f":{self.port}", ":<free port>")
        )
        log(f"starting gunicorn with {self.workers} workers on 127.0.0.1:{self.port}")
        self.server = subprocess.Popen(
            command,
            env=os.environ.copy(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,  # the benchmark is single-threaded at this point
        )
        from bench import httpload

        deadline = time.monotonic() + 60
        while True:
            if self.server.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.server.returncode}:\n{self._server_log_tail()}")
            try:
                status, _headers, _body = httpload.fetch("127.0.0.1", self.port, "/login/", timeout=5)
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer within 60 s:\n{self._server_log_tail()}")
            time.sleep(0.2)
        # Let every worker boot before memory is read.
        while len(httpload.children_of(self.server.pid)) < self.workers and time.monotonic() < deadline:
            time.sleep(0.2)

        from django.conf import settings
        from django.test import Client
        from django.urls import reverse

        browser = Client()
        browser.force_login(self.user)  # production cookies are Secure; the session is sent by hand over http
        self.cookie = {
            "Cookie": f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"
        }
        namespace = self.namespaces[1000 if 1000 in self.namespaces else min(self.namespaces)]
        self.list_path = reverse("services:list", args=[CLUSTER, namespace])
        status, headers, body = httpload.fetch("127.0.0.1", self.port, self.list_path, self.cookie)
        if status != 200:
            where = headers.get("location", "")
            raise RuntimeError(
                f"the production server answered {status} {where} for the list page over http on loopback; "
                "the production settings do not allow this benchmark (see CONSOLE_SSL_REDIRECT)"
            )
        self.list_requests = 1

    def _server_log_tail(self) -> str:
        try:
            return self.server_log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def worker_rss(self) -> dict[int, int]:
        from bench import httpload

        return {pid: httpload.rss_kib(pid) for pid in httpload.children_of(self.server.pid)}

    def memory(self) -> None:
        from bench import httpload

        marks = (1000, 10000) if not self.args.quick else (200, 1000)
        self.details["rss_marks"] = marks
        readings: dict[int, dict[int, int]] = {}
        for mark in marks:
            count = mark - self.list_requests
            log(f"list page on gunicorn: {count} requests from 8 clients, then RSS (after {mark} in all)")
            load = httpload.run(
                "127.0.0.1", self.port, self.list_path, clients=8, headers=self.cookie, total=count, expect=FIRST_ROW
            )
            self.list_requests += load.requests
            readings[mark] = self.worker_rss()
            if load.errors:
                self.details["notes"].append(
                    f"{load.errors} of the requests before the {mark:,} mark failed ({'; '.join(load.error_examples)})"
                )
            self.details[f"rss_load_{mark}"] = {
                "requests": load.requests,
                "errors": load.errors,
                "throughput": load.throughput,
                "examples": load.error_examples,
            }
        first, last = marks
        if set(readings[first]) != set(readings[last]):
            self.details["notes"].append(
                f"gunicorn replaced a worker between {first} and {last} requests "
                f"(pids {sorted(readings[first])} then {sorted(readings[last])}); the RSS growth is not comparable"
            )
        self.details["rss_workers"] = {mark: readings[mark] for mark in marks}
        self.figures["rss_kib_1k"] = sum(readings[first].values())
        self.figures["rss_kib_10k"] = sum(readings[last].values())
        self.figures["rss_max_worker_kib_1k"] = max(readings[first].values())
        self.figures["rss_max_worker_kib_10k"] = max(readings[last].values())
        self.figures["rss_growth_1k_10k"] = self.figures["rss_kib_10k"] / self.figures["rss_kib_1k"]
        self.figures["rss_growth_max_worker_1k_10k"] = (
            self.figures["rss_max_worker_kib_10k"] / self.figures["rss_max_worker_kib_1k"]
        )

    def page_bytes(self) -> None:
        from bench import httpload

        status, _headers, html = httpload.fetch("127.0.0.1", self.port, self.list_path, self.cookie)
        self.list_requests += 1
        if status != 200:
            raise RuntimeError(f"the list page answered {status}")
        css, js = httpload.assets_of(html)
        assets: dict[str, dict[str, Any]] = {}
        for url in [*css, *js]:
            status, headers, body = httpload.fetch("127.0.0.1", self.port, url)
            _status, zheaders, zbody = httpload.fetch("127.0.0.1", self.port, url, {"Accept-Encoding": "gzip, br"})
            if status != 200:
                raise RuntimeError(f"{url} answered {status}")
            assets[url] = {
                "bytes": len(body),
                "compressed_bytes": len(zbody),
                "encoding": zheaders.get("content-encoding", "identity"),
                "cache_control": headers.get("cache-control", ""),
            }
        self.details["assets"] = assets
        self.figures["list_page_html_bytes"] = len(html)
        self.figures["list_page_css_bytes"] = sum(assets[url]["bytes"] for url in css)
        self.figures["list_page_js_bytes"] = sum(assets[url]["bytes"] for url in js)
        self.figures["list_page_bytes"] = len(html) + sum(asset["bytes"] for asset in assets.values())
        # The HTML goes out uncompressed (no GZip middleware); the assets as WhiteNoise serves them to a browser.
        self.figures["list_page_transfer_bytes"] = len(html) + sum(a["compressed_bytes"] for a in assets.values())
        self.figures["list_page_html_gzip_bytes"] = len(gzip.compress(html, 6))

    def concurrency(self) -> None:
        from bench import httpload

        for clients in (8, 32):
            log(f"list page on gunicorn: {clients} concurrent clients for {self.args.duration:.0f} s")
            load = httpload.run(
                "127.0.0.1",
                self.port,
                self.list_path,
                clients=clients,
                headers=self.cookie,
                duration=self.args.duration,
                expect=FIRST_ROW,
            )
            self.list_requests += load.requests
            self.figures[f"p50_ms_{clients}"] = load.percentile(50) * 1000
            self.figures[f"p95_ms_{clients}"] = load.percentile(95) * 1000
            self.figures[f"p99_ms_{clients}"] = load.percentile(99) * 1000
            self.figures[f"errors_{clients}"] = load.errors
            self.figures[f"requests_{clients}"] = load.requests
            self.figures[f"rps_{clients}"] = load.throughput
            if load.error_examples:
                self.details["notes"].append(
                    f"{load.errors} errors with {clients} clients, e.g. {'; '.join(load.error_examples)}"
                )
        self.figures["rss_kib_end"] = sum(self.worker_rss().values())
        self.details["list_requests_total"] = self.list_requests

    def live_channel(self) -> None:
        """What open list pages cost while nothing changes: each asks the list's live URL every LIVE_INTERVAL
        seconds (what console.js does) and gets a 204; the workers' CPU time over the run, against the same window
        idle, at each number of pages in LIVE_PAGES. Then the same load on a gunicorn serving ``bench/floor.py``
        (an application that answers 204 and does nothing else): the floor under any answer."""
        from bench import httpload

        status, _headers, html = httpload.fetch("127.0.0.1", self.port, self.list_path, self.cookie)
        found = re.search(rb'data-live-url="([^"]+)"', html)
        if status != 200 or not found:
            raise RuntimeError("the list page has no live URL")
        path = found.group(1).decode().replace("&amp;", "&")
        headers = {**self.cookie, "HX-Request": "true"}
        status, answer_headers, _body = httpload.fetch("127.0.0.1", self.port, path, headers)
        if status != 204:
            raise RuntimeError(f"the live poll answered {status}")
        # A page drawn before the user's access review was remembered gets its next URL from the view's 204.
        path = answer_headers.get("x-live-url", path)
        window = self.args.duration
        idle = self._cpu_cores(self.server.pid, min(window, 5.0))
        self.figures["live_cpu_cores_idle"] = idle
        for pages in LIVE_PAGES:
            log(f"live channel: {pages} open list pages polling every {LIVE_INTERVAL} s, {window:.0f} s, no change")
            run, cores = self._paced_cpu(self.server.pid, self.port, path, pages, headers)
            answered = sum(run.statuses.values())
            if run.errors or run.statuses.get(204, 0) != answered:
                raise RuntimeError(f"the live polls were not all 204: {run.statuses}, {run.errors} errors")
            self.figures[f"live_polls_per_s_{pages}"] = answered / run.elapsed
            self.figures[f"live_poll_p50_ms_{pages}"] = run.percentile(50) * 1000
            self.figures[f"live_poll_p99_ms_{pages}"] = run.percentile(99) * 1000
            self.figures[f"live_cpu_cores_{pages}"] = cores
            self.figures[f"live_cpu_ms_per_poll_{pages}"] = cores * run.elapsed / answered * 1000
            self.figures[f"live_bytes_per_poll_{pages}"] = run.bytes_received / answered
        floor = self._start_floor()
        try:
            most = max(LIVE_PAGES)
            log(f"live channel floor: {most} pages against an application that only answers 204")
            run, cores = self._paced_cpu(floor.pid, self.floor_port, path, most, headers)
            self.figures["live_floor_cpu_cores"] = cores
            self.figures["live_floor_cpu_ms_per_poll"] = cores * run.elapsed / sum(run.statuses.values()) * 1000
            self.figures["live_floor_poll_p99_ms"] = run.percentile(99) * 1000
        finally:
            floor.terminate()
            floor.wait(10)
        self.figures["live_cpu_ms_per_poll"] = self.figures[f"live_cpu_ms_per_poll_{most}"]
        self.figures["live_cpu_above_floor_ms_per_poll"] = (
            self.figures["live_cpu_ms_per_poll"] - self.figures["live_floor_cpu_ms_per_poll"]
        )
        self.figures["live_cpu_cores_1000_pages"] = self.figures["live_cpu_ms_per_poll"] * 1000 / LIVE_INTERVAL / 1000

    def _cpu_cores(self, pid: int, seconds: float) -> float:
        from bench import httpload

        workers = httpload.children_of(pid)
        before = sum(httpload.cpu_seconds(worker) for worker in workers)
        time.sleep(seconds)
        return (sum(httpload.cpu_seconds(worker) for worker in workers) - before) / seconds

    def _paced_cpu(self, pid: int, port: int, path: str, pages: int, headers: dict[str, str]):
        """``pages`` paced pollers of ``path`` for the run's duration: the run, and the workers' CPU in cores."""
        from bench import httpload

        workers = httpload.children_of(pid)
        before = sum(httpload.cpu_seconds(worker) for worker in workers)
        run = httpload.paced(
            "127.0.0.1", port, path, pages=pages, interval=LIVE_INTERVAL, duration=self.args.duration, headers=headers
        )
        used = sum(httpload.cpu_seconds(worker) for worker in workers) - before
        return run, used / run.elapsed

    def _start_floor(self) -> subprocess.Popen:
        from bench import httpload

        self.floor_port = free_port()
        floor = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "bench.floor:application",
                "--workers",
                str(self.workers),
                "--bind",
                f"127.0.0.1:{self.floor_port}",
                "--chdir",
                str(ROOT),
                "--log-level",
                "warning",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpload.fetch("127.0.0.1", self.floor_port, "/", timeout=2)[0] == 204:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or floor.poll() is not None:
                raise RuntimeError("the floor server did not start")
            time.sleep(0.1)
        while len(httpload.children_of(floor.pid)) < self.workers and time.monotonic() < deadline:
            time.sleep(0.1)
        return floor

    def watches_held(self) -> None:
        """The watches the console holds on the API server after everything above (gunicorn's workers and this
        process browsed every benchmark namespace), next to the formula of ``bench/watches.py``: "local" and
        "local-shared" are the same API server (two registrations), and this process serves pages too."""
        from bench import watches

        held = watches.measure(
            self.plane.server,
            self.plane.ca_pem,
            *self.admin_pem,
            baseline=self.watch_baseline,
            replicas=1,
            workers=self.workers,
            extra_processes=1,
            registrations=2,
            namespaces=len(self.namespaces) + 2,
        )
        self.figures["watches_held"] = held.measured
        self.figures["watches_namespaced"] = held.namespaced
        self.figures["watches_formula"] = held.formula
        log(f"watches the console holds on the API server: {held.measured} (formula's bound {held.formula})")

    # --- tear-down ------------------------------------------------------------------------------------------------

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(20)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait(5)
        self.server = None
        if self.plane is not None:
            try:
                self.plane.stop()
            except Exception:  # noqa: BLE001 - tear-down must go on
                traceback.print_exc()
            self.plane = None


# --- main ----------------------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=100, help="rounds of each in-process comparison (default 100)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per concurrency level (default 20)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short smoke run (few rounds, 200/1,000 RSS marks) written to a temp folder",
    )
    parser.add_argument("--output", type=Path, help="folder for benchmarks.md and .json (default docs/)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--fleet-only", action="store_true", help="only All my Services over several control planes (bench/fleet.py)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (database, server log)")
    args = parser.parse_args()
    if args.quick:
        args.reps = min(args.reps, 20)
        args.duration = min(args.duration, 4.0)
    return args


def report_fleet_only(bench: Bench, output: Path) -> None:
    """``--fleet-only`` prints its figures and leaves docs/ alone (the full run writes them)."""
    from bench import report

    print(report.text_table(*report.fleet_rows(bench.figures)))
    log(f"fleet figures (not written to {output}): {json.dumps(bench.figures)}")


def main() -> int:
    args = parse_args()
    began = time.monotonic()
    load_start = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="console-bench-"))
    output = args.output or (Path(tempfile.mkdtemp(prefix="console-bench-quick-")) if args.quick else ROOT / "docs")

    def terminated(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)
    prepare_environment(tmp)
    bench = Bench(args, tmp)
    try:
        bench.setup_django()
        if args.fleet_only:
            from bench import fleet

            fleet.run(bench, log, quick=args.quick)
            report_fleet_only(bench, output)
            return 0
        bench.start_cluster()
        bench.create_comparison("_fresh")
        bench.fill()
        bench.in_process()
        bench.breakdowns()
        bench.start_server()
        bench.memory()
        bench.page_bytes()
        bench.concurrency()
        bench.live_channel()
        bench.watches_held()
        from bench import fleet

        fleet.run(bench, log, quick=args.quick)
        etcd_binary = bench.plane.binaries / "etcd"
    except BaseException:
        if bench.server is not None:
            tail = bench._server_log_tail()
            if tail:
                log(f"gunicorn log (tail):\n{tail}")
        raise
    finally:
        bench.stop()
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
            "workers": bench.workers,
            "duration": args.duration,
        }
    )
    facts = report.machine_facts(bench.details, etcd_binary)
    bench.figures["machine_nproc"] = facts["nproc"]
    bench.figures["machine_memory_gib"] = facts["memory_gib"]
    report.print_report(bench.figures, bench.details, facts)
    output.mkdir(parents=True, exist_ok=True)
    report.write_json(output / "benchmarks.json", bench.figures)
    report.write_markdown(output / "benchmarks.md", bench.figures, bench.details, facts)
    log(f"wrote {output / 'benchmarks.md'} and {output / 'benchmarks.json'} in {time.monotonic() - began:.0f} s")
    missed = [name for name, _value, _limit, _what, ok in report.judged(bench.figures) if not ok]
    if missed:
        log(f"targets missed: {', '.join(missed)}")
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
