"""Log lines a client cannot forge or bloat: in the text format every record is one line whatever text a request
path, an extra or a message argument carries (the JSON format quotes it already), and a refusal (4xx) is one
WARNING line without a traceback while a defect (5xx) keeps its own."""

from __future__ import annotations

import json
import logging
import sys

import pytest
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.test import RequestFactory
from hypothesis import given
from hypothesis import strategies as st

from console import logs
from console.middleware import RequestContextMiddleware

# Any text, with the characters that break lines (C0, C1, DEL, U+2028/2029) drawn often, not only by chance.
BREAKERS = st.sampled_from(
    ["\n", "\r", "\r\n", "\t", "\x0b", "\x0c", "\x1b", "\x1c", "\x7f", "\x85", "\u2028", "\u2029"]
)
TEXT = st.lists(st.one_of(st.text(), BREAKERS), max_size=8).map("".join)


def record(message: str = "request finished", args: tuple = (), **extra: object) -> logging.LogRecord:
    line = logging.LogRecord("console.access", logging.INFO, __file__, 1, message, args, None)
    line.__dict__.update(extra)
    return line


def one_line(text: str) -> bool:
    """One line for any reader: Python's ``splitlines`` breaks at every separator a log viewer might."""
    return len(text.splitlines()) == 1 and "\n" not in text and "\r" not in text


@given(path=TEXT, user=TEXT, cluster=TEXT, argument=TEXT)
def test_any_text_in_a_path_an_extra_or_an_argument_makes_one_text_line(path, user, cluster, argument) -> None:
    formatter = logs.TextFormatter()
    access = record(method="GET", path=path, status=404, user=user, cluster=cluster, request_id="r1")
    assert one_line(formatter.format(access))
    assert one_line(formatter.format(record("Not Found: %s", (argument,), status=404)))
    assert one_line(formatter.format(record(argument)))


@given(path=TEXT)
def test_the_json_line_of_any_path_is_one_line_holding_the_path_as_sent(path) -> None:
    text = logs.JsonFormatter().format(record(path=path, user="用户"))
    assert one_line(text)
    assert json.loads(text)["path"] == path
    assert '"user": "用户"' in text  # not escaped: Chinese stays readable


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/a\n2026-01-01 00:00:00,000 INFO console.access forged", 'path="/a\\n2026-01-01'),
        ("/a\r\nb", "path=/a\\r\\nb"),
        ("/a\tb", "path=/a\\tb"),
        ("/a\x1b[2Jb", "path=/a\\x1b[2Jb"),
        ("/a\x85b", "path=/a\\x85b"),
        ("/a\u2028b\u2029", "path=/a\\u2028b\\u2029"),
        ("/x user=admin", 'path="/x user=admin"'),  # a space cannot start a forged field
        ('/say"hi\\', 'path="/say\\"hi\\\\"'),
        ("/服务/", "path=/服务/"),  # not a control: as it is
    ],
)
def test_control_characters_are_escaped_and_a_value_with_a_space_is_quoted(path: str, shown: str) -> None:
    line = logs.TextFormatter().format(record(path=path, status=200))
    assert one_line(line)
    assert shown in line


def test_a_traceback_is_kept_on_indented_lines_none_of_which_can_pass_for_a_record() -> None:
    try:
        raise ValueError("broken\n2026-01-01 00:00:00,000 INFO console.access forged")
    except ValueError:
        line = record("Internal Server Error: %s", ("/x",), status=500)
        line.exc_info = sys.exc_info()
    first, *rest = logs.TextFormatter().format(line).split("\n")
    assert first.endswith("Internal Server Error: /x status=500")
    assert rest and all(part.startswith("    ") for part in rest)
    assert any("ValueError: broken" in part for part in rest)


def test_the_access_line_of_a_path_with_an_encoded_newline_is_one_line(caplog) -> None:
    """Through the middleware, as a request arrives: ``%0A`` in the path is a newline in ``request.path``."""
    request = RequestFactory().get("/nowhere%0A2026-01-01%2000:00:00,000%20INFO%20console.access%20forged/")
    assert "\n" in request.path
    middleware = RequestContextMiddleware(lambda request: HttpResponse(status=404))
    with caplog.at_level(logging.INFO, logger="console.access"):
        middleware(request)
    (access,) = [r for r in caplog.records if r.name == "console.access"]
    line = logs.TextFormatter().format(access)
    assert one_line(line) and "path=/nowhere\\n2026-01-01" not in line
    assert 'path="/nowhere\\n2026-01-01 00:00:00,000 INFO console.access forged/"' in line


# --- refusals are not errors ---------------------------------------------------------------------------------------


def _django_request_line(caplog, status: int) -> logging.LogRecord:
    """A line as Django's ``log_response`` writes one for a request answered from an exception, through the
    logging configuration the settings install."""
    try:
        raise PermissionDenied if status < 500 else RuntimeError("a bug")
    except Exception as error:
        level = logging.WARNING if status < 500 else logging.ERROR
        with caplog.at_level(logging.INFO, logger="django.request"):
            logging.getLogger("django.request").log(
                level, "Forbidden (Permission denied): %s", "/x", extra={"status_code": status}, exc_info=error
            )
    (line,) = [r for r in caplog.records if r.name == "django.request"]
    return line


def test_a_refusal_is_one_warning_line_without_a_traceback(caplog) -> None:
    line = _django_request_line(caplog, 403)
    assert line.levelno == logging.WARNING and line.exc_info is None
    assert one_line(logs.TextFormatter().format(line))
    assert "exc_info" not in json.loads(logs.JsonFormatter().format(line))


def test_a_server_error_keeps_its_traceback(caplog) -> None:
    line = _django_request_line(caplog, 500)
    assert line.levelno == logging.ERROR and line.exc_info is not None
    assert "RuntimeError: a bug" in logs.TextFormatter().format(line)
