"""``manage.py grant (--user U | --group G) --cluster C [--namespace N] --role ROLE``."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from clusters.models import Cluster, Grant, Role, dns_label


class Command(BaseCommand):
    help = "Grant a role on a cluster (cluster-*) or on one namespace of it (ns-*) to a user or a group."

    def add_arguments(self, parser: CommandParser) -> None:
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--user")
        who.add_argument("--group")
        parser.add_argument("--cluster", required=True)
        parser.add_argument("--namespace", default="")
        parser.add_argument("--role", required=True, choices=Role.values)

    def handle(
        self, *args, user: str | None, group: str | None, cluster: str, namespace: str, role: str, **options
    ) -> None:
        target = Cluster.objects.filter(name=cluster).first()
        if target is None:
            raise CommandError(_("No cluster named %(name)s.") % {"name": cluster})
        if Role(role).is_cluster_wide and namespace:
            raise CommandError(_("%(role)s is a cluster role: give no --namespace.") % {"role": role})
        if not Role(role).is_cluster_wide:
            if not namespace:
                raise CommandError(_("%(role)s is a namespace role: give --namespace.") % {"role": role})
            dns_label(namespace)
        owner: dict = {}
        if user:
            owner["user"] = get_user_model().objects.filter(username=user).first()
            if owner["user"] is None:
                raise CommandError(_("No user named %(name)s.") % {"name": user})
        else:
            owner["group"], _created = Group.objects.get_or_create(name=group)
        grant, created = Grant.objects.get_or_create(cluster=target, namespace=namespace, role=role, **owner)
        self.stdout.write((_("Granted: %(grant)s") if created else _("Already granted: %(grant)s")) % {"grant": grant})
        for problem in getattr(grant, "rbac_problems", []):
            self.stderr.write(_("Not yet in the cluster's RBAC: %(problem)s") % {"problem": problem})
