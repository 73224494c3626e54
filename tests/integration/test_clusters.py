"""Registering clusters: credentials encrypted and write-only, connections checked against the real API server."""

from __future__ import annotations

import http.server
import io
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client

import kube
from clusters.models import Cluster, Grant, Role
from tools import localcluster

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]


@pytest.fixture
def admin_client(client: Client, make_user) -> Client:
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def add_cluster(admin_client: Client, **fields: str) -> object:
    data = {"name": "prod", "display_name": "Production", "description": "", **fields}
    return admin_client.post("/admin/console/cluster/add/", data)


def database_bytes(tmp_path: Path) -> bytes:
    """The whole database: on SQLite the file as written to disk, elsewhere every row of every table."""
    if connection.vendor == "sqlite":
        target = tmp_path / f"copy-{len(list(tmp_path.iterdir()))}.sqlite3"
        with connection.cursor() as cursor:
            cursor.execute("VACUUM INTO %s", [str(target)])
        return target.read_bytes()
    dump = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f'SELECT * FROM "{table}"')
            dump.append(f"{table}: {cursor.fetchall()!r}")
    return "\n".join(dump).encode()


@pytest.mark.django_db(transaction=True)  # SQLite's VACUUM INTO cannot run inside a transaction
def test_a_token_is_stored_encrypted_and_never_shown(
    admin_client: Client, control_plane: localcluster.ControlPlane, service_account_token: str, tmp_path: Path
) -> None:
    response = add_cluster(
        admin_client,
        server_url=control_plane.server,
        token=service_account_token,
        certificate_authority=control_plane.ca_pem.decode(),
        use="shared",  # stored as given (the set-up would store the console's own token instead)
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    cluster = Cluster.objects.get(name="prod")
    assert cluster.credentials().token == service_account_token
    assert (cluster.kubernetes_version, cluster.reachable, cluster.auth_method) == ("v1.37.2", True, "token")

    stored = database_bytes(tmp_path)
    assert len(stored) > 5_000 and cluster.encrypted_credentials[:40].encode() in stored  # the row is in it
    assert service_account_token.encode() not in stored
    assert service_account_token[-24:].encode() not in stored
    for page in (
        f"/admin/console/cluster/{cluster.pk}/change/",
        "/admin/console/cluster/",
        f"/admin/console/cluster/{cluster.pk}/history/",
    ):
        html = admin_client.get(page).content.decode()
        assert service_account_token[-24:] not in html, page

    tested = admin_client.post(
        "/admin/console/cluster/", {"action": "test_connection", "_selected_action": [cluster.pk]}, follow=True
    )
    said = tested.content.decode().replace("&ldquo;", "“").replace("&rdquo;", "”")
    assert "Cluster “prod” is reachable (Kubernetes v1.37.2), and its credential may do what the console needs." in said


def test_credentials_can_be_replaced_and_are_kept_when_left_empty(
    admin_client: Client, control_plane: localcluster.ControlPlane, service_account_token: str
) -> None:
    add_cluster(
        admin_client,
        server_url=control_plane.server,
        token=service_account_token,
        certificate_authority=control_plane.ca_pem.decode(),
        use="shared",
    )
    cluster = Cluster.objects.get(name="prod")
    version = cluster.credentials_version
    kept = admin_client.post(
        f"/admin/console/cluster/{cluster.pk}/change/", {"name": "prod", "display_name": "Renamed"}
    )
    assert kept.status_code == 302
    cluster.refresh_from_db()
    assert cluster.display_name == "Renamed" and cluster.credentials().token == service_account_token
    assert cluster.credentials_version == version

    upload = io.BytesIO(yaml.safe_dump(control_plane.kubeconfig()).encode())
    upload.name = "kubeconfig"
    replaced = admin_client.post(
        f"/admin/console/cluster/{cluster.pk}/change/", {"name": "prod", "kubeconfig": upload, "use": "shared"}
    )
    assert replaced.status_code == 302
    cluster.refresh_from_db()
    assert cluster.auth_method == "client-certificate" and cluster.credentials_version == version + 1


def test_a_wrong_token_is_rejected_without_echoing_it(
    admin_client: Client, control_plane: localcluster.ControlPlane
) -> None:
    response = add_cluster(
        admin_client,
        server_url=control_plane.server,
        token="not-a-real-token-123",
        certificate_authority=control_plane.ca_pem.decode(),
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "The cluster rejected the console&#x27;s credentials." in html or "rejected the console" in html
    assert "not-a-real-token-123" not in html
    assert not Cluster.objects.exists()


def test_an_unreachable_server_is_reported_plainly(admin_client: Client) -> None:
    response = add_cluster(admin_client, server_url="https://127.0.0.1:9", token="abc")
    assert "cannot be reached" in response.content.decode()
    assert not Cluster.objects.exists()


def test_plain_http_needs_the_insecure_checkbox(admin_client: Client) -> None:
    response = add_cluster(admin_client, server_url="http://127.0.0.1:8080", token="abc")
    assert "must be an https:// address" in response.content.decode()
    assert not Cluster.objects.exists()


@pytest.fixture
def redirecting_server(control_plane: localcluster.ControlPlane, tmp_path: Path) -> Iterator[str]:
    """An HTTPS server trusted by the control plane's CA that answers every request with a redirect."""
    cert, key = control_plane.ca.issue("redirector", server=True)
    (tmp_path / "tls.crt").write_bytes(cert)
    (tmp_path / "tls.key").write_bytes(key)

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(302)
            self.send_header("Location", "https://127.0.0.1:1/stolen")
            self.end_headers()

        do_POST = do_GET  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_redirecting_server_is_refused(
    admin_client: Client, control_plane: localcluster.ControlPlane, redirecting_server: str
) -> None:
    response = add_cluster(
        admin_client, server_url=redirecting_server, token="abc", certificate_authority=control_plane.ca_pem.decode()
    )
    assert "answered with a redirect" in response.content.decode()
    assert not Cluster.objects.exists()


def test_a_kubeconfig_with_exec_is_refused_in_the_admin(admin_client: Client, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    document = {
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": {"exec": {"command": "touch", "args": [str(marker)]}}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    upload = io.BytesIO(yaml.safe_dump(document).encode())
    upload.name = "kubeconfig"
    response = add_cluster(admin_client, kubeconfig=upload)
    assert "which runs a command" in response.content.decode()
    assert not marker.exists() and not Cluster.objects.exists()


# --- commands and visibility ------------------------------------------------------------------------------------


def test_register_cluster_command_and_who_sees_it(
    control_plane: localcluster.ControlPlane, tmp_path: Path, client: Client, make_user
) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(control_plane.kubeconfig()))
    out = io.StringIO()
    call_command("register_cluster", name="local2", kubeconfig=path, stdout=out)
    assert "Registered cluster local2 (Kubernetes v1.37.2)." in out.getvalue()

    granted = make_user("granted")
    call_command("grant", user="granted", cluster="local2", namespace="team-a", role="ns-view", stdout=io.StringIO())
    make_user("stranger")
    client.force_login(granted)
    assert "local2" in client.get("/clusters/").content.decode()
    client.force_login(get_user("stranger"))
    page = client.get("/clusters/").content.decode()
    assert "local2" not in page and "You have no access to any cluster yet." in page
    assert client.get("/clusters/local2/").status_code == 404


def get_user(name: str):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username=name)


def test_register_cluster_refuses_what_the_form_refuses(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("clusters: []\nusers: []\ncontexts: []\ncurrent-context: x\n")
    with pytest.raises(CommandError, match="no context named"):
        call_command("register_cluster", name="bad", kubeconfig=path, stdout=io.StringIO())
    assert not Cluster.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"role": "ns-edit"}, "namespace role: give --namespace"),
        ({"role": "cluster-view", "namespace": "x"}, "cluster role: give no --namespace"),
    ],
)
def test_grant_command_checks_the_scope(cluster: Cluster, make_user, args: dict, message: str) -> None:
    make_user("someone")
    with pytest.raises(CommandError, match=message):
        call_command("grant", user="someone", cluster="local", stdout=io.StringIO(), **args)


