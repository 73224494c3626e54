"""Single sign-on against a real Keycloak (tools/keycloak.py, started once for the session over HTTPS): people and
groups come from the identity provider, their access ends with it, and a cluster whose API server trusts the same
provider (a structured AuthenticationConfiguration) sees one person whichever tool they use.

The sign-in is done as a browser would: Chromium through Keycloak's own login page where the test is about what a
person sees, and elsewhere a plain HTTP client (requests) that follows the same redirects and fills in the same
login form, parsed from Keycloak's page."""

from __future__ import annotations

import base64
import json
import logging
import re
import time
import uuid
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from joserfc.errors import JoseError
from kubernetes import client as k8s
from playwright.sync_api import Browser, expect

import kube
from clusters import oidc, rbac
from clusters.models import Cluster, Grant, ProviderSession, Role
from tools import keycloak as kc
from tools import localcluster

pytestmark = [pytest.mark.cluster, pytest.mark.sso]

CLIENT_ID, CLIENT_SECRET = "kube-service-console", "console-secret-for-tests"
OTHER_CLIENT = "another-application"
PASSWORDS = {"alice": "alice-password", "bob": "bob-password"}


def realm() -> dict:
    def person(name: str, first: str, last: str, groups: list[str]) -> dict:
        return {
            "username": name,
            "email": f"{name}@example.com",
            "emailVerified": True,
            "enabled": True,
            "firstName": first,
            "lastName": last,
            "credentials": [{"type": "password", "value": PASSWORDS[name], "temporary": False}],
            "groups": groups,
        }

    groups_mapper = {
        "name": "groups",
        "protocol": "openid-connect",
        "protocolMapper": "oidc-group-membership-mapper",
        "config": {
            "full.path": "false",
            "id.token.claim": "true",
            "access.token.claim": "true",
            "userinfo.token.claim": "true",
            "claim.name": "groups",
        },
    }

    def client(client_id: str) -> dict:
        return {
            "clientId": client_id,
            "enabled": True,
            "publicClient": False,
            "secret": f"{client_id}-secret" if client_id != CLIENT_ID else CLIENT_SECRET,
            "protocol": "openid-connect",
            "standardFlowEnabled": True,
            "directAccessGrantsEnabled": True,  # the "kubectl" token of the tests: a password grant
            "redirectUris": ["*"],
            "frontchannelLogout": False,
            "attributes": {
                "pkce.code.challenge.method": "S256",
                "post.logout.redirect.uris": "+",
                "backchannel.logout.session.required": "true",
            },
            "protocolMappers": [groups_mapper],
        }

    return {
        "realm": "console",
        "enabled": True,
        "sslRequired": "none",
        "internationalizationEnabled": True,
        "supportedLocales": ["en", "zh-CN"],
        "defaultLocale": "en",
        "groups": [{"name": "team-a"}, {"name": "team-b"}],
        "users": [person("alice", "Alice", "Liddell", ["/team-a"]), person("bob", "Bob", "Builder", [])],
        "clients": [client(CLIENT_ID), client(OTHER_CLIENT)],
    }


@pytest.fixture(scope="session")
def keycloak() -> Iterator[kc.Keycloak]:
    started = time.monotonic()
    server = kc.Keycloak(realm())
    server.start()
    print(f"Keycloak {kc.VERSION} ready at {server.url} in {time.monotonic() - started:.1f} s")
    yield server
    server.stop()


@pytest.fixture
def sso(keycloak: kc.Keycloak, live_server, transactional_db, settings) -> Iterator[kc.Keycloak]:
    """The console signing people in with the test Keycloak (a recheck window of 2 s, so that tests can measure
    it), and Keycloak calling the console's back-channel logout."""
    settings.OIDC_ISSUER = keycloak.issuer
    settings.OIDC_CLIENT_ID, settings.OIDC_CLIENT_SECRET = CLIENT_ID, CLIENT_SECRET
    settings.OIDC_CA_FILE = str(keycloak.ca_file)
    settings.OIDC_PROVIDER_NAME = "Keycloak"
    settings.OIDC_RECHECK_SECONDS = 2
    settings.OIDC_TIMEOUT = 2.0
    oidc.forget_provider()
    client = keycloak.client(CLIENT_ID)
    client["attributes"]["backchannel.logout.url"] = f"{live_server.url}/oidc/backchannel-logout/"
    keycloak.admin("PUT", f"/clients/{client['id']}", client)
    for name in PASSWORDS:  # as the realm was imported: enabled, alice in team-a only
        user = keycloak.user_id(name)
        keycloak.admin("PUT", f"/users/{user}", {"enabled": True})
        keycloak.admin("POST", f"/users/{user}/logout")
    alice = keycloak.user_id("alice")
    keycloak.admin("PUT", f"/users/{alice}/groups/{keycloak.group_id('team-a')}")
    keycloak.base = live_server.url
    yield keycloak
    oidc.forget_provider()


