"""The API server the tests talk to is the real upstream one: it allocates, validates and authorizes; the real
controller-manager beside it makes EndpointSlices, finishes namespace deletions and aggregates ClusterRoles."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

import kube
from tests.helpers import eventually, make_node, run_pod, set_pod_ready
from tools import localcluster

pytestmark = pytest.mark.cluster


def test_version_is_the_pinned_release(admin_api: client.ApiClient) -> None:
    assert client.VersionApi(admin_api).get_code().git_version == localcluster.KUBERNETES_VERSION


def test_nodeport_service_gets_a_node_port_and_a_cluster_ip(admin_api: client.ApiClient, namespace: str) -> None:
    created = client.CoreV1Api(admin_api).create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {"type": "NodePort", "ports": [{"port": 80}]},
        },
    )
    assert 30000 <= created.spec.ports[0].node_port <= 32767
    assert ipaddress.ip_address(created.spec.cluster_ip) in ipaddress.ip_network(localcluster.SERVICE_CLUSTER_IP_RANGE)


def _refusal(admin_api: client.ApiClient, namespace: str, spec: dict) -> dict:
    with pytest.raises(ApiException) as raised:
        client.CoreV1Api(admin_api).create_namespaced_service(namespace, {"metadata": {"name": "bad"}, "spec": spec})
    assert raised.value.status == 422
    return json.loads(raised.value.body)


def test_node_port_out_of_range_is_refused_by_the_api_server(admin_api: client.ApiClient, namespace: str) -> None:
    status = _refusal(
        admin_api,
        namespace,
        {"type": "NodePort", "ports": [{"port": 80, "nodePort": 99999}]},
    )
    causes = status["details"]["causes"]
    assert causes[0]["field"] == "spec.ports[0].nodePort"
    assert "The range of valid ports is 30000-32767" in causes[0]["message"]


def test_two_unnamed_ports_are_refused_by_the_api_server(admin_api: client.ApiClient, namespace: str) -> None:
    status = _refusal(admin_api, namespace, {"ports": [{"port": 80}, {"port": 81}]})
    fields = {cause["field"] for cause in status["details"]["causes"]}
    assert "spec.ports[0].name" in fields
    assert all(cause["reason"] == "FieldValueRequired" for cause in status["details"]["causes"])


def test_a_client_without_rights_is_refused_by_rbac(control_plane: localcluster.ControlPlane, namespace: str) -> None:
    cert, key = control_plane.client_credentials("nobody")
    nobody = kube.build_api_client(
        kube.Credentials(control_plane.server, control_plane.ca_pem, client_cert=cert, client_key=key)
    )
    with pytest.raises(ApiException) as raised:
        client.CoreV1Api(nobody).list_namespaced_service(namespace)
    assert raised.value.status == 403
    assert 'User "nobody" cannot list resource "services"' in json.loads(raised.value.body)["message"]


def test_localcluster_command_starts_serves_and_stops_without_leftovers(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "CONSOLE_DATA_DIR": str(tmp_path)}

    def localcluster_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tools.localcluster", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    up = localcluster_cli("up")
    assert up.returncode == 0, up.stderr
    kubeconfig = Path(up.stdout.strip())
    state = localcluster.ClusterState.load(tmp_path / "localcluster.json")
    assert state is not None and localcluster.state_running(state)
    try:
        status = localcluster_cli("status").stdout
        assert "running at https://127.0.0.1:" in status
        assert localcluster.controller_manager_running(state)
        assert f"controller-manager running, pid {state.controller_manager_pid}" in status
        assert f"controller-manager log {state.data_dir}/kube-controller-manager.log" in status
        assert f"audit log {state.data_dir}/audit.log" in status and Path(state.audit_log).exists()
        credentials = kube.parse_kubeconfig(kubeconfig.read_text(), max_bytes=1 << 20)
        version = client.VersionApi(kube.build_api_client(credentials)).get_code()
        assert version.git_version == localcluster.KUBERNETES_VERSION
    finally:
        down = localcluster_cli("down")
    assert down.returncode == 0, down.stderr
    assert not localcluster.state_running(state) and not localcluster.controller_manager_running(state)
    assert not Path(state.data_dir).exists()
    assert localcluster_cli("status").returncode == 3


def test_the_api_server_keeps_an_audit_log_of_who_did_what(
    control_plane: localcluster.ControlPlane, admin_api: client.ApiClient, namespace: str
) -> None:
    client.CoreV1Api(admin_api).create_namespaced_service(
        namespace, {"metadata": {"name": "audited"}, "spec": {"ports": [{"port": 80}]}}
    )
    created = [
        event
        for event in control_plane.audit_events()
        if event["verb"] == "create"
        and event.get("objectRef", {}).get("resource") == "services"
        and event["objectRef"].get("namespace") == namespace
    ]
    assert len(created) == 1
    assert created[0]["objectRef"]["name"] == "audited" and created[0]["responseStatus"]["code"] == 201
    assert created[0]["user"]["username"] == "console-admin" and created[0]["level"] == "Metadata"
    assert not [event for event in control_plane.audit_events() if event["verb"] == "watch"]


def test_a_state_file_from_before_the_controller_manager_still_loads(tmp_path: Path) -> None:
    old = {
        "data_dir": str(tmp_path),
        "server": "https://127.0.0.1:6443",
        "kubeconfig": str(tmp_path / "kubeconfig"),
        "etcd_pid": 1,
        "apiserver_pid": 1,
        "binaries": str(tmp_path),
        "audit_log": "",
    }
    (tmp_path / "localcluster.json").write_text(json.dumps(old))
    state = localcluster.ClusterState.load(tmp_path / "localcluster.json")
    assert state is not None and state.controller_manager_pid == 0
    assert not localcluster.controller_manager_running(state)


# --- the controller-manager ----------------------------------------------------------------------------------------


def _slices(admin_api: client.ApiClient, namespace: str, service: str) -> list[dict]:
    """The Service's EndpointSlices as the API server sends them (raw JSON: an absent field stays absent)."""
    response = client.DiscoveryV1Api(admin_api).list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={service}", _preload_content=False
    )
    return json.loads(response.data)["items"]


