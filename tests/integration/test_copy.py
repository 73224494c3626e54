"""The same Service elsewhere: copying a Service to another cluster and another namespace, against two real API
servers (cluster "local" and cluster "remote")."""

from __future__ import annotations

import html
import re
import socket
import time
import uuid
from collections.abc import Iterator

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext, pgettext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

import kube
from clusters import rbac
from clusters.models import AuditEntry, Cluster, Grant, Role
from kube.identity import clear_authorisations
from services import manifest as m
from tests.helpers import HTMX, eventually, free_node_port, hold_node_port, rows

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]

ERROR_MARKERS = re.compile(r'class="[^"]*\b(errorlist|notice-error)\b|role="alert"')


@pytest.fixture
def other_namespace(admin_api: k8s.ApiClient) -> Iterator[str]:
    """A second namespace of cluster "local"."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = k8s.CoreV1Api(admin_api)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def grant(user, role: Role, cluster: Cluster, namespace: str) -> None:
    """Another grant for ``user``, waited for until the cluster's RBAC has its binding."""
    Grant.objects.create(user=user, cluster=cluster, role=role, namespace=namespace)
    who = kube.Actor(cluster, rbac.identity_for(user))

    def bound() -> bool:
        clear_authorisations()
        return kube.allowed(who, "list", "services", namespace)

    eventually(bound)


@pytest.fixture
def copier(make_user, cluster: Cluster, second_cluster: Cluster, namespace, other_namespace, second_namespace):
    """NS Edit of the source namespace and of another namespace of "local", and of the namespace in "remote"."""
    user = make_user("copier", role=Role.NS_EDIT, cluster=cluster, namespace=namespace)
    grant(user, Role.NS_EDIT, cluster, other_namespace)
    grant(user, Role.NS_EDIT, second_cluster, second_namespace)
    return user


@pytest.fixture
def web(client: Client, copier) -> Client:
    client.force_login(copier)
    return client


@pytest.fixture
def node_port_source(admin_api: k8s.ApiClient, namespace: str) -> int:
    """A NodePort Service "web" in the test's namespace of "local"; returns its node port."""
    port = free_node_port(admin_api)
    k8s.CoreV1Api(admin_api).create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": {"example.com/owner": "team-a"}},
            "spec": {
                "type": "NodePort",
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": port}],
                "sessionAffinity": "ClientIP",
            },
        },
    )
    return port


def copy_url(namespace: str, suffix: str = "", name: str = "web") -> str:
    return reverse("services:copy", args=["local", namespace, name]) + suffix


def targets(*items: dict) -> dict:
    """The copy form's POST data: one row per target (``node_ports`` defaults to keeping the source's)."""
    return rows("targets", [{"name": "", "node_ports": "keep", **item} for item in items])


def text(response) -> str:
    return response.content.decode()


def read(api: k8s.ApiClient, namespace: str, name: str) -> k8s.V1Service:
    return k8s.CoreV1Api(api).read_namespaced_service(name, namespace)


def absent(api: k8s.ApiClient, namespace: str, name: str) -> bool:
    try:
        read(api, namespace, name)
    except ApiException as error:
        return error.status == 404
    return False


# --- the flow: form, preview, create ------------------------------------------------------------------------------


def test_it_offers_only_where_the_user_may_edit(web: Client, node_port_source: int, namespace, other_namespace) -> None:
    response = web.get(copy_url(namespace))
    assert response.status_code == 200
    page = text(response)
    assert f'value="local/{namespace}"' in page
    assert f'value="local/{other_namespace}"' in page
    assert f'value="remote/{namespace}"' in page  # the second cluster's namespace of the same name
    assert 'value="local/default"' not in page  # no grant there
    assert page.count("<optgroup") == 2  # one group per cluster


