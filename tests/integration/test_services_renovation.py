"""Issue 12 ("Renovation"): each defect of the Services pages, proven fixed against the real API server."""

from __future__ import annotations

import pytest
import yaml
from django.test import Client
from kubernetes import client as k8s

from clusters.models import Cluster
from kube.informer import informers
from services import api
from services.forms import MAX_ROWS
from tests.helpers import HTMX, eventually, free_node_port, hold_node_port, service_form, services_in, services_path

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]


# --- 1. any input gets a clear answer, never a 500 ----------------------------------------------------------------

UNICODE_DIGIT = "²"  # "²".isdigit() is True, int("²") raises
ENDLESS = "9" * 5000  # int() refuses more than 4300 digits


@pytest.mark.parametrize("value", [UNICODE_DIGIT, "٣", ENDLESS])
@pytest.mark.parametrize("field", ["port", "target_port", "node_port"])
def test_a_port_field_with_unicode_digits_or_endless_digits_gets_a_message_not_a_500(
    web: Client, admin_api: k8s.ApiClient, namespace: str, field: str, value: str
) -> None:
    data = service_form("odd-digits", type="NodePort", ports=[{"name": "a", "port": 80, field: value}])
    saved = web.post(services_path(namespace, "create/"), data)
    assert saved.status_code == 422
    assert saved.context["bundle"].ports.forms[0].errors[field]
    assert value[:100] in saved.content.decode()  # the input is kept
    validated = web.post(services_path(namespace, "create/validate/"), data, **HTMX)
    assert validated.status_code == 200
    assert services_in(admin_api, namespace) == []


@pytest.mark.parametrize("row", [UNICODE_DIGIT, ENDLESS, "-1", "5", ""])
@pytest.mark.parametrize("interaction", ["rows/ports/remove/", "free-node-port/"])
def test_a_row_index_that_is_not_a_row_changes_nothing(web: Client, namespace: str, interaction: str, row: str) -> None:
    data = service_form("rows", type="NodePort", ports=[{"name": "a", "port": 80}, {"name": "b", "port": 81}])
    response = web.post(services_path(namespace, f"create/{interaction}"), {**data, "row": row}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert 'name="ports-TOTAL_FORMS" value="2"' in html
    assert 'name="ports-1-node_port" id="id_ports-1-node_port"' in html or 'name="ports-1-node_port"' in html


@pytest.mark.parametrize("page", [UNICODE_DIGIT, ENDLESS, "-3", "0", "x"])
def test_an_odd_page_number_shows_the_first_page(web: Client, namespace: str, page: str) -> None:
    response = web.get(services_path(namespace), {"page": page})
    assert response.status_code == 200 and response.context["page"] == 1


# --- 2. a taken node port names its holder only to those who may see it; node ports come from an informer ---------


def test_a_taken_node_port_in_a_namespace_the_user_cannot_see_is_not_named(
    web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    hidden = f"{namespace}-hidden"
    core = k8s.CoreV1Api(admin_api)
    core.create_namespace({"metadata": {"name": hidden}})
    taken = free_node_port(admin_api)
    core.create_namespaced_service(
        hidden,
        {
            "metadata": {"name": "secret-holder"},
            "spec": {"type": "NodePort", "ports": [{"port": 1, "nodePort": taken}]},
        },
    )
    data = service_form("wants-port", type="NodePort", ports=[{"port": 80, "node_port": taken}])
    html = web.post(services_path(namespace, "create/validate/"), data, **HTMX).content.decode()
    assert f"{taken} is already used by another Service." in html
    assert "secret-holder" not in html and hidden not in html

    yaml_text = yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "wants-port"},
            "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": taken}]},
        }
    )
    checked = web.post(services_path(namespace, "create-yaml/"), {"yaml": yaml_text, "_action": "validate"}, **HTMX)
    assert checked.status_code == 422 and str(taken) in checked.content.decode()
    assert "secret-holder" not in checked.content.decode() and hidden not in checked.content.decode()


