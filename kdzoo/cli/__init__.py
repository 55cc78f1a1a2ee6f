"""The command line, all commands in one package: ``kdzoo train | list | transfer`` (main.py) and
``kdzoo bench | leaderboard`` (bench.py). The entry point is ``kdzoo.cli:main``."""
from .main import EXIT_INTERRUPTED, EXIT_USAGE, build_parser, main

__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "build_parser", "main"]
