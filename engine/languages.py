"""Language ids `<iso639-3>_<Script>[-variant]`: normalisation, scripts, names (DESIGN.md).

The one module that knows about language codes. Codes are mapped with maintained libraries:
`iso639-lang` (ISO 639-1, 639-2/B and /T, 639-3, reference names, macrolanguages) and
`langcodes` + `language-data` (BCP-47 parsing, CLDR likely subtags for a default script,
names in many languages). The Unicode Script property of characters comes from
`fontTools.unicodedata` (Unicode's Scripts.txt), so script detection needs no table of ours.
"""
from __future__ import annotations

import difflib
import functools
import re
from collections import Counter
from typing import Iterable, Mapping, Sequence

from babelmap.engine.errors import LanguageError

# `deu_Latn`, `deu_Latn-deu1912`: the form of our ids (FLORES-200 style).
_ID_RE = re.compile(r"^([a-z]{3})_([A-Z][a-z]{3})(?:-(.+))?$")

# Where CLDR's likely script disagrees with the usual practice of parallel corpora
# (FLORES-200 writes Korean `kor_Hang`; CLDR's likely script for grc is Cypriot).
_DEFAULT_SCRIPT_OVERRIDES = {"kor": "Hang", "grc": "Grek"}

_ASCII = re.compile(r"[\x00-\x7f]+")
_ASCII_NON_LETTERS = bytes(b for b in range(128) if not chr(b).isalpha())

# Script property values that say nothing about the writing system of a text.
_NEUTRAL_SCRIPTS = {"Zyyy", "Zinh", "Zzzz"}


# -- small helpers used everywhere -------------------------------------------------------------
def base_language(lang_id: str) -> str:
    """`deu_Latn-deu1912` -> `deu_Latn`."""
    return lang_id.split("-", 1)[0]


def iso639_3(lang_id: str) -> str:
    """`deu_Latn-deu1912` -> `deu`."""
    return base_language(lang_id).split("_", 1)[0]


def script_of(lang_id: str) -> str | None:
    """`deu_Latn-deu1912` -> `Latn` (None when the id has no script part)."""
    parts = base_language(lang_id).split("_", 1)
    return parts[1] if len(parts) == 2 else None


def variant_of(lang_id: str) -> str | None:
    """`deu_Latn-deu1912` -> `deu1912`; None without a variant."""
    parts = lang_id.split("-", 1)
    return parts[1] if len(parts) == 2 else None


def make_id(iso3: str, script: str, variant: str | None = None) -> str:
    """Compose `<iso3>_<Script>[-variant]` (script title-cased as ISO 15924 writes it)."""
    script = script[:1].upper() + script[1:].lower()
    return f"{iso3}_{script}" + (f"-{variant}" if variant else "")


def suggest(query: str, candidates: Iterable[str], n: int = 5) -> list[str]:
    """Closest candidates to a misspelt id or name."""
    cands = list(candidates)
    lower = {c.lower(): c for c in cands}
    hits = difflib.get_close_matches(query.lower(), list(lower), n=n, cutoff=0.5)
    return [lower[h] for h in hits]


# -- ISO 639 ------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _iso_lang(code: str):
    """iso639.Lang for a 639-1/2B/2T/3 code or an English reference name, else None."""
    from iso639 import Lang
    from iso639.exceptions import DeprecatedLanguageValue, InvalidLanguageValue
    try:
        return Lang(code)
    except DeprecatedLanguageValue:
        return None
    except InvalidLanguageValue:
        return None


@functools.lru_cache(maxsize=None)
def _all_names() -> dict[str, str]:
    """Lower-cased ISO 639-3 reference names of living/individual languages -> code (for suggestions)."""
    from iso639 import iter_langs
    return {lg.name.lower(): (lg.name, lg.pt3) for lg in iter_langs() if lg.pt3}


@functools.lru_cache(maxsize=None)
def _all_codes() -> tuple[str, ...]:
    from iso639 import iter_langs
    codes = set()
    for lg in iter_langs():
        for c in (lg.pt1, lg.pt2b, lg.pt2t, lg.pt3):
            if c:
                codes.add(c)
    return tuple(sorted(codes))