def test_a_taken_node_port_in_a_namespace_the_user_can_see_is_named(
    web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    taken = hold_node_port(admin_api, namespace)
    data = service_form("wants-port", type="NodePort", ports=[{"port": 80, "node_port": taken}])
    html = web.post(services_path(namespace, "create/validate/"), data, **HTMX).content.decode()
    assert f"{taken} is used by {namespace}/holder." in html


def test_live_validation_reads_node_ports_from_an_informer_not_a_list_per_keystroke(
    web: Client, cluster: Cluster, admin_api: k8s.ApiClient, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A spy on the calls the pages make (the real call still happens), to count cluster-wide Service lists.
    lists: list[str] = []
    real_call = api._call

    def spy(method, *args, **kwargs):
        lists.append(getattr(method, "__name__", ""))
        return real_call(method, *args, **kwargs)

    monkeypatch.setattr(api, "_call", spy)
    data = service_form("typing", type="NodePort", ports=[{"port": 80, "node_port": free_node_port(admin_api)}])
    web.post(services_path(namespace, "create/validate/"), data, **HTMX)  # starts the informer
    eventually(lambda: informers.get(cluster, api.SERVICES_EVERYWHERE).synced)
    lists.clear()
    for _keystroke in range(5):
        assert web.post(services_path(namespace, "create/validate/"), data, **HTMX).status_code == 200
    assert "list_service_for_all_namespaces" not in lists
    assert informers.get(cluster, api.SERVICES_EVERYWHERE).lists == 1

    # A port taken meanwhile reaches the informer through its watch.
    taken = free_node_port(admin_api)
    k8s.CoreV1Api(admin_api).create_namespaced_service(
        namespace,
        {"metadata": {"name": "late-holder"}, "spec": {"type": "NodePort", "ports": [{"port": 1, "nodePort": taken}]}},
    )
    wanted = service_form("typing", type="NodePort", ports=[{"port": 80, "node_port": taken}])
    eventually(
        lambda: (
            f"{namespace}/late-holder"
            in web.post(services_path(namespace, "create/validate/"), wanted, **HTMX).content.decode()
        )
    )
    assert "list_service_for_all_namespaces" not in lists


# --- 3. optimistic locking cannot be skipped ----------------------------------------------------------------------


def test_a_form_edit_without_its_resource_version_is_refused_and_the_input_kept(
    web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    k8s.CoreV1Api(admin_api).create_namespaced_service(
        namespace, {"metadata": {"name": "locked"}, "spec": {"selector": {"app": "a"}, "ports": [{"port": 80}]}}
    )
    data = service_form("locked", selector={"app": "a"}, ports=[{"port": 8123}], resource_version="")
    response = web.post(services_path(namespace, "locked/edit/"), data)
    html = response.content.decode()
    assert response.status_code == 422
    assert "does not say which version of the Service it edits" in html
    assert 'value="8123"' in html
    service = k8s.CoreV1Api(admin_api).read_namespaced_service("locked", namespace)
    assert service.spec.ports[0].port == 80


def test_a_yaml_edit_without_its_resource_version_is_refused_and_the_text_kept(
    web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    k8s.CoreV1Api(admin_api).create_namespaced_service(
        namespace, {"metadata": {"name": "locked"}, "spec": {"ports": [{"port": 80}]}}
    )
    text = "apiVersion: v1\nkind: Service\nmetadata: {name: locked}\nspec: {ports: [{port: 8124}]}\n"
    response = web.post(services_path(namespace, "locked/edit-yaml/"), {"yaml": text})
    html = response.content.decode()
    assert response.status_code == 422
    assert "Keep metadata.resourceVersion" in html and "8124" in html
    assert k8s.CoreV1Api(admin_api).read_namespaced_service("locked", namespace).spec.ports[0].port == 80


@pytest.mark.parametrize("version", ["not-a-number", "-5", "١٢", "9" * 30])
def test_a_yaml_edit_with_a_resource_version_that_is_no_version_is_refused(
    web: Client, admin_api: k8s.ApiClient, namespace: str, version: str
) -> None:
    k8s.CoreV1Api(admin_api).create_namespaced_service(
        namespace, {"metadata": {"name": "locked"}, "spec": {"ports": [{"port": 80}]}}
    )
    text = f"apiVersion: v1\nkind: Service\nmetadata: {{name: locked, resourceVersion: '{version}'}}\nspec: {{ports: [{{port: 81}}]}}\n"
    for action in ("validate", "save"):
        response = web.post(services_path(namespace, "locked/edit-yaml/"), {"yaml": text, "_action": action})
        assert response.status_code == 422, action  # the API server would fail on it (HTTP 500)
        assert "must be the number the Service had when you opened it" in response.content.decode()
    assert k8s.CoreV1Api(admin_api).read_namespaced_service("locked", namespace).spec.ports[0].port == 80


# --- 4. a YAML create carrying what the API server sets ---------------------------------------------------------


def test_a_yaml_create_copied_from_another_service_leaves_out_the_server_set_fields(
    web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    original = k8s.CoreV1Api(admin_api).create_namespaced_service(
        namespace, {"metadata": {"name": "original"}, "spec": {"ports": [{"port": 80}]}}
    )
    copied = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "copy-of-original",
            "namespace": namespace,
            "resourceVersion": original.metadata.resource_version,
            "uid": original.metadata.uid,
            "creationTimestamp": "2026-12-01T00:00:00Z",
            "generation": 1,
            "managedFields": [{"manager": "kubectl", "operation": "Update"}],
            "labels": {"copied": "yes"},
        },
        "spec": {"ports": [{"port": 80}]},
        "status": {"loadBalancer": {}},
    }
    response = web.post(services_path(namespace, "create-yaml/"), {"yaml": yaml.safe_dump(copied)})
    assert response.status_code == 302
    made = k8s.CoreV1Api(admin_api).read_namespaced_service("copy-of-original", namespace)
    assert made.metadata.uid != original.metadata.uid and made.metadata.labels == {"copied": "yes"}


# --- 5. one row cap, enforced with a message ------------------------------------------------------------------------


def test_more_rows_than_the_cap_are_refused_with_a_message_and_the_rows_kept(
    web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    ports = [{"name": f"p{i}", "port": 1000 + i} for i in range(MAX_ROWS + 1)]
    response = web.post(services_path(namespace, "create/"), service_form("many-ports", ports=ports))
    html = response.content.decode()
    assert response.status_code == 422
    assert f"A list holds at most {MAX_ROWS} rows" in html
    assert f'value="p{MAX_ROWS - 1}"' in html
    assert services_in(admin_api, namespace) == []


def test_a_type_switch_with_more_rows_than_the_cap_says_what_it_dropped(web: Client, namespace: str) -> None:
    selector = {f"k{i}": "v" for i in range(MAX_ROWS + 20)}
    response = web.post(
        services_path(namespace, "create/refresh/"), service_form("many", type="NodePort", selector=selector), **HTMX
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert f'name="selector-TOTAL_FORMS" value="{MAX_ROWS}"' in html
    assert f"A list holds at most {MAX_ROWS} rows" in html
    assert 'value="k99"' in html and 'value="k100"' not in html


def test_a_row_added_past_the_cap_is_not_added_and_the_form_says_why(web: Client, namespace: str) -> None:
    annotations = {f"example.com/a{i}": "v" for i in range(MAX_ROWS)}
    response = web.post(
        services_path(namespace, "create/rows/annotations/add/"), service_form("many", annotations=annotations)
    )
    html = response.content.decode()
    assert f'name="annotations-TOTAL_FORMS" value="{MAX_ROWS}"' in html
    assert f"A list holds at most {MAX_ROWS} rows" in html


# --- 7. every interaction has its URL and works without JavaScript ----------------------------------------------


@pytest.mark.parametrize("interaction", ["refresh/", "rows/selector/add/", "workloads/", "free-node-port/"])
def test_each_form_button_works_without_javascript(web: Client, namespace: str, interaction: str) -> None:
    response = web.post(
        services_path(namespace, f"create/{interaction}"), {**service_form("no-js", type="NodePort"), "row": "0"}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" in html  # a whole page, since the browser navigated to the interaction's URL
    assert f'action="{services_path(namespace, "create/")}"' in html  # and saving still goes to the form's own URL
    assert 'value="no-js"' in html


@pytest.mark.parametrize("workload", ["", "Deployment/", "Pod/web", "/web", "Deployment/no-such", UNICODE_DIGIT])
def test_a_workload_not_on_the_list_gets_a_message(web: Client, namespace: str, workload: str) -> None:
    data = {**service_form("picks", selector={"old": "value"}), "workload": workload}
    response = web.post(services_path(namespace, "create/workloads/use/"), data, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert 'role="alert"' in html and 'value="old"' in html


@pytest.mark.parametrize("wanted", ["８０８０", "Upper", "a_b", "x" * 64, "-x"])
def test_the_namespace_picker_takes_only_a_namespace_name(
    client: Client, make_user, cluster: Cluster, namespace: str, wanted: str
) -> None:
    client.force_login(make_user("root", is_superuser=True, is_staff=True))
    response = client.get("/clusters/local/services/", {"namespace": wanted})
    assert response.status_code == 302 and wanted not in response["Location"]


@pytest.mark.parametrize("validate", [True, False])
@pytest.mark.parametrize("port", [UNICODE_DIGIT, "abc", "[1]", "{a: 1}"])
def test_yaml_with_a_value_of_the_wrong_kind_gets_the_fields_path_not_a_500(
    web: Client, admin_api: k8s.ApiClient, namespace: str, port: str, validate: bool
) -> None:
    text = f"apiVersion: v1\nkind: Service\nmetadata: {{name: odd-one}}\nspec:\n  ports: [{{port: 80, nodePort: {port}}}]\n"
    data = {"yaml": text, "_action": "validate" if validate else "save"}
    response = web.post(services_path(namespace, "create-yaml/"), data)
    assert response.status_code == 422
    assert "spec.ports[0].nodePort" in response.content.decode()
    assert services_in(admin_api, namespace) == []


def test_an_edit_refreshed_without_javascript_keeps_its_resource_version_and_saves(
    web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    k8s.CoreV1Api(admin_api).create_namespaced_service(
        namespace, {"metadata": {"name": "no-js"}, "spec": {"selector": {"app": "a"}, "ports": [{"port": 80}]}}
    )
    version = web.get(services_path(namespace, "no-js/edit/")).context["bundle"]["resource_version"].value()
    typed = service_form("no-js", selector={"app": "a"}, ports=[{"port": 80}], resource_version=version)
    page = web.post(services_path(namespace, "no-js/edit/rows/ports/add/"), typed)
    assert f'name="resource_version" value="{version}"' in page.content.decode()
    assert page.context["bundle"]["resource_version"].value() == version
    data = {**typed, "ports-TOTAL_FORMS": "2", "ports-1-protocol": "TCP", "ports-1-name": "b", "ports-1-port": "81"}
    data["ports-0-name"] = "a"
    assert web.post(services_path(namespace, "no-js/edit/"), data).status_code == 302
    ports = k8s.CoreV1Api(admin_api).read_namespaced_service("no-js", namespace).spec.ports
    assert [(p.name, p.port) for p in ports] == [("a", 80), ("b", 81)]
