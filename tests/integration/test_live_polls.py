"""An open page's poll while nothing changes is answered from memory (``services.live``): no query, no call, and
never past what the full checks would allow. A poll the shortcut answered carries no ``X-Live-Url``; one the view
answered after its checks does (its fresh poll URL)."""

from __future__ import annotations

import time
from urllib.parse import quote, unquote

import pytest
from django.db.models import F
from django.test import Client
from kubernetes import client as k8s

from clusters import epoch
from clusters.models import AccessEpoch, Cluster, Grant, Role
from kube import identity
from services import live
from tests.helpers import HTMX, eventually
from tests.integration.test_health import SERVICE, live_url, settle

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]


@pytest.fixture
def poll(web: Client, service_url, admin_api: k8s.ApiClient, namespace: str) -> str:
    """An open list page of one Service, settled: its poll URL, which the shortcut answers."""
    k8s.CoreV1Api(admin_api).create_namespaced_service(namespace, SERVICE)
    eventually(lambda: "web" in web.get(service_url("list")).content.decode())
    url = settle(web, live_url(web.get(service_url("list")).content.decode(), "service-table"), "service-table")
    answer = web.get(url, **HTMX)
    if "X-Live-Url" in answer:  # the page was drawn before the user's review was remembered: one more round
        url = answer["X-Live-Url"]
    return url


def shortcut(web: Client, url: str) -> bool:
    """Whether the poll was answered from memory: 204 without a new poll URL."""
    answer = web.get(url, **HTMX)
    return answer.status_code == 204 and "X-Live-Url" not in answer


def test_an_unchanged_poll_costs_no_query_and_no_call(
    web: Client, poll: str, django_assert_num_queries, monkeypatch
) -> None:
    calls = []
    monkeypatch.setattr(identity, "allowed", lambda *args, **kwargs: calls.append(args) or True)
    with django_assert_num_queries(0):
        for _ in range(20):
            answer = web.get(poll, **HTMX)
            assert answer.status_code == 204 and answer.content == b"" and "X-Live-Url" not in answer
            assert answer["Cache-Control"] == "no-store, private" and answer["X-Request-Id"]
    assert calls == []


def test_a_change_still_redraws_at_once(web: Client, poll: str, admin_api: k8s.ApiClient, namespace: str) -> None:
    k8s.CoreV1Api(admin_api).create_namespaced_service(namespace, {**SERVICE, "metadata": {"name": "second"}})

    def redrawn() -> bool:
        answer = web.get(poll, **HTMX)
        return answer.status_code == 200 and "second" in answer.content.decode()

    assert eventually(redrawn, seconds=5) < 1.0


def test_a_revoked_grant_stops_the_updates(web: Client, poll: str, people, cluster: Cluster) -> None:
    assert shortcut(web, poll)
    Grant.objects.filter(user=people.editor).delete()
    assert web.get(poll, **HTMX).status_code == 404  # the view's checks, at once in this process


def test_another_replicas_revocation_is_seen_within_a_second(web: Client, poll: str, people, monkeypatch) -> None:
    """A grant revoked through another replica moves the epoch in the database only; this process reads it at
    most ``READ_EVERY`` seconds later."""
    assert shortcut(web, poll)
    epoch.current()  # this process's copy, as fresh as it gets
    monkeypatch.setattr(epoch, "forget", lambda: None)  # the signal's own process is elsewhere
    Grant.objects.filter(user=people.editor).delete()
    began = time.monotonic()
    while web.get(poll, **HTMX).status_code == 204:
        time.sleep(0.02)
    assert time.monotonic() - began <= epoch.READ_EVERY + 0.5
    assert web.get(poll, **HTMX).status_code == 404


@pytest.mark.parametrize(
    "change",
    [
        lambda people: people.viewer.groups.create(name="team"),  # a membership
        lambda people: people.viewer.save(),  # a user changed in admin
        lambda people: Cluster.objects.get().save(),  # a cluster edited
        lambda people: Grant.objects.create(
            user=people.viewer, cluster=Cluster.objects.get(), role=Role.NS_VIEW, namespace="default"
        ),
    ],
    ids=["membership", "user", "cluster", "grant"],
)
def test_whatever_may_change_access_sends_the_next_poll_through_the_checks(
    web: Client, poll: str, people, change
) -> None:
    assert shortcut(web, poll)
    change(people)
    answer = web.get(poll, **HTMX)
    assert answer.status_code == 204 and "X-Live-Url" in answer  # the view checked, and handed out a new URL
    assert shortcut(web, answer["X-Live-Url"]) and not shortcut(web, poll)


