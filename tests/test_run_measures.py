"""`babelmap run --alignment mexa retrieval@1 --probe` end to end in seconds: a tiny random
model on 6 FLORES dev languages x 60 sentences (10 topic-labelled articles). The alignment
result files equal the kernels called directly and a NumPy double loop; the report's tables
state numbers recomputed here with SciPy / NumPy; the probe grid equals analysis.probe called
directly and the selection table equals analysis.transfer on it; a rerun reuses every stage;
--probe on a non-FLORES corpus and a model measure in --measures are refused in one line."""
from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

LANGS = ["eng_Latn", "deu_Latn", "fra_Latn", "spa_Latn", "rus_Cyrl", "fin_Latn"]


def _cells(report: str, prefix: str, after: str | None = None) -> list[str]:
    text = report.split(after, 1)[1] if after else report
    row = next(line for line in text.splitlines() if line.startswith(prefix))
    return [c.strip() for c in row.strip("|").split("|")]


@pytest.fixture(scope="module")
def finished(tiny_bert, flores_dir, tmp_path_factory):
    """One finished run; returns (out, argv)."""
    from babelmap.cli import main
    out = tmp_path_factory.mktemp("runmeasures") / "res"
    argv = ["run", "--corpus", str(flores_dir), "--format", "flores", "--langs", *LANGS, "--max-sentences", "60",
            "--model", str(tiny_bert), "--measures", "lex", "--alignment", "mexa", "retrieval@1", "--probe",
            "--no-figures", "--device", "cpu", "--out", str(out), "--no-progress"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(argv) == 0
    return out, argv


def test_alignment_files_equal_the_kernels_and_a_direct_loop(finished):
    from babelmap.engine.store import open_store
    from babelmap.kernels.result import SimilarityResult
    from babelmap.kernels.similarity import compute_similarity
    out, _ = finished
    for name, fname in (("mexa", "similarity-mexa.h5"), ("retrieval@1", "similarity-retrieval_1.h5")):
        saved = SimilarityResult.load(out / fname)
        direct = compute_similarity(out / "store.h5", measure=name, device="cpu", progress=False)
        assert saved.measure == name and saved.languages == direct.languages
        assert np.array_equal(saved.sim, direct.sim, equal_nan=True) and np.array_equal(saved.count, direct.count)
    # independent: MEXA of one pair at one layer by a float64 NumPy loop over sentences
    mexa = SimilarityResult.load(out / "similarity-mexa.h5")
    ret = SimilarityResult.load(out / "similarity-retrieval_1.h5")
    with open_store(out / "store.h5") as st:
        a = st.embeddings("deu_Latn", 1).astype(np.float64)
        b = st.embeddings("fra_Latn", 1).astype(np.float64)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    M = a @ b.T
    n = len(M)
    hit = [all(M[i, i] > M[i, j] and M[i, i] > M[j, i] for j in range(n) if j != i) for i in range(n)]
    top1 = [all(M[i, i] > M[i, j] for j in range(n) if j != i) for i in range(n)]
    assert abs(mexa.get("deu_Latn", "fra_Latn", layer=1) - np.mean(hit)) < 1e-6
    assert abs(ret.get("deu_Latn", "fra_Latn", layer=1) - np.mean(top1)) < 1e-6


def test_report_alignment_tables_state_the_numbers(finished):
    from scipy.stats import pearsonr

    from babelmap.kernels.matrix import LanguageMatrix
    from babelmap.kernels.result import SimilarityResult
    out, _ = finished
    report = (out / "report.md").read_text()
    mexa = SimilarityResult.load(out / "similarity-mexa.h5")
    cos = SimilarityResult.load(out / "similarity.h5")
    lex = LanguageMatrix.from_tsv(out / "measures" / "lex.tsv")
    L = len(mexa.languages)
    off = ~np.eye(L, dtype=bool)
    # independent per-language Pearson with LEX (languages with a constant row left out), mean per layer
    means = []
    for k in range(len(mexa.layers)):
        rs = []
        for i, x in enumerate(mexa.languages):
            js = [j for j in range(L) if j != i]
            m = mexa.sim[k, i, js].astype(np.float64)
            v = np.array([lex.get(x, mexa.languages[j]) for j in js])
            if np.ptp(m) > 0 and np.ptp(v) > 0:
                rs.append(pearsonr(m, v)[0])
        means.append(np.mean(rs))
    best = int(np.argmax(means))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["alignment"]["mexa"]["best_layer"] == mexa.layers[best]
    assert f"### mexa (`similarity-mexa.h5`)" in report and f"**Best layer: {mexa.layers[best]}**" in report
    cells = _cells(report, "| lex |", after="### mexa")
    assert cells[1] == str(mexa.layers[best]) and cells[2] == f"{means[best]:.3f}", cells
    # per layer: mean over pairs and Pearson r with cosine-mean over pairs (NumPy corrcoef)
    for k, layer in enumerate(mexa.layers):
        x, y = mexa.sim[k][off].astype(np.float64), cos.sim[k][off].astype(np.float64)
        row = _cells(report, f"| {layer} |", after="### mexa (")
        assert row[1] == f"{x.mean():.3f}" and row[2] == f"{np.corrcoef(x, y)[0, 1]:.3f}", row
        assert row[4] == f"{means[k]:.3f}", row
    assert "### retrieval@1 (`similarity-retrieval_1.h5`)" in report


def test_probe_grid_and_selection_equal_direct_calls(finished, flores_dir):
    import pandas as pd

    from babelmap.analysis.probe import ProbeGrid, probe_grid
    from babelmap.analysis.topics import read_flores_topics
    from babelmap.analysis.transfer import ENGLISH, select_sources
    from babelmap.kernels.matrix import LanguageMatrix
    from babelmap.kernels.result import SimilarityResult
    from babelmap.pipeline.probe import PROBE_SETTINGS
    out, _ = finished
    report = (out / "report.md").read_text()
    saved = ProbeGrid.load(out / "probe" / "grid.h5")
    direct = probe_grid(out / "store.h5", read_flores_topics(flores_dir), progress=False, **PROBE_SETTINGS)
    assert saved.languages == direct.languages == sorted(LANGS) and saved.layers == direct.layers
    assert np.allclose(saved.accuracy, direct.accuracy.astype(np.float32), equal_nan=True)
    assert direct.attrs["articles"] == 10 and direct.attrs["n_sentences"] == 32
    # the report's per-layer table: mean off-diagonal accuracy per layer, recomputed here
    L = len(direct.languages)
    off = ~np.eye(L, dtype=bool)
    e = direct.languages.index("eng_Latn")
    for k, layer in enumerate(direct.layers):
        a = direct.accuracy[k]
        row = _cells(report, f"| {layer} |", after="## Topic probe")
        assert row[1:] == [f"{np.nanmean(np.diag(a)):.3f}", f"{np.nanmean(a[off]):.3f}",
                           f"{np.nanmean(np.delete(a[e], e)):.3f}"], row
    # source selection on the grid at its best layer, with the methods built here from the run's files
    s = json.loads((out / "summary.json").read_text())
    best = direct.best_layer()
    assert s["probe"]["best_layer"] == best and f"on the probe grid (layer {best})" in report
    cos = SimilarityResult.load(out / "similarity.h5")
    mexa = SimilarityResult.load(out / "similarity-mexa.h5")
    ret = SimilarityResult.load(out / "similarity-retrieval_1.h5")
    lex = LanguageMatrix.from_tsv(out / "measures" / "lex.tsv", name="lex")
    methods = {f"mplm-sim@{s['best_layer']}": cos.matrix(s["best_layer"]),
               f"mexa@{s['alignment']['mexa']['best_layer']}": mexa.matrix(s["alignment"]["mexa"]["best_layer"]),
               f"retrieval@1@{s['alignment']['retrieval@1']['best_layer']}":
                   ret.matrix(s["alignment"]["retrieval@1"]["best_layer"]),
               "lex": lex, "english": ENGLISH}
    sel = select_sources(direct.to_transfer_table(best), methods, english="eng_Latn")
    table = pd.read_csv(out / "probe" / "summary.tsv", sep="\t")
    assert list(table["method"]) == list(methods)
    for name in methods:
        chosen = float(np.mean(sel.chosen_score[name]))
        assert abs(table.set_index("method").loc[name, "chosen"] - chosen) < 1e-9
        assert _cells(report, f"| {name} |", after="### Source selection on the probe grid")[1] == f"{chosen:.3f}"
    ref = next(iter(methods))
    c = sel.compare(ref, "english")
    row = _cells(report, f"| {ref} | english |", after="### Source selection on the probe grid")
    assert row[2:5] == [f"{c['diff']:.3f}", f"{c['low']:.3f}", f"{c['high']:.3f}"], row


def test_rerun_reuses_every_stage_and_reproduces(finished, capsys):
    """The report's reproduction line names --alignment and --probe and reruns with every stage
    reused; dropping retrieval@1 keeps mexa's stages reused."""
    import shlex

    from babelmap.cli import main
    out, argv = finished
    line = (out / "report.md").read_text().split("Generated by `", 1)[1].split("`", 1)[0]
    words = shlex.split(line)
    assert "--probe" in words and words[words.index("--alignment") + 1:][:2] == ["mexa", "retrieval@1"]
    capsys.readouterr()
    assert main(words[1:]) == 0
    err = capsys.readouterr().err
    for stage in ("store", "similarity", "alignment-mexa", "alignment-retrieval@1", "measures", "correlation",
                  "correlation-mexa", "correlation-retrieval@1", "probe", "probe-selection"):
        assert f"] {stage}: reused" in err, (stage, err)
    fewer = [w for w in argv if w not in ("retrieval@1", "--no-progress")]
    assert main(fewer) == 0
    err = capsys.readouterr().err
    for stage in ("alignment-mexa", "correlation-mexa", "probe"):
        assert f"] {stage}: reused" in err, (stage, err)
    assert "] probe-selection: done" in err                     # one method fewer: recomputed


def test_refusals_are_one_line_before_any_work(tmp_path, capsys):
    from babelmap.cli import main
    corpus = tmp_path / "c"
    corpus.mkdir()
    for lang in ("deu_Latn", "eng_Latn"):
        (corpus / f"{lang}.txt").write_text("Ein Satz.\nNoch einer.\n", encoding="utf-8")
    base = ["run", "--corpus", str(corpus), "--format", "plain", "--model", str(tmp_path / "never-loaded"), "--device", "cpu",
            "--no-progress"]
    cases = [(["--probe"], "--probe needs a FLORES corpus (--format flores)"),
             (["--alignment", "cosine-mean"], "cosine-mean is always computed"),
             (["--alignment", "mexa2"], "unknown measure 'mexa2'")]
    for i, (extra, msg) in enumerate(cases):
        out = tmp_path / f"o{i}"
        assert main(base + extra + ["--out", str(out)]) == 1
        err = capsys.readouterr().err.strip()
        assert msg in err and len(err.splitlines()) == 1, err
        assert not (out / "store.h5").exists()
    # a FLORES layout without metadata_dev.tsv: the topic labels are missing, said before extracting
    flores = tmp_path / "flores"
    (flores / "dev").mkdir(parents=True)
    for lang in ("deu_Latn", "eng_Latn"):
        (flores / "dev" / f"{lang}.dev").write_text("Ein Satz.\nNoch einer.\n", encoding="utf-8")
    out = tmp_path / "of"
    assert main(["run", "--corpus", str(flores), "--format", "flores"] + base[5:] + ["--probe", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "no metadata_dev.tsv" in err and len(err.splitlines()) == 1, err
    assert not (out / "store.h5").exists()


def test_model_measures_in_measures_become_alignment_measures(tmp_path):
    """`--measures lex mexa` = `--measures lex --alignment mexa`; `--measures mexa` keeps the defaults."""
    from babelmap.pipeline.config import DEFAULT_MEASURES, RunConfig
    from babelmap.pipeline.runner import _split_model_measures
    cfg = _split_model_measures(RunConfig(out=str(tmp_path), measures=["lex", "mexa", "retrieval@5"]))
    assert cfg.measures == ["lex"] and cfg.alignment == ["mexa", "retrieval@5"]
    cfg = _split_model_measures(RunConfig(out=str(tmp_path), measures=["mexa"], alignment=["mexa"]))
    assert cfg.measures == list(DEFAULT_MEASURES) and cfg.alignment == ["mexa"]
    same = RunConfig(out=str(tmp_path), measures=["lex"])
    assert _split_model_measures(same) is same
