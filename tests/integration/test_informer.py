"""The Services list answered from an informer (list + watch) against the real API server: what it serves, how
it follows changes, how a user's own writes are always in it, and how it steps aside when it cannot vouch for
its contents."""

from __future__ import annotations

import time

import pytest
from django.test import Client
from kubernetes import client as k8s

import kube
from clusters.models import Cluster, Role
from kube import informer as informer_module
from kube.informer import informers
from services import api, listing
from tests.helpers import HTMX, eventually, service_form, services_path

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]


@pytest.fixture
def web(client: Client, make_user, cluster: Cluster, namespace: str) -> Client:
    client.force_login(make_user("editor", role=Role.NS_EDIT, cluster=cluster, namespace=namespace))
    return client


@pytest.fixture
def live_lists(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The namespaces the list page read live from the API server, in order."""
    calls: list[str] = []
    real = api.list_services

    def counting(cluster, namespace, **kwargs):
        calls.append(namespace)
        return real(cluster, namespace, **kwargs)

    monkeypatch.setattr(api, "list_services", counting)
    return calls


@pytest.fixture
def api_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the Kubernetes API methods called through ``kube.call``, in order."""
    calls: list[str] = []
    real = kube.call

    def recording(function, *args, **kwargs):
        calls.append(function.__name__)
        return real(function, *args, **kwargs)

    monkeypatch.setattr(kube, "call", recording)
    monkeypatch.setattr(api, "_call", recording)
    return calls


def create(admin_api: k8s.ApiClient, namespace: str, name: str, **spec: object) -> k8s.V1Service:
    body = {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}], **spec}}
    return k8s.CoreV1Api(admin_api).create_namespaced_service(namespace, body)


def informer_of(cluster: Cluster, namespace: str) -> informer_module.Informer:
    informer = informers.get(cluster, api.SERVICES, namespace)
    assert informer is not None
    return informer


def names(informer: informer_module.Informer) -> list[str] | None:
    snapshot = informer.snapshot()
    return None if snapshot is None else [s["metadata"]["name"] for s in snapshot]


def test_the_first_view_is_live_and_later_ones_come_from_the_informer(
    web: Client, cluster: Cluster, admin_api: k8s.ApiClient, namespace: str, live_lists: list[str]
) -> None:
    for index in range(25):
        create(admin_api, namespace, f"svc-{index:02d}", type="NodePort" if index % 5 == 0 else "ClusterIP")
    first = web.get(services_path(namespace))
    # The first view starts the informer (its live-update check asks for it); it is answered live unless the
    # informer has listed already by the time the rows are read.
    first_lists = list(live_lists)
    assert first_lists in ([], [namespace]) and len(first.context["rows"]) == 20
    eventually(lambda: informer_of(cluster, namespace).synced)

    again = web.get(services_path(namespace))
    assert live_lists == first_lists, "answered from the informer, without a list call"
    assert [r["name"] for r in again.context["rows"]] == [f"svc-{i:02d}" for i in range(20)]
    assert again.context["has_next"] and not again.context["next_token"]
    page_two = web.get(services_path(namespace), {"page": 2})
    assert [r["name"] for r in page_two.context["rows"]] == [f"svc-{i:02d}" for i in range(20, 25)]
    assert not page_two.context["has_next"] and page_two.context["continued"]
    filtered = web.get(services_path(namespace), {"q": "svc-1", "type": "NodePort"})
    assert [r["name"] for r in filtered.context["rows"]] == ["svc-10", "svc-15"]
    assert live_lists == first_lists
    # The rows are the same as the API server's, field for field.
    live = k8s.CoreV1Api(admin_api).read_namespaced_service("svc-05", namespace)
    row = next(r for r in again.context["rows"] if r["name"] == "svc-05")
    assert row["uid"] == live.metadata.uid and row["type"] == "NodePort"
    assert row["ports"] == [f"80:{live.spec.ports[0].node_port}/TCP"]


