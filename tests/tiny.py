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
    """Write a tiny random checkpoint of `family` to `path` and return the path."""
    import torch
    from transformers import BertConfig, BertModel

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
