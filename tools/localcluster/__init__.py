"""A real local Kubernetes control plane: upstream etcd, kube-apiserver and kube-controller-manager, built from
their Go modules.

The binaries are built once per version into a cache outside the repository (or taken from
``KUBEBUILDER_ASSETS``, the envtest convention), then started on free loopback ports with generated
certificates. The controller-manager runs only the controllers that need no nodes (``CONTROLLERS``): EndpointSlices
follow the pods' status, deleted namespaces finish deleting, ClusterRoles aggregate. There is no scheduler,
kubelet or node lifecycle: tests register Nodes and set pod status themselves, and nothing taints or evicts.

This module only needs the standard library and ``cryptography``, so the management command and the test
fixtures share it.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import datetime
import fcntl
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

KUBERNETES_VERSION = "v1.37.2"
ETCD_VERSION = "v3.7.3"
# The Helm release the chart is tested with (tools/localcluster/gomod/helm pins its module).
HELM_VERSION = "v4.3.2"
# Large enough for the benchmark and load tests (thousands of Services); the default of kubeadm clusters.
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/12"
GOMOD_DIR = Path(__file__).resolve().parent / "gomod"

Log = Callable[[str], None]


class LocalClusterError(Exception):
    """Something the person running the command can act on; the message says what."""


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- binaries -------------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "kube-service-console" / f"kube-apiserver-{KUBERNETES_VERSION}_etcd-{ETCD_VERSION}"


BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")


def ensure_binaries(log: Log = _stderr) -> Path:
    """Return a folder holding ``etcd``, ``kube-apiserver`` and ``kube-controller-manager``, building on first use.

    Only what is missing is built: a cache from before the controller-manager keeps its other two binaries.
    """
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        folder = Path(assets)
        missing = [name for name in BINARIES if not os.access(folder / name, os.X_OK)]
        if missing:
            raise LocalClusterError(f"KUBEBUILDER_ASSETS={assets} does not hold executable {', '.join(missing)}.")
        return folder

    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        # Two commands may start at once (make run beside make test); the second waits for the first build.
        fcntl.flock(lock, fcntl.LOCK_EX)
        for name, build in (
            ("etcd", _build_etcd),
            ("kube-apiserver", _build_kubernetes),
            ("kube-controller-manager", _build_kubernetes),
        ):
            if not (folder / name).exists():
                build(folder / name, log)
    return folder


def ensure_kubectl(log: Log = _stderr) -> Path:
    """Return the path of a ``kubectl`` of the same release, building it into the cache on first use.

    Not one of ``BINARIES``: only the test of the ``deploy/`` manifests needs it (``kubectl kustomize`` and a
    server-side dry run), so the control plane does not wait for it. An envtest ``KUBEBUILDER_ASSETS`` folder
    usually holds one, and it is used when present."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and os.access(Path(assets) / "kubectl", os.X_OK):
        return Path(assets) / "kubectl"
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "kubectl").exists():
            _build_kubernetes(folder / "kubectl", log)
    return folder / "kubectl"


