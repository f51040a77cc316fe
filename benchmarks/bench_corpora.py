"""Corpus reading speed: the readers against a bare read of the same files, measured in one run.

Baseline per corpus: `open(f, encoding="utf-8").read().split("\\n")` over exactly the files the
reader opens (for UDHR: `ElementTree.parse` of each file), i.e. the I/O + decoding floor.
The ratio says what validation, missing/merged handling, script detection, id normalisation
and building the ParallelCorpus cost on top. Best of `--repeat` runs (warm page cache).

    python benchmarks/bench_corpora.py [--repeat 3] [--data ../shared/data]

Prints a table and writes benchmarks/results/corpora.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from babelmap.engine.corpora import read_corpus

ROOT = Path(__file__).resolve().parents[1]


def _best(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def _bare_lines(files: list[Path]) -> int:
    n = 0
    for f in files:
        with open(f, encoding="utf-8") as fh:
            n += len(fh.read().split("\n"))
    return n


def _bare_xml(files: list[Path]) -> int:
    return sum(len(list(ET.parse(f).getroot().iter())) for f in files)


def _ebible_dir(data: Path) -> Path:
    from babelmap.engine.cache import cache_dir
    cached = cache_dir("data") / "ebible"
    if (cached / "metadata" / "vref.txt").exists():
        return cached
    tmp = Path(tempfile.mkdtemp(prefix="bench-ebible-"))
    subprocess.run(["tar", "-xJf", str(data / "ebible.tar.xz"), "-C", str(tmp)], check=True)
    return tmp / "ebible"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "corpora.json"))
    args = ap.parse_args()
    data = Path(args.data)
    cases = []
    if (data / "ebible.tar.xz").exists():
        eb = _ebible_dir(data)
        files = sorted((eb / "corpus").glob("*.txt")) + [eb / "metadata" / "vref.txt"]
        cases.append(("ebible", lambda: read_corpus(eb, "ebible"), lambda: _bare_lines(files), files))
    if (data / "flores200" / "dev").is_dir():
        files = sorted((data / "flores200" / "dev").glob("*.dev"))
        cases.append(("flores200-dev", lambda: read_corpus(data / "flores200", "flores"),
                      lambda: _bare_lines(files), files))
    if (data / "udhr").is_dir():
        files = sorted((data / "udhr" / "xml").glob("*.xml"))
        cases.append(("udhr", lambda: read_corpus(data / "udhr", "udhr", stages=None, include_und=True),
                      lambda: _bare_xml(files), files))
    if (data / "pbc").is_dir():
        files = sorted((data / "pbc").glob("*.txt"))
        cases.append(("pbc", lambda: read_corpus(data / "pbc", "pbc"), lambda: _bare_lines(files), files))
    cases.append(("cldr", lambda: read_corpus(None, "cldr"), None, []))

    rows = []
    for name, reader, baseline, files in cases:
        reader()  # warm: imports, page cache
        t_read, corpus = _best(reader, args.repeat)
        t_base = _best(baseline, args.repeat)[0] if baseline else None
        rows.append({"corpus": name, "languages": len(corpus.languages), "sentences": len(corpus.sentence_ids),
                     "present": int(corpus.mask.sum()), "files": len(files),
                     "bytes": sum(f.stat().st_size for f in files), "reader_s": round(t_read, 4),
                     "baseline_s": round(t_base, 4) if t_base else None,
                     "ratio": round(t_read / t_base, 2) if t_base else None})
    print(f"{'corpus':<15}{'langs':>6}{'sents':>7}{'present':>9}{'MB':>7}{'reader s':>10}{'bare s':>9}{'ratio':>7}")
    for r in rows:
        print(f"{r['corpus']:<15}{r['languages']:>6}{r['sentences']:>7}{r['present']:>9}{r['bytes'] / 1e6:>7.1f}"
              f"{r['reader_s']:>10.3f}{(r['baseline_s'] or float('nan')):>9.3f}{(r['ratio'] or float('nan')):>7.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "corpora", "repeat": args.repeat,
                               "baseline": "open().read().split('\\n') (udhr: ElementTree.parse) over the same files",
                               "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                           "platform": platform.platform(),
                                           "load_average_1min": round(os.getloadavg()[0], 2)},
                               "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "results": rows}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
