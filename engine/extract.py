"""All-layer pooled sentence embeddings of a parallel corpus into a store (DESIGN.md "Store").

    extract(corpus, "store.h5", model=None)          # plain python: one process
    torchrun --nproc_per_node N -m babelmap extract ...             # N processes, one store
    accelerate launch --multi_gpu --num_processes N -m babelmap extract ...

The run, on every process:
1. lock the output (main process), load the model, and plan the units from the corpus alone
   (engine.plan: groups of language blocks, never dependent on the number of processes);
2. the main process lists the finished parts in `<store>.parts/` (engine.parts.finished_units:
   attributes only, no re-hash) and tells the others; parts of another run are refused;
3. the remaining units are shared out by characters (LPT); each process keeps only its
   share's texts, and for each unit tokenizes every sentence once (threads, ahead of the
   model), sorts them by length across languages and runs mixed-language, padding-capped
   batches (engine.batching); pooling and the cast to the stored dtype happen on the device,
   rows are scattered back into unit order there, copied once per unit into a pinned host
   buffer, and a writer thread (bounded queue) hashes, writes and fsyncs the part;
4. after every process is done, the main process joins the parts by reference (engine.join).
A kill at any moment loses at most the units in flight; the same command resumes.
"""
from __future__ import annotations

import inspect
import json
import logging
import os
import queue
import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from babelmap.engine.batching import collate, default_token_budget, min_useful, sort_batches, token_ids
from babelmap.engine.corpora.base import ParallelCorpus
from babelmap.engine.errors import CorpusError, ModelError, StoreError
from babelmap.engine.lock import OutputLock
from babelmap.engine.plan import DEFAULT_UNIT_BYTES, Unit, assign, plan_units, unit_sizes

log = logging.getLogger("babelmap")

COMPUTE_DTYPES = {"auto": "auto", "float32": "float32", "fp32": "float32", "bfloat16": "bfloat16",
                  "bf16": "bfloat16", "float16": "float16", "fp16": "float16"}
STORE_DTYPES = ("float16", "float32")
WRITE_QUEUE = 2                      # finished units waiting for the writer thread, at most
TIMEOUT_ENV = "BABELMAP_DIST_TIMEOUT"  # seconds a process waits for the others at a collective
# this process's share of the last run (benchmarks read it): sentences, real and padded tokens,
# batches, units, and seconds by stage (`model_thread_cpu`: CPU time the model thread spent)
LAST_RUN: dict[str, float] = {}


class _Single:
    """Stand-in for accelerate's PartialState when accelerate is not importable."""
    num_processes, process_index, local_process_index, is_main_process = 1, 0, 0, True
    device = None

    def wait_for_everyone(self) -> None:
        pass


def dist_timeout() -> float:
    """Seconds a process waits for the others at a collective before it gives up."""
    return float(os.environ.get(TIMEOUT_ENV, "1800"))


def _check_launch() -> None:
    """`accelerate launch --num_processes N` without `--multi_gpu` (or a config saying so)
    starts ONE process (accelerate's simple launcher: it sets MASTER_PORT but no WORLD_SIZE).
    Refuse, rather than silently run N times slower."""
    e = os.environ
    ranks = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
    if "ACCELERATE_USE_CPU" in e and "MASTER_PORT" in e and not any(k in e for k in ranks):
        raise StoreError("accelerate launch started one process although several were asked for (without "
                         "--multi_gpu it runs one); give `accelerate launch --multi_gpu --num_processes N "
                         "-m babelmap extract ...` (with --device cpu on a machine without GPUs: gloo), or "
                         "`torchrun --nproc_per_node N -m babelmap extract ...`")


def _state(device: str = "auto"):
    """accelerate's PartialState: one process under plain python; under `accelerate launch
    --multi_gpu` / `torchrun` with N processes, N ranks (gloo on CPU: asked for with --device
    cpu, accelerate's --cpu, or when there is no CUDA). Collectives time out after
    $BABELMAP_DIST_TIMEOUT seconds (default 1800) instead of hanging on a dead process."""
    _check_launch()
    try:
        from accelerate import PartialState
    except ImportError:  # pragma: no cover - accelerate is a dependency
        return _Single()
    import torch
    cpu = (device == "cpu" or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
           or not torch.cuda.is_available())
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return PartialState(cpu=cpu, timeout=timedelta(seconds=dist_timeout()))
    return PartialState(cpu=cpu)


