"""The Services pages. Each view is an access check, a form or a call, and an answer; the form's interactions
(live validation, type switch, rows, workload labels, a free node port) each have their own URL, and the form and
the YAML editor share one write path (``_write``)."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

import kube
from clusters import audit
from clusters.access import Access, cluster_for_user, may_edit_somewhere, namespace_access
from clusters.models import AuditEntry
from services import api, health, listing, live, live_checks, versions
from services import manifest as m
from services.forms import (
    DNS1123_LABEL,
    MAX_ROWS,
    NEW_ROW,
    PORTS,
    ROWS_OF,
    SELECTOR,
    ServiceFormBundle,
    service_from_yaml,
    warning_notices,
)

View = Callable[..., HttpResponse]


def _redirect(request: HttpRequest, url: str) -> HttpResponse:
    return HttpResponseClientRedirect(url) if request.htmx else HttpResponseRedirect(url)


def _namespaces(access: Access) -> list[str]:
    if access.cluster_wide:
        try:
            return kube.list_namespaces(access.actor)
        except kube.ClusterUnavailable:
            return []
    return sorted(access.namespace_roles)


def audit_action(
    request: HttpRequest,
    access: Access,
    namespace: str,
    action: str,
    name: str,
    result: str,
    detail: str = "",
    *,
    written: dict | None = None,
    uid: str = "",
) -> None:
    """Audit a Service action; ``written`` (the object a write returned) or ``uid`` (a deletion) tie the entry to
    the version the history recorder stores."""
    metadata = (written or {}).get("metadata") or {}
    audit.record(
        request,
        action=action,
        result=result,
        cluster=access.cluster.name,
        namespace=namespace,
        kind="Service",
        name=name,
        detail=detail,
        uid=metadata.get("uid") or uid,
        resource_version=metadata.get("resourceVersion", ""),
    )


# --- a Service that is gone, a cluster that cannot answer: raised by helpers, answered in one place --------------


class ServiceGone(Exception):
    def __init__(self, access: Access, namespace: str, name: str) -> None:
        super().__init__(name)
        self.access, self.namespace, self.name = access, namespace, name


class ClusterDown(Exception):
    def __init__(self, access: Access, namespace: str, message: str) -> None:
        super().__init__(message)
        self.access, self.namespace, self.message = access, namespace, message


def get_service_or_gone(access: Access, namespace: str, name: str) -> dict:
    """The live Service; raises ServiceGone when it does not exist and ClusterDown when the cluster cannot be asked
    or refuses the console. ``answers_failures`` turns both into pages."""
    try:
        return api.get_service(access.actor, namespace, name)
    except api.ApiError as error:
        if error.status == 404:
            raise ServiceGone(access, namespace, name) from error
        raise ClusterDown(access, namespace, error.message) from error
    except kube.ClusterUnavailable as unavailable:
        raise ClusterDown(access, namespace, str(unavailable)) from unavailable


def answers_failures(view: View) -> View:
    """A Service that is gone sends the user back to the list with a message; a cluster that cannot answer gets a
    plain page saying so (503)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except ServiceGone as gone:
            messages.error(request, _("The Service “%(name)s” no longer exists.") % {"name": gone.name})
            return _redirect(request, reverse("services:list", args=[gone.access.cluster.name, gone.namespace]))
        except ClusterDown as down:
            context = {"access": down.access, "namespace": down.namespace, "error": down.message, "nav": "services"}
            return render(request, "services/unavailable.html", context, status=503)

    return wrapper


# --- list ---------------------------------------------------------------------------------------------------------


@require_GET
@login_required
def pick_namespace(request: HttpRequest, cluster: str) -> HttpResponse:
    """容器网络 → 服务 for a cluster: go to the chosen (or the first visible) namespace's Services."""
    access = cluster_for_user(request, cluster)
    wanted = request.GET.get("namespace", "")
    # Only a namespace name can be one (a superuser may view any, so the role check alone would let any text by).
    if len(wanted) <= 63 and DNS1123_LABEL.match(wanted) and access.can_view(wanted):
        return redirect("services:list", cluster, wanted)
    namespaces = _namespaces(access)
    if not namespaces:
        return redirect("clusters:cluster_detail", cluster)
    return redirect("services:list", cluster, "default" if "default" in namespaces else namespaces[0])


@require_GET
@login_required
@vary_on_headers("HX-Request")
def service_list(request: HttpRequest, cluster: str, namespace: str) -> HttpResponse:
    return _list(request, namespace_access(request, cluster, namespace), namespace)


