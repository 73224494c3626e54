"""Which pods really serve a Service, and if none, why: pure functions over the API's JSON (a Service, its
EndpointSlices, the pods its selector matches, MetalLB's IPAddressPools). No calls here; ``services.api`` reads,
the views show.

The counting follows the EndpointSlice controller: each selected pod is an endpoint of the Service's slices, in a
slice whose ``ports`` are the Service ports that pod can serve (none when a named targetPort is not on the pod).
An endpoint serves a port when it is in a slice carrying that port and is ``ready`` (an absent condition counts as
ready, as the API documents).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _

from services import manifest as m

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
POD_CONDITIONS = ("PodScheduled", "Initialized", "ContainersReady", "Ready")


@dataclass(frozen=True)
class Health:
    """Ready endpoints of a Service out of all its endpoints; ``applicable`` is False where the question has no
    answer (ExternalName, or no selector and no EndpointSlice)."""

    ready: int = 0
    total: int = 0
    applicable: bool = True

    @property
    def state(self) -> str:
        if not self.applicable:
            return "none"
        if self.total and self.ready == self.total:
            return "ok"
        return "partial" if self.ready else "bad"


def _endpoint_key(endpoint: dict) -> str:
    reference = endpoint.get("targetRef") or {}
    return reference.get("uid") or reference.get("name") or ",".join(endpoint.get("addresses") or [])


def _is_ready(endpoint: dict) -> bool:
    return (endpoint.get("conditions") or {}).get("ready") is not False


def slices_by_service(slices: Iterable[dict]) -> dict[str, list[dict]]:
    """EndpointSlices of one namespace by the name of their Service."""
    return {name: found for (_namespace, name), found in slices_by_namespace_and_service(slices).items()}


def slices_by_namespace_and_service(slices: Iterable[dict]) -> dict[tuple[str, str], list[dict]]:
    """EndpointSlices by (namespace, Service name): those of every namespace."""
    grouped: dict[tuple[str, str], list[dict]] = {}
    for item in slices:
        metadata = item.get("metadata") or {}
        name = (metadata.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if name:
            grouped.setdefault((metadata.get("namespace") or "", name), []).append(item)
    return grouped


def health(service: dict, slices: list[dict]) -> Health:
    """The list's health cell: endpoints that are ready and serve at least one port, out of all endpoints."""
    spec = service.get("spec") or {}
    if spec.get("type") == m.EXTERNAL_NAME or (not spec.get("selector") and not slices):
        return Health(applicable=False)
    endpoints: dict[str, bool] = {}
    for item in slices:
        serves = bool(item.get("ports"))
        for endpoint in item.get("endpoints") or []:
            key = _endpoint_key(endpoint)
            endpoints[key] = endpoints.get(key, False) or (serves and _is_ready(endpoint))
    return Health(ready=sum(endpoints.values()), total=len(endpoints))


# --- why no traffic ---------------------------------------------------------------------------------------------


@dataclass
class PortTraffic:
    """One Service port: how many endpoints serve it, and why the others do not."""

    label: str  # "http 80 → 8080/TCP"
    ready: int
    total: int
    reasons: list[str] = field(default_factory=list)


def _failing_condition(pod: dict) -> str:
    conditions = {c.get("type"): c for c in (pod.get("status") or {}).get("conditions") or []}
    for kind in POD_CONDITIONS:
        condition = conditions.get(kind)
        if condition is not None and condition.get("status") != "True":
            detail = " — ".join(part for part in (condition.get("reason"), condition.get("message")) if part)
            return f"{kind}={condition.get('status')}" + (f" ({detail})" if detail else "")
    if not conditions:
        return _("the pod reports no conditions yet (phase %(phase)s)") % {
            "phase": (pod.get("status") or {}).get("phase") or "Pending"
        }
    return "Ready=False"


def _named_ports(pod: dict) -> set[str]:
    return {
        port["name"]
        for container in (pod.get("spec") or {}).get("containers") or []
        for port in container.get("ports") or []
        if port.get("name")
    }


def port_label(port: dict) -> str:
    target = port.get("targetPort", port.get("port"))
    name = f"{port['name']} " if port.get("name") else ""
    return f"{name}{port.get('port')} → {target}/{port.get('protocol', 'TCP')}"


def traffic(service: dict, pods: list[dict], slices: list[dict]) -> list[PortTraffic]:
    """Per port of the Service: ready endpoints out of the pods it selects, and a reason for every pod (or the
    Service as a whole) that gets no traffic on it."""
    spec = service.get("spec") or {}
    ports = spec.get("ports") or []
    result = []
    for port in ports:
        result.append(_port_traffic(spec, port, len(ports), pods, slices))
    return result


