"""Errors of the sandbox worker pool. Everything a worker reports arrives as text, never as objects."""

from __future__ import annotations

from sofiaflow.runtime.errors import ServiceUnavailable, SofiaflowError


class SandboxError(SofiaflowError):
    """A request to a sandbox worker failed; the text says why (for handler errors, the worker's text)."""


class SandboxCrashed(SandboxError, ServiceUnavailable):
    """The worker process died (e.g. out of memory) before answering; it restarts on the next request."""


class SandboxTimeout(SandboxError, ServiceUnavailable):
    """The worker did not answer in time; it was killed and restarts on the next request."""
