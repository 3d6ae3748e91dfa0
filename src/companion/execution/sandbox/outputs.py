"""What a run gives back besides its output streams, collected inside the child. Stdlib only.

Rich results, like a notebook cell's: the value of the last expression, `display(...)` calls and
the matplotlib figures open at the end, each in the representations it offers (the IPython
`_repr_*_` protocol). Returned files: what the run wrote or changed in its working directory.

Everything goes to the service as JSON lines on the report pipe (`{"result": ...}`, `{"file":
...}`, `{"truncated": ...}`), bounded here by the run's limits and checked again by the service,
which never trusts them (the snippet can write to that pipe too).
"""

from __future__ import annotations

import binascii
import errno
import io
import json
import mimetypes
import os
import re
import stat
import sys
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "MAX_PATH_DEPTH",
    "PATH_SEGMENT",
    "Outputs",
    "Signature",
    "file_record",
    "listing",
    "open_parent",
    "read_file",
    "returnable",
    "signatures",
    "warm_walk",
    "written_files",
]

# One segment of a file's path in the run's directory, and how deep paths go: input and returned
# files alike (the service validates with these): no `..`, no hidden or absolute paths.
PATH_SEGMENT = re.compile(r"\w[\w. -]{0,99}")
MAX_PATH_DEPTH = 8

_dumps = json.dumps
_write = os.write
_b64 = binascii.b2a_base64
_REPORT_FD = 3
# IPython's display protocol: the methods an object may offer, and what each returns.
_REPRESENTATIONS = (
    ("_repr_html_", "text/html"),
    ("_repr_markdown_", "text/markdown"),
    ("_repr_svg_", "image/svg+xml"),
    ("_repr_png_", "image/png"),
    ("_repr_jpeg_", "image/jpeg"),
    ("_repr_latex_", "text/latex"),
    ("_repr_json_", "application/json"),
)
_BINARY = frozenset({"image/png", "image/jpeg"})
_TEXT_CHARS = 1 << 20  # of one text/plain representation (a repr of a huge list)
_READ_CHUNK = 1 << 20


def _send(record: dict[str, Any]) -> None:
    _write_line(_dumps(record).encode() + b"\n")


def _write_line(line: bytes) -> None:
    view = memoryview(line)
    while view:
        view = view[_write(_REPORT_FD, view) :]


class Outputs:
    """The rich results of one run, within a byte budget (the run's output limit)."""

    def __init__(self, budget_bytes: int, figure_format: str) -> None:
        """`budget_bytes` of result records in all, as sent (JSON, base64 included)."""
        self._left = budget_bytes
        self._count = 0
        self._figure_format = figure_format
        self._truncated = False

    def display(self, *values: Any) -> None:
        """`display(...)` as user code calls it: each value becomes one output."""
        for value in values:
            self._emit("display", value)

    def value(self, value: Any) -> None:
        """The value of the run's last expression (None shows nothing, as in a notebook)."""
        if value is None:
            return
        if _open_figure(value):
            return  # an open figure comes back with the others at the end
        self._emit("value", value)

    def javascript_value(self, text: str, as_json: bool) -> None:
        """A JavaScript run's completion value, as JSON when it is an object."""
        bundle = {"text/plain": text}
        if as_json:
            bundle["application/json"] = text
        self._send_bundle("value", bundle)

    def figures(self) -> None:
        """Every matplotlib figure still open, rendered in the requested format, then closed."""
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is None:
            return
        for number in pyplot.get_fignums():
            figure = pyplot.figure(number)
            try:
                self._send_bundle("figure", self._render(figure))
            except Exception as exc:  # too large to render, out of memory: the user is told
                sys.stderr.write(f"figure {number} could not be rendered: {exc}\n")
        pyplot.close("all")

    def finish(self) -> None:
        """Say whether results were dropped for the output limit."""
        if self._truncated:
            _send({"truncated": "results"})

    def _render(self, figure: Any) -> dict[str, str]:
        buffer = io.BytesIO()
        # As `savefig` renders by default: `bbox_inches="tight"` draws every figure twice (~2x
        # the time); a run wanting it sets `plt.rcParams["savefig.bbox"] = "tight"`.
        figure.savefig(buffer, format=self._figure_format)
        if self._figure_format == "svg":
            return {"image/svg+xml": buffer.getvalue().decode("utf-8")}
        return {"image/png": buffer.getvalue()}  # type: ignore[dict-item]  # bytes: encoded below

    def _emit(self, kind: str, value: Any) -> None:
        bundle: dict[str, Any] = {}
        if _is_figure(value):
            try:
                bundle.update(self._render(value))
            except Exception as exc:
                bundle["text/plain"] = f"the figure could not be rendered: {exc}"
        for method, mime_type in _REPRESENTATIONS:
            shown = _call_repr(value, method)
            if shown is not None:
                bundle[mime_type] = shown
        try:
            text = repr(value)
        except Exception as exc:
            text = f"<repr failed: {type(exc).__name__}: {exc}>"
        if len(text) > _TEXT_CHARS:
            text = f"{text[:_TEXT_CHARS]}... [{len(text) - _TEXT_CHARS} more characters]"
        bundle["text/plain"] = text
        self._send_bundle(kind, bundle)

    def _send_bundle(self, kind: str, bundle: dict[str, Any]) -> None:
        output = self._count
        self._count += 1
        for mime_type, data in bundle.items():
            if isinstance(data, bytes):
                encoded, encoding = _b64(data, newline=False).decode("ascii"), "base64"
            elif mime_type == "application/json" and not isinstance(data, str):
                try:
                    encoded, encoding = _dumps(data), "utf-8"
                except (TypeError, ValueError):
                    continue
            else:
                encoded, encoding = str(data), "utf-8"
            record = {"kind": kind, "output": output, "mime_type": mime_type, "data": encoded}
            line = _dumps({"result": {**record, "encoding": encoding}}).encode() + b"\n"
            if len(line) > self._left:  # the budget is on what the service receives
                self._truncated = True
                continue
            self._left -= len(line)
            _write_line(line)


