"""Public re-export of the error types (defined in `babelmap.engine.errors`, the bottom layer)."""
from babelmap.engine.errors import (BabelmapError, CorpusError, LanguageError, ModelError,  # noqa: F401
                                    StoreError)