def _collective(state, what: str, fn, *args):
    """Run a collective; a dead or stuck peer becomes one clear StoreError."""
    if state.num_processes == 1:
        return fn(*args) if fn is not None else None
    try:
        return fn(*args)
    except StoreError:
        raise  # stopped by the launcher (SIGTERM handler): already one clear line
    except Exception as e:  # noqa: BLE001 - gloo/nccl raise RuntimeError/DistBackendError
        raise StoreError(f"process {state.process_index}: another process stopped or did not answer within "
                         f"{dist_timeout():.0f} s while {what} ({e.__class__.__name__}: {str(e)[:200]}); "
                         "finished parts are kept: run the same command again to resume") from None


def _barrier(state, what: str) -> None:
    _collective(state, what, state.wait_for_everyone)


def _broadcast(state, obj, what: str):
    if state.num_processes == 1:
        return obj
    from accelerate.utils import broadcast_object_list
    box = [obj]
    _collective(state, what, broadcast_object_list, box, 0)
    return box[0]


def _device_for(state, device: str) -> str:
    """The device of this process: with several processes on GPUs, one GPU each."""
    if device in ("auto", "cuda") and getattr(state, "device", None) is not None:
        d = str(state.device)
        if device == "auto" or d.startswith("cuda"):
            return d
    return device


def resolve_compute_dtype(dtype: str | None, device: str) -> str:
    """`auto` (or None): bfloat16 on CUDA, float32 elsewhere."""
    d = COMPUTE_DTYPES.get(dtype or "auto")
    if d is None:
        raise StoreError(f"dtype {dtype!r} is not one of {sorted(COMPUTE_DTYPES)}")
    if d == "auto":
        return "bfloat16" if str(device).startswith("cuda") else "float32"
    return d


def _scan_corpus(corpus: ParallelCorpus, skip_bad: bool) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """(mask, characters [L, S] int32, skipped): one pass over the texts. A present but empty
    text is an error, or with skip_bad a recorded skip."""
    L, S = len(corpus.languages), len(corpus.sentence_ids)
    mask = np.zeros((L, S), bool)
    chars = np.zeros((L, S), np.int32)
    skipped = []
    for i, lang in enumerate(corpus.languages):
        for j, t in enumerate(corpus.texts[i]):
            if t is None:
                continue
            if not t.strip():
                if not skip_bad:
                    raise CorpusError(f"sentence {corpus.sentence_ids[j]!r} is empty", language=lang,
                                      hint="fix the corpus, or pass --skip-bad to treat empty texts as missing")
                skipped.append({"language": lang, "sentence": corpus.sentence_ids[j], "reason": "empty text"})
                continue
            mask[i, j] = True
            chars[i, j] = len(t)
    return mask, chars, skipped


def _existing_store(out: Path, expected: dict) -> bool:
    """True when `out` is already the finished store of this very run; StoreError when it
    is another run's store."""
    if not out.exists():
        return False
    from babelmap.engine.parts import describe_diff, provenance_diff
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


def check_out(out: Path, overwrite: bool = False) -> None:
    """`--out` must name a store file, never a folder (not even with --overwrite)."""
    if Path(out).is_dir():
        raise StoreError(f"--out {out} is a folder; give a file name for the store, e.g. {Path(out) / 'store.h5'}"
                         + (" (--overwrite never removes a folder)" if overwrite else ""))


def parse_layers(spec: str | Sequence[int] | None, K: int) -> list[int] | None:
    """Hidden-state ids to keep from `--layers 0,6,12` (negative counts from the end);
    None keeps all K."""
    if spec is None or spec == "" or (not isinstance(spec, str) and len(spec) == 0):
        return None
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out = []
    for x in items:
        try:
            k = int(str(x).strip())
        except ValueError:
            raise ModelError(f"--layers wants comma-separated hidden-state numbers, got {spec!r}") from None
        k = k + K if k < 0 else k
        if not 0 <= k < K:
            raise ModelError(f"--layers: hidden state {x} does not exist; this model has {K} (0..{K - 1}, "
                             "0 = the embedding output)")
        if k not in out:
            out.append(k)
    return sorted(out) if sorted(out) != list(range(K)) else None