def _call_repr(value: Any, method: str) -> Any:
    """What `value._repr_x_()` returns, or None when it has none or it fails."""
    try:
        function: Callable[[], Any] | None = getattr(value, method, None)
        if function is None or not callable(function) or isinstance(value, type):
            return None
        shown = function()
    except Exception:
        return None
    if isinstance(shown, tuple):  # (data, metadata)
        shown = shown[0] if shown else None
    return shown if isinstance(shown, str | bytes | dict | list) else None


def _is_figure(value: Any) -> bool:
    figure_module = sys.modules.get("matplotlib.figure")
    return figure_module is not None and isinstance(value, figure_module.Figure)


def _open_figure(value: Any) -> bool:
    pyplot = sys.modules.get("matplotlib.pyplot")
    return pyplot is not None and _is_figure(value) and value.number in pyplot.get_fignums()


Signature = tuple[int, int, int]  # a file's (inode, size, modification time in ns)


def written_files(
    run_dir: int,
    inputs: dict[str, bytes],
    max_files: int,
    max_bytes: int,
    before: dict[str, Signature] | None = None,
) -> None:
    """Send the regular files under `run_dir` (an open directory fd) that are new or changed,
    up to `max_files` and `max_bytes` in all; links are never followed, whatever they point at.
    A file is unchanged when its content is its input's, or (a session's workspace) when its
    signature is the one it had in `before`."""
    for record in _changed_files(run_dir, inputs, max_files, max_bytes, before or {}):
        _send(record)


def signatures(run_dir: int) -> dict[str, Signature]:
    """The signature of every regular file under `run_dir`, by path: what `written_files`
    compares with after a session's cell, to return what the cell wrote."""
    found: dict[str, Signature] = {}
    for top, _, names, top_fd in os.fwalk(".", dir_fd=run_dir, follow_symlinks=False):
        for name in names:
            try:
                info = os.stat(name, dir_fd=top_fd, follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                found[os.path.normpath(os.path.join(top, name))] = _signature(info)
    return found


def listing(run_dir: int, max_entries: int) -> None:
    """Send an `entry` record (path, size, MIME type) per regular file under `run_dir`, a
    folder's files before its subfolders', up to `max_entries` (then `{"truncated": "entries"}`)."""
    sent = 0
    for top, directories, names, top_fd in os.fwalk(".", dir_fd=run_dir, follow_symlinks=False):
        directories.sort()
        for name in sorted(names):
            path = os.path.normpath(os.path.join(top, name))
            try:
                info = os.stat(name, dir_fd=top_fd, follow_symlinks=False)
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode) or not returnable(path):
                continue
            if sent == max_entries:
                _send({"truncated": "entries"})
                return
            sent += 1
            mime_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
            _send({"entry": {"path": path, "size_bytes": info.st_size, "mime_type": mime_type}})


