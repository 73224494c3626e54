"""The copy of a Service, as another cluster would be asked to create it: ``services.copying`` (pure, no cluster)."""

from __future__ import annotations

import copy

from services import copying as c
from services import manifest as m

SOURCE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {
        "name": "web",
        "namespace": "shop",
        "uid": "6f1c0d1e-0000-4000-8000-000000000001",
        "resourceVersion": "4711",
        "creationTimestamp": "2026-01-02T03:04:05Z",
        "generation": 1,
        "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "x"}],
        "finalizers": ["service.kubernetes.io/load-balancer-cleanup"],
        "labels": {"app": "web", "team": "a"},
        "annotations": {
            "example.com/owner": "team-a",
            c.LAST_APPLIED: '{"kind":"Service"}',
            m.METALLB_POOL: "public-pool",
            m.METALLB_IPS: "192.0.2.10",
        },
    },
    "spec": {
        "type": "LoadBalancer",
        "clusterIP": "10.96.0.20",
        "clusterIPs": ["10.96.0.20"],
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "selector": {"app": "web"},
        "ports": [
            {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080},
            {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": "dns", "nodePort": 30053},
        ],
        "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}},
        "externalTrafficPolicy": "Local",
        "healthCheckNodePort": 31999,
        "internalTrafficPolicy": "Cluster",
        "loadBalancerIP": "192.0.2.10",
        "allocateLoadBalancerNodePorts": True,
    },
    "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}},
}


def test_what_the_source_cluster_set_does_not_travel() -> None:
    copied = c.target_manifest(SOURCE, "other", c.Overrides())
    metadata, spec = copied["metadata"], copied["spec"]
    assert set(metadata) == {"name", "namespace", "labels", "annotations"}
    assert metadata["namespace"] == "other"
    assert "status" not in copied
    for allocated in ("clusterIP", "clusterIPs", "ipFamilies", "healthCheckNodePort", "loadBalancerIP"):
        assert allocated not in spec
    assert c.LAST_APPLIED not in metadata["annotations"]
    assert m.METALLB_IPS not in metadata["annotations"]  # the address is the source network's


def test_what_the_person_wrote_is_kept() -> None:
    copied = c.target_manifest(SOURCE, "other", c.Overrides())
    metadata, spec = copied["metadata"], copied["spec"]
    assert metadata["name"] == "web"
    assert metadata["labels"] == {"app": "web", "team": "a"}
    assert metadata["annotations"] == {"example.com/owner": "team-a", m.METALLB_POOL: "public-pool"}
    assert spec["selector"] == {"app": "web"}
    assert spec["ports"] == SOURCE["spec"]["ports"]  # node ports kept by default
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 600}}
    assert (spec["type"], spec["externalTrafficPolicy"], spec["ipFamilyPolicy"]) == (
        "LoadBalancer",
        "Local",
        "SingleStack",
    )
    assert spec["allocateLoadBalancerNodePorts"] is True


def test_the_source_is_not_changed() -> None:
    before = copy.deepcopy(SOURCE)
    c.target_manifest(SOURCE, "other", c.Overrides(name="x", node_ports=c.AUTO_NODE_PORTS, pool=c.NO_POOL))
    assert before == SOURCE


def test_node_ports_assigned_by_the_target_cluster() -> None:
    copied = c.target_manifest(SOURCE, "other", c.Overrides(node_ports=c.AUTO_NODE_PORTS))
    assert all("nodePort" not in port for port in copied["spec"]["ports"])
    assert c.node_ports_of(copied) == []


def test_node_ports_given_per_port_and_empty_means_assigned() -> None:
    overrides = c.Overrides(node_ports=c.GIVEN_NODE_PORTS, given_node_ports=(31001, None))
    copied = c.target_manifest(SOURCE, "other", overrides)
    assert [port.get("nodePort") for port in copied["spec"]["ports"]] == [31001, None]
    assert c.node_ports_of(copied) == [31001]


def test_given_node_ports_shorter_than_the_ports_leave_the_rest_to_the_cluster() -> None:
    overrides = c.Overrides(node_ports=c.GIVEN_NODE_PORTS, given_node_ports=(31001,))
    assert c.node_ports_of(c.target_manifest(SOURCE, "other", overrides)) == [31001]


def test_a_clusterip_service_never_carries_node_ports() -> None:
    source = {
        "metadata": {"name": "db"},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.9", "ports": [{"port": 5432}]},
    }
    overrides = c.Overrides(node_ports=c.GIVEN_NODE_PORTS, given_node_ports=(31001,))
    copied = c.target_manifest(source, "other", overrides)
    assert copied["spec"] == {"type": "ClusterIP", "ports": [{"port": 5432}]}


