"""The service-zygote messages: one record each, fds passed and never leaked on a bad message."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator

import pytest

from companion.execution.sandbox.protocol import (
    MAX_FRAME_BYTES,
    MAX_MESSAGE_BYTES,
    frame_bytes,
    read_frame,
    receive_message,
    send_message,
)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours, theirs:
        yield ours, theirs


def test_a_message_carries_its_fds_close_on_exec(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    read_end, write_end = os.pipe()
    send_message(theirs, {"child": "p", "pid": 7}, [write_end])
    os.close(write_end)
    received = receive_message(ours)
    assert received is not None
    message, fds = received
    assert message == {"child": "p", "pid": 7}
    assert len(fds) == 1
    assert not os.get_inheritable(fds[0])  # no later subprocess inherits a child's pipe
    os.write(fds[0], b"through the passed fd")
    assert os.read(read_end, 100) == b"through the passed fd"
    for fd in (*fds, read_end):
        os.close(fd)


def test_non_blocking_receive_says_so_and_end_of_stream_is_none(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    with pytest.raises(BlockingIOError):
        receive_message(ours, socket.MSG_DONTWAIT)
    send_message(theirs, {"ready": True})
    assert receive_message(ours, socket.MSG_DONTWAIT) == ({"ready": True}, [])
    theirs.close()
    assert receive_message(ours) is None


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"[1, 2]", "must hold a JSON object"),
        (b"{not json", "Expecting property name"),
        (b"x" * (MAX_MESSAGE_BYTES + 1), "larger than the protocol allows"),
    ],
    ids=["not-an-object", "not-json", "oversized"],
)
def test_a_bad_message_is_refused_and_its_fds_are_closed(
    pair: tuple[socket.socket, socket.socket], body: bytes, error: str
) -> None:
    ours, theirs = pair
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * MAX_MESSAGE_BYTES)
    read_end, write_end = os.pipe()
    socket.send_fds(theirs, [body], [write_end])
    os.close(write_end)
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(ValueError, match=error):
        receive_message(ours)
    assert set(os.listdir("/proc/self/fd")) <= before  # the passed fd did not stay open here
    assert os.read(read_end, 1) == b""  # its only write end is gone: end of file
    os.close(read_end)


def test_a_frame_is_read_whole_however_it_arrives() -> None:
    read_end, write_end = os.pipe()
    big = {"code": "x" * 200_000}  # larger than one pipe's capacity: needs several reads
    frame = frame_bytes(json.dumps(big).encode())

    def write_in_pieces() -> None:
        for start in range(0, len(frame), 3000):
            os.write(write_end, frame[start : start + 3000])

    writer = threading.Thread(target=write_in_pieces)
    writer.start()
    assert read_frame(read_end) == big
    writer.join()
    os.write(write_end, frame_bytes(b'{"a": 1}')[:6])  # cut mid-frame, then the writer leaves
    os.close(write_end)
    assert read_frame(read_end) is None
    os.close(read_end)


def test_an_oversized_frame_header_is_refused() -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, (MAX_FRAME_BYTES + 1).to_bytes(4, "big"))
    with pytest.raises(ValueError, match="exceeds"):
        read_frame(read_end)
    for fd in (read_end, write_end):
        os.close(fd)
