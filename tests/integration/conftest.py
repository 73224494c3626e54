"""Fixtures shared by the integration modules: one Chromium for the whole session (Playwright's sync API allows
one instance per thread, so every browser module uses this one), and the container image, built once."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.chromium import launch_chromium
from tools import image as tools_image


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    # Playwright's sync API keeps an event loop in this thread; the live server's ORM calls run elsewhere.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        launched = launch_chromium(playwright)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def image() -> dict:
    """The console's image as `make image` builds it (podman, on a Debian base made from Debian's packages): its
    tag, build seconds and size. Unchanged layers come from podman's cache."""
    return tools_image.build(tools_image.IMAGE, log=lambda line: print(line, file=sys.stderr))
