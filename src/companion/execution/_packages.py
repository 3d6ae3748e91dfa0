"""The Python runtime's packages: what is installed, and which runs need the preloaded sandboxes.

The packages live in one site-packages directory (`make runtime` installs it from the lock file
`runtimes/python/requirements.lock`), mounted read-only into every sandbox. Sandboxes of the data
pool import the expensive ones before they fork; a run goes there when its code imports any
package of the directory, so the plain standard-library path never pays for them.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from companion.config import Settings

__all__ = ["Package", "PythonPackages", "packages_dir", "python_package_names"]

# `import a, b.c as d` and `from a.b import c`: the top-level names that follow either keyword.
# A name in a string or a comment only sends the run to a preloaded sandbox, which runs it as well.
_IMPORTED = re.compile(r"\b(?:import|from)[ \t]+([A-Za-z_][\w.]*(?:[ \t]*,[ \t]*[A-Za-z_][\w.]*)*)")
_MODULE_SUFFIXES = (".py", ".so", ".pyd")
_CHECKOUT_RUNTIME = Path(".runtimes") / "python"


@dataclass(frozen=True, slots=True)
class Package:
    """One installed distribution."""

    name: str
    version: str


@dataclass(frozen=True, slots=True)
class PythonPackages:
    """The packages of one site-packages directory and the module names they provide."""

    path: Path
    packages: tuple[Package, ...]
    modules: frozenset[str]

    @classmethod
    def load(cls, path: Path) -> PythonPackages | None:
        """The packages installed in `path`, or None when it holds none (not installed yet)."""
        if not path.is_dir():
            return None
        found = {
            dist.metadata["Name"]: dist.version
            for dist in importlib.metadata.distributions(path=[str(path)])
        }
        if not found:
            return None
        packages = tuple(Package(name, found[name]) for name in sorted(found, key=str.lower))
        return cls(path.resolve(), packages, frozenset(_top_level_modules(path)))

    def imported_by(self, sources: Iterable[str]) -> bool:
        """True when any of `sources` imports a module of these packages."""
        for source in sources:
            for match in _IMPORTED.finditer(source):
                for name in match.group(1).split(","):
                    if name.strip().split(".", 1)[0] in self.modules:
                        return True
        return False

    def available(self, modules: Iterable[str]) -> list[str]:
        """Those of `modules` whose top-level package is installed here."""
        return [name for name in modules if name.split(".", 1)[0] in self.modules]


def _top_level_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for entry in path.iterdir():
        if entry.name.startswith((".", "_")) or entry.name.endswith((".dist-info", ".libs")):
            continue
        if entry.is_dir() and any(child.suffix == ".py" for child in entry.iterdir()):
            names.add(entry.name)  # a package, or a namespace package (mpl_toolkits)
        elif entry.is_file() and entry.name.endswith(_MODULE_SUFFIXES):
            names.add(entry.name.split(".", 1)[0])
    return names


def packages_dir(settings: Settings) -> Path:
    """Where the Python runtime's packages are: the setting, else `.runtimes/python` beside the
    virtual environment this process runs from (a checkout where `make runtime` ran)."""
    if settings.execution_python_packages_dir is not None:
        return settings.execution_python_packages_dir
    return Path(sys.prefix).resolve().parent / _CHECKOUT_RUNTIME


def python_package_names(settings: Settings) -> list[str]:
    """The Python runtime's packages as "name version", for what tools tell a model."""
    packages = PythonPackages.load(packages_dir(settings))
    return [f"{p.name} {p.version}" for p in packages.packages] if packages else []
