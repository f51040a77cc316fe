"""`RunSummary`: what a `babelmap run` did, as one typed record (`<out>/summary.json`).

It holds provenance and small facts (corpus, model, languages, measures' coverage, the default
layer and why, clusters, figures, timings); the tables of the report are read from the stages'
own artefacts (`Correlation`, `Clustering`, `Selection` files), never copied here.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from babelmap.engine.diskwrite import write_text_safely

SUMMARY = "summary.json"


@dataclass
class RunSummary:
    """One run's record. `corpus`: name, format, path, languages, sentences, present, coverage,
    fingerprint, skipped; `model`: name, pooling, prefix, fingerprint, layers (hidden states);
    `measures`: name -> {covered, missing}; `figures`: kind -> paths relative to `out`;
    `notes`: what was not done and why (e.g. no correlation figure when every language was
    dropped); `summary`: one row per measure (best layer, mean Pearson, ...), for scripts;
    `alignment`: alignment measure -> {file, folder, best_layer, reason}; `probe`: the topic
    probe's best layer, settings, labels and counts (with --probe)."""

    out: str
    command: str
    config: dict
    created: str
    version: str
    corpus: dict
    model: dict
    languages: list[str]
    names: dict[str, str]
    similarity: dict
    measures: dict[str, dict]
    measure_errors: dict[str, str]
    best_layer: int
    best_layer_reason: str
    clusters: dict | None = None
    figures: dict[str, list[str]] = field(default_factory=dict)
    transfer: str | None = None
    notes: list[str] = field(default_factory=list)
    stages: dict[str, float | None] = field(default_factory=dict)
    summary: list[dict] = field(default_factory=list)
    alignment: dict[str, dict] = field(default_factory=dict)
    probe: dict | None = None

    @property
    def report(self) -> Path:
        return Path(self.out) / "report.md"

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write `summary.json` (in `out` by default) through a temporary name."""
        path = Path(path) if path is not None else Path(self.out) / SUMMARY
        return write_text_safely(path, json.dumps(asdict(self), indent=1, default=str), "run summary")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RunSummary":
        """Read a results folder's `summary.json` (or the file itself)."""
        p = Path(path)
        if p.is_dir():
            p = p / SUMMARY
        data: dict[str, Any] = json.loads(p.read_text(encoding="utf-8"))
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