class Person:
    """A browser's cookie jar and redirects, as ``requests`` keeps them; it trusts the test Keycloak's CA."""

    def __init__(self, keycloak: kc.Keycloak) -> None:
        self.http = requests.Session()
        self.http.trust_env = False  # else REQUESTS_CA_BUNDLE in the environment overrides the CA file below
        self.http.verify = str(keycloak.ca_file)
        self.base = keycloak.base

    def sign_in(self, name: str, next_url: str = "") -> requests.Response:
        """Click "Sign in with Keycloak", fill Keycloak's own login form, follow the way back."""
        page = self.http.get(f"{self.base}/oidc/login/", params={"next": next_url} if next_url else None)
        assert page.status_code == 200 and "kc-form-login" in page.text, page.text[:2000]
        action = unescape(re.search(r'<form[^>]*id="kc-form-login"[^>]*action="([^"]+)"', page.text).group(1))
        return self.http.post(action, data={"username": name, "password": PASSWORDS[name], "credentialId": ""})

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.http.get(f"{self.base}{path}", **kwargs)

    def csrf_post(self, path: str, data: dict) -> requests.Response:
        page = self.get("/clusters/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        return self.http.post(
            f"{self.base}{path}", data={**data, "csrfmiddlewaretoken": token}, headers={"Referer": self.base}
        )


def signed_in(response: requests.Response) -> bool:
    return urlsplit(response.url).path.startswith("/clusters/") and 'action="/logout/"' in response.text


# --- people and groups from the provider ------------------------------------------------------------------------


