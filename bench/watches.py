"""How many watches the console holds on one API server: measured from the API server's side, and the formula.

The console keeps its list pages current with informers (``kube/informer.py``): one list, then one watch, per
(cluster, kind, namespace) and per process. So on one API server the console holds

    replicas x workers per replica x min(MAX_INFORMERS, 2 x namespaces in use + cluster-wide kinds in use)

watches, where

* "namespaces in use" are those whose list (or live poll, or detail page) the worker served in the last
  ``IDLE_SECONDS`` (an informer nobody read for that long stops at the end of its current watch, at most
  ``WATCH_SECONDS`` later);
* 2 is the namespaced kinds: Services and EndpointSlices of the namespace;
* the cluster-wide kinds are at most 4 (``kube.client``, ``services/api.py``), each started by what needs it:
  namespaces (the picker of a cluster-wide user), nodes (node addresses of NodePort rows, for a user who may
  list nodes), the Services of every namespace (the form's checks of node ports and load balancer addresses in
  use, and All my Services for a user who may list them everywhere), and the EndpointSlices of every namespace
  (All my Services' health column);
* ``MAX_INFORMERS`` caps a process across all clusters (least recently read stopped first), so the product
  never exceeds ``replicas x workers x MAX_INFORMERS`` whatever users do.

The API server counts its open watches in the gauge ``apiserver_longrunning_requests{verb="WATCH"}`` (labels
``group``, ``resource``, ``scope``; ``apiserver_registered_watchers`` no longer exists in v1.37). It has no label
for the client, so the console's share is read two ways:

* its namespaced watches of Services and EndpointSlices exactly: ``scope="namespace"`` rows of those two
  resources, which the control plane's own components never open (they watch cluster-wide);
* all of them as the rise of the total over a ``baseline`` read before the console started browsing.
"""

from __future__ import annotations

import re
import ssl
import tempfile
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from kube.informer import MAX_INFORMERS

# (group, resource) of the kinds the console follows in each namespace in use.
NAMESPACED_KINDS = (("", "services"), ("discovery.k8s.io", "endpointslices"))
# The names of the informer kinds it follows cluster-wide (``Kind.name``), at most one informer each per cluster.
CLUSTER_KINDS = ("namespaces", "nodes", "services-everywhere", "endpointslices-everywhere")

_SAMPLE = re.compile(r"^apiserver_longrunning_requests\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$", re.M)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Watches:
    """The API server's open watches: (group, resource, scope) -> how many."""

    by_resource: dict[tuple[str, str, str], int]

    @property
    def total(self) -> int:
        return sum(self.by_resource.values())

    def namespaced(self, kinds: Iterable[tuple[str, str]] = NAMESPACED_KINDS) -> int:
        """Watches of ``kinds`` scoped to one namespace: only the console opens these on its API servers."""
        return sum(self.by_resource.get((group, resource, "namespace"), 0) for group, resource in kinds)

    def since(self, baseline: Watches) -> int:
        """How many more watches are open now than at ``baseline``."""
        return self.total - baseline.total


def parse_watches(metrics: str) -> Watches:
    """The WATCH rows of ``apiserver_longrunning_requests`` in a /metrics text."""
    counts: dict[tuple[str, str, str], int] = {}
    for sample in _SAMPLE.finditer(metrics):
        labels = dict(_LABEL.findall(sample["labels"]))
        if labels.get("verb") != "WATCH":
            continue
        key = (labels.get("group", ""), labels.get("resource", ""), labels.get("scope", ""))
        counts[key] = counts.get(key, 0) + int(float(sample["value"]))
    return Watches(counts)


def read_metrics(server: str, ca_pem: bytes, client_cert: bytes, client_key: bytes, timeout: float = 10.0) -> str:
    """GET /metrics of an API server with a client certificate that may read it (system:masters, or a role
    granting ``get`` on the non-resource URL /metrics). The certificate and key pass through a private
    temporary folder removed at once: Python's ssl module loads them from files only."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    with tempfile.TemporaryDirectory(prefix="watches-") as folder:
        cert, key = Path(folder) / "client.crt", Path(folder) / "client.key"
        cert.write_bytes(client_cert)
        key.touch(mode=0o600)
        key.write_bytes(client_key)
        context.load_cert_chain(cert, key)
    with urllib.request.urlopen(f"{server}/metrics", context=context, timeout=timeout) as response:
        return response.read().decode()


def watch_formula(
    *,
    replicas: int,
    workers: int,
    namespaces: int,
    cluster_kinds: int = len(CLUSTER_KINDS),
    registrations: int = 1,
    extra_processes: int = 0,
    max_informers: int = MAX_INFORMERS,
) -> int:
    """The most watches the console holds on one API server when ``namespaces`` of it and ``cluster_kinds`` of its
    cluster-wide kinds (0 to 4) are in use in every process.

    ``registrations``: how many clusters registered in the console point at this API server (informers are kept
    per registered cluster). ``extra_processes``: processes besides the replicas' workers that serve pages too,
    such as the benchmark's in-process client."""
    per_cluster = len(NAMESPACED_KINDS) * namespaces + cluster_kinds
    per_process = min(max_informers, registrations * per_cluster)
    return (replicas * workers + extra_processes) * per_process


@dataclass(frozen=True)
class WatchFigures:
    measured: int  # the rise of the API server's open watches over the baseline
    namespaced: int  # of which namespaced Services/EndpointSlices watches (exact: only the console opens them)
    formula: int  # watch_formula(...) for the same server


def measure(
    server: str,
    ca_pem: bytes,
    client_cert: bytes,
    client_key: bytes,
    *,
    baseline: Watches,
    **usage: int,
) -> WatchFigures:
    """What ``make bench`` reports: the watches the console holds on ``server`` now next to the formula's value
    for ``usage`` (the keyword arguments of ``watch_formula``). Read ``baseline`` with
    ``parse_watches(read_metrics(...))`` after the control plane started and before the console browsed it."""
    now = parse_watches(read_metrics(server, ca_pem, client_cert, client_key))
    return WatchFigures(measured=now.since(baseline), namespaced=now.namespaced(), formula=watch_formula(**usage))
