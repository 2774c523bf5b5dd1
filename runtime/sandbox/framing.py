"""Frames between host and worker: a 4-byte big-endian length, then a msgpack array (msgspec).

msgspec decodes msgpack into plain dict/list/str/int/float/bool/None/bytes only, so the host can read
what an untrusted worker writes without ever building objects of its choosing.

Frame kinds (first item of the array):

- host -> worker: `[REQUEST, id, handler, op, payload]`, `[CALL_REPLY, call_id, ok, value]`,
  `[REGISTER, handler, module]`
- worker -> host: `[ANSWER, id, ok, value]` (ok False: value is the error text),
  `[CALL, call_id, handler, op, payload]`, `[EVENT, handler, op, payload]`, `[PROGRESS, id]`
"""

from __future__ import annotations

import os
import struct
from typing import Any

import msgspec

from sofiaflow.runtime.errors import ValidationError

REQUEST, CALL_REPLY, REGISTER, ANSWER, CALL, EVENT, PROGRESS = range(7)
HEADER = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024
"""Largest frame either side accepts (bytes); a longer length prefix is a protocol error."""

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


class FrameError(ValidationError):
    """The peer sent something that is not a valid frame."""


def encode(frame: list[Any]) -> bytes:
    """One frame, length prefix included. TypeError/OverflowError/msgspec.EncodeError for values that do not
    cross (objects, ints beyond 64 bits)."""
    body = _encoder.encode(frame)
    if len(body) > MAX_FRAME:
        raise FrameError(f"a frame of {len(body)} bytes is over the limit of {MAX_FRAME}")
    return HEADER.pack(len(body)) + body


def decode(body: bytes) -> list[Any]:
    """A frame's array; FrameError when the bytes are not msgpack or not an array with a kind."""
    try:
        frame = _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise FrameError(f"not msgpack: {exc}") from None
    if not isinstance(frame, list) or not frame or not isinstance(frame[0], int):
        raise FrameError("a frame must be an array starting with its kind")
    return frame


def frame_length(header: bytes) -> int:
    """The body length a header announces; FrameError when over MAX_FRAME."""
    (length,) = HEADER.unpack(header)
    if length > MAX_FRAME:
        raise FrameError(f"a frame of {length} bytes is over the limit of {MAX_FRAME}")
    return length


class BlockingChannel:
    """The worker's side: blocking reads and writes of frames on two file descriptors."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._read_fd = read_fd
        self._write_fd = write_fd
        self._buffer = bytearray()

    def _fill(self, size: int) -> bool:
        while len(self._buffer) < size:
            chunk = os.read(self._read_fd, max(65536, size - len(self._buffer)))
            if not chunk:
                return False
            self._buffer += chunk
        return True

    def read(self) -> list[Any] | None:
        """The next frame, or None at end of input (the host went away)."""
        if not self._fill(HEADER.size):
            return None
        length = frame_length(bytes(self._buffer[: HEADER.size]))
        if not self._fill(HEADER.size + length):
            return None
        body = bytes(self._buffer[HEADER.size : HEADER.size + length])
        del self._buffer[: HEADER.size + length]
        return decode(body)

    def write(self, frame: list[Any]) -> None:
        data = memoryview(encode(frame))
        while data:
            written = os.write(self._write_fd, data)
            data = data[written:]
