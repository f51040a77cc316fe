"""Corpora from Python objects: `{language: [sentences]}`, a pandas DataFrame, a Hugging Face
`datasets.Dataset` (duck-typed: `column_names` and `ds[column]`; `datasets` is not a dependency).

Keys are language ids, codes or names ("German"), resolved through `engine.languages`; a code or
name without a script gets the script detected from its sentences. None and "" are missing
sentences; every sentence is stripped as the file readers strip theirs.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from babelmap.engine.corpora.base import ParallelCorpus
from babelmap.engine.corpora.common import NORMALIZATION, clean_text
from babelmap.engine.errors import CorpusError, LanguageError


def language_id(key: str, texts: Sequence[str | None]) -> str:
    """A column key -> language id: an id or code as written (script detected when it has none),
    else a language name through `resolve`."""
    from babelmap.engine.corpora.plain import id_from_stem
    from babelmap.engine.languages import detect_script, make_id, resolve, script_of
    key = str(key).strip()
    present = [t for t in texts if t]
    try:
        return id_from_stem(key, present or None)
    except LanguageError:
        pass
    try:
        lang = resolve(key)
    except LanguageError as e:
        raise CorpusError(f"column {key!r} is not a language id, code or name: {e}", language=key,
                          hint="name columns by language (eng_Latn, de, 'German')") from None
    detected = detect_script(present[:2000]) if present else None
    if detected and detected != script_of(lang) and detected not in ("Hani",):
        lang = make_id(lang.split("_")[0], detected)
    return lang


def corpus_from_columns(columns: Mapping[str, Sequence[str | None]], *, name: str = "custom",
                        sentence_ids: Sequence[str] | None = None, where: str = "dict") -> ParallelCorpus:
    """`{language: [sentences]}` -> ParallelCorpus (see module doc). Unequal lengths, a key that is no
    language, two keys of one language, or no text at all: CorpusError in one line."""
    if not hasattr(columns, "items") or not columns:
        raise CorpusError(f"a corpus from a {where} needs at least one language column")
    cols = {str(k): list(v) if not isinstance(v, str) else None for k, v in columns.items()}
    for k, v in cols.items():
        if v is None:
            raise CorpusError(f"column {k!r} is a string, not a list of sentences", language=k)
    lengths = {k: len(v) for k, v in cols.items()}
    if len(set(lengths.values())) > 1:
        listing = ", ".join(f"{k} {n}" for k, n in lengths.items())
        raise CorpusError(f"columns have different numbers of sentences ({listing}): they must be parallel, "
                          "one entry per sentence (None or '' where a sentence is missing)")
    n = next(iter(lengths.values()))
    sids = [str(s) for s in sentence_ids] if sentence_ids is not None else [str(i + 1) for i in range(n)]
    if len(sids) != n:
        raise CorpusError(f"{len(sids)} sentence ids for {n} sentences")
    rows: dict[str, list[str | None]] = {}
    keys: dict[str, str] = {}
    for k, v in cols.items():
        for i, t in enumerate(v):
            if t is not None and not isinstance(t, str):
                if _is_nan(t):
                    v[i] = None
                    continue
                raise CorpusError(f"sentence {i + 1} is a {type(t).__name__}, not text", language=k)
        row = [clean_text(t) for t in v]
        lang = language_id(k, row)
        if lang in rows:
            raise CorpusError(f"columns {keys[lang]!r} and {k!r} are both {lang}", language=lang,
                              hint="keep one, or name them with variants (deu_Latn-a, deu_Latn-b)")
        if not any(t is not None for t in row):
            raise CorpusError(f"column {k!r} has no text", language=lang)
        rows[lang], keys[lang] = row, k
    from babelmap.engine.languages import language_name, script_of
    meta = {}
    for lang, k in keys.items():
        try:
            lname = language_name(lang)
        except LanguageError:
            lname = None
        meta[lang] = {"name": lname, "script": script_of(lang), "file": None, "licence": None,
                      "variant": lang.split("-", 1)[1] if "-" in lang else None, "column": k}
    langs = sorted(rows)
    return ParallelCorpus(name, langs, sids, [rows[l] for l in langs], meta, normalization=NORMALIZATION)


def _is_nan(x: Any) -> bool:
    try:
        return x != x          # float NaN, pandas NA-like
    except Exception:
        return False


def corpus_from_pandas(df: Any, *, name: str = "custom") -> ParallelCorpus:
    """A DataFrame with one column per language; a non-default index gives the sentence ids."""
    if not hasattr(df, "columns") or not hasattr(df, "index"):
        raise CorpusError(f"expected a pandas DataFrame, got {type(df).__name__}")
    cols = {str(c): [None if _is_nan(x) else x for x in df[c].tolist()] for c in df.columns}
    idx = list(df.index)
    default = idx == list(range(len(idx)))
    return corpus_from_columns(cols, name=name, sentence_ids=None if default else [str(i) for i in idx],
                               where="DataFrame")


def corpus_from_dataset(ds: Any, *, name: str = "custom", columns: Sequence[str] | None = None) -> ParallelCorpus:
    """A Hugging Face Dataset (anything with `column_names` and `ds[column]` -> list) with one
    column per language; `columns` picks some."""
    names = getattr(ds, "column_names", None)
    if names is None:
        raise CorpusError(f"expected a datasets.Dataset (with column_names), got {type(ds).__name__}")
    if isinstance(names, dict):           # a DatasetDict: one split must be chosen
        raise CorpusError(f"a DatasetDict with splits {sorted(names)}: pass one split, e.g. ds['train']")
    chosen = list(columns) if columns is not None else list(names)
    unknown = [c for c in chosen if c not in names]
    if unknown:
        raise CorpusError(f"no column {unknown[0]!r} in the dataset (columns: {', '.join(names)})")
    return corpus_from_columns({c: list(ds[c]) for c in chosen}, name=name, where="dataset")
