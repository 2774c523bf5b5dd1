"""Files of the data dir are for the user running sofiaflow only: directories 0700, files 0600.

`private_files()` sets the process umask at startup so that everything created afterwards (config DB, the
SQLite real-time DB, context files, the credentials key, history folders) is private; `private_dir()` makes an
existing data dir private as well, since a umask does not change what already exists.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_UMASK = 0o077


def private_files() -> int:
    """Set the process umask to 077 (files 0600, directories 0700); the previous umask."""
    return os.umask(PRIVATE_UMASK)


def private_dir(path: str | Path) -> Path:
    """Create `path` (and its parents) if needed and make it 0700; the path."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def private_file(path: str | Path) -> Path:
    """Create `path` empty with mode 0600 unless it exists, and make it 0600; the path."""
    path = Path(path)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    path.chmod(0o600)
    return path