def _endpoints(slices: list[dict]) -> dict[str, dict]:
    return {endpoint["targetRef"]["name"]: endpoint for s in slices for endpoint in s.get("endpoints") or []}


@pytest.fixture
def node(admin_api: client.ApiClient) -> str:
    name = f"node-{uuid.uuid4().hex[:8]}"
    make_node(admin_api, name)
    return name


def test_the_endpointslice_controller_lists_ready_and_not_ready_pods(
    admin_api: client.ApiClient, namespace: str, node: str
) -> None:
    client.CoreV1Api(admin_api).create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
        },
    )
    ready = run_pod(admin_api, namespace, "web-ready", {"app": "web"}, node=node)
    run_pod(admin_api, namespace, "web-starting", {"app": "web"}, node=node, ready=False)

    eventually(lambda: len(_endpoints(_slices(admin_api, namespace, "web"))) == 2, interval=0.1)
    [made] = _slices(admin_api, namespace, "web")
    assert made["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
    assert made["metadata"]["ownerReferences"][0]["name"] == "web"
    assert made["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]  # the named port, resolved
    endpoints = _endpoints([made])
    assert endpoints["web-ready"]["addresses"] == [ready.status.pod_ip]
    assert endpoints["web-ready"]["nodeName"] == node
    assert endpoints["web-ready"]["conditions"] == {"ready": True, "serving": True, "terminating": False}
    assert endpoints["web-starting"]["conditions"] == {"ready": False, "serving": False, "terminating": False}

    set_pod_ready(admin_api, namespace, "web-starting", True)
    eventually(
        lambda: _endpoints(_slices(admin_api, namespace, "web"))["web-starting"]["conditions"]["ready"], interval=0.1
    )


def test_a_pod_without_the_named_target_port_is_listed_in_a_slice_without_that_port(
    admin_api: client.ApiClient, namespace: str, node: str
) -> None:
    """What the EndpointSlice controller does (1.37): the pods are grouped by the ports they resolve. A pod whose
    containers do not name the Service's targetPort is still listed, ready as its conditions say, in a slice of its
    own whose ``ports`` is null; a port it can resolve (a number) is kept in its slice."""
    core = client.CoreV1Api(admin_api)
    http = {"name": "http", "port": 80, "targetPort": "http"}
    core.create_namespaced_service(
        namespace, {"metadata": {"name": "named"}, "spec": {"selector": {"app": "web"}, "ports": [http]}}
    )
    both = [http, {"name": "plain", "port": 81, "targetPort": 7000}]
    core.create_namespaced_service(
        namespace, {"metadata": {"name": "both"}, "spec": {"selector": {"app": "web"}, "ports": both}}
    )
    run_pod(admin_api, namespace, "web-http", {"app": "web"}, node=node)
    run_pod(
        admin_api,
        namespace,
        "web-metrics",
        {"app": "web"},
        node=node,
        ports=[{"name": "metrics", "containerPort": 9090}],
    )
    for service in ("named", "both"):
        eventually(lambda service=service: len(_endpoints(_slices(admin_api, namespace, service))) == 2, interval=0.1)

    def by_pod(service: str) -> dict[str, dict]:
        return {
            endpoint["targetRef"]["name"]: s
            for s in _slices(admin_api, namespace, service)
            for endpoint in s["endpoints"]
        }

    named = by_pod("named")
    assert named["web-http"] is not named["web-metrics"]  # two slices
    assert named["web-http"]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert named["web-metrics"]["ports"] is None  # "ports": null in the API server's JSON
    assert _endpoints([named["web-metrics"]])["web-metrics"]["conditions"] == {
        "ready": True,
        "serving": True,
        "terminating": False,
    }
    both_slices = by_pod("both")
    assert sorted(p["name"] for p in both_slices["web-http"]["ports"]) == ["http", "plain"]
    assert both_slices["web-metrics"]["ports"] == [{"name": "plain", "port": 7000, "protocol": "TCP"}]


def test_a_deleted_namespace_finishes_deleting_with_its_services_and_pods(admin_api: client.ApiClient) -> None:
    core = client.CoreV1Api(admin_api)
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace({"metadata": {"name": name}})
    eventually(lambda: bool(core.list_namespaced_service_account(name).items), interval=0.1)  # "default" is made
    core.create_namespaced_service(name, {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}})
    run_pod(admin_api, name, "web", {"app": "web"})
    core.delete_namespace(name)

    def gone() -> bool:
        try:
            core.read_namespace(name)
        except ApiException as error:
            assert error.status == 404
            return True
        return False

    # The namespace controller waits 5 s after a namespace's deletion before it empties it.
    eventually(gone, seconds=30, interval=0.2)
    everywhere = core.list_service_for_all_namespaces(field_selector=f"metadata.namespace={name}")
    assert everywhere.items == []
    assert core.list_pod_for_all_namespaces(field_selector=f"metadata.namespace={name}").items == []


def test_the_view_cluster_role_aggregates_the_rules_of_its_parts(admin_api: client.ApiClient) -> None:
    rbac = client.RbacAuthorizationV1Api(admin_api)
    view = rbac.read_cluster_role("view")
    assert view.aggregation_rule and any("services" in (rule.resources or []) for rule in view.rules)

    part = f"test-aggregate-{uuid.uuid4().hex[:8]}"
    rule = {"apiGroups": ["example.com"], "resources": [part], "verbs": ["get"]}
    rbac.create_cluster_role(
        {"metadata": {"name": part, "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}, "rules": [rule]}
    )
    try:
        eventually(lambda: any(part in (r.resources or []) for r in rbac.read_cluster_role("view").rules), interval=0.1)
    finally:
        rbac.delete_cluster_role(part)
    eventually(lambda: not any(part in (r.resources or []) for r in rbac.read_cluster_role("view").rules), interval=0.1)
