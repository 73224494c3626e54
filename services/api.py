"""Every Kubernetes call the Services pages make, in one place. Each goes through ``kube.call``: raw JSON,
refusals as ``ApiError``, an unavailable cluster as ``ClusterUnavailable``, reads retried only when asked to."""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pydantic
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from kubernetes import client

import kube
from kube import Kind, cluster_scoped
from kube.informer import informers
from services import health
from services import manifest as m

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


ApiError = kube.ApiError
_call = kube.call


# The API server answers in English. Its common refusals of a Service, recognised by their text, are said again
# in the user's language (the sentences the live checks use, so both say the same); anything else is shown as sent.
_PORT_TAKEN = re.compile(r"(?:Invalid value: (?P<port>[0-9]+): )?provided port is already allocated")
_PORT_OUT_OF_RANGE = re.compile(
    r"(?:Invalid value: (?P<port>[0-9]+): )?provided port is not in the valid range\. "
    r"The range of valid ports is (?P<low>[0-9]+)-(?P<high>[0-9]+)"
)
_ALREADY_EXISTS = re.compile(r'^services "(?P<name>[^"]+)" already exists$')


def explained(text: str) -> str:
    """The API server's message ``text`` in the user's language when it is one of the known refusals."""
    if (taken := _PORT_TAKEN.search(text)) and taken["port"]:
        return _("%(port)d is already used by another Service.") % {"port": int(taken["port"])}
    if (outside := _PORT_OUT_OF_RANGE.search(text)) and outside["port"]:
        numbers = {key: int(outside[key]) for key in ("port", "low", "high")}
        return _("%(port)d is outside the cluster's node port range %(low)d-%(high)d.") % numbers
    if exists := _ALREADY_EXISTS.match(text.strip()):
        return _("A Service named “%(name)s” already exists in this namespace.") % {"name": exists["name"]}
    return text


def _client(actor: kube.Actor) -> client.ApiClient:
    """The cluster's pooled client, acting as the signed-in user (``kube.identity``)."""
    return kube.api_client_for(actor.cluster, actor.identity)


def _core(actor: kube.Actor) -> client.CoreV1Api:
    return client.CoreV1Api(_client(actor))


def list_services(
    actor: kube.Actor, namespace: str, *, limit: int | None = None, continue_token: str | None = None
) -> tuple[list[dict], str]:
    """One page of Services and the token for the next ('' at the end)."""
    kwargs: dict[str, Any] = {}
    if limit:
        kwargs["limit"] = limit
    if continue_token:
        kwargs["_continue"] = continue_token
    result = _call(_core(actor).list_namespaced_service, namespace, **kwargs)
    return result["items"], result["metadata"].get("continue", "")


def _slim_service(service: dict) -> dict:
    """What a list row needs: labels, annotations (``last-applied-configuration`` above all) and managed fields
    are left out, so a cached namespace of 5,000 Services stays a few megabytes."""
    metadata = service["metadata"]
    return {
        "metadata": {
            key: metadata[key]
            for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if key in metadata
        },
        "spec": service.get("spec", {}),
        "status": service.get("status", {}),
    }


SERVICES = Kind("services", lambda api_client: client.CoreV1Api(api_client).list_namespaced_service, _slim_service)


def cached_services(
    actor: kube.Actor, namespace: str, *, at_least: int = 0, without: tuple[str, ...] = (), wait: float = 0.0
) -> list[dict] | None:
    """The namespace's Services sorted by name from its informer (``kube.informer``), started on first use; None
    when it cannot answer yet (the caller lists them live). ``at_least`` / ``without``: the resourceVersion written
    and the uids deleted by this user, which the answer must already reflect.

    The informer's copy is shared by everyone who reads the namespace; it is served to this user only when the
    cluster lets them list Services there (``kube.allowed``: their own SelfSubjectAccessReview, cached briefly).
    Otherwise None, and the live list, made as the user, gets the cluster's own answer."""
    if not kube.allowed(actor, "list", "services", namespace):
        return None
    return informers.snapshot(actor.cluster, SERVICES, namespace, at_least=at_least, without=without, wait=wait)


