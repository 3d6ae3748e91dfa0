"""The runtimes registry: each language with its version, aliases and default and maximum limits."""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Iterator
from dataclasses import dataclass

from companion.config import Settings
from companion.errors import FieldError
from companion.execution._errors import LimitAboveMaximum, UnknownLanguage
from companion.execution._models import LimitOverrides, Limits
from companion.execution._node import node_binary, node_version
from companion.execution._packages import Package, PythonPackages

__all__ = ["Runtime", "RuntimeRegistry"]


@dataclass(frozen=True, slots=True)
class Runtime:
    """One language the executor runs."""

    language: str
    aliases: tuple[str, ...]
    version: str
    engine: str
    default_limits: Limits
    max_limits: Limits
    packages: tuple[Package, ...] = ()

    def limits_for(self, overrides: LimitOverrides) -> Limits:
        """The defaults lowered by `overrides`; raising any limit past the maximum is refused."""
        requested = overrides.model_dump(exclude_none=True)
        too_high = [
            FieldError(
                f"/limits/{name}",
                f"{name} {value} is above the maximum {getattr(self.max_limits, name)}",
                "limit_above_maximum",
            )
            for name, value in requested.items()
            if value > getattr(self.max_limits, name)
        ]
        if too_high:
            raise LimitAboveMaximum("Requests may lower limits, never raise them.", too_high)
        return self.default_limits.model_copy(update=requested)


class RuntimeRegistry:
    """Runtimes by name and alias."""

    def __init__(self, runtimes: list[Runtime]) -> None:
        self._runtimes = {runtime.language: runtime for runtime in runtimes}
        self._by_name = {
            name: runtime for runtime in runtimes for name in (runtime.language, *runtime.aliases)
        }

    @classmethod
    def from_settings(
        cls, settings: Settings, packages: PythonPackages | None = None
    ) -> RuntimeRegistry:
        """Python (with `packages`) and JavaScript (QuickJS) with the limits of `settings`."""
        defaults = Limits(
            wall_time_ms=settings.execution_default_wall_time_ms,
            cpu_time_ms=settings.execution_default_cpu_time_ms,
            memory_bytes=settings.execution_default_memory_bytes,
            max_output_bytes=settings.execution_default_output_bytes,
            max_file_bytes=settings.execution_max_file_bytes,
            max_open_files=settings.execution_max_open_files,
            max_returned_files=settings.execution_max_returned_files,
            max_returned_bytes=settings.execution_max_returned_bytes,
        )
        maximum = Limits(
            wall_time_ms=settings.execution_max_wall_time_ms,
            cpu_time_ms=settings.execution_max_cpu_time_ms,
            memory_bytes=settings.execution_max_memory_bytes,
            max_output_bytes=settings.execution_max_output_bytes,
            max_file_bytes=settings.execution_max_file_bytes,
            max_open_files=settings.execution_max_open_files,
            max_returned_files=settings.execution_max_returned_files,
            max_returned_bytes=settings.execution_max_returned_bytes,
        )
        python = Runtime(
            "python",
            ("py", "python3"),
            platform.python_version(),
            "CPython",
            defaults,
            maximum,
            packages.packages if packages else (),
        )
        quickjs = importlib.metadata.version("quickjs")
        javascript = Runtime(
            "javascript", ("js", "ecmascript"), quickjs, "QuickJS", defaults, maximum
        )
        runtimes = [python, javascript]
        node = node_binary() if settings.execution_node_enabled else None
        if node is not None:
            runtimes.append(
                Runtime("node", ("nodejs",), node_version(node), "Node.js", defaults, maximum)
            )
        return cls(runtimes)

    def resolve(self, name: str) -> Runtime:
        """The runtime called `name` (case-insensitive), or `UnknownLanguage`."""
        runtime = self._by_name.get(name.lower())
        if runtime is None:
            raise UnknownLanguage(name, list(self._by_name))
        return runtime

    def __iter__(self) -> Iterator[Runtime]:
        """Each runtime once."""
        return iter(self._runtimes.values())
