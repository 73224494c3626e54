"""The advanced section, and the fields only a Cluster Admin is offered (headless, ExternalName, externalIPs)."""

from __future__ import annotations

import pytest
from django.test import Client
from kubernetes import client as k8s

from clusters.models import Cluster, Role
from tests.helpers import service_form

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]


@pytest.fixture
def admin_web(make_user, cluster: Cluster) -> Client:
    web = Client()
    web.force_login(make_user("cadmin", role=Role.CLUSTER_ADMIN, cluster=cluster))
    return web


@pytest.fixture
def editor_web(make_user, cluster: Cluster, namespace: str) -> Client:
    web = Client()
    web.force_login(make_user("nsedit", role=Role.NS_EDIT, cluster=cluster, namespace=namespace))
    return web


def create(web: Client, namespace: str, data: dict) -> int:
    return web.post(f"/clusters/local/namespaces/{namespace}/services/create/", data).status_code


def read(admin_api: k8s.ApiClient, namespace: str, name: str) -> k8s.V1Service:
    return k8s.CoreV1Api(admin_api).read_namespaced_service(name, namespace)


def test_a_cluster_admin_creates_a_headless_service_with_external_ips_and_policies(
    admin_web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    data = service_form(
        "headless-svc",
        headless=True,
        external_ips="192.0.2.50, 192.0.2.51",
        internal_traffic_policy="Local",
        ip_family_policy="SingleStack",
    )
    assert create(admin_web, namespace, data) == 302
    service = read(admin_api, namespace, "headless-svc")
    assert service.spec.cluster_ip == "None"
    assert service.spec.external_ips == ["192.0.2.50", "192.0.2.51"]
    assert service.spec.internal_traffic_policy == "Local"
    assert service.spec.ip_family_policy == "SingleStack"


def test_a_cluster_admin_creates_an_external_name_service(
    admin_web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    data = service_form("db-alias", type="ExternalName", external_name="db.example.com", ports=[], selector={})
    assert create(admin_web, namespace, data) == 302
    service = read(admin_api, namespace, "db-alias")
    assert (service.spec.type, service.spec.external_name, service.spec.selector) == (
        "ExternalName",
        "db.example.com",
        None,
    )


def test_an_external_name_needs_a_dns_name(admin_web: Client, namespace: str) -> None:
    response = admin_web.post(
        f"/clusters/local/namespaces/{namespace}/services/create/",
        service_form("db-alias", type="ExternalName", external_name="Not A Name", ports=[], selector={}),
    )
    assert response.status_code == 422 and "Give a DNS name" in response.content.decode()


def test_load_balancer_class_and_source_ranges(editor_web: Client, admin_api: k8s.ApiClient, namespace: str) -> None:
    data = service_form(
        "lb-advanced",
        type="LoadBalancer",
        lb_type="other",
        load_balancer_class="example.com/internal",
        load_balancer_source_ranges="203.0.113.0/24\n198.51.100.0/25",
    )
    assert create(editor_web, namespace, data) == 302
    service = read(admin_api, namespace, "lb-advanced")
    assert service.spec.load_balancer_class == "example.com/internal"
    assert service.spec.load_balancer_source_ranges == ["203.0.113.0/24", "198.51.100.0/25"]


def test_namespace_editors_are_not_offered_the_admin_fields_and_posting_them_does_nothing(
    editor_web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    page = editor_web.get(f"/clusters/local/namespaces/{namespace}/services/create/").content.decode()
    assert 'name="external_ips"' not in page and 'name="headless"' not in page and "ExternalName" not in page
    refused = editor_web.post(
        f"/clusters/local/namespaces/{namespace}/services/create/",
        service_form("alias", type="ExternalName", external_name="evil.example.com", ports=[], selector={}),
    )
    assert refused.status_code == 422 and "Select a valid choice" in refused.content.decode()
    assert create(editor_web, namespace, service_form("sneaky", headless=True, external_ips="192.0.2.99")) == 302
    service = read(admin_api, namespace, "sneaky")
    assert service.spec.external_ips is None and service.spec.cluster_ip != "None"


def test_an_editors_change_keeps_the_external_ips_an_admin_set(
    admin_web: Client, editor_web: Client, admin_api: k8s.ApiClient, namespace: str
) -> None:
    assert create(admin_web, namespace, service_form("shared", external_ips="192.0.2.60")) == 302
    version = (
        editor_web.get(f"/clusters/local/namespaces/{namespace}/services/shared/edit/")
        .context["bundle"]["resource_version"]
        .value()
    )
    edited = editor_web.post(
        f"/clusters/local/namespaces/{namespace}/services/shared/edit/",
        service_form("shared", ports=[{"port": 8080}], resource_version=version),
    )
    assert edited.status_code == 302
    service = read(admin_api, namespace, "shared")
    assert service.spec.ports[0].port == 8080 and service.spec.external_ips == ["192.0.2.60"]
