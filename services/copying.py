"""A Service made portable: what another cluster or namespace would be asked to create from it. Pure functions, no
I/O; the copy pages (``services.copy_views``) read the source, call these, and let the target's API server judge.

A Service read from a cluster carries what that cluster gave it: its uid, resourceVersion and managed fields, its
cluster IPs and IP families, its node ports, a health-check node port, its load balancer's address and status, and
owner references and finalizers that name objects of that cluster. None of that may travel: the target allocates
its own, and an owner reference to an object the target does not hold would have its garbage collector delete the
copy. What the person wrote stays: labels, annotations, selector, ports, session affinity, traffic policies, and the
rest of the spec.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Any

from services import manifest as m

# Node ports of a copy: the source's numbers where the target cluster has them free and its choice where not (the
# default: a copy in the source's own cluster can never keep them, the source holds them), the source's numbers
# whatever, the target cluster's choice, or numbers given per port.
FREE_NODE_PORTS, KEEP_NODE_PORTS, AUTO_NODE_PORTS, GIVEN_NODE_PORTS = "keep-free", "keep", "auto", "given"
NODE_PORT_MODES = (FREE_NODE_PORTS, KEEP_NODE_PORTS, AUTO_NODE_PORTS, GIVEN_NODE_PORTS)

# MetalLB pool of a copy: the source's annotation, none, or a pool of the target cluster (any other value). Pool
# names are DNS subdomains, which never start with "_", so these cannot be taken for one.
KEEP_POOL, NO_POOL = "_keep", "_none"

# Metadata the source's API server set, or that names objects of the source cluster.
SOURCE_METADATA = (
    *m.SERVER_SET_METADATA,
    "namespace",
    "ownerReferences",
    "finalizers",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
# `kubectl apply`'s record of what was last applied to the source; on the copy it would describe another object.
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# Spec fields the source cluster allocated.
ALLOCATED_SPEC = ("clusterIPs", "ipFamilies", "healthCheckNodePort")


@dataclass(frozen=True)
class Overrides:
    """What one target changes of the source: its name ('' keeps the source's), its node ports (a mode, and with
    GIVEN_NODE_PORTS a number or None for "the cluster picks" per source port, in the source's order), its MetalLB
    pool, and whether the load balancer address it asked for is kept."""

    name: str = ""
    node_ports: str = KEEP_NODE_PORTS
    given_node_ports: tuple[int | None, ...] = ()
    pool: str = KEEP_POOL
    keep_address: bool = False


@dataclass(frozen=True)
class SourceFacts:
    """What the copy form needs to know of the source: which overrides mean anything for it."""

    type: str
    port_labels: tuple[str, ...]
    pool: str
    address: str
    uses_node_ports: bool = field(init=False)
    uses_pool: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "uses_node_ports", self.type in (m.NODE_PORT, m.LOAD_BALANCER))
        object.__setattr__(self, "uses_pool", self.type == m.LOAD_BALANCER)


def source_facts(source: dict[str, Any]) -> SourceFacts:
    """The source Service's type, a label per port ("http 80/TCP → 30080"), its MetalLB pool and the load balancer
    address it asked for ('' when none)."""
    spec = source.get("spec") or {}
    annotations = (source.get("metadata") or {}).get("annotations") or {}
    labels = []
    for port in spec.get("ports") or []:
        label = f"{port.get('port')}/{port.get('protocol', 'TCP')}"
        if port.get("name"):
            label = f"{port['name']} {label}"
        if port.get("nodePort"):
            label += f" → {port['nodePort']}"
        labels.append(label)
    return SourceFacts(
        type=spec.get("type") or m.CLUSTER_IP,
        port_labels=tuple(labels),
        pool=annotations.get(m.METALLB_POOL) or annotations.get(m.LEGACY_METALLB_POOL) or "",
        address=spec.get("loadBalancerIP")
        or annotations.get(m.METALLB_IPS)
        or annotations.get(m.LEGACY_METALLB_IPS)
        or "",
    )


def portable(source: dict[str, Any]) -> dict[str, Any]:
    """The source Service without what its cluster set or allocated (and without status): the person's Service."""
    service = copy.deepcopy(source)
    metadata = {key: value for key, value in (service.get("metadata") or {}).items() if key not in SOURCE_METADATA}
    annotations = {key: value for key, value in (metadata.get("annotations") or {}).items() if key != LAST_APPLIED}
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    spec = {key: value for key, value in (service.get("spec") or {}).items() if key not in ALLOCATED_SPEC}
    if spec.get("clusterIP") != "None":  # "None" is a choice (headless), any address an allocation
        spec.pop("clusterIP", None)
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


def node_ports_where_free(
    source: dict[str, Any], overrides: Overrides, taken: Collection[int], span: tuple[int, int] | None
) -> tuple[Overrides, list[int]]:
    """``FREE_NODE_PORTS`` made concrete for one target cluster, whose Services hold the node ports ``taken`` and
    whose range is ``span`` (None: unknown): per source port, its number where the cluster could give it, else the
    cluster's choice; and the source's node ports that cannot be kept there. Other modes are returned unchanged."""
    if overrides.node_ports != FREE_NODE_PORTS:
        return overrides, []
    given: list[int | None] = []
    moved: list[int] = []
    for port in (source.get("spec") or {}).get("ports") or []:
        number = port.get("nodePort")
        if not isinstance(number, int):
            given.append(None)
        elif number in taken or (span is not None and not span[0] <= number <= span[1]):
            given.append(None)
            moved.append(number)
        else:
            given.append(number)
    return replace(overrides, node_ports=GIVEN_NODE_PORTS, given_node_ports=tuple(given)), moved


def _with_node_ports(spec: dict[str, Any], overrides: Overrides) -> None:
    if spec.get("type") not in (m.NODE_PORT, m.LOAD_BALANCER):
        for port in spec.get("ports") or []:
            port.pop("nodePort", None)
        return
    for index, port in enumerate(spec.get("ports") or []):
        # FREE_NODE_PORTS not made concrete (the target cluster could not say which ports it holds) keeps them: its
        # dry run or create then says which one it refuses.
        if overrides.node_ports in (KEEP_NODE_PORTS, FREE_NODE_PORTS):
            continue
        given = None
        if overrides.node_ports == GIVEN_NODE_PORTS and index < len(overrides.given_node_ports):
            given = overrides.given_node_ports[index]
        if given:
            port["nodePort"] = given
        else:
            port.pop("nodePort", None)


def _with_load_balancer(metadata: dict[str, Any], spec: dict[str, Any], overrides: Overrides) -> None:
    annotations = dict(metadata.get("annotations") or {})
    if spec.get("type") == m.LOAD_BALANCER and overrides.pool != KEEP_POOL:
        annotations.pop(m.METALLB_POOL, None)
        annotations.pop(m.LEGACY_METALLB_POOL, None)
        if overrides.pool != NO_POOL:
            annotations[m.METALLB_POOL] = overrides.pool
    if spec.get("type") != m.LOAD_BALANCER or not overrides.keep_address:
        # An address belongs to the source's network (and to one Service there): asked for again only on request.
        spec.pop("loadBalancerIP", None)
        annotations.pop(m.METALLB_IPS, None)
        annotations.pop(m.LEGACY_METALLB_IPS, None)
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)


