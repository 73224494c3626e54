from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from console import views
from console.forms import LoginForm

console_patterns = [
    path("", views.home, name="home"),
    path("clusters/", views.cluster_list, name="cluster_list"),
    path("clusters/<slug:cluster>/", views.cluster_detail, name="cluster_detail"),
    path("clusters/<slug:cluster>/status/", views.cluster_status, name="cluster_status"),
]

urlpatterns = [
    path("", include((console_patterns, "console"))),
    path("", include("services.urls")),
    path(
        "login/",
        auth_views.LoginView.as_view(authentication_form=LoginForm, redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
]