def _list(request: HttpRequest, access: Access, namespace: str) -> HttpResponse:
    """The list page (its table under HTMX) for a user whose role was checked."""
    cluster = access.cluster.name
    shown = api.list_shown(request.GET)
    query, type_filter, page = shown
    continue_token = request.GET.get("continue", "")
    error, next_token, items, changes = "", "", [], {}
    # Read before the rows: a change landing in between makes the next poll redraw, never miss it.
    version = api.live_version(access.actor, namespace, shown) if not continue_token else ""
    slices: dict[str, list[dict]] | None = None
    try:
        items, has_next, next_token = listing.services_page(
            request, access, namespace, query, type_filter, page, continue_token
        )
        changes = versions.last_changes(access, namespace, items)
        needs_nodes = any(s.get("spec", {}).get("type") in (m.NODE_PORT, m.LOAD_BALANCER) for s in items)
        node_ips = api.node_addresses(access.actor) if needs_nodes else []
        try:
            slices = api.endpoint_slices_by_service(access.actor, namespace) if items else {}
        except (api.ApiError, kube.ClusterUnavailable):
            slices = None  # the health column says "unknown"; the rest of the list stands
    except api.ApiError as failure:
        if failure.status == 410:  # the continue token expired: start again from the first page
            return redirect(reverse("services:list", args=[cluster, namespace]))
        error, has_next, node_ips = failure.message, False, []
    except kube.ClusterUnavailable as unavailable:
        error, has_next, node_ips = str(unavailable), False, []
    base_url = reverse("services:list", args=[cluster, namespace])
    can_edit = access.can_edit(namespace)
    labels = listing.row_labels(can_edit)
    context = {
        "access": access,
        "namespace": namespace,
        # One failed call is enough: a cluster that just failed is not asked again for its namespaces.
        "namespaces": _namespaces(access) if not request.htmx and not error else [namespace],
        "list_url": base_url,
        "rows": [
            listing.row(
                s,
                node_ips,
                base_url,
                labels,
                None if slices is None else slices.get(s["metadata"]["name"], []),
                changed=changes.get(s["metadata"].get("uid")),
            )
            for s in items
        ],
        # The open page asks every second whether what it shows changed (console.js, 10; services.live): not for a
        # page reached through a continue token, which the API server answers once.
        "live_url": live.poll_url(
            request, reverse("services:list_live", args=[cluster, namespace]), access, namespace, request.GET, version
        )
        if not continue_token
        else "",
        "query": query,
        "type_filter": type_filter,
        "types": m.SERVICE_TYPES,
        "page": page,
        "next_token": next_token,
        "has_next": has_next,
        "continued": bool(continue_token) or page > 1,
        "can_edit": can_edit,
        "error": error,
        "nav": "services",
    }
    template = "services/list.html#table" if request.htmx else "services/list.html"
    return render(request, template, context)


def _unchanged(request: HttpRequest, access: Access, namespace: str, shown: tuple | str) -> bool:
    """Whether a live page's version (``?v=``) is still current: what it shows has not changed in its namespace's
    informers, and the cluster still lets the user list there (its cached review). Makes no API call while nothing
    changes."""
    since = request.GET.get("v", "")
    return bool(since) and since == api.live_version(access.actor, namespace, shown) and _may_list(access, namespace)


def _may_list(access: Access, namespace: str) -> bool:
    try:
        return kube.allowed(access.actor, "list", "services", namespace)
    except kube.ClusterUnavailable:
        return False


@require_GET
@login_required
def service_list_live(request: HttpRequest, cluster: str, namespace: str) -> HttpResponse:
    """An open list asking whether to redraw: 204 while nothing changed, else the table as the list draws it.
    (Most such polls are answered before this view: ``services.live``.)"""
    access = namespace_access(request, cluster, namespace)
    if _unchanged(request, access, namespace, api.list_shown(request.GET)):
        return _still(request, access, namespace)
    return _list(request, access, namespace)


def _still(request: HttpRequest, access: Access, namespace: str, service: str = "") -> HttpResponse:
    """Nothing changed: 204, with a fresh poll URL for ``services.live``'s shortcut (``console.js`` takes it)."""
    response = HttpResponse(status=204)
    response["X-Live-Url"] = live.poll_url(
        request, request.path, access, namespace, request.GET, request.GET["v"], service
    )
    return response


# --- the write path, shared by the form and the YAML editor -----------------------------------------------------


@dataclass
class Editor:
    """One create or edit: who may write where, the live Service (None when creating) and the form's URLs."""

    access: Access
    namespace: str
    live: dict | None
    urls: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str | None:
        return self.live["metadata"]["name"] if self.live else None


