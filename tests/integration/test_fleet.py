"""All my Services: one list across clusters and namespaces, against two real control planes (and a third address
that is down, and a fourth that accepts connections and never answers)."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from kubernetes import client as k8s

import kube
from clusters import rbac
from clusters.models import Cluster, Grant, Role
from kube.identity import clear_authorisations
from tests.helpers import eventually, run_pod

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]

FLEET = "/services/"


def make_service(api: k8s.ApiClient, namespace: str, name: str, **spec) -> dict:
    body = {
        "metadata": {"name": name},
        "spec": {"ports": [{"port": 80, "targetPort": 8080}], "selector": {"app": name}} | spec,
    }
    return k8s.CoreV1Api(api).create_namespaced_service(namespace, body).to_dict()


def names_in(html: str) -> list[tuple[str, str, str]]:
    """(cluster, namespace, name) of each Service row, in order."""
    rows = re.findall(
        r'<tr><td data-label="[^"]*"><a href="/clusters/([^/]+)/">[^<]*</a></td>'
        r'<td data-label="[^"]*"><a href="[^"]*">([^<]+)</a></td><td class="row-name"><a href="[^"]*">([^<]+)</a>',
        html,
    )
    return [tuple(row) for row in rows]


def error_rows(html: str) -> dict[str, str]:
    return dict(re.findall(r'<tr class="row-error" data-cluster="([^"]+)">.*?role="alert">(.*?)</td>', html, re.S))


@pytest.fixture
def two_clusters(admin_api, second_admin_api, cluster, second_cluster, namespace, second_namespace, make_user):
    """Services in both clusters; a user who is Cluster View on "local" and NS Edit on the test's namespace of
    "remote" (and nothing on the other namespace there, which also holds a Service)."""
    make_service(admin_api, namespace, "web", type="NodePort")
    make_service(admin_api, namespace, "db", ports=[{"port": 5432}], selector=None)
    make_service(second_admin_api, namespace, "web")
    hidden = f"{namespace}-hidden"
    k8s.CoreV1Api(second_admin_api).create_namespace({"metadata": {"name": hidden}})
    make_service(second_admin_api, hidden, "secret-thing")
    user = make_user("fleet-user", role=Role.CLUSTER_VIEW, cluster=cluster)
    Grant.objects.create(user=user, cluster=second_cluster, role=Role.NS_EDIT, namespace=namespace)
    # The binding the grant made in "remote" takes effect in its RBAC authorizer a few milliseconds later.
    who = kube.Actor(second_cluster, rbac.identity_for(user))

    def bound() -> bool:
        clear_authorisations()
        return kube.allowed(who, "list", "services", namespace)

    eventually(bound)
    yield user, hidden
    k8s.CoreV1Api(second_admin_api).delete_namespace(hidden)


def test_every_cluster_and_namespace_the_user_may_view_and_nothing_else(client: Client, two_clusters, namespace):
    user, hidden = two_clusters
    client.force_login(user)
    html = client.get(FLEET).content.decode()
    mine = [row for row in names_in(html) if row[1] in (namespace, hidden)]
    assert mine == [("local", namespace, "db"), ("local", namespace, "web"), ("remote", namespace, "web")]
    # The namespace they hold no grant on is neither listed nor offered as a filter.
    assert hidden not in html and "secret-thing" not in html
    assert not error_rows(html)
    # Rows link to each Service's page in its own cluster; only the editable namespace has the row menu.
    assert f'href="/clusters/remote/namespaces/{namespace}/services/web/"' in html
    assert f'data-delete-url="/clusters/remote/namespaces/{namespace}/services/web/delete/"' in html
    assert f'data-delete-url="/clusters/local/namespaces/{namespace}/services/web/delete/"' not in html


def test_filters_by_cluster_namespace_type_and_health(client: Client, two_clusters, namespace, admin_api):
    user, _hidden = two_clusters
    client.force_login(user)

    def rows(**query) -> list[tuple[str, str, str]]:
        html = client.get(FLEET, query).content.decode()
        return [row for row in names_in(html) if row[1] == namespace]

    assert rows(cluster="remote") == [("remote", namespace, "web")]
    assert rows(cluster="local", type="NodePort") == [("local", namespace, "web")]
    assert rows(namespace=namespace, type="ClusterIP") == [("local", namespace, "db"), ("remote", namespace, "web")]
    # "db" has no selector and no EndpointSlice: not applicable. "web" in local selects nothing yet, then one
    # Ready pod: the cluster-wide EndpointSlice informer follows the controller.
    assert ("local", namespace, "db") in eventually_rows(lambda: rows(health="none"), ("local", namespace, "db"))
    run_pod(admin_api, namespace, "web-1", {"app": "web"})
    assert eventually_rows(lambda: rows(health="ok", cluster="local"), ("local", namespace, "web"))
    assert ("local", namespace, "web") not in rows(health="bad")
    # A choice that is not one of the filter's values is ignored, not refused.
    assert client.get(FLEET, {"cluster": "nowhere", "type": "Bogus", "health": "x"}).status_code == 200


def eventually_rows(fetch, wanted) -> list:
    found: list = []

    def seen() -> bool:
        found[:] = fetch()
        return wanted in found

    eventually(seen, 20, interval=0.2)
    return found


def test_search_by_name_address_port_and_node_port(client: Client, two_clusters, namespace, admin_api):
    user, _hidden = two_clusters
    client.force_login(user)
    web = k8s.CoreV1Api(admin_api).read_namespaced_service("web", namespace)
    cluster_ip, node_port = web.spec.cluster_ip, web.spec.ports[0].node_port

    def found(query: str) -> set[tuple[str, str, str]]:
        html = client.get(FLEET, {"q": query}).content.decode()
        return {row for row in names_in(html) if row[1] == namespace}

    assert found("we") == {("local", namespace, "web"), ("remote", namespace, "web")}
    assert found(cluster_ip) == {("local", namespace, "web")}
    assert ("local", namespace, "web") in found(cluster_ip.rsplit(".", 1)[0] + ".")
    assert found(str(node_port)) == {("local", namespace, "web")}
    assert found("5432") == {("local", namespace, "db")}
    assert found("8080") >= {("local", namespace, "web"), ("remote", namespace, "web")}


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers (a cluster that hangs)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()[1]
    listener.close()


def _closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def test_a_cluster_that_is_down_or_hangs_is_an_error_row_and_never_holds_the_page(
    client: Client, two_clusters, namespace, silent_server, settings, control_plane
):
    settings.FLEET_DEADLINE = 1.0
    user, _hidden = two_clusters
    for name, port in (("down", _closed_port()), ("hangs", silent_server)):
        broken = Cluster(name=name)
        broken.set_credentials(kube.Credentials(f"https://127.0.0.1:{port}", control_plane.ca_pem, token="x" * 20))
        broken.save()
        Grant.objects.create(user=user, cluster=broken, role=Role.CLUSTER_VIEW)
    client.force_login(user)
    started = time.monotonic()
    html = client.get(FLEET).content.decode()
    took = time.monotonic() - started
    assert took < 1.0 + 0.5, took
    errors = error_rows(html)
    assert set(errors) == {"down", "hangs"}
    assert "did not answer within 1.0 s" in errors["hangs"]
    assert "cannot be reached" in errors["down"]
    assert {("local", namespace, "web"), ("remote", namespace, "web")} <= set(names_in(html))
    # The token of a broken cluster is never shown.
    assert "x" * 20 not in html
    # Filtered to a healthy cluster, the broken ones are not asked.
    html = client.get(FLEET, {"cluster": "remote"}).content.decode()
    assert not error_rows(html) and names_in(html) == [("remote", namespace, "web")]


def test_a_user_without_grants_sees_nothing_and_the_page_in_chinese(client: Client, two_clusters, make_user):
    stranger = make_user("nobody")
    client.force_login(stranger)
    html = client.get(FLEET).content.decode()
    assert not names_in(html) and not error_rows(html)
    assert "You hold no role on any cluster yet." in html
    user, _hidden = two_clusters
    client.force_login(user)
    html = client.get(FLEET, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "我的全部服务" in html and names_in(html)


def test_htmx_gets_the_table_alone(client: Client, two_clusters):
    user, _hidden = two_clusters
    client.force_login(user)
    partial = client.get(FLEET, {"type": "NodePort"}, HTTP_HX_REQUEST="true").content.decode()
    assert partial.lstrip().startswith('<div id="fleet-table">') and "<html" not in partial


def test_anonymous_users_are_sent_to_log_in(client: Client):
    response = client.get(FLEET)
    assert response.status_code == 302 and "/login/" in response["Location"]


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    query=st.dictionaries(
        st.sampled_from(["cluster", "namespace", "type", "health", "q", "page", "x"]),
        st.text(max_size=300),
        max_size=6,
    )
)
def test_any_query_gets_the_page(client: Client, cluster, make_user, query):
    someone = get_user_model().objects.filter(username="fuzz").first()
    client.force_login(someone or make_user("fuzz", role=Role.CLUSTER_VIEW, cluster=cluster))
    response = client.get(FLEET, query)
    assert response.status_code == 200, response.content[:500]


def test_a_cold_first_page_asks_for_its_rows_only_and_later_pages_are_whole(
    client: Client, cluster, admin_api, namespace, make_user
):
    from kube.informer import informers
    from services import api, fleet

    core = k8s.CoreV1Api(admin_api)
    for index in range(fleet.PAGE_SIZE + 10):
        core.create_namespaced_service(
            namespace, {"metadata": {"name": f"s-{index:03d}"}, "spec": {"ports": [{"port": 80}]}}
        )
    client.force_login(make_user("admin", role=Role.CLUSTER_ADMIN, cluster=cluster))

    # Pages are cut by position across every namespace: the Services of an earlier test's namespace still being
    # emptied by the namespace controller would move the cut between the two requests. Start once none is left.
    def settled() -> bool:
        going = {n.metadata.name for n in core.list_namespace().items if n.status.phase == "Terminating"}
        return not [s for s in core.list_service_for_all_namespaces().items if s.metadata.namespace in going]

    eventually(settled, 60, interval=0.2)
    informers.clear()
    first = client.get(FLEET, {"cluster": "local"}).content.decode()
    rows = names_in(first)
    # Before the cluster-wide informer has listed, the first page is the API server's first page: the default
    # namespace's "kubernetes" and the test namespace's first Services, in order, and a next page.
    assert len(rows) == fleet.PAGE_SIZE and rows == sorted(rows, key=lambda row: (row[1], row[2]))
    assert "still being read in full" in first and "Next page" in first
    everything = list(rows)
    second = client.get(FLEET, {"cluster": "local", "page": 2}).content.decode()
    everything += names_in(second)
    mine = [name for _cluster, ns, name in everything if ns == namespace]
    assert mine == [f"s-{index:03d}" for index in range(fleet.PAGE_SIZE + 10)]
    # Once the informer has listed, the first page says how many there are.
    informer = informers.get(cluster, api.SERVICES_EVERYWHERE)
    eventually(lambda: informer.synced)
    whole = client.get(FLEET, {"cluster": "local"}).content.decode()
    assert names_in(whole) == rows and "still being read" not in whole


def test_a_defect_reading_one_cluster_is_its_error_row_and_the_others_are_shown(
    client: Client, two_clusters, namespace, monkeypatch
):
    from services import api

    real = api.services_everywhere

    def broken(actor, **kwargs):
        if actor.cluster.name == "local":
            raise RuntimeError("a bug")
        return real(actor, **kwargs)

    monkeypatch.setattr(api, "services_everywhere", broken)
    user, _hidden = two_clusters
    client.force_login(user)
    html = client.get(FLEET).content.decode()
    errors = error_rows(html)
    assert set(errors) == {"local"} and "could not read this cluster" in errors["local"]
    assert ("remote", namespace, "web") in names_in(html)


def health_cell(html: str, namespace: str, name: str) -> str:
    """The text of a row's health cell ("1/1", "unknown", ...)."""
    row = re.search(rf'<tr>(?:(?!</tr>).)*?/namespaces/{namespace}/services/{name}/".*?</tr>', html, re.S)
    assert row, f"no row for {namespace}/{name}"
    cell = re.search(r'<span class="health health-[a-z]+"[^>]*>([^<]*)</span>', row.group(0))
    assert cell, row.group(0)
    return cell.group(1)


