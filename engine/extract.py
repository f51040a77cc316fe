"""All-layer pooled sentence embeddings of a parallel corpus into a store (DESIGN.md "Store").

    extract(corpus, "store.h5", model=None)          # plain python: one process
    accelerate launch --num_processes N -m babelmap extract ...   # N processes, one store

The run, on every process:
1. lock the output (main process), load the model, count tokens of every present sentence
   (the tokenizer's cheap pass) and cut each language into length-sorted, token-budgeted
   batches (engine.batching): the same on every process and in every run;
2. read the parts already in `<store>.parts/`: finished units are kept, parts of another
   run (model, pooling, dtype, corpus...) are refused, damaged ones are redone;
3. plan the remaining units (a language, or a batch range of a big one), balanced by padded
   tokens across processes (engine.plan), and write each finished unit as a part
   (engine.parts: temp name, fsync, atomic rename);
4. after every process is done, the main process joins the parts into the store
   (engine.join: verified provenance, checksums, shapes and coverage) and removes the parts.
A kill at any moment loses at most the units in flight; the same command resumes.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from babelmap.engine.batching import Batch, default_token_budget, make_batches
from babelmap.engine.corpora.base import ParallelCorpus
from babelmap.engine.errors import CorpusError, StoreError
from babelmap.engine.join import join_parts
from babelmap.engine.lock import OutputLock
from babelmap.engine.parts import (BadPart, describe_diff, is_tmp, parts_dir, provenance_diff, read_arrays,
                                   read_part, reset_test_counter, write_part)
from babelmap.engine.plan import DEFAULT_UNIT_BYTES, DEFAULT_UNIT_TOKENS, Unit, assign, plan_units

log = logging.getLogger("babelmap")

COMPUTE_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
                  "float16": "float16", "fp16": "float16"}
STORE_DTYPES = ("float16", "float32")


class _Single:
    """Stand-in for accelerate's PartialState when accelerate is not importable."""
    num_processes, process_index, local_process_index, is_main_process = 1, 0, 0, True
    device = None

    def wait_for_everyone(self) -> None:
        pass


def _state(device: str = "auto"):
    """accelerate's PartialState: one process under plain python; under `accelerate launch` /
    `torchrun` with N processes, N ranks (gloo on CPU: asked for with --device cpu, accelerate's
    --cpu, or when there is no CUDA)."""
    try:
        from accelerate import PartialState
    except ImportError:  # pragma: no cover - accelerate is a dependency
        return _Single()
    import torch
    cpu = (device == "cpu" or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
           or not torch.cuda.is_available())
    return PartialState(cpu=cpu)


def _device_for(state, device: str) -> str:
    """The device of this process: with several processes on GPUs, one GPU each."""
    if device in ("auto", "cuda") and getattr(state, "device", None) is not None:
        d = str(state.device)
        if device == "auto" or d.startswith("cuda"):
            return d
    return device


def _present_texts(corpus: ParallelCorpus, skip_bad: bool) -> tuple[np.ndarray, list[dict]]:
    """The mask of sentences to embed; a present but empty text is an error, or with
    skip_bad a recorded skip."""
    mask = corpus.mask.copy()
    skipped = []
    for i, lang in enumerate(corpus.languages):
        for j, t in enumerate(corpus.texts[i]):
            if t is not None and not t.strip():
                if not skip_bad:
                    raise CorpusError(f"sentence {corpus.sentence_ids[j]!r} is empty", language=lang,
                                      hint="fix the corpus, or pass --skip-bad to treat empty texts as missing")
                mask[i, j] = False
                skipped.append({"language": lang, "sentence": corpus.sentence_ids[j], "reason": "empty text"})
    return mask, skipped


def _scan(folder: Path, expected: dict, out: Path, batches: dict[str, list[Batch]],
          n_layers: int, hidden: int, store_dtype: str) -> tuple[dict[str, list[tuple[int, int]]], list[Path], int]:
    """Finished batch ranges per language from the parts in `folder`, and the files to
    remove (damaged parts, stale temporaries, overlapping parts). Parts of another run raise."""
    done: dict[str, list[tuple[int, int]]] = {}
    remove: list[Path] = []
    kept = 0
    if not folder.is_dir():
        return done, remove, kept
    for path in sorted(folder.iterdir()):
        if is_tmp(path):
            remove.append(path)
            continue
        if path.suffix != ".h5":
            continue
        try:
            part = read_part(path)
            diffs = provenance_diff(part.attrs, expected)
            if diffs:
                raise StoreError(describe_diff(f"part {path}", diffs, out))
            lang, (a, b) = part.lang, part.batch_range
            if lang not in batches or not (0 <= a < b <= len(batches[lang])):
                raise BadPart(f"{path.name}: unit {lang}#b{a}-{b} is not in this run's plan")
            sent, _, _ = read_arrays(part, n_layers, hidden, store_dtype)
            want = np.concatenate([bt.sentences for bt in batches[lang][a:b]])
            if not np.array_equal(sent, want):
                raise BadPart(f"{path.name}: its sentences differ from unit {lang}#b{a}-{b}")
            if any(not (b2 <= a or b <= a2) for a2, b2 in done.get(lang, [])):
                raise BadPart(f"{path.name}: overlaps another finished part")
        except BadPart as e:
            log.warning("redoing a damaged part: %s", e)
            remove.append(path)
            continue
        done.setdefault(lang, []).append((a, b))
        kept += 1
    return done, remove, kept


