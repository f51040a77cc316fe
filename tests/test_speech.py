"""Speech: the FLEURS reader, audio loading, and speech models pooled over real frames.

Real speech comes from espeak-ng (English, German, French: the first FLORES dev sentences, at
22.05 kHz so resampling is exercised); the models are tiny random wav2vec2 (XLS-R-like layer
norm, and wav2vec2-base-like group norm) and Whisper checkpoints with their feature extractors.
References are independent: each recording alone, unpadded, through the feature extractor and
the model's `output_hidden_states`, averaged in float64 NumPy over frames counted by hand.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import shared
from speech_util import (LANGS, WAVEFORM_FAMILY, espeak_fleurs, make_tiny_wav2vec2, make_tiny_waveform_model,
                         make_tiny_whisper, tone, tsv_line, write_fleurs)

TOL = 1e-5  # fp32: batched (padded) vs one at a time, and vs the float64 reference


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """{kind: tiny random model folder with its feature extractor}."""
    root = tmp_path_factory.mktemp("speech_models")
    out = {"wav2vec2": make_tiny_wav2vec2(root / "w2v"), "wav2vec2-group": make_tiny_wav2vec2(root / "w2vg", "group"),
           "whisper": make_tiny_whisper(root / "whisper", seconds=10)}
    out.update({t: make_tiny_waveform_model(root / t, t) for t in WAVEFORM_FAMILY})
    return out


@pytest.fixture(scope="module")
def speech(tmp_path_factory, models):
    """(FLEURS folder of espeak-ng speech, {kind: tiny model folder})."""
    root = tmp_path_factory.mktemp("speech")
    return espeak_fleurs(root / "fleurs", shared("flores200", "dev"), n=3), models


def _paths(corpus_dir: Path) -> list[str]:
    from babelmap.engine.corpora import read_corpus
    c = read_corpus(corpus_dir, "fleurs")
    return [t for row in c.texts for t in row]


# -- reader (no espeak-ng needed: tones) -----------------------------------------------------------
def test_reader_parallel_by_id_first_recording_by_name(tmp_path):
    from babelmap.engine.corpora import read_corpus
    write_fleurs(tmp_path, {
        "de_de": [(7, "20.wav", "Satz sieben.", tone(0.5), 16000), (5, "b.wav", "Satz fünf (b).", tone(0.4), 16000),
                  (5, "a.wav", "Satz fünf (a).", tone(0.6), 22050)],
        "en_us": [(5, "x.wav", "Sentence five.", tone(0.5), 16000), (9, "y.wav", "Sentence nine.", tone(0.5), 16000),
                  (7, "z.wav", "Sentence seven.", tone(0.5), 16000)]})
    c = read_corpus(tmp_path, "fleurs")
    assert c.languages == ["deu_Latn", "eng_Latn"] and c.sentence_ids == ["5", "7", "9"]
    de, en = c.text("deu_Latn"), c.text("eng_Latn")
    assert de[0] == str((tmp_path / "de_de/audio/dev/a.wav").resolve())  # first by file name, not by line
    assert de[2] is None and c.mask.tolist() == [[True, True, False], [True, True, True]]
    assert en[1] == str((tmp_path / "en_us/audio/dev/z.wav").resolve())
    assert c.meta["deu_Latn"]["transcription"] == {"5": "Satz fünf (a).", "7": "Satz sieben."}
    assert c.meta["deu_Latn"]["recordings"] == 3 and c.split == "dev" and c.name == "fleurs-dev"
    # the hub's layout (data/<lang>/...) reads the same
    (tmp_path / "hub").mkdir()
    (tmp_path / "de_de").rename(tmp_path / "hub" / "de_de")
    assert read_corpus(tmp_path / "hub", "fleurs").text("deu_Latn")[0].endswith("a.wav")


@pytest.mark.parametrize("fault, message, line", [
    ("missing", "audio file", 2), ("garbage", "unreadable", 2), ("id", "is not an integer", 2)])
def test_reader_bad_input_names_file_line_language(tmp_path, fault, message, line):
    from babelmap.engine.corpora import read_corpus
    from babelmap.engine.errors import CorpusError
    write_fleurs(tmp_path, {"fr_fr": [(1, "1.wav", "Un.", tone(0.3), 16000), (2, "2.wav", "Deux.", tone(0.3), 16000)],
                            "en_us": [(1, "1.wav", "One.", tone(0.3), 16000), (2, "2.wav", "Two.", tone(0.3), 16000)]})
    tsv = tmp_path / "fr_fr" / "dev.tsv"
    if fault == "missing":
        (tmp_path / "fr_fr/audio/dev/2.wav").unlink()
    elif fault == "garbage":
        (tmp_path / "fr_fr/audio/dev/2.wav").write_bytes(b"RIFF not really a wav file")
    else:
        tsv.write_text(tsv_line(1, "1.wav", "Un.", 4800) + "\n" + tsv_line("x2", "2.wav", "Deux.", 4800) + "\n",
                       encoding="utf-8")
    with pytest.raises(CorpusError) as e:
        read_corpus(tmp_path, "fleurs")
    first = str(e.value).splitlines()[0]
    assert message in first and f"file {tsv}" in first and f"line {line}" in first and "language fra_Latn" in first
    c = read_corpus(tmp_path, "fleurs", skip_bad=True)  # skipping leaves French out, and says so
    assert c.languages == ["eng_Latn"] and c.skipped[0]["language"] == "fra_Latn"


FLEURS_CONFIGS = """af_za am_et ar_eg as_in ast_es az_az be_by bg_bg bn_in bs_ba ca_es ceb_ph ckb_iq cmn_hans_cn cs_cz
cy_gb da_dk de_de el_gr en_us es_419 et_ee fa_ir ff_sn fi_fi fil_ph fr_fr ga_ie gl_es gu_in ha_ng he_il hi_in hr_hr
hu_hu hy_am id_id ig_ng is_is it_it ja_jp jv_id ka_ge kam_ke kea_cv kk_kz km_kh kn_in ko_kr ky_kg lb_lu lg_ug ln_cd
lo_la lt_lt luo_ke lv_lv mi_nz mk_mk ml_in mn_mn mr_in ms_my mt_mt my_mm nb_no ne_np nl_nl nso_za ny_mw oc_fr om_et
or_in pa_in pl_pl ps_af pt_br ro_ro ru_ru sd_in sk_sk sl_si sn_zw so_so sr_rs sv_se sw_ke ta_in te_in tg_tj th_th
tr_tr uk_ua umb_ao ur_pk uz_uz vi_vn wo_sn xh_za yo_ng yue_hant_hk zu_za""".split()


def test_every_fleurs_language_is_a_flores200_id():
    """The 102 FLEURS configs map to 102 distinct FLORES-200 ids (macrolanguage codes to the member
    FLORES reads: ms_my -> zsm_Latn, fil_ph -> tgl_Latn), so speech and text stores share ids."""
    from babelmap.engine.corpora.fleurs import fleurs_language
    flores = {p.name.split(".")[0] for p in shared("flores200", "dev").glob("*.dev")}
    ids = [fleurs_language(c) for c in FLEURS_CONFIGS]
    assert len(FLEURS_CONFIGS) == len(set(ids)) == 102 and set(ids) <= flores
    assert fleurs_language("ms_my") == "zsm_Latn" and fleurs_language("de_de") == "deu_Latn"


def test_too_short_audio_names_file_and_language(tmp_path, models):
    import soundfile

    from babelmap.engine.errors import CorpusError
    from babelmap.engine.models import load_model
    lm = load_model(str(models["wav2vec2"]), device="cpu")
    soundfile.write(str(tmp_path / "ok.wav"), tone(1.0), 16000, subtype="PCM_16")
    soundfile.write(str(tmp_path / "short.wav"), tone(0.01), 16000, subtype="PCM_16")  # 160 samples < 400
    assert lm.samples_of_file(str(tmp_path / "ok.wav")) == len(lm.load(str(tmp_path / "ok.wav"))) == 16000
    assert lm.token_counts([str(tmp_path / "ok.wav")]) == [49]  # (16000 - 400) // 320 + 1
    with pytest.raises(CorpusError, match="too short") as e:
        lm.token_counts([str(tmp_path / "short.wav")], lang="deu_Latn")
    assert "language deu_Latn" in str(e.value) and "short.wav" in str(e.value)


def test_load_audio_mono_resampled(tmp_path):
    import soundfile
    from scipy.signal import resample_poly

    from babelmap.engine.models.speech import load_audio
    left, right = tone(1.0, 22050, 220.0, seed=1), tone(1.0, 22050, 330.0, seed=2)
    soundfile.write(str(tmp_path / "st.wav"), np.stack([left, right], 1), 22050, subtype="FLOAT")
    got = load_audio(tmp_path / "st.wav", 16000)
    ref = resample_poly((left.astype(np.float64) + right) / 2, 320, 441)  # 16000 / 22050 = 320 / 441
    assert got.dtype == np.float32 and abs(len(got) - 16000) <= 1
    mid = slice(800, 15000)  # away from the filters' edges
    assert np.max(np.abs(got[mid] - ref[mid])) < 2e-2 and np.corrcoef(got[mid], ref[mid])[0, 1] > 0.999
    same = load_audio(tmp_path / "st.wav", 22050)  # no resampling at the file's own rate
    np.testing.assert_allclose(same, (left + right) / 2, atol=1e-6)


# -- models on espeak-ng speech ----------------------------------------------------------------
@pytest.mark.parametrize("kind", ["wav2vec2", "wav2vec2-group", "whisper", *WAVEFORM_FAMILY])
def test_batched_equals_one_at_a_time(speech, kind):
    """Padding never reaches the pooled vectors: a mixed-length batch gives what each recording
    gives alone (within TOL, fp32). data2vec-audio and wav2vec2-conformer leak padding (0.007 and
    0.046 on these models when padded), so they run each length alone: this checks that too."""
    import torch

    from babelmap.engine.models import load_model
    corpus, models = speech
    lm = load_model(str(models[kind]), device="cpu")
    paths = _paths(corpus)
    batch = lm.tokenize(paths)
    counts = batch["attention_mask"].sum(1).tolist()
    assert len(set(counts)) == len(counts)  # all lengths differ: the batch is padded
    assert counts == lm.token_counts(paths)
    together = lm.embed(batch)
    alone = torch.cat([lm.embed(lm.tokenize([p])) for p in paths])
    assert together.shape == (9, lm.num_hidden_states, lm.hidden_size) == (9, 3, 16)
    assert torch.max(torch.abs(together - alone)).item() < TOL


def _reference(lm, path: str) -> tuple[np.ndarray, int]:
    """float64 [K, H] mean over the frames of real audio of one recording alone, and that count."""
    import torch
    wave = lm.load(path)
    fe = lm.feature_extractor
    with torch.no_grad():
        if lm.kind == "whisper":
            feats = fe([wave], sampling_rate=16000, return_tensors="pt")["input_features"]
            hidden = lm.model(feats, output_hidden_states=True).hidden_states
            n = -(-(-(-len(wave) // 160)) // 2)  # ceil(ceil(samples / hop) / conv2 stride)
        else:
            feats = fe([wave], sampling_rate=16000, return_tensors="pt")["input_values"]
            hidden = lm.model(feats, output_hidden_states=True).hidden_states
            n = hidden[0].shape[1]  # alone, every frame is real
    return np.stack([h[0, :n].double().numpy().mean(0) for h in hidden]), n


@pytest.mark.parametrize("kind", ["wav2vec2", "whisper"])
def test_masked_mean_matches_unpadded_reference(speech, kind):
    from babelmap.engine.models import load_model
    corpus, models = speech
    lm = load_model(str(models[kind]), device="cpu")
    paths = _paths(corpus)
    batch = lm.tokenize(paths)
    got = lm.embed(batch).double().numpy()
    for i, p in enumerate(paths):
        ref, n = _reference(lm, p)
        assert int(batch["attention_mask"][i].sum()) == n
        np.testing.assert_allclose(got[i], ref, atol=TOL, rtol=0)
    if kind == "whisper":  # the 10 s window is padded: averaging all of it would be another vector
        import torch
        short = min(range(len(paths)), key=lambda i: int(batch["attention_mask"][i].sum()))
        feats = lm.feature_extractor([lm.load(paths[short])], sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            whole = lm.model(feats["input_features"], output_hidden_states=True).hidden_states[-1][0].mean(0)
        assert int(batch["attention_mask"][short].sum()) < 400 < lm.max_length == 500
        assert np.max(np.abs(whole.double().numpy() - got[short, -1])) > 1e-3


def test_max_length_truncates_and_other_poolings_refused(speech):
    from babelmap.engine.errors import ModelError
    from babelmap.engine.models import load_model
    corpus, models = speech
    lm = load_model(str(models["wav2vec2"]), device="cpu")
    lm.max_length = 100
    paths = _paths(corpus)[:2]
    batch = lm.tokenize(paths)
    assert batch["attention_mask"].sum(1).tolist() == [100, 100]
    ref, n = _reference(lm, paths[0])  # lm.load cuts at max_length's samples
    assert n == 100
    np.testing.assert_allclose(lm.embed(batch)[0].double().numpy(), ref, atol=TOL, rtol=0)
    with pytest.raises(ModelError, match="speech model"):
        lm.embed(batch, "cls")


def test_extract_fleurs_then_similarity(speech, tmp_path, capsys):
    """`babelmap extract --format fleurs` writes a store (frame counts as n_tokens) that
    `babelmap similarity` reads; the similarities equal a direct NumPy mean of cosines."""
    import babelmap
    from babelmap.cli import main
    from babelmap.engine.models import load_model
    corpus, models = speech
    out, sim = tmp_path / "speech.h5", tmp_path / "sim.h5"
    assert main(["extract", "--corpus", str(corpus), "--format", "fleurs", "--model", str(models["wav2vec2"]),
                 "--device", "cpu", "--no-progress", "--store-dtype", "float32", "--out", str(out)]) == 0
    assert main(["similarity", str(out), "--out", str(sim), "--no-progress"]) == 0
    store = babelmap.open_store(out)
    assert list(store.languages) == [v[0] for v in sorted(LANGS.values())] and list(store.sentence_ids) == ["1", "2", "3"]
    lm = load_model(str(models["wav2vec2"]), device="cpu")
    with __import__("h5py").File(out, "r") as f:
        n_tokens = f["n_tokens"][()]
    emb = {}
    for i, lang in enumerate(store.languages):
        paths = _corpus_texts(corpus, lang)
        assert n_tokens[i].tolist() == lm.token_counts(paths)
        emb[lang] = np.stack([store.embeddings(lang, k) for k in range(3)])  # [K, S, H]
        np.testing.assert_allclose(emb[lang].transpose(1, 0, 2), lm.embed(lm.tokenize(paths)).numpy(), atol=TOL)
    result = babelmap.load(sim)
    for k in range(3):
        for a in store.languages:
            for b in store.languages:
                x, y = emb[a][k].astype(np.float64), emb[b][k].astype(np.float64)
                cos = np.sum(x * y, 1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
                assert abs(result.get(a, b, layer=k) - cos.mean()) < 1e-5


def _corpus_texts(corpus_dir: Path, lang: str) -> list[str]:
    from babelmap.engine.corpora import read_corpus
    return read_corpus(corpus_dir, "fleurs").text(lang)


def test_extract_bad_audio_is_one_line(speech, tmp_path, capsys):
    import shutil

    from babelmap.cli import main
    corpus, models = speech
    bad = tmp_path / "fleurs"
    shutil.copytree(corpus, bad)
    victim = sorted((bad / "de_de" / "audio" / "dev").glob("*.wav"))[0]
    victim.write_bytes(b"\x00" * 10)
    rc = main(["extract", "--corpus", str(bad), "--format", "fleurs", "--model", str(models["wav2vec2"]),
               "--device", "cpu", "--no-progress", "--out", str(tmp_path / "x.h5")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and "unreadable" in err[0] and "language deu_Latn" in err[0] and "dev.tsv" in err[0]
    assert "Traceback" not in "\n".join(err)


def test_extract_split_test_from_the_command_line(tmp_path, models):
    """`--split test` reaches the FLEURS reader and is recorded in the store (no espeak-ng: tones)."""
    import h5py

    from babelmap.cli import main
    write_fleurs(tmp_path / "fl", {f: [(1, "1.wav", "-", tone(0.5 + 0.1 * i), 16000), (2, "2.wav", "-", tone(0.7), 16000)]
                                   for i, f in enumerate(("de_de", "en_us"))}, split="test")
    out = tmp_path / "t.h5"
    assert main(["extract", "--corpus", str(tmp_path / "fl"), "--format", "fleurs", "--split", "test", "--model",
                 str(models["wav2vec2"]), "--device", "cpu", "--no-progress", "--out", str(out)]) == 0
    with h5py.File(out, "r") as f:
        assert f.attrs["split"] == "test" and f.attrs["corpus_name"] == "fleurs-test"
        assert f["n_tokens"][()].tolist() == [[24, 34], [29, 34]]  # (samples - 400) // 320 + 1


def test_hub_snapshot_path_gives_hub_id_and_commit(tmp_path):
    """load_model hands a hub model's snapshot folder: the store records the hub id and commit."""
    from babelmap.engine.models.speech import _hub_name
    snap = tmp_path / "hub" / "models--facebook--wav2vec2-xls-r-300m" / "snapshots" / ("ab" * 20)
    assert _hub_name(snap) == ("facebook/wav2vec2-xls-r-300m", "ab" * 20)
    assert _hub_name(tmp_path / "w2v") == (str(tmp_path / "w2v"), "")


