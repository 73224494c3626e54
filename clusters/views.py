from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET

import kube
from clusters.access import cluster_for_user, visible_clusters


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
    access = cluster_for_user(request, cluster)
    error = ""
    if access.cluster_wide:
        try:
            namespaces = kube.list_namespaces(access.cluster)
        except kube.ClusterUnavailable as unavailable:
            namespaces, error = [], str(unavailable)
    else:
        namespaces = sorted(access.namespace_roles)
    rows = [(ns, access.can_edit(ns)) for ns in namespaces]
    return render(
        request,
        "clusters/cluster_detail.html",
        {"access": access, "rows": rows, "error": error, "nav": "clusters"},
    )
