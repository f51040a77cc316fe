"""What `babelmap run` can be told (`RunConfig`), the command line that reproduces it, and the
fingerprint hash the stages key their reuse on."""
from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass, field, fields
from typing import Any

from babelmap.analysis.linguistic.uriel import KINDS as URIEL_KINDS

# every URIEL kind but `script` (a writing-system feature, not a linguistic similarity), then LEX
DEFAULT_MEASURES = tuple(k for k in URIEL_KINDS if k != "script") + ("lex",)


@dataclass
class RunConfig:
    """Everything `babelmap run` can be told. Defaults = the embedded default run."""

    out: str = "results/default"
    corpus: str | None = None
    format: str = "cldr"
    model: str | None = None
    langs: list[str] | None = None
    max_sentences: int | None = None
    min_languages: int | None = None
    split: str | None = None                                # FLORES dev/devtest/dev+devtest, FLEURS train/dev/test
    sample: int | None = None                               # a random sample of N sentences (seed, stratify)
    seed: int = 0
    stratify: str | None = None                             # "document": whole documents
    measures: list[str] = field(default_factory=lambda: list(DEFAULT_MEASURES))
    glottolog: str | None = None
    asjp: str | None = None
    device: str = "auto"
    bootstrap: int = 0
    min_partners: int = 5
    clusters: int | None = None
    linkage: str = "complete"
    skip_bad: bool = False
    progress: bool = True
    force: bool = False
    figures: bool = True
    transfer: str | None = None
    alignment: list[str] = field(default_factory=list)   # model measures beside cosine-mean: mexa, retrieval@K
    probe: bool = False                                     # FLORES topic-probe grid + source selection on it


# boolean fields whose command-line flag is not `--<name>` (they are on by default)
_NEGATED = {"figures": "--no-figures", "progress": "--no-progress"}


def command_line(cfg: RunConfig) -> str:
    """The `babelmap run` command line that reproduces `cfg`, quoted for a POSIX shell (globs
    such as `deu_*` stay globs). Progress output does not change results and is left out."""
    default = RunConfig()
    parts = ["babelmap", "run"]
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        if f.name == "progress" or v == getattr(default, f.name):
            continue
        if f.name in _NEGATED:
            parts.append(_NEGATED[f.name])
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(v, bool):
            parts.append(flag)
        elif isinstance(v, list):
            parts += [flag] + [shlex.quote(str(x)) for x in v]
        else:
            parts += [flag, shlex.quote(str(v))]
    return " ".join(parts)


def fingerprint(*parts: Any) -> str:
    """A short hash of JSON-able parts: what a stage's outputs depend on."""
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=str).encode())
        h.update(b"\x1f")
    return h.hexdigest()[:24]
