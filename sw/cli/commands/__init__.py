"""One module per ``tritium`` subcommand (see :mod:`tritium.sw.cli.main`)."""
