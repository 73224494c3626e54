from __future__ import annotations

from django.urls import path

from clusters import views

app_name = "clusters"

urlpatterns = [
    path("", views.home, name="home"),
    path("clusters/", views.cluster_list, name="cluster_list"),
    path("clusters/<slug:cluster>/", views.cluster_detail, name="cluster_detail"),
    path("clusters/<slug:cluster>/status/", views.cluster_status, name="cluster_status"),
]
