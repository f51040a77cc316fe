"""Word-level embeddings of every layer: segmentation, sub-word pooling and the word store.

Why: the word-alignment study (Cao et al. 2020; Efimov et al. 2023) compares contextual
embeddings of *words*, not sentences. This module turns a `ParallelCorpus` into one HDF5
"word store" holding, for every language and sentence, the embedding of each word at every
hidden state.

Segmentation (`segment`, documented in docs/wordalign.md):
- ``"unicode"`` (default): whitespace separates words; inside a run of non-space characters
  every punctuation or symbol character (Unicode categories P*, S*) is a word of its own;
  letters, marks and digits (L*, M*, N*) form words, and combining marks always attach to the
  character before them (so Devanagari or Thai vowel signs stay in their word). Scripts written
  without spaces (Han, Hiragana, Katakana, Thai, Lao, Khmer, Myanmar, Tibetan) fall back to
  one word per character (plus its combining marks): a documented approximation, there is no
  dictionary segmenter here.
- ``"whitespace"``: split on whitespace only, for pre-tokenised corpora whose Pharaoh
  alignment files index whitespace tokens.

Sub-word pooling: each word gets the model tokens whose character offsets overlap its span
(fast tokenizer offset mapping); `mean`, `first` or `last` of those tokens' hidden states.
A token spanning several words (e.g. one token for two Han characters) counts for each.
A word with no token at all (truncated, or deleted by the normaliser) keeps a zero vector
and `valid = False`.

Word store layout (one HDF5 file, written through `<out>.parts/<lang>.h5` part files, each
through a temporary name and an atomic rename, then joined through a temporary name). It uses
the sentence store's crash-safe machinery: one run per output (engine.lock), provenance
compared as for sentence parts (engine.parts.provenance_diff), stale temporaries removed, a
full disk refused early or reported as one StoreError (engine.diskspace), h5py files closed
explicitly on failure. The join copies (word stores are small; the sentence store's join
is by reference):

| path | shape, dtype | meaning |
|---|---|---|
| `/languages` | [L] str | language ids |
| `/sentence_ids` | [S] str | shared sentence axis |
| `/mask` | [L, S] bool | sentence present |
| `words/<lang>/offsets` | [S+1] int64 | words of sentence s are rows offsets[s]:offsets[s+1] |
| `words/<lang>/tokens` | [N] str | the word strings |
| `words/<lang>/valid` | [N] bool | word had at least one model token |
| `words/<lang>/embeddings` | [K, N, H] float16 | chunks (1, c, H) of about 1 MiB: read per layer |

File attributes: `format = "babelmap.words"`, `format_version`, `model`, `model_fingerprint`,
`pooling` (sub-word pooling), `segmentation`, `dtype`, `max_length`, `prefix`, `corpus_name`,
`corpus_fingerprint`, `babelmap_version`, `created`, `command`.
"""
from __future__ import annotations

import io
import json
import logging
import os
import unicodedata
from pathlib import Path
from typing import Iterator, Sequence

import h5py
import numpy as np

from babelmap.engine.diskspace import check_free_space, write_failure
from babelmap.engine.diskwrite import fsync_dir, write_bytes_safely
from babelmap.engine.errors import StoreError
from babelmap.engine.lock import OutputLock
from babelmap.engine.parts import is_tmp, parts_dir
from babelmap.engine.store import CHUNK_BYTES, STR, default_attrs, tmp_path

log = logging.getLogger(__name__)

FORMAT = "babelmap.words"
FORMAT_VERSION = 1
POOLINGS = ("mean", "first", "last")
SEGMENTATIONS = ("unicode", "whitespace")
PROVENANCE_KEYS = ("model", "model_fingerprint", "pooling", "segmentation", "dtype", "max_length",
                   "prefix", "corpus_name", "corpus_fingerprint")

# Scripts written without spaces between words: one word per character (see module docstring).
_NO_SPACE_RANGES = (
    (0x0E00, 0x0EFF),    # Thai, Lao
    (0x0F00, 0x0FFF),    # Tibetan
    (0x1000, 0x109F),    # Myanmar
    (0x1780, 0x17FF),    # Khmer
    (0x19E0, 0x19FF),    # Khmer symbols
    (0x3040, 0x30FF),    # Hiragana, Katakana
    (0x31F0, 0x31FF),    # Katakana phonetic extensions
    (0x3400, 0x4DBF),    # CJK extension A
    (0x4E00, 0x9FFF),    # CJK unified ideographs
    (0xF900, 0xFAFF),    # CJK compatibility ideographs
    (0xFF66, 0xFF9F),    # half-width Katakana
    (0x20000, 0x3FFFF),  # CJK extensions B..
)


