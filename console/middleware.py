from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render, resolve_url
from django.utils.cache import patch_cache_control
from django.utils.translation import gettext as _
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget

from clusters import audit
from console import logs, metrics

# No inline or eval'd script anywhere: htmx is configured through a <meta> tag with allowEval off. Inline style
# attributes are allowed for Django's admin pages.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def client_address(request: HttpRequest) -> str:
    """The client's address. Directly, REMOTE_ADDR. Behind ``settings.TRUSTED_PROXY_COUNT`` proxies that each append
    the address they saw to X-Forwarded-For, the address the outermost of them saw: counted from the right, so the
    entries further left (whatever the client sent itself) are never used."""
    remote = request.META.get("REMOTE_ADDR", "")
    trusted = settings.TRUSTED_PROXY_COUNT
    if not trusted:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    chain = [*filter(None, forwarded), remote]
    return chain[-(trusted + 1)] if len(chain) > trusted else chain[0]


access_log = logging.getLogger("console.access")

# The platform's own URLs (probes every few seconds, scrapes), and the open pages' "nothing changed" polls answered
# from memory (services.live: each open page asks every 0.8 s): their access lines are DEBUG, so they do not drown
# the people's requests. The metrics count them all.
PLATFORM_VIEWS = {"healthz", "readyz", "metrics", "services:live_unchanged"}


class RequestContextMiddleware:
    """Around everything but the probes. Gives the request its id (``clusters.audit.request_id``: the same id goes
    to the cluster and onto the audit entry) and puts it in the logging context for every line written while the
    request is served; adds the user and the URL's cluster once known; returns the id as ``X-Request-Id`` for
    support; writes one ``request finished`` line and observes the request's latency for the metrics.

    ``/metrics`` is answered here, before host validation and the HTTPS redirect: Prometheus scrapes each pod by
    its address over the cluster network, which neither ``ALLOWED_HOSTS`` nor the redirect would let through. The
    bearer token is its protection (``console.metrics``); sessions and the rest are not needed."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        request_id = audit.request_id(request)
        token = logs.bind(request_id)
        try:
            if request.path_info == metrics.PATH:
                response, view = metrics.metrics_view(request), "metrics"
                response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
                response.headers.setdefault("X-Content-Type-Options", "nosniff")
            else:
                response = self.get_response(request)
                view = metrics.view_label(request)
            seconds = time.perf_counter() - started
            response["X-Request-Id"] = request_id
            metrics.observe_request(view, response.status_code, seconds)
            access_log.log(
                logging.DEBUG if view in PLATFORM_VIEWS else logging.INFO,
                "request finished",
                extra={
                    "method": request.method,
                    "path": request.path,  # without the query string, which may hold what a user searched
                    "status": response.status_code,
                    "duration_ms": round(seconds * 1000, 1),
                    "view": view,
                },
            )
            return response
        finally:
            logs.unbind(token)

    def process_view(self, request: HttpRequest, view_func: Callable, view_args: tuple, view_kwargs: dict) -> None:
        """Runs after authentication: the signed-in user's name, and the cluster the URL names (the path is on the
        access line anyway, so this tells the log's reader nothing the request did not)."""
        context = logs.current()
        if context is None:
            return
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            context.user = user.get_username()
        context.cluster = str(view_kwargs.get("cluster", ""))


class SecurityHeadersMiddleware:
    """A Content-Security-Policy on every response, and no caching of anything shown to a signed-in user (pages
    carry cluster data and credentials-adjacent settings)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        if getattr(request, "user", None) is not None and request.user.is_authenticated:
            patch_cache_control(response, no_store=True, private=True)
        return response


class HtmxLoginRedirectMiddleware:
    """An HTMX request whose session has ended is sent to the login page as a whole page: htmx would otherwise
    follow the redirect itself and swap the login form into the middle of the page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if getattr(request, "htmx", False) and response.status_code == 302:
            location = response.get("Location", "")
            if location.startswith(resolve_url(settings.LOGIN_URL)):
                return HttpResponseClientRedirect(location)
        return response


class ClearRefusalsMiddleware:
    """Refusals Django answers with a bare page get a clear one instead.

    A POST over Django's size or field-count limits would get "Bad Request (400)": Django refuses such a body when
    the view first reads ``request.POST`` (CSRF checks included); here it is read first, so the refusal is ours.
    An HTMX request gets the message in the page's message area and leaves the form as it is, so nothing typed is
    lost; a plain request gets a page in the layout (the browser's Back button keeps the form). A method a URL does
    not take (a typed-in address of a delete, say) would get an empty 405."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST":
            try:
                request.POST  # noqa: B018 - parsing the body is the point
            except RequestDataTooBig:
                limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE / (1 << 20)
                return self._refuse(
                    request,
                    _("What you sent is larger than the console accepts (%(limit).1f MiB). Nothing was saved.")
                    % {"limit": limit},
                )
            except TooManyFieldsSent:
                return self._refuse(
                    request,
                    _("The form sent more than %(limit)d fields, more than the console accepts. Nothing was saved.")
                    % {"limit": settings.DATA_UPLOAD_MAX_NUMBER_FIELDS},
                )
        response = self.get_response(request)
        if response.status_code == 405 and not response.content:
            context = {
                "title": _("Not here"),
                "message": _(
                    "This address does not answer a request of this kind. Go back and use the page's buttons."
                ),
            }
            page = render(request, "error.html", context, status=405)
            page["Allow"] = response.get("Allow", "")
            return page
        return response

    def _refuse(self, request: HttpRequest, message: str) -> HttpResponse:
        context = {"title": _("Request too large"), "message": message}
        if getattr(request, "htmx", False):
            response = render(request, "error.html#notice", context, status=413)
            return reswap(retarget(response, "#messages"), "innerHTML")
        return render(request, "error.html", context, status=413)
