"""`babelmap finetune`: fine-tune a model for sentence classification on a `text<TAB>label`
file (a linear head on the mean-pooled or first-token last hidden state) and save a checkpoint
directory that `babelmap extract --model DIR` takes, with the head in `head.safetensors`."""
from __future__ import annotations

import argparse

NAME = "finetune"
HELP = "fine-tune a model for sequence classification (accelerate); saves a checkpoint for extract"
EXAMPLE = """babelmap finetune --train topics.eng.tsv --out e5-topics/ --epochs 4 --lr 5e-5 --head-lr 2e-3 --freeze-embeddings
babelmap finetune --model xlm-roberta-base --train nli.en.tsv --out xlmr-nli-en/ --epochs 3 --lr 2e-5 --bf16
accelerate launch --multi_gpu --num_processes 2 -m babelmap finetune --model xlm-roberta-base --train nli.en.tsv --out xlmr-nli-en/
babelmap extract --corpus flores200/dev --format flores --model xlmr-nli-en/ --pooling cls --out tuned.h5"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="default",
                   help="Hugging Face Hub id or checkpoint folder (default: the embedded default model)")
    p.add_argument("--train", required=True, help="UTF-8 file, one `text<TAB>label` per line")
    p.add_argument("--out", required=True, help="output checkpoint directory")
    p.add_argument("--epochs", type=int, default=3, help="epochs (default 3)")
    p.add_argument("--lr", type=float, default=2e-5, help="peak learning rate of the encoder (default 2e-5)")
    p.add_argument("--head-lr", type=float, default=1e-3, help="peak learning rate of the linear head (default 1e-3)")
    p.add_argument("--pooling", choices=("mean", "cls"), default=None,
                   help="what the head reads: masked mean of the last hidden state, or its first token "
                        "(default: the model's own; mean for the E5 default model and its descendants, else cls)")
    p.add_argument("--prefix", default=None,
                   help="text prepended to every example (default: the model's; 'query: ' for the default model)")
    p.add_argument("--batch-size", type=int, default=16, help="examples per batch and process (default 16)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 mixed precision")
    p.add_argument("--max-length", type=int, default=128, help="truncate to N tokens (default 128)")
    p.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay (default 0.01)")
    p.add_argument("--warmup", type=float, default=0.1, help="fraction of steps of linear warm-up (default 0.1)")
    p.add_argument("--freeze-embeddings", action="store_true", help="keep the input embedding matrix fixed")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="auto", help="auto or cpu (under accelerate launch: its devices)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from babelmap.training.finetune import finetune

    res = finetune(args.model, args.train, args.out, epochs=args.epochs, lr=args.lr, head_lr=args.head_lr,
                   pooling=args.pooling, prefix=args.prefix, batch_size=args.batch_size,
                   bf16=args.bf16, max_length=args.max_length, weight_decay=args.weight_decay,
                   warmup=args.warmup, seed=args.seed, device=args.device, progress=not args.no_progress,
                   overwrite=args.overwrite, freeze_embeddings=args.freeze_embeddings)
    losses = " ".join(f"{x:.4f}" for x in res.epoch_loss)
    print(f"{res.settings['examples']} examples, labels {res.labels}, loss per epoch: {losses}, "
          f"training accuracy {res.train_accuracy:.3f}, {res.settings['head_pooling']} head, "
          f"{res.seconds:.1f} s -> {res.path}")
    return 0
