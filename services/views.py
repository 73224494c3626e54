from __future__ import annotations

from typing import Any

import yaml
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from console import audit, kube
from console.access import Access, cluster_for_user, namespace_access
from services import api
from services import manifest as m
from services.forms import (
    ANNOTATIONS,
    DNS1035_LABEL,
    PORTS,
    SELECTOR,
    ServiceFormBundle,
    apply_api_errors,
    initial_from_post,
    rows_from_post,
)

PAGE_SIZE = 20
YAML_MAX_BYTES = 512 * 1024


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
        return redirect("console:cluster_detail", cluster)
    return redirect("services:list", cluster, "default" if "default" in namespaces else namespaces[0])


def _row(service: dict, node_ips: list[str]) -> dict[str, Any]:
    spec = service.get("spec", {})
    return {
        "name": service["metadata"]["name"],
        "uid": service["metadata"].get("uid", ""),
        "type": spec.get("type", m.CLUSTER_IP),
        "access": m.access_addresses(service, node_ips),
        "pending": m.load_balancer_pending(service),
        "ports": [
            f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/{p.get('protocol', 'TCP')}"
            + (f" → {p['targetPort']}" if p.get("targetPort") not in (None, p.get("port")) else "")
            for p in spec.get("ports") or []
        ],
        "selector": [f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items())],
        "created": service["metadata"].get("creationTimestamp", ""),
    }