# The Services and EndpointSlices of every namespace, read as the console's cache identity: for All my Services
# (served to a user the cluster lets list them everywhere), and for the cluster-wide checks of the form (the node
# ports and load balancer addresses in use anywhere), which never show a Service the user may not view.
SERVICES_EVERYWHERE = Kind(
    "services-everywhere",
    cluster_scoped(lambda core: core.list_service_for_all_namespaces),
    _slim_service,
)


def services_everywhere(actor: kube.Actor, *, wait: float, first: int = 0) -> tuple[list[dict], bool] | None:
    """Every Service of the cluster, sorted by namespace and name, and whether that is all of them; None when the
    cluster does not let the user list Services in every namespace (its SelfSubjectAccessReview).

    From the cluster-wide informer, started on first use. Until it has listed: with ``first``, only the first
    ``first`` Services, asked live (the API server returns them in namespace and name order), which is all an
    unfiltered first page needs; without, the informer is waited for up to ``wait`` seconds (its list is the one
    the answer needs anyway) and the Services are then asked live, in pages."""
    if not kube.allowed(actor, "list", "services"):
        return None
    cluster = actor.cluster
    if first:
        informer = informers.peek(cluster, SERVICES_EVERYWHERE)
        cached = informer.snapshot() if informer is not None else None
    else:
        cached = informers.snapshot(cluster, SERVICES_EVERYWHERE, wait=wait)
    if cached is not None:
        return cached, True
    core, items, token = _core(actor), [], None
    while True:
        page = _call(
            core.list_service_for_all_namespaces, limit=first or 500, **({"_continue": token} if token else {})
        )
        items += [_slim_service(item) for item in page["items"]]
        token = page["metadata"].get("continue")
        if first and token:
            # Started after the page's own call, so its list (in a thread of its own) does not delay it.
            informers.get(cluster, SERVICES_EVERYWHERE)
            return items, False
        if not token:
            informers.get(cluster, SERVICES_EVERYWHERE)
            return sorted(items, key=lambda s: (s["metadata"].get("namespace", ""), s["metadata"]["name"])), True


def get_service(actor: kube.Actor, namespace: str, name: str) -> dict:
    return _call(_core(actor).read_namespaced_service, name, namespace)


_TOP_LEVEL = ("apiVersion", "kind", "metadata", "spec", "status")


# The client's schema findings (pydantic error types), said in the user's language rather than pydantic's English.
_SCHEMA_PROBLEMS = {
    "int_parsing": gettext_lazy("must be a whole number"),
    "int_type": gettext_lazy("must be a whole number"),
    "int_from_float": gettext_lazy("must be a whole number"),
    "string_type": gettext_lazy("must be text (quote it)"),
    "bool_parsing": gettext_lazy("must be true or false"),
    "bool_type": gettext_lazy("must be true or false"),
    "dict_type": gettext_lazy("must be a mapping (key: value lines)"),
    "model_type": gettext_lazy("must be a mapping (key: value lines)"),
    "list_type": gettext_lazy("must be a list (lines starting with “- ”)"),
    "missing": gettext_lazy("is required"),
    "extra_forbidden": gettext_lazy("is not a field of a Service"),
    "greater_than_equal": gettext_lazy("is too small"),
    "less_than_equal": gettext_lazy("is too large"),
}
_SCHEMA_OTHER = gettext_lazy("does not match the Kubernetes schema")


def _schema_refusal(error: pydantic.ValidationError) -> ApiError:
    """The client checks a body against the Service schema before sending it (a YAML ``port: abc``, say): its
    findings as the API server's would be, a 422 with field paths."""
    causes = []
    for problem in error.errors():
        location = list(problem.get("loc") or ())
        # The location starts with the method's argument; the path inside the Service starts at a top-level key.
        start = next((i for i, part in enumerate(location) if part in _TOP_LEVEL), len(location))
        path = ""
        for part in location[start:]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        causes.append({"field": path, "message": str(_SCHEMA_PROBLEMS.get(problem.get("type", ""), _SCHEMA_OTHER))})
    return ApiError(status=422, message=_("The Service does not match the Kubernetes schema."), causes=causes)