def test_changes_made_elsewhere_reach_the_informer(cluster: Cluster, admin_api: k8s.ApiClient, namespace: str) -> None:
    core = k8s.CoreV1Api(admin_api)
    create(admin_api, namespace, "before")
    informer = informer_of(cluster, namespace)
    eventually(lambda: names(informer) == ["before"])

    create(admin_api, namespace, "after")
    delays = [eventually(lambda: names(informer) == ["after", "before"])]
    core.patch_namespaced_service("after", namespace, {"spec": {"type": "NodePort"}})
    delays.append(eventually(lambda: informer.snapshot()[0]["spec"]["type"] == "NodePort"))
    core.delete_namespaced_service("before", namespace)
    delays.append(eventually(lambda: names(informer) == ["after"]))
    assert max(delays) < 5
    # What a row needs is kept; the bulky metadata is not.
    kept = informer.snapshot()[0]
    assert set(kept["metadata"]) == {"name", "namespace", "uid", "resourceVersion", "creationTimestamp"}


def test_a_users_own_writes_are_in_the_next_list_even_before_the_watch_delivers_them(
    web: Client, cluster: Cluster, admin_api: k8s.ApiClient, namespace: str, live_lists: list[str]
) -> None:
    created = create(admin_api, namespace, "old")
    web.get(services_path(namespace))
    informer = informer_of(cluster, namespace)
    eventually(lambda: informer.synced)
    live_lists.clear()

    saved = web.post(services_path(namespace, "create/"), service_form("fresh"), **HTMX)
    assert saved.status_code == 200 and saved["HX-Redirect"]
    written = web.session[listing.WRITES_KEY][f"{cluster.pk}/{namespace}"]
    resource_version = k8s.CoreV1Api(admin_api).read_namespaced_service("fresh", namespace).metadata.resource_version
    assert written[0] == int(resource_version)
    assert [r["name"] for r in web.get(services_path(namespace)).context["rows"]] == ["fresh", "old"]

    deleted = web.post(services_path(namespace, "old/delete/"), {"uid": created.metadata.uid}, **HTMX)
    assert deleted.status_code == 200
    assert web.session[listing.WRITES_KEY][f"{cluster.pk}/{namespace}"][1] == [created.metadata.uid]
    assert [r["name"] for r in web.get(services_path(namespace)).context["rows"]] == ["fresh"]
    assert live_lists == [], "both answered by the informer once it had the writes"


