"""Speech test helpers: tiny random speech models (wav2vec2, Whisper) saved with their feature
extractors, and FLEURS-layout corpora of real speech synthesised by espeak-ng from FLORES."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

# FLEURS folder -> (babelmap id, FLORES file stem, espeak-ng voice)
LANGS = {"en_us": ("eng_Latn", "eng_Latn", "en-us"), "de_de": ("deu_Latn", "deu_Latn", "de"),
         "fr_fr": ("fra_Latn", "fra_Latn", "fr-fr")}


def require_espeak() -> str:
    """The espeak-ng executable, or skip (the Makefile's test setup installs it when root)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng is not installed (Debian package espeak-ng; `make test` installs it when run "
                    "as root with apt-get): no real speech to test speech models on")
    return exe


def tsv_line(sid, name: str, raw: str, n_samples: int, gender: str = "MALE") -> str:
    """One FLEURS TSV line: id, file_name, raw_transcription, transcription, characters,
    num_samples, gender."""
    norm = raw.lower()
    return "\t".join([str(sid), name, raw, norm, "|".join(norm.replace(" ", "|")), str(n_samples), gender])


def write_fleurs(root: Path, recordings: dict[str, list[tuple[int, str, str, np.ndarray, int]]],
                 split: str = "dev") -> Path:
    """A FLEURS-layout folder: `recordings[folder]` = [(sentence id, file name, transcription,
    samples, rate)], written as `<folder>/<split>.tsv` and `<folder>/audio/<split>/<file>`."""
    import soundfile
    for folder, recs in recordings.items():
        audio = root / folder / "audio" / split
        audio.mkdir(parents=True, exist_ok=True)
        lines = []
        for sid, name, raw, wave, rate in recs:
            soundfile.write(str(audio / name), wave, rate, subtype="PCM_16")
            lines.append(tsv_line(sid, name, raw, len(wave)))
        (root / folder / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def tone(seconds: float, rate: int = 16000, freq: float = 220.0, seed: int = 0) -> np.ndarray:
    """A tone with a little noise (not speech: for reader tests that need no espeak-ng)."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def espeak_fleurs(root: Path, flores_dev: Path, n: int = 3, speed: int = 320, split: str = "dev") -> Path:
    """The first `n` FLORES dev sentences of English, German and French spoken by espeak-ng (22.05 kHz,
    so resampling is exercised), in the FLEURS layout; FLORES line numbers as sentence ids."""
    import soundfile
    exe = require_espeak()
    for folder, (_lang, stem, voice) in LANGS.items():
        sentences = (flores_dev / f"{stem}.dev").read_text(encoding="utf-8").splitlines()[:n]
        audio = root / folder / "audio" / split
        audio.mkdir(parents=True, exist_ok=True)
        lines = []
        for i, text in enumerate(sentences, 1):
            name = f"{9000 + i}{len(folder)}{sum(map(ord, folder))}.wav"
            subprocess.run([exe, "-v", voice, "-s", str(speed), "-w", str(audio / name), text], check=True,
                           capture_output=True, timeout=60)
            lines.append(tsv_line(i, name, text, soundfile.info(str(audio / name)).frames))
        (root / folder / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def make_tiny_wav2vec2(path: Path, norm: str = "layer", seed: int = 0) -> Path:
    """A tiny random wav2vec2 (XLS-R-like: layer-normalised convolutions, stable layer norm, attention
    mask) or, with norm="group", a wav2vec2-base-like one, saved with its feature extractor."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model
    torch.manual_seed(seed)
    layer = norm == "layer"
    cfg = Wav2Vec2Config(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                         conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                         feat_extract_norm=norm, do_stable_layer_norm=layer, vocab_size=8,
                         mask_time_prob=0.0)
    Wav2Vec2Model(cfg).eval().save_pretrained(str(path))
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=layer).save_pretrained(str(path))
    return path


def make_tiny_whisper(path: Path, seconds: int = 10, seed: int = 0) -> Path:
    """A tiny random Whisper (encoder window of `seconds`, so 50 frames a second), saved with its
    feature extractor (80 mel bins, padding every input to the window)."""
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel
    torch.manual_seed(seed)
    cfg = WhisperConfig(vocab_size=64, num_mel_bins=80, d_model=16, encoder_layers=2, decoder_layers=1,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                        decoder_ffn_dim=32, max_source_positions=50 * seconds, max_target_positions=16,
                        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
                        suppress_tokens=None, begin_suppress_tokens=None)
    WhisperModel(cfg).eval().save_pretrained(str(path))
    WhisperFeatureExtractor(feature_size=80, chunk_length=seconds).save_pretrained(str(path))
    return path


WAVEFORM_FAMILY = {  # model_type -> (config class, model class, config extras)
    "hubert": ("HubertConfig", "HubertModel", dict(feat_extract_norm="layer", do_stable_layer_norm=True)),
    "wavlm": ("WavLMConfig", "WavLMModel", dict(feat_extract_norm="layer", do_stable_layer_norm=True,
                                                num_buckets=32, max_bucket_distance=100)),
    "data2vec-audio": ("Data2VecAudioConfig", "Data2VecAudioModel",
                       dict(num_conv_pos_embeddings=5, conv_pos_kernel_size=5, num_conv_pos_embedding_layers=2)),
    "wav2vec2-conformer": ("Wav2Vec2ConformerConfig", "Wav2Vec2ConformerModel",
                           dict(feat_extract_norm="layer", do_stable_layer_norm=True,
                                position_embeddings_type="relative")),
}


def make_tiny_waveform_model(path: Path, model_type: str, seed: int = 0) -> Path:
    """A tiny random HuBERT, WavLM, data2vec-audio or wav2vec2-conformer with a wav2vec2 feature extractor."""
    import torch
    import transformers
    cfg_name, model_name, extra = WAVEFORM_FAMILY[model_type]
    torch.manual_seed(seed)
    kw = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, conv_dim=(8,) * 7,
              num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=8, mask_time_prob=0.0)
    cfg = getattr(transformers, cfg_name)(**{**kw, **extra})
    getattr(transformers, model_name)(cfg).eval().save_pretrained(str(path))
    transformers.Wav2Vec2FeatureExtractor(return_attention_mask=True).save_pretrained(str(path))
    return path
