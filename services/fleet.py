"""All my Services: one list across every cluster and namespace the user may view.

Every cluster is asked at once, each in its own thread, and the page waits at most ``settings.FLEET_DEADLINE``
seconds for them: a cluster that is down, refuses or is slow becomes an error row, and the others are shown. A
cluster-wide user's Services come from the cluster's cluster-wide informer (one list, then a watch, shared by every
such user of the process); a namespace user's from the informers of their namespaces. Either way the cluster decides
whether this user may be served the shared copy (``kube.allowed``), as on the namespace list.

The threads touch no database: the grants and the identity are read before they start.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import pgettext
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

import kube
from clusters.access import Access, every_cluster
from kube.informer import informers
from services import api, health, listing
from services import manifest as m
from services.forms import DNS1123_LABEL

log = logging.getLogger(__name__)

PAGE_SIZE = 50
HEALTH_STATES = ("ok", "partial", "bad", "none", "unknown")
# What a cluster's thread leaves of the page's deadline, after waiting for an informer, to draw the rows.
DRAW_MARGIN = 0.2


def urls() -> list:
    return [path("services/", fleet_list, name="fleet")]


@dataclass
class ClusterServices:
    """What one cluster answered: its Services (each with its namespace), their EndpointSlices by (namespace,
    Service) when known, its node addresses, or the error that stands for all of it."""

    access: Access
    services: list[dict] = field(default_factory=list)
    slices: dict[tuple[str, str], list[dict]] | None = None
    node_ips: list[str] = field(default_factory=list)
    error: str = ""
    complete: bool = True  # False: only the first Services, while the cluster's informer lists them all


def _namespaced(access: Access, namespaces: list[str], deadline: float) -> list[dict]:
    """The Services of the namespaces a user holds grants in, one namespace after the other (informer first)."""
    found: list[dict] = []
    for namespace in namespaces:
        wait_for = max(deadline - time.monotonic(), 0.0)
        items = api.cached_services(access.actor, namespace, wait=wait_for)
        if items is None:
            items = api.list_services(access.actor, namespace)[0]
        # A live list's items carry their namespace; the informer's slim copies do too.
        found += items
    return found


def _slices_namespaced(access: Access, namespaces: list[str]) -> dict[tuple[str, str], list[dict]] | None:
    grouped: dict[tuple[str, str], list[dict]] = {}
    for namespace in namespaces:
        for name, slices in api.endpoint_slices_by_service(access.actor, namespace).items():
            grouped[namespace, name] = slices
    return grouped


def _may_list_slices_everywhere(access: Access) -> bool:
    return kube.allowed(access.actor, "list", "endpointslices", group="discovery.k8s.io")


def _slices_everywhere(access: Access, deadline: float) -> dict[tuple[str, str], list[dict]] | None:
    """Every EndpointSlice of the cluster by (namespace, Service), from the cluster-wide informer, for a user the
    cluster lets list them everywhere (else None: the health column says "unknown"). On the first visit after the
    console starts the informer is still listing: the page waits for it, within its deadline, rather than show every
    row's health as unknown until a reload."""
    grouped = api.endpoint_slices_everywhere(access.actor)  # starts the informer on first use
    if grouped is not None or not _may_list_slices_everywhere(access):
        return grouped
    informer = informers.peek(access.cluster, api.ENDPOINT_SLICES_EVERYWHERE)
    if informer is None:
        return None  # it kept failing and rests: no list is coming
    informer.snapshot(wait=max(deadline - time.monotonic() - DRAW_MARGIN, 0.0))
    return api.endpoint_slices_everywhere(access.actor)


def ask_cluster(access: Access, deadline: float, language: str, first: int = 0) -> ClusterServices:
    """One cluster's part of the page (runs in a worker thread, in the user's language). ``first``: only that many
    Services are needed (an unfiltered first page) while the cluster's informer has not listed yet."""
    answer = ClusterServices(access)
    with translation.override(language):
        try:
            everywhere = None
            if access.cluster_wide:
                if _may_list_slices_everywhere(access):
                    # Started before the Services are read, so that a cold informer lists while they are.
                    informers.get(access.cluster, api.ENDPOINT_SLICES_EVERYWHERE)
                wait_for = max(deadline - time.monotonic() - DRAW_MARGIN, 0.0)
                everywhere = api.services_everywhere(access.actor, wait=wait_for, first=first)
            if everywhere is not None:
                answer.services, answer.complete = everywhere
                answer.slices = _slices_everywhere(access, deadline)
            else:
                # Namespaces the user holds grants in; a cluster-wide user the cluster will not let list everywhere
                # gets its namespaces one by one (the live calls show the cluster's own refusal).
                namespaces = (
                    kube.list_namespaces(access.actor) if access.cluster_wide else sorted(access.namespace_roles)
                )
                answer.services = _namespaced(access, namespaces, deadline)
                try:
                    answer.slices = _slices_namespaced(access, namespaces)
                except (api.ApiError, kube.ClusterUnavailable):
                    answer.slices = None
            if any(s.get("spec", {}).get("type") in (m.NODE_PORT, m.LOAD_BALANCER) for s in answer.services):
                try:
                    answer.node_ips = api.node_addresses(access.actor)
                except (api.ApiError, kube.ClusterUnavailable):
                    answer.node_ips = []
        except api.ApiError as error:
            answer.error = error.message
        except kube.ClusterUnavailable as unavailable:
            answer.error = str(unavailable)
    return answer