def extract(corpus: ParallelCorpus, out: str | os.PathLike, model: Any = None, *, pooling: str | None = None,
            dtype: str | None = "auto", store_dtype: str = "float16", device: str = "auto",
            max_length: int | None = None, token_budget: int | None = None, prefix: str | None = None,
            progress: bool = True, skip_bad: bool = False, overwrite: bool = False, keep_parts: bool = False,
            layers: str | Sequence[int] | None = None, unit_sentences: int | None = None,
            tokenizer_threads: int | None = None, release_texts: bool = False,
            revision: str | None = None) -> Path:
    """Embed every present sentence of every language of `corpus` at every hidden state (or
    the `layers` kept) and write the store `out`. Works as one process and under `torchrun` /
    `accelerate launch --multi_gpu` (each process takes a share of the units; the main
    process joins). Resumes from the finished parts of an interrupted run of the same
    command. Returns the store path.

    `model`: a model id or checkpoint folder (None: the embedded default), or a LoadedModel.
    `dtype`: forward precision; "auto" = bfloat16 on CUDA, float32 on CPU; pooling is fp32.
    `store_dtype`: float16 (default) or float32. `token_budget`: padded tokens per batch.
    `layers`: hidden-state ids to keep ("0,6,12"). `unit_sentences`: sentences per unit
    (default from the budget and memory; tests use small units to exercise several).
    `overwrite`: discard an existing store and parts. `keep_parts`: leave `<out>.parts/`.
    `release_texts`: once the work is planned, drop from `corpus.texts` the languages outside
    this process's share (the CLI does, so each rank holds only its share; `corpus` is then
    spent).
    """
    out = Path(out)
    if store_dtype not in STORE_DTYPES:
        raise StoreError(f"store dtype {store_dtype!r} is not one of {STORE_DTYPES}")
    if (dtype or "auto") not in COMPUTE_DTYPES:
        raise StoreError(f"dtype {dtype!r} is not one of {sorted(COMPUTE_DTYPES)}")
    if token_budget is not None and int(token_budget) < 1:
        raise StoreError(f"--token-budget must be a positive number of padded tokens per batch, got {token_budget}")
    if max_length is not None and int(max_length) < 1:
        raise StoreError(f"--max-length must be a positive number of tokens, got {max_length}")
    for name, v in (("--tokenizer-threads", tokenizer_threads), ("--unit-sentences", unit_sentences)):
        if v is not None and int(v) < 1:
            raise StoreError(f"{name} must be at least 1, got {v}")
    check_out(out, overwrite)
    if not corpus.languages or not corpus.sentence_ids:
        raise CorpusError(f"corpus {corpus.name} is empty ({len(corpus.languages)} languages, "
                          f"{len(corpus.sentence_ids)} sentences)")
    state = _state(device)
    main = state.is_main_process
    lock = OutputLock(out) if main else None
    if lock is not None:
        lock.acquire()
    restore = _stop_on_sigterm(state, out)
    try:
        _barrier(state, "starting")
        return _run(state, corpus, out, model, pooling, dtype, store_dtype, device, max_length, token_budget,
                    prefix, progress, skip_bad, overwrite, keep_parts, layers, unit_sentences, tokenizer_threads,
                    release_texts, revision)
    finally:
        if restore is not None:
            signal.signal(signal.SIGTERM, restore)
        if lock is not None:
            lock.release()


def _stop_on_sigterm(state, out: Path):
    """With several processes, the launcher (torchrun, accelerate) SIGTERMs every process
    when one fails: end with one clear line (and the writer's finished parts) instead of a
    bare kill. Returns the previous handler (None when not installed)."""
    if state.num_processes == 1 or threading.current_thread() is not threading.main_thread():
        return None
    from babelmap.engine.parts import parts_dir

    def stop(signum, frame):
        raise StoreError(f"process {state.process_index} was stopped by the launcher (SIGTERM): another process "
                         f"failed or was killed (see its message above); finished parts are kept in "
                         f"{parts_dir(out)}: run the same command again to resume")
    return signal.signal(signal.SIGTERM, stop)


@dataclass
class _Share:
    """What a process keeps of the corpus once the work is planned: its units' texts only."""

    texts: dict[int, list]     # language index -> texts (only the languages of this share)
    languages: list[str]