def _finished_parts(state, folder: Path, provenance: dict, out: Path, batches: dict[str, list[Batch]],
                    K: int, H: int, store_dtype: str) -> tuple[dict[str, list[tuple[int, int]]], int]:
    """Finished batch ranges per language and how many parts hold them. The main process
    reads and verifies the parts, removes damaged ones and stale temporaries, and sends the
    outcome (or the refusal) to every process, so all plan the same remaining work."""
    result: tuple = ()
    if state.is_main_process:
        try:
            done, remove, kept = _scan(folder, provenance, out, batches, K, H, store_dtype)
            for p in remove:
                p.unlink(missing_ok=True)
            result = ("ok", done, kept)
        except StoreError as e:
            result = ("error", str(e))
    if state.num_processes > 1:
        from accelerate.utils import broadcast_object_list
        box = [result]
        broadcast_object_list(box, from_process=0)
        result = box[0]
    if result[0] == "error":
        raise StoreError(result[1])
    return result[1], result[2]


def _existing_store(out: Path, expected: dict) -> bool:
    """True when `out` is already the finished store of this very run; StoreError when it
    is another run's store."""
    if not out.exists():
        return False
    from babelmap.engine.store import open_store
    try:
        with open_store(out) as st:
            attrs = st.attrs
    except StoreError as e:
        raise StoreError(f"{out} exists but is not a readable store ({e}); run with --overwrite") from None
    diffs = provenance_diff(attrs, expected)
    if diffs:
        raise StoreError(describe_diff(f"the existing store {out}", diffs, out))
    return True


def extract(corpus: ParallelCorpus, out: str | os.PathLike, model: Any = None, *, pooling: str | None = None,
            dtype: str = "float32", store_dtype: str = "float16", device: str = "auto",
            max_length: int | None = None, token_budget: int | None = None, prefix: str | None = None,
            progress: bool = True, skip_bad: bool = False, overwrite: bool = False, keep_parts: bool = False,
            unit_tokens: int = DEFAULT_UNIT_TOKENS) -> Path:
    """Embed every present sentence of every language of `corpus` at every hidden state and
    write the store `out`. Works as one process and under `accelerate launch` (each process
    takes a token-balanced share of the units; the main process joins). Resumes from the
    finished parts of an interrupted run of the same command. Returns the store path.

    `model`: a model id or checkpoint folder (None: the embedded default), or a LoadedModel.
    `dtype`: forward precision (float32, bfloat16, float16); pooling is always fp32.
    `store_dtype`: float16 (default) or float32. `token_budget`: padded tokens per batch.
    `overwrite`: discard an existing store and parts. `keep_parts`: leave `<out>.parts/`.
    """
    out = Path(out)
    if store_dtype not in STORE_DTYPES:
        raise StoreError(f"store dtype {store_dtype!r} is not one of {STORE_DTYPES}")
    if dtype not in COMPUTE_DTYPES:
        raise StoreError(f"dtype {dtype!r} is not one of {sorted(COMPUTE_DTYPES)}")
    compute_dtype = COMPUTE_DTYPES[dtype]
    if not corpus.languages or not corpus.sentence_ids:
        raise CorpusError(f"corpus {corpus.name} is empty ({len(corpus.languages)} languages, "
                          f"{len(corpus.sentence_ids)} sentences)")
    state = _state(device)
    main = state.is_main_process
    lock = OutputLock(out) if main else None
    if lock is not None:
        lock.acquire()
    try:
        state.wait_for_everyone()
        return _run(state, corpus, out, model, pooling, compute_dtype, store_dtype, device, max_length,
                    token_budget, prefix, progress, skip_bad, overwrite, keep_parts, unit_tokens)
    finally:
        if lock is not None:
            lock.release()


