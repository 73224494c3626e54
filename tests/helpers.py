"""Building the Service form's POST data the way the browser sends it."""

from __future__ import annotations

import datetime
import ipaddress
import random
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

HTMX = {"HTTP_HX_REQUEST": "true"}


def rows(prefix: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {
        f"{prefix}-TOTAL_FORMS": str(len(items)),
        f"{prefix}-INITIAL_FORMS": "0",
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }
    for index, item in enumerate(items):
        for key, value in item.items():
            data[f"{prefix}-{index}-{key}"] = "" if value is None else str(value)
    return data


def service_form(
    name: str = "web-svc",
    *,
    type: str = "ClusterIP",
    ports: list[dict[str, Any]] | None = None,
    selector: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """The form's POST data. Without ``labels`` no label rows are sent, which leaves an edited Service's labels as
    they are (``{}`` sends none: the Service loses its labels)."""
    data: dict[str, Any] = {
        "name": name,
        "type": type,
        "session_timeout": "30",
        "external_traffic_policy": "Cluster",
        "lb_type": "metallb",
        "metallb_pool": "",
        "lb_address": "",
        "resource_version": "",
        "_action": "save",
    }
    for key, value in fields.items():
        if value is True:
            data[key] = "on"
        elif value not in (False, None):
            data[key] = str(value)
        else:
            data.pop(key, None)
    ports = ports if ports is not None else [{"protocol": "TCP", "name": "", "port": 80, "target_port": 8080}]
    data |= rows("ports", [{"protocol": "TCP", "name": "", "target_port": "", "node_port": "", **p} for p in ports])
    chosen = {"app": "web"} if selector is None else selector
    data |= rows("selector", [{"key": k, "value": v} for k, v in chosen.items()])
    data |= rows("annotations", [{"key": k, "value": v} for k, v in (annotations or {}).items()])
    if labels is not None:
        data |= rows("labels", [{"key": k, "value": v} for k, v in labels.items()])
    return data


# --- the cluster's side, read and arranged with the admin client ---------------------------------------------------


def services_in(admin_api: k8s.ApiClient, namespace: str) -> list[str]:
    return [s.metadata.name for s in k8s.CoreV1Api(admin_api).list_namespaced_service(namespace).items]


def free_node_port(admin_api: k8s.ApiClient) -> int:
    """A node port no Service of the cluster holds now (chosen at random: tests run side by side)."""
    used = {
        port.node_port
        for service in k8s.CoreV1Api(admin_api).list_service_for_all_namespaces().items
        for port in service.spec.ports or []
        if port.node_port
    }
    return random.choice([port for port in range(30100, 32700) if port not in used])


def hold_node_port(admin_api: k8s.ApiClient, namespace: str, name: str = "holder") -> int:
    """A NodePort Service ``name`` in ``namespace`` holding a free node port; returns the port."""
    port = free_node_port(admin_api)
    k8s.CoreV1Api(admin_api).create_namespaced_service(
        namespace,
        {"metadata": {"name": name}, "spec": {"type": "NodePort", "ports": [{"port": 1, "nodePort": port}]}},
    )
    return port


def eventually(check: Callable[[], bool], seconds: float = 10.0, *, interval: float = 0.005) -> float:
    """Seconds until ``check`` held (fails the test after ``seconds``); ``interval`` between tries (longer for
    waits of seconds on a controller, so as not to flood the API server)."""
    began = time.monotonic()
    while not check():
        assert time.monotonic() - began < seconds, "not within the time limit"
        time.sleep(interval)
    return time.monotonic() - began


def create_deployment(admin_api: k8s.ApiClient, namespace: str, name: str, labels: dict[str, str]) -> None:
    """A Deployment selecting ``labels`` (nothing runs it: the control plane has no workload controllers)."""
    k8s.AppsV1Api(admin_api).create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": name},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": name, "image": "nginx"}]},
                },
            },
        },
    )


def services_path(namespace: str, suffix: str = "") -> str:
    """A path under the test namespace's Services in cluster "local" (``service_url`` reverses by name instead)."""
    return f"/clusters/local/namespaces/{namespace}/services/{suffix}"


# --- nodes and pods as a kubelet would report them (the control plane has no kubelet or scheduler) -----------------

