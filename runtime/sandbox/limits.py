"""What a worker process may use: the limits the host asks for and how the worker applies them.

The worker applies them itself, first thing after importing its (trusted) handler modules and before it
reads any request, so no untrusted code ever runs without them. Doing it there rather than in a
`preexec_fn` keeps the host free of fork-time callbacks (unsafe with threads), and lets a root host's
worker load the interpreter and packages (often under a directory only root can read, like /root) before
it becomes `nobody`.
"""

from __future__ import annotations

import os
import resource
from dataclasses import asdict, dataclass

EXIT_OUT_OF_MEMORY = 86
EXIT_PROTOCOL_ERROR = 87
EXIT_START_FAILED = 88
NOBODY_UID = 65534
NOGROUP_GID = 65534


@dataclass(frozen=True)
class WorkerLimits:
    """Resource limits and identity of a worker process."""

    memory_mb: int = 512
    """Memory in MiB (0: no limit): with memory_kind "data" (the default) RLIMIT_DATA, the heap and private
    writable mappings; with "as" RLIMIT_AS, the whole address space. One worker serves a tenant's python and
    JavaScript functions, and V8 reserves far more address space than it uses, so it cannot start under AS."""
    memory_kind: str = "data"
    open_files: int = 64
    processes: int = 256
    """RLIMIT_NPROC, only applied when the worker runs as its own user (it counts per user)."""
    niceness: int = 10
    user: int | None = None
    """Uid to run as (with `group` and no supplementary groups); None keeps the host's."""
    group: int | None = None

    @classmethod
    def for_host(cls, memory_mb: int = 512, **options: object) -> WorkerLimits:
        """Limits with the identity a worker of this host drops to (nobody/nogroup under root)."""
        uid, gid = default_identity()
        return cls(memory_mb=memory_mb, user=uid, group=gid, **options)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> WorkerLimits:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def __post_init__(self) -> None:
        if self.memory_kind not in ("as", "data"):
            raise ValueError(f"sandbox memory_kind must be 'as' or 'data', not {self.memory_kind!r}")
        if self.memory_mb < 0 or self.open_files < 8:
            raise ValueError(
                f"sandbox limits out of range: memory_mb={self.memory_mb}, "
                f"open_files={self.open_files} (at least 8)"
            )


def default_identity() -> tuple[int | None, int | None]:
    """(uid, gid) a worker should drop to: nobody/nogroup when the host is root, else the host's own."""
    if os.geteuid() != 0:
        return None, None
    import grp
    import pwd

    try:
        uid = pwd.getpwnam("nobody").pw_uid
    except KeyError:
        uid = NOBODY_UID
    for name in ("nogroup", "nobody"):
        try:
            return uid, grp.getgrnam(name).gr_gid
        except KeyError:
            continue
    return uid, NOGROUP_GID


def apply(limits: WorkerLimits) -> None:
    """In the worker: set the limits, lower the priority, then drop to the configured user."""

    def lower(which: int, value: int) -> None:
        _soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY and hard < value:
            value = hard
        resource.setrlimit(which, (value, value))

    if limits.memory_mb:
        kind = resource.RLIMIT_AS if limits.memory_kind == "as" else resource.RLIMIT_DATA
        lower(kind, limits.memory_mb * 1024 * 1024)
    lower(resource.RLIMIT_NOFILE, limits.open_files)
    lower(resource.RLIMIT_CORE, 0)
    if limits.niceness:
        os.nice(limits.niceness)
    if limits.user is not None and os.geteuid() == 0:
        os.setgroups([])
        os.setresgid(limits.group, limits.group, limits.group)
        os.setresuid(limits.user, limits.user, limits.user)
        if limits.processes:  # only now: NPROC counts every process of the (now dedicated) user
            lower(resource.RLIMIT_NPROC, limits.processes)
        if os.getuid() == 0 or os.geteuid() == 0:
            raise OSError("the worker could not drop root privileges")
