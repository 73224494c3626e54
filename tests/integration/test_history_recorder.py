"""The history recorder against the real API server: every change is one version, with who made it (the console's
audit entry for its own writes, the field managers for everyone else's) and which fields; a recorder that stops
resumes where it stopped, storing nothing twice and missing nothing; one that was away too long relists and says
so. (Two recorder processes on one PostgreSQL, one killed mid-stream: tests/integration/test_history_replicas.py.)"""

from __future__ import annotations

import datetime
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.db import DatabaseError
from django.test import Client
from django.utils import timezone
from kubernetes import client as k8s

from clusters.models import AuditEntry, Cluster, Role
from services.models import RecorderCheckpoint, ServiceVersion
from services.recorder import ClusterRecorder, prune
from tests.browser_form import submit
from tests.helpers import service_form
from tools import localcluster

pytestmark = pytest.mark.cluster

HTTP = [{"protocol": "TCP", "name": "http", "port": 80, "target_port": 8080}]


def latest_version(admin_api: k8s.ApiClient, namespace: str) -> str:
    """A resourceVersion at least as new as every write made so far (a list's)."""
    return k8s.CoreV1Api(admin_api).list_namespaced_service(namespace).metadata.resource_version


def edit_in_form(web: Client, url: str, changes: dict[str, str]) -> None:
    """Open the edit form, change the named fields as a person would, and save."""
    page = web.get(url)
    assert page.status_code == 200
    sent = submit(page.content, "service-form", url=url)
    entries = [(name, changes.get(name, value)) for name, value in sent.entries]
    missing = set(changes) - {name for name, _value in sent.entries}
    assert not missing, missing
    from urllib.parse import urlencode

    saved = web.post(sent.action, urlencode(entries), content_type="application/x-www-form-urlencoded", **sent.headers)
    assert saved.status_code == 302, saved.content.decode()[-3000:]


def versions_of(cluster: Cluster, namespace: str, name: str) -> list[ServiceVersion]:
    return list(ServiceVersion.objects.filter(cluster=cluster, namespace=namespace, name=name).order_by("id"))


def console_author(version: ServiceVersion) -> str:
    """The console user whose write made this version, from the audit log ("" for writes made elsewhere)."""
    entries = AuditEntry.objects.filter(result="success", cluster=version.cluster.name, namespace=version.namespace)
    if version.change == ServiceVersion.Change.DELETED:
        entries = entries.filter(action="delete", uid=version.uid)
    else:
        entries = entries.filter(object_name=version.name, resource_version=version.resource_version)
    return ",".join(entries.values_list("username", flat=True))


def kubectl_edit(control_plane: localcluster.ControlPlane, tmp_path: Path, namespace: str, name: str) -> None:
    """``kubectl edit`` with an editor that adds an annotation, as a person in vi would."""
    kubeconfig = tmp_path / "admin.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(control_plane.kubeconfig()))
    kubeconfig.chmod(0o600)
    editor = tmp_path / "editor"
    editor.write_text(
        f"#!{sys.executable}\n"
        "import sys, yaml\n"
        "path = sys.argv[-1]\n"
        "service = yaml.safe_load(open(path))\n"
        "service['metadata'].setdefault('annotations', {})['example.com/owner'] = 'team-a'\n"
        "open(path, 'w').write(yaml.safe_dump(service))\n"
    )
    editor.chmod(editor.stat().st_mode | stat.S_IXUSR)
    done = subprocess.run(
        [str(localcluster.ensure_kubectl()), f"--kubeconfig={kubeconfig}", "-n", namespace, "edit", f"service/{name}"],
        env={**os.environ, "KUBE_EDITOR": str(editor)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def helm_apply(admin_api: k8s.ApiClient, namespace: str, name: str, labels: dict[str, str]) -> None:
    """A server-side apply with field manager ``helm``, as Helm 4 applies a release's objects."""
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels}}
    k8s.CoreV1Api(admin_api).patch_namespaced_service(
        name, namespace, body, field_manager="helm", _content_type="application/apply-patch+yaml"
    )


