from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_post_parameters

import kube
from clusters.forms import ClusterForm
from clusters.models import AuditEntry, Cluster, Grant


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    form = ClusterForm
    list_display = [
        "name",
        "display_name",
        "server",
        "auth_method",
        "identity_mode",
        "reachable",
        "kubernetes_version",
        "last_checked",
    ]
    search_fields = ["name", "display_name", "description"]
    readonly_fields = [
        "server",
        "auth_method",
        "identity_mode",
        "identity_reason",
        "reachable",
        "kubernetes_version",
        "last_checked",
    ]
    actions = ["test_connection"]
    fieldsets = [
        (None, {"fields": ["name", "display_name", "description"]}),
        (
            _("Status"),
            {
                "fields": [
                    "server",
                    "auth_method",
                    "insecure_skip_tls_verify",
                    "reachable",
                    "kubernetes_version",
                    "last_checked",
                ]
            },
        ),
        (
            _("Credentials (write-only: stored encrypted, never shown; leave empty to keep the current ones)"),
            {"fields": ["kubeconfig", "context"]},
        ),
        (
            _("…or separate credentials"),
            {"fields": ["server_url", "token", "client_certificate", "client_key", "certificate_authority"]},
        ),
    ]

    @method_decorator(sensitive_post_parameters(*ClusterForm.secret_fields))
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        return super().changeform_view(request, object_id, form_url, extra_context)

    @admin.action(description=_("Test connection"))
    def test_connection(self, request: HttpRequest, queryset: QuerySet[Cluster]) -> None:
        for cluster in queryset:
            try:
                cluster.kubernetes_version = kube.server_version(cluster)
                cluster.reachable = True
                self.message_user(
                    request,
                    _("%(cluster)s is reachable: Kubernetes %(version)s.")
                    % {"cluster": cluster, "version": cluster.kubernetes_version},
                    messages.SUCCESS,
                )
            except kube.ClusterUnavailable as error:
                cluster.reachable = False
                self.message_user(
                    request,
                    _("%(cluster)s: %(reason)s") % {"cluster": cluster, "reason": error},
                    messages.ERROR,
                )
            cluster.last_checked = timezone.now()
            cluster.save(update_fields=["kubernetes_version", "reachable", "last_checked"])


@admin.register(Grant)
class GrantAdmin(admin.ModelAdmin):
    list_display = ["cluster", "namespace", "role", "user", "group", "created"]
    list_filter = ["cluster", "role"]
    search_fields = ["namespace", "user__username", "group__name"]
    autocomplete_fields = ["user", "group"]

    # Saving or deleting a grant changes the cluster's RBAC at once (``clusters.rbac``, by signal); what the
    # cluster refused, or a cluster that could not be reached, is said here.
    def _say_problems(self, request: HttpRequest, grant: Grant) -> None:
        for problem in getattr(grant, "rbac_problems", []):
            self.message_user(
                request,
                _("The cluster's RBAC could not be updated (%(problem)s); run “manage.py sync_rbac” once it can be.")
                % {"problem": problem},
                messages.WARNING,
            )

    def save_model(self, request: HttpRequest, obj: Grant, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        self._say_problems(request, obj)

    def delete_model(self, request: HttpRequest, obj: Grant) -> None:
        super().delete_model(request, obj)
        self._say_problems(request, obj)


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["when", "username", "cluster", "namespace", "kind", "object_name", "action", "result", "request_id"]
    list_filter = ["result", "action", "cluster", "namespace", "username"]
    search_fields = ["username", "object_name", "namespace", "detail", "request_id"]
    date_hierarchy = "when"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False
