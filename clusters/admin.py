"""Django admin: clusters (credentials write-only, judged by what they may do, the set-up run from here), role
grants that explain themselves, users, and the audit log, which also records every change made here."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_post_parameters

import kube
from clusters import audit, crypto, rbac
from clusters.forms import ClusterForm
from clusters.models import AuditEntry, Cluster, Grant, Role

# --- the audit of admin changes ---------------------------------------------------------------------------------


def _record_change(request: HttpRequest, action: str, obj: object, detail: str = "", cluster: str = "") -> None:
    """One audit entry for a change made in admin: who (the request's user), what and when; never a secret."""
    kind = type(obj)._meta.verbose_name  # noqa: SLF001 - the model's own name, as admin shows it
    audit.record(
        request,
        action=action,
        result=AuditEntry.Result.SUCCESS,
        cluster=cluster,
        namespace=getattr(obj, "namespace", "") or "",
        kind=str(kind),
        name=str(obj)[:253],
        detail=detail,
    )


def _changed(form: forms.Form, hidden: tuple[str, ...] = ()) -> str:
    fields = [name for name in form.changed_data if name not in hidden]
    return "changed: " + ", ".join(fields) if fields else ""


class AuditedDeletes:
    """Deletes from a change page or the list's bulk action, each audited as ``<noun> removed``."""

    audit_noun = ""

    def delete_model(self, request: HttpRequest, obj) -> None:
        cluster = obj.cluster.name if isinstance(obj, Grant) else obj.name if isinstance(obj, Cluster) else ""
        _record_change(request, f"{self.audit_noun} removed", obj, cluster=cluster)
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            self.delete_model(request, obj)


# --- clusters -----------------------------------------------------------------------------------------------


@admin.register(Cluster)
class ClusterAdmin(AuditedDeletes, admin.ModelAdmin):
    audit_noun = "cluster"
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
        "identity",
        "reachable",
        "kubernetes_version",
        "last_checked",
    ]
    actions = ["test_connection", "repair_rbac", "reencrypt_credentials"]

    def get_fieldsets(self, request: HttpRequest, obj: Cluster | None = None):
        credentials = ["use", "kubeconfig", "context", "insecure_skip_tls_verify"]
        separate = ["server_url", "token", "client_certificate", "client_key", "certificate_authority"]
        naming = (
            _("How the cluster names people (the same as its own OIDC authenticator, for one person in both)"),
            {"fields": ["naming", "oidc_username_claim", "oidc_username_prefix", "oidc_groups_prefix"]},
        )
        if obj is None:
            # A new cluster: nothing to show of its status yet, and its credential is needed.
            return [
                (None, {"fields": ["name", "display_name", "description"]}),
                (
                    _("Credentials (used to set the cluster up, or stored encrypted; never shown)"),
                    {"fields": credentials},
                ),
                (_("…or separate credentials"), {"fields": separate}),
                naming,
            ]
        return [
            (None, {"fields": ["name", "display_name", "description"]}),
            (
                _("Status"),
                {"fields": ["server", "auth_method", "identity", "reachable", "kubernetes_version", "last_checked"]},
            ),
            (
                _("Credentials (write-only: stored encrypted, never shown; leave empty to keep the current ones)"),
                {"fields": credentials},
            ),
            (_("…or separate credentials"), {"fields": separate}),
            naming,
        ]

    @admin.display(description=_("identity"))
    def identity(self, obj: Cluster) -> str:
        return f"{obj.get_identity_mode_display()} ({obj.get_identity_reason_display()}): {obj.identity_explanation}"

    @method_decorator(sensitive_post_parameters(*ClusterForm.secret_fields))
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request: HttpRequest, obj: Cluster, form: ClusterForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        detail = _changed(form, ClusterForm.secret_fields + ("use",))
        if form.new_credentials is not None:
            use = form.cleaned_data.get("use") or rbac.SET_UP
            # Which way the credential was used, never its value.
            said = "credential replaced: " + ("set-up run, the console's token stored" if form.set_up_done else use)
            detail = f"{detail}; {said}" if detail else said
        _record_change(request, "cluster changed" if change else "cluster added", obj, detail, obj.name)
        renamed = bool(
            {"naming", "oidc_username_claim", "oidc_username_prefix", "oidc_groups_prefix"} & set(form.changed_data)
        )
        if form.set_up_done is not None or (change and renamed):
            # After a set-up the grants are bound; after a change of naming their subjects follow.
            try:
                synced = rbac.sync_cluster(obj, audit.request_id(request))
            except kube.ClusterUnavailable as error:
                synced = rbac.SyncResult(failed=[str(error)])
            for problem in synced.failed:
                self.message_user(request, problem, messages.WARNING)
        if form.new_credentials is not None:
            self.message_user(request, _mode_said(obj, form), messages.INFO)
            if form.stores_more_than_needed:
                self.message_user(
                    request,
                    _(
                        "This credential can also read Secrets, and every console user now acts with it. Setting the "
                        "cluster up instead stores only the console's limited token."
                    ),
                    messages.WARNING,
                )

    @admin.action(description=_("Test connection and rights"))
    def test_connection(self, request: HttpRequest, queryset: QuerySet[Cluster]) -> None:
        for cluster in queryset:
            try:
                cluster.kubernetes_version = kube.server_version(cluster)
                cluster.reachable = True
                use = rbac.OWN_TOKEN if cluster.impersonates else rbac.SHARED
                problems = rbac.credential_problems(rbac.rights_of(cluster.credentials()), use)
                if problems:
                    for problem in problems:
                        self.message_user(request, _name_said(cluster, problem), messages.ERROR)
                else:
                    said = (
                        _(
                            "Cluster “%(name)s” is reachable (Kubernetes %(version)s), and its credential may do what "
                            "the console needs and no more than that."
                        )
                        if cluster.impersonates
                        else _(
                            "Cluster “%(name)s” is reachable (Kubernetes %(version)s), and its credential may do what "
                            "the console needs."
                        )
                    ) % {"name": cluster.name, "version": cluster.kubernetes_version}
                    self.message_user(request, said, messages.SUCCESS)
            except kube.ClusterUnavailable as error:
                cluster.reachable = False
                self.message_user(request, _name_said(cluster, str(error)), messages.ERROR)
            cluster.last_checked = timezone.now()
            cluster.save(update_fields=["kubernetes_version", "reachable", "last_checked"])

    @admin.action(description=_("Repair the cluster's RBAC (bindings of every grant)"))
    def repair_rbac(self, request: HttpRequest, queryset: QuerySet[Cluster]) -> None:
        for cluster in queryset:
            if not cluster.impersonates:
                self.message_user(request, _name_said(cluster, _NOT_TOLD), messages.WARNING)
                continue
            try:
                result = rbac.sync_cluster(cluster, audit.request_id(request))
            except kube.ClusterUnavailable as error:
                self.message_user(request, _name_said(cluster, str(error)), messages.ERROR)
                continue
            summary = _("%(created)d bindings made, %(deleted)d removed, %(failed)d failed.") % {
                "created": len(result.created),
                "deleted": len(result.deleted),
                "failed": len(result.failed),
            }
            _record_change(request, "rbac repaired", cluster, summary, cluster.name)
            self.message_user(request, _name_said(cluster, summary), messages.ERROR if result.failed else messages.INFO)
            for problem in result.failed:
                self.message_user(request, _name_said(cluster, problem), messages.WARNING)

    @admin.action(description=_("Re-encrypt credentials with the newest key"))
    def reencrypt_credentials(self, request: HttpRequest, queryset: QuerySet[Cluster]) -> None:
        count = 0
        for cluster in queryset:
            cluster.encrypted_credentials = crypto.rotate(cluster.encrypted_credentials)
            cluster.save(update_fields=["encrypted_credentials"])
            _record_change(request, "credentials re-encrypted", cluster, cluster=cluster.name)
            count += 1
        self.message_user(
            request, _("Re-encrypted the credentials of %(count)d clusters with the newest key.") % {"count": count}
        )


