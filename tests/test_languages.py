"""Language ids: code normalisation, script detection, names, resolution, against known facts."""
from __future__ import annotations

import pytest

from babelmap.engine.errors import LanguageError
from babelmap.engine.languages import (base_language, detect_script, iso639_3, language_name,
                                       normalize_code, resolve, script_code, variant_of)


@pytest.mark.parametrize("code,expected", [
    ("de", "deu_Latn"),          # ISO 639-1
    ("ger", "deu_Latn"),         # ISO 639-2/B
    ("fre", "fra_Latn"),
    ("chi", "zho_Hans"),         # 639-2/B, CLDR likely script Hans
    ("deu", "deu_Latn"),         # 639-3
    ("pt_BR", "por_Latn"),       # locale ids
    ("en_US", "eng_Latn"),
    ("zh-Hant", "zho_Hant"),     # BCP-47 with script
    ("zh_TW", "zho_Hant"),       # region decides the script (likely subtags)
    ("sr_Latn", "srp_Latn"),
    ("sr", "srp_Cyrl"),
    ("tl", "tgl_Latn"),          # 639-1 tl is Tagalog (not CLDR's fil replacement)
    ("iw", "heb_Hebr"),          # deprecated 639-1 codes
    ("in", "ind_Latn"),
    ("ko", "kor_Hang"),          # as FLORES-200 writes Korean
    ("ja", "jpn_Jpan"),
    ("ar", "ara_Arab"),          # macrolanguage stays the macrolanguage
    ("ajp_Arab", "ajp_Arab"),    # retired 639-3 code still used by FLORES-200
    ("deu_Latn-deu1912", "deu_Latn-deu1912"),
    ("ENG_latn", "eng_Latn"),
])
def test_normalize_code(code: str, expected: str) -> None:
    assert normalize_code(code) == expected


def test_normalize_code_explicit_script_wins() -> None:
    assert normalize_code("de", script="Latf") == "deu_Latf"
    assert normalize_code("san", script="deva") == "san_Deva"


@pytest.mark.parametrize("code", ["xx", "und", "qqq", "", "eng_Latn_x", "e1"])
def test_unknown_code_raises_with_suggestions(code: str) -> None:
    with pytest.raises(LanguageError):
        normalize_code(code)


def test_unknown_code_suggests_close_codes() -> None:
    with pytest.raises(LanguageError) as err:
        normalize_code("deux")
    assert err.value.suggestions, "an unknown code must come with suggestions"


def test_unknown_script_rejected() -> None:
    with pytest.raises(LanguageError):
        normalize_code("deu_Xyzw")


def test_id_parts() -> None:
    assert base_language("eng_Latn-engwebp") == "eng_Latn"
    assert iso639_3("eng_Latn-engwebp") == "eng"
    assert variant_of("eng_Latn-engwebp") == "engwebp"
    assert variant_of("eng_Latn") is None


@pytest.mark.parametrize("text,script", [
    ("Все люди рождаются свободными и равными.", "Cyrl"),
    ("يولد جميع الناس أحرارًا متساوين في الكرامة والحقوق.", "Arab"),
    ("सभी मनुष्यों को गौरव और अधिकारों के मामले में जन्मजात स्वतन्त्रता प्राप्त है।", "Deva"),
    ("Όλοι οι άνθρωποι γεννιούνται ελεύθεροι και ίσοι.", "Grek"),
    ("የሰው ልጅ ሁሉ ሲወለድ ነጻና በክብርና በመብትም እኩልነት ያለው ነው።", "Ethi"),
    ("כל בני אדם נולדו בני חורין ושווים בערכם ובזכויותיהם.", "Hebr"),
    ("모든 인간은 태어날 때부터 자유로우며 그 존엄과 권리에 있어 동등하다.", "Hang"),
    ("すべての人間は、生まれながらにして自由であり、かつ、尊厳と権利とについて平等である。", "Jpan"),
    ("人人生而自由，在尊严和权利上一律平等。他们赋有理性和良心，并应以兄弟关系的精神相对待。", "Hans"),
    ("人人生而自由，在尊嚴和權利上一律平等。他們賦有理性和良心，並應以兄弟關係的精神相對待。", "Hant"),
    ("人人生而自由", "Hani"),   # too little to tell simplified from traditional
    ("ყველა ადამიანი იბადება თავისუფალი", "Geor"),
    ("All human beings are born free — 123, «!»", "Latn"),
])
def test_detect_script(text: str, script: str) -> None:
    assert detect_script([text]) == script


def test_detect_script_majority_and_empty() -> None:
    # a Latin name inside Cyrillic text does not change the majority
    assert detect_script(["Он сказал: Jesus", "и пошёл"]) == "Cyrl"
    assert detect_script(["123 ...", None, ""]) is None


def test_detect_script_on_every_flores_file(flores_dir) -> None:
    """Every FLORES-200 dev file's script suffix equals the detected script (204 files)."""
    files = sorted((flores_dir / "dev").glob("*.dev"))
    assert len(files) == 204
    wrong = {}
    for f in files:
        lines = f.read_text(encoding="utf-8").split("\n")[:200]
        got = detect_script(lines)
        if got != f.stem.split("_")[1]:
            wrong[f.stem] = got
        assert normalize_code(f.stem) == f.stem
    assert wrong == {}


@pytest.mark.parametrize("name,script", [("Devanagari (Nagari)", "Deva"), ("Latin", "Latn"),
                                         ("Han (Simplified variant)", "Hans"), ("CJK", "Hani"),
                                         ("Ethiopic (Geʻez)", "Ethi"), ("Code for uncoded script", None),
                                         ("Oriya", "Orya"), ("Tibetan", "Tibt"), ("Cyrl", "Cyrl")])