@functools.lru_cache(maxsize=None)
def _is_retired_iso3(code: str) -> bool:
    """A retired ISO 639-3 code (e.g. `ajp`, merged into `apc` in 2023) that corpora still use."""
    from iso639 import Lang
    from iso639.exceptions import DeprecatedLanguageValue, InvalidLanguageValue
    return _retired_name(code) is not None


@functools.lru_cache(maxsize=None)
def _retired_name(code: str) -> str | None:
    """The reference name of a retired ISO 639-3 code, else None."""
    from iso639 import Lang
    from iso639.exceptions import DeprecatedLanguageValue, InvalidLanguageValue
    if len(code) != 3:
        return None
    try:
        Lang(code)
    except DeprecatedLanguageValue as e:
        return getattr(e, "name", None) or code
    except InvalidLanguageValue:
        return None
    return None


def _to_iso3(subtag: str) -> str | None:
    """A language subtag (639-1, 639-2/B, 639-3, or a deprecated one such as `iw`) -> 639-3.

    Retired 639-3 codes are kept as written (FLORES-200 has `ajp_Arab`): ids stay the corpus's own.
    """
    sub = subtag.lower()
    lg = _iso_lang(sub)
    if lg is not None and lg.pt3 and len(sub) in (2, 3):
        return lg.pt3
    if _is_retired_iso3(sub):
        return sub
    # deprecated / legacy codes (iw, in, mo, sh, ...): CLDR's replacement via langcodes
    import langcodes
    try:
        std = langcodes.Language.get(langcodes.standardize_tag(sub))
    except (ValueError, LookupError):
        return None
    if std.language and std.language != sub:
        lg = _iso_lang(std.language)
        if lg is not None and lg.pt3:
            return lg.pt3
    return None


@functools.lru_cache(maxsize=None)
def default_script(iso3: str, region: str | None = None) -> str | None:
    """The likely script of a language (optionally in a region), from CLDR likely subtags."""
    if region is None and iso3 in _DEFAULT_SCRIPT_OVERRIDES:
        return _DEFAULT_SCRIPT_OVERRIDES[iso3]
    import langcodes
    tag = iso3 + (f"-{region}" if region else "")
    try:
        lang = langcodes.Language.get(tag)
        script = lang.maximize().script
    except (ValueError, LookupError):
        return None
    if script == "Kore" and iso3 == "kor":
        script = "Hang"
    return script


# -- normalisation --------------------------------------------------------------------------------
def normalize_code(code: str, script: str | None = None) -> str:
    """Map a language code to an id `<iso639-3>_<Script>[-variant]`.

    Accepts our own ids (`deu_Latn`, `deu_Latn-deu1912`), ISO 639-1 (`de`), 639-2/B (`ger`),
    639-2/T and 639-3 (`deu`), and BCP-47 / locale ids (`pt_BR`, `zh-Hant`, `sr_Latn`, `en_US`).
    The script is, in order: `script=`, the code's own script subtag, CLDR's likely script for
    the language (and region). Raises LanguageError with suggestions for an unknown code.
    """
    if not isinstance(code, str) or not code.strip():
        raise LanguageError(f"empty language code {code!r}")
    raw = code.strip()
    m = _ID_RE.match(raw)
    variant = None
    if m:
        lang_sub, script_sub, variant = m.group(1), m.group(2), m.group(3)
        region = None
    else:
        parts = re.split(r"[-_]", raw)
        lang_sub, script_sub, region = parts[0], None, None
        rest = []
        for p in parts[1:]:
            if re.fullmatch(r"[A-Za-z]{4}", p) and script_sub is None and region is None:
                script_sub = p
            elif re.fullmatch(r"[A-Za-z]{2}|[0-9]{3}", p) and region is None:
                region = p.upper()
            else:
                rest.append(p)
        if any(len(p) < 2 or not p.isalnum() for p in rest):
            raise LanguageError(f"cannot parse language code {code!r}: unexpected part(s) {rest}")
        if rest:
            variant = "-".join(rest)
    if not re.fullmatch(r"[A-Za-z]{2,3}", lang_sub):
        raise LanguageError(f"unknown language code {code!r}", suggestions=suggest(lang_sub, _all_codes(), 3))
    iso3 = _to_iso3(lang_sub)
    if iso3 is None or iso3 in ("und", "mul", "zxx", "mis"):
        raise LanguageError(f"unknown language code {code!r}",
                            suggestions=[c for c in suggest(lang_sub.lower(), _all_codes(), 6)
                                         if c != lang_sub.lower()][:5])
    if script is None and lang_sub.lower() == "sh" and script_sub is None:
        script_sub = "Latn"  # CLDR: sh = sr-Latn
    chosen = script or script_sub or default_script(iso3, region)
    if chosen is None:
        raise LanguageError(f"no script known for language code {code!r}; give one (e.g. {iso3}_Latn)")
    chosen = chosen[:1].upper() + chosen[1:].lower()
    _check_script(chosen, code)
    return make_id(iso3, chosen, variant)


