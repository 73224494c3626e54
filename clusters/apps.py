from __future__ import annotations

from axes.apps import AppConfig as AxesAppConfig
from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop


class ClustersConfig(AppConfig):
    default = True  # this module holds django-axes' config too
    name = "clusters"
    # The app was called "console" when its tables and migrations were made; the label keeps them.
    label = "console"
    verbose_name = _("Kubernetes console")

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group
        from django.contrib.auth.signals import user_logged_out
        from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save

        from clusters import epoch, rbac
        from clusters.models import Cluster, Grant

        # A grant is reflected in its cluster's RBAC as soon as it is saved or deleted (admin, ``grant``, or code).
        pre_save.connect(rbac.grant_changing, sender=Grant, dispatch_uid="rbac-grant-changing")
        post_save.connect(rbac.grant_saved, sender=Grant, dispatch_uid="rbac-grant-saved")
        pre_delete.connect(rbac.grant_deleted, sender=Grant, dispatch_uid="rbac-grant-deleted")
        post_save.connect(rbac.holder_renamed, sender=get_user_model(), dispatch_uid="rbac-user-saved")
        post_save.connect(rbac.holder_renamed, sender=Group, dispatch_uid="rbac-group-saved")

        # Whatever may change someone's access moves the access epoch (``clusters.epoch``): what vouches for a
        # user's access without a query (a live page's poll token) is then worth nothing.
        user = get_user_model()
        for model in (Grant, Cluster, Group):
            post_save.connect(epoch.move, sender=model, dispatch_uid=f"epoch-{model.__name__}-saved")
        for model in (Grant, Cluster, Group, user):
            post_delete.connect(epoch.move, sender=model, dispatch_uid=f"epoch-{model.__name__}-deleted")
        post_save.connect(epoch.user_saved, sender=user, dispatch_uid="epoch-user-saved")
        m2m_changed.connect(epoch.move, sender=user.groups.through, dispatch_uid="epoch-memberships")
        user_logged_out.connect(epoch.move, dispatch_uid="epoch-signed-out")


class LoginThrottlingConfig(AxesAppConfig):
    """django-axes, named in the admin's language (it ships no Chinese catalog)."""

    verbose_name = _("Login throttling")


# django-axes' own texts in admin (models, fields, filters, actions): listed here so that the console's catalog
# carries their translations (Django's translation falls back across catalogs by message id).
AXES_TEXTS = (
    gettext_noop("User Agent"),
    gettext_noop("IP Address"),
    gettext_noop("HTTP Accept"),
    gettext_noop("Path"),
    gettext_noop("Attempt Time"),
    gettext_noop("Access lock out"),
    gettext_noop("access failure"),
    gettext_noop("access failures"),
    gettext_noop("GET Data"),
    gettext_noop("POST Data"),
    gettext_noop("Failed Logins"),
    gettext_noop("access attempt"),
    gettext_noop("access attempts"),
    gettext_noop("Access Attempt"),
    gettext_noop("Expires At"),
    gettext_noop("The time when access attempt expires and is no longer valid."),
    gettext_noop("access attempt expiration"),
    gettext_noop("access attempt expirations"),
    gettext_noop("Logout Time"),
    gettext_noop("Session key hash (sha256)"),
    gettext_noop("access log"),
    gettext_noop("access logs"),
    gettext_noop("Locked Out"),
    gettext_noop("Form Data"),
    gettext_noop("Meta Data"),
    gettext_noop("Clean up expired attempts"),
    gettext_noop("Not set"),
    gettext_noop("Attempt Remaining"),
)
