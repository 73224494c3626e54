"""The production deployment: the Kustomize manifests in ``deploy/`` (rendered from the Helm chart, whose own tests
are in test_chart.py; here rendered by kubectl and applied to the real API server in a server-side dry run), the
generated RBAC, registering the cluster the console runs in, and the liveness/readiness endpoints behind production
settings.

kubectl is built from the same pinned k8s.io/kubernetes module as the control plane (``localcluster.ensure_kubectl``)."""

from __future__ import annotations

import base64
import contextlib
import datetime
import http.client
import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet
from django.core.management import call_command, get_commands
from django.core.management.base import CommandError
from kubernetes import client
from kubernetes.client.exceptions import ApiException

import kube
from clusters import rbac
from clusters.management.commands import rbac_manifests
from clusters.models import Cluster, Role
from tests.dockerfile import dockerfile_env, dockerfile_instructions
from tools import localcluster

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = ROOT / "charts" / "kube-service-console"
OVERLAY = DEPLOY / "overlays" / "example"
NAMESPACE = rbac.SERVICE_ACCOUNT_NAMESPACE  # where the manifests put the console
KUBECTL_TIMEOUT = 120


# --- helpers ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kubectl() -> Path:
    return localcluster.ensure_kubectl()


@pytest.fixture(scope="module")
def rendered(kubectl: Path) -> list[dict]:
    """The example overlay as ``kubectl kustomize`` renders it."""
    return list(yaml.safe_load_all(kustomize(kubectl, OVERLAY)))


def kustomize(kubectl: Path, folder: Path) -> str:
    done = subprocess.run(
        [str(kubectl), "kustomize", str(folder)], capture_output=True, text=True, timeout=KUBECTL_TIMEOUT
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def admin_kubeconfig(control_plane: localcluster.ControlPlane, tmp_path: Path) -> Path:
    path = tmp_path / "admin.kubeconfig"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(control_plane.kubeconfig(), handle)
    return path


def run_kubectl(kubectl: Path, kubeconfig: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(kubectl), f"--kubeconfig={kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=KUBECTL_TIMEOUT,
    )


@pytest.fixture
def console_namespace(admin_api: client.ApiClient) -> str:
    """The namespace the manifests target, made as docs/deploy.md says (with the restricted Pod Security profile
    warned about, so the dry run reports any pod template that would break it)."""
    body = {
        "metadata": {
            "name": NAMESPACE,
            "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/warn": "restricted",
            },
        }
    }
    core = client.CoreV1Api(admin_api)
    try:
        core.create_namespace(body)
    except ApiException as error:
        if error.status != 409:  # made by an earlier test, or by rbac.set_up
            raise
        core.patch_namespace(NAMESPACE, {"metadata": {"labels": body["metadata"]["labels"]}})
    return NAMESPACE


def of_kind(objects: list[dict], kind: str) -> list[dict]:
    return [item for item in objects if item["kind"] == kind]


def pod_specs(objects: list[dict]) -> list[tuple[str, dict]]:
    """Every pod template of the rendered objects, by the name of its owner."""
    specs = [
        (f"Deployment/{d['metadata']['name']}", d["spec"]["template"]["spec"]) for d in of_kind(objects, "Deployment")
    ]
    specs += [
        (f"CronJob/{c['metadata']['name']}", c["spec"]["jobTemplate"]["spec"]["template"]["spec"])
        for c in of_kind(objects, "CronJob")
    ]
    return specs


# --- the Kustomize overlay against the real API server --------------------------------------------------------------


