"""Every path the storage nodes touch stays inside one folder: the `filesDir` setting.

A name (from the node's config or from `msg.filename`) is resolved at use time: relative names inside the
folder, absolute names as they are; then every symlink is resolved (`os.path.realpath`) and the result
must lie inside the folder's own real path, or the name is refused with `PathRefused` (`..` past the top,
absolute paths elsewhere, symlinks leading out).

The checked path is then opened without following any symlink again: the folder is opened once and each
component below it is opened relative to its parent with `O_NOFOLLOW`, so a symlink planted between the
check and the use fails the operation (ELOOP) instead of leading outside.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sofiaflow.runtime.api import Node, NodeError

ENV = "SOFIAFLOW_FILES_DIR"
SETTING = "filesDir"

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class PathRefused(NodeError):
    """A file name that would lead outside the files folder, or is not a usable name at all."""


def files_root(node: Node) -> str:
    """The real path of the folder `node` may use: the `filesDir` setting, else $SOFIAFLOW_FILES_DIR."""
    configured = node.setting(SETTING) or os.environ.get(ENV)
    if not configured:
        raise NodeError(f"{node.type}: no files folder is configured (setting {SETTING} or ${ENV})")
    return os.path.realpath(Path(str(configured)).expanduser())


def resolve(root: str, name: str) -> str:
    """The real path `name` stands for, checked to lie inside `root` (a real path); PathRefused if not."""
    if not isinstance(name, str) or name == "":
        raise PathRefused("no file name given")
    if "\x00" in name:
        raise PathRefused(f"file name {name!r} contains a NUL character")
    try:
        os.fsencode(name)
    except UnicodeError:
        raise PathRefused(f"file name {name!r} cannot be encoded for this file system") from None
    real = os.path.realpath(os.path.join(root, name))
    if not inside(root, real):
        raise PathRefused(f"file name {name!r} leads outside the files folder")
    return real


def inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def relative_parts(root: str, real: str) -> list[str]:
    """The components of `real` below `root` (both real paths; `real` inside `root`)."""
    rel = os.path.relpath(real, root)
    return [] if rel == "." else rel.split(os.sep)


@contextmanager
def open_dir(root: str, parts: list[str], create: bool = False) -> Iterator[int]:
    """A descriptor of the folder `root`/`parts`, reached without following symlinks below `root`.

    With `create`, missing folders (the root too) are made on the way, as `createDir` asks.
    """
    if create:
        os.makedirs(root, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    try:
        for part in parts:
            if create:
                try:
                    os.mkdir(part, dir_fd=fd)
                except FileExistsError:
                    pass
            child = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


@contextmanager
def open_file(root: str, real: str, flags: int, create_dirs: bool = False) -> Iterator[int]:
    """A descriptor of the file at `real` (checked by `resolve`), opened with `flags` and no symlink followed."""
    parts = relative_parts(root, real)
    if not parts:
        raise IsADirectoryError(21, "Is a directory", real)
    with open_dir(root, parts[:-1], create=create_dirs) as parent:
        fd = os.open(parts[-1], flags | _NOFOLLOW | _CLOEXEC, 0o666, dir_fd=parent)
    try:
        yield fd
    finally:
        os.close(fd)


def unlink(root: str, real: str) -> None:
    """Delete the file at `real` (checked by `resolve`), reaching it without following symlinks."""
    parts = relative_parts(root, real)
    if not parts:
        raise IsADirectoryError(21, "Is a directory", real)
    with open_dir(root, parts[:-1]) as parent:
        os.unlink(parts[-1], dir_fd=parent)


def describe(err: OSError, action: str, name: str) -> dict[str, str]:
    """An OS error as Node.js words it, about the name as given: {message: "ENOENT: no such file or directory,
    open 'a.txt'", code: "ENOENT"}."""
    code = errno.errorcode.get(err.errno or 0, "EIO")
    return {"message": f"{code}: {(err.strerror or str(err)).lower()}, {action} '{name}'", "code": code}
