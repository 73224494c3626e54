"""The Helm chart (``charts/kube-service-console``): linted strictly, the one source the plain manifests of
``deploy/`` are rendered from (and compared with), applied in a server-side dry run under the restricted Pod
Security profile, and installed, upgraded, uninstalled and installed again for real on a control plane whose
controller-manager runs the Deployment, ReplicaSet and PodDisruptionBudget controllers.

helm is built from its Go module like kubectl (``localcluster.ensure_helm``, ``tools/localcluster/gomod/helm``)."""

from __future__ import annotations

import base64
import datetime
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet
from django.test import override_settings
from kubernetes import client
from kubernetes.client.exceptions import ApiException

import kube
from clusters import rbac
from clusters.management.commands import rbac_manifests
from tests.helpers import eventually, make_node, set_pod_ready
from tools import deploy_manifests, localcluster

CHART = deploy_manifests.CHART
FULL_VALUES = CHART / "ci" / "full-values.yaml"
NAMESPACE = rbac.SERVICE_ACCOUNT_NAMESPACE  # the one namespace the chart installs in
DATABASE_URL = "postgres://console:secret-password@postgres.example.com:5432/console"
TIMEOUT = 120
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted"}


# --- helpers ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def helm() -> Path:
    return localcluster.ensure_helm()


@pytest.fixture(scope="module")
def kubectl() -> Path:
    return localcluster.ensure_kubectl()


def run_helm(helm: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    """helm with its caches and configuration in the test's folder, not the user's."""
    env = {
        **os.environ,
        **{f"HELM_{kind}_HOME": str(home / f"helm-{kind.lower()}") for kind in ("CACHE", "CONFIG", "DATA")},
    }
    return subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=TIMEOUT, env=env)


def template(helm: Path, home: Path, *args: str) -> str:
    done = run_helm(helm, home, "template", "console", str(CHART), "--namespace", NAMESPACE, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def objects_of(manifest: str) -> list[dict]:
    return [item for item in yaml.safe_load_all(manifest) if item]


def of_kind(objects: list[dict], kind: str) -> list[dict]:
    return [item for item in objects if item["kind"] == kind]


def write_kubeconfig(path: Path, document: dict) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(document, handle)
    return path


def restricted_namespace(core: client.CoreV1Api) -> None:
    """The chart's namespace as docs/deploy.md makes it, warning about the restricted Pod Security profile too, so
    that a pod template breaking it shows in the output."""
    try:
        core.create_namespace({"metadata": {"name": NAMESPACE, "labels": RESTRICTED}})
    except ApiException as error:
        if error.status != 409:  # made by an earlier test, or by rbac.set_up
            raise
        core.patch_namespace(NAMESPACE, {"metadata": {"labels": RESTRICTED}})


# --- lint, and what the chart refuses -----------------------------------------------------------------------------


def test_helm_lint_passes_strictly_with_the_defaults_and_with_every_option(helm: Path, tmp_path: Path) -> None:
    for values in ((), ("--values", str(FULL_VALUES))):
        done = run_helm(helm, tmp_path, "lint", "--strict", str(CHART), "--namespace", NAMESPACE, *values)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout
        assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, done.stdout
    # With every option, none of the chart's own checks objects either: in `helm lint` a failed check is only logged
    # (as the defaults' missing database is), so the refusals are rendered below with `helm template`.
    assert "fail" not in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("namespace", "args", "message"),
    [
        (NAMESPACE, [], "the console needs its PostgreSQL database"),
        ("console", ["--set", f"database.url={DATABASE_URL}"], "install the console in the namespace kube-service-console"),
        (NAMESPACE, ["--set", "database.url=postgres://db/console", "--set", "database.existingSecret=pg"], "not both"),
        (NAMESPACE, ["--set", "secrets.existingSecret=keys", "--set", f"database.url={DATABASE_URL}"], "put DATABASE_URL in your Secret"),
        (NAMESPACE, ["--set", "secrets.existingSecret=keys", "--set-string", "config.CONSOLE_SECRET_KEY=x"], "config.CONSOLE_SECRET_KEY is a secret"),
        (NAMESPACE, ["--set", "secrets.existingSecret=keys", "--set-string", f"config.DATABASE_URL={DATABASE_URL}"], "config.DATABASE_URL is a secret"),
        (NAMESPACE, ["--set", "secrets.existingSecret=keys", "--set-string", "config.CONSOLE_IDENTITY_PREFIX=x"], "is set from identityPrefix"),
        (NAMESPACE, ["--set", "secrets.existingSecret=keys", "--set", "oidc.issuer=https://sso.example.com"], "single sign-on needs"),
        (NAMESPACE, ["--set", "secrets.existingSecret=keys", "--set", "ingress.enabled=true"], "ingress.enabled needs ingress.host"),
        # values.schema.json: a number where the environment takes a string, a prefix the console refuses, a typo
        (NAMESPACE, ["--set", "secrets.existingSecret=keys", "--set", "config.CONSOLE_HSTS_SECONDS=31536000"], "CONSOLE_HSTS_SECONDS"),
        (NAMESPACE, ["--set", "secrets.existingSecret=keys", "--set", "identityPrefix=Console"], "identityPrefix"),
        (NAMESPACE, ["--set", "secrets.existingSecret=keys", "--set", "replicas=3"], "replicas"),
    ],
)  # fmt: skip
def test_the_chart_refuses_values_the_console_cannot_run_with(
    helm: Path, tmp_path: Path, namespace: str, args: list[str], message: str
) -> None:
    done = run_helm(helm, tmp_path, "template", "console", str(CHART), "--namespace", namespace, *args)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr


