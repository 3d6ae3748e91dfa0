"""`companion serve`: run the HTTP service with uvicorn.

The port is taken before anything starts: a taken port is one line and exit 1, not a sandbox pool
started for nothing and a JSON log line. Several workers need a store they can share (PostgreSQL)
and Redis to keep their caches coherent, or an acknowledged write is not searchable on every worker:
without them, several workers are refused before anything starts too (exit 2).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from companion.config import Settings

__all__ = ["serve"]

EXIT_CANNOT_LISTEN = 1
EXIT_STARTUP_FAILED = 3  # uvicorn's own code when the app did not start


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
    _check_workers(settings)
    sock = _bind(settings.host, settings.port)
    _first_run_hint(settings)
    typer.echo(
        f"companion: serving on http://{_address(settings.host)}:{settings.port} "
        f"(data in {settings.data_dir}, {settings.workers} worker(s))",
        err=True,
    )
    # The factory re-reads settings in each worker from the same environment.
    options: dict[str, Any] = {
        "factory": True,
        "host": settings.host,
        "port": settings.port,
        "workers": settings.workers,
        "log_level": settings.log_level,
        "log_config": logging_config(settings.log_level),
        "access_log": False,
        "http": _http_protocol(),
        # h11 reads this; our httptools protocol reads the same number (`_http_protocol`).
        "h11_max_incomplete_event_size": settings.http_max_header_bytes,
    }
    if settings.workers > 1:
        # uvicorn binds in this process before it starts any worker, so no app starts if the port
        # was taken in between; its supervisor has no stable way to be handed our socket.
        sock.close()
        uvicorn.run("companion.api:create_app", **options)
        return
    server = uvicorn.Server(uvicorn.Config("companion.api:create_app", **options))
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl+C: uvicorn has shut down already
        server.run(sockets=[sock])
    if not server.started:
        raise typer.Exit(EXIT_STARTUP_FAILED)


def _check_workers(settings: Settings) -> None:
    """Refuse several workers unless every acknowledged write is searchable on all of them.

    The embedded knowledge store serves one process; and each worker caches search results, which
    only Redis invalidates across workers (measured: 11 of 20 searches on PostgreSQL without Redis
    still came back empty after another worker had acknowledged the write).
    """
    from companion.errors import ConfigError

    if settings.workers == 1:
        return
    missing: list[str] = []
    reasons: list[str] = []
    if settings.database_url is None:
        missing.append("COMPANION_DATABASE_URL (PostgreSQL)")
        reasons.append(
            f"the embedded knowledge store in {settings.data_dir / 'knowledge'} serves one "
            "process, and other workers would acknowledge writes they cannot make searchable"
        )
    if settings.redis_url is None:
        missing.append("COMPANION_REDIS_URL")
        reasons.append(
            "without Redis each worker keeps serving search results it cached before another "
            "worker's write"
        )
    if missing:
        raise ConfigError(
            f"{settings.workers} workers need {' and '.join(missing)}: {'; '.join(reasons)}; "
            "run one worker"
        )


def _bind(host: str, port: int) -> socket.socket:
    """A socket bound to `host:port` (not listening yet), or one line on stderr and exit 1."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # As uvicorn does: a port left in TIME_WAIT by a previous run is free, a listening one is not.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = {
            errno.EADDRINUSE: "the port is in use (choose another with --port or COMPANION_PORT)",
            errno.EACCES: "permission denied (ports below 1024 need privileges)",
            errno.EADDRNOTAVAIL: "that address is not one of this machine's",
        }.get(exc.errno or 0, exc.strerror or str(exc))
        typer.echo(f"companion: cannot listen on {_address(host)}:{port}: {reason}", err=True)
        raise typer.Exit(EXIT_CANNOT_LISTEN) from None
    return sock


def _address(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _http_protocol() -> type[asyncio.Protocol] | str:
    """Our head-limited httptools protocol, or uvicorn's h11 (which has its own limit) without it."""
    try:
        from companion.api._http_protocol import HeadLimitedHttpToolsProtocol
    except ImportError:  # no httptools
        return "h11"
    return HeadLimitedHttpToolsProtocol


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
