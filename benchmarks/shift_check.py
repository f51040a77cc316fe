"""The same-count shift detector (engine/corpora/aligncheck.py) measured: false alarms on the clean
FLORES dev (all 204), eBible and PBC data, and detection of planted shifts (one line deleted, another
inserted `gap` lines later) in a plain corpus and in eBible (MRK 14:25 ... REV 1:16). Prints a table
and writes JSON to benchmarks/results/shift_check.json.

    .venv/bin/python benchmarks/shift_check.py [--data ../shared/data] [--trials 40]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

from babelmap.engine.corpora import read_corpus
from babelmap.engine.corpora.aligncheck import find_shifts
from babelmap.engine.corpora.base import ParallelCorpus


def plant(corpus: ParallelCorpus, lang: str, delete_at: int, insert_at: int, inserted: str | None) -> ParallelCorpus:
    """The corpus with `lang`'s sentence at `delete_at` deleted and `inserted` put in at `insert_at`
    (the sentence count stays): sentences in between sit one place early."""
    texts = [list(r) for r in corpus.texts]
    row = texts[corpus.languages.index(lang)]
    del row[delete_at]
    row.insert(insert_at, inserted)
    return ParallelCorpus(corpus.name, corpus.languages, corpus.sentence_ids, texts, corpus.meta)


def flagged(suspects, corpus, lang: str, a: int, b: int) -> bool:
    """Is some suspect of `lang` overlapping positions a..b?"""
    pos = {s: j for j, s in enumerate(corpus.sentence_ids)}
    return any(s.language == lang and pos[s.first_id] <= b and pos[s.last_id] >= a for s in suspects)


def clean_rate(corpus) -> dict:
    t = time.time()
    found = find_shifts(corpus)
    flagged_sents = sum(s.n_sentences for s in found)
    present = int(corpus.mask.sum())
    return {"languages": len(corpus.languages), "sentences": len(corpus.sentence_ids), "suspects": len(found),
            "languages_flagged": len({s.language for s in found}), "sentences_flagged": flagged_sents,
            "sentence_false_alarm_rate": flagged_sents / present, "seconds": time.time() - t,
            "messages": [s.message for s in found[:20]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "shift_check.json"))
    args = ap.parse_args()
    data = Path(args.data)
    rng = random.Random(0)
    res: dict = {"clean": {}, "planted": {}}
    flores = read_corpus(data / "flores200", "flores", check_alignment=False)
    ebible = read_corpus(data / "ebible.tar.xz", "ebible", check_alignment=False)
    pbc = read_corpus(data / "pbc", "pbc", check_alignment=False)
    for name, c in (("flores200-dev", flores), ("ebible", ebible), ("pbc", pbc)):
        res["clean"][name] = r = clean_rate(c)
        print(f"clean {name:14s} {r['languages']:4d} languages x {r['sentences']:6d}: {r['suspects']} suspects in "
              f"{r['languages_flagged']} languages, {r['sentences_flagged']} sentences flagged "
              f"({r['sentence_false_alarm_rate']:.2e} of present) [{r['seconds']:.1f} s]", flush=True)
    # plain corpus: FLORES dev's first 300 lines of 10 languages written as <lang>.txt, planted in one
    langs10 = ["eng_Latn", "deu_Latn", "fra_Latn", "zho_Hans", "arb_Arab", "hin_Deva", "swh_Latn", "tur_Latn",
               "rus_Cyrl", "jpn_Jpan"]
    plain = flores.select(languages=langs10, first=300)
    for gap in (4, 6, 8, 11, 20, 50):
        hits = 0
        for _ in range(args.trials):
            lang = rng.choice(langs10)
            i = rng.randrange(0, 300 - gap)
            c = plant(plain, lang, i, i + gap, rng.choice(plain.text(lang)))
            hits += flagged(find_shifts(c, languages=[lang]), c, lang, i, i + gap - 1)
        res["planted"][f"plain gap={gap}"] = {"trials": args.trials, "flagged": hits}
        print(f"planted plain (10 languages x 300), {gap - 1:3d} rows shifted: {hits}/{args.trials} flagged", flush=True)
    # the case: 11 rows misaligned, in every one of the 10 languages in turn
    hits = 0
    for lang in langs10:
        c = plant(plain, lang, 100, 111, plain.text(lang)[250])
        hits += flagged(find_shifts(c), c, lang, 100, 110)
    res["planted"]["plain 11 rows, each language"] = {"trials": 10, "flagged": hits}
    print(f"planted plain, rows 101-111 shifted in each of 10 languages: {hits}/10 flagged", flush=True)
    # eBible: MRK 14:25 deleted, a line inserted at REV 1:16 (the 370 verses), random translations
    a, b = ebible.sentence_ids.index("MRK 14:25"), ebible.sentence_ids.index("REV 1:16")
    hits, trials = 0, 0
    for lang in rng.sample(ebible.languages, args.trials):
        c = plant(ebible, lang, a, b, "")
        trials += 1
        hits += flagged(find_shifts(c, languages=[lang]), c, lang, a, b)
    res["planted"]["ebible MRK 14:25..REV 1:16"] = {"trials": trials, "flagged": hits, "verses": b - a + 1}
    print(f"planted eBible MRK 14:25 ... REV 1:16 ({b - a + 1} verses): {hits}/{trials} flagged", flush=True)
    for gap in (6, 11, 30):
        hits = 0
        for _ in range(args.trials):
            lang = rng.choice(ebible.languages)
            sub = ebible.select(languages=sorted(set(rng.sample(ebible.languages, 99)) | {lang}))
            i = rng.randrange(0, len(ebible.sentence_ids) - gap)
            c = plant(sub, lang, i, i + gap, rng.choice([t for t in ebible.text(lang) if t]))
            hits += flagged(find_shifts(c, languages=[lang]), c, lang, i, i + gap - 1)
        res["planted"][f"ebible gap={gap}"] = {"trials": args.trials, "flagged": hits}
        print(f"planted eBible, {gap - 1} verses shifted at random places: {hits}/{args.trials} flagged", flush=True)
    res["load_avg"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1, ensure_ascii=False))
    print(f"wrote {args.out} (load {res['load_avg'][0]:.1f})")


if __name__ == "__main__":
    main()
