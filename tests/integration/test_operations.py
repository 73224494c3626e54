"""Operations: JSON log lines with the request id, ``X-Request-Id``, and the Prometheus metrics at ``/metrics``, all
observed on real requests to the real API server (and to a registered cluster whose port is closed)."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3
from cryptography.fernet import Fernet
from django.conf import settings
from django.test import Client
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

import kube
from clusters.models import AuditEntry, Cluster, Role
from console import logs
from kube import informer as informer_module
from kube.informer import informers

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]

TOKEN = "metrics-token-0123456789abcdef"
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Every log line of every logger, at DEBUG, as the production handler writes it (JSON with the context)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.ContextFilter())
    root, urllib3_log = logging.getLogger(), logging.getLogger("urllib3")
    levels = root.level, urllib3_log.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    urllib3_log.setLevel(logging.DEBUG)  # its request lines are written deep inside the Kubernetes client
    yield stream
    root.removeHandler(handler)
    root.setLevel(levels[0])
    urllib3_log.setLevel(levels[1])


def parsed(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def scrape(token: str = TOKEN) -> dict[tuple[str, tuple], float]:
    """The metrics page, read as Prometheus would: {(sample name, sorted labels): value}."""
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def metrics_token(settings) -> str:
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# --- logs ------------------------------------------------------------------------------------------------------


def test_json_log_lines_carry_the_request_id_user_and_cluster_of_a_request_that_asked_the_api_server(
    web, service_url, json_lines: io.StringIO
):
    response = web.get(service_url("detail", "no-such-service"))  # read live: the API server answers 404

    request_id = response["X-Request-Id"]
    assert len(request_id) == 32
    lines = [line for line in parsed(json_lines) if line.get("request_id") == request_id]
    refusal = next(line for line in lines if line["logger"] == "kube.client")
    assert refusal["level"] == "DEBUG"
    assert (refusal["cluster"], refusal["operation"], refusal["error_kind"]) == (
        "local",
        "read_namespaced_service",
        "404",
    )
    assert refusal["user"] == "editor"
    # A line written deep inside the Kubernetes client (urllib3's request line) carries the request's id too.
    assert any(line["logger"] == "urllib3.connectionpool" and "no-such-service" in line["message"] for line in lines)
    finished = next(line for line in lines if line["message"] == "request finished")
    assert finished["logger"] == "console.access"
    assert finished["method"] == "GET"
    assert finished["path"] == service_url("detail", "no-such-service")
    assert finished["status"] == response.status_code
    assert finished["duration_ms"] > 0
    assert finished["time"].endswith("+00:00")
    assert set(finished) >= {"time", "level", "logger", "message", "request_id", "user", "cluster"}


def test_the_access_line_leaves_out_the_query_string(web, service_url, json_lines: io.StringIO):
    response = web.get(service_url("list", q="private-search"))

    line = next(line for line in parsed(json_lines) if line["message"] == "request finished")
    assert line["request_id"] == response["X-Request-Id"]
    assert line["path"] == service_url("list")
    assert "private-search" not in json.dumps(line)


def test_the_request_id_header_is_the_audit_entry_of_a_write(web, namespace: str, service_url):
    text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: audited\nspec:\n  ports:\n  - port: 80\n"

    response = web.post(service_url("create_yaml"), {"yaml": text}, **HTMX)

    assert response.status_code == 200, response.content[:300]
    entry = AuditEntry.objects.get(object_name="audited", namespace=namespace)
    assert response["X-Request-Id"] == entry.request_id


def test_a_refused_viewer_is_one_warning_line_without_a_traceback(client, people, service_url, caplog):
    """A viewer opening the create form is refused (PermissionDenied → 403): the console working as meant."""
    client.force_login(people.viewer)
    with caplog.at_level(logging.INFO):
        response = client.get(service_url("create"))

    assert response.status_code == 403
    (refusal,) = [line for line in caplog.records if line.name == "django.request"]
    assert refusal.levelno == logging.WARNING
    assert refusal.getMessage() == f"Forbidden (Permission denied): {service_url('create')}"
    assert refusal.exc_info is None and refusal.exc_text is None
    assert len(logs.TextFormatter().format(refusal).splitlines()) == 1
    assert not [line for line in caplog.records if line.exc_info]  # no other line carries a traceback either


def test_every_request_gets_a_fresh_id_never_the_browsers(client):
    first = client.get(reverse("login"), HTTP_X_REQUEST_ID="chosen-by-the-browser")
    second = client.get(reverse("login"))
    assert first["X-Request-Id"] != "chosen-by-the-browser"
    assert first["X-Request-Id"] != second["X-Request-Id"]


# --- metrics: who may read them ----------------------------------------------------------------------------------


def test_metrics_are_refused_without_the_token_and_served_with_it(client, people, metrics_token: str):
    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert refused["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"console_" not in refused.content
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong-token-0123456789").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {metrics_token}").status_code == 401

    client.force_login(people.cluster_admin)  # a signed-in user is no scraper either
    assert client.get("/metrics").status_code == 401

    served = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {metrics_token}")
    assert served.status_code == 200
    assert b"console_request_duration_seconds" in served.content


def test_without_a_token_only_a_development_server_answers_and_only_to_loopback(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 200  # the test client comes from 127.0.0.1
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7").status_code == 401
    settings.PRODUCTION = True
    assert client.get("/metrics").status_code == 401


# --- metrics: what they say --------------------------------------------------------------------------------------


def test_after_a_list_page_the_metrics_show_the_request_the_kube_calls_the_informer_and_its_watch(
    web, service_url, metrics_token: str
):
    before = scrape()

    assert web.get(service_url("list")).status_code == 200
    wait_until(lambda: value(scrape(), "console_informers", cluster="local", kind="services", state="synced") >= 1)
    after = scrape()

    count = "console_request_duration_seconds_count"
    assert (
        value(after, count, view="services:list", status="2xx")
        == value(before, count, view="services:list", status="2xx") + 1
    )
    calls = {labels: n for (name, labels), n in after.items() if name == "console_kube_call_duration_seconds_count"}
    assert any(
        dict(labels)["cluster"] == "local"
        and n > value(before, "console_kube_call_duration_seconds_count", **dict(labels))
        for labels, n in calls.items()
    )
    assert value(after, "console_watches_held", cluster="local") >= 1
    assert value(after, "console_watches_opened_total", cluster="local") > value(
        before, "console_watches_opened_total", cluster="local"
    )
    assert value(after, "console_access_reviews_total", cluster="local", result="miss") > 0

    informers.clear()  # stopped informers are counted in no state, and hold no watch
    stopped = scrape()
    assert value(stopped, "console_informers", cluster="local", kind="services", state="synced") == 0
    assert value(stopped, "console_informers", cluster="local", kind="services", state="unsynced") == 0
    assert value(stopped, "console_watches_held", cluster="local") == 0


def test_a_cluster_that_is_down_is_counted_per_cluster_and_its_token_never_logged(
    make_user, metrics_token: str, json_lines: io.StringIO, caplog: pytest.LogCaptureFixture, monkeypatch
):
    monkeypatch.setattr(informer_module, "RETRY_DELAYS", (0.01,))
    secret = "s3cret-bearer-token-of-the-down-cluster"
    down = Cluster(name="down")
    down.set_credentials(kube.Credentials(f"https://127.0.0.1:{closed_port()}", b"", token=secret))
    down.save()
    user = make_user("watcher", role=Role.CLUSTER_VIEW, cluster=down)
    web = Client()
    web.force_login(user)
    before = scrape()

    with caplog.at_level(logging.DEBUG):
        response = web.get(reverse("services:list", kwargs={"cluster": "down", "namespace": "default"}))
        assert response.status_code == 200  # the page says the cluster cannot be reached
        wait_until(lambda: value(scrape(), "console_informers", cluster="down", kind="services", state="failed") == 1)

    after = scrape()
    errors = {
        dict(labels)["operation"]: n - value(before, name, **dict(labels))
        for (name, labels), n in after.items()
        if name == "console_kube_call_errors_total"
        and ("cluster", "down") in labels
        and ("kind", "unavailable") in labels
    }
    assert sum(errors.values()) >= 1, errors
    warning = next(line for line in parsed(json_lines) if line["logger"] == "kube.client" and line["cluster"] == "down")
    assert warning["level"] == "WARNING"
    assert warning["error_kind"] == "unavailable"
    assert warning["request_id"] == response["X-Request-Id"]
    assert secret not in json_lines.getvalue()
    assert secret not in caplog.text
    assert all(secret not in str(record.__dict__) for record in caplog.records)


def test_a_refused_token_is_counted_by_its_status_and_never_logged(
    control_plane, metrics_token: str, json_lines: io.StringIO, caplog: pytest.LogCaptureFixture
):
    secret = "not-a-token-the-api-server-knows-0123456789"
    refused = Cluster(name="refusing")
    refused.set_credentials(kube.Credentials(control_plane.server, control_plane.ca_pem, token=secret))
    refused.save()
    before = scrape()

    with caplog.at_level(logging.DEBUG), pytest.raises(kube.ClusterUnavailable):
        kube.list_namespaces(kube.Actor(refused))

    after = scrape()
    name = "console_kube_call_errors_total"
    labels = {"cluster": "refusing", "operation": "list_namespace", "kind": "401"}
    assert value(after, name, **labels) == value(before, name, **labels) + 1
    assert secret not in json_lines.getvalue()
    assert secret not in caplog.text


# --- under gunicorn: several processes ----------------------------------------------------------------------------


def test_under_gunicorn_the_metrics_add_up_every_worker_and_forget_a_dead_workers_gauges(tmp_path):
    """``console/gunicorn.py`` with production settings: the scrape (by address, over HTTP) is answered by a worker
    that served none of the requests it counts (the one that did was stopped), the dead worker's live gauges are
    removed, a stale file of an earlier run is gone, and every line gunicorn and the console write is JSON."""
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_1.db").write_bytes(b"stale")
    port = closed_port()
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "DATABASE_URL", "CONSOLE_"))
    }
    env |= {
        "CONSOLE_ENV": "production",
        "CONSOLE_SECRET_KEY": "operations-test-" + "k" * 50,
        "CONSOLE_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        # Prometheus asks each pod by its address over plain HTTP: neither the host check nor the HTTPS redirect
        # may stand in its way.
        "CONSOLE_ALLOWED_HOSTS": "console.example",
        "CONSOLE_DATA_DIR": str(tmp_path),
        "CONSOLE_METRICS_TOKEN": TOKEN,
        "CONSOLE_LOG_LEVEL": "DEBUG",  # the scrapes' access lines are DEBUG
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
    }
    log = tmp_path / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "-c", "python:console.gunicorn", "console.wsgi", "--workers", "1"]
    with log.open("wb") as output:
        server = subprocess.Popen(
            [*command, "--bind", f"127.0.0.1:{port}", "--pid", str(tmp_path / "pid")],
            cwd=settings.BASE_DIR, env=env, stdout=output, stderr=output,
        )  # fmt: skip
        try:
            http = urllib3.PoolManager(retries=False, timeout=5)
            url, authorised = f"http://127.0.0.1:{port}/metrics", {"Authorization": f"Bearer {TOKEN}"}
            wait_until(lambda: _answers(http, url, authorised), timeout=30)
            for _ in range(4):
                assert http.request("GET", url, headers=authorised).status == 200
            first = _workers(server.pid)
            assert len(first) == 1
            (folder / f"gauge_livesum_{first[0]}.db").write_bytes(b"")  # as informers leave it
            os.kill(first[0], signal.SIGTERM)
            wait_until(lambda: (workers := _workers(server.pid)) and workers != first, timeout=30)

            body = http.request("GET", url, headers=authorised).data.decode()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)

    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }
    # The readiness probe of wait_until, and four more; the answering scrape counts itself only after it is written.
    assert value(samples, "console_request_duration_seconds_count", view="metrics", status="2xx") == 5
    assert not (folder / f"gauge_livesum_{first[0]}.db").exists()
    assert not (folder / "counter_1.db").exists()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert {"gunicorn.error", "console.access"} <= {line["logger"] for line in lines}
    assert all(line["level"] == "DEBUG" for line in lines if line["logger"] == "console.access")  # scrapes


def _answers(http: urllib3.PoolManager, url: str, headers: dict) -> bool:
    try:
        return http.request("GET", url, headers=headers).status == 200
    except urllib3.exceptions.HTTPError:
        return False


def _workers(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return sorted(int(pid) for pid in children)
