"""One module per `babelmap` subcommand (see babelmap/cli.py for the protocol)."""
