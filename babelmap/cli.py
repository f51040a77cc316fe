"""The `babelmap` command: one subcommand per module in `babelmap/commands/`.

Each command module defines `NAME`, `HELP`, `add_arguments(parser)` and `run(args) -> int`,
with an example in its `EXAMPLE` string (shown by `--help`).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from babelmap.errors import BabelmapError

ORDER = ["run", "extract", "similarity", "lex", "check", "bench", "compare", "finetune",
         "words", "align", "adjust", "info"]


def _command_modules():
    import babelmap.commands as pkg
    names = [m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")]
    names.sort(key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    for name in names:
        yield importlib.import_module(f"babelmap.commands.{name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="babelmap",
        description="Language similarity inside multilingual language models, at every layer.",
        epilog="Run `babelmap COMMAND --help` for a command's options and an example.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP,
                           epilog="example:\n  " + getattr(mod, "EXAMPLE", "").strip().replace("\n", "\n  "),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="babelmap: %(message)s")
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except BabelmapError as e:
        print(f"babelmap {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; finished work is kept, run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