@pytest.mark.cluster
def test_the_example_overlay_passes_a_server_side_dry_run(
    kubectl: Path, admin_kubeconfig: Path, console_namespace: str, admin_api: client.ApiClient
) -> None:
    manifest = kustomize(kubectl, OVERLAY)
    count = len(list(yaml.safe_load_all(manifest)))
    started = time.monotonic()
    done = run_kubectl(
        kubectl, admin_kubeconfig, "apply", "--server-side", "--dry-run=server", "--field-manager=deploy-test", "-f", "-",
        stdin=manifest,
    )  # fmt: skip
    print(f"server-side dry run of {count} objects: {time.monotonic() - started:.1f} s")
    assert done.returncode == 0, done.stderr
    # The namespace is labelled to warn about the restricted Pod Security profile: any warning is a finding.
    assert "Warning" not in done.stderr, done.stderr
    applied = [line for line in done.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(applied) == count, done.stdout
    # A dry run writes nothing.
    with pytest.raises(ApiException) as missing:
        client.AppsV1Api(admin_api).read_namespaced_deployment("console", console_namespace)
    assert missing.value.status == 404


@pytest.mark.cluster
def test_the_dry_run_refuses_what_the_api_server_refuses(
    kubectl: Path, admin_kubeconfig: Path, console_namespace: str
) -> None:
    """The dry run is a real check: a broken manifest (an unknown field, a bad probe port name) fails it."""
    manifest = kustomize(kubectl, OVERLAY).replace("port: http\n", "port: not_a_port_name\n", 1)
    done = run_kubectl(
        kubectl, admin_kubeconfig, "apply", "--server-side", "--dry-run=server", "-f", "-", stdin=manifest
    )
    assert done.returncode != 0
    assert "not_a_port_name" in done.stderr


def test_the_overlay_runs_replicas_that_spread_and_survive_a_drain(rendered: list[dict]) -> None:
    (deployment,) = of_kind(rendered, "Deployment")
    assert deployment["spec"]["replicas"] == 3  # the example overlay's; the base says 2
    selector = deployment["spec"]["selector"]["matchLabels"]
    (budget,) = of_kind(rendered, "PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"] == selector
    assert budget["spec"]["maxUnavailable"] == 1
    (service,) = of_kind(rendered, "Service")
    assert service["spec"]["selector"] == selector
    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    by_node = next(c for c in spread if c["topologyKey"] == "kubernetes.io/hostname")
    assert by_node["whenUnsatisfiable"] == "DoNotSchedule"
    assert by_node["labelSelector"]["matchLabels"] == selector
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


def test_every_container_is_locked_down_and_sized(rendered: list[dict]) -> None:
    specs = pod_specs(rendered)
    assert {owner for owner, _spec in specs} == {"Deployment/console", "CronJob/console-register"}
    for owner, spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 10001, owner
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, owner
        assert spec["serviceAccountName"] == "console", owner
        for container in spec.get("initContainers", []) + spec["containers"]:
            where = f"{owner} {container['name']}"
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert {"cpu", "memory"} <= container["resources"]["requests"].keys(), where
            assert "memory" in container["resources"]["limits"], where
            assert {"mountPath": "/tmp", "name": "tmp"} in container["volumeMounts"], where
            assert container["image"] == "registry.example.com/kube-service-console:0.1.0", where
            config, secret = container["envFrom"]
            assert config["configMapRef"]["name"].startswith("console-config-"), where  # named by its content's hash
            assert secret == {"secretRef": {"name": "console-secrets"}}, where


def test_the_probes_ask_the_endpoints_and_migrations_run_first(rendered: list[dict]) -> None:
    (deployment,) = of_kind(rendered, "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    web, recorder = spec["containers"]
    assert (web["name"], recorder["name"]) == ("console", "recorder")
    assert web["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert web["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert web["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    # Kubelet gives up on a probe after timeoutSeconds: the readiness check must answer (503) before that.
    from console.probes import DATABASE_TIMEOUT

    assert web["readinessProbe"]["timeoutSeconds"] > DATABASE_TIMEOUT
    (migrate,) = spec["initContainers"]
    assert migrate["command"] == ["python", "manage.py", "migrate", "--no-input"]
    (config,) = of_kind(rendered, "ConfigMap")
    assert config["data"]["CONSOLE_ENV"] == "production"
    assert config["data"]["CONSOLE_ALLOWED_HOSTS"] == "console.example.com"
    # The commands the manifests run exist.
    (cron,) = of_kind(rendered, "CronJob")
    (register,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    commands = get_commands()
    assert migrate["command"][2] in commands and register["command"][2] in commands
    assert recorder["command"] == ["python", "manage.py", "record_history"] and recorder["command"][2] in commands
    assert recorder["envFrom"] == web["envFrom"]  # the same database and settings
    assert register["command"][3:] == ["--in-cluster", "--name", "$(CONSOLE_IN_CLUSTER_NAME)"]
    assert config["data"]["CONSOLE_IN_CLUSTER_NAME"]


# --- the console's RBAC: generated, never hand-written ----------------------------------------------------------


def test_the_pods_run_as_the_service_account_the_rbac_binds(rendered: list[dict]) -> None:
    """The impersonator binding (generated), the ServiceAccount, its token Role and the pods name one account."""
    (account,) = of_kind(rendered, "ServiceAccount")
    who = {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": account["metadata"]["namespace"]}
    assert who == {"kind": "ServiceAccount", "name": kube.prefix(), "namespace": rbac.SERVICE_ACCOUNT_NAMESPACE}
    bindings = {b["metadata"]["name"]: b for b in of_kind(rendered, "ClusterRoleBinding")}
    assert bindings[f"{kube.prefix()}-impersonator"]["subjects"] == [who]
    (token_role,) = of_kind(rendered, "Role")
    assert token_role["rules"] == [
        {"apiGroups": [""], "resources": ["serviceaccounts/token"], "resourceNames": [who["name"]], "verbs": ["create"]}
    ]
    (token_binding,) = of_kind(rendered, "RoleBinding")
    assert token_binding["subjects"] == [who] and token_binding["roleRef"]["name"] == token_role["metadata"]["name"]
    assert {spec["serviceAccountName"] for _owner, spec in pod_specs(rendered)} == {who["name"]}
    # Nothing but the console's own roles is bound to it: no cluster-admin, no secrets.
    bound = [b for b in of_kind(rendered, "ClusterRoleBinding") if who in b["subjects"]]
    assert [b["roleRef"]["name"] for b in bound] == [rbac.role_name("system:impersonator")]


def test_the_rbac_manifests_in_the_repository_are_the_commands_output() -> None:
    """The chart's template of the RBAC is the command's output, and the plain manifests rendered from the chart
    (test_chart.py compares them with a new rendering) hold exactly the objects the code makes."""
    output = io.StringIO()
    call_command("rbac_manifests", "--chart", stdout=output)
    assert (CHART / "templates" / "rbac-generated.yaml").read_text() == output.getvalue(), (
        "the chart's templates/rbac-generated.yaml is out of date: run `.venv/bin/python -m tools.deploy_manifests`"
    )
    rendered = list(yaml.safe_load_all((DEPLOY / "base" / "rbac-generated.yaml").read_text()))
    assert rendered == rbac_manifests.rbac_objects()
    output = io.StringIO()
    call_command("rbac_manifests", stdout=output)
    assert list(yaml.safe_load_all(output.getvalue())) == rendered


@pytest.mark.cluster
def test_the_generated_rbac_is_what_set_up_makes(
    admin_api: client.ApiClient, admin_credentials: kube.Credentials
) -> None:
    """``rbac.set_up`` makes the roles and bindings in the cluster (replacing any made before, from the manifests
    too); the generated manifests hold the same rules, role references, subjects and labels."""
    rbac.set_up(admin_credentials)
    api = client.RbacAuthorizationV1Api(admin_api)
    for expected in rbac_manifests.rbac_objects():
        name = expected["metadata"]["name"]
        if expected["kind"] == "ClusterRole":
            made = kube.call(api.read_cluster_role, name)
            assert made["rules"] == expected["rules"], name
        else:
            made = kube.call(api.read_cluster_role_binding, name)
            assert (made["roleRef"], made["subjects"]) == (expected["roleRef"], expected["subjects"]), name
        assert made["metadata"]["labels"] == expected["metadata"]["labels"], name
    made_roles = {
        role["metadata"]["name"]
        for role in kube.call(api.list_cluster_role, label_selector=f"{rbac.PREFIX_LABEL}={kube.prefix()}")["items"]
    }
    assert made_roles == {o["metadata"]["name"] for o in rbac_manifests.rbac_objects() if o["kind"] == "ClusterRole"}
    # And no binding of set_up's is missing from the manifests (the grants' bindings carry the grant label).
    selector = f"{rbac.PREFIX_LABEL}={kube.prefix()},!{rbac.GRANT_LABEL}"
    made_bindings = {
        b["metadata"]["name"] for b in kube.call(api.list_cluster_role_binding, label_selector=selector)["items"]
    }
    assert made_bindings == {o["metadata"]["name"] for o in rbac.static_bindings()}


# --- registering the cluster the console runs in ------------------------------------------------------------------


def jwt_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def pod_token_folder(folder: Path, token: str, ca_pem: bytes) -> Path:
    """The files the kubelet projects into a pod at /var/run/secrets/kubernetes.io/serviceaccount."""
    folder.mkdir()
    (folder / "token").write_text(token)
    (folder / "ca.crt").write_bytes(ca_pem)
    (folder / "namespace").write_text(NAMESPACE)
    return folder


@pytest.fixture
def in_pod(monkeypatch: pytest.MonkeyPatch, control_plane: localcluster.ControlPlane) -> None:
    """The environment the kubelet gives a pod: the API server's in-cluster address (here, the local one)."""
    host, port = control_plane.server.removeprefix("https://").rsplit(":", 1)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)


@pytest.fixture
def console_identity(kubectl: Path, admin_kubeconfig: Path, console_namespace: str) -> None:
    """The base's ServiceAccount and RBAC applied for real, as `kubectl apply -k` would."""
    wanted = {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    objects = [o for o in yaml.safe_load_all(kustomize(kubectl, DEPLOY / "base")) if o["kind"] in wanted]
    done = run_kubectl(
        kubectl, admin_kubeconfig, "apply", "--server-side", "--force-conflicts", "--field-manager=deploy-test",
        "-f", "-", stdin=yaml.safe_dump_all(objects),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def projected_token(admin_api: client.ApiClient, pod_name: str, namespace: str, account: str) -> tuple[str, str]:
    """A token as the kubelet projects it: bound to a pod, ten minutes' life. Returns it and the pod's uid."""
    core = client.CoreV1Api(admin_api)
    pod = core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": pod_name},
            "spec": {
                "serviceAccountName": account,
                # The restricted Pod Security profile the console's namespace enforces.
                "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [
                    {
                        "name": "console",
                        "image": "console",
                        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                    }
                ],
            },
        },
    )
    request = core.create_namespaced_service_account_token(
        account,
        namespace,
        {
            "spec": {
                "expirationSeconds": 600,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod_name, "uid": pod.metadata.uid},
            }
        },
    )
    return request.status.token, pod.metadata.uid


def token_works(server: kube.Credentials) -> bool:
    try:
        kube.check_connection(server)
    except kube.ClusterUnavailable:
        return False
    return True


@pytest.mark.cluster
@pytest.mark.django_db
def test_the_console_registers_its_own_cluster_with_a_token_that_outlives_the_pod(
    admin_api: client.ApiClient,
    control_plane: localcluster.ControlPlane,
    console_identity: None,
    in_pod: None,
    make_user,
    tmp_path: Path,
) -> None:
    pod_token, _uid = projected_token(admin_api, "console-0", NAMESPACE, "console")
    folder = pod_token_folder(tmp_path / "serviceaccount", pod_token, control_plane.ca_pem)
    output = io.StringIO()

    call_command(
        "register_cluster", "--name", "home", "--in-cluster", "--service-account-dir", str(folder), stdout=output
    )

    cluster = Cluster.objects.get(name="home")
    assert cluster.identity_mode == Cluster.IdentityMode.IMPERSONATE
    stored = cluster.credentials()
    assert stored.server == control_plane.server
    assert stored.token != pod_token
    claims = jwt_claims(stored.token)
    assert claims["sub"] == f"system:serviceaccount:{NAMESPACE}:console"
    assert claims["exp"] - claims["iat"] == rbac.TOKEN_SECONDS  # not the pod's ten minutes
    assert "pod" not in claims["kubernetes.io"]  # bound to the ServiceAccount, not to this pod
    assert "Registered cluster home" in output.getvalue()
    assert "expires on" in output.getvalue()
    assert pod_token not in output.getvalue() and stored.token not in output.getvalue()

    # The pod goes (a restart, a rollout): its token stops working; the stored one keeps acting for the users.
    client.CoreV1Api(admin_api).delete_namespaced_pod("console-0", NAMESPACE, grace_period_seconds=0)
    pod_credentials = kube.Credentials(server=stored.server, ca_data=stored.ca_data, token=pod_token)
    deadline = time.monotonic() + 15
    while token_works(pod_credentials):
        assert time.monotonic() < deadline, "the deleted pod's token still works"
        time.sleep(0.2)
    assert token_works(stored)
    # A grant on the registered cluster becomes a binding (as console:system:rbac), and the user is served through
    # the stored token's impersonation (make_user waits until the cluster agrees).
    viewer = make_user("home-viewer", role=Role.CLUSTER_VIEW, cluster=cluster)
    assert kube.allowed(kube.Actor(cluster, rbac.identity_for(viewer)), "list", "services", "default")

    # Run again from another pod (the monthly CronJob): the token is renewed, the cluster stays one.
    next_token, _uid = projected_token(admin_api, "console-register-1", NAMESPACE, "console")
    folder = pod_token_folder(tmp_path / "next", next_token, control_plane.ca_pem)
    call_command("register_cluster", "--name", "home", "--in-cluster", "--service-account-dir", str(folder), stdout=io.StringIO())  # fmt: skip
    (renewed,) = Cluster.objects.filter(server=control_plane.server)
    assert renewed.credentials().token not in (stored.token, next_token)
    assert token_works(renewed.credentials())
    client.CoreV1Api(admin_api).delete_namespaced_pod("console-register-1", NAMESPACE, grace_period_seconds=0)


@pytest.mark.cluster
@pytest.mark.django_db
def test_in_cluster_registration_says_what_is_missing(
    admin_api: client.ApiClient,
    control_plane: localcluster.ControlPlane,
    namespace: str,
    in_pod: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A ServiceAccount without the token Role, then one that may make its token but may not impersonate, then
    no pod environment at all: each a clear refusal, and nothing registered."""
    core, rbac_api = client.CoreV1Api(admin_api), client.RbacAuthorizationV1Api(admin_api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "other"}})
    token, _uid = projected_token(admin_api, "other-0", namespace, "other")
    folder = pod_token_folder(tmp_path / "serviceaccount", token, control_plane.ca_pem)

    def register() -> str:
        with pytest.raises(CommandError) as refused:
            call_command("register_cluster", "--name", "home", "--in-cluster", "--service-account-dir", str(folder))
        assert token not in str(refused.value)
        return str(refused.value)

    assert "could not create a token for itself" in register()

    rule = {"apiGroups": [""], "resources": ["serviceaccounts/token"], "resourceNames": ["other"], "verbs": ["create"]}
    rbac_api.create_namespaced_role(namespace, {"metadata": {"name": "token"}, "rules": [rule]})
    rbac_api.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "token"},
            "roleRef": {"apiGroup": rbac.RBAC_GROUP, "kind": "Role", "name": "token"},
            "subjects": [{"kind": "ServiceAccount", "name": "other", "namespace": namespace}],
        },
    )
    deadline = time.monotonic() + 10
    while "could not create a token" in (message := register()):
        assert time.monotonic() < deadline, message  # the RBAC authorizer sees the binding a moment later
        time.sleep(0.05)
    assert f"ServiceAccount {namespace}/other may not act as the console's users" in message

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    assert "--in-cluster works in a pod only" in register()
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    with pytest.raises(CommandError, match="Cannot read the pod's ServiceAccount token"):
        call_command(
            "register_cluster", "--name", "home", "--in-cluster", "--service-account-dir", str(tmp_path / "none")
        )
    assert not Cluster.objects.filter(name="home").exists()


# --- the probes -------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_probes_answer_kubelet_under_production_host_and_https_rules(client, settings) -> None:
    """Kubelet asks http://<pod IP>:8000/readyz: no allowed host, no X-Forwarded-Proto."""
    settings.ALLOWED_HOSTS = ["console.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.DEBUG = False
    # The rules are in force for every other path ...
    assert client.get("/login/", HTTP_HOST="10.244.1.7").status_code == 400
    assert client.get("/login/", HTTP_HOST="console.example.com").status_code == 301
    # ... and the probes answer, without a login, saying nothing more than ok.
    for path in ("/healthz", "/readyz"):
        response = client.get(path, HTTP_HOST="10.244.1.7")
        assert (response.status_code, response.content) == (200, b"ok\n"), path
        assert response["Content-Type"] == "text/plain; charset=utf-8"
        assert response["Cache-Control"] == "no-store"
        assert "Set-Cookie" not in response


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def production_server(tmp_path: Path, database_url: str) -> Iterator[int]:
    """gunicorn with production settings (hosts, HTTPS redirect and all) on ``database_url``; yields its port."""
    port = free_port()
    env = {
        **os.environ,
        "CONSOLE_ENV": "production",
        "CONSOLE_SECRET_KEY": "test-" + "x" * 50,
        "CONSOLE_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "CONSOLE_ALLOWED_HOSTS": "console.example.com",
        "CONSOLE_DATA_DIR": str(tmp_path / "data"),
        "CONSOLE_STATIC_ROOT": str(tmp_path / "static"),
        "DATABASE_URL": database_url,
    }
    if not (tmp_path / "static").exists():  # production pages need the hashed static files, as in the image
        collect = [sys.executable, "manage.py", "collectstatic", "--no-input", "--verbosity", "0"]
        subprocess.run(collect, cwd=ROOT, env=env, check=True, timeout=120)
    log = tmp_path / f"gunicorn-{port}.log"
    command = [sys.executable, "-m", "gunicorn", "-c", "python:console.gunicorn", "console.wsgi:application", "--bind", f"127.0.0.1:{port}",
               "--workers", "1", "--chdir", str(ROOT), "--error-logfile", str(log)]  # fmt: skip
    server = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, log.read_text(errors="replace")[-3000:]
            with contextlib.suppress(OSError):
                if get(port, "/healthz")[0] == 200:
                    break
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.1)
        yield port
    finally:
        server.terminate()
        server.wait(10)


def get(port: int, path: str, host: str = "10.244.1.7") -> tuple[int, str]:
    """A request as kubelet sends it: plain HTTP to the pod's address."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": host, "User-Agent": "kube-probe/1.37"})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def test_readyz_behind_gunicorn_follows_the_database(tmp_path: Path) -> None:
    """Production servers: ready on a database that answers; 503 with the reason when it refuses connections or
    accepts them and never answers; alive in both cases (a database outage must not restart the pods)."""
    with production_server(tmp_path, f"sqlite:///{tmp_path / 'console.sqlite3'}") as port:
        assert get(port, "/readyz") == (200, "ok\n")
        assert get(port, "/healthz") == (200, "ok\n")
        assert get(port, "/login/")[0] == 400  # the pod IP is not an allowed host anywhere else
        assert get(port, "/login/", host="console.example.com")[0] == 301  # and plain HTTP is redirected

    closed = free_port()  # nothing listens there: connections are refused
    with production_server(tmp_path, f"postgres://console:secret-password@127.0.0.1:{closed}/console") as port:
        status, text = get(port, "/readyz")
        assert (status, text) == (503, "not ready: database: OperationalError\n")
        assert get(port, "/healthz") == (200, "ok\n")
    assert "secret-password" not in "".join(p.read_text() for p in tmp_path.glob("gunicorn-*.log"))

    with socket.socket() as silent:  # accepts connections (the kernel does) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"postgres://console:secret-password@127.0.0.1:{silent.getsockname()[1]}/console"
        with production_server(tmp_path, url) as port:
            started = time.monotonic()
            status, text = get(port, "/readyz")
            assert time.monotonic() - started < 3  # within kubelet's timeoutSeconds in deploy/
            assert (status, text) == (503, "not ready: database: no answer within 2 s\n")


def test_the_rendered_manifests_match_the_image(rendered: list[dict]) -> None:
    """The pods run as the image's user, on the port gunicorn binds."""
    (command,) = [json.loads(a) for k, a in dockerfile_instructions() if k == "CMD"]
    port = int(dockerfile_env()["PORT"])
    (deployment,) = of_kind(rendered, "Deployment")
    web = deployment["spec"]["template"]["spec"]["containers"][0]
    assert web["ports"] == [{"containerPort": port, "name": "http", "protocol": "TCP"}]
    assert "--worker-tmp-dir" in command and command[command.index("--worker-tmp-dir") + 1] == "/tmp"
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    pre_stop = web["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop + int(command[command.index("--graceful-timeout") + 1]) < grace


def test_renewal_margin_is_longer_than_the_renewal_schedule(rendered: list[dict]) -> None:
    from clusters.management.commands.register_cluster import RENEWAL_MARGIN

    (cron,) = of_kind(rendered, "CronJob")
    assert cron["spec"]["schedule"].split()[2:] == ["1", "*", "*"]  # monthly
    assert datetime.timedelta(days=31) < RENEWAL_MARGIN < datetime.timedelta(seconds=rbac.TOKEN_SECONDS)
