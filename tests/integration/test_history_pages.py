"""A Service's history in the console, against the real API server: who changed what and when (console users with
their request ids and audit entries, kubectl and Helm by their field managers, deletions), any two versions
compared field by field, "Last changed by" in the list, restoring a version (also after a concurrent change, and
when its node port was taken meanwhile), undelete, and tenant isolation.

The versions are made here as the recorder stores them (``record``: the Service as the API server returns it, its
stored form, makers and changed fields from ``services.history``), so these tests do not wait for a recorder."""

from __future__ import annotations

import html
import json
import re
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from kubernetes import client as k8s

from clusters import epoch
from clusters.models import AuditEntry, Cluster, Role
from services import history
from services.models import ServiceVersion
from tests.browser_form import submit
from tests.helpers import HTMX, free_node_port, service_form

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]

HTTP = [{"protocol": "TCP", "name": "http", "port": 80, "target_port": 8080}]
ERROR_MARKERS = re.compile(r'class="[^"]*\b(errorlist|notice-error)\b|role="alert"')


# --- versions as the recorder stores them -------------------------------------------------------------------------


def read(admin_api: k8s.ApiClient, namespace: str, name: str) -> dict:
    """The Service as the API server returns it (JSON, managedFields included)."""
    answer = k8s.CoreV1Api(admin_api).read_namespaced_service(name, namespace, _preload_content=False)
    return json.loads(answer.data)


def record(
    cluster: Cluster, admin_api: k8s.ApiClient, namespace: str, name: str, *, after_gap: bool = False
) -> ServiceVersion:
    """The Service as it is now, stored as a version: created or changed, who changed it (its managedFields), and
    the fields changed since the previous version of the same object."""
    service = read(admin_api, namespace, name)
    metadata = service["metadata"]
    before = ServiceVersion.objects.filter(cluster=cluster, uid=metadata["uid"]).order_by("-id").first()
    when, makers = history.change_makers(service)
    stored = history.stored_form(service)
    return ServiceVersion.objects.create(
        cluster=cluster,
        namespace=namespace,
        name=name,
        uid=metadata["uid"],
        resource_version=metadata["resourceVersion"],
        change="changed" if before else "created",
        changed_at=when or timezone.now(),
        managers=makers,
        fields=history.changed_fields(before.manifest, stored) if before else [],
        manifest=stored,
        after_gap=after_gap,
    )


def record_deletion(cluster: Cluster, admin_api: k8s.ApiClient, last: ServiceVersion) -> ServiceVersion:
    """The deletion of ``last``'s object, as the recorder stores a DELETED event (its last state, no makers)."""
    listed = k8s.CoreV1Api(admin_api).list_namespaced_service(last.namespace).metadata.resource_version
    return ServiceVersion.objects.create(
        cluster=cluster,
        namespace=last.namespace,
        name=last.name,
        uid=last.uid,
        resource_version=listed,
        change="deleted",
        changed_at=timezone.now(),
        managers=[],
        fields=[],
        manifest=last.manifest,
    )


# --- the browser's side ---------------------------------------------------------------------------------------


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def text(response) -> str:
    """A page's visible text, whitespace collapsed."""
    body = re.sub(r"<[^>]+>", " ", response.content.decode())
    return re.sub(r"\s+", " ", html.unescape(body))


def row_of(page, version: ServiceVersion) -> str:
    """The visible text of one version's row of the history page."""
    found = re.search(rf'<tr id="version-{version.pk}">(.*?)</tr>', page.content.decode(), re.S)
    assert found, f"version {version.pk} is not on the page"
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", found[1])))


def edit_in_form(web: Client, url: str, changes: dict[str, str]) -> None:
    """Open the edit form, change the named fields as a person would, and save."""
    page = web.get(url)
    assert page.status_code == 200
    sent = submit(page.content, "service-form", url=url)
    entries = [(name, changes.get(name, value)) for name, value in sent.entries]
    saved = web.post(sent.action, urlencode(entries), content_type="application/x-www-form-urlencoded")
    assert saved.status_code == 302, saved.content.decode()[-3000:]


def post_form(web: Client, page, url: str, form_id: str = "history-action", **changed: str):
    """Submit a form of ``page`` as the browser would (with ``changed`` values)."""
    sent = submit(page.content, form_id, url=url)
    entries = [(name, changed.get(name, value)) for name, value in sent.entries]
    return web.post(sent.action, urlencode(entries), content_type="application/x-www-form-urlencoded")


def helm_apply(admin_api: k8s.ApiClient, namespace: str, name: str, labels: dict[str, str]) -> None:
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels}}
    k8s.CoreV1Api(admin_api).patch_namespaced_service(
        name, namespace, body, field_manager="helm", _content_type="application/apply-patch+yaml"
    )


