"""``manage.py sync_rbac [--cluster NAME]``: make each cluster's role bindings match the console's grants."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

import kube
from clusters import rbac
from clusters.management.commands.register_cluster import report_sync
from clusters.models import Cluster


class Command(BaseCommand):
    help = (
        "Create the role bindings of every grant in its cluster, correct changed ones and delete those whose grant "
        "is gone (clusters that act as each user; the others have none)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--cluster", default="", help="only this cluster")

    def handle(self, *args, cluster: str, **options) -> None:
        clusters = Cluster.objects.filter(name=cluster) if cluster else Cluster.objects.all()
        if cluster and not clusters.exists():
            raise CommandError(_("No cluster named %(name)s.") % {"name": cluster})
        failed = False
        for target in clusters:
            if not target.impersonates:
                self.stdout.write(
                    _("%(cluster)s: shared credential, no bindings to synchronise.") % {"cluster": target.name}
                )
                continue
            try:
                result = rbac.sync_cluster(target)
            except kube.ClusterUnavailable as error:
                result = rbac.SyncResult(failed=[str(error)])
            changes = len(result.created) + len(result.updated) + len(result.deleted)
            self.stdout.write(_("%(cluster)s: %(changes)d change(s).") % {"cluster": target.name, "changes": changes})
            report_sync(self, result)
            failed = failed or bool(result.failed)
        if failed:
            raise CommandError(_("Some bindings could not be synchronised (see above)."))
