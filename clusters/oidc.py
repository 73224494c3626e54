"""Single sign-on with the organisation's OpenID Connect provider, through authlib's Django client.

authlib was chosen over mozilla-django-oidc and django-allauth: it finds the provider from its issuer (discovery),
does PKCE, state and nonce in the authorization code flow, validates the ID token (signature by the provider's
keys, issuer, audience, expiry, nonce) and refreshes tokens, and its JOSE library (joserfc) validates the
back-channel logout token; mozilla-django-oidc needs every endpoint configured by hand and renews sessions by
redirecting the browser, and allauth brings accounts, e-mail flows and templates the console does not want.

The flow:
- ``login`` sends the browser to the provider (``next`` kept in the session, only if it stays on this site);
- ``callback`` takes the code back, makes or updates the console user from the claims (the groups claim sets the
  user's console groups, added and removed), logs them in, and keeps the provider's tokens, encrypted, with the
  session (``ProviderSession``);
- ``ProviderSessionMiddleware`` asks the provider again (a refresh of the token) once ``OIDC_RECHECK_SECONDS``
  have passed (when is kept in the session, so the requests in between cost no query): new groups are taken, and
  a person the provider no longer accepts is logged out;
- ``logout`` also ends the provider's session (RP-initiated logout);
- ``backchannel_logout`` is called by the provider when a session ends there, and ends that person's console
  sessions at once.
No token is ever logged, rendered or put in a URL of the console's.
"""

from __future__ import annotations

import copy
import datetime
import functools
import logging
import threading
import time
from collections import OrderedDict
from typing import Any

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.django_client import OAuth
from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AbstractBaseUser, Group
from django.contrib.sessions.models import Session
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from clusters import audit, epoch, rbac
from clusters.forms import LoginForm
from clusters.models import PersonAtProvider, ProviderSession

log = logging.getLogger(__name__)

BACKEND = "clusters.oidc.LocalPasswordBackend"
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LEEWAY = 60  # seconds of clock difference tolerated between the provider and the console


def enabled() -> bool:
    return bool(settings.OIDC_ISSUER)


def provider_name() -> str:
    return settings.OIDC_PROVIDER_NAME or _("your organisation's sign-in")


@functools.cache
def _provider():
    """authlib's client of the provider, found from its issuer (discovery, fetched on first use)."""
    registry = OAuth()
    registry.register(
        name="provider",
        client_id=settings.OIDC_CLIENT_ID,
        client_secret=settings.OIDC_CLIENT_SECRET,
        server_metadata_url=f"{settings.OIDC_ISSUER}/.well-known/openid-configuration",
        client_kwargs={
            "scope": settings.OIDC_SCOPES,
            "code_challenge_method": "S256",
            "default_timeout": settings.OIDC_TIMEOUT,
            "verify": settings.OIDC_CA_FILE or True,
            # requests lets REQUESTS_CA_BUNDLE in the environment override a session's own CA file: with one given
            # here, the environment is not read (its proxy settings neither).
            **({"trust_env": False} if settings.OIDC_CA_FILE else {}),
        },
    )
    return registry.provider


def forget_provider() -> None:
    """Drop the cached client (its discovery document and keys): settings changed, in tests."""
    _provider.cache_clear()


# Failures of the provider's side: unreachable, slow, an HTTP error, or an answer that is not JSON.
UNREACHABLE = (requests.RequestException,)


class LocalPasswordBackend(ModelBackend):
    """Django's password check, limited by ``CONSOLE_LOCAL_LOGIN``: everyone, superusers only (a break-glass
    account beside single sign-on), or nobody."""

    def authenticate(self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kw):
        user = super().authenticate(request, username=username, password=password, **kw)
        if user is None or settings.LOCAL_LOGIN == "everyone":
            return user
        if settings.LOCAL_LOGIN == "superusers" and user.is_superuser:
            return user
        return None

    def get_user(self, user_id: Any) -> AbstractBaseUser | None:
        """The user of a session, kept by the process while the access epoch stays (``clusters.epoch``: any change
        of a user moves it, a login's ``last_login`` aside), so a page does not read the user's row again; a copy
        for each request. Another replica sees a change within a second, as it sees a revoked grant."""
        current = epoch.current()
        with _users_lock:
            kept = _users.get(user_id)
        if kept is None or kept[0] != current:
            kept = (current, super().get_user(user_id))
            with _users_lock:
                _users[user_id] = kept
                if len(_users) > _USERS_KEPT:
                    _users.popitem(last=False)
        return copy.copy(kept[1]) if kept[1] is not None else None