def ensure_helm(log: Log = _stderr) -> Path:
    """Return the path of ``helm`` (``HELM_VERSION``), building it into the cache on first use.

    Only the chart's tests and the rendering of ``deploy/`` from the chart need it. Its name carries its version, so
    a new pin builds a new binary beside the old one (the cache folder is named after the control plane's versions
    only). Envtest's ``KUBEBUILDER_ASSETS`` folders hold none, but a ``helm`` put in one is used, as a ``kubectl``
    there is: a machine without Go can then run the tests."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and os.access(Path(assets) / "helm", os.X_OK):
        return Path(assets) / "helm"
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    output = folder / f"helm-{HELM_VERSION}"
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not output.exists():
            # Helm reports the version stamped into its internal version package (its own Makefile does the same
            # for a tagged release); without it `helm version` says only "v4.3".
            stamp = " ".join(
                f"-X helm.sh/helm/v4/internal/version.{key}={value}"
                for key, value in (("version", HELM_VERSION), ("gitTreeState", "clean"))
            )
            _run_go_build("helm", "helm.sh/helm/v4/cmd/helm", output, f"-s -w {stamp}", log)
    return output


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise LocalClusterError(
            "Go is needed once to build etcd, kube-apiserver and kube-controller-manager (install Go 1.26 or newer, "
            "e.g. `apt-get install golang-go` or from go.dev), or set KUBEBUILDER_ASSETS to a folder holding the "
            "three binaries."
        )
    return go


def _run_go_build(module: str, target: str, output: Path, ldflags: str, log: Log) -> None:
    started = time.monotonic()
    partial = output.with_suffix(".partial")
    command = [
        _go(),
        "build",
        "-v",
        "-trimpath",
        "-ldflags",
        ldflags,
        "-o",
        str(partial),
        target,
    ]
    env = {**os.environ, "GOFLAGS": "-mod=readonly -buildvcs=false", "CGO_ENABLED": "0"}
    log(f"Building {output.name} from its Go modules (a few minutes the first time; cached in {output.parent})")
    process = subprocess.Popen(
        command,
        cwd=GOMOD_DIR / module,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    tail: list[str] = []
    compiled = 0
    for line in process.stdout:
        tail = [*tail[-30:], line.rstrip()]
        if not line.startswith(("go: downloading", "#")):
            compiled += 1
            if compiled % 200 == 0:
                log(f"  {output.name}: {compiled} packages compiled ({time.monotonic() - started:.0f} s)")
    if process.wait() != 0:
        partial.unlink(missing_ok=True)
        raise LocalClusterError(f"Building {output.name} failed:\n" + "\n".join(tail))
    partial.rename(output)
    log(f"Built {output.name} in {time.monotonic() - started:.0f} s")


def _build_kubernetes(output: Path, log: Log) -> None:
    """Build the command named ``output.name`` from the pinned k8s.io/kubernetes module, stamped with its version."""
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    stamp = " ".join(
        f"-X k8s.io/component-base/version.{key}={value}"
        for key, value in (
            ("gitVersion", KUBERNETES_VERSION),
            ("gitMajor", major),
            ("gitMinor", minor),
            ("gitTreeState", "clean"),
        )
    )
    _run_go_build(
        "kubernetes",
        f"k8s.io/kubernetes/cmd/{output.name}",
        output,
        f"-s -w {stamp}",
        log,
    )


def _build_etcd(output: Path, log: Log) -> None:
    _run_go_build("etcd", ".", output, "-s -w", log)


# --- certificates ---------------------------------------------------------------------------------------------


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class CertificateAuthority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls) -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-service-console local CA")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    def issue(
        self,
        common_name: str,
        organizations: tuple[str, ...] = (),
        *,
        server: bool = False,
    ) -> tuple[bytes, bytes]:
        """A leaf certificate and key (PEM) for a client identity or, with ``server``, the API server."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
        subject.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(subject))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if server:
            service_ip = next(ipaddress.ip_network(SERVICE_CLUSTER_IP_RANGE).hosts())
            names: list[x509.GeneralName] = [
                x509.DNSName(name)
                for name in (
                    "localhost",
                    "kubernetes",
                    "kubernetes.default",
                    "kubernetes.default.svc",
                )
            ]
            names += [
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(service_ip),
            ]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
            usage = x509.ExtendedKeyUsageOID.SERVER_AUTH
        else:
            usage = x509.ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return _pem_cert(cert), _pem_key(key)


# --- the running control plane --------------------------------------------------------------------------------


