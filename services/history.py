"""Pure functions of a Service's history: what a version stores, who made a change and when (from
``managedFields``), which fields changed between two versions, and the bodies that restore a version or bring a
deleted Service back. No I/O: ``services.recorder`` stores versions, the views show and restore them."""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
from typing import Any

# What the cluster assigns to a Service and a new object must not carry: a restore keeps the current object's, an
# undelete leaves them for the cluster to assign again.
ASSIGNED_SPEC = ("clusterIP", "clusterIPs", "healthCheckNodePort")
SERVER_METADATA = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "managedFields",
    "selfLink",
)


def stored_form(service: dict) -> dict:
    """The Service as a version keeps it: without ``status`` (load balancer addresses and conditions change with no
    one changing the Service), ``managedFields`` (who changed it is stored apart) and ``resourceVersion``."""
    kept = {key: copy.deepcopy(value) for key, value in service.items() if key != "status"}
    metadata = kept.setdefault("metadata", {})
    metadata.pop("managedFields", None)
    metadata.pop("resourceVersion", None)
    kept.setdefault("apiVersion", "v1")
    kept.setdefault("kind", "Service")
    return kept


def _entry_time(entry: dict) -> datetime.datetime | None:
    value = entry.get("time")
    if not value:
        return None
    try:
        return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def managed_signature(service: dict) -> list[dict]:
    """What a version keeps of ``managedFields``: per entry (status entries left out) its manager, operation,
    time and a digest of the fields it owns, enough to tell the next version which entries changed."""
    signature = []
    for entry in (service.get("metadata") or {}).get("managedFields") or []:
        if entry.get("subresource") == "status":
            continue
        owned = json.dumps(entry.get("fieldsV1") or {}, sort_keys=True, separators=(",", ":"))
        signature.append({
            "manager": str(entry.get("manager") or ""),
            "operation": str(entry.get("operation") or ""),
            "time": str(entry.get("time") or ""),
            "fields": hashlib.sha256(owned.encode()).hexdigest()[:16],
        })  # fmt: skip
    return sorted(signature, key=lambda item: (item["manager"], item["operation"]))


def change_makers(service: dict, before: list[dict] | None = None) -> tuple[datetime.datetime | None, list[dict]]:
    """When the Service changed and the field managers that changed it.

    The API server stamps a managedFields entry with the time (whole seconds) and the fields of its manager's
    latest change. With the previous version's signature (``before``), the makers are the entries that are new or
    whose time or fields differ; without it, or when no entry differs (one manager changing values of fields it
    already owned within the same second), the entries with the newest time. (None, []) when the object says
    nothing (an object without managedFields)."""
    now = managed_signature(service)
    timed = [(when, entry) for entry in now if (when := _entry_time(entry)) is not None]
    if not timed:
        return None, []
    newest = max(when for when, _entry in timed)
    changed = [entry for entry in now if before is not None and entry not in before]
    makers = changed or [entry for when, entry in timed if when == newest]
    return newest, [{"manager": entry["manager"], "operation": entry["operation"]} for entry in makers]


def _port_key(port: Any, index: int) -> str:
    if isinstance(port, dict):
        if port.get("name"):
            return str(port["name"])
        if port.get("port") is not None:
            return f"{port['port']}/{port.get('protocol') or 'TCP'}"
    return str(index)


def _paths(old: Any, new: Any, path: str, found: list[str]) -> None:
    if old == new:
        return
    # A mapping that appears or goes is its keys that appear or go (the first annotation is that annotation).
    if old is None and isinstance(new, dict) and new:
        old = {}
    if new is None and isinstance(old, dict) and old:
        new = {}
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            if old.get(key) != new.get(key):
                _paths(old.get(key), new.get(key), f"{path}.{key}" if path else str(key), found)
        return
    if isinstance(old, list) and isinstance(new, list) and path == "spec.ports":
        # Ports by name (or number and protocol), as people think of them: a port added before another is one
        # change, not a change of every port after it.
        before = {_port_key(port, i): port for i, port in enumerate(old)}
        after = {_port_key(port, i): port for i, port in enumerate(new)}
        for key in [*before, *(k for k in after if k not in before)]:
            _paths(before.get(key), after.get(key), f"{path}[{key}]", found)
        return
    found.append(path)