def _port_traffic(spec: dict, port: dict, port_count: int, pods: list[dict], slices: list[dict]) -> PortTraffic:
    label = port_label(port)
    # A slice names its ports as the Service does; with a single unnamed port both names are empty.
    carrying = [
        s for s in slices if any((p.get("name") or "") == (port.get("name") or "") for p in s.get("ports") or [])
    ]
    serving = {_endpoint_key(e) for s in carrying for e in s.get("endpoints") or [] if _is_ready(e)}
    if not spec.get("selector"):
        reasons = [] if serving else [_("The Service has no selector, and no EndpointSlice names an address for it.")]
        return PortTraffic(label, len(serving), len(serving), reasons)
    if not pods:
        return PortTraffic(label, 0, 0, [_("The selector matches no pod in this namespace.")])
    reasons: list[str] = []
    target = port.get("targetPort", port.get("port"))
    listed = {_endpoint_key(e) for s in slices for e in s.get("endpoints") or []}
    for pod in pods:
        metadata = pod.get("metadata") or {}
        name = metadata.get("name", "")
        if metadata.get("uid") in serving or name in serving:
            continue
        if metadata.get("deletionTimestamp"):
            reasons.append(_("Pod %(pod)s is terminating.") % {"pod": name})
        elif isinstance(target, str) and target not in _named_ports(pod):
            reasons.append(_("Pod %(pod)s has no container port named “%(port)s”.") % {"pod": name, "port": target})
        elif not _pod_ready(pod):
            reasons.append(
                _("Pod %(pod)s is not Ready: %(condition)s.") % {"pod": name, "condition": _failing_condition(pod)}
            )
        elif metadata.get("uid") not in listed and name not in listed:
            reasons.append(
                _("Pod %(pod)s is Ready but in no EndpointSlice yet (the EndpointSlice controller has not caught up).")
                % {"pod": name}
            )
        else:
            reasons.append(_("Pod %(pod)s is listed but not ready to serve this port.") % {"pod": name})
    if not slices and not reasons:
        reasons.append(_("No EndpointSlice exists for this Service yet."))
    return PortTraffic(label, len(serving), len(pods), reasons)


def _pod_ready(pod: dict) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


# --- a pending load balancer -----------------------------------------------------------------------------------


def _label_selector_matches(selector: dict, labels: dict[str, str]) -> bool:
    """A Kubernetes LabelSelector (matchLabels and matchExpressions) against ``labels``."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def _pool_ranges(pool: dict) -> list[tuple[int, int, int]]:
    """An IPAddressPool's addresses as (IP version, first, last) integer ranges, from its CIDRs and "a-b" ranges;
    an entry that cannot be read is left out."""
    ranges = []
    for entry in (pool.get("spec") or {}).get("addresses") or []:
        try:
            if "-" in entry:
                first, last = (ipaddress.ip_address(part.strip()) for part in entry.split("-", 1))
                if first.version == last.version and int(first) <= int(last):
                    ranges.append((first.version, int(first), int(last)))
            else:
                network = ipaddress.ip_network(entry.strip(), strict=False)
                ranges.append((network.version, int(network.network_address), int(network.broadcast_address)))
        except ValueError:
            continue
    return ranges


def pool_size(pool: dict) -> int:
    """How many addresses an IPAddressPool holds."""
    return sum(last - first + 1 for _version, first, last in _pool_ranges(pool))


def pool_contains(pool: dict, address: str) -> bool:
    try:
        wanted = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(
        version == wanted.version and first <= int(wanted) <= last for version, first, last in _pool_ranges(pool)
    )


@dataclass(frozen=True)
class LoadBalancerContext:
    """What the pending-address explanation needs besides the Service: the MetalLB pools (None: no MetalLB in the
    cluster), the namespace's labels, and the load balancer addresses in use across the cluster."""

    pools: list[dict] | None
    namespace_labels: dict[str, str]
    addresses_in_use: frozenset[str]


def requested_addresses(service: dict) -> list[str]:
    annotations = (service.get("metadata") or {}).get("annotations") or {}
    listed = annotations.get(m.METALLB_IPS) or annotations.get(m.LEGACY_METALLB_IPS) or ""
    wanted = [part.strip() for part in listed.split(",") if part.strip()]
    legacy = (service.get("spec") or {}).get("loadBalancerIP")
    return wanted or ([legacy] if legacy else [])


def pool_serves_namespace(pool: dict, namespace: str, namespace_labels: dict[str, str]) -> bool:
    allocation = (pool.get("spec") or {}).get("serviceAllocation") or {}
    namespaces = allocation.get("namespaces") or []
    selectors = allocation.get("namespaceSelectors") or []
    if not (namespaces or selectors) or namespace in namespaces:
        return True
    return any(_label_selector_matches(selector, namespace_labels) for selector in selectors)