# --- one source of truth ------------------------------------------------------------------------------------------


def test_the_plain_manifests_are_rendered_from_the_chart(helm: Path) -> None:
    files = deploy_manifests.render(helm)
    for path, text in files.items():
        assert path.exists() and path.read_text() == text, (
            f"{path.relative_to(deploy_manifests.ROOT)} is out of date: run `.venv/bin/python -m tools.deploy_manifests`"
        )
    # Nothing in the base but what the chart renders and the values it is rendered with.
    base = deploy_manifests.BASE
    assert {p.name for p in base.iterdir()} == {p.name for p in files if p.parent == base} | {"chart-values.yaml"}


def test_the_rbac_follows_the_identity_prefix(helm: Path, tmp_path: Path) -> None:
    """The chart's RBAC is the code's for any prefix (the ClusterRoles, their labels, the bindings' subjects), and
    the ServiceAccount, its token Role and the pods carry the same name."""
    objects = objects_of(
        template(helm, tmp_path, "--set", f"database.url={DATABASE_URL}", "--set", "identityPrefix=on")
    )
    with override_settings(CONSOLE_IDENTITY_PREFIX="on"):  # `on` would be read back as a boolean unquoted
        expected = rbac_manifests.rbac_objects()
    assert [o for o in objects if o["kind"] in ("ClusterRole", "ClusterRoleBinding")] == expected
    (account,) = of_kind(objects, "ServiceAccount")
    assert account["metadata"]["name"] == "on"
    (role,) = of_kind(objects, "Role")
    assert role["rules"][0]["resourceNames"] == ["on"]
    (deployment,) = of_kind(objects, "Deployment")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "on"
    (config,) = of_kind(objects, "ConfigMap")
    assert config["data"]["CONSOLE_IDENTITY_PREFIX"] == "on"


def test_a_changed_setting_rolls_the_pods_and_nothing_else_does(helm: Path, tmp_path: Path) -> None:
    def pod_template(*args: str) -> dict:
        objects = objects_of(template(helm, tmp_path, "--set", f"database.url={DATABASE_URL}", *args))
        (deployment,) = of_kind(objects, "Deployment")
        return deployment["spec"]["template"]

    first = pod_template()
    # The keys of the Secret are new at every rendering here (no cluster to read them from); the pods do not care.
    assert pod_template() == first
    changed = pod_template("--set-string", "config.CONSOLE_LOGIN_FAILURE_LIMIT=7")
    assert changed["metadata"]["annotations"]["checksum/config"] != first["metadata"]["annotations"]["checksum/config"]


# --- the server-side dry run --------------------------------------------------------------------------------------


@pytest.fixture
def admin_kubeconfig(control_plane: localcluster.ControlPlane, tmp_path: Path) -> Path:
    return write_kubeconfig(tmp_path / "admin.kubeconfig", control_plane.kubeconfig())