_USERS_KEPT = 4096
_users: OrderedDict[Any, tuple[int, AbstractBaseUser | None]] = OrderedDict()
_users_lock = threading.Lock()


def forget_users() -> None:
    with _users_lock:
        _users.clear()


# --- signing in -------------------------------------------------------------------------------------------------


def _safe_next(request: HttpRequest, target: str | None) -> str:
    """``target`` when it stays on this site, else the cluster list: ``next`` never leads off-site."""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return target
    return reverse(settings.LOGIN_REDIRECT_URL)


def login_context() -> dict[str, Any]:
    """What the login page shows of single sign-on and of local passwords."""
    return {"sso": enabled(), "sso_name": provider_name(), "local_login": settings.LOCAL_LOGIN}


def _refused(request: HttpRequest, message: str, status: int = 400) -> HttpResponse:
    """The login page again, saying why single sign-on did not work."""
    context = {"form": LoginForm(request), "sso_error": message, "next": "", **login_context()}
    return render(request, "registration/login.html", context, status=status)


@never_cache
@require_GET
def login(request: HttpRequest) -> HttpResponse:
    if not enabled():
        return redirect("login")
    request.session["oidc_next"] = _safe_next(request, request.GET.get("next"))
    try:
        provider = _provider()
        # Discovery asked again at each sign-in (one short call): a provider that is down is said here, on the
        # console's page, rather than after the browser has been sent to it.
        provider.server_metadata.pop("_loaded_at", None)
        provider.load_server_metadata()
        return provider.authorize_redirect(
            request, request.build_absolute_uri(reverse("oidc_callback")), ui_locales=_ui_locale()
        )
    except UNREACHABLE as error:
        log.warning("single sign-on: the provider cannot be reached: %s", type(error).__name__)
        return _refused(request, _unreachable(), status=503)


def _ui_locale() -> str:
    """The person's language as providers name it (BCP 47: zh-CN rather than Django's zh-hans)."""
    return {"zh-hans": "zh-CN"}.get(get_language() or "en", get_language() or "en")


def _unreachable() -> str:
    return _("%(provider)s cannot be reached right now. Try again in a moment, or ask an administrator.") % {
        "provider": provider_name()
    }


@never_cache
@require_GET
def callback(request: HttpRequest) -> HttpResponse:
    if not enabled():
        return redirect("login")
    try:
        token = _provider().authorize_access_token(request, leeway=LEEWAY)
        claims = dict(token.get("userinfo") or {})
        if not claims.get("sub"):
            raise OAuthError(error="no_id_token")
    except UNREACHABLE as error:
        log.warning("single sign-on: the provider cannot be reached: %s", type(error).__name__)
        return _refused(request, _unreachable(), status=503)
    except (OAuthError, JoseError, KeyError) as error:
        # A tampered, replayed or stale callback, a token for another audience or issuer, an expired one.
        reason = getattr(error, "error", "") or type(error).__name__
        log.warning("single sign-on refused: %s", reason)
        audit.record(request, action="login (single sign-on)", result="failed", detail=f"refused: {reason}"[:200])
        return _refused(
            request, _("Signing in with %(provider)s did not work. Try again.") % {"provider": provider_name()}
        )
    user, problem = _person(claims)
    if user is None:
        audit.record(request, action="login (single sign-on)", result="failed", detail=problem)
        return _refused(request, problem, status=403)
    target = request.session.pop("oidc_next", "") or reverse(settings.LOGIN_REDIRECT_URL)
    auth.login(request, user, backend=BACKEND)
    _keep_session(request, user, token, claims)
    audit.record(request, action="login (single sign-on)", result="success")
    return HttpResponseRedirect(_safe_next(request, target))


def _keep_session(request: HttpRequest, user: Any, token: dict, claims: dict) -> None:
    if not request.session.session_key:
        request.session.save()
    kept = ProviderSession(
        session_key=request.session.session_key, user=user, sid=str(claims.get("sid") or ""), checked=timezone.now()
    )
    kept.set_tokens({key: token[key] for key in ("refresh_token", "id_token") if token.get(key)})
    ProviderSession.objects.filter(session_key=kept.session_key).delete()
    kept.save()
    _recheck_later(request)


