"""Nothing lost, as a property of the pure manifest code: for any Service a cluster may hold, an edit that changes
nothing writes it back exactly as it was, also when the values come back the way a browser sends them (line
breaks as CRLF, lists re-joined, a DNS name without its final dot); and an edit that changes one thing changes
only that."""

from __future__ import annotations

import copy
import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from services import manifest as m

NAMES = st.from_regex(r"[a-z]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
KEYS = st.one_of(
    NAMES,
    st.builds(lambda prefix, name: f"{prefix}/{name}", st.sampled_from(["example.com", "app.kubernetes.io"]), NAMES),
    st.sampled_from(
        [
            "kubectl.kubernetes.io/last-applied-configuration",
            "service.beta.kubernetes.io/aws-load-balancer-type",
            "getambassador.io/config",
            "prometheus.io/scrape",
        ]
    ),
)
# Annotation values: anything, with line breaks of every kind, surrounding blanks, JSON, a NUL.
VALUES = st.one_of(
    st.text(max_size=30),
    st.lists(st.text(alphabet="ab: -", max_size=8), min_size=2, max_size=4).map("\n".join),
    st.lists(st.text(alphabet="xy", max_size=5), min_size=2, max_size=3).map("\r\n".join),
    st.sampled_from(["", " padded ", "trailing\n", '{"a": 1}\n', "nul\x00inside", "\tTab"]),
)
LABEL_VALUES = st.from_regex(r"([a-z0-9]([a-z0-9._-]{0,20}[a-z0-9])?)?", fullmatch=True)


@st.composite
def ports(draw, service_type: str) -> list[dict]:
    count = draw(st.integers(0 if service_type == m.EXTERNAL_NAME else 1, 3))
    result = []
    for index in range(count):
        port = {"port": 80 + index, "protocol": draw(st.sampled_from(["TCP", "UDP", "SCTP"]))}
        if count > 1 or draw(st.booleans()):
            port["name"] = f"p{index}"
        port["targetPort"] = draw(st.one_of(st.integers(1, 65535), st.sampled_from(["http", "metrics"])))
        if service_type in (m.NODE_PORT, m.LOAD_BALANCER):
            port["nodePort"] = 30000 + index
        if draw(st.booleans()):
            port["appProtocol"] = draw(st.sampled_from(["http", "kubernetes.io/h2c"]))
        result.append(port)
    return result


@st.composite
def live_services(draw) -> dict:
    service_type = draw(st.sampled_from(m.SERVICE_TYPES))
    annotations = draw(st.dictionaries(KEYS, VALUES, max_size=5))
    if service_type == m.LOAD_BALANCER and draw(st.booleans()):
        annotations[draw(st.sampled_from([m.LEGACY_METALLB_POOL, m.METALLB_POOL]))] = "public"
        if draw(st.booleans()):
            annotations[m.LEGACY_METALLB_IPS] = draw(st.sampled_from(["192.0.2.1", "192.0.2.1, 2001:db8::1"]))
    spec: dict = {"type": service_type, "ports": draw(ports(service_type))}
    if service_type == m.EXTERNAL_NAME:
        spec["externalName"] = draw(st.sampled_from(["db.example.com", "db.example.com."]))
    else:
        spec |= {"clusterIP": "10.0.0.9", "clusterIPs": ["10.0.0.9"], "ipFamilies": ["IPv4"]}
        spec["ipFamilyPolicy"] = draw(st.sampled_from(["SingleStack", "PreferDualStack"]))
        spec["internalTrafficPolicy"] = draw(st.sampled_from(["Cluster", "Local"]))
        spec["sessionAffinity"] = draw(st.sampled_from(["None", "ClientIP"]))
        if spec["sessionAffinity"] == "ClientIP":
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": draw(st.integers(1, 86400))}}
        if draw(st.booleans()):
            spec["selector"] = draw(st.dictionaries(NAMES, LABEL_VALUES, min_size=1, max_size=3))
        if draw(st.booleans()):
            spec["trafficDistribution"] = draw(st.sampled_from(["PreferClose", "PreferSameZone", "Future"]))
        if draw(st.booleans()):
            spec["externalIPs"] = ["192.0.2.50"]
        if draw(st.booleans()):
            spec["publishNotReadyAddresses"] = True
    if service_type in (m.NODE_PORT, m.LOAD_BALANCER):
        spec["externalTrafficPolicy"] = draw(st.sampled_from(["Cluster", "Local"]))
    if service_type == m.LOAD_BALANCER:
        spec["allocateLoadBalancerNodePorts"] = draw(st.booleans())
        if draw(st.booleans()):
            spec["loadBalancerSourceRanges"] = [" 10.0.0.0/8", "192.0.2.0/24 "]
        if draw(st.booleans()):
            spec["loadBalancerClass"] = "example.com/lb"
        if spec["externalTrafficPolicy"] == "Local":
            spec["healthCheckNodePort"] = 32000
        if not any(key in annotations for key in m.METALLB_KEYS) and draw(st.booleans()):
            spec["loadBalancerIP"] = "192.0.2.7"
    if draw(st.booleans()):
        spec["aFieldOfANewerRelease"] = {"kept": True}
    metadata = {
        "name": draw(NAMES),
        "namespace": "shop",
        "uid": "u-1",
        "resourceVersion": "41",
        "labels": draw(st.dictionaries(KEYS, LABEL_VALUES, max_size=3)),
        "annotations": annotations,
    }
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


def as_a_browser_sends_it(spec: m.ServiceSpec) -> m.ServiceSpec:
    """The spec as the form gives it back from a browser: textarea line breaks as CRLF, addresses re-joined, a
    DNS name's final dot dropped, lists trimmed."""
    return dataclasses.replace(
        spec,
        annotations={key: m.unified_newlines(value).replace("\n", "\r\n") for key, value in spec.annotations.items()},
        lb_address=", ".join(part.strip() for part in spec.lb_address.split(",")) if spec.lb_address else "",
        external_name=(spec.external_name or "").rstrip("."),
        load_balancer_source_ranges=[item.strip() for item in spec.load_balancer_source_ranges],
        ports=[dataclasses.replace(port, target_port=str(port.target_port)) for port in spec.ports],
    )


def written(live: dict) -> dict:
    return {**copy.deepcopy(live), "metadata": {**live["metadata"], "resourceVersion": "41"}}


@given(live_services())
def test_an_unchanged_edit_writes_the_service_back_exactly(live: dict) -> None:
    assert m.apply_to_live(live, m.spec_from_service(live), "41") == written(live)


@given(live_services())
def test_values_a_browser_gives_back_differently_are_kept_as_they_were(live: dict) -> None:
    spec = as_a_browser_sends_it(m.spec_from_service(live))
    assert m.apply_to_live(live, spec, "41") == written(live)


@given(live_services(), NAMES, st.text(min_size=1, max_size=10))
def test_a_new_annotation_changes_only_that_annotation(live: dict, key: str, value: str) -> None:
    spec = m.spec_from_service(live)
    key = f"example.org/{key}"
    result = m.apply_to_live(live, dataclasses.replace(spec, annotations={**spec.annotations, key: value}), "41")
    expected = written(live)
    expected["metadata"]["annotations"] = {**live["metadata"]["annotations"], key: value}
    assert result == expected


@given(live_services())
def test_a_changed_pool_replaces_metallbs_legacy_keys(live: dict) -> None:
    spec = m.spec_from_service(live)
    if spec.type != m.LOAD_BALANCER or spec.lb_type != m.METALLB:
        return
    result = m.apply_to_live(live, dataclasses.replace(spec, metallb_pool="other-pool"), "41")
    annotations = result["metadata"]["annotations"]
    assert annotations[m.METALLB_POOL] == "other-pool"
    assert m.LEGACY_METALLB_POOL not in annotations and m.LEGACY_METALLB_IPS not in annotations
    if spec.lb_address:
        assert annotations[m.METALLB_IPS] == spec.lb_address  # unchanged, so as it was written


def test_a_type_change_to_cluster_ip_drops_the_node_ports_and_load_balancer_fields() -> None:
    live = {
        "metadata": {"name": "web", "namespace": "shop", "annotations": {m.LEGACY_METALLB_POOL: "public"}},
        "spec": {
            "type": m.LOAD_BALANCER,
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080, "targetPort": 80}],
            "externalTrafficPolicy": "Local",
            "healthCheckNodePort": 32000,
            "allocateLoadBalancerNodePorts": True,
            "clusterIP": "10.0.0.9",
        },
    }
    result = m.apply_to_live(live, dataclasses.replace(m.spec_from_service(live), type=m.CLUSTER_IP), "41")
    assert result["spec"] == {
        "type": m.CLUSTER_IP,
        "ports": [{"protocol": "TCP", "port": 80, "targetPort": 80}],
        "clusterIP": "10.0.0.9",
    }
    assert result["metadata"]["annotations"] == {}
