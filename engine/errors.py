"""Errors babelmap raises on purpose: each names the file, the line and the language when it can."""
from __future__ import annotations


class BabelmapError(Exception):
    """Base class: a problem the user can fix; the CLI prints it without a traceback."""


class CorpusError(BabelmapError):
    """Bad corpus input (misaligned file, undecodable bytes, unknown code, duplicate ids...)."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 language: str | None = None, hint: str | None = None):
        self.file, self.line, self.language, self.hint = file, line, language, hint
        where = []
        if file is not None:
            where.append(f"file {file}")
        if line is not None:
            where.append(f"line {line}")
        if language is not None:
            where.append(f"language {language}")
        text = message if not where else f"{message} ({', '.join(where)})"
        if hint:
            text += f"\n  what to do: {hint}"
        super().__init__(text)


class StoreError(BabelmapError):
    """A store or its parts are missing, corrupt, or from another model, pooling or corpus."""


class ModelError(BabelmapError):
    """A model cannot be found, converted or loaded."""


class LanguageError(BabelmapError):
    """An unknown language name or id; carries suggestions."""

    def __init__(self, message: str, suggestions: list[str] | None = None):
        self.suggestions = suggestions or []
        if self.suggestions:
            message += f" (did you mean: {', '.join(self.suggestions)}?)"
        super().__init__(message)
