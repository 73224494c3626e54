"""An open page's poll while nothing changes, answered before the session, the user or the grants are read.

An open list or Service page asks every 0.8 s whether what it shows changed (``console.js``, 10). Nearly always
nothing did, and the full answer (session, user, grants: four queries, then the informers and the cluster's
remembered access review) ends in an empty 204. Here that 204 is given from memory:

* A page drawn after the full checks gets a poll URL that carries a token (``poll_url``), signed with the secret
  key: the poll's path, a digest of the session cookie it was drawn for, the access epoch (``clusters.epoch``), the
  cluster's key and the identity the cluster sees, and an expiry: ``TOKEN_SECONDS`` at most, never past the
  session's own expiry or its next recheck at the identity provider.
* ``UnchangedPollMiddleware`` answers 204 when that token is good for this path and this session cookie, the epoch
  has not moved, the namespace's informers still hold the version the page shows, and the cluster's remembered
  answer (``kube.identity.remembered``, under ``AUTHORISATION_TTL`` old) still lets that identity list Services
  there. Anything else (a change, an expired token or review, a moved epoch, an informer not running) goes on to
  the view, which checks everything as before and hands out a fresh URL (``X-Live-Url`` on its 204).

The shortcut only ever says "nothing changed since the version you hold", and never sends data: a session ended
elsewhere or a grant revoked is met by the full checks at the next change, at the token's expiry, or (anything
that moves the epoch: a grant, a user, a group, a cluster, a sign-out) within ``clusters.epoch.READ_EVERY``.
A short poll was kept over a push channel: gunicorn's sync workers would give each open page's stream a worker.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from django.conf import settings
from django.core import signing
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse

import kube
from clusters import epoch
from clusters.access import Access
from clusters.oidc import RECHECK_AT
from services import api

SALT = "services.live.poll"
TOKEN_SECONDS = 300  # a page polls with one token this long at most, then through the view once for the next
TOKEN = "t"  # the query parameter


@dataclass(frozen=True)
class _ClusterKey:
    """What the informers and the remembered access reviews know a cluster by (``kube.client.ClusterRef``'s keys),
    as the token carries them: no database row is read to answer a poll."""

    pk: int
    credentials_version: int
    impersonates: bool
    name: str


def session_digest(request: HttpRequest) -> str:
    """Ties a token to the session cookie it was handed out with, without putting the cookie into a URL."""
    cookie = request.COOKIES.get(settings.SESSION_COOKIE_NAME, "")
    return hashlib.sha256(cookie.encode()).hexdigest()[:32] if cookie else ""


def _expiry(request: HttpRequest) -> int:
    ends = [time.time() + TOKEN_SECONDS]
    session = getattr(request, "session", None)
    if session is not None:
        ends.append(session.get_expiry_date().timestamp())
        recheck = session.get(RECHECK_AT)
        if recheck is not None:
            ends.append(float(recheck))
    return int(min(ends))


def token(request: HttpRequest, path: str, access: Access, namespace: str, service: str = "") -> str:
    """The signed token for polls of ``path`` (by this session, under this access): of a Service's page when
    ``service`` is named, else of the namespace's list."""
    cluster, identity = access.cluster, access.identity
    payload = [
        path,
        session_digest(request),
        epoch.current(),
        [cluster.pk, cluster.credentials_version, cluster.impersonates, cluster.name],
        namespace,
        service,
        [identity.user, list(identity.groups)] if identity is not None else None,
        _expiry(request),
    ]
    return signing.dumps(payload, salt=SALT)


def poll_url(
    request: HttpRequest, path: str, access: Access, namespace: str, query: Any, version: str, service: str = ""
) -> str:
    """A live region's poll URL: the page's own filters, the version it shows, and the token."""
    kept = {key: query[key] for key in ("q", "type", "page") if query.get(key)}
    sealed = token(request, path, access, namespace, service)
    return f"{path}?{urlencode({**kept, 'v': version, TOKEN: sealed})}"


def unchanged(request: HttpRequest) -> bool:
    """Whether this poll may be answered 204 from memory (see the module's text); False sends it to the view."""
    try:
        # The query string read directly: cheaper than building request.GET, and all this needs.
        query = dict(parse_qsl(request.META.get("QUERY_STRING", ""), max_num_fields=10))
        since, sealed = query.get("v", ""), query.get(TOKEN, "")
        if not since or not sealed:
            return False
        request.get_host()  # the host validation the view's answer would have had
        path, session, made_under, cluster, namespace, shown, who, expires = signing.loads(sealed, salt=SALT)
        key = _ClusterKey(*cluster)
        identity = kube.Identity(who[0], tuple(who[1])) if who is not None else None
    except (signing.BadSignature, DisallowedHost, TypeError, ValueError):  # ValueError: too many fields too
        return False
    if path != request.path_info or expires <= time.time() or not session or session != session_digest(request):
        return False
    if made_under != epoch.current():
        return False
    actor = kube.Actor(key, identity)
    if kube.remembered(actor, "list", "services", namespace) is not True:
        return False
    return since == api.live_version(actor, namespace, shown if shown else api.list_shown(query), start=False)


class UnchangedPollMiddleware:
    """Answers an open page's poll 204 when nothing changed, before sessions and users are loaded (``unchanged``).
    Sits right after the request's id and access line, so such a poll is still counted and logged."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "GET" and request.path_info.endswith("/_live/") and unchanged(request):
            request.live_poll = True  # for the metrics' view label
            response = HttpResponse(status=204)
            response["Cache-Control"] = "no-store, private"
            return response
        return self.get_response(request)