def _run(state, corpus, out, model, pooling, dtype, store_dtype, device, max_length, token_budget, prefix,
         progress, skip_bad, overwrite, keep_parts, layers, unit_sentences, tokenizer_threads,
         release_texts, revision=None) -> Path:
    from babelmap.engine.parts import parts_dir, reset_test_counter
    main = state.is_main_process
    folder = parts_dir(out)
    t0 = time.perf_counter()
    reset_test_counter()
    if main:
        if overwrite:
            from babelmap.engine.store import remove_store
            remove_store(out)  # the file, its shards, parts and temporaries
        for stale in out.parent.glob(f".{out.name}.tmp-*"):  # a join killed midway (we hold the lock)
            stale.unlink(missing_ok=True)
    _barrier(state, "clearing the output")

    # 1. model, settings, provenance, plan (identical on every process)
    dev = _device_for(state, device)
    if hasattr(model, "embed") and hasattr(model, "tokenizer"):
        if revision:
            raise ModelError(f"--revision {revision} needs a model name, not an already loaded model")
        lm = model
        compute_dtype = str(getattr(lm, "dtype", "float32")).replace("torch.", "")
    else:
        from babelmap.engine.models import load_model
        from babelmap.engine.models.loading import resolve_device
        compute_dtype = resolve_compute_dtype(dtype, str(resolve_device(dev)))
        # max_length is checked against the model's own position table (may exceed the default cap)
        lm = load_model(model, device=dev, dtype=compute_dtype, prefix=prefix, revision=revision,
                        max_length=max_length)
    if max_length is not None and int(max_length) != int(lm.max_length):
        if int(max_length) > int(lm.max_length):
            raise ModelError(f"--max-length {max_length}: model {lm.name} reads at most {lm.max_length} tokens")
        lm.max_length = int(max_length)
    pool = pooling or lm.default_pooling
    budget = int(token_budget or default_token_budget(str(getattr(lm, "device", "cpu"))))
    K, H = int(lm.num_hidden_states), int(lm.hidden_size)
    kept = parse_layers(layers, K)
    Kp = len(kept) if kept else K
    mask, chars, skipped_here = _scan_corpus(corpus, skip_bad)
    provenance = {"model": str(lm.name), "model_revision": str(getattr(lm, "revision", "") or ""),
                  "model_fingerprint": str(lm.fingerprint), "pooling": str(pool),
                  "dtype": store_dtype, "compute_dtype": compute_dtype, "max_length": int(lm.max_length),
                  "prefix": str(lm.prefix or ""), "corpus_name": corpus.name,
                  "corpus_fingerprint": corpus.fingerprint(), "token_budget": budget,
                  "layers": json.dumps(kept) if kept else ""}
    if hasattr(corpus, "provenance"):
        provenance.update({str(k): v for k, v in dict(corpus.provenance()).items()})
    if _existing_store(out, provenance):
        if main:
            log.warning("%s is already complete for this model and corpus; nothing to do "
                        "(--overwrite to redo it)", out)
            if not keep_parts:
                shutil.rmtree(folder, ignore_errors=True)
        _barrier(state, "finishing")
        return out

    row_bytes = Kp * H * np.dtype(store_dtype).itemsize
    target, cap = unit_sizes(budget, row_bytes, DEFAULT_UNIT_BYTES, unit_sentences)
    units = plan_units(corpus.languages, mask, chars, target=target, cap=cap)
    del chars

    # 2. finished parts: the main process lists them (before anyone writes) and tells the others
    done, done_infos = _finished(state, folder, provenance, out, units)
    if main and done:
        log.warning("resuming: %d finished parts kept in %s", len(done), folder)

    # 3. share out, keep only this share's texts, embed
    todo = [u for u in units if u.uid not in done]
    mine = assign(todo, state.num_processes)[state.process_index]
    need = sorted({i for u in mine for i in u.languages})
    share = _Share({i: corpus.texts[i] for i in need}, list(corpus.languages))
    meta = dict(languages=list(corpus.languages), sentence_ids=list(corpus.sentence_ids),
                documents=getattr(corpus, "documents", None), skipped=list(corpus.skipped) + skipped_here,
                name=corpus.name)
    log.info("process %d: %d of %d units, texts of %d of %d languages kept", state.process_index, len(mine),
             len(units), len(need), len(corpus.languages))
    if release_texts:
        for i in range(len(corpus.texts)):
            if i not in share.texts:
                corpus.texts[i] = []
    corpus = None  # noqa: F841 - this frame no longer needs the corpus
    times: dict[str, float] = {}
    written, n_sent, n_tok = _embed_units(lm, share, mine, pool, kept, store_dtype, folder, provenance,
                                          budget, state, progress, times, tokenizer_threads)
    log.info("process %d wrote %d parts (%d sentences, %d tokens; seconds: %s)", state.process_index, written,
             n_sent, n_tok, ", ".join(f"{k} {v:.2f}" for k, v in times.items()))
    _test_die_hook(state)
    _barrier(state, "waiting for every process to finish its units")

    # 4. join by reference
    if main:
        from babelmap.engine.join import join_parts
        attrs = dict(provenance)
        attrs["skipped"] = json.dumps(meta["skipped"], ensure_ascii=False, default=str)
        attrs["skip_bad"] = bool(skip_bad)
        t_join = time.perf_counter()
        join_parts(folder, out, languages=meta["languages"], sentence_ids=meta["sentence_ids"], mask=mask,
                   provenance=provenance, n_layers=Kp, hidden=H, store_dtype=store_dtype, attrs=attrs,
                   layers=kept, documents=meta["documents"], progress=progress, known=done_infos)
        log.info("joined %s in %.2f s", out.name, time.perf_counter() - t_join)
        if not keep_parts:
            shutil.rmtree(folder, ignore_errors=True)
        log.info("wrote %s in %.1f s", out, time.perf_counter() - t0)
    _barrier(state, "joining")
    return out


