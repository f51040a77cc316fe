"""Tiny random models and tokenizers built from configs, offline (no hub download).

`make_tiny_model(path, family="bert")` writes a Hugging Face checkpoint directory that
`AutoModel`/`AutoTokenizer` (and so `babelmap extract --model PATH`) load like any other.
"""
from __future__ import annotations

from pathlib import Path

TRAIN_TEXT = [
    "The quick brown fox jumps over the lazy dog.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "Быстрая коричневая лиса прыгает через ленивую собаку.",
    "敏捷的棕色狐狸跳过了懒狗。", "Η γρήγορη καφέ αλεπού πηδά πάνω από το τεμπέλικο σκυλί.",
    "الثعلب البني السريع يقفز فوق الكلب الكسول.", "तेज़ भूरी लोमड़ी आलसी कुत्ते के ऊपर कूदती है।",
    "In the beginning was the Word, and the Word was with God.",
    "Au commencement était la Parole, et la Parole était avec Dieu.",
]


def make_tokenizer(path: str | Path, vocab_size: int = 300):
    """A byte-level BPE tokenizer (any script encodes) with <s> </s> <pad> <unk> specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(TRAIN_TEXT * 4, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>", cls_token="<s>", sep_token="</s>",
                                   model_max_length=128)
    fast.save_pretrained(str(path))
    return fast


def make_tiny_model(path: str | Path, family: str = "bert", seed: int = 0, layers: int = 2,
                    hidden: int = 32) -> Path:
    """Write a tiny random checkpoint of `family` (any of FAMILIES) to `path`; return the path."""
    import torch
    from transformers import BertConfig, BertModel

    if family != "bert":
        return make_tiny_family(path, family, seed=seed, layers=layers, hidden=hidden)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = make_tokenizer(path)
    torch.manual_seed(seed)
    if family == "bert":
        cfg = BertConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers,
                         num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=128,
                         pad_token_id=tok.pad_token_id)
        model = BertModel(cfg)
    else:
        raise ValueError(f"unknown tiny family {family!r}")
    model.eval()
    model.save_pretrained(str(path))
    return path


FAMILIES = ("bert", "xlm-roberta", "mt5", "nllb", "gpt2", "bloom", "canine", "llama", "qwen2", "gemma")
"""Tiny families `make_tiny_model` builds (each offline, random weights, `layers` layers)."""
LLM_FAMILIES = ("llama", "qwen2", "gemma")
"""Decoder LLMs whose tokenizer, like the real ones, adds only <s> and has no pad token."""


def make_llm_tokenizer(path: str | Path, vocab_size: int = 300):
    """A byte-level BPE tokenizer shaped like Llama's/Gemma's: <s> before each text, no </s>
    after it, and no pad token (load_model must choose one). `<|endoftext|>` is in the vocabulary
    because transformers' Qwen2 tokenizer class pads with it, as real Qwen2 tokenizers do."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<s>", "</s>", "<unk>", "<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(TRAIN_TEXT * 4, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   model_max_length=128)
    fast.save_pretrained(str(path))
    return fast


def make_nllb_tokenizer(path: str | Path, vocab_size: int = 300):
    """An NLLB tokenizer (NllbTokenizer class, language codes as specials) over a tiny
    Metaspace BPE vocabulary trained on TRAIN_TEXT."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import NllbTokenizer

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                  show_progress=False)
    bpe.train_from_iterator(TRAIN_TEXT * 4, trainer)
    data = __import__("json").loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in data["merges"]]
    tok = NllbTokenizer(vocab=data["vocab"], merges=merges, src_lang="eng_Latn")
    tok.save_pretrained(str(path))
    return tok


def _tiny_model(family: str, path: Path, layers: int, hidden: int):
    """(model, tokenizer length) for one family; the tokenizer is written to `path`."""
    import transformers as tf

    common = dict(num_attention_heads=2, intermediate_size=2 * hidden)
    if family == "canine":
        tf.CanineTokenizer(model_max_length=256).save_pretrained(str(path))
        cfg = tf.CanineConfig(hidden_size=hidden, num_hidden_layers=layers, max_position_embeddings=256,
                              downsampling_rate=4, upsampling_kernel_size=4, num_hash_functions=2,
                              num_hash_buckets=256,  # CANINE sizes its position table by this
                              local_transformer_stride=16, **common)
        return tf.CanineModel(cfg)
    if family == "nllb":
        tok = make_nllb_tokenizer(path)
        cfg = tf.M2M100Config(vocab_size=len(tok), d_model=hidden, encoder_layers=layers, decoder_layers=1,
                              encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=2 * hidden,
                              decoder_ffn_dim=2 * hidden, max_position_embeddings=128, pad_token_id=tok.pad_token_id,
                              bos_token_id=0, eos_token_id=2, decoder_start_token_id=2, scale_embedding=True,
                              dropout=0.0)
        return tf.M2M100Model(cfg)
    if family in LLM_FAMILIES:
        tok = make_llm_tokenizer(path)
        llm = dict(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                   num_key_value_heads=1, intermediate_size=2 * hidden, max_position_embeddings=128,
                   bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=None)
        if family == "llama":
            return tf.LlamaModel(tf.LlamaConfig(**llm))
        if family == "qwen2":
            return tf.Qwen2Model(tf.Qwen2Config(**llm))
        return tf.GemmaModel(tf.GemmaConfig(head_dim=hidden // 2, **llm))
    tok = make_tokenizer(path)
    if family == "xlm-roberta":
        cfg = tf.XLMRobertaConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers,
                                  max_position_embeddings=130, pad_token_id=tok.pad_token_id, **common)
        return tf.XLMRobertaModel(cfg)
    if family == "mt5":
        cfg = tf.MT5Config(vocab_size=len(tok), d_model=hidden, d_kv=hidden // 2, d_ff=2 * hidden,
                           num_layers=layers, num_decoder_layers=1, num_heads=2, pad_token_id=tok.pad_token_id,
                           eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.pad_token_id)
        return tf.MT5Model(cfg)
    if family == "gpt2":
        cfg = tf.GPT2Config(vocab_size=len(tok), n_embd=hidden, n_layer=layers, n_head=2, n_positions=128,
                            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
        return tf.GPT2Model(cfg)
    if family == "bloom":
        cfg = tf.BloomConfig(vocab_size=len(tok), hidden_size=hidden, n_layer=layers, n_head=2,
                             pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                             eos_token_id=tok.eos_token_id)
        return tf.BloomModel(cfg)
    raise ValueError(f"unknown tiny family {family!r}; choose one of {', '.join(FAMILIES)}")


def make_tiny_family(path: str | Path, family: str, seed: int = 0, layers: int = 2, hidden: int = 32) -> Path:
    """Write a tiny random checkpoint of any family in FAMILIES to `path` and return the path."""
    import torch

    if family == "bert":
        return make_tiny_model(path, "bert", seed=seed, layers=layers, hidden=hidden)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = _tiny_model(family, path, layers, hidden)
    model.eval()
    model.save_pretrained(str(path))
    return path
