"""CLDR display names as a multi-parallel corpus, from the `babel` package (no download).

Each "language" is a CLDR locale; each "sentence" is the locale's name for one item:
`territory:DE` ("Germany", "Deutschland", "Германия", ...), `language:de`, `script:Latn`.
An item a locale has no name for is missing. This is the embedded default corpus: it ships
with a PyPI dependency, spans many families and scripts, and is small enough for a CPU run.
Options: `locales=` (CLDR locale ids), `items=` (`kind:code` ids; `kind:*` = every code of
that kind CLDR knows for English).
"""
from __future__ import annotations

from typing import Iterable

from babelmap.engine.corpora.base import ParallelCorpus
from babelmap.engine.corpora.common import Skips, check_ids_unique
from babelmap.engine.errors import CorpusError, LanguageError
from babelmap.engine.languages import detect_script, language_name, normalize_code

LICENCE = "Unicode-3.0 (CLDR data via babel)"

# 41 locales across Indo-European (Germanic, Romance, Slavic, Greek, Armenian, Iranian, Indic),
# Kartvelian, Semitic, Turkic, Uralic, Japonic, Sinitic, Koreanic, Kra-Dai, Austroasiatic,
# Austronesian, Bantu, Dravidian; 20 scripts.
DEFAULT_LOCALES = ("en", "de", "nl", "sv", "fr", "es", "it", "pt", "ro", "ru", "uk", "pl", "cs", "bg", "sr",
                   "hr", "el", "hy", "ka", "fa", "hi", "bn", "ur", "ar", "he", "tr", "az", "kk", "fi", "hu",
                   "et", "ja", "zh_Hans", "zh_Hant", "ko", "th", "vi", "id", "sw", "am", "ta")

_EXTRA_LANGUAGES = ("la", "sa", "yi", "eo", "ga", "cy", "eu", "ca", "gl", "is", "lt", "lv", "sk", "sl", "mk",
                    "sq", "be", "mn", "ne", "mr", "gu", "pa", "kn", "ml", "te", "si", "my", "km", "lo", "ps",
                    "ku", "ha", "yo", "ig", "zu", "xh", "so", "mg", "fil", "ms", "jv", "haw", "mi", "sm", "qu",
                    "gn", "nv", "chr", "iu", "kl", "se", "da", "no", "uz", "tk", "ky", "tg", "ug", "bo", "dz")

_SCRIPTS = ("Latn", "Cyrl", "Grek", "Arab", "Hebr", "Deva", "Beng", "Guru", "Gujr", "Orya", "Taml", "Telu",
            "Knda", "Mlym", "Sinh", "Thai", "Laoo", "Tibt", "Mymr", "Khmr", "Geor", "Armn", "Ethi", "Hang",
            "Hani", "Hans", "Hant", "Jpan", "Hira", "Kana", "Mong", "Cher", "Tfng", "Syrc", "Thaa", "Copt",
            "Runr", "Goth", "Brai")

# Not territories in the everyday sense: pseudo-locales, unions, "unknown".
_NOT_TERRITORIES = {"ZZ", "XA", "XB", "EU", "EZ", "UN", "QO"}

_KINDS = {"territory": "territories", "language": "languages", "script": "scripts"}


def default_items() -> list[str]:
    """All ISO 3166 alpha-2 territories CLDR names, the default locales' and ~60 more languages,
    and ~40 scripts: about 360 items."""
    from babel import Locale
    en = Locale("en")
    terr = sorted(k for k in en.territories if len(k) == 2 and k.isalpha() and k not in _NOT_TERRITORIES)
    langs = []
    for code in [loc.split("_")[0] for loc in DEFAULT_LOCALES] + list(_EXTRA_LANGUAGES):
        if code in en.languages and code not in langs:
            langs.append(code)
    scripts = [s for s in _SCRIPTS if s in en.scripts]
    return [f"territory:{t}" for t in terr] + [f"language:{l}" for l in langs] + [f"script:{s}" for s in scripts]


def _expand(items: Iterable[str]) -> list[str]:
    from babel import Locale
    en = Locale("en")
    out: list[str] = []
    for it in items:
        kind, _, code = it.partition(":")
        if kind not in _KINDS or not code:
            raise CorpusError(f"CLDR item {it!r} is not kind:code", hint="use territory:DE, language:de, script:Latn")
        codes = sorted(getattr(en, _KINDS[kind])) if code == "*" else [code]
        for c in codes:
            sid = f"{kind}:{c}"
            if sid not in out:
                out.append(sid)
    return out


def read_cldr(path=None, *, skip_bad: bool = False, locales: Iterable[str] | None = None,
              items: Iterable[str] | None = None, name: str = "cldr") -> ParallelCorpus:
    """Build the CLDR display-name corpus (see module doc). `path` is ignored (data ships in babel)."""
    import babel
    from babel import Locale, UnknownLocaleError
    skips = Skips(skip_bad)
    sids = _expand(items) if items is not None else default_items()
    if not sids:
        raise CorpusError("empty corpus: no CLDR items asked for")
    rows, metas, by_id = {}, {}, {}
    for loc in (list(locales) if locales is not None else list(DEFAULT_LOCALES)):
        try:
            L = Locale.parse(loc)
        except (UnknownLocaleError, ValueError) as e:
            skips.handle(CorpusError(f"unknown CLDR locale {loc!r}: {e}", language=loc,
                                     hint="use a locale babel knows, e.g. de, zh_Hant, sr_Latn"))
            continue
        tables = {k: getattr(L, v) for k, v in _KINDS.items()}
        row = []
        for sid in sids:
            kind, _, code = sid.partition(":")
            row.append(tables[kind].get(code) or None)
        present = [t for t in row if t]
        if not present:
            skips.handle(CorpusError(f"locale {loc} has no name for any item", language=loc))
            continue
        try:
            lang = normalize_code(str(L), script=L.script or detect_script(present))
        except LanguageError as e:
            skips.handle(CorpusError(f"locale {loc}: {e}", language=loc))
            continue
        by_id.setdefault(lang, []).append(loc)
        rows[lang] = row
        metas[lang] = {"name": _name(lang), "script": lang.split("_")[1], "file": f"babel {babel.__version__}",
                       "licence": LICENCE, "variant": None, "locale": str(L)}
    for lang in check_ids_unique(by_id, skips):
        rows.pop(lang, None)
    if not rows:
        raise CorpusError("empty corpus: no CLDR locale left")
    langs = sorted(rows)
    return ParallelCorpus(name, langs, sids, [rows[l] for l in langs], {l: metas[l] for l in langs}, skips.records)


def _name(lang: str) -> str | None:
    try:
        return language_name(lang)
    except LanguageError:
        return None
