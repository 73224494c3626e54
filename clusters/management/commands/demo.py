"""``manage.py demo --kubeconfig FILE``: set up a cluster (the local control plane, in ``make run``) as ``local``,
acting as each user, with demo users.

Run by ``make run`` after ``python -m tools.localcluster up``; safe to run again (the control plane may have moved
port).
Passwords are generated once and kept in the data folder (mode 0600) so each run can print them.
"""

from __future__ import annotations

import io
import json
import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from kubernetes import client
from kubernetes.client.exceptions import ApiException

import kube
from clusters.management.commands.register_cluster import set_up_cluster

DEMO_USERS = [
    # username, superuser, role on namespace "demo"
    ("admin", True, None),
    ("editor", False, "ns-edit"),
    ("viewer", False, "ns-view"),
]


def demo_passwords() -> dict[str, str]:
    path = Path(settings.DATA_DIR) / "demo-passwords.json"
    if path.exists():
        return json.loads(path.read_text())
    passwords = {name: secrets.token_urlsafe(9) for name, _superuser, _role in DEMO_USERS}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(passwords, handle)
    return passwords


class Command(BaseCommand):
    help = "Register the local control plane as cluster 'local', create namespace 'demo' and demo users."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--kubeconfig", required=True, type=Path, help="the cluster to register as 'local'")
        parser.add_argument("--url", default="http://127.0.0.1:8000/", help="where the console will be served")

    def handle(self, *args, kubeconfig: Path, url: str, **options) -> None:
        try:
            data = kubeconfig.read_bytes()
        except OSError as error:
            raise CommandError(
                _("Cannot read %(path)s: %(error)s") % {"path": kubeconfig, "error": error.strerror}
            ) from None
        # The administrator's kubeconfig makes the demo namespace and sets the console up to act as each user; the
        # console keeps only its own least-privileged ServiceAccount token (``register_cluster --setup``).
        try:
            admin = kube.parse_kubeconfig(data.decode(errors="replace"), None, max_bytes=settings.KUBECONFIG_MAX_BYTES)
        except kube.KubeconfigError as error:
            raise CommandError(str(error)) from None
        admin_client = kube.build_api_client(admin)
        try:
            client.CoreV1Api(admin_client).create_namespace({"metadata": {"name": "demo"}})
        except ApiException as error:
            if error.status != 409:
                raise
        finally:
            admin_client.rest_client.pool_manager.clear()
        cluster, synced = set_up_cluster("local", data, display_name="local")
        self.stdout.write(_("Cluster local: %(mode)s.") % {"mode": cluster.get_identity_mode_display()})
        passwords = demo_passwords()
        users = get_user_model().objects
        for username, superuser, role in DEMO_USERS:
            user = users.filter(username=username).first()
            if user is None:
                user = users.create_user(username, password=passwords[username])
            user.is_staff = user.is_superuser = superuser
            user.save()
            if role:
                call_command("grant", user=username, cluster="local", namespace="demo", role=role, stdout=io.StringIO())
        self.stdout.write(_("The console runs at %(url)s — log in as:") % {"url": url})
        for username, _superuser, role in DEMO_USERS:
            what = role or _("superuser, Django admin")
            self.stdout.write(f"  {username:<8} {passwords[username]:<14} ({what})")