@pytest.mark.cluster
@pytest.mark.parametrize(
    "values",
    [
        ("--set", f"database.url={DATABASE_URL}"),  # the defaults, and the one value they lack
        ("--values", str(FULL_VALUES)),  # ingress and TLS, single sign-on, Secrets of the operator's, the CronJob
    ],
    ids=["defaults", "every-option"],
)
def test_the_chart_passes_a_server_side_dry_run_under_the_restricted_profile(
    helm: Path, kubectl: Path, admin_kubeconfig: Path, admin_api: client.ApiClient, tmp_path: Path, values: tuple
) -> None:
    restricted_namespace(client.CoreV1Api(admin_api))
    manifest = template(helm, tmp_path, *values)
    objects = objects_of(manifest)
    done = subprocess.run(
        [str(kubectl), f"--kubeconfig={admin_kubeconfig}", "apply", "--server-side", "--dry-run=server",
         "--field-manager=chart-test", "-f", "-"],
        input=manifest, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # The namespace warns about the restricted Pod Security profile: any warning is a finding.
    assert "Warning" not in done.stderr, done.stderr
    assert len([line for line in done.stdout.splitlines() if line.endswith("(server dry run)")]) == len(objects)
    kinds = {o["kind"] for o in objects}
    if "--values" in values:
        assert {"Ingress", "CronJob"} <= kinds and "Secret" not in kinds
    else:
        assert {"Secret", "PodDisruptionBudget", "ClusterRole"} <= kinds and "Ingress" not in kinds


# --- a real install and upgrade ----------------------------------------------------------------------------------

# The session's control plane runs no workload controllers (the other tests' Deployments must make no pods): the
# chart gets a control plane of its own whose controller-manager rolls Deployments out as a cluster's does, and
# keeps the PodDisruptionBudget's status. There is still no scheduler or kubelet: the test binds pods to a Node and
# reports them running and ready, as a kubelet would.
WORKLOAD_CONTROLLERS = (
    *localcluster.CONTROLLERS,
    "deployment-controller",
    "replicaset-controller",
    "disruption-controller",
)


@dataclass(frozen=True)
class Workload:
    """The chart's control plane, and an administrator's way in."""

    kubeconfig: Path
    admin: kube.Credentials
    api: client.ApiClient


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workload]:
    plane = localcluster.ControlPlane(localcluster.ensure_binaries(), controllers=WORKLOAD_CONTROLLERS)
    plane.start()
    try:
        kubeconfig = write_kubeconfig(tmp_path_factory.mktemp("workload") / "admin.kubeconfig", plane.kubeconfig())
        cert, key = plane.client_credentials("chart-test", ("system:masters",))
        admin = kube.Credentials(server=plane.server, ca_data=plane.ca_pem, client_cert=cert, client_key=key)
        yield Workload(kubeconfig, admin, kube.build_api_client(admin))
    finally:
        plane.stop()


def helm_release(
    helm: Path, workload: Workload, home: Path, action: str, release: str, *values: str
) -> subprocess.CompletedProcess:
    """``helm install|upgrade|uninstall`` of ``release`` in the chart's control plane."""
    chart = () if action == "uninstall" else (str(CHART),)
    where = ("--namespace", NAMESPACE, f"--kubeconfig={workload.kubeconfig}")
    return run_helm(helm, home, action, release, *chart, *where, *values)


def may_impersonate(workload: Workload, account: str) -> bool:
    """Whether a token of the ServiceAccount ``account`` may act as the console's users: what `register_cluster
    --in-cluster` checks before it stores such a token."""
    core = client.CoreV1Api(workload.api)
    token = core.create_namespaced_service_account_token(account, NAMESPACE, {"spec": {"expirationSeconds": 600}})
    admin = workload.admin
    credentials = kube.Credentials(server=admin.server, ca_data=admin.ca_data, token=token.status.token)
    return rbac.can_impersonate(credentials)


def run_as_kubelet(core: client.CoreV1Api, pod: client.V1Pod, node: str, host: str, address: str) -> None:
    """Bind ``pod`` to ``node`` (at ``host``) and report it running on ``address`` with its readiness probe
    passing."""
    name = pod.metadata.name
    binding = {"metadata": {"name": name}, "target": {"kind": "Node", "name": node}}
    # The client cannot read the Status the API server answers a binding with; the answer is not needed.
    core.create_namespaced_pod_binding(name, NAMESPACE, binding, _preload_content=False)
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = {"phase": "Running", "hostIP": host, "podIP": address, "podIPs": [{"ip": address}], "startTime": started}
    core.patch_namespaced_pod_status(name, NAMESPACE, {"status": status})
    set_pod_ready(core.api_client, NAMESPACE, name, True)


