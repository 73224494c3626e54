"""Liveness (``/healthz``) and readiness (``/readyz``) for the platform the console runs on.

Kubelet probes a pod at its own IP, without ``X-Forwarded-Proto``: through the usual middleware, host validation
would answer 400 (the pod IP is in no ALLOWED_HOSTS) and the HTTPS redirect 301, which kubelet counts as a success
without the database ever being asked. ``ProbeMiddleware`` therefore stands first in ``MIDDLEWARE`` and answers these
two paths itself, before any of that runs. Neither needs a login, and neither says more than ok or which dependency
is down: the paths are reachable through the public proxy too. Their text is read by machines (kubelet's events),
so it is not translated.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable

from django.db import connections
from django.db.utils import load_backend
from django.http import HttpRequest, HttpResponse

log = logging.getLogger(__name__)

# Well under kubelet's timeoutSeconds in deploy/ (3 s), so the console, not kubelet, says why it is not ready.
DATABASE_TIMEOUT = 2.0

# One check at a time per process: when the database hangs, each probe would otherwise leave one more thread
# waiting on it.
_checking = threading.Lock()


def _answer(text: str, status: int = 200) -> HttpResponse:
    response = HttpResponse(f"{text}\n", content_type="text/plain; charset=utf-8", status=status)
    response["Cache-Control"] = "no-store"
    return response


def healthz(request: HttpRequest) -> HttpResponse:
    """The process answers. Nothing else is asked: a database outage must not make kubelet restart every pod."""
    return _answer("ok")


def readyz(request: HttpRequest) -> HttpResponse:
    """The database answers a ``SELECT 1`` within ``DATABASE_TIMEOUT``; otherwise 503 with the reason, and the
    Service stops sending this pod requests until it does."""
    problem = database_problem()
    if problem:
        return _answer(f"not ready: {problem}", status=503)
    return _answer("ok")


def database_problem(alias: str = "default", timeout: float = DATABASE_TIMEOUT) -> str:
    """Empty when the database ``alias`` answered ``SELECT 1`` within ``timeout`` seconds, else why not (in words
    that name no host, user or version).

    The check runs in a thread on a connection of its own, so a database that accepts the connection and then says
    nothing cannot hold the probe longer than ``timeout``, and the request's own connection is left alone."""
    if not _checking.acquire(blocking=False):
        return "database: the previous check has not finished"
    outcome: list[str] = []

    def check() -> None:
        try:
            outcome.append(_select_one(alias, timeout))
        finally:
            _checking.release()

    thread = threading.Thread(target=check, name="readiness-database-check", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive() or not outcome:
        return f"database: no answer within {timeout:g} s"
    return outcome[0]


def _select_one(alias: str, timeout: float) -> str:
    settings_dict = connections.settings[alias]
    options = dict(settings_dict.get("OPTIONS") or {})
    if settings_dict["ENGINE"] == "django.db.backends.postgresql":
        # libpq's own limit, in whole seconds (2 at least), just beyond the thread's: it ends the check's thread.
        options["connect_timeout"] = max(2, math.ceil(timeout) + 1)
    wrapper = load_backend(settings_dict["ENGINE"]).DatabaseWrapper({**settings_dict, "OPTIONS": options}, alias)
    try:
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return ""
    except Exception as error:  # a probe answers, whatever the driver raises
        log.warning("Readiness: the database %r did not answer: %s: %s", alias, type(error).__name__, error)
        return f"database: {type(error).__name__}"
    finally:
        wrapper.close()


PROBES: dict[str, Callable[[HttpRequest], HttpResponse]] = {"/healthz": healthz, "/readyz": readyz}


class ProbeMiddleware:
    """Answer ``/healthz`` and ``/readyz`` before host validation, the HTTPS redirect, sessions and the login
    checks run (see the module's docstring). First in ``MIDDLEWARE``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info)
        if probe is not None:
            return probe(request)
        return self.get_response(request)
