"""``manage.py register_cluster --name NAME --kubeconfig FILE [--context CTX]``: the admin form, for scripts."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from clusters.forms import ClusterForm
from clusters.models import Cluster


def register_cluster(
    name: str, kubeconfig: bytes, *, context: str = "", display_name: str = "", insecure: bool = False
) -> Cluster:
    """Create or update a cluster through the same validation as the admin form; raise ``CommandError``."""
    instance = Cluster.objects.filter(name=name).first()
    form = ClusterForm(
        data={
            "name": name,
            "display_name": display_name or (instance.display_name if instance else ""),
            "description": instance.description if instance else "",
            "context": context,
            "insecure_skip_tls_verify": insecure,
        },
        files={"kubeconfig": SimpleUploadedFile("kubeconfig", kubeconfig)},
        instance=instance,
    )
    if not form.is_valid():
        problems = [
            f"{field}: {' '.join(errors)}" if field != "__all__" else " ".join(errors)
            for field, errors in form.errors.items()
        ]
        raise CommandError("\n".join(problems))
    return form.save()


class Command(BaseCommand):
    help = "Register a cluster (or replace its credentials) from a kubeconfig with inline data."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--kubeconfig", required=True, type=Path)
        parser.add_argument("--context", default="")
        parser.add_argument("--display-name", default="")
        parser.add_argument("--insecure", action="store_true", help="accept skipped TLS verification or http")

    def handle(
        self, *args, name: str, kubeconfig: Path, context: str, display_name: str, insecure: bool, **options
    ) -> None:
        try:
            with kubeconfig.open("rb") as handle:
                data = handle.read(settings.KUBECONFIG_MAX_BYTES + 1)
        except OSError as error:
            raise CommandError(
                _("Cannot read %(path)s: %(error)s") % {"path": kubeconfig, "error": error.strerror}
            ) from None
        cluster = register_cluster(name, data, context=context, display_name=display_name, insecure=insecure)
        self.stdout.write(
            _("Registered cluster %(name)s (Kubernetes %(version)s).")
            % {"name": cluster.name, "version": cluster.kubernetes_version}
        )
