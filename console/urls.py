from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from clusters.forms import LoginForm
from console import metrics, probes

urlpatterns = [
    path("", include("clusters.urls")),
    path("", include("services.urls")),
    path(
        "login/",
        auth_views.LoginView.as_view(authentication_form=LoginForm, redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    # For the platform, not for people: liveness, readiness (the database) and Prometheus metrics.
    path("healthz", probes.healthz, name="healthz"),
    path("readyz", probes.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
]

# Django's own 400 page is a bare "Bad Request (400)" outside the layout; this one says what to do.
handler400 = "clusters.views.bad_request"
