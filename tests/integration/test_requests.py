"""Requests Django itself refuses (too large, too many fields, malformed, without a CSRF token) get a page in the
layout that says what happened, never Django's bare "Bad Request (400)"; under HTMX the form stays as typed."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]


@pytest.fixture
def editor(client: Client, people) -> Client:
    client.force_login(people.editor)
    return client


def test_a_form_with_more_fields_than_allowed_gets_a_clear_page(editor: Client, service_url, settings) -> None:
    data = {f"ports-{i}-port": "80" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)}
    response = editor.post(service_url("create"), data)
    html = response.content.decode()
    assert response.status_code == 413
    assert "more than 2000 fields" in html and "Nothing was saved" in html
    assert 'class="sidenav"' in html  # inside the layout, with the navigation


def test_under_htmx_the_refusal_goes_to_the_message_area_and_the_form_is_left_alone(
    editor: Client, service_url, settings
) -> None:
    body = "# " + "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    response = editor.post(service_url("create_yaml"), {"yaml": body}, HTTP_HX_REQUEST="true")
    assert response.status_code == 413
    assert response["HX-Retarget"] == "#messages" and response["HX-Reswap"] == "innerHTML"
    html = response.content.decode()
    assert "larger than the console accepts" in html and "<form" not in html


def test_the_status_413_is_swapped_by_htmx() -> None:
    from django.template.loader import render_to_string

    assert '{"code": "413", "swap": true, "error": false}' in render_to_string("base.html")


def test_a_method_a_page_does_not_take_gets_a_page_not_an_empty_405(editor: Client, service_url) -> None:
    response = editor.get(service_url("delete", "web"))
    assert response.status_code == 405 and response["Allow"] == "POST"
    html = response.content.decode()
    assert "does not answer a request of this kind" in html and 'id="main"' in html


def test_a_malformed_request_gets_the_consoles_400_page(client: Client) -> None:
    response = client.get("/clusters/", HTTP_HOST="not allowed.example")
    assert response.status_code == 400
    html = response.content.decode()
    assert "could not read what the browser sent" in html and "Bad Request (400)" not in html


def test_a_form_without_its_csrf_token_says_to_reload(people, service_url) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(people.editor)
    response = browser.post(service_url("create_yaml"), {"yaml": "apiVersion: v1"})
    assert response.status_code == 403
    assert "Reload the page, then send it again" in response.content.decode()


DEEP = "[" * 5000 + "]" * 5000  # PyYAML composes recursively: this exhausted Python's stack (RecursionError)


def test_deeply_nested_yaml_in_the_yaml_editor_gets_a_message(
    editor: Client, service_url, admin_api, namespace
) -> None:
    response = editor.post(service_url("create_yaml"), {"yaml": DEEP})
    assert response.status_code == 422
    assert "nests more than 100 levels" in response.content.decode()


def test_a_deeply_nested_kubeconfig_is_refused_by_register_cluster_with_a_message() -> None:
    from django.core.management.base import CommandError

    from clusters.management.commands.register_cluster import register_cluster
    from clusters.models import Cluster

    with pytest.raises(CommandError, match="nests more than 100 levels"):
        register_cluster("deep", ("clusters: " + DEEP).encode())
    assert not Cluster.objects.filter(name="deep").exists()