def test_preview_then_create_in_another_cluster_and_another_namespace(
    web: Client,
    admin_api: k8s.ApiClient,
    second_admin_api: k8s.ApiClient,
    node_port_source: int,
    namespace: str,
    other_namespace: str,
) -> None:
    given_port = free_node_port(admin_api)
    data = targets(
        {"target": f"remote/{namespace}"},  # keeps the source's node port: free in the other cluster
        {"target": f"local/{other_namespace}", "node_ports": "given", "node_port_0": given_port, "name": "web-two"},
    )
    started = time.monotonic()
    preview = web.post(copy_url(namespace), data)
    preview_seconds = time.monotonic() - started
    assert preview.status_code == 200, text(preview)
    page = text(preview)
    assert page.count("(dry run)") == 2, page
    assert f"remote / {namespace} accepts “web” (dry run)." in page
    assert f"local / {other_namespace} accepts “web-two” (dry run)." in page
    # The diff of each: the namespace changes, the cluster IP is the target's own, the node port is overridden.
    assert f'<span class="diff-add">+  namespace: {other_namespace}</span>' in page
    assert f'<span class="diff-del">-  namespace: {namespace}</span>' in page
    assert f'<span class="diff-add">+    nodePort: {given_port}</span>' in page
    assert re.search(r'<span class="diff-del">-  clusterIP: 10\.', page)
    assert absent(second_admin_api, namespace, "web") and absent(admin_api, other_namespace, "web-two")  # dry runs
    assert 'formaction="' + copy_url(namespace, "create/") + '"' in page  # Create is offered after a good preview

    created = web.post(copy_url(namespace, "create/"), data)
    assert created.status_code == 200
    page = text(created)
    assert "Created in 2 of 2 targets" in page
    assert reverse("services:detail", args=["remote", namespace, "web"]) in page
    assert reverse("services:detail", args=["local", other_namespace, "web-two"]) in page

    source = read(admin_api, namespace, "web")
    remote = read(second_admin_api, namespace, "web")
    assert remote.spec.ports[0].node_port == node_port_source
    assert remote.spec.type == "NodePort" and remote.spec.selector == {"app": "web"}
    assert remote.spec.session_affinity == "ClientIP"
    assert remote.metadata.labels == {"app": "web"}
    assert remote.metadata.annotations == {"example.com/owner": "team-a"}
    assert remote.metadata.uid != source.metadata.uid
    local_copy = read(admin_api, other_namespace, "web-two")
    assert local_copy.spec.ports[0].node_port == given_port
    assert local_copy.spec.ports[0].target_port == 8080
    assert local_copy.spec.cluster_ip != source.spec.cluster_ip

    entries = AuditEntry.objects.filter(action="create (copy)").order_by("cluster")
    assert [(e.cluster, e.namespace, e.object_name, e.result, e.username) for e in entries] == [
        ("local", other_namespace, "web-two", "success", "copier"),
        ("remote", namespace, "web", "success", "copier"),
    ]
    assert all(f"from local/{namespace}/web" in e.detail for e in entries)
    print(f"\ncopy: preview of 2 targets in {preview_seconds:.2f}s")


def test_keeping_the_sources_node_port_in_its_own_cluster_is_refused_once_naming_the_holder(
    web: Client, node_port_source: int, namespace: str, other_namespace: str
) -> None:
    """Asked to keep the source's node port in the source's own cluster: the source holds it. The console's own
    check names the holder (the user may view it: it is the source) and the API server's cause for the same field
    (``spec.ports[0].nodePort: ...``) is not said again."""
    data = targets({"target": f"local/{other_namespace}", "node_ports": "keep"})
    page = text(web.post(copy_url(namespace), data))
    assert "would not create “web”" in page
    reasons = outcome_reasons(page)
    assert reasons == [f"{node_port_source} is used by {namespace}/web."], reasons
    assert "nodePort:" not in " ".join(reasons) and "already used by another Service" not in page
    assert 'formaction="' + copy_url(namespace, "create/") + '"' not in page  # nothing to create
    # Sent to create all the same: the same words, once.
    page = text(web.post(copy_url(namespace, "create/"), data))
    summary = re.search(r'<li class="copy-failed">.*?</li>', page, re.S).group(0)
    assert re.findall(r"<div>([^<]*)</div>", summary) == [f"{node_port_source} is used by {namespace}/web."]


def outcome_reasons(page: str) -> list[str]:
    """The reasons of the first target's outcome that was refused, as the page lists them."""
    block = re.search(r'<div class="copy-outcome".*?role="alert">((?:<div>[^<]*</div>)*)</div>', page, re.S)
    assert block, page[page.find("copy-outcome") :][:1500]
    return re.findall(r"<div>(.*?)</div>", block.group(1))[1:]  # after "… would not create …:"