_NOT_TOLD = _(
    "acts with a shared credential: its RBAC is not told of grants, so the console's roles alone decide who may do "
    "what."
)


def _name_said(cluster: Cluster, text: object) -> str:
    return str(_("Cluster “%(name)s”: %(text)s") % {"name": cluster.name, "text": text})


def _mode_said(cluster: Cluster, form: ClusterForm) -> str:
    """After a credential was given: the mode the cluster runs in now, and why."""
    if cluster.impersonates and form.set_up_done is not None:
        text = _(
            "acts as each user. The credential you gave set the cluster up and was not stored; only the console's "
            "limited token is, which cannot read Secrets."
        )
    elif cluster.impersonates:
        text = _("acts as each user with the console's own token, which you gave.")
    elif cluster.identity_reason == Cluster.IdentityReason.NO_CONSTRAINED_IMPERSONATION:
        text = _(
            "cannot act as each user (no constrained impersonation): the console acts for everyone with its own "
            "ServiceAccount, limited to the console's roles. The credential you gave was not stored."
        )
    else:
        text = _(
            "acts with the credential you gave for everyone (shared mode, as you chose): the cluster's audit log "
            "shows the console, not the person."
        )
    return _name_said(cluster, text)


# --- grants -----------------------------------------------------------------------------------------------------


