"""The import graph points one way (DESIGN.md): engine <- kernels <- analysis <- babelmap/
(public API, pipeline, CLI); training sits above kernels; no command imports another.

Walks every module of ours with `ast` (imports inside functions count too) and fails on an
upward arrow, naming the file, line and the import.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"engine": "babelmap.engine", "kernels": "babelmap.kernels", "analysis": "babelmap.analysis",
           "babelmap": "babelmap"}
# layer of each part: a module may import from its own layer or any lower one
RANK = {"engine": 0, "kernels": 1, "training": 2, "analysis": 2, "top": 3}   # training and analysis: siblings


def module_name(path: Path) -> str:
    """The dotted module name of a source file (`engine/store.py` -> `babelmap.engine.store`)."""
    rel = path.relative_to(ROOT)
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([FOLDERS[parts[0]]] + parts[1:]) if parts[0] != "babelmap" else ".".join(parts)


def part_of(module: str) -> str | None:
    """Which layer a module of ours belongs to (None for other packages)."""
    if module != "babelmap" and not module.startswith("babelmap."):
        return None
    bits = module.split(".")
    if len(bits) > 1 and bits[1] in ("engine", "kernels", "analysis", "training"):
        return bits[1]
    if module in ("babelmap.errors",):           # a re-export of engine.errors
        return "engine"
    return "top"


def our_sources() -> list[Path]:
    files = []
    for folder in FOLDERS:
        files += [p for p in (ROOT / folder).rglob("*.py") if "data" not in p.relative_to(ROOT).parts]
    return sorted(files)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = package.split(".")
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            out.append((node.lineno, base))
            # `from babelmap.commands import words` imports a module too
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names if base.endswith(".commands")]
    return out


def violations() -> list[str]:
    bad = []
    for path in our_sources():
        me = module_name(path)
        mine = part_of(me)
        for line, target in imports_of(path):
            theirs = part_of(target)
            if theirs is None or target in ("babelmap",) and mine == "top":
                continue
            where = f"{path.relative_to(ROOT)}:{line}: {me} imports {target}"
            if target == "babelmap" and mine != "top":
                bad.append(where + " (the top-level package)")
                continue
            if RANK[theirs] > RANK[mine] or (RANK[theirs] == RANK[mine] and theirs != mine):
                bad.append(where + f" ({mine} must not import {theirs})")
            if me.startswith("babelmap.commands.") and target.startswith("babelmap.commands.") and target != me:
                bad.append(where + " (a command imports another command)")
    return bad


def test_walker_sees_what_it_must():
    """The walker itself: module names, layers and relative imports resolve as intended."""
    assert module_name(ROOT / "engine" / "store.py") == "babelmap.engine.store"
    assert module_name(ROOT / "kernels" / "__init__.py") == "babelmap.kernels"
    assert module_name(ROOT / "babelmap" / "commands" / "run.py") == "babelmap.commands.run"
    assert part_of("babelmap.engine.store") == "engine" and part_of("babelmap.training.adjust") == "training"
    assert part_of("babelmap.pipeline") == "top" and part_of("numpy") is None
    found = dict((t, l) for l, t in imports_of(ROOT / "kernels" / "similarity.py"))
    assert "babelmap.kernels.result" in found and "babelmap.engine.errors" in found
    assert len(our_sources()) > 50


def test_walker_flags_a_planted_upward_arrow(tmp_path, monkeypatch):
    """A synthetic engine module importing analysis, and a command importing another, are caught."""
    fake = tmp_path / "engine"
    fake.mkdir()
    (fake / "bad.py").write_text("def f():\n    from babelmap.analysis import cluster\n")
    cmds = tmp_path / "babelmap" / "commands"
    cmds.mkdir(parents=True)
    (cmds / "a.py").write_text("from babelmap.commands.b import x\n")
    (cmds / "c.py").write_text("from . import b\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    bad = violations()
    assert any("engine/bad.py:2" in b and "engine must not import analysis" in b for b in bad), bad
    assert any("commands/a.py:1" in b and "another command" in b for b in bad), bad
    assert any("commands/c.py:1" in b and "another command" in b for b in bad), bad


def test_no_upward_imports():
    bad = violations()
    if bad:
        pytest.fail("imports that point the wrong way:\n  " + "\n  ".join(bad))