def create_service(
    actor: kube.Actor, namespace: str, manifest: dict, *, dry_run: bool = False, warnings: list[str] | None = None
) -> dict:
    """Create (or with ``dry_run`` judge) a Service; ``warnings`` receives the API server's warnings."""
    kwargs = {"dry_run": "All"} if dry_run else {}
    try:
        return _call(_core(actor).create_namespaced_service, namespace, manifest, warnings=warnings, **kwargs)
    except pydantic.ValidationError as error:
        raise _schema_refusal(error) from None


def replace_service(
    actor: kube.Actor,
    namespace: str,
    name: str,
    manifest: dict,
    *,
    dry_run: bool = False,
    warnings: list[str] | None = None,
) -> dict:
    """Replace (or with ``dry_run`` judge the replacement of) a Service; ``warnings`` receives the API server's
    warnings."""
    kwargs = {"dry_run": "All"} if dry_run else {}
    try:
        return _call(_core(actor).replace_namespaced_service, name, namespace, manifest, warnings=warnings, **kwargs)
    except pydantic.ValidationError as error:
        raise _schema_refusal(error) from None


def delete_service(actor: kube.Actor, namespace: str, name: str, uid: str) -> bool:
    """Delete the Service with this uid only; False when it was already gone."""
    body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}}
    try:
        _call(_core(actor).delete_namespaced_service, name, namespace, body=body)
    except ApiError as error:
        if error.status == 404:
            return False
        raise
    return True


def _node_addresses_only(node: dict) -> dict:
    metadata = node["metadata"]
    return {
        "metadata": {key: metadata[key] for key in ("name", "uid", "resourceVersion")},
        "status": {"addresses": (node.get("status") or {}).get("addresses") or []},
    }


NODES = Kind("nodes", cluster_scoped(lambda core: core.list_node), _node_addresses_only)


def node_addresses(actor: kube.Actor) -> list[str]:
    """Node IPs for NodePort addresses (every role may read nodes: ``clusters.rbac``). External addresses first,
    then internal ones. From the cluster's node informer once it has listed them and the cluster lets the user list
    nodes (a list page with NodePort rows would otherwise ask for every node on each view), else asked live."""
    nodes = informers.snapshot(actor.cluster, NODES) if kube.allowed(actor, "list", "nodes") else None
    if nodes is None:
        nodes = _call(_core(actor).list_node)["items"]
    ranked: list[tuple[int, str]] = []
    for node in nodes:
        for address in (node.get("status") or {}).get("addresses") or []:
            rank = {"ExternalIP": 0, "InternalIP": 1}.get(address.get("type"))
            if rank is not None:
                ranked.append((rank, address["address"]))
    return [address for _rank, address in sorted(ranked)]