class GrantForm(forms.ModelForm):
    """A grant, with every mistake said on its field in the admin's language (not as a database constraint)."""

    class Meta:
        model = Grant
        fields = ["cluster", "role", "namespace", "user", "group"]

    def clean(self) -> dict:
        cleaned = super().clean()
        role, namespace = cleaned.get("role"), cleaned.get("namespace", "")
        if role and Role(role).is_cluster_wide and namespace:
            self.add_error("namespace", _("A cluster role covers every namespace: leave the namespace empty."))
        elif role and not Role(role).is_cluster_wide and not namespace and "namespace" not in self.errors:
            self.add_error("namespace", _("An NS role needs the namespace it applies to."))
        user, group = cleaned.get("user"), cleaned.get("group")
        if user and group:
            self.add_error("group", _("Grant the role to a user or to a group, not both: make two grants."))
        elif not user and not group and "user" not in self.errors and "group" not in self.errors:
            self.add_error("user", _("Choose the user (or the group) who gets the role."))
        if not self.errors and cleaned.get("cluster"):
            same = Grant.objects.filter(
                cluster=cleaned["cluster"], role=role, namespace=namespace or "", user=user, group=group
            ).exclude(pk=self.instance.pk)
            if same.exists():
                self.add_error(None, _("This grant exists already."))
        return cleaned


@admin.register(Grant)
class GrantAdmin(AuditedDeletes, admin.ModelAdmin):
    audit_noun = "grant"
    form = GrantForm
    list_display = ["cluster", "namespace", "role", "user", "group", "created"]
    list_filter = ["cluster", "role"]
    search_fields = ["namespace", "user__username", "group__name"]
    autocomplete_fields = ["user", "group"]

    # Saving or deleting a grant changes the cluster's RBAC at once (``clusters.rbac``, by signal); what that
    # means, and what the cluster refused, is said here.
    def _say_outcome(self, request: HttpRequest, grant: Grant) -> None:
        if not grant.cluster.impersonates:
            self.message_user(request, _name_said(grant.cluster, _NOT_TOLD), messages.INFO)
            return
        if grant.waiting_for_namespace:
            self.message_user(
                request,
                _(
                    "Namespace “%(namespace)s” does not exist in cluster “%(cluster)s” yet. The grant is saved, and "
                    "its RoleBinding is made as soon as the namespace exists; until then the person sees that the "
                    "namespace is not there yet."
                )
                % {"namespace": grant.namespace, "cluster": grant.cluster.name},
                messages.WARNING,
            )
        for problem in getattr(grant, "rbac_problems", []):
            self.message_user(
                request,
                _("The cluster's RBAC could not be updated: %(problem)s. Use the action “Repair the cluster's RBAC”.")
                % {"problem": problem},
                messages.WARNING,
            )

    def save_model(self, request: HttpRequest, obj: Grant, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        detail = f"role={obj.role} namespace={obj.namespace or '*'} holder={obj.user or obj.group}"
        _record_change(request, "grant changed" if change else "grant added", obj, detail, obj.cluster.name)
        self._say_outcome(request, obj)


# --- users and groups: Django's admin, audited ----------------------------------------------------------------

User = get_user_model()
_ADDED_OR_CHANGED = {False: "user added", True: "user changed"}
admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class UserAdmin(AuditedDeletes, DjangoUserAdmin):
    audit_noun = "user"

    def save_model(self, request: HttpRequest, obj, form, change: bool) -> None:
        was_active = (
            User.objects.filter(pk=obj.pk).values_list("is_active", flat=True).first() if change and obj.pk else None
        )
        super().save_model(request, obj, form, change)
        detail = _changed(form, ("password", "password1", "password2", "usable_password"))
        deactivated = bool(was_active) and not obj.is_active
        _record_change(request, "user deactivated" if deactivated else _ADDED_OR_CHANGED[change], obj, detail)


@admin.register(Group)
class GroupAdmin(AuditedDeletes, DjangoGroupAdmin):
    audit_noun = "group"

    def save_model(self, request: HttpRequest, obj, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        _record_change(request, "group changed" if change else "group added", obj, _changed(form))


# --- the audit log ----------------------------------------------------------------------------------------------


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
