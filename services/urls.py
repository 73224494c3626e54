from __future__ import annotations

from django.urls import path

from services import copy_views, fleet, history_views, reach_views, views

app_name = "services"

_base = "clusters/<slug:cluster>/namespaces/<slug:namespace>/services/"


def _form_urls(prefix: str, route: str) -> list:
    """The form's page (``prefix``: create or edit) and one URL per interaction of it."""
    return [
        path(route, views.service_form, name=prefix),
        path(f"{route}validate/", views.service_form_validate, name=f"{prefix}_validate"),
        path(f"{route}refresh/", views.service_form_refresh, name=f"{prefix}_refresh"),
        path(f"{route}rows/<slug:formset>/add/", views.service_form_add_row, name=f"{prefix}_add_row"),
        path(f"{route}rows/<slug:formset>/remove/", views.service_form_remove_row, name=f"{prefix}_remove_row"),
        path(f"{route}workloads/", views.service_form_workloads, name=f"{prefix}_workloads"),
        path(f"{route}workloads/use/", views.service_form_use_workload, name=f"{prefix}_use_workload"),
        path(f"{route}free-node-port/", views.service_form_free_node_port, name=f"{prefix}_free_node_port"),
    ]


urlpatterns = [
    # All my Services: every cluster and namespace the user may view.
    *fleet.urls(),
    path("clusters/<slug:cluster>/services/", views.pick_namespace, name="pick_namespace"),
    path(_base, views.service_list, name="list"),
    # "_live" cannot be a Service's name (DNS labels have no "_"), so these never hide a Service's page.
    path(f"{_base}_live/", views.service_list_live, name="list_live"),
    # Services whose last recorded version is their deletion: where their history and undelete are found.
    path(f"{_base}_deleted/", history_views.deleted_services, name="deleted"),
    *_form_urls("create", f"{_base}create/"),
    path(f"{_base}create-yaml/", views.service_yaml, name="create_yaml"),
    path(f"{_base}<slug:name>/", views.service_detail, name="detail"),
    path(f"{_base}<slug:name>/_live/", views.service_detail_live, name="detail_live"),
    *_form_urls("edit", f"{_base}<slug:name>/edit/"),
    path(f"{_base}<slug:name>/edit-yaml/", views.service_yaml, name="edit_yaml"),
    path(f"{_base}<slug:name>/delete/", views.service_delete, name="delete"),
    # Every recorded version: who changed what and when, compare two, restore one, undelete.
    *history_views.urls(f"{_base}<slug:name>/history/"),
    # The same Service in other clusters and namespaces.
    *copy_views.urls(f"{_base}<slug:name>/copy/"),
    # Test a port of the Service and open it in the browser, through the API server's proxy as the user.
    *reach_views.urls(f"{_base}<slug:name>/reach/"),
]
