"""Debian's Chromium for the browser tests (its own download cannot reach the network here)."""

from __future__ import annotations

import os

from playwright.sync_api import Browser, Playwright

CHROMIUM = os.environ.get("CONSOLE_CHROMIUM", "/usr/bin/chromium")


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's Chromium, headless, as root, with nothing reaching out to the network."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
        ],
    )