@dataclass
class ClusterState:
    """What a running control plane needs to be found again and stopped; kept as JSON beside its data."""

    data_dir: str
    server: str
    kubeconfig: str
    etcd_pid: int
    apiserver_pid: int
    binaries: str
    audit_log: str = ""  # the API server's audit log (JSON lines); empty in states written before it existed
    controller_manager_pid: int = 0  # 0 in states written before the controller-manager was started

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> ClusterState | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """Run in the child before exec: the kernel sends it SIGTERM when the process that started it ends."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _owned(pid: int, binary: str) -> bool:
    """Whether ``pid`` is still the process we started (pids are reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(cmdline) and cmdline[0].decode(errors="replace") == binary


def _stop_process(pid: int, binary: str, timeout: float = 2.0) -> None:
    # The data is thrown away with the process, so a graceful shutdown (the API server drains its watches) is not
    # worth waiting long for.
    if not _owned(pid, binary):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not _owned(pid, binary):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def kubeconfig_document(server: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes, name: str = "local") -> dict:
    """A kubeconfig holding only inline data (no file paths, no exec), as the console itself accepts."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": b64(ca_pem),
                },
            }
        ],
        "users": [
            {
                "name": name,
                "user": {
                    "client-certificate-data": b64(cert_pem),
                    "client-key-data": b64(key_pem),
                },
            }
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }


# The controller-manager's identity: a client certificate in system:masters, named so that its requests are told
# apart from the tests' and the console's in the audit log.
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"

# Every request at the Metadata level (who, as whom, which verb on which object, the answer's code), once, when the
# answer is complete; watches, health probes and the controller-manager's reads (discovery every 30 s, a list per
# resource type for each namespace it deletes) are left out, as they would drown the rest. Its writes are kept.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived", "ResponseStarted"],
    "rules": [
        {"level": "None", "verbs": ["watch"]},
        {"level": "None", "users": [CONTROLLER_MANAGER_USER], "verbs": ["get", "list"]},
        {"level": "None", "nonResourceURLs": ["/healthz*", "/livez*", "/readyz*", "/version"]},
        {"level": "Metadata"},
    ],
}


# The controllers the console's development and tests need, by their 1.37 names (`kube-controller-manager --help`,
# --controllers). Left out on purpose: node-lifecycle-controller (the tests' Nodes have no kubelet posting
# heartbeats; it would taint them and evict their pods), taint-eviction (evicts pods from tainted Nodes),
# pod-garbage-collector (deletes pods bound to a Node that does not exist, as tests' pods may be), the workload
# controllers (a test's Deployment makes no ReplicaSet or pods), and everything scheduling, cloud, storage or
# certificate related.
CONTROLLERS = (
    "endpointslice-controller",  # the EndpointSlices of Services with a selector, from their pods' status
    "namespace-controller",  # a deleted namespace's objects removed, then the namespace itself
    "garbage-collector-controller",  # dependents deleted with their owners
    "clusterrole-aggregation-controller",  # admin, edit and view gather the rules of aggregated ClusterRoles
    "serviceaccount-controller",  # the default ServiceAccount of every namespace
    "serviceaccount-token-controller",  # tokens filled into ServiceAccount token Secrets
)


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager in a private temporary folder, on free loopback ports."""

    def __init__(
        self,
        binaries: Path,
        data_dir: Path | None = None,
        apiserver_args: tuple[str, ...] = (),
        controllers: tuple[str, ...] = CONTROLLERS,
    ) -> None:
        self.binaries = binaries
        self.apiserver_args = apiserver_args
        self.controllers = controllers  # the chart's upgrade test adds the workload controllers, in a plane of its own
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="kube-service-console-"))
        self.data_dir.chmod(0o700)
        self.ca = CertificateAuthority.create()
        self.ca_pem = _pem_cert(self.ca.cert)
        self.server = ""
        self.audit_log = self.data_dir / "audit.log"
        self._processes: list[subprocess.Popen] = []
        self._context: ssl.SSLContext | None = None  # the admin's TLS context for the waits of ``start``

    # The paths below live in the private data folder (mode 0700): they are the control plane's own files.
    def _write(self, name: str, data: bytes) -> Path:
        path = self.data_dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return path

    def client_credentials(self, user: str, groups: tuple[str, ...] = ()) -> tuple[bytes, bytes]:
        """A client certificate and key (PEM) that the API server authenticates as ``user`` in ``groups``."""
        return self.ca.issue(user, groups)

    def kubeconfig(self, user: str = "admin", groups: tuple[str, ...] = ("system:masters",)) -> dict:
        cert, key = self.client_credentials(user, groups)
        return kubeconfig_document(self.server, self.ca_pem, cert, key)

    def start(self, *, detached: bool = False, log: Log = _stderr, timeout: float = 90.0) -> ClusterState:
        """Start etcd and the API server, wait for ``/readyz``, then start the controller-manager and wait until its
        controllers work (each wait at most ``timeout`` seconds).

        ``detached`` processes outlive this Python process (``localcluster up``); otherwise they die with it,
        so a test run that crashes leaves nothing behind.
        """
        etcd_port, peer_port, api_port = _free_port(), _free_port(), _free_port()
        self.server = f"https://127.0.0.1:{api_port}"
        ca_file = self._write("ca.crt", self.ca_pem)
        serving_cert, serving_key = self.ca.issue("kube-apiserver", server=True)
        sa_key = ec.generate_private_key(ec.SECP256R1())
        files = {
            "tls.crt": serving_cert,
            "tls.key": serving_key,
            "sa.key": _pem_key(sa_key),
            "sa.pub": sa_key.public_key().public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo,
            ),
        }
        paths = {name: self._write(name, data) for name, data in files.items()}
        paths["audit-policy.yaml"] = self._write("audit-policy.yaml", yaml.safe_dump(AUDIT_POLICY).encode())
        admin_cert, admin_key = self.client_credentials("console-admin", ("system:masters",))
        admin_cert_file, admin_key_file = (
            self._write("admin.crt", admin_cert),
            self._write("admin.key", admin_key),
        )

        etcd_url, peer_url = (
            f"http://127.0.0.1:{etcd_port}",
            f"http://127.0.0.1:{peer_port}",
        )
        etcd = [
            str(self.binaries / "etcd"),
            "--name=local",
            f"--data-dir={self.data_dir / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=local={peer_url}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]
        apiserver = [
            str(self.binaries / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # The default reconciler refuses a loopback advertise address; with one API server there is nothing
            # to reconcile.
            "--endpoint-reconciler-type=none",
            f"--secure-port={api_port}",
            f"--cert-dir={self.data_dir / 'certs'}",
            f"--tls-cert-file={paths['tls.crt']}",
            f"--tls-private-key-file={paths['tls.key']}",
            f"--client-ca-file={ca_file}",
            "--authorization-mode=RBAC",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={paths['sa.pub']}",
            f"--service-account-signing-key-file={paths['sa.key']}",
            # A new namespace gets its default ServiceAccount a moment after it is made; this plugin would refuse
            # the Pods a test creates at once (and tests make Pods in namespaces of their own without one).
            "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true",
            "--profiling=false",
            # The cluster's own record of who did what (the user, and whom they impersonated), as a real cluster
            # keeps one; removed with the data folder.
            f"--audit-policy-file={paths['audit-policy.yaml']}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            "--audit-log-maxsize=200",
            "--audit-log-maxbackup=1",
            *self.apiserver_args,
        ]
        kwargs: dict = {"stdin": subprocess.DEVNULL, "close_fds": True}
        if detached:
            kwargs["start_new_session"] = True
        else:
            kwargs["preexec_fn"] = _die_with_parent
        started = time.monotonic()
        self._context = ssl.create_default_context(cafile=str(ca_file))
        self._context.load_cert_chain(str(admin_cert_file), str(admin_key_file))
        for command in (etcd, apiserver):
            self._spawn(command, kwargs)
        self._wait_until(self._api_ready, "kube-apiserver was not ready", timeout)

        manager_cert, manager_key = self.client_credentials(CONTROLLER_MANAGER_USER, ("system:masters",))
        manager_kubeconfig = self._write(
            "controller-manager.kubeconfig",
            yaml.safe_dump(kubeconfig_document(self.server, self.ca_pem, manager_cert, manager_key)).encode(),
        )
        controller_manager = [
            str(self.binaries / "kube-controller-manager"),
            f"--kubeconfig={manager_kubeconfig}",
            "--leader-elect=false",
            "--secure-port=0",  # no serving port: nothing reads its metrics or health endpoints
            f"--controllers={','.join(self.controllers)}",
            # Above the defaults (20 requests a second): the benchmarks create Services by the ten thousand, and
            # their EndpointSlices would otherwise trail them by minutes.
            "--kube-api-qps=200",
            "--kube-api-burst=400",
            f"--service-account-private-key-file={paths['sa.key']}",
            f"--root-ca-file={ca_file}",
        ]
        self._spawn(controller_manager, kwargs)
        self._wait_until(self._controllers_working, "kube-controller-manager's controllers did not start", timeout)
        log(f"Control plane ready at {self.server} in {time.monotonic() - started:.1f} s")

        kubeconfig = self.data_dir / "kubeconfig"
        document = kubeconfig_document(self.server, self.ca_pem, admin_cert, admin_key)
        self._write("kubeconfig", yaml.safe_dump(document, sort_keys=False).encode())
        etcd_process, apiserver_process, manager_process = self._processes
        return ClusterState(
            data_dir=str(self.data_dir),
            server=self.server,
            kubeconfig=str(kubeconfig),
            etcd_pid=etcd_process.pid,
            apiserver_pid=apiserver_process.pid,
            binaries=str(self.binaries),
            audit_log=str(self.audit_log),
            controller_manager_pid=manager_process.pid,
        )

    def _spawn(self, command: list[str], kwargs: dict) -> None:
        """Start ``command`` with its output in ``<binary>.log`` in the data folder."""
        with open(self.data_dir / f"{Path(command[0]).name}.log", "wb") as output:
            self._processes.append(subprocess.Popen(command, stdout=output, stderr=output, **kwargs))

    def audit_events(self) -> list[dict]:
        """The audit log's events so far, oldest first."""
        try:
            lines = self.audit_log.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    def _api_get(self, path: str) -> bytes | None:
        """The API server's answer to a GET of ``path`` as the admin, or None when it does not answer 200."""
        try:
            with urllib.request.urlopen(f"{self.server}{path}", context=self._context, timeout=2) as response:
                return response.read() if response.status == 200 else None
        except OSError:
            return None

    def _api_ready(self) -> bool:
        return self._api_get("/readyz") is not None

    def _controllers_working(self) -> bool:
        """The work of two of the controllers is done: the aggregated ``view`` ClusterRole has gathered its rules,
        and the default namespace has its ServiceAccount."""
        view = self._api_get("/apis/rbac.authorization.k8s.io/v1/clusterroles/view")
        return bool(view and json.loads(view).get("rules")) and (
            self._api_get("/api/v1/namespaces/default/serviceaccounts/default") is not None
        )

    def _wait_until(self, done: Callable[[], bool], failure: str, timeout: float) -> None:
        """Poll ``done`` until it holds; if a process exits or ``timeout`` passes, stop everything and raise with
        the tail of the log that tells why."""
        deadline = time.monotonic() + timeout
        while True:
            for process in self._processes:
                if process.poll() is not None:
                    name = Path(process.args[0]).name
                    tail = self._log_tail(name)
                    self.stop()
                    raise LocalClusterError(f"{name} exited with code {process.returncode}:\n{tail}")
            if done():
                return
            if time.monotonic() > deadline:
                name = Path(self._processes[-1].args[0]).name
                tail = self._log_tail(name)
                self.stop()
                raise LocalClusterError(f"{failure} within {timeout:.0f} s; the end of {name}.log:\n{tail}")
            time.sleep(0.1)

    def _log_tail(self, name: str) -> str:
        return (self.data_dir / f"{name}.log").read_text(errors="replace")[-3000:]

    def stop(self, *, remove: bool = True) -> None:
        for process in reversed(self._processes):
            _stop_process(process.pid, process.args[0])
        self._processes.clear()
        if remove:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    # etcd alone, for fault tests: the API server keeps running and answers with its own errors.
    def etcd_process(self) -> subprocess.Popen:
        return self._processes[0]


def stop_state(state: ClusterState) -> None:
    """Stop a detached control plane recorded in ``state`` and remove its data folder."""
    if state.controller_manager_pid:
        _stop_process(state.controller_manager_pid, str(Path(state.binaries) / "kube-controller-manager"))
    _stop_process(state.apiserver_pid, str(Path(state.binaries) / "kube-apiserver"))
    _stop_process(state.etcd_pid, str(Path(state.binaries) / "etcd"))
    shutil.rmtree(state.data_dir, ignore_errors=True)


def state_running(state: ClusterState) -> bool:
    """Whether the API server and etcd of ``state`` run (the cluster answers; see ``controller_manager_running``)."""
    return _owned(state.apiserver_pid, str(Path(state.binaries) / "kube-apiserver")) and _owned(
        state.etcd_pid, str(Path(state.binaries) / "etcd")
    )


def controller_manager_running(state: ClusterState) -> bool:
    return bool(state.controller_manager_pid) and _owned(
        state.controller_manager_pid, str(Path(state.binaries) / "kube-controller-manager")
    )
