"""`companion mcp`: the tools, knowledge resources and prompts over MCP on stdin/stdout, and
`companion mcp config <client>`: the configuration an MCP client needs to start or reach them.

`companion mcp` serves this machine's subsystems (the data directory's knowledge base, a local
sandbox) as tenant `default`; `companion mcp --url URL` relays to a running service instead, as
the key's tenant. A configuration names the absolute path of this environment's `companion`
(applications start servers without the user's shell `PATH`) and the settings the stdio server
needs to open the same data directory as this shell's service (an application starts it in a
working directory of its own, where the relative default `.companion` would be another one).
A secret setting (the database URL with its password) is never printed: the file refers to it in
the client's own way (an environment variable, a prompt, a placeholder).
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from companion.cli._remote import ApiKeyOption

if TYPE_CHECKING:
    from companion.config import Settings

__all__ = [
    "CLIENTS",
    "app",
    "client_config",
    "companion_command",
    "mcp_endpoint",
    "secret_reference",
    "stdio_env",
]

ClientName = Literal["claude-desktop", "claude-code", "cursor", "vscode"]
CLIENTS: tuple[ClientName, ...] = ("claude-code", "claude-desktop", "cursor", "vscode")
SERVER_NAME = "companion"
KEY_ENV = "COMPANION_API_KEY"
# Claude Desktop's file expands no variables: the key is written into it by hand.
KEY_PLACEHOLDER = "<your API key>"
VSCODE_KEY_INPUT = "companion-api-key"
# The settings the stdio server reads (its registry, sandbox and knowledge base); the others only
# concern the HTTP service.
_STDIO_SETTINGS = ("knowledge_", "execution_", "tools_", "database_url", "database_schema")

WHERE = {
    "claude-desktop": (
        "claude_desktop_config.json (Settings > Developer > Edit Config): "
        "~/Library/Application Support/Claude/ on macOS, %APPDATA%\\Claude\\ on Windows"
    ),
    "claude-code": ".mcp.json at the project's root (or ~/.claude.json for every project)",
    "cursor": ".cursor/mcp.json in the project, or ~/.cursor/mcp.json for every project",
    "vscode": ".vscode/mcp.json in the workspace (or MCP: Open User Configuration)",
}

app = typer.Typer(
    help="Serve the tools over MCP on stdin/stdout, or print a client's configuration.",
    invoke_without_command=True,
)


@app.callback(invoke_without_command=True)
def mcp(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="Relay to this service's MCP endpoint (e.g. http://127.0.0.1:8000/mcp) "
            "instead of serving this machine's data directory.",
        ),
    ] = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Serve the tools, knowledge resources and prompts over MCP on stdin/stdout (for desktop
    agents and IDEs); see docs/tools.md."""
    if ctx.invoked_subcommand is not None:
        return
    import anyio

    if url is not None:
        from companion.errors import InvalidInput
        from companion.tools import serve_mcp_bridge

        if not api_key:
            raise InvalidInput(f"--url needs the service's API key: set {KEY_ENV}")
        anyio.run(serve_mcp_bridge, mcp_endpoint(url), api_key)
        return
    _serve_locally()


def _serve_locally() -> None:
    import anyio

    from companion.cli._knowledge import TENANT
    from companion.cli._tools import LocalSubsystems, local_registry
    from companion.config import load_settings
    from companion.tools import serve_mcp_stdio

    settings = load_settings()
    local = LocalSubsystems(settings)
    registry = local_registry(settings, local)

    async def run() -> None:
        try:
            await serve_mcp_stdio(registry, tenant=TENANT, knowledge=local.knowledge)
        finally:
            await local.aclose()

    try:
        anyio.run(run)
    finally:
        registry.close()


@app.command("config")
def config(
    client: Annotated[ClientName, typer.Argument(help="The MCP client to configure.")],
    http: Annotated[
        str | None,
        typer.Option(
            "--http",
            metavar="URL",
            help="Reach a running service (e.g. http://127.0.0.1:8000) with an API key, "
            "instead of starting `companion mcp` on this machine's data directory.",
        ),
    ] = None,
    key_env: Annotated[
        str,
        typer.Option(
            "--key-env",
            metavar="NAME",
            help="With --http: the environment variable holding the key (Claude Code, Cursor).",
        ),
    ] = KEY_ENV,
) -> None:
    """Print an MCP client's configuration file (JSON), ready to paste.

    It names the absolute path of this environment's `companion` and the data directory it
    serves, or with --http the service's URL and the key's header; where the file goes is on stderr.
    """
    import orjson

    from companion.config import load_settings

    settings = load_settings()
    command = companion_command()
    endpoint = mcp_endpoint(http) if http is not None else None
    env = stdio_env(settings, client)
    body = client_config(client, command=command, env=env, http_url=endpoint, key_env=key_env)
    typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
    # Guidance on stderr, so stdout can go straight into the file.
    typer.echo(f"# {client}: {WHERE[client]}", err=True)
    if endpoint is None:
        if settings.database_url is None:
            typer.echo(
                f"# it opens the knowledge store in {settings.data_dir.resolve()} itself, which "
                "only one process may hold: while `companion serve` runs on it, use --http",
                err=True,
            )
        for name, value in env.items():
            if value == secret_reference(client, name):
                typer.echo(f"# {name} is not written into it: {_SECRET_HINT[client]}", err=True)
    elif client == "claude-desktop":
        typer.echo(
            f"# its file takes commands only: `companion mcp --url` relays to {endpoint}; "
            f"replace {KEY_PLACEHOLDER} with a key (companion keys create ...)",
            err=True,
        )


