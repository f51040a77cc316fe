"""Run every bad input we know of through the real CLI and write docs/bad-inputs.md.

Each case builds its input in a temporary folder, runs `babelmap ...` as a user would, and
records the exit code and what the user sees on stderr. A case passes when the command
exits 1 (or 0 where the input is now accepted on purpose) with no traceback, and its message
names what it should (the file, line, language or setting). Run from the repository root:

    .venv/bin/python docs/make_bad_inputs.py            # -> docs/bad-inputs.md
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
BABELMAP = str(ROOT / ".venv" / "bin" / "babelmap")
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "tests"))


@dataclass
class Case:
    what: str                                   # the bad input, in words
    setup: Callable[[Path], list[str]]          # builds files under tmp, returns the argv after `babelmap`
    expect_rc: int = 1
    must_name: tuple[str, ...] = ()             # substrings the message must contain
    env: dict = field(default_factory=dict)


def _plain(tmp: Path, files: dict[str, str | bytes]) -> Path:
    d = tmp / "corpus"
    d.mkdir(exist_ok=True)
    for name, text in files.items():
        (d / name).write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return d


LINES = [f"sentence number {i} is here." for i in range(20)]


def _ok(n=20):
    return "\n".join(LINES[:n]) + "\n"


def _tiny(tmp: Path) -> str:
    from tiny import make_tiny_model
    p = tmp / "tiny"
    if not p.exists():
        make_tiny_model(p)
    return str(p)


def _store(tmp: Path) -> Path:
    d = _plain(tmp, {"eng_Latn.txt": _ok(), "deu_Latn.txt": _ok()})
    out = tmp / "s.h5"
    subprocess.run([BABELMAP, "extract", "--corpus", str(d), "--format", "plain", "--model", _tiny(tmp),
                    "--out", str(out), "--no-progress"], check=True, capture_output=True)
    return out


def _flip(tmp: Path) -> list[str]:
    import h5py
    import numpy as np
    out = _store(tmp)
    with h5py.File(out, "r") as f:
        ds = f["embeddings"]
        src = ds.virtual_sources()[0] if ds.is_virtual else None
    if src is not None:  # a by-reference store: flip one value in the shard it points to
        with h5py.File(out.parent / src.file_name, "r+") as f:
            f[src.dset_name][0, 0, 0] = np.float16(-3142)
    else:
        with h5py.File(out, "r+") as f:
            f["embeddings"][0, 0, 0, 0] = np.float16(-3142)
    return ["check", str(out)]


def _no_embeddings(tmp: Path) -> list[str]:
    import h5py
    out = _store(tmp)
    bad = tmp / "bad.h5"
    with h5py.File(out, "r") as src, h5py.File(bad, "w") as dst:
        for k in src:
            if k != "embeddings":
                src.copy(k, dst)
        dst.attrs.update(src.attrs)
    return ["similarity", str(bad), "--out", str(tmp / "r.h5")]


def _shift(tmp: Path) -> list[str]:
    eng = [f"{'word ' * (3 + (i * 7) % 23)}end {i}." for i in range(120)]
    deu = list(eng)
    del deu[30]
    deu.insert(90, "ein eingefuegter Satz.")
    d = _plain(tmp, {"eng_Latn.txt": "\n".join(eng) + "\n", "deu_Latn.txt": "\n".join(deu) + "\n"})
    return ["check", "--corpus", str(d), "--format", "plain"]


def _partial_tsv(tmp: Path) -> list[str]:
    (tmp / "tsv").mkdir()
    (tmp / "tsv" / "sents_layer3.tsv").write_text("\teng_Latn\tdeu_Latn\neng_Latn\t\t0.5\n", encoding="utf-8")
    return ["info", str(tmp / "tsv")]


def _truncated_udhr(tmp: Path) -> list[str]:
    xml = tmp / "udhr" / "xml"
    xml.mkdir(parents=True)
    for key in ("eng", "deu_1996"):
        text = (SHARED / "udhr" / "xml" / f"udhr_{key}.xml").read_text(encoding="utf-8")
        (xml / f"udhr_{key}.xml").write_text(text[:3000] if key == "eng" else text, encoding="utf-8")
    return ["extract", "--corpus", str(tmp / "udhr"), "--format", "udhr", "--out", str(tmp / "o.h5")]


CASES: list[Case] = [
    Case("a plain file with fewer lines than the others",
         lambda t: ["extract", "--corpus", str(_plain(t, {"eng_Latn.txt": _ok(), "deu_Latn.txt": _ok(19)})),
                    "--format", "plain", "--out", str(t / "o.h5")], must_name=("deu_Latn",)),
    Case("undecodable bytes (Latin-1 in a UTF-8 corpus)",
         lambda t: ["extract", "--corpus", str(_plain(t, {"eng_Latn.txt": _ok(), "deu_Latn.txt":
                    _ok(19).encode() + "Gr\xfc\xdfe\n".encode("latin-1")})), "--format", "plain",
                    "--out", str(t / "o.h5")], must_name=("deu_Latn", "line 20")),
    Case("a NUL byte inside a sentence",
         lambda t: ["extract", "--corpus", str(_plain(t, {"eng_Latn.txt": _ok(), "deu_Latn.txt":
                    _ok(19) + "bad\x00text\n"})), "--format", "plain", "--out", str(t / "o.h5")],
         must_name=("deu_Latn", "line 20")),
    Case("an extra blank line inserted at line 10 (21 lines against 20)",
         lambda t: ["extract", "--corpus", str(_plain(t, {"eng_Latn.txt": _ok(), "deu_Latn.txt":
                    "\n".join(LINES[:9] + [""] + LINES[9:]) + "\n"})), "--format", "plain",
                    "--out", str(t / "o.h5")], must_name=("line 10",)),
    Case("a stray tmp.txt beside the language files",
         lambda t: ["extract", "--corpus", str(_plain(t, {"eng_Latn.txt": _ok(), "tmp.txt": _ok()})),
                    "--format", "plain", "--out", str(t / "o.h5")], must_name=("tmp",)),
    Case("--max-sentences -5",
         lambda t: ["extract", "--corpus", str(_plain(t, {"eng_Latn.txt": _ok(), "deu_Latn.txt": _ok()})),
                    "--format", "plain", "--max-sentences", "-5", "--out", str(t / "o.h5")],
         must_name=("max-sentences",)),
    Case("--token-budget 0",
         lambda t: ["extract", "--corpus", str(_plain(t, {"eng_Latn.txt": _ok(), "deu_Latn.txt": _ok()})),
                    "--format", "plain", "--token-budget", "0", "--out", str(t / "o.h5")],
         must_name=("token-budget",)),
    Case("--max-length 0",
         lambda t: ["extract", "--corpus", str(_plain(t, {"eng_Latn.txt": _ok(), "deu_Latn.txt": _ok()})),
                    "--format", "plain", "--max-length", "0", "--model", _tiny(t), "--out", str(t / "o.h5")],
         must_name=("max-length",)),
    Case("extract --out an existing folder, with --overwrite",
         lambda t: (t / "dir.h5").mkdir() or ["extract", "--corpus", str(_plain(
             t, {"eng_Latn.txt": _ok(), "deu_Latn.txt": _ok()})), "--format", "plain", "--overwrite",
             "--model", _tiny(t), "--out", str(t / "dir.h5")], must_name=("dir.h5",)),
    Case("extract --out /proc/x.h5 (a place nobody can write)",
         lambda t: ["extract", "--corpus", str(_plain(t, {"eng_Latn.txt": _ok(), "deu_Latn.txt": _ok()})),
                    "--format", "plain", "--model", _tiny(t), "--out", "/proc/x.h5"], must_name=("/proc",)),
    Case("a model name that is not in the offline cache",
         lambda t: ["extract", "--corpus", str(_plain(t, {"eng_Latn.txt": _ok(), "deu_Latn.txt": _ok()})),
                    "--format", "plain", "--model", "no-such-org/no-such-model", "--out", str(t / "o.h5")],
         must_name=("no-such-org/no-such-model",), env={"HF_HUB_OFFLINE": "1"}),
    Case("similarity on a store without /embeddings", _no_embeddings, must_name=("embeddings",)),
    Case("similarity --out an existing folder",
         lambda t: (t / "out").mkdir() or ["similarity", str(_store(t)), "--out", str(t / "out")],
         must_name=("out",)),
    Case("info on a folder of partial TSVs", lambda t: _partial_tsv(t)),
    Case("check on a store with one flipped value (-> -3142)", _flip, must_name=("checksum",)),
    Case("a same-count shift (one line deleted, one inserted 60 lines later)", _shift,
         must_name=("deu_Latn",)),
    Case("UDHR file truncated mid-XML", _truncated_udhr, must_name=("udhr_eng.xml",)),
]


def run_case(case: Case) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bm-bad-"))
    try:
        try:
            argv = case.setup(tmp)
        except Exception as e:  # the setup itself failed: report it, don't hide it
            return {"what": case.what, "cmd": "(setup failed)", "rc": None, "seen": f"setup: {e!r}",
                    "ok": False}
        env = dict(os.environ, **case.env)
        p = subprocess.run([BABELMAP, *argv], capture_output=True, text=True, env=env, timeout=600, cwd=tmp)
        err = [l for l in (p.stderr or "").splitlines() if l.strip() and "%|" not in l]
        seen = err[-1] if err else (p.stdout.strip().splitlines() or [""])[-1]
        one_line = "Traceback" not in p.stderr and p.returncode == case.expect_rc
        named = all(s in (p.stderr + p.stdout) for s in case.must_name)
        cmd = "babelmap " + " ".join(a.replace(str(tmp), "$TMP") for a in argv)
        return {"what": case.what, "cmd": cmd, "rc": p.returncode, "seen": seen.replace(str(tmp), "$TMP"),
                "ok": one_line and named}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    rows = []
    for case in CASES:
        r = run_case(case)
        rows.append(r)
        print(f"[{'ok' if r['ok'] else 'FAIL'}] rc={r['rc']} {r['what']}: {r['seen'][:160]}", flush=True)
    lines = ["# Bad input: what a user sees", "",
             "Every row was produced by `docs/make_bad_inputs.py`, which builds the input, runs the real",
             "`babelmap` command and records its exit code and the last line on stderr ($TMP is the",
             "temporary folder). `ok` means: the expected exit code, no traceback, and the message names",
             "the file, line, language or setting at fault. Regenerate with",
             "`.venv/bin/python docs/make_bad_inputs.py`.", "",
             "| bad input | command | exit | what the user sees | ok |", "|---|---|---|---|---|"]
    for r in rows:
        seen = r["seen"].replace("|", "\\|")
        cmd = r["cmd"].replace("|", "\\|")
        lines.append(f"| {r['what']} | `{cmd}` | {r['rc']} | {seen} | {'yes' if r['ok'] else '**no**'} |")
    (ROOT / "docs" / "bad-inputs.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{sum(r['ok'] for r in rows)}/{len(rows)} ok -> docs/bad-inputs.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
