"""Checks the form runs against the live cluster as the user types: node ports and what the selector matches."""

from __future__ import annotations

from django.utils.translation import gettext as _

import kube
from clusters.access import Access
from services import api, health
from services.forms import ServiceFormBundle


def node_port_problems(access: Access, namespace: str, ports: list[int], live: dict | None) -> dict[int, str]:
    """Messages for node ports outside the cluster's range or held by another Service. A dry run does not check
    the range (kube-apiserver v1.37.2 accepts any number), and refuses a held port without saying who holds it;
    here the holder is named when the user may view its namespace, otherwise the message says only that the port
    is taken."""
    if not ports:
        return {}
    try:
        span, used = api.node_port_range(access.actor, namespace), api.node_ports_in_use(access.actor)
    except (api.ApiError, kube.ClusterUnavailable):
        return {}
    own = (live["metadata"]["namespace"], live["metadata"]["name"]) if live else None
    problems: dict[int, str] = {}
    for port in ports:
        if span and not span[0] <= port <= span[1]:
            problems[port] = _("%(port)d is outside the cluster's node port range %(low)d-%(high)d.") % {
                "port": port,
                "low": span[0],
                "high": span[1],
            }
        elif port in used and used[port] != own:
            holder_namespace, holder = used[port]
            if access.can_view(holder_namespace):
                service = f"{holder_namespace}/{holder}"
                problems[port] = _("%(port)d is used by %(service)s.") % {"port": port, "service": service}
            else:
                problems[port] = _("%(port)d is already used by another Service.") % {"port": port}
    return problems


def selector_insight(actor: kube.Actor, namespace: str, selector: dict[str, str]) -> dict | None:
    """What the selector matches: the number of pods, up to five names, their named ports, and ports declared by two
    containers of one pod (which the seed warns breaks the workload)."""
    if not selector:
        return None
    try:
        pods, count = api.list_pods(actor, namespace, selector)
    except api.ApiError:
        return None  # a selector the API cannot parse: the field errors say why
    except kube.ClusterUnavailable as error:
        return {"error": str(error)}
    named_ports: set[str] = set()
    clashes: list[str] = []
    for pod in pods:
        seen: dict[tuple[int, str], str] = {}
        for container in (pod.get("spec") or {}).get("containers") or []:
            for port in container.get("ports") or []:
                if port.get("name"):
                    named_ports.add(port["name"])
                key = (port.get("containerPort"), port.get("protocol", "TCP"))
                if key in seen and seen[key] != container["name"]:
                    clashes.append(
                        _("Containers %(first)s and %(second)s of pod %(pod)s both declare port %(port)s.")
                        % {
                            "first": seen[key],
                            "second": container["name"],
                            "pod": pod["metadata"]["name"],
                            "port": key[0],
                        }
                    )
                seen.setdefault(key, container["name"])
    return {
        "count": count,
        "names": [pod["metadata"]["name"] for pod in pods[:5]],
        "named_ports": sorted(named_ports),
        "clashes": clashes[:5],
    }


def load_balancer_problems(actor: kube.Actor, namespace: str, bundle: ServiceFormBundle) -> list[str]:
    """Why the LoadBalancer Service as typed would get no address (``health.load_balancer_reasons``), said before it
    is created, with the MetalLB pools the form already read; nothing for another type, or when the cluster cannot
    be asked."""
    preview = bundle.load_balancer_preview(namespace)
    if preview is None:
        return []
    try:
        context = api.load_balancer_context(actor, namespace, bundle.metallb_pools)
    except (api.ApiError, kube.ClusterUnavailable):
        return []
    return health.load_balancer_reasons(preview, context)
