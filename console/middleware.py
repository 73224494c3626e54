from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render, resolve_url
from django.utils.cache import patch_cache_control
from django.utils.translation import gettext as _
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget

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
