"""Errors of the sandbox worker pool. Everything a worker reports arrives as text, never as objects."""

from __future__ import annotations


class SandboxError(Exception):
    """A request to a sandbox worker failed; the text says why (for handler errors, the worker's text)."""


class SandboxCrashed(SandboxError):
    """The worker process died (e.g. out of memory) before answering; it restarts on the next request."""


class SandboxTimeout(SandboxError):
    """The worker did not answer in time; it was killed and restarts on the next request."""
