"""`babelmap run`: the whole pipeline (corpus -> store -> similarity [+ alignment measures] ->
measures -> correlation -> clusters -> figures -> [transfer, probe] -> report) in one results
folder; reruns reuse what is done."""
from __future__ import annotations

import argparse

NAME = "run"
HELP = "run the whole pipeline (default: the embedded model on the CLDR corpus) and write a report"
EXAMPLE = """babelmap run                                   # embedded defaults -> results/default/report.md
babelmap run --corpus ../shared/data/flores200/dev --format flores --langs 'eng_*' 'deu_*' 'fra_*' \\
    --max-sentences 200 --glottolog ../shared/data/glottolog --out results/flores
babelmap run --corpus ../shared/data/flores200 --format flores --langs eng_Latn deu_Latn fra_Latn ... \
    --alignment mexa retrieval@1 --probe --out results/probe   # + MEXA, retrieval, topic-probe grid
(run it again: finished stages are reused; --force recomputes everything)"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from babelmap.corpus_options import add_corpus_arguments
    from babelmap.pipeline.config import DEFAULT_MEASURES
    p.add_argument("--out", default="results/default", help="results folder (default results/default)")
    add_corpus_arguments(p, format_required=False)
    p.add_argument("--model", default=None, help="model checkpoint folder (default: the embedded "
                   "multilingual-e5-small-q4)")
    p.add_argument("--measures", nargs="+", default=list(DEFAULT_MEASURES), metavar="M",
                   help="linguistic measures: URIEL kinds, lex, or square TSV files "
                   f"(default: {' '.join(DEFAULT_MEASURES)}); model measures named here (mexa, retrieval@K) "
                   "are computed as with --alignment")
    p.add_argument("--glottolog", metavar="FOLDER", help="Glottolog CLDF folder: adds the Glottolog measure "
                   "and family labels for the clusters")
    p.add_argument("--asjp", metavar="FOLDER", help="ASJP CLDF folder: adds the ASJP (LDND) measure")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--bootstrap", type=int, default=0, metavar="B",
                   help="bootstrap replicates over sentence blocks (intervals on similarities and correlations)")
    p.add_argument("--min-partners", type=int, default=5, metavar="N",
                   help="a language needs N partners with both values to enter a correlation (default 5)")
    p.add_argument("--clusters", type=int, default=None, metavar="K", help="number of clusters (default: "
                   "the number of families, else sqrt(L/2))")
    p.add_argument("--linkage", default="complete", help="complete (default), average, single, weighted, ward")
    p.add_argument("--transfer", metavar="CSV", help="long-format transfer results (e.g. xpos udpos-ft-10000.csv): "
                   "evaluate source-language selection by the model's similarity, each measure and English")
    p.add_argument("--alignment", nargs="+", default=[], metavar="A",
                   help="model alignment measures beside cosine-mean, each from the store into "
                   "similarity-<A>.h5 and correlated with the linguistic measures: mexa, retrieval@K")
    p.add_argument("--probe", action="store_true", help="FLORES only: the topic-probe transfer grid from the "
                   "store (source x target x layer) and source selection evaluated on it")
    p.add_argument("--no-figures", action="store_true", help="no figures")
    p.add_argument("--force", action="store_true", help="recompute every stage")
    p.add_argument("--no-progress", action="store_true", help="no progress output")


def config_from_args(args: argparse.Namespace):
    """The RunConfig of the parsed arguments (`--format` defaults to cldr without `--corpus`)."""
    from babelmap.engine.errors import CorpusError
    from babelmap.pipeline import RunConfig
    fmt = args.format or ("cldr" if args.corpus is None else None)
    if fmt is None:
        from babelmap.corpus_options import FORMATS
        raise CorpusError("--format is required with --corpus", hint=f"one of {', '.join(FORMATS)}")
    return RunConfig(out=args.out, corpus=args.corpus, format=fmt, model=args.model, langs=args.langs,
                     max_sentences=args.max_sentences, min_languages=args.min_languages,
                     split=args.split, sample=args.sample, seed=0 if args.seed is None else args.seed,
                     stratify=args.stratify,
                     measures=list(args.measures), glottolog=args.glottolog, asjp=args.asjp,
                     device=args.device, bootstrap=args.bootstrap, min_partners=args.min_partners,
                     clusters=args.clusters, linkage=args.linkage, skip_bad=args.skip_bad,
                     progress=not args.no_progress, force=args.force, figures=not args.no_figures,
                     transfer=args.transfer, alignment=list(args.alignment), probe=args.probe)


def run(args: argparse.Namespace) -> int:
    from babelmap.pipeline import run as run_pipeline
    from babelmap.pipeline import terminal_summary
    res = run_pipeline(config_from_args(args))
    print(terminal_summary(res.out))
    return 0
