"""Service manifests to and from the form's data: pure functions, no I/O.

``ServiceSpec`` is what the form owns. ``build_service_manifest`` turns it into a new Service; ``apply_to_live``
writes it onto a live object, changing only the owned fields so foreign annotations, clusterIP(s), ipFamilies and
everything else survive an edit; ``spec_from_service`` reads a live object back into the form.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

CLUSTER_IP, NODE_PORT, LOAD_BALANCER, EXTERNAL_NAME = "ClusterIP", "NodePort", "LoadBalancer", "ExternalName"
SERVICE_TYPES = (CLUSTER_IP, NODE_PORT, LOAD_BALANCER, EXTERNAL_NAME)
METALLB, OTHER_LB = "metallb", "other"

METALLB_POOL = "metallb.io/address-pool"
METALLB_IPS = "metallb.io/loadBalancerIPs"
LEGACY_METALLB_POOL = "metallb.universe.tf/address-pool"
LEGACY_METALLB_IPS = "metallb.universe.tf/loadBalancerIPs"
METALLB_KEYS = (METALLB_POOL, METALLB_IPS, LEGACY_METALLB_POOL, LEGACY_METALLB_IPS)
DEFAULT_SESSION_TIMEOUT = 30

# spec.trafficDistribution. PreferClose is the deprecated name of PreferSameZone (Kubernetes 1.33): the API server
# still accepts it, with a warning.
PREFER_SAME_ZONE, PREFER_SAME_NODE, PREFER_CLOSE = "PreferSameZone", "PreferSameNode", "PreferClose"

# Fields that only mean something for a LoadBalancer; an edit to another type removes them.
_LOAD_BALANCER_ONLY = (
    "loadBalancerIP",
    "loadBalancerClass",
    "loadBalancerSourceRanges",
    "allocateLoadBalancerNodePorts",
    "healthCheckNodePort",
)


_NUMBER = re.compile(r"-?[0-9]+")


def parse_number(text: object, max_digits: int = 12) -> int | None:
    """``text`` as an int when it is a plain ASCII number of at most ``max_digits`` digits, else None.

    ``str.isdigit`` accepts "²" (which ``int`` refuses) and ``int`` accepts "٣" and refuses more than 4300 digits;
    every number the console reads from a person or a URL goes through here instead, so none of those reach
    ``int``."""
    if isinstance(text, bool):
        return None
    if isinstance(text, int):
        return text
    if not isinstance(text, str):
        return None
    text = text.strip()
    if len(text.removeprefix("-")) > max_digits or not _NUMBER.fullmatch(text):
        return None
    return int(text)


@dataclass
class PortSpec:
    port: int
    protocol: str = "TCP"
    name: str = ""
    target_port: int | str | None = None  # None: the API server defaults it to ``port``
    node_port: int | None = None  # None: allocated by the API server


@dataclass
class ServiceSpec:
    name: str
    namespace: str
    type: str = CLUSTER_IP
    selector: dict[str, str] = field(default_factory=dict)
    ports: list[PortSpec] = field(default_factory=list)
    session_affinity: bool = False
    session_timeout: int = DEFAULT_SESSION_TIMEOUT
    annotations: dict[str, str] = field(default_factory=dict)
    external_traffic_policy: str = "Cluster"
    lb_type: str = METALLB
    metallb_pool: str = ""
    lb_address: str = ""
    # The advanced section. Empty means "let the API server default it".
    internal_traffic_policy: str = ""
    ip_family_policy: str = ""
    load_balancer_class: str = ""
    load_balancer_source_ranges: list[str] = field(default_factory=list)
    traffic_distribution: str = ""
    publish_not_ready_addresses: bool = False
    # The Service's own labels. None means they were not offered (a spec not made by the form), so an edit leaves
    # the live ones alone; the form offers every label, so an edit that does not touch them writes them unchanged.
    labels: dict[str, str] | None = None
    # Cluster Admin only (externalIPs and ExternalName can redirect other tenants' traffic). None means the form
    # did not offer the field, so an edit leaves the live value alone.
    external_ips: list[str] | None = None
    headless: bool | None = None
    external_name: str | None = ""  # None: not offered (Cluster Admins only), so an edit keeps the live one


def is_form_annotation(key: str, value: str = "") -> bool:
    """Whether the form's annotation rows show ``key``: not MetalLB's (the LB fields own those), not the tools'
    own bookkeeping under kubernetes.io / k8s.io, and not a value a browser cannot carry back as it is (a NUL
    becomes U+FFFD when HTML is parsed): an edit keeps those untouched."""
    if key in METALLB_KEYS or "\x00" in value:
        return False
    prefix = key.split("/", 1)[0] if "/" in key else ""
    return not (prefix.endswith(("kubernetes.io", "k8s.io")))


def _port_manifest(port: PortSpec, service_type: str) -> dict[str, Any]:
    manifest: dict[str, Any] = {"protocol": port.protocol, "port": port.port}
    if port.name:
        manifest["name"] = port.name
    if port.target_port not in (None, ""):
        manifest["targetPort"] = port.target_port
    if service_type != CLUSTER_IP and port.node_port:
        manifest["nodePort"] = port.node_port
    return manifest


def _owned_annotations(spec: ServiceSpec) -> dict[str, str]:
    annotations = dict(spec.annotations)
    if spec.type == LOAD_BALANCER and spec.lb_type == METALLB:
        if spec.metallb_pool:
            annotations[METALLB_POOL] = spec.metallb_pool
        if spec.lb_address:
            annotations[METALLB_IPS] = spec.lb_address
    return annotations


def _owned_spec(spec: ServiceSpec) -> dict[str, Any]:
    owned: dict[str, Any] = {
        "type": spec.type,
        "ports": [_port_manifest(port, spec.type) for port in spec.ports],
    }
    if spec.selector:
        owned["selector"] = dict(spec.selector)
    if spec.session_affinity:
        owned["sessionAffinity"] = "ClientIP"
        owned["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": spec.session_timeout}}
    else:
        owned["sessionAffinity"] = "None"
    if spec.type in (NODE_PORT, LOAD_BALANCER):
        owned["externalTrafficPolicy"] = spec.external_traffic_policy
    if spec.type == LOAD_BALANCER and spec.lb_type == OTHER_LB and spec.lb_address:
        owned["loadBalancerIP"] = spec.lb_address
    if spec.type == LOAD_BALANCER and spec.load_balancer_class:
        owned["loadBalancerClass"] = spec.load_balancer_class
    if spec.type == LOAD_BALANCER and spec.load_balancer_source_ranges:
        owned["loadBalancerSourceRanges"] = list(spec.load_balancer_source_ranges)
    if spec.internal_traffic_policy and spec.type != EXTERNAL_NAME:
        owned["internalTrafficPolicy"] = spec.internal_traffic_policy
    if spec.ip_family_policy and spec.type != EXTERNAL_NAME:
        owned["ipFamilyPolicy"] = spec.ip_family_policy
    if spec.traffic_distribution and spec.type != EXTERNAL_NAME:
        owned["trafficDistribution"] = spec.traffic_distribution
    if spec.publish_not_ready_addresses and spec.type != EXTERNAL_NAME:
        owned["publishNotReadyAddresses"] = True
    if spec.external_ips:
        owned["externalIPs"] = list(spec.external_ips)
    if spec.type == EXTERNAL_NAME:
        owned["externalName"] = spec.external_name
        owned.pop("sessionAffinity", None)
    return owned


def build_service_manifest(spec: ServiceSpec) -> dict[str, Any]:
    """A new ``v1`` Service from the form's data."""
    metadata: dict[str, Any] = {"name": spec.name, "namespace": spec.namespace}
    if spec.labels:
        metadata["labels"] = dict(spec.labels)
    annotations = _owned_annotations(spec)
    if annotations:
        metadata["annotations"] = annotations
    body = _owned_spec(spec)
    if spec.headless and spec.type == CLUSTER_IP:
        body["clusterIP"] = "None"  # headless: DNS returns the pods' addresses; set once, at creation
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": body}


