"""The access epoch: one number, in the database so every replica agrees, that changes whenever anybody's access
may have changed. A process reads it at most once every ``READ_EVERY`` seconds, so a check against it costs no query;
its own changes are seen at once, another replica's within ``READ_EVERY``.

It moves on any change of a grant, a cluster, a user (not a login's ``last_login``), a group or a group's members,
and on every sign-out: coarse on purpose. Those are rare next to the requests that compare against it, and a
moved epoch only sends each holder of an old value through the full checks once."""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

from django.db import transaction

from clusters.models import AccessEpoch

READ_EVERY = 1.0  # seconds: how stale a process's copy may be

_lock = threading.Lock()
_known: tuple[float, int] | None = None  # (monotonic time read, value)


def current() -> int:
    """The epoch, as read by this process at most ``READ_EVERY`` seconds ago."""
    global _known
    known = _known
    if known is not None and time.monotonic() - known[0] < READ_EVERY:
        return known[1]
    with _lock:
        value = AccessEpoch.objects.filter(pk=1).values_list("value", flat=True).first() or 0
        _known = (time.monotonic(), value)
    return value


def forget() -> None:
    """Read the epoch afresh next time (after this process moved it, or in tests)."""
    global _known
    _known = None


def move(*args: Any, **kwargs: Any) -> None:
    """Move the epoch on (a signal receiver: any arguments). Seen by this process at once (and again once the
    change commits), by the others within ``READ_EVERY`` seconds.

    The new value is drawn at random rather than counted up: a value read inside a transaction that then rolls
    back is never taken again, so nothing kept under it can pass for current later."""
    value = secrets.randbits(62)
    if not AccessEpoch.objects.filter(pk=1).update(value=value):
        AccessEpoch.objects.update_or_create(pk=1, defaults={"value": value})
    forget()
    transaction.on_commit(forget)


def user_saved(sender: type, instance: Any, update_fields: Any = None, **kwargs: Any) -> None:
    """A user saved: moves the epoch, unless only the login time changed (every sign-in saves it)."""
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return
    move()