def test_headless_stays_headless() -> None:
    source = {"metadata": {"name": "db"}, "spec": {"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 1}]}}
    assert c.target_manifest(source, "other", c.Overrides())["spec"]["clusterIP"] == "None"


def test_pool_none_removes_both_annotations() -> None:
    source = copy.deepcopy(SOURCE)
    source["metadata"]["annotations"][m.LEGACY_METALLB_POOL] = "old-pool"
    copied = c.target_manifest(source, "other", c.Overrides(pool=c.NO_POOL))
    annotations = copied["metadata"]["annotations"]
    assert m.METALLB_POOL not in annotations and m.LEGACY_METALLB_POOL not in annotations


def test_pool_of_the_target_cluster_replaces_the_source_pool() -> None:
    copied = c.target_manifest(SOURCE, "other", c.Overrides(pool="office-pool"))
    assert copied["metadata"]["annotations"][m.METALLB_POOL] == "office-pool"


def test_the_address_is_asked_for_again_only_when_kept() -> None:
    copied = c.target_manifest(SOURCE, "other", c.Overrides(keep_address=True))
    assert copied["spec"]["loadBalancerIP"] == "192.0.2.10"
    assert copied["metadata"]["annotations"][m.METALLB_IPS] == "192.0.2.10"


def test_pool_overrides_mean_nothing_for_another_type() -> None:
    source = {
        "metadata": {"name": "a", "annotations": {"note": "x"}},
        "spec": {"type": "NodePort", "ports": [{"port": 1}]},
    }
    copied = c.target_manifest(source, "other", c.Overrides(pool="office-pool"))
    assert copied["metadata"]["annotations"] == {"note": "x"}


def test_a_different_name() -> None:
    assert c.target_manifest(SOURCE, "other", c.Overrides(name="web-copy"))["metadata"]["name"] == "web-copy"


def test_no_annotations_left_means_no_annotations_key() -> None:
    source = {"metadata": {"name": "a", "annotations": {c.LAST_APPLIED: "{}"}}, "spec": {"ports": [{"port": 1}]}}
    assert "annotations" not in c.target_manifest(source, "other", c.Overrides())["metadata"]


def test_source_facts() -> None:
    facts = c.source_facts(SOURCE)
    assert facts.type == "LoadBalancer" and facts.uses_node_ports and facts.uses_pool
    assert facts.port_labels == ("http 80/TCP → 30080", "dns 53/UDP → 30053")
    assert (facts.pool, facts.address) == ("public-pool", "192.0.2.10")
    plain = c.source_facts({"metadata": {"name": "a"}, "spec": {"ports": [{"port": 1}]}})
    assert (plain.type, plain.uses_node_ports, plain.uses_pool, plain.port_labels) == (
        "ClusterIP",
        False,
        False,
        ("1/TCP",),
    )


def test_the_diff_shows_what_changes_in_substance() -> None:
    copied = c.target_manifest(SOURCE, "other", c.Overrides(node_ports=c.AUTO_NODE_PORTS))
    lines = [line for kind, line in m.yaml_diff(c.for_diff(SOURCE), copied) if kind in ("add", "del")]
    assert "-  namespace: shop" in lines and "+  namespace: other" in lines
    assert any("nodePort: 30080" in line and line.startswith("-") for line in lines)
    # What every API server sets is not shown; what the source's cluster named (its owners) is, as dropped.
    assert not any(SOURCE["metadata"]["uid"] in line or "resourceVersion" in line for line in lines)
    assert "-  ownerReferences:" in lines


def test_target_values() -> None:
    assert c.split_target(c.target_value("remote", "shop")) == ("remote", "shop")
    assert c.split_target("nonsense") == ("nonsense", "")


def test_an_existing_service_is_compared_without_its_allocations() -> None:
    existing = c.comparable(SOURCE)
    assert existing["metadata"]["namespace"] == "shop"
    assert "clusterIP" not in existing["spec"] and "uid" not in existing["metadata"]
    assert existing["spec"]["ports"][0]["nodePort"] == 30080  # a node port is a choice the copy may repeat
    assert existing["spec"]["loadBalancerIP"] == "192.0.2.10"


# --- the default node ports: the source's where the target cluster has them free --------------------------------


def test_node_ports_are_kept_where_free_and_left_to_the_cluster_where_taken_or_outside_its_range() -> None:
    source = copy.deepcopy(SOURCE)
    source["spec"]["ports"].append({"name": "admin", "port": 81, "nodePort": 32900})
    overrides = c.Overrides(node_ports=c.FREE_NODE_PORTS)
    concrete, moved = c.node_ports_where_free(source, overrides, taken={30053, 31000}, span=(30000, 32767))
    assert (concrete.node_ports, concrete.given_node_ports) == (c.GIVEN_NODE_PORTS, (30080, None, None))
    assert moved == [30053, 32900]  # taken; outside the range
    copied = c.target_manifest(source, "other", concrete)
    assert [port.get("nodePort") for port in copied["spec"]["ports"]] == [30080, None, None]


def test_in_the_sources_own_cluster_no_node_port_is_kept() -> None:
    """The source holds its own node ports, so a copy beside it (another namespace) gets new ones."""
    overrides = c.Overrides(node_ports=c.FREE_NODE_PORTS)
    concrete, moved = c.node_ports_where_free(SOURCE, overrides, taken={30080, 30053}, span=None)
    assert c.node_ports_of(c.target_manifest(SOURCE, "other", concrete)) == []
    assert moved == [30080, 30053]


def test_an_unknown_range_judges_only_what_is_taken_and_other_modes_are_left_alone() -> None:
    overrides = c.Overrides(node_ports=c.FREE_NODE_PORTS)
    assert c.node_ports_where_free(SOURCE, overrides, taken=set(), span=None)[0].given_node_ports == (30080, 30053)
    for mode in (c.KEEP_NODE_PORTS, c.AUTO_NODE_PORTS, c.GIVEN_NODE_PORTS):
        kept = c.Overrides(node_ports=mode)
        assert c.node_ports_where_free(SOURCE, kept, taken={30080}, span=None) == (kept, [])


def test_the_default_not_made_concrete_keeps_the_node_ports() -> None:
    """When the target cluster could not say which ports it holds: its own answer will say which it refuses."""
    copied = c.target_manifest(SOURCE, "other", c.Overrides(node_ports=c.FREE_NODE_PORTS))
    assert c.node_ports_of(copied) == [30080, 30053]
