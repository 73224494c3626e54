"""Faults: a cluster that stops, hangs, loses etcd or asks to be retried. Each test runs its own short-lived
control plane (about 3 s to start) so the shared one is not disturbed."""

from __future__ import annotations

import http.server
import json
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import Client
from kubernetes import client as k8s

import kube
from clusters.models import Cluster, Role
from kube.informer import informers
from services import api
from tools import localcluster

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]


@pytest.fixture
def doomed(settings) -> Iterator[localcluster.ControlPlane]:
    """A second control plane, registered as cluster "doomed", that the test may break. Its API server gives up
    on etcd after 3 s (``--request-timeout``) so a lost etcd shows as the API server's own 504."""
    plane = localcluster.ControlPlane(localcluster.ensure_binaries(), apiserver_args=("--request-timeout=3s",))
    plane.start()
    cert, key = plane.client_credentials("console", ("system:masters",))
    cluster = Cluster(name="doomed")
    cluster.set_credentials(kube.Credentials(plane.server, plane.ca_pem, client_cert=cert, client_key=key))
    cluster.save()
    yield plane
    plane.stop()


@pytest.fixture
def operator(client: Client, make_user, cluster: Cluster) -> Client:
    user = make_user("operator", role=Role.CLUSTER_ADMIN, cluster=cluster)
    from clusters.models import Grant

    Grant.objects.create(user=user, cluster=Cluster.objects.get(name="doomed"), role=Role.CLUSTER_ADMIN)
    client.force_login(user)
    return client


def timed_get(web: Client, url: str) -> tuple[int, str, float]:
    started = time.monotonic()
    response = web.get(url)
    return response.status_code, response.content.decode(), time.monotonic() - started


def test_a_stopped_api_server_is_reported_and_other_clusters_keep_working(
    doomed: localcluster.ControlPlane, operator: Client, namespace: str
) -> None:
    assert operator.get("/clusters/doomed/namespaces/default/services/").status_code == 200
    # That first view started the namespace's informer; once it has listed, the list is answered from it.
    informer = informers.get(Cluster.objects.get(name="doomed"), api.SERVICES, "default")
    assert informer is not None
    deadline = time.monotonic() + 5
    while not informer.synced and time.monotonic() < deadline:
        time.sleep(0.01)
    assert informer.synced
    doomed.stop(remove=False)
    # The dead API server closed the watch: the informer stops answering (within milliseconds; waited for here so
    # the test does not race the watch thread), and the page asks the API server, which cannot be reached.
    while informer.synced and time.monotonic() < deadline + 5:
        time.sleep(0.001)
    assert not informer.synced
    status, html, seconds = timed_get(operator, "/clusters/doomed/namespaces/default/services/")
    assert status == 200 and "The cluster cannot be reached." in html
    assert seconds < 5
    status, html, _seconds = timed_get(operator, "/clusters/doomed/namespaces/default/services/web/")
    assert status == 503 and "The cluster cannot be reached." in html
    from tests.helpers import service_form

    saved = operator.post("/clusters/doomed/namespaces/default/services/create/", service_form("lost"))
    assert saved.status_code == 422 and "The cluster cannot be reached." in saved.content.decode()
    status, html, _seconds = timed_get(operator, f"/clusters/local/namespaces/{namespace}/services/")
    assert status == 200 and "cannot be reached" not in html


def test_a_lost_etcd_shows_the_api_servers_error(doomed: localcluster.ControlPlane, operator: Client) -> None:
    etcd = doomed.etcd_process()
    etcd.kill()
    etcd.wait()
    status, html, seconds = timed_get(operator, "/clusters/doomed/namespaces/default/services/")
    assert status == 200
    # kube-apiserver answers a request it cannot serve from etcd with a 504 after --request-timeout, but now and
    # then closes the connection instead; the console says which happened, in plain words, either way.
    assert (
        "The cluster&#x27;s API server failed (HTTP 504): Timeout" in html
        or "The cluster closed the connection without answering." in html
    )
    assert seconds < 10  # the API server gives up on etcd after 3 s; a read is tried at most twice here


