"""The zygote: started once inside the sandbox, it keeps fresh locked-down children ready for runs.

Stdlib only. It talks to the service over one `SOCK_SEQPACKET` socket on fd 0 in `protocol`
messages: an init message first (seccomp programs, Landlock paths, scratch root), then a `child`
message per prepared child (its pipe ends and a pidfd attached) and a `ready` one. The service talks
to each child directly: it writes the request to the child's control pipe, reads its output, and
kills it through the pidfd at the wall-time or output limit. Off that path, the zygote watches its
children's pidfds: when one exits it reaps it, wipes the scratch directory, tells the service
(`finished`, with the wait status and usage) and orders a replacement. The children are forked by
its template (see `template`), which never holds any run's data.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import mimetypes
import os
import select
import selectors
import socket
import stat
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

from . import landlock
from .child import (
    ERROR_FD,
    LimitSetter,
    SeccompLoader,
    prepare_javascript,
    prepare_python,
    report_error,
    run_child,
    warm_up,
)
from .filesystem import seal
from .privileges import drop_privileges
from .protocol import (
    CHILD_KINDS,
    CHILDREN_PER_KIND,
    FD_CEILING,
    read_frame,
    receive_message,
    send_message,
)
from .session import serve_session, write_file, write_files
from .template import Template, start_template

__all__ = ["PACKAGE_ENV", "main"]

_SERVICE_FD = 0  # the socket to the service
_exit = os._exit  # bound at import: user code in a child may replace os._exit
_JAVASCRIPT = CHILD_KINDS["javascript"].encode()  # the template's fork command takes bytes
_FIRST_FREE_FD = 10  # a child's pipe ends move here before fds 0-3 are set
_STDIN_NAME = ".stdin"
_EXIT_SETUP_FAILED = 70
# Imported once here so children start with them warm (and share the pages copy-on-write).
_PRELOAD = (
    "base64 bisect collections dataclasses datetime decimal enum fractions functools hashlib "
    "heapq itertools json math operator random re statistics string textwrap typing"
).split()


# The data-science zygotes' environment while they import their packages: native thread pools
# would be started at import and a process with threads cannot fork safely; matplotlib renders
# off-screen and keeps its font cache in the scratch (wiped after the first run: the fonts stay
# loaded in memory).
_MATPLOTLIB_DIR = ".matplotlib"  # in the scratch root, beside the run's directory
PACKAGE_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "MPLBACKEND": "Agg",
}


def _preload(
    languages: list[str], python_path: list[str], modules: list[str], scratch_root: str
) -> None:
    for name in _PRELOAD:
        __import__(name)
    mimetypes.init()  # read once here, not by every run that returns a file
    compile("x = [i * i for i in range(3)]\n", "warm.py", "exec")
    sys.path.extend(python_path)
    if modules:
        os.environ.update(PACKAGE_ENV, MPLCONFIGDIR=os.path.join(scratch_root, _MATPLOTLIB_DIR))
        for name in modules:
            __import__(name)
        _exercise_packages(("png", "svg"))
        os.environ.clear()
    if "javascript" in languages:
        import _quickjs  # type: ignore[import-not-found]

        _quickjs.Context().eval("[1, 2].map((x) => x * 2).join()")


class KeptFile(NamedTuple):
    """A file the zygote left open for its children: where it is and which file it is."""

    path: str
    device: int
    inode: int


def _preload_keeping_files(
    languages: list[str], python_path: list[str], modules: list[str], scratch_root: str
) -> dict[int, KeptFile]:
    """`_preload`, and the files it left open (descriptor: path), for children to keep.

    matplotlib keeps each loaded font's file open and reads glyphs from it as it needs them: a
    child closing it (as it closes every inherited descriptor) broke text drawing, and opening
    the fonts anew in each run cost their glyph caches. Those files are read-only package
    files a snippet may read anyway; they are placed above fd 9 so no pipe lands on them. Each
    child opens them again onto the same numbers (`_own_files`): an inherited descriptor shares
    its offset and flags with every other child (one run's `O_DIRECT` broke the next runs' text,
    and two children reading glyphs at once raced on one offset).
    """
    placeholders = []
    while (fd := os.open(os.devnull, os.O_RDONLY)) < _FIRST_FREE_FD:
        placeholders.append(fd)
    os.close(fd)
    try:
        _preload(languages, python_path, modules, scratch_root)
    finally:
        for fd in placeholders:
            os.close(fd)
    kept: dict[int, KeptFile] = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            info = os.fstat(int(name))
            if stat.S_ISREG(info.st_mode):
                path = os.readlink(f"/proc/self/fd/{name}")
                kept[int(name)] = KeptFile(path, info.st_dev, info.st_ino)
        except OSError:
            continue  # the listing's own descriptor, closed by now
    return kept


def _exercise_packages(
    formats: tuple[str, ...] = ("png",), interrupted: Callable[[], bool] = lambda: False
) -> None:
    """Do once what data-science runs do most: build and group a DataFrame, draw charts and
    render them. In the zygote, that loads fonts, the renderer and the PNG writer once for every
    run; in a data-science child waiting for its request, it pays the copy-on-write faults of
    those paths (pandas and matplotlib touch thousands of shared pages) before the run. A child
    stops between steps once `interrupted()` says its request has come: the request never waits
    for more than one step."""
    import io

    pyplot = sys.modules.get("matplotlib.pyplot")
    pandas = sys.modules.get("pandas")
    try:
        if pandas is not None:
            frame = pandas.DataFrame({"group": [i % 3 for i in range(60)], "value": range(60)})
            summary = frame.groupby("group").value.agg(["mean", "std"])
            repr(summary)
            summary._repr_html_()
            if pyplot is not None and not interrupted():  # pandas' own line and bar charts
                frame.plot()
                summary.plot.bar(y="mean", yerr="std")
        if pyplot is None or interrupted():
            return
        _, axes = pyplot.subplots()
        axes.plot([0, 1], [1, 0], label="warm")
        axes.bar(["a", "b"], [1, 2], yerr=[0.1, 0.2])
        axes.set_title("warm")
        axes.legend()
        for number in pyplot.get_fignums():
            for kind in formats:
                if interrupted():
                    return
                pyplot.figure(number).savefig(io.BytesIO(), format=kind)
    finally:
        if pyplot is not None:
            pyplot.close("all")


def _child_main(
    scratch: str,
    seccomp: SeccompLoader,
    seccomp_limits: SeccompLoader,
    rlimits: LimitSetter,
    *,
    kept: dict[int, KeptFile],
    preloaded: bool,
    session: bool = False,
) -> Callable[[bytes, int, int, int, int], None]:
    """The body of every run's child, forked by the template (see `template`); in a session's
    sandbox, the body of its one child, which serves the session (see `session`)."""

    # What a run's environment starts from (the request's `env` is added): the packages' settings,
    # so that a run importing matplotlib itself finds a writable cache in the scratch.
    run_env = {
        **PACKAGE_ENV,
        "MPLCONFIGDIR": os.path.join(os.path.dirname(scratch), _MATPLOTLIB_DIR),
    }

    def main(kind: bytes, control_r: int, out_w: int, err_w: int, res_w: int) -> None:
        try:
            # Everything that does not depend on the request happens before it arrives, and only
            # for the language the child is for: preparing both costs every run ~0.7 ms of CPU.
            os.setsid()
            os.environ.clear()
            os.environ.update(run_env)
            rlimits.prepare()
            # First: the warm-ups below may open files (matplotlib's fonts) that must stay open.
            owned = _own_files(kept)
            control_r = _bind_stdio(control_r, out_w, err_w, res_w, owned)
            if kind == _JAVASCRIPT:
                prepare_javascript()
            else:
                warm_up()
                prepare_python()
                if preloaded:
                    with contextlib.suppress(Exception):  # only a warm-up: never fatal
                        _exercise_packages(interrupted=lambda: _readable(control_r))
            # Before the request, so its ~0.2 ms is off the run's path: only our own code runs
            # between here and the limits filter that `run_child` stacks before user code.
            seccomp.load()
            if session:
                serve_session(kind == _JAVASCRIPT, control_r, scratch, seccomp_limits, rlimits)
                os._exit(0)
            request = read_frame(control_r)
            if request is None:
                os._exit(0)
            os.close(control_r)
            try:
                inputs = _write_scratch(scratch, request)
                os.chdir(scratch)  # not before: scratch is made anew after each run
            except (OSError, ValueError) as exc:  # the scratch is full: the run cannot start
                report_error("SandboxError", f"could not write the run's files: {exc}", "")
                _exit(_EXIT_SETUP_FAILED)
            run_child(request, seccomp_limits, rlimits, scratch, inputs)
        finally:
            _exit(_EXIT_SETUP_FAILED)  # never return into the template's loop, whatever happened

    return main


def _own_files(kept: dict[int, KeptFile]) -> frozenset[int]:
    """Open each kept file again onto its descriptor (this child's own offset and flags), when
    the descriptor still holds that file (the zygote may have let one go since: its number may
    now be one of this child's pipes); the descriptors to keep."""
    owned = set()
    for fd, kept_file in kept.items():
        identity = (kept_file.device, kept_file.inode)
        try:
            if fd <= ERROR_FD or _identity(os.fstat(fd)) != identity:
                continue
            fresh = os.open(kept_file.path, os.O_RDONLY)
        except OSError:
            continue  # gone or unreadable: not kept (the run opens it itself if it needs it)
        try:
            if _identity(os.fstat(fresh)) == identity:
                os.dup2(fresh, fd)
                owned.add(fd)
        finally:
            os.close(fresh)
    return frozenset(owned)


def _identity(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


def _readable(fd: int) -> bool:
    """True when `fd` has something to read (a request) or is at its end."""
    return bool(select.select([fd], [], [], 0)[0])


def _bind_stdio(
    control_r: int, out_w: int, err_w: int, res_w: int, kept: frozenset[int] = frozenset()
) -> int:
    """Put the run's pipes on fds 1-3 and /dev/null on 0, close every other fd but the control
    pipe and `kept` (files the preloaded packages hold open, all read-only), and return the
    control pipe's new fd. Done while the child waits for its request."""
    # First above fd 3, so that no dup2 below overwrites a pipe end not yet moved.
    high = [
        fcntl.fcntl(fd, fcntl.F_DUPFD, _FIRST_FREE_FD) for fd in (control_r, out_w, err_w, res_w)
    ]
    for fd in (control_r, out_w, err_w, res_w):
        os.close(fd)
    control, out_w, err_w, res_w = high
    null = os.open(os.devnull, os.O_RDONLY)
    for source, target in ((null, 0), (out_w, 1), (err_w, 2), (res_w, ERROR_FD)):
        os.dup2(source, target)
    start = ERROR_FD + 1
    for keep in sorted({control, *kept}):
        os.closerange(start, keep)
        start = keep + 1
    os.closerange(start, FD_CEILING)
    return control


def _write_scratch(scratch: str, request: dict[str, Any]) -> dict[str, bytes]:
    """The request's files, and its stdin as the child's fd 0; returns the files written, by
    path. The zygote made the directory empty after the previous run, and the zygote never sees a
    run's data (see `template`)."""
    inputs = write_files(scratch, request.get("files", ()))
    if request.get("stdin"):
        path = os.path.join(scratch, _STDIN_NAME)
        write_file(path, request["stdin"].encode("utf-8"))
        stdin_fd = os.open(path, os.O_RDONLY)
        os.dup2(stdin_fd, 0)
        os.close(stdin_fd)
        os.unlink(path)
    return inputs


class _Children:
    """Orders children from the template, hands each to the service, and reaps it when it exits."""

    def __init__(self, template: Template, service: socket.socket) -> None:
        self._template = template
        self._service = service
        self.exits = selectors.DefaultSelector()  # one pidfd per child the service holds
        self._kinds: dict[int, bytes] = {}

    def order(self, kind: bytes) -> None:
        """Have the template fork one more child of `kind`, then pass it to the service."""
        self._template.order_child(kind)
        child = self._template.collect_child()
        watched = os.pidfd_open(child.pid)
        self.exits.register(watched, selectors.EVENT_READ, child.pid)
        self._kinds[child.pid] = kind
        fds = [child.control, child.stdout, child.stderr, child.report, os.pidfd_open(child.pid)]
        try:
            send_message(self._service, {"child": kind.decode(), "pid": child.pid}, fds)
        finally:
            for fd in fds:  # the service holds them now: a copy kept here would hide EOF
                os.close(fd)

    def reap(self, pidfd: int, pid: int) -> tuple[dict[str, Any], bytes]:
        """Reap a child that exited: its `finished` record for the service, and its kind."""
        self.exits.unregister(pidfd)
        os.close(pidfd)
        usage = self._template.wait_child(pid)  # the template is the parent: it reaps
        record = {
            "finished": pid,
            "status": usage.status,
            "cpu_ms": round((usage.ru_utime + usage.ru_stime) * 1000, 3),
            "memory_bytes": usage.ru_maxrss * 1024,
        }
        return record, self._kinds.pop(pid)


def _fresh_scratch(scratch: str) -> None:
    """Empty the whole scratch filesystem, then make an empty run directory; called after every
    run, once its child was reaped.

    Everything under the scratch root goes, not just the run directory: a snippet can write to
    `../`, rename its directory away or put a link in its place. If anything survives (a tree
    too deep to remove, say), this zygote exits and the service replaces it with a fresh tmpfs.
    """
    root = os.path.dirname(scratch)
    for entry in os.listdir(root):
        _remove_tree(os.path.join(root, entry))
    if os.listdir(root):
        raise RuntimeError(f"the scratch directory {root} could not be emptied")
    os.mkdir(scratch, 0o700)


def _remove_tree(top: str) -> None:
    """Remove `top` and everything below it without following links; iterative, so no depth
    limit, and directories the snippet made unreadable are opened up first (the zygote owns
    every file in scratch: it is the same user as the snippet)."""
    pending = [(top, False)]
    while pending:
        path, emptied = pending.pop()
        if emptied:
            os.rmdir(path)
            continue
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            os.unlink(path)
            continue
        os.chmod(path, 0o700)
        pending.append((path, True))
        pending.extend((os.path.join(path, name), False) for name in os.listdir(path))


def _statm_bytes() -> tuple[int, int]:
    """This process's (address space, resident set) in bytes."""
    with open("/proc/self/statm", encoding="ascii") as handle:
        size_pages, resident_pages = handle.read().split()[:2]
    page_bytes = os.sysconf("SC_PAGE_SIZE")
    return int(size_pages) * page_bytes, int(resident_pages) * page_bytes


def main() -> None:
    """Serve the service until it closes its end of the socket."""
    # Only the service's socket (0), /dev/null (1) and the service's stderr pipe (2) are meant to
    # be here; anything else a launcher leaked is closed before the first child exists.
    os.closerange(3, FD_CEILING)
    service = socket.socket(fileno=_SERVICE_FD)
    received = receive_message(service)
    if received is None:
        return
    init = received[0]
    scratch_root: str = init["scratch_root"]
    # No untrusted byte runs before this: the sandbox user owns nothing on the host and holds
    # no capability (the zygote may start as root of its namespaces, see `privileges`).
    if init["seal"]:
        seal(scratch_root, init["scratch_bytes"], init["scratch_files"], init["devices"])
    drop_privileges(init["uid"], init["gid"])
    languages: list[str] = init["languages"]
    kept = _preload_keeping_files(languages, init["python_path"], init["preload"], scratch_root)
    seccomp = SeccompLoader(bytes.fromhex(init["seccomp_bpf"]))
    seccomp_limits = SeccompLoader(bytes.fromhex(init.get("seccomp_limits_bpf", "")))
    # Measured before Landlock closes /proc: children get their memory limit on top of the address
    # space, and their peak RSS starts from the resident set they inherit.
    as_base, memory_base_bytes = _statm_bytes()
    rlimits = LimitSetter(
        init["limit_defaults"], init["limit_maxima"], as_base, init.get("max_tasks")
    )
    abi = landlock.restrict_self(init["landlock_read_only"], [scratch_root])
    gc.freeze()  # children never touch these objects' GC headers, so their pages stay shared
    scratch = os.path.join(scratch_root, "run")
    _fresh_scratch(scratch)
    preloaded = bool(init["preload"])
    # A session's sandbox prepares one child, for its one language, and never replaces it.
    session = bool(init.get("session"))
    child_main = _child_main(
        scratch, seccomp, seccomp_limits, rlimits, kept=kept, preloaded=preloaded, session=session
    )
    template = start_template(child_main)
    children = _Children(template, service)
    kinds = [CHILD_KINDS[language].encode() for language in languages if language in CHILD_KINDS]
    for _ in range(1 if session else CHILDREN_PER_KIND):
        for each in kinds:
            children.order(each)
    ready = {"ready": True, "landlock_abi": abi, "python": sys.version.split()[0]}
    send_message(service, {**ready, "memory_base_bytes": memory_base_bytes})
    children.exits.register(service, selectors.EVENT_READ, None)
    while True:
        for key, _ in children.exits.select():
            if key.data is None:  # the service: it only ever closes the socket, to stop us
                if receive_message(service) is None:
                    return
                continue
            finished, kind = children.reap(key.fd, key.data)
            if session:  # the session is over: the service closes this sandbox
                send_message(service, finished)
                continue
            # Wiped before the service hears of it: its next run on this zygote may start at once.
            _fresh_scratch(scratch)
            send_message(service, finished)
            children.order(kind)