def apply_to_live(
    live: dict[str, Any], spec: ServiceSpec, resource_version: str, *, base: ServiceSpec | None = None
) -> dict[str, Any]:
    """The live Service with the user's changes written over it, ready for a replace (PUT).

    Only what the user changed is written: ``base`` is the spec the form was filled from (by default the live
    Service's own), and a value of ``spec`` that equals it as a browser sends it back (``reconciled``) counts as
    unchanged. The object is then merged three ways (``_merged``): what writing ``base`` would change is not
    written, so whatever the form cannot hold exactly (a legacy MetalLB key, a value's spelling, a field the form
    does not know) stays as it is, byte for byte.

    ``resource_version`` is the version the user's form was loaded from, so a change made meanwhile makes the
    API server answer 409 instead of being overwritten.
    """
    base = spec_from_service(live) if base is None else base
    spec = reconciled(base, spec)
    before, after = _written(live, base), _written(live, spec)
    service = _merged(live, before, after)
    if _metallb(before) != _metallb(after):
        # MetalLB reads its legacy and current keys alike: a changed pool or address replaces them all.
        annotations = {k: v for k, v in (service["metadata"].get("annotations") or {}).items() if k not in METALLB_KEYS}
        service["metadata"]["annotations"] = {**annotations, **_metallb(after)}
    service.setdefault("apiVersion", "v1")
    service.setdefault("kind", "Service")
    service.setdefault("metadata", {})["resourceVersion"] = resource_version
    return service


