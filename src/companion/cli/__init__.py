"""The `companion` command line; heavy modules are imported inside commands so `--help` is quick."""

from companion.cli._main import app, main

__all__ = ["app", "main"]
