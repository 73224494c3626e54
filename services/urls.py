from __future__ import annotations

from django.urls import path

from services import views

app_name = "services"

_base = "clusters/<slug:cluster>/namespaces/<slug:namespace>/services/"

urlpatterns = [
    path("clusters/<slug:cluster>/services/", views.pick_namespace, name="pick_namespace"),
    path(_base, views.service_list, name="list"),
    path(f"{_base}create/", views.service_form, name="create"),
    path(f"{_base}create-yaml/", views.service_yaml, name="create_yaml"),
    path(f"{_base}<slug:name>/", views.service_detail, name="detail"),
    path(f"{_base}<slug:name>/edit/", views.service_form, name="edit"),
    path(f"{_base}<slug:name>/edit-yaml/", views.service_yaml, name="edit_yaml"),
    path(f"{_base}<slug:name>/delete/", views.service_delete, name="delete"),
]
