"""The form's newer fields against the real API server (v1.37.2): spec.trafficDistribution, publishNotReadyAddresses
and the Service's own labels; and the API server's ``Warning`` headers, shown after a dry run and after a save.

What v1.37.2 says, checked here: it accepts PreferSameZone, PreferSameNode and PreferClose for every type (headless
and ExternalName too; the form offers the field for the routed types only), refuses anything else as an
"Unsupported value", and answers PreferClose with ``Warning: 299 - "spec.trafficDistribution: \\"PreferClose\\" is
deprecated; use \\"PreferSameZone\\""``, also on a dry run and on a create refused as AlreadyExists."""

from __future__ import annotations

import json
from html import unescape
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.utils import translation
from kubernetes import client as k8s

import kube
from clusters.models import AuditEntry, Role
from services import forms
from tests.helpers import HTMX, service_form, services_in

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]

PREFER_CLOSE_WARNING = 'spec.trafficDistribution: "PreferClose" is deprecated; use "PreferSameZone"'
LANGUAGES = ["en", "zh-hans"]


def read(admin_api: k8s.ApiClient, namespace: str, name: str) -> k8s.V1Service:
    return k8s.CoreV1Api(admin_api).read_namespaced_service(name, namespace)


def existing(admin_api: k8s.ApiClient, namespace: str, name: str = "existing", **spec: Any) -> k8s.V1Service:
    """A Service made outside the console, with labels of its own and whatever ``spec`` adds."""
    body = {
        "metadata": {"name": name, "labels": {"team": "payments", "app.kubernetes.io/managed-by": "Helm"}},
        "spec": {"selector": {"app": "pay"}, "ports": [{"name": "http", "port": 80}], **spec},
    }
    return k8s.CoreV1Api(admin_api).create_namespaced_service(namespace, body)


def in_language(web: Client, language: str) -> Client:
    web.cookies["django_language"] = language
    return web


def said(language: str, message: str, **params: Any) -> str:
    """``message`` as the console says it in ``language`` (whether or not the catalog has it yet)."""
    with translation.override(language):
        text = str(translation.gettext(message))
    return text % params if params else text


def notice(language: str, text: str) -> str:
    with translation.override(language):
        return forms.warning_notices([text])[0]


def as_shown(page) -> dict[str, Any]:
    """What the browser sends back from a form page when nothing is changed: every field as the page shows it."""
    bundle = page.context["bundle"]
    data: dict[str, Any] = {"_action": "save"}
    for form in (*bundle.sections, bundle.lock):
        for field in form:
            value = field.value()
            if field.field.disabled or value in (None, False):
                continue
            data[field.html_name] = "on" if value is True else str(value)
    for formset in bundle.formsets.values():
        for field in formset.management_form:
            data[field.html_name] = str(field.value())
        for form in formset.forms:
            for field in form:
                data[field.html_name] = "" if field.value() is None else str(field.value())
    return data


def text_of(response) -> str:
    """The page's HTML with its character references resolved, to find messages in it as they were written."""
    return unescape(response.content.decode())


def audit_warnings(name: str) -> list[str]:
    entry = AuditEntry.objects.filter(object_name=name, result=AuditEntry.Result.SUCCESS).latest("when")
    return json.loads(entry.detail.split(" warnings=", 1)[1]) if " warnings=" in entry.detail else []


# --- trafficDistribution, publishNotReadyAddresses, labels: created and edited ------------------------------------


TYPES = {
    "ClusterIP": {"ports": [{"port": 80}]},
    "headless": {"clusterIP": "None", "ports": [{"port": 80}]},
    "NodePort": {"type": "NodePort", "ports": [{"port": 80}]},
    "LoadBalancer": {"type": "LoadBalancer", "ports": [{"port": 80}]},
    "ExternalName": {"type": "ExternalName", "externalName": "db.example.com"},
}


@pytest.mark.parametrize("kind", TYPES)
def test_what_the_api_server_accepts_for_traffic_distribution(admin_api: k8s.ApiClient, namespace: str, kind: str):
    core = k8s.CoreV1Api(admin_api)
    for value in ("PreferSameZone", "PreferSameNode", "PreferClose", "Nearby"):
        body = {"metadata": {"name": "probe"}, "spec": {**TYPES[kind], "trafficDistribution": value}}
        warnings: list[str] = []
        if value == "Nearby":
            with pytest.raises(kube.ApiError) as refused:
                kube.call(core.create_namespaced_service, namespace, body, dry_run="All", warnings=warnings)
            assert refused.value.status == 422 and warnings == []
            assert refused.value.causes[0]["field"] == "spec.trafficDistribution"
            assert 'supported values: "PreferClose", "PreferSameZone", "PreferSameNode"' in refused.value.message
            continue
        stored = kube.call(core.create_namespaced_service, namespace, body, dry_run="All", warnings=warnings)
        assert stored["spec"]["trafficDistribution"] == value
        assert warnings == ([PREFER_CLOSE_WARNING] if value == "PreferClose" else [])


