"""Read YAML safely and remember the line of every field.

This is the only place in blinameta that parses YAML. It composes the document into nodes with
PyYAML's safe loader and builds plain Python values itself, so that it can

- refuse anchors and aliases (no alias bombs), tabs, duplicate keys, NaN and infinity,
  non-UTF-8 bytes and files over a size limit, each with the line where it happens;
- keep dates, times and YAML 1.1 oddities such as ``yes``/``no`` from turning into surprises:
  only ``true``/``false`` are booleans, timestamps stay text;
- map every field path, e.g. ``("outcomes", 2, "events")``, to its line in the file.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from blinameta.io import read_regular_file
from blinameta.text import unsafe_character

__all__ = ["YamlProblem", "ParsedYaml", "parse_yaml", "MAX_FILE_BYTES", "MAX_NODES", "MAX_DEPTH"]

#: Largest evidence file accepted.
MAX_FILE_BYTES = 1_000_000
#: Largest number of YAML nodes in one file.
MAX_NODES = 200_000
#: Deepest nesting of mappings and sequences (checked while parsing, so a deep file fails fast).
MAX_DEPTH = 50

# YAML 1.2 core-schema numbers only: no digit separators ("1_0"), no leading zeros ("03",
# octal in YAML 1.1), no sexagesimal or hexadecimal forms; anything else stays text and fails
# the schema's strict type check with its line.
_INT = re.compile(r"^[-+]?(0|[1-9][0-9]*)$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|(0|[1-9][0-9]*)(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_CONTAINER_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")
_NONFINITE = re.compile(r"^[-+]?\.?(inf|Inf|INF|nan|NaN|NAN)$")
#: libyaml's parser when PyYAML was built with it (20x faster; the same events, nodes and marks),
#: else the pure-Python one. Only events and nodes are used: values are built by :class:`_Builder`.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class YamlProblem:
    """A problem found while reading a YAML file."""

    line: int | None
    message: str


@dataclass
class ParsedYaml:
    """The value of a YAML document and the line of each field path."""

    value: Any
    lines: dict[tuple[str | int, ...], int] = field(default_factory=dict)

    def line_of(self, path: tuple[str | int, ...]) -> int | None:
        """The line of ``path`` or, failing that, of its nearest enclosing field."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


class _Refused(Exception):
    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.problem = YamlProblem(line, message)