@require_GET
@login_required
@vary_on_headers("HX-Request")
def service_list(request: HttpRequest, cluster: str, namespace: str) -> HttpResponse:
    access = namespace_access(request, cluster, namespace)
    query, type_filter = request.GET.get("q", "").strip(), request.GET.get("type", "")
    continue_token = request.GET.get("continue", "")
    error, next_token, items = "", "", []
    page = max(int(request.GET.get("page", "1")) if request.GET.get("page", "1").isdigit() else 1, 1)
    try:
        if query or type_filter in m.SERVICE_TYPES:
            # The API cannot filter by substring or type: read the namespace, filter, and page in memory.
            everything, _token = api.list_services(access.cluster, namespace)
            matching = [
                s
                for s in everything
                if query.lower() in s["metadata"]["name"]
                and (not type_filter or s.get("spec", {}).get("type") == type_filter)
            ]
            items = matching[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
            has_next = len(matching) > page * PAGE_SIZE
        else:
            items, next_token = api.list_services(
                access.cluster, namespace, limit=PAGE_SIZE, continue_token=continue_token or None
            )
            has_next = bool(next_token)
        needs_nodes = any(s.get("spec", {}).get("type") in (m.NODE_PORT, m.LOAD_BALANCER) for s in items)
        node_ips = api.node_addresses(access.cluster) if needs_nodes else []
    except api.ApiError as failure:
        if failure.status == 410:  # the continue token expired: start again from the first page
            return redirect(f"{reverse('services:list', args=[cluster, namespace])}")
        error, has_next, node_ips = failure.message, False, []
    except kube.ClusterUnavailable as unavailable:
        error, has_next, node_ips = str(unavailable), False, []
    context = {
        "access": access,
        "namespace": namespace,
        # One failed call is enough: a cluster that just failed is not asked again for its namespaces.
        "namespaces": _namespaces(access) if not request.htmx and not error else [namespace],
        "rows": [_row(s, node_ips) for s in items],
        "query": query,
        "type_filter": type_filter,
        "types": m.SERVICE_TYPES,
        "page": page,
        "next_token": next_token,
        "has_next": has_next,
        "continued": bool(continue_token) or page > 1,
        "can_edit": access.can_edit(namespace),
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


def _save(
    request: HttpRequest, bundle: ServiceFormBundle, access: Access, namespace: str, live: dict | None
) -> tuple[dict | None, bool]:
    """Create or replace the Service; on refusal put the API server's reasons on the form. Returns
    (the stored Service or None, whether it was a conflict)."""
    spec = bundle.spec(namespace)
    name = live["metadata"]["name"] if live else spec.name
    action = "update" if live else "create"
    try:
        if live:
            body = m.apply_to_live(
                live, spec, bundle.form.cleaned_data["resource_version"] or live["metadata"]["resourceVersion"]
            )
            stored = api.replace_service(access.cluster, namespace, name, body)
        else:
            stored = api.create_service(access.cluster, namespace, m.build_service_manifest(spec))
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
        _record(request, access, namespace, action, name, "failed", error.message)
        return None, conflict
    except kube.ClusterUnavailable as error:
        bundle.form.add_error(None, str(error))
        _record(request, access, namespace, action, name, "failed", str(error))
        return None, False
    _record(request, access, namespace, action, name, "success", f"type={spec.type} ports={len(spec.ports)}")
    return stored, False


@require_http_methods(["GET", "POST"])
@login_required
@vary_on_headers("HX-Request")
def service_form(request: HttpRequest, cluster: str, namespace: str, name: str | None = None) -> HttpResponse:
    access = namespace_access(request, cluster, namespace, write=True)
    try:
        live = api.get_service(access.cluster, namespace, name) if name else None
        ip_pools = api.list_ip_pools(access.cluster)
    except api.ApiError as error:
        if error.status == 404:
            messages.error(request, _("The Service “%(name)s” no longer exists.") % {"name": name})
            return _redirect(request, reverse("services:list", args=[cluster, namespace]))
        raise
    except kube.ClusterUnavailable as unavailable:
        return render(
            request,
            "services/unavailable.html",
            {"access": access, "namespace": namespace, "error": unavailable},
            status=503,
        )
    bundle_args = {
        "editing": live is not None,
        "ip_pools": ip_pools,
        # The seed asks for a selector; a Service created without one (hand-managed endpoints) may stay so.
        "selector_required": live is None or bool(live.get("spec", {}).get("selector")),
    }
    status, extra, conflict = 200, {}, False
    if request.method == "POST":
        action = request.POST.get("_action", "save")
        if action != "save":
            bundle, extra = _bundle_after_action(action, request, bundle_args, access, namespace, name)
        else:
            # A disabled field (the name, when editing) is not posted: Django takes it from the initial data.
            bundle = ServiceFormBundle(data=request.POST, initial={"name": name}, **bundle_args)
            if bundle.is_valid():
                stored, conflict = _save(request, bundle, access, namespace, live)
                if stored is not None:
                    done = _("Service “%(name)s” updated.") if live else _("Service “%(name)s” created.")
                    messages.success(request, done % {"name": stored["metadata"]["name"]})
                    return _redirect(
                        request, reverse("services:detail", args=[cluster, namespace, stored["metadata"]["name"]])
                    )
            status = 409 if conflict else 422
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
        **extra,
    }
    template = "services/form.html#form" if request.htmx else "services/form.html"
    return render(request, template, context, status=status)


# --- YAML -----------------------------------------------------------------------------------------------------


def _yaml_of(service: dict) -> str:
    metadata = {k: v for k, v in service.get("metadata", {}).items() if k != "managedFields"}
    document = {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": service.get("spec", {})}
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


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


def _document_from_yaml(text: str, namespace: str, name: str | None) -> dict:
    """The one Service a YAML text may hold; raises ValueError with a message for the user."""
    document = kube.load_yaml_document(text, YAML_MAX_BYTES)
    if not isinstance(document, dict):
        raise ValueError(_("The YAML must be a mapping describing one Service."))
    if document.get("apiVersion") != "v1" or document.get("kind") != "Service":
        raise ValueError(_("Only a Service (apiVersion: v1, kind: Service) can be created or edited here."))
    metadata = document.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        raise ValueError(_("Give the Service a name under metadata.name."))
    if len(metadata["name"]) > 63 or not DNS1035_LABEL.match(metadata["name"]):
        # The API server would judge this too, but it reports an IP allocation failure first.
        raise ValueError(
            _("metadata.name must be at most 63 lowercase letters, digits and '-', starting with a letter.")
        )
    if not isinstance(document.get("spec", {}), dict):
        raise ValueError(_("spec must be a mapping."))
    given = metadata.get("namespace")
    if given not in (None, "", namespace):
        raise ValueError(
            _("This Service belongs in namespace “%(namespace)s”; the YAML names another.") % {"namespace": namespace}
        )
    metadata["namespace"] = namespace
    if name is not None and metadata["name"] != name:
        raise ValueError(_("A Service cannot be renamed; create a new one instead."))
    return document


@require_http_methods(["GET", "POST"])
@login_required
@vary_on_headers("HX-Request")
def service_yaml(request: HttpRequest, cluster: str, namespace: str, name: str | None = None) -> HttpResponse:
    access = namespace_access(request, cluster, namespace, write=True)
    errors: list[str] = []
    status = 200
    try:
        live = api.get_service(access.cluster, namespace, name) if name else None
    except api.ApiError as error:
        if error.status == 404:
            messages.error(request, _("The Service “%(name)s” no longer exists.") % {"name": name})
            return _redirect(request, reverse("services:list", args=[cluster, namespace]))
        raise
    except kube.ClusterUnavailable as unavailable:
        return render(
            request,
            "services/unavailable.html",
            {"access": access, "namespace": namespace, "error": unavailable},
            status=503,
        )
    text = _yaml_of(live) if live else NEW_SERVICE_YAML
    if request.method == "POST":
        text = request.POST.get("yaml", "")
        action = "update" if live else "create"
        try:
            document = _document_from_yaml(text, namespace, name)
        except (ValueError, kube.KubeconfigError) as error:
            errors, status = [str(error)], 422
            _record(request, access, namespace, f"{action} (yaml)", name or "", "failed", str(error))
        else:
            target = document["metadata"]["name"]
            try:
                if live:
                    document["metadata"].setdefault("resourceVersion", live["metadata"]["resourceVersion"])
                    api.replace_service(access.cluster, namespace, target, document)
                else:
                    api.create_service(access.cluster, namespace, document)
            except api.ApiError as error:
                status = error.status if error.status in (409, 422) else 422
                errors = [error.message] + [
                    f"{c.get('field', '')}: {c.get('message', '')}" for c in error.causes if c.get("field")
                ]
                _record(request, access, namespace, f"{action} (yaml)", target, "failed", error.message)
            except kube.ClusterUnavailable as error:
                errors, status = [str(error)], 503
                _record(request, access, namespace, f"{action} (yaml)", target, "failed", str(error))
            else:
                _record(request, access, namespace, f"{action} (yaml)", target, "success")
                done = _("Service “%(name)s” updated.") if live else _("Service “%(name)s” created.")
                messages.success(request, done % {"name": target})
                return _redirect(request, reverse("services:detail", args=[cluster, namespace, target]))
    context = {
        "access": access,
        "namespace": namespace,
        "live": live,
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
    try:
        service = api.get_service(access.cluster, namespace, name)
    except api.ApiError as error:
        if error.status == 404:
            messages.error(request, _("The Service “%(name)s” no longer exists.") % {"name": name})
            return redirect("services:list", cluster, namespace)
        raise
    except kube.ClusterUnavailable as unavailable:
        return render(
            request,
            "services/unavailable.html",
            {"access": access, "namespace": namespace, "error": unavailable},
            status=503,
        )
    selector = service.get("spec", {}).get("selector") or {}
    related: dict[str, Any] = {"pods": [], "slices": [], "events": [], "node_ips": []}
    related_error = ""
    try:
        related["pods"] = api.list_pods(access.cluster, namespace, selector)
        related["slices"] = api.list_endpoint_slices(access.cluster, namespace, name)
        related["events"] = api.list_events(access.cluster, namespace, name)
        if service.get("spec", {}).get("type") in (m.NODE_PORT, m.LOAD_BALANCER):
            related["node_ips"] = api.node_addresses(access.cluster)
    except (api.ApiError, kube.ClusterUnavailable) as error:
        related_error = str(error)
    context = {
        "access": access,
        "namespace": namespace,
        "service": service,
        "spec": m.spec_from_service(service),
        "addresses": m.access_addresses(service, related["node_ips"]),
        "pending": m.load_balancer_pending(service),
        "yaml": _yaml_of(service),
        "can_edit": access.can_edit(namespace),
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
    _record(request, access, namespace, "delete", name, "success", f"uid={uid}" if existed else "already deleted")
    messages.success(request, _("Service “%(name)s” deleted.") % {"name": name})
    return _redirect(request, list_url)
