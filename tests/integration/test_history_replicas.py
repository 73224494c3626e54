"""Two recorders on one PostgreSQL, as two replicas of the console run them (``manage.py record_history``): one
records, the other waits on the advisory lock; the active one is killed (SIGKILL) in the middle of a stream of
changes and started again. Every change is stored exactly once and none is missing."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet
from kubernetes import client as k8s

import kube
from tests import replicas_helpers as rh

pytestmark = [pytest.mark.cluster, pytest.mark.load]

ROOT = Path(__file__).resolve().parents[2]
REGISTER = """
import json, sys
import kube
from clusters.models import Cluster
cluster = Cluster(name="local", display_name="Local", identity_mode=Cluster.IdentityMode.IMPERSONATE,
                  identity_reason=Cluster.IdentityReason.SET_UP)
cluster.set_credentials(kube.Credentials.from_dict(json.load(sys.stdin)))
cluster.save()
print("registered")
"""


class RecorderProcess:
    def __init__(self, name: str, env: dict[str, str], folder: Path) -> None:
        self.name, self.env, self.log = name, env, folder / f"recorder-{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "record_history"], cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip

    def active_count(self) -> int:
        return self.log.read_text(errors="replace").count("history recorder active")

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        os.killpg(self.process.pid, signal.SIGTERM)
        return self.process.wait(60)


def stored_versions(url: str, namespace: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT name, resource_version, change FROM services_serviceversion WHERE namespace = %s ORDER BY id",
            [namespace],
        ).fetchall()
    return [tuple(row) for row in rows]


def test_two_recorders_store_each_change_once_and_a_killed_one_loses_nothing(
    console_credentials: kube.Credentials, admin_api: k8s.ApiClient, tmp_path: Path
) -> None:
    core = k8s.CoreV1Api(admin_api)
    namespace = f"history-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": namespace}})
    with rh.Postgres.running() as database:
        env = rh.console_environment(
            database.url,
            tmp_path / "data",
            CONSOLE_SECRET_KEY=secrets.token_urlsafe(50),
            CONSOLE_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
            CONSOLE_ALLOWED_HOSTS="127.0.0.1",
            CONSOLE_LOG_LEVEL="INFO",
            CONSOLE_LOG_FORMAT="text",
        )
        rh.manage(env, "migrate", "--noinput")
        assert "registered" in rh.manage(env, "shell", "-c", REGISTER, stdin=json.dumps(console_credentials.to_dict()))
        recorders = [RecorderProcess(name, env, tmp_path) for name in ("a", "b")]
        try:
            for recorder in recorders:
                recorder.start()
            rh.wait_until(lambda: sum(r.active_count() for r in recorders) == 1, "one recorder active", timeout=30)
            time.sleep(1)
            assert sum(r.active_count() for r in recorders) == 1  # the other waits on the lock
            active = next(r for r in recorders if r.active_count())
            standby = next(r for r in recorders if r is not active)

            written: list[str] = []
            deleted: list[str] = []
            done = threading.Event()

            def write() -> None:
                """About 20 changes a second for 8 s: creates, label changes, deletes of 5 Services in turn."""
                number = 0
                while not done.is_set():
                    name = f"svc-{number % 5}"
                    try:
                        current = core.read_namespaced_service(name, namespace)
                    except k8s.ApiException:
                        body = {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}}
                        written.append(core.create_namespaced_service(namespace, body).metadata.resource_version)
                    else:
                        if number % 7 == 0:
                            core.delete_namespaced_service(name, namespace)
                            deleted.append(name)
                        else:
                            current.metadata.labels = {"n": str(number)}
                            replaced = core.replace_namespaced_service(name, namespace, current)
                            written.append(replaced.metadata.resource_version)
                    number += 1
                    time.sleep(0.05)

            writer = threading.Thread(target=write)
            writer.start()
            time.sleep(2.5)
            active.kill()  # mid-stream, without a word
            time.sleep(2.5)
            active.start()  # back, now the standby of the one that took over
            time.sleep(3)
            done.set()
            writer.join(30)

            def complete() -> bool:
                stored = stored_versions(database.url, namespace)
                kept = {rv for _name, rv, change in stored if change != "deleted"}
                return set(written) <= kept and sum(change == "deleted" for *_x, change in stored) == len(deleted)

            rh.wait_until(complete, "every change stored", timeout=60)
            stored = stored_versions(database.url, namespace)
            changes = [(rv, change) for _name, rv, change in stored if change != "deleted"]
            assert sorted(rv for rv, _change in changes) == sorted(written)  # each once, none missing, none more
            assert len({rv for _name, rv, _change in stored}) == len(stored)
            assert sum(change == "deleted" for *_x, change in stored) == len(deleted)
            assert len(written) > 60 and deleted
            assert standby.active_count() == 1  # it took over when the active one died
            print(
                f"\nhistory: {len(written)} writes and {len(deleted)} deletes, the active recorder killed after "
                f"2.5 s and restarted; {len(stored)} versions stored, each once",
                file=sys.stderr,
            )
        finally:
            stopping = time.monotonic()
            codes = [recorder.stop() for recorder in recorders]
            stop_seconds = time.monotonic() - stopping
            core.delete_namespace(namespace)
        assert all(code == 0 for code in codes), [r.log.read_text()[-2000:] for r in recorders]
        assert stop_seconds < 10  # SIGTERM ends the watches at once (a pod's grace period is 30 s)
