"""Replicas: two containers of the console's image (``make image``; production settings, run as the manifests run
them) on one PostgreSQL, behind Debian's nginx (round robin, TLS, no sticky sessions), driven through nginx only by
a browser-like client that keeps its cookies.

They show what running N replicas relies on (docs/replicas.md): the session, a user's own writes and the login
throttle live in the shared database, so whichever replica answers, the user is signed in, sees what they just
wrote, and is locked out after failures spread over both; and the watches the console holds on the API server
follow the formula of ``bench/watches.py``, measured from the API server's own /metrics.

The tests of this module share one deployment (started once, about 20 s once the image is built) and run in file
order; the last one stops it. It brings its own PostgreSQL (a private cluster from Debian's binaries, run as the ``postgres`` user),
so it runs in the SQLite pass of CI with the other load tests.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from django.urls import reverse
from kubernetes import client as k8s

import kube
from bench import httpload, watches
from kube.informer import MAX_INFORMERS
from tests import replicas_helpers as rh
from tests.helpers import service_form
from tools import image as tools_image
from tools import localcluster

pytestmark = [pytest.mark.cluster, pytest.mark.load, pytest.mark.image]

REPLICAS = 2
WORKERS = 2  # per replica: the formula's "per worker" term is exercised too
NAMESPACES = 3  # the users browse this many namespaces on both replicas
FAILURE_LIMIT = 4

# Run by ``manage.py shell`` against the replicas' database: the session's control plane registered as "local"
# with the console's own credential (read from standard input), a superuser, users and their NS Edit grants, each
# waited for until the cluster's RBAC honours it. (No cluster-wide grant: its ClusterRoleBinding's name, made of the
# grant's id, could meet one left by a test of the pytest database on the same API server.)
SETUP = """
import json, sys, time
from django.contrib.auth import get_user_model
import kube
from clusters import rbac
from clusters.models import Cluster, Grant, Role
from kube.identity import clear_authorisations

setup = json.load(sys.stdin)
cluster = Cluster(name="local", display_name="Local", identity_mode=Cluster.IdentityMode.IMPERSONATE,
                  identity_reason=Cluster.IdentityReason.SET_UP)
cluster.set_credentials(kube.Credentials.from_dict(setup["credentials"]))
cluster.save()
get_user_model().objects.create_superuser("root", password=setup["root"])
for name, password, namespaces in setup["users"]:
    user = get_user_model().objects.create_user(name, password=password)
    for namespace in namespaces:
        grant = Grant.objects.create(user=user, cluster=cluster, role=Role.NS_EDIT, namespace=namespace)
        assert not getattr(grant, "rbac_problems", []), grant.rbac_problems
        who = kube.Actor(cluster, rbac.identity_for(user))
        deadline = time.monotonic() + 10
        while not kube.allowed(who, "list", "services", namespace):
            assert time.monotonic() < deadline, "the grant's binding never took effect"
            clear_authorisations()
            time.sleep(0.01)
