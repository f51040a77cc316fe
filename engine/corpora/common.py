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


def check_no_nul(text: str, path: Path | str, language: str | None = None) -> None:
    """A NUL character is never text (a binary or corrupted file): CorpusError naming its line."""
    i = text.find("\0")
    if i >= 0:
        raise CorpusError(f"NUL character at column {i - (text.rfind(chr(10), 0, i) + 1) + 1}: not a text file "
                          "(binary or corrupted)", file=str(path), line=text.count("\n", 0, i) + 1,
                          language=language, hint="remove the NUL bytes (e.g. tr -d '\\000'), or pass --skip-bad")


def read_lines(path: Path | str, language: str | None = None) -> list[str]:
    """The lines of a UTF-8 text file, split on `\\n` only (FLORES has U+0085 & co. inside lines);
    a final newline ends the last line, a trailing `\\r` is dropped. A NUL byte is an error."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CorpusError(f"cannot read: {e.strerror}", file=str(path), language=language) from None
    text = decode_utf8(data, path, language)
    check_no_nul(text, path, language)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if "\r" in text:
        lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    return lines


# Text normalisation every reader applies (the reference mPLM-Sim code strips each sentence too).
NORMALIZATION = "strip"


def clean_text(t: str | None) -> str | None:
    """A sentence with surrounding whitespace stripped (`str.strip`); empty -> None (missing)."""
    if t is None:
        return None
    t = t.strip()
    return t or None


# Three-letter English words that are also ISO 639 codes, so a stray `tmp.txt` or `new.txt` would
# silently become a language. Such a file name is refused unless `--langs` names it. Left out:
# codes of FLORES-200 languages and the ISO 639-2 codes of major ones (fin, ice, may, nor, per, ton),
# which people use on purpose.
COMMON_WORDS = frozenset("""
add ado aid aim air ale all and any ape arc are ark arm ash ask awe axe bag bar bay baz bed bee beg
bet bib bid big bin bit bob bog bow box boy bud bun bus but buy cab cam can cap car cob cod cog cot
cow coy cry cub cup cut dam den dev did dig dim din dip doc doe don dot dry dub dud due dug elk elm
emu end era etc eve fad fan far fat fax fir fit fly for fry fun gab gag gal gap gas gel gin god gum
gun gut gym had ham has hay hem her hid hit hop hot how hub hue hug hum hut ill inn its jab jam jar
jaw jet jig job jog keg key kid kit lab lad lag lap law lax lay lea led lee leg let lib lid lie lip
lob log lop lot low mac mad man mat maw max men mix mob mom mop mow mud mug nab nag nap nay net new
nib nil nod not now nun nut oak oar old one opt ore owl pad pal par pas pat paw pay pea peg pen pep
pie pig pin pit ply pod pop pot pox pro pry pub pun pup pus put rag ram ran rap rat raw ray res rib
rim rob rod roe row rub rue rug rum rut sac sad sap saw say sea see set sew she shy sip sir sis six
ski sky sly sob sod sop sow soy spy src sty sub sum tab tad tag tan tap tar tax tea tee tem ten the
tic tie til tin tip tit tmp tod toe tom too top tor tot tow toy try tub tug two ugh urn van var wad
wag wan was wax way wed wet wig win wit woe wok won woo wry yak yam yap yea yen yes yet yon zap zoo
""".split())


def named_in(stem: str, lang: str | None, langs) -> bool:
    """Does a `--langs` entry name this file explicitly (its stem or id, or a glob starting with the
    stem such as `new*`)? A bare `*` does not."""
    for w in langs or ():
        w = str(w)
        if w in (stem, lang) or (w.lower().startswith(stem.lower()) and len(w) > len(stem)):
            return True
    return False


def refuse_common_word(stem: str, path: Path | str, langs) -> CorpusError | None:
    """The error for a file whose name is a common English word (`tmp`, `new`, `old`), unless named."""
    if stem.lower() not in COMMON_WORDS or named_in(stem, None, langs):
        return None
    return CorpusError(f"file name {stem!r} is a common English word as well as an ISO 639 language code: "
                       "not read as a language (it looks like a stray file)", file=str(path), language=stem,
                       hint=f"name it in --langs (e.g. --langs {stem.lower()}_Latn ...) if it really is that "
                            "language, or give it a code with a script (e.g. xxx_Latn.txt), or remove it")


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