def test_a_login_does_not_move_the_epoch(web: Client, poll: str, people) -> None:
    before = AccessEpoch.objects.get().value
    Client().force_login(people.viewer)  # saves last_login only
    assert AccessEpoch.objects.get().value == before and shortcut(web, poll)


def test_signing_out_ends_the_shortcut(web: Client, poll: str) -> None:
    cookie = web.cookies["sessionid"].value
    web.post("/logout/")
    web.cookies["sessionid"] = cookie  # somebody who kept the cookie and the URL
    answer = web.get(poll, **HTMX)
    assert answer.status_code != 204 and "X-Live-Url" not in answer


def test_the_token_is_good_for_its_session_only(web: Client, poll: str, people) -> None:
    other = Client()
    other.force_login(people.editor)  # the same person, another session
    answer = other.get(poll, **HTMX)
    assert answer.status_code == 204 and "X-Live-Url" in answer  # the view's answer
    anonymous = Client().get(poll, **HTMX)
    assert anonymous.status_code != 204  # sent to sign in


def test_the_token_is_good_for_its_path_only(web: Client, poll: str, namespace: str, service_url) -> None:
    token = poll.split(f"{live.TOKEN}=")[1]
    detail = f"{service_url('detail_live', 'web')}?v={poll.split('v=')[1].split('&')[0]}&{live.TOKEN}={token}"
    answer = web.get(detail, **HTMX)
    assert "X-Live-Url" in answer or answer.status_code == 200  # never the shortcut's answer
    elsewhere = poll.replace(f"/namespaces/{namespace}/", "/namespaces/kube-system/", 1)
    assert web.get(elsewhere, **HTMX).status_code == 403  # a namespace of the cluster the user holds no role in