def audit_of(namespace: str, name: str, action: str) -> AuditEntry:
    return AuditEntry.objects.filter(namespace=namespace, object_name=name, action=action).latest("id")


# --- the history page ---------------------------------------------------------------------------------------------


def test_the_history_says_who_changed_which_fields_and_when(
    cluster: Cluster, people, make_user, namespace: str, admin_api: k8s.ApiClient, service_url
) -> None:
    core = k8s.CoreV1Api(admin_api)
    as_editor, as_admin = signed_in(people.editor), signed_in(people.cluster_admin)
    created = as_editor.post(service_url("create"), service_form("web-app", ports=HTTP, selector={"app": "web-app"}))
    assert created.status_code == 302, created.content.decode()[-2000:]
    first = record(cluster, admin_api, namespace, "web-app")
    edit_in_form(as_admin, service_url("edit", "web-app"), {"ports-0-port": "81"})
    second = record(cluster, admin_api, namespace, "web-app")
    core.patch_namespaced_service(
        "web-app",
        namespace,
        {"metadata": {"annotations": {"example.com/owner": "team-a"}}},
        field_manager="kubectl-edit",
    )
    third = record(cluster, admin_api, namespace, "web-app")
    helm_apply(admin_api, namespace, "web-app", {"helm.sh/chart": "web-1.2.0"})
    fourth = record(cluster, admin_api, namespace, "web-app", after_gap=True)
    uid = read(admin_api, namespace, "web-app")["metadata"]["uid"]
    assert as_editor.post(service_url("delete", "web-app"), {"uid": uid}).status_code == 302
    deletion = record_deletion(cluster, admin_api, fourth)

    page = signed_in(people.viewer).get(service_url("history", "web-app"))
    assert page.status_code == 200
    body = page.content.decode()
    # Newest first.
    order = [body.index(f'id="version-{v.pk}"') for v in (deletion, fourth, third, second, first)]
    assert order == sorted(order)
    created_by = audit_of(namespace, "web-app", "create")
    assert "created" in row_of(page, first) and "editor" in row_of(page, first)
    assert created_by.request_id and created_by.request_id in row_of(page, first)
    assert "cluster-admin" in row_of(page, second) and "spec.ports[http].port" in row_of(page, second)
    assert "kubectl-edit (Update)" in row_of(page, third)
    assert "metadata.annotations.example.com/owner" in row_of(page, third)
    assert "helm (Apply)" in row_of(page, fourth) and "metadata.labels.helm.sh/chart" in row_of(page, fourth)
    assert "after a gap" in row_of(page, fourth) and "after a gap" not in row_of(page, third)
    deleted_by = audit_of(namespace, "web-app", "delete")
    assert "deleted" in row_of(page, deletion) and "editor" in row_of(page, deletion)
    assert deleted_by.request_id in row_of(page, deletion)
    # When: an age in words, the exact time in the element.
    assert re.search(r'<time datetime="[^"]+" title="[^"]+">(just now|\d+ \w+ ago)</time>', body)
    # The Service is gone: its history stays, with the deletion said; a viewer gets no Undelete.
    assert "This Service was deleted" in text(page)
    assert reverse("services:undelete", args=[cluster.name, namespace, "web-app"]) not in body
    assert "/admin/" not in body.split('<main id="main">')[1]  # no audit links for a non-staff user
    assert "Restore…" not in body

    # Staff who may read the audit log get each console version linked to its audit entry.
    auditor = make_user("auditor", is_staff=True, is_superuser=True)
    staff_page = signed_in(auditor).get(service_url("history", "web-app"))
    for entry in (created_by, deleted_by, audit_of(namespace, "web-app", "update")):
        assert reverse("admin:console_auditentry_change", args=[entry.pk]) in staff_page.content.decode()

    # In the user's language.
    chinese = signed_in(people.viewer).get(service_url("history", "web-app"), HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert "刚刚" in text(chinese) or "前" in text(chinese)
    assert "已删除" in text(chinese) and "变更的字段" in text(chinese)


def test_a_service_changed_outside_the_console_names_the_field_managers(
    cluster: Cluster, people, namespace: str, admin_api: k8s.ApiClient, service_url
) -> None:
    core = k8s.CoreV1Api(admin_api)
    core.create_namespaced_service(
        namespace, {"metadata": {"name": "made-by-kubectl"}, "spec": {"ports": [{"port": 80}]}}, field_manager="kubectl"
    )
    made = record(cluster, admin_api, namespace, "made-by-kubectl")
    core.delete_namespaced_service("made-by-kubectl", namespace)
    deletion = record_deletion(cluster, admin_api, made)
    page = signed_in(people.editor).get(service_url("history", "made-by-kubectl"))
    assert "kubectl (Update)" in row_of(page, made)
    assert "outside the console" in row_of(page, deletion)
    # The editor may make it again.
    assert reverse("services:undelete", args=[cluster.name, namespace, "made-by-kubectl"]) in page.content.decode()


def test_a_long_history_is_paged(cluster: Cluster, people, namespace: str, admin_api: k8s.ApiClient, service_url):
    k8s.CoreV1Api(admin_api).create_namespaced_service(
        namespace, {"metadata": {"name": "busy"}, "spec": {"ports": [{"port": 80}]}}
    )
    made = record(cluster, admin_api, namespace, "busy")
    ServiceVersion.objects.bulk_create(
        ServiceVersion(
            cluster=cluster,
            namespace=namespace,
            name="busy",
            uid=made.uid,
            resource_version=f"{made.resource_version}{index}",
            change="changed",
            changed_at=timezone.now(),
            manifest=made.manifest,
        )
        for index in range(60)
    )
    web = signed_in(people.viewer)
    first = web.get(service_url("history", "busy"))
    assert first.content.decode().count('<tr id="version-') == 50
    older = re.search(r'href="([^"]*\?before=\d+)"', first.content.decode())
    assert older, "no link to the older versions"
    second = web.get(html.unescape(older[1]))
    assert second.content.decode().count('<tr id="version-') == 11
    assert f'id="version-{made.pk}"' in second.content.decode()
    for before in ("garbage", "²", "9" * 40, "-5"):  # a bad cursor is the first page
        assert web.get(service_url("history", "busy", before=before)).content.decode().count('<tr id="version-') == 50


# --- comparing two versions -------------------------------------------------------------------------------------


@pytest.fixture
def three_versions(cluster: Cluster, namespace: str, admin_api: k8s.ApiClient) -> list[ServiceVersion]:
    """A Service made, its port changed, then its labels changed: three versions."""
    core = k8s.CoreV1Api(admin_api)
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "compared", "labels": {"team": "a"}},
            "spec": {"selector": {"app": "x"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
        },
    )
    found = [record(cluster, admin_api, namespace, "compared")]
    changed = read(admin_api, namespace, "compared")
    changed["spec"]["ports"][0]["port"] = 81
    core.replace_namespaced_service("compared", namespace, changed)
    found.append(record(cluster, admin_api, namespace, "compared"))
    core.patch_namespaced_service("compared", namespace, {"metadata": {"labels": {"team": "b", "tier": "web"}}})
    found.append(record(cluster, admin_api, namespace, "compared"))
    return found