def companion_command() -> list[str]:
    """How an application starts this environment's `companion`: the script beside this
    interpreter, else the interpreter itself with `-m companion`; absolute either way."""
    scripts = Path(sysconfig.get_path("scripts"))
    script = scripts / ("companion.exe" if os.name == "nt" else "companion")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script.absolute())]
    # Not resolved: a venv's interpreter is a symlink whose own path selects the venv.
    return [os.path.abspath(sys.executable), "-m", "companion"]


def mcp_endpoint(url: str) -> str:
    """The service's MCP endpoint from its base URL (or the endpoint itself)."""
    url = url.rstrip("/")
    return url if url.endswith("/mcp") else f"{url}/mcp"


def secret_reference(client: ClientName, name: str) -> str:
    """How `client`'s file names the value of the secret variable `name` without holding it:
    from the environment the client starts in (Claude Code, Cursor), from a prompt whose answer
    it keeps in its secret storage (VS Code), or a placeholder replaced by hand (Claude
    Desktop, whose file expands nothing)."""
    return {
        "claude-code": f"${{{name}}}",
        "cursor": f"${{env:{name}}}",
        "vscode": f"${{input:{_input_id(name)}}}",
        "claude-desktop": f"<your {name}>",
    }[client]


def _input_id(name: str) -> str:
    return name.lower().replace("_", "-")


# What to do about a secret setting the file refers to, by client (on stderr).
_SECRET_HINT: dict[ClientName, str] = {
    "claude-code": "export it where Claude Code starts",
    "cursor": "export it where Cursor starts",
    "vscode": "VS Code asks for it once and keeps it in its secret storage",
    "claude-desktop": "replace its placeholder by hand, and keep the file private",
}


def stdio_env(settings: Settings, client: ClientName) -> dict[str, str]:
    """The environment the stdio server needs to serve what this shell's service serves: the
    data directory made absolute, and every setting of its registry, sandbox and knowledge base
    given here (environment or `COMPANION_CONFIG` file). A secret one (the database URL, with its
    password) is never written out: `client`'s reference to it stands in its place."""
    from pydantic import SecretStr

    from companion.config import ENV_PREFIX

    env = {f"{ENV_PREFIX}DATA_DIR": str(settings.data_dir.resolve())}
    for name in sorted(settings.model_fields_set):
        value = getattr(settings, name)
        if value is None or not name.startswith(_STDIO_SETTINGS):
            continue
        variable = f"{ENV_PREFIX}{name.upper()}"
        if isinstance(value, SecretStr):
            value = secret_reference(client, variable)
        elif isinstance(value, Path):
            value = value.resolve()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        env[variable] = str(value)
    return env


def client_config(
    client: ClientName,
    *,
    command: list[str],
    env: dict[str, str],
    http_url: str | None = None,
    key_env: str = KEY_ENV,
) -> dict[str, Any]:
    """The whole configuration file `client` reads, with one server, `companion`.

    Without `http_url`, the client starts `command mcp` with `env`. With it, the client reaches
    the service over HTTP with the key in `Authorization` (from `key_env` where the client expands
    variables, from a prompted input in VS Code), except Claude Desktop, whose file takes
    commands only: it starts `command mcp --url` with the key in its environment.
    """
    stdio: dict[str, Any] = {"command": command[0], "args": [*command[1:], "mcp"], "env": env}
    if http_url is None:
        entry = {"type": "stdio", **stdio} if client in {"claude-code", "vscode"} else stdio
        if client != "vscode":
            return {"mcpServers": {SERVER_NAME: entry}}
        # VS Code asks for each secret the environment refers to (`stdio_env`).
        asked = [
            _password_input(_input_id(name), name)
            for name, value in env.items()
            if value == secret_reference(client, name)
        ]
        servers = {"servers": {SERVER_NAME: entry}}
        return {"inputs": asked, **servers} if asked else servers
    if client == "claude-desktop":
        relay = {
            "command": command[0],
            "args": [*command[1:], "mcp", "--url", http_url],
            "env": {KEY_ENV: KEY_PLACEHOLDER},
        }
        return {"mcpServers": {SERVER_NAME: relay}}
    key = {
        "claude-code": f"${{{key_env}}}",
        "cursor": f"${{env:{key_env}}}",
        "vscode": f"${{input:{VSCODE_KEY_INPUT}}}",
    }[client]
    remote: dict[str, Any] = {"url": http_url, "headers": {"Authorization": f"Bearer {key}"}}
    if client == "cursor":
        return {"mcpServers": {SERVER_NAME: remote}}
    if client == "claude-code":
        return {"mcpServers": {SERVER_NAME: {"type": "http", **remote}}}
    prompt = _password_input(VSCODE_KEY_INPUT, "Companion API key")
    return {"inputs": [prompt], "servers": {SERVER_NAME: {"type": "http", **remote}}}


def _password_input(input_id: str, description: str) -> dict[str, Any]:
    """A VS Code input it prompts for once, its answer hidden and kept in its secret storage."""
    return {"type": "promptString", "id": input_id, "description": description, "password": True}