@pytest.mark.parametrize("tamper", ["garbled", "truncated", "empty", "other-salt"])
def test_a_tampered_token_goes_through_the_checks(web: Client, poll: str, tamper: str) -> None:
    from django.core import signing

    base, token = poll.split(f"&{live.TOKEN}=")
    token = unquote(token)
    forged = {
        "garbled": token[:-3] + ("abc" if not token.endswith("abc") else "xyz"),
        "truncated": token[: len(token) // 2],
        "empty": "",
        "other-salt": signing.dumps(signing.loads(token, salt=live.SALT), salt="another"),
    }[tamper]
    answer = web.get(f"{base}&{live.TOKEN}={quote(forged)}", **HTMX)
    assert answer.status_code == 204 and "X-Live-Url" in answer


def test_an_expired_token_is_renewed_by_the_view(web: Client, service_url, poll: str, monkeypatch) -> None:
    monkeypatch.setattr(live, "TOKEN_SECONDS", 1)
    url = settle(web, live_url(web.get(service_url("list")).content.decode(), "service-table"), "service-table")
    time.sleep(1.1)
    answer = web.get(url, **HTMX)
    assert answer.status_code == 204 and "X-Live-Url" in answer
    monkeypatch.setattr(live, "TOKEN_SECONDS", 300)
    renewed = web.get(url, **HTMX)["X-Live-Url"]
    assert shortcut(web, renewed)


def test_a_forgotten_access_review_is_asked_again(web: Client, poll: str, monkeypatch) -> None:
    monkeypatch.setattr(identity, "AUTHORISATION_TTL", 0.0)
    answer = web.get(poll, **HTMX)
    assert answer.status_code == 204 and "X-Live-Url" in answer


def test_another_replicas_epoch_is_read_from_the_database(poll: str, web: Client) -> None:
    AccessEpoch.objects.filter(pk=1).update(value=F("value") + 1)  # as another replica's signal would
    epoch.forget()
    assert not shortcut(web, poll)


# --- the role check kept per process (clusters.access) --------------------------------------------------------------


def test_a_read_page_checks_the_role_without_a_query_once_kept(web: Client, service_url, poll: str) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    web.get(service_url("list"))
    with CaptureQueriesContext(connection) as queries:
        assert web.get(service_url("list")).status_code == 200
    assert not [q for q in queries.captured_queries if "console_grant" in q["sql"]]


def test_a_revoked_grant_stops_writes_at_once_and_reads_within_a_second(
    web: Client, service_url, people, monkeypatch
) -> None:
    from tests.helpers import service_form

    assert web.get(service_url("list")).status_code == 200  # the access is kept
    monkeypatch.setattr(epoch, "forget", lambda: None)  # as if revoked through another replica
    Grant.objects.filter(user=people.editor).delete()
    began = time.monotonic()
    assert web.post(service_url("create"), service_form("too-late")).status_code == 404
    while web.get(service_url("list")).status_code == 200:
        time.sleep(0.02)
    assert time.monotonic() - began <= epoch.READ_EVERY + 0.5
    assert web.get(service_url("list")).status_code == 404


# --- the user and the rows' last changes, kept ----------------------------------------------------------------------


def test_a_deactivated_user_is_signed_out_at_once_here_and_within_a_second_elsewhere(
    web: Client, service_url, people, monkeypatch
) -> None:
    assert web.get(service_url("list")).status_code == 200  # the user is kept by this process
    monkeypatch.setattr(epoch, "forget", lambda: None)  # as if deactivated through another replica
    type(people.editor).objects.filter(pk=people.editor.pk).update(is_active=False)  # no signal: nothing moves
    from clusters.epoch import move

    began = time.monotonic()
    move()  # what the admin's save does, seen here only when the epoch is read again
    while web.get(service_url("list")).status_code == 200:
        time.sleep(0.02)
    assert time.monotonic() - began <= epoch.READ_EVERY + 0.5
    assert web.get(service_url("list")).status_code == 302  # to the login page


def _version(cluster: Cluster, namespace: str, service: dict, *, age: float) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from services.models import ServiceVersion

    ServiceVersion.objects.create(
        cluster=cluster,
        namespace=namespace,
        name=service["metadata"]["name"],
        uid=service["metadata"]["uid"],
        resource_version=service["metadata"]["resourceVersion"],
        change=ServiceVersion.Change.CREATED,
        changed_at=timezone.now() - timedelta(seconds=age),
        managers=[{"manager": "kubectl", "operation": "Update"}],
        manifest={},
    )


def test_the_last_changes_of_rows_caught_up_and_settled_are_kept(
    cluster: Cluster, namespace: str, admin_api: k8s.ApiClient, django_assert_num_queries
) -> None:
    from clusters.access import Access
    from services import versions

    core = k8s.CoreV1Api(admin_api)
    made = [
        core.create_namespaced_service(
            namespace, {"metadata": {"name": f"kept-{i}"}, "spec": {"ports": [{"port": 80}]}}
        )
        for i in range(3)
    ]
    rows = [
        {"metadata": {"name": s.metadata.name, "uid": s.metadata.uid, "resourceVersion": s.metadata.resource_version}}
        for s in made
    ]
    uids = [row["metadata"]["uid"] for row in rows]
    access = Access(cluster, superuser=True)
    _version(cluster, namespace, rows[0], age=60)
    _version(cluster, namespace, rows[1], age=60)
    for _ in range(2):  # the third row has no version yet: not caught up, asked each time
        with django_assert_num_queries(1):
            assert set(versions.last_changes(access, namespace, rows)) == set(uids[:2])
    _version(cluster, namespace, rows[2], age=1)
    for _ in range(2):  # caught up, but a change too young to be sure who made it: asked each time
        with django_assert_num_queries(1):
            assert set(versions.last_changes(access, namespace, rows)) == set(uids)
    with django_assert_num_queries(1):  # caught up and settled: asked once...
        changes = versions.last_changes(access, namespace, rows[:2])
    assert changes[uids[0]].who == "kubectl"
    with django_assert_num_queries(0):  # ...and kept
        assert versions.last_changes(access, namespace, rows[:2]) == changes