def _no_space(ch: str) -> bool:
    o = ord(ch)
    return any(a <= o <= b for a, b in _NO_SPACE_RANGES)


def segment(text: str, method: str = "unicode") -> list[tuple[int, int]]:
    """Word spans `(start, end)` (character offsets into `text`) by the documented rules."""
    if method not in SEGMENTATIONS:
        raise ValueError(f"unknown segmentation {method!r}; choose one of {SEGMENTATIONS}")
    spans: list[tuple[int, int]] = []
    start = -1  # start of the open word, -1 = none
    for i, ch in enumerate(text):
        if ch.isspace():
            if start >= 0:
                spans.append((start, i))
                start = -1
            continue
        if method == "whitespace":
            if start < 0:
                start = i
            continue
        cat = unicodedata.category(ch)
        if cat[0] == "M":  # combining mark: stays with what came before
            if start < 0:
                if spans and spans[-1][1] == i:  # attach to the single-character word before
                    spans[-1] = (spans[-1][0], i + 1)
                else:
                    start = i
            continue
        if cat[0] in "LN" and not _no_space(ch):
            if start < 0:
                start = i
            continue
        # punctuation, symbol, or a character of a script without spaces: a word of its own
        if start >= 0:
            spans.append((start, i))
            start = -1
        spans.append((i, i + 1))
    if start >= 0:
        spans.append((start, len(text)))
    return spans


def segment_words(text: str, method: str = "unicode") -> list[str]:
    """The words of `text` (strings of `segment`)."""
    return [text[a:b] for a, b in segment(text, method)]


def pooling_matrix(word_spans: Sequence[tuple[int, int]], token_offsets: Sequence[tuple[int, int]],
                   shift: int, method: str = "mean", text: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """[n_words, T] float32 weights mapping tokens to words, and the valid mask [n_words].

    `token_offsets` are the tokenizer's (start, end) per token in the string it saw (the
    prefix included); `shift` is the prefix length, so word spans are shifted into that
    string. Special tokens have empty offsets and never count. With `text` (the string the
    tokenizer saw), a token covering only whitespace (a lone word-start marker such as `▁` or
    `Ġ`) belongs to the word that follows it, as in the tokenizer's own `word_ids()`.
    """
    if method not in POOLINGS:
        raise ValueError(f"unknown sub-word pooling {method!r}; choose one of {POOLINGS}")
    T = len(token_offsets)
    W = np.zeros((len(word_spans), T), np.float32)
    valid = np.zeros(len(word_spans), bool)
    starts = np.array([o[0] for o in token_offsets], np.int64).reshape(T)
    ends = np.array([o[1] for o in token_offsets], np.int64).reshape(T)
    real = ends > starts
    if text is not None:
        for t in np.nonzero(real)[0]:
            if text[starts[t]:ends[t]].isspace():
                nxt = ends[t]
                while nxt < len(text) and text[nxt].isspace():
                    nxt += 1
                starts[t], ends[t] = nxt, nxt + 1
    for w, (a, b) in enumerate(word_spans):
        hit = np.nonzero(real & (starts < b + shift) & (ends > a + shift))[0]
        if hit.size == 0:
            continue
        valid[w] = True
        if method == "mean":
            W[w, hit] = 1.0 / hit.size
        elif method == "first":
            W[w, hit[0]] = 1.0
        else:
            W[w, hit[-1]] = 1.0
    return W, valid


def encode_words(lm, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]],
                 pooling: str = "mean", prefix: str | None = None, max_length: int | None = None,
                 layers: Sequence[int] | None = None, grad: bool = False):
    """Word embeddings of a batch: a list (one per text) of float32 tensors [K, n_words, H].

    `lm` is a `LoadedModel` (or anything with `.model`, `.tokenizer`, `.device`); with
    `grad=True` the forward pass keeps gradients (used by the adjustment), and `layers`
    picks hidden states (default all).
    """
    import torch

    prefix = lm.prefix if prefix is None else prefix
    enc = lm.tokenizer([prefix + t for t in texts], padding=True, truncation=True,
                       max_length=max_length or getattr(lm, "max_length", 512),
                       return_offsets_mapping=True, return_tensors="pt")
    offsets = enc.pop("offset_mapping").tolist()
    batch = {k: v.to(lm.device) for k, v in enc.items()}
    with torch.set_grad_enabled(grad):
        out = lm.model(**batch, output_hidden_states=True)
        hs = out.hidden_states
        if layers is not None:
            hs = [hs[k] for k in layers]
        hs = torch.stack(hs, 1)  # [B, K, T, H]
        if hs.dtype != torch.float32:
            hs = hs.float()
        result = []
        for b in range(len(texts)):
            W, valid = pooling_matrix(spans[b], offsets[b], len(prefix), pooling, prefix + texts[b])
            Wt = torch.from_numpy(W).to(hs.device)
            result.append((torch.einsum("nt,kth->knh", Wt, hs[b]), valid))
    return result