def test_load_model_passes_max_length_prefix_and_hub_revision_to_speech(models, tmp_path, monkeypatch):
    """load_model's max_length, prefix and hub revision reach speech models as they reach text ones."""
    from babelmap.engine.errors import ModelError
    from babelmap.engine.models import load_model
    from test_hub import add_snapshot
    lm = load_model(str(models["wav2vec2"]), device="cpu", max_length=30)
    assert lm.max_length == 30 and lm.name == str(models["wav2vec2"]) and lm.revision == ""
    wave = tmp_path / "a.wav"
    import soundfile
    soundfile.write(str(wave), tone(1.0), 16000, subtype="PCM_16")
    assert lm.token_counts([str(wave)]) == [30]          # 49 frames in 1 s, cut at 30
    with pytest.raises(ModelError, match="--prefix 'query: ' applies to text models"):
        load_model(str(models["wav2vec2"]), device="cpu", prefix="query: ")
    with pytest.raises(ModelError, match="at most --max-length 500"):
        load_model(str(models["whisper"]), device="cpu", max_length=501)
    # by hub id and branch: the store's model and model_revision are the id and the resolved commit
    commit = "c" * 40
    add_snapshot(tmp_path / "hub", "org/tiny-w2v", commit, models["wav2vec2"], ref="v1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub = load_model("org/tiny-w2v", device="cpu", revision="v1", max_length=20)
    assert (hub.name, hub.revision, hub.max_length) == ("org/tiny-w2v", commit, 20)
    assert hub.provenance()["model_revision"] == commit