def _metallb(service: dict[str, Any]) -> dict[str, str]:
    annotations = service.get("metadata", {}).get("annotations") or {}
    return {key: value for key, value in annotations.items() if key in METALLB_KEYS}


_ABSENT = object()


def _merged(live: Any, before: Any, after: Any) -> Any:
    """``live`` with the difference between ``before`` and ``after`` applied (both are ``live`` rewritten): keys
    and values that ``before`` and ``after`` agree on stay exactly as ``live`` has them."""
    if before == after:
        return copy.deepcopy(live)
    if all(isinstance(value, list) for value in (live, before, after)) and all(
        _port_keys(value) is not None for value in (live, before, after)
    ):
        return _merged_ports(live, before, after)
    if not (isinstance(live, dict) and isinstance(before, dict) and isinstance(after, dict)):
        return copy.deepcopy(after)
    merged = copy.deepcopy(live)
    for key in before.keys() | after.keys():
        old, new = before.get(key, _ABSENT), after.get(key, _ABSENT)
        if old == new:
            continue
        if new is _ABSENT:
            merged.pop(key, None)
        elif old is _ABSENT or key not in live:
            merged[key] = copy.deepcopy(new)
        else:
            merged[key] = _merged(live[key], old, new)
    return merged


def _port_keys(ports: list[Any]) -> list[tuple[Any, Any]] | None:
    """The ports' identities, (port, protocol), when the list is one of distinct ports; else None."""
    if not all(isinstance(port, dict) and "port" in port for port in ports):
        return None
    keys = [(port["port"], port.get("protocol", "TCP")) for port in ports]
    return keys if len(set(keys)) == len(keys) else None


def _merged_ports(live: list[dict], before: list[dict], after: list[dict]) -> list[dict]:
    """The ports merged port by port: the user's ports in their order (each one the live port with the user's
    changes to it), then the live ports the user never saw (another writer's, after a conflict)."""
    live_by = dict(zip(_port_keys(live), live, strict=True))
    before_by = dict(zip(_port_keys(before), before, strict=True))
    after_by = dict(zip(_port_keys(after), after, strict=True))
    merged = []
    for key, port in after_by.items():
        if key in before_by and key in live_by:
            merged.append(_merged(live_by[key], before_by[key], port))
        elif key not in before_by or before_by[key] != port:  # new, or changed by the user and removed meanwhile
            merged.append(copy.deepcopy(port))
    unseen = [port for key, port in live_by.items() if key not in before_by and key not in after_by]
    return merged + copy.deepcopy(unseen)


