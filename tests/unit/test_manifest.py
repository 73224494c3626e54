"""The pure manifest builder: a spec becomes a Service and comes back the same, and an edit writes only the fields
the form owns."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services import manifest as m


def spec(**changes) -> m.ServiceSpec:
    values = {
        "name": "web",
        "namespace": "shop",
        "selector": {"app": "web"},
        "ports": [m.PortSpec(port=80, name="http", target_port=8080), m.PortSpec(port=53, protocol="UDP", name="dns")],
    }
    return m.ServiceSpec(**{**values, **changes})


def stored(manifest: dict) -> dict:
    """The manifest as the API server would return it: with what it sets and defaults."""
    service = copy.deepcopy(manifest)
    service["metadata"] |= {"resourceVersion": "41", "uid": "u-1", "creationTimestamp": "2026-12-03T06:00:00Z"}
    service["spec"] |= {"clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"], "ipFamilies": ["IPv4"]}
    return service


ROUND_TRIPS = [
    spec(),
    spec(type=m.NODE_PORT, ports=[m.PortSpec(port=80, node_port=31000)], external_traffic_policy="Local"),
    spec(session_affinity=True, session_timeout=120, annotations={"example.com/team": "shop"}),
    spec(type=m.LOAD_BALANCER, metallb_pool="public", lb_address="192.0.2.10", load_balancer_class="example.com/lb"),
    spec(type=m.LOAD_BALANCER, lb_type=m.OTHER_LB, lb_address="192.0.2.11", load_balancer_source_ranges=["10.0.0.0/8"]),
    spec(internal_traffic_policy="Local", ip_family_policy="PreferDualStack"),
    spec(traffic_distribution=m.PREFER_SAME_NODE, publish_not_ready_addresses=True, labels={"team": "shop"}),
    spec(type=m.NODE_PORT, traffic_distribution=m.PREFER_CLOSE, labels={"app.kubernetes.io/name": "web"}),
    spec(type=m.LOAD_BALANCER, traffic_distribution=m.PREFER_SAME_ZONE, publish_not_ready_addresses=True),
]


@pytest.mark.parametrize("original", ROUND_TRIPS, ids=lambda s: s.type)
def test_a_spec_survives_the_trip_to_a_manifest_and_back(original: m.ServiceSpec) -> None:
    back = m.spec_from_service(stored(m.build_service_manifest(original)))
    assert back.ports == original.ports
    for name in (
        "name",
        "namespace",
        "type",
        "selector",
        "session_affinity",
        "annotations",
        "metallb_pool",
        "traffic_distribution",
        "publish_not_ready_addresses",
    ):
        assert getattr(back, name) == getattr(original, name), name
    assert back.labels == (original.labels or {})
    assert (back.lb_type, back.lb_address) == (original.lb_type, original.lb_address)
    assert back.load_balancer_source_ranges == original.load_balancer_source_ranges


@given(
    port=st.integers(1, 65535),
    target=st.one_of(st.none(), st.integers(1, 65535), st.from_regex(r"[a-z][a-z0-9]{0,14}", fullmatch=True)),
)
def test_any_port_and_target_port_come_back_as_they_went(port: int, target: int | str | None) -> None:
    original = spec(ports=[m.PortSpec(port=port, target_port=target)])
    assert m.spec_from_service(m.build_service_manifest(original)).ports == original.ports


def test_an_edit_keeps_what_the_form_does_not_own() -> None:
    live = stored(m.build_service_manifest(spec(annotations={"example.com/team": "shop"})))
    live["metadata"]["labels"] = {"app": "web"}
    live["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "3"
    live["spec"]["ports"][0]["appProtocol"] = "http"
    live["spec"]["externalIPs"] = ["192.0.2.60"]
    edited = m.apply_to_live(live, spec(annotations={}, session_affinity=True), "41")
    assert edited["metadata"]["labels"] == {"app": "web"}
    assert edited["metadata"]["annotations"] == {"deployment.kubernetes.io/revision": "3"}
    assert edited["metadata"]["resourceVersion"] == "41"
    assert edited["spec"]["clusterIPs"] == ["10.0.0.7"] and edited["spec"]["ipFamilies"] == ["IPv4"]
    assert edited["spec"]["ports"][0]["appProtocol"] == "http"
    assert edited["spec"]["externalIPs"] == ["192.0.2.60"]  # not offered (external_ips None): kept
    assert edited["spec"]["sessionAffinity"] == "ClientIP"
    assert live["spec"]["ports"][0].get("appProtocol") == "http" and "sessionAffinityConfig" not in live["spec"]


def test_an_edit_to_cluster_ip_drops_node_ports_and_load_balancer_fields() -> None:
    live = stored(
        m.build_service_manifest(
            spec(
                type=m.LOAD_BALANCER,
                lb_type=m.OTHER_LB,
                lb_address="192.0.2.1",
                ports=[m.PortSpec(80, node_port=31000)],
            )
        )
    )
    edited = m.apply_to_live(live, spec(ports=[m.PortSpec(80, node_port=31000)]), "41")
    assert edited["spec"]["type"] == m.CLUSTER_IP
    assert "nodePort" not in edited["spec"]["ports"][0]
    assert "loadBalancerIP" not in edited["spec"] and "externalTrafficPolicy" not in edited["spec"]


def test_external_ips_offered_and_emptied_are_removed() -> None:
    live = stored(m.build_service_manifest(spec(external_ips=["192.0.2.60"])))
    assert "externalIPs" not in m.apply_to_live(live, spec(external_ips=[]), "41")["spec"]


def test_metallb_fields_are_annotations_and_other_load_balancers_use_the_spec() -> None:
    metallb = m.build_service_manifest(spec(type=m.LOAD_BALANCER, metallb_pool="public", lb_address="192.0.2.10"))
    assert metallb["metadata"]["annotations"] == {m.METALLB_POOL: "public", m.METALLB_IPS: "192.0.2.10"}
    other = m.build_service_manifest(spec(type=m.LOAD_BALANCER, lb_type=m.OTHER_LB, lb_address="192.0.2.11"))
    assert other["spec"]["loadBalancerIP"] == "192.0.2.11" and "annotations" not in other["metadata"]


def test_a_yaml_create_leaves_out_what_the_api_server_sets() -> None:
    document = stored(m.build_service_manifest(spec()))
    document["metadata"] |= {"managedFields": [{}], "generation": 1, "selfLink": "/x", "labels": {"a": "b"}}
    document["status"] = {"loadBalancer": {}}
    created = m.without_server_fields(document)
    assert set(created["metadata"]) == {"name", "namespace", "labels"}
    assert "status" not in created and "resourceVersion" in document["metadata"]


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("80", 80),
        (" 80 ", 80),
        ("-1", -1),
        ("0", 0),
        (80, 80),
        ("²", None),
        ("٣", None),
        ("8 0", None),
        ("1e3", None),
        ("+80", None),
        ("", None),
        ("9" * 13, None),
        ("9" * 5000, None),
        (True, None),
        (None, None),
    ],
)
def test_numbers_are_ascii_digits_of_bounded_length(text: object, number: int | None) -> None:
    assert m.parse_number(text) == number


def test_traffic_distribution_and_not_ready_addresses_are_spec_fields() -> None:
    manifest = m.build_service_manifest(spec(traffic_distribution=m.PREFER_SAME_ZONE, publish_not_ready_addresses=True))
    assert manifest["spec"]["trafficDistribution"] == "PreferSameZone"
    assert manifest["spec"]["publishNotReadyAddresses"] is True
    plain = m.build_service_manifest(spec())["spec"]
    assert "trafficDistribution" not in plain and "publishNotReadyAddresses" not in plain


def test_an_edit_of_a_service_with_prefer_close_keeps_it() -> None:
    live = stored(m.build_service_manifest(spec()))
    live["spec"]["trafficDistribution"] = m.PREFER_CLOSE
    read_back = m.spec_from_service(live)
    assert read_back.traffic_distribution == m.PREFER_CLOSE
    assert m.apply_to_live(live, read_back, "41")["spec"]["trafficDistribution"] == m.PREFER_CLOSE


def test_an_edit_that_unsets_them_or_makes_an_external_name_removes_them() -> None:
    live = stored(
        m.build_service_manifest(spec(traffic_distribution=m.PREFER_SAME_NODE, publish_not_ready_addresses=True))
    )
    for edit in (
        spec(),
        spec(type=m.EXTERNAL_NAME, external_name="db.example.com", traffic_distribution="PreferSameNode"),
    ):
        edited = m.apply_to_live(live, edit, "41")["spec"]
        assert "trafficDistribution" not in edited and "publishNotReadyAddresses" not in edited


def test_labels_are_written_on_create_and_replaced_on_edit() -> None:
    assert m.build_service_manifest(spec(labels={"team": "shop"}))["metadata"]["labels"] == {"team": "shop"}
    assert "labels" not in m.build_service_manifest(spec(labels={}))["metadata"]
    live = stored(m.build_service_manifest(spec(labels={"team": "shop", "tier": "web"})))
    assert m.apply_to_live(live, spec(labels={"team": "ops"}), "41")["metadata"]["labels"] == {"team": "ops"}
    assert "labels" not in m.apply_to_live(live, spec(labels={}), "41")["metadata"]


def test_an_edit_that_does_not_touch_labels_leaves_them_exactly_as_they_were() -> None:
    live = stored(m.build_service_manifest(spec()))
    live["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "Helm", "team": "shop", "kubernetes.io/x": ""}
    as_shown = m.spec_from_service(live)  # what the edit form shows and sends back
    assert m.apply_to_live(live, as_shown, "41")["metadata"]["labels"] == live["metadata"]["labels"]
    not_offered = spec()  # labels None: a spec not made by the form
    assert m.apply_to_live(live, not_offered, "41")["metadata"]["labels"] == live["metadata"]["labels"]
