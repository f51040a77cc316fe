"""Language ids `<iso639-3>_<Script>[-variant]`: normalisation, scripts, names (DESIGN.md).

The one module that knows about language codes. (Filled in by the corpora work: code
normalisation with langcodes/iso639, script detection, name resolution.)
"""
from __future__ import annotations

import difflib
from typing import Iterable


def base_language(lang_id: str) -> str:
    """`deu_Latn-deu1912` -> `deu_Latn`."""
    return lang_id.split("-", 1)[0]


def iso639_3(lang_id: str) -> str:
    """`deu_Latn-deu1912` -> `deu`."""
    return base_language(lang_id).split("_", 1)[0]


def suggest(query: str, candidates: Iterable[str], n: int = 5) -> list[str]:
    """Closest candidates to a misspelt id or name."""
    return difflib.get_close_matches(query, list(candidates), n=n, cutoff=0.5)
