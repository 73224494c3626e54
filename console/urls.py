from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from clusters import oidc
from clusters.views import ConsoleLoginView
from console import metrics, probes

urlpatterns = [
    path("", include("clusters.urls")),
    path("", include("services.urls")),
    path("login/", ConsoleLoginView.as_view(), name="login"),
    # Signing out also ends the identity provider's session when the person came from it (clusters.oidc).
    path("logout/", oidc.logout, name="logout"),
    path("oidc/login/", oidc.login, name="oidc_login"),
    path("oidc/callback/", oidc.callback, name="oidc_callback"),
    path("oidc/backchannel-logout/", oidc.backchannel_logout, name="oidc_backchannel_logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    # For the platform, not for people: liveness, readiness (the database) and Prometheus metrics.
    path("healthz", probes.healthz, name="healthz"),
    path("readyz", probes.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
]

# Django's own 400 page is a bare "Bad Request (400)" outside the layout; this one says what to do.
handler400 = "clusters.views.bad_request"
