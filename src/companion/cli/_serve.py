"""`companion serve`: run the HTTP service with uvicorn."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from companion.config import Settings

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

    from companion.api._logging import logging_config
    from companion.config import load_settings

    overrides = {"host": host, "port": port, "workers": workers}
    settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    _first_run_hint(settings)
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
        log_config=logging_config(settings.log_level),
        access_log=False,
    )


def _first_run_hint(settings: Settings) -> None:
    """Every route but health and docs needs a key: say how to make the first one."""
    from companion.keys import open_key_store

    store = open_key_store(settings)
    try:
        empty = not store.list()
    finally:
        store.close()
    if empty:
        typer.echo(
            "companion: no API keys yet. Create the first admin key with:\n"
            "  .venv/bin/companion keys create --tenant default --scopes admin --name first-admin",
            err=True,
        )
