"""CLDR display-name corpus from babel: known names, alignment of items, options and bad input."""
from __future__ import annotations

import pytest

from babelmap.engine.corpora import read_corpus
from babelmap.engine.errors import CorpusError


@pytest.fixture(scope="module")
def cldr():
    return read_corpus(None, "cldr")


def _row(c, lang):
    return dict(zip(c.sentence_ids, c.text(lang)))


def test_cldr_default_is_non_trivial(cldr) -> None:
    c = cldr
    assert 35 <= len(c.languages) <= 45 and 300 <= len(c.sentence_ids) <= 500
    scripts = {c.meta[l]["script"] for l in c.languages}
    assert {"Latn", "Cyrl", "Arab", "Hebr", "Deva", "Grek", "Ethi", "Hans", "Hant", "Jpan", "Hang", "Thai",
            "Geor", "Armn", "Taml"} <= scripts
    assert c.mask.mean() > 0.95                 # nearly every locale names nearly every item
    assert {"territory:DE", "language:de", "script:Latn"} <= set(c.sentence_ids)
    assert sum(s.startswith("territory:") for s in c.sentence_ids) > 240


@pytest.mark.parametrize("lang,item,name", [
    ("deu_Latn", "territory:DE", "Deutschland"), ("fra_Latn", "territory:DE", "Allemagne"),
    ("rus_Cyrl", "territory:DE", "Германия"), ("jpn_Jpan", "territory:DE", "ドイツ"),
    ("zho_Hans", "territory:DE", "德国"), ("zho_Hant", "territory:DE", "德國"),
    ("eng_Latn", "territory:JP", "Japan"), ("deu_Latn", "language:fr", "Französisch"),
    ("spa_Latn", "language:de", "alemán"), ("eng_Latn", "script:Cyrl", "Cyrillic"),
    ("srp_Cyrl", "territory:RS", "Србија"), ("kor_Hang", "territory:KR", "대한민국"),
])
def test_cldr_known_names(cldr, lang: str, item: str, name: str) -> None:
    assert _row(cldr, lang)[item] == name


def test_cldr_options_and_missing_items() -> None:
    c = read_corpus(None, "cldr", locales=["sr", "sr_Latn", "de"], items=["territory:DE", "language:xal",
                                                                           "script:Latn"])
    assert c.languages == ["deu_Latn", "srp_Cyrl", "srp_Latn"]
    assert c.text("srp_Latn")[0] == "Nemačka" and c.text("srp_Cyrl")[0] == "Немачка"
    full = read_corpus(None, "cldr", locales=["en"], items=["territory:*"])
    assert len(full.sentence_ids) > 250 and all(s.startswith("territory:") for s in full.sentence_ids)
    # an item a locale has no name for is missing, not shifted
    odd = read_corpus(None, "cldr", locales=["de", "en"], items=["territory:DE", "territory:QQ", "territory:FR"])
    assert odd.text("deu_Latn") == ["Deutschland", None, "Frankreich"]


def test_cldr_bad_input() -> None:
    with pytest.raises(CorpusError, match="unknown CLDR locale"):
        read_corpus(None, "cldr", locales=["de", "xx_YY"])
    c = read_corpus(None, "cldr", locales=["de", "xx_YY"], items=["territory:DE"], skip_bad=True)
    assert c.languages == ["deu_Latn"] and c.skipped[0]["language"] == "xx_YY"
    with pytest.raises(CorpusError, match="one language id"):
        read_corpus(None, "cldr", locales=["de", "de_AT"], items=["territory:DE"])
    with pytest.raises(CorpusError, match="kind:code"):
        read_corpus(None, "cldr", items=["DE"])
    with pytest.raises(CorpusError, match="empty corpus"):
        read_corpus(None, "cldr", items=[])