def test_a_taken_node_port_is_named_only_to_who_may_view_its_holder(
    web: Client,
    admin_api: k8s.ApiClient,
    node_port_source: int,
    namespace: str,
    other_namespace: str,
) -> None:
    """Tenant isolation: the holder of a port in a namespace the user holds no grant on is not named, nor its
    namespace; the port is said to be taken, once."""
    hidden = f"{namespace}-x"
    core = k8s.CoreV1Api(admin_api)
    core.create_namespace({"metadata": {"name": hidden}})
    try:
        taken = hold_node_port(admin_api, hidden, "private-holder")
        data = targets({"target": f"local/{other_namespace}", "node_ports": "given", "node_port_0": taken})
        page = text(web.post(copy_url(namespace), data))
        assert outcome_reasons(page) == [f"{taken} is already used by another Service."]
        assert hidden not in page and "private-holder" not in page
    finally:
        core.delete_namespace(hidden)


def test_the_default_keeps_node_ports_where_free_and_lets_the_source_cluster_assign_its_own(
    web: Client,
    admin_api: k8s.ApiClient,
    second_admin_api: k8s.ApiClient,
    node_port_source: int,
    namespace: str,
    other_namespace: str,
) -> None:
    form = text(web.get(copy_url(namespace)))
    assert 'value="keep-free" id="id_targets-0-node_ports_0" checked' in form  # the default, explained
    assert "By default each node port of the source is kept where the target cluster has it free" in form

    data = rows(
        "targets",
        [
            {"target": f"local/{other_namespace}", "name": "", "node_ports": "keep-free"},
            {"target": f"remote/{namespace}", "name": "", "node_ports": "keep-free"},
        ],
    )
    preview = text(web.post(copy_url(namespace), data))
    assert f"local / {other_namespace} accepts “web” (dry run)." in preview
    assert f"remote / {namespace} accepts “web” (dry run)." in preview
    assert (
        preview.count(f"Node port {node_port_source} is not free in cluster Local: that cluster assigns another.") == 1
    )
    assert f'<span class="diff-del">-    nodePort: {node_port_source}</span>' in preview  # the local copy's diff

    created = text(web.post(copy_url(namespace, "create/"), data))
    assert "Created in 2 of 2 targets" in created
    local_copy = read(admin_api, other_namespace, "web").spec.ports[0].node_port
    assert local_copy and local_copy != node_port_source
    assert read(second_admin_api, namespace, "web").spec.ports[0].node_port == node_port_source


def test_one_target_failing_does_not_undo_the_others(
    web: Client,
    admin_api: k8s.ApiClient,
    second_admin_api: k8s.ApiClient,
    node_port_source: int,
    namespace: str,
    other_namespace: str,
) -> None:
    k8s.CoreV1Api(second_admin_api).create_namespaced_service(
        namespace, {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 9000}]}}
    )
    data = targets({"target": f"remote/{namespace}"}, {"target": f"local/{other_namespace}", "node_ports": "auto"})
    preview = text(web.post(copy_url(namespace), data))
    assert "A Service named “web” already exists in this namespace." in preview
    assert "The Service already there compared with the copy" in preview
    assert re.search(r'<span class="diff-del">-[ -]*port: 9000</span>', preview)  # the existing one against the copy
    assert f"local / {other_namespace} accepts “web” (dry run)." in preview

    created = web.post(copy_url(namespace, "create/"), data)
    page = text(created)
    assert created.status_code == 200
    assert "Created in 1 of 2 targets" in page, page[page.find("copy-summary") :][:1500]
    assert "Not created" in page and "A Service named “web” already exists in this namespace." in page
    assert read(admin_api, other_namespace, "web").spec.ports[0].node_port != node_port_source
    assert read(second_admin_api, namespace, "web").spec.ports[0].port == 9000  # untouched
    results = dict(AuditEntry.objects.filter(action="create (copy)").values_list("cluster", "result"))
    assert results == {"local": "success", "remote": "failed"}
    # The form is still there as posted, to try again.
    assert f'<option value="remote/{namespace}" selected>' in page
    assert 'value="auto" id="id_targets-1-node_ports_2" checked' in page