def _editor(request: HttpRequest, cluster: str, namespace: str, name: str | None) -> Editor:
    access = namespace_access(request, cluster, namespace, write=True)
    live = get_service_or_gone(access, namespace, name) if name else None
    return Editor(access, namespace, live, _form_urls(cluster, namespace, name))


def _store(editor: Editor, body: dict, *, dry_run: bool = False, warnings: list[str] | None = None) -> dict:
    """Create or replace (with ``dry_run``: ask the API server whether it would); ``warnings`` receives the API
    server's warnings. Raises ApiError or ClusterUnavailable."""
    actor, namespace = editor.access.actor, editor.namespace
    options = {"dry_run": dry_run, "warnings": warnings}
    if editor.live:
        return api.replace_service(actor, namespace, body["metadata"]["name"], body, **options)
    return api.create_service(actor, namespace, body, **options)


def _write(
    request: HttpRequest, editor: Editor, body: dict, *, via: str, warnings: list[str] | None = None
) -> HttpResponse:
    """Store the Service, note the write for the list's informer, audit it, say so (with the API server's warnings)
    and go back to the list (the seed: 确定 returns to the Services list). A refusal is audited and raised (ApiError
    or ClusterUnavailable) for the caller to show beside the input, with the warnings it carried in ``warnings``."""
    name = body["metadata"]["name"]
    action = ("update" if editor.live else "create") + ("" if via == "form" else f" ({via})")
    warnings = [] if warnings is None else warnings
    try:
        stored = _store(editor, body, warnings=warnings)
    except (api.ApiError, kube.ClusterUnavailable) as error:
        if not _repeated_create(request, editor, body, action, error):
            audit_action(request, editor.access, editor.namespace, action, name, "failed", str(error))
        raise
    listing.remember_write(
        request, editor.access, editor.namespace, resource_version=stored["metadata"]["resourceVersion"]
    )
    spec = stored.get("spec") or {}
    detail = f"type={spec.get('type', '')} ports={len(spec.get('ports') or [])} uid={stored['metadata']['uid']}"
    if warnings:
        detail += f" warnings={json.dumps(warnings, ensure_ascii=False)}"  # as the API server sent them
    audit_action(request, editor.access, editor.namespace, action, name, "success", detail, written=stored)
    done = _("Service “%(name)s” updated.") if editor.live else _("Service “%(name)s” created.")
    messages.success(request, done % {"name": name})
    for notice in warning_notices(warnings):
        messages.warning(request, notice)
    return _redirect(request, reverse("services:list", args=[editor.access.cluster.name, editor.namespace]))


REPEAT_WINDOW = 10  # seconds: a second press of 确定 arrives within this of the first


def _repeated_create(request: HttpRequest, editor: Editor, body: dict, action: str, error: Exception) -> bool:
    """Whether a create refused as AlreadyExists is the same create sent twice (a double click, a form sent again
    while the first answer was on its way): the existing Service is what this body describes, and this user's
    create of it, with its uid, was audited as a success moments ago. Such a refusal is not a failure to audit:
    the write it asked for was done (the answer still says the name is taken, beside the kept input)."""
    if editor.live or not isinstance(error, api.ApiError) or error.status != 409:
        return False
    name = body["metadata"]["name"]
    try:
        existing = api.get_service(editor.access.actor, editor.namespace, name)
    except (api.ApiError, kube.ClusterUnavailable):
        return False
    try:
        created = datetime.fromisoformat(existing["metadata"].get("creationTimestamp") or "")
    except ValueError:
        return False
    if timezone.now() - created > timedelta(seconds=REPEAT_WINDOW) or not _describes(existing, body):
        return False
    entries = AuditEntry.objects.filter(
        username=request.user.get_username(),
        cluster=editor.access.cluster.name,
        namespace=editor.namespace,
        kind="Service",
        object_name=name,
        action=action,
        result=AuditEntry.Result.SUCCESS,
        detail__contains=f" uid={existing['metadata']['uid']}",  # followed by the API server's warnings, if any
    )
    # The first request audits its success just after the API server stored the Service, which this request saw:
    # give it a moment (milliseconds in practice) to do so.
    deadline = time.monotonic() + 0.5
    while True:
        if entries.filter(when__gte=timezone.now() - timedelta(seconds=REPEAT_WINDOW)).exists():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _describes(existing: Any, wanted: Any) -> bool:
    """Whether every value ``wanted`` sets is so in ``existing`` (what the API server filled in is not judged)."""
    if isinstance(wanted, dict):
        return isinstance(existing, dict) and all(
            key in existing and _describes(existing[key], value) for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(existing, list)
            and len(existing) == len(wanted)
            and all(_describes(a, b) for a, b in zip(existing, wanted, strict=True))
        )
    return existing == wanted


