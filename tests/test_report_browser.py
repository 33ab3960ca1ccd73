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
    (copy / "analyses" / "cr_overt" / "forest.svg").unlink()
    (copy / "evidence.html").unlink()
    problems = _inspect(browser, copy / "analyses" / "cr_overt.html", tmp_path / "shot.png")
    assert any("image not loaded" in p and "forest.svg" in p for p in problems)
    assert any("broken link" in p and "evidence.html" in p for p in problems)


def _page(browser, path: Path, width: int = 390):
    page = browser.new_page(viewport={"width": width, "height": 844})
    page.goto(path.as_uri(), wait_until="load")
    return page


@pytest.mark.parametrize("name", ["index.html", "analyses/cr_overt.html", "analyses/rr_mrd_response.html",
                                  "evidence.html", "studies.html", "methods.html"])
def test_phone_width_has_no_page_overflow(site, browser, name):
    page = _page(browser, site / name)
    width = page.evaluate("document.documentElement.scrollWidth")
    page.close()
    assert width <= 390, f"{name} is {width} px wide at a 390 px viewport"


def test_phone_first_screen_answers_the_cr_question(site, browser):
    """CR with >=5% blasts, its certainty and its plain-language meaning on the first screen of a phone."""
    page = _page(browser, site / "index.html")
    row = page.locator("#sof-cr_overt")
    box = row.bounding_box()
    text = row.inner_text()
    page.close()
    # the whole card (estimate, certainty symbols and word, plain-language sentence) above the fold
    assert box is not None and box["y"] + box["height"] <= 844
    assert "per 100" in text and "⊕" in text and "Very low" in text and "in 100 children" in text


def test_every_number_in_the_summary_table_is_linked(site, browser):
    page = _page(browser, site / "index.html", 1280)
    unlinked = page.evaluate("""Array.from(document.querySelectorAll('table.sof tbody th, table.sof tbody td'))
        .filter(c => /\\d/.test(c.innerText) && c.querySelectorAll('a').length === 0).map(c => c.innerText)""")
    counts = page.evaluate("""Array.from(document.querySelectorAll('table.studies tbody td.num'))
        .filter(c => c.querySelector('a') === null).length""")
    page.close()
    assert unlinked == []
    page = _page(browser, site / "analyses" / "cr_overt.html", 1280)
    counts = page.evaluate("""Array.from(document.querySelectorAll('table.studies tbody td.num'))
        .filter(c => /\\d/.test(c.innerText) && !c.innerText.includes('%') && c.querySelector('a') === null).length""")
    page.close()
    assert counts == 0


def test_quotes_open_with_the_keyboard(site, browser):
    page = _page(browser, site / "analyses" / "cr_overt.html", 1280)
    summary = page.locator("table.studies details summary").first
    summary.focus()
    assert page.evaluate("document.activeElement.tagName") == "SUMMARY"
    quote = page.locator("table.studies details q").first
    assert not quote.is_visible()
    page.keyboard.press("Enter")
    assert quote.is_visible() and len(quote.inner_text()) > 10
    page.close()


def test_print_media_hides_navigation_and_opens_quotes(site, browser, tmp_path):
    page = _page(browser, site / "analyses" / "cr_overt.html", 1280)
    page.emulate_media(media="print")
    nav = page.evaluate("getComputedStyle(document.querySelector('header nav')).display")
    quote_shown = page.evaluate("getComputedStyle(document.querySelector('table.studies details q')).display")
    pdf = page.pdf(format="A4")
    page.close()
    assert nav == "none" and quote_shown != "none"
    assert pdf[:4] == b"%PDF" and len(pdf) > 50_000


def test_changelog_after_adding_and_removing_a_publication(site, browser, tmp_path):
    root = tmp_path / "p"
    shutil.copytree(site.parent, root)
    (root / "evidence" / "newcohort2025.yaml").write_text((ROOT / "tests" / "report_cases" / "newcohort2025.yaml").read_text())
    build_report(root / "evidence", root / "models", root / "reports")
    page = _page(browser, root / "reports" / "index.html", 1280)
    added = page.locator("section.changes").inner_text()
    page.close()
    (root / "evidence" / "newcohort2025.yaml").unlink()
    build_report(root / "evidence", root / "models", root / "reports")
    page = _page(browser, root / "reports" / "index.html", 1280)
    removed = page.locator("section.changes").inner_text()
    page.close()
    assert "1 publication added (Newman 2025)" in added
    assert "removed (Newman 2025)" in removed
