"""The container image: the Dockerfile read statically, and the image built (``make image``) and run."""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import os
import re
import secrets
import shlex
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from django.urls import reverse
from kubernetes import client as k8s

from tests import replicas_helpers as rh
from tests.dockerfile import ROOT, dockerfile_instructions
from tests.helpers import service_form
from tools import image as tools_image
from tools import localcluster

# --- the Dockerfile -------------------------------------------------------------------------------------------


def test_the_dockerfile_copies_what_exists_and_the_context_holds() -> None:
    instructions = dockerfile_instructions()
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copies = [shlex.split(arguments) for kind, arguments in instructions if kind == "COPY"]
    local = [args for args in copies if not any(a.startswith("--from=") for a in args)]
    assert len(local) >= 8
    for args in local:
        *sources, _target = (a for a in args if not a.startswith("--"))
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source.split("/")[0] in allowed, f"{source} is excluded by .dockerignore"
    # Everything the console imports at run time is copied: its packages and their templates, static, locale.
    copied = {s.split("/")[0] for args in local for s in args[:-1]}
    assert {"manage.py", "console", "kube", "clusters", "services", "templates", "static", "locale"} <= copied
    # The later stage copies only from the build stage.
    stages = [
        arguments.split()[-1] for kind, arguments in instructions if kind == "FROM" and " AS " in arguments.upper()
    ]
    assert all(a.removeprefix("--from=") in stages for args in copies for a in args if a.startswith("--from="))


def test_the_dockerfile_installs_the_lock_with_hashes_on_debian_python_311() -> None:
    instructions = dockerfile_instructions()
    (image,) = [
        arguments for kind, arguments in instructions if kind == "ARG" and arguments.startswith("PYTHON_IMAGE=")
    ]
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11-slim-(bookworm|trixie)", image)
    assert [a for k, a in instructions if k == "FROM"] == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]
    installs = [a for k, a in instructions if k == "RUN" and "pip install" in a]
    assert len(installs) == 1
    words = installs[0].split()
    assert "--require-hashes" in words and "--no-deps" in words and "--only-binary=:all:" in words
    assert words[words.index("-r") + 1] == "/tmp/requirements.lock"
    assert ("COPY", "requirements-prod.lock /tmp/requirements.lock") in instructions
    lock = (ROOT / "requirements-prod.lock").read_text()
    assert "--hash=sha256:" in lock and re.search(r"^gunicorn==", lock, re.MULTILINE)


def pins(lock: str) -> dict[str, tuple[str, frozenset[str]]]:
    """name: (version, hashes) of a pip-compile lock."""
    found = {}
    for block in re.split(r"\n(?=[a-z0-9])", lock, flags=re.IGNORECASE):
        head = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", block)
        if head:
            found[head[1].lower()] = (head[2], frozenset(re.findall(r"--hash=sha256:([0-9a-f]{64})", block)))
    return found


def test_the_production_lock_is_the_development_lock_without_the_tools() -> None:
    """The image installs requirements-prod.lock, the tests requirements.lock: every package of the first is
    pinned in the second at the same version with the same hashes (so the tests test what ships), and the
    development extra's tools are not in it. `make lock` writes both."""
    production = pins((ROOT / "requirements-prod.lock").read_text())
    development = pins((ROOT / "requirements.lock").read_text())
    assert len(production) >= 30
    for name, pinned in production.items():
        assert development.get(name) == pinned, name
    for tool in ("pytest", "hypothesis", "playwright", "ruff", "pip-tools", "pytest-xdist", "html5lib"):
        assert tool in development and tool not in production, tool