def test_any_two_versions_compare_field_by_field(people, three_versions, service_url) -> None:
    first, _second, third = three_versions
    web = signed_in(people.viewer)
    page = web.get(service_url("history_compare", "compared", a=first.pk, b=third.pk))
    assert page.status_code == 200
    shown = text(page)
    for path in ("metadata.labels.team", "metadata.labels.tier", "spec.ports[http].port"):
        assert path in shown
    diff = page.content.decode()
    assert '<span class="diff-del">-    team: a</span>' in diff
    assert '<span class="diff-add">+    team: b</span>' in diff
    assert '<span class="diff-add">+    port: 81</span>' in diff
    # Either order, the same comparison (the older version on the left).
    assert comparison(web.get(service_url("history_compare", "compared", a=third.pk, b=first.pk))) == comparison(page)
    # Compare with the previous: only the last change.
    last = web.get(service_url("history_compare", "compared", b=third.pk))
    assert "metadata.labels.tier" in text(last) and "spec.ports[http].port" not in text(last)
    # No choice at all: the newest change.
    assert comparison(web.get(service_url("history_compare", "compared"))) == comparison(last)
    # The first version against nothing: all of it added.
    created = web.get(service_url("history_compare", "compared", b=first.pk))
    assert "the first version recorded" in text(created) and '<span class="diff-del">' not in created.content.decode()
    # The same version twice: said, not an error.
    same = web.get(service_url("history_compare", "compared", a=first.pk, b=first.pk))
    assert same.status_code == 200 and "same version twice" in text(same)
    # Under HTMX only the comparison, for the history page to show in place.
    partial = web.get(service_url("history_compare", "compared", a=first.pk, b=third.pk), **HTMX)
    assert 'id="main"' not in partial.content.decode() and "metadata.labels.tier" in text(partial)


def comparison(page) -> str:
    found = re.search(r'<section class="card comparison">.*?</section>', page.content.decode(), re.S)
    assert found, "no comparison on the page"
    return found[0]


def test_the_history_page_offers_the_comparison_of_two_chosen_versions(people, three_versions, service_url) -> None:
    """The history page's form, as a browser submits it: the newest change is chosen to begin with."""
    url = service_url("history", "compared")
    page = signed_in(people.viewer).get(url)
    sent = submit(page.content, "compare-form", url=url)
    assert sent.values("a") == [str(three_versions[1].pk)] and sent.values("b") == [str(three_versions[2].pk)]


