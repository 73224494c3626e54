"""Settings for the console, driven by the environment.

Development (the default) needs nothing set: the secret key and the credential encryption key are generated on
first run into the git-ignored data folder. Production (``CONSOLE_ENV=production``) refuses to start unless the
secrets are given through the environment.
"""

from __future__ import annotations

import datetime
import os
import re
import secrets
from pathlib import Path

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from console import logs

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("CONSOLE_DATA_DIR", BASE_DIR / "data"))


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def env_bool(name: str, default: bool) -> bool:
    """A yes/no setting. Anything but the usual spellings stops the start-up: a typo must not silently turn a
    protection off (``CONSOLE_SSL_REDIRECT=ture`` is an error, not False)."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in _TRUE | _FALSE:
        return value in _TRUE
    raise ImproperlyConfigured(f"{name} must be one of 1/0, true/false, yes/no, on/off; it is {value!r}.")


def env_number(name: str, default: float, *, minimum: float = 0, kind: type = int) -> float:
    """A number setting (``kind`` int or float) of at least ``minimum``; anything else stops the start-up."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = kind(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a {kind.__name__} number; it is {value!r}.") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}; it is {value!r}.")
    return number


def _env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _generated_secret(filename: str, make: callable) -> str:
    """Read a development secret from the data folder, creating it (mode 0600) on first use."""
    path = DATA_DIR / filename
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(make())
    return path.read_text().strip()