@pytest.mark.parametrize("service_type", ["ClusterIP", "NodePort", "LoadBalancer"])
@pytest.mark.parametrize("distribution", ["PreferSameZone", "PreferSameNode"])
def test_every_type_is_created_with_a_current_traffic_distribution(
    web: Client, service_url, admin_api: k8s.ApiClient, namespace: str, service_type: str, distribution: str
) -> None:
    data = service_form("spread-svc", type=service_type, lb_type="other", traffic_distribution=distribution)
    response = web.post(service_url("create"), data)
    assert response.status_code == 302, response.content.decode()
    stored = read(admin_api, namespace, "spread-svc")
    assert (stored.spec.type, stored.spec.traffic_distribution) == (service_type, distribution)
    assert audit_warnings("spread-svc") == []  # the current names draw no warning
    assert not [m for m in get_messages(response.wsgi_request) if m.level_tag == "warning"]


def test_a_service_is_created_with_not_ready_addresses_and_labels(
    web: Client, service_url, admin_api: k8s.ApiClient, namespace: str
) -> None:
    labels = {"team": "shop", "app.kubernetes.io/part-of": "store", "tier": ""}
    data = service_form("labelled", publish_not_ready_addresses=True, labels=labels)
    assert web.post(service_url("create"), data).status_code == 302
    stored = read(admin_api, namespace, "labelled")
    assert stored.spec.publish_not_ready_addresses is True
    assert stored.metadata.labels == labels
    assert stored.spec.traffic_distribution is None


def test_the_create_form_offers_the_current_names_and_the_new_fields(web: Client, service_url) -> None:
    page = web.get(service_url("create")).content.decode()
    assert '<option value="PreferSameZone">' in page and '<option value="PreferSameNode">' in page
    assert "PreferClose" not in page
    assert 'name="publish_not_ready_addresses"' in page
    assert 'name="labels-TOTAL_FORMS" value="0"' in page and 'id="add-labels"' in page


@pytest.mark.parametrize("language", LANGUAGES)
def test_an_edit_of_a_service_with_prefer_close_keeps_it_and_says_it_is_deprecated(
    web: Client, service_url, admin_api: k8s.ApiClient, namespace: str, language: str
) -> None:
    before = existing(admin_api, namespace, trafficDistribution="PreferClose")
    page = in_language(web, language).get(service_url("edit", "existing"))
    html = text_of(page)
    assert f'lang="{language}"' in html
    assert '<option value="PreferClose" selected>' in html
    assert said(language, "PreferClose (deprecated name of PreferSameZone)") in html
    deprecated = said(
        language,
        "PreferClose is the deprecated name of PreferSameZone and works the same; choose PreferSameZone to use "
        "the current name.",
    )
    assert f'<div class="notice notice-warning" id="id_traffic_distribution_helptext">{deprecated}</div>' in html
    assert '<details class="card advanced" open>' in html

    response = web.post(service_url("edit", "existing"), as_shown(page), follow=True)
    assert response.status_code == 200
    after = read(admin_api, namespace, "existing")
    assert after.spec.traffic_distribution == "PreferClose"
    assert after.metadata.labels == before.metadata.labels  # untouched labels stay exactly as they were
    listing = text_of(response)
    assert said(language, "Service “%(name)s” updated.", name="existing") in listing
    assert f'<div class="notice notice-warning" role="status">{notice(language, PREFER_CLOSE_WARNING)}</div>' in listing
    assert audit_warnings("existing") == [PREFER_CLOSE_WARNING]