# --- the form ---------------------------------------------------------------------------------------------------


# URL names of the form's interactions (``services:create_<key>``, ``services:edit_<key>``) besides the rows'.
INTERACTIONS = ("validate", "refresh", "workloads", "use_workload", "free_node_port")


def _form_urls(cluster: str, namespace: str, name: str | None) -> dict[str, str]:
    """The form's URLs: where it saves and where each of its interactions posts."""
    prefix, args = ("edit", [cluster, namespace, name]) if name else ("create", [cluster, namespace])
    urls = {
        "save": reverse(f"services:{prefix}", args=args),
        **{key: reverse(f"services:{prefix}_{key}", args=args) for key in INTERACTIONS},
    }
    for rows in ROWS_OF:
        urls[f"add_{rows}"] = reverse(f"services:{prefix}_add_row", args=[*args, rows])
        urls[f"remove_{rows}"] = reverse(f"services:{prefix}_remove_row", args=[*args, rows])
    return urls


def _bundle(editor: Editor, data: Any = None, *, change: Callable | None = None) -> ServiceFormBundle:
    """The form of this create or edit: bound to ``data``, re-rendered from it (``change``), or filled from the
    live Service; with the cluster's MetalLB pools when it shows a LoadBalancer."""
    live = editor.live
    options = {
        "editing": live is not None,
        "name": editor.name,
        # The seed asks for a selector; a Service created without one (hand-managed endpoints) may stay so.
        "selector_required": live is None or bool(live.get("spec", {}).get("selector")),
        # Headless, ExternalName and externalIPs can capture other tenants' traffic: Cluster Admins only.
        "admin_features": editor.access.is_cluster_admin,
        "urls": editor.urls,
        # What a POST without label rows stands for: the labels as they are.
        "live_labels": dict((live or {}).get("metadata", {}).get("labels") or {}),
        # What the form does not offer, and the values the cluster holds: the Service as it is.
        "base": m.spec_from_service(live) if live else None,
        # A headless Service may have no ports; one that has none keeps none unless the user adds one.
        "ports_required": live is None or bool(live.get("spec", {}).get("ports")),
    }
    if change is not None:
        bundle = ServiceFormBundle.refreshed(data, change, **options)
    elif data is not None:
        bundle = ServiceFormBundle(data=data, **options)
    elif live is not None:
        version = live["metadata"]["resourceVersion"]
        bundle = ServiceFormBundle(spec=options["base"], resource_version=version, **options)
    else:
        bundle = ServiceFormBundle(**options)
    if bundle.service_type == m.LOAD_BALANCER:  # MetalLB's pools matter only to a LoadBalancer
        try:
            bundle.offer_ip_pools(api.ip_pools(editor.access.actor))
        except (api.ApiError, kube.ClusterUnavailable) as error:
            raise ClusterDown(editor.access, editor.namespace, str(error)) from error
    return bundle


def _render_form(
    request: HttpRequest, editor: Editor, bundle: ServiceFormBundle, status: int = 200, **extra: Any
) -> HttpResponse:
    context = {
        "access": editor.access,
        "namespace": editor.namespace,
        "live": editor.live,
        "bundle": bundle,
        "urls": editor.urls,
        "nav": "services",
        "insight": live_checks.selector_insight(editor.access.actor, editor.namespace, bundle.selector_labels()),
        "lb_reasons": live_checks.load_balancer_problems(editor.access.actor, editor.namespace, bundle),
        **extra,
    }
    template = "services/form.html#form" if request.htmx else "services/form.html"
    return render(request, template, context, status=status)


# Buttons an interaction may hand the focus back to (besides fields): ``focus`` in the form's context.
FOCUS_BUTTONS = {"workloads", *(f"add-{rows}" for rows in ROWS_OF)}


def _focus(bundle: ServiceFormBundle, target: str) -> str:
    """Where the keyboard continues after an interaction re-rendered the form: a field (its id, marked
    ``autofocus``) or one of FOCUS_BUTTONS (the template marks it). htmx focuses the marked element after the
    swap, and a browser without scripts does so on load."""
    for form in (*bundle.sections, *(form for formset in bundle.formsets.values() for form in formset.forms)):
        for name in form.fields:
            if form[name].auto_id == target:
                form.fields[name].widget.attrs["autofocus"] = True
                return target
    return target if target in FOCUS_BUTTONS else ""


def _row_focus(bundle: ServiceFormBundle, prefix: str, index: int) -> str:
    """The first field shown in row ``index`` of a list (its last row when there are fewer), or the list's Add
    button when it has no rows."""
    forms = bundle.formsets[prefix].forms
    if not forms:
        return f"add-{prefix}"
    form = forms[min(index, len(forms) - 1)]
    first = next(name for name in form.fields if name not in form.kept_hidden)
    return form[first].auto_id