print("set up")
"""


class Deployment:
    """Two replicas behind nginx on one PostgreSQL, as the module started them."""

    def __init__(self, nginx: rh.Nginx, replicas: list[rh.Replica], database: rh.Postgres) -> None:
        self.nginx, self.replicas, self.database = nginx, replicas, database

    def browser(self, user: str) -> rh.Browser:
        return rh.Browser(self.nginx.base, self.nginx.ca_file, user)

    def replica_named(self, upstream: str) -> str:
        return next(replica.name for replica in self.replicas if replica.address == upstream)

    @property
    def addresses(self) -> set[str]:
        return {replica.address for replica in self.replicas}


def _stop(nginx: rh.Nginx | None, replicas: list[rh.Replica]) -> None:
    """Stop nginx and the servers (``podman run`` passes the SIGTERM to gunicorn, and removes the container once it
    exited), and check that no process and no container of theirs is left (safe to call twice)."""
    processes = ([nginx.process] if nginx else []) + [replica.process for replica in replicas]
    children = [pid for process in processes if process.poll() is None for pid in httpload.children_of(process.pid)]
    for process in processes:
        rh.stop_group(process)
    for pid in [process.pid for process in processes] + children:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in _state(pid), f"process {pid} still runs"
    left = [replica.container for replica in replicas if replica.running()]
    for container in left:
        tools_image.podman("rm", "--force", "--time", "0", container, check=False)
    assert not left, f"containers left running: {left}"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return "zombie"


@pytest.fixture(scope="module")
def namespaces(admin_api: k8s.ApiClient) -> Iterator[list[str]]:
    core = k8s.CoreV1Api(admin_api)
    names = [f"rep-{uuid.uuid4().hex[:8]}-{i}" for i in range(NAMESPACES)]
    for name in names:
        core.create_namespace({"metadata": {"name": name}})
        # A Service in each: a list with rows reads the namespace's EndpointSlices too (an empty one may not yet),
        # so every worker that served a namespace holds both of its watches, as the formula counts.
        service = {"metadata": {"name": "existing"}, "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}}
        core.create_namespaced_service(name, service)
    yield names
    for name in names:
        core.delete_namespace(name)


@pytest.fixture(scope="module")
def users() -> dict[str, str]:
    return {name: secrets.token_urlsafe(12) for name in ("alice", "bob", "root")}


@pytest.fixture(scope="module")
def api_watches(control_plane: localcluster.ControlPlane, admin_credentials: kube.Credentials):
    """The API server's open watches now, read from its /metrics with the administrator's certificate."""

    def read() -> watches.Watches:
        cert, key = admin_credentials.client_cert, admin_credentials.client_key
        return watches.parse_watches(watches.read_metrics(control_plane.server, control_plane.ca_pem, cert, key))

    return read


@pytest.fixture(scope="module")
def baseline(api_watches) -> watches.Watches:
    """The open watches before the replicas browse anything: no namespaced one (informers of earlier tests of the
    session are stopped, and the API server ends their watches at once), and the same total twice in a row (the
    controller-manager's watches end and are opened again from time to time)."""
    readings = [api_watches()]

    def steady() -> bool:
        time.sleep(0.3)
        readings.append(api_watches())
        earlier, now = readings[-2:]
        return now.namespaced() == 0 and now.by_resource == earlier.by_resource

    rh.wait_until(steady, "a steady count of watches before the replicas", 15)
    return readings[-1]


@pytest.fixture(scope="module")
def deployment(
    console_credentials: kube.Credentials,
    namespaces: list[str],
    users: dict[str, str],
    baseline: watches.Watches,
    tmp_path_factory: pytest.TempPathFactory,
    image: dict,
) -> Iterator[Deployment]:
    folder = tmp_path_factory.mktemp("replicas")
    with rh.Postgres.running() as database:
        shared = {
            # Throwaway secrets, the same on every replica: sessions, CSRF tokens and stored credentials must be
            # readable by all of them.
            "CONSOLE_SECRET_KEY": secrets.token_urlsafe(50),
            "CONSOLE_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "CONSOLE_ALLOWED_HOSTS": "127.0.0.1",
            "CONSOLE_LOGIN_FAILURE_LIMIT": str(FAILURE_LIMIT),
        }
        # The test's data (cluster, users, grants) is written from the checkout, whose code is the image's.
        env = rh.console_environment(database.url, folder / "manage", **shared)
        rh.manage(env, "migrate", "--noinput")
        setup = {
            "credentials": console_credentials.to_dict(),
            "users": [["alice", users["alice"], namespaces], ["bob", users["bob"], namespaces[:1]]],
            "root": users["root"],
        }
        assert "set up" in rh.manage(env, "shell", "-c", SETUP, stdin=json.dumps(setup))

        replicas: list[rh.Replica] = []
        nginx = None
        try:
            for name in ("a", "b"):
                # Each replica its own /tmp: nothing is shared through the file system.
                own = rh.console_environment(database.url, Path("/tmp/console-data"), **shared)
                replicas.append(rh.start_replica(name, own, folder, image["image"], workers=WORKERS, threads=4))
            authority = localcluster.CertificateAuthority.create()
            cert, key = authority.issue("127.0.0.1", server=True)
            ca_pem = authority.cert.public_bytes(serialization.Encoding.PEM)
            nginx = rh.start_nginx(folder / "nginx", [r.address for r in replicas], ca_pem, cert, key)
            yield Deployment(nginx, replicas, database)
        finally:
            _stop(nginx, replicas)


@pytest.fixture(scope="module")
def alice(deployment: Deployment, users: dict[str, str]) -> rh.Browser:
    """alice (NS Edit in every namespace of the module), signed in once."""
    return _signed_in(deployment, "alice", users)


@pytest.fixture(scope="module")
def root(deployment: Deployment, users: dict[str, str]) -> rh.Browser:
    """A superuser (Cluster Admin everywhere: the namespace picker lists the cluster's namespaces), signed in."""
    return _signed_in(deployment, "root", users)


def _signed_in(deployment: Deployment, user: str, users: dict[str, str]) -> rh.Browser:
    browser = deployment.browser(user)
    signed_in = browser.log_in(user, users[user])
    assert signed_in.status_code == 302, signed_in.text[:500]
    return browser


def _list_path(namespace: str) -> str:
    return reverse("services:list", args=["local", namespace])


def _get_until_served_by_both(browser: rh.Browser, path: str, **headers: str) -> dict[str, str]:
    """GET ``path`` until both replicas have answered it (round robin: two requests); their HTML by upstream."""
    pages: dict[str, str] = {}
    for _ in range(6):
        response = browser.get(path, **headers)
        assert response.status_code in (200, 204), (path, response.status_code, response.text[:300])
        pages.setdefault(response.headers["X-Upstream"], response.text)
        if len(pages) == REPLICAS:
            return pages
    raise AssertionError(f"{path} was not served by both replicas: {browser.served_by[-6:]}")


def _browse_everywhere(browser: rh.Browser, namespaces: list[str]) -> None:
    """Every namespace's list, and its live poll, on both replicas."""
    for namespace in namespaces:
        pages = _get_until_served_by_both(browser, _list_path(namespace))
        for html in pages.values():
            assert f"/namespaces/{namespace}/services/" in html
        _get_until_served_by_both(browser, rh.live_url(next(iter(pages.values()))), HX_Request="true")


def _served_by_worker(
    deployment: Deployment, namespaces: list[str]
) -> dict[tuple[str, int], tuple[set[str], set[str]]]:
    """For each gunicorn worker (its access log): the namespaces it served a list page or a live poll of, and the
    users it served a whole list page (with the namespace picker) to."""
    lists = {_list_path(n): n for n in namespaces}
    polls = {reverse("services:list_live", args=["local", n]): n for n in namespaces}
    # A worker is its replica and its pid there (each container numbers its processes from 1).
    served: dict[tuple[str, int], tuple[set[str], set[str]]] = {}
    for replica in deployment.replicas:
        for pid in replica.workers():
            served.setdefault((replica.name, pid), (set(), set()))  # every worker, even one that served none
        for pid, method, path, _status, user in replica.served():
            if method == "GET" and path in lists | polls:
                names, users = served.setdefault((replica.name, pid), (set(), set()))
                names.add((lists | polls)[path])
                if path in lists:
                    users.add(user)
    return served


def test_one_sign_in_works_on_every_replica(deployment: Deployment, alice: rh.Browser) -> None:
    for _ in range(6):
        page = alice.get(reverse("clusters:cluster_list"))
        assert page.status_code == 200 and "alice" in page.text, page.status_code
    assert set(alice.upstreams()) == deployment.addresses, alice.served_by


def test_a_write_on_one_replica_is_in_the_next_list_served_by_the_other(
    deployment: Deployment, alice: rh.Browser, namespaces: list[str], admin_api: k8s.ApiClient
) -> None:
    namespace = namespaces[0]
    _get_until_served_by_both(alice, _list_path(namespace))  # both replicas follow the namespace already
    form = reverse("services:create", args=["local", namespace])
    assert alice.get(form).status_code == 200
    created = alice.post(form, service_form("across-replicas"))
    assert created.status_code == 302, created.text[:1000]
    assert created.headers["Location"] == _list_path(namespace)
    writer = created.headers["X-Upstream"]

    listed = alice.get(created.headers["Location"])

    reader = listed.headers["X-Upstream"]
    assert reader != writer, "nginx sent the next request to the same replica (round robin expected)"
    assert listed.status_code == 200
    assert ">across-replicas</a>" in listed.text, f"replica {deployment.replica_named(reader)} missed the write"
    assert k8s.CoreV1Api(admin_api).read_namespaced_service("across-replicas", namespace).metadata.uid


def test_the_watches_held_follow_the_formula(
    deployment: Deployment,
    alice: rh.Browser,
    root: rh.Browser,
    namespaces: list[str],
    api_watches,
    baseline: watches.Watches,
    control_plane: localcluster.ControlPlane,
    admin_credentials: kube.Credentials,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _browse_everywhere(alice, namespaces)
    _browse_everywhere(root, namespaces)
    served = _served_by_worker(deployment, namespaces)
    assert len(served) == REPLICAS * WORKERS, served
    # Per worker: 2 watches per namespace it served (Services, EndpointSlices), whoever asked (the informers are
    # shared), and the cluster's namespaces once it drew the picker of a cluster-wide user (a list page).
    namespaced = sum(len(watches.NAMESPACED_KINDS) * len(names) for names, _users in served.values())
    exact = sum(
        min(MAX_INFORMERS, len(watches.NAMESPACED_KINDS) * len(names) + ("root" in users))
        for names, users in served.values()
    )
    ceiling = sum(
        min(MAX_INFORMERS, len(watches.NAMESPACED_KINDS) * len(names) + len(watches.CLUSTER_KINDS))
        for names, _users in served.values()
    )
    # The informers open their watches in their own threads, just after their first list.
    deadline = time.monotonic() + 20
    while (held := api_watches()).since(baseline) != exact and time.monotonic() < deadline:
        time.sleep(0.2)
    changed = {key: n for key, n in held.by_resource.items() if n != baseline.by_resource.get(key, 0)}
    assert held.namespaced() == namespaced, (held.namespaced(), namespaced, served, changed)

    figures = watches.measure(
        control_plane.server,
        control_plane.ca_pem,
        admin_credentials.client_cert,
        admin_credentials.client_key,
        baseline=baseline,
        replicas=REPLICAS,
        workers=WORKERS,
        namespaces=NAMESPACES,
    )

    assert figures.namespaced == namespaced, (figures, changed)
    assert figures.measured == exact, (figures, exact, served, changed)
    assert exact <= ceiling <= figures.formula, (exact, ceiling, figures)
    with capsys.disabled():  # the figures belong in CI's log
        print(
            f"\nreplicas: {REPLICAS} x {WORKERS} workers behind nginx, {len(alice.served_by)} requests of one "
            f"session ({len(set(alice.upstreams()))} replicas); watches held {figures.measured} (namespaced "
            f"{figures.namespaced}; namespaces per worker {sorted(len(n) for n, _u in served.values())}), "
            f"formula for what they served {exact}, bound {ceiling}, formula {figures.formula} for {NAMESPACES} "
            "namespaces"
        )


def test_login_failures_spread_over_both_replicas_lock_the_username_out_on_both(
    deployment: Deployment, users: dict[str, str]
) -> None:
    bob = deployment.browser("bob")
    bob.get("/login/")
    failures = [bob.post("/login/", {"username": "bob", "password": "wrong"}) for _ in range(FAILURE_LIMIT)]
    # The failure that reaches the limit is answered with the lock-out already.
    assert [f.status_code for f in failures] == [200] * (FAILURE_LIMIT - 1) + [429]
    assert {f.headers["X-Upstream"] for f in failures} == deployment.addresses, bob.served_by

    refused: dict[str, int] = {}
    for _ in range(6):
        attempt = bob.post("/login/", {"username": "bob", "password": users["bob"]})
        assert attempt.status_code == 429, (attempt.status_code, attempt.text[:500])
        refused[attempt.headers["X-Upstream"]] = attempt.status_code
        if len(refused) == REPLICAS:
            break
    assert set(refused) == deployment.addresses, refused
    assert bob.get(reverse("clusters:cluster_list")).status_code == 302  # to the login page: never signed in


def test_stopped_replicas_leave_no_process_and_no_watch(deployment: Deployment, api_watches) -> None:
    _stop(deployment.nginx, deployment.replicas)
    rh.wait_until(lambda: api_watches().namespaced() == 0, "the replicas' watches ending with them", 15)