def changed_fields(old: dict | None, new: dict | None) -> list[str]:
    """The field paths that differ between two stored forms (``metadata.labels.app``, ``spec.ports[http].port``);
    metadata the API server sets on every object is not a change of anyone's."""

    def comparable(version: dict | None) -> dict:
        if not version:
            return {}
        kept = copy.deepcopy(version)
        for key in SERVER_METADATA:
            (kept.get("metadata") or {}).pop(key, None)
        return kept

    found: list[str] = []
    _paths(comparable(old), comparable(new), "", found)
    return found


def restore_body(version: dict, current: dict) -> tuple[dict, list[str]]:
    """The replacement that gives the current Service the labels, annotations and spec of an earlier version, and
    the reasons for what it cannot take back. It carries the current resourceVersion (a concurrent change is a
    conflict, never overwritten) and the addresses the cluster assigned (immutable: ``clusterIP``,
    ``clusterIPs``), unless the version is an ExternalName Service, which has none. Node ports are asked for as
    they were; when another Service holds one now, the caller drops them with ``without_node_ports``."""
    reasons: list[str] = []
    body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            **{key: value for key, value in (current.get("metadata") or {}).items() if key != "managedFields"},
            "labels": copy.deepcopy((version.get("metadata") or {}).get("labels") or {}),
            "annotations": copy.deepcopy((version.get("metadata") or {}).get("annotations") or {}),
        },
        "spec": copy.deepcopy(version.get("spec") or {}),
    }
    spec, now = body["spec"], current.get("spec") or {}
    if spec.get("type") == "ExternalName":
        for key in ASSIGNED_SPEC:
            spec.pop(key, None)
        if now.get("type") != "ExternalName":
            reasons.append("external-name")
    else:
        for key in ("clusterIP", "clusterIPs"):
            if key in now:
                spec[key] = copy.deepcopy(now[key])
            else:
                spec.pop(key, None)
        earlier = (version.get("spec") or {}).get("clusterIP")
        if earlier and earlier != now.get("clusterIP"):
            reasons.append("cluster-ip")
        if "healthCheckNodePort" in now and spec.get("externalTrafficPolicy") == "Local":
            spec["healthCheckNodePort"] = now["healthCheckNodePort"]
        elif "healthCheckNodePort" in spec and spec.get("externalTrafficPolicy") != "Local":
            spec.pop("healthCheckNodePort")
    if spec.get("type") in ("ClusterIP", "ExternalName"):
        for port in spec.get("ports") or []:
            port.pop("nodePort", None)
    return body, reasons


def without_node_ports(body: dict) -> dict:
    """The body with its node ports left for the cluster to assign (another Service holds one of them now)."""
    changed = copy.deepcopy(body)
    for port in (changed.get("spec") or {}).get("ports") or []:
        port.pop("nodePort", None)
    (changed.get("spec") or {}).pop("healthCheckNodePort", None)
    return changed


def undelete_body(version: dict) -> dict:
    """A deleted Service made new from its last version: its name, labels, annotations and spec, without what the
    cluster assigned to the old object (uid, resourceVersion, times, addresses, node ports; a headless Service stays
    headless) and without owners
    (an owner that is gone would have the garbage collector delete it again)."""
    metadata = version.get("metadata") or {}
    body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            key: copy.deepcopy(value)
            for key, value in metadata.items()
            if key in ("name", "namespace", "labels", "annotations")
        },
        "spec": copy.deepcopy(version.get("spec") or {}),
    }
    headless = body["spec"].get("clusterIP") == "None"  # the owner's choice, not an address the cluster gave
    for key in ASSIGNED_SPEC:
        if not (headless and key in ("clusterIP", "clusterIPs")):
            body["spec"].pop(key, None)
    for port in body["spec"].get("ports") or []:
        port.pop("nodePort", None)
    return body