def list_workloads(actor: kube.Actor, namespace: str) -> list[dict]:
    """The namespace's Deployments, StatefulSets and DaemonSets with their selectors, for 引用负载标签."""
    apps = client.AppsV1Api(_client(actor))
    listers = {
        "Deployment": apps.list_namespaced_deployment,
        "StatefulSet": apps.list_namespaced_stateful_set,
        "DaemonSet": apps.list_namespaced_daemon_set,
    }
    workloads = []
    for kind, lister in listers.items():
        for item in _call(lister, namespace)["items"]:
            labels = ((item.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            workloads.append({"kind": kind, "name": item["metadata"]["name"], "match_labels": labels})
    return workloads


def workload_selector(actor: kube.Actor, namespace: str, kind: str, name: str) -> dict[str, str]:
    apps = client.AppsV1Api(_client(actor))
    readers = {
        "Deployment": apps.read_namespaced_deployment,
        "StatefulSet": apps.read_namespaced_stateful_set,
        "DaemonSet": apps.read_namespaced_daemon_set,
    }
    if kind not in readers or not name:
        # The client itself would raise (not an ApiError) on an empty name; both are a choice not on the list.
        raise ApiError(status=400, message=_("Choose a workload from the list."))
    item = _call(readers[kind], name, namespace)
    return dict(((item.get("spec") or {}).get("selector") or {}).get("matchLabels") or {})


def list_pods(actor: kube.Actor, namespace: str, selector: dict[str, str], limit: int = 100) -> tuple[list[dict], int]:
    """Pods matching a selector (at most ``limit``) and how many match in all."""
    if not selector:
        return [], 0
    label_selector = ",".join(f"{key}={value}" for key, value in sorted(selector.items()))
    result = _call(_core(actor).list_namespaced_pod, namespace, label_selector=label_selector, limit=limit)
    remaining = result["metadata"].get("remainingItemCount") or 0
    return result["items"], len(result["items"]) + remaining


def node_ports_in_use(actor: kube.Actor) -> dict[int, tuple[str, str]]:
    """Every allocated nodePort of the cluster and the (namespace, name) of the Service holding it, read as the
    console's read-only cache identity (a namespace user cannot list other namespaces); the caller decides whether
    the user may learn the holder. From the cluster-wide Services informer once it has listed them (live
    validation asks on every pause in typing), else asked live."""
    services = informers.snapshot(actor.cluster, SERVICES_EVERYWHERE)
    if services is None:
        cache = client.CoreV1Api(kube.api_client_for(actor.cluster, kube.cache_identity()))
        services = _call(cache.list_service_for_all_namespaces)["items"]
    used: dict[int, tuple[str, str]] = {}
    for service in services:
        for port in (service.get("spec") or {}).get("ports") or []:
            if port.get("nodePort"):
                used[port["nodePort"]] = (service["metadata"].get("namespace", ""), service["metadata"]["name"])
    return used


_RANGE = re.compile(r"range of valid ports is (\d+)-(\d+)")
_ranges: dict[tuple[int, int], tuple[float, tuple[int, int] | None]] = {}
RANGE_TTL_SECONDS = 600


def node_port_range(actor: kube.Actor, namespace: str) -> tuple[int, int] | None:
    """The cluster's nodePort range, as its API server states it (None if it will not say).

    A dry run does not check the range (kube-apiserver v1.37.2 accepts nodePort 1, and invents 32769 when none is
    given; it does refuse a port another Service holds), so the range is asked with a real create that can never
    be stored: the name is invalid, and the API server allocates ports, and
    reports a port outside its range, before it validates the name. Cached for ten minutes per cluster.
    """
    key = (actor.cluster.pk, actor.cluster.credentials_version)
    cached = _ranges.get(key)
    if cached and time.monotonic() - cached[0] < RANGE_TTL_SECONDS:
        return cached[1]
    probe = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "Node-Port-Range-Probe"},
        "spec": {"type": "NodePort", "ports": [{"port": 1, "nodePort": 1}]},
    }
    found: tuple[int, int] | None = None
    try:
        create_service(actor, namespace, probe)
    except ApiError as error:
        if error.status == 403:  # this user may not create Services here: no answer, and none to remember
            return None
        match = _RANGE.search(" ".join(c.get("message", "") for c in error.causes) or error.message)
        found = (int(match.group(1)), int(match.group(2))) if match else None
    _ranges[key] = (time.monotonic(), found)
    return found


def free_node_port(actor: kube.Actor, namespace: str) -> int | None:
    """A nodePort inside the cluster's range that no Service holds now (picked at random, so two people filling
    one in at the same moment rarely collide; the API server still has the last word on save)."""
    span = node_port_range(actor, namespace)
    if span is None:
        return None
    used = node_ports_in_use(actor)
    free = [port for port in range(span[0], span[1] + 1) if port not in used]
    return random.choice(free) if free else None