def test_a_first_sign_in_makes_the_person_with_their_groups_and_next_stays_on_the_site(
    sso: kc.Keycloak, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    person = Person(sso)
    landed = person.sign_in("alice", next_url="https://evil.example/steal")
    assert landed.status_code == 200 and signed_in(landed), landed.url
    assert urlsplit(landed.url).netloc == urlsplit(sso.base).netloc  # not off-site
    alice = get_user_model().objects.get(username="alice")
    assert (alice.email, alice.first_name, alice.has_usable_password()) == ("alice@example.com", "Alice", False)
    assert [group.name for group in alice.groups.all()] == ["team-a"]
    assert alice.person_at_provider.claims["email"] == "alice@example.com"
    tokens = ProviderSession.objects.get(user=alice).tokens()
    for token in tokens.values():  # no token in any log line
        assert token[-24:] not in caplog.text


def test_an_idp_group_grant_lets_alice_work_and_bob_sees_nothing(
    sso: kc.Keycloak, cluster: Cluster, namespace: str, admin_api: k8s.ApiClient
) -> None:
    team = Group.objects.create(name="team-a")
    Grant.objects.create(group=team, cluster=cluster, role=Role.NS_EDIT, namespace=namespace)
    alice, bob = Person(sso), Person(sso)
    alice.sign_in("alice")
    page = f"/clusters/{cluster.name}/namespaces/{namespace}/services/"
    wait_until(lambda: alice.get(page).status_code == 200)  # the binding reaches the RBAC authorizer
    text = "apiVersion: v1\nkind: Service\nmetadata: {name: from-idp}\nspec: {ports: [{port: 80}]}\n"
    created = alice.csrf_post(f"{page}create-yaml/", {"yaml": text, "_action": "save"})
    assert created.status_code == 200 and urlsplit(created.url).path == page, created.text[:1000]
    assert k8s.CoreV1Api(admin_api).read_namespaced_service("from-idp", namespace).metadata.name == "from-idp"
    bob.sign_in("bob")
    assert bob.get(page).status_code == 404
    assert namespace not in bob.get("/clusters/").text and "from-idp" not in bob.get("/services/").text


def wait_until(check, seconds: float = 15.0) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, "not within the time allowed"
        time.sleep(0.1)
    return time.monotonic() - started


# --- access that ends with the provider -------------------------------------------------------------------------


@pytest.fixture
def alice_at_work(sso: kc.Keycloak, cluster: Cluster, namespace: str) -> tuple[Person, str]:
    team = Group.objects.create(name="team-a")
    Grant.objects.create(group=team, cluster=cluster, role=Role.NS_VIEW, namespace=namespace)
    alice = Person(sso)
    alice.sign_in("alice")
    page = f"/clusters/{cluster.name}/namespaces/{namespace}/services/"
    wait_until(lambda: alice.get(page).status_code == 200)
    return alice, page


def test_leaving_the_group_at_the_provider_ends_the_access_within_the_window(
    sso: kc.Keycloak, alice_at_work: tuple[Person, str]
) -> None:
    alice, page = alice_at_work
    sso.admin("DELETE", f"/users/{sso.user_id('alice')}/groups/{sso.group_id('team-a')}")
    took = wait_until(lambda: alice.get(page).status_code == 404, seconds=10)
    print(f"removed from team-a at Keycloak: access ended after {took:.2f} s (window 2 s)")
    assert took <= 2 + 1.5
    assert list(get_user_model().objects.get(username="alice").groups.all()) == []


def test_a_person_disabled_at_the_provider_is_signed_out_within_the_window(
    sso: kc.Keycloak, alice_at_work: tuple[Person, str]
) -> None:
    alice, page = alice_at_work
    sso.admin("PUT", f"/users/{sso.user_id('alice')}", {"enabled": False})
    took = wait_until(lambda: urlsplit(alice.get(page).url).path == "/login/", seconds=10)
    print(f"disabled at Keycloak: signed out after {took:.2f} s (window 2 s)")
    assert took <= 2 + 1.5


def test_back_channel_logout_ends_the_console_session_at_once(
    sso: kc.Keycloak, alice_at_work: tuple[Person, str]
) -> None:
    alice, page = alice_at_work
    started = time.monotonic()
    sso.admin("POST", f"/users/{sso.user_id('alice')}/logout")  # Keycloak calls the console back
    took = wait_until(lambda: urlsplit(alice.get(page).url).path == "/login/", seconds=5)
    print(f"back-channel logout: session ended {took:.3f} s after Keycloak's logout ({time.monotonic() - started:.3f})")
    assert took < 1.0 and not ProviderSession.objects.exists()


def test_signing_out_of_the_console_signs_out_of_the_provider(sso: kc.Keycloak) -> None:
    alice = Person(sso)
    alice.sign_in("alice")
    out = alice.csrf_post("/logout/", {})
    assert urlsplit(out.url).path == "/login/"
    again = alice.get("/oidc/login/")  # Keycloak asks for the password again: its session ended too
    assert "kc-form-login" in again.text


def test_a_deactivated_console_user_loses_the_bindings_in_every_cluster(
    cluster: Cluster, make_user, namespace: str, admin_api: k8s.ApiClient
) -> None:
    carol = make_user("carol", role=Role.NS_EDIT, cluster=cluster, namespace=namespace)
    grant = Grant.objects.get(user=carol)
    selector = f"{rbac.GRANT_LABEL}={grant.pk}"
    authz = k8s.RbacAuthorizationV1Api(admin_api)
    assert authz.list_namespaced_role_binding(namespace, label_selector=selector).items
    carol.is_active = False
    carol.save()
    assert authz.list_namespaced_role_binding(namespace, label_selector=selector).items == []
    carol.is_active = True
    carol.save()
    assert authz.list_namespaced_role_binding(namespace, label_selector=selector).items


# --- bad days ---------------------------------------------------------------------------------------------------


def test_a_tampered_or_replayed_callback_is_refused_with_a_message(sso: kc.Keycloak, caplog) -> None:
    person = Person(sso)
    page = person.http.get(f"{sso.base}/oidc/login/")
    action = unescape(re.search(r'action="([^"]+)"', page.text).group(1))
    back = person.http.post(action, data={"username": "alice", "password": PASSWORDS["alice"]}, allow_redirects=False)
    callback = back.headers["Location"]
    query = parse_qs(urlsplit(callback).query)
    tampered = person.http.get(f"{sso.base}/oidc/callback/", params={"code": query["code"][0], "state": "forged"})
    assert tampered.status_code == 400 and "did not work" in tampered.text
    used = person.http.get(callback)
    assert signed_in(used)
    replayed = requests.Session()
    replayed.trust_env, replayed.verify = False, person.http.verify
    again = replayed.get(callback)
    assert again.status_code == 400 and "did not work" in again.text
    error = person.http.get(f"{sso.base}/oidc/callback/", params={"error": "access_denied", "state": "x"})
    assert error.status_code == 400
    assert query["code"][0] not in caplog.text


def id_token_of(keycloak: kc.Keycloak, client_id: str, name: str) -> dict:
    """A token answer for ``name`` from the token endpoint (a password grant), as kubectl's OIDC plugin gets one."""
    answer = requests.post(
        f"{keycloak.issuer}/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": client_id,
            "client_secret": CLIENT_SECRET if client_id == CLIENT_ID else f"{client_id}-secret",
            "username": name,
            "password": PASSWORDS[name],
            "scope": "openid email profile",
        },
        verify=str(keycloak.ca_file),
        timeout=10,
    )
    answer.raise_for_status()
    return answer.json()