def _required(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise ImproperlyConfigured(f"{name} must be set when CONSOLE_ENV=production.")
    return value


ENVIRONMENT = os.environ.get("CONSOLE_ENV", "development").strip() or "development"
if ENVIRONMENT not in ("development", "production"):
    raise ImproperlyConfigured(f"CONSOLE_ENV must be development or production; it is {ENVIRONMENT!r}.")
PRODUCTION = ENVIRONMENT == "production"

if PRODUCTION:
    SECRET_KEY = _required("CONSOLE_SECRET_KEY")
    # Several keys may be given, newest first: new data is encrypted with the first, old data still decrypts
    # until `manage.py rotate_credentials_key` re-encrypts it.
    CREDENTIAL_ENCRYPTION_KEYS = _env_list("CONSOLE_ENCRYPTION_KEYS") or [_required("CONSOLE_ENCRYPTION_KEYS")]
    DEBUG = False
else:
    SECRET_KEY = os.environ.get("CONSOLE_SECRET_KEY") or _generated_secret(
        "secret_key", lambda: secrets.token_urlsafe(50)
    )
    CREDENTIAL_ENCRYPTION_KEYS = _env_list("CONSOLE_ENCRYPTION_KEYS") or [
        _generated_secret("encryption_key", lambda: Fernet.generate_key().decode())
    ]
    DEBUG = env_bool("CONSOLE_DEBUG", True)

ALLOWED_HOSTS = _env_list("CONSOLE_ALLOWED_HOSTS", "" if PRODUCTION else "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = _env_list("CONSOLE_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "clusters.apps.LoginThrottlingConfig",  # django-axes, its name translated
    "django_htmx",
    "template_partials",
    "clusters",
    "services",
]

MIDDLEWARE = [
    # First: kubelet probes by pod IP over plain HTTP, which host validation (400) and the HTTPS redirect (301)
    # below would answer before the database is asked (console.probes).
    "console.probes.ProbeMiddleware",
    # Then the request's id, its log context, access line and latency metric, around everything else.
    "console.middleware.RequestContextMiddleware",
    # An open page's poll while nothing changed: 204 from memory, before the session is read (services.live).
    "services.live.UnchangedPollMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # A person signed in through the identity provider keeps their access only while it says so (clusters.oidc).
    "clusters.oidc.ProviderSessionMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "console.middleware.HtmxLoginRedirectMiddleware",
    "console.middleware.SecurityHeadersMiddleware",
    "console.middleware.ClearRefusalsMiddleware",
    "clusters.middleware.NamespaceNotCreatedMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

if PRODUCTION:
    # The app server serves its own static files (compressed, cached forever by hashed name).
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }

ROOT_URLCONF = "console.urls"
WSGI_APPLICATION = "console.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{DATA_DIR / 'console.sqlite3'}",
        conn_max_age=env_number("CONSOLE_DB_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several workers and threads write (sessions, audit entries): WAL lets readers run beside the writer, and
    # IMMEDIATE transactions with a busy timeout queue writers instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Login throttling (django-axes, counted in the database so every worker and replica shares it): after
# CONSOLE_LOGIN_FAILURE_LIMIT failures of one username from one client address, that pair waits 15 minutes. The
# client address is REMOTE_ADDR, or, behind CONSOLE_TRUSTED_PROXY_COUNT proxies that each append to
# X-Forwarded-For, the address the outermost of them saw (console.middleware.client_address).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # Django's, with local passwords limited as CONSOLE_LOCAL_LOGIN says; single sign-on logs people in through it.
    "clusters.oidc.LocalPasswordBackend",
]
LOGIN_FAILURE_LIMIT = env_number("CONSOLE_LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_FAILURE_WINDOW = datetime.timedelta(minutes=15)
TRUSTED_PROXY_COUNT = env_number("CONSOLE_TRUSTED_PROXY_COUNT", 0)
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = LOGIN_FAILURE_WINDOW
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "clusters.views.login_locked_out"
AXES_VERBOSE = False

AXES_CLIENT_IP_CALLABLE = "console.middleware.client_address"
# Single sign-on with the organisation's OpenID Connect provider (``clusters.oidc``); off while no issuer is set.
OIDC_ISSUER = os.environ.get("CONSOLE_OIDC_ISSUER", "").strip().rstrip("/")
OIDC_CLIENT_ID = os.environ.get("CONSOLE_OIDC_CLIENT_ID", "").strip()
OIDC_CLIENT_SECRET = os.environ.get("CONSOLE_OIDC_CLIENT_SECRET", "").strip()
OIDC_SCOPES = os.environ.get("CONSOLE_OIDC_SCOPES", "openid email profile").strip()
OIDC_USERNAME_CLAIM = os.environ.get("CONSOLE_OIDC_USERNAME_CLAIM", "preferred_username").strip()
OIDC_GROUPS_CLAIM = os.environ.get("CONSOLE_OIDC_GROUPS_CLAIM", "groups").strip()
OIDC_PROVIDER_NAME = os.environ.get("CONSOLE_OIDC_PROVIDER_NAME", "").strip()
# A PEM file of the CAs that sign the provider's certificate, when not the system's (empty: the system's).
OIDC_CA_FILE = os.environ.get("CONSOLE_OIDC_CA_FILE", "").strip()
OIDC_TIMEOUT = env_number("CONSOLE_OIDC_TIMEOUT", 5.0, minimum=0.1, kind=float)
# How often a signed-in person's access is asked of the provider again (a refresh of their token): the longest a
# person disabled or moved out of a group there keeps their access here.
OIDC_RECHECK_SECONDS = env_number("CONSOLE_OIDC_RECHECK_SECONDS", 300, minimum=1)
if OIDC_ISSUER and not (OIDC_CLIENT_ID and OIDC_CLIENT_SECRET):
    raise ImproperlyConfigured("CONSOLE_OIDC_ISSUER needs CONSOLE_OIDC_CLIENT_ID and CONSOLE_OIDC_CLIENT_SECRET.")
# Local passwords: for everyone, for superusers only (a break-glass account beside single sign-on), or off.
LOCAL_LOGIN = os.environ.get("CONSOLE_LOCAL_LOGIN", "everyone").strip() or "everyone"
if LOCAL_LOGIN not in ("everyone", "superusers", "off"):
    raise ImproperlyConfigured(f"CONSOLE_LOCAL_LOGIN must be everyone, superusers or off; it is {LOCAL_LOGIN!r}.")
if LOCAL_LOGIN == "off" and not OIDC_ISSUER:
    raise ImproperlyConfigured("CONSOLE_LOCAL_LOGIN=off needs single sign-on (CONSOLE_OIDC_ISSUER).")

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "clusters:cluster_list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("CONSOLE_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("CONSOLE_STATIC_ROOT", BASE_DIR / "staticfiles"))

# A Service form holds at most three formsets of 100 rows (services.forms); anything above this is not a browser
# filling in the form, and gets a clear refusal (console.middleware.ClearRefusalsMiddleware).
DATA_UPLOAD_MAX_NUMBER_FIELDS = 2000
CSRF_FAILURE_VIEW = "clusters.views.csrf_failure"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("CONSOLE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_number("CONSOLE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# How long the console waits for a cluster: a dead one must answer within about five seconds.
KUBE_CONNECT_TIMEOUT = env_number("CONSOLE_KUBE_CONNECT_TIMEOUT", 3.0, minimum=0.1, kind=float)
KUBE_READ_TIMEOUT = env_number("CONSOLE_KUBE_READ_TIMEOUT", 5.0, minimum=0.1, kind=float)
# All my Services asks every cluster at once; one that has not answered within this many seconds gets an error row
# and the page is served without it.
FLEET_DEADLINE = env_number("CONSOLE_FLEET_DEADLINE", 2.0, minimum=0.1, kind=float)
# Cluster-side names of the console: users "<prefix>:<username>", ClusterRoles "<prefix>:ns-edit", bindings
# "<prefix>-grant-<id>". Two consoles managing one cluster need different prefixes.
CONSOLE_IDENTITY_PREFIX = os.environ.get("CONSOLE_IDENTITY_PREFIX", "console")
if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?", CONSOLE_IDENTITY_PREFIX):
    raise ImproperlyConfigured("CONSOLE_IDENTITY_PREFIX: use 1-32 lowercase letters, digits and '-'.")
# The DNS domain of the clusters' Services (kubelet's --cluster-domain), for the name shown on a Service's page.
CONSOLE_CLUSTER_DOMAIN = os.environ.get("CONSOLE_CLUSTER_DOMAIN", "cluster.local").strip(".") or "cluster.local"
# The history of Services (services.recorder): versions older than this many days are removed, and at most this
# many versions are kept per Service (the oldest go first).
HISTORY_MAX_AGE_DAYS = env_number("CONSOLE_HISTORY_MAX_AGE_DAYS", 90, minimum=1)
HISTORY_MAX_VERSIONS = env_number("CONSOLE_HISTORY_MAX_VERSIONS", 100, minimum=2)
# A kubeconfig is a small document; anything larger is refused before it is parsed.
KUBECONFIG_MAX_BYTES = 256 * 1024

# Logs: one JSON object per line in production, text in development (CONSOLE_LOG_FORMAT=json|text overrides), each
# line carrying the request's id, user and cluster (console.logs). Metrics at /metrics for a scraper that sends
# "Authorization: Bearer <CONSOLE_METRICS_TOKEN>"; without a token, only a development server answers, to loopback
# (console.metrics). docs/operations.md.
try:
    LOG_FORMAT = logs.log_format(os.environ.get("CONSOLE_LOG_FORMAT", ""), production=PRODUCTION)
except ValueError as error:
    raise ImproperlyConfigured(str(error)) from None
LOGGING_CONFIG = "console.logs.configure"
LOGGING = logs.logging_config(LOG_FORMAT, os.environ.get("CONSOLE_LOG_LEVEL", "INFO").strip().upper() or "INFO")
METRICS_TOKEN = os.environ.get("CONSOLE_METRICS_TOKEN", "").strip()
if METRICS_TOKEN and len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("CONSOLE_METRICS_TOKEN must be at least 16 characters (a random token).")