def test_an_edit_changes_the_new_fields_and_the_labels(
    web: Client, service_url, admin_api: k8s.ApiClient, namespace: str
) -> None:
    before = existing(admin_api, namespace, trafficDistribution="PreferClose")
    data = service_form(
        "existing",
        ports=[{"name": "http", "port": 80}],
        selector={"app": "pay"},
        traffic_distribution="PreferSameZone",
        publish_not_ready_addresses=True,
        labels={"team": "ops", "app.kubernetes.io/managed-by": "Helm", "new": "yes"},
        resource_version=before.metadata.resource_version,
    )
    assert web.post(service_url("edit", "existing"), data).status_code == 302
    after = read(admin_api, namespace, "existing")
    assert (after.spec.traffic_distribution, after.spec.publish_not_ready_addresses) == ("PreferSameZone", True)
    assert after.metadata.labels == {"team": "ops", "app.kubernetes.io/managed-by": "Helm", "new": "yes"}
    assert audit_warnings("existing") == []

    # Unset, unticked and every label removed.
    data = service_form(
        "existing",
        ports=[{"name": "http", "port": 80}],
        selector={"app": "pay"},
        labels={},
        resource_version=after.metadata.resource_version,
    )
    assert web.post(service_url("edit", "existing"), data).status_code == 302
    cleared = read(admin_api, namespace, "existing")
    assert cleared.spec.traffic_distribution is None and not cleared.spec.publish_not_ready_addresses
    assert cleared.metadata.labels is None


def test_an_edit_that_sends_no_label_rows_keeps_the_labels(
    web: Client, service_url, admin_api: k8s.ApiClient, namespace: str
) -> None:
    before = existing(admin_api, namespace)
    data = service_form(
        "existing", ports=[{"name": "http", "port": 8080}], resource_version=before.metadata.resource_version
    )
    assert "labels-TOTAL_FORMS" not in data
    assert web.post(service_url("edit", "existing"), data).status_code == 302
    after = read(admin_api, namespace, "existing")
    assert after.spec.ports[0].port == 8080 and after.metadata.labels == before.metadata.labels


@pytest.mark.parametrize("language", LANGUAGES)
def test_invalid_labels_are_refused_with_the_input_kept(
    web: Client, service_url, admin_api: k8s.ApiClient, namespace: str, language: str
) -> None:
    data = service_form("bad-labels", labels={"my team": "shop", "tier": "-web"})
    response = in_language(web, language).post(service_url("create"), data)
    assert response.status_code == 422
    html = text_of(response)
    key_rule = said(
        language,
        "Use at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit "
        "(optionally prefixed by a DNS subdomain and '/').",
    )
    value_rule = said(
        language, "Use at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit."
    )
    assert key_rule in html and value_rule in html
    assert 'value="my team"' in html and 'value="-web"' in html
    assert "bad-labels" not in services_in(admin_api, namespace)


# --- the API server's warnings --------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_live_validation_shows_the_api_servers_warning(
    web: Client, service_url, admin_api: k8s.ApiClient, namespace: str, language: str
) -> None:
    existing(admin_api, namespace, trafficDistribution="PreferClose")
    page = in_language(web, language).get(service_url("edit", "existing"))
    answer = web.post(service_url("edit_validate", "existing"), as_shown(page), **HTMX)
    assert answer.status_code == 200
    html = text_of(answer)
    assert '<div id="api-warnings" aria-live="polite" hx-swap-oob="true">' in html
    assert f'<div class="notice notice-warning">{notice(language, PREFER_CLOSE_WARNING)}</div>' in html
    assert said(language, "The API server accepts this Service (dry run).") in html

    # Once the current name is chosen, the next validation clears the warning.
    fixed = web.post(
        service_url("edit_validate", "existing"),
        as_shown(page) | {"traffic_distribution": "PreferSameZone"},
        **HTMX,
    ).content.decode()
    assert '<div id="api-warnings" aria-live="polite" hx-swap-oob="true"></div>' in fixed


def test_review_changes_shows_the_api_servers_warning(
    web: Client, service_url, admin_api: k8s.ApiClient, namespace: str
) -> None:
    existing(admin_api, namespace, trafficDistribution="PreferClose")
    page = web.get(service_url("edit", "existing"))
    review = web.post(service_url("edit", "existing"), as_shown(page) | {"_action": "review"}, **HTMX)
    assert review.status_code == 200
    assert notice("en", PREFER_CLOSE_WARNING) in text_of(review)
    assert AuditEntry.objects.count() == 0  # a dry run is not a change