def _run(state, corpus, out, model, pooling, compute_dtype, store_dtype, device, max_length, token_budget,
         prefix, progress, skip_bad, overwrite, keep_parts, unit_tokens) -> Path:
    main = state.is_main_process
    folder = parts_dir(out)
    t0 = time.perf_counter()
    reset_test_counter()
    if main:
        if overwrite:
            if out.exists():
                out.unlink()
            shutil.rmtree(folder, ignore_errors=True)
        for stale in out.parent.glob(f".{out.name}.tmp-*"):  # a join killed midway (we hold the lock)
            stale.unlink(missing_ok=True)
    state.wait_for_everyone()

    # 1. model, token counts, batches (identical on every process)
    if hasattr(model, "embed") and hasattr(model, "token_counts"):
        lm = model
    else:
        from babelmap.engine.models import load_model
        lm = load_model(model, device=_device_for(state, device), dtype=compute_dtype, prefix=prefix)
    if max_length is not None:
        lm.max_length = int(max_length)
    pool = pooling or lm.default_pooling
    budget = int(token_budget or default_token_budget(str(getattr(lm, "device", "cpu"))))
    K, H = int(lm.num_hidden_states), int(lm.hidden_size)
    mask, skipped_here = _present_texts(corpus, skip_bad)
    provenance = {"model": str(lm.name), "model_fingerprint": str(lm.fingerprint), "pooling": str(pool),
                  "dtype": store_dtype, "compute_dtype": compute_dtype, "max_length": int(lm.max_length),
                  "prefix": str(lm.prefix or ""), "corpus_name": corpus.name,
                  "corpus_fingerprint": corpus.fingerprint(), "token_budget": budget}
    if _existing_store(out, provenance):
        if main:
            log.warning("%s is already complete for this model and corpus; nothing to do "
                        "(--overwrite to redo it)", out)
            if not keep_parts:
                shutil.rmtree(folder, ignore_errors=True)
        state.wait_for_everyone()
        return out

    t_count = time.perf_counter()
    ntok_all = _count_tokens(lm, corpus, mask, state, progress)
    t_count = time.perf_counter() - t_count
    batches: dict[str, list[Batch]] = {
        lang: make_batches(np.flatnonzero(mask[i]), ntok_all[i, mask[i]], budget)
        for i, lang in enumerate(corpus.languages)}

    # 2. finished parts: the main process verifies them (before anyone writes) and tells the others
    done, kept = _finished_parts(state, folder, provenance, out, batches, K, H, store_dtype)
    if main and kept:
        log.warning("resuming: %d finished parts kept in %s", kept, folder)

    # 3. plan, share out, embed
    unit_sentences = max(1, DEFAULT_UNIT_BYTES // max(1, K * H * np.dtype(store_dtype).itemsize))
    units = plan_units(corpus.languages, {l: [b.cost for b in bs] for l, bs in batches.items()},
                       {l: [len(b) for b in bs] for l, bs in batches.items()}, done,
                       num_processes=state.num_processes, unit_tokens=unit_tokens, unit_sentences=unit_sentences)
    mine = assign(units, state.num_processes)[state.process_index]
    part_attrs = dict(provenance)
    times = {"count": t_count}
    written = _embed_units(lm, corpus, mine, batches, ntok_all, pool, K, H, store_dtype, folder, part_attrs,
                           state, progress, times)
    log.info("process %d wrote %d parts (%d sentences, %d tokens; seconds: %s)", state.process_index, written,
             sum(u.n_sentences for u in mine), sum(int(ntok_all[u.lang_index, np.concatenate(
                 [b.sentences for b in batches[u.lang][u.batch_start:u.batch_stop]])].sum()) for u in mine),
             ", ".join(f"{k} {v:.2f}" for k, v in times.items()))
    state.wait_for_everyone()

    # 4. join
    if main:
        attrs = dict(provenance)
        attrs["skipped"] = json.dumps(list(corpus.skipped) + skipped_here, ensure_ascii=False, default=str)
        attrs["skip_bad"] = bool(skip_bad)
        t_join = time.perf_counter()
        join_parts(folder, out, languages=corpus.languages, sentence_ids=corpus.sentence_ids, mask=mask,
                   provenance=provenance, n_layers=K, hidden=H, store_dtype=store_dtype, attrs=attrs,
                   progress=progress)
        log.info("joined %s in %.2f s", out.name, time.perf_counter() - t_join)
        if not keep_parts:
            shutil.rmtree(folder, ignore_errors=True)
        log.info("wrote %s in %.1f s", out, time.perf_counter() - t0)
    state.wait_for_everyone()
    return out


def _count_tokens(lm, corpus: ParallelCorpus, mask: np.ndarray, state, progress: bool) -> np.ndarray:
    """int32 [L, S] token counts of the present sentences (the tokenizer's cheap pass, with
    the model's truncation). With several processes each counts every N-th language and the
    counts are exchanged, so every process ends up with the same complete table."""
    from tqdm.auto import tqdm
    n, rank = state.num_processes, state.process_index
    mine = []
    for i in tqdm(range(rank, len(corpus.languages), n), desc="count tokens", unit="lang",
                  disable=not (progress and state.is_main_process), leave=False):
        lang = corpus.languages[i]
        pos = np.flatnonzero(mask[i])
        texts = [corpus.texts[i][j] for j in pos]
        counts = np.asarray(lm.token_counts(texts, lang), np.int32) if texts else np.zeros(0, np.int32)
        mine.append((i, counts))
    if n > 1:
        from accelerate.utils import gather_object
        mine = gather_object(mine)
    ntok = np.zeros(mask.shape, np.int32)
    for i, counts in mine:
        ntok[i, mask[i]] = counts
    if len({i for i, _ in mine}) != len(corpus.languages):
        raise StoreError("token counts are missing for some languages (a process did not report)")
    return ntok


def _embed_units(lm, corpus: ParallelCorpus, units: list[Unit], batches: dict[str, list[Batch]],
                 ntok_all: np.ndarray, pool: str, K: int, H: int, store_dtype: str, folder: Path,
                 part_attrs: dict, state, progress: bool, times: dict | None = None) -> int:
    """Embed this process's units and write one part each; returns the number written.
    The next batch is tokenized in a helper thread while the model runs the current one (the
    Rust tokenizer releases the GIL), so on a GPU tokenization hides behind the forward.
    `times` gets the seconds spent waiting for tokenization, in the model (forward + pooling
    + copy to the host), and writing parts."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm
    import torch

    def encode(unit: Unit, b: Batch):
        return lm.tokenize([corpus.texts[unit.lang_index][j] for j in b.sentences], unit.lang)

    queue = [(u, b) for u in units for b in batches[u.lang][u.batch_start:u.batch_stop]]
    ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="babelmap-tokenize")
    nxt = ahead.submit(encode, *queue[0]) if queue else None
    k = 0

    total = sum(u.n_sentences for u in units)
    rank = state.process_index
    bar = tqdm(total=total, unit="sent", desc=f"extract [{rank + 1}/{state.num_processes}]",
               position=rank, disable=not progress, dynamic_ncols=True, leave=state.is_main_process)
    tokens, t_start, written = 0, time.perf_counter(), 0
    t_tok = t_model = t_write = 0.0
    try:
        for unit in units:
            i = unit.lang_index
            unit_batches = batches[unit.lang][unit.batch_start:unit.batch_stop]
            sentences = np.concatenate([b.sentences for b in unit_batches])
            emb = np.empty((K, len(sentences), H), dtype=store_dtype)
            at = 0
            for b in unit_batches:
                t0 = time.perf_counter()
                assert queue[k][1] is b
                enc = nxt.result()
                k += 1
                if k < len(queue):
                    nxt = ahead.submit(encode, *queue[k])
                t1 = time.perf_counter()
                pooled = lm.embed(enc, pool)
                if isinstance(pooled, torch.Tensor):
                    pooled = pooled.detach().to("cpu", torch.float32).numpy()
                t2 = time.perf_counter()
                t_tok, t_model = t_tok + t1 - t0, t_model + t2 - t1
                emb[:, at:at + len(b), :] = np.asarray(pooled, np.float32).transpose(1, 0, 2)
                at += len(b)
                tokens += int(ntok_all[i, b.sentences].sum())
                dt = max(1e-9, time.perf_counter() - t_start)
                bar.set_postfix_str(f"{unit.lang}, {tokens / dt:,.0f} tok/s", refresh=False)
                bar.update(len(b))
            attrs = dict(part_attrs, language=unit.lang, language_index=unit.lang_index, unit=unit.uid,
                         batch_start=unit.batch_start, batch_stop=unit.batch_stop,
                         sentence_first=int(sentences.min()), sentence_last=int(sentences.max()))
            t0 = time.perf_counter()
            try:
                write_part(folder, unit.filename, sentences, ntok_all[i, sentences], emb, attrs)
            except OSError as e:
                what = "the disk is full" if e.errno == errno.ENOSPC else f"writing failed ({e})"
                raise StoreError(f"cannot write part {folder / unit.filename}: {what}. Finished parts "
                                 f"are kept; free space and run the same command again to resume") from None
            t_write += time.perf_counter() - t0
            written += 1
    finally:
        ahead.shutdown(wait=True, cancel_futures=True)
        bar.close()
        if times is not None:
            times.update(tokenize=t_tok, model=t_model, write=t_write)
    return written