@functools.lru_cache(maxsize=None)
def _known_scripts() -> frozenset[str]:
    from babel import Locale
    return frozenset(Locale("en").scripts)


def _check_script(script: str, code: str) -> None:
    from fontTools import unicodedata as ud
    if ud.script_name(script, default=None) is None and script not in _known_scripts():
        raise LanguageError(f"unknown ISO 15924 script {script!r} in {code!r}",
                            suggestions=suggest(script, sorted(_known_scripts()), 3))


def script_code(name: str | None) -> str | None:
    """A script name as metadata writes it (`Devanagari (Nagari)`, `Latin`, `CJK`, `Deva`)
    -> ISO 15924 code, or None when it names no particular script (`Code for uncoded script`)."""
    if not name:
        return None
    from fontTools import unicodedata as ud
    name = name.strip()
    if re.fullmatch(r"[A-Za-z]{4}", name):
        code = name[:1].upper() + name[1:].lower()
        if ud.script_name(code, default=None) or code in _known_scripts():
            return code
    low = name.lower()
    if "simplified" in low:
        return "Hans"
    if "traditional" in low:
        return "Hant"
    if low in ("cjk", "chinese", "han"):
        return "Hani"
    for cand in (name, name.split("(")[0].strip(), name.split(" ")[0]):
        code = ud.script_code(cand.replace(" ", "_"), default=None)
        if code and code not in _NEUTRAL_SCRIPTS:
            return code
    return None


# -- script detection -------------------------------------------------------------------------------
# Frequent characters whose simplified and traditional forms differ (simplified, traditional):
# enough to tell Hans from Hant in running text; anything undecided stays Hani.
_HAN_PAIRS = ("这這 们們 说說 个個 来來 时時 国國 会會 为為 对對 过過 后後 发發 经經 与與 见見 门門 长長 "
              "问問 开開 东東 车車 书書 马馬 语語 话話 请請 学學 写寫 爱愛 听聽 买買 卖賣 从從 里裏 "
              "这這 进進 还還 没沒 现現 两兩 应應 关關 头頭 万萬 无無 着著 给給 让讓 变變 实實 "
              "问問 间間 认認 义義 体體 动動 华華 业業 乐樂 边邊 区區 电電 钱錢 岁歲 亚亞 罗羅 "
              "稣穌 耶耶 门門 徒徒 众眾 灵靈 圣聖 们們 约約 论論 于於 处處 儿兒 气氣 师師 场場")


@functools.lru_cache(maxsize=None)
def _han_sets() -> tuple[frozenset[str], frozenset[str]]:
    simp, trad = set(), set()
    for pair in _HAN_PAIRS.split():
        if len(pair) == 2 and pair[0] != pair[1]:
            simp.add(pair[0])
            trad.add(pair[1])
    return frozenset(simp - trad), frozenset(trad - simp)


