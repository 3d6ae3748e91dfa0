"""Starting sandbox processes: the files they see, the namespace set-up, and the init frame.

Two ways to the same sandbox (`SandboxMode`): bubblewrap, or the service's own namespaces
(`sandbox/namespaces.py`) when it runs as root on a host without bubblewrap. Both build the same
filesystem from one description (`_ROOT_LAYOUT` and `LaunchPlan._read_only`): read-only `/usr`,
interpreter and sandbox library, a read-only `/dev` of device nodes the host owns, a fresh `/proc`,
and a private, size-bounded `/tmp` that dies with the zygote. Nothing of the host is writable.
The sandboxed process starts as root of those namespaces only to give that up (see
`sandbox/privileges.py`). A non-root service is refused in both modes (`probe_mode`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

__all__ = ["DEVICES", "LaunchPlan", "SandboxMode", "prepare_launch", "probe_mode"]

SandboxMode = Literal["bubblewrap", "namespaces", "none"]

_SANDBOX_LIB = "/opt/companion"
_SANDBOX_PACKAGES = "/opt/python-packages"  # the Python runtime's packages (numpy, pandas...)
_SANDBOX_TMP = "/tmp"  # noqa: S108 - inside the sandbox this is a private, size-limited tmpfs
_BOOT = "import sys; sys.path.insert(0, {lib!r}); from sandbox.{module} import main; main()"
_ENV = {"PATH": "/usr/bin"}
# Merged-/usr links every layout gets (Debian 12 and most distributions since).
_ROOT_LINKS = (("usr/lib", "/lib"), ("usr/lib64", "/lib64"), ("usr/bin", "/bin"))
# What the zygote keeps while it starts: enough to finish its filesystem (`sandbox/filesystem.py`:
# bounds on the scratch tmpfs, device nodes read-only, which bubblewrap cannot express) and to
# switch user; it gives all of them up before anything else runs.
_ZYGOTE_CAPABILITIES = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_SYS_ADMIN")
# The device nodes a sandbox sees (the host's, made read-only: a snippet cannot even touch them).
DEVICES = ("null", "zero", "full", "random", "urandom")


@dataclass(frozen=True, slots=True)
class LaunchPlan:
    """How to start sandboxed processes; shared by every zygote and Node.js worker of a pool."""

    runtime_dir: Path
    interpreter: str
    mode: SandboxMode
    scratch_bytes: int
    init: dict[str, Any]
    packages_dir: Path | None = None  # on the host; bound read-only at `_SANDBOX_PACKAGES`

    @property
    def use_namespaces(self) -> bool:
        """True unless the operator chose to run without isolation (`none`)."""
        return self.mode != "none"

    def identity(self, slot: int) -> tuple[int, int]:
        """The uid and gid of sandbox `slot`: one of its own under a root service (so per-user
        kernel limits such as RLIMIT_NPROC and RLIMIT_SIGPENDING are per sandbox), the service's
        own otherwise (it cannot switch users; bubblewrap maps it into a user namespace)."""
        if os.geteuid() != 0:
            return os.getuid(), os.getgid()
        return self.init["first_uid"] + slot, self.init["first_gid"] + slot

    def argv(self, index: int) -> tuple[list[str], dict[str, str], str]:
        """Command, environment and working directory of zygote number `index`."""
        return self.launcher_argv("zygote", cwd=self.scratch_root(f"zygote-{index}"))

    def launcher_argv(
        self, module: str, *args: str, cwd: str | None = None
    ) -> tuple[list[str], dict[str, str], str]:
        """Command, environment and working directory running `sandbox.<module>.main()`."""
        boot = _BOOT.format(lib=str(self.lib_path()), module=module)
        return self.wrap([self.interpreter, "-I", "-S", "-c", boot, *args], cwd)

    def wrap(
        self, command: list[str], cwd: str | None = None
    ) -> tuple[list[str], dict[str, str], str]:
        """`command` (paths as the sandbox sees them) started inside the sandbox."""
        if self.mode == "bubblewrap":
            return [*self._bwrap_prefix(), *command], dict(_ENV), "/"
        if self.mode == "namespaces":
            host_boot = _BOOT.format(lib=str(self.runtime_dir / "lib"), module="namespaces")
            launcher = [self.interpreter, "-I", "-S", "-c", host_boot, self._namespace_spec()]
            return [*launcher, *command], dict(_ENV), "/"
        return command, dict(_ENV), cwd or str(self.runtime_dir)

    def lib_path(self) -> Path:
        """Where the sandbox's own code is, as seen from inside the sandbox."""
        return Path(_SANDBOX_LIB) if self.use_namespaces else self.runtime_dir / "lib"

    def read_only_paths(self) -> list[str]:
        """What sandboxed processes may read (Landlock)."""
        return list(self.init["landlock_read_only"])

    def scratch_root(self, owner: str) -> str:
        """Where the sandboxed process `owner` writes (a private tmpfs in a sandbox)."""
        if self.use_namespaces:
            return _SANDBOX_TMP
        path = self.runtime_dir / f"scratch-{owner}"
        shutil.rmtree(path, ignore_errors=True)  # never inherit what a previous zygote left
        path.mkdir(mode=0o700)
        return str(path)

    def init_frame(self, index: int, slot: int) -> dict[str, Any]:
        """The first frame zygote `index` reads; it runs as the identity of `slot`."""
        uid, gid = self.identity(slot)
        scratch = self.scratch_root(f"zygote-{index}")
        if not self.use_namespaces and os.geteuid() == 0:
            os.chown(scratch, uid, gid)
        return {**self.init, "scratch_root": scratch, "uid": uid, "gid": gid}

    def _read_only(self) -> list[tuple[str, str]]:
        """(host path, sandbox path) pairs bound read-only."""
        trees = [("/usr", "/usr"), *((path, path) for path in _interpreter_trees())]
        if self.packages_dir is not None:
            trees.append((str(self.packages_dir), _SANDBOX_PACKAGES))
        return [*trees, (str(self.runtime_dir / "lib"), _SANDBOX_LIB)]

    def with_preload(self, modules: list[str]) -> LaunchPlan:
        """The same sandbox for Python runs only, whose zygotes import `modules` before forking."""
        init = {**self.init, "languages": ["python"], "preload": modules}
        return replace(self, init=init)

    def for_session(
        self, language: str, cpu_time_ms: int, preload: list[str] | None = None
    ) -> LaunchPlan:
        """The same sandbox for sessions of `language`: one child, which serves every cell of
        the session, with `cpu_time_ms` as the CPU it may use in its whole life; its zygote
        imports `preload` first."""
        maxima = {**self.init["limit_maxima"], "cpu_time_ms": cpu_time_ms}
        init = {
            **self.init,
            "languages": [language],
            "preload": list(preload or ()),
            "session": True,
            "limit_maxima": maxima,
        }
        return replace(self, init=init)

    def _bwrap_prefix(self) -> list[str]:
        bwrap = shutil.which("bwrap") or "bwrap"
        argv = [bwrap, "--die-with-parent", "--new-session"]
        if os.geteuid() == 0:
            # No user namespace: under one, the sandbox's uid maps back to host root, which owns
            # every host file. The zygote starts as real root with four capabilities and drops
            # to the sandbox user before anything else (`privileges.drop_privileges`).
            argv += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
            argv += ["--unshare-cgroup-try", "--cap-drop", "ALL"]
            capabilities: tuple[str, ...] = _ZYGOTE_CAPABILITIES
        else:
            # Not reached through the executor: `probe_mode` refuses a non-root service, whose
            # zygotes cannot seal their mounts under --disable-userns (kept for that work).
            argv += ["--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
            capabilities = ("CAP_SYS_ADMIN",)  # of its own user namespace: to seal its mounts
        for capability in capabilities:
            argv += ["--cap-add", capability]
        argv += ["--hostname", "sandbox"]
        made: set[str] = set()
        for source, target in self._read_only():
            # Parents bubblewrap would create private (0700): the sandbox user must pass them.
            for parent in reversed(Path(target).parents[:-1]):
                if str(parent) not in made:
                    made.add(str(parent))
                    argv += ["--perms", "0755", "--dir", str(parent)]
            argv += ["--ro-bind", source, target]
        for target, link in _ROOT_LINKS:
            argv += ["--symlink", target, link]
        # Not `--dev`: it adds the host's tty and a devpts; the nodes are made read-only by the
        # zygote (bubblewrap's --remount-ro would also make them unusable: it adds nodev).
        argv += ["--proc", "/proc", "--tmpfs", "/dev"]
        for name in DEVICES:
            argv += ["--dev-bind", f"/dev/{name}", f"/dev/{name}"]
        argv += ["--remount-ro", "/dev"]
        argv += ["--size", str(self.scratch_bytes), "--tmpfs", _SANDBOX_TMP]
        argv += ["--remount-ro", "/", "--clearenv", "--setenv", "PATH", _ENV["PATH"]]
        return [*argv, "--chdir", _SANDBOX_TMP]

    def _namespace_spec(self) -> str:
        spec = {
            "root": str(self.runtime_dir / "root"),
            "read_only": self._read_only(),
            "symlinks": _ROOT_LINKS,
            "devices": DEVICES,
            "scratch": _SANDBOX_TMP,
            "scratch_bytes": self.scratch_bytes,
            "env": _ENV,
        }
        return json.dumps(spec)


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
    # Readable by the sandbox user, writable by nobody but the service.
    for path in (target, destination, *target.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)


def prepare_launch(
    *,
    mode: SandboxMode,
    seccomp_bpf: bytes,
    seccomp_limits_bpf: bytes,
    scratch_bytes: int,
    scratch_files: int,
    first_uid: int,
    first_gid: int,
    max_threads: int,
    languages: list[str],
    limit_defaults: dict[str, int],
    limit_maxima: dict[str, int],
    packages_dir: Path | None = None,
) -> LaunchPlan:
    """Lay out a private runtime directory and describe how sandboxed processes start;
    `packages_dir`, a site-packages directory, is mounted read-only on every Python path."""
    runtime_dir = Path(tempfile.mkdtemp(prefix="companion-sandbox-"))
    runtime_dir.chmod(0o711)  # the sandbox user reaches lib/ (mode none) but lists nothing
    _copy_sandbox_lib(runtime_dir / "lib", "javascript" in languages)
    (runtime_dir / "root").mkdir(mode=0o755)  # the mount point of the namespaces' new root
    lib = _SANDBOX_LIB if mode != "none" else str(runtime_dir / "lib")
    read_only = ["/usr", *_interpreter_trees(), lib, "/dev/null", "/dev/urandom"]
    python_path: list[str] = []
    if packages_dir is not None:
        packages_dir = packages_dir.resolve()
        python_path = [_SANDBOX_PACKAGES if mode != "none" else str(packages_dir)]
        read_only.append(python_path[0])
    init = {
        "languages": languages,
        "seccomp_bpf": seccomp_bpf.hex(),
        "seccomp_limits_bpf": seccomp_limits_bpf.hex(),
        "landlock_read_only": read_only,
        "limit_defaults": limit_defaults,
        "limit_maxima": limit_maxima,
        "first_uid": first_uid,
        "first_gid": first_gid,
        "scratch_bytes": scratch_bytes,
        "scratch_files": scratch_files,
        "devices": list(DEVICES),
        "seal": mode != "none",
        "python_path": python_path,
        "preload": [],
        # Threads a run may have: RLIMIT_NPROC counts every task of the sandbox's uid (its
        # zygote, template and prepared children too), and binds only a uid of its own.
        "max_tasks": max_threads + 16 if os.geteuid() == 0 else None,
    }
    # A venv's python is a symlink to the base interpreter, which is what the sandbox binds.
    interpreter = os.path.realpath(sys.executable)
    return LaunchPlan(runtime_dir, interpreter, mode, scratch_bytes, init, packages_dir)


def probe_mode(mode: SandboxMode) -> str | None:
    """None when sandboxes of `mode` start on this host (a real start, not a guess), else why not."""
    if mode == "namespaces" and os.geteuid() != 0:
        return "the service's own namespaces need root"
    if mode == "bubblewrap" and os.geteuid() != 0:
        # `true` would start, but no zygote does: under `--disable-userns` its user namespace
        # does not own its mounts, and bounding the scratch tmpfs fails (EPERM). Said here, at
        # start, rather than by every zygote's traceback; and before "install bwrap", which
        # would not help.
        return (
            "a non-root service cannot seal its sandboxes under bubblewrap (the scratch tmpfs "
            "cannot be bounded in bubblewrap's nested user namespace): run the service as root"
        )
    if mode == "bubblewrap" and shutil.which("bwrap") is None:
        return "bwrap not found: apt install bubblewrap"
    import subprocess

    with tempfile.TemporaryDirectory(prefix="companion-probe-") as scratch:
        runtime = Path(scratch)
        _copy_sandbox_lib(runtime / "lib", with_quickjs=False)
        (runtime / "root").mkdir()
        plan = LaunchPlan(runtime, os.path.realpath(sys.executable), mode, 1 << 20, {})
        argv, env, cwd = plan.wrap(["/usr/bin/true"])
        try:
            done = subprocess.run(
                argv, capture_output=True, timeout=10, check=False, env=env, cwd=cwd
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{mode} failed to start: {exc}"
    if done.returncode != 0:
        return done.stderr.decode(errors="replace").strip() or f"exit {done.returncode}"
    return None
