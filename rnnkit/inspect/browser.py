"""Open a page in headless Chromium (Debian's `chromium` package): its DOM after scripts ran, the
console errors, and optionally a screenshot. Used by the tests and to make the README screenshot:

    python -m rnnkit.inspect.browser report.html screenshot.png
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Without the networking flags Chromium tries to reach Google's services, which a closed network refuses.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def open_page(page: str | Path, screenshot: str | Path | None = None, size=(1280, 900), timeout: int = 120):
    """(dom, console_errors) of `page` once loaded; writes a PNG to `screenshot` if given."""
    exe = find_chromium()
    if exe is None:
        raise RuntimeError("headless Chromium not found (Debian: apt-get install chromium)")
    page, _, fragment = str(page).partition("#")  # report.html#cell=c/2/242 opens that view
    url = Path(page).resolve().as_uri() + (f"#{fragment}" if fragment else "")
    with tempfile.TemporaryDirectory() as profile:
        base = [exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
                "--virtual-time-budget=5000"]
        dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=timeout)
        if screenshot is not None:
            subprocess.run([*base, f"--screenshot={Path(screenshot).resolve()}", url], capture_output=True,
                           text=True, timeout=timeout, check=True)
    errors = [line for line in dom.stderr.splitlines()
              if "CONSOLE" in line and ("Uncaught" in line or "Error" in line or ":ERROR:" in line)]
    return dom.stdout, errors


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m rnnkit.inspect.browser PAGE.html SCREENSHOT.png")
    _, errs = open_page(sys.argv[1], sys.argv[2])
    print("\n".join(errs) if errs else f"no console errors; screenshot in {sys.argv[2]}")
