"""Headless Chromium for the report's page tests: a script expression's value once a page has loaded, and
the page's scroll width at a window width."""

from __future__ import annotations

import html as html_module
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(*args: str, timeout: int = 60) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                   "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                   *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def scriptable(page: str) -> str:
    """The page without its Content-Security-Policy, which forbids any script: for a copy a test adds a probe to."""
    return re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)


def probe_page(html: Path, tmp_path: Path, window: int, expression: str, *flags: str) -> str:
    """The value of a JavaScript ``expression`` once ``html`` has loaded in Chromium, in a ``window`` px wide
    window (the page is copied with a script that writes the value into the DOM, which Chromium then dumps);
    ``flags`` are more of Chromium's options."""
    probe = tmp_path / "probe.html"
    script = (f"<script>window.addEventListener('load',()=>{{document.body.setAttribute('data-probe',"
              f"String({expression}));}});</script>")
    probe.write_text(scriptable(html.read_text(encoding="utf-8")).replace("</body>", script + "</body>"),
                     encoding="utf-8")
    dom = chromium(f"--window-size={window},2000", "--virtual-time-budget=5000", *flags, "--dump-dom", probe.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    return html_module.unescape(re.search(r'data-probe="([^"]*)"', dom.stdout).group(1))


def page_width(html: Path, tmp_path: Path, window: int) -> int:
    """The page's scroll width in Chromium at a ``window`` px wide window (no wider than it: no sideways scroll)."""
    return int(probe_page(html, tmp_path, window, "document.documentElement.scrollWidth"))