def test_script_code_from_metadata_names(name: str, script: str | None) -> None:
    assert script_code(name) == script


def test_language_name() -> None:
    assert language_name("deu_Latn") == "German"
    assert language_name("eng_Latn-engwebp") == "English"
    assert language_name("arb_Arab") == "Standard Arabic"
    assert language_name("zho_Hant", with_script=True) == "Chinese (Traditional)"
    assert language_name("ajp_Arab") == "South Levantine Arabic"
    with pytest.raises(LanguageError):
        language_name("qqq_Latn")


def test_resolve_names_and_codes() -> None:
    assert resolve("German") == "deu_Latn"
    assert resolve("german") == "deu_Latn"
    assert resolve("Deutsch") == "deu_Latn"          # autonym via language-data
    assert resolve("Russian") == "rus_Cyrl"
    assert resolve("Korean") == "kor_Hang"
    cands = ["deu_Latn", "eng_Latn", "arb_Arab", "zho_Hans", "zho_Hant", "cmn_Hani"]
    assert resolve("German", cands) == "deu_Latn"
    assert resolve("ger", cands) == "deu_Latn"
    assert resolve("ar", cands) == "arb_Arab"        # macrolanguage -> its only member present
    assert resolve("zh-Hant", cands) == "zho_Hant"
    assert resolve("Chinese", cands) == "zho_Hans"   # likely script Hans
    assert resolve("eng_Latn", cands) == "eng_Latn"


def test_resolve_ambiguous_and_unknown() -> None:
    cands = ["eng_Latn-engwebp", "eng_Latn-engkjv", "deu_Latn"]
    with pytest.raises(LanguageError) as err:
        resolve("English", cands)
    assert sorted(err.value.suggestions) == ["eng_Latn-engkjv", "eng_Latn-engwebp"]
    with pytest.raises(LanguageError) as err:
        resolve("Germn", cands)
    assert "deu_Latn" in err.value.suggestions
    with pytest.raises(LanguageError) as err:
        resolve("Germn")
    assert any("deu" in s for s in err.value.suggestions)


def test_resolve_macrolanguage_to_the_principal_member() -> None:
    """Against mPLM-Sim's FLORES codes (cmn_Hani, ekk_Latn, ...): a macrolanguage name picks the
    member CLDR aliases to it (cmn -> zh, pes -> fa), not a sister (yue, prs)."""
    cands = ["cmn_Hani", "yue_Hani", "pes_Arab", "prs_Arab", "ekk_Latn", "zsm_Latn", "swh_Latn", "arb_Arab",
             "arb_Latn", "ary_Arab", "deu_Latn"]
    assert resolve("Chinese", cands) == "cmn_Hani"
    assert resolve("zh", cands) == "cmn_Hani"
    assert resolve("Cantonese", cands) == "yue_Hani"
    assert resolve("Persian", cands) == "pes_Arab"
    assert resolve("Dari", cands) == "prs_Arab"
    assert resolve("Estonian", cands) == "ekk_Latn"
    assert resolve("Malay", cands) == "zsm_Latn"
    assert resolve("Swahili", cands) == "swh_Latn"
    assert resolve("Arabic", cands) == "arb_Arab"


def test_resolve_every_flores_name(flores_dir) -> None:
    """Each FLORES-200 language's English name resolves to its id, except where the same
    language has two scripts (then the CLDR likely script wins: arb_Arab, not arb_Latn)."""
    ids = sorted(f.stem for f in (flores_dir / "dev").glob("*.dev"))
    wrong = {}
    for i in ids:
        got = resolve(language_name(i), ids)
        if got != i:
            wrong[i] = got
    assert wrong == {"ace_Arab": "ace_Latn", "arb_Latn": "arb_Arab", "bjn_Arab": "bjn_Latn",
                     "kas_Deva": "kas_Arab", "knc_Arab": "knc_Latn", "min_Arab": "min_Latn",
                     "taq_Tfng": "taq_Latn", "zho_Hant": "zho_Hans"}


def test_match_ids_keeps_varieties_apart():
    """Codes' ids matched to a run's languages: script variants and macrolanguage <-> standard
    member match; a member never lands on its macrolanguage or a sibling; one language, one code."""
    from babelmap.engine.languages import match_ids, treebank_id
    ids = {c: treebank_id(c) for c in ("zh", "lzh", "yue", "ar", "fa", "no", "sr", "en", "cmn")}
    langs = ["zho_Hans", "zho_Hant", "yue_Hant", "arb_Arab", "pes_Arab", "nob_Latn", "srp_Cyrl", "eng_Latn"]
    got, why = match_ids(ids, langs)
    assert got == {"zh": "zho_Hans", "yue": "yue_Hant", "ar": "arb_Arab", "fa": "pes_Arab", "no": "nob_Latn",
                   "sr": "srp_Cyrl", "en": "eng_Latn"}
    assert "lzh" not in got and "lzh" not in why                  # simply not there
    assert why["cmn"] == "maps to zho_Hans, as does 'zh', which keeps it"
    got2, why2 = match_ids({"sr": "srp_Latn"}, ["srp_Cyrl", "srp_Latn", "hrv_Latn"])
    assert got2 == {"sr": "srp_Latn"} and not why2
    got3, why3 = match_ids({"de": "deu_Latn"}, ["deu_Latn-a", "deu_Latn-b"])
    assert got3 == {} and "ambiguous" in why3["de"]
