"""``manage.py localcluster up|down|status|kubeconfig``: the local control plane for development and demos."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from console import localcluster


def state_file() -> Path:
    return Path(settings.DATA_DIR) / "localcluster.json"


def running_state() -> localcluster.ClusterState | None:
    state = localcluster.ClusterState.load(state_file())
    return state if state is not None and localcluster.state_running(state) else None


class Command(BaseCommand):
    help = "Build (once), start, stop or locate the local kube-apiserver + etcd control plane."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["up", "down", "status", "kubeconfig", "build"])

    def handle(self, *args, action: str, **options) -> None:
        try:
            getattr(self, f"do_{action}")()
        except localcluster.LocalClusterError as error:
            raise CommandError(str(error)) from error

    def _log(self, message: str) -> None:
        self.stderr.write(message)

    def do_build(self) -> None:
        folder = localcluster.ensure_binaries(self._log)
        self.stdout.write(str(folder))

    def do_up(self) -> None:
        state = running_state()
        if state is None:
            stale = localcluster.ClusterState.load(state_file())
            if stale is not None:
                localcluster.stop_state(stale)
            plane = localcluster.ControlPlane(localcluster.ensure_binaries(self._log))
            state = plane.start(detached=True, log=self._log)
            state.save(state_file())
        else:
            self._log(_("The local control plane is already running at %(server)s") % {"server": state.server})
        self.stdout.write(state.kubeconfig)

    def do_down(self) -> None:
        state = localcluster.ClusterState.load(state_file())
        if state is None:
            self._log(_("The local control plane is not running."))
            return
        localcluster.stop_state(state)
        state_file().unlink(missing_ok=True)
        self._log(_("Stopped the local control plane and removed %(dir)s") % {"dir": state.data_dir})

    def do_status(self) -> None:
        state = running_state()
        if state is None:
            self.stdout.write(_("stopped"))
            raise SystemExit(3)
        self.stdout.write(
            _("running at %(server)s (data %(dir)s, kubeconfig %(kubeconfig)s)")
            % {
                "server": state.server,
                "dir": state.data_dir,
                "kubeconfig": state.kubeconfig,
            }
        )

    def do_kubeconfig(self) -> None:
        state = running_state()
        if state is None:
            raise CommandError(_("The local control plane is not running: run `manage.py localcluster up`."))
        self.stdout.write(state.kubeconfig)
