"""Credentials never appear in logs (at DEBUG), error pages, audit entries or admin history."""

from __future__ import annotations

import io
import logging

import pytest
import yaml
from django.contrib.admin.models import LogEntry
from django.test import Client
from kubernetes import client as k8s

from clusters.models import AuditEntry, Cluster
from tests.helpers import HTMX, service_form
from tools import localcluster

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]

LOGGERS = [
    "",
    "django",
    "django.request",
    "django.server",
    "urllib3",
    "kubernetes",
    "console",
    "clusters",
    "kube",
    "services",
]


def test_a_full_flow_logs_no_credential(
    caplog: pytest.LogCaptureFixture,
    client: Client,
    make_user,
    control_plane: localcluster.ControlPlane,
    admin_api: k8s.ApiClient,
    namespace: str,
    service_account_token: str,
    settings,
) -> None:
    settings.DEBUG = True  # the most talkative configuration, including Django's technical error pages
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    core = k8s.CoreV1Api(admin_api)
    token = service_account_token
    kubeconfig = control_plane.kubeconfig()
    client_key = kubeconfig["users"][0]["user"]["client-key-data"]
    secrets = [token, token[-30:], client_key[-40:], "wrong-token-value-123"]

    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    pages: list[str] = []

    def keep(response) -> None:
        pages.append(response.content.decode(errors="replace"))

    # Register with a token, fail with a wrong one, replace with a kubeconfig, test the connection.
    ca = control_plane.ca_pem.decode()
    keep(
        client.post(
            "/admin/console/cluster/add/",
            {
                "name": "flow",
                "server_url": control_plane.server,
                "token": "wrong-token-value-123",
                "certificate_authority": ca,
            },
        )
    )
    keep(
        client.post(
            "/admin/console/cluster/add/",
            {"name": "flow", "server_url": control_plane.server, "token": token, "certificate_authority": ca},
        )
    )
    cluster = Cluster.objects.get(name="flow")
    upload = io.BytesIO(yaml.safe_dump(kubeconfig).encode())
    upload.name = "kubeconfig"
    keep(client.post(f"/admin/console/cluster/{cluster.pk}/change/", {"name": "flow", "kubeconfig": upload}))
    keep(
        client.post(
            "/admin/console/cluster/", {"action": "test_connection", "_selected_action": [cluster.pk]}, follow=True
        )
    )
    keep(client.get(f"/admin/console/cluster/{cluster.pk}/change/"))
    keep(client.get(f"/admin/console/cluster/{cluster.pk}/history/"))

    # Use the Services pages: list, create (one refused), edit, YAML, detail, delete.
    base = f"/clusters/flow/namespaces/{namespace}/services/"
    keep(client.get(base))
    keep(client.post(f"{base}create/", service_form("flow-svc"), **HTMX))
    keep(client.post(f"{base}create/", service_form("flow-bad", type="NodePort", ports=[{"port": 80, "node_port": 1}])))
    keep(client.get(f"{base}flow-svc/"))
    keep(client.get(f"{base}flow-svc/edit-yaml/"))
    uid = core.read_namespaced_service("flow-svc", namespace).metadata.uid
    keep(client.post(f"{base}flow-svc/delete/", {"uid": uid}, follow=True))

    records = "\n".join(f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert len(caplog.records) > 10  # the flow was logged, at DEBUG
    audit = "\n".join(f"{e.action} {e.detail}" for e in AuditEntry.objects.all())
    history = "\n".join(f"{e.object_repr} {e.change_message}" for e in LogEntry.objects.all())
    assert AuditEntry.objects.filter(action="create", result="success").exists()
    assert LogEntry.objects.filter(object_repr="flow").exists()
    for secret in secrets:
        assert secret not in records
        assert secret not in audit
        assert secret not in history
        for page in pages:
            assert secret not in page
