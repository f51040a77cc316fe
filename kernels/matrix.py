"""LanguageMatrix: a square, labelled language-by-language similarity matrix (DESIGN.md)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np


@dataclass
class LanguageMatrix:
    """`values[i, j]` = similarity of `languages[i]` and `languages[j]` (higher = more similar,
    NaN = no value). `missing` lists ids the measure could not cover (with reasons in `notes`)."""

    languages: list[str]
    values: np.ndarray
    name: str = ""
    missing: list[str] = field(default_factory=list)
    notes: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.languages = list(self.languages)
        self.values = np.asarray(self.values, dtype=np.float64)
        n = len(self.languages)
        if self.values.shape != (n, n):
            raise ValueError(f"values must be [{n}, {n}], got {self.values.shape}")
        if len(set(self.languages)) != n:
            raise ValueError("duplicate language ids in LanguageMatrix")
        self._index = {l: i for i, l in enumerate(self.languages)}

    def __len__(self) -> int:
        return len(self.languages)

    def __contains__(self, lang: str) -> bool:
        return lang in self._index

    def index(self, lang: str) -> int:
        return self._index[lang]

    def get(self, a: str, b: str) -> float:
        return float(self.values[self._index[a], self._index[b]])

    def row(self, lang: str) -> np.ndarray:
        return self.values[self._index[lang]]

    def subset(self, languages: Sequence[str]) -> "LanguageMatrix":
        """Restrict (and reorder) to the given languages, which must all be present."""
        idx = [self._index[l] for l in languages]
        return LanguageMatrix(list(languages), self.values[np.ix_(idx, idx)], self.name,
                              [m for m in self.missing if m in set(languages)], dict(self.notes))

    def align(self, other: "LanguageMatrix") -> tuple["LanguageMatrix", "LanguageMatrix"]:
        """Both matrices restricted to their shared languages, in the same (sorted) order."""
        shared = sorted(set(self.languages) & set(other.languages))
        return self.subset(shared), other.subset(shared)

    def rename(self, mapping: dict[str, str]) -> "LanguageMatrix":
        """Relabel ids (e.g. the reference release's cmn_Hani -> zho_Hans)."""
        return LanguageMatrix([mapping.get(l, l) for l in self.languages], self.values, self.name,
                              [mapping.get(l, l) for l in self.missing], dict(self.notes))

    # -- files ---------------------------------------------------------------------------
    def to_tsv(self, path: str | os.PathLike, diagonal_empty: bool = False) -> Path:
        """Square TSV as in the reference release: header and first column are ids. Written
        through a temporary name (a full disk is one StoreError, nothing half-written)."""
        from babelmap.engine.diskwrite import write_text_safely
        path = Path(path)
        lines = ["\t" + "\t".join(self.languages)]
        for i, lang in enumerate(self.languages):
            cells = []
            for j, v in enumerate(self.values[i]):
                if (diagonal_empty and i == j) or np.isnan(v):
                    cells.append("")
                else:
                    cells.append(repr(float(v)))
            lines.append(lang + "\t" + "\t".join(cells))
        return write_text_safely(path, "\n".join(lines) + "\n", "similarity TSV")

    @classmethod
    def from_tsv(cls, path: str | os.PathLike, name: str | None = None) -> "LanguageMatrix":
        """Read a square TSV (reference release format: empty cells are NaN)."""
        path = Path(path)
        with open(path, encoding="utf-8") as fh:
            header = fh.readline().rstrip("\n").split("\t")
            cols = header[1:]
            rows, vals = [], []
            for n, line in enumerate(fh, start=2):
                parts = line.rstrip("\n").split("\t")
                if len(parts) != len(cols) + 1:
                    raise ValueError(f"{path}:{n}: expected {len(cols) + 1} cells, got {len(parts)}")
                rows.append(parts[0])
                vals.append([float(x) if x.strip() not in ("", "nan", "NaN") else np.nan for x in parts[1:]])
        if rows != cols:
            raise ValueError(f"{path}: row labels differ from column labels")
        return cls(rows, np.array(vals, dtype=np.float64), name or path.stem)

    def to_hdf5(self, path: str | os.PathLike, group: str = "/") -> Path:
        import h5py
        with h5py.File(path, "a") as f:
            g = f.require_group(group)
            for k in ("languages", "values", "missing"):
                if k in g:
                    del g[k]
            g.create_dataset("languages", data=np.array(self.languages, dtype=object),
                             dtype=h5py.string_dtype("utf-8"))
            g.create_dataset("values", data=self.values)
            g.create_dataset("missing", data=np.array(self.missing, dtype=object),
                             dtype=h5py.string_dtype("utf-8"))
            g.attrs["name"] = self.name
        return Path(path)

    @classmethod
    def from_hdf5(cls, path: str | os.PathLike, group: str = "/") -> "LanguageMatrix":
        import h5py
        with h5py.File(path, "r") as f:
            g = f[group]
            dec = lambda a: [x.decode() if isinstance(x, bytes) else x for x in a]  # noqa: E731
            return cls(dec(g["languages"][()]), g["values"][()], str(g.attrs.get("name", "")),
                       dec(g["missing"][()]) if "missing" in g else [])

    def to_pandas(self):
        import pandas as pd
        return pd.DataFrame(self.values, index=self.languages, columns=self.languages)

    def __repr__(self) -> str:
        return f"<LanguageMatrix {self.name!r}: {len(self)} languages, {len(self.missing)} missing>"
