"""The admin API's status and code for each base of the error hierarchy, in one place.

A route that lets a `SofiaflowError` escape is answered by the base the error derives from (nearest first, by
the class's method resolution order); an error under none of these bases is an unexpected error (500, text kept
out of the answer). Routes still raise `ApiError` where an answer needs its own code or extra fields.
"""

from __future__ import annotations

from sofiaflow.runtime.errors import (
    AuthError,
    Conflict,
    NotFound,
    PermissionDenied,
    ServiceUnavailable,
    SofiaflowError,
    ValidationError,
)

STATUS_OF: dict[type[SofiaflowError], tuple[int, str]] = {
    ValidationError: (400, "invalid_request"),
    AuthError: (401, "unauthorized"),
    PermissionDenied: (403, "forbidden"),
    NotFound: (404, "not_found"),
    Conflict: (409, "conflict"),
    ServiceUnavailable: (503, "unavailable"),
}
"""Base class -> (HTTP status, answer code)."""


def status_of(error: BaseException) -> tuple[int, str] | None:
    """(status, code) of the nearest mapped base of `error`'s class; None when it has none."""
    for cls in type(error).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return None
