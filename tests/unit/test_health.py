"""The pure rules behind the health column, the per-port reasons and the pending load balancer (services.health)."""

from __future__ import annotations

import pytest

from services import health


def service(**spec) -> dict:
    return {"metadata": {"name": "web", "namespace": "shop"}, "spec": {"selector": {"app": "web"}, **spec}}


def endpoint(name: str, ready: bool | None = True) -> dict:
    conditions = {} if ready is None else {"ready": ready}
    return {"addresses": [f"10.0.0.{len(name)}"], "conditions": conditions, "targetRef": {"name": name, "uid": name}}


def test_health_counts_endpoints_that_are_ready_and_serve_a_port() -> None:
    slices = [
        {"ports": [{"name": "http", "port": 8080}], "endpoints": [endpoint("a"), endpoint("b", ready=False)]},
        {"ports": [], "endpoints": [endpoint("c")]},  # a pod without the named port: in a slice with no ports
    ]
    found = health.health(service(ports=[{"name": "http", "port": 80, "targetPort": "http"}]), slices)
    assert (found.ready, found.total, found.state) == (1, 3, "partial")


def test_an_absent_ready_condition_counts_as_ready_as_the_api_documents() -> None:
    slices = [{"ports": [{"port": 80}], "endpoints": [endpoint("a", ready=None)]}]
    assert health.health(service(), slices).state == "ok"


@pytest.mark.parametrize(
    "spec",
    [
        {"type": "ExternalName", "externalName": "example.com", "selector": None},
        {"clusterIP": "None", "selector": None},
    ],
)
def test_health_does_not_apply_without_endpoints_to_count(spec: dict) -> None:
    assert not health.health(service(**spec), []).applicable


def pod(name: str, *, ready: bool = True, ports: tuple[str, ...] = ("http",), terminating: bool = False) -> dict:
    metadata = {"name": name, "uid": name}
    if terminating:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    if not ready:
        conditions.insert(0, {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady"})
    return {
        "metadata": metadata,
        "spec": {"containers": [{"ports": [{"name": p, "containerPort": 8080} for p in ports]}]},
        "status": {"conditions": conditions},
    }


def test_each_pod_that_gets_no_traffic_has_its_reason() -> None:
    web = service(ports=[{"name": "http", "port": 80, "targetPort": "http"}])
    pods = [pod("ok"), pod("starting", ready=False), pod("metrics", ports=("metrics",)), pod("bye", terminating=True)]
    slices = [{"ports": [{"name": "http"}], "endpoints": [endpoint("ok"), endpoint("starting", ready=False)]}]
    [port] = health.traffic(web, pods, slices)
    assert (port.ready, port.total) == (1, 4)
    assert port.reasons == [
        "Pod starting is not Ready: ContainersReady=False (ContainersNotReady).",
        "Pod metrics has no container port named “http”.",
        "Pod bye is terminating.",
    ]


def test_no_pod_and_no_slice_are_said() -> None:
    web = service(ports=[{"port": 80}])
    assert health.traffic(web, [], [])[0].reasons == ["The selector matches no pod in this namespace."]
    assert "in no EndpointSlice yet" in health.traffic(web, [pod("new")], [])[0].reasons[0]


def pool(name: str, addresses: list[str], **allocation) -> dict:
    spec: dict = {"addresses": addresses}
    if allocation:
        spec["serviceAllocation"] = allocation
    return {"metadata": {"name": name}, "spec": spec}


def lb(pool_name: str = "", address: str = "", **spec) -> dict:
    annotations = {}
    if pool_name:
        annotations["metallb.io/address-pool"] = pool_name
    if address:
        annotations["metallb.io/loadBalancerIPs"] = address
    return {
        "metadata": {"name": "web", "namespace": "shop", "annotations": annotations, "labels": {"tier": "front"}},
        "spec": {"type": "LoadBalancer", **spec},
    }


def context(pools: list[dict] | None, labels: dict | None = None, used: tuple[str, ...] = ()):
    return health.LoadBalancerContext(pools, labels or {}, frozenset(used))


def test_pool_sizes_and_membership_read_cidrs_and_ranges() -> None:
    p = pool("p", ["192.0.2.0/30", "198.51.100.10-198.51.100.12", "not an address"])
    assert health.pool_size(p) == 7
    assert health.pool_contains(p, "198.51.100.11") and not health.pool_contains(p, "198.51.100.13")


@pytest.mark.parametrize(
    ("service_", "pools", "labels", "used", "expected"),
    [
        (lb(), None, {}, (), "No load balancer controller"),
        (lb(loadBalancerClass="example.com/lb"), None, {}, (), "load balancer class “example.com/lb”"),
        (lb("gone"), [pool("p", ["192.0.2.0/30"])], {}, (), "“gone” does not exist"),
        (lb("p"), [pool("p", ["192.0.2.0/30"], namespaces=["other"])], {}, (), "does not serve namespace “shop”"),
        (
            lb("p"),
            [pool("p", ["192.0.2.0/30"], namespaceSelectors=[{"matchLabels": {"team": "b"}}])],
            {"team": "a"},
            (),
            "does not serve namespace “shop”",
        ),
        (lb("p", "203.0.113.5"), [pool("p", ["192.0.2.0/30"])], {}, (), "203.0.113.5 is not in “p”"),
        (lb("p"), [pool("p", ["192.0.2.0/31"])], {}, ("192.0.2.0", "192.0.2.1"), "no free address (2 of 2 in use)"),
        (lb(), [pool("p", ["192.0.2.0/30"], namespaces=["other"])], {}, (), "No MetalLB pool assigns addresses"),
    ],
)
def test_a_pending_load_balancer_is_explained(service_, pools, labels, used, expected) -> None:
    reasons = health.load_balancer_reasons(service_, context(pools, labels, used))
    assert any(expected in reason for reason in reasons), reasons


def test_a_pool_that_serves_the_namespace_raises_nothing_and_other_namespaces_are_never_named() -> None:
    by_label = pool(
        "p",
        ["192.0.2.0/30"],
        namespaceSelectors=[{"matchExpressions": [{"key": "team", "operator": "In", "values": ["a"]}]}],
    )
    assert health.load_balancer_reasons(lb("p"), context([by_label], {"team": "a"})) == []
    refused = health.load_balancer_reasons(lb("p"), context([pool("p", ["192.0.2.0/30"], namespaces=["secret-team"])]))
    assert refused and not any("secret-team" in reason for reason in refused)


def test_service_selectors_of_a_pool_are_matched_against_the_services_labels() -> None:
    picky = pool("p", ["192.0.2.0/30"], serviceSelectors=[{"matchLabels": {"tier": "back"}}])
    assert "serves only Services with certain labels" in health.load_balancer_reasons(lb("p"), context([picky]))[0]
    fine = pool("p", ["192.0.2.0/30"], serviceSelectors=[{"matchLabels": {"tier": "front"}}])
    assert health.load_balancer_reasons(lb("p"), context([fine])) == []
