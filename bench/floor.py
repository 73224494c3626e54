"""The floor of a live poll on the benchmark's server: a WSGI application that answers every request 204 with no
body, served by the same gunicorn (sync workers, same number). What its workers spend per request is what any
answer costs before the console does anything (gunicorn's accept, parse and write, WSGI); ``make bench`` serves it
beside the console and reports the console's poll against it."""

from __future__ import annotations

from collections.abc import Callable, Iterable


def application(environ: dict, start_response: Callable) -> Iterable[bytes]:
    start_response("204 No Content", [("Cache-Control", "no-store, private")])
    return [b""]