# When the provider is next asked, in the session itself: the requests in between read nothing more.
RECHECK_AT = "oidc_recheck_at"


def _recheck_later(request: HttpRequest) -> None:
    request.session[RECHECK_AT] = time.time() + settings.OIDC_RECHECK_SECONDS


def _groups_of(claims: dict) -> list[str]:
    groups = claims.get(settings.OIDC_GROUPS_CLAIM) or []
    if not isinstance(groups, list):
        return []
    # A provider may send full paths ("/team-a"); the console's groups are the plain names.
    return sorted({str(name).strip("/") for name in groups if str(name).strip("/")})[:200]


@transaction.atomic
def _person(claims: dict) -> tuple[Any, str]:
    """The console user of these claims: found by issuer and subject, or made on the first sign-in; their name,
    e-mail and groups taken from the claims. (None, why) when they cannot sign in."""
    users = get_user_model()
    issuer, subject = settings.OIDC_ISSUER, str(claims["sub"])
    person = PersonAtProvider.objects.select_related("user").filter(issuer=issuer, subject=subject).first()
    username = str(claims.get(settings.OIDC_USERNAME_CLAIM) or "").strip()[:150]
    if person is None:
        if not username:
            return None, _("Your sign-in does not say your user name (claim “%(claim)s”); ask an administrator.") % {
                "claim": settings.OIDC_USERNAME_CLAIM
            }
        if users.objects.filter(username=username).exists():
            # Never take over an account made here (a local admin, say) by a name the provider sends.
            return None, _(
                "A console account named “%(name)s” exists already and is not linked to this sign-in; ask an "
                "administrator."
            ) % {"name": username}
        user = users.objects.create_user(username=username)
        user.set_unusable_password()
        person = PersonAtProvider(user=user, issuer=issuer, subject=subject)
    user = person.user
    if not user.is_active:
        return None, _("Your console account is deactivated; ask an administrator.")
    user.first_name = str(claims.get("given_name") or "")[:150]
    user.last_name = str(claims.get("family_name") or "")[:150]
    user.email = str(claims.get("email") or "")[:254]
    user.save()
    _take_claims(person, claims)
    return user, ""


def _take_claims(person: PersonAtProvider, claims: dict) -> None:
    """Keep the claims the cluster may name the person by, and set their console groups from the groups claim
    (grants on groups, and with them the clusters' bindings, follow)."""
    kept = {key: claims[key] for key in ("email", "preferred_username", "name", "sub") if key in claims}
    kept["groups"] = _groups_of(claims)
    named_anew = person.pk is not None and {k: v for k, v in person.claims.items() if k != "groups"} != {
        k: v for k, v in kept.items() if k != "groups"
    }
    person.claims = kept
    person.save()
    wanted = [Group.objects.get_or_create(name=name)[0] for name in kept["groups"]]
    user = person.user
    if set(user.groups.all()) != set(wanted):
        user.groups.set(wanted)
    if named_anew:
        rbac.holder_renamed(type(user), user)  # the bindings name the person as the cluster now does


# --- staying signed in, and signing out ---------------------------------------------------------------------------


