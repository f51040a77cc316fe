"""Same-count shift detector (engine/corpora/aligncheck.py): planted shifts in synthetic and real
corpora are flagged at the right language, file and lines; clean data is not."""
from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import pytest

from babelmap.engine.corpora import ParallelCorpus, read_corpus
from babelmap.engine.corpora.aligncheck import consensus_lengths, find_shifts, numbers_in


def _synthetic(n_lang: int = 6, n: int = 200, seed: int = 0) -> ParallelCorpus:
    """Translations whose lengths are a language ratio times the source length, with 10% noise."""
    rng = np.random.default_rng(seed)
    base = rng.integers(20, 200, size=n)
    langs = [f"{c}_Latn" for c in ("deu", "eng", "fra", "ita", "nld", "spa", "por", "swe")[:n_lang]]
    texts = []
    for k, _ in enumerate(langs):
        ratio = 0.8 + 0.1 * k
        row = ["x" * max(1, int(b * ratio * rng.lognormal(0, 0.1))) for b in base]
        texts.append(row)
    return ParallelCorpus("synthetic", langs, [str(i + 1) for i in range(n)], texts,
                          {l: {"file": f"/data/{l}.txt"} for l in langs})


def _plant(c: ParallelCorpus, lang: str, delete_at: int, insert_at: int, text: str | None) -> ParallelCorpus:
    texts = [list(r) for r in c.texts]
    row = texts[c.languages.index(lang)]
    del row[delete_at]
    row.insert(insert_at, text)
    return ParallelCorpus(c.name, c.languages, c.sentence_ids, texts, c.meta)


def test_numbers_in_any_script() -> None:
    assert numbers_in("1.000 Menschen um 9:30") == ("000", "1", "30", "9")
    assert numbers_in("في ٢٠٢٣") == ("2023",)          # Arabic-Indic digits
    assert numbers_in("कक्षा ५") == ("5",) and numbers_in(None) == () and numbers_in("none") == ()


def test_clean_synthetic_corpus_has_no_suspect() -> None:
    assert find_shifts(_synthetic()) == []


def test_planted_shift_is_flagged_with_language_and_lines() -> None:
    c = _synthetic()
    shifted = _plant(c, "fra_Latn", 60, 75, "x" * 50)          # lines 61-75 one place early
    found = find_shifts(shifted)
    assert [s.language for s in found] == ["fra_Latn"]
    s = found[0]
    assert s.offset == 1 and s.file == "/data/fra_Latn.txt"
    # the flagged span covers the shifted rows (61..75, 1-based), give or take a line at each end
    assert 59 <= s.first_line <= 63 and 73 <= s.last_line <= 77
    assert "fra_Latn" in s.message and "/data/fra_Latn.txt" in s.message and f"lines {s.first_line}-" in s.message
    # the same against an explicit pivot
    assert [x.language for x in find_shifts(shifted, pivot="eng_Latn")] == ["fra_Latn"]


def test_shifted_pivot_is_blamed_once() -> None:
    c = _plant(_synthetic(), "eng_Latn", 60, 90, "x" * 50)
    found = find_shifts(c, pivot="eng_Latn")
    assert len(found) == 1 and found[0].language == "eng_Latn" and "most other languages" in found[0].message
    # against the consensus, the shifted language itself is found
    assert [s.language for s in find_shifts(c)] == ["eng_Latn"]


def test_consensus_is_the_median_profile() -> None:
    c = _synthetic(n_lang=3, n=5)
    logs = np.log1p([[len(t) for t in row] for row in c.texts])
    expect = np.median(logs - np.median(logs, axis=1, keepdims=True), axis=0)
    assert np.allclose(consensus_lengths(c), expect)


