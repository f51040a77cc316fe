"""`babelmap bench` accounting: FLOPs formula against a hand count, and a real small run."""
import json
import subprocess
import sys

import numpy as np
import pytest


def test_model_flops_by_hand(tiny_bert):
    from transformers import AutoModel

    from babelmap.engine.throughput import model_flops, non_embedding_parameters
    m = AutoModel.from_pretrained(str(tiny_bert))
    c = m.config
    H, I, L = c.hidden_size, c.intermediate_size, c.num_hidden_layers
    per_layer = 4 * (H * H + H) + (H * I + I) + (I * H + H) + 2 * 2 * H  # qkvo, ffn, 2 layer norms
    by_hand = L * per_layer + 2 * H + (H * H + H)  # + embedding LayerNorm + pooler
    assert non_embedding_parameters(m) == by_hand
    n = np.array([5, 9])
    assert model_flops(m, n) == pytest.approx(2 * by_hand * n.sum() + 4 * L * H * (n ** 2).sum())


def test_bench_cli_runs_and_reports_ratios(tiny_bert, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    lines = {"eng": ["one two", "three four five", "six"] * 4, "deu": ["eins zwei", "drei vier fünf", "sechs"] * 4}
    for code, ls in lines.items():
        (corpus / f"{code}.txt").write_text("\n".join(ls) + "\n", encoding="utf-8")
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, "-m", "babelmap", "bench", "--corpus", str(corpus), "--format", "plain",
                        "--model", str(tiny_bert), "--device", "cpu", "--json", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "speed-up over the reference loop" in r.stdout
    res = json.loads(out.read_text())
    assert res["sentences"] == 24 and len(res["runs"]) == 3
    assert all(run["seconds"] > 0 and 0 < run["flops_fraction"] < 1 for run in res["runs"])
