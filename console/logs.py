"""The console's log lines: one JSON object per line in production, readable text in development, each carrying
the id of the request being served (and its user and cluster when known).

The request's context lives in a ``ContextVar`` set by ``console.middleware.RequestContextMiddleware``, so a line
written anywhere while the request is served (Django, ``kube``, ``services``, urllib3) carries it without being
passed the request. Threads started elsewhere (the informers' watches) begin with an empty context: their lines
belong to no request and carry no id.

This module is read by the settings and by gunicorn's configuration before Django is set up, so it imports nothing
of Django or of the apps. JSON is written by ``python-json-logger``: a small, maintained formatter that serialises
a record's fields and extras correctly (exceptions, dates, unicode) so the console does not carry its own.
"""

from __future__ import annotations

import logging
import logging.config
import os
import re
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

FORMATS = ("json", "text")
CONTEXT_FIELDS = ("request_id", "user", "cluster")
# Extras of the access line (``console.middleware``) and of ``kube.client``'s call lines shown in text lines too.
TEXT_FIELDS = ("method", "path", "status", "duration_ms", "operation", "error_kind", *CONTEXT_FIELDS)


@dataclass
class RequestContext:
    """What the lines written while serving one request say about it."""

    request_id: str
    user: str = ""
    cluster: str = ""


_current: ContextVar[RequestContext | None] = ContextVar("console_request", default=None)


def bind(request_id: str) -> Token:
    """Start the context of a request; ``unbind`` the returned token when it is answered."""
    return _current.set(RequestContext(request_id))


def unbind(token: Token) -> None:
    _current.reset(token)


def current() -> RequestContext | None:
    return _current.get()


class ContextFilter(logging.Filter):
    """Adds the current request's id, user and cluster to every record passing the handler (a handler filter sees
    the records of every logger that propagates to it). A field the line set itself (``extra``) is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _current.get()
        if context is not None:
            for name in CONTEXT_FIELDS:
                value = getattr(context, name)
                if value and not hasattr(record, name):
                    setattr(record, name, value)
        return True


class RefusalFilter(logging.Filter):
    """On ``django.request``: a request answered 4xx from an exception (``PermissionDenied`` → 403, ``Http404`` →
    404) is logged by Django with the exception's traceback, as a 500 is. A refusal is the console doing its job,
    not a defect: its line stays (at WARNING, as Django writes it), without the traceback. A 5xx keeps its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if isinstance(status, int) and status < 500:
            record.exc_info = None
            record.exc_text = None
        return True


_JSON_ESCAPES = {code: f"\\u{code:04x}" for code in (*range(0x80, 0xA0), 0x2028, 0x2029)}


class JsonFormatter(_JsonFormatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the request's context and the
    line's own extras. Django attaches the ``HttpRequest`` (or the socket) to some records as ``request``: it is
    left out, since its text holds the query string, and the path is on the access line already."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", "%(levelname)s %(name)s %(message)s")
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", "time")
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, "request", "server_time", "taskName"])
        kwargs.setdefault("json_ensure_ascii", False)
        super().__init__(*args, **kwargs)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        """The time first, as a reader scans a line."""
        return {"time": log_data.pop("time", None), **log_data}

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        """The line with NEL and the other C1 controls and the line and paragraph separators escaped: with
        ``ensure_ascii`` off (Chinese stays readable) ``json`` writes them as they are, and a reader that splits at
        every Unicode line boundary would end the line there. They occur only inside strings, where an escape means
        the same."""
        return super().jsonify_log_record(log_data).translate(_JSON_ESCAPES)


# What would end a text line, or move a terminal's cursor, were a logged value to carry it: the C0 and C1 controls
# (LF, CR and TAB among them), DEL, and Unicode's line and paragraph separators. A request path is the client's text
# (``/a%0A2026-01-01 ... INFO console.access request finished`` decodes to a newline and a forged line).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED_CONTROLS = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# A field value that holds a space or a quote is quoted, so that "path=/a user=admin" cannot pass for two fields.
_NEEDS_QUOTES = re.compile(r'[\s"]')


def _escaped(match: re.Match[str]) -> str:
    character = match[0]
    if character in _NAMED_CONTROLS:
        return _NAMED_CONTROLS[character]
    code = ord(character)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with every control character written as an escape (``\\n``, ``\\x1b``, ``\\u2028``)."""
    return _CONTROL.sub(_escaped, text)


def _field_value(value: object) -> str:
    text = str(value)
    if text and not _NEEDS_QUOTES.search(escape_controls(text)):  # whitespace controls are escapes by then
        return escape_controls(text)
    return '"' + escape_controls(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'


class TextFormatter(logging.Formatter):
    """``time level logger message key=value ...`` for people reading a terminal: one record, one line. Every value
    (the message and its arguments, each field) has its control characters escaped; a traceback, kept for a
    defect, follows on lines of its own, each indented, so none of them can pass for a record."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        # The format string holds no control character: escaping the formatted line escapes each value in it.
        line = escape_controls(self.formatMessage(record))
        fields = " ".join(
            f"{name}={_field_value(getattr(record, name))}" for name in TEXT_FIELDS if hasattr(record, name)
        )
        if fields:
            line = f"{line} {fields}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        for block in (record.exc_text, record.stack_info and self.formatStack(record.stack_info)):
            if block:
                line += "".join(f"\n    {escape_controls(part)}" for part in block.split("\n"))
        return line


def log_format(value: str, *, production: bool) -> str:
    """``CONSOLE_LOG_FORMAT``: json or text; unset means json in production, text in development. Anything else
    raises ``ValueError`` (the settings turn it into a start-up error naming the variable)."""
    chosen = value.strip().lower() or ("json" if production else "text")
    if chosen not in FORMATS:
        raise ValueError(f"CONSOLE_LOG_FORMAT must be json or text; it is {value!r}.")
    return chosen


def formatter(kind: str) -> logging.Formatter:
    return JsonFormatter() if kind == "json" else TextFormatter()


def logging_config(kind: str, level: str) -> dict:
    """Django's ``LOGGING``: every line goes through one handler on the root logger, with the request's context.
    Django's own loggers are routed there too (by default ``django`` writes through a handler of its own in
    development, and ``django.server`` with its own format)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_context": {"()": ContextFilter}, "refusals": {"()": RefusalFilter}},
        "formatters": {"console": {"()": formatter, "kind": kind}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "console",
                "filters": ["request_context"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django": {"handlers": [], "level": "INFO", "propagate": True},
            "django.server": {"handlers": [], "level": "INFO", "propagate": True},
            # A logger's filter, not the handler's: it runs before the record reaches any handler, a test's included.
            "django.request": {"handlers": [], "filters": ["refusals"], "propagate": True},
            # urllib3 logs every request line at DEBUG (no credentials: the headers are not logged); keep it quiet
            # unless asked for.
            "urllib3": {"level": "WARNING"},
        },
    }


def configure(config: dict) -> None:
    """Django's ``LOGGING_CONFIG``: the dictionary, and Python's warnings (a library's deprecation, WhiteNoise's
    missing folder) through the same handler, so no line of the console escapes the format."""
    logging.config.dictConfig(config)
    logging.captureWarnings(True)


def format_from_environment() -> str:
    """The format gunicorn's own lines use: the same rule as the settings (``CONSOLE_ENV``, ``CONSOLE_LOG_FORMAT``)."""
    production = os.environ.get("CONSOLE_ENV", "").strip() == "production"
    return log_format(os.environ.get("CONSOLE_LOG_FORMAT", ""), production=production)
