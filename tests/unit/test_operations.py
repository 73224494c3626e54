"""Log lines and the metrics' pure parts: the format chosen from the environment, what a JSON line holds, the
request's context on lines from any logger, bounded metric labels, and who may read ``/metrics``."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.test import RequestFactory

from console import logs, metrics

BASE = Path(__file__).resolve().parents[2]


def record(message: str = "hello", **extra: object) -> logging.LogRecord:
    line = logging.LogRecord("kube.client", logging.WARNING, __file__, 1, message, (), None)
    line.__dict__.update(extra)
    return line


# --- the format ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "production", "expected"),
    [("", True, "json"), ("", False, "text"), ("JSON", False, "json"), (" text ", True, "text")],
)
def test_json_is_the_production_default_and_text_the_development_one(value, production, expected) -> None:
    assert logs.log_format(value, production=production) == expected


def test_an_unknown_log_format_is_refused() -> None:
    with pytest.raises(ValueError, match="CONSOLE_LOG_FORMAT must be json or text"):
        logs.log_format("xml", production=True)


def test_a_json_line_holds_time_level_logger_message_and_extras_but_not_the_request_object() -> None:
    line = json.loads(logs.JsonFormatter().format(record("集群 %s", request=object(), cluster="local", status=200)))

    assert list(line)[:4] == ["time", "level", "logger", "message"]
    assert line["time"].endswith("+00:00")
    assert (line["level"], line["logger"], line["message"]) == ("WARNING", "kube.client", "集群 %s")
    assert (line["cluster"], line["status"]) == ("local", 200)
    assert "request" not in line


def test_an_exception_is_one_field_of_one_line() -> None:
    try:
        raise ValueError("broken")
    except ValueError:
        line = record()
        line.exc_info = sys.exc_info()
    text = logs.JsonFormatter().format(line)
    assert "\n" not in text
    assert "ValueError: broken" in json.loads(text)["exc_info"]


def test_a_text_line_ends_with_the_context_fields() -> None:
    text = logs.TextFormatter().format(record(request_id="abc", user="editor", status=200))
    assert text.endswith("WARNING kube.client hello status=200 request_id=abc user=editor")


# --- the request's context ------------------------------------------------------------------------------------------


def test_lines_written_while_a_request_is_served_carry_its_context_and_none_after() -> None:
    context_filter = logs.ContextFilter()
    token = logs.bind("r1")
    logs.current().user = "editor"
    try:
        inside = record()
        context_filter.filter(inside)
        own = record(cluster="other")  # a field the line set itself is kept
        logs.current().cluster = "local"
        context_filter.filter(own)
    finally:
        logs.unbind(token)
    after = record()
    context_filter.filter(after)

    assert (inside.request_id, inside.user) == ("r1", "editor")
    assert not hasattr(inside, "cluster")
    assert own.cluster == "other"
    assert not hasattr(after, "request_id")
    assert logs.current() is None


def test_the_production_settings_write_every_logger_as_json_lines() -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CONSOLE_", "DJANGO_", "DATABASE_URL"))}
    script = (
        "import django, logging; django.setup(); from console import logs; logs.bind('r-1'); "
        "logging.getLogger('django.request').warning('Not Found: %s', '/x', extra={'status_code': 404}); "
        "logging.getLogger('services.api').info('deep')"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=clean
        | {
            "DJANGO_SETTINGS_MODULE": "console.settings",
            "CONSOLE_ENV": "production",
            "CONSOLE_SECRET_KEY": "x" * 50,
            "CONSOLE_ENCRYPTION_KEYS": "x" * 44,
        },
        cwd=BASE,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(line["logger"], line["request_id"]) for line in lines] == [
        ("django.request", "r-1"),
        ("services.api", "r-1"),
    ]
    assert lines[0]["status_code"] == 404


def test_a_short_metrics_token_stops_the_start_up() -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CONSOLE_", "DJANGO_", "DATABASE_URL"))}
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=clean | {"DJANGO_SETTINGS_MODULE": "console.settings", "CONSOLE_METRICS_TOKEN": "short"},
        cwd=BASE,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "CONSOLE_METRICS_TOKEN must be at least 16 characters" in done.stderr


# --- metrics -------------------------------------------------------------------------------------------------------


def test_requests_are_labelled_by_url_name_and_status_class_never_by_path() -> None:
    listed = SimpleNamespace(resolver_match=SimpleNamespace(view_name="services:list"))
    assert metrics.view_label(listed) == "services:list"
    assert metrics.view_label(SimpleNamespace(resolver_match=None)) == "unresolved"
    assert [metrics.status_class(code) for code in (200, 302, 404, 503)] == ["2xx", "3xx", "4xx", "5xx"]


@pytest.mark.parametrize(
    ("token", "production", "header", "address", "allowed"),
    [
        ("t" * 32, False, "Bearer " + "t" * 32, "192.0.2.1", True),
        ("t" * 32, False, "bearer " + "t" * 32, "192.0.2.1", True),
        ("t" * 32, False, "Bearer " + "t" * 31, "127.0.0.1", False),  # with a token, loopback is not enough
        ("t" * 32, False, "", "127.0.0.1", False),
        ("t" * 32, False, "Basic " + "t" * 32, "192.0.2.1", False),
        ("", False, "", "127.0.0.1", True),
        ("", False, "", "::1", True),
        ("", False, "", "192.0.2.1", False),
        ("", True, "", "127.0.0.1", False),  # production: a token or nothing
        ("", True, "Bearer ", "127.0.0.1", False),
    ],
)
def test_who_may_read_the_metrics(settings, token, production, header, address, allowed) -> None:
    settings.METRICS_TOKEN, settings.PRODUCTION = token, production
    request = RequestFactory().get("/metrics", HTTP_AUTHORIZATION=header, REMOTE_ADDR=address)
    assert metrics.may_scrape(request) is allowed
