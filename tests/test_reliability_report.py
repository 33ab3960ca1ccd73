"""Reliability: what reaches the report's pages and figures (issue 15, audit §3, §6, §9, "what held up").

One report is built from evidence whose strings carry HTML/SVG/JSON break-out payloads and
matplotlib mathtext (``$...$``): every page and figure must parse, the payloads must stay
escaped, ``$`` must be shown as written, and a rerun with ``--force`` must give the same bytes.
"""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
from reliability_support import ROOT, make_project

from blinameta.report import build_report

PAYLOADS = {
    "title": "<script>alert(1)</script> {{7*7}} cohort",
    "first_author": "Evil $\\nosuchcommand{x}$ Cost $5 and $10 A",
    "population": "\"><img src=x onerror=alert(2)> ]]><!-- --> </title><svg onload=alert(3)>",
    "label": "</script><script>alert(4)</script> & co",
}


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory) -> Path:
    root = make_project(tmp_path_factory.mktemp("hostile") / "p", models=("crs_any",))
    text = (ROOT / "tests" / "report_cases" / "newcohort2025.yaml").read_text()
    text = text.replace("title: A new cohort", f"title: {json.dumps(PAYLOADS['title'])}")
    text = text.replace("first_author: Newman N", f"first_author: {json.dumps(PAYLOADS['first_author'])}")
    text = text.replace("population: Children with relapsed B-ALL.", f"population: {json.dumps(PAYLOADS['population'])}")
    text = text.replace("label: All treated", f"label: {json.dumps(PAYLOADS['label'])}")
    (root / "evidence" / "newcohort2025.yaml").write_text(text)
    build_report(root / "evidence", root / "models", root / "reports")
    return root


class _Strict(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self._in_script = tag == "script"
        for name, _ in attrs:
            assert not name.startswith("on"), f"event handler attribute {name}"

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)


def test_payloads_stay_escaped_in_html(hostile_report):
    reports = hostile_report / "reports"
    for page in [reports / "index.html", reports / "evidence.html", *sorted((reports / "analyses").glob("*.html"))]:
        html = page.read_text()
        assert "<script>alert" not in html and "<img src=x" not in html and "<svg onload" not in html
        parser = _Strict()
        parser.feed(html)
        for script in parser.scripts:  # embedded JSON, if any, carries no raw payload
            assert "alert(" not in script or "\\u003c" in script or "<script>" not in script
    evidence = (reports / "evidence.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in evidence and "{{7*7}}" in evidence


def test_every_svg_is_valid_xml_and_shows_dollars_as_written(hostile_report):
    svgs = sorted((hostile_report / "reports" / "analyses").rglob("*.svg"))
    assert svgs
    texts = []
    for svg in svgs:
        tree = ET.parse(svg)  # raises on invalid XML
        texts += ["".join(el.itertext()) for el in tree.iter() if el.tag.endswith("text") or el.tag.endswith("title")]
    joined = "\n".join(texts)
    assert "$\\nosuchcommand{x}$" in joined or "nosuchcommand" in joined
    assert "<script>" not in "".join(svg.read_text() for svg in svgs)


def test_summary_json_is_strict_json(hostile_report):
    for path in (hostile_report / "reports" / "analyses").rglob("summary.json"):
        json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{path}: {c}"))


@pytest.mark.slow
def test_a_forced_rerun_is_byte_identical(hostile_report, tmp_path, monkeypatch, folder_digest):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")  # the report's date is the only clock it reads
    root = tmp_path / "p"
    shutil.copytree(hostile_report, root)
    build_report(root / "evidence", root / "models", root / "reports", force=True)
    first = folder_digest(root / "reports")
    build_report(root / "evidence", root / "models", root / "reports", force=True)
    assert folder_digest(root / "reports") == first
    # a version carries its own date (report issue): the date recorded in history.json when this
    # version was first built, not the time of the rerun
    recorded = json.loads((root / "reports" / "history.json").read_text())["versions"][-1]["date"]
    assert recorded in (root / "reports" / "index.html").read_text()
    shutil.rmtree(root / "reports")  # a first build of the version takes its date from SOURCE_DATE_EPOCH
    build_report(root / "evidence", root / "models", root / "reports", force=True)
    assert "2026-01-01 00:00 UTC" in (root / "reports" / "index.html").read_text()
    assert not re.search(r"<dc:date>", "".join(p.read_text() for p in (root / "reports").rglob("*.svg")))