def list_endpoint_slices(actor: kube.Actor, namespace: str, service: str) -> list[dict]:
    discovery = client.DiscoveryV1Api(_client(actor))
    return _call(
        discovery.list_namespaced_endpoint_slice, namespace, label_selector=f"kubernetes.io/service-name={service}"
    )["items"]


def list_events(actor: kube.Actor, namespace: str, service: str) -> list[dict]:
    selector = f"involvedObject.kind=Service,involvedObject.name={service}"
    events = _call(_core(actor).list_namespaced_event, namespace, field_selector=selector)["items"]
    return sorted(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "", reverse=True)


# The detail page's related objects are independent reads: asked at once, the page waits for the slowest instead
# of their sum. A small pool per process; the calls go through the cluster's pooled client as any other.
_related_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="related-reads")


def cached_service(actor: kube.Actor, namespace: str, name: str) -> dict | None:
    """The namespace's informer's slim copy of one Service, if it has one (no informer is started): a hint of its
    selector and type, so that a Service's page can ask for its pods while it reads the Service itself. Never
    shown: the page shows what the live read says."""
    informer = informers.peek(actor.cluster, SERVICES, namespace)
    return informer.item(namespace, name) if informer is not None else None


def related_reads(service: dict) -> tuple[dict[str, str], bool]:
    """What a Service's related reads depend on: its selector, and whether it has node ports to show addresses
    for."""
    spec = service.get("spec") or {}
    return spec.get("selector") or {}, spec.get("type") in ("NodePort", "LoadBalancer")


def _service_slices(actor: kube.Actor, namespace: str, name: str) -> list[dict]:
    """A Service's EndpointSlices (slimmed): from the namespace's informer when it holds them (a list page
    started it), else asked live."""
    if kube.allowed(actor, "list", "endpointslices", namespace, group="discovery.k8s.io"):
        grouped = _grouped_slices(actor, ENDPOINT_SLICES, namespace, health.slices_by_service, start=False)
        if grouped is not None:
            return grouped.get(name, [])
    return [health.slim_endpoint_slice(item) for item in list_endpoint_slices(actor, namespace, name)]


class RelatedReads:
    """The pods a Service selects (and their count), its EndpointSlices, its events and (for NodePort and
    LoadBalancer) the node addresses, asked at once when made; ``result`` waits for them."""

    def __init__(self, actor: kube.Actor, namespace: str, name: str, selector: dict[str, str], with_nodes: bool):
        self.depends_on = (selector, with_nodes)
        language = translation.get_language()

        def read(function, *args):
            with translation.override(language):  # error messages in the user's language
                return function(*args)

        self._futures = {
            "pods": _related_pool.submit(read, list_pods, actor, namespace, selector),
            "slices": _related_pool.submit(read, _service_slices, actor, namespace, name),
            "events": _related_pool.submit(read, list_events, actor, namespace, name),
        }
        if with_nodes:
            self._futures["node_ips"] = _related_pool.submit(read, node_addresses, actor)

    def result(self) -> tuple[dict[str, Any], str]:
        """What could be read and the first failure's message ('' when none failed)."""
        related: dict[str, Any] = {"pods": [], "pod_count": 0, "slices": [], "events": [], "node_ips": []}
        failure = ""
        for key, future in self._futures.items():
            try:
                result = future.result()
            except (ApiError, kube.ClusterUnavailable) as error:
                failure = failure or str(error)
                continue
            if key == "pods":
                related["pods"], related["pod_count"] = result
            else:
                related[key] = result
        return related, failure


# --- health: EndpointSlices, MetalLB pools, and what a live page compares ------------------------------------

ENDPOINT_SLICES = Kind(
    "endpointslices",
    lambda api_client: client.DiscoveryV1Api(api_client).list_namespaced_endpoint_slice,
    health.slim_endpoint_slice,
)


