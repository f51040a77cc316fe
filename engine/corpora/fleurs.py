"""FLEURS reader: speech recordings of FLORES sentences, parallel by the FLORES sentence id.

Layout (as google/fleurs ships it, audio archives unpacked): `<root>/<lang>/<split>.tsv` and
`<root>/<lang>/audio/<split>/<file>.wav`, language folders named like `de_de`, `cmn_hans_cn`
(mapped to FLORES-200 ids: `fleurs_language`); `<root>/data/<lang>/...` is read too. Each TSV line
(tab separated, no header, no quoting) is `id, file_name, raw_transcription, transcription,
characters, num_samples, gender` (the `characters` column may be absent: 6 columns). `id` is
the FLORES sentence id shared by every language: the sentence axis. A sentence read by several
speakers keeps one recording, the first by file name. The "text" of a sentence is the absolute
path of its audio file (what speech models read); transcriptions are kept in `meta`.
"""
from __future__ import annotations

import csv
from pathlib import Path

from babelmap.engine.corpora.base import ParallelCorpus
from babelmap.engine.corpora.common import Skips, check_ids_unique, language_error_as_corpus_error, read_lines
from babelmap.engine.errors import CorpusError, LanguageError

LICENCE = "CC-BY-4.0"
# FLEURS configs whose code names a macrolanguage or another label than the FLORES-200 language its
# speakers read (FLEURS is FLORES-101 read aloud): so speech and text stores share ids. Every other
# folder name maps through engine.languages.normalize_code (de_de -> deu_Latn, cmn_hans_cn is below).
FLEURS_TO_FLORES = {"ar_eg": "arb_Arab", "az_az": "azj_Latn", "cmn_hans_cn": "zho_Hans", "fa_ir": "pes_Arab",
                    "ff_sn": "fuv_Latn", "fil_ph": "tgl_Latn", "lv_lv": "lvs_Latn", "mn_mn": "khk_Cyrl",
                    "ms_my": "zsm_Latn", "ne_np": "npi_Deva", "om_et": "gaz_Latn", "or_in": "ory_Orya",
                    "ps_af": "pbt_Arab", "sw_ke": "swh_Latn", "uz_uz": "uzn_Latn"}
SPLITS = ("train", "dev", "test")
CHOICE = "first recording by file name"


def fleurs_language(folder: str) -> str:
    """Our id for a FLEURS language folder (`de_de` -> `deu_Latn`, `cmn_hans_cn` -> `zho_Hans`)."""
    from babelmap.engine.languages import normalize_code
    return normalize_code(FLEURS_TO_FLORES.get(folder.lower(), folder))


def _language_root(root: Path, split: str) -> Path:
    """The folder whose subfolders are languages (`root`, or `root/data` as on the hub)."""
    for cand in (root, root / "data"):
        if cand.is_dir() and any(p.is_file() for p in cand.glob(f"*/{split}.tsv")):
            return cand
    raise CorpusError(f"no <lang>/{split}.tsv here", file=str(root),
                      hint="point --corpus at the FLEURS folder holding one folder per language "
                           "(de_de/, fr_fr/, ...), each with dev.tsv and audio/dev/*.wav")


def _rows(tsv: Path, lang: str) -> list[tuple[int, int, str, str, str]]:
    """(line, sentence id, file name, raw transcription, gender) per TSV line; bad lines raise."""
    out = []
    for n, line in enumerate(read_lines(tsv, language=lang), 1):
        if not line.strip():
            continue
        cols = next(csv.reader([line], delimiter="\t", quoting=csv.QUOTE_NONE))
        if len(cols) not in (6, 7):
            raise CorpusError(f"{len(cols)} tab-separated columns; a FLEURS line has 7 (id, file_name, "
                              "raw_transcription, transcription, characters, num_samples, gender)",
                              file=str(tsv), line=n, language=lang)
        try:
            sid = int(cols[0])
        except ValueError:
            raise CorpusError(f"sentence id {cols[0]!r} is not an integer (the first column is the FLORES "
                              "sentence id)", file=str(tsv), line=n, language=lang) from None
        name = cols[1]
        if not name or Path(name).name != name:
            raise CorpusError(f"file name {name!r} is not a plain file name", file=str(tsv), line=n,
                              language=lang)
        out.append((n, sid, name, cols[2], cols[-1]))
    if not out:
        raise CorpusError("no recordings listed", file=str(tsv), language=lang)
    return out