PREFER_CLOSE_YAML = """apiVersion: v1
kind: Service
metadata:
  name: yaml-close
spec:
  selector: {app: web}
  trafficDistribution: PreferClose
  ports: [{port: 80}]
"""


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_yaml_editors_validate_shows_the_api_servers_warning(
    web: Client, service_url, admin_api: k8s.ApiClient, namespace: str, language: str
) -> None:
    response = in_language(web, language).post(
        service_url("create_yaml"), {"yaml": PREFER_CLOSE_YAML, "_action": "validate"}, **HTMX
    )
    assert response.status_code == 200
    html = text_of(response)
    assert said(language, "The API server accepts this Service (dry run).") in html
    assert f'<div class="notice notice-warning" role="status">{notice(language, PREFER_CLOSE_WARNING)}</div>' in html
    assert "yaml-close" not in services_in(admin_api, namespace)


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_yaml_save_shows_the_warning_on_the_list_and_audits_it(
    web: Client, service_url, admin_api: k8s.ApiClient, namespace: str, language: str
) -> None:
    response = in_language(web, language).post(
        service_url("create_yaml"), {"yaml": PREFER_CLOSE_YAML, "_action": "save"}, follow=True
    )
    assert response.status_code == 200
    assert read(admin_api, namespace, "yaml-close").spec.traffic_distribution == "PreferClose"
    listing = text_of(response)
    assert f'lang="{language}"' in listing
    assert f'<div class="notice notice-warning" role="status">{notice(language, PREFER_CLOSE_WARNING)}</div>' in listing
    assert audit_warnings("yaml-close") == [PREFER_CLOSE_WARNING]


def test_a_refused_save_shows_the_warning_the_refusal_carried(
    web: Client, service_url, admin_api: k8s.ApiClient, namespace: str
) -> None:
    """v1.37.2 answers a create of a taken name with PreferClose with 409 AlreadyExists and the warning."""
    existing(admin_api, namespace, name="yaml-close")
    response = web.post(service_url("create_yaml"), {"yaml": PREFER_CLOSE_YAML, "_action": "save"}, **HTMX)
    assert response.status_code == 409
    html = text_of(response)
    assert "already exists" in html and notice("en", PREFER_CLOSE_WARNING) in html


def test_several_warnings_are_all_shown_and_audited(make_user, cluster, admin_api: k8s.ApiClient, namespace: str):
    """A Cluster Admin's externalIPs draw a warning from v1.37.2, and so does a deprecated topology annotation."""
    admin_web = Client()
    admin_web.force_login(make_user("cadmin", role=Role.CLUSTER_ADMIN, cluster=cluster))
    data = service_form(
        "many-warnings",
        external_ips="192.0.2.70",
        traffic_distribution="PreferSameZone",
        annotations={"service.kubernetes.io/topology-aware-hints": "auto"},
    )
    response = admin_web.post(f"/clusters/local/namespaces/{namespace}/services/create/", data, follow=True)
    assert response.status_code == 200
    expected = [
        "annotation service.kubernetes.io/topology-aware-hints is deprecated, please use "
        "service.kubernetes.io/topology-mode instead",
        "spec.externalIPs is deprecated and may no longer be implemented in some clusters",
    ]
    assert sorted(audit_warnings("many-warnings")) == expected
    listing = text_of(response)
    for text in expected:
        assert notice("en", text) in listing


# --- kube.call's warnings, as the client sees them ----------------------------------------------------------------


def test_call_collects_the_warnings_of_an_answer_and_of_a_refusal(admin_api: k8s.ApiClient, namespace: str) -> None:
    core = k8s.CoreV1Api(admin_api)
    body = {"metadata": {"name": "warned"}, "spec": {"ports": [{"port": 80}], "trafficDistribution": "PreferClose"}}
    warnings: list[str] = []
    kube.call(core.create_namespaced_service, namespace, body, dry_run="All", warnings=warnings)
    assert warnings == [PREFER_CLOSE_WARNING]
    kube.call(core.create_namespaced_service, namespace, body)  # no list given: nothing collected, nothing fails
    refused: list[str] = []
    with pytest.raises(kube.ApiError) as error:
        kube.call(core.create_namespaced_service, namespace, body, warnings=refused)
    assert error.value.status == 409 and refused == [PREFER_CLOSE_WARNING]


@pytest.mark.parametrize(
    ("headers", "texts"),
    [
        ({"Warning": '299 - "one"'}, ["one"]),
        ({"warning": '299 - "a, \\"quoted\\" b", 299 - "c"'}, ['a, "quoted" b', "c"]),
        ({"Warning": '299 - "dated" "Wed, 21 Oct 2015 07:28:00 GMT", 199 proxy "not the API server\'s"'}, ["dated"]),
        ({"Warning": '299 - "caf\xc3\xa9"'}, ["café"]),  # UTF-8 as http.client hands it over (Latin-1)
        ({"Warning": "not a warning value"}, []),
        ({"Content-Type": "application/json"}, []),
        (None, []),
    ],
)
def test_warning_headers_are_read_as_rfc_7234_says(headers: Any, texts: list[str]) -> None:
    assert kube.client.warning_texts(headers) == texts