# The namespace's EndpointSlices grouped by Service, per informer version: a list page needs the groups of its 20
# rows, and regrouping 5,000 slices on every view would make the page's cost grow with the namespace.
_grouped: dict[tuple, tuple[str, dict]] = {}
_GROUPED_KEPT = 256


def _grouped_slices(
    actor: kube.Actor, kind: Kind, namespace: str, group: Callable[[list[dict]], dict], *, start: bool = True
) -> dict | None:
    """An EndpointSlices informer's copy grouped by ``group``, regrouped only when the informer's version moves
    (a page needs the groups of its rows; regrouping thousands of slices per view would make its cost grow with
    them); None when the informer cannot vouch for its copy (or, unless ``start``, there is none yet)."""
    cluster = actor.cluster
    informer = (informers.get if start else informers.peek)(cluster, kind, namespace)
    version = informer.version if informer is not None else None
    snapshot = informer.snapshot() if version is not None else None
    if snapshot is None:
        return None
    key = (cluster.pk, cluster.credentials_version, kind.name, namespace)
    cached = _grouped.get(key)
    if cached is not None and cached[0] == version:
        return cached[1]
    grouped = group(snapshot)
    if len(_grouped) >= _GROUPED_KEPT:
        _grouped.clear()
    _grouped[key] = (version, grouped)
    return grouped


def endpoint_slices_by_service(actor: kube.Actor, namespace: str) -> dict[str, list[dict]]:
    """The namespace's EndpointSlices (slimmed) by the name of their Service: from its informer when the cluster
    lets the user list them there (grouped once per change), else asked live as the user."""
    if kube.allowed(actor, "list", "endpointslices", namespace, group="discovery.k8s.io"):
        grouped = _grouped_slices(actor, ENDPOINT_SLICES, namespace, health.slices_by_service)
        if grouped is not None:
            return grouped
    discovery = client.DiscoveryV1Api(_client(actor))
    items = _call(discovery.list_namespaced_endpoint_slice, namespace)["items"]
    return health.slices_by_service(health.slim_endpoint_slice(item) for item in items)


ENDPOINT_SLICES_EVERYWHERE = Kind(
    "endpointslices-everywhere",
    cluster_scoped(lambda discovery: discovery.list_endpoint_slice_for_all_namespaces, client.DiscoveryV1Api),
    health.slim_endpoint_slice,
)


def endpoint_slices_everywhere(actor: kube.Actor) -> dict[tuple[str, str], list[dict]] | None:
    """Every EndpointSlice of the cluster by (namespace, Service name), from the cluster-wide informer (grouped once
    per change) when the cluster lets the user list them everywhere and the informer has listed them; else None
    (the health column then says "unknown" rather than make the page wait for a second large list)."""
    if not kube.allowed(actor, "list", "endpointslices", group="discovery.k8s.io"):
        return None
    return _grouped_slices(actor, ENDPOINT_SLICES_EVERYWHERE, "", health.slices_by_namespace_and_service)


def ip_pools(actor: kube.Actor) -> list[dict] | None:
    """MetalLB's IPAddressPools (name and spec), or None when the cluster has no MetalLB CRD (every role may read
    the pools: ``clusters.rbac``). Their names are the form's pool choices; the pools explain a pending address."""
    custom = client.CustomObjectsApi(_client(actor))
    try:
        result = _call(custom.list_cluster_custom_object, "metallb.io", "v1beta1", "ipaddresspools")
    except ApiError as error:
        if error.status == 404:
            return None
        raise
    return [{"metadata": {"name": i["metadata"]["name"]}, "spec": i.get("spec") or {}} for i in result["items"]]


def namespace_labels(actor: kube.Actor, namespace: str) -> dict[str, str]:
    """The labels of a namespace the user may view (a MetalLB pool may select namespaces by label), read by the
    console's cache identity: a namespace role does not include reading the namespace object itself."""
    for item in informers.snapshot(actor.cluster, kube.NAMESPACES) or []:
        if item["metadata"]["name"] == namespace:
            return item["metadata"].get("labels") or {}
    cache = client.CoreV1Api(kube.api_client_for(actor.cluster, kube.cache_identity()))
    try:
        return (_call(cache.read_namespace, namespace).get("metadata") or {}).get("labels") or {}
    except ApiError:
        return {}


