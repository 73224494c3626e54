from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ClustersConfig(AppConfig):
    name = "clusters"
    # The app was called "console" when its tables and migrations were made; the label keeps them.
    label = "console"
    verbose_name = _("Kubernetes console")