def test_a_cluster_that_is_down_fails_its_target_only(
    web: Client, copier, admin_api: k8s.ApiClient, node_port_source: int, namespace: str, other_namespace: str
) -> None:
    with socket.socket() as probe:  # a port nothing listens on: the cluster's API server is down
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = Cluster(name="down")
    down.set_credentials(kube.Credentials(f"https://127.0.0.1:{port}", b"", token="t" * 20))
    down.save()
    Grant.objects.create(user=copier, cluster=down, role=Role.NS_EDIT, namespace="shop")
    data = targets({"target": "down/shop"}, {"target": f"local/{other_namespace}", "node_ports": "auto"})

    preview = text(web.post(copy_url(namespace), data))
    assert "down / shop would not create “web”:" in preview
    assert f"local / {other_namespace} accepts “web” (dry run)." in preview

    page = text(web.post(copy_url(namespace, "create/"), data))
    assert "Created in 1 of 2 targets" in page
    results = dict(AuditEntry.objects.filter(action="create (copy)").values_list("cluster", "result"))
    assert results == {"down": "failed", "local": "success"}
    assert "t" * 20 not in page and not AuditEntry.objects.filter(detail__contains="t" * 20).exists()


def test_a_target_without_edit_role_is_neither_offered_nor_accepted(
    client: Client,
    make_user,
    cluster: Cluster,
    second_cluster: Cluster,
    second_admin_api: k8s.ApiClient,
    node_port_source: int,
    namespace: str,
    second_namespace: str,
) -> None:
    user = make_user("half", role=Role.NS_EDIT, cluster=cluster, namespace=namespace)
    grant(user, Role.NS_VIEW, second_cluster, second_namespace)
    client.force_login(user)
    page = text(client.get(copy_url(namespace)))
    assert f"remote/{second_namespace}" not in page and "Remote" not in page

    def refusal(target: str) -> str:
        response = client.post(copy_url(namespace, "create/"), targets({"target": target, "name": "sneaky"}))
        assert response.status_code == 422
        return re.findall(r'<ul class="errorlist"[^>]*>.*?</ul>', text(response))[0]

    # No edit role, no grant at all, a cluster that does not exist: one and the same answer.
    answers = {refusal(f"remote/{second_namespace}"), refusal("remote/kube-system"), refusal("nowhere/ns")}
    assert len(answers) == 1 and "Choose a cluster and namespace from the list." in answers.pop()
    assert absent(second_admin_api, second_namespace, "sneaky")
    assert not AuditEntry.objects.filter(action="create (copy)").exists()


def test_a_viewer_cannot_copy(client: Client, people, node_port_source: int, namespace: str, other_namespace) -> None:
    client.force_login(people.viewer)
    assert client.get(copy_url(namespace)).status_code == 403
    response = client.post(copy_url(namespace, "create/"), targets({"target": f"local/{other_namespace}"}))
    assert response.status_code == 403
    assert AuditEntry.objects.filter(username="viewer", result="denied", object_name="web").count() == 2
    client.force_login(people.stranger)
    assert client.get(copy_url(namespace)).status_code == 404  # not even the cluster's name is confirmed


def test_the_detail_page_links_to_the_copy(
    web: Client, client: Client, people, make_user, cluster, node_port_source: int, namespace: str, other_namespace
) -> None:
    page = text(web.get(reverse("services:detail", args=["local", namespace, "web"])))
    assert f'href="{copy_url(namespace)}"' in page
    # A viewer of the source who may edit elsewhere may copy it there: the link, without the source's edit buttons.
    reader = make_user("reader", role=Role.NS_VIEW, cluster=cluster, namespace=namespace)
    Grant.objects.create(user=reader, cluster=cluster, role=Role.NS_EDIT, namespace=other_namespace)
    client.force_login(reader)
    page = text(client.get(reverse("services:detail", args=["local", namespace, "web"])))
    assert f'href="{copy_url(namespace)}"' in page and "/edit/" not in page
    assert client.get(copy_url(namespace)).status_code == 200
    # A viewer who may edit nowhere gets neither.
    client.force_login(people.viewer)
    page = text(client.get(reverse("services:detail", args=["local", namespace, "web"])))
    assert "/copy/" not in page and "/edit/" not in page