def load_balancer_addresses_in_use(actor: kube.Actor) -> frozenset[str]:
    """Every load balancer address assigned in the cluster (from the cluster-wide Services informer, read as the
    cache identity); only counted against a pool, never shown."""
    services = informers.snapshot(actor.cluster, SERVICES_EVERYWHERE)
    if services is None:
        cache = client.CoreV1Api(kube.api_client_for(actor.cluster, kube.cache_identity()))
        services = _call(cache.list_service_for_all_namespaces)["items"]
    return frozenset(
        ingress["ip"]
        for service in services
        for ingress in ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if ingress.get("ip")
    )


def load_balancer_context(actor: kube.Actor, namespace: str, pools: list[dict] | None) -> health.LoadBalancerContext:
    """What explains a pending address in ``namespace``, with MetalLB's ``pools`` (``ip_pools``) as read already."""
    return health.LoadBalancerContext(
        pools=pools,
        namespace_labels=namespace_labels(actor, namespace),
        addresses_in_use=load_balancer_addresses_in_use(actor),
    )


PAGE_SIZE = 20  # rows of a namespace's list page


def filtered_page(services: list[dict], query: str, type_filter: str, page: int) -> tuple[list[dict], bool]:
    """One page of a namespace's Services sorted by name (names containing ``query``, of type ``type_filter``
    when given): the page's Services and whether more follow."""
    if query or type_filter:
        services = [
            s
            for s in services
            if query.lower() in s["metadata"]["name"]
            and (not type_filter or s.get("spec", {}).get("type") == type_filter)
        ]
    return services[(page - 1) * PAGE_SIZE : page * PAGE_SIZE], len(services) > page * PAGE_SIZE


def list_shown(query: Any) -> tuple[str, str, int]:
    """What a list page shows, from its query string: the name filter, the type filter and the page number."""
    type_filter = query.get("type", "")
    return (
        query.get("q", "").strip(),
        type_filter if type_filter in m.SERVICE_TYPES else "",
        max(m.parse_number(query.get("page", ""), max_digits=6) or 1, 1),
    )


def live_version(actor: kube.Actor, namespace: str, shown: tuple, *, start: bool = True) -> str:
    """What an open page compares, every second, to know whether to redraw: a digest of what it shows, from the
    namespace's Services and EndpointSlices informers ('' when they cannot vouch, and the page redraws). A list
    page (``shown``: ``list_shown``) shows the Services of its page with their EndpointSlices and whether more
    follow; a Service's page (``shown``: its name) that Service with its EndpointSlices. So a change elsewhere in
    the namespace redraws no page that does not show it, and the version depends on the objects only: every
    replica's informers give the same answer.

    No API call: the informers are the ones the page itself started (``start``: else only those running), and the
    caller has checked the user's role."""
    services = (informers.get if start else informers.peek)(actor.cluster, SERVICES, namespace)
    grouped = _grouped_slices(actor, ENDPOINT_SLICES, namespace, health.slices_by_service, start=start)
    if services is None or grouped is None:
        return ""
    if isinstance(shown, str):
        service = services.item(namespace, shown)
        if service is None and not services.synced:
            return ""
        rows, more = ([service] if service is not None else []), False
    else:
        everything = services.snapshot()
        if everything is None:
            return ""
        rows, more = filtered_page(everything, *shown)
    digest = hashlib.blake2b(digest_size=12)
    for service in rows:
        metadata = service["metadata"]
        digest.update(f"{metadata['uid']}:{metadata['resourceVersion']}".encode())
        for item in grouped.get(metadata["name"], []):
            digest.update(f",{item['metadata']['resourceVersion']}".encode())
        digest.update(b";")
    digest.update(b"+" if more else b".")
    return digest.hexdigest()
