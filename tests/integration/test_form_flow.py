"""Issue 13 ("The seed's workflow exactly"), the server's side: 确定 returns to the list, the service port follows
the container port, the focus after each interaction, the small ones (long names, the timeout while affinity is
off, a create sent twice, the API server's refusals in the user's language), through Django's test client against
the real API server. What happens in the browser is in test_browser_keyboard.py."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from django.test import Client
from kubernetes import client as k8s

from clusters.models import AuditEntry
from services import forms
from tests.helpers import HTMX, create_deployment, hold_node_port, service_form, services_in, services_path

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]

ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}


def read(admin_api: k8s.ApiClient, namespace: str, name: str) -> k8s.V1Service:
    return k8s.CoreV1Api(admin_api).read_namespaced_service(name, namespace)


def focused(html: str) -> list[str]:
    """The ids of the elements marked autofocus."""
    tags = re.findall(r"<(?:input|select|textarea|button)\b[^>]*>", html)
    return [re.search(r'\bid="([^"]+)"', tag).group(1) for tag in tags if re.search(r"\sautofocus\b", tag)]


# --- 1. 确定 returns to the Services list ----------------------------------------------------------------------


def test_the_form_returns_to_the_list_with_the_message_and_the_new_row(web: Client, namespace: str) -> None:
    created = web.post(services_path(namespace, "create/"), service_form("back-to-list"))
    assert (created.status_code, created["Location"]) == (302, services_path(namespace))
    page = web.get(created["Location"]).content.decode()
    assert "Service “back-to-list” created." in page
    assert f'href="/clusters/local/namespaces/{namespace}/services/back-to-list/"' in page

    form = web.get(services_path(namespace, "back-to-list/edit/")).context["bundle"]
    edit = service_form("back-to-list", resource_version=form["resource_version"].value(), ports=[{"port": 81}])
    edited = web.post(services_path(namespace, "back-to-list/edit/"), edit, **HTMX)
    assert edited["HX-Redirect"] == services_path(namespace)
    assert "Service “back-to-list” updated." in web.get(services_path(namespace)).content.decode()


def test_the_yaml_editor_returns_to_the_list_on_create_and_edit(
    web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: yaml-list\nspec:\n  ports:\n  - port: 80\n"
    created = web.post(services_path(namespace, "create-yaml/"), {"yaml": text})
    assert (created.status_code, created["Location"]) == (302, services_path(namespace))
    page = web.get(services_path(namespace)).content.decode()
    assert "Service “yaml-list” created." in page and "yaml-list/" in page
    current = web.get(services_path(namespace, "yaml-list/edit-yaml/")).context["text"]
    edited = web.post(
        services_path(namespace, "yaml-list/edit-yaml/"), {"yaml": current.replace("port: 80", "port: 90")}, **HTMX
    )
    assert edited["HX-Redirect"] == services_path(namespace)
    assert read(admin_api, namespace, "yaml-list").spec.ports[0].port == 90


# --- 2. the service port follows the container port ------------------------------------------------------------


def test_an_empty_service_port_takes_a_numeric_container_port(
    web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    data = service_form("follows", ports=[{"port": "", "target_port": "8080"}])
    assert web.post(services_path(namespace, "create/"), data).status_code == 302
    port = read(admin_api, namespace, "follows").spec.ports[0]
    assert (port.port, port.target_port) == (8080, 8080)


def test_a_typed_service_port_is_kept(web: Client, admin_api: k8s.ApiClient, namespace: str) -> None:
    data = service_form("typed", ports=[{"port": "80", "target_port": "8080"}])
    assert web.post(services_path(namespace, "create/"), data).status_code == 302
    assert read(admin_api, namespace, "typed").spec.ports[0].port == 80


@pytest.mark.parametrize("target_port", ["http", ""])
def test_an_empty_service_port_with_a_named_or_no_container_port_is_required(
    web: Client, admin_api: k8s.ApiClient, namespace: str, target_port: str
) -> None:
    data = service_form("needs-port", ports=[{"name": "web", "port": "", "target_port": target_port}])
    response = web.post(services_path(namespace, "create/"), data)
    assert response.status_code == 422
    assert [e.code for e in response.context["bundle"].ports.forms[0].errors.as_data()["port"]] == ["required"]
    assert services_in(admin_api, namespace) == []


# --- 3. the focus after each interaction (htmx focuses [autofocus] after the swap; a browser does on load) -------


def test_adding_a_row_focuses_its_first_field(web: Client, namespace: str) -> None:
    html = web.post(services_path(namespace, "create/rows/ports/add/"), service_form(), **HTMX).content.decode()
    assert focused(html) == ["id_ports-1-protocol"]
    html = web.post(services_path(namespace, "create/rows/selector/add/"), service_form()).content.decode()
    assert focused(html) == ["id_selector-1-key"]


def test_removing_a_row_focuses_the_next_one_or_the_add_button(web: Client, namespace: str) -> None:
    two = service_form(ports=[{"name": "a", "port": 80}, {"name": "b", "port": 81}])
    html = web.post(services_path(namespace, "create/rows/ports/remove/"), {**two, "row": "0"}, **HTMX).content.decode()
    assert focused(html) == ["id_ports-0-protocol"] and 'value="81"' in html and 'value="80"' not in html
    html = web.post(services_path(namespace, "create/rows/ports/remove/"), {**two, "row": "1"}, **HTMX).content.decode()
    assert focused(html) == ["id_ports-0-protocol"]
    html = web.post(
        services_path(namespace, "create/rows/selector/remove/"), {**two, "row": "0"}, **HTMX
    ).content.decode()
    assert focused(html) == ["id_selector-0-key"]  # the selector starts again with an empty row
    annotated = service_form(annotations={"note": "x"})
    html = web.post(
        services_path(namespace, "create/rows/annotations/remove/"), {**annotated, "row": "0"}
    ).content.decode()
    assert focused(html) == ["add-annotations"]


def test_the_workload_dialog_focuses_its_first_choice_and_returns_the_focus_to_its_button(
    web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    create_deployment(admin_api, namespace, "shop", {"app": "shop"})
    opened = web.post(services_path(namespace, "create/workloads/"), service_form(), **HTMX).content.decode()
    assert re.search(r'<button[^>]*value="Deployment/shop"[^>]* autofocus>', opened)
    assert "data-modal" in opened and 'data-return-focus="workloads-button"' in opened
    used = web.post(
        services_path(namespace, "create/workloads/use/"), {**service_form(), "workload": "Deployment/shop"}, **HTMX
    )
    assert focused(used.content.decode()) == ["workloads-button"]
    closed = web.post(services_path(namespace, "create/refresh/"), {**service_form(), "_focus": "workloads"}, **HTMX)
    assert focused(closed.content.decode()) == ["workloads-button"]
    # Only the form's own buttons and fields can be named.
    other = web.post(services_path(namespace, "create/refresh/"), {**service_form(), "_focus": "messages"}, **HTMX)
    assert focused(other.content.decode()) == []


def test_a_free_node_port_focuses_its_field(web: Client, namespace: str) -> None:
    data = {**service_form(type="NodePort"), "row": "0"}
    html = web.post(services_path(namespace, "create/free-node-port/"), data, **HTMX).content.decode()
    assert focused(html) == ["id_ports-0-node_port"]


def test_a_plain_render_focuses_nothing(web: Client, namespace: str) -> None:
    assert focused(web.get(services_path(namespace, "create/")).content.decode()) == []


# --- 4. the small ones -------------------------------------------------------------------------------------------


def test_a_name_over_63_characters_is_refused_with_a_message_not_cut(
    web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    page = web.get(services_path(namespace, "create/")).content.decode()
    name_input = re.search(r'<input[^>]*name="name"[^>]*>', page).group(0)
    assert "maxlength" not in name_input  # the browser would cut the name there without a word
    long_name = "a" * 64
    response = web.post(services_path(namespace, "create/"), service_form(long_name))
    assert response.status_code == 422
    assert response.context["bundle"].errors["name"] == [str(forms.NEW_NAME_MESSAGES["name_length"])]
    assert f'value="{long_name}"' in response.content.decode()
    assert services_in(admin_api, namespace) == []


@pytest.mark.parametrize("timeout", ["0", "999999", "abc"])
def test_the_session_timeout_is_not_judged_while_session_affinity_is_off(
    web: Client, admin_api: k8s.ApiClient, namespace: str, timeout: str
) -> None:
    data = service_form("no-affinity", session_timeout=timeout)
    validated = web.post(services_path(namespace, "create/validate/"), data, **HTMX).content.decode()
    assert "accepts this Service" in validated
    assert web.post(services_path(namespace, "create/"), data).status_code == 302
    service = read(admin_api, namespace, "no-affinity")
    assert service.spec.session_affinity == "None" and service.spec.session_affinity_config is None


def test_the_session_timeout_is_judged_while_session_affinity_is_on(web: Client, namespace: str) -> None:
    response = web.post(
        services_path(namespace, "create/"), service_form("affinity", session_affinity=True, session_timeout=0)
    )
    assert response.status_code == 422 and "session_timeout" in response.context["bundle"].errors


def test_a_create_sent_twice_is_audited_once_as_a_success(
    web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    first, second = (web.post(services_path(namespace, "create/"), service_form("twice")) for _ in range(2))
    assert (first.status_code, second.status_code) == (302, 422)
    assert services_in(admin_api, namespace) == ["twice"]
    results = list(AuditEntry.objects.filter(object_name="twice").values_list("action", "result"))
    assert results == [("create", "success")]


def test_a_different_create_of_a_taken_name_is_still_a_failure(
    web: Client, client_for, admin_api: k8s.ApiClient, namespace: str
) -> None:
    assert web.post(services_path(namespace, "create/"), service_form("taken")).status_code == 302
    other_ports = web.post(services_path(namespace, "create/"), service_form("taken", ports=[{"port": 81}]))
    assert other_ports.status_code == 422
    other_user = client_for("cluster_admin").post(services_path(namespace, "create/"), service_form("taken"))
    assert other_user.status_code == 422
    results = list(AuditEntry.objects.filter(object_name="taken").order_by("id").values_list("username", "result"))
    assert results == [("editor", "success"), ("editor", "failed"), ("cluster-admin", "failed")]


@pytest.fixture
def client_for(people: SimpleNamespace):
    def make(who: str) -> Client:
        other = Client()
        other.force_login(getattr(people, who))
        return other

    return make


# --- 4. the API server's refusals in the user's language ---------------------------------------------------------


def test_a_taken_node_port_is_said_in_chinese_on_its_field(
    web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    taken = hold_node_port(admin_api, namespace)
    data = service_form("zh-taken", type="NodePort", ports=[{"port": 80, "node_port": taken}])
    response = web.post(services_path(namespace, "create/"), data, **ZH)
    assert response.status_code == 422
    assert response.context["bundle"].ports.forms[0].errors["node_port"] == [f"{taken} 已被其他服务使用。"]
    assert "already allocated" not in response.content.decode()


def test_a_node_port_out_of_range_is_said_in_chinese_on_its_field_and_in_the_yaml_editor(
    web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    data = service_form("zh-range", type="NodePort", ports=[{"port": 80, "node_port": 8080}])
    response = web.post(services_path(namespace, "create/"), data, **ZH)
    assert response.context["bundle"].ports.forms[0].errors["node_port"] == [
        "8080 不在集群的节点端口范围 30000-32767 内。"
    ]
    text = "apiVersion: v1\nkind: Service\nmetadata: {name: zh-range}\nspec: {type: NodePort, ports: [{port: 80, nodePort: 8080}]}\n"
    yaml_page = web.post(services_path(namespace, "create-yaml/"), {"yaml": text}, **ZH)
    assert yaml_page.status_code == 422
    assert "spec.ports[0].nodePort: 8080 不在集群的节点端口范围 30000-32767 内。" in yaml_page.context["errors"]
    assert "valid range" not in yaml_page.content.decode()
    assert services_in(admin_api, namespace) == []


def test_a_yaml_create_of_an_existing_name_is_said_in_chinese(web: Client, namespace: str) -> None:
    text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: zh-exists\nspec:\n  ports:\n  - port: 80\n"
    assert web.post(services_path(namespace, "create-yaml/"), {"yaml": text}).status_code == 302
    again = web.post(services_path(namespace, "create-yaml/"), {"yaml": text.replace("port: 80", "port: 81")}, **ZH)
    assert again.status_code == 409
    assert again.context["errors"] == ["该命名空间中已存在名为“zh-exists”的服务。"]


def test_unknown_messages_are_shown_as_the_api_server_sent_them() -> None:
    from services.api import explained

    assert explained("something else went wrong") == "something else went wrong"