def _body(editor: Editor, bundle: ServiceFormBundle) -> dict:
    """What the form would write: a new Service, or the live one with the person's changes written over it (the
    form's base is the live Service's spec, read once for the request)."""
    spec = bundle.spec(editor.namespace)
    if editor.live is None:
        return m.build_service_manifest(spec)
    return m.apply_to_live(editor.live, spec, bundle.resource_version, base=bundle.base)


@require_http_methods(["GET", "POST"])
@login_required
@vary_on_headers("HX-Request")
@answers_failures
def service_form(request: HttpRequest, cluster: str, namespace: str, name: str | None = None) -> HttpResponse:
    editor = _editor(request, cluster, namespace, name)
    if request.method == "GET":
        return _render_form(request, editor, _bundle(editor))
    bundle = _bundle(editor, request.POST)
    if not bundle.is_valid():
        return _render_form(request, editor, bundle, status=422)
    body = _body(editor, bundle)
    review = request.POST.get("_action") == "review"
    warnings: list[str] = []
    try:
        if review:
            answer = _store(editor, body, dry_run=True, warnings=warnings)
            diff = m.yaml_diff(
                editor.live, m.without_invented_node_ports(answer, body, _("(assigned by the cluster when saved)"))
            )
            return _render_form(
                request,
                editor,
                bundle,
                diff=diff,
                diff_title=_("Changes to be saved"),
                api_warnings=warning_notices(warnings),
            )
        return _write(request, editor, body, via="form", warnings=warnings)
    except (api.ApiError, kube.ClusterUnavailable) as error:
        conflict = bundle.refused(error, editing=editor.live is not None)
    extra = _conflict_diff(editor, bundle) if conflict and not review else {}
    return _render_form(
        request,
        editor,
        bundle,
        status=409 if conflict else 422,
        conflict=conflict,
        api_warnings=warning_notices(warnings),
        **extra,
    )


def _conflict_diff(editor: Editor, bundle: ServiceFormBundle) -> dict[str, Any]:
    """After a conflict: what the user changed (their form against the version they opened), written over the
    Service as it is now, compared with it: the other writer's changes that the user did not touch show as
    kept, not as removed."""
    try:
        current = api.get_service(editor.access.actor, editor.namespace, editor.name or "")
    except (api.ApiError, kube.ClusterUnavailable):
        return {}
    spec = bundle.spec(editor.namespace)
    mine = m.apply_to_live(current, spec, bundle.resource_version, base=bundle.opened_spec())
    return {"diff": m.yaml_diff(current, mine), "diff_title": _("Your version compared with the current one")}


_QUIET_CODES = {"required", "no_ports", "no_selector"}


def _shown(errors: list) -> list[str]:
    """Error messages without "this is required" ones: live validation runs while the user types."""
    return [message for error in errors if error.code not in _QUIET_CODES for message in error.messages]


@require_POST
@login_required
@answers_failures
def service_form_validate(request: HttpRequest, cluster: str, namespace: str, name: str | None = None) -> HttpResponse:
    """Validate as the user types: the form's own rules, then the API server's verdict on a dry run, node ports a
    dry run cannot judge, and what the selector matches. Answers with out-of-band swaps of the error slots only,
    so nothing the user is typing is replaced."""
    editor = _editor(request, cluster, namespace, name)
    bundle = _bundle(editor, request.POST)
    verdict = ""
    warnings: list[str] = []
    if bundle.is_valid():
        try:
            _store(editor, _body(editor, bundle), dry_run=True, warnings=warnings)
            verdict = "accepted"
        except (api.ApiError, kube.ClusterUnavailable) as error:
            bundle.refused(error, editing=editor.live is not None)
            verdict = "refused"
    typed = bundle.node_ports()
    problems = live_checks.node_port_problems(editor.access, namespace, list(typed.values()), editor.live)
    taken = {html_name: [problems[port]] for html_name, port in typed.items() if port in problems}
    forms = [*bundle.sections, *(form for formset in bundle.formsets.values() for form in formset.forms)]
    field_errors = [
        (form[name].html_name, _shown(form.errors.as_data().get(name, [])) + taken.get(form[name].html_name, []))
        for form in forms
        for name in form.fields
    ]
    context = {
        "field_errors": field_errors,
        "formset_errors": [
            (prefix, _shown(formset.non_form_errors().as_data())) for prefix, formset in bundle.formsets.items()
        ],
        "non_field_errors": bundle.non_field_errors(),
        "verdict": "refused" if taken else verdict,
        "api_warnings": warning_notices(warnings),
        "insight": live_checks.selector_insight(editor.access.actor, namespace, bundle.selector_labels()),
        "lb_reasons": live_checks.load_balancer_problems(editor.access.actor, namespace, bundle),
    }
    return render(request, "services/form.html#validation", context)


