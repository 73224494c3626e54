"""The Service pages end to end, through Django's test client (with HTMX headers) against the real API server."""

from __future__ import annotations

import pytest
from django.test import Client
from kubernetes import client as k8s

from clusters.models import AuditEntry, Cluster, Role
from tests.helpers import (
    HTMX,
    create_deployment,
    free_node_port,
    hold_node_port,
    service_form,
    services_in,
    services_path,
)

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]


@pytest.fixture
def editor(make_user, cluster: Cluster, namespace: str):
    return make_user("editor", role=Role.NS_EDIT, cluster=cluster, namespace=namespace)


@pytest.fixture
def web(client: Client, editor) -> Client:
    client.force_login(editor)
    return client


def read(admin_api: k8s.ApiClient, namespace: str, name: str) -> k8s.V1Service:
    return k8s.CoreV1Api(admin_api).read_namespaced_service(name, namespace)


# --- create ---------------------------------------------------------------------------------------------------


def test_clusterip_service_lands_exactly_as_entered(web: Client, admin_api: k8s.ApiClient, namespace: str) -> None:
    data = service_form(
        "web-svc",
        ports=[
            {"protocol": "TCP", "name": "http", "port": 80, "target_port": "http-web"},
            {"protocol": "UDP", "name": "dns", "port": 53, "target_port": 5353},
        ],
        selector={"app": "web", "tier": "frontend"},
        annotations={"example.com/owner": "team-a", "note": "hello"},
        session_affinity=True,
        session_timeout=600,
    )
    response = web.post(services_path(namespace, "create/"), data, **HTMX)
    assert response.status_code == 200
    assert response["HX-Redirect"] == services_path(namespace)  # 确定 returns to the list

    service = read(admin_api, namespace, "web-svc")
    assert service.spec.type == "ClusterIP"
    assert [(p.name, p.protocol, p.port, p.target_port) for p in service.spec.ports] == [
        ("http", "TCP", 80, "http-web"),
        ("dns", "UDP", 53, 5353),
    ]
    assert isinstance(service.spec.ports[1].target_port, int)
    assert service.spec.selector == {"app": "web", "tier": "frontend"}
    assert service.spec.session_affinity == "ClientIP"
    assert service.spec.session_affinity_config.client_ip.timeout_seconds == 600
    assert service.metadata.annotations == {"example.com/owner": "team-a", "note": "hello"}
    entry = AuditEntry.objects.get(action="create")
    assert (entry.username, entry.namespace, entry.object_name, entry.result) == (
        "editor",
        namespace,
        "web-svc",
        "success",
    )


