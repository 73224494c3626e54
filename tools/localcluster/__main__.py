"""``python -m tools.localcluster up|down|status|kubeconfig|build``: the local control plane for development, demos
and tests. A developer's tool, not part of the console: it needs only the standard library, ``cryptography`` and
PyYAML. Its state (ports, pids, kubeconfig path) is kept in the console's data folder (``CONSOLE_DATA_DIR``)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tools import localcluster


def state_file() -> Path:
    data = Path(os.environ.get("CONSOLE_DATA_DIR") or Path(__file__).resolve().parents[2] / "data")
    return data / "localcluster.json"


def running_state() -> localcluster.ClusterState | None:
    state = localcluster.ClusterState.load(state_file())
    return state if state is not None and localcluster.state_running(state) else None


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build() -> int:
    folder = localcluster.ensure_binaries(_log)
    localcluster.ensure_kubectl(_log)  # for the test of the deploy/ manifests
    localcluster.ensure_helm(_log)  # for the chart's tests and for rendering deploy/base from the chart
    print(folder)
    return 0


def up() -> int:
    state = running_state()
    if state is None:
        stale = localcluster.ClusterState.load(state_file())
        if stale is not None:
            localcluster.stop_state(stale)
        plane = localcluster.ControlPlane(localcluster.ensure_binaries(_log))
        state = plane.start(detached=True, log=_log)
        state_file().parent.mkdir(parents=True, exist_ok=True)
        state.save(state_file())
    else:
        _log(f"The local control plane is already running at {state.server}")
        if not localcluster.controller_manager_running(state):
            _log("Its controller-manager is not running: `down` and `up` again to start a complete one.")
    print(state.kubeconfig)
    return 0


def down() -> int:
    state = localcluster.ClusterState.load(state_file())
    if state is None:
        _log("The local control plane is not running.")
        return 0
    localcluster.stop_state(state)
    state_file().unlink(missing_ok=True)
    _log(f"Stopped the local control plane and removed {state.data_dir}")
    return 0


def status() -> int:
    state = running_state()
    if state is None:
        print("stopped")
        return 3
    print(f"running at {state.server} (data {state.data_dir}, kubeconfig {state.kubeconfig})")
    print(f"pids: etcd {state.etcd_pid}, kube-apiserver {state.apiserver_pid}")
    if localcluster.controller_manager_running(state):
        print(f"controller-manager running, pid {state.controller_manager_pid}")
        print(f"controller-manager log {state.data_dir}/kube-controller-manager.log")
    else:
        print("controller-manager not running")
    print(f"audit log {state.audit_log}")
    return 0


def kubeconfig() -> int:
    state = running_state()
    if state is None:
        _log("The local control plane is not running: run `python -m tools.localcluster up`.")
        return 1
    print(state.kubeconfig)
    return 0


ACTIONS = {"build": build, "up": up, "down": down, "status": status, "kubeconfig": kubeconfig}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.localcluster", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=sorted(ACTIONS))
    action = parser.parse_args(argv).action
    try:
        return ACTIONS[action]()
    except localcluster.LocalClusterError as error:
        _log(str(error))
        return 1


if __name__ == "__main__":
    sys.exit(main())
