"""``blinameta schema``: print the JSON Schema of the evidence files."""

from __future__ import annotations

import json

import click

from blinameta.evidence.schema import Publication, Review

__all__ = ["schema", "json_schema"]


def json_schema(kind: str) -> str:
    """The JSON Schema of a publication file or of the review file, as formatted JSON."""
    model = {"publication": Publication, "review": Review}[kind]
    document = model.model_json_schema(by_alias=True)
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["$id"] = f"blinameta/{kind}.schema.json"
    return json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


@click.command()
@click.option("--kind", type=click.Choice(["publication", "review"]), default="publication",
              show_default=True, help="Which file's schema.")
def schema(kind: str) -> None:
    """Print the JSON Schema for evidence files (committed in evidence/schema/)."""
    click.echo(json_schema(kind), nl=False)