def test_nodeport_service_with_manual_and_automatic_node_ports(
    web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    chosen = free_node_port(admin_api)
    data = service_form(
        "node-svc",
        type="NodePort",
        ports=[
            {"name": "http", "port": 80, "target_port": 8080, "node_port": chosen},
            {"name": "https", "port": 443, "target_port": 8443},
        ],
    )
    assert web.post(services_path(namespace, "create/"), data, **HTMX).status_code == 200
    service = read(admin_api, namespace, "node-svc")
    assert service.spec.type == "NodePort"
    assert service.spec.ports[0].node_port == chosen
    assert 30000 <= service.spec.ports[1].node_port <= 32767
    assert service.spec.ports[1].node_port != chosen
    assert service.spec.external_traffic_policy == "Cluster"


def test_loadbalancer_with_local_policy_and_metallb_pool(
    web: Client, admin_api: k8s.ApiClient, namespace: str, metallb: list[str]
) -> None:
    form_page = web.get(services_path(namespace, "create/"))
    assert form_page.status_code == 200
    data = service_form(
        "lb-svc",
        type="LoadBalancer",
        external_traffic_policy="Local",
        lb_type="metallb",
        metallb_pool="office-pool",
        lb_address="192.0.2.7",
    )
    response = web.post(services_path(namespace, "create/"), data, **HTMX)
    assert response.status_code == 200, response.content.decode()
    service = read(admin_api, namespace, "lb-svc")
    assert service.spec.type == "LoadBalancer"
    assert service.spec.external_traffic_policy == "Local"
    assert service.metadata.annotations == {
        "metallb.io/address-pool": "office-pool",
        "metallb.io/loadBalancerIPs": "192.0.2.7",
    }
    assert service.spec.load_balancer_ip is None


def test_loadbalancer_form_offers_the_clusters_pools(web: Client, namespace: str, metallb: list[str]) -> None:
    response = web.post(services_path(namespace, "create/refresh/"), service_form(type="LoadBalancer"), **HTMX)
    html = response.content.decode()
    assert '<option value="public-pool">' in html and '<option value="office-pool">' in html


def test_loadbalancer_of_another_kind_uses_spec_load_balancer_ip(
    web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    data = service_form("cloud-lb", type="LoadBalancer", lb_type="other", lb_address="203.0.113.9")
    assert web.post(services_path(namespace, "create/"), data, **HTMX).status_code == 200
    service = read(admin_api, namespace, "cloud-lb")
    assert service.spec.load_balancer_ip == "203.0.113.9"
    assert not service.metadata.annotations


def test_a_cluster_without_metallb_says_so(web: Client, namespace: str) -> None:
    response = web.post(services_path(namespace, "create/refresh/"), service_form(type="LoadBalancer"), **HTMX)
    assert "MetalLB is not installed on this cluster" in response.content.decode()


# --- the HTMX type switch and rows ------------------------------------------------------------------------------


def test_type_switch_keeps_everything_typed(web: Client, namespace: str) -> None:
    typed = service_form(
        "keep-me",
        type="LoadBalancer",
        ports=[{"name": "web", "port": 8080, "target_port": "http", "node_port": 31234}],
        selector={"app": "kept"},
        annotations={"example.com/a": "b"},
        lb_type="other",
        lb_address="198.51.100.4",
        external_traffic_policy="Local",
        session_affinity=True,
        session_timeout=77,
    )
    as_cluster_ip = web.post(services_path(namespace, "create/refresh/"), {**typed, "type": "ClusterIP"}, **HTMX)
    html = as_cluster_ip.content.decode()
    assert as_cluster_ip.status_code == 200
    assert 'id="service-form"' in html and "<html" not in html  # the partial only
    assert "Node port" not in html  # the NodePort column is gone for ClusterIP...
    for kept in (
        'value="keep-me"',
        'value="8080"',
        'value="http"',
        'value="31234"',
        'value="kept"',
        'value="example.com/a"',
        'value="198.51.100.4"',
        'value="77"',
    ):
        assert kept in html, kept  # ...but every value survives, hidden where its field is not shown

    back = web.post(
        services_path(namespace, "create/refresh/"), {**typed, "type": "LoadBalancer"}, **HTMX
    ).content.decode()
    assert 'value="31234"' in back and 'value="198.51.100.4"' in back
    assert 'value="Local" checked' in back or 'value="Local"\n' in back or "checked" in back


def test_rows_are_added_and_removed_without_losing_input(web: Client, namespace: str) -> None:
    typed = service_form("rows", ports=[{"name": "a", "port": 1}, {"name": "b", "port": 2}])
    html = web.post(services_path(namespace, "create/rows/ports/add/"), typed, **HTMX).content.decode()
    assert 'name="ports-TOTAL_FORMS" value="3"' in html
    removed = web.post(
        services_path(namespace, "create/rows/ports/remove/"), {**typed, "row": "0"}, **HTMX
    ).content.decode()
    assert 'name="ports-TOTAL_FORMS" value="1"' in removed
    assert 'value="b"' in removed and 'value="a"' not in removed


def test_workload_labels_fill_the_selector(web: Client, admin_api: k8s.ApiClient, namespace: str) -> None:
    create_deployment(admin_api, namespace, "shop", {"app": "shop", "track": "stable"})
    typed = service_form("from-workload", selector={"old": "value"})
    picker = web.post(services_path(namespace, "create/workloads/"), typed, **HTMX).content.decode()
    assert "shop" in picker and "track=stable" in picker
    used = web.post(services_path(namespace, "create/workloads/use/"), {**typed, "workload": "Deployment/shop"}, **HTMX)
    html = used.content.decode()
    assert 'value="track"' in html and 'value="stable"' in html and 'value="old"' not in html
    assert 'value="from-workload"' in html


# --- validation -----------------------------------------------------------------------------------------------


def test_node_port_outside_the_clusters_range_is_shown_on_its_field(
    web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    data = service_form(
        "bad-range",
        type="NodePort",
        ports=[
            {"name": "a", "port": 80, "node_port": 30080 % 30000 + 31000},
            {"name": "b", "port": 81, "node_port": 8080},
        ],
    )
    response = web.post(services_path(namespace, "create/"), data)
    assert response.status_code == 422
    bundle = response.context["bundle"]
    assert "8080 is outside the cluster's node port range 30000-32767." in bundle.ports.forms[1].errors["node_port"]
    assert not bundle.ports.forms[0].errors
    assert 'value="bad-range"' in response.content.decode()
    assert services_in(admin_api, namespace) == []


def test_node_port_used_by_another_service_is_shown_on_its_field(
    web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    taken = hold_node_port(admin_api, namespace)
    response = web.post(
        services_path(namespace, "create/"),
        service_form("second", type="NodePort", ports=[{"port": 80, "node_port": taken}]),
    )
    assert response.status_code == 422
    assert (
        f"{taken} is already used by another Service." in response.context["bundle"].ports.forms[0].errors["node_port"]
    )
    assert services_in(admin_api, namespace) == ["holder"]


def test_duplicate_ports_are_refused_before_the_api_server(
    web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    data = service_form("dupe", ports=[{"name": "a", "port": 80}, {"name": "a", "port": 80}])
    response = web.post(services_path(namespace, "create/"), data)
    assert response.status_code == 422
    second = response.context["bundle"].ports.forms[1].errors
    assert "Port names must be unique." in str(second["name"])
    assert "already used by another row" in str(second["port"])
    assert services_in(admin_api, namespace) == []


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "Svc-01", "lowercase letters"),
        ("name", "ab", "4 to 63 characters"),
        ("session_timeout", "86401", "less than or equal to 86400"),
    ],
)
def test_form_rules_give_clear_messages(
    web: Client, admin_api: k8s.ApiClient, namespace: str, field: str, value: str, message: str
) -> None:
    response = web.post(services_path(namespace, "create/"), {**service_form(session_affinity=True), field: value})
    assert response.status_code == 422
    assert message in str(response.context["bundle"].errors[field])
    assert f'value="{value}"' in response.content.decode()
    assert services_in(admin_api, namespace) == []


def test_an_existing_name_is_said_plainly(web: Client, namespace: str) -> None:
    assert web.post(services_path(namespace, "create/"), service_form("twice"), **HTMX).status_code == 200
    again = web.post(services_path(namespace, "create/"), service_form("twice"))
    assert again.status_code == 422
    assert "already exists" in str(again.context["bundle"].errors["name"])


# --- edit -----------------------------------------------------------------------------------------------------


def _existing(admin_api: k8s.ApiClient, namespace: str, **spec) -> k8s.V1Service:
    body = {
        "metadata": {
            "name": "existing",
            "labels": {"team": "payments"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "example.com/shown": "yes"},
        },
        "spec": {
            "type": "NodePort",
            "selector": {"app": "pay"},
            "ports": [{"name": "http", "port": 80, "appProtocol": "http"}],
            **spec,
        },
    }
    return k8s.CoreV1Api(admin_api).create_namespaced_service(namespace, body)


def test_edit_changes_only_what_the_form_owns(web: Client, admin_api: k8s.ApiClient, namespace: str) -> None:
    before = _existing(admin_api, namespace)
    page = web.get(services_path(namespace, "existing/edit/"))
    assert page.status_code == 200
    bundle = page.context["bundle"]
    assert bundle["resource_version"].value() == before.metadata.resource_version
    data = service_form(
        "existing",
        type="ClusterIP",
        ports=[{"name": "http", "port": 80, "target_port": 9090}],
        selector={"app": "pay", "v": "2"},
        annotations={"example.com/shown": "changed"},
        resource_version=before.metadata.resource_version,
    )
    response = web.post(services_path(namespace, "existing/edit/"), data, **HTMX)
    assert response.status_code == 200, response.content.decode()
    after = read(admin_api, namespace, "existing")
    assert after.spec.type == "ClusterIP"
    assert after.spec.ports[0].node_port is None
    assert after.spec.ports[0].target_port == 9090
    assert after.spec.ports[0].app_protocol == "http"
    assert after.spec.selector == {"app": "pay", "v": "2"}
    assert after.metadata.labels == {"team": "payments"}
    assert after.metadata.annotations == {
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
        "example.com/shown": "changed",
    }
    assert after.spec.cluster_ip == before.spec.cluster_ip
    assert after.spec.ip_families == before.spec.ip_families
    assert after.spec.external_traffic_policy is None


def test_of_two_editors_the_second_gets_a_conflict_and_nothing_is_overwritten(
    client: Client, make_user, cluster: Cluster, admin_api: k8s.ApiClient, namespace: str
) -> None:
    before = _existing(admin_api, namespace)
    first, second = Client(), Client()
    first.force_login(make_user("first", role=Role.NS_EDIT, cluster=cluster, namespace=namespace))
    second.force_login(make_user("second", role=Role.NS_EDIT, cluster=cluster, namespace=namespace))
    version = first.get(services_path(namespace, "existing/edit/")).context["bundle"]["resource_version"].value()
    assert (
        second.get(services_path(namespace, "existing/edit/")).context["bundle"]["resource_version"].value() == version
    )

    mine = service_form("existing", type="NodePort", ports=[{"name": "http", "port": 81}], resource_version=version)
    assert first.post(services_path(namespace, "existing/edit/"), mine, **HTMX).status_code == 200
    theirs = service_form("existing", type="NodePort", ports=[{"name": "http", "port": 82}], resource_version=version)
    response = second.post(services_path(namespace, "existing/edit/"), theirs, **HTMX)
    assert response.status_code == 409
    html = response.content.decode()
    assert "Someone changed this Service after you opened it" in html
    assert 'value="82"' in html and "Reload the current version" in html
    assert read(admin_api, namespace, "existing").spec.ports[0].port == 81
    assert before.spec.ports[0].port == 80


# --- YAML -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("apiVersion: v1\nkind: Secret\nmetadata: {name: s1}\n", "Only a Service"),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: a1}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b1}\n",
            "exactly one YAML document",
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: other, namespace: kube-system}\nspec: {ports: [{port: 80}]}\n",
            "belongs in namespace",
        ),
        ('!!python/object/apply:os.system ["touch /tmp/pwned"]\n', "not valid YAML"),
        ("a: &x [1]\nb: *x\n", "aliases are not allowed"),
    ],
)
def test_yaml_that_is_not_one_service_here_is_refused(
    web: Client, admin_api: k8s.ApiClient, namespace: str, text: str, message: str
) -> None:
    response = web.post(services_path(namespace, "create-yaml/"), {"yaml": text}, **HTMX)
    assert response.status_code == 422
    assert message in response.content.decode()
    assert services_in(admin_api, namespace) == []
    assert k8s.CoreV1Api(admin_api).list_namespaced_service("kube-system").items == []