def ask_every_cluster(accesses: list[Access], seconds: float, first: int = 0) -> list[ClusterServices]:
    """Every cluster's answer, in the order given; one that has not answered within ``seconds`` gets an error. The
    threads of slow clusters are left to finish on their own (their calls have the client's timeouts): the page does
    not wait for them."""
    if not accesses:
        return []
    deadline = time.monotonic() + seconds
    language = translation.get_language()
    pool = ThreadPoolExecutor(max_workers=min(len(accesses), 16), thread_name_prefix="fleet")
    try:
        futures = [pool.submit(ask_cluster, access, deadline, language, first) for access in accesses]
        wait(futures, timeout=max(deadline - time.monotonic(), 0.0))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    answers = []
    for access, future in zip(accesses, futures, strict=True):
        if future.done() and not future.cancelled() and future.exception() is None:
            answers.append(future.result())
        elif future.done() and not future.cancelled():
            # Not a refusal or an unreachable cluster (those are answers): a defect, logged with its traceback.
            error = future.exception()
            log.error("All my Services: reading %s failed", access.cluster.name, exc_info=error)
            answers.append(ClusterServices(access, error=_("The console could not read this cluster's Services.")))
        else:
            message = _("The cluster did not answer within %(seconds).1f s; its Services are not shown.") % {
                "seconds": seconds
            }
            answers.append(ClusterServices(access, error=message))
    return answers


# --- filters ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    cluster: str = ""
    namespace: str = ""
    type: str = ""
    health: str = ""
    query: str = ""
    page: int = 1

    @classmethod
    def from_query(cls, query: Any, cluster_names: set[str]) -> Filters:
        """The filters from a URL's query string; anything that is not one of the choices is ignored (the page shows
        everything rather than a refusal for a hand-edited address)."""
        cluster = query.get("cluster", "")
        namespace = query.get("namespace", "")
        kind = query.get("type", "")
        state = query.get("health", "")
        return cls(
            cluster=cluster if cluster in cluster_names else "",
            namespace=namespace if len(namespace) <= 63 and DNS1123_LABEL.match(namespace) else "",
            type=kind if kind in m.SERVICE_TYPES else "",
            health=state if state in HEALTH_STATES else "",
            query=query.get("q", "").strip()[:253],
            page=max(m.parse_number(query.get("page", ""), max_digits=6) or 1, 1),
        )

    def query_string(self, **changes: Any) -> str:
        values = {
            "cluster": self.cluster,
            "namespace": self.namespace,
            "type": self.type,
            "health": self.health,
            "q": self.query,
            "page": self.page if self.page > 1 else "",
        } | changes
        return urlencode({key: value for key, value in values.items() if value})


def _addresses(service: dict) -> list[str]:
    spec, status = service.get("spec") or {}, service.get("status") or {}
    found = [*(spec.get("clusterIPs") or [spec.get("clusterIP") or ""]), *(spec.get("externalIPs") or [])]
    found.append(spec.get("loadBalancerIP") or "")
    for ingress in (status.get("loadBalancer") or {}).get("ingress") or []:
        found += [ingress.get("ip") or "", ingress.get("hostname") or ""]
    return [address for address in found if address and address != "None"]


def _looks_like_address(text: str) -> bool:
    """Whether a search is (the start of) an IP address: digits with dots, or hex with colons."""
    if ":" in text:
        return all(c in "0123456789abcdef:." for c in text)
    return "." in text and all(c in "0123456789." for c in text)


def matches(service: dict, query: str) -> bool:
    """Search by name (any part), by IP address (an address of the Service starting with the text, or the whole
    address in any spelling), or by number (a port, target port or node port)."""
    text = query.lower()
    if text in service["metadata"]["name"]:
        return True
    number = m.parse_number(text, max_digits=5)
    if number is not None:
        for port in (service.get("spec") or {}).get("ports") or []:
            if number in (port.get("port"), port.get("nodePort"), port.get("targetPort")):
                return True
        return False
    if _looks_like_address(text):
        addresses = _addresses(service)
        if any(address.lower().startswith(text) for address in addresses):
            return True
        try:
            wanted = ipaddress.ip_address(text)
        except ValueError:
            return False
        return any(_same_address(address, wanted) for address in addresses)
    return False


