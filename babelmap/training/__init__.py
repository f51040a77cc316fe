"""Training, above `kernels`: `finetune` (a sequence classifier on labelled sentences),
`adjust` (cross-lingual adjustment on aligned word pairs) and `loss.AlignmentLoss` (the
adjustment objective for any training loop)."""
