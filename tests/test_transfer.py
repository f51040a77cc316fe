"""Source selection against a small hand-checked table, and on the real xpos grid."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import shared

from babelmap.analysis.transfer import ndcg, paired_bootstrap, rank_sources, read_transfer_table, select_sources
from babelmap.kernels.matrix import LanguageMatrix

# source -> target accuracy (hand-made); "zz" is not a language code
SCORES = {"en": {"en": 95, "de": 80, "nl": 85, "uk": 60, "zz": 50},
          "de": {"en": 82, "de": 96, "nl": 88, "uk": 62, "zz": 51},
          "ru": {"en": 70, "de": 72, "nl": 65, "uk": 90, "zz": 52}}


def _write_table(path):
    lines = [",task_type,task_name,digest,lang_train,lang_pred,model_id,model_type,score"]
    n = 0
    for s, row in SCORES.items():
        for t, v in row.items():
            lines.append(f"{n},token-classification,udpos28,x,{s},{t},xlm-roberta-base,ft,{v}")
            n += 1
    path.write_text("\n".join(lines) + "\n")
    return path


def _sim():
    langs = ["deu_Latn", "eng_Latn", "nld_Latn", "rus_Cyrl", "ukr_Cyrl"]
    pairs = {("nld_Latn", "deu_Latn"): .9, ("nld_Latn", "eng_Latn"): .7, ("nld_Latn", "rus_Cyrl"): .2,
             ("ukr_Cyrl", "rus_Cyrl"): .95, ("ukr_Cyrl", "deu_Latn"): .3, ("ukr_Cyrl", "eng_Latn"): .25,
             ("eng_Latn", "deu_Latn"): .8, ("eng_Latn", "rus_Cyrl"): .3, ("deu_Latn", "rus_Cyrl"): .35}
    v = np.eye(5)
    for (a, b), x in pairs.items():
        v[langs.index(a), langs.index(b)] = v[langs.index(b), langs.index(a)] = x
    return LanguageMatrix(langs, v, "toy")


def test_hand_checked_selection(tmp_path):
    table = read_transfer_table(_write_table(tmp_path / "t.csv"))
    assert table.sources == ["de", "en", "ru"] and "zz" in table.unmapped
    assert table.ids["uk"] == "ukr_Cyrl" and table.score("ru", "uk") == 90
    sel = select_sources(table, {"sim": _sim(), "english": "english"}, k=2)
    assert sel.targets == ["de", "en", "nl", "uk"] and "zz" in sel.excluded
    # by hand: sim picks de->en 82, en->de 80, de->nl 88, ru->uk 90 (= oracle every time)
    assert sel.chosen["sim"] == ["en", "de", "de", "ru"]
    assert sel.oracle == ["en", "de", "de", "ru"]
    # english: target en cannot use itself -> first of the pool order (de); else en
    assert sel.chosen["english"] == ["en", "de", "en", "en"]
    summ = sel.summary(ks=(1, 3)).set_index("method")
    assert summ.loc["sim", "chosen"] == pytest.approx((82 + 80 + 88 + 90) / 4)
    assert summ.loc["sim", "gap"] == 0 and summ.loc["sim", "top@1"] == 1.0
    assert summ.loc["english", "chosen"] == pytest.approx((80 + 82 + 85 + 60) / 4)
    assert summ.loc["english", "gap"] == pytest.approx((0 + 0 + 3 + 30) / 4)
    assert summ.loc["english", "top@1"] == 0.5 and summ.loc["english", "top@3"] == 1.0
    # NDCG for english at target uk: ranking en(60), de(62), ru(90) -> relevance 0, 2/30, 1
    rel = [0, 2 / 30, 1]
    dcg = rel[0] / np.log2(2) + rel[1] / np.log2(3) + rel[2] / np.log2(4)
    idcg = 1 / np.log2(2) + (2 / 30) / np.log2(3)
    assert sel.ndcg["english"][3] == pytest.approx(dcg / idcg)
    assert sel.ndcg_k["english"][3] == pytest.approx((rel[0] + rel[1] / np.log2(3)) / idcg)
    assert sel.ndcg["sim"].tolist() == pytest.approx([1.0, 1.0, 1.0, 1.0])
    # paired bootstrap: differences [0, 0, 3, 30]; a replicate is <= 0 only if it draws
    # the two zeros only: P = 0.5**4, so p = 2 * 0.0625
    cmp = sel.compare("sim", "english", n_boot=20000, seed=1)
    assert cmp["diff"] == pytest.approx(8.25) and cmp["low"] >= 0
    assert cmp["p"] == pytest.approx(0.125, abs=0.01)
    assert rank_sources("nl", ["de", "en", "ru"], _sim(),
                        {"de": "deu_Latn", "en": "eng_Latn", "ru": "rus_Cyrl", "nl": "nld_Latn"}) == ["de", "en", "ru"]
    per = sel.per_target()
    assert len(per) == 8 and set(per["method"]) == {"sim", "english"}


def test_ndcg_and_bootstrap_basics():
    assert ndcg(np.array([3.0, 2.0, 1.0])) == 1.0
    assert ndcg(np.array([1.0, 2.0, 3.0])) < ndcg(np.array([2.0, 1.0, 3.0])) < 1.0
    out = paired_bootstrap([1, 2, 3], [1, 2, 3])
    assert out["diff"] == 0 and out["p"] == 1.0
    with pytest.raises(ValueError):
        paired_bootstrap([1, 2], [1])


def test_real_xpos_grid_english_baseline():
    import pandas as pd
    path = shared("xpos", "udpos-ft-10000.csv")
    table = read_transfer_table(path)
    assert len(table.sources) == 65 and len(table.targets) == 105
    assert not np.isnan(table.scores).any()
    sel = select_sources(table, {"english": "english"}, targets=[t for t in table.targets if t != "en"])
    df = pd.read_csv(path)
    en = df[(df.lang_train == "en") & (df.lang_pred != "en")]
    mapped = [t for t in en.lang_pred if t not in table.unmapped]
    assert sel.targets == sorted(mapped)
    expect = en.set_index("lang_pred").loc[sel.targets, "score"].mean()
    assert sel.summary()["chosen"][0] == pytest.approx(expect)
    # the oracle per target is the best of the 64 other sources
    j = sel.targets.index("de")
    others = df[(df.lang_pred == "de") & (df.lang_train != "de")]
    assert sel.oracle_score[j] == pytest.approx(others.score.max())


def test_xpos_chinese_varieties_are_kept_apart(caplog):
    """xpos `zh`, `lzh` (Classical Chinese) and `yue` (Cantonese) are three languages: each its
    own id, only `zh` matches FLORES' zho_Hans, and no target is ever given itself as source."""
    import csv
    table = read_transfer_table(shared("xpos", "udpos-ft-10000.csv"))
    assert (table.ids["zh"], table.ids["lzh"], table.ids["yue"]) == ("zho_Hans", "lzh_Hant", "yue_Hant")
    assert len(set(table.ids.values())) == len(table.ids)          # every code its own language
    langs = ["zho_Hans", "zho_Hant", "yue_Hant", "eng_Latn", "deu_Latn", "fra_Latn", "arb_Arab", "pes_Arab",
             "rus_Cyrl", "jpn_Jpan"]
    rng = np.random.default_rng(0)
    v = rng.random((len(langs), len(langs)))
    v = (v + v.T) / 2
    np.fill_diagonal(v, 1.0)
    v[0, 1] = v[1, 0] = v[0, 2] = v[2, 0] = 0.99                   # zho_Hans' nearest: the other Han rows
    model = LanguageMatrix(langs, v, "model")
    sel = select_sources(table, {"model": model, "english": "english"})
    assert "lzh" not in sel.targets and "not covered by model" in sel.excluded["lzh"]
    assert {"zh", "yue", "ar", "fa"} <= set(sel.targets)
    per = sel.per_target()
    assert (per.chosen != per.target).all()
    # zh's candidates hold no other code of zho: its model choice is its real nearest source row
    zh = per[(per.target == "zh") & (per.method == "model")].iloc[0]
    ids_in_pool = {c: table.ids[c] for c in sel.pool}
    pool_sims = {c: model.get("zho_Hans", {"ar": "arb_Arab", "fa": "pes_Arab"}.get(c, ids_in_pool[c]))
                 for c in sel.pool if c != "zh"}
    assert zh.chosen == max(pool_sims, key=pool_sims.get)
    # a direct check of the scores: chosen score is the table's value for (chosen, zh)
    with open(shared("xpos", "udpos-ft-10000.csv"), newline="") as fh:
        raw = {(r["lang_train"], r["lang_pred"]): float(r["score"]) for r in csv.DictReader(fh)}
    assert zh.score == pytest.approx(raw[(zh.chosen, "zh")])