def test_six_changes_by_two_console_users_kubectl_helm_and_a_delete_are_six_versions(
    cluster: Cluster, make_user, namespace: str, admin_api: k8s.ApiClient, control_plane, tmp_path: Path
) -> None:
    recorder = ClusterRecorder(cluster)
    recorder.relist(after_gap=False)  # recording begins
    alice = make_user("alice", role=Role.NS_EDIT, cluster=cluster, namespace=namespace)
    bob = make_user("bob", role=Role.NS_EDIT, cluster=cluster, namespace=namespace)
    as_alice, as_bob = Client(), Client()
    as_alice.force_login(alice)
    as_bob.force_login(bob)
    base = f"/clusters/local/namespaces/{namespace}/services/"

    created = as_alice.post(f"{base}create/", service_form("web-app", ports=HTTP, selector={"app": "web-app"}))
    assert created.status_code == 302, created.content.decode()[-2000:]
    edit_in_form(as_bob, f"{base}web-app/edit/", {"ports-0-port": "81"})
    edit_in_form(as_alice, f"{base}web-app/edit/", {"ports-0-target_port": "9090"})
    kubectl_edit(control_plane, tmp_path, namespace, "web-app")
    helm_apply(admin_api, namespace, "web-app", {"helm.sh/chart": "web-1.2.0"})
    k8s.CoreV1Api(admin_api).delete_namespaced_service("web-app", namespace)

    recorder.record_until(latest_version(admin_api, namespace))

    versions = versions_of(cluster, namespace, "web-app")
    assert [v.change for v in versions] == ["created", "changed", "changed", "changed", "changed", "deleted"]
    assert [console_author(v) for v in versions] == ["alice", "bob", "alice", "", "", ""]
    console = [{"manager": "kube-service-console", "operation": "Update"}]
    assert [v.managers for v in versions] == [
        console,
        console,
        console,
        [{"manager": "kubectl-edit", "operation": "Update"}],
        [{"manager": "helm", "operation": "Apply"}],
        [],
    ]
    assert [v.fields for v in versions[1:5]] == [
        ["spec.ports[http].port"],
        ["spec.ports[http].targetPort"],
        ["metadata.annotations.example.com/owner"],
        ["metadata.labels.helm.sh/chart"],
    ]
    assert versions[0].manifest["spec"]["selector"] == {"app": "web-app"}
    assert versions[4].manifest["metadata"]["labels"] == {"helm.sh/chart": "web-1.2.0"}
    assert versions[5].manifest == versions[4].manifest | {"metadata": versions[5].manifest["metadata"]}
    # Versions keep no status, no managedFields and no resourceVersion in the stored object.
    for version in versions:
        assert "status" not in version.manifest
        assert not {"managedFields", "resourceVersion"} & set(version.manifest["metadata"])
        assert not version.after_gap
    assert len({v.resource_version for v in versions}) == 6


def test_a_restarted_recorder_resumes_from_its_checkpoint_storing_nothing_twice(
    cluster: Cluster, namespace: str, admin_api: k8s.ApiClient
) -> None:
    core = k8s.CoreV1Api(admin_api)
    ClusterRecorder(cluster).relist(after_gap=False)
    written: list[str] = []

    def write(number: int) -> None:
        body = {"metadata": {"name": f"s{number % 3}", "labels": {"n": str(number)}}, "spec": {"ports": [{"port": 80}]}}
        try:
            current = core.read_namespaced_service(body["metadata"]["name"], namespace)
        except k8s.ApiException:
            written.append(core.create_namespaced_service(namespace, body).metadata.resource_version)
            return
        current.metadata.labels = body["metadata"]["labels"]
        written.append(
            core.replace_namespaced_service(current.metadata.name, namespace, current).metadata.resource_version
        )

    for number in range(6):
        write(number)
    first = ClusterRecorder(cluster)
    first.record_until(written[3])  # stopped part-way, its memory lost
    for number in range(6, 12):
        write(number)
    ClusterRecorder(cluster).record_until(written[-1])

    stored = ServiceVersion.objects.filter(cluster=cluster, namespace=namespace)
    assert sorted(stored.values_list("resource_version", flat=True), key=int) == written
    assert not stored.filter(after_gap=True).exists()
    assert RecorderCheckpoint.objects.get(cluster=cluster).resource_version >= written[-1]


