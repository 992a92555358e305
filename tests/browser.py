"""Debian's Chromium for the browser tests: where it is, the flags that keep it offline, and the rule that
CI (the CI variable is set, and `make system-deps` installed it) fails rather than skips without it."""

from __future__ import annotations

import os
import shutil

import pytest

# Headless, no sandbox (CI runs as root), and none of the background fetches: the machine has no network.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_or_skip() -> str:
    """The Chromium executable, once Playwright imports too; otherwise skip here and fail under CI."""
    path = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    reason = None if path else "Debian's chromium is not installed (`make system-deps` installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = reason or "playwright is not installed (the test extra)"
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI installs it, so the browser tests must run there.")
        pytest.skip(reason)
    assert path is not None
    return path