def test_unmapped_codes_are_reported(tmp_path, caplog):
    path = tmp_path / "t.csv"
    rows = ["lang_train,lang_pred,score"] + [f"{s},{t},{50 + i + j}" for i, s in enumerate(["en", "de", "xyzzy"])
                                             for j, t in enumerate(["en", "de", "fr", "xyzzy"])]
    path.write_text("\n".join(rows) + "\n")
    with caplog.at_level("WARNING"):
        table = read_transfer_table(path)
    assert list(table.unmapped) == ["xyzzy"] and table.ids["xyzzy"] is None
    assert "xyzzy" in caplog.text
    m = LanguageMatrix(["eng_Latn", "deu_Latn", "fra_Latn"], np.array([[1, .8, .5], [.8, 1, .6], [.5, .6, 1.]]), "m")
    sel = select_sources(table, {"m": m})
    assert sel.excluded["xyzzy"].startswith("cannot be mapped to a language id")
    assert sel.targets == ["de", "en", "fr"] and sel.pool == ["de", "en"]


def test_selection_save_load_round_trip(tmp_path):
    from babelmap.analysis.transfer import Selection
    table = read_transfer_table(_write_table(tmp_path / "t.csv"))
    sel = select_sources(table, {"sim": _sim(), "english": "english"}, k=2)
    back = Selection.load(sel.save(tmp_path / "selection.json"))
    assert back.chosen == sel.chosen and back.excluded == sel.excluded and back.k == 2
    for key in ("chosen_score", "ranks", "ndcg", "ndcg_k"):
        for m in sel.methods:
            assert np.array_equal(getattr(back, key)[m], getattr(sel, key)[m])
    assert back.summary().equals(sel.summary()) and back.compare("sim", "english") == sel.compare("sim", "english")