def _test_die_hook(state) -> None:
    """Test hook: `BABELMAP_TEST_DIE_RANK=r` SIGKILLs process r after its units, before the
    final barrier (a process that dies while the others wait)."""
    r = os.environ.get("BABELMAP_TEST_DIE_RANK")
    if r is not None and int(r) == state.process_index and state.num_processes > 1:
        os.kill(os.getpid(), signal.SIGKILL)


def _same_blocks(info, unit: Unit) -> bool:
    """A finished part's recorded blocks equal the planned unit's blocks."""
    got = list(getattr(info, "blocks", []))
    if len(got) != len(unit.blocks):
        return False
    for (lang, start, stop, sentences), b in zip(got, unit.blocks):
        if (str(lang), int(start), int(stop)) != (b.lang, b.start, b.stop):
            return False
        if not np.array_equal(np.asarray(sentences, np.int64), b.sentences):
            return False
    return True


def _finished(state, folder: Path, provenance: dict, out: Path, units: list[Unit]) -> tuple[set[str], dict]:
    """(uids of the planned units whose parts are finished, {part file name: PartInfo} of
    those parts on the main process, for the join to reuse; {} elsewhere). The main process
    reads the parts' records (engine.parts.finished_units: attributes only), removes parts
    that match no planned unit, and sends the outcome (or the refusal) to every process."""
    result: tuple = ()
    infos: dict = {}
    if state.is_main_process:
        try:
            from babelmap.engine.parts import finished_units
            found = finished_units(folder, provenance, out)
            plan = {u.uid: u for u in units}
            done = set()
            for uid, info in found.items():
                if uid in plan and _same_blocks(info, plan[uid]):
                    done.add(uid)
                    infos[Path(info.path).name] = info
                else:
                    log.warning("redoing: part %s is not a unit of this run's plan", Path(info.path).name)
                    Path(info.path).unlink(missing_ok=True)
            result = ("ok", done)
        except StoreError as e:
            result = ("error", str(e))
    result = _broadcast(state, result, "reading the finished parts")
    if result[0] == "error":
        raise StoreError(result[1])
    return result[1], infos


# -- the loop -------------------------------------------------------------------------------
@dataclass
class _Prepared:
    """A unit tokenized, sorted and collated, ready for the model."""

    unit: Unit
    n_tokens: np.ndarray            # int32 [n], unit order
    batches: list                   # [(SortedBatch, tensors dict, rows tensor)]


