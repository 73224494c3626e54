"""The Services list: one page of Services (from the namespace's informer when it can answer, else from the API
server), its rows as HTML, and the note of a user's own writes that keeps the informer honest for them."""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.safestring import mark_safe
from django.utils.timesince import timesince
from django.utils.translation import gettext as _

from clusters.access import Access
from services import api, health
from services import manifest as m

if TYPE_CHECKING:
    from services.versions import LastChange

PAGE_SIZE = api.PAGE_SIZE


# A user's own writes, so their next list of the namespace shows them even when it is answered from the informer
# (``kube.informer``): per cluster and namespace, the highest resourceVersion written and the uids deleted.
WRITES_KEY = "service_writes"
WRITES_KEPT_SECONDS = 120
WRITE_WAIT_SECONDS = 2.0


def remember_write(
    request: HttpRequest, access: Access, namespace: str, *, resource_version: str = "", deleted_uid: str = ""
) -> None:
    now = time.time()
    writes = {
        key: entry for key, entry in request.session.get(WRITES_KEY, {}).items() if now - entry[2] < WRITES_KEPT_SECONDS
    }
    key = f"{access.cluster.pk}/{namespace}"
    version, deleted, _at = writes.get(key, (0, [], now))
    written = m.parse_number(resource_version, max_digits=20)
    if written is not None:
        version = max(version, written)
    if deleted_uid:
        deleted = [*deleted[-19:], deleted_uid]
    writes[key] = (version, deleted, now)
    request.session[WRITES_KEY] = writes


def _own_writes(request: HttpRequest, access: Access, namespace: str) -> tuple[int, tuple[str, ...]] | None:
    entry = request.session.get(WRITES_KEY, {}).get(f"{access.cluster.pk}/{namespace}")
    if entry is None or time.time() - entry[2] >= WRITES_KEPT_SECONDS:
        return None
    return entry[0], tuple(entry[1])


# A list row is built as one string: through the template engine the 20 rows took half of the page's time (about
# 25 variable lookups and 3 loops each), and through format_html still 0.1 ms a row. Every value is escaped with
# html.escape (what Django's escape does) exactly once; the labels are translated and escaped once per page.
# The data-label attributes name each cell where a phone shows the row as a card (the table head is hidden there).
_ROW = (
    '<tr>{lead}<td class="row-name"><a href="{url}">{name}</a>{changed}</td>'
    '<td data-label="{l_type}"><span class="tag">{type}</span></td>'
    '<td data-label="{l_health}">{health}</td>'
    '<td class="mono" data-label="{l_access}">{access}</td><td class="mono" data-label="{l_ports}">{ports}</td>'
    '<td data-label="{l_selector}">{selector}</td><td data-label="{l_created}">{created}</td>'
    '<td class="row-menu">{menu}</td></tr>'
)
_ROW_MENU = (
    '<details class="menu"><summary aria-label="{actions}">︙</summary><div class="menu-items">'
    '<a href="{url}edit/">{edit}</a><a href="{url}edit-yaml/">{edit_yaml}</a>'
    '<a class="danger" href="{url}?delete" data-delete-url="{url}delete/" data-uid="{uid}" data-name="{name}">'
    "{delete}</a></div></details>"
)


_NO_SELECTOR = '<span class="muted">—</span>'


def created_html(stamp: str, ago: str | None = None, now: datetime | None = None) -> str:
    """A creation time as consoles show it: the age ("3 minutes ago") in the active language, the full local date
    and time in the title, the timestamp itself in ``datetime``. ``ago`` is the translated "%(time)s ago", passed
    in by the list so it is looked up once per page."""
    try:
        when = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return f'<time datetime="{escape(stamp)}">{escape(stamp)}</time>' if stamp else _NO_SELECTOR
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or timezone.now()
    # Under a minute (or a clock ahead of ours) timesince says "0 minutes"; depth=1 gives "3 hours", not "3 hours,
    # 12 minutes".
    if (now - when).total_seconds() < 60:
        age = _("just now")
    else:
        age = (ago or _("%(time)s ago")) % {"time": timesince(when, now, depth=1)}
    full = _full_date(when, translation.get_language(), timezone.get_current_timezone_name())
    return f'<time datetime="{escape(stamp)}" title="{escape(full)}">{escape(age)}</time>'


@functools.lru_cache(maxsize=4096)
def _full_date(when: datetime, language: str, zone: str) -> str:
    """A moment as the active language writes a date and time, in the active time zone (both part of the key):
    formatting it is most of a row's cost, and a Service's creation time never changes."""
    return date_format(timezone.localtime(when), "DATETIME_FORMAT")


def row_labels(can_edit: bool) -> dict[str, str]:
    """The row's fixed words in the active language, escaped once per page."""
    labels = {
        "pending": _("LB address pending"),
        "ago": _("%(time)s ago"),
        "l_type": _("Type"),
        "l_access": _("Access"),
        "l_ports": _("Ports"),
        "l_selector": _("Selector"),
        "l_created": _("Created"),
        "l_health": _("Endpoints ready"),
        "health_title": _("%(ready)d of %(total)d endpoints ready"),
        "health_none": _("n/a"),
        "health_none_title": _("Not applicable: an ExternalName Service, or no selector and no EndpointSlice"),
        "health_unknown": _("unknown"),
        "changed_by": _("Last changed by %(who)s, %(when)s"),
        "changed": _("Last changed %(when)s"),
    }
    if can_edit:
        labels |= {
            "actions": _("Actions for %(name)s"),
            "edit": _("Edit"),
            "edit_yaml": _("Edit YAML"),
            "delete": _("Delete"),
        }
    # "ago" and "health_title" are formats, escaped with their values filled in.
    return {key: value if key in ("ago", "health_title") else escape(value) for key, value in labels.items()}