@pytest.mark.parametrize("wanted", ["abc", "²", "٣", "-1", "0", "9" * 19, "9" * 400, "1.5", " "])
def test_a_version_id_that_is_no_version_is_a_clear_404(people, three_versions, service_url, wanted: str) -> None:
    web = signed_in(people.editor)
    for query in ({"a": wanted, "b": three_versions[0].pk}, {"b": wanted}):
        page = web.get(service_url("history_compare", "compared", **query))
        if wanted.strip():
            assert page.status_code == 404, query
            assert ERROR_MARKERS.search(page.content.decode()) and 'id="main"' in page.content.decode()
            assert "not in the history of this Service" in text(page)
        else:
            assert page.status_code == 200  # a blank choice is no choice: the previous version, the newest change
    huge = reverse("services:restore", args=["local", three_versions[0].namespace, "compared", 2**64])
    assert web.get(huge).status_code == 404


# --- the list: "Last changed by" ------------------------------------------------------------------------------


def test_the_list_says_who_changed_each_service_last_in_one_query(
    cluster: Cluster, people, namespace: str, admin_api: k8s.ApiClient, service_url, monkeypatch
) -> None:
    monkeypatch.setattr(epoch, "READ_EVERY", 3600.0)  # the access epoch's once-a-second read is not the page's
    web = signed_in(people.editor)
    assert web.post(service_url("create"), service_form("by-console", ports=HTTP)).status_code == 302
    record(cluster, admin_api, namespace, "by-console")
    core = k8s.CoreV1Api(admin_api)
    core.create_namespaced_service(
        namespace, {"metadata": {"name": "by-kubectl"}, "spec": {"ports": [{"port": 80}]}}, field_manager="kubectl"
    )
    record(cluster, admin_api, namespace, "by-kubectl")
    core.create_namespaced_service(namespace, {"metadata": {"name": "unrecorded"}, "spec": {"ports": [{"port": 80}]}})

    def queries() -> tuple[int, str]:
        with CaptureQueriesContext(connection) as captured:
            page = web.get(service_url("list"))
        assert page.status_code == 200
        return len(captured), page.content.decode()

    count, body = queries()
    rows = {
        name: re.search(rf'<a href="[^"]*/{name}/">{name}</a>(.*?)</td>', body, re.S)
        for name in ("by-console", "by-kubectl", "unrecorded")
    }
    by_console = re.sub(r"<[^>]+>", "", rows["by-console"][1])
    assert "Last changed by editor, just now" in by_console or re.search(
        r"Last changed by editor, \d+ \w+ ago", by_console
    )
    assert "Last changed by kubectl" in re.sub(r"<[^>]+>", "", rows["by-kubectl"][1])
    assert rows["unrecorded"][1].strip() == ""
    assert f'href="{service_url("history", "by-console")}"' in body
    for index in range(15):  # more Services, each with versions: no query per row
        core.create_namespaced_service(
            namespace, {"metadata": {"name": f"more-{index}"}, "spec": {"ports": [{"port": 80}]}}
        )
        record(cluster, admin_api, namespace, f"more-{index}")
    assert queries()[0] == count


# --- restore --------------------------------------------------------------------------------------------------


ORIGINAL = {
    "metadata": {
        "name": "restored",
        "labels": {"app": "shop", "tier": "web"},
        "annotations": {"example.com/note": "first\nsecond line"},
    },
    "spec": {
        "type": "ClusterIP",
        "selector": {"app": "shop"},
        "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}},
    },
}


def change_it(admin_api: k8s.ApiClient, namespace: str, name: str, **extra_labels: str) -> None:
    """A change of every kind a restore must undo: a label dropped and one added, an annotation replaced, the
    selector, a port, session affinity."""
    service = read(admin_api, namespace, name)
    service["metadata"]["labels"] = {"app": "shop", "owner": "someone", **extra_labels}
    service["metadata"]["annotations"] = {"example.com/other": "x"}
    service["spec"]["selector"] = {"app": "shop", "version": "v2"}
    service["spec"]["ports"] = [{"name": "http", "port": 8000, "targetPort": 9000, "protocol": "TCP"}]
    service["spec"]["sessionAffinity"] = "None"
    service["spec"].pop("sessionAffinityConfig", None)
    k8s.CoreV1Api(admin_api).replace_namespaced_service(name, namespace, service)


def assert_like_version(admin_api: k8s.ApiClient, namespace: str, version: ServiceVersion, clusterIP: str) -> None:
    """The live Service has exactly the version's labels, annotations and spec (its cluster IP kept)."""
    live = read(admin_api, namespace, version.name)
    assert live["metadata"].get("labels") == version.manifest["metadata"].get("labels")
    assert live["metadata"].get("annotations") == version.manifest["metadata"].get("annotations")
    assert live["spec"] == version.manifest["spec"] | {"clusterIP": clusterIP, "clusterIPs": [clusterIP]}