def _prepare(lm, share: _Share, unit: Unit, budget: int, pin: bool, lock: threading.Lock | None,
             floor: float) -> _Prepared:
    """One tokenization pass over the unit (per block: its language), one length sort across
    all its languages, padding-capped batches, collated (pinned on CUDA)."""
    import torch
    ids: list[list[int]] = []
    for b in unit.blocks:
        texts = [share.texts[b.lang_index][j] for j in b.sentences]
        if lock is not None:
            with lock:
                ids.extend(token_ids(lm, texts, b.lang))
        else:
            ids.extend(token_ids(lm, texts, b.lang))
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int32, count=len(ids))
    batches = []
    for sb in sort_batches(lengths, budget, floor):
        enc = collate(ids, sb.rows, sb.width, lm.tokenizer, pin=pin)
        rows = torch.from_numpy(sb.rows)
        batches.append((sb, enc, rows.pin_memory() if pin else rows))
    return _Prepared(unit, lengths, batches)


def _embed_fn(lm, pool: str, kept: list[int] | None, out_dtype):
    """batch -> [B, K', H] on the device in the stored dtype; uses LoadedModel.embed's
    `out_dtype`/`layers` when it has them, else selects and casts here (still on the device)."""
    import torch
    try:
        params = inspect.signature(lm.embed).parameters
    except (TypeError, ValueError):
        params = {}
    native = "out_dtype" in params and "layers" in params

    def run(enc):
        if native:
            pooled = lm.embed(enc, pool, out_dtype=out_dtype, layers=kept)
        else:
            pooled = lm.embed(enc, pool)
            if not isinstance(pooled, torch.Tensor):
                pooled = torch.as_tensor(np.asarray(pooled))
            if kept is not None:
                pooled = pooled[:, kept]
        return pooled.to(out_dtype)
    return run