# --- the form's interactions: each re-renders the form from what was posted, with one change --------------------


def _row_index(request: HttpRequest, rows: list) -> int | None:
    """The row a button names (its ``row`` value), when there is such a row."""
    index = m.parse_number(request.POST.get("row", ""), max_digits=3)
    return index if index is not None and 0 <= index < len(rows) else None


def _refresh(
    request: HttpRequest,
    editor: Editor,
    change: Callable | None = None,
    *,
    focus: Callable[[ServiceFormBundle], str] | str = "",
    **extra: Any,
) -> HttpResponse:
    """The form re-rendered from what was posted with ``change`` applied, and the focus on ``focus`` (an element's
    id, or a function of the new form giving it)."""
    bundle = _bundle(editor, request.POST, change=change or (lambda values, rows: None))
    target = focus(bundle) if callable(focus) else focus
    return _render_form(request, editor, bundle, focus=_focus(bundle, target) if target else "", **extra)


def _rows_of(formset: str) -> str:
    if formset not in ROWS_OF:
        raise Http404
    return formset


@require_POST
@login_required
@answers_failures
def service_form_refresh(request: HttpRequest, cluster: str, namespace: str, name: str | None = None) -> HttpResponse:
    """The form again, as typed: after the access type or the load balancer type changed, or a dialog closed
    (``_focus``: the button the dialog returns the focus to)."""
    return _refresh(request, _editor(request, cluster, namespace, name), focus=request.POST.get("_focus", ""))


@require_POST
@login_required
@answers_failures
def service_form_add_row(
    request: HttpRequest, cluster: str, namespace: str, formset: str, name: str | None = None
) -> HttpResponse:
    prefix = _rows_of(formset)
    editor = _editor(request, cluster, namespace, name)

    def add(values: dict, rows: dict) -> None:
        if len(rows[prefix]) < MAX_ROWS:
            rows[prefix].append(dict(NEW_ROW[prefix]))
        else:
            rows[prefix].append({})  # one too many: the re-rendered form drops it and says so

    return _refresh(request, editor, add, focus=lambda bundle: _row_focus(bundle, prefix, MAX_ROWS))


@require_POST
@login_required
@answers_failures
def service_form_remove_row(
    request: HttpRequest, cluster: str, namespace: str, formset: str, name: str | None = None
) -> HttpResponse:
    prefix = _rows_of(formset)
    editor = _editor(request, cluster, namespace, name)

    removed: list[int] = []

    def remove(values: dict, rows: dict) -> None:
        index = _row_index(request, rows[prefix])
        if index is not None:
            rows[prefix].pop(index)
            removed.append(index)

    # The row that took the removed one's place, or the one before it when it was the last.
    return _refresh(request, editor, remove, focus=lambda bundle: _row_focus(bundle, prefix, sum(removed)))


@require_POST
@login_required
@answers_failures
def service_form_workloads(request: HttpRequest, cluster: str, namespace: str, name: str | None = None) -> HttpResponse:
    """引用负载标签: the form with a dialog listing the namespace's workloads and their selectors."""
    editor = _editor(request, cluster, namespace, name)
    try:
        found: dict[str, Any] = {"workloads": api.list_workloads(editor.access.actor, namespace)}
    except (api.ApiError, kube.ClusterUnavailable) as error:
        found = {"workload_error": str(error)}
    return _refresh(request, editor, **found)


@require_POST
@login_required
@answers_failures
def service_form_use_workload(
    request: HttpRequest, cluster: str, namespace: str, name: str | None = None
) -> HttpResponse:
    """The selector of the chosen workload (``workload``: "Kind/name") replaces the selector rows."""
    editor = _editor(request, cluster, namespace, name)
    kind, _slash, workload = request.POST.get("workload", "").partition("/")
    try:
        labels = api.workload_selector(editor.access.actor, namespace, kind, workload)
    except (api.ApiError, kube.ClusterUnavailable) as error:
        return _refresh(request, editor, workload_error=str(error))

    def use(values: dict, rows: dict) -> None:
        if labels:
            rows[SELECTOR] = [{"key": key, "value": value} for key, value in labels.items()]

    return _refresh(request, editor, use, focus="workloads")