def unified_newlines(text: str) -> str:
    """``text`` with every line break as LF: a browser sends a textarea's back as CRLF, so a value whose only
    difference is how its lines end compares equal."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _words(value: Any) -> list[str]:
    """A list or a separated string as its items: "10.0.0.1, 10.0.0.2" and ["10.0.0.1", "10.0.0.2"] agree."""
    items = value if isinstance(value, list | tuple) else str(value or "").replace(",", " ").split()
    return [str(item).strip() for item in items if str(item).strip()]


def _same(name: str, old: Any, new: Any) -> bool:
    """Whether a spec field's new value is the old one as the form gives it back (trimmed, re-joined, its line
    breaks and a DNS name's final dot aside)."""
    if name in ("lb_address", "load_balancer_source_ranges", "external_ips"):
        return _words(old) == _words(new)
    if name == "external_name":
        return str(old or "").strip().rstrip(".") == str(new or "").strip().rstrip(".")
    if isinstance(old, str) and isinstance(new, str):
        return unified_newlines(old).strip() == unified_newlines(new).strip()
    if isinstance(old, int | str) and isinstance(new, int | str) and not isinstance(old, bool | None):
        return str(old) == str(new)
    return old == new


def _reconciled_values(old: dict[str, str], new: dict[str, str], *, exact: bool = True) -> dict[str, str]:
    """``new`` with each value that is ``old``'s but for its line breaks (``exact``) or surrounding white space
    given back as ``old`` has it."""
    same = (lambda a, b: unified_newlines(a) == unified_newlines(b)) if exact else (lambda a, b: a.strip() == b.strip())
    return {key: old[key] if key in old and same(old[key], value) else value for key, value in new.items()}


def reconciled(base: ServiceSpec, spec: ServiceSpec) -> ServiceSpec:
    """``spec`` with every value that equals ``base``'s as a browser sends it back replaced by ``base``'s own, and
    every field the form did not offer (None) taken from ``base``: what the user did not change is unchanged."""
    values: dict[str, Any] = {}
    for item in dataclasses.fields(ServiceSpec):
        old, new = getattr(base, item.name), getattr(spec, item.name)
        if new is None and item.name in _OPTIONAL:
            values[item.name] = old
        elif item.name == "annotations":
            values[item.name] = _reconciled_values(old, new)
        elif item.name in ("labels", "selector") and old is not None and new is not None:
            values[item.name] = _reconciled_values(old, new, exact=False)
        elif item.name == "ports":
            values[item.name] = [
                _reconciled_port(old[index], port) if index < len(old) else port for index, port in enumerate(new)
            ]
        elif item.name not in ("labels", "selector") and _same(item.name, old, new):
            values[item.name] = old
        else:
            values[item.name] = new
    return ServiceSpec(**values)


_OPTIONAL = ("labels", "external_ips", "headless", "external_name")  # None: not offered by the form


def _reconciled_port(old: PortSpec, new: PortSpec) -> PortSpec:
    values = {
        item.name: getattr(old, item.name)
        if _same(item.name, getattr(old, item.name), getattr(new, item.name))
        else getattr(new, item.name)
        for item in dataclasses.fields(PortSpec)
    }
    return PortSpec(**values)


