"""``manage.py register_cluster --name NAME --kubeconfig FILE [--context CTX] [--setup]``: the admin form, for
scripts. With ``--setup`` the kubeconfig is an administrator's, used once and never stored: the console sets up its
roles and its own least-privileged ServiceAccount in the cluster (``clusters.rbac.set_up``) and stores that
ServiceAccount's token instead."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

import kube
from clusters import rbac
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


def set_up_cluster(
    name: str, kubeconfig: bytes, *, context: str = "", display_name: str = "", insecure: bool = False
) -> tuple[Cluster, rbac.SyncResult]:
    """Set the cluster up for acting as each user with the administrator's ``kubeconfig``, register it with the
    console's ServiceAccount token, and bind every grant it has; raise ``CommandError``."""
    try:
        admin = kube.parse_kubeconfig(
            kubeconfig.decode("utf-8", errors="replace"),
            context or None,
            max_bytes=settings.KUBECONFIG_MAX_BYTES,
            allow_insecure=insecure,
        )
        done = rbac.set_up(admin)
    except (kube.KubeconfigError, kube.ClusterUnavailable) as error:
        raise CommandError(str(error)) from None
    except kube.ApiError as error:
        raise CommandError(_("The cluster refused the set-up: %(reason)s") % {"reason": error.message}) from None
    cluster = register_cluster(
        name, service_account_kubeconfig(done.credentials), display_name=display_name, insecure=insecure
    )
    cluster.identity_mode, cluster.identity_reason = done.mode, done.reason
    cluster.save(update_fields=["identity_mode", "identity_reason"])
    try:
        synced = rbac.sync_cluster(cluster)
    except kube.ClusterUnavailable as error:
        synced = rbac.SyncResult(failed=[str(error)])
    return cluster, synced


def service_account_kubeconfig(credentials: kube.Credentials) -> bytes:
    """A kubeconfig of the console's ServiceAccount token, so the stored credential passes the admin form's checks."""
    cluster: dict = {"server": credentials.server}
    if credentials.ca_data:
        cluster["certificate-authority-data"] = base64.b64encode(credentials.ca_data).decode()
    if credentials.insecure_skip_tls_verify:
        cluster["insecure-skip-tls-verify"] = True
    if credentials.tls_server_name:
        cluster["tls-server-name"] = credentials.tls_server_name
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": cluster}],
        "users": [{"name": "console", "user": {"token": credentials.token}}],
        "contexts": [{"name": "console", "context": {"cluster": "cluster", "user": "console"}}],
        "current-context": "console",
    }
    return json.dumps(document).encode()


class Command(BaseCommand):
    help = "Register a cluster (or replace its credentials) from a kubeconfig with inline data."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--kubeconfig", required=True, type=Path)
        parser.add_argument("--context", default="")
        parser.add_argument("--display-name", default="")
        parser.add_argument("--insecure", action="store_true", help="accept skipped TLS verification or http")
        parser.add_argument(
            "--setup",
            action="store_true",
            help="the kubeconfig is an administrator's: set up the console's roles and least-privileged "
            "ServiceAccount in the cluster, and store that ServiceAccount's token instead",
        )

    def handle(
        self,
        *args,
        name: str,
        kubeconfig: Path,
        context: str,
        display_name: str,
        insecure: bool,
        setup: bool,
        **options,
    ) -> None:
        try:
            with kubeconfig.open("rb") as handle:
                data = handle.read(settings.KUBECONFIG_MAX_BYTES + 1)
        except OSError as error:
            raise CommandError(
                _("Cannot read %(path)s: %(error)s") % {"path": kubeconfig, "error": error.strerror}
            ) from None
        if not setup:
            cluster = register_cluster(name, data, context=context, display_name=display_name, insecure=insecure)
            self.stdout.write(
                _("Registered cluster %(name)s (Kubernetes %(version)s).")
                % {"name": cluster.name, "version": cluster.kubernetes_version}
            )
            return
        cluster, synced = set_up_cluster(name, data, context=context, display_name=display_name, insecure=insecure)
        self.stdout.write(
            _("Registered cluster %(name)s (Kubernetes %(version)s): %(mode)s.")
            % {"name": cluster.name, "version": cluster.kubernetes_version, "mode": cluster.get_identity_mode_display()}
        )
        self.stdout.write(str(cluster.identity_explanation))
        report_sync(self, synced)


def report_sync(command: BaseCommand, result: rbac.SyncResult) -> None:
    """What a sync changed in the cluster, and what it could not change (on stderr)."""
    for what, names in ((_("created"), result.created), (_("updated"), result.updated), (_("deleted"), result.deleted)):
        for name in names:
            command.stdout.write(f"{what}: {name}")
    for problem in result.failed:
        command.stderr.write(_("not synchronised: %(problem)s") % {"problem": problem})