@require_POST
@login_required
@answers_failures
def service_form_free_node_port(
    request: HttpRequest, cluster: str, namespace: str, name: str | None = None
) -> HttpResponse:
    """A free node port filled into the port row the button belongs to (``row``)."""
    editor = _editor(request, cluster, namespace, name)
    try:
        port = api.free_node_port(editor.access.actor, namespace)
    except (api.ApiError, kube.ClusterUnavailable) as error:
        return _refresh(request, editor, node_port_error=str(error))
    row = m.parse_number(request.POST.get("row", ""), max_digits=3)

    def fill(values: dict, rows: dict) -> None:
        index = _row_index(request, rows[PORTS])
        if index is not None:
            rows[PORTS][index]["node_port"] = port or ""

    return _refresh(request, editor, fill, focus=f"id_{PORTS}-{row}-node_port" if row is not None else "")


# --- YAML -----------------------------------------------------------------------------------------------------


NEW_SERVICE_YAML = """apiVersion: v1
kind: Service
metadata:
  name: my-service
spec:
  type: ClusterIP
  selector:
    app: my-app
  ports:
    - name: http
      protocol: TCP
      port: 80
      targetPort: 8080
"""


def _render_yaml(request: HttpRequest, editor: Editor, text: str, status: int = 200, **extra: Any) -> HttpResponse:
    context = {"access": editor.access, "namespace": editor.namespace, "live": editor.live, "text": text}
    context |= {"errors": [], "accepted": "", "nav": "services", **extra}
    template = "services/yaml.html#editor" if request.htmx else "services/yaml.html"
    return render(request, template, context, status=status)


def _yaml_dry_run(request: HttpRequest, editor: Editor, document: dict, text: str) -> HttpResponse:
    """ "Validate": the API server's verdict on a dry run (with its warnings), and node ports a dry run cannot
    judge. Nothing is stored or audited."""
    warnings: list[str] = []
    try:
        _store(editor, document, dry_run=True, warnings=warnings)
    except api.ApiError as error:
        errors = _api_reasons(error)
        return _render_yaml(request, editor, text, status=422, errors=errors, api_warnings=warning_notices(warnings))
    except kube.ClusterUnavailable as error:
        return _render_yaml(request, editor, text, status=503, errors=[str(error)])
    shown = warning_notices(warnings)
    node_ports = [p.get("nodePort") for p in (document.get("spec") or {}).get("ports") or []]
    wanted = [p for p in node_ports if isinstance(p, int) and not isinstance(p, bool)]
    problems = live_checks.node_port_problems(editor.access, editor.namespace, wanted, editor.live)
    if problems:
        errors = [f"spec.ports[{i}].nodePort: {problems[p]}" for i, p in enumerate(node_ports) if p in problems]
        return _render_yaml(request, editor, text, status=422, errors=errors, api_warnings=shown)
    accepted = _("The API server accepts this Service (dry run).")
    return _render_yaml(request, editor, text, accepted=accepted, api_warnings=shown)


def _api_reasons(error: api.ApiError) -> list[str]:
    """The API server's message and its causes, the known refusals in the user's language."""
    causes = [f"{c['field']}: {api.explained(c.get('message', ''))}" for c in error.causes if c.get("field")]
    return [api.explained(error.message), *causes]


@require_http_methods(["GET", "POST"])
@login_required
@vary_on_headers("HX-Request")
@answers_failures
def service_yaml(request: HttpRequest, cluster: str, namespace: str, name: str | None = None) -> HttpResponse:
    editor = _editor(request, cluster, namespace, name)
    if request.method == "GET":
        return _render_yaml(request, editor, m.yaml_of(editor.live) if editor.live else NEW_SERVICE_YAML)
    text = request.POST.get("yaml", "")
    dry_run = request.POST.get("_action") == "validate"
    try:
        document = service_from_yaml(text, namespace, name)
    except (ValueError, kube.KubeconfigError) as error:
        if not dry_run:
            action = "update (yaml)" if editor.live else "create (yaml)"
            audit_action(request, editor.access, namespace, action, name or "", "failed", str(error))
        return _render_yaml(request, editor, text, status=422, errors=[str(error)])
    if dry_run:
        return _yaml_dry_run(request, editor, document, text)
    warnings: list[str] = []
    try:
        return _write(request, editor, document, via="yaml", warnings=warnings)
    except api.ApiError as error:
        status = error.status if error.status in (409, 422) else 422
        shown = warning_notices(warnings)
        return _render_yaml(request, editor, text, status=status, errors=_api_reasons(error), api_warnings=shown)
    except kube.ClusterUnavailable as error:
        return _render_yaml(request, editor, text, status=503, errors=[str(error)])


# --- detail and delete ----------------------------------------------------------------------------------------