def _written(live: dict[str, Any], spec: ServiceSpec) -> dict[str, Any]:
    """The live Service with every field the form owns written from ``spec`` (what an edit changed or not)."""
    service = copy.deepcopy(live)
    metadata = service.setdefault("metadata", {})
    kept = {
        key: value for key, value in (metadata.get("annotations") or {}).items() if not is_form_annotation(key, value)
    }
    for key in METALLB_KEYS:
        kept.pop(key, None)
    metadata["annotations"] = {**kept, **_owned_annotations(spec)}
    if spec.labels is not None:
        if spec.labels:
            metadata["labels"] = dict(spec.labels)
        else:
            metadata.pop("labels", None)

    target = service.setdefault("spec", {})
    previous_ports = {(p.get("port"), p.get("protocol", "TCP")): p for p in target.get("ports") or []}
    owned = _owned_spec(spec)
    for port in owned["ports"]:
        # Keep what the form does not show (appProtocol) for a port that is still there.
        before = previous_ports.get((port["port"], port["protocol"]))
        if before and before.get("appProtocol"):
            port["appProtocol"] = before["appProtocol"]
    target.update(owned)
    if not spec.selector:
        target.pop("selector", None)
    if not spec.session_affinity:
        target.pop("sessionAffinityConfig", None)
    if spec.type not in (NODE_PORT, LOAD_BALANCER):
        target.pop("externalTrafficPolicy", None)
    if spec.type != LOAD_BALANCER:
        for key in _LOAD_BALANCER_ONLY:
            target.pop(key, None)
    else:
        if spec.lb_type == METALLB or not spec.lb_address:
            target.pop("loadBalancerIP", None)
        if not spec.load_balancer_source_ranges:
            target.pop("loadBalancerSourceRanges", None)
    if spec.type != EXTERNAL_NAME:
        target.pop("externalName", None)
    if "trafficDistribution" not in owned:
        target.pop("trafficDistribution", None)
    if "publishNotReadyAddresses" not in owned:
        target.pop("publishNotReadyAddresses", None)
    if spec.external_ips is not None and not spec.external_ips:
        target.pop("externalIPs", None)
    return service


def _int_or_name(value: Any) -> int | str | None:
    if value is None or value == "":
        return None
    number = parse_number(value, max_digits=5)
    return number if number is not None else str(value)


def spec_from_service(service: dict[str, Any]) -> ServiceSpec:
    """Read a live Service (as the API's JSON) into the form's data."""
    metadata, body = service.get("metadata", {}), service.get("spec", {})
    annotations = metadata.get("annotations") or {}
    service_type = body.get("type", CLUSTER_IP)
    pool = annotations.get(METALLB_POOL) or annotations.get(LEGACY_METALLB_POOL) or ""
    metallb_ips = annotations.get(METALLB_IPS) or annotations.get(LEGACY_METALLB_IPS) or ""
    uses_metallb = bool(pool or metallb_ips) or not body.get("loadBalancerIP")
    affinity_config = (body.get("sessionAffinityConfig") or {}).get("clientIP") or {}
    return ServiceSpec(
        name=metadata.get("name", ""),
        namespace=metadata.get("namespace", ""),
        type=service_type if service_type in SERVICE_TYPES else CLUSTER_IP,
        selector=dict(body.get("selector") or {}),
        ports=[
            PortSpec(
                port=port.get("port"),
                protocol=port.get("protocol", "TCP"),
                name=port.get("name", ""),
                target_port=_int_or_name(port.get("targetPort")),
                node_port=port.get("nodePort") if service_type != CLUSTER_IP else None,
            )
            for port in body.get("ports") or []
        ],
        session_affinity=body.get("sessionAffinity") == "ClientIP",
        session_timeout=affinity_config.get("timeoutSeconds") or DEFAULT_SESSION_TIMEOUT,
        annotations={key: value for key, value in annotations.items() if is_form_annotation(key, value)},
        external_traffic_policy=body.get("externalTrafficPolicy") or "Cluster",
        lb_type=METALLB if uses_metallb else OTHER_LB,
        metallb_pool=pool,
        lb_address=metallb_ips if uses_metallb else body.get("loadBalancerIP", ""),
        internal_traffic_policy=body.get("internalTrafficPolicy", ""),
        ip_family_policy=body.get("ipFamilyPolicy", ""),
        load_balancer_class=body.get("loadBalancerClass", ""),
        load_balancer_source_ranges=list(body.get("loadBalancerSourceRanges") or []),
        traffic_distribution=body.get("trafficDistribution") or "",
        publish_not_ready_addresses=body.get("publishNotReadyAddresses") is True,
        labels=dict(metadata.get("labels") or {}),
        external_ips=list(body.get("externalIPs") or []),
        headless=body.get("clusterIP") == "None",
        external_name=body.get("externalName", ""),
    )