def test_restore_writes_exactly_the_versions_labels_annotations_and_spec(
    cluster: Cluster, people, namespace: str, admin_api: k8s.ApiClient, service_url
) -> None:
    k8s.CoreV1Api(admin_api).create_namespaced_service(namespace, ORIGINAL)
    original = record(cluster, admin_api, namespace, "restored")
    ip = original.manifest["spec"]["clusterIP"]
    change_it(admin_api, namespace, "restored")
    record(cluster, admin_api, namespace, "restored")
    web = signed_in(people.editor)

    history_page = web.get(service_url("history", "restored"))
    url = reverse("services:restore", args=[cluster.name, namespace, "restored", original.pk])
    assert url in history_page.content.decode()
    review = web.get(url)
    assert review.status_code == 200
    shown = text(review)
    assert "The API server accepts this change (dry run)" in shown
    assert '<span class="diff-add">+    tier: web</span>' in review.content.decode()
    assert '<span class="diff-del">-    owner: someone</span>' in review.content.decode()
    assert read(admin_api, namespace, "restored")["spec"]["ports"][0]["port"] == 8000  # a review writes nothing

    done = post_form(web, review, url)
    assert done.status_code == 302, text(done)[-1500:]
    assert done["Location"] == service_url("detail", "restored")
    assert_like_version(admin_api, namespace, original, ip)
    entry = audit_of(namespace, "restored", "restore")
    live = read(admin_api, namespace, "restored")
    assert entry.result == "success" and entry.resource_version == live["metadata"]["resourceVersion"]
    assert entry.uid == live["metadata"]["uid"] and f"version={original.pk}" in entry.detail
    # The version the restore made is tied to its audit entry: the history names the user who restored.
    restored = record(cluster, admin_api, namespace, "restored")
    assert "editor" in row_of(web.get(service_url("history", "restored")), restored)


def test_a_restore_after_a_concurrent_change_shows_the_conflict_then_succeeds(
    cluster: Cluster, people, namespace: str, admin_api: k8s.ApiClient, service_url
) -> None:
    k8s.CoreV1Api(admin_api).create_namespaced_service(namespace, ORIGINAL)
    original = record(cluster, admin_api, namespace, "restored")
    change_it(admin_api, namespace, "restored")
    web = signed_in(people.editor)
    url = reverse("services:restore", args=[cluster.name, namespace, "restored", original.pk])
    review = web.get(url)
    seen = submit(review.content, "history-action", url=url).values("resource_version")

    helm_apply(admin_api, namespace, "restored", {"meanwhile": "yes"})  # someone else, while the person reviews
    conflict = post_form(web, review, url)
    assert conflict.status_code == 409
    shown = text(conflict)
    assert "The Service changed since you reviewed this restore (last changed by helm (Apply)" in shown
    assert "Nothing was written" in shown
    assert read(admin_api, namespace, "restored")["metadata"]["labels"]["meanwhile"] == "yes"
    # The choice is kept: the same version, now against the current resourceVersion.
    again = submit(conflict.content, "history-action", url=url)
    assert again.action.endswith(url) and again.values("resource_version") != seen
    assert again.values("resource_version") == [read(admin_api, namespace, "restored")["metadata"]["resourceVersion"]]
    assert AuditEntry.objects.filter(action="restore", result="failed", object_name="restored").count() == 1

    done = post_form(web, conflict, url)
    assert done.status_code == 302
    assert_like_version(admin_api, namespace, original, original.manifest["spec"]["clusterIP"])


def test_a_restore_whose_node_port_is_taken_lets_the_cluster_assign_new_ones(
    cluster: Cluster, people, namespace: str, admin_api: k8s.ApiClient, service_url
) -> None:
    core = k8s.CoreV1Api(admin_api)
    wanted = free_node_port(admin_api)
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "ported", "labels": {"v": "1"}},
            "spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": wanted}]},
        },
    )
    original = record(cluster, admin_api, namespace, "ported")
    moved = read(admin_api, namespace, "ported")
    moved["spec"]["ports"][0]["nodePort"] = free_node_port(admin_api)
    moved["metadata"]["labels"] = {"v": "2"}
    core.replace_namespaced_service("ported", namespace, moved)
    web = signed_in(people.editor)
    url = reverse("services:restore", args=[cluster.name, namespace, "ported", original.pk])
    review = web.get(url)
    assert "held by another Service" not in text(review)

    # Meanwhile another Service takes the version's node port.
    core.create_namespaced_service(
        namespace,
        {"metadata": {"name": "holder"}, "spec": {"type": "NodePort", "ports": [{"port": 1, "nodePort": wanted}]}},
    )
    refused = post_form(web, review, url)
    assert refused.status_code == 409
    shown = text(refused)
    assert "A node port of this version is held by another Service now" in shown
    assert f"{wanted} is used by {namespace}/holder" in shown  # the editor may see the holder's namespace
    assert "The restore lets the cluster assign new node ports" in shown
    assert read(admin_api, namespace, "ported")["metadata"]["labels"] == {"v": "2"}

    done = post_form(web, refused, url)
    assert done.status_code == 302, text(done)[-1500:]
    live = read(admin_api, namespace, "ported")
    assert live["metadata"]["labels"] == {"v": "1"}
    assert live["spec"]["ports"][0]["nodePort"] not in (wanted, None)

    # Reviewed when the port is already taken: said at once, and the restore goes through.
    reviewed_late = web.get(url)
    assert "held by another Service" in text(reviewed_late)
    assert submit(reviewed_late.content, "history-action", url=url).values("assign_node_ports") == ["1"]


