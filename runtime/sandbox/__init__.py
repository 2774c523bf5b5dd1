"""Sandbox worker processes: code written by people runs in them, one process per tenant, with limits."""

from sofiaflow.runtime.sandbox.errors import SandboxCrashed, SandboxError, SandboxTimeout
from sofiaflow.runtime.sandbox.pool import SandboxPool, SandboxWorker

__all__ = ["SandboxCrashed", "SandboxError", "SandboxPool", "SandboxTimeout", "SandboxWorker"]
