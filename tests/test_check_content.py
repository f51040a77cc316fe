"""`babelmap check` sees content: on a real extracted store (index + shards), every planted
defect class of issue 16 item 6 is reported, with a message naming what changed."""
from __future__ import annotations

import json
import re
import shutil

import h5py
import numpy as np
import pytest

from babelmap.cli import main as cli
from babelmap.engine.check import check_store
from babelmap.engine.corpora import read_corpus
from babelmap.engine.extract import extract
from extract_util import one_thread  # noqa: F401 (autouse fixture: one torch thread)
from extract_util import corpus_rows, write_plain

LANGS = ("deu_Latn", "eng_Latn", "fra_Latn", "rus_Cyrl")


@pytest.fixture(scope="module")
def real_store(tmp_path_factory, tiny_bert):
    tmp = tmp_path_factory.mktemp("check-content")
    corpus = read_corpus(write_plain(tmp / "corpus", corpus_rows(LANGS, n=16, seed=3)), "plain")
    out = extract(corpus, tmp / "ref" / "s.h5", str(tiny_bert), device="cpu", token_budget=64, progress=False)
    return out


@pytest.fixture
def store(real_store, tmp_path):
    """A fresh copy of the real store (the file and its shards folder) per test."""
    dst = tmp_path / "copy"
    shutil.copytree(real_store.parent, dst)
    return dst / real_store.name


def locate(path, i, j):
    """(shard file, dataset, local row) holding row (language i, sentence j) of a sharded store."""
    with h5py.File(path, "r") as f:
        g = f["blocks"]
        for b in range(len(g["lang_index"])):
            if g["lang_index"][b] == i and g["start"][b] <= j < g["stop"][b]:
                return (path.parent / g["shard"][b].decode(), g["dataset"][b].decode(), int(j - g["start"][b]))
    raise AssertionError((i, j))


def present(path, i, k=1):
    with h5py.File(path, "r") as f:
        return int(np.flatnonzero(f["mask"][i])[k])


def bit_flip(path):
    i, j = 1, present(path, 1)
    shard, ds, r = locate(path, i, j)
    with h5py.File(shard, "r+") as f:
        v = f[ds][2, r, 5]
        f[ds][2, r, 5] = -3142.0
    assert v != -3142.0


def swap_rows(path):
    i = 2
    a, b = present(path, i, 0), present(path, i, 1)
    (sa, da, ra), (sb, db, rb) = locate(path, i, a), locate(path, i, b)
    with h5py.File(sa, "r+") as fa:
        row_a = fa[da][:, ra, :]
        with h5py.File(sb, "r") as fb:
            row_b = fb[db][:, rb, :]
    with h5py.File(sa, "r+") as fa:
        fa[da][:, ra, :] = row_b
    with h5py.File(sb, "r+") as fb:
        fb[db][:, rb, :] = row_a


def language_overwritten(path):
    """eng_Latn's rows replaced by deu_Latn's where both have the sentence."""
    with h5py.File(path, "r") as f:
        mask = f["mask"][()]
        src = f["embeddings"][0]
    for j in np.flatnonzero(mask[0] & mask[1]):
        shard, ds, r = locate(path, 1, int(j))
        with h5py.File(shard, "r+") as g:
            g[ds][:, r, :] = src[:, j, :]


def tokens_plus_50(path):
    with h5py.File(path, "r+") as f:
        f["n_tokens"][1, present(path, 1)] += 50


def pooling_changed(path):
    with h5py.File(path, "r+") as f:
        f.attrs["pooling"] = "cls"


def fingerprint_changed(path):
    with h5py.File(path, "r+") as f:
        f.attrs["model_fingerprint"] = "cd" * 32


def pooling_changed_everywhere_in_the_index(path):
    """A careful forger also rewrites the index's own record: the shards still tell."""
    import hashlib
    with h5py.File(path, "r+") as f:
        f.attrs["pooling"] = "cls"
        rec = json.loads(f.attrs["provenance"])
        rec["pooling"] = "cls"
        text = json.dumps(rec, sort_keys=True, ensure_ascii=False)
        f.attrs["provenance"] = text
        f.attrs["provenance_sha256"] = hashlib.sha256(text.encode()).hexdigest()


def raw_byte_flip(path):
    """Bytes flipped on disk inside a shard's embedding chunk (no HDF5 involved)."""
    shard, ds, _ = locate(path, 0, present(path, 0))
    with h5py.File(shard, "r") as f:
        off = f[ds].id.get_chunk_info(0).byte_offset
    with open(shard, "r+b") as fh:
        fh.seek(off + 64)
        b = fh.read(2)
        fh.seek(off + 64)
        fh.write(bytes(x ^ 0x40 for x in b))


def shard_missing(path):
    shard, _, _ = locate(path, 3, present(path, 3))
    shard.unlink()