def test_an_id_token_for_another_audience_an_expired_one_or_a_forged_one_is_refused(sso: kc.Keycloak) -> None:
    provider = oidc._provider()  # noqa: SLF001 - the validation the callback uses
    mine = id_token_of(sso, CLIENT_ID, "alice")
    assert provider.parse_id_token(mine, nonce=None, leeway=oidc.LEEWAY)["email"] == "alice@example.com"
    other = id_token_of(sso, OTHER_CLIENT, "alice")
    with pytest.raises(JoseError):  # audience: another application's token
        provider.parse_id_token({"id_token": other["id_token"]}, nonce=None)
    header, payload, signature = mine["id_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged_payload = base64.urlsafe_b64encode(json.dumps({**claims, "email": "mallory@example.com"}).encode())
    forged = f"{header}.{forged_payload.decode().rstrip('=')}.{signature}"
    with pytest.raises(JoseError):  # the signature no longer matches
        provider.parse_id_token({"id_token": forged}, nonce=None)
    with pytest.raises(JoseError):  # a wrong nonce: a token from another sign-in
        provider.parse_id_token({"id_token": mine["id_token"]}, nonce="another-sign-in")
    with pytest.raises(JoseError):  # expired: judged as if read an hour later, past any leeway
        future = time.time() + 3600
        original = time.time
        try:
            time.time = lambda: future
            provider.parse_id_token({"id_token": mine["id_token"]}, nonce=None, leeway=oidc.LEEWAY)
        finally:
            time.time = original


def test_a_forged_back_channel_logout_ends_nothing(sso: kc.Keycloak, alice_at_work: tuple[Person, str]) -> None:
    alice, page = alice_at_work
    id_token = id_token_of(sso, CLIENT_ID, "alice")["id_token"]  # signed by Keycloak, but not a logout token
    for token in ("", "not-a-jwt", id_token):
        answer = requests.post(f"{sso.base}/oidc/backchannel-logout/", data={"logout_token": token}, timeout=5)
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_request"
    assert alice.get(page).status_code == 200


def test_the_login_page_says_when_the_provider_cannot_be_reached(sso: kc.Keycloak) -> None:
    person = Person(sso)
    sso.pause()
    try:
        page = person.get("/login/")
        assert page.status_code == 200 and "Sign in with Keycloak" in page.text
        started = time.monotonic()
        refused = person.get("/oidc/login/", headers={"Accept-Language": "zh-hans"})
        took = time.monotonic() - started
    finally:
        sso.resume()
    assert refused.status_code == 503 and "Keycloak" in refused.text and "无法连接" in refused.text
    assert took < 2.0 * 2 + 1  # the timeout (2 s), not a hang
    print(f"provider stopped: the login page answered in {took:.2f} s")


# --- one person for kubectl and the console ---------------------------------------------------------------------


AUTHENTICATION = """apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
- issuer:
    url: {issuer}
    audiences: [{audience}]
    certificateAuthority: |
{ca}
  claimMappings:
    username: {{claim: email, prefix: "oidc:"}}
    groups: {{claim: groups, prefix: "oidc:"}}
"""


@pytest.fixture(scope="session")
def oidc_control_plane(keycloak: kc.Keycloak, tmp_path_factory) -> Iterator[localcluster.ControlPlane]:
    """A control plane whose API server also trusts the test Keycloak's ID tokens, as a cluster set up for kubectl
    users with OIDC: alice's token is ``oidc:alice@example.com`` in group ``oidc:team-a``."""
    folder: Path = tmp_path_factory.mktemp("authn")
    ca = "\n".join(f"      {line}" for line in keycloak.ca_pem.decode().splitlines())
    config = folder / "authentication.yaml"
    config.write_text(AUTHENTICATION.format(issuer=keycloak.issuer, audience=CLIENT_ID, ca=ca))
    plane = localcluster.ControlPlane(
        localcluster.ensure_binaries(), apiserver_args=(f"--authentication-config={config}",)
    )
    plane.start()
    yield plane
    plane.stop()


@pytest.mark.browser
def test_the_cluster_sees_one_person_whichever_tool_they_use(
    sso: kc.Keycloak, oidc_control_plane: localcluster.ControlPlane, browser: Browser
) -> None:
    cert, key = oidc_control_plane.client_credentials("admin", ("system:masters",))
    admin = kube.Credentials(
        server=oidc_control_plane.server, ca_data=oidc_control_plane.ca_pem, client_cert=cert, client_key=key
    )
    done = rbac.set_up(admin)
    cluster = Cluster(name="sso", display_name="SSO", identity_mode=done.mode, identity_reason=done.reason)
    cluster.naming = Cluster.Naming.OIDC
    cluster.set_credentials(done.credentials)
    cluster.save()
    namespace = f"sso-{uuid.uuid4().hex[:6]}"
    admin_api = kube.build_api_client(admin)
    k8s.CoreV1Api(admin_api).create_namespace({"metadata": {"name": namespace}})
    team = Group.objects.create(name="team-a")
    grant = Grant.objects.create(group=team, cluster=cluster, role=Role.NS_EDIT, namespace=namespace)
    binding = k8s.RbacAuthorizationV1Api(admin_api).list_namespaced_role_binding(
        namespace, label_selector=f"{rbac.GRANT_LABEL}={grant.pk}"
    )
    assert [subject.name for subject in binding.items[0].subjects] == ["oidc:team-a"]  # the kubectl users' group

    # kubectl with alice's own ID token: the API server's OIDC authenticator names her.
    token = id_token_of(sso, CLIENT_ID, "alice")["id_token"]
    as_alice = kube.build_api_client(
        kube.Credentials(server=oidc_control_plane.server, ca_data=oidc_control_plane.ca_pem, token=token)
    )
    review = kube.call(
        k8s.AuthenticationV1Api(as_alice).create_self_subject_review,
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    kubectl_name = review["status"]["userInfo"]["username"]
    assert kubectl_name == "oidc:alice@example.com" and "oidc:team-a" in review["status"]["userInfo"]["groups"]

    # alice in Chromium, in Chinese: Keycloak's real login page, then the console; she creates a Service.
    context = browser.new_context(locale="zh-CN", ignore_https_errors=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{sso.base}/login/")
    page.click("a.sso")
    page.fill("#username", "alice")
    page.fill("#password", PASSWORDS["alice"])
    page.click("#kc-login")
    page.wait_for_url(f"{sso.base}/clusters/")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    services = f"{sso.base}/clusters/sso/namespaces/{namespace}/services/"
    deadline = time.monotonic() + 15
    while True:
        page.goto(f"{services}create-yaml/")
        if page.locator("#yaml-text").count() or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    page.fill("#yaml-text", "apiVersion: v1\nkind: Service\nmetadata: {name: by-alice}\nspec: {ports: [{port: 80}]}\n")
    page.click("#yaml-form button.primary")
    page.wait_for_url(services)
    context.close()
    assert errors == []
    created = [
        event
        for event in oidc_control_plane.audit_events()
        if event.get("verb") == "create"
        and (event.get("objectRef") or {}).get("name") == "by-alice"
        and event.get("responseStatus", {}).get("code") == 201
    ]
    assert created and created[0]["impersonatedUser"]["username"] == kubectl_name  # the same person
    k8s.CoreV1Api(admin_api).delete_namespace(namespace)
