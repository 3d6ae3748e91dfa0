"""Starting zygotes: the files they see, the bubblewrap command line, and the init frame."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["LaunchPlan", "prepare_launch"]

_SANDBOX_LIB = "/opt/companion"
_SANDBOX_TMP = "/tmp"  # noqa: S108 - inside bubblewrap this is a private, size-limited tmpfs
_BOOT = "import sys; sys.path.insert(0, {lib!r}); from sandbox.{module} import main; main()"


@dataclass(frozen=True, slots=True)
class LaunchPlan:
    """How to start one zygote; shared by every zygote of a pool."""

    runtime_dir: Path
    interpreter: str
    use_bwrap: bool
    scratch_bytes: int
    init: dict[str, Any]

    def argv(self, index: int) -> tuple[list[str], dict[str, str], str]:
        """Command, environment and working directory of zygote number `index`."""
        return self.launcher_argv("zygote", cwd=self.scratch_root(index))

    def launcher_argv(
        self, module: str, *args: str, cwd: str | None = None
    ) -> tuple[list[str], dict[str, str], str]:
        """Command, environment and working directory running `sandbox.<module>.main()`."""
        boot = _BOOT.format(lib=str(self.lib_path()), module=module)
        command = [self.interpreter, "-I", "-S", "-c", boot, *args]
        if self.use_bwrap:
            return [*self._bwrap_prefix(), *command], {"PATH": "/usr/bin"}, "/"
        return command, {"PATH": "/usr/bin"}, cwd or str(self.runtime_dir)

    def lib_path(self) -> Path:
        """Where the sandbox's own code is, as seen from inside the sandbox."""
        return Path(_SANDBOX_LIB) if self.use_bwrap else self.runtime_dir / "lib"

    def read_only_paths(self) -> list[str]:
        """What sandboxed processes may read (Landlock)."""
        return list(self.init["landlock_read_only"])

    def scratch_root(self, index: int) -> str:
        """Where zygote `index` creates run directories (a private tmpfs under bubblewrap)."""
        if self.use_bwrap:
            return _SANDBOX_TMP
        path = self.runtime_dir / f"scratch-{index}"
        path.mkdir(mode=0o700, exist_ok=True)
        return str(path)

    def init_frame(self, index: int) -> dict[str, Any]:
        """The first frame zygote `index` reads."""
        return {**self.init, "scratch_root": self.scratch_root(index)}

    def _bwrap_prefix(self) -> list[str]:
        bwrap = shutil.which("bwrap") or "bwrap"
        argv = [bwrap, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session"]
        argv += ["--cap-drop", "ALL", "--ro-bind", "/usr", "/usr"]
        argv += ["--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64"]
        argv += ["--symlink", "usr/bin", "/bin", "--proc", "/proc", "--dev", "/dev"]
        argv += ["--size", str(self.scratch_bytes), "--tmpfs", _SANDBOX_TMP]
        for path in _interpreter_trees():
            argv += ["--ro-bind", path, path]
        argv += ["--ro-bind", str(self.runtime_dir / "lib"), _SANDBOX_LIB]
        argv += ["--clearenv", "--setenv", "PATH", "/usr/bin", "--chdir", _SANDBOX_TMP]
        return argv


def _interpreter_trees() -> list[str]:
    """Directories outside /usr that the interpreter needs (a pyenv or custom build)."""
    prefix = os.path.realpath(sys.base_prefix)
    return [] if prefix == "/usr" or prefix.startswith("/usr/") else [prefix]


def _copy_sandbox_lib(target: Path, with_quickjs: bool) -> None:
    """The zygote imports only these files: our stdlib-only package and the QuickJS extension."""
    package = Path(__file__).with_name("sandbox")
    destination = target / "sandbox"
    destination.mkdir(parents=True)
    for source in (*package.glob("*.py"), *package.glob("*.js")):
        shutil.copy2(source, destination / source.name)
    if with_quickjs:
        import _quickjs  # type: ignore[import-not-found]

        extension = Path(_quickjs.__file__)
        shutil.copy2(extension, target / extension.name)


def prepare_launch(
    *,
    use_bwrap: bool,
    seccomp_bpf: bytes,
    seccomp_limits_bpf: bytes,
    scratch_bytes: int,
    languages: list[str],
    limit_defaults: dict[str, int],
    limit_maxima: dict[str, int],
) -> LaunchPlan:
    """Lay out a private runtime directory and describe how zygotes start."""
    runtime_dir = Path(tempfile.mkdtemp(prefix="companion-sandbox-"))
    _copy_sandbox_lib(runtime_dir / "lib", "javascript" in languages)
    lib = _SANDBOX_LIB if use_bwrap else str(runtime_dir / "lib")
    read_only = ["/usr", *_interpreter_trees(), lib, "/dev/null", "/dev/urandom"]
    init = {
        "languages": languages,
        "seccomp_bpf": seccomp_bpf.hex(),
        "seccomp_limits_bpf": seccomp_limits_bpf.hex(),
        "landlock_read_only": read_only,
        "limit_defaults": limit_defaults,
        "limit_maxima": limit_maxima,
    }
    # A venv's python is a symlink to the base interpreter, which is what the sandbox binds.
    interpreter = os.path.realpath(sys.executable)
    return LaunchPlan(runtime_dir, interpreter, use_bwrap, scratch_bytes, init)
