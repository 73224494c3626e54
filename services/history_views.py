"""A Service's history: its versions newest first with who made each change and when, a field-level comparison of
any two, restoring a version onto the live Service, and making a deleted Service again (undelete).

Reading is for those who may view the namespace, restoring and undeleting for those who may edit there, checked
in Python on every URL before anything is read. A version is looked up within the Service of the URL only, so the
id of another namespace's version is not found. Restore and undelete show the change first (a dry run as the
user), then write with the resourceVersion the person saw: a concurrent change is a conflict shown with the choice
kept, never overwritten."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers

import kube
from clusters.access import Access, namespace_access
from services import api, history, listing, live_checks, versions
from services import manifest as m
from services.forms import warning_notices
from services.models import ServiceVersion
from services.views import ClusterDown, ServiceGone, answers_failures, audit_action, get_service_or_gone

DELETED = ServiceVersion.Change.DELETED


def urls(route: str) -> list:
    """The history's URL patterns under ``route`` (a Service's ``.../history/``)."""
    return [
        path(route, service_history, name="history"),
        path(f"{route}compare/", compare_versions, name="history_compare"),
        path(f"{route}<int:version>/restore/", restore_version, name="restore"),
        path(f"{route}undelete/", undelete_service, name="undelete"),
    ]


# --- shared pieces ------------------------------------------------------------------------------------------------


def _live(access: Access, namespace: str, name: str) -> tuple[dict | None, str]:
    """The live Service (None when there is none) and, when the cluster could not say, why."""
    try:
        return api.get_service(access.actor, namespace, name), ""
    except api.ApiError as error:
        return None, "" if error.status == 404 else error.message
    except kube.ClusterUnavailable as error:
        return None, str(error)


def _not_found(request: HttpRequest, access: Access, namespace: str, message: str) -> HttpResponse:
    """A 404 in the layout that says what is missing (a version id that is not of this Service, say)."""
    context = {"access": access, "namespace": namespace, "title": _("Not found"), "message": message}
    return render(request, "error.html", context | {"nav": "services"}, status=404)


def _may_see_audit(request: HttpRequest) -> bool:
    return request.user.is_staff and request.user.has_perm("console.view_auditentry")


def _reasons(error: api.ApiError) -> list[str]:
    """The API server's refusal and its causes, the known ones in the user's language."""
    causes = [f"{c['field']}: {api.explained(c.get('message', ''))}" for c in error.causes if c.get("field")]
    return [api.explained(error.message), *causes]


def _port_taken(error: api.ApiError) -> bool:
    texts = [error.message, *(c.get("message", "") for c in error.causes)]
    return error.status == 422 and any("port is already allocated" in text for text in texts)


def _history_url(access: Access, namespace: str, name: str) -> str:
    return reverse("services:history", args=[access.cluster.name, namespace, name])


# --- the history page ---------------------------------------------------------------------------------------------


@require_GET
@login_required
@answers_failures
def service_history(request: HttpRequest, cluster: str, namespace: str, name: str) -> HttpResponse:
    access = namespace_access(request, cluster, namespace)
    before = versions.version_id(request.GET.get("before", ""))
    page, older = versions.history_page(access, namespace, name, before)
    live, live_error = _live(access, namespace, name)
    if not page and before is None and live is None and not live_error:
        raise ServiceGone(access, namespace, name)
    can_edit = access.can_edit(namespace)
    live_uid = (live or {}).get("metadata", {}).get("uid")
    live_version = (live or {}).get("metadata", {}).get("resourceVersion")
    rows = []
    for version in page:
        current = version.uid == live_uid and version.resource_version == live_version
        restorable = can_edit and live is not None and not current and version.change != DELETED
        rows.append({"version": version, "current": current, "restorable": restorable})
    newest = page[0] if page and before is None else None
    context = {
        "access": access,
        "namespace": namespace,
        "name": name,
        "live": live,
        "live_error": live_error,
        "rows": rows,
        "older_url": f"{_history_url(access, namespace, name)}?before={older}" if older else "",
        "paged": before is not None,
        # The newest version is the Service's deletion and no Service holds the name now: it can be made again.
        "deletion": newest if newest and newest.change == DELETED and live is None and not live_error else None,
        "can_edit": can_edit,
        "may_see_audit": _may_see_audit(request),
        "compare_url": reverse("services:history_compare", args=[cluster, namespace, name]),
        "nav": "services",
    }
    return render(request, "services/history.html", context)


# --- comparing two versions ---------------------------------------------------------------------------------------


@require_GET
@login_required
@vary_on_headers("HX-Request")
def compare_versions(request: HttpRequest, cluster: str, namespace: str, name: str) -> HttpResponse:
    """Two versions field by field (``a`` the older, ``b`` the newer; either order is taken): their changed paths
    and a YAML diff. Without ``a``, ``b`` is compared with the version before it; without ``b`` too, the newest
    change is shown. Under HTMX only the comparison is answered, for the history page to show in place."""
    access = namespace_access(request, cluster, namespace)
    wanted_a, wanted_b = request.GET.get("a", "").strip(), request.GET.get("b", "").strip()
    try:
        if wanted_b:
            newer = versions.get_version(access, namespace, name, wanted_b)
        else:
            newer = versions.of_service(access, namespace, name).first()
            if newer is None:
                raise Http404(_("No version of this Service has been recorded yet."))
            newer = versions.with_makers(access, namespace, [newer])[0]
        if wanted_a:
            older = versions.get_version(access, namespace, name, wanted_a)
        else:
            before = versions.previous(newer)
            older = versions.with_makers(access, namespace, [before])[0] if before else None
    except Http404 as missing:
        return _not_found(request, access, namespace, str(missing))
    if older is not None and older.pk > newer.pk:
        older, newer = newer, older
    same = older is not None and older.pk == newer.pk
    context = {
        "access": access,
        "namespace": namespace,
        "name": name,
        "older": older,
        "newer": newer,
        "same": same,
        "fields": [] if same else history.changed_fields(older.manifest if older else None, newer.manifest),
        "diff": [] if same else m.yaml_diff(older.manifest if older else None, newer.manifest),
        "may_see_audit": _may_see_audit(request),
        "history_url": _history_url(access, namespace, name),
        "nav": "services",
    }
    template = "services/history_compare.html#comparison" if request.htmx else "services/history_compare.html"
    return render(request, template, context)


# --- restore and undelete: a plan (the diff and the API server's dry run), then the write ------------------------


@dataclass
class Plan:
    """What a restore or undelete would write, as the person reviews it: the body, the diff against the Service as
    it is, what cannot be taken back and why (``notes``), the API server's refusal of the dry run (``errors``) and
    its warnings; ``assign_node_ports`` when the version's node ports are held by others now."""

    body: dict
    diff: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    assign_node_ports: bool = False
    refusal: api.ApiError | None = None


