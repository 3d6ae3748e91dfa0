"""The one settings table: `COMPANION_*` environment variables, then a TOML file, then defaults.

Every setting is declared once below with its unit in the name, a default and a help line; the README's
configuration table is generated from this class (`companion config docs`) and a test keeps them in sync.
Settings are validated once at start; `load_settings` turns any rejection into one `ConfigError` line per
bad setting, naming the variable, the value and what is allowed.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from companion.errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "Settings",
    "load_settings",
    "masked_settings",
    "setting_default",
    "settings_markdown_table",
]

ENV_PREFIX = "COMPANION_"
CONFIG_FILE_VAR = f"{ENV_PREFIX}CONFIG"
_MASK = "***"


class Settings(BaseSettings):
    """Every knob of the service; see the README's configuration table."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    host: str = Field("127.0.0.1", description="Interface `companion serve` binds to.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port `companion serve` listens on.")
    workers: int = Field(1, ge=1, le=64, description="Uvicorn worker processes.")
    data_dir: Path = Field(
        Path(".companion"), description="Where embedded state lives (knowledge store, keys)."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Minimum level of log lines."
    )
    max_body_bytes: int = Field(
        1_048_576,
        ge=1024,
        le=1_073_741_824,
        description="Largest request body accepted (413 above).",
    )
    http_max_header_bytes: int = Field(
        65_536,
        ge=1024,
        le=16_777_216,
        description="Largest request line plus headers accepted (431 above); `companion serve` "
        "stops reading a request there.",
    )
    readyz_timeout_s: float = Field(
        2.0, gt=0, le=60, description="Per-check timeout of `/readyz` dependency checks."
    )
    node_name: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="This node's name in `X-Companion-Node`, logs and session records; unset, "
        "the host name.",
    )
    node_url: str | None = Field(
        None,
        description="The URL other nodes reach this one at (`http://10.0.0.5:8000`), for "
        "forwarding a session's calls to the node that holds it; unset, sessions stay per node.",
    )
    redis_url: SecretStr | None = Field(
        None,
        description="Redis for shared L2 cache and rate limits (`redis://`, `rediss://`, `unix://`). "
        "Unset: everything stays in process.",
    )
    database_url: SecretStr | None = Field(
        None,
        description="PostgreSQL for the knowledge store (`postgresql://`). Unset: embedded SQLite.",
    )
    database_schema: str = Field(
        "public",
        min_length=1,
        max_length=63,
        pattern=r"^[a-z_][a-z0-9_]*$",
        description="PostgreSQL schema the knowledge and key tables live in (it must exist).",
    )
    metrics_require_key: bool = Field(
        False, description="Require an admin API key for `/metrics` (off: scrapers need no key)."
    )
    key_cache_ttl_s: float = Field(
        5.0, gt=0, le=3600, description="Verified API keys are cached this long (revocation delay)."
    )
    rate_limit_default: str = Field(
        "600/minute", description="Requests per key per window on every route (`limits` syntax)."
    )
    rate_limit_execute: str = Field(
        "120/minute", description="Requests per key per window on `/v1/execute`."
    )
    execute_max_concurrent_per_key: int = Field(
        4, ge=1, le=1000, description="Runs one key may have in flight at once (429 beyond)."
    )
    max_json_depth: int = Field(
        64,
        ge=2,
        le=1000,
        description="Deepest JSON nesting accepted in a request body (400 beyond).",
    )
    cache_namespace: str = Field(
        "companion",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Prefix of every cache key (tenants add theirs under it).",
    )
    cache_l1_max_entries: int = Field(100, ge=1, description="Entries in the hot in-process tier.")
    cache_l1_ttl_s: float = Field(60.0, gt=0, description="Default time to live in L1.")
    cache_l2_max_entries: int = Field(
        1000, ge=1, description="Entries in the in-process L2 (Redis bounds itself with maxmemory)."
    )
    cache_l2_ttl_s: float = Field(600.0, gt=0, description="Default time to live in L2.")
    cache_redis_timeout_ms: int = Field(
        250, ge=1, le=60_000, description="Redis L2 socket timeout; slower calls count as errors."
    )
    cache_redis_retry_interval_s: float = Field(
        5.0, gt=0, description="After a Redis error, L2 is skipped this long before a retry."
    )
    monitoring_sample_interval_s: float = Field(
        5.0, gt=0, le=3600, description="How often RSS, CPU, threads, fds and loop lag are sampled."
    )
    dashboard_sample_interval_s: float = Field(
        2.0, gt=0, le=3600, description="How often `/dashboard` takes a point for its charts."
    )
    dashboard_history_entries: int = Field(
        300, ge=2, le=100_000, description="Points each `/dashboard` chart keeps (oldest dropped)."
    )
    dashboard_session_ttl_s: float = Field(
        8 * 3600.0, gt=0, description="A `/dashboard` sign-in lasts this long."
    )
    dashboard_session_secret: SecretStr | None = Field(
        None,
        description="Signs `/dashboard` session cookies; unset, a random secret per process "
        "(set it when running several workers).",
    )
    profiling_trace_requests: bool = Field(
        False,
        description="Let requests carrying `X-Companion-Trace: 1` be profiled in depth "
        "(read back at `/v1/profiling/traces/{id}`).",
    )
    profiling_trace_ring_entries: int = Field(
        32, ge=1, le=1000, description="Deep traces kept for reading back (oldest dropped)."
    )
    telemetry_otlp_endpoint: str = Field(
        "",
        description="OpenTelemetry traces are exported here over OTLP/HTTP (protobuf): a "
        "collector's base URL (`http://collector:4318`, `/v1/traces` is added) or its full "
        "traces URL. Empty: tracing off, at no cost. Needs the `telemetry` extra.",
    )
    telemetry_otlp_headers: SecretStr | None = Field(
        None,
        description="Headers sent with every export, as comma-separated `name=value` pairs "
        "(e.g. `authorization=Bearer abc` for a hosted backend).",
    )
    telemetry_service_name: str = Field(
        "companion",
        min_length=1,
        max_length=128,
        description="`service.name` of the exported spans (the node name is "
        "`service.instance.id`).",
    )
    telemetry_sample_ratio: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Share of new traces recorded (0-1); a request carrying a W3C `traceparent` "
        "follows its caller's sampling decision instead.",
    )
    telemetry_export_timeout_ms: int = Field(
        10_000,
        ge=100,
        le=600_000,
        description="Deadline of one export to the OTLP endpoint (retries included); the final "
        "flush at shutdown waits about this long at most.",
    )
    knowledge_chunk_chars: int = Field(
        800, ge=50, le=100_000, description="Largest chunk a document is split into."
    )
    knowledge_chunk_overlap_chars: int = Field(
        100,
        ge=0,
        le=10_000,
        description="Text repeated between neighbouring chunks of a paragraph.",
    )
    knowledge_max_document_bytes: int = Field(
        1_048_576, ge=1024, description="Largest document text accepted (413 above)."
    )
    knowledge_max_upload_bytes: int = Field(
        67_108_864,
        ge=1024,
        le=4_294_967_296,
        description="Largest `POST /v1/collections/{c}/files` request, all files together (413 "
        "above); each file's text is still bounded by `knowledge_max_document_bytes`.",
    )
    knowledge_max_upload_files: int = Field(
        100, ge=1, le=10_000, description="Files one `POST /v1/collections/{c}/files` may carry."
    )
    knowledge_max_query_chars: int = Field(
        1000, ge=10, le=100_000, description="Longer queries are cut at the last space before this."
    )
    knowledge_query_timeout_ms: int = Field(
        2000, ge=1, le=600_000, description="Deadline of one search's filter scan (503 after)."
    )
    knowledge_cache_ttl_s: float = Field(
        60.0, gt=0, description="Time to live of cached search results (writes invalidate them)."
    )
    knowledge_hybrid_fusion: Literal["convex", "rrf"] = Field(
        "convex",
        description="How hybrid search fuses its BM25 and vector document rankings: `convex`, the "
        "weighted mean of each ranking's min-max scaled scores; `rrf`, reciprocal rank fusion.",
    )
    knowledge_rrf_rank_offset: int = Field(
        60, ge=1, description="Rank offset of reciprocal rank fusion (`rrf`; and of passages)."
    )
    knowledge_hybrid_bm25_weight: float = Field(
        1.0, ge=0, description="Weight of the BM25 ranking in hybrid fusion."
    )
    knowledge_hybrid_vector_weight: float = Field(
        1.0, ge=0, description="Weight of the vector ranking in hybrid fusion."
    )
    knowledge_exact_max_chunks: int = Field(
        100_000,
        ge=0,
        description="Embedded store: collections with more chunk vectors than this are searched "
        "through an HNSW graph (approximate) instead of exactly.",
    )
    knowledge_inline_embed_max_chunks: int = Field(
        64,
        ge=0,
        description="Writes with more chunks than this commit at once and are embedded by the "
        "background queue; smaller ones are embedded before they are acknowledged.",
    )
    knowledge_embedder: Literal["auto", "none", "minilm"] = Field(
        "auto",
        description="`minilm` requires the exported ONNX model; `auto` uses it when present; "
        "`none` serves BM25 only.",
    )
    knowledge_embedding_precision: Literal["fp32", "int8"] = Field(
        "fp32",
        description="Which export of the model to load: `int8` (`companion models export "
        "--quantize int8`) embeds about 2x faster, with slightly different vectors: its "
        "collections need `companion reindex` when switching.",
    )
    execution_enabled: bool = Field(True, description="Start the code-execution sandbox pool.")
    execution_pool_size: int = Field(
        0,
        ge=0,
        le=256,
        description="Sandbox zygotes; 0 means two per usable CPU (its affinity, capped by its "
        "cgroup's CPU quota in a container).",
    )
    execution_max_queue: int = Field(
        64, ge=0, le=100_000, description="Runs waiting for a sandbox before callers get 503 busy."
    )
    execution_runs_per_worker: int = Field(
        5000, ge=1, description="Runs after which a zygote is replaced by a fresh one."
    )
    execution_default_wall_time_ms: int = Field(5000, ge=10, description="Default wall time.")
    execution_max_wall_time_ms: int = Field(30_000, ge=10, description="Largest wall time.")
    execution_default_cpu_time_ms: int = Field(5000, ge=10, description="Default CPU time.")
    execution_max_cpu_time_ms: int = Field(30_000, ge=10, description="Largest CPU time.")
    execution_default_memory_bytes: int = Field(
        268_435_456, ge=16_777_216, description="Default memory a snippet may add."
    )
    execution_max_memory_bytes: int = Field(
        1_073_741_824, ge=16_777_216, description="Largest memory a request may ask for."
    )
    execution_default_output_bytes: int = Field(
        1_048_576, ge=1024, description="Default stdout + stderr kept."
    )
    execution_max_output_bytes: int = Field(
        16_777_216, ge=1024, description="Largest stdout + stderr a request may ask for."
    )
    execution_max_file_bytes: int = Field(
        16_777_216, ge=0, description="Largest file a snippet may write."
    )
    execution_max_open_files: int = Field(64, ge=16, description="Open files per run.")
    execution_max_code_bytes: int = Field(
        262_144, ge=1024, description="Largest snippet (all files together)."
    )
    execution_scratch_bytes: int = Field(
        67_108_864, ge=1_048_576, description="Size of each sandbox's private scratch tmpfs."
    )
    execution_node_enabled: bool = Field(
        False,
        description="Offer the opt-in `node` runtime (full Node.js, warm workers per tenant).",
    )
    execution_node_max_workers: int = Field(
        4, ge=1, le=256, description="Node.js workers alive at once (one per tenant)."
    )
    execution_node_runs_per_worker: int = Field(
        100, ge=1, description="Runs after which a Node.js worker is replaced."
    )
    tools_disabled: str = Field(
        "",
        description="Comma-separated tool names or categories hidden from every caller "
        "(e.g. `run_code,time`).",
    )
    tools_default_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="Timeout of a service tool call (a call may lower it)."
    )
    tools_pool_size: int = Field(
        8, ge=1, le=256, description="Threads running sync tools for the service."
    )
    tools_max_batch_calls: int = Field(
        100, ge=1, le=10_000, description="Most calls one `POST /v1/tools/batch` may carry."
    )
    tools_max_concurrent_calls: int = Field(
        16, ge=1, le=1024, description="Calls of one batch running at the same time."
    )
    tools_cache_ttl_s: float = Field(
        300.0, gt=0, description="How long a pure tool's result stays cached."
    )
    mcp_allowed_hosts: str = Field(
        "127.0.0.1:*,localhost:*,[::1]:*",
        description="Comma-separated `Host` values `/mcp` accepts (DNS-rebinding protection); "
        "`*` accepts any (behind a proxy that checks the host).",
    )
    execution_sandbox_mode: Literal["auto", "bubblewrap", "namespaces"] = Field(
        "auto",
        description="How sandboxes get their namespaces: `bubblewrap`, `namespaces` (built by the "
        "service itself; needs root), or `auto` (bubblewrap when it works, else the service's own).",
    )
    execution_sandbox_first_uid: int = Field(
        1_000_000_000,
        ge=1,
        le=2**32 - 2048,
        description="Root service: sandbox n runs as this user id + n (ids no account uses, so a "
        "snippet owns no host file, and per-user kernel limits are per sandbox).",
    )
    execution_sandbox_first_gid: int = Field(
        1_000_000_000,
        ge=1,
        le=2**32 - 2048,
        description="Root service: sandbox n runs as this group id + n.",
    )
    execution_max_threads: int = Field(
        256, ge=1, le=4096, description="Threads one run may have (RLIMIT_NPROC, root service)."
    )
    execution_scratch_files: int = Field(
        16_384,
        ge=64,
        le=10_000_000,
        description="Files and directories a sandbox's scratch may hold (tmpfs inodes).",
    )
    execution_max_sandboxes_per_tenant: int = Field(
        0,
        ge=0,
        le=256,
        description="Sandboxes one tenant may hold at once; 0 means all but one of the pool, so "
        "one tenant never holds every sandbox and waiting tenants are served fairly.",
    )
    execution_python_packages_dir: Path | None = Field(
        None,
        description="Site-packages directory of the Python runtime's packages (numpy, pandas, "
        "matplotlib...), mounted read-only into every sandbox. Unset: `.runtimes/python` of the "
        "checkout the service runs from (where `make runtime` installs "
        "runtimes/python/requirements.lock). Missing: Python runs get the standard library only.",
    )
    execution_python_preload: str = Field(
        "numpy,pandas,matplotlib.pyplot,scipy.stats,scipy.optimize,sklearn.linear_model,"
        "sklearn.ensemble,sklearn.cluster,sklearn.model_selection,sklearn.preprocessing,"
        "sklearn.metrics",
        description="Comma-separated modules the data-science sandboxes import once, before "
        "forking runs, so a run that imports them pays nothing.",
    )
    execution_data_pool_size: int = Field(
        2,
        ge=0,
        le=64,
        description="Sandboxes with the packages preloaded; Python runs that import a package "
        "of the runtime go to them. 0: no preloading (such runs import their packages each time).",
    )
    execution_max_returned_files: int = Field(
        64, ge=0, le=10_000, description="Files a run's working directory may return."
    )
    execution_max_returned_bytes: int = Field(
        16_777_216,
        ge=0,
        le=268_435_456,
        description="Bytes of files a run may return, all files together.",
    )
    execution_max_input_files: int = Field(
        64, ge=1, le=10_000, description="Files a request may send into the run."
    )
    execution_max_input_bytes: int = Field(
        8_388_608,
        ge=1024,
        le=1_073_741_824,
        description="Bytes of the files a request sends, all together (decoded); `POST "
        "/v1/execute` accepts a body this large in base64 whatever `max_body_bytes` says.",
    )
    execution_max_sessions: int = Field(
        32,
        ge=0,
        le=512,
        description="Sessions this node holds at once (each a sandbox of its own: about 20 MiB "
        "idle); 0 turns sessions off.",
    )
    execution_max_sessions_per_tenant: int = Field(
        8, ge=1, le=512, description="Sessions one tenant may hold at once on this node."
    )
    execution_session_idle_timeout_s: float = Field(
        600.0, gt=0, description="Seconds a session may sit unused when its creator gave none."
    )
    execution_session_max_idle_timeout_s: float = Field(
        3600.0, gt=0, description="Largest idle timeout a session may ask for, in seconds."
    )
    execution_session_max_lifetime_s: float = Field(
        14_400.0,
        gt=0,
        description="Seconds after which a session ends however busy it is (also its CPU "
        "backstop: it may use this much CPU time in all).",
    )
    execution_session_preload: bool = Field(
        False,
        description="Python sessions' sandboxes import `execution_python_preload` before their "
        "first cell, so `import pandas` costs a cell nothing; each session then holds ~210 MiB "
        "instead of ~15 MiB (a session's sandbox shares no pages with another's).",
    )
    execution_session_spares: int = Field(
        1,
        ge=0,
        le=16,
        description="Sessions per language started ahead of need, so opening one takes "
        "milliseconds, not a sandbox's start.",
    )
    execution_unsafe_no_isolation: bool = Field(
        False,
        description="DANGEROUS: run snippets even when no sandbox mode works here (no bubblewrap "
        "and not root, or no seccomp). Never set this where code is untrusted.",
    )

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        return _check_url_scheme(value, ("redis", "rediss", "unix"))

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        return _check_url_scheme(value, ("postgresql", "postgres"))

    @field_validator("node_url")
    @classmethod
    def _check_node_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query or fragment")
        return value.rstrip("/")

    @property
    def node(self) -> str:
        """This node's name: `node_name`, or the host name."""
        return self.node_name or socket.gethostname()

    @field_validator("telemetry_otlp_endpoint")
    @classmethod
    def _check_otlp_endpoint(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return ""
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host (OTLP/HTTP)")
        if parts.path in ("", "/"):
            # A collector's base URL, as OTEL_EXPORTER_OTLP_ENDPOINT takes it: its traces path.
            return urlunsplit(parts._replace(path="/v1/traces"))
        return value

    @field_validator("telemetry_otlp_headers")
    @classmethod
    def _check_otlp_headers(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        _header_pairs(value.get_secret_value())  # raises on a malformed list
        return value

    @property
    def telemetry_headers(self) -> dict[str, str]:
        """`telemetry_otlp_headers` as a mapping of lower-case names to values."""
        raw = self.telemetry_otlp_headers
        return _header_pairs(raw.get_secret_value()) if raw is not None else {}

    @field_validator("rate_limit_default", "rate_limit_execute")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        from limits import parse

        try:
            parse(value)
        except ValueError:
            raise ValueError("use the form `<count>/<second|minute|hour|day>`") from None
        return value

    @model_validator(mode="after")
    def _defaults_within_maximums(self) -> Settings:
        if self.knowledge_chunk_overlap_chars >= self.knowledge_chunk_chars:
            raise ValueError("knowledge_chunk_overlap_chars must be below knowledge_chunk_chars")
        for what in ("wall_time_ms", "cpu_time_ms", "memory_bytes", "output_bytes"):
            default = getattr(self, f"execution_default_{what}")
            maximum = getattr(self, f"execution_max_{what}")
            if default > maximum:
                raise ValueError(
                    f"execution_default_{what}={default} is above execution_max_{what}={maximum}"
                )
        if self.execution_session_idle_timeout_s > self.execution_session_max_idle_timeout_s:
            raise ValueError(
                "execution_session_idle_timeout_s is above execution_session_max_idle_timeout_s"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Explicit values, then environment, then the TOML file named by `COMPANION_CONFIG`."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_VAR)
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


def _check_url_scheme(value: SecretStr | None, schemes: tuple[str, ...]) -> SecretStr | None:
    if value is None or not value.get_secret_value():
        return None
    scheme = urlsplit(value.get_secret_value()).scheme
    if scheme not in schemes:
        allowed = ", ".join(f"{s}://" for s in schemes)
        raise ValueError(f"URL scheme must be one of {allowed}")
    return value


_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP token (RFC 9110)


def _header_pairs(text: str) -> dict[str, str]:
    """`name=value,name=value` as a mapping; values may hold `=` but not commas or newlines."""
    pairs: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not _HEADER_NAME.fullmatch(name) or "\n" in value or "\r" in value:
            # The pair may hold a secret: the message never repeats it.
            raise ValueError("use comma-separated `name=value` pairs with HTTP header names")
        pairs[name.lower()] = value
    return pairs


def setting_default(name: str) -> Any:
    """The default declared above for setting `name`.

    A class the service builds from the settings, and a library user may build by hand (a cache
    tier, a key ring, a knowledge base), takes its own defaults from here, so no value is written
    twice and the two ways of building it cannot drift apart.
    """
    return Settings.model_fields[name].default


def load_settings(**overrides: Any) -> Settings:
    """Build and validate the settings, or raise `ConfigError` naming every bad setting."""
    config_file = os.environ.get(CONFIG_FILE_VAR)
    if config_file:
        _check_config_file(Path(config_file))
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = [_describe_error(error) for error in exc.errors()]
        raise ConfigError("; ".join(lines), details={"errors": lines}) from None


def _check_config_file(path: Path) -> None:
    try:
        with path.open("rb") as handle:
            tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{CONFIG_FILE_VAR}={str(path)!r}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{CONFIG_FILE_VAR}={str(path)!r}: not valid TOML ({exc})") from None


def _describe_error(error: Any) -> str:
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    location = error.get("loc")
    if not location:
        return f"invalid settings: {message}"
    name = str(location[0])
    value = error.get("input")
    if error.get("type") == "extra_forbidden":
        return f"unknown setting {name!r} (not one of the documented settings)"
    shown = _MASK if name in _secret_fields() else repr(value)
    return f"invalid setting {ENV_PREFIX}{name.upper()}={shown}: {message}"


def _secret_fields() -> set[str]:
    return {
        name
        for name, field in Settings.model_fields.items()
        if "SecretStr" in repr(field.annotation)
    }


def masked_settings(settings: Settings) -> dict[str, Any]:
    """The settings as plain JSON-able values with passwords and secrets replaced by `***`."""
    shown: dict[str, Any] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = _mask_url(value.get_secret_value())
        elif isinstance(value, Path):
            value = str(value)
        shown[name] = value
    return shown


def _mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{user}:{_MASK}@{host}{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def settings_markdown_table() -> str:
    """The README's configuration table, generated from `Settings`."""
    rows = ["| Variable | Default | Description |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "unset" if default is None else f"`{default}`"
        rows.append(f"| `{ENV_PREFIX}{name.upper()}` | {shown} | {field.description} |")
    rows.append(
        f"| `{CONFIG_FILE_VAR}` | unset | TOML file read after the environment (same names, lower case). |"
    )
    return "\n".join(rows)