def health_html(service: dict, slices: list[dict] | None, labels: dict[str, str]) -> str:
    """The health cell: ready/total endpoints ("n/a" where it has no meaning, "unknown" when the EndpointSlices
    could not be read)."""
    if slices is None:
        return f'<span class="health health-unknown">{labels["health_unknown"]}</span>'
    found = health.health(service, slices)
    if not found.applicable:
        return f'<span class="health health-none" title="{labels["health_none_title"]}">{labels["health_none"]}</span>'
    title = escape(labels["health_title"] % {"ready": found.ready, "total": found.total})
    return f'<span class="health health-{found.state}" title="{title}">{found.ready}/{found.total}</span>'


def changed_html(change: LastChange | None, url: str, labels: dict[str, str]) -> str:
    """The row's "Last changed by …, … ago", linked to the Service's history."""
    if change is None:
        return ""
    when = created_html(change.when.isoformat(), labels["ago"])
    if change.who:
        text = labels["changed_by"] % {"who": f'<span class="maker">{escape(change.who)}</span>', "when": when}
    else:
        text = labels["changed"] % {"when": when}
    return f'<div class="row-changed"><a href="{url}history/">{text}</a></div>'


def row(
    service: dict,
    node_ips: list[str],
    base_url: str,
    labels: dict[str, str],
    slices: list[dict] | None = None,
    lead: str = "",
    changed: LastChange | None = None,
) -> dict[str, Any]:
    """One row of a Services list. ``lead``: cells drawn before the name, already escaped (All my Services puts
    the cluster and the namespace there); ``changed``: the Service's last recorded change."""
    spec, metadata = service.get("spec", {}), service["metadata"]
    name, url = metadata["name"], f"{base_url}{metadata['name']}/"
    created = metadata.get("creationTimestamp", "")
    row = {
        "name": name,
        "url": url,
        "uid": metadata.get("uid", ""),
        "type": spec.get("type", m.CLUSTER_IP),
        "access": m.access_addresses(service, node_ips),
        "pending": m.load_balancer_pending(service),
        "ports": [
            f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/{p.get('protocol', 'TCP')}"
            + (f" → {p['targetPort']}" if p.get("targetPort") not in (None, p.get("port")) else "")
            for p in spec.get("ports") or []
        ],
        "selector": [f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items())],
        "created": created,
    }
    safe = {"name": escape(name), "url": escape(url), "uid": escape(row["uid"])}
    access = "".join(f"<div>{escape(address)}</div>" for address in row["access"])
    if row["pending"]:
        access += f'<div class="muted">{labels["pending"]}</div>'
    menu = ""
    if "actions" in labels:
        menu = _ROW_MENU.format(
            actions=labels["actions"] % {"name": safe["name"]},
            edit=labels["edit"],
            edit_yaml=labels["edit_yaml"],
            delete=labels["delete"],
            **safe,
        )
    row["html"] = mark_safe(  # noqa: S308 - every value above is escaped
        _ROW.format(
            type=escape(row["type"]),
            access=access,
            ports="".join(f"<div>{escape(port)}</div>" for port in row["ports"]),
            selector="".join(f'<span class="chip">{escape(s)}</span>' for s in row["selector"]) or _NO_SELECTOR,
            created=created_html(created, labels["ago"]),
            health=health_html(service, slices, labels),
            menu=menu,
            lead=lead,
            changed=changed_html(changed, safe["url"], labels),
            **{key: value for key, value in labels.items() if key.startswith("l_")},
            url=safe["url"],
            name=safe["name"],
        )
    )
    return row


def services_page(
    request: HttpRequest, access: Access, namespace: str, query: str, type_filter: str, page: int, continue_token: str
) -> tuple[list[dict], bool, str]:
    """One page of the list: (Services, whether more follow, the continue token for the next page or '').

    From the namespace's informer when it can answer (this user's own writes included), filtered and paged in
    memory; otherwise from the API server: one page with ``limit``/``continue``, or, for a filter (the API cannot
    filter by substring or type) or a page number, the whole namespace paged in memory."""
    cached = None
    if not continue_token:
        written = _own_writes(request, access, namespace)
        at_least, deleted = written or (0, ())
        wait = WRITE_WAIT_SECONDS if written else 0.0
        cached = api.cached_services(access.actor, namespace, at_least=at_least, without=deleted, wait=wait)
    if cached is None and not (query or type_filter or page > 1):
        items, next_token = api.list_services(
            access.actor, namespace, limit=PAGE_SIZE, continue_token=continue_token or None
        )
        return items, bool(next_token), next_token
    everything = cached if cached is not None else api.list_services(access.actor, namespace)[0]
    return *api.filtered_page(everything, query, type_filter, page), ""