@pytest.mark.parametrize("filtered", [False, True], ids=["unfiltered first page", "filtered"])
def test_the_first_page_after_a_start_shows_real_health(
    client: Client, cluster, admin_api, namespace, make_user, filtered
):
    """As on the first visit after the console starts: no informer has listed. The page waits (within its
    deadline) for the cluster's EndpointSlices rather than call every row's health unknown until a reload."""
    from kube.informer import informers
    from services import api

    make_service(admin_api, namespace, "web")
    run_pod(admin_api, namespace, "web-1", {"app": "web"})
    discovery = k8s.DiscoveryV1Api(admin_api)

    def served() -> bool:
        slices = discovery.list_namespaced_endpoint_slice(namespace, label_selector="kubernetes.io/service-name=web")
        return any(endpoint.conditions.ready for item in slices.items for endpoint in item.endpoints or [])

    eventually(served, 20, interval=0.2)
    user = make_user("cluster-viewer", role=Role.CLUSTER_VIEW, cluster=cluster)
    who = kube.Actor(cluster, rbac.identity_for(user))

    def bound() -> bool:
        clear_authorisations()
        return kube.allowed(who, "list", "endpointslices", group="discovery.k8s.io")

    eventually(bound)
    client.force_login(user)
    informers.clear()  # a fresh start: no informer, none listed
    assert informers.peek(cluster, api.ENDPOINT_SLICES_EVERYWHERE) is None
    started = time.monotonic()
    query = {"cluster": "local"} | ({"namespace": namespace} if filtered else {})
    html = client.get(FLEET, query).content.decode()
    took = time.monotonic() - started
    print(f"\nfirst page after a start ({'filtered' if filtered else 'unfiltered'}): {took * 1000:.0f} ms")
    rows = names_in(html)
    assert rows and "health-unknown" not in html
    if filtered or ("local", namespace, "web") in rows:  # the unfiltered first page holds the cluster's first 50
        assert health_cell(html, namespace, "web") == "1/1"