def test_the_result_says_created_in_its_own_words_not_the_lists_column_header(
    web: Client, node_port_source: int, namespace: str, other_namespace: str
) -> None:
    """ "Created" is also the list's column header (创建时间, creation time): the result has a context of its own."""
    data = targets({"target": f"local/{other_namespace}", "node_ports": "auto"})
    page = text(web.post(copy_url(namespace, "create/"), data, HTTP_ACCEPT_LANGUAGE="zh-hans"))
    with translation.override("zh-hans"):
        result, column = pgettext("copy result", "Created"), gettext("Created")
    assert column == "创建时间" and result != column
    assert f'<span class="ok">✓ {result}</span>' in page and f"✓ {column}" not in page


def diff_blocks(page: str) -> list[str]:
    return re.findall(r'<pre class="code diff" tabindex="0">(.*?)</pre>', page, re.S)


def test_each_diff_line_is_one_span_with_a_newline_only_between_two(
    web: Client, node_port_source: int, namespace: str, other_namespace: str
) -> None:
    page = text(web.post(copy_url(namespace), targets({"target": f"local/{other_namespace}", "node_ports": "auto"})))
    (block,) = diff_blocks(page)
    spans = block.split("\n")
    assert len(spans) > 3
    assert all(re.fullmatch(r'<span class="diff-(add|del|hunk|same)">[^\n<]*</span>', span) for span in spans), spans
    # As the browser shows it (and copies it): each line once, no empty line after any.
    shown = html.unescape(re.sub(r"<[^>]+>", "", block)).split("\n")
    assert "" not in shown and shown[0].startswith("@@")


def test_a_request_in_flight_disables_every_submit_button_of_the_form(
    web: Client, node_port_source: int, namespace: str
) -> None:
    """htmx evaluates ``hx-disabled-elt`` from the element that sends the request, the form or (inherited) a
    row's select: a plain selector of the form's submit buttons finds them from either ("find …" searched inside
    the element, found nothing from the select and only the first button from the form)."""
    page = text(web.get(copy_url(namespace)))
    form = re.search(r'<form id="copy-form".*?</form>', page, re.S).group(0)
    assert 'hx-disabled-elt="#copy-form button[type=submit]"' in form
    buttons = re.findall(r"<button\b[^>]*>", form)
    assert len(buttons) >= 4 and all('type="submit"' in button for button in buttons), buttons


# --- the form's interactions, with and without HTMX -------------------------------------------------------------


def test_add_and_remove_targets_keep_what_was_chosen(
    web: Client, node_port_source: int, namespace: str, other_namespace: str
) -> None:
    data = targets({"target": f"remote/{namespace}", "name": "kept-name", "node_ports": "auto"})
    added = web.post(copy_url(namespace, "targets/add/"), data, **HTMX)
    page = text(added)
    assert added.status_code == 200 and "<html" not in page  # the form alone, swapped in place
    assert 'id="target-1"' in page and 'value="kept-name"' in page
    assert f'<option value="remote/{namespace}" selected>' in page

    two = targets({"target": f"remote/{namespace}", "name": "kept-name"}, {"target": f"local/{other_namespace}"})
    removed = web.post(copy_url(namespace, "targets/remove/"), {**two, "row": "0"})
    page = text(removed)
    assert "<html" in page and 'id="target-1"' not in page  # a whole page without HTMX
    assert f'<option value="local/{other_namespace}" selected>' in page and "kept-name" not in page


def test_a_load_balancer_copy_offers_the_target_clusters_pools(
    web: Client,
    admin_api: k8s.ApiClient,
    metallb: list[str],
    namespace: str,
    other_namespace: str,
) -> None:
    k8s.CoreV1Api(admin_api).create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "lb", "annotations": {m.METALLB_POOL: "public-pool", m.METALLB_IPS: "192.0.2.3"}},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 443}]},
        },
    )
    url = copy_url(namespace, name="lb")
    row = {"target": f"local/{other_namespace}", "node_ports": "auto", "pool": "office-pool"}
    page = text(web.post(url + "refresh/", targets(row), **HTMX))
    assert '<option value="office-pool" selected>office-pool</option>' in page
    # The other cluster has no MetalLB: a pool of this one is not a choice there.
    refused = web.post(url, targets({**row, "target": f"remote/{namespace}"}))
    assert refused.status_code == 422 and "Select a valid choice" in text(refused)

    created = text(web.post(url + "create/", targets(row)))
    assert "Created in 1 of 1 target" in created
    copied = read(admin_api, other_namespace, "lb")
    assert copied.metadata.annotations == {m.METALLB_POOL: "office-pool"}  # the address stays the source's


