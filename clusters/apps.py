from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ClustersConfig(AppConfig):
    name = "clusters"
    # The app was called "console" when its tables and migrations were made; the label keeps them.
    label = "console"
    verbose_name = _("Kubernetes console")

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group
        from django.db.models.signals import post_save, pre_delete, pre_save

        from clusters import rbac
        from clusters.models import Grant

        # A grant is reflected in its cluster's RBAC as soon as it is saved or deleted (admin, ``grant``, or code).
        pre_save.connect(rbac.grant_changing, sender=Grant, dispatch_uid="rbac-grant-changing")
        post_save.connect(rbac.grant_saved, sender=Grant, dispatch_uid="rbac-grant-saved")
        pre_delete.connect(rbac.grant_deleted, sender=Grant, dispatch_uid="rbac-grant-deleted")
        post_save.connect(rbac.holder_renamed, sender=get_user_model(), dispatch_uid="rbac-user-saved")
        post_save.connect(rbac.holder_renamed, sender=Group, dispatch_uid="rbac-group-saved")
