"""A real Keycloak for the sign-in tests: the distribution from Maven Central (``mvn dependency:get``), unzipped
once into the same cache as the control-plane binaries, and started per test session from a copy of its own
(``start-dev`` writes its build and database into its folder) with a realm the tests describe, over HTTPS with a
certificate made here for 127.0.0.1 (the API server's JWT authenticator takes only an HTTPS issuer).

    python -m tools.keycloak fetch   # what .ci/run calls: the zip into ~/.m2 and the unzipped distribution
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from tools.localcluster import CertificateAuthority, _die_with_parent, _free_port

VERSION = "26.7.3"
ARTIFACT = f"org.keycloak:keycloak-quarkus-dist:{VERSION}:zip"
ADMIN, ADMIN_PASSWORD = "admin", "admin-password-for-tests"


class KeycloakError(Exception):
    """Something the person running the tests can act on; the message says what."""


def _cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "kube-service-console" / f"keycloak-{VERSION}"


def _zip_path() -> Path:
    repository = Path(os.environ.get("MAVEN_REPOSITORY") or Path.home() / ".m2" / "repository")
    return repository / "org/keycloak/keycloak-quarkus-dist" / VERSION / f"keycloak-quarkus-dist-{VERSION}.zip"


def ensure_distribution() -> Path:
    """The unzipped distribution, fetched from Maven Central and unzipped on first use."""
    folder = _cache()
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".keycloak-{VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / "bin" / "kc.sh").exists():
            return folder
        if not _zip_path().exists():
            if shutil.which("mvn") is None:
                raise KeycloakError(
                    "Maven (mvn) is needed to fetch Keycloak; .ci/run installs it (apt-get install maven)."
                )
            subprocess.run(["mvn", "-q", "dependency:get", f"-Dartifact={ARTIFACT}", "-Dtransitive=false"], check=True)
        unpacked = Path(tempfile.mkdtemp(dir=folder.parent))
        with zipfile.ZipFile(_zip_path()) as archive:
            archive.extractall(unpacked)
        top = unpacked / f"keycloak-{VERSION}"
        for script in (top / "bin").glob("*.sh"):
            script.chmod(0o755)
        top.rename(folder)
        shutil.rmtree(unpacked, ignore_errors=True)
    return folder


def _certificate(folder: Path) -> tuple[Path, Path, bytes]:
    """A server certificate for 127.0.0.1 and localhost from a CA of its own (as the control plane's), its key,
    and the CA's PEM (what a client trusts)."""
    authority = CertificateAuthority.create()
    cert, key = authority.issue("keycloak", server=True)
    cert_file, key_file = folder / "tls.crt", folder / "tls.key"
    cert_file.write_bytes(cert)
    key_file.write_bytes(key)
    return cert_file, key_file, authority.cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Keycloak:
    """One running Keycloak with ``realm`` imported: ``url`` is its base, ``issuer`` the realm's."""

    realm: dict[str, Any]
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="keycloak-")))
    url: str = ""
    ca_pem: bytes = b""
    ca_file: Path | None = None
    process: subprocess.Popen | None = None

    @property
    def issuer(self) -> str:
        return f"{self.url}/realms/{self.realm['realm']}"

    def start(self, timeout: float = 240.0) -> None:
        home = self.folder / "keycloak"
        shutil.copytree(ensure_distribution(), home, symlinks=True)
        (home / "data" / "import").mkdir(parents=True, exist_ok=True)
        (home / "data" / "import" / "realm.json").write_text(json.dumps(self.realm))
        cert_file, key_file, self.ca_pem = _certificate(self.folder)
        self.ca_file = self.folder / "ca.crt"
        self.ca_file.write_bytes(self.ca_pem)
        port = _free_port()
        self.url = f"https://127.0.0.1:{port}"
        environment = {
            **os.environ,
            "KC_BOOTSTRAP_ADMIN_USERNAME": ADMIN,
            "KC_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "JAVA_OPTS_APPEND": "-Xms64m -Xmx512m",
        }
        command = [
            str(home / "bin" / "kc.sh"),
            "start-dev",
            "--import-realm",
            "--http-enabled=false",
            f"--https-port={port}",
            f"--https-certificate-file={cert_file}",
            f"--https-certificate-key-file={key_file}",
            f"--hostname={self.url}",
            "--db=dev-mem",
            "--health-enabled=true",
        ]
        with open(self.folder / "keycloak.log", "wb") as log:  # the child keeps its own descriptor
            self.process = self._spawn(command, log, environment)
        self._wait_ready(timeout)

    @staticmethod
    def _spawn(command: list[str], log, environment: dict[str, str]) -> subprocess.Popen:
        return subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - the kernel ends Keycloak with the test run
            start_new_session=True,
        )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise KeycloakError(f"Keycloak exited with {self.process.returncode}:\n{self.log_tail()}")
            if self._answers(f"/realms/{self.realm['realm']}/.well-known/openid-configuration"):
                return
            time.sleep(0.5)
        self.stop()
        raise KeycloakError(f"Keycloak was not ready within {timeout:.0f} s:\n{self.log_tail()}")

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.ca_pem.decode())

    def _answers(self, path: str) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}{path}", context=self._context(), timeout=2) as answer:
                return answer.status == 200
        except (OSError, ssl.SSLError):
            return False

    def log_tail(self) -> str:
        return (self.folder / "keycloak.log").read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)

    def pause(self) -> None:
        """Stop answering (SIGSTOP) while the process lives: an IdP that hangs."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGCONT)

    # --- the admin REST API ---------------------------------------------------------------------------------

    def _admin_token(self) -> str:
        body = urllib.parse.urlencode(
            {"grant_type": "password", "client_id": "admin-cli", "username": ADMIN, "password": ADMIN_PASSWORD}
        ).encode()
        request = urllib.request.Request(f"{self.url}/realms/master/protocol/openid-connect/token", data=body)
        with urllib.request.urlopen(request, context=self._context(), timeout=10) as answer:
            return json.load(answer)["access_token"]

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        """A call of the admin REST API under ``/admin/realms/<realm>``; the answer's JSON, or None."""
        url = f"{self.url}/admin/realms/{self.realm['realm']}{path}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self._admin_token()}")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, context=self._context(), timeout=10) as answer:
            text = answer.read()
        return json.loads(text) if text else None

    def user_id(self, username: str) -> str:
        return self.admin("GET", f"/users?username={urllib.parse.quote(username)}&exact=true")[0]["id"]

    def group_id(self, name: str) -> str:
        return next(group["id"] for group in self.admin("GET", "/groups") if group["name"] == name)

    def client(self, client_id: str) -> dict:
        return self.admin("GET", f"/clients?clientId={urllib.parse.quote(client_id)}")[0]


def main(argv: list[str]) -> int:
    if argv[1:] == ["fetch"]:
        print(ensure_distribution())
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
