from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

import kube
from clusters import audit
from clusters.access import Access, cluster_for_user, namespace_access
from services import api, checks, listing
from services import manifest as m
from services.forms import (
    ANNOTATIONS,
    PORTS,
    SELECTOR,
    ServiceFormBundle,
    apply_api_errors,
    initial_from_post,
    rows_from_post,
    service_from_yaml,
)


def _redirect(request: HttpRequest, url: str) -> HttpResponse:
    return HttpResponseClientRedirect(url) if request.htmx else HttpResponseRedirect(url)


def _namespaces(access: Access) -> list[str]:
    if access.cluster_wide:
        try:
            return kube.list_namespaces(access.cluster)
        except kube.ClusterUnavailable:
            return []
    return sorted(access.namespace_roles)


def _record(
    request: HttpRequest, access: Access, namespace: str, action: str, name: str, result: str, detail: str = ""
) -> None:
    audit.record(
        request,
        action=action,
        result=result,
        cluster=access.cluster.name,
        namespace=namespace,
        kind="Service",
        name=name,
        detail=detail,
    )


def _unavailable(request: HttpRequest, access: Access, namespace: str, message: str) -> HttpResponse:
    context = {"access": access, "namespace": namespace, "error": message, "nav": "services"}
    return render(request, "services/unavailable.html", context, status=503)


def _fetch_service(request: HttpRequest, access: Access, namespace: str, name: str) -> dict | HttpResponse:
    """The live Service, or the answer to give instead: back to the list when it is gone, a plain page when the
    cluster cannot be asked or refuses the console."""
    try:
        return api.get_service(access.cluster, namespace, name)
    except api.ApiError as error:
        if error.status == 404:
            messages.error(request, _("The Service “%(name)s” no longer exists.") % {"name": name})
            return _redirect(request, reverse("services:list", args=[access.cluster.name, namespace]))
        return _unavailable(request, access, namespace, error.message)
    except kube.ClusterUnavailable as unavailable:
        return _unavailable(request, access, namespace, str(unavailable))


# --- list ---------------------------------------------------------------------------------------------------------


@require_GET
@login_required
def pick_namespace(request: HttpRequest, cluster: str) -> HttpResponse:
    """容器网络 → 服务 for a cluster: go to the chosen (or the first visible) namespace's Services."""
    access = cluster_for_user(request, cluster)
    wanted = request.GET.get("namespace", "")
    if wanted and access.can_view(wanted):
        return redirect("services:list", cluster, wanted)
    namespaces = _namespaces(access)
    if not namespaces:
        return redirect("clusters:cluster_detail", cluster)
    return redirect("services:list", cluster, "default" if "default" in namespaces else namespaces[0])


@require_GET
@login_required
@vary_on_headers("HX-Request")
def service_list(request: HttpRequest, cluster: str, namespace: str) -> HttpResponse:
    access = namespace_access(request, cluster, namespace)
    query, type_filter = request.GET.get("q", "").strip(), request.GET.get("type", "")
    type_filter = type_filter if type_filter in m.SERVICE_TYPES else ""
    continue_token = request.GET.get("continue", "")
    error, next_token, items = "", "", []
    page = max(int(request.GET.get("page", "1")) if request.GET.get("page", "1").isdigit() else 1, 1)
    try:
        items, has_next, next_token = listing.services_page(
            request, access, namespace, query, type_filter, page, continue_token
        )
        needs_nodes = any(s.get("spec", {}).get("type") in (m.NODE_PORT, m.LOAD_BALANCER) for s in items)
        node_ips = api.node_addresses(access.cluster) if needs_nodes else []
    except api.ApiError as failure:
        if failure.status == 410:  # the continue token expired: start again from the first page
            return redirect(f"{reverse('services:list', args=[cluster, namespace])}")
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
        "rows": [listing.row(s, node_ips, base_url, labels) for s in items],
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


# --- create / edit --------------------------------------------------------------------------------------------