def _same_address(address: str, wanted: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        return ipaddress.ip_address(address) == wanted
    except ValueError:
        return False


def health_state(service: dict, answer: ClusterServices) -> str:
    if answer.slices is None:
        return "unknown"
    metadata = service["metadata"]
    return health.health(service, answer.slices.get((metadata.get("namespace", ""), metadata["name"]), [])).state


@dataclass
class Page:
    rows: list[dict]
    errors: list[ClusterServices]
    total: int
    has_next: bool
    namespaces: list[str]
    complete: bool = True  # False: some clusters sent only their first Services (``total`` counts those)


def build_page(answers: list[ClusterServices], filters: Filters, labels: dict[str, dict[str, str]]) -> Page:
    """The page's rows: every answered cluster's Services that pass the filters, in cluster, namespace and name
    order, ``PAGE_SIZE`` at a time; the clusters that failed, for their error rows."""
    chosen: list[tuple[ClusterServices, dict]] = []
    namespaces: set[str] = set()
    for answer in answers:
        if answer.error:
            continue
        for service in answer.services:
            namespace = service["metadata"].get("namespace", "")
            namespaces.add(namespace)
            if filters.namespace and namespace != filters.namespace:
                continue
            if filters.type and service.get("spec", {}).get("type", m.CLUSTER_IP) != filters.type:
                continue
            if filters.query and not matches(service, filters.query):
                continue
            if filters.health and health_state(service, answer) != filters.health:
                continue
            chosen.append((answer, service))
    start = (filters.page - 1) * PAGE_SIZE
    rows = [_row(answer, service, labels) for answer, service in chosen[start : start + PAGE_SIZE]]
    complete = all(answer.complete for answer in answers)
    return Page(
        rows=rows,
        errors=[answer for answer in answers if answer.error],
        total=len(chosen),
        has_next=len(chosen) > start + PAGE_SIZE or not complete,
        namespaces=sorted(namespaces),
        complete=complete,
    )


def _row(answer: ClusterServices, service: dict, labels: dict[str, dict[str, str]]) -> dict:
    access, metadata = answer.access, service["metadata"]
    namespace = metadata.get("namespace", "")
    cluster = access.cluster
    list_url = reverse("services:list", args=[cluster.name, namespace])
    lead = (
        f'<td data-label="{labels["lead"]["cluster"]}"><a href="{escape(reverse("clusters:cluster_detail", args=[cluster.name]))}">'
        f"{escape(cluster.label)}</a></td>"
        f'<td data-label="{labels["lead"]["namespace"]}"><a href="{escape(list_url)}">{escape(namespace)}</a></td>'
    )
    slices = None if answer.slices is None else answer.slices.get((namespace, metadata["name"]), [])
    row_labels = labels["edit"] if access.can_edit(namespace) else labels["view"]
    return listing.row(service, answer.node_ips, list_url, row_labels, slices, lead=lead)


@require_GET
@login_required
@vary_on_headers("HX-Request")
def fleet_list(request: HttpRequest) -> HttpResponse:
    """All my Services (its table alone under HTMX)."""
    accesses = every_cluster(request)
    filters = Filters.from_query(request.GET, {access.cluster.name for access in accesses})
    asked = [access for access in accesses if not filters.cluster or access.cluster.name == filters.cluster]
    # An unfiltered first page needs only its first rows: a cluster whose informer has not listed yet is asked for
    # those alone (as a script's first page would be) rather than for all of its Services.
    unfiltered = filters == Filters(cluster=filters.cluster)
    answers = ask_every_cluster(asked, settings.FLEET_DEADLINE, first=PAGE_SIZE if unfiltered else 0)
    labels = {
        "edit": listing.row_labels(True),
        "view": listing.row_labels(False),
        "lead": {"cluster": escape(pgettext("a Kubernetes cluster", "Cluster")), "namespace": escape(_("Namespace"))},
    }
    page = build_page(answers, filters, labels)
    context = {
        "clusters": accesses,
        "filters": filters,
        "page": page,
        "types": m.SERVICE_TYPES,
        "health_states": [
            ("ok", _("All endpoints ready")),
            ("partial", _("Some endpoints ready")),
            ("bad", _("No endpoint ready")),
            ("none", _("Not applicable")),
            ("unknown", _("Unknown")),
        ],
        "next_query": filters.query_string(page=filters.page + 1),
        "first_query": filters.query_string(page=""),
        # The rows' Delete opens one shared dialog (console.js), drawn when any row can be deleted.
        "can_edit_any": any(a.can_edit_cluster or any(map(a.can_edit, a.namespace_roles)) for a in asked),
        "answered": sum(1 for answer in answers if not answer.error),
        "nav": "fleet",
    }
    template = "services/fleet.html#table" if request.htmx else "services/fleet.html"
    return render(request, template, context)
