"""`babelmap run` end to end in seconds (part of `make test`): a tiny random model, a plain
corpus of 9 languages, LEX and a user TSV measure (no urielplus). Checks the report's content
against independent SciPy numbers, that its reproduction line runs as printed, that every
artefact reads back as its type, and that a run whose correlations are all undefined (3
languages) still writes a report saying why."""
from __future__ import annotations

import json
import shlex

import numpy as np
import pytest
from test_run import SENTS

# a user measure: 1 within a branch, 0.5 within Indo-European, 0 otherwise (Finnish: constant row)
BRANCH = {"eng_Latn": "G", "deu_Latn": "G", "nld_Latn": "G", "fra_Latn": "R", "spa_Latn": "R", "ita_Latn": "R",
          "rus_Cyrl": "S", "pol_Latn": "S", "fin_Latn": "U"}


def _family_tsv(path):
    langs = sorted(BRANCH)
    rows = ["\t" + "\t".join(langs)]
    for a in langs:
        vals = [1.0 if BRANCH[a] == BRANCH[b] else 0.0 if "U" in (BRANCH[a], BRANCH[b]) else 0.5 for b in langs]
        rows.append(a + "\t" + "\t".join(str(v) for v in vals))
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def finished(tiny_bert, tmp_path_factory):
    """One finished run; returns (out, argv, the printed summary)."""
    import contextlib
    import io

    from babelmap.cli import main
    base = tmp_path_factory.mktemp("runfast")
    corpus = base / "corpus"
    corpus.mkdir()
    for lang, lines in SENTS.items():
        (corpus / f"{lang}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    fam = _family_tsv(base / "family.tsv")
    out = base / "res"
    argv = ["run", "--corpus", str(corpus), "--format", "plain", "--model", str(tiny_bert), "--measures", "lex",
            str(fam), "--device", "cpu", "--out", str(out), "--no-progress"]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(argv) == 0
    return out, argv, buf.getvalue()


def test_report_states_the_numbers(finished):
    from scipy.stats import pearsonr

    from babelmap.kernels.matrix import LanguageMatrix
    from babelmap.kernels.result import SimilarityResult
    out, _, printed = finished
    report = (out / "report.md").read_text()
    res = SimilarityResult.load(out / "similarity.h5")
    lex = LanguageMatrix.from_tsv(out / "measures" / "lex.tsv")
    # independent: per language, SciPy Pearson between its model row and its LEX row; mean; best layer
    means = []
    for k in range(len(res.layers)):
        rs = []
        for i, a in enumerate(res.languages):
            others = [j for j in range(len(res.languages)) if j != i]
            rs.append(pearsonr(res.sim[k, i, others].astype(np.float64),
                               [lex.get(a, res.languages[j]) for j in others])[0])
        means.append(np.mean(rs))
    best = int(np.argmax(means))
    row = next(line for line in report.splitlines() if line.startswith("| lex |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == str(res.layers[best]) and cells[2] == f"{means[best]:.3f}", row
    # the TSV measure: Finnish's row is constant -> left out, said so with its reason
    assert "| family | constant measure vector | 1 | fin_Latn |" in report
    assert "9 languages, 6 sentences" in report and "rus_Cyrl" in report
    # the default layer is the best mean over the two measures, and the API opens it as default
    summary = json.loads((out / "summary.json").read_text())
    assert f"**Default layer: {summary['best_layer']}**" in report
    from babelmap.pipeline import open_similarity
    assert open_similarity(out).default_layer == summary["best_layer"]
    import babelmap                                      # the folder or its similarity.h5: the same default
    assert babelmap.load(out).default_layer == babelmap.load(out / "similarity.h5").default_layer == summary["best_layer"]
    assert "![dendrogram](figures/dendrogram_layer" in report and (out / "figures" / "best_layers.png").exists()
    assert f"default layer: {summary['best_layer']}" in printed and str(out / "report.md") in printed


def test_artefacts_read_back_as_their_types(finished):
    """No stage re-parses another's files by hand: each artefact loads as its own type, lossless."""
    from babelmap.analysis.cluster import Clustering, cluster
    from babelmap.analysis.correlation import correlate, load_correlations
    from babelmap.pipeline import RunSummary, open_similarity
    from babelmap.pipeline.stages import load_measure
    out, _, _ = finished
    s = RunSummary.load(out)
    res = open_similarity(out)
    corrs = load_correlations(out / "correlation" / "correlations.h5")
    assert list(corrs) == ["lex", "family"] and s.measures["family"]["covered"] == 9
    fam = load_measure(out / "measures", "family")
    again = correlate(res, fam, min_partners=5)
    assert np.array_equal(corrs["family"].pearson, again.pearson, equal_nan=True)
    assert corrs["family"].dropped == again.dropped
    c = Clustering.load(out / "clusters.h5")
    direct = cluster(res.matrix(s.best_layer), k=s.clusters["k"])
    assert np.allclose(c.Z, direct.Z) and np.array_equal(c.labels, direct.labels)
    assert c.distance.shape == (9, 9)                      # the real distances, not a placeholder


def test_reproduction_line_runs_as_printed(finished, capsys):
    """The report's `Generated by` line, split as a shell would, reruns the same run: every stage
    reused. With --no-figures the line says --no-figures (and still runs)."""
    from babelmap.cli import main
    out, argv, _ = finished
    line = (out / "report.md").read_text().split("Generated by `", 1)[1].split("`", 1)[0]
    words = shlex.split(line)
    assert words[:2] == ["babelmap", "run"] and "--no-progress" not in words
    assert main(words[1:]) == 0
    err = capsys.readouterr().err
    for stage in ("store", "similarity", "measures", "correlation", "clusters", "figures"):
        assert f"{stage}: reused" in err, stage
    assert main(words[1:] + ["--no-figures", "--no-progress"]) == 0
    line2 = (out / "report.md").read_text().split("Generated by `", 1)[1].split("`", 1)[0]
    assert "--no-figures" in shlex.split(line2) and "--figures" not in shlex.split(line2)
    assert main(shlex.split(line2)[1:] + ["--no-progress"]) == 0


def test_three_languages_write_a_report_saying_why(tiny_bert, tmp_path, capsys):
    """3 languages: each has 2 partners < --min-partners 5, so every correlation is dropped.
    The run finishes, the report says why, and clusters and heatmap are still drawn."""
    from babelmap.cli import main
    corpus = tmp_path / "c"
    corpus.mkdir()
    for lang in ("deu_Latn", "eng_Latn", "fra_Latn"):
        (corpus / f"{lang}.txt").write_text("\n".join(SENTS[lang]) + "\n", encoding="utf-8")
    out = tmp_path / "o"
    assert main(["run", "--corpus", str(corpus), "--format", "plain", "--langs", "deu_*", "eng_*", "fra_*",
                 "--model", str(tiny_bert), "--measures", "lex", "--device", "cpu", "--out", str(out),
                 "--no-progress"]) == 0
    report = (out / "report.md").read_text()
    assert "No measure gave a defined correlation" in report and "too few partners" in report
    assert "--min-partners 5" in report and "| lex | too few partners | 3 |" in report
    assert "last layer: no measure gave a defined correlation" in report
    assert not (out / "figures" / "correlation_by_layer.png").exists()
    assert (out / "figures" / "heatmap_layer2.png").exists()
    assert "'deu_*' 'eng_*' 'fra_*'" in report                 # globs quoted in the reproduction line
    assert "note: No measure gave a defined correlation" in capsys.readouterr().out


def test_library_run_and_report_from_artefacts_alone(finished, tmp_path):
    """`babelmap.pipeline.run(config)` gives a RunResult over the same folder; the report is
    rebuilt identically from the files alone, also after the folder is moved; similarity.h5 is
    as the similarity stage wrote it (the default layer lives in correlation/)."""
    import shutil

    from babelmap.kernels.result import SimilarityResult
    from babelmap.pipeline import RunConfig, RunResult, run, write_report
    out, argv, _ = finished
    cfg = RunConfig(out=str(out), corpus=argv[argv.index("--corpus") + 1], format="plain",
                    model=argv[argv.index("--model") + 1], measures=argv[argv.index("--measures") + 1:
                                                                        argv.index("--device")],
                    device="cpu", progress=False)
    res = run(cfg)
    assert isinstance(res, RunResult) and res.summary.stages["store"] is None     # reused
    assert res.similarity().default_layer == res.summary.best_layer
    assert set(res.correlations()) == {"lex", "family"} and res.clustering().languages
    assert res.measures()["family"].name == "family"
    assert "best_layer" not in SimilarityResult.load(out / "similarity.h5").attrs
    before = (out / "report.md").read_text()
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    (moved / "report.md").unlink()
    assert write_report(moved).read_text() == before
    # a stage whose file went missing is redone (and only that stage)
    (out / "measures" / "lex.tsv").unlink()
    again = run(cfg)
    assert again.summary.stages["measures"] is not None and again.summary.stages["correlation"] is None
    assert (out / "measures" / "lex.tsv").exists()