@functools.lru_cache(maxsize=65536)
def char_script(ch: str) -> str:
    """Unicode Script property (ISO 15924 code) of one character, e.g. `Latn`, `Zyyy`."""
    from fontTools import unicodedata as ud
    return ud.script(ch)


def script_counts(texts: Iterable[str | None] | str) -> Counter:
    """Letters per script over the texts (neutral scripts, digits and punctuation left out)."""
    if isinstance(texts, str):
        texts = [texts]
    chars: Counter = Counter()
    ascii_letters = 0
    for t in texts:
        if t:
            # ASCII letters are Latin: count them in C, and count only the rest per character
            ascii_letters += len(t.encode("ascii", "ignore").translate(None, _ASCII_NON_LETTERS))
            if not t.isascii():
                chars.update(_ASCII.sub("", t))
    out: Counter = Counter()
    if ascii_letters:
        out["Latn"] = ascii_letters
    for ch, n in chars.items():
        if not ch.isalpha():
            continue
        s = char_script(ch)
        if s not in _NEUTRAL_SCRIPTS:
            out[s] += n
    return out


def detect_script(texts: Iterable[str | None] | str, min_letters: int = 1) -> str | None:
    """The majority Unicode script of the letters in the texts, as an ISO 15924 code.

    Han is `Hans` or `Hant` when frequent simplified-only or traditional-only characters say so,
    else `Hani`; Japanese (kana with or without kanji) is `Jpan`; Hangul (with or without Hanja)
    is `Hang`, as FLORES-200 writes Korean (`kor_Hang`). None when the texts hold fewer than
    `min_letters` letters.
    """
    if isinstance(texts, str):
        texts = [texts]
    texts = [t for t in texts if t]
    counts = script_counts(texts)
    total = sum(counts.values())
    if total < max(1, min_letters):
        return None
    kana = counts.get("Hira", 0) + counts.get("Kana", 0)
    han = counts.get("Hani", 0)
    hang = counts.get("Hang", 0)
    merged = Counter(counts)
    if kana:
        for s in ("Hira", "Kana", "Hani"):
            merged.pop(s, None)
        merged["Jpan"] = kana + han
    elif hang:
        merged.pop("Hang", None)
        merged.pop("Hani", None)
        merged["Hang"] = hang + han
    best, _ = merged.most_common(1)[0]
    if best == "Hani":
        simp, trad = _han_sets()
        n_s = n_t = 0
        for t in texts:
            for ch in t:
                if ch in simp:
                    n_s += 1
                elif ch in trad:
                    n_t += 1
        if n_s + n_t >= 3:
            if n_s >= 4 * n_t:
                return "Hans"
            if n_t >= 4 * n_s:
                return "Hant"
    return best


# -- names ----------------------------------------------------------------------------------------------
def language_name(lang_id: str, with_script: bool = False) -> str:
    """English name of the language of an id: `deu_Latn` -> `German` (ISO 639-3 reference name).

    With `with_script=True`: `zho_Hant` -> `Chinese (Traditional Han)`. Raises LanguageError
    when the id's language is unknown.
    """
    iso3 = iso639_3(lang_id) if "_" in lang_id else lang_id.lower()
    lg = _iso_lang(iso3)
    if lg is None:
        t = _to_iso3(iso3)
        lg = _iso_lang(t) if t else None
    if lg is None and _retired_name(iso3):
        name = _retired_name(iso3)
    elif lg is None:
        raise LanguageError(f"unknown language id {lang_id!r}", suggestions=suggest(iso3, _all_codes(), 3))
    else:
        name = lg.name
    sc = script_of(lang_id)
    if with_script and sc:
        from babel import Locale
        name += f" ({Locale('en').scripts.get(sc, sc)})"
    return name


