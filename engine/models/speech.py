"""Speech models (wav2vec2 / XLS-R, HuBERT, WavLM, data2vec-audio, Whisper's encoder) as a LoadedModel.

Extraction stays unchanged: a sentence's "text" is the path of its audio file, and the stand-in
tokenizer (`AudioTokenizer`) turns it into one id per *frame* the model will see (the id is a
handle to the path), so token counts are frame counts and length-sorted batching works as for
text. `embed` reads the audio again (soundfile, mono, resampled with soxr to the feature
extractor's rate, truncated to `max_length` frames), runs the feature extractor and the model
with all hidden states, and takes the masked mean over the frames of real audio, with the
model's own output-length computation (`_get_feat_extract_output_lengths`): padding frames never
count, and Whisper (always padded to its 30 s window) is pooled over the frames of the audio only.
Models whose padding would leak into real frames (group-normalised convolutions as in wav2vec2-base,
data2vec-audio, wav2vec2-conformer) see each length on its own, unpadded.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from babelmap.engine.errors import CorpusError, ModelError
from babelmap.engine.models.loading import LoadedModel

WAVEFORM_TYPES = {"wav2vec2", "wav2vec2-conformer", "hubert", "wavlm", "data2vec-audio"}
PADDING_EXACT = {"wav2vec2", "hubert", "wavlm"}
"""Types whose padded frames never reach real ones (masked attention, padding zeroed before one
positional convolution) when the convolutions are layer-normalised. data2vec-audio (several
positional convolutions), wav2vec2-conformer (convolution modules) and group-normalised models
do leak padding (measured: up to 0.05 on a tiny model), so each length runs on its own there."""
WHISPER_TYPES = {"whisper"}
DEFAULT_SECONDS = 30.0
"""Default truncation for waveform models: 30 s of audio (FLEURS utterances are shorter)."""


def load_audio(path: str | Path, sampling_rate: int) -> np.ndarray:
    """float32 mono samples of an audio file at `sampling_rate` (channels averaged; resampled
    with soxr's high quality filter when the file's rate differs). CorpusError when unreadable."""
    import soundfile

    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # noqa: BLE001 - libsndfile's error types vary by version
        raise CorpusError(f"cannot read audio file {path} ({str(e).splitlines()[0] if str(e) else e!r})",
                          file=str(path), hint="replace it with a readable WAV/FLAC, or pass --skip-bad") from None
    wave = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if int(rate) != int(sampling_rate):
        import soxr
        wave = soxr.resample(wave, int(rate), int(sampling_rate), quality="HQ").astype(np.float32, copy=False)
    return np.ascontiguousarray(wave, dtype=np.float32)


class AudioTokenizer:
    """Stands in for a tokenizer in the extraction loop: an audio path becomes `frames` copies of
    one id, a handle to the path (right padding with -1). `frames` is what the model will see."""

    pad_token_id = -1
    padding_side = "right"
    model_input_names = ("input_ids", "attention_mask")

    def __init__(self, owner: "SpeechModel"):
        self.owner = owner
        self.paths: list[str] = []
        self.handles: dict[str, int] = {}
        self.lock = threading.Lock()

    def handle(self, path: str) -> int:
        with self.lock:
            h = self.handles.get(path)
            if h is None:
                h = self.handles[path] = len(self.paths)
                self.paths.append(path)
            return h

    def __call__(self, texts: Sequence[str], truncation: bool = True, max_length: int | None = None,
                 padding: bool = False, return_tensors: str | None = None, **_: object) -> dict:
        ids = []
        for t in texts:
            n = self.owner.frames_of_file(t, max_length)
            ids.append([self.handle(t)] * n)
        if not padding:
            return {"input_ids": ids}
        from babelmap.engine.batching import collate
        width = max((len(x) for x in ids), default=0)
        return collate(ids, np.arange(len(ids)), width, self)


@dataclass(eq=False)
class SpeechModel(LoadedModel):
    """A speech encoder that quacks like LoadedModel (see the module docstring)."""

    feature_extractor: object = None
    kind: str = "waveform"        # "waveform" (wav2vec2 & co.) or "whisper"
    sampling_rate: int = 16000
    _language: threading.local = field(default_factory=threading.local, repr=False)
    _max_samples: dict = field(default_factory=dict, repr=False)

    @property
    def num_hidden_states(self) -> int:
        c = self.config
        layers = c.encoder_layers if self.kind == "whisper" else c.num_hidden_layers
        return int(layers) + 1

    @property
    def hidden_size(self) -> int:
        return int(self.config.d_model if self.kind == "whisper" else self.config.hidden_size)

    @property
    def padding_exact(self) -> bool:
        """Can recordings of different lengths share a padded batch without changing any result?
        (Whisper: always, every input is padded to its window; see PADDING_EXACT.)"""
        if self.kind == "whisper":
            return True
        return (self.config.model_type in PADDING_EXACT
                and getattr(self.config, "feat_extract_norm", "layer") == "layer")

    @property
    def poolings(self) -> tuple[str, ...]:
        return ("mean",)

    # -- frames ---------------------------------------------------------------------------
    def frames(self, n_samples: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """Frames of real audio the last hidden states have for waveforms of `n_samples` samples
        (already truncated), by the model's own output-length computation."""
        n = torch.as_tensor(n_samples, dtype=torch.long)
        if self.kind == "whisper":
            hop = int(self.feature_extractor.hop_length)
            mel = torch.clamp((n + hop - 1) // hop, max=int(self.feature_extractor.nb_max_frames))
            return self.model._get_feat_extract_output_lengths(mel).long()
        return self._conv_lengths(n)

    def _conv_lengths(self, n: torch.Tensor) -> torch.Tensor:
        """The feature encoder's output lengths (hidden states' frames; an adapter after the
        encoder, which only the last output would see, is not counted)."""
        import inspect
        fn = self.model._get_feat_extract_output_lengths
        if "add_adapter" in inspect.signature(fn).parameters:
            return fn(n, add_adapter=False).long()
        return fn(n).long()

    def max_samples(self, max_length: int | None = None) -> int:
        """Most samples kept so that the model sees at most `max_length` frames (largest such)."""
        limit = int(max_length or self.max_length)
        if limit not in self._max_samples:
            if self.kind == "whisper":
                hi = int(self.feature_extractor.n_samples)
            else:
                hi = 1 << 31
            lo = 0
            if int(self.frames([hi])[0]) <= limit:
                lo = hi
            while lo < hi:  # largest n with frames(n) <= limit (frames grow with n)
                mid = (lo + hi + 1) // 2
                if int(self.frames([mid])[0]) <= limit:
                    lo = mid
                else:
                    hi = mid - 1
            self._max_samples[limit] = lo
        return self._max_samples[limit]

    def load(self, path: str, max_length: int | None = None) -> np.ndarray:
        """The audio of `path` at the model's rate, truncated to `max_length` frames' worth."""
        wave = load_audio(path, self.sampling_rate)
        return wave[: self.max_samples(max_length)]

    def samples_of_file(self, path: str) -> int:
        """Samples of `path` at the model's rate: from the header of a WAV/FLAC file already at that
        rate (no decoding), else by loading and resampling it."""
        import soundfile
        try:
            info = soundfile.info(str(path))
        except Exception:  # noqa: BLE001 - load_audio names the problem
            info = None
        if info is not None and int(info.samplerate) == self.sampling_rate and info.format in ("WAV", "WAVEX", "FLAC"):
            return int(info.frames)
        return len(load_audio(path, self.sampling_rate))

    def frames_of_file(self, path: str, max_length: int | None = None) -> int:
        """Frames the model sees for the audio at `path`; an error when too short for one frame."""
        n_samples = min(self.samples_of_file(path), self.max_samples(max_length))
        n = int(self.frames([n_samples])[0])
        if n < 1:
            raise CorpusError(f"audio file {path} is too short for one frame of model {self.name} "
                              f"({n_samples} samples at {self.sampling_rate} Hz)", file=str(path),
                              language=getattr(self._language, "value", None),
                              hint="remove it from the corpus, or pass --skip-bad")
        return n

    # -- the LoadedModel interface ----------------------------------------------------------
    def _set_language(self, lang: str | None) -> None:
        self._language.value = lang  # per thread, only to name the language in errors

    def tokenize(self, texts: Sequence[str], lang: str | None = None, max_length: int | None = None):
        """Padded handle ids and the frame mask for the audio paths `texts` (see AudioTokenizer)."""
        self._set_language(lang)
        return self.tokenizer(list(texts), max_length=max_length or self.max_length, padding=True)

    def token_counts(self, texts: Sequence[str], lang: str | None = None,
                     max_length: int | None = None) -> list[int]:
        """Frames the model sees per audio file."""
        self._set_language(lang)
        return [self.frames_of_file(t, max_length or self.max_length) for t in texts]

    def _features(self, waves: list[np.ndarray]) -> dict:
        fe = self.feature_extractor
        if self.kind == "whisper":
            return fe(waves, sampling_rate=self.sampling_rate, return_attention_mask=True, return_tensors="pt")
        # the mask makes the normalisation per recording even when padded (do_normalize)
        return fe(waves, sampling_rate=self.sampling_rate, padding=True, return_attention_mask=True,
                  return_tensors="pt")

    def _forward(self, waves: list[np.ndarray]) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """(all hidden states, frame mask [B, T]) for one padded batch of waveforms."""
        feats = self._features(waves)
        if self.kind == "whisper":
            x = feats["input_features"].to(self.device, self.dtype)
            frames = self.model._get_feat_extract_output_lengths(feats["attention_mask"].sum(-1)).long()
            out = self.model(x, output_hidden_states=True, return_dict=True)
        else:
            x = feats["input_values"].to(self.device, self.dtype)
            am = feats["attention_mask"].to(self.device)
            frames = self._conv_lengths(feats["attention_mask"].sum(-1))
            if len(waves) == 1:
                out = self.model(x, output_hidden_states=True, return_dict=True)
            else:
                out = self.model(x, attention_mask=am, output_hidden_states=True, return_dict=True)
        hidden = out.hidden_states
        T = hidden[-1].shape[1]
        mask = (torch.arange(T)[None, :] < frames[:, None]).to(self.device)
        return hidden, mask

    def _pooled(self, waves: list[np.ndarray], keep: list[int] | None) -> torch.Tensor:
        from babelmap.engine.models.pooling import pool
        hidden, mask = self._forward(waves)
        if keep is not None:
            hidden = [hidden[i] for i in keep]
        return pool(hidden, mask, "mean")

    @torch.inference_mode()
    def embed(self, batch, pooling: str | None = None, out_dtype: torch.dtype | None = None,
              layers: Sequence[int] | None = None) -> torch.Tensor:
        """Masked mean over frames of every hidden state [B, K', H] (fp32, then `out_dtype`) for a
        batch from `tokenize`/the extraction loop (handles to audio paths, frame mask)."""
        method = pooling or self.default_pooling
        if method != "mean":
            raise ModelError(f"pooling {method!r} does not apply to a speech model; it takes mean (over frames)")
        keep = self._layer_indices(layers)
        handles = batch["input_ids"][:, 0].tolist()
        counts = batch["attention_mask"].sum(1).tolist()
        # each row truncated to the most samples giving its own frame count: the tokenizing pass's cut
        waves = [self.load(self.tokenizer.paths[h], int(c)) for h, c in zip(handles, counts)]
        if not self.padding_exact:  # equal lengths go together, unpadded
            out = [None] * len(waves)
            groups: dict[int, list[int]] = {}
            for i, w in enumerate(waves):
                groups.setdefault(len(w), []).append(i)
            for rows in groups.values():
                pooled = self._pooled([waves[i] for i in rows], keep)
                for r, i in enumerate(rows):
                    out[i] = pooled[r]
            result = torch.stack(out, 0)
        else:
            result = self._pooled(waves, keep)
        got = self.frames([len(w) for w in waves]).tolist()
        if got != [int(c) for c in counts]:
            raise ModelError(f"frame counts {got} differ from the batch's {counts}: the audio changed since "
                             "the corpus was read, or --max-length differs between passes")
        if out_dtype is not None and out_dtype != result.dtype:
            result = result.to(out_dtype)
        return result


def _hub_name(path: Path) -> tuple[str, str]:
    """(hub id, commit) when `path` is a Hugging Face cache snapshot, else (path, "")."""
    m = re.search(r"models--([^/]+)--([^/]+)/snapshots/([0-9a-f]{40})/?$", str(path))
    if m:
        return f"{m.group(1)}/{m.group(2)}", m.group(3)
    return str(path), ""


def _load_module(path: Path, config, kind: str, dtype: torch.dtype) -> torch.nn.Module:
    from transformers import AutoModel
    model = AutoModel.from_pretrained(str(path), dtype=dtype)
    if kind == "whisper":
        model = model.get_encoder()  # the decoder is not needed (and is dropped with the wrapper)
    return model


def load_speech_model(path: str | Path, config, device: torch.device = torch.device("cpu"),
                      dtype: torch.dtype = torch.float32, name: str | None = None, revision: str | None = None,
                      prefix: str | None = None, max_length: int | None = None) -> SpeechModel:
    """A speech checkpoint folder (config, weights, preprocessor_config.json) ready for
    extraction; engine.models.loading.load_model sends speech model types here."""
    from transformers import AutoFeatureExtractor

    from babelmap.engine.models.loading import check_max_length, fingerprint_dir

    path = Path(path)
    mt = getattr(config, "model_type", "")
    if mt in WHISPER_TYPES:
        kind = "whisper"
    elif mt in WAVEFORM_TYPES:
        kind = "waveform"
    else:
        raise ModelError(f"{path} is a {mt} speech model; supported speech models: "
                         f"{', '.join(sorted(WAVEFORM_TYPES | WHISPER_TYPES))}")
    if prefix:
        raise ModelError(f"--prefix {prefix!r} applies to text models; {path} is a speech model")
    hub_name, commit = _hub_name(path)
    if name is None or (commit and Path(name).expanduser() == path):
        name = hub_name  # a Hugging Face cache snapshot folder records its hub id and commit
    revision = revision or commit
    try:
        fe = AutoFeatureExtractor.from_pretrained(str(path))
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"cannot load the feature extractor of speech model {name} ({path}): "
                         f"{str(e).splitlines()[0] if str(e) else e!r}; it needs a preprocessor_config.json") from e
    try:
        model = _load_module(path, config, kind, dtype)
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"cannot load speech model {name} from {path}: {str(e).splitlines()[0] if str(e) else e!r}") from e
    model.eval().to(device)
    sm = SpeechModel(name=name, model=model, tokenizer=None, family="speech", default_pooling="mean", prefix="",
                     max_length=1, fingerprint=fingerprint_dir(path, commit=revision or ""), device=device,
                     dtype=dtype, path=path, config=config, revision=revision or "",
                     position_limit=int(config.max_source_positions) if kind == "whisper" else None,
                     feature_extractor=fe, kind=kind, sampling_rate=int(fe.sampling_rate))
    sm.tokenizer = AudioTokenizer(sm)
    default = sm.position_limit if kind == "whisper" else int(sm.frames([int(DEFAULT_SECONDS * sm.sampling_rate)])[0])
    sm.max_length = default if max_length is None else check_max_length(max_length, sm.position_limit)
    return sm
