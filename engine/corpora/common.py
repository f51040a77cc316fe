"""What every reader shares: strict line reading, and the raise-or-skip rule for bad input.

Readers never guess: a problem that could shift alignment raises `CorpusError` naming the file,
line and language; only with `skip_bad=True` is the offending file/language dropped, with a
logged warning and a record in `ParallelCorpus.skipped` (which the store records later).
"""
from __future__ import annotations

import logging
from pathlib import Path

from babelmap.engine.errors import BabelmapError, CorpusError

log = logging.getLogger("babelmap.corpora")


class Skips:
    """Collects skip records for a reader run; `handle(err)` raises unless skipping is allowed."""

    def __init__(self, skip_bad: bool):
        self.skip_bad = skip_bad
        self.records: list[dict] = []

    def handle(self, err: CorpusError, what: str | None = None) -> None:
        """Raise `err`, or (with skip_bad) log it and record what was skipped."""
        if not self.skip_bad:
            raise err
        rec = {"file": err.file, "line": err.line, "language": err.language, "what": what or err.file,
               "reason": str(err).split("\n")[0]}
        log.warning("skipped %s: %s", rec["what"], rec["reason"])
        self.records.append(rec)

    def note(self, what: str, reason: str, file: str | None = None, language: str | None = None) -> None:
        """Record a deliberate omission that is not an error (e.g. an `und` UDHR file)."""
        log.info("left out %s: %s", what, reason)
        self.records.append({"file": file, "line": None, "language": language, "what": what,
                             "reason": reason})


def decode_utf8(data: bytes, path: Path | str, language: str | None = None) -> str:
    """Strict UTF-8 (a leading BOM dropped); bad bytes -> CorpusError with the line of the first one."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise CorpusError(f"undecodable bytes {data[e.start:e.end]!r} at column {col}: not UTF-8",
                          file=str(path), line=line, language=language,
                          hint="convert the file to UTF-8 (e.g. iconv), or pass --skip-bad to leave it out")


def read_lines(path: Path | str, language: str | None = None) -> list[str]:
    """The lines of a UTF-8 text file, split on `\\n` only (FLORES has U+0085 & co. inside lines);
    a final newline ends the last line, a trailing `\\r` is dropped."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CorpusError(f"cannot read: {e.strerror}", file=str(path), language=language) from None
    text = decode_utf8(data, path, language)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if "\r" in text:
        lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    return lines


def check_ids_unique(ids_to_files: dict[str, list[str]], skips: Skips) -> set[str]:
    """Ids that more than one file maps to: an error (or, skipping, all of them are dropped)."""
    bad = set()
    for lang, files in ids_to_files.items():
        if len(files) > 1:
            bad.add(lang)
            skips.handle(CorpusError(f"{len(files)} files map to one language id: {', '.join(files)}",
                                     file=files[1], language=lang,
                                     hint="rename one of them (e.g. add a -variant to its name) or remove it"),
                         what=", ".join(files))
    return bad


def language_error_as_corpus_error(err: BabelmapError, file: str, code: str) -> CorpusError:
    """An unknown code in a file name or header, reported as a corpus problem naming the file."""
    return CorpusError(f"unknown language code {code!r}: {err}", file=file, language=code,
                       hint="rename the file to an ISO 639 code (e.g. deu_Latn.txt), or pass --skip-bad")