def _compose(text: str, loader: type) -> tuple[list | None, list[YamlProblem]]:
    """Check the events (depth, tags, anchors) and compose the documents with ``loader``."""
    try:
        depth = 0
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    return None, [YamlProblem(event.start_mark.line + 1,
                                              f"nested more than {MAX_DEPTH} levels deep")]
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            tag = getattr(event, "tag", None)
            if tag is not None and not isinstance(event, (yaml.DocumentStartEvent, yaml.DocumentEndEvent)):
                # an explicit tag ("!!str 3", "!!float 1") would override how the value reads
                return None, [YamlProblem(event.start_mark.line + 1,
                                          f"explicit YAML tag {tag!r} is not allowed; write the value plainly "
                                          "or quote it")]
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                kind = "alias" if isinstance(event, yaml.AliasEvent) else "anchor"
                return None, [YamlProblem(
                    event.start_mark.line + 1,
                    f"anchors and aliases are not allowed ({kind} {event.anchor!r})",
                )]
        documents = list(yaml.compose_all(text, Loader=loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = exc.problem or exc.context or "invalid YAML"
        return None, [YamlProblem(line, f"invalid YAML: {reason}")]
    except yaml.YAMLError as exc:  # pragma: no cover - PyYAML raises marked errors
        return None, [YamlProblem(None, f"invalid YAML: {exc}")]
    except RecursionError:
        return None, [YamlProblem(None, "invalid YAML: nested too deeply")]
    return documents, []


def parse_yaml(path: Path, *, root: Path | None = None) -> tuple[ParsedYaml | None, list[YamlProblem]]:
    """Parse one YAML file; return the parsed document, or ``None`` and the problems.

    Only regular files of at most :data:`MAX_FILE_BYTES` are read; with ``root``, a symbolic
    link that leads outside ``root`` is refused.
    """
    try:
        raw = read_regular_file(path, MAX_FILE_BYTES, root=root)
    except OSError as exc:
        return None, [YamlProblem(None, f"cannot read the file: {exc.strerror or exc}")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return None, [YamlProblem(line, f"not UTF-8 text: byte 0x{raw[exc.start]:02x}")]
    if text.startswith("\ufeff"):
        text = text[1:]
    problems = [
        YamlProblem(number, "tab character; indent with spaces")
        for number, line in enumerate(text.splitlines(), start=1)
        if "\t" in line
    ]
    if problems:
        return None, problems
    if "\x00" in text:
        return None, [YamlProblem(text[: text.index("\x00")].count("\n") + 1, "NUL byte")]
    documents, problems = _compose(text, _LOADER)
    if problems and _LOADER is not yaml.SafeLoader:
        # libyaml refuses some files with its own words (a lone surrogate escape, deep nesting);
        # the pure-Python parser's reading names the problem as everywhere else in blinameta
        documents, problems = _compose(text, yaml.SafeLoader)
    if problems:
        return None, problems
    if len(documents) != 1:
        return None, [YamlProblem(None, f"expected one YAML document, found {len(documents)}")]
    parsed = ParsedYaml(value=None)
    builder = _Builder(parsed.lines)
    try:
        parsed.value = builder.build(documents[0], ())
    except _Refused as exc:
        return None, [exc.problem]
    except RecursionError:
        return None, [YamlProblem(None, "nested too deeply")]
    return parsed, []


class _Builder:
    def __init__(self, lines: dict[tuple[str | int, ...], int]) -> None:
        self.lines = lines
        self.count = 0
        self.seen: set[int] = set()

    def build(self, node: yaml.Node, path: tuple[str | int, ...]) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise _Refused(None, f"more than {MAX_NODES} YAML nodes")
        line = node.start_mark.line + 1
        self.lines[path] = line
        if id(node) in self.seen:
            raise _Refused(line, "anchors and aliases are not allowed")
        self.seen.add(id(node))
        if not isinstance(node, yaml.ScalarNode) and node.tag not in _CONTAINER_TAGS:
            raise _Refused(line, f"{_dotted(path)}: YAML tag {node.tag!r} is not allowed")
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise _Refused(key_node.start_mark.line + 1, "keys must be plain text")
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise _Refused(key_node.start_mark.line + 1, "merge keys ('<<') are not allowed")
                key = str(key_node.value)
                _check_text(key, key_node.start_mark.line + 1, path + (key,))
                if key in result:
                    raise _Refused(
                        key_node.start_mark.line + 1,
                        f"{_dotted(path + (key,))}: duplicate key {key!r}",
                    )
                result[key] = self.build(value_node, path + (key,))
                self.lines[path + (key,)] = key_node.start_mark.line + 1
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        return self._scalar(node, line, path)

    @staticmethod
    def _scalar(node: yaml.ScalarNode, line: int, path: tuple[str | int, ...]) -> Any:
        value = node.value
        _check_text(value, line, path)
        if node.style is not None and node.style in ("'", '"', "|", ">"):
            return value
        tag = node.tag
        if tag == "tag:yaml.org,2002:null" or value in ("", "~", "null", "Null", "NULL"):
            return None
        if value in ("true", "True", "TRUE"):
            return True
        if value in ("false", "False", "FALSE"):
            return False
        if _NONFINITE.match(value):
            raise _Refused(line, f"{_dotted(path)}: {value!r} is not a finite number")
        if _INT.match(value):
            return int(value.replace("_", ""))
        if _FLOAT.match(value):
            number = float(value.replace("_", ""))
            if not math.isfinite(number):
                raise _Refused(line, f"{_dotted(path)}: {value!r} is not a finite number")
            return number
        if tag not in ("tag:yaml.org,2002:str", "tag:yaml.org,2002:bool",
                       "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
                       "tag:yaml.org,2002:timestamp"):
            raise _Refused(line, f"{_dotted(path)}: YAML tag {tag!r} is not allowed")
        return value


def _check_text(value: str, line: int, path: tuple[str | int, ...]) -> None:
    """Refuse control and bidi characters (written as YAML escapes such as "\\e" or "\\u202e")."""
    problem = unsafe_character(value)
    if problem is not None:
        raise _Refused(line, f"{_dotted(path)}: {problem} is not allowed in text")


def _dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"
