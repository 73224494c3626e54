"""Reaching a Service from the browser, through the API server's proxy and as the user (``services.reach``): test a
port (status, time, headers, the start of the body), and open it in the browser.

Every URL is for those who may edit the namespace, checked in Python before anything reaches the cluster; the
cluster then decides again (``services/proxy`` in the user's roles there). Every test and every opened page is
audited with the request id the API server also sees.

An opened page is the Service's, never the console's: it is answered under the console's URL with a
``Content-Security-Policy`` whose ``sandbox`` makes it a document of an opaque origin where no script runs, shown in
an ``<iframe sandbox>``; it sets no cookie (``Set-Cookie`` is dropped) and follows no redirect out of the Service's
proxy path. ``docs/identity.md`` ("Reaching a Service") argues the choice.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, register_converter, reverse
from django.utils.translation import gettext as _
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers

from clusters.access import Access, namespace_access
from services import reach
from services.views import answers_failures, audit_action, get_service_or_gone

# An opened page of the Service: no script, no plugin, no origin of its own (``sandbox``), nothing loaded from
# anywhere but the console's URL of the same port, and framed only by the console.
OPENED_PAGE_POLICY = "; ".join(
    [
        "sandbox",
        "default-src 'none'",
        "img-src 'self' data:",
        "style-src 'self' 'unsafe-inline'",
        "font-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'self'",
    ]
)
# Of the Service's answer headers, the only ones an opened page passes on; anything else (Set-Cookie, its own
# security policy, Refresh, Link, CORS headers) never reaches the browser.
PASSED_HEADERS = ("Content-Type", "Content-Language", "Last-Modified", "ETag")


class ProxiedPath:
    """The rest of an opened page's URL: any path below the port's ``open/``, empty included (checked by
    ``reach.checked_path`` in the view, where a refusal can be said)."""

    regex = ".*"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(ProxiedPath, "proxied")


def urls(route: str) -> list:
    """The URL patterns under ``route`` (a Service's ``.../reach/``), one port each (its name, or its number)."""
    return [
        path(f"{route}<slug:port>/", test_port, name="reach"),
        path(f"{route}<slug:port>/view/", view_port, name="reach_view"),
        path(f"{route}<slug:port>/open/<proxied:path>", open_port, name="reach_open"),
    ]


# --- shared pieces -------------------------------------------------------------------------------------------------


class PortMissing(Exception):
    def __init__(self, access: Access, namespace: str, port: str) -> None:
        super().__init__(port)
        self.access, self.namespace, self.port = access, namespace, port


def _reachable(request: HttpRequest, cluster: str, namespace: str, name: str, port: str) -> tuple[Access, dict]:
    """The access of an editor of the namespace (PermissionDenied/Http404 otherwise) and ``_port``."""
    access = namespace_access(request, cluster, namespace, write=True)
    return access, _port(access, namespace, name, port)


def _port(access: Access, namespace: str, name: str, port: str) -> dict:
    """The live Service's TCP port ``port``; raises ServiceGone/ClusterDown (``answers_failures``) and
    PortMissing."""
    chosen = reach.service_port(get_service_or_gone(access, namespace, name), port)
    if chosen is None:
        raise PortMissing(access, namespace, port)
    return chosen


def _port_missing(request: HttpRequest, missing: PortMissing) -> HttpResponse:
    message = _("This Service has no TCP port “%(port)s”: only its TCP ports can be reached.") % {"port": missing.port}
    context = {"access": missing.access, "namespace": missing.namespace, "title": _("Not found"), "message": message}
    return render(
        request, "error.html#notice" if request.htmx else "error.html", context | {"nav": "services"}, status=404
    )


def _fetch(
    request: HttpRequest,
    access: Access,
    namespace: str,
    name: str,
    port: dict,
    proxied: str,
    *,
    action: str,
    limit: int,
) -> reach.Answer | reach.Unreached:
    """One request through the proxy, audited: who, which Service, port and path, what came back and the API
    server's Audit-Id (the console's own request id is the entry's, and the API server's audit log holds it too)."""
    where = f"port {reach.port_key(port)}, GET {proxied}"
    try:
        answer = reach.fetch(access.actor, namespace, name, port, proxied, limit=limit)
    except reach.Unreached as unreached:
        why = unreached.detail or unreached.message
        said = f"{where}: no answer ({unreached.status}) in {unreached.seconds * 1000:.0f} ms: {why}"
        result = "denied" if unreached.status == 403 else "failed"
        audit_action(request, access, namespace, action, name, result, f"{said} (Audit-Id {unreached.audit_id or '-'})")
        return unreached
    said = f"{where}: HTTP {answer.status} in {answer.seconds * 1000:.0f} ms, Audit-Id {answer.audit_id or '-'}"
    audit_action(request, access, namespace, action, name, "success", said)
    return answer


def _urls(access: Access, namespace: str, name: str, key: str) -> dict[str, str]:
    args = [access.cluster.name, namespace, name, key]
    return {
        "test": reverse("services:reach", args=args),
        "view": reverse("services:reach_view", args=args),
        "open": reverse("services:reach_open", args=[*args, ""]),
    }


# --- testing a port ------------------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@login_required
@vary_on_headers("HX-Request")
@answers_failures
def test_port(request: HttpRequest, cluster: str, namespace: str, name: str, port: str) -> HttpResponse:
    """GET: the port's test form. POST: one request to the typed path, answered with what came back (under HTMX,
    only the result, for the Service's page to show beside the port)."""
    try:
        access, chosen = _reachable(request, cluster, namespace, name, port)
    except PortMissing as missing:
        return _port_missing(request, missing)
    typed = request.POST.get("path", "/") if request.method == "POST" else "/"
    context = {
        "access": access,
        "namespace": namespace,
        "name": name,
        "port": chosen,
        "key": reach.port_key(chosen),
        "typed": typed,
        "urls": _urls(access, namespace, name, reach.port_key(chosen)),
        "nav": "services",
    }
    status = 200
    if request.method == "POST":
        try:
            proxied = reach.checked_path(typed)
        except reach.BadPath as bad:
            context["error"], status = str(bad), 422
        else:
            outcome = _fetch(
                request, access, namespace, name, chosen, proxied, action="test port", limit=reach.TEST_LIMIT
            )
            context |= {"proxied": proxied, **_shown(outcome)}
    template = "services/reach.html#result" if request.htmx and request.method == "POST" else "services/reach.html"
    return render(request, template, context, status=status)


def _shown(outcome: reach.Answer | reach.Unreached) -> dict:
    """What the result shows of an answer (or of its absence)."""
    if isinstance(outcome, reach.Unreached):
        return {"unreached": outcome}
    return {
        "answer": outcome,
        "headers": reach.shown_headers(outcome.headers),
        "text": outcome.text,
        "openable": outcome.content_type.startswith(("text/", "image/")) or not outcome.content_type,
    }


# --- opening a port in the browser ---------------------------------------------------------------------------------


@require_GET
@login_required
@answers_failures
def view_port(request: HttpRequest, cluster: str, namespace: str, name: str, port: str) -> HttpResponse:
    """The console's page around an opened page: the path to open, and the Service's answer in a sandboxed frame."""
    access = namespace_access(request, cluster, namespace, write=True)
    typed = request.GET.get("path", "/")
    context = {"access": access, "namespace": namespace, "name": name, "key": port, "typed": typed, "nav": "services"}
    try:
        proxied = reach.checked_path(typed)
    except reach.BadPath as bad:  # refused before anything reaches the cluster
        context |= {"urls": _urls(access, namespace, name, port), "error": str(bad)}
        return render(request, "services/reach_view.html", context, status=422)
    try:
        key = reach.port_key(_port(access, namespace, name, port))
    except PortMissing as missing:
        return _port_missing(request, missing)
    urls = _urls(access, namespace, name, key)
    context |= {"key": key, "urls": urls, "frame_url": urls["open"] + proxied[1:]}
    return render(request, "services/reach_view.html", context)


def _said_in_the_sandbox(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """An opened page's own requests (a link followed in the frame, an image) come from the sandbox's opaque origin,
    so the browser sends the console's session cookie with none of them (``SameSite=Lax``). Rather than the sign-in
    page, which may not be framed, the frame says so and names the path to open from the console."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated or request.headers.get("Sec-Fetch-Dest", "document") == "document":
            return view(request, *args, **kwargs)
        context = {"name": kwargs.get("name"), "key": kwargs.get("port"), "sessionless": "/" + kwargs.get("path", "")}
        return _sandboxed(render(request, "services/reach_opened.html", context, status=403))

    return wrapper


@require_GET
@xframe_options_sameorigin
@_said_in_the_sandbox
@login_required
@answers_failures
def open_port(request: HttpRequest, cluster: str, namespace: str, name: str, port: str, path: str) -> HttpResponse:
    """The Service's answer to ``path`` as a sandboxed page (``OPENED_PAGE_POLICY``): its body (links of the API
    server's proxy path turned into this URL's), its content headers only, a redirect followed only inside the
    Service's port; when there is no answer, why, in the same sandbox."""
    access = namespace_access(request, cluster, namespace, write=True)
    query = request.META.get("QUERY_STRING", "")
    context = {"access": access, "namespace": namespace, "name": name, "key": port}
    try:
        proxied = reach.checked_path("/" + path + (f"?{query}" if query else ""))
    except reach.BadPath as bad:  # refused before anything reaches the cluster
        return _sandboxed(render(request, "services/reach_opened.html", context | {"error": str(bad)}, status=422))
    try:
        chosen = _port(access, namespace, name, port)
    except PortMissing as missing:
        return _sandboxed(_port_missing(request, missing))
    outcome = _fetch(request, access, namespace, name, chosen, proxied, action="open port", limit=reach.OPEN_LIMIT)
    if isinstance(outcome, reach.Unreached):
        page = render(request, "services/reach_opened.html", context | {"unreached": outcome}, status=outcome.status)
        return _sandboxed(page)
    open_prefix = _urls(access, namespace, name, reach.port_key(chosen))["open"].rstrip("/")
    if 300 <= outcome.status < 400 and outcome.header("Location"):
        prefix = reach.proxy_prefix(namespace, name, chosen)
        inside = reach.redirect_inside(outcome.header("Location"), proxied, prefix)
        if inside is None:
            context |= {"redirect": outcome.header("Location"), "answer": outcome}
            return _sandboxed(render(request, "services/reach_opened.html", context))
        return _sandboxed(HttpResponseRedirect(open_prefix + inside))
    return _sandboxed(_relayed(outcome, reach.proxy_prefix(namespace, name, chosen), open_prefix))


def _relayed(answer: reach.Answer, proxy_prefix: str, open_prefix: str) -> HttpResponse:
    """The Service's answer as the console passes it on. The API server rewrites the Service's own absolute links
    in HTML to its proxy path; they are turned into this port's ``open/`` URL, so they stay inside it."""
    body = answer.body
    if answer.content_type.startswith("text/html"):
        body = body.replace(proxy_prefix.encode(), open_prefix.encode())
    response = HttpResponse(body, status=answer.status)
    response["Content-Type"] = answer.content_type or "application/octet-stream"
    for name in PASSED_HEADERS[1:]:
        if answer.header(name):
            response[name] = answer.header(name)
    return response


def _sandboxed(response: HttpResponse) -> HttpResponse:
    """An answer of an opened page: the sandbox policy, never sniffed into another type, no referrer sent on."""
    response["Content-Security-Policy"] = OPENED_PAGE_POLICY
    response["X-Content-Type-Options"] = "nosniff"
    response["Referrer-Policy"] = "no-referrer"
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    return response
