"""The demo gallery in a real browser: headless Chromium opens index.html from disk, offline, and
every image must load. Slow (a browser, and Debian's chromium installed when missing)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import run_zoo

pytestmark = pytest.mark.slow

CHECK = """
<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const report = document.createElement("pre");
  report.id = "zoo-image-report";
  report.textContent = images.map(i => `${i.getAttribute("src")} ${i.complete && i.naturalWidth > 0 ? "ok" : "BROKEN"}`).join("\\n");
  document.body.appendChild(report);
});
</script>
"""


@pytest.fixture(scope="module")
def chromium() -> str:
    """The chromium binary; installs Debian's package first when it is missing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"], check=True,
                       capture_output=True, env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        found = shutil.which("chromium")
    assert found, "chromium could not be installed"
    return found


def test_every_gallery_image_loads_in_headless_chromium(chromium, tmp_path):
    out = tmp_path / "demo"
    run_zoo("demo", "-o", str(out), "-n", "4", "--frames", "3", "[gn]*-[ml]*", check=True)  # grids and a turntable
    page = (out / "index.html").read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert any(s.endswith(".gif") for s in sources) and any(s.endswith(".png") for s in sources)
    # A copy of the page with a script that reports, after load, whether each image decoded.
    checked = out / "index-checked.html"
    checked.write_text(page.replace("</body>", CHECK + "</body>"))
    profile = tmp_path / "chromium-profile"
    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         "--virtual-time-budget=10000", "--dump-dom", checked.as_uri()],
        capture_output=True, text=True, timeout=180,
    )
    report = re.search(r'<pre id="zoo-image-report">(.*?)</pre>', result.stdout, re.S)
    assert report, (result.stdout[-2000:], result.stderr[-2000:])
    lines = [line.rsplit(" ", 1) for line in report.group(1).strip().splitlines()]
    assert [src for src, _ in lines] == sources
    assert all(status == "ok" for _, status in lines), lines