# ---------------------------------------------------------------------------------------------
# writing


def _part_attrs(lm, corpus, pooling: str, segmentation: str, dtype: str, max_length: int,
                prefix: str) -> dict:
    return {"model": str(lm.name), "model_fingerprint": str(lm.fingerprint), "pooling": pooling,
            "segmentation": segmentation, "dtype": dtype, "max_length": int(max_length),
            "prefix": prefix, "corpus_name": corpus.name, "corpus_fingerprint": corpus.fingerprint()}


def _chunk_words(hidden: int, itemsize: int, n: int) -> int:
    return int(max(1, min(max(1, n), CHUNK_BYTES // max(1, hidden * itemsize))))


def _write_part(path: Path, lm, corpus, lang: str, attrs: dict, batch_size: int, progress: bool) -> None:
    """One language into its own part file: built in memory batch by batch (so HDF5 never
    meets a full disk: a failed HDF5 write leaves objects that crash the process when
    collected), then written through a temporary name and renamed (engine.diskwrite)."""
    from tqdm.auto import tqdm

    texts = corpus.text(lang)
    K, H = lm.num_hidden_states, lm.hidden_size
    dtype = np.dtype(attrs["dtype"])
    words = [None if t is None else segment(t, attrs["segmentation"]) for t in texts]  # once per text
    check_free_space(path.parent, _part_bytes(words, K, H, dtype.itemsize), f"the words of {lang}")
    bio = io.BytesIO()
    with h5py.File(bio, "w") as f:
        c = _chunk_words(H, dtype.itemsize, 1 << 30)
        emb = f.create_dataset("embeddings", shape=(K, 0, H), maxshape=(K, None, H), dtype=dtype,
                               chunks=(1, c, H))
        offsets = [0]
        tokens: list[str] = []
        valid_all: list[np.ndarray] = []
        order = [j for j, t in enumerate(texts) if t is not None]
        bar = tqdm(total=len(order), desc=f"words {lang}", unit="sent", disable=not progress, leave=False)
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            batch_texts = [texts[j] for j in idx]
            spans = [words[j] for j in idx]
            out = encode_words(lm, batch_texts, spans, attrs["pooling"], attrs["prefix"], attrs["max_length"])
            for j, t, sp, (e, v) in zip(idx, batch_texts, spans, out):
                while len(offsets) <= j:  # sentences before j that are missing: no words
                    offsets.append(len(tokens))
                n0 = emb.shape[1]
                emb.resize(n0 + len(sp), axis=1)
                emb[:, n0:n0 + len(sp)] = e.cpu().numpy().astype(dtype)
                tokens += [t[a:b] for a, b in sp]
                valid_all.append(v)
                offsets.append(len(tokens))
            bar.update(len(idx))
        bar.close()
        while len(offsets) <= len(texts):
            offsets.append(len(tokens))
        f.create_dataset("offsets", data=np.asarray(offsets, np.int64))
        f.create_dataset("tokens", data=np.array(tokens, dtype=object), dtype=STR)
        f.create_dataset("valid", data=np.concatenate(valid_all) if valid_all else np.zeros(0, bool))
        f.create_dataset("mask", data=np.array([t is not None for t in texts], bool))
        for k, v in default_attrs(language=lang, **attrs).items():
            f.attrs[k] = v
    write_bytes_safely(bio.getbuffer(), path, "word part",
                       "Finished languages are kept; free space and run the same command again")


def _part_bytes(words: Sequence[Sequence[tuple[int, int]] | None], K: int, H: int, itemsize: int) -> int:
    """Bytes a language's word part will take (words x K x H, the word strings, offsets) from
    each text's word spans (None: missing), with a margin: checked before writing, so HDF5
    itself never meets a full disk."""
    n = chars = 0
    for spans in words:
        if spans is not None:
            n += len(spans)
            chars += sum(b - a for a, b in spans)
    c = _chunk_words(H, itemsize, 1 << 30)
    rows = -(-max(n, 1) // c) * c  # whole chunks of (1, c, H) per hidden state
    return int((rows * K * H * itemsize + 4 * chars + 24 * n + 9 * (len(words) + 1)) * 1.1) + (1 << 20)


def _close_quietly(f, tmp: Path | None = None, *objects) -> None:
    """Close an h5py file whose writes may have failed, its datasets first. On a full disk a
    failed close leaves HDF5 objects that crash the process when collected later; truncating
    the temporary first frees the space, so the flushes succeed (the file is removed after)."""
    if tmp is not None:
        try:
            os.truncate(tmp, 0)
        except OSError:
            pass
    for obj in objects:
        try:
            if obj is not None and obj.id.valid:
                obj.id.close()
        except Exception:  # noqa: BLE001
            pass
    for _ in range(2):
        try:
            f.close()
            return
        except Exception:  # noqa: BLE001
            if tmp is not None:
                try:
                    os.truncate(tmp, 0)
                except OSError:
                    pass


def _part_ok(path: Path, attrs: dict) -> bool:
    """A finished part of this very run (same provenance, engine.parts.provenance_diff)."""
    from babelmap.engine.parts import provenance_diff
    try:
        with h5py.File(path, "r") as f:
            found = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
            complete = all(n in f for n in ("offsets", "tokens", "valid", "mask", "embeddings"))
    except Exception:  # noqa: BLE001 - truncated or damaged: redo it
        return False
    return complete and not provenance_diff(found, attrs)


def join_parts(parts: Path, out: Path, languages: Sequence[str], sentence_ids: Sequence[str],
               attrs: dict) -> Path:
    """Join per-language part files into the word store (temporary name, atomic rename);
    refused early when the disk lacks the space, one StoreError on a failed write."""
    tmp = tmp_path(out)
    needed = sum((parts / f"{lang}.h5").stat().st_size for lang in languages if (parts / f"{lang}.h5").exists())
    check_free_space(out.parent, int(needed * 1.05) + (1 << 20), f"the word store {out.name}")
    f = None
    try:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("languages", data=np.array(list(languages), dtype=object), dtype=STR)
            f.create_dataset("sentence_ids", data=np.array(list(sentence_ids), dtype=object), dtype=STR)
            mask = np.zeros((len(languages), len(sentence_ids)), bool)
            for i, lang in enumerate(languages):
                p = parts / f"{lang}.h5"
                with h5py.File(p, "r") as src:
                    for k in PROVENANCE_KEYS:
                        if str(src.attrs.get(k)) != str(attrs[k]):
                            raise StoreError(f"part {p} was written with {k}={src.attrs.get(k)!r}, this run "
                                             f"has {attrs[k]!r}; delete {parts} to start over")
                    g = f.create_group(f"words/{lang}")
                    for name in ("offsets", "tokens", "valid"):
                        src.copy(src[name], g, name=name)
                    e = src["embeddings"]
                    K, N, H = e.shape
                    c = _chunk_words(H, e.dtype.itemsize, N)
                    dst = g.create_dataset("embeddings", shape=(K, N, H), dtype=e.dtype,
                                           chunks=(1, c, H) if N else None)
                    step = max(1, c * 8)
                    for k in range(K):
                        for a in range(0, N, step):
                            dst[k, a:a + step] = e[k, a:a + step]
                    mask[i] = src["mask"][()]
            f.create_dataset("mask", data=mask)
            for k, v in default_attrs(format=FORMAT, format_version=FORMAT_VERSION, **attrs).items():
                f.attrs[k] = v
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException as e:
        if f is not None:
            _close_quietly(f, tmp)
        tmp.unlink(missing_ok=True)
        if isinstance(e, (OSError, RuntimeError)):
            raise write_failure(e, out, needed, "word store", "The parts are kept; free space and run the "
                                "same command again") from None
        raise
    fsync_dir(out.parent)
    return out


def write_word_store(path: str | os.PathLike, sentence_ids: Sequence[str], words: dict,
                     attrs: dict | None = None, dtype: str = "float16") -> Path:
    """Write a word store from memory: `words[lang] = (offsets [S+1], tokens [N], embeddings
    [K, N, H])` (optionally a 4th item, valid [N]). For tests, benchmarks and small jobs."""
    path = Path(path)
    langs = sorted(words)
    tmp = tmp_path(path)
    with h5py.File(tmp, "w") as f:
        f.create_dataset("languages", data=np.array(langs, dtype=object), dtype=STR)
        f.create_dataset("sentence_ids", data=np.array(list(sentence_ids), dtype=object), dtype=STR)
        mask = np.zeros((len(langs), len(sentence_ids)), bool)
        for i, lang in enumerate(langs):
            off, toks, emb, *rest = words[lang]
            off = np.asarray(off, np.int64)
            if len(off) != len(sentence_ids) + 1 or off[-1] != len(toks) or np.shape(emb)[1] != len(toks):
                raise StoreError(f"{lang}: offsets, tokens and embeddings do not agree")
            g = f.create_group(f"words/{lang}")
            g.create_dataset("offsets", data=off)
            g.create_dataset("tokens", data=np.array(list(toks), dtype=object), dtype=STR)
            g.create_dataset("valid", data=np.asarray(rest[0], bool) if rest else np.ones(len(toks), bool))
            K, N, H = np.shape(emb)
            g.create_dataset("embeddings", data=np.asarray(emb, dtype), chunks=(1, _chunk_words(H, 2, N), H) if N else None)
            mask[i] = np.diff(off) > 0
        f.create_dataset("mask", data=mask)
        base = {k: "" for k in PROVENANCE_KEYS}
        base.update(dtype=dtype, **(attrs or {}))
        for k, v in default_attrs(format=FORMAT, format_version=FORMAT_VERSION, **base).items():
            f.attrs[k] = v
    os.replace(tmp, path)
    return path


def extract_words(corpus, out: str | os.PathLike, model=None, *, languages: Sequence[str] | None = None,
                  pooling: str = "mean", segmentation: str = "unicode", store_dtype: str = "float16",
                  device: str = "auto", dtype: str = "float32", max_length: int | None = None,
                  prefix: str | None = None, batch_size: int = 16, progress: bool = True,
                  keep_parts: bool = False) -> Path:
    """Extract every word's embedding at every hidden state into a word store at `out`.

    `model`: a `LoadedModel`, a checkpoint directory, or None for the embedded default.
    Resumable: finished languages are kept in `<out>.parts/` and skipped on a re-run with the
    same model, corpus and settings. Returns the store path.
    """
    from babelmap.engine.models import load_model

    if pooling not in POOLINGS:
        raise ValueError(f"unknown sub-word pooling {pooling!r}; choose one of {POOLINGS}")
    if segmentation not in SEGMENTATIONS:
        raise ValueError(f"unknown segmentation {segmentation!r}; choose one of {SEGMENTATIONS}")
    if languages is not None:
        corpus = corpus.select(languages=languages)
    if not corpus.languages or not corpus.sentence_ids:
        raise StoreError(f"corpus {corpus.name} is empty: no languages or sentences to extract")
    lm = model if hasattr(model, "model") else load_model(model, device=device, dtype=dtype,
                                                          prefix=prefix if prefix is not None
                                                          else model_prefix(model))
    if prefix is None:
        prefix = lm.prefix
    max_length = int(max_length or lm.max_length)
    attrs = _part_attrs(lm, corpus, pooling, segmentation, store_dtype, max_length, prefix)
    out = Path(out)
    parts = parts_dir(out)
    with OutputLock(out):
        parts.mkdir(parents=True, exist_ok=True)
        for stale in [p for p in parts.iterdir() if is_tmp(p)] + list(out.parent.glob(f".{out.name}.tmp-*")):
            stale.unlink(missing_ok=True)  # left by a killed run (we hold the lock)
        was_training = lm.model.training
        lm.model.eval()
        try:
            for lang in corpus.languages:
                p = parts / f"{lang}.h5"
                if p.exists() and _part_ok(p, attrs):
                    log.info("words: %s already done in %s", lang, p)
                    continue
                _write_part(p, lm, corpus, lang, attrs, batch_size, progress)
        finally:
            lm.model.train(was_training)
        join_parts(parts, out, corpus.languages, corpus.sentence_ids, attrs)
    if not keep_parts:
        for lang in corpus.languages:
            (parts / f"{lang}.h5").unlink(missing_ok=True)
        try:
            parts.rmdir()
        except OSError:
            pass
    return out


def model_prefix(model_dir) -> str | None:
    """The text prefix a checkpoint written by `babelmap adjust` asks for (its
    `babelmap_model.json`), or None (then the loader's default applies)."""
    if model_dir is None:
        return None
    meta = Path(model_dir) / "babelmap_model.json"
    if meta.exists():
        return json.loads(meta.read_text()).get("prefix")
    return None


# ---------------------------------------------------------------------------------------------
# reading


class WordStore:
    """Read-only view of a word store; arrays are read lazily per language and layer."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise StoreError(f"no word store at {self.path}")
        try:
            self.f = h5py.File(self.path, "r")
        except OSError as e:
            raise StoreError(f"{self.path} is not a readable HDF5 file ({e})") from e
        if self.f.attrs.get("format") != FORMAT:
            raise StoreError(f"{self.path} is not a babelmap word store (format attribute "
                             f"{self.f.attrs.get('format')!r}); make one with `babelmap words`")
        dec = lambda a: [s.decode() if isinstance(s, bytes) else s for s in a]  # noqa: E731
        self.languages: list[str] = dec(self.f["languages"][()])
        self.sentence_ids: list[str] = dec(self.f["sentence_ids"][()])

    @property
    def attrs(self) -> dict:
        return {k: (v.item() if hasattr(v, "item") else v) for k, v in self.f.attrs.items()}

    def _group(self, lang: str):
        if lang not in self.languages:
            from babelmap.engine.languages import suggest
            raise StoreError(f"language {lang!r} is not in word store {self.path} "
                             f"(close: {', '.join(suggest(lang, self.languages)) or 'none'})")
        return self.f[f"words/{lang}"]

    @property
    def num_hidden_states(self) -> int:
        return int(self.f[f"words/{self.languages[0]}/embeddings"].shape[0])

    @property
    def layers(self) -> list[int]:
        return list(range(self.num_hidden_states))

    @property
    def hidden_size(self) -> int:
        return int(self.f[f"words/{self.languages[0]}/embeddings"].shape[2])

    @property
    def mask(self) -> np.ndarray:
        return self.f["mask"][()]

    def offsets(self, lang: str) -> np.ndarray:
        """[S+1] int64: words of sentence s are rows offsets[s]:offsets[s+1]."""
        return self._group(lang)["offsets"][()]

    def tokens(self, lang: str) -> list[str]:
        return [s.decode() if isinstance(s, bytes) else s for s in self._group(lang)["tokens"][()]]

    def valid(self, lang: str) -> np.ndarray:
        return self._group(lang)["valid"][()]

    def embeddings(self, lang: str, layer: int) -> np.ndarray:
        """[N, H] embeddings of all words of `lang` at one hidden state (as stored)."""
        return self._group(lang)["embeddings"][layer]

    def sentence_words(self, lang: str, s: int) -> list[str]:
        o = self.offsets(lang)
        return self.tokens(lang)[o[s]:o[s + 1]]

    def close(self) -> None:
        self.f.close()

    def __enter__(self) -> "WordStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<babelmap WordStore {self.path.name}: {len(self.languages)} languages x "
                f"{len(self.sentence_ids)} sentences, model={self.attrs.get('model')!r}>")


def open_words(path: str | os.PathLike) -> WordStore:
    """Open a word store for reading (see `WordStore`)."""
    return WordStore(path)


def iter_sentence_words(store: WordStore, lang: str) -> Iterator[list[str]]:
    """The words of each sentence of `lang`, in sentence order."""
    o, toks = store.offsets(lang), store.tokens(lang)
    for s in range(len(o) - 1):
        yield toks[o[s]:o[s + 1]]