def _name_to_iso3(name: str) -> str | None:
    """An English (or any CLDR) language name -> ISO 639-3, or None."""
    q = name.strip()
    lg = _iso_lang(q) if len(q) > 3 else None
    if lg is None and len(q) > 3:
        lg = _iso_lang(q[:1].upper() + q[1:].lower())
    if lg is not None and lg.pt3:
        return lg.pt3
    hit = _all_names().get(q.lower())
    if hit:
        return hit[1]
    import langcodes
    try:
        found = langcodes.find(q)
    except LookupError:
        return None
    return _to_iso3(found.language) if found.language else None


def _macro_family(iso3: str) -> set[str]:
    """The code, its macrolanguage and the macrolanguage's individual languages (ara <-> arb)."""
    out = {iso3}
    lg = _iso_lang(iso3)
    if lg is None:
        return out
    macro = lg.macro()
    if macro is not None:
        out.add(macro.pt3)
        lg = macro
    out.update(ind.pt3 for ind in lg.individuals() if ind.pt3)
    return out


@functools.lru_cache(maxsize=None)
def _principal_members(iso3: str) -> frozenset[str]:
    """The code itself plus the individual languages CLDR aliases to its macrolanguage
    (`cmn` -> `zh`, `arb` -> `ar`, `ekk` -> `et`): the member meant when the macrolanguage is named."""
    from babel.core import get_global
    lg = _iso_lang(iso3)
    if lg is None:
        return frozenset({iso3})
    macro = lg.macro() or lg
    names = {macro.pt1, macro.pt3} - {""}
    out = {iso3}
    for alias, target in get_global("language_aliases").items():
        if target in names:
            t = _to_iso3(alias) if len(alias) in (2, 3) else None
            if t:
                out.add(t)
    return frozenset(out)


def resolve(name_or_id: str, candidates: Iterable[str] | None = None) -> str:
    """A language name or code -> an id, choosing among `candidates` when given.

    `"German"` -> `deu_Latn` (default script from CLDR likely subtags); with candidates, the
    candidate of the same language (preferring the same script; then a macrolanguage member,
    e.g. `ar` -> `arb_Arab`). A language with several candidate variants is ambiguous.
    Raises LanguageError with suggestions when nothing matches.
    """
    q = name_or_id.strip()
    cands = list(candidates) if candidates is not None else None
    if cands is not None and q in cands:
        return q
    iso3 = None
    wanted_id = None
    try:
        wanted_id = normalize_code(q)
        iso3 = iso639_3(wanted_id)
    except LanguageError:
        iso3 = _name_to_iso3(q)
        if iso3 is not None:
            sc = default_script(iso3)
            wanted_id = make_id(iso3, sc) if sc else None
    if cands is None:
        if wanted_id is None:
            raise LanguageError(f"unknown language {name_or_id!r}",
                                suggestions=["{} ({})".format(*_all_names()[h]) for h in
                                             suggest(q.lower(), _all_names(), 5)])
        return wanted_id
    if iso3 is not None:
        for family in ({iso3}, _macro_family(iso3)):
            hits = [c for c in cands if iso639_3(c) in family]
            if wanted_id is not None and len(hits) > 1:
                exact = [c for c in hits if c == wanted_id]
                if exact:
                    return exact[0]
                same_script = [c for c in hits if script_of(c) == script_of(wanted_id)]
                if same_script:
                    hits = same_script
            if len(hits) > 1 and family is not None and len(family) > 1:
                principal = [c for c in hits if iso639_3(c) in _principal_members(iso3)]
                if len({base_language(c) for c in principal}) == 1 and len(principal) == 1:
                    return principal[0]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise LanguageError(f"{name_or_id!r} is ambiguous in this corpus", suggestions=sorted(hits))
    by_name = {}
    for c in cands:
        try:
            by_name.setdefault(language_name(c).lower(), []).append(c)
        except LanguageError:
            pass
    if q.lower() in by_name and len(by_name[q.lower()]) == 1:
        return by_name[q.lower()][0]
    sugg = suggest(q, cands, 5) + [by_name[n][0] for n in suggest(q.lower(), list(by_name), 3)]
    raise LanguageError(f"no language matching {name_or_id!r} among {len(cands)} candidates",
                        suggestions=list(dict.fromkeys(sugg)))


