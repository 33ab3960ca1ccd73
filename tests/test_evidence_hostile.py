"""Hostile and broken input: a clear problem with a line, never a crash or a hang."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blinameta.cli import main
from blinameta.evidence.loader import load_evidence
from blinameta.evidence.yamlsafe import MAX_FILE_BYTES

CASES = Path(__file__).parent / "evidence_cases"
MINIMAL = (CASES / "pass" / "minimal.yaml").read_text()
FULL = (CASES / "pass" / "full.yaml").read_text()


def _folder(tmp_path: Path, name: str, content: bytes | str) -> Path:
    shutil.copy(CASES / "review.yaml", tmp_path / "review.yaml")
    target = tmp_path / f"{name}.yaml"
    target.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return target


def _messages(tmp_path: Path) -> list[str]:
    evidence = load_evidence(tmp_path)
    return [p.format() for p in evidence.problems if p.severity == "error"]


def test_billion_laughs_is_refused_quickly(tmp_path):
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i-1}"] * 9) + "]")
    _folder(tmp_path, "bomb", "\n".join(lines) + "\n")
    messages = _messages(tmp_path)
    assert any("anchors and aliases are not allowed" in m and "bomb.yaml:1" in m for m in messages)


def test_non_utf8_bytes_name_the_line(tmp_path):
    _folder(tmp_path, "latin", MINIMAL.replace("id: minimal", "id: latin").encode() + b"notes: caf\xe9\n")
    (message,) = _messages(tmp_path)
    assert "not UTF-8" in message and "latin.yaml:" in message and "0xe9" in message


def test_very_large_file_is_refused(tmp_path):
    _folder(tmp_path, "huge", MINIMAL + "notes: " + "x" * (MAX_FILE_BYTES + 10) + "\n")
    (message,) = _messages(tmp_path)
    assert "limit" in message


def test_deep_nesting_is_refused(tmp_path):
    _folder(tmp_path, "deep", "notes: " + "[" * 5000 + "]" * 5000 + "\n")
    messages = _messages(tmp_path)
    assert messages and all("deep.yaml" in m for m in messages)


def test_file_name_with_bad_characters(tmp_path):
    _folder(tmp_path, "Bad-Name", MINIMAL)
    (message,) = _messages(tmp_path)
    assert "not a valid id" in message


def test_validate_command_one_line_per_problem_and_status_2(tmp_path, capsys):
    _folder(tmp_path, "two", MINIMAL.replace("id: minimal", "id: two").replace("year: 2020", "year: -1")
            .replace("n: 40", "n: 0"))
    status = main(["validate", str(tmp_path), "--no-sources"])
    out, err = capsys.readouterr()
    assert status == 2
    lines = out.strip().splitlines()
    assert len(lines) == 2
    assert all(line.startswith(f"{tmp_path}/two.yaml:") and ": error: " in line for line in lines)
    assert "Traceback" not in out + err


def test_validate_missing_path_is_a_user_error(capsys):
    assert main(["validate", "/nonexistent/folder"]) == 2
    assert "no such file or folder" in capsys.readouterr().err


# --- random mutations never crash the validator ---------------------------------------------

_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, prefix + (i,))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_mutations_never_crash(tmp_path_factory, data):
    document = yaml.safe_load(FULL)
    paths = [p for p in _paths(document) if p]
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        parent = document
        try:
            for key in path[:-1]:
                parent = parent[key]
            action = data.draw(st.sampled_from(["replace", "delete"]))
            if action == "delete" and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = data.draw(_VALUES)
        except (KeyError, IndexError, TypeError):
            continue
    text = yaml.safe_dump(document, allow_unicode=True)
    if data.draw(st.booleans()):  # textual damage too
        cut = data.draw(st.integers(0, len(text)))
        text = text[:cut] + data.draw(st.sampled_from(["\t", ":", "&a ", "*a", "- ", "{", "\x00", "'", "\n  x"])) + text[cut:]
    folder = tmp_path_factory.mktemp("mut")
    shutil.copy(CASES / "review.yaml", folder / "review.yaml")
    shutil.copy(CASES / "pass" / "minimal.yaml", folder / "minimal.yaml")
    (folder / "full.yaml").write_text(text, encoding="utf-8")
    evidence = load_evidence(folder)  # must not raise
    for problem in evidence.problems:
        assert problem.message and problem.file.name in {"full.yaml", "minimal.yaml"}