def _check_audio(path: Path, tsv: Path, line: int, lang: str) -> None:
    """The audio file exists and its header reads as audio with at least one sample."""
    import soundfile

    if not path.is_file():
        raise CorpusError(f"audio file {path} is missing", file=str(tsv), line=line, language=lang,
                          hint="unpack the split's audio archive into <lang>/audio/<split>/, or pass --skip-bad")
    try:
        info = soundfile.info(str(path))
    except Exception as e:  # noqa: BLE001 - libsndfile's error types vary by version
        raise CorpusError(f"audio file {path} is unreadable ({str(e).splitlines()[0] if str(e) else e!r})",
                          file=str(tsv), line=line, language=lang,
                          hint="replace the file with a readable WAV/FLAC, or pass --skip-bad") from None
    if info.frames <= 0:
        raise CorpusError(f"audio file {path} holds no samples", file=str(tsv), line=line, language=lang,
                          hint="replace the file, or pass --skip-bad")


def _read_language(folder: Path, lang: str, split: str) -> tuple[dict[int, str], dict[int, str], int]:
    """({sentence id: audio path}, {sentence id: raw transcription}, recordings listed) of one
    language, one recording per sentence (the first by file name), each audio file checked."""
    tsv = folder / f"{split}.tsv"
    chosen: dict[int, tuple[str, int, str]] = {}
    rows = _rows(tsv, lang)
    for line, sid, name, raw, _gender in rows:
        if sid not in chosen or name < chosen[sid][0]:
            chosen[sid] = (name, line, raw)
    audio = folder / "audio" / split
    paths, transcripts = {}, {}
    for sid, (name, line, raw) in sorted(chosen.items()):
        path = (audio / name).resolve()
        _check_audio(path, tsv, line, lang)
        paths[sid] = str(path)
        transcripts[sid] = raw
    return paths, transcripts, len(rows)


def read_fleurs(path: str | Path, *, split: str = "dev", skip_bad: bool = False,
                name: str | None = None) -> ParallelCorpus:
    """Read FLEURS `split` (train, dev or test) from `path`: one language per folder, parallel by
    the FLORES sentence id; texts are audio paths (see the module docstring)."""
    if split not in SPLITS:
        raise CorpusError(f"unknown FLEURS split {split!r}", hint=f"use one of {', '.join(SPLITS)}")
    base = _language_root(Path(path), split)
    skips = Skips(skip_bad)
    folders, by_id = {}, {}
    for folder in sorted(p for p in base.iterdir() if (p / f"{split}.tsv").is_file()):
        try:
            lang = fleurs_language(folder.name)
        except LanguageError as e:
            skips.handle(language_error_as_corpus_error(e, str(folder / f"{split}.tsv"), folder.name))
            continue
        folders[lang] = folder
        by_id.setdefault(lang, []).append(str(folder))
    for lang in check_ids_unique(by_id, skips):
        folders.pop(lang, None)
    per_lang, meta = {}, {}
    for lang, folder in sorted(folders.items()):
        try:
            paths, transcripts, n_rec = _read_language(folder, lang, split)
        except CorpusError as e:
            skips.handle(e)
            continue
        per_lang[lang] = paths
        meta[lang] = {"source": str(folder / f"{split}.tsv"), "folder": folder.name, "licence": LICENCE,
                      "split": split, "recordings": n_rec, "chosen": CHOICE, "modality": "speech",
                      "transcription": {str(s): t for s, t in transcripts.items()}}
    if not per_lang:
        raise CorpusError(f"no readable FLEURS language for split {split}", file=str(base))
    sids = sorted(set().union(*per_lang.values()))
    langs = sorted(per_lang)
    texts = [[per_lang[l].get(s) for s in sids] for l in langs]
    corpus = ParallelCorpus(name or f"fleurs-{split}", langs, [str(s) for s in sids], texts, meta,
                            skips.records)
    corpus.split = split
    return corpus