def test_the_image_runs_gunicorn_as_a_user_that_is_not_root() -> None:
    instructions = dockerfile_instructions()
    users = [a for k, a in instructions if k == "USER"]
    assert users and users[-1] == "10001:10001"  # numeric, so runAsNonRoot can check it; deploy/ says the same
    (command,) = [json.loads(a) for k, a in instructions if k == "CMD"]
    assert command[:4] == ["gunicorn", "--config", "python:console.gunicorn", "console.wsgi:application"]
    # gunicorn is an installed console script, its configuration a module, console.wsgi:application the application.
    from importlib.metadata import entry_points
    from importlib.util import find_spec

    assert entry_points(group="console_scripts", name="gunicorn")
    assert find_spec(command[2].removeprefix("python:")) is not None
    import console.wsgi

    assert callable(console.wsgi.application)
    env = " ".join(a for k, a in instructions if k == "ENV")
    assert "CONSOLE_ENV=production" in env and "PATH=/opt/venv/bin:$PATH" in env


def test_the_build_steps_work_with_the_dockerfiles_throwaway_secrets(tmp_path: Path) -> None:
    """collectstatic with production settings and the build's dummy secrets (no database, no real key)."""
    (run,) = [a for k, a in dockerfile_instructions() if k == "RUN" and "collectstatic" in a]
    assert "CONSOLE_SECRET_KEY=build-only CONSOLE_ENCRYPTION_KEYS=build-only" in run
    env = {
        **os.environ,
        "CONSOLE_ENV": "production",
        "CONSOLE_SECRET_KEY": "build-only",
        "CONSOLE_ENCRYPTION_KEYS": "build-only",
        "CONSOLE_DATA_DIR": str(tmp_path / "data"),
        "CONSOLE_STATIC_ROOT": str(tmp_path / "static"),
    }
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "--verbosity", "0"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "static" / "staticfiles.json").exists()
    assert not (tmp_path / "data").exists()  # nothing written but the static files


# --- the image, built and run ---------------------------------------------------------------------------------
#
# Built as `make image` builds it (tools.image: the Dockerfile on a Debian base made from Debian's packages), then
# run with podman the way the manifests run it: as uid 10001, every capability dropped, no privilege escalation, a
# read-only root filesystem with only /tmp writable, the migration as a container of its own before the server.
# Everything after that goes through the container: management commands run inside it (`podman exec`), and the
# person's requests reach its own port, with the header the ingress proxy adds (the pods sit behind one that
# terminates TLS).

LOCKED_DOWN = (
    "--user", "10001:10001", "--cap-drop=ALL", "--security-opt=no-new-privileges",
    "--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp:rw,size=64m,mode=1777",
)  # fmt: skip


