"""`babelmap run` end to end on a tiny random model and a tiny plain corpus: every stage's
output, numbers checked against independent computations, and the second run's reuse."""
from __future__ import annotations

import json

import numpy as np
import pytest

SENTS = {
    "eng_Latn": ["The house is big.", "I drink water every morning.", "The dog sleeps under the table.",
                 "My sister reads a book.", "We go to the market tomorrow.", "The sun is shining today."],
    "deu_Latn": ["Das Haus ist groß.", "Ich trinke jeden Morgen Wasser.", "Der Hund schläft unter dem Tisch.",
                 "Meine Schwester liest ein Buch.", "Wir gehen morgen zum Markt.", "Die Sonne scheint heute."],
    "nld_Latn": ["Het huis is groot.", "Ik drink elke ochtend water.", "De hond slaapt onder de tafel.",
                 "Mijn zus leest een boek.", "We gaan morgen naar de markt.", "De zon schijnt vandaag."],
    "fra_Latn": ["La maison est grande.", "Je bois de l'eau chaque matin.", "Le chien dort sous la table.",
                 "Ma sœur lit un livre.", "Nous allons au marché demain.", "Le soleil brille aujourd'hui."],
    "spa_Latn": ["La casa es grande.", "Bebo agua cada mañana.", "El perro duerme debajo de la mesa.",
                 "Mi hermana lee un libro.", "Mañana vamos al mercado.", "El sol brilla hoy."],
    "ita_Latn": ["La casa è grande.", "Bevo acqua ogni mattina.", "Il cane dorme sotto il tavolo.",
                 "Mia sorella legge un libro.", "Domani andiamo al mercato.", "Il sole splende oggi."],
    "rus_Cyrl": ["Дом большой.", "Я пью воду каждое утро.", "Собака спит под столом.",
                 "Моя сестра читает книгу.", "Завтра мы идём на рынок.", "Сегодня светит солнце."],
    "pol_Latn": ["Dom jest duży.", "Piję wodę każdego ranka.", "Pies śpi pod stołem.",
                 "Moja siostra czyta książkę.", "Jutro idziemy na targ.", "Dziś świeci słońce."],
    "fin_Latn": ["Talo on iso.", "Juon vettä joka aamu.", "Koira nukkuu pöydän alla.",
                 "Siskoni lukee kirjaa.", "Menemme huomenna torille.", "Aurinko paistaa tänään."],
}


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("plain")
    for lang, lines in SENTS.items():
        (d / f"{lang}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return d


@pytest.mark.slow
def test_run_end_to_end(tiny_bert, corpus_dir, tmp_path, capsys, monkeypatch):
    pytest.importorskip("urielplus", reason="URIEL measures need the urielplus package")
    from conftest import SHARED_DATA
    from scipy.stats import pearsonr

    import babelmap
    from babelmap.cli import main
    from babelmap.kernels.matrix import LanguageMatrix
    from babelmap.kernels.result import SimilarityResult

    out = tmp_path / "res"
    base = ["run", "--corpus", str(corpus_dir), "--format", "plain", "--model", str(tiny_bert),
            "--measures", "genetic", "lex", "--device", "cpu", "--out", str(out)]
    glotto = SHARED_DATA / "glottolog"
    if glotto.exists():
        base += ["--glottolog", str(glotto)]
    argv = base + ["--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "default layer" in printed and str(out / "report.md") in printed

    for f in ["store.h5", "similarity.h5", "measures/genetic.tsv", "measures/lex.tsv", "correlation/summary.tsv",
              "correlation/per_language.tsv", "correlation/dropped.tsv", "clusters.tsv", "report.md",
              "figures/correlation_by_layer.png", "figures/correlation_by_layer.pdf", "run-state.json"]:
        assert (out / f).exists(), f

    # similarity: the kernel's value equals a direct mean cosine over the store's embeddings
    import h5py
    res = SimilarityResult.load(out / "similarity.h5")
    assert res.layers == [0, 1, 2] and len(res.languages) == 9
    with h5py.File(out / "store.h5", "r") as f:
        langs = [x.decode() for x in f["languages"][()]]
        emb = f["embeddings"][()].astype(np.float64)
    a, b = langs.index("eng_Latn"), langs.index("deu_Latn")
    for k in (0, 2):
        x = emb[a, k] / np.linalg.norm(emb[a, k], axis=1, keepdims=True)
        y = emb[b, k] / np.linalg.norm(emb[b, k], axis=1, keepdims=True)
        assert res.get("eng_Latn", "deu_Latn", k) == pytest.approx(float((x * y).sum(1).mean()), abs=1e-5)

    # correlation: the summary equals an independent SciPy computation on the written files
    import pandas as pd
    summ = pd.read_csv(out / "correlation" / "summary.tsv", sep="\t").set_index("measure")
    lex = LanguageMatrix.from_tsv(out / "measures" / "lex.tsv")
    best = int(summ.loc["lex", "best_layer_pearson"])
    rs = []
    for i, l in enumerate(res.languages):
        others = [j for j in range(9) if j != i]
        rs.append(pearsonr(res.sim[res.layers.index(best), i, others].astype(float),
                           [lex.get(l, res.languages[j]) for j in others])[0])
    assert summ.loc["lex", "best_pearson"] == pytest.approx(np.mean(rs), abs=1e-9)
    # Finnish is the only Uralic language here: its genetic vector is constant -> reported dropped
    dropped = pd.read_csv(out / "correlation" / "dropped.tsv", sep="\t")
    row = dropped[(dropped.measure == "genetic") & (dropped.language == "fin_Latn")]
    assert list(row.reason) == ["constant measure vector"]
    report = (out / "report.md").read_text()
    assert "fin_Latn" in report and "![dendrogram](figures/dendrogram_layer" in report
    assert "9 languages, 6 sentences" in report

    # the API reads the recorded default layer
    r = babelmap.load(out)
    assert r.default_layer == json.loads((out / "summary.json").read_text())["best_layer"]
    assert r.get("English", "German", layer=1) == pytest.approx(res.get("eng_Latn", "deu_Latn", 1))
    clusters = json.loads((out / "clusters.json").read_text())
    assert sorted(clusters["languages"]) == sorted(SENTS)
    if glotto.exists():
        assert clusters["families_source"].startswith("Glottolog")
        assert clusters["families"]["fin_Latn"] == "Uralic"

    # second run: every stage reused, the store untouched
    mtime = (out / "store.h5").stat().st_mtime_ns
    assert main(base) == 0                           # with progress messages this time
    err = capsys.readouterr().err
    for stage in ("store", "similarity", "measures", "correlation", "clusters", "figures"):
        assert f"{stage}: reused" in err, stage
    assert (out / "store.h5").stat().st_mtime_ns == mtime

    # a changed input (fewer sentences) recomputes from the store on; with a transfer table
    xpos = SHARED_DATA / "xpos" / "udpos-ft-10000.csv"
    extra = ["--transfer", str(xpos)] if xpos.exists() else []
    assert main(argv + ["--max-sentences", "4"] + extra) == 0
    assert SimilarityResult.load(out / "similarity.h5").count[0, 1] == 4
    if xpos.exists():
        tr = pd.read_csv(out / "transfer" / "summary.tsv", sep="\t").set_index("method")
        per = pd.read_csv(out / "transfer" / "per_target.tsv", sep="\t")
        targets = sorted(set(per.target))
        raw = pd.read_csv(xpos)
        en = raw[(raw.lang_train == "en") & raw.lang_pred.isin(targets) & (raw.lang_pred != "en")]
        # English is chosen for every target but itself (there: the first source of the pool)
        assert set(per[(per.method == "english") & (per.target != "en")].chosen) == {"en"}
        assert len(targets) == 9 and "de" in targets and "fi" in targets
        assert tr.loc["english", "oracle"] >= tr.loc["english", "chosen"]
        assert en.set_index("lang_pred").score.mean() == pytest.approx(
            per[(per.method == "english") & (per.target != "en")].score.mean())
        assert "## Source-language selection" in (out / "report.md").read_text()


def test_run_errors_clearly(tmp_path, capsys):
    from babelmap.cli import main
    assert main(["run", "--corpus", str(tmp_path / "nope"), "--format", "plain", "--out", str(tmp_path / "o")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert main(["run", "--corpus", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    assert "--format is required" in capsys.readouterr().err