class ProviderSessionMiddleware:
    """Asks the provider again, once ``OIDC_RECHECK_SECONDS`` have passed since it last did, whether the person
    still has their access (a refresh of their token): their groups follow, and a person it no longer accepts
    (disabled, signed out there, removed) is logged out here. No call on the other requests."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        due = request.session.get(RECHECK_AT) if enabled() else None
        if due is not None and time.time() >= due and request.user.is_authenticated:
            kept = ProviderSession.objects.filter(session_key=request.session.session_key).first()
            if kept is None or not _still_allowed(request, kept):
                auth.logout(request)
                messages.info(
                    request, _("Your sign-in with %(provider)s ended. Sign in again.") % {"provider": provider_name()}
                )
                return redirect(f"{reverse('login')}?next={request.path}")
        return self.get_response(request)


def _still_allowed(request: HttpRequest, kept: ProviderSession) -> bool:
    due = kept.checked + datetime.timedelta(seconds=settings.OIDC_RECHECK_SECONDS)
    tokens = kept.tokens()
    try:
        answer = _provider().fetch_access_token(
            grant_type="refresh_token", refresh_token=tokens.get("refresh_token", "")
        )
        claims = (
            dict(_provider().parse_id_token(answer, nonce=None, leeway=LEEWAY) or {}) if answer.get("id_token") else {}
        )
    except UNREACHABLE as error:
        # The provider cannot say: the person keeps their access for one more window, not longer.
        log.warning("single sign-on: cannot ask the provider: %s", type(error).__name__)
        return timezone.now() < due + datetime.timedelta(seconds=settings.OIDC_RECHECK_SECONDS)
    except (OAuthError, JoseError) as error:
        log.info("single sign-on: the provider no longer accepts a session of %s: %s", kept.user_id, _reason(error))
        kept.delete()
        return False
    person = PersonAtProvider.objects.filter(user_id=kept.user_id).first()
    if person is not None and claims.get("sub") == person.subject:
        _take_claims(person, claims)
    kept.set_tokens({**tokens, **{key: answer[key] for key in ("refresh_token", "id_token") if answer.get(key)}})
    kept.checked = timezone.now()
    kept.save()
    _recheck_later(request)
    return True


def _reason(error: Exception) -> str:
    return str(getattr(error, "error", "") or type(error).__name__)


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    """Sign out of the console, and of the provider too when the session came from it."""
    kept = ProviderSession.objects.filter(session_key=request.session.session_key or "").first()
    id_token = kept.tokens().get("id_token") if kept is not None else None
    if kept is not None:
        kept.delete()
    auth.logout(request)
    if not (enabled() and id_token):
        return redirect(settings.LOGOUT_REDIRECT_URL)
    try:
        return _provider().logout_redirect(
            request, post_logout_redirect_uri=request.build_absolute_uri(reverse("login")), id_token_hint=id_token
        )
    except (*UNREACHABLE, RuntimeError):
        return redirect(settings.LOGOUT_REDIRECT_URL)


@csrf_exempt
@require_POST
def backchannel_logout(request: HttpRequest) -> HttpResponse:
    """The provider ends a session (OpenID Connect Back-Channel Logout 1.0): the logout token is checked (the
    provider's signature, issuer, audience, age, the logout event, no nonce) and the person's console sessions
    of that provider session (``sid``), or all of theirs (``sub``), end at once."""
    if not enabled():
        return JsonResponse({"error": "invalid_request", "error_description": "single sign-on is off"}, status=404)
    try:
        claims = _logout_claims(request.POST.get("logout_token", ""))
    except UNREACHABLE:
        return JsonResponse({"error": "temporarily_unavailable"}, status=503)
    except (JoseError, ValueError, KeyError) as error:
        log.warning("back-channel logout refused: %s", type(error).__name__)
        return JsonResponse(
            {"error": "invalid_request", "error_description": "the logout token is not valid"}, status=400
        )
    sessions = ProviderSession.objects.all()
    if claims.get("sid"):
        sessions = sessions.filter(sid=claims["sid"])
    else:
        person = PersonAtProvider.objects.filter(issuer=settings.OIDC_ISSUER, subject=claims["sub"]).first()
        sessions = sessions.filter(user_id=person.user_id if person else None)
    keys = list(sessions.values_list("session_key", flat=True))
    Session.objects.filter(session_key__in=keys).delete()
    sessions.delete()
    log.info("back-channel logout ended %d console sessions", len(keys))
    return HttpResponse(status=200, headers={"Cache-Control": "no-store"})


def _logout_claims(token: str) -> dict:
    provider = _provider()
    metadata = provider.load_server_metadata()
    keys = KeySet.import_key_set(provider.fetch_jwk_set())
    try:
        decoded = jwt.decode(token, keys)
    except JoseError:
        decoded = jwt.decode(token, KeySet.import_key_set(provider.fetch_jwk_set(force=True)))
    claims = decoded.claims
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    now = time.time()
    events = claims.get("events")
    checks = (
        claims.get("iss") == metadata.get("issuer"),
        settings.OIDC_CLIENT_ID in audiences,
        isinstance(claims.get("iat"), int | float) and abs(now - claims["iat"]) <= 5 * 60 + LEEWAY,
        not isinstance(claims.get("exp"), int | float) or claims["exp"] + LEEWAY >= now,
        isinstance(events, dict) and LOGOUT_EVENT in events,
        "nonce" not in claims,
        bool(claims.get("sid") or claims.get("sub")),
    )
    if not all(checks):
        raise ValueError("the logout token's claims are not those of a logout of this client")
    return claims