# A create or replace of one Service, as the user: ``write(body, dry_run=…, warnings=…)``.
Write = Callable[..., dict]


def _dry_run(plan: Plan, before: dict | None, write: Write) -> Plan:
    """Ask the API server (as the user) whether it would take ``plan.body``: the diff from its answer, else its
    refusal. ``write`` is the call (create or replace) with ``dry_run`` and ``warnings`` left to give."""
    warnings: list[str] = []
    try:
        answer = write(plan.body, dry_run=True, warnings=warnings)
    except api.ApiError as error:
        plan.errors, plan.diff, plan.refusal = _reasons(error), m.yaml_diff(before, plan.body), error
    except kube.ClusterUnavailable as error:
        plan.errors, plan.diff = [str(error)], m.yaml_diff(before, plan.body)
    else:
        shown = m.without_invented_node_ports(answer, plan.body, _("(assigned by the cluster when saved)"))
        plan.diff = m.yaml_diff(before, shown)
    plan.warnings = warning_notices(warnings)
    return plan


def _replace(access: Access, namespace: str, name: str) -> Write:
    return lambda body, **options: api.replace_service(access.actor, namespace, name, body, **options)


def _restore_notes(version: dict, live: dict, reasons: list[str]) -> list[str]:
    """What a restore of ``version`` onto ``live`` cannot take back, or changes besides the fields, in words."""
    then, now = version.get("spec") or {}, live.get("spec") or {}
    notes = []
    if "cluster-ip" in reasons:
        if then.get("clusterIP") == "None":
            notes.append(
                _(
                    "This version was headless (no cluster IP). A Service cannot give up its cluster IP, so it keeps "
                    "%(now)s."
                )
                % {"now": now.get("clusterIP", "")}
            )
        else:
            notes.append(
                _(
                    "This version had cluster IP %(then)s. The cluster assigned %(now)s since, and a Service keeps its cluster IP."
                )
                % {"then": then.get("clusterIP", ""), "now": now.get("clusterIP", "")}
            )
    if "external-name" in reasons:
        notes.append(
            _(
                "This version is an ExternalName Service: restoring it makes the Service a DNS alias and releases its cluster IP."
            )
        )
    elif (then.get("type") or m.CLUSTER_IP) != (now.get("type") or m.CLUSTER_IP):
        notes.append(
            _("The type changes from %(now)s to %(then)s.")
            % {"now": now.get("type") or m.CLUSTER_IP, "then": then.get("type") or m.CLUSTER_IP}
        )
    return notes


