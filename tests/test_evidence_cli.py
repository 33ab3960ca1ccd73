"""Schema export (drift), round trip, tidy table and the evidence commands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import yaml

from blinameta.cli import main
from blinameta.commands.schema import json_schema
from blinameta.evidence.loader import load_evidence
from blinameta.evidence.schema import Publication
from blinameta.evidence.tidy import tidy

ROOT = Path(__file__).parent.parent
CASES = Path(__file__).parent / "evidence_cases"


def test_committed_json_schema_has_not_drifted():
    for kind in ("publication", "review"):
        committed = (ROOT / "evidence" / "schema" / f"{kind}.schema.json").read_text(encoding="utf-8")
        assert committed == json_schema(kind), (
            f"evidence/schema/{kind}.schema.json is stale: "
            f"run 'blinameta schema --kind {kind} > evidence/schema/{kind}.schema.json'"
        )


def test_schema_command_prints_valid_json(capsys):
    assert main(["schema"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["title"] == "Publication"
    assert "with" in json.dumps(document["$defs"]["Overlap"])


def test_schema_round_trip(tmp_path):
    evidence = load_evidence(CASES, sorted((CASES / "pass").glob("*.yaml")))
    for publication in evidence.publications:
        dumped = publication.model_dump(mode="json", by_alias=True, exclude_none=True)
        again = Publication.model_validate(yaml.safe_load(yaml.safe_dump(dumped, allow_unicode=True)))
        assert again == publication


def test_tidy_table_rows_and_inherited_moderators():
    evidence = load_evidence(CASES, [CASES / "pass" / "full.yaml", CASES / "pass" / "minimal.yaml"])
    frame = tidy(evidence)
    assert len(frame) == 3
    cr = frame[(frame.outcome == "cr")].iloc[0]
    assert (cr.events, cr.total, cr.blast_burden, cr.relapse_line) == (18, 30, "ge5", "first_relapse")
    assert cr.design == "randomized" and bool(cr.flagged)
    all_readings = tidy(evidence, readings="all")
    assert set(all_readings.reading) == {"primary", "alternative_1"}
    alt = tidy(evidence, readings="alternative")
    assert alt[alt.outcome == "cr"].events.item() == 17


def test_table_command_csv_and_json(tmp_path, capsys):
    shutil.copy(CASES / "review.yaml", tmp_path / "review.yaml")
    for name in ("full.yaml", "minimal.yaml"):
        shutil.copy(CASES / "pass" / name, tmp_path / name)
    assert main(["table", "--evidence", str(tmp_path)]) == 0
    from io import StringIO
    frame = pd.read_csv(StringIO(capsys.readouterr().out))
    assert {"study_id", "cohort_id", "outcome", "events", "total", "blast_burden",
            "relapse_line", "setting", "design", "schedule"} - set(frame.columns) == {"schedule"}
    assert main(["table", "--evidence", str(tmp_path), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3


def test_new_writes_a_template_that_fails_only_on_its_placeholders(tmp_path, capsys):
    """The template loads (every value has the right type) but every placeholder is an error
    naming its field, until the curator replaces it; ``new`` never overwrites."""
    shutil.copy(ROOT / "evidence" / "review.yaml", tmp_path / "review.yaml")
    assert main(["new", "smith2024", "--evidence", str(tmp_path)]) == 0
    evidence = load_evidence(tmp_path)
    assert [p.id for p in evidence.publications] == ["smith2024"]
    errors = [p for p in evidence.problems if p.severity == "error"]
    assert errors and all("placeholder" in p.message for p in errors)
    assert {"first_author", "title", "doi", "outcomes[0].provenance[0].quote"} <= {p.field for p in errors}
    before = (tmp_path / "smith2024.yaml").read_bytes()
    assert main(["new", "smith2024", "--evidence", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "smith2024.yaml").read_bytes() == before
    assert main(["new", "../escape", "--evidence", str(tmp_path)]) == 2
    assert not (tmp_path.parent / "escape.yaml").exists()




def test_evidence_commands_never_modify_evidence(capsys, folder_digest):
    before = folder_digest(ROOT / "evidence"), folder_digest(ROOT / "models")
    main(["validate", str(ROOT / "evidence")])
    main(["table", "--evidence", str(ROOT / "evidence")])
    main(["schema"])
    assert (folder_digest(ROOT / "evidence"), folder_digest(ROOT / "models")) == before
