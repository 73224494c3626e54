"""The API server the tests talk to is the real upstream one: it allocates, validates and authorizes."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

import kube
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
        assert f"audit log {state.data_dir}/audit.log" in status and Path(state.audit_log).exists()
        credentials = kube.parse_kubeconfig(kubeconfig.read_text(), max_bytes=1 << 20)
        version = client.VersionApi(kube.build_api_client(credentials)).get_code()
        assert version.git_version == localcluster.KUBERNETES_VERSION
    finally:
        down = localcluster_cli("down")
    assert down.returncode == 0, down.stderr
    assert not localcluster.state_running(state)
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
