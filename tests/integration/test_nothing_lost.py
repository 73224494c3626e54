"""Nothing lost, item by item (issue 21): what the form cannot show exactly is kept, a Service without ports saves
unchanged, a change preview does not invent node ports, a conflict shows only real differences, and the YAML
editor follows the form's naming rule and speaks the user's language. Pages are submitted as a browser would
(``tests.browser_form``), from the HTML the console served."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from kubernetes import client as k8s

from tests.browser_form import submit
from tests.helpers import HTMX

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]

AMBASSADOR = (
    "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nname: quote_mapping\n"
    "prefix: /quote/\n  service: quote:80\n"
)


def create(admin_api: k8s.ApiClient, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    k8s.CoreV1Api(admin_api).create_namespaced_service(namespace, body)
    return read(admin_api, namespace, body["metadata"]["name"])


def read(admin_api: k8s.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    answer = k8s.CoreV1Api(admin_api).read_namespaced_service(name, namespace, _preload_content=False)
    return json.loads(answer.data)


def save_unchanged(web: Client, url: str, **options: Any):
    page = web.get(url)
    assert page.status_code == 200
    sent = submit(page.content, "service-form", url=url, **options)
    return web.post(sent.action, sent.body, content_type="application/x-www-form-urlencoded", **sent.headers)


def text(response) -> str:
    return unescape(re.sub(r"<[^>]+>", "", response.content.decode()))


@pytest.mark.parametrize("htmx", [False, True])
def test_a_multi_line_annotation_is_shown_in_a_textarea_and_kept(
    web: Client, admin_api: k8s.ApiClient, namespace: str, service_url, htmx: bool
) -> None:
    annotations = {"getambassador.io/config": AMBASSADOR, "example.com/crlf": "one\r\ntwo", "example.com/pad": " x "}
    before = create(
        admin_api,
        namespace,
        {
            "metadata": {"name": "quote", "annotations": annotations},
            "spec": {"selector": {"app": "q"}, "ports": [{"port": 80}]},
        },
    )
    page = web.get(service_url("edit", "quote")).content.decode()
    assert re.search(r'<textarea name="annotations-\d-value"[^>]*>\n---\napiVersion: getambassador', page)
    answer = save_unchanged(web, service_url("edit", "quote"), htmx=htmx)
    assert answer.status_code == 302 or answer.headers.get("HX-Redirect"), text(answer)
    after = read(admin_api, namespace, "quote")
    assert after["metadata"]["annotations"] == before["metadata"]["annotations"]
    assert after["spec"] == before["spec"]


def test_an_annotation_a_browser_cannot_carry_is_kept_aside(
    web: Client, admin_api: k8s.ApiClient, namespace: str, service_url
) -> None:
    before = create(
        admin_api,
        namespace,
        {
            "metadata": {"name": "nul-value", "annotations": {"example.com/raw": "a\x00b"}},
            "spec": {"selector": {"app": "q"}, "ports": [{"port": 80}]},
        },
    )
    assert "example.com/raw" not in web.get(service_url("edit", "nul-value")).content.decode()
    answer = save_unchanged(web, service_url("edit", "nul-value"))
    assert answer.status_code == 302, text(answer)
    assert read(admin_api, namespace, "nul-value")["metadata"]["annotations"] == before["metadata"]["annotations"]


def test_an_external_name_service_without_ports_saves_unchanged(
    client: Client, people, admin_api: k8s.ApiClient, namespace: str, service_url
) -> None:
    before = create(
        admin_api,
        namespace,
        {
            "metadata": {"name": "my-service"},
            "spec": {"type": "ExternalName", "externalName": "my.database.example.com"},
        },
    )
    for who in (people.cluster_admin, people.editor):  # the editor may not make one, but may save this one
        client.force_login(who)
        page = client.get(service_url("edit", "my-service")).content.decode()
        assert 'name="ports-0-port"' not in page  # no empty port row to trip over
        answer = save_unchanged(client, service_url("edit", "my-service"))
        assert answer.status_code == 302, text(answer)
        assert read(admin_api, namespace, "my-service")["spec"] == before["spec"]


def test_a_headless_service_without_ports_saves_unchanged(
    web: Client, admin_api: k8s.ApiClient, namespace: str, service_url
) -> None:
    before = create(
        admin_api, namespace, {"metadata": {"name": "peers"}, "spec": {"clusterIP": "None", "selector": {"app": "p"}}}
    )
    answer = save_unchanged(web, service_url("edit", "peers"))
    assert answer.status_code == 302, text(answer)
    assert read(admin_api, namespace, "peers")["spec"] == before["spec"]


def test_the_change_preview_says_the_cluster_assigns_the_node_port(
    web: Client, admin_api: k8s.ApiClient, namespace: str, service_url
) -> None:
    create(
        admin_api,
        namespace,
        {"metadata": {"name": "grows"}, "spec": {"selector": {"app": "g"}, "ports": [{"port": 80}]}},
    )
    page = web.get(service_url("edit", "grows"))
    sent = submit(page.content, "service-form", submitter={"value": "review"}, url=service_url("edit", "grows"))
    entries = [(k, "NodePort" if k == "type" else v) for k, v in sent.entries]
    preview = web.post(sent.action, urlencode(entries), content_type="application/x-www-form-urlencoded")
    html = text(preview)
    assert preview.status_code == 200 and "Changes to be saved" in html, html[:2000]
    assert re.search(r"^\+ .*nodePort: \(assigned by the cluster when saved\)$", html, flags=re.MULTILINE), html
    assert not re.search(r"nodePort: \d+", html)


def test_a_conflict_shows_only_the_users_change_over_the_current_version(
    web: Client, admin_api: k8s.ApiClient, namespace: str, service_url
) -> None:
    core = k8s.CoreV1Api(admin_api)
    create(
        admin_api,
        namespace,
        {"metadata": {"name": "raced"}, "spec": {"selector": {"app": "r"}, "ports": [{"name": "http", "port": 80}]}},
    )
    page = web.get(service_url("edit", "raced"))
    sent = submit(page.content, "service-form", url=service_url("edit", "raced"))
    # Meanwhile someone else adds an annotation and a port.
    current = core.read_namespaced_service("raced", namespace)
    current.metadata.annotations = {"team": "ops"}
    current.spec.ports.append(k8s.V1ServicePort(name="metrics", port=9090))
    core.replace_namespaced_service("raced", namespace, current)
    # The user renames the port and saves.
    entries = [(k, "web" if k == "ports-0-name" else v) for k, v in sent.entries]
    answer = web.post(sent.action, urlencode(entries), content_type="application/x-www-form-urlencoded")
    html = text(answer)
    assert answer.status_code == 409, html[:2000]
    diff = re.findall(r"^[-+] .*$", html, flags=re.MULTILINE)
    assert diff == ["-  - name: http", "+  - name: web"], diff  # not the other writer's annotation, nor their port
    assert "resourceVersion" not in html.split("Your version compared with the current one")[1]


@pytest.mark.parametrize(
    ("yaml_text", "english"),
    [
        ("apiVersion: v1\nkind: Service\nmetadata: {name: web-svc}\nspec: {ports: [{port: abc}]}\n", "Input should"),
        ("apiVersion: v1\nkind: Service\nmetadata:\n  name: web-svc\n spec: x\n", "mapping values"),
    ],
)
def test_yaml_create_refusals_are_in_chinese(
    web: Client, namespace: str, service_url, yaml_text: str, english: str
) -> None:
    web.cookies["django_language"] = "zh-hans"
    answer = web.post(service_url("create_yaml"), {"yaml": yaml_text, "_action": "save"}, **HTMX)
    said = text(answer)
    assert answer.status_code == 422
    assert english not in said
    errors = re.search(r'role="alert">(.*?)</div>\s*</div>', answer.content.decode(), flags=re.S).group(1)
    assert not re.search(r"[A-Za-z]{4,} [a-z]{3,} [a-z]{3,}", unescape(re.sub(r"<[^>]+>", " ", errors))), errors


def test_yaml_create_follows_the_forms_naming_rule_and_short_names_made_elsewhere_stay_editable(
    web: Client, admin_api: k8s.ApiClient, namespace: str, service_url
) -> None:
    short = "apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec: {ports: [{port: 5432}]}\n"
    refused = web.post(service_url("create_yaml"), {"yaml": short, "_action": "save"})
    assert refused.status_code == 422 and "4 to 63 characters" in text(refused)
    form = web.post(service_url("create"), {"name": "db", "type": "ClusterIP"})
    assert "4 to 63 characters" in text(form)
    create(
        admin_api,
        namespace,
        {"metadata": {"name": "db"}, "spec": {"selector": {"app": "db"}, "ports": [{"port": 5432}]}},
    )
    assert save_unchanged(web, service_url("edit", "db")).status_code == 302