def _plain_from_flores(flores_dir: Path, folder: Path, langs: list[str], n: int) -> Path:
    folder.mkdir()
    for lang in langs:
        lines = (flores_dir / "dev" / f"{lang}.dev").read_text(encoding="utf-8").split("\n")[:n]
        (folder / f"{lang}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_real_plain_corpus_with_a_same_count_shift(flores_dir: Path, tmp_path: Path, caplog) -> None:
    langs = ["eng_Latn", "deu_Latn", "fra_Latn", "zho_Hans", "arb_Arab", "hin_Deva", "tur_Latn", "rus_Cyrl"]
    folder = _plain_from_flores(flores_dir, tmp_path / "plain", langs, 300)
    with caplog.at_level(logging.WARNING, logger="babelmap.corpora"):
        clean = read_corpus(folder, "plain")
    assert not [r for r in caplog.records if "misalignment" in r.getMessage()]
    assert find_shifts(clean) == []
    # the case: one line deleted, another inserted 11 lines later (line count unchanged)
    f = folder / "zho_Hans.txt"
    lines = f.read_text(encoding="utf-8").split("\n")[:-1]
    inserted = lines[250]
    del lines[100]
    lines.insert(110, inserted)
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="babelmap.corpora"):
        c = read_corpus(folder, "plain")
    found = find_shifts(c)                      # lengths and numbers
    assert [s.language for s in found] == ["zho_Hans"]
    s = found[0]
    assert s.file == str(f) and s.first_line <= 105 and s.last_line >= 108
    assert all(s.first_line >= 95 and s.last_line <= 115 for s in found)


def test_real_ebible_planted_and_versification_shift(ebible_dir: Path) -> None:
    c = read_corpus(ebible_dir, "ebible", check_alignment=False)
    rng = random.Random(3)
    keep = sorted(set(rng.sample(c.languages, 40)) | {"lat_Latn", "eng_Latn-engwebp"})
    sub = c.select(languages=keep)
    # the Vulgate numbers Mark 9 one verse off: a real shift in the data, found
    real = find_shifts(sub)
    vulgate = [s for s in real if s.language == "lat_Latn"]
    assert vulgate and vulgate[0].first_id.startswith("MRK 9:") and vulgate[0].offset == 1
    # the planted case: MRK 14:25 deleted, a blank line inserted at REV 1:16 (370 verses)
    a, b = sub.sentence_ids.index("MRK 14:25"), sub.sentence_ids.index("REV 1:16")
    planted = _plant(sub, "eng_Latn-engwebp", a, b, None)
    found = [s for s in find_shifts(planted) if s.language == "eng_Latn-engwebp"]
    assert found, "370 shifted verses not flagged"
    covered = sum(s.n_sentences for s in found)
    assert covered >= 0.9 * (b - a) and found[0].first_id in ("MRK 14:24", "MRK 14:25", "MRK 14:26")
    assert found[0].first_line == a + 1 and "eng-engwebp.txt" in found[0].file


def test_check_command_on_a_corpus_alone(tmp_path: Path) -> None:
    """`babelmap check --corpus` (no store): exit 1 with the shifted span's file and lines, exit 0 when clean."""
    import subprocess
    import sys
    eng = [f"{'word ' * (3 + (i * 7) % 23)}end {i}." for i in range(120)]
    deu = list(eng)
    del deu[30]
    deu.insert(90, "ein eingefuegter Satz.")
    bad, good = tmp_path / "bad", tmp_path / "good"
    for folder, other in ((bad, deu), (good, eng)):
        folder.mkdir()
        (folder / "eng_Latn.txt").write_text("\n".join(eng) + "\n", encoding="utf-8")
        (folder / "deu_Latn.txt").write_text("\n".join(other) + "\n", encoding="utf-8")
    cmd = [sys.executable, "-m", "babelmap", "check", "--format", "plain", "--corpus"]
    r = subprocess.run(cmd + [str(bad)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    flagged = [l for l in r.stderr.splitlines() if "possible misalignment" in l]
    assert len(flagged) == 1 and "deu_Latn.txt, lines 31-90" in flagged[0] and "language deu_Latn" in flagged[0]
    r = subprocess.run(cmd + [str(good)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "no shifted spans" in r.stdout, r.stderr