# --- retries, at the client boundary --------------------------------------------------------------------------
# The real API server cannot be made to answer 429/503 on demand, so these tests put a small HTTPS server where
# the cluster would be and count what the console sends it.


class _Scripted(http.server.BaseHTTPRequestHandler):
    script: list[tuple[int, dict]] = []
    seen: list[str] = []

    def _answer(self) -> None:
        self.seen.append(self.command)
        status, headers = self.script.pop(0) if self.script else (200, {})
        body = json.dumps({"kind": "ServiceList", "apiVersion": "v1", "metadata": {}, "items": []}).encode()
        if status != 200:
            body = json.dumps({"kind": "Status", "code": status, "message": "busy"}).encode()
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _answer  # noqa: N815

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def scripted(
    control_plane: localcluster.ControlPlane, tmp_path: Path
) -> Iterator[tuple[k8s.ApiClient, type[_Scripted]]]:
    cert, key = control_plane.ca.issue("scripted", server=True)
    (tmp_path / "tls.crt").write_bytes(cert)
    (tmp_path / "tls.key").write_bytes(key)

    class Handler(_Scripted):
        script, seen = [], []

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = kube.build_api_client(
        kube.Credentials(f"https://127.0.0.1:{server.server_address[1]}", control_plane.ca_pem, token="t")
    )
    yield api, Handler
    server.shutdown()


def test_reads_are_retried_after_429_honouring_retry_after(scripted) -> None:
    api, server = scripted
    server.script[:] = [(429, {"Retry-After": "1"}), (503, {"Retry-After": "1"})]
    started = time.monotonic()
    result = kube.call(k8s.CoreV1Api(api).list_namespaced_service, "default")
    assert result["kind"] == "ServiceList"
    assert server.seen == ["GET", "GET", "GET"]
    assert time.monotonic() - started >= 2.0  # waited as asked, once per refusal


def test_reads_give_up_after_a_bounded_number_of_retries(scripted) -> None:
    api, server = scripted
    server.script[:] = [(429, {"Retry-After": "0"})] * 10
    with pytest.raises(kube.ClusterUnavailable, match="busy"):
        kube.call(k8s.CoreV1Api(api).list_namespaced_service, "default")
    assert len(server.seen) == 1 + kube.MAX_READ_RETRIES


def test_creates_and_deletes_are_never_retried(scripted) -> None:
    api, server = scripted
    server.script[:] = [(503, {"Retry-After": "0"}), (503, {"Retry-After": "0"})]
    with pytest.raises(kube.ClusterUnavailable):
        kube.call(k8s.CoreV1Api(api).create_namespaced_service, "default", {"metadata": {"name": "x"}})
    with pytest.raises(kube.ClusterUnavailable):
        kube.call(k8s.CoreV1Api(api).delete_namespaced_service, "x", "default")
    assert server.seen == ["POST", "DELETE"]


def test_a_double_submitted_create_makes_one_service(
    client: Client, make_user, cluster: Cluster, admin_api: k8s.ApiClient, namespace: str
) -> None:
    """The same form posted twice (a double click, a resubmitted page): one Service, and a plain message."""
    from tests.helpers import service_form

    client.force_login(make_user("twice", role=Role.NS_EDIT, cluster=cluster, namespace=namespace))
    url = f"/clusters/local/namespaces/{namespace}/services/create/"
    first, second = client.post(url, service_form("once")), client.post(url, service_form("once"))
    assert (first.status_code, second.status_code) == (302, 422)
    assert "A Service named “once” already exists in this namespace." in second.content.decode()
    assert [s.metadata.name for s in k8s.CoreV1Api(admin_api).list_namespaced_service(namespace).items] == ["once"]