def test_status_changes_are_not_versions(cluster: Cluster, namespace: str, admin_api: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(admin_api)
    recorder = ClusterRecorder(cluster)
    recorder.relist(after_gap=False)
    core.create_namespaced_service(
        namespace, {"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}
    )
    status = {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}}
    core.patch_namespaced_service_status("lb", namespace, status)
    recorder.record_until(latest_version(admin_api, namespace))
    assert [v.change for v in versions_of(cluster, namespace, "lb")] == ["created"]


def test_after_a_gap_the_recorder_relists_and_marks_what_changed_meanwhile(
    cluster: Cluster, namespace: str, admin_api: k8s.ApiClient
) -> None:
    """When the API server no longer has the events after the checkpoint (410 Gone), the recorder lists the
    cluster and stores what differs: one version per object changed, deleted or new, marked as after a gap."""
    core = k8s.CoreV1Api(admin_api)
    for name in ("kept", "changed", "deleted"):
        core.create_namespaced_service(namespace, {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}})
    recorder = ClusterRecorder(cluster)
    recorder.record_until(latest_version(admin_api, namespace))
    core.patch_namespaced_service("changed", namespace, {"metadata": {"labels": {"new": "yes"}}})
    core.delete_namespaced_service("deleted", namespace)
    core.create_namespaced_service(namespace, {"metadata": {"name": "new"}, "spec": {"ports": [{"port": 80}]}})

    ClusterRecorder(cluster).relist(after_gap=True)

    def changes(name: str) -> list[tuple[str, bool]]:
        return [(v.change, v.after_gap) for v in versions_of(cluster, namespace, name)]

    assert changes("kept") == [("found", False)] or changes("kept") == [("created", False)]
    assert changes("changed")[-1] == ("changed", True)
    assert versions_of(cluster, namespace, "changed")[-1].fields == ["metadata.labels.new"]
    assert changes("deleted")[-1] == ("deleted", True)
    assert changes("new") == [("found", True)]


def test_retention_keeps_the_newest_versions_of_each_service_and_drops_old_ones(
    cluster: Cluster, namespace: str, admin_api: k8s.ApiClient, settings
) -> None:
    settings.HISTORY_MAX_VERSIONS = 3
    settings.HISTORY_MAX_AGE_DAYS = 30
    core = k8s.CoreV1Api(admin_api)
    recorder = ClusterRecorder(cluster)
    recorder.relist(after_gap=False)
    core.create_namespaced_service(namespace, {"metadata": {"name": "busy"}, "spec": {"ports": [{"port": 80}]}})
    core.create_namespaced_service(namespace, {"metadata": {"name": "quiet"}, "spec": {"ports": [{"port": 80}]}})
    for number in range(5):
        core.patch_namespaced_service("busy", namespace, {"metadata": {"labels": {"n": str(number)}}})
    recorder.record_until(latest_version(admin_api, namespace))

    busy = versions_of(cluster, namespace, "busy")
    assert [v.manifest["metadata"].get("labels") for v in busy] == [{"n": "2"}, {"n": "3"}, {"n": "4"}]
    # Older than the retention age: removed by the hourly prune, whoever they belong to.
    ServiceVersion.objects.filter(pk=versions_of(cluster, namespace, "quiet")[0].pk).update(
        recorded_at=timezone.now() - datetime.timedelta(days=31)
    )
    assert prune() == 1
    assert versions_of(cluster, namespace, "quiet") == []
    assert len(versions_of(cluster, namespace, "busy")) == 3


def test_a_version_whose_transaction_failed_is_stored_when_the_event_comes_again(
    cluster: Cluster, namespace: str, admin_api: k8s.ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database error after the insert (the checkpoint's update, here) rolls the version back; the watch resumes
    from the old checkpoint and the API server sends the event again: it must be stored then, not taken for one
    the recorder remembers storing."""
    core = k8s.CoreV1Api(admin_api)
    recorder = ClusterRecorder(cluster)
    recorder.relist(after_gap=False)
    core.create_namespaced_service(namespace, {"metadata": {"name": "flaky"}, "spec": {"ports": [{"port": 80}]}})
    recorder.record_until(latest_version(admin_api, namespace))
    changed = core.patch_namespaced_service("flaky", namespace, {"metadata": {"labels": {"v": "2"}}})

    save = ClusterRecorder._save_checkpoint
    failures = []

    def fail_once(self, resource_version: str) -> None:
        if not failures:
            failures.append(resource_version)
            raise DatabaseError("the database went away")
        save(self, resource_version)

    monkeypatch.setattr(ClusterRecorder, "_save_checkpoint", fail_once)
    with pytest.raises(DatabaseError):
        recorder.record_until(changed.metadata.resource_version)
    recorder.record_until(changed.metadata.resource_version)  # resumed from the checkpoint: the event again

    versions = versions_of(cluster, namespace, "flaky")
    assert [(v.change, v.resource_version) for v in versions][-1] == ("changed", changed.metadata.resource_version)
    assert failures
