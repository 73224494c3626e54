"""Building the Service form's POST data the way the browser sends it."""

from __future__ import annotations

from typing import Any

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