class _Writer:
    """Writes finished units on a thread (hashing, HDF5, fsync off the model's path), from a
    bounded queue so memory stays bounded. The first error stops the run with its message."""

    def __init__(self, folder: Path, attrs: dict, depth: int = WRITE_QUEUE):
        self.folder, self.attrs = folder, attrs
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.written, self.seconds = 0, 0.0
        self.thread = threading.Thread(target=self._loop, name="babelmap-writer", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        from babelmap.engine.parts import Block, write_part
        while True:
            job = self.q.get()
            if job is None:
                return
            if self.error is not None:
                continue  # drain: the model thread must never block on a dead writer
            try:
                t0 = time.perf_counter()
                unit, host, event, ntok = job
                if event is not None:
                    event.synchronize()
                arr = host.numpy()
                blocks, at = [], 0
                for b in unit.blocks:
                    n = len(b)
                    blocks.append(Block(lang=b.lang, lang_index=b.lang_index, start=b.start, stop=b.stop,
                                        sentences=b.sentences, n_tokens=ntok[at:at + n],
                                        emb=arr[at:at + n].transpose(1, 0, 2)))  # a view: hashed in place
                    at += n
                write_part(self.folder, unit.uid, blocks, self.attrs)
                self.written += 1
                self.seconds += time.perf_counter() - t0
            except BaseException as e:  # noqa: BLE001 - reported on the model thread
                self.error = e

    def check(self) -> None:
        if self.error is not None:
            e = self.error
            if isinstance(e, (StoreError, CorpusError, ModelError)):
                raise e
            raise StoreError(f"writing a part in {self.folder} failed ({e.__class__.__name__}: {e}); "
                             "finished parts are kept: run the same command again to resume") from None

    def put(self, job) -> None:
        while True:
            self.check()
            try:
                self.q.put(job, timeout=0.2)
                return
            except queue.Full:
                continue

    def close(self, wait: bool = True) -> None:
        if self.thread.is_alive():
            while True:
                try:
                    self.q.put(None, timeout=0.2)
                    break
                except queue.Full:
                    if not self.thread.is_alive():
                        break
            if wait:
                self.thread.join()
        self.check()


def default_tokenizer_threads(device_type: str, family: str) -> int:
    """Tokenizer threads: on CUDA enough to keep up with the GPU (the cores of this process's
    share of the machine, up to 8); on CPU one (the model needs the cores); encoder-decoders
    one (their tokenizer's source language is shared state)."""
    if device_type != "cuda" or family == "encoder-decoder":
        return 1
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, min(8, (os.cpu_count() or 2) // max(1, local) - 1))


def _embed_units(lm, share: _Share, units: list[Unit], pool: str, kept: list[int] | None, store_dtype: str,
                 folder: Path, attrs: dict, budget: int, state, progress: bool, times: dict,
                 tokenizer_threads: int | None) -> tuple[int, int, int]:
    """Embed this process's units, one part each; returns (parts, sentences, tokens).

    Units are tokenized and collated ahead by a thread pool; the model thread only runs
    forwards, pools and casts on the device, scatters rows back into unit order on the
    device, and copies each finished unit once into a pinned host buffer (non-blocking);
    the writer thread waits for that copy and writes. `times` gets where the time went."""
    import torch
    from tqdm.auto import tqdm

    dev = torch.device(getattr(lm, "device", "cpu"))
    cuda = dev.type == "cuda"
    out_dtype = {"float16": torch.float16, "float32": torch.float32}[store_dtype]
    H = int(lm.hidden_size)
    Kp = len(kept) if kept else int(lm.num_hidden_states)
    family = getattr(lm, "family", "encoder")
    n_threads = tokenizer_threads or default_tokenizer_threads(dev.type, family)
    tok_lock = threading.Lock() if family == "encoder-decoder" else None
    embed = _embed_fn(lm, pool, kept, out_dtype)
    total = sum(u.n_sentences for u in units)
    rank = state.process_index
    bar = tqdm(total=total, unit="sent", desc=f"extract [{rank + 1}/{state.num_processes}]", position=rank,
               disable=not progress, dynamic_ncols=True, leave=state.is_main_process)
    pool_ex = ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="babelmap-tokenize")
    writer = _Writer(folder, attrs)
    ahead = n_threads + 1
    floor = min_useful(dev.type)
    futures = [pool_ex.submit(_prepare, lm, share, u, budget, cuda, tok_lock, floor) for u in units[:ahead]]
    t_wait = t_model = 0.0
    n_batches, n_tok, n_sent, n_padded = 0, 0, 0, 0
    t_start, cpu_start = time.perf_counter(), time.thread_time()
    try:
        with torch.inference_mode():
            for k, unit in enumerate(units):
                t0 = time.perf_counter()
                prep = futures[k].result()
                futures[k] = None  # release
                if k + ahead < len(units):
                    futures.append(pool_ex.submit(_prepare, lm, share, units[k + ahead], budget, cuda, tok_lock,
                                                  floor))
                t1 = time.perf_counter()
                t_wait += t1 - t0
                n = unit.n_sentences
                out_dev = torch.empty((n, Kp, H), dtype=out_dtype, device=dev)
                for sb, enc, rows in prep.batches:
                    pooled = embed(enc)
                    out_dev.index_copy_(0, rows.to(dev, non_blocking=True), pooled)
                    n_batches += 1
                    n_tok += sb.tokens
                    n_padded += sb.cost
                    n_sent += len(sb)
                    bar.update(len(sb))
                if cuda:
                    host = torch.empty((n, Kp, H), dtype=out_dtype, pin_memory=True)
                    host.copy_(out_dev, non_blocking=True)
                    event = torch.cuda.Event()
                    event.record()
                else:
                    host, event = out_dev, None
                t_model += time.perf_counter() - t1
                dt = max(1e-9, time.perf_counter() - t_start)
                bar.set_postfix_str(f"{n_tok / dt:,.0f} tok/s", refresh=False)
                t2 = time.thread_time()
                writer.put((unit, host, event, prep.n_tokens))
                cpu_start += time.thread_time() - t2  # waiting for the writer is not host work
                del out_dev, prep
    finally:
        pool_ex.shutdown(wait=True, cancel_futures=True)
        t_close = time.perf_counter()
        try:
            writer.close(wait=True)
        finally:
            bar.close()
            times.update(tokenize_wait=t_wait, model=t_model, writer=writer.seconds,
                         writer_wait=time.perf_counter() - t_close)
            LAST_RUN.clear()
            LAST_RUN.update(times, sentences=n_sent, tokens=n_tok, padded_tokens=n_padded, batches=n_batches,
                            units=len(units), tokenizer_threads=n_threads,
                            model_thread_cpu=time.thread_time() - cpu_start,
                            seconds=time.perf_counter() - t_start)
    return writer.written, n_sent, n_tok