def _bundle_after_action(
    action: str, request: HttpRequest, bundle_args: dict[str, Any], access: Access, namespace: str, name: str | None
) -> tuple[ServiceFormBundle, dict]:
    """Re-render the form after a type switch or a row change, keeping everything typed, without validating."""
    rows = rows_from_post(request.POST)
    initial = initial_from_post(request.POST)
    if name:
        initial["name"] = name
    extra: dict[str, Any] = {}
    verb, _sep, index = action.partition("-")
    for prefix in (PORTS, SELECTOR, ANNOTATIONS):
        if verb == f"add_{prefix}":
            rows[prefix].append({"protocol": "TCP"} if prefix == PORTS else {})
        elif verb == f"remove_{prefix}" and index.isdigit() and int(index) < len(rows[prefix]):
            rows[prefix].pop(int(index))
    if verb == "free_node_port" and index.isdigit() and int(index) < len(rows[PORTS]):
        try:
            port = api.free_node_port(access.cluster, namespace)
        except (api.ApiError, kube.ClusterUnavailable) as error:
            extra["node_port_error"] = str(error)
        else:
            rows[PORTS][int(index)]["node_port"] = port or ""
    if verb == "pick_workload":
        try:
            extra["workloads"] = api.list_workloads(access.cluster, namespace)
        except (api.ApiError, kube.ClusterUnavailable) as error:
            extra["workload_error"] = str(error)
    elif verb == "use_workload":
        kind, _slash, name = index.partition("/")
        try:
            labels = api.workload_selector(access.cluster, namespace, kind, name)
            rows[SELECTOR] = [{"key": k, "value": v} for k, v in labels.items()] or rows[SELECTOR]
        except (api.ApiError, kube.ClusterUnavailable) as error:
            extra["workload_error"] = str(error)
    bundle = ServiceFormBundle(rows=rows, initial=initial, **bundle_args)
    return bundle, extra


def _body(bundle: ServiceFormBundle, namespace: str, live: dict | None) -> dict:
    """What the form would write: a new Service, or the live one with the form's fields written over it."""
    spec = bundle.spec(namespace)
    if live is None:
        return m.build_service_manifest(spec)
    return m.apply_to_live(
        live, spec, bundle.form.cleaned_data["resource_version"] or live["metadata"]["resourceVersion"]
    )


def _submit(
    request: HttpRequest,
    bundle: ServiceFormBundle,
    access: Access,
    namespace: str,
    live: dict | None,
    *,
    dry_run: bool = False,
) -> tuple[dict | None, bool]:
    """Create or replace the Service (or, with ``dry_run``, ask the API server whether it would); on refusal put
    the API server's reasons on the form. Returns (the resulting Service or None, whether it was a conflict)."""
    body = _body(bundle, namespace, live)
    name = body["metadata"]["name"]
    action = "update" if live else "create"
    try:
        if live:
            stored = api.replace_service(access.cluster, namespace, name, body, dry_run=dry_run)
        else:
            stored = api.create_service(access.cluster, namespace, body, dry_run=dry_run)
    except api.ApiError as error:
        conflict = bool(live) and error.status == 409
        if conflict:
            bundle.form.add_error(
                None,
                _(
                    "Someone changed this Service after you opened it. Your input is kept below; reload to start from the current version."
                ),
            )
        elif error.status == 409:
            bundle.form.add_error(
                "name", _("A Service named “%(name)s” already exists in this namespace.") % {"name": name}
            )
        elif error.status == 404 and live:
            bundle.form.add_error(None, _("This Service was deleted meanwhile."))
        else:
            apply_api_errors(bundle, error.causes, error.message)
        if not dry_run:
            _record(request, access, namespace, action, name, "failed", error.message)
        return None, conflict
    except kube.ClusterUnavailable as error:
        bundle.form.add_error(None, str(error))
        if not dry_run:
            _record(request, access, namespace, action, name, "failed", str(error))
        return None, False
    if dry_run:
        return stored, False
    listing.remember_write(request, access, namespace, resource_version=stored["metadata"]["resourceVersion"])
    _record(
        request,
        access,
        namespace,
        action,
        name,
        "success",
        f"type={body['spec']['type']} ports={len(body['spec']['ports'])}",
    )
    return stored, False


