"""Prometheus metrics at ``/metrics``: the console's requests here, its Kubernetes calls and informers in ``kube``.

Label values are bounded: a request is labelled by its URL's name (never the path, which holds namespaces and
Service names), a status class, and clusters by their registered name. Under gunicorn every worker process
writes its samples to files in ``PROMETHEUS_MULTIPROC_DIR`` (``console/gunicorn.py`` sets it up and removes a dead
worker's gauges) and a scrape adds them up; in one process (runserver, tests) the default registry answers.

The page names every cluster, so it is not for people: it answers a request that carries
``Authorization: Bearer <CONSOLE_METRICS_TOKEN>``; with no token configured, only in development and only from
this machine (loopback), so ``make run`` can be scraped locally. Everyone else gets the same refusal, whether or
not a token is configured.
"""

from __future__ import annotations

import hmac
import os

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Histogram, generate_latest, multiprocess

# Seconds. The list page answers in about 10 ms from the informer; a cold page or a slow cluster in seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUEST_SECONDS = Histogram(
    "console_request_duration_seconds",
    "Time to answer a request, by URL name (view) and status class.",
    ["view", "status"],
    buckets=LATENCY_BUCKETS,
)

LOOPBACK = {"127.0.0.1", "::1"}
# Answered by ``console.middleware.RequestContextMiddleware`` before host validation and the HTTPS redirect (a
# scraper asks each pod by its address, over plain HTTP inside the cluster); also in the URLconf, by that name.
PATH = "/metrics"


def view_label(request: HttpRequest) -> str:
    """The URL's name (``services:list``), from the URLconf and so bounded; ``unresolved`` for a path that matched
    no URL (a 404, or a static file WhiteNoise served before URL resolution)."""
    match = getattr(request, "resolver_match", None)
    if match is None and getattr(request, "live_poll", False):
        return "services:live_unchanged"  # answered before URL resolution (services.live)
    return (match.view_name if match is not None else "") or "unresolved"


def status_class(status: int) -> str:
    return f"{status // 100}xx"


def observe_request(view: str, status: int, seconds: float) -> None:
    REQUEST_SECONDS.labels(view, status_class(status)).observe(seconds)


def may_scrape(request: HttpRequest) -> bool:
    """Whether this request may read the metrics: the configured bearer token (compared in constant time), or, with
    none configured, a development server asked from loopback."""
    token = settings.METRICS_TOKEN
    if token:
        scheme, _space, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
    return not settings.PRODUCTION and request.META.get("REMOTE_ADDR", "") in LOOPBACK


def _registry() -> CollectorRegistry:
    """Every worker's samples under gunicorn (a fresh registry reading the multiprocess files, as prometheus_client
    asks), else this process's own."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not may_scrape(request):
        context = {
            "title": _("Not for people"),
            "message": _("This address serves the console's monitoring data to its monitoring system only."),
        }
        response = render(request, "error.html", context, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)