# A macrolanguage code (what UD's `ar`, `fa`, `lv`, `no`, `et`... normalise to) -> the member that is
# its standard written variety, the one UD treebanks and FLORES-200 use.
STANDARD_MEMBER = {"ara": "arb", "fas": "pes", "lav": "lvs", "nor": "nob", "est": "ekk", "sqi": "als",
                   "zho": "cmn", "msa": "zsm", "uzb": "uzn", "swa": "swh", "aze": "azj", "mon": "khk",
                   "kur": "kmr", "pus": "pbt", "orm": "gaz", "grn": "gug", "yid": "ydd", "mlg": "plt",
                   "lah": "pnb", "kon": "kng", "srd": "sro", "que": "quy", "ori": "ory", "nep": "npi",
                   "kau": "knc", "aym": "ayr"}

# Treebank codes whose script differs from CLDR's likely script for the language:
# UD_Classical_Chinese-Kyoto (`lzh`) is written in traditional characters (CLDR says Hans).
TREEBANK_SCRIPTS = {"lzh": "Hant"}


def treebank_id(code: str) -> str:
    """Our id for a UD treebank / transfer-table code (`zh` -> `zho_Hans`, `lzh` -> `lzh_Hant`,
    `yue` -> `yue_Hant`): each code its own language, never merged into its macrolanguage."""
    return normalize_code(code, script=TREEBANK_SCRIPTS.get(code.strip().lower()))


def match_ids(ids: Mapping[str, str | None], languages: Sequence[str], where: str = "the languages"
              ) -> tuple[dict[str, str], dict[str, str]]:
    """(code -> the language of `languages` it denotes, code -> why it has none), for codes
    already mapped to our ids (`ids`, e.g. `TransferTable.ids`).

    A code matches its own id; else the same language (ISO 639-3) in another script, the
    code's script preferred (Hans/Hant count as one Han script only when that decides); else,
    for a macrolanguage code, its standard member (`ar` -> `arb_Arab`). A member never maps to
    its macrolanguage or to a sibling (`lzh`, `yue` are not `zho`). Two codes that would share
    one language: the exact id keeps it, the other is left out (a target is never its
    own source). The standard member of a macrolanguage also finds the macrolanguage's code
    (`cmn` -> `zho_Hans`, `arb` -> `ara_Arab`)."""
    by_iso: dict[str, list[str]] = {}
    for c in languages:
        by_iso.setdefault(iso639_3(c), []).append(c)
    macro_of = {member: macro for macro, member in STANDARD_MEMBER.items()}
    present = set(languages)
    han = lambda sc: "Han" if sc in ("Hans", "Hant", "Hani") else sc  # noqa: E731
    out: dict[str, str] = {}
    why: dict[str, str] = {}
    for code, lid in ids.items():
        if lid is None:
            continue
        if lid in present:
            out[code] = lid
            continue
        iso = iso639_3(lid)
        hits = by_iso.get(iso) or by_iso.get(STANDARD_MEMBER.get(iso, "")) or by_iso.get(macro_of.get(iso, ""), [])
        if len(hits) > 1:
            for same in ([c for c in hits if script_of(c) == script_of(lid)],
                         [c for c in hits if han(script_of(c)) == han(script_of(lid))]):
                if len(same) == 1:
                    hits = same
                    break
        if len(hits) == 1:
            out[code] = hits[0]
        elif hits:
            why[code] = f"{lid} is ambiguous in {where}: {', '.join(hits)}"
    holders: dict[str, list[str]] = {}
    for code, lang in out.items():
        holders.setdefault(lang, []).append(code)
    for lang, codes in holders.items():
        if len(codes) > 1:
            keep = [c for c in codes if ids[c] == lang] or sorted(codes)[:1]
            for c in codes:
                if c != keep[0]:
                    del out[c]
                    why[c] = f"maps to {lang}, as does {keep[0]!r}, which keeps it"
    return out, why