def file_record(path: str, data: bytes) -> dict[str, Any]:
    """The report record of one returned file."""
    mime_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return {
        "file": {
            "path": path,
            "size_bytes": len(data),
            "mime_type": mime_type,
            "content_base64": _b64(data, newline=False).decode("ascii"),
        }
    }


def _signature(info: os.stat_result) -> Signature:
    return info.st_ino, info.st_size, info.st_mtime_ns


def warm_walk() -> None:
    """Walk a directory (this package's own, read-only) the way `written_files` walks a run's,
    sending nothing: a child does it while it waits for its request, so the copy-on-write faults
    of that code are paid before the run, not after it."""
    fd = os.open(os.path.dirname(os.path.abspath(__file__)), os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in _changed_files(fd, {}, 0, 0, {}):
            pass
    finally:
        os.close(fd)
    _dumps({"file": {"path": "x", "content_base64": _b64(b"x", newline=False).decode("ascii")}})


def _changed_files(
    run_dir: int,
    inputs: dict[str, bytes],
    max_files: int,
    max_bytes: int,
    before: dict[str, Signature],
) -> Iterator[dict[str, Any]]:
    returned = 0
    truncated = False
    for top, directories, names, top_fd in os.fwalk(".", dir_fd=run_dir, follow_symlinks=False):
        directories.sort()
        for name in sorted(names):
            path = os.path.normpath(os.path.join(top, name))
            try:
                info = os.stat(name, dir_fd=top_fd, follow_symlinks=False)
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode):
                continue
            if before.get(path) == _signature(info):
                continue  # a session's file this cell left as it was
            if not returnable(path):
                _write(2, f"file {path!r} not returned: its name is not allowed\n".encode())
                continue
            data = None
            sent = inputs.get(path)
            if sent is not None and len(sent) == info.st_size:
                data = _read(name, top_fd, info.st_size)
                if data == sent:
                    continue  # an input the run left as it was
            if returned == max_files or info.st_size > max_bytes:
                truncated = True
                continue
            if data is None:
                data = _read(name, top_fd, info.st_size)
            if data is None:
                continue
            max_bytes -= len(data)
            returned += 1
            yield file_record(path, data)
    if truncated:
        yield {"truncated": "files"}


def returnable(path: str) -> bool:
    """True for a path the service accepts (`_models.check_relative_path`, the same rule)."""
    segments = path.split("/")
    return len(segments) <= MAX_PATH_DEPTH and all(PATH_SEGMENT.fullmatch(s) for s in segments)


def open_parent(path: str, directory_fd: int) -> int:
    """A new descriptor of the folder holding `path` under `directory_fd`, opened a segment at a
    time and never through a link; `FileNotFoundError` when a segment is missing, a link or not
    a folder."""
    parent = os.dup(directory_fd)
    try:
        for segment in path.split("/")[:-1]:
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
            following = os.open(segment, flags, dir_fd=parent)
            os.close(parent)
            parent = following
    except OSError:  # ENOENT, ENOTDIR, ELOOP (a link): no such folder, as far as we go
        os.close(parent)
        raise FileNotFoundError(errno.ENOENT, "no such file", path) from None
    return parent


def read_file(path: str, directory_fd: int, max_bytes: int) -> bytes:
    """The bytes of regular file `path` under `directory_fd`, never through a link on the way;
    `OSError` (`FileNotFoundError` for a missing file or a link, `IsADirectoryError`, `EFBIG`
    past `max_bytes`) otherwise."""
    name = path.rsplit("/", 1)[-1]
    parent = open_parent(path, directory_fd)
    try:
        try:
            info = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except OSError:
            raise FileNotFoundError(errno.ENOENT, "no such file", path) from None
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, "a folder, not a file", path)
        if not stat.S_ISREG(info.st_mode):
            raise FileNotFoundError(errno.ENOENT, "not a regular file", path)
        if info.st_size > max_bytes:
            raise OSError(errno.EFBIG, f"{info.st_size} bytes, above the {max_bytes} allowed", path)
        data = _read(name, parent, info.st_size)
    finally:
        os.close(parent)
    if data is None:
        raise FileNotFoundError(errno.ENOENT, "could not be read", path)
    return data


def _read(name: str, directory_fd: int, size: int) -> bytes | None:
    """The file's bytes (at most `size`: it may grow meanwhile), never through a link."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=directory_fd)
    except OSError:
        return None
    try:
        chunks = []
        left = size
        while left > 0:
            chunk = os.read(fd, min(left, _READ_CHUNK))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)
