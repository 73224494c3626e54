"""Building the Service form's POST data the way the browser sends it."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s

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
    **fields: Any,
) -> dict[str, Any]:
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


def eventually(check: Callable[[], bool], seconds: float = 10.0) -> float:
    """Seconds until ``check`` held (fails the test after ``seconds``)."""
    began = time.monotonic()
    while not check():
        assert time.monotonic() - began < seconds, "not within the time limit"
        time.sleep(0.005)
    return time.monotonic() - began


def create_deployment(admin_api: k8s.ApiClient, namespace: str, name: str, labels: dict[str, str]) -> None:
    """A Deployment selecting ``labels`` (nothing runs it: the control plane has no controllers)."""
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