def _node_port_note(access: Access, namespace: str, version: dict, live: dict) -> str:
    """Why the restore leaves the node ports to the cluster: the version's ports that others hold now (named to
    those who may see their holder)."""
    wanted = [p.get("nodePort") for p in (version.get("spec") or {}).get("ports") or []]
    ports = [p for p in wanted if isinstance(p, int) and not isinstance(p, bool)]
    held = " ".join(live_checks.node_port_problems(access, namespace, ports, live).values())
    parts = (
        _("A node port of this version is held by another Service now."),
        held,
        _("The restore lets the cluster assign new node ports."),
    )
    return " ".join(part for part in parts if part)


def _restore_plan(
    access: Access, namespace: str, chosen: ServiceVersion, live: dict, *, assign_node_ports: bool = False
) -> Plan:
    """The restore of ``chosen`` onto ``live``, judged by a dry run; when a node port of the version is taken
    now, judged again with the node ports left to the cluster, and said so."""
    body, reasons = history.restore_body(chosen.manifest, live)
    if assign_node_ports:
        body = history.without_node_ports(body)
    plan = Plan(body, notes=_restore_notes(chosen.manifest, live, reasons), assign_node_ports=assign_node_ports)
    plan = _dry_run(plan, live, _replace(access, namespace, chosen.name))
    if plan.refusal is not None and _port_taken(plan.refusal) and not assign_node_ports:
        plan = _restore_plan(access, namespace, chosen, live, assign_node_ports=True)
        plan.notes.insert(0, _node_port_note(access, namespace, chosen.manifest, live))
    return plan


def _confirm(
    request: HttpRequest, access: Access, namespace: str, name: str, status: int = 200, **extra: Any
) -> HttpResponse:
    """The review page of a restore or an undelete (``mode``), or its refusal."""
    context = {
        "access": access,
        "namespace": namespace,
        "name": name,
        "may_see_audit": _may_see_audit(request),
        "history_url": _history_url(access, namespace, name),
        "nav": "services",
        **extra,
    }
    return render(request, "services/history_confirm.html", context, status=status)


def _render_restore(
    request: HttpRequest, access: Access, namespace: str, chosen: ServiceVersion, live: dict, plan: Plan, **extra: Any
) -> HttpResponse:
    status = extra.pop("status", 200)
    return _confirm(
        request,
        access,
        namespace,
        chosen.name,
        status,
        mode="restore",
        version=chosen,
        plan=plan,
        live=live,
        resource_version=live["metadata"].get("resourceVersion", ""),
        action_url=reverse("services:restore", args=[access.cluster.name, namespace, chosen.name, chosen.pk]),
        **extra,
    )


def _live_for_restore(request: HttpRequest, access: Access, namespace: str, name: str) -> dict | HttpResponse:
    """The live Service a restore writes onto; when it is gone, back to the history, which offers the undelete."""
    try:
        return get_service_or_gone(access, namespace, name)
    except ServiceGone:
        messages.error(
            request,
            _("The Service “%(name)s” no longer exists: a version can only be restored onto a Service that exists.")
            % {"name": name},
        )
        return HttpResponseRedirect(_history_url(access, namespace, name))