def _conflict_diff(access: Access, namespace: str, bundle: ServiceFormBundle, live: dict | None) -> tuple[list, str]:
    """After a conflict: how the user's version differs from the Service as it is now."""
    try:
        current = api.get_service(access.cluster, namespace, live["metadata"]["name"]) if live else None
    except (api.ApiError, kube.ClusterUnavailable):
        return [], ""
    if current is None:
        return [], ""
    mine = _body(bundle, namespace, current)
    return m.yaml_diff(current, mine), _("Your version compared with the current one")


_QUIET_CODES = {"required", "no_ports", "no_selector"}


def _messages(errors: dict, field: str) -> list[str]:
    """Error messages of a field, without "this is required" ones: live validation runs while the user types."""
    return [message for error in errors.get(field, []) if error.code not in _QUIET_CODES for message in error.messages]


def _live_validation(
    request: HttpRequest,
    bundle_args: dict[str, Any],
    access: Access,
    namespace: str,
    live: dict | None,
    name: str | None,
) -> HttpResponse:
    """Validate as the user types: the form's own rules, then the API server's verdict on a dry run, which-node-port-
    is-taken, and what the selector matches. Answers with out-of-band swaps of the error slots only, so nothing
    the user is typing is replaced."""
    bundle = ServiceFormBundle(data=request.POST, initial={"name": name}, **bundle_args)
    verdict = ""
    if bundle.is_valid():
        result, _conflict = _submit(request, bundle, access, namespace, live, dry_run=True)
        verdict = "accepted" if result is not None else "refused"
    field_errors = [
        (bound.html_name, _messages(bundle.form.errors.as_data(), field))
        for field, bound in ((f, bundle.form[f]) for f in bundle.form.fields)
        if not isinstance(bound.field.widget, forms.HiddenInput)
    ]
    for formset in (bundle.ports, bundle.selector, bundle.annotations):
        for form in formset.forms:
            field_errors += [(form[f].html_name, _messages(form.errors.as_data(), f)) for f in form.fields]
    rows = rows_from_post(request.POST)
    taken = _taken_node_ports(access, namespace, rows[PORTS], live)
    field_errors = [(html, messages + taken.get(html, [])) for html, messages in field_errors]
    context = {
        "field_errors": field_errors,
        "formset_errors": [
            (prefix, [e for e in formset.non_form_errors().as_data() if e.code not in _QUIET_CODES])
            for prefix, formset in (
                (PORTS, bundle.ports),
                (SELECTOR, bundle.selector),
                (ANNOTATIONS, bundle.annotations),
            )
        ],
        "non_field_errors": bundle.form.non_field_errors(),
        "verdict": "refused" if verdict == "accepted" and taken else verdict,
        "insight": checks.selector_insight(access.cluster, namespace, rows[SELECTOR]),
    }
    return render(request, "services/form.html#validation", context)


def _selector_rows(bundle: ServiceFormBundle) -> list[dict]:
    if bundle.selector.is_bound:
        return rows_from_post(bundle.selector.data)[SELECTOR]
    return [form.initial or {} for form in bundle.selector.forms]


def _taken_node_ports(access: Access, namespace: str, port_rows: list[dict], live: dict | None) -> dict[str, list[str]]:
    """Errors for node ports outside the cluster's range or held by another Service (named): checks a dry run
    cannot make, since the API server skips node-port allocation when nothing is stored."""
    wanted = {i: int(row["node_port"]) for i, row in enumerate(port_rows) if str(row.get("node_port", "")).isdigit()}
    problems = checks.node_port_problems(access.cluster, namespace, list(wanted.values()), live)
    return {f"{PORTS}-{i}-node_port": [problems[port]] for i, port in wanted.items() if port in problems}


