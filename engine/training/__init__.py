"""Training utilities that write Hugging Face checkpoints `babelmap extract` can read (fine-tuning, cross-lingual adjustment)."""