def test_restoring_a_headless_version_keeps_the_cluster_ip_and_says_why(
    cluster: Cluster, people, namespace: str, admin_api: k8s.ApiClient, service_url
) -> None:
    """A version the Service cannot return to in full: what cannot change is kept and explained, and the type
    change is said."""
    core = k8s.CoreV1Api(admin_api)
    core.create_namespaced_service(
        namespace, {"metadata": {"name": "typed"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}
    )
    record(cluster, admin_api, namespace, "typed")
    version = ServiceVersion.objects.get(name="typed", namespace=namespace)
    version.pk = None
    version.resource_version = "1"
    version.manifest = {
        **version.manifest,
        "spec": {**version.manifest["spec"], "type": "ClusterIP", "clusterIP": "None"},
    }
    version.save()
    web = signed_in(people.editor)
    review = web.get(reverse("services:restore", args=[cluster.name, namespace, "typed", version.pk]))
    assert review.status_code == 200
    shown = text(review)
    ip = read(admin_api, namespace, "typed")["spec"]["clusterIP"]
    assert (
        f"This version was headless (no cluster IP). A Service cannot give up its cluster IP, so it keeps {ip}."
        in shown
    )
    assert "The type changes from NodePort to ClusterIP." in shown


def test_restore_refuses_without_the_reviewed_version_and_is_never_a_500(
    cluster: Cluster, people, namespace: str, admin_api: k8s.ApiClient, service_url, three_versions
) -> None:
    web = signed_in(people.editor)
    url = reverse("services:restore", args=[cluster.name, namespace, "compared", three_versions[0].pk])
    for rv in ("", "²", "9" * 500, "-1", "0", "1", "99999999999999999999"):  # none, garbage, "any", stale
        posted = {"resource_version": rv} if rv else {}
        answer = web.post(url, posted)
        assert answer.status_code == 409, posted
        assert ERROR_MARKERS.search(answer.content.decode()) and 'id="main"' in answer.content.decode()
    assert read(admin_api, namespace, "compared")["metadata"]["labels"] == {"team": "b", "tier": "web"}
    # The Service is gone: back to its history, which offers the undelete.
    k8s.CoreV1Api(admin_api).delete_namespaced_service("compared", namespace)
    gone = web.get(url)
    assert gone.status_code == 302 and gone["Location"] == service_url("history", "compared")
    assert "can only be restored onto a Service that exists" in text(web.get(gone["Location"]))


# --- undelete ---------------------------------------------------------------------------------------------------


def test_undelete_makes_the_service_again_without_what_the_cluster_assigned(
    cluster: Cluster, people, namespace: str, admin_api: k8s.ApiClient, service_url
) -> None:
    core = k8s.CoreV1Api(admin_api)
    port = free_node_port(admin_api)
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "lost", "labels": {"app": "lost"}, "annotations": {"example.com/why": "kept"}},
            "spec": {
                "type": "NodePort",
                "selector": {"app": "lost"},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": port}],
            },
        },
    )
    last = record(cluster, admin_api, namespace, "lost")
    core.delete_namespaced_service("lost", namespace)
    record_deletion(cluster, admin_api, last)
    web = signed_in(people.editor)

    listed = web.get(service_url("deleted"))
    assert "lost" in text(listed)
    undelete = reverse("services:undelete", args=[cluster.name, namespace, "lost"])
    assert undelete in listed.content.decode()
    review = web.get(undelete)
    assert review.status_code == 200 and "The API server accepts this change (dry run)" in text(review)
    assert last.manifest["spec"]["clusterIP"] not in review.content.decode()
    done = post_form(web, review, undelete)
    assert done.status_code == 302, text(done)[-1500:]
    assert done["Location"] == service_url("detail", "lost")
    again = read(admin_api, namespace, "lost")
    assert again["metadata"]["uid"] != last.uid
    assert again["metadata"]["labels"] == {"app": "lost"}
    assert again["metadata"]["annotations"] == {"example.com/why": "kept"}
    assert again["spec"]["selector"] == {"app": "lost"} and again["spec"]["type"] == "NodePort"
    assert [(p["name"], p["port"], p["targetPort"]) for p in again["spec"]["ports"]] == [("http", 80, 8080)]
    assert again["spec"]["ports"][0]["nodePort"]  # assigned afresh by the cluster
    entry = audit_of(namespace, "lost", "undelete")
    assert entry.result == "success" and entry.uid == again["metadata"]["uid"]
    assert entry.resource_version == again["metadata"]["resourceVersion"]

    # The name is taken now: explained, and nothing is written.
    for answer in (web.get(undelete), web.post(undelete)):
        assert answer.status_code == 409
        assert "exists now" in text(answer) and "an undelete needs the name free" in text(answer)
    assert read(admin_api, namespace, "lost")["metadata"]["uid"] == again["metadata"]["uid"]
    # A Service whose history ends in no deletion has nothing to undelete.
    record(cluster, admin_api, namespace, "lost")
    nothing = web.get(undelete)
    assert nothing.status_code == 404 and "nothing to undelete" in text(nothing)