@dataclass
class Container:
    name: str
    port: int
    env: dict[str, str]
    migrate_seconds: float = 0.0
    ready_seconds: float = 0.0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run_once(self, image: str, *command: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        """A one-off container of the image with the same settings (as the init container runs beside the pod's)."""
        return tools_image.podman(
            "run", "--rm", "-i", "--network=host", *LOCKED_DOWN, *env_args(self.env), image, *command,
            input=stdin, timeout=300, check=False,
        )  # fmt: skip

    def exec(self, *command: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess:
        extra = [arg for key, value in env.items() for arg in ("--env", f"{key}={value}")]
        return tools_image.podman("exec", "-i", *extra, self.name, *command, input=stdin, timeout=300, check=False)

    def logs(self) -> str:
        done = tools_image.podman("logs", self.name, check=False)
        return done.stdout + done.stderr


def env_args(env: dict[str, str]) -> list[str]:
    return [arg for key, value in env.items() for arg in ("--env", f"{key}={value}")]


class BehindProxy(requests.Session):
    """A browser reaching the container's port as the ingress proxy forwards it: X-Forwarded-Proto says https, so
    the Secure cookies the console sets are sent back (the browser spoke HTTPS to the proxy), and the CSRF token,
    Referer and Origin go with every form, as a browser sends them."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.trust_env = False
        self.base = base
        self.origin = base.replace("http://", "https://", 1)

    def go(self, method: str, path: str, data: dict | None = None, timeout: float = 30) -> requests.Response:
        headers = {
            "X-Forwarded-Proto": "https",
            "X-Forwarded-For": "192.0.2.10",
            # Every cookie, Secure ones included (requests sends those over https only).
            "Cookie": "; ".join(f"{cookie.name}={cookie.value}" for cookie in self.cookies),
        }
        if method == "POST":
            headers |= {
                "X-CSRFToken": self.cookies.get("csrftoken", ""),
                "Referer": f"{self.origin}{path}",
                "Origin": self.origin,
            }
        return self.request(
            method, f"{self.base}{path}", data=data, headers=headers, allow_redirects=False, timeout=timeout
        )


def migrate_command() -> list[str]:
    """The command of the manifests' migration step (the Deployment's init container named migrate)."""
    for path in sorted((ROOT / "deploy" / "base").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") == "Deployment":
                for init in document["spec"]["template"]["spec"].get("initContainers", []):
                    if init["name"] == "migrate":
                        return init["command"]
    raise AssertionError("no migrate init container in deploy/base")


@pytest.fixture(scope="module")
def container(
    image: dict, control_plane: localcluster.ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Container]:
    with rh.Postgres.running() as database:
        env = {
            "CONSOLE_SECRET_KEY": secrets.token_urlsafe(50),
            "CONSOLE_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "DATABASE_URL": database.url,
            "CONSOLE_ALLOWED_HOSTS": "127.0.0.1",
            "CONSOLE_TRUSTED_PROXY_COUNT": "1",
            # Its own identity in the session's API server, apart from the console the other tests set up.
            "CONSOLE_IDENTITY_PREFIX": "imagetest",
            "PORT": str(rh.free_port()),
        }
        name = f"console-test-{secrets.token_hex(4)}"
        box = Container(name, int(env["PORT"]), env)
        started = time.monotonic()
        migrated = box.run_once(image["image"], *migrate_command())
        assert migrated.returncode == 0, migrated.stderr[-3000:]
        box.migrate_seconds = time.monotonic() - started
        tools_image.podman(
            "run", "--detach", "--name", name, "--network=host", *LOCKED_DOWN, *env_args(env), image["image"]
        )  # fmt: skip
        try:
            rh.wait_until(lambda: _answers(box, "/readyz"), "the container's /readyz", timeout=60)
            box.ready_seconds = time.monotonic() - started
            yield box
        finally:
            tools_image.podman("rm", "--force", "--time", "0", name, check=False)


def _answers(box: Container, path: str) -> bool:
    state = tools_image.podman("inspect", "--format", "{{.State.Status}}", box.name, check=False).stdout.strip()
    if state not in ("running", "created"):
        raise AssertionError(f"the container is {state}:\n{box.logs()[-4000:]}")
    try:
        return requests.get(f"{box.base}{path}", timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.mark.cluster
@pytest.mark.image
def test_the_image_is_small_and_holds_no_test_tool(image: dict, container: Container) -> None:
    listed = container.exec("python", "-m", "pip", "list", "--format=json")
    # pip itself is removed from the final image: a pip list fails, and no test tool is importable.
    assert listed.returncode != 0
    probe = "import importlib.util as u; print([m for m in ('pytest', 'hypothesis', 'playwright', 'ruff', 'piptools', 'pip') if u.find_spec(m)])"
    assert container.exec("python", "-c", probe).stdout.strip() == "[]"
    # The console's own layers (the virtualenv, the application, the user): the Kubernetes client is half of them.
    assert image["bytes"] - image["base_bytes"] < 300e6, image
    identity = container.exec("id", "-u").stdout.strip()
    assert identity == "10001"
    # Nothing but /tmp is writable.
    touched = container.exec("sh", "-c", "touch /app/x 2>&1; touch /opt/venv/x 2>&1; touch /tmp/x && echo tmp-ok")
    assert "Read-only file system" in touched.stdout and touched.stdout.strip().endswith("tmp-ok")


@pytest.fixture(scope="module")
def person(container: Container, control_plane: localcluster.ControlPlane) -> BehindProxy:
    """The cluster and a superuser registered with the commands inside the container, and that person signed in
    through its port. The cluster from an administrator's kubeconfig with set-up: the console's roles and its
    least-privileged ServiceAccount are made and that account's token is stored, as docs/deploy.md says."""
    kubeconfig = yaml.safe_dump(control_plane.kubeconfig())
    registered = container.exec(
        "python", "manage.py", "register_cluster", "--name", "local", "--kubeconfig", "/dev/stdin", "--setup",
        stdin=kubeconfig,
    )  # fmt: skip
    assert registered.returncode == 0, registered.stderr[-3000:]
    password = secrets.token_urlsafe(16)
    made = container.exec(
        "python", "manage.py", "createsuperuser", "--no-input", "--username", "root", "--email", "root@example.com",
        DJANGO_SUPERUSER_PASSWORD=password,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr[-3000:]
    browser = BehindProxy(container.base)
    assert browser.go("GET", "/login/").status_code == 200
    signed_in = browser.go("POST", "/login/", {"username": "root", "password": password})
    assert signed_in.status_code == 302, signed_in.text[-3000:]
    return browser


def create(person: BehindProxy, namespace: str, name: str) -> requests.Response:
    url = reverse("services:create", kwargs={"cluster": "local", "namespace": namespace})
    return person.go("POST", url, service_form(name, labels={"app": name}))


@pytest.mark.cluster
@pytest.mark.image
def test_the_built_image_serves_a_person_who_creates_a_service(
    container: Container, person: BehindProxy, admin_api: k8s.ApiClient
) -> None:
    namespace = f"image-{secrets.token_hex(3)}"
    k8s.CoreV1Api(admin_api).create_namespace({"metadata": {"name": namespace}})
    listing = reverse("services:list", kwargs={"cluster": "local", "namespace": namespace})
    page = person.go("GET", listing)
    assert page.status_code == 200, page.text[-3000:]
    # The static files were collected at build time, under WhiteNoise's hashed names, and are served.
    stylesheet = re.search(r'href="(/static/[^"]+\.css)"', page.text)
    assert stylesheet and person.go("GET", stylesheet[1]).status_code == 200
    created = create(person, namespace, "from-the-image")
    assert created.status_code == 302, created.text[-3000:]
    service = k8s.CoreV1Api(admin_api).read_namespaced_service("from-the-image", namespace)
    assert service.spec.ports[0].port == 80
    assert "from-the-image" in person.go("GET", listing).text
    # The catalog was compiled at build time: the page speaks Chinese to a browser that asks for it.
    person.headers["Accept-Language"] = "zh-Hans"
    try:
        assert "服务" in person.go("GET", listing).text
    finally:
        del person.headers["Accept-Language"]


# A slow admission webhook holds chosen Service writes in the API server for a while: the console's requests that
# make them are in progress in the container when it is told to stop.
WEBHOOK_DELAY = 2.0


class _SlowWebhook(http.server.BaseHTTPRequestHandler):
    calls: list[float]

    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.calls.append(time.time())
        time.sleep(WEBHOOK_DELAY)
        body = json.dumps({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": review["request"]["uid"], "allowed": True},
        }).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def slow_namespace(admin_api: k8s.ApiClient, tmp_path: Path) -> Iterator[tuple[str, list[float]]]:
    """A namespace whose Service writes wait WEBHOOK_DELAY seconds in a validating webhook (HTTPS on loopback,
    its certificate from a CA of the test's own); the times the webhook was called."""
    authority = localcluster.CertificateAuthority.create()
    cert, key = authority.issue("127.0.0.1", server=True)
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    calls: list[float] = []
    handler = type("Handler", (_SlowWebhook,), {"calls": calls})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    namespace = f"image-slow-{secrets.token_hex(3)}"
    k8s.CoreV1Api(admin_api).create_namespace({"metadata": {"name": namespace, "labels": {"slow-writes": namespace}}})
    name = f"slow-{namespace}"
    ca = base64.b64encode(authority.cert.public_bytes(serialization.Encoding.PEM)).decode()
    k8s.AdmissionregistrationV1Api(admin_api).create_validating_webhook_configuration({
        "metadata": {"name": name},
        "webhooks": [{
            "name": "slow.image-test.example.com",
            "clientConfig": {"url": f"https://127.0.0.1:{server.server_address[1]}/", "caBundle": ca},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["services"]}],
            "namespaceSelector": {"matchLabels": {"slow-writes": namespace}},
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 10,
            "failurePolicy": "Fail",
        }],
    })  # fmt: skip
    try:
        yield namespace, calls
    finally:
        k8s.AdmissionregistrationV1Api(admin_api).delete_validating_webhook_configuration(name)
        server.shutdown()


