"""`companion keys create|list|revoke`: API keys in the configured store (SQLite or PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from companion.keys import KeyRing

__all__ = ["app"]

app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _duration(text: str) -> dt.timedelta:
    from companion.errors import InvalidInput

    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise InvalidInput(f"--expires-in {text!r}: use a number and s, m, h or d (e.g. 30d)")
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _ring() -> KeyRing:
    from companion.config import load_settings
    from companion.keys import KeyRing, open_key_store

    return KeyRing(open_key_store(load_settings()))


@app.command("create")
def create(
    tenant: Annotated[str, typer.Option(help="Tenant the key acts for.")],
    scopes: Annotated[
        str,
        typer.Option(
            help="Comma-separated: execute, tools, knowledge:read, knowledge:write, admin."
        ),
    ],
    name: Annotated[str, typer.Option(help="A label to recognise the key by.")] = "",
    expires_in: Annotated[str | None, typer.Option(help="Lifetime, e.g. 30d or 12h.")] = None,
) -> None:
    """Create a key and print it once (only its hash is stored)."""
    ring = _ring()
    try:
        lifetime = _duration(expires_in) if expires_in else None
        wanted = [scope.strip() for scope in scopes.split(",") if scope.strip()]
        key, token = ring.create(tenant, wanted, name=name, expires_in=lifetime)
    finally:
        ring.close()
    typer.echo(token)
    expiry = f", expires {key.expires_at:%Y-%m-%d %H:%M} UTC" if key.expires_at else ""
    typer.echo(
        f"key {key.key_id} for tenant {key.tenant} with {', '.join(sorted(key.scopes))}{expiry}. "
        "Store it now: it cannot be shown again.",
        err=True,
    )


@app.command("list")
def list_keys(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List keys (never their secrets)."""
    ring = _ring()
    try:
        keys = ring.list(tenant)
    finally:
        ring.close()
    rows = [
        {
            "key_id": key.key_id,
            "tenant": key.tenant,
            "scopes": sorted(key.scopes),
            "name": key.name,
            "created_at": key.created_at.isoformat(),
            "expires_at": key.expires_at.isoformat() if key.expires_at else None,
            "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
            "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
        }
        for key in keys
    ]
    if as_json:
        import orjson

        typer.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "key id", "tenant", "scopes", "name", "created", "expires", "revoked", "last used"
    )
    for row in rows:
        table.add_row(
            *(
                ", ".join(value) if isinstance(value, list) else (str(value)[:16] if value else "–")
                for value in row.values()
            )
        )
    Console().print(table)


@app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (the part after `cmp_`).")],
) -> None:
    """Revoke a key (other nodes stop accepting it within COMPANION_KEY_CACHE_TTL_S)."""
    ring = _ring()
    try:
        key = ring.revoke(key_id)
    finally:
        ring.close()
    typer.echo(f"revoked {key.key_id} (tenant {key.tenant})")
