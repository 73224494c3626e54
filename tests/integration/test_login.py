"""Login throttling (django-axes): per username and client address, shared by every worker through the database,
and behind a proxy keyed on the client's address, not the proxy's."""

from __future__ import annotations

import pytest
from django.test import Client

from clusters.models import AuditEntry

pytestmark = pytest.mark.django_db

PROXY = "10.0.0.2"  # the reverse proxy in front of the console: every request arrives from it


def fail(client: Client, username: str, **headers: str):  # noqa: ANN201 - a test client response
    return client.post("/login/", {"username": username, "password": "wrong"}, **headers)


def log_in(client: Client, username: str, **headers: str):  # noqa: ANN201
    return client.post("/login/", {"username": username, "password": f"pw-{username}"}, **headers)


def test_logins_are_throttled_after_repeated_failures(client: Client, make_user, settings) -> None:
    make_user("target")
    for _attempt in range(settings.LOGIN_FAILURE_LIMIT - 1):
        response = fail(client, "target")
        assert "Please enter a correct username and password" in response.content.decode()
    assert fail(client, "target").status_code == 429  # the failure that reaches the limit
    blocked = log_in(client, "target")
    html = blocked.content.decode()
    assert blocked.status_code == 429
    assert "Too many failed log-ins. Wait 15 minutes" in html
    assert 'name="username"' in html and 'value="target"' in html  # the login page, with what was typed
    assert "_auth_user_id" not in client.session
    assert AuditEntry.objects.filter(action="login", result="failed", username="target").count() >= 5


def test_a_lockout_is_per_username_and_address(client: Client, make_user, settings) -> None:
    make_user("target")
    make_user("neighbour")
    for _attempt in range(settings.LOGIN_FAILURE_LIMIT):
        fail(client, "target", REMOTE_ADDR="192.0.2.1")
    assert log_in(Client(), "target", REMOTE_ADDR="192.0.2.1").status_code == 429
    assert log_in(Client(), "target", REMOTE_ADDR="192.0.2.2").status_code == 302  # the same user elsewhere
    assert log_in(Client(), "neighbour", REMOTE_ADDR="192.0.2.1").status_code == 302  # another user, same address


def test_behind_a_proxy_one_clients_failures_lock_out_no_one_else(client: Client, make_user, settings) -> None:
    settings.TRUSTED_PROXY_COUNT = 1
    make_user("target")
    attacker = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "203.0.113.66"}
    for _attempt in range(settings.LOGIN_FAILURE_LIMIT):
        fail(client, "target", **attacker)
    assert log_in(Client(), "target", **attacker).status_code == 429
    # The real user, through the same proxy, from their own address, still gets in.
    assert log_in(Client(), "target", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="198.51.100.7").status_code == 302
    # The attacker cannot shed the lock by claiming another address in front of the one the proxy saw.
    forged = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "198.51.100.7, 203.0.113.66"}
    assert log_in(Client(), "target", **forged).status_code == 429


def test_without_trusted_proxies_a_forwarded_address_is_ignored(client: Client, make_user, settings) -> None:
    make_user("target")
    for _attempt in range(settings.LOGIN_FAILURE_LIMIT):
        fail(client, "target", REMOTE_ADDR="192.0.2.9", HTTP_X_FORWARDED_FOR="203.0.113.1")
    # A different claimed address from the same connection is the same client.
    assert log_in(Client(), "target", REMOTE_ADDR="192.0.2.9", HTTP_X_FORWARDED_FOR="203.0.113.2").status_code == 429


@pytest.mark.parametrize(
    ("trusted", "meta", "expected"),
    [
        (0, {"REMOTE_ADDR": "192.0.2.1", "HTTP_X_FORWARDED_FOR": "203.0.113.1"}, "192.0.2.1"),
        (1, {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "203.0.113.1"}, "203.0.113.1"),
        (1, {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "1.1.1.1, 203.0.113.1"}, "203.0.113.1"),
        (2, {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "1.1.1.1, 203.0.113.1, 10.0.0.9"}, "203.0.113.1"),
        (1, {"REMOTE_ADDR": PROXY}, PROXY),  # not through the proxy after all: its own address
        (2, {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": " , "}, PROXY),
    ],
)
def test_the_client_address_is_counted_from_the_right(settings, rf, trusted: int, meta: dict, expected: str) -> None:
    from console.middleware import client_address

    settings.TRUSTED_PROXY_COUNT = trusted
    assert client_address(rf.get("/", **meta)) == expected


def test_local_passwords_for_superusers_only_refuse_everyone_else(client: Client, make_user, settings) -> None:
    settings.LOCAL_LOGIN = "superusers"
    make_user("person")
    make_user("root", is_superuser=True, is_staff=True)
    refused = log_in(client, "person")
    assert refused.status_code == 200 and "_auth_user_id" not in client.session
    assert "Please enter a correct username and password" in refused.content.decode()  # names no account
    assert log_in(client, "root").status_code == 302 and "_auth_user_id" in client.session


def test_local_passwords_off_refuse_every_password_with_a_message(client: Client, make_user, settings) -> None:
    settings.LOCAL_LOGIN = "off"
    settings.OIDC_ISSUER = "https://idp.example.com/realms/console"
    make_user("root", is_superuser=True, is_staff=True)
    page = client.get("/login/").content.decode()
    assert 'name="password"' not in page and "/oidc/login/" in page
    refused = log_in(client, "root")
    assert "Passwords are not used here" in refused.content.decode() and "_auth_user_id" not in client.session
