"""Load: 32 editors at once, each creating and deleting Services in their own namespace through a production
server (gunicorn, production settings, its own SQLite file), for CONSOLE_LOAD_SECONDS (60 by default). No request
may fail, and at the end the API server holds exactly the Services each editor expects."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import pytest
import urllib3
import yaml
from cryptography.fernet import Fernet
from django.conf import settings
from kubernetes import client as k8s

from tests.helpers import service_form
from tools import localcluster

pytestmark = [pytest.mark.cluster, pytest.mark.load]

EDITORS = 32
SECONDS = float(os.environ.get("CONSOLE_LOAD_SECONDS", "60"))

SETUP = """
from django.contrib.auth import get_user_model
from clusters.models import Cluster, Grant, Role
cluster = Cluster.objects.get(name="local")
for i in range({editors}):
    user = get_user_model().objects.create_user(f"editor{{i}}", password=f"load-pw-{{i}}-x9")
    Grant.objects.create(user=user, cluster=cluster, namespace=f"{prefix}-{{i}}", role=Role.NS_EDIT)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def production_server(
    control_plane: localcluster.ControlPlane, admin_api: k8s.ApiClient, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    prefix = f"load-{os.getpid()}-{int(time.time())}"
    for i in range(EDITORS):
        k8s.CoreV1Api(admin_api).create_namespace({"metadata": {"name": f"{prefix}-{i}"}})
    port = _free_port()
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "DATABASE_URL", "CONSOLE_"))
    } | {
        "CONSOLE_ENV": "production",
        "CONSOLE_SECRET_KEY": "load-test-" + "k" * 50,
        "CONSOLE_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "CONSOLE_ALLOWED_HOSTS": "127.0.0.1",
        "CONSOLE_SSL_REDIRECT": "0",
        "CONSOLE_DATA_DIR": str(tmp_path),
        "CONSOLE_STATIC_ROOT": str(tmp_path / "static"),
    }
    python, base = sys.executable, Path(settings.BASE_DIR)

    def manage(*args: str) -> None:
        subprocess.run([python, "manage.py", *args], cwd=base, env=env, check=True, capture_output=True, timeout=120)

    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(control_plane.kubeconfig()))
    manage("migrate")
    manage("collectstatic", "--noinput")
    manage("register_cluster", "--name", "local", "--kubeconfig", str(tmp_path / "kubeconfig"))
    manage("shell", "-c", SETUP.format(editors=EDITORS, prefix=prefix))
    log = (tmp_path / "gunicorn.log").open("wb")  # noqa: SIM115 - closed with the server below
    server = subprocess.Popen(
        # --keep-alive 0: each response closes its connection, as behind nginx (whose upstream connections are not
        # kept alive by default). Kept alive, gthread workers reset connections whose next request waits in their
        # queue past the keep-alive timeout: a client-side race under overload, not the console's behaviour.
        [python, "-m", "gunicorn", "--config", "python:console.gunicorn", "console.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", str(os.cpu_count() or 2),
         "--threads", "8", "--keep-alive", "0", "--log-level", "warning"],
        cwd=base, env=env, stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib3.request("GET", f"{url}/login/", timeout=1)
            break
        except urllib3.exceptions.HTTPError:
            time.sleep(0.2)
    yield url, prefix
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)
    log.close()


class Editor:
    """One browser: its cookies, its CSRF token, and the Services it believes exist."""

    def __init__(self, base: str, number: int, prefix: str) -> None:
        self.base, self.number = base, number
        self.namespace = f"{prefix}-{number}"
        self.http = urllib3.PoolManager(maxsize=1, retries=False, timeout=urllib3.Timeout(connect=5, read=30))
        self.cookies: dict[str, str] = {}
        self.expected: set[str] = set()
        self.errors: list[str] = []
        self.latencies: list[float] = []

    def request(
        self, method: str, path: str, fields: dict | None = None, htmx: bool = False
    ) -> urllib3.BaseHTTPResponse:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if method == "POST":
            headers |= {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-CSRFToken": self.cookies.get("csrftoken", ""),
            }
        if htmx:
            headers["HX-Request"] = "true"
        body = urlencode(fields or {}, doseq=True) if method == "POST" else None
        started = time.monotonic()
        response = self.http.request(method, self.base + path, body=body, headers=headers, redirect=False)
        self.latencies.append(time.monotonic() - started)
        for header in response.headers.get_all("Set-Cookie") or []:
            for key, morsel in SimpleCookie(header).items():
                self.cookies[key] = morsel.value
        return response

    def log_in(self) -> None:
        self.request("GET", "/login/")
        response = self.request(
            "POST", "/login/", {"username": f"editor{self.number}", "password": f"load-pw-{self.number}-x9"}
        )
        if response.status != 302:
            problem = re.findall(r'role="alert">([^<]*)', response.data.decode())
            self.errors.append(f"login: {response.status} {problem}")

    def work(self, until: float) -> None:
        try:
            self._work(until)
        except Exception as error:  # noqa: BLE001 - any failure of a request is an error of the run
            self.errors.append(f"{type(error).__name__}: {error}")

    def _work(self, until: float) -> None:
        services = f"/clusters/local/namespaces/{self.namespace}/services/"
        index = 0
        while time.monotonic() < until and not self.errors:
            name = f"svc-{index}"
            created = self.request("POST", f"{services}create/", service_form(name), htmx=True)
            if created.status != 200 or created.headers.get("HX-Redirect") != services:  # back to the list
                self.errors.append(f"create {name}: {created.status} {created.data[:200]!r}")
                break
            self.expected.add(name)
            if index % 2 == 1:  # delete the one before, with the uid its detail page shows
                previous = f"svc-{index - 1}"
                page = self.request("GET", f"{services}{previous}/").data.decode()
                uid = re.search(r'name="uid" value="([^"]+)"', page)
                deleted = self.request("POST", f"{services}{previous}/delete/", {"uid": uid.group(1) if uid else ""})
                if deleted.status != 302 or not uid:
                    self.errors.append(f"delete {previous}: {deleted.status}")
                    break
                self.expected.discard(previous)
            index += 1


def test_32_editors_at_once(
    production_server: tuple[str, str], admin_api: k8s.ApiClient, capsys: pytest.CaptureFixture[str]
) -> None:
    base, prefix = production_server
    editors = [Editor(base, number, prefix) for number in range(EDITORS)]
    for editor in editors:
        editor.log_in()
    until = time.monotonic() + SECONDS
    threads = [threading.Thread(target=editor.work, args=(until,)) for editor in editors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=SECONDS + 120)

    errors = [f"editor{e.number}: {error}" for e in editors for error in e.errors]
    assert not errors, "\n".join(errors[:10])
    core = k8s.CoreV1Api(admin_api)
    for editor in editors:
        actual = {s.metadata.name for s in core.list_namespaced_service(editor.namespace).items}
        assert actual == editor.expected, editor.namespace
    latencies = sorted(t for e in editors for t in e.latencies)
    requests = len(latencies)
    with capsys.disabled():  # the figures belong in CI's log
        print(
            f"\nload: {EDITORS} editors, {SECONDS:.0f} s, {requests} requests ({requests / SECONDS:.1f}/s), "
            f"p50 {latencies[requests // 2] * 1000:.0f} ms, p95 {latencies[int(requests * 0.95)] * 1000:.0f} ms, "
            f"p99 {latencies[int(requests * 0.99)] * 1000:.0f} ms, errors 0, "
            f"{sum(len(e.expected) for e in editors)} Services left as expected"
        )