def test_a_revoked_grant_takes_effect_on_the_next_request(
    client: Client, cluster: Cluster, make_user, namespace: str
) -> None:
    user = make_user("temp", role=Role.NS_VIEW, cluster=cluster, namespace=namespace)
    client.force_login(user)
    assert client.get(f"/clusters/local/namespaces/{namespace}/services/").status_code == 200
    Grant.objects.filter(user=user).delete()
    assert client.get(f"/clusters/local/namespaces/{namespace}/services/").status_code == 404


def test_group_grants_count(client: Client, cluster: Cluster, make_user, namespace: str) -> None:
    user = make_user("member")
    call_command("grant", group="sre", cluster="local", role="cluster-view", stdout=io.StringIO())
    user.groups.add(Grant.objects.get().group)
    client.force_login(user)
    assert client.get(f"/clusters/local/namespaces/{namespace}/services/").status_code == 200
    assert client.get(f"/clusters/local/namespaces/{namespace}/services/create/").status_code == 403


def test_cluster_roles_see_every_namespace_live(client: Client, cluster: Cluster, make_user, namespace: str) -> None:
    client.force_login(make_user("ops", role=Role.CLUSTER_VIEW, cluster=cluster))
    html = client.get("/clusters/local/").content.decode()
    assert namespace in html and "kube-system" in html


