"""``manage.py rotate_credentials_key``: re-encrypt every cluster's credentials with the newest key."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils.translation import gettext as _

from clusters import crypto
from clusters.models import Cluster


class Command(BaseCommand):
    help = "Re-encrypt stored credentials with the first key of CONSOLE_ENCRYPTION_KEYS."

    def handle(self, *args, **options) -> None:
        with transaction.atomic():
            clusters = list(Cluster.objects.select_for_update())
            for cluster in clusters:
                cluster.encrypted_credentials = crypto.rotate(cluster.encrypted_credentials)
                cluster.save(update_fields=["encrypted_credentials"])
        self.stdout.write(_("Re-encrypted the credentials of %(count)d clusters.") % {"count": len(clusters)})