DEFECTS = [
    (bit_flip, r"language eng_Latn: sentences .*: content differs from the checksum recorded at extraction "
               r"\(the embeddings changed since\)"),
    (swap_rows, r"language fra_Latn: .*content differs from the checksum .*\(the embeddings changed since\)"),
    (language_overwritten, r"language eng_Latn: .*content differs from the checksum"),
    (tokens_plus_50, r"language eng_Latn: .*\(n_tokens: 1 sentences differ from the extraction"),
    (pooling_changed, r"attribute pooling is 'cls' but the extraction recorded 'mean'"),
    (fingerprint_changed, r"attribute model_fingerprint is 'cdcd.*' but the extraction recorded"),
    (pooling_changed_everywhere_in_the_index, r"attribute pooling is 'cls' in the store but 'mean' in shard"),
    (raw_byte_flip, r"language deu_Latn: .*content differs from the checksum"),
    (shard_missing, r"shard .* is missing"),
]


def test_real_store_is_sharded_and_sound(store, capsys):
    with h5py.File(store, "r") as f:
        assert f["embeddings"].is_virtual and "blocks" in f
    assert check_store(store) == []
    assert cli(["check", str(store)]) == 0
    assert "ok: no defects" in capsys.readouterr().out


@pytest.mark.parametrize("plant,message", DEFECTS, ids=[d[0].__name__ for d in DEFECTS])
def test_each_content_defect_is_reported(store, plant, message, capsys):
    plant(store)
    defects = check_store(store)
    assert any(re.search(message, d) for d in defects), defects
    assert cli(["check", str(store)]) == 1
    err = capsys.readouterr().err
    assert "defect(s)" in err and "Traceback" not in err


def test_pack_makes_one_self_contained_file_with_the_same_checksums(store, tmp_path, capsys):
    from babelmap import open_store
    packed = tmp_path / "elsewhere" / "one.h5"
    packed.parent.mkdir()
    assert cli(["check", str(store), "--pack", str(packed)]) == 0
    assert "checksums verified" in capsys.readouterr().out
    shutil.rmtree(store.parent)  # the original and its shards are gone: the copy stands alone
    with h5py.File(packed, "r") as f:
        assert not f["embeddings"].is_virtual and f["embeddings"].chunks[0] == 1
    assert check_store(packed) == []
    with open_store(packed) as st:
        assert st.shard_paths == [] and not st.is_sharded


def test_pack_refuses_a_defective_store(store, tmp_path):
    tokens_plus_50(store)
    assert cli(["check", str(store), "--pack", str(tmp_path / "one.h5")]) == 1
    assert not (tmp_path / "one.h5").exists()


@pytest.mark.parametrize("plant,kind", [(bit_flip, "content"), (raw_byte_flip, "content"),
                                        (shard_missing, "shard-missing"), (pooling_changed, "other")])
def test_defects_are_structured_and_advice_reads_the_structure(store, plant, kind, capsys):
    """Each defect carries its kind and the shard it concerns (relative to the store's folder),
    and `check`'s advice names exactly the shards whose content differs."""
    from babelmap.engine.check import DefectKind
    plant(store)
    defects = check_store(store)
    hits = [d for d in defects if d.kind == DefectKind(kind)]
    assert hits, defects
    shards = {d.shard for d in defects if d.kind == DefectKind.CONTENT}
    for d in hits:
        if kind != "other":
            assert d.shard and (store.parent / d.shard).parent.name == store.name + ".shards"
            assert (store.parent / d.shard).name in str(d)
    assert cli(["check", str(store)]) == 1
    err = capsys.readouterr().err
    if shards:
        assert f"what to do: delete {store} and " + " ".join(str(store.parent / s) for s in sorted(shards)) in err
    else:
        assert "what to do" not in err


def test_check_takes_the_shared_corpus_options(tmp_path, tiny_bert, capsys):
    """A store extracted from a --sample of a corpus checks clean against the same --sample
    (and --split is accepted where the format has splits); without it, the ids differ."""
    from babelmap.corpus_options import open_corpus, select_corpus
    folder = write_plain(tmp_path / "corpus", corpus_rows(LANGS, n=24, seed=4))
    corpus = select_corpus(open_corpus(folder, "plain"), sample=8, seed=2)
    out = extract(corpus, tmp_path / "s.h5", str(tiny_bert), device="cpu", token_budget=64, progress=False)
    base = ["check", str(out), "--corpus", str(folder), "--format", "plain"]
    assert cli(base + ["--sample", "8", "--seed", "2"]) == 0
    assert "ok: no defects" in capsys.readouterr().out
    assert cli(base + ["--sample", "8", "--seed", "3"]) == 1
    assert cli(base) == 1
    assert "sentence ids differ from the corpus" in capsys.readouterr().err
    assert cli(base + ["--split", "dev"]) == 1     # parsed; plain has no splits: one clear line
    assert "--split is for --format flores or fleurs, not plain" in capsys.readouterr().err