def test_yaml_create_fills_the_namespace_and_edit_may_not_rename(
    web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: from-yaml\nspec:\n  ports:\n  - port: 80\n    targetPort: 8080\n"
    assert web.post(services_path(namespace, "create-yaml/"), {"yaml": text}, **HTMX)["HX-Redirect"] == services_path(
        namespace
    )
    assert read(admin_api, namespace, "from-yaml").spec.ports[0].target_port == 8080

    current = web.get(services_path(namespace, "from-yaml/edit-yaml/")).context["text"]
    assert "resourceVersion" in current and "managedFields" not in current
    renamed = web.post(
        services_path(namespace, "from-yaml/edit-yaml/"),
        {"yaml": current.replace("name: from-yaml", "name: renamed")},
        **HTMX,
    )
    assert renamed.status_code == 422 and "cannot be renamed" in renamed.content.decode()
    changed = web.post(
        services_path(namespace, "from-yaml/edit-yaml/"), {"yaml": current.replace("port: 80", "port: 8000")}, **HTMX
    )
    assert changed.status_code == 200
    assert read(admin_api, namespace, "from-yaml").spec.ports[0].port == 8000


def test_yaml_refused_by_the_api_server_shows_its_reasons(
    web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    text = "apiVersion: v1\nkind: Service\nmetadata: {name: bad-yaml}\nspec: {type: NodePort, ports: [{port: 80, nodePort: 99999}]}\n"
    response = web.post(services_path(namespace, "create-yaml/"), {"yaml": text}, **HTMX)
    assert response.status_code == 422
    assert "spec.ports[0].nodePort" in response.content.decode()
    assert "nodePort: 99999" in response.content.decode()  # the text is kept
    assert services_in(admin_api, namespace) == []


# --- list, detail, delete -------------------------------------------------------------------------------------


def test_list_shows_access_addresses_ports_and_selector(web: Client, admin_api: k8s.ApiClient, namespace: str) -> None:
    core = k8s.CoreV1Api(admin_api)
    core.create_node({"metadata": {"name": f"node-{namespace}"}, "status": {}})
    node = core.read_node(f"node-{namespace}")
    node.status.addresses = [{"type": "InternalIP", "address": "192.168.56.10"}]
    core.replace_node_status(node.metadata.name, node)
    created = core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "listed"},
            "spec": {"type": "NodePort", "selector": {"app": "x"}, "ports": [{"port": 80}]},
        },
    )
    response = web.get(services_path(namespace))
    html = response.content.decode()
    assert response.status_code == 200
    assert f"{created.spec.cluster_ip}:80" in html
    assert f":{created.spec.ports[0].node_port}" in html
    assert "app=x" in html and "创建服务" not in html  # English by default
    assert "Create Service" in html and "Create from YAML" in html