@require_GET
@login_required
@answers_failures
def service_detail(request: HttpRequest, cluster: str, namespace: str, name: str) -> HttpResponse:
    return _detail(request, namespace_access(request, cluster, namespace), namespace, name)


def _detail(request: HttpRequest, access: Access, namespace: str, name: str) -> HttpResponse:
    """A Service's page (its live part under HTMX) for a user whose role was checked."""
    cluster = access.cluster.name
    version = api.live_version(access.actor, namespace, name)  # before the reads, as the list does
    # The related reads start with the selector the namespace's informer knows, while the Service itself is read
    # live; asked again in the rare case the live Service says otherwise.
    hint = api.cached_service(access.actor, namespace, name)
    early = api.RelatedReads(access.actor, namespace, name, *api.related_reads(hint)) if hint else None
    service = get_service_or_gone(access, namespace, name)
    needed = api.related_reads(service)
    reads = (
        early
        if early is not None and early.depends_on == needed
        else api.RelatedReads(access.actor, namespace, name, *needed)
    )
    related, related_error = reads.result()
    pending = m.load_balancer_pending(service)
    lb_reasons: list[str] = []
    if pending:
        try:
            context = api.load_balancer_context(access.actor, namespace, api.ip_pools(access.actor))
            lb_reasons = health.load_balancer_reasons(service, context)
        except (api.ApiError, kube.ClusterUnavailable) as error:
            related_error = related_error or str(error)
    context = {
        "access": access,
        "namespace": namespace,
        "service": service,
        "spec": m.spec_from_service(service),
        "addresses": m.access_addresses(service, related["node_ips"]),
        "pending": pending,
        "lb_reasons": lb_reasons,
        "dns_name": health.dns_name(service, settings.CONSOLE_CLUSTER_DOMAIN),
        "health": health.health(service, related["slices"]),
        "traffic": health.traffic(service, related["pods"], related["slices"]),
        "yaml": m.yaml_of(service),
        "can_edit": access.can_edit(namespace),
        # A viewer of this Service who may edit elsewhere may copy it there.
        "can_copy": access.can_edit(namespace) or may_edit_somewhere(request.user),
        # The list's Delete link without scripts: the page opens with its delete confirmation shown.
        "confirm_delete": "delete" in request.GET,
        "related_error": related_error,
        "live_url": live.poll_url(
            request,
            reverse("services:detail_live", args=[cluster, namespace, name]),
            access,
            namespace,
            {},
            version,
            service=name,
        ),
        "nav": "services",
        **related,
    }
    template = "services/detail.html#live" if request.htmx else "services/detail.html"
    return render(request, template, context)


@require_GET
@login_required
@answers_failures
def service_detail_live(request: HttpRequest, cluster: str, namespace: str, name: str) -> HttpResponse:
    """An open Service page asking whether to redraw: 204 while its namespace's Services and EndpointSlices are
    unchanged, else its live part drawn afresh (a Service deleted meanwhile sends the page back to the list)."""
    access = namespace_access(request, cluster, namespace)
    if _unchanged(request, access, namespace, name):
        return _still(request, access, namespace, name)
    return _detail(request, access, namespace, name)


@require_POST
@login_required
def service_delete(request: HttpRequest, cluster: str, namespace: str, name: str) -> HttpResponse:
    access = namespace_access(request, cluster, namespace, write=True)
    uid = request.POST.get("uid", "")
    list_url = reverse("services:list", args=[cluster, namespace])
    if not uid:
        # Without the uid the delete could hit a Service re-created under the same name.
        messages.error(
            request, _("The delete request did not say which Service it meant; reload the page and try again.")
        )
        return _redirect(request, list_url)
    try:
        existed = api.delete_service(access.actor, namespace, name, uid)
    except api.ApiError as error:
        if error.status == 409:
            message = _(
                "“%(name)s” was replaced by a new Service with the same name since you loaded the page; nothing was deleted."
            ) % {"name": name}
        else:
            message = error.message
        messages.error(request, message)
        audit_action(request, access, namespace, "delete", name, "failed", error.message)
        return _redirect(request, list_url)
    except kube.ClusterUnavailable as error:
        messages.error(request, str(error))
        audit_action(request, access, namespace, "delete", name, "failed", str(error))
        return _redirect(request, list_url)
    listing.remember_write(request, access, namespace, deleted_uid=uid)
    audit_action(
        request,
        access,
        namespace,
        "delete",
        name,
        "success",
        f"uid={uid}" if existed else "already deleted",
        uid=uid if existed else "",
    )
    messages.success(request, _("Service “%(name)s” deleted.") % {"name": name})
    return _redirect(request, list_url)
