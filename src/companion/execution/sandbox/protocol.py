"""What the service and the sandbox send each other. Stdlib only: it runs on both sides.

Frames (a 4-byte big-endian length, then a JSON object) go down a stream: a run's request to its
child's control pipe. Messages (one JSON object per `SOCK_SEQPACKET` record, optionally carrying
file descriptors) go between the service and a zygote: small control records, and a new child's
pipe ends and pidfd handed to the service.
"""

from __future__ import annotations

import array
import json
import os
import socket
import struct
from collections.abc import Sequence
from typing import Any

__all__ = [
    "CHILDREN_PER_KIND",
    "CHILD_KINDS",
    "FD_CEILING",
    "MAX_FRAME_BYTES",
    "MAX_MESSAGE_BYTES",
    "MAX_MESSAGE_FDS",
    "decode_frame",
    "frame_bytes",
    "read_frame",
    "receive_message",
    "send_message",
]

MAX_FRAME_BYTES = 64 * 1024 * 1024
# Above any descriptor a process can hold, for closing every inherited fd: closing up to the soft
# open-files limit is not enough, since that limit may be lowered below descriptors already open
# (a service's fd 100 reached snippets so).
FD_CEILING = 2**31 - 1
CHILDREN_PER_KIND = 2  # prepared children a zygote keeps per language (the service holds their fds)
# The languages a zygote's children run, by the one-letter kind the template and `child` messages use.
CHILD_KINDS = {"python": "p", "javascript": "j"}
# Control messages are small (the largest, init, carries two seccomp programs: about 3 KiB).
MAX_MESSAGE_BYTES = 64 * 1024
MAX_MESSAGE_FDS = 8
_HEADER = struct.Struct(">I")


def frame_bytes(body: bytes) -> bytes:
    """One frame around an already encoded JSON object (the service encodes with orjson)."""
    return _HEADER.pack(len(body)) + body


def decode_frame(body: bytes) -> dict[str, Any]:
    """The message of one frame body."""
    message = json.loads(body)
    if not isinstance(message, dict):
        raise ValueError("a frame must hold a JSON object")
    return message


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = os.read(fd, remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> dict[str, Any] | None:
    """Block for the next frame on `fd`; None at end of stream."""
    header = _read_exactly(fd, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {size} bytes exceeds {MAX_FRAME_BYTES}")
    body = _read_exactly(fd, size)
    return None if body is None else decode_frame(body)


def send_message(
    connection: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()
) -> None:
    """Send one message (one record, so never split), with `fds` attached when given."""
    body = json.dumps(message, separators=(",", ":")).encode()
    if fds:
        socket.send_fds(connection, [body], list(fds))
    else:
        connection.send(body)


def receive_message(
    connection: socket.socket, flags: int = 0
) -> tuple[dict[str, Any], list[int]] | None:
    """The next message and the fds it carries; None when the peer has closed the connection.

    `flags` may add `MSG_DONTWAIT` (`socket.recv_fds` ignores its flags, hence `recvmsg` here).
    Received fds are close-on-exec, so no later subprocess inherits a child's pipe.
    """
    fds = array.array("i")
    body, ancillary, msg_flags, _ = connection.recvmsg(
        MAX_MESSAGE_BYTES,
        socket.CMSG_SPACE(MAX_MESSAGE_FDS * fds.itemsize),
        flags | socket.MSG_CMSG_CLOEXEC,
    )
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    received = list(fds)
    message: dict[str, Any] | None = None
    try:
        if msg_flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            raise ValueError("a message was larger than the protocol allows")
        message = decode_frame(body) if body else None
    finally:
        if message is None:  # end of stream or a bad message: the fds it carried are not wanted
            for fd in received:
                os.close(fd)
    return None if message is None else (message, received)