def test_an_undelete_reviewed_before_the_history_moved_on_is_shown_again_not_written(
    cluster: Cluster, people, namespace: str, admin_api: k8s.ApiClient
) -> None:
    """Reviewed: the Service as it was before its deletion. Meanwhile someone made it again as a NodePort Service
    and deleted it again. The reviewed form must not create the newer one unseen: 409 and the review again."""
    core = k8s.CoreV1Api(admin_api)
    body = {"metadata": {"name": "twice"}, "spec": {"selector": {"app": "a"}, "ports": [{"port": 80}]}}
    core.create_namespaced_service(namespace, body)
    record_deletion(cluster, admin_api, record(cluster, admin_api, namespace, "twice"))
    core.delete_namespaced_service("twice", namespace)
    web = signed_in(people.editor)
    undelete = reverse("services:undelete", args=[cluster.name, namespace, "twice"])
    review = web.get(undelete)
    assert review.status_code == 200

    core.create_namespaced_service(namespace, {**body, "spec": {**body["spec"], "type": "NodePort"}})
    record_deletion(cluster, admin_api, record(cluster, admin_api, namespace, "twice"))
    core.delete_namespaced_service("twice", namespace)

    stale = post_form(web, review, undelete)
    assert stale.status_code == 409
    assert "it was created and deleted again" in text(stale)
    assert "NodePort" in text(stale)  # what would be created now, for review
    assert "twice" not in [s.metadata.name for s in core.list_namespaced_service(namespace).items]
    done = post_form(web, stale, undelete)  # reviewed now
    assert done.status_code == 302, text(done)[-1500:]
    assert read(admin_api, namespace, "twice")["spec"]["type"] == "NodePort"


# --- who may do what ----------------------------------------------------------------------------------------------


def test_a_viewer_sees_the_history_but_cannot_restore_or_undelete(
    cluster: Cluster, people, namespace: str, admin_api: k8s.ApiClient, service_url, three_versions
) -> None:
    web = signed_in(people.viewer)
    page = web.get(service_url("history", "compared"))
    assert page.status_code == 200 and "Restore…" not in page.content.decode()
    restore = reverse("services:restore", args=[cluster.name, namespace, "compared", three_versions[0].pk])
    undelete = reverse("services:undelete", args=[cluster.name, namespace, "compared"])
    for answer in (
        web.get(restore),
        web.post(restore, {"resource_version": "1"}),
        web.get(undelete),
        web.post(undelete),
    ):
        assert answer.status_code == 403
    assert read(admin_api, namespace, "compared")["metadata"]["labels"] == {"team": "b", "tier": "web"}
    assert AuditEntry.objects.filter(result="denied", username="viewer").count() >= 2


def test_a_user_of_another_namespace_learns_nothing(
    cluster: Cluster, people, make_user, namespace: str, service_url, three_versions
) -> None:
    elsewhere = signed_in(make_user("elsewhere", role=Role.NS_EDIT, cluster=cluster, namespace="elsewhere"))
    stranger = signed_in(people.stranger)
    version = three_versions[0].pk
    urls = [
        service_url("history", "compared"),
        service_url("history_compare", "compared", a=version),
        reverse("services:restore", args=[cluster.name, namespace, "compared", version]),
        service_url("undelete", "compared"),
        service_url("deleted"),
    ]
    for url in urls:
        assert elsewhere.get(url).status_code == 403, url  # as the Service's own page answers them
        assert stranger.get(url).status_code == 404, url
        assert "compared" not in text(elsewhere.get(url)) and "team" not in text(stranger.get(url))


