"""The system's Chromium, headless, driven by Playwright, for the live view's browser tests.

Why the system's browser and not Playwright's download: the machines this runs on reach only
the package registries, and the issue asks for the system's Chromium. `scripts/test` installs
it (`apt-get install chromium`) when it is missing and the suite runs as root;
`TAPEFLOW_TEST_CHROMIUM` names another binary. Screenshots go to `TAPEFLOW_TEST_SCREENSHOTS`
when set: docs/images/live-*.png are the browser test's, taken with
`TAPEFLOW_TEST_SCREENSHOTS=docs/images scripts/test tests/integration/test_live_view.py`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run"]
"""No sandbox: the suite may run as root in a container, where Chromium's sandbox cannot
start; the pages are our own. No background networking: the machine reaches no update
servers, and waiting on them slows every start."""


def chromium_path() -> str:
    """The Chromium binary, or an assertion that says how to get one."""
    named = os.environ.get("TAPEFLOW_TEST_CHROMIUM")
    found = named or next(filter(None, map(shutil.which, (
        "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"))), None)
    assert found, ("no Chromium for the browser tests: install the system's (Debian/Ubuntu: "
                   "apt-get install chromium; scripts/test does when run as root) or set "
                   "TAPEFLOW_TEST_CHROMIUM")
    return found


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (a Playwright `Browser`) for the duration of the block."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Any, name: str) -> None:
    """Save a full-page screenshot as `name`.png when screenshots are asked for."""
    folder = os.environ.get("TAPEFLOW_TEST_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)
