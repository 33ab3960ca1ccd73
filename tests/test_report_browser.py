"""The report as a reader sees it: Debian's chromium renders the pages (driven by Playwright).

Fails on a console error, an image that does not load, or a link to a missing file or anchor.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from blinameta.report import build_report

ROOT = Path(__file__).parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("site")
    shutil.copytree(ROOT / "evidence", root / "evidence")
    shutil.copytree(ROOT / "models", root / "models")
    build_report(root / "evidence", root / "models", root / "reports")
    return root / "reports"


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.fail("Debian's chromium is needed for the browser tests (apt-get install chromium); "
                    "'make test' installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def _inspect(browser, page_path: Path, screenshot: Path) -> list[str]:
    """Problems a reader would meet on one page."""
    problems: list[str] = []
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("requestfailed", lambda req: problems.append(f"failed to load {req.url}"))
    page.goto(page_path.as_uri(), wait_until="load")
    broken = page.evaluate("Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
    problems += [f"image not loaded: {src}" for src in broken]
    for href in page.evaluate("Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"):
        url = urlparse(href)
        if url.scheme != "file":
            problems.append(f"link leaves the report: {href}")
            continue
        target = Path(unquote(url.path))
        if not target.is_file():
            problems.append(f"broken link: {href}")
        elif url.fragment and target.suffix == ".html" and f'id="{url.fragment}"' not in target.read_text(encoding="utf-8"):
            problems.append(f"missing anchor: {href}")
    page.screenshot(path=str(screenshot), full_page=True)
    page.close()
    return problems


@pytest.mark.parametrize("name", ["index.html", "analyses/cr_overt.html", "analyses/hr_efs.html", "evidence.html"])
def test_page_renders_without_errors(site, browser, tmp_path, name):
    shot = tmp_path / "page.png"
    assert _inspect(browser, site / name, shot) == []
    assert shot.stat().st_size > 20_000  # a real rendering, not a blank page


def test_checker_catches_a_missing_image_and_a_broken_link(site, browser, tmp_path):
    copy = tmp_path / "reports"
    shutil.copytree(site, copy)
    (copy / "analyses" / "cr_overt" / "forest.png").unlink()
    (copy / "evidence.html").unlink()
    problems = _inspect(browser, copy / "analyses" / "cr_overt.html", tmp_path / "shot.png")
    assert any("image not loaded" in p and "forest.png" in p for p in problems)
    assert any("broken link" in p and "evidence.html" in p for p in problems)
