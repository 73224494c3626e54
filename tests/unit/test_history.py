"""The pure functions of a Service's history (services.history)."""

from __future__ import annotations

from services import history


def test_undelete_leaves_assigned_addresses_and_node_ports_to_the_cluster() -> None:
    version = {
        "metadata": {"name": "web", "namespace": "ns", "uid": "u1", "ownerReferences": [{"name": "gone"}]},
        "spec": {
            "type": "NodePort",
            "clusterIP": "10.0.0.7",
            "clusterIPs": ["10.0.0.7"],
            "ports": [{"port": 80, "nodePort": 30080}],
        },
    }
    body = history.undelete_body(version)
    assert body["metadata"] == {"name": "web", "namespace": "ns"}
    assert body["spec"] == {"type": "NodePort", "ports": [{"port": 80}]}


def test_undelete_keeps_a_headless_service_headless() -> None:
    """clusterIP None is the owner's choice (DNS answers with the pods' addresses), not an assigned address."""
    version = {
        "metadata": {"name": "db", "namespace": "ns"},
        "spec": {"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 5432}]},
    }
    assert history.undelete_body(version)["spec"] == {
        "clusterIP": "None",
        "clusterIPs": ["None"],
        "ports": [{"port": 5432}],
    }


def test_fields_name_keys_that_appear_and_ports_by_name() -> None:
    old = {"metadata": {"name": "a"}, "spec": {"ports": [{"name": "http", "port": 80}]}}
    new = {"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"ports": [{"name": "http", "port": 81}]}}
    assert history.changed_fields(old, new) == ["metadata.labels.x", "spec.ports[http].port"]
