"""Genealogical similarity from a Glottolog folder (CLDF `languages.csv` + `trees.newick`).

Each languoid has a path in the classification tree from its top-level family down to itself,
P(x) = [family, subgroup, ..., x]. The similarity of two languages is the share of their paths
they have in common, from the root:

    sim(a, b) = |common prefix of P(a) and P(b)| / max(|P(a)|, |P(b)|)

so 1 for the same languoid, 0 for different families, and in between by how far down the tree
two languages stay together (the usual "shared branches / max depth" genealogical measure, as
lang2vec's genetic distance). E.g. English and German share their path down to West Germanic.

* Languages are found by ISO 639-3 code (`ISO639P3code`); a macrolanguage code Glottolog does
  not list (zho, est, grn, ...) falls back to its main individual language (cmn, ekk, gug, ...),
  an unknown individual code to its macrolanguage (`tables.candidate_codes`), noted in `notes[id]`. Script variants of one language share its values.
* Isolates are families of one: similarity 0 to every other language.
* Pseudo-families (Bookkeeping, Unclassifiable, Sign Language, Pidgin, Mixed Language,
  Artificial Language, Speech Register, Unattested) are not genealogical units: their languages
  are excluded (NaN) and listed in `missing` with the reason, as are codes Glottolog lacks.
"""
from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from babelmap.engine.errors import BabelmapError
from babelmap.analysis.linguistic.tables import candidate_codes
from babelmap.kernels.matrix import LanguageMatrix

PSEUDO_FAMILIES = {"book1242": "Bookkeeping", "uncl1493": "Unclassifiable", "sign1238": "Sign Language",
                   "pidg1258": "Pidgin", "mixe1287": "Mixed Language", "arti1236": "Artificial Language",
                   "spee1234": "Speech Register", "unat1236": "Unattested"}

class Glottolog:
    """The parsed folder: languoid table and every languoid's path from its top-level family."""

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        langs_csv, trees = folder / "languages.csv", folder / "trees.newick"
        for p in (langs_csv, trees):
            if not p.exists():
                raise BabelmapError(f"Glottolog folder {folder}: {p.name} is missing "
                                    "(expected the CLDF languages.csv and trees.newick)")
        self.folder = folder
        self.name: dict[str, str] = {}
        self.level: dict[str, str] = {}
        self.by_iso: dict[str, str] = {}
        with open(langs_csv, encoding="utf-8", newline="") as fh:
            for n, row in enumerate(csv.DictReader(fh), start=2):
                try:
                    gc = row["ID"]
                    self.name[gc] = row["Name"]
                    self.level[gc] = row["Level"]
                    if row["ISO639P3code"]:
                        self.by_iso[row["ISO639P3code"]] = gc
                except KeyError as e:
                    raise BabelmapError(f"{langs_csv}:{n}: column {e} missing") from e
        self.parent: dict[str, str | None] = {}
        import newick
        with open(trees, encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                line = line.strip()
                if not line:
                    continue
                try:
                    (root,) = newick.loads(line)
                except Exception as e:  # noqa: BLE001 - newick raises various errors
                    raise BabelmapError(f"{trees}:{n}: not a Newick tree ({e})") from e
                self.parent[root.name] = None
                stack = [root]
                while stack:
                    node = stack.pop()
                    for child in node.descendants:
                        self.parent[child.name] = node.name
                        stack.append(child)

    def path(self, glottocode: str) -> list[str]:
        """[top-level family, ..., glottocode]."""
        out = [glottocode]
        p = self.parent.get(glottocode)
        while p is not None:
            out.append(p)
            p = self.parent.get(p)
        return out[::-1]

    def lookup(self, lang_id: str) -> tuple[str | None, str | None]:
        """(glottocode, note) for one of our ids; glottocode None when not found."""
        codes = candidate_codes(lang_id)
        for i, c in enumerate(codes):
            gc = self.by_iso.get(c)
            if gc is not None and gc in self.parent:
                return gc, (None if i == 0 else f"Glottolog has no {codes[0]}; used {c} ({gc})")
        return None, f"{codes[0]} is not in Glottolog {self.folder}"


@lru_cache(maxsize=4)
def load_glottolog(folder: str | Path) -> Glottolog:
    """Parse (once per process) a Glottolog folder."""
    return Glottolog(Path(folder).resolve())


def shared_path_similarity(paths: Sequence[Sequence[str]]) -> np.ndarray:
    """sim[i, j] = common root prefix length / max path length, for all pairs (vectorised)."""
    L = len(paths)
    if L == 0:
        return np.zeros((0, 0))
    ids: dict[str, int] = {}
    depth = max(len(p) for p in paths)
    codes = np.full((L, depth), -1, dtype=np.int64)
    for i, p in enumerate(paths):
        codes[i, :len(p)] = [ids.setdefault(x, len(ids)) for x in p]
    lengths = np.array([len(p) for p in paths])
    shared = np.zeros((L, L), dtype=np.int16)
    alive = np.ones((L, L), dtype=bool)
    for k in range(depth):
        c = codes[:, k]
        alive &= (c[:, None] == c[None, :]) & (c[:, None] >= 0)
        shared += alive
    return shared / np.maximum(lengths[:, None], lengths[None, :])


def glottolog_matrix(folder: str | Path, languages: Sequence[str]) -> LanguageMatrix:
    """Glottolog shared-path similarity over our language ids (see the module docstring)."""
    g = load_glottolog(folder)
    languages = list(languages)
    if len(set(languages)) != len(languages):
        raise BabelmapError("duplicate language ids given to glottolog_matrix")
    notes: dict = {}
    missing: list[str] = []
    keep, paths = [], []
    for i, lang in enumerate(languages):
        gc, note = g.lookup(lang)
        if gc is None:
            missing.append(lang)
            notes[lang] = note
            continue
        p = g.path(gc)
        if p[0] in PSEUDO_FAMILIES:
            missing.append(lang)
            notes[lang] = f"{gc} is in the pseudo-family {PSEUDO_FAMILIES[p[0]]} ({p[0]}), not a genealogical unit"
            continue
        if note:
            notes[lang] = note
        keep.append(i)
        paths.append(p)
    L = len(languages)
    values = np.full((L, L), np.nan)
    idx = np.array(keep, dtype=int)
    values[np.ix_(idx, idx)] = shared_path_similarity(paths)
    notes["measure"] = "Glottolog shared path from the root / max path length"
    notes["isolates"] = ",".join(languages[i] for i, p in zip(keep, paths) if g.level.get(p[0]) != "family")
    return LanguageMatrix(languages, values, "glottolog", missing, notes)


def families(languages: Sequence[str], folder: str | Path) -> dict[str, str | None]:
    """id -> name of its top-level Glottolog family (an isolate: its own name; a pseudo-family
    member: the pseudo-family's name, e.g. "Pidgin"); None when Glottolog lacks the language."""
    g = load_glottolog(folder)
    out: dict[str, str | None] = {}
    for lang in languages:
        gc, _ = g.lookup(lang)
        out[lang] = None if gc is None else g.name.get(g.path(gc)[0])
    return out
