"""Model families: which part of a checkpoint to run, which poolings apply, how many hidden states.

Following the mPLM-Sim method:
- `encoder` (BERT, XLM-R, Glot500, ...): the whole model; masked mean (default) or `cls`.
- `encoder-decoder` (mT5, NLLB, M2M100, mBART, ...): the ENCODER only; masked mean. NLLB and
  M2M100 tokenizers are told the source language.
- `decoder` (GPT-2, BLOOM, mGPT, Llama, Qwen2, Gemma, Mistral, ...): position-weighted mean,
  `weighted` (SGPT, the default) or `weighted-reference` (the reference code's weights); plain
  `mean`; `last` (the last kept token, as MEXA). A tokenizer without a pad token pads with its
  eos (else unk) token: the attention mask keeps padding out of every pooling.
- `canine`: masked mean, with the downsampled mask on the downsampled (molecule) layers.

The family comes from the config's `model_type` (with `is_encoder_decoder`, and an architecture
named `...ForCausalLM`, as fallbacks).
Speech models (SPEECH_TYPES) are not text models: load_model hands them to engine/models/speech.py.
"""
from __future__ import annotations

import torch

from babelmap.engine.errors import LanguageError, ModelError

ENCODER_DECODER_TYPES = {"t5", "mt5", "umt5", "byt5", "m2m_100", "nllb_moe", "mbart", "bart", "marian",
                         "pegasus", "mvp", "plbart", "longt5"}
T5_TYPES = {"t5", "mt5", "umt5", "longt5"}
DECODER_TYPES = {"gpt2", "bloom", "gpt_neo", "gpt_neox", "gptj", "xglm", "opt", "llama", "mistral",
                 "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "falcon", "phi", "phi3", "mpt",
                 "olmo", "olmo2", "stablelm", "codegen", "gpt_bigcode", "mixtral"}
CANINE_TYPES = {"canine"}
SPEECH_TYPES = {"wav2vec2", "wav2vec2-conformer", "wav2vec2-bert", "hubert", "wavlm", "whisper",
                "data2vec-audio"}

FAMILY_POOLINGS = {
    "encoder": ("mean", "cls"),
    "encoder-decoder": ("mean", "cls"),
    "decoder": ("weighted", "weighted-reference", "mean", "last"),
    "canine": ("mean", "cls"),
}
"""Allowed poolings per family; the first is the default."""


def family_of(config) -> str:
    """`encoder`, `encoder-decoder`, `decoder` or `canine` from a transformers config."""
    mt = getattr(config, "model_type", "")
    if mt in CANINE_TYPES:
        return "canine"
    if mt in ENCODER_DECODER_TYPES or getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder"
    if mt in DECODER_TYPES:
        return "decoder"
    if any(str(a).endswith("ForCausalLM") for a in getattr(config, "architectures", None) or ()):
        return "decoder"  # a causal LM this list does not name yet (its checkpoint says what it is)
    return "encoder"


def default_pooling(family: str) -> str:
    return FAMILY_POOLINGS[family][0]


def check_pooling(family: str, pooling: str) -> str:
    """Return `pooling` if it is valid for `family`, else raise ModelError naming the choices."""
    if pooling not in FAMILY_POOLINGS[family]:
        raise ModelError(f"pooling {pooling!r} does not apply to a {family} model; "
                         f"choose one of {', '.join(FAMILY_POOLINGS[family])}")
    return pooling


def num_hidden_states(config, family: str) -> int:
    """K: hidden states returned, the embedding output included (layers + 1).

    CANINE returns its initial char encoder (embeddings + 1 layer), the deep encoder
    (molecules + L layers) and the final char encoder (input + 1 layer): L + 5.
    """
    if family == "encoder-decoder":
        layers = getattr(config, "encoder_layers", None) or getattr(config, "num_layers", None)
        return int(layers or config.num_hidden_layers) + 1
    if family == "canine":
        return int(config.num_hidden_layers) + 5
    return int(config.num_hidden_layers) + 1


def hidden_size(config) -> int:
    for key in ("hidden_size", "d_model", "n_embd"):
        if getattr(config, key, None):
            return int(getattr(config, key))
    raise ModelError(f"cannot tell the hidden size of a {config.model_type} config")


def _from_pretrained(cls, path: str, dtype: torch.dtype, **kw) -> torch.nn.Module:
    """`cls.from_pretrained` with SDPA attention where the model has it, else its default."""
    try:
        return cls.from_pretrained(path, dtype=dtype, attn_implementation="sdpa", **kw)
    except (ValueError, ImportError, NotImplementedError) as e:
        if "sdpa" not in str(e).lower() and "attn" not in str(e).lower() and "attention" not in str(e).lower():
            raise
        return cls.from_pretrained(path, dtype=dtype, **kw)


def load_backbone(path: str, config, family: str, dtype: torch.dtype) -> torch.nn.Module:
    """The module to run: the whole model, or the encoder of an encoder-decoder (SDPA
    attention where the model supports it)."""
    from transformers import AutoModel

    if family == "encoder-decoder":
        if config.model_type in T5_TYPES:
            import transformers
            cls = {"t5": "T5EncoderModel", "mt5": "MT5EncoderModel", "umt5": "UMT5EncoderModel",
                   "longt5": "LongT5EncoderModel"}[config.model_type]
            level = transformers.logging.get_verbosity()
            transformers.logging.set_verbosity_error()  # the decoder's weights are skipped on purpose
            try:
                return _from_pretrained(getattr(transformers, cls), path, dtype)
            finally:
                transformers.logging.set_verbosity(level)
        full = _from_pretrained(AutoModel, path, dtype)
        encoder = full.get_encoder()
        del full  # the decoder is freed with the full model
        return encoder
    return _from_pretrained(AutoModel, path, dtype)


def prepare_tokenizer(tok, family: str) -> None:
    """Right padding by default (LoadedModel.embed also handles left-padded decoder batches)
    and a pad token: the tokenizer's own, else eos, else unk (Llama, Qwen, GPT-2 have none)."""
    tok.padding_side = "right"
    if tok.pad_token is None:
        if tok.eos_token is not None:
            tok.pad_token = tok.eos_token
        elif tok.unk_token is not None:
            tok.pad_token = tok.unk_token
        else:
            raise ModelError("tokenizer has no pad, eos or unk token to pad batches with")


def source_language_code(tok, lang: str) -> str | None:
    """The tokenizer's own code for our language id (NLLB: the id itself, e.g. `deu_Latn`;
    M2M100: the ISO 639-1 code), or None if the tokenizer takes no source language."""
    if not hasattr(tok, "src_lang"):
        return None
    base = lang.split("-")[0]
    candidates = [base]
    iso3 = base.split("_")[0]
    try:
        import langcodes
        two = langcodes.Language.get(iso3).language
        if two and two != iso3:
            candidates.append(two)
    except Exception:  # noqa: BLE001  (langcodes missing or unknown code)
        pass
    candidates.append(iso3)
    vocab = tok.get_vocab()
    for code in candidates:
        # NLLB: the code itself is a special token (deu_Latn); M2M100: __de__
        if ("_" in code and code in vocab) or f"__{code}__" in vocab:
            return code
    raise LanguageError(f"language {lang!r} is not among this tokenizer's source languages "
                        f"(tried {', '.join(candidates)}); select languages the model knows")