def target_manifest(source: dict[str, Any], namespace: str, overrides: Overrides) -> dict[str, Any]:
    """The Service to create in ``namespace`` (of whichever cluster): the portable source with the overrides."""
    service = portable(source)
    kept = service["metadata"]
    # Name and namespace first, where the source has them, so that a diff against the source lines up.
    metadata = {"name": overrides.name or kept.get("name", ""), "namespace": namespace, **kept}
    metadata["name"], metadata["namespace"] = overrides.name or kept.get("name", ""), namespace
    service["metadata"] = metadata
    spec = service["spec"]
    _with_node_ports(spec, overrides)
    _with_load_balancer(metadata, spec, overrides)
    return service


def comparable(service: dict[str, Any]) -> dict[str, Any]:
    """A live Service as a copy would be compared with it: the portable part, in its own namespace. The Service
    that already holds a target's name is shown so, to see what differs in substance rather than allocations."""
    namespace = (service.get("metadata") or {}).get("namespace", "")
    return target_manifest(service, namespace, Overrides(keep_address=True))


def node_ports_of(manifest: dict[str, Any]) -> list[int]:
    """The node ports a manifest asks for (a dry run does not judge them: ``live_checks.node_port_problems`` does)."""
    ports = (manifest.get("spec") or {}).get("ports") or []
    return [port["nodePort"] for port in ports if isinstance(port.get("nodePort"), int)]


def for_diff(service: dict[str, Any]) -> dict[str, Any]:
    """A Service as the diffs show it: without what an API server sets on every object (uid, resourceVersion, ...)
    and without status, so a diff shows what differs in substance."""
    return m.without_server_fields(service)


def split_target(value: str) -> tuple[str, str]:
    """A target choice's value, "cluster/namespace", as its two parts."""
    cluster, _slash, namespace = value.partition("/")
    return cluster, namespace


def target_value(cluster: str, namespace: str) -> str:
    return f"{cluster}/{namespace}"