# --- any POST gets a clear page ---------------------------------------------------------------------------------

ENDPOINTS = ["", "create/", "refresh/", "targets/add/", "targets/remove/"]
FIELDS = ["target", "name", "node_ports", "node_port_0", "node_port_1", "pool", "keep_address", "DELETE"]


@st.composite
def copy_posts(draw, choices: list[str]) -> dict:
    """Arbitrary POST data shaped like the form (some rows, some fields, offered and invented values)."""
    text_values = st.one_of(
        st.sampled_from(choices),
        st.sampled_from(
            ["keep-free", "keep", "auto", "given", "_keep", "_none", "", "0", "-1", "65536", "30000", "x" * 70]
        ),
        st.text(max_size=30),
        st.integers(min_value=-(10**20), max_value=10**20).map(str),
    )
    # Half the examples start from a form the page would send, so the preview and create paths are reached too.
    data: dict = targets({"target": draw(st.sampled_from(choices))}) if draw(st.booleans()) else {}
    if draw(st.booleans()):
        data["targets-TOTAL_FORMS"] = draw(st.one_of(st.integers(-5, 25).map(str), st.text(max_size=5)))
        data["targets-INITIAL_FORMS"] = draw(st.one_of(st.integers(-5, 25).map(str), st.text(max_size=5)))
    for index in range(draw(st.integers(0, 3))):
        for name in draw(st.lists(st.sampled_from(FIELDS), max_size=len(FIELDS), unique=True)):
            data[f"targets-{index}-{name}"] = draw(text_values)
    data |= draw(
        st.dictionaries(st.sampled_from(["row", "_action", "targets-x-target", "noise"]), text_values, max_size=3)
    )
    return data


def test_any_post_gets_a_clear_page(
    web: Client, admin_api: k8s.ApiClient, node_port_source: int, namespace: str, other_namespace: str
) -> None:
    choices = [f"local/{namespace}", f"local/{other_namespace}", f"remote/{namespace}", "remote/nowhere"]
    statuses: dict[int, int] = {}

    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(endpoint=st.sampled_from(ENDPOINTS), data=copy_posts(choices), htmx=st.booleans())
    def check(endpoint: str, data: dict, htmx: bool) -> None:
        response = web.post(copy_url(namespace, endpoint), data, **(HTMX if htmx else {}))
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        body = text(response)
        assert response.status_code < 500, body[-2000:]
        assert response.status_code != 400
        if response.status_code >= 400:
            assert ERROR_MARKERS.search(body), body[-2000:]
            assert htmx or 'id="main"' in body

    check()
    print(f"\ncopy fuzz: {sum(statuses.values())} examples, answers by status {dict(sorted(statuses.items()))}")


# --- who may open the copy pages ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("anonymous", "login"),
        ("stranger", 404),  # no grant on the cluster: its name is not confirmed
        ("viewer", 403),  # may view the source, may edit nowhere
        ("cluster_viewer", 403),
        ("edits_elsewhere", 403),  # may edit another namespace, but not view the source
        ("editor", 200),
        ("cluster_admin", 200),
    ],
)
def test_it_requires_a_view_of_the_source_and_an_edit_role_somewhere(
    client: Client, people, make_user, cluster: Cluster, node_port_source: int, namespace: str, who: str, expected
) -> None:
    users = {
        "anonymous": None,
        "cluster_viewer": make_user("cluster-viewer", role=Role.CLUSTER_VIEW, cluster=cluster),
        "edits_elsewhere": make_user("elsewhere", role=Role.NS_EDIT, cluster=cluster, namespace="default"),
        **vars(people),
    }
    if users[who] is not None:
        client.force_login(users[who])
    for method, suffix in [
        ("get", ""),
        ("post", ""),
        ("post", "create/"),
        ("post", "refresh/"),
        ("post", "targets/add/"),
    ]:
        response = getattr(client, method)(copy_url(namespace, suffix))
        if expected == "login":
            assert response.status_code == 302 and response["Location"].startswith("/login/")
        elif expected == 200 and method == "post" and suffix in ("", "create/"):
            assert response.status_code == 422  # allowed, and an empty form is refused with its reasons
        else:
            assert response.status_code == expected, (method, suffix)
