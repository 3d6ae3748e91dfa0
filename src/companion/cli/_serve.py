"""`companion serve`: run the HTTP service with uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["serve"]


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [COMPANION_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port [COMPANION_PORT].")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes [COMPANION_WORKERS].")
    ] = None,
) -> None:
    """Serve the HTTP API (embedded defaults: no external server needed)."""
    import uvicorn

    from companion.config import load_settings

    overrides = {"host": host, "port": port, "workers": workers}
    settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    typer.echo(
        f"companion: serving on http://{settings.host}:{settings.port} "
        f"(data in {settings.data_dir}, {settings.workers} worker(s))",
        err=True,
    )
    # The factory re-reads settings in each worker from the same environment.
    uvicorn.run(
        "companion.api:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        access_log=False,
    )