@require_http_methods(["GET", "POST"])
@login_required
@vary_on_headers("HX-Request")
def service_form(request: HttpRequest, cluster: str, namespace: str, name: str | None = None) -> HttpResponse:
    access = namespace_access(request, cluster, namespace, write=True)
    live = _fetch_service(request, access, namespace, name) if name else None
    if isinstance(live, HttpResponse):
        return live
    # MetalLB's pools matter only to a LoadBalancer; other types skip the call.
    shown_type = request.POST.get("type") or (live or {}).get("spec", {}).get("type") or m.CLUSTER_IP
    try:
        ip_pools = api.list_ip_pools(access.cluster) if shown_type == m.LOAD_BALANCER else None
    except (api.ApiError, kube.ClusterUnavailable) as error:
        return _unavailable(request, access, namespace, str(error))
    bundle_args = {
        "editing": live is not None,
        "ip_pools": ip_pools,
        # The seed asks for a selector; a Service created without one (hand-managed endpoints) may stay so.
        "selector_required": live is None or bool(live.get("spec", {}).get("selector")),
        # Headless, ExternalName and externalIPs can capture other tenants' traffic: Cluster Admins only.
        "admin_features": access.is_cluster_admin,
    }
    status, extra, conflict = 200, {}, False
    if request.method == "POST":
        action = request.POST.get("_action", "save")
        if action == "validate":
            return _live_validation(request, bundle_args, access, namespace, live, name)
        if action not in ("save", "review"):
            bundle, extra = _bundle_after_action(action, request, bundle_args, access, namespace, name)
        else:
            # A disabled field (the name, when editing) is not posted: Django takes it from the initial data.
            bundle = ServiceFormBundle(data=request.POST, initial={"name": name}, **bundle_args)
            status, valid = 422, bundle.is_valid()
            if valid and action == "review":
                result, _conflict = _submit(request, bundle, access, namespace, live, dry_run=True)
                if result is not None:
                    extra["diff"], extra["diff_title"], status = (
                        m.yaml_diff(live, result),
                        _("Changes to be saved"),
                        200,
                    )
            elif valid:
                stored, conflict = _submit(request, bundle, access, namespace, live)
                if stored is not None:
                    done = _("Service “%(name)s” updated.") if live else _("Service “%(name)s” created.")
                    messages.success(request, done % {"name": stored["metadata"]["name"]})
                    return _redirect(
                        request, reverse("services:detail", args=[cluster, namespace, stored["metadata"]["name"]])
                    )
                if conflict:
                    status = 409
                    extra["diff"], extra["diff_title"] = _conflict_diff(access, namespace, bundle, live)
    elif live is not None:
        bundle = ServiceFormBundle(
            spec=m.spec_from_service(live), resource_version=live["metadata"]["resourceVersion"], **bundle_args
        )
    else:
        bundle = ServiceFormBundle(**bundle_args)
    context = {
        "access": access,
        "namespace": namespace,
        "bundle": bundle,
        "live": live,
        "service_type": bundle.form["type"].value() or m.CLUSTER_IP,
        "lb_type": bundle.form["lb_type"].value() or m.METALLB,
        "conflict": conflict,
        "nav": "services",
        "insight": checks.selector_insight(access.cluster, namespace, _selector_rows(bundle)),
        **extra,
    }
    template = "services/form.html#form" if request.htmx else "services/form.html"
    return render(request, template, context, status=status)


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