def test_list_pages_with_continue_tokens_and_filters(web: Client, admin_api: k8s.ApiClient, namespace: str) -> None:
    core = k8s.CoreV1Api(admin_api)
    for index in range(25):
        kind = "NodePort" if index % 5 == 0 else "ClusterIP"
        core.create_namespaced_service(
            namespace, {"metadata": {"name": f"svc-{index:02d}"}, "spec": {"type": kind, "ports": [{"port": 80}]}}
        )
    first = web.get(services_path(namespace))
    assert len(first.context["rows"]) == 20 and first.context["next_token"]
    second = web.get(services_path(namespace), {"continue": first.context["next_token"]}, **HTMX)
    page_two = second.content.decode()
    assert 'id="service-table"' in page_two and "<html" not in page_two
    assert all(f">svc-{i:02d}<" in page_two for i in range(20, 25))
    assert ">svc-19<" not in page_two
    assert "HX-Request" in second.headers["Vary"]
    filtered = web.get(services_path(namespace), {"q": "svc-1", "type": "NodePort"})
    assert [r["name"] for r in filtered.context["rows"]] == ["svc-10", "svc-15"]


def test_detail_shows_summary_pods_events_and_yaml(web: Client, admin_api: k8s.ApiClient, namespace: str) -> None:
    core = k8s.CoreV1Api(admin_api)
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "pod-a", "labels": {"app": "d"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]},
        },
    )
    core.create_namespaced_service(
        namespace, {"metadata": {"name": "detailed"}, "spec": {"selector": {"app": "d"}, "ports": [{"port": 80}]}}
    )
    core.create_namespaced_event(
        namespace,
        {
            "metadata": {"name": "detailed.1"},
            "involvedObject": {"kind": "Service", "name": "detailed", "namespace": namespace},
            "reason": "Synced",
            "message": "all good",
            "type": "Normal",
        },
    )
    html = web.get(services_path(namespace, "detailed/")).content.decode()
    assert "pod-a" in html and "Synced" in html and "all good" in html and "kind: Service" in html


