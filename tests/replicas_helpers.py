"""What the replicas test runs besides the console: a private PostgreSQL from Debian's binaries, production
servers (gunicorn) on it, Debian's nginx in front of them, and a browser-like HTTP client.

Each is started in its own process group and stopped by group, so a test that fails half-way leaves nothing
running. Nothing here imports Django: the servers and the set-up scripts run in subprocesses against the
PostgreSQL database, apart from the pytest process and its own test database.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path

import requests

from tools import image as tools_image

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_USER = "postgres"
CONTAINER_UID = 10001  # the image's user
NGINX = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
# Which gunicorn worker (pid) served which path for whom tells which informers it holds. "Whom" is the test's own
# X-Test-User request header (no product change): gunicorn's access log can show request headers.
ACCESS_FORMAT = "%(p)s %(m)s %(U)s %(s)s %({x-test-user}i)s"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_binaries() -> Path | None:
    """The newest of Debian's PostgreSQL versions installed (``/usr/lib/postgresql/<ver>/bin``), or None."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    return versions[-1].parent if versions else None


def stop_group(process: subprocess.Popen, timeout: float = 20.0) -> None:
    """Stop a process and everything it started (it leads its own process group). The group is signalled only
    while its leader is not reaped yet, so the group id cannot have been reused by then."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def wait_until(probe, what: str, timeout: float = 60.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(interval)


# --- PostgreSQL -----------------------------------------------------------------------------------------------------


@dataclass
class Postgres:
    """A throwaway PostgreSQL cluster owned by the ``postgres`` system user (initdb refuses to run as root), in a
    temporary folder, listening on loopback on a free port (its unix socket in that folder), with a random
    password for its one role."""

    folder: Path
    port: int
    binaries: Path
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16), repr=False)

    @property
    def url(self) -> str:
        return f"postgres://console:{self.password}@127.0.0.1:{self.port}/console"

    def _as_postgres(self, program: str, *args: str) -> None:
        command = ["runuser", "-u", POSTGRES_USER, "--", str(self.binaries / program), *args]
        env = {**os.environ, "PGPASSWORD": self.password}
        done = subprocess.run(command, cwd=self.folder, env=env, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")

    def _start(self) -> None:
        data = str(self.folder / "data")
        secret = self.folder / "password"
        secret.write_text(self.password)
        shutil.chown(secret, POSTGRES_USER, POSTGRES_USER)
        secret.chmod(0o600)
        self._as_postgres(
            "initdb", "-D", data, "-U", "console", f"--pwfile={secret}", "-A", "scram-sha-256", "-E", "UTF8"
        )
        secret.unlink()
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"  # a throwaway database
        )
        self._as_postgres(
            "pg_ctl", "-D", data, "-o", options, "-l", str(self.folder / "log"), "-w", "-t", "60", "start"
        )

    def _stop(self) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.folder / "data"), "-m", "fast", "-w", "-t", "30", "stop")

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator[Postgres]:
        """A started cluster with a ``console`` database; stopped and removed afterwards."""
        binaries = postgres_binaries()
        if binaries is None:
            raise RuntimeError("PostgreSQL's binaries are not installed (Debian package postgresql)")
        folder = Path(tempfile.mkdtemp(prefix="console-replicas-pg-"))
        shutil.chown(folder, POSTGRES_USER, POSTGRES_USER)
        server = cls(folder, free_port(), binaries)
        try:
            server._start()
            try:
                server._as_postgres("createdb", "-h", "127.0.0.1", "-p", str(server.port), "-U", "console", "console")
                yield server
            finally:
                server._stop()
        finally:
            shutil.rmtree(folder, ignore_errors=True)


# --- the console: management commands and production servers ------------------------------------------------------


def console_environment(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """Production settings as an operator sets them for every replica: the same secret key and credential keys,
    the shared database, the console behind one proxy that terminates TLS."""
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_URL", "CONSOLE_", "PYTEST_"))
    }
    return inherited | {
        "CONSOLE_ENV": "production",
        "DATABASE_URL": database_url,
        "CONSOLE_DATA_DIR": str(data_dir),
        "CONSOLE_SSL_REDIRECT": "false",
        "CONSOLE_TRUSTED_PROXY_COUNT": "1",
        "CONSOLE_LOG_LEVEL": "WARNING",
        **extra,
    }


def manage(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    """``manage.py`` in a subprocess; its output, or an AssertionError with its stderr."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if result.returncode != 0:
        raise AssertionError(f"manage.py {args[0]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return result.stdout


@dataclass
class Replica:
    """One production server, a container of the image: gunicorn with its own workers, access log (worker pid,
    method, path, status)."""

    name: str
    port: int
    process: subprocess.Popen
    access_log: Path
    error_log: Path
    container: str

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def served(self) -> list[tuple[int, str, str, int, str]]:
        """(worker pid, method, path, status, test user) of every request this replica answered so far. The image's
        gunicorn writes its log lines in the console's format: JSON, the access line as the message."""
        rows = []
        for line in self.access_log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError, AttributeError):
                line = json.loads(line).get("message", "")
            found = re.fullmatch(r"<(\d+)> (\S+) (\S+) (\d+) (\S+)", line.strip())
            if found:
                rows.append((int(found[1]), found[2], found[3], int(found[4]), found[5]))
        return rows

    def workers(self) -> list[int]:
        """The pids of the master's worker processes, as the container sees them (its access log's pids)."""
        done = subprocess.run(
            ["podman", "top", self.container, "pid", "ppid"], env=tools_image.podman_environment(),
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        rows = [line.split() for line in done.stdout.splitlines()[1:]]
        return [int(pid) for pid, parent in rows if parent == "1"]

    def running(self) -> bool:
        """Whether its container still exists."""
        done = subprocess.run(
            ["podman", "container", "exists", self.container], env=tools_image.podman_environment(),
            capture_output=True, timeout=30, check=False,
        )  # fmt: skip
        return done.returncode == 0


def start_replica(name: str, env: dict[str, str], folder: Path, image: str, *, workers: int, threads: int) -> Replica:
    """A container of the console's image, run as the manifests run it (uid 10001, no capabilities, read-only
    root, /tmp only), on the host's network at a port of its own. Its gunicorn writes the access log to a folder
    mounted from ``folder``; ``process`` is ``podman run`` in the foreground, which passes SIGTERM on to it."""
    port = free_port()
    logs = folder / f"{name}-logs"
    logs.mkdir()
    shutil.chown(logs, CONTAINER_UID, CONTAINER_UID)
    options = shlex.join([
        "--workers", str(workers), "--threads", str(threads), "--keep-alive", "0",
        "--access-logfile", "/logs/access.log", "--access-logformat", ACCESS_FORMAT,
        "--error-logfile", "/logs/error.log", "--log-level", "warning",
    ])  # fmt: skip
    settings = {key: value for key, value in env.items() if key.startswith(("CONSOLE_", "DATABASE_URL"))}
    settings |= {"PORT": str(port), "GUNICORN_CMD_ARGS": options}
    container = f"console-replica-{name}-{secrets.token_hex(3)}"
    command = [
        "podman", "run", "--rm", "--name", container, "--network=host",
        "--user", f"{CONTAINER_UID}:{CONTAINER_UID}", "--cap-drop=ALL", "--security-opt=no-new-privileges",
        "--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp:rw,size=64m,mode=1777",
        "--volume", f"{logs}:/logs",
        *(arg for key, value in settings.items() for arg in ("--env", f"{key}={value}")),
        image,
    ]  # fmt: skip
    process = subprocess.Popen(
        command, env=tools_image.podman_environment(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    replica = Replica(name, port, process, logs / "access.log", logs / "error.log", container)

    def answering() -> bool:
        if process.poll() is not None:
            error_log = replica.error_log.read_text(errors="replace") if replica.error_log.exists() else ""
            raise AssertionError(f"the container of replica {name} exited:\n{error_log[-3000:]}")
        try:
            return requests.get(f"http://{replica.address}/login/", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(answering, f"replica {name} answering")
        wait_until(lambda: len(replica.workers()) == workers, f"replica {name}'s {workers} workers booting")
    except BaseException:
        stop_group(process)
        raise
    return replica


# --- nginx ----------------------------------------------------------------------------------------------------------

NGINX_CONF = """\
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {folder}/access.log;
    client_body_temp_path {folder}/client_body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    # Answers are buffered in memory only: the workers (user nobody) never write into the test's folder.
    proxy_max_temp_file_size 0;
    client_body_buffer_size 1m;
    client_max_body_size 4m;
    # Round robin, no stickiness: any replica serves any request.
    upstream console {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {folder}/tls.crt;
        ssl_certificate_key {folder}/tls.key;
        location / {{
            proxy_pass http://console;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 60s;
            # A failed request is not silently sent again to the other replica (a POST must not run twice).
            proxy_next_upstream off;
            # Test only: which replica answered.
            add_header X-Upstream $upstream_addr always;
        }}
    }}
}}
"""


@dataclass
class Nginx:
    folder: Path
    port: int
    process: subprocess.Popen
    ca_file: Path

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def error_log(self) -> str:
        try:
            return (self.folder / "error.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""


def start_nginx(folder: Path, upstreams: list[str], ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> Nginx:
    """Debian's nginx in the foreground (``daemon off``), prefix, pid, logs and temp folders in ``folder``,
    TLS with a certificate for 127.0.0.1 issued by ``ca_pem``."""
    if NGINX is None:
        raise RuntimeError("nginx is not installed (Debian package nginx)")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tls.crt").write_bytes(cert_pem)
    (folder / "tls.key").write_bytes(key_pem)
    (folder / "tls.key").chmod(0o600)
    (folder / "ca.crt").write_bytes(ca_pem)
    port = free_port()
    servers = "\n".join(f"        server {address};" for address in upstreams)
    conf = folder / "nginx.conf"
    conf.write_text(NGINX_CONF.format(folder=folder, port=port, servers=servers))
    command = [NGINX, "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(conf), "-g", "daemon off;"]
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    proxy = Nginx(folder, port, process, folder / "ca.crt")

    def answering() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"nginx exited:\n{proxy.error_log()}")
        try:
            return requests.get(f"{proxy.base}/login/", verify=str(proxy.ca_file), timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(answering, "nginx answering")
    except BaseException:
        stop_group(process)
        raise
    return proxy


# --- a browser ------------------------------------------------------------------------------------------------------


@dataclass
class Browser:
    """A browser without JavaScript, through nginx: keeps its cookies (Secure ones: it speaks HTTPS), sends the
    CSRF token and the Referer and Origin headers a browser sends with a form, and notes which replica served
    each request (nginx's X-Upstream)."""

    base: str
    ca_file: Path
    user: str = "-"  # sent as X-Test-User, for the servers' access logs
    session: requests.Session = field(default_factory=requests.Session)
    served_by: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, upstream)

    def request(self, method: str, path: str, data: dict | None = None, **headers: str) -> requests.Response:
        if method == "POST":
            headers = {
                "X-CSRFToken": self.session.cookies.get("csrftoken", ""),
                "Referer": f"{self.base}{path}",
                "Origin": self.base,
                **headers,
            }
        response = self.session.request(
            method,
            f"{self.base}{path}",
            data=data,
            headers={"X-Test-User": self.user} | {key.replace("_", "-"): value for key, value in headers.items()},
            verify=str(self.ca_file),
            allow_redirects=False,
            timeout=60,
        )
        self.served_by.append((method, path, response.headers.get("X-Upstream", "")))
        return response

    def get(self, path: str, **headers: str) -> requests.Response:
        return self.request("GET", path, **headers)

    def post(self, path: str, data: dict, **headers: str) -> requests.Response:
        return self.request("POST", path, data, **headers)

    def log_in(self, username: str, password: str) -> requests.Response:
        self.get("/login/")  # the CSRF cookie
        return self.post("/login/", {"username": username, "password": password})

    def upstreams(self) -> Counter:
        return Counter(upstream for _method, _path, upstream in self.served_by)


def live_url(html: str) -> str:
    """The live region's poll URL of a list page."""
    found = re.search(r'data-live-url="([^"]+)"', html)
    if not found:
        raise AssertionError("the page has no live URL")
    return unescape(found.group(1))