# Addresses no test writes by hand: nodes in 10.0.0.0/16, pods in 10.244.0.0/16 (a common pod network, outside the
# cluster's Service range 10.96.0.0/12). One control plane per test process, so a counter per process is unique.
_node_addresses = (str(address) for address in ipaddress.ip_network("10.0.0.0/16").hosts())
_pod_addresses = (str(address) for address in ipaddress.ip_network("10.244.0.0/16").hosts())


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_node(admin_api: k8s.ApiClient, name: str, address: str | None = None) -> str:
    """Register Node ``name`` with an InternalIP (``address``, else the next free 10.0.0.x) and a Ready condition
    set through the status subresource, as its kubelet would; returns the address. Nothing evicts or taints it:
    the control plane runs no node lifecycle controller."""
    core = k8s.CoreV1Api(admin_api)
    address = address or next(_node_addresses)
    core.create_node({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}})
    now = _now()
    status = {
        "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}],
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }
        ],
    }
    core.patch_node_status(name, {"status": status})
    return address


def _pod_conditions(ready: bool, container: str) -> list[dict[str, str]]:
    now = _now()
    waiting = (
        {} if ready else {"reason": "ContainersNotReady", "message": f"containers with unready status: [{container}]"}
    )
    readiness = "True" if ready else "False"
    return [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
        {"type": "ContainersReady", "status": readiness, "lastTransitionTime": now, **waiting},
        {"type": "Ready", "status": readiness, "lastTransitionTime": now, **waiting},
    ]


def _container_statuses(pod: k8s.V1Pod, ready: bool) -> list[dict[str, Any]]:
    started = pod.metadata.creation_timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        {
            "name": container.name,
            "image": container.image,
            "imageID": "",
            "containerID": f"containerd://{pod.metadata.uid.replace('-', '')}{index}",
            "ready": ready,
            "started": True,
            "restartCount": 0,
            "state": {"running": {"startedAt": started}},
        }
        for index, container in enumerate(pod.spec.containers)
    ]


def run_pod(
    admin_api: k8s.ApiClient,
    namespace: str,
    name: str,
    labels: dict[str, str],
    *,
    ports: list[dict[str, Any]] | None = None,
    ready: bool = True,
    node: str | None = None,
    pod_ip: str | None = None,
) -> k8s.V1Pod:
    """A Pod bound to ``node`` (default: Node ``node-<namespace>``, registered on first use) whose one container
    ``app`` declares ``ports`` (default: ``http`` 8080), then its status as the kubelet would set it: Running, a pod
    IP of its own (``pod_ip``: a test host's address, ``tests/reach_host.py``), the Ready and ContainersReady
    conditions as ``ready`` says (with the kubelet's reason when not). The EndpointSlice controller then lists it
    for every Service selecting it."""
    core = k8s.CoreV1Api(admin_api)
    if node is None:
        node = f"node-{namespace}"
        try:
            core.read_node(node)
        except ApiException as error:
            if error.status != 404:
                raise
            make_node(admin_api, node)
    host_ip = next(a.address for a in core.read_node(node).status.addresses if a.type == "InternalIP")
    container = {
        "name": "app",
        "image": "registry.k8s.io/pause:3.10",
        "ports": [{"name": "http", "containerPort": 8080}] if ports is None else ports,
    }
    # No kubelet will confirm a graceful deletion of a pod bound to a node: with no grace period, deleting it (or
    # its namespace) removes it at once, unless a finalizer holds it (terminating, as a test may want it).
    spec = {"nodeName": node, "terminationGracePeriodSeconds": 0, "containers": [container]}
    pod = core.create_namespaced_pod(namespace, {"metadata": {"name": name, "labels": labels}, "spec": spec})
    pod_ip = pod_ip or next(_pod_addresses)
    status = {
        "phase": "Running",
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": pod.metadata.creation_timestamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "conditions": _pod_conditions(ready, "app"),
        "containerStatuses": _container_statuses(pod, ready),
    }
    return core.patch_namespaced_pod_status(name, namespace, {"status": status})


def set_pod_ready(admin_api: k8s.ApiClient, namespace: str, name: str, ready: bool) -> k8s.V1Pod:
    """Turn a pod made by ``run_pod`` Ready or not Ready, as a readiness probe that starts or stops passing would."""
    core = k8s.CoreV1Api(admin_api)
    pod = core.read_namespaced_pod(name, namespace)
    status = {
        "conditions": _pod_conditions(ready, pod.spec.containers[0].name),
        "containerStatuses": _container_statuses(pod, ready),
    }
    return core.patch_namespaced_pod_status(name, namespace, {"status": status})