# What the API server sets on a Service. A YAML create carrying them (say, the YAML of another Service, copied from
# its page to make a similar one) would be refused with an internal error, so they are left out.
SERVER_SET_METADATA = ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation", "selfLink")


def without_server_fields(document: dict[str, Any]) -> dict[str, Any]:
    """A Service document to create: without the metadata the API server sets, and without status."""
    document = {key: value for key, value in document.items() if key != "status"}
    metadata = document.get("metadata")
    if isinstance(metadata, dict):
        document["metadata"] = {key: value for key, value in metadata.items() if key not in SERVER_SET_METADATA}
    return document


def access_addresses(service: dict[str, Any], node_ips: list[str]) -> list[str]:
    """How to reach a Service: clusterIP:port, nodeIP:nodePort for the first node, LB ingress addresses."""
    body, status = service.get("spec", {}), service.get("status", {})
    ports = body.get("ports") or []
    addresses: list[str] = []
    cluster_ip = body.get("clusterIP")
    if cluster_ip and cluster_ip != "None":
        addresses += [f"{cluster_ip}:{p['port']}" for p in ports]
    if node_ips and body.get("type") in (NODE_PORT, LOAD_BALANCER):
        addresses += [f"{node_ips[0]}:{p['nodePort']}" for p in ports if p.get("nodePort")]
    if body.get("type") == LOAD_BALANCER:
        ingress = (status.get("loadBalancer") or {}).get("ingress") or []
        addresses += [f"{i.get('ip') or i.get('hostname')}:{p['port']}" for i in ingress for p in ports]
    return addresses


def without_invented_node_ports(stored: dict[str, Any], sent: dict[str, Any], placeholder: str) -> dict[str, Any]:
    """A dry run's answer with the node ports the API server picked for ports that asked for none (and a health
    check node port nobody asked for) shown as ``placeholder``: the real write picks others."""
    shown = copy.deepcopy(stored)
    body, asked = shown.get("spec") or {}, (sent.get("spec") or {})
    asked_ports = {(p.get("port"), p.get("protocol", "TCP")): p for p in asked.get("ports") or []}
    for port in body.get("ports") or []:
        wanted = asked_ports.get((port.get("port"), port.get("protocol", "TCP"))) or {}
        if port.get("nodePort") and not wanted.get("nodePort"):
            port["nodePort"] = placeholder
    if body.get("healthCheckNodePort") and not asked.get("healthCheckNodePort"):
        body["healthCheckNodePort"] = placeholder
    return shown


def load_balancer_pending(service: dict[str, Any]) -> bool:
    return service.get("spec", {}).get("type") == LOAD_BALANCER and not (
        (service.get("status", {}).get("loadBalancer") or {}).get("ingress")
    )


def yaml_of(service: dict[str, Any]) -> str:
    """The Service as YAML for people: apiVersion, kind, metadata without managedFields, spec."""
    metadata = {k: v for k, v in service.get("metadata", {}).items() if k != "managedFields"}
    document = {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": service.get("spec", {})}
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


# Metadata every write changes by itself: a diff of what a person changes leaves them out.
_BOOKKEEPING = ("resourceVersion", "managedFields", "generation")


def _comparable_yaml(service: dict[str, Any]) -> list[str]:
    metadata = {k: v for k, v in service.get("metadata", {}).items() if k not in _BOOKKEEPING}
    document = {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": service.get("spec", {})}
    return yaml.safe_dump(document, sort_keys=True, allow_unicode=True).splitlines()


def yaml_diff(before: dict[str, Any] | None, after: dict[str, Any]) -> list[tuple[str, str]]:
    """A unified YAML diff as (kind, line) pairs, kind being "add", "del", "hunk" or "": keys in one stable order
    on both sides and without the bookkeeping every write changes, so only real differences show."""
    old = _comparable_yaml(before) if before else []
    lines = []
    for line in list(difflib.unified_diff(old, _comparable_yaml(after), lineterm="", n=3))[2:]:
        kind = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "")
        lines.append((kind, line))
    return lines