def pods_of(core: client.CoreV1Api, release: str) -> list[client.V1Pod]:
    return core.list_namespaced_pod(NAMESPACE, label_selector=f"app.kubernetes.io/instance={release}").items


def is_ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or ())


def replica_sets(apps: client.AppsV1Api, release: str) -> dict[str, client.V1ReplicaSet]:
    """The Deployment's ReplicaSets by the image their pods run."""
    found = apps.list_namespaced_replica_set(NAMESPACE, label_selector=f"app.kubernetes.io/instance={release}").items
    return {rs.spec.template.spec.containers[0].image: rs for rs in found}


def ready_endpoints(discovery: client.DiscoveryV1Api, service: str) -> int:
    slices = discovery.list_namespaced_endpoint_slice(NAMESPACE, label_selector=f"kubernetes.io/service-name={service}")
    return sum(1 for s in slices.items for e in s.endpoints or () if e.conditions.ready)


@pytest.mark.cluster
def test_install_upgrade_and_reinstall_keep_the_keys_and_never_take_a_serving_replica(
    helm: Path, workload: Workload, tmp_path: Path
) -> None:
    core, apps = client.CoreV1Api(workload.api), client.AppsV1Api(workload.api)
    policy, discovery = client.PolicyV1Api(workload.api), client.DiscoveryV1Api(workload.api)
    restricted_namespace(core)
    release = "console"

    def helm_succeeds(action: str, *values: str) -> None:
        done = helm_release(helm, workload, tmp_path, action, release, *values)
        assert done.returncode == 0, done.stderr
        # helm prints the API server's warnings: the namespace warns about the restricted Pod Security profile.
        assert "Warning" not in done.stderr, done.stderr

    helm_succeeds("install", "--set", f"database.url={DATABASE_URL}", "--set", "image.tag=0.1.0")
    secret = core.read_namespaced_secret(f"{release}-secrets", NAMESPACE)
    assert secret.metadata.annotations["helm.sh/resource-policy"] == "keep"
    made = base64.b64decode(secret.data["CONSOLE_ENCRYPTION_KEYS"]).decode()
    Fernet(made)  # a valid Fernet key (raises otherwise)
    assert len(base64.b64decode(secret.data["CONSOLE_SECRET_KEY"])) == 50
    assert base64.b64decode(secret.data["DATABASE_URL"]).decode() == DATABASE_URL
    # The chart's RBAC, installed for real, gives the console's ServiceAccount what it needs.
    assert may_impersonate(workload, "console")
    # The operator rotates the encryption key in the Secret itself (docs/deploy.md): upgrades keep what it holds.
    rotated = f"{Fernet.generate_key().decode()},{made}"
    core.patch_namespaced_secret(f"{release}-secrets", NAMESPACE, {"stringData": {"CONSOLE_ENCRYPTION_KEYS": rotated}})
    keys = core.read_namespaced_secret(f"{release}-secrets", NAMESPACE).data

    # The two replicas run and serve.
    node_address = make_node(workload.api, "node-a")
    eventually(lambda: len(pods_of(core, release)) == 2, 30, interval=0.1)
    old_pods = pods_of(core, release)
    for index, pod in enumerate(old_pods):
        assert pod.spec.security_context.run_as_non_root, pod.metadata.name
        run_as_kubelet(core, pod, "node-a", node_address, f"10.244.9.{index + 10}")
    eventually(lambda: apps.read_namespaced_deployment(release, NAMESPACE).status.available_replicas == 2, 30, interval=0.1)  # fmt: skip
    eventually(lambda: ready_endpoints(discovery, release) == 2, 30, interval=0.1)

    # An upgrade: a new image, a third replica and a changed setting. The controller takes the new replica count as
    # a scaling of the running ReplicaSet first (its third pod), then starts the one new pod maxSurge allows, and
    # takes no old pod while no new one is ready (none ever is here: nothing runs them).
    helm_succeeds(
        "upgrade", "--set", f"database.url={DATABASE_URL}", "--set", "image.tag=0.2.0", "--set", "replicaCount=3",
        "--set-string", "config.CONSOLE_LOGIN_FAILURE_LIMIT=7",
    )  # fmt: skip

    def rolled_out_as_far_as_it_can() -> bool:
        deployment = apps.read_namespaced_deployment(release, NAMESPACE)
        return (
            deployment.status.observed_generation == deployment.metadata.generation
            and deployment.status.replicas == 3 + 1  # the replicas asked for and maxSurge
            and deployment.status.updated_replicas == 1
        )

    eventually(rolled_out_as_far_as_it_can, 30, interval=0.1)
    sets = replica_sets(apps, release)
    old, new = sets["kube-service-console:0.1.0"], sets["kube-service-console:0.2.0"]
    assert (old.spec.replicas, new.spec.replicas) == (3, 1)
    deployment = apps.read_namespaced_deployment(release, NAMESPACE)
    assert deployment.status.available_replicas == 2
    serving = {p.metadata.name for p in pods_of(core, release) if is_ready(p)}
    assert serving == {p.metadata.name for p in old_pods}  # the serving pods were never touched
    assert ready_endpoints(discovery, release) == 2

    # A drain may not take one of them either: 3 asked for, at most 1 unavailable, 2 healthy.
    def read_budget() -> client.V1PodDisruptionBudget:
        return policy.read_namespaced_pod_disruption_budget(release, NAMESPACE)

    eventually(lambda: read_budget().status.current_healthy == 2, 30, interval=0.1)
    budget = read_budget()
    assert (budget.spec.max_unavailable, budget.status.disruptions_allowed) == (1, 0)

    # The upgrade kept what the rollout and a drain rely on, and the keys.
    spec = deployment.spec
    assert (spec.strategy.rolling_update.max_surge, spec.strategy.rolling_update.max_unavailable) == (1, 0)
    pod = spec.template.spec
    web, recorder = pod.containers
    assert (web.name, recorder.name) == ("console", "recorder")
    assert web.lifecycle.pre_stop.sleep.seconds == 5 and pod.termination_grace_period_seconds == 30
    assert (web.startup_probe.http_get.path, web.liveness_probe.http_get.path, web.readiness_probe.http_get.path) == (
        "/healthz", "/healthz", "/readyz"
    )  # fmt: skip
    spread = [c.topology_key for c in pod.topology_spread_constraints]
    assert spread == ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
    assert [c.name for c in pod.init_containers] == ["migrate"]
    checksums = [rs.spec.template.metadata.annotations["checksum/config"] for rs in (old, new)]
    assert checksums[0] != checksums[1]  # the changed setting alone would have rolled the pods
    assert core.read_namespaced_config_map(f"{release}-config", NAMESPACE).data["CONSOLE_LOGIN_FAILURE_LIMIT"] == "7"
    assert core.read_namespaced_secret(f"{release}-secrets", NAMESPACE).data == keys

    # Uninstalled, the release leaves its keys; installed again, it finds and keeps them.
    helm_succeeds("uninstall")

    def deployment_gone() -> bool:
        try:
            apps.read_namespaced_deployment(release, NAMESPACE)
        except ApiException as error:
            return error.status == 404
        return False

    eventually(deployment_gone, 30, interval=0.1)
    assert core.read_namespaced_secret(f"{release}-secrets", NAMESPACE).data == keys
    helm_succeeds("install", "--set", f"database.url={DATABASE_URL}")
    assert core.read_namespaced_secret(f"{release}-secrets", NAMESPACE).data == keys
    helm_succeeds("uninstall")