def _changed_by(live: dict) -> str:
    """Who changed the live Service last, as its managedFields say (for the conflict notice)."""
    _when, makers = history.change_makers(live)
    return ", ".join(f"{x['manager']} ({x['operation']})" if x["operation"] else x["manager"] for x in makers)


@require_http_methods(["GET", "POST"])
@login_required
@answers_failures
def restore_version(request: HttpRequest, cluster: str, namespace: str, name: str, version: int) -> HttpResponse:
    """GET: the restore of a version reviewed (the diff against the live Service and the API server's dry run).
    POST: the write, with the resourceVersion the person reviewed as precondition."""
    access = namespace_access(request, cluster, namespace, write=True)
    try:
        chosen = versions.get_version(access, namespace, name, version)
    except Http404 as missing:
        return _not_found(request, access, namespace, str(missing))
    live = _live_for_restore(request, access, namespace, name)
    if isinstance(live, HttpResponse):
        return live
    if request.method == "GET":
        return _render_restore(request, access, namespace, chosen, live, _restore_plan(access, namespace, chosen, live))
    assign = request.POST.get("assign_node_ports") == "1"
    seen = m.parse_number(request.POST.get("resource_version", ""), max_digits=20)
    if seen is None or not 0 < seen < 2**64:
        # Which version the person reviewed is unknown (none, or not a version number the API server can parse: and
        # "0" or none at all would have it replace whatever is there), so they review it again.
        plan = _restore_plan(access, namespace, chosen, live, assign_node_ports=assign)
        return _render_restore(request, access, namespace, chosen, live, plan, conflict=_changed_by(live), status=409)
    body, _reasons_kept = history.restore_body(chosen.manifest, live)
    body = history.without_node_ports(body) if assign else body
    body["metadata"]["resourceVersion"] = str(seen)
    warnings: list[str] = []
    try:
        stored = api.replace_service(access.actor, namespace, name, body, warnings=warnings)
    except api.ApiError as error:
        audit_action(request, access, namespace, "restore", name, "failed", f"version={chosen.pk}: {error.message}")
        return _restore_refused(request, access, namespace, chosen, error, assign)
    except kube.ClusterUnavailable as error:
        audit_action(request, access, namespace, "restore", name, "failed", f"version={chosen.pk}: {error}")
        raise ClusterDown(access, namespace, str(error)) from error
    metadata = stored["metadata"]
    listing.remember_write(request, access, namespace, resource_version=metadata["resourceVersion"])
    detail = f"version={chosen.pk} resourceVersion={chosen.resource_version} uid={metadata['uid']}"
    audit_action(
        request,
        access,
        namespace,
        "restore",
        name,
        "success",
        detail,
        written=stored,
    )
    messages.success(
        request,
        _("Service “%(name)s” restored to its version of %(when)s.")
        % {"name": name, "when": date_format(timezone.localtime(chosen.changed_at), "DATETIME_FORMAT")},
    )
    for notice in warning_notices(warnings):
        messages.warning(request, notice)
    return HttpResponseRedirect(reverse("services:detail", args=[cluster, namespace, name]))


def _restore_refused(
    request: HttpRequest, access: Access, namespace: str, chosen: ServiceVersion, error: api.ApiError, assign: bool
) -> HttpResponse:
    """The restore page again after the API server refused the write: a conflict (the Service changed since it was
    reviewed) with the diff against the Service as it is now; a node port taken meanwhile, with the node ports left
    to the cluster; anything else with the refusal. The version stays chosen: the person can restore again."""
    live = _live_for_restore(request, access, namespace, chosen.name)
    if isinstance(live, HttpResponse):
        return live
    if error.status == 409:
        plan = _restore_plan(access, namespace, chosen, live, assign_node_ports=assign)
        return _render_restore(request, access, namespace, chosen, live, plan, conflict=_changed_by(live), status=409)
    if _port_taken(error) and not assign:
        plan = _restore_plan(access, namespace, chosen, live, assign_node_ports=True)
        plan.notes.insert(0, _node_port_note(access, namespace, chosen.manifest, live))
        return _render_restore(request, access, namespace, chosen, live, plan, refused=True, status=409)
    plan = _restore_plan(access, namespace, chosen, live, assign_node_ports=assign)
    plan.errors = plan.errors or _reasons(error)
    return _render_restore(request, access, namespace, chosen, live, plan, status=403 if error.status == 403 else 422)