def pool_serves_service(pool: dict, service_labels: dict[str, str]) -> bool:
    selectors = ((pool.get("spec") or {}).get("serviceAllocation") or {}).get("serviceSelectors") or []
    return not selectors or any(_label_selector_matches(selector, service_labels) for selector in selectors)


def pool_serves(pool: dict, namespace: str, namespace_labels: dict[str, str], service_labels: dict[str, str]) -> bool:
    return pool_serves_namespace(pool, namespace, namespace_labels) and pool_serves_service(pool, service_labels)


def load_balancer_reasons(service: dict, context: LoadBalancerContext) -> list[str]:
    """Why a LoadBalancer Service has (or, before it is created, will have) no address. Empty when nothing is
    known to stand in the way. Other namespaces are never named: a pool's own list of namespaces is not shown."""
    spec, metadata = service.get("spec") or {}, service.get("metadata") or {}
    if spec.get("type") != m.LOAD_BALANCER:
        return []
    namespace = metadata.get("namespace", "")
    annotations = metadata.get("annotations") or {}
    lb_class = spec.get("loadBalancerClass")
    if lb_class and lb_class != "metallb.io/metallb":
        return [
            _(
                "It asks for load balancer class “%(class)s”: only a controller of that class assigns its address; "
                "the console cannot see one."
            )
            % {"class": lb_class}
        ]
    if context.pools is None:
        return [
            _(
                "No load balancer controller was found in this cluster (MetalLB is not installed), so no address is assigned."
            )
        ]
    pools = {(p.get("metadata") or {}).get("name"): p for p in context.pools}
    chosen = annotations.get(m.METALLB_POOL) or annotations.get(m.LEGACY_METALLB_POOL) or ""
    service_labels = metadata.get("labels") or {}
    reasons: list[str] = []
    if chosen:
        pool = pools.get(chosen)
        if pool is None:
            return [_("The MetalLB pool “%(pool)s” does not exist.") % {"pool": chosen}]
        candidates = [pool]
        if not pool_serves_namespace(pool, namespace, context.namespace_labels):
            reasons.append(
                _("The MetalLB pool “%(pool)s” does not serve namespace “%(namespace)s” (its serviceAllocation).")
                % {"pool": chosen, "namespace": namespace}
            )
        elif not pool_serves_service(pool, service_labels):
            reasons.append(
                _(
                    "The MetalLB pool “%(pool)s” serves only Services with certain labels, and this one has none of them."
                )
                % {"pool": chosen}
            )
    else:
        candidates = [
            p
            for p in pools.values()
            if (p.get("spec") or {}).get("autoAssign", True)
            and pool_serves(p, namespace, context.namespace_labels, service_labels)
        ]
        if not pools:
            return [_("MetalLB has no IPAddressPool, so no address can be assigned.")]
        if not candidates:
            return [
                _("No MetalLB pool assigns addresses automatically to Services in namespace “%(namespace)s”.")
                % {"namespace": namespace}
            ]
    for address in requested_addresses(service):
        if not any(pool_contains(p, address) for p in candidates):
            reasons.append(
                _("The requested address %(address)s is not in %(pools)s.")
                % {
                    "address": address,
                    "pools": ", ".join(f"“{(p.get('metadata') or {}).get('name')}”" for p in candidates),
                }
            )
    own = {i.get("ip") for i in ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []}
    for pool in candidates:
        size = pool_size(pool)
        used = sum(1 for a in context.addresses_in_use - own if pool_contains(pool, a))
        if size and used >= size:
            reasons.append(
                _("The MetalLB pool “%(pool)s” has no free address (%(used)d of %(size)d in use).")
                % {"pool": (pool.get("metadata") or {}).get("name"), "used": used, "size": size}
            )
    return reasons


def dns_name(service: dict, cluster_domain: str) -> str:
    metadata = service.get("metadata") or {}
    return f"{metadata.get('name', '')}.{metadata.get('namespace', '')}.svc.{cluster_domain}"


def slim_endpoint_slice(item: dict) -> dict[str, Any]:
    """What health and the explanations need of an EndpointSlice (for the namespace's informer)."""
    metadata = item.get("metadata") or {}
    return {
        "metadata": {
            "name": metadata.get("name"),
            "namespace": metadata.get("namespace"),
            "uid": metadata.get("uid"),
            "resourceVersion": metadata.get("resourceVersion"),
            "labels": {SERVICE_NAME_LABEL: (metadata.get("labels") or {}).get(SERVICE_NAME_LABEL, "")},
        },
        "ports": item.get("ports") or [],
        "endpoints": [
            {
                "addresses": endpoint.get("addresses") or [],
                "conditions": endpoint.get("conditions") or {},
                "targetRef": {
                    key: value for key, value in (endpoint.get("targetRef") or {}).items() if key in ("name", "uid")
                },
            }
            for endpoint in item.get("endpoints") or []
        ],
    }
