"""Template filters for Kubernetes timestamps (ISO 8601 strings in the objects the API server returns) and the
times the console stores (datetimes)."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils.safestring import SafeString, mark_safe

from services import listing

register = template.Library()


@register.filter
def created_time(stamp: str) -> SafeString:
    """``<time>`` with the age in the user's language and the full local date-time in its title."""
    return mark_safe(listing.created_html(stamp or ""))  # noqa: S308 - created_html escapes every value


@register.filter
def age(when: datetime | None) -> SafeString:
    """A stored time (a version's ``changed_at``) as ``created_time`` shows a timestamp."""
    return mark_safe(listing.created_html(when.isoformat() if when else ""))  # noqa: S308 - as above
