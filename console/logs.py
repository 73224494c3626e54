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


class TextFormatter(logging.Formatter):
    """``time level logger message key=value ...`` for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(f"{name}={getattr(record, name)}" for name in TEXT_FIELDS if hasattr(record, name))
        return f"{line} {fields}" if fields else line


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
        "filters": {"request_context": {"()": ContextFilter}},
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
