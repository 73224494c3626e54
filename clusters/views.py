from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

import kube
from clusters import oidc
from clusters.access import cluster_for_user, settle_waiting, visible_clusters
from clusters.forms import LoginForm


class ConsoleLoginView(LoginView):
    """Django's login view with the console's form, and single sign-on offered when it is set up."""

    authentication_form = LoginForm
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(**kwargs) | oidc.login_context()


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return redirect("clusters:cluster_list")


@require_GET
@login_required
def cluster_list(request: HttpRequest) -> HttpResponse:
    clusters = visible_clusters(request.user)
    return render(request, "clusters/cluster_list.html", {"clusters": clusters, "nav": "clusters"})


@require_GET
@login_required
def cluster_status(request: HttpRequest, cluster: str) -> HttpResponse:
    """Ask the cluster for its version now (an HTMX partial of the cluster list) and remember the answer."""
    access = cluster_for_user(request, cluster)
    target = access.cluster
    error = ""
    try:
        target.kubernetes_version = kube.server_version(target)
        target.reachable = True
    except kube.ClusterUnavailable as unavailable:
        target.reachable, error = False, str(unavailable)
    target.last_checked = timezone.now()
    target.save(update_fields=["kubernetes_version", "reachable", "last_checked"])
    return render(request, "clusters/cluster_list.html#status", {"cluster": target, "error": error})


@require_GET
@login_required
def cluster_detail(request: HttpRequest, cluster: str) -> HttpResponse:
    """The namespaces of a cluster the user may see, each linking to its Services."""
    access = settle_waiting(cluster_for_user(request, cluster))
    error = ""
    if access.cluster_wide:
        try:
            namespaces = kube.list_namespaces(access.actor)
        except kube.ClusterUnavailable as unavailable:
            namespaces, error = [], str(unavailable)
    else:
        namespaces = sorted(access.namespace_roles)
    rows = [(ns, access.roles_said(ns), ns in access.missing_namespaces) for ns in namespaces]
    return render(
        request,
        "clusters/cluster_detail.html",
        {"access": access, "rows": rows, "error": error, "nav": "clusters"},
    )


def login_locked_out(request: HttpRequest, response: HttpResponse | None, credentials: dict | None) -> HttpResponse:
    """django-axes' answer to a locked-out username and address: the login page again, saying why (429)."""
    form = LoginForm(request, data={"username": (credentials or {}).get("username", "")})
    form.add_error(
        None,
        ValidationError(
            LoginForm.error_messages["throttled"],
            code="throttled",
            params={"minutes": int(settings.LOGIN_FAILURE_WINDOW.total_seconds()) // 60},
        ),
    )
    context = {"form": form, "next": request.POST.get("next", ""), LoginView.redirect_field_name: ""}
    context |= oidc.login_context()
    return render(request, "registration/login.html", context, status=429)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Any request Django itself refuses as malformed (handler400): a page in the layout that says what to do."""
    context = {
        "title": _("The request could not be understood"),
        "message": _("The console could not read what the browser sent. Reload the page and try again."),
    }
    return render(request, "error.html", context, status=400)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A form posted without a valid CSRF token (an expired session, a page open for too long, a cleared cookie)."""
    context = {
        "title": _("The form has expired"),
        "message": _("This form was opened in an earlier session. Reload the page, then send it again."),
    }
    return render(request, "error.html", context, status=403)