def test_a_version_of_another_service_namespace_or_cluster_is_not_found(
    cluster: Cluster, people, namespace: str, admin_api: k8s.ApiClient, service_url, three_versions
) -> None:
    """The ids are global numbers: one of another Service must not be shown through this Service's URLs."""
    elsewhere = Cluster.objects.create(name="elsewhere")
    mine = three_versions[0]
    strangers = [
        ServiceVersion.objects.create(**{**fields(mine), "namespace": "kube-system", "uid": "other-ns"}),
        ServiceVersion.objects.create(**{**fields(mine), "cluster": elsewhere, "uid": "other-cluster"}),
        ServiceVersion.objects.create(**{**fields(mine), "name": "another", "uid": "other-service"}),
    ]
    web = signed_in(people.cluster_admin)
    for stranger in strangers:
        compare = web.get(service_url("history_compare", "compared", a=mine.pk, b=stranger.pk))
        assert compare.status_code == 404 and "not in the history of this Service" in text(compare)
        restore = reverse("services:restore", args=[cluster.name, namespace, "compared", stranger.pk])
        assert web.get(restore).status_code == 404
        assert web.post(restore, {"resource_version": "1"}).status_code == 404
        assert f'id="version-{stranger.pk}"' not in web.get(service_url("history", "compared")).content.decode()


def fields(version: ServiceVersion) -> dict:
    return {
        "cluster": version.cluster,
        "namespace": version.namespace,
        "name": version.name,
        "uid": version.uid,
        "resource_version": version.resource_version,
        "change": version.change,
        "changed_at": version.changed_at,
        "managers": version.managers,
        "fields": version.fields,
        "manifest": version.manifest,
    }


# --- in the browser -------------------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.parametrize("width", [1280, 390])
def test_the_history_in_the_browser(
    browser, live_server, transactional_db, cluster: Cluster, make_user, namespace: str, admin_api, width: int
) -> None:
    """The history page, a comparison shown in place, a restore's review and the list's "last changed" line, at a
    desktop's and a phone's width: no browser error, nothing wider than the screen (screenshots in
    artifacts/screenshots/)."""
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import expect

    from tests.integration.test_browser import BROWSER_ERRORS, log_in, open_page, shot

    axe, blocking = Axe(), []

    def audit(name: str) -> None:
        """Axe's serious and critical findings on the page, and whether it fits the window."""
        for violation in axe.run(page).response["violations"]:
            if violation["impact"] in ("serious", "critical"):
                blocking.append(f"{name}: {violation['id']} {[n['target'] for n in violation['nodes']][:3]}")
        if page.evaluate("document.documentElement.scrollWidth") > width:
            blocking.append(f"{name}: wider than the window")

    editor = make_user("editor", role=Role.NS_EDIT, cluster=cluster, namespace=namespace)
    web = signed_in(editor)
    base = f"/clusters/local/namespaces/{namespace}/services/"
    labels = {"app": "shop"}
    created = web.post(f"{base}create/", service_form("shop-web", ports=HTTP, selector=labels, labels=labels))
    assert created.status_code == 302
    first = record(cluster, admin_api, namespace, "shop-web")
    k8s.CoreV1Api(admin_api).patch_namespaced_service(
        "shop-web",
        namespace,
        {"metadata": {"annotations": {"example.com/owner": "team-a"}}},
        field_manager="kubectl-edit",
    )
    record(cluster, admin_api, namespace, "shop-web")
    helm_apply(admin_api, namespace, "shop-web", {"helm.sh/chart": "shop-1.2.0"})
    record(cluster, admin_api, namespace, "shop-web")

    BROWSER_ERRORS.clear()
    page = open_page(browser, "en", width)
    log_in(page, live_server.url, "editor")
    page.goto(f"{live_server.url}{base}")
    expect(page.locator(".row-changed")).to_contain_text("Last changed by helm")
    audit("list")
    shot(page, f"en-history-list-{width}")
    page.click("text=Last changed by helm")
    expect(page.locator("h1")).to_have_text("shop-web")
    expect(page.locator(".tabs [aria-current=page]")).to_have_text("History")
    with page.expect_response(lambda r: "/history/compare/" in r.url):
        page.click("text=Compare the chosen versions")
    expect(page.locator("#comparison")).to_contain_text("metadata.labels.helm.sh/chart")
    audit("history")
    shot(page, f"en-history-{width}")
    page.goto(f"{live_server.url}{base}shop-web/history/{first.pk}/restore/")
    expect(page.locator(".notice-success")).to_contain_text("accepts this change")
    audit("restore")
    shot(page, f"en-history-restore-{width}")
    page.click("text=Restore this version")
    page.wait_for_url(f"{live_server.url}{base}shop-web/")
    page.goto(f"{live_server.url}{base}_deleted/")
    audit("deleted")
    page.context.close()
    assert blocking == []
    assert read(admin_api, namespace, "shop-web")["metadata"].get("annotations") is None
    assert BROWSER_ERRORS == [], BROWSER_ERRORS
