"""Corpus readers, one module per format; each returns a `ParallelCorpus`."""
from babelmap.engine.corpora.base import ParallelCorpus  # noqa: F401