def test_delete_removes_the_service(web: Client, admin_api: k8s.ApiClient, namespace: str) -> None:
    created = k8s.CoreV1Api(admin_api).create_namespaced_service(
        namespace, {"metadata": {"name": "doomed"}, "spec": {"ports": [{"port": 80}]}}
    )
    response = web.post(services_path(namespace, "doomed/delete/"), {"uid": created.metadata.uid}, **HTMX)
    assert response["HX-Redirect"] == services_path(namespace)
    assert services_in(admin_api, namespace) == []
    assert AuditEntry.objects.filter(action="delete", result="success", object_name="doomed").exists()
    again = web.post(services_path(namespace, "doomed/delete/"), {"uid": created.metadata.uid}, follow=True)
    assert "deleted" in again.content.decode()  # an already deleted Service counts as done


def test_the_list_has_one_delete_dialog_and_each_rows_link_works_without_scripts(
    web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    core = k8s.CoreV1Api(admin_api)
    uids = {
        name: core.create_namespaced_service(
            namespace, {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}}
        ).metadata.uid
        for name in ("first", "second")
    }
    listing = web.get(services_path(namespace)).content.decode()
    assert listing.count("<dialog") == 1 and 'id="delete-dialog"' in listing
    for name, uid in uids.items():
        assert f'href="{services_path(namespace, name + "/")}?delete"' in listing
        assert f'data-delete-url="{services_path(namespace, name + "/delete/")}" data-uid="{uid}"' in listing
    # The link's target without scripts: the Service's page with its confirmation open, for that uid.
    page = web.get(services_path(namespace, "second/"), {"delete": ""}).content.decode()
    assert '<dialog id="delete-dialog" class="dialog" aria-labelledby="delete-title" open data-modal>' in page
    assert f'name="uid" value="{uids["second"]}"' in page
    assert " open>" not in web.get(services_path(namespace, "second/")).content.decode().split("delete-dialog")[1][:80]