@require_http_methods(["GET", "POST"])
@login_required
@vary_on_headers("HX-Request")
def service_yaml(request: HttpRequest, cluster: str, namespace: str, name: str | None = None) -> HttpResponse:
    access = namespace_access(request, cluster, namespace, write=True)
    errors: list[str] = []
    accepted = ""
    status = 200
    live = _fetch_service(request, access, namespace, name) if name else None
    if isinstance(live, HttpResponse):
        return live
    text = m.yaml_of(live) if live else NEW_SERVICE_YAML
    if request.method == "POST":
        text = request.POST.get("yaml", "")
        action = "update" if live else "create"
        # "validate" asks the API server for its verdict with a dry run; nothing is stored or audited.
        dry_run = request.POST.get("_action") == "validate"
        try:
            document = service_from_yaml(text, namespace, name)
        except (ValueError, kube.KubeconfigError) as error:
            errors, status = [str(error)], 422
            if not dry_run:
                _record(request, access, namespace, f"{action} (yaml)", name or "", "failed", str(error))
        else:
            target = document["metadata"]["name"]
            try:
                if live:
                    document["metadata"].setdefault("resourceVersion", live["metadata"]["resourceVersion"])
                    stored = api.replace_service(access.cluster, namespace, target, document, dry_run=dry_run)
                else:
                    stored = api.create_service(access.cluster, namespace, document, dry_run=dry_run)
            except api.ApiError as error:
                status = error.status if error.status in (409, 422) else 422
                errors = [error.message] + [
                    f"{c.get('field', '')}: {c.get('message', '')}" for c in error.causes if c.get("field")
                ]
                if not dry_run:
                    _record(request, access, namespace, f"{action} (yaml)", target, "failed", error.message)
            except kube.ClusterUnavailable as error:
                errors, status = [str(error)], 503
                if not dry_run:
                    _record(request, access, namespace, f"{action} (yaml)", target, "failed", str(error))
            else:
                node_ports = [p.get("nodePort") for p in (document.get("spec") or {}).get("ports") or []]
                problems = (
                    checks.node_port_problems(
                        access.cluster, namespace, [p for p in node_ports if isinstance(p, int)], live
                    )
                    if dry_run
                    else {}
                )
                if problems:
                    errors, status = (
                        [f"spec.ports[{i}].nodePort: {problems[p]}" for i, p in enumerate(node_ports) if p in problems],
                        422,
                    )
                elif dry_run:
                    accepted = _("The API server accepts this Service (dry run).")
                else:
                    listing.remember_write(
                        request, access, namespace, resource_version=stored["metadata"]["resourceVersion"]
                    )
                    _record(request, access, namespace, f"{action} (yaml)", target, "success")
                    done = _("Service “%(name)s” updated.") if live else _("Service “%(name)s” created.")
                    messages.success(request, done % {"name": target})
                    return _redirect(request, reverse("services:detail", args=[cluster, namespace, target]))
    context = {
        "access": access,
        "namespace": namespace,
        "live": live,
        "accepted": accepted,
        "text": text,
        "errors": errors,
        "nav": "services",
    }
    template = "services/yaml.html#editor" if request.htmx else "services/yaml.html"
    return render(request, template, context, status=status)


# --- detail and delete ----------------------------------------------------------------------------------------


@require_GET
@login_required
def service_detail(request: HttpRequest, cluster: str, namespace: str, name: str) -> HttpResponse:
    access = namespace_access(request, cluster, namespace)
    service = _fetch_service(request, access, namespace, name)
    if isinstance(service, HttpResponse):
        return service
    related, related_error = api.related_objects(
        access.cluster,
        namespace,
        name,
        service.get("spec", {}).get("selector") or {},
        with_nodes=service.get("spec", {}).get("type") in (m.NODE_PORT, m.LOAD_BALANCER),
    )
    context = {
        "access": access,
        "namespace": namespace,
        "service": service,
        "spec": m.spec_from_service(service),
        "addresses": m.access_addresses(service, related["node_ips"]),
        "pending": m.load_balancer_pending(service),
        "yaml": m.yaml_of(service),
        "can_edit": access.can_edit(namespace),
        # The list's Delete link without scripts: the page opens with its delete confirmation shown.
        "confirm_delete": "delete" in request.GET,
        "related_error": related_error,
        "nav": "services",
        **related,
    }
    return render(request, "services/detail.html", context)


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
        existed = api.delete_service(access.cluster, namespace, name, uid)
    except api.ApiError as error:
        if error.status == 409:
            message = _(
                "“%(name)s” was replaced by a new Service with the same name since you loaded the page; nothing was deleted."
            ) % {"name": name}
        else:
            message = error.message
        messages.error(request, message)
        _record(request, access, namespace, "delete", name, "failed", error.message)
        return _redirect(request, list_url)
    except kube.ClusterUnavailable as error:
        messages.error(request, str(error))
        _record(request, access, namespace, "delete", name, "failed", str(error))
        return _redirect(request, list_url)
    listing.remember_write(request, access, namespace, deleted_uid=uid)
    _record(request, access, namespace, "delete", name, "success", f"uid={uid}" if existed else "already deleted")
    messages.success(request, _("Service “%(name)s” deleted.") % {"name": name})
    return _redirect(request, list_url)
