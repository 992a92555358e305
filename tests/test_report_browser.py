"""report.html in a real browser: Debian's headless Chromium, driven by Playwright, no network.

Skipped only where Chromium (or Playwright) is missing on a developer's machine; under CI
(the CI variable is set) a missing browser is a failure, so the check can never silently vanish.
"""

from __future__ import annotations

import pytest

from browser import CHROMIUM_FLAGS, chromium_or_skip

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_report_loads_in_chromium_without_errors(trained_run, tmp_path):
    from playwright.sync_api import sync_playwright

    executable = chromium_or_skip()
    report = trained_run / "report.html"
    problems: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1366, "height": 768},  # a common laptop screen
        )
        try:
            page = context.new_page()
            page.on(
                "console",
                lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None,
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url[:80]}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report.as_uri(), wait_until="load")
            images = page.evaluate(
                "Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete,"
                " w: i.naturalWidth, h: i.naturalHeight, shown: i.getBoundingClientRect().width}))"
            )
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            title = page.title()
            screenshot = tmp_path / "report.png"
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            context.close()
    assert problems == []
    # the page itself and nothing else (data: URIs are not fetched from anywhere)
    assert [u for u in requests if not u.startswith("data:")] == [report.as_uri()]
    strips = [i for i in images if i["alt"].startswith("samples of class ")]
    assert len(strips) == 10 and len(images) == 10 + 9  # a strip per class; the contract, curves ... filters
    for image in images:
        assert image["complete"] and image["w"] > 0 and image["h"] > 0, image
        assert 0 < image["shown"] <= 1366, image  # scaled to fit, never wider than the screen
    assert overflow <= 0  # no sideways scrolling on a 1366-pixel-wide laptop screen
    assert title.startswith("convscope report: cnn-run")
    assert screenshot.stat().st_size > 50_000