@pytest.mark.cluster
@pytest.mark.image
def test_podman_stop_ends_the_server_gracefully_losing_no_request(
    container: Container, person: BehindProxy, slow_namespace: tuple[str, list[float]], admin_api: k8s.ApiClient
) -> None:
    """Two creates of Services the API server holds WEBHOOK_DELAY seconds each, one per gunicorn worker; while
    both requests are in progress the container is stopped, as the kubelet stops a pod (SIGTERM, then SIGKILL
    after the grace period; `podman stop --time 30`). Both must be answered in full and their Services made, and
    gunicorn must exit by itself (code 0) within its graceful timeout, well inside the pod's 30 s.

    (New requests are not sent once the stop begins: in Kubernetes the endpoints controller has taken the pod out
    of the Service during its preStop sleep.)"""
    namespace, calls = slow_namespace
    workers = 2  # the image's WEB_CONCURRENCY
    people = [person] + [BehindProxy(container.base) for _ in range(workers - 1)]
    for other in people[1:]:
        other.cookies.update(person.cookies)  # the same signed-in session: a second tab
    results: dict[str, tuple[float, float, str]] = {}

    def send(browser: BehindProxy, name: str) -> None:
        sent = time.time()
        try:
            response = create(browser, namespace, name)
            outcome = "ok" if response.status_code == 302 else f"{response.status_code}: {response.text[-500:]}"
        except requests.RequestException as error:
            outcome = repr(error)
        results[name] = (sent, time.time(), outcome)

    threads = [
        threading.Thread(target=send, args=(browser, f"in-flight-{number}")) for number, browser in enumerate(people)
    ]
    for thread in threads:
        thread.start()
    # Each create is checked in a server-side dry run, then made: both pass the webhook twice.
    rh.wait_until(lambda: len(calls) >= workers, "both creates held in the webhook", timeout=30, interval=0.01)
    stopping = time.monotonic()
    tools_image.podman("stop", "--time", "30", container.name, timeout=60)
    stop_seconds = time.monotonic() - stopping
    for thread in threads:
        thread.join(timeout=30)
    exit_code = tools_image.podman("inspect", "--format", "{{.State.ExitCode}}", container.name).stdout.strip()
    signalled = _signal_time(container.logs())
    in_progress = [name for name, (sent, done, _) in results.items() if sent <= signalled <= done]
    print(
        f"graceful stop: {len(in_progress)} of {len(results)} requests in progress at SIGTERM; "
        f"podman stop took {stop_seconds:.2f} s; exit code {exit_code}",
        file=sys.stderr,
    )
    assert sorted(in_progress) == sorted(results)
    assert {name: outcome for name, (_, _, outcome) in results.items()} == dict.fromkeys(results, "ok")
    made = k8s.CoreV1Api(admin_api).list_namespaced_service(namespace).items
    assert sorted(service.metadata.name for service in made) == sorted(results)
    assert exit_code == "0"  # gunicorn exited by itself: not killed at the end of the grace period (137)
    graceful_timeout = int(json.loads(dict(dockerfile_instructions())["CMD"])[-1])
    assert stop_seconds < graceful_timeout


def _signal_time(logs: str) -> float:
    """When gunicorn's master logged the SIGTERM (its JSON log line's time)."""
    for line in logs.splitlines():
        if "Handling signal: term" in line:
            record = json.loads(line)
            return datetime.datetime.fromisoformat(record["time"]).timestamp()
    raise AssertionError(f"gunicorn never logged the SIGTERM:\n{logs[-3000:]}")
