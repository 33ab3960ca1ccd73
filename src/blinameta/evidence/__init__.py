"""The evidence base: schema, safe loading, validation and the tidy table."""

from __future__ import annotations

from blinameta.evidence.loader import (
    REVIEW_FILE,
    Evidence,
    Problem,
    evidence_files,
    load_evidence,
    load_evidence_or_fail,
)
from blinameta.evidence.schema import Publication, Review

__all__ = [
    "REVIEW_FILE",
    "Evidence",
    "Problem",
    "Publication",
    "Review",
    "evidence_files",
    "load_evidence",
    "load_evidence_or_fail",
]
