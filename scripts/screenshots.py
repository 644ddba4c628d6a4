"""``python -m scripts.screenshots``: a PNG of each dashboard page, in ``docs/screenshots/``.

Starts what the dashboard's tests start (the sandbox process, real runs into a SQLite
store, ``syncd serve`` on loopback: ``tests.dashsupport``), logs in with an operator
token in Debian's headless Chromium and photographs each page: the login form, the
overview (a held plan, a failed change), a run, a device's history, the drift and the
rejects. Run it from the repository's root with the dev extra installed; it needs
``/usr/bin/chromium`` (``apt-get install chromium``) and writes nothing else.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from syncd.sandbox.testing import SandboxProcess
from tests.dashsupport import CHROMIUM, CHROMIUM_ARGS, World, chromium_missing, sample_world

OUT = Path("docs/screenshots")
VIEWPORT = {"width": 1280, "height": 860}


def shoot(page: Page, name: str) -> None:
    """The whole page as ``OUT/name.png``."""
    path = OUT / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"wrote {path}")


def photograph(world: World, page: Page) -> None:
    """Every page, logged in as the operator."""
    page.goto(f"{world.url}/ui/login")
    shoot(page, "login")
    page.get_by_label("API token").fill(world.operator)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{world.url}/ui")
    shoot(page, "overview")
    page.goto(f"{world.url}/ui/runs/{world.failed_run}")
    shoot(page, "run")
    page.goto(f"{world.url}/ui/devices?serial=SN00001")
    shoot(page, "device")
    page.goto(f"{world.url}/ui/drift")
    shoot(page, "drift")
    page.goto(f"{world.url}/ui/rejects")
    shoot(page, "rejects")


def main() -> int:
    missing = chromium_missing()
    if missing is not None:
        print(missing, file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as root,
        SandboxProcess() as sandbox,
        sample_world(sandbox, Path(root)) as world,
        sync_playwright() as driver,
        tempfile.TemporaryDirectory() as profile,
    ):
        browser = driver.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,  # type: ignore[arg-type]
        )
        try:
            photograph(world, browser.new_page())
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