# --- encryption keys ----------------------------------------------------------------------------------------------


def test_credentials_key_rotation(settings, cluster: Cluster) -> None:
    old_key = settings.CREDENTIAL_ENCRYPTION_KEYS[0]
    new_key = Fernet.generate_key().decode()
    settings.CREDENTIAL_ENCRYPTION_KEYS = [new_key, old_key]
    call_command("rotate_credentials_key", stdout=io.StringIO())
    settings.CREDENTIAL_ENCRYPTION_KEYS = [new_key]
    cluster.refresh_from_db()
    assert cluster.credentials().server.startswith("https://127.0.0.1:")
    settings.CREDENTIAL_ENCRYPTION_KEYS = [old_key]
    with pytest.raises(Exception, match="no configured key"):
        cluster.credentials()


def test_cluster_status_partial_reports_the_version(
    client: Client, cluster: Cluster, make_user, namespace: str
) -> None:
    client.force_login(make_user("v", role=Role.NS_VIEW, cluster=cluster, namespace=namespace))
    html = client.get("/clusters/local/status/", HTTP_HX_REQUEST="true").content.decode()
    assert "Reachable" in html and "v1.37.2" in html and "<html" not in html


def test_a_silent_cluster_is_bounded_by_the_read_timeout(settings, client: Client, make_user) -> None:
    """A server that accepts connections and never answers: the page says so instead of hanging."""
    import socket

    import kube

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    # The TLS handshake is bounded by the connect timeout, the answer by the read timeout.
    settings.KUBE_CONNECT_TIMEOUT = settings.KUBE_READ_TIMEOUT = 0.5
    silent = Cluster(name="silent")
    silent.set_credentials(kube.Credentials(server=f"https://127.0.0.1:{listener.getsockname()[1]}", token="t"))
    silent.save()
    client.force_login(make_user("watcher", role=Role.CLUSTER_VIEW, cluster=silent))
    try:
        html = client.get("/clusters/silent/status/", HTTP_HX_REQUEST="true").content.decode()
    finally:
        listener.close()
    assert "did not answer in time" in html and "Unreachable" in html


def test_pooled_clients_are_reused_and_rebuilt_when_credentials_change(cluster: Cluster, admin_credentials) -> None:
    import kube

    first = kube.api_client_for(cluster)
    assert kube.api_client_for(Cluster.objects.get(pk=cluster.pk)) is first
    cluster.set_credentials(admin_credentials)
    cluster.save()
    assert kube.api_client_for(cluster) is not first


def test_tls_server_name_is_used_and_extensions_are_ignored(control_plane: localcluster.ControlPlane) -> None:
    import kube

    document = control_plane.kubeconfig()
    document["clusters"][0]["cluster"]["extensions"] = [{"name": "cluster_info", "extension": {"provider": "x"}}]
    for name, works in (("kubernetes.default", True), ("wrong.example.com", False)):
        document["clusters"][0]["cluster"]["tls-server-name"] = name
        credentials = kube.parse_kubeconfig(yaml.safe_dump(document), max_bytes=1 << 20)
        assert credentials.tls_server_name == name
        if works:
            assert kube.check_connection(credentials) == localcluster.KUBERNETES_VERSION
        else:
            with pytest.raises(kube.ClusterUnavailable, match="TLS certificate could not be verified"):
                kube.check_connection(credentials)


def test_credentials_under_a_lost_key_give_a_clear_page(
    settings, client: Client, make_user, cluster: Cluster, namespace: str
) -> None:
    client.force_login(make_user("after-rotation", role=Role.NS_VIEW, cluster=cluster, namespace=namespace))
    settings.CREDENTIAL_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    kube.clients.clear()  # the grant's RBAC sync built a client under the old key
    html = client.get(f"/clusters/local/namespaces/{namespace}/services/").content.decode()
    assert "cannot decrypt this cluster" in html
