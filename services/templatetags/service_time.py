"""Template filters for Kubernetes timestamps (ISO 8601 strings in the objects the API server returns)."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString, mark_safe

from services import listing

register = template.Library()


@register.filter
def created_time(stamp: str) -> SafeString:
    """``<time>`` with the age in the user's language and the full local date-time in its title."""
    return mark_safe(listing.created_html(stamp or ""))  # noqa: S308 - created_html escapes every value