def test_the_informer_steps_aside_when_it_has_not_seen_the_users_write(
    web: Client,
    cluster: Cluster,
    admin_api: k8s.ApiClient,
    namespace: str,
    live_lists: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    create(admin_api, namespace, "shown")
    web.get(services_path(namespace))
    informer = informer_of(cluster, namespace)
    eventually(lambda: informer.synced)
    current = int(informer.snapshot()[0]["metadata"]["resourceVersion"])
    assert informer.snapshot(at_least=current + 10**9, wait=0.05) is None
    assert informer.snapshot(without=(informer.snapshot()[0]["metadata"]["uid"],), wait=0.05) is None

    # A write the watch cannot have delivered (as if another worker had made it just now): the page waits a
    # moment, then asks the API server rather than show a list without it.
    monkeypatch.setattr(listing, "WRITE_WAIT_SECONDS", 0.1)
    session = web.session
    session[listing.WRITES_KEY] = {f"{cluster.pk}/{namespace}": (current + 10**9, [], time.time())}
    session.save()
    live_lists.clear()
    page = web.get(services_path(namespace))
    assert live_lists == [namespace] and [r["name"] for r in page.context["rows"]] == ["shown"]
    # Remembered writes expire: after that the informer answers again.
    session[listing.WRITES_KEY] = {f"{cluster.pk}/{namespace}": (current + 10**9, [], time.time() - 3600)}
    session.save()
    live_lists.clear()
    web.get(services_path(namespace))
    assert live_lists == []


def test_a_stopped_or_broken_watch_means_live_lists(
    web: Client, cluster: Cluster, admin_api: k8s.ApiClient, namespace: str, live_lists: list[str]
) -> None:
    create(admin_api, namespace, "svc")
    informer = informer_of(cluster, namespace)
    eventually(lambda: informer.synced)
    informer.stop()
    informer.join(5)
    assert informer.snapshot() is None and not informer.running
    # An informer that ended without failing (stopped, or idle) is replaced on the next view, which answers live
    # unless the replacement (started by the view's live-update version check) has already listed.
    page = web.get(services_path(namespace))
    assert live_lists in ([], [namespace]) and [r["name"] for r in page.context["rows"]] == ["svc"]
    replacement = informer_of(cluster, namespace)
    assert replacement is not informer
    eventually(lambda: replacement.synced)


def test_credentials_that_may_list_but_not_watch_keep_the_page_working(
    client: Client,
    make_user,
    admin_api: k8s.ApiClient,
    limited_cluster,
    namespace: str,
    live_lists: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An API server refusing the watch (RBAC without the ``watch`` verb): the informer gives up after its
    retries, rests, and the page keeps listing live."""
    monkeypatch.setattr(informer_module, "RETRY_DELAYS", (0.01,))
    limited = limited_cluster("limited", [{"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list"]}])
    client.force_login(make_user("viewer", role=Role.NS_VIEW, cluster=limited, namespace=namespace))
    create(admin_api, namespace, "visible")

    listing = f"/clusters/limited/namespaces/{namespace}/services/"
    assert [r["name"] for r in client.get(listing).context["rows"]] == ["visible"]
    # The first view started the informer; the API server refuses its watch, so it gives up and rests.
    eventually(lambda: informers.get(limited, api.SERVICES, namespace) is None)
    for _ in range(2):
        assert [r["name"] for r in client.get(listing).context["rows"]] == ["visible"]
    assert live_lists == [namespace] * 3


def test_informers_are_bounded_and_follow_the_credentials(
    cluster: Cluster, admin_api: k8s.ApiClient, admin_credentials: kube.Credentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(informer_module, "MAX_INFORMERS", 2)
    first, second, third = (informer_of(cluster, name) for name in ("default", "kube-system", "kube-public"))
    eventually(lambda: not first.running)  # the least recently used one made room
    assert second.running and third.running
    cluster.set_credentials(admin_credentials)  # new credentials version
    cluster.save()
    renewed = informer_of(cluster, "default")
    eventually(lambda: not second.running and not third.running)
    assert renewed.running and renewed is not first


def test_the_namespace_picker_of_a_cluster_wide_user_comes_from_an_informer_too(
    client: Client,
    make_user,
    cluster: Cluster,
    admin_api: k8s.ApiClient,
    namespace: str,
    api_calls: list[str],
) -> None:
    client.force_login(make_user("admin", role=Role.CLUSTER_ADMIN, cluster=cluster))
    first = client.get(services_path(namespace))
    assert namespace in first.context["namespaces"] and "default" in first.context["namespaces"]
    informer = informers.get(cluster, kube.NAMESPACES)
    assert informer is not None
    eventually(lambda: informer.synced)

    api_calls.clear()
    again = client.get(services_path(namespace))
    # Earlier tests' namespaces may finish deleting meanwhile (the controller-manager's namespace controller).
    assert namespace in again.context["namespaces"] and "list_namespace" not in api_calls
    assert set(again.context["namespaces"]) <= set(first.context["namespaces"])
    k8s.CoreV1Api(admin_api).create_namespace({"metadata": {"name": f"{namespace}-later"}})
    eventually(lambda: f"{namespace}-later" in client.get(services_path(namespace)).context["namespaces"])
    assert "list_namespace" not in api_calls


def test_node_addresses_of_nodeport_rows_come_from_a_node_informer(
    web: Client, cluster: Cluster, admin_api: k8s.ApiClient, namespace: str, api_calls: list[str]
) -> None:
    core = k8s.CoreV1Api(admin_api)
    node_name = f"node-{namespace}"
    core.create_node({"metadata": {"name": node_name}, "status": {}})

    def set_address(address: str) -> None:
        node = core.read_node(node_name)
        node.status.addresses = [{"type": "ExternalIP", "address": address}]
        core.replace_node_status(node_name, node)

    set_address("203.0.113.7")
    service = create(admin_api, namespace, "exposed", type="NodePort")
    node_port = service.spec.ports[0].node_port
    assert f"203.0.113.7:{node_port}" in web.get(services_path(namespace)).content.decode()
    nodes = informers.get(cluster, api.NODES)
    assert nodes is not None
    eventually(lambda: nodes.synced)

    api_calls.clear()
    assert f"203.0.113.7:{node_port}" in web.get(services_path(namespace)).content.decode()
    assert "list_node" not in api_calls
    set_address("203.0.113.8")
    eventually(lambda: f"203.0.113.8:{node_port}" in web.get(services_path(namespace)).content.decode())
    assert "list_node" not in api_calls
    core.delete_node(node_name)


def test_the_watch_is_renewed_from_its_resource_version_without_a_new_list(
    cluster: Cluster, admin_api: k8s.ApiClient, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API server ends every watch after WATCH_SECONDS; the informer goes on from where it was, so nothing
    is missed in between and the namespace is not listed again."""
    monkeypatch.setattr(informer_module, "WATCH_SECONDS", 1)
    informer = informer_of(cluster, namespace)
    eventually(lambda: informer.synced)
    time.sleep(2.5)  # two renewals
    create(admin_api, namespace, "after-renewals")
    eventually(lambda: names(informer) == ["after-renewals"])
    assert informer.synced and informer.lists == 1 and informer.watches >= 3


def test_a_cluster_wide_informer_keeps_equal_names_from_different_namespaces(
    cluster: Cluster, admin_api: k8s.ApiClient, namespace: str
) -> None:
    core = k8s.CoreV1Api(admin_api)
    other = f"{namespace}-b"
    core.create_namespace({"metadata": {"name": other}})
    first = create(admin_api, namespace, "same", type="NodePort")
    informer = informers.get(cluster, api.SERVICES_EVERYWHERE)
    assert informer is not None
    eventually(lambda: informer.snapshot() is not None)
    second = create(admin_api, other, "same", type="NodePort")
    ports = {first.spec.ports[0].node_port: namespace, second.spec.ports[0].node_port: other}

    def holders() -> dict[int, str]:
        return {
            port: where for port, (where, _name) in api.node_ports_in_use(kube.Actor(cluster)).items() if port in ports
        }

    eventually(lambda: holders() == ports)  # both, not the second in place of the first
    core.delete_namespaced_service("same", other)
    eventually(lambda: holders() == {first.spec.ports[0].node_port: namespace})


def test_the_version_a_live_page_compares_depends_on_the_objects_only(
    cluster: Cluster, admin_api: k8s.ApiClient, namespace: str
) -> None:
    """Two worker processes each hold an informer of the namespace, listed at different moments: a page drawn by
    one and polled on the other must be told "unchanged" while nothing in the namespace changed, whatever was
    written elsewhere in the cluster meanwhile; and every change in the namespace moves the version."""
    create(admin_api, namespace, "a")
    create(admin_api, namespace, "b")
    first = informer_of(cluster, namespace)
    eventually(lambda: first.synced)
    k8s.CoreV1Api(admin_api).create_namespaced_config_map(namespace, {"metadata": {"name": "elsewhere"}})
    second = informer_module.Informer(
        kube.watch_client_for(cluster, kube.cache_identity()), namespace, api.SERVICES.lister, api.SERVICES.slim
    )
    try:
        eventually(lambda: second.synced)
        assert first.version == second.version
        seen = {first.version}
        for change in (
            lambda: create(admin_api, namespace, "c"),
            lambda: k8s.CoreV1Api(admin_api).patch_namespaced_service(
                "a", namespace, {"metadata": {"labels": {"x": "y"}}}
            ),
            lambda: k8s.CoreV1Api(admin_api).delete_namespaced_service("b", namespace),
        ):
            change()
            eventually(lambda: first.version not in seen and second.version == first.version)
            seen.add(first.version)
    finally:
        second.stop()