def test_delete_does_not_remove_a_service_recreated_under_the_same_name(
    web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    core = k8s.CoreV1Api(admin_api)
    old = core.create_namespaced_service(namespace, {"metadata": {"name": "reborn"}, "spec": {"ports": [{"port": 80}]}})
    core.delete_namespaced_service("reborn", namespace)
    new = core.create_namespaced_service(namespace, {"metadata": {"name": "reborn"}, "spec": {"ports": [{"port": 80}]}})
    response = web.post(services_path(namespace, "reborn/delete/"), {"uid": old.metadata.uid}, follow=True)
    assert "nothing was deleted" in response.content.decode()
    assert read(admin_api, namespace, "reborn").metadata.uid == new.metadata.uid


# --- roles ----------------------------------------------------------------------------------------------------


def test_a_viewer_sees_no_write_buttons_and_every_write_is_refused(
    client: Client, make_user, cluster: Cluster, admin_api: k8s.ApiClient, namespace: str
) -> None:
    core_api = k8s.CoreV1Api(admin_api)
    created = core_api.create_namespaced_service(
        namespace, {"metadata": {"name": "watched"}, "spec": {"ports": [{"port": 80}]}}
    )
    viewer = make_user("viewer", role=Role.NS_VIEW, cluster=cluster, namespace=namespace)
    client.force_login(viewer)
    listing = client.get(services_path(namespace)).content.decode()
    assert "watched" in listing
    for hidden in ("Create Service", "Create from YAML", "Edit YAML", "/delete/"):
        assert hidden not in listing
    assert (
        "Edit"
        not in client.get(services_path(namespace, "watched/")).content.decode().split("<main")[1].split("Summary")[0]
    )

    writes = {
        services_path(namespace, "create/"): service_form("sneaky"),
        services_path(namespace, "create-yaml/"): {
            "yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: sneaky}\nspec: {ports: [{port: 80}]}\n"
        },
        services_path(namespace, "watched/edit/"): service_form("watched", ports=[{"port": 99}]),
        services_path(namespace, "watched/edit-yaml/"): {
            "yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: watched}\nspec: {ports: [{port: 99}]}\n"
        },
        services_path(namespace, "watched/delete/"): {"uid": created.metadata.uid},
    }
    for target, data in writes.items():
        assert client.post(target, data, **HTMX).status_code == 403, target
        assert client.get(target).status_code in (403, 405), target
    assert services_in(admin_api, namespace) == ["watched"]
    assert core_api.read_namespaced_service("watched", namespace).spec.ports[0].port == 80
    assert AuditEntry.objects.filter(result="denied", username="viewer").count() >= len(writes)


def test_the_list_pages_database_queries_do_not_grow_with_the_services(
    web: Client, admin_api: k8s.ApiClient, namespace: str, monkeypatch
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from clusters import epoch

    monkeypatch.setattr(epoch, "READ_EVERY", 3600.0)  # the access epoch's once-a-second read is not the page's

    core = k8s.CoreV1Api(admin_api)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert web.get(services_path(namespace)).status_code == 200
        return len(captured)

    core.create_namespaced_service(namespace, {"metadata": {"name": "only-one"}, "spec": {"ports": [{"port": 80}]}})
    first = queries()
    with_one = queries()
    for index in range(30):
        core.create_namespaced_service(
            namespace, {"metadata": {"name": f"many-{index}"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}
        )
    # The session and the last recorded change of every row (nothing per row). The user, the grants and the user's
    # groups only on the first view (with the access epoch), then kept by the process while the epoch stays
    # (clusters.access, clusters.oidc.LocalPasswordBackend).
    assert queries() == with_one <= 2
    assert first <= with_one + 4


def test_a_list_row_escapes_every_value_it_shows() -> None:
    """Rows are built as strings (for speed), so every value from the cluster must be escaped there: here a load
    balancer's status and a selector carry markup a hostile controller could write."""
    from django.utils import translation

    from services import listing

    hostile = '"><img src=x onerror=alert(1)>'
    service = {
        "metadata": {"name": "lb", "uid": "u-1", "creationTimestamp": "2026-11-26T10:00:00Z"},
        "spec": {
            "type": "LoadBalancer",
            "clusterIP": "10.96.0.9",
            "selector": {"app": hostile},
            "ports": [{"port": 80, "nodePort": 30080, "targetPort": hostile, "protocol": "TCP"}],
        },
        "status": {"loadBalancer": {"ingress": [{"hostname": hostile}]}},
    }
    with translation.override("en"):
        row = listing.row(service, ["192.0.2.1"], "/clusters/c/namespaces/n/services/", listing.row_labels(True))
    html = str(row["html"])
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert html.count("&quot;&gt;&lt;img") == 3  # the load balancer address, the target port, the selector chip
    assert 'data-delete-url="/clusters/c/namespaces/n/services/lb/delete/" data-uid="u-1"' in html
    assert 'aria-label="Actions for lb"' in html and "LB address pending" not in html


def test_the_namespace_picker_goes_through_the_role_check(
    client: Client, make_user, cluster: Cluster, admin_api: k8s.ApiClient, namespace: str
) -> None:
    other = f"{namespace}-b"
    k8s.CoreV1Api(admin_api).create_namespace({"metadata": {"name": other}})
    user = make_user("two", role=Role.NS_VIEW, cluster=cluster, namespace=namespace)
    from clusters.models import Grant

    Grant.objects.create(user=user, cluster=cluster, role=Role.NS_VIEW, namespace=other)
    client.force_login(user)
    html = client.get(services_path(namespace)).content.decode()
    assert '<form id="namespace-form" method="get" action="/clusters/local/services/"></form>' in html
    assert f"<option selected>{namespace}</option><option>{other}</option>" in html
    picked = client.get("/clusters/local/services/", {"namespace": other})
    assert picked.status_code == 302 and picked["Location"] == services_path(other)
    # A namespace without a grant is not reachable through the picker either: the first visible one instead.
    refused = client.get("/clusters/local/services/", {"namespace": "kube-system"})
    assert refused["Location"] == services_path(namespace)


def test_the_detail_page_shows_what_it_could_read_when_one_related_read_is_refused(
    client: Client, make_user, admin_api: k8s.ApiClient, limited_cluster, namespace: str
) -> None:
    """The related reads run concurrently; one refused (here: events) costs only its own section."""
    rules = [
        {"apiGroups": [""], "resources": ["services", "pods"], "verbs": ["get", "list"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list"]},
    ]
    limited = limited_cluster("limited", rules)
    core = k8s.CoreV1Api(admin_api)
    core.create_namespaced_pod(
        namespace,
        {"metadata": {"name": "pod-x", "labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
    )
    core.create_namespaced_service(
        namespace, {"metadata": {"name": "partly"}, "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}}
    )
    client.force_login(make_user("reader", role=Role.NS_VIEW, cluster=limited, namespace=namespace))
    response = client.get(f"/clusters/limited/namespaces/{namespace}/services/partly/")
    html = response.content.decode()
    assert response.status_code == 200 and "pod-x" in html and "kind: Service" in html
    warning = html.split('class="notice notice-warning"')[1].split("</div>")[0]
    assert 'cannot list resource "events"' in warning or "cannot list resource &quot;events&quot;" in warning