@pytest.mark.cluster
def test_a_cluster_set_up_before_is_adopted_with_take_ownership(helm: Path, workload: Workload, tmp_path: Path) -> None:
    """`register_cluster --setup` made the console's ServiceAccount, ClusterRoles and bindings before the chart came:
    an install refuses to take them over unasked, and adopts them with --take-ownership (docs/deploy.md)."""
    restricted_namespace(client.CoreV1Api(workload.api))
    rbac.set_up(workload.admin)
    values = ("--set", f"database.url={DATABASE_URL}")
    refused = helm_release(helm, workload, tmp_path, "install", "adopted", *values)
    assert refused.returncode != 0
    assert "exists and cannot be imported into the current release" in refused.stderr, refused.stderr
    # The set-up wrote those objects' fields (the managed-by label among them) as another field manager.
    done = helm_release(
        helm, workload, tmp_path, "install", "adopted", *values, "--take-ownership", "--force-conflicts"
    )
    assert done.returncode == 0, done.stderr
    role = client.RbacAuthorizationV1Api(workload.api).read_cluster_role(rbac.role_name("ns-edit"))
    assert role.metadata.annotations["meta.helm.sh/release-name"] == "adopted"
    assert may_impersonate(workload, "console")
    assert helm_release(helm, workload, tmp_path, "uninstall", "adopted").returncode == 0
