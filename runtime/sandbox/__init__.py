"""Sandbox worker processes: code written by people runs in them, one process per tenant, with limits."""

from .errors import SandboxCrashed, SandboxError, SandboxTimeout
from .pool import SandboxPool, SandboxWorker

__all__ = ["SandboxCrashed", "SandboxError", "SandboxPool", "SandboxTimeout", "SandboxWorker"]