@require_http_methods(["GET", "POST"])
@login_required
@answers_failures
def undelete_service(request: HttpRequest, cluster: str, namespace: str, name: str) -> HttpResponse:
    """GET: the Service made again from its last version before the deletion, reviewed (a dry run as the user).
    POST: the create. Only while no Service holds the name; what the cluster assigned the old one (addresses, node
    ports, uid) it assigns afresh."""
    access = namespace_access(request, cluster, namespace, write=True)
    found = versions.deletion_to_undo(access, namespace, name)
    if found is None:
        message = _("The history of “%(name)s” ends in no deletion: there is nothing to undelete.") % {"name": name}
        return _not_found(request, access, namespace, message)
    deletion, source = found
    live, live_error = _live(access, namespace, name)
    if live_error:
        raise ClusterDown(access, namespace, live_error)
    options = {"mode": "undelete", "version": source, "deletion": deletion}
    if live is not None:
        return _confirm(request, access, namespace, name, 409, taken=live, **options)
    plan = Plan(history.undelete_body(source.manifest))
    options["action_url"] = reverse("services:undelete", args=[cluster, namespace, name])

    def create(body: dict, **kwargs: Any) -> dict:
        return api.create_service(access.actor, namespace, body, **kwargs)

    if request.method == "GET":
        return _confirm(request, access, namespace, name, plan=_dry_run(plan, None, create), **options)
    if request.POST.get("deletion", "") != str(deletion.pk):
        # The history moved on since the review (made again and deleted again, say): what would be created now is
        # not what the person saw. Shown again, to be reviewed.
        return _confirm(request, access, namespace, name, 409, plan=_dry_run(plan, None, create), stale=True, **options)
    warnings: list[str] = []
    try:
        stored = create(plan.body, warnings=warnings)
    except api.ApiError as error:
        audit_action(request, access, namespace, "undelete", name, "failed", f"version={source.pk}: {error.message}")
        live, _error = _live(access, namespace, name)
        if live is not None:  # made by someone else meanwhile
            return _confirm(request, access, namespace, name, 409, taken=live, **options)
        plan = _dry_run(plan, None, create)
        plan.errors = plan.errors or _reasons(error)
        return _confirm(request, access, namespace, name, 403 if error.status == 403 else 422, plan=plan, **options)
    except kube.ClusterUnavailable as error:
        audit_action(request, access, namespace, "undelete", name, "failed", f"version={source.pk}: {error}")
        raise ClusterDown(access, namespace, str(error)) from error
    metadata = stored["metadata"]
    listing.remember_write(request, access, namespace, resource_version=metadata["resourceVersion"])
    audit_action(
        request,
        access,
        namespace,
        "undelete",
        name,
        "success",
        f"version={source.pk} uid={metadata['uid']}",
        written=stored,
    )
    messages.success(request, _("Service “%(name)s” created again.") % {"name": name})
    for notice in warning_notices(warnings):
        messages.warning(request, notice)
    return HttpResponseRedirect(reverse("services:detail", args=[cluster, namespace, name]))


# --- deleted Services of a namespace -----------------------------------------------------------------------------


@require_GET
@login_required
def deleted_services(request: HttpRequest, cluster: str, namespace: str) -> HttpResponse:
    """The namespace's Services whose last version is their deletion: where a deleted Service's history (and its
    undelete) is found."""
    access = namespace_access(request, cluster, namespace)
    context = {
        "access": access,
        "namespace": namespace,
        "deleted": versions.deleted_services(access, namespace),
        "can_edit": access.can_edit(namespace),
        "may_see_audit": _may_see_audit(request),
        "nav": "services",
    }
    return render(request, "services/deleted.html", context)
