"""The error hierarchy: every exception class in the code base is a SofiaflowError under a meaningful base, and
the admin API answers each base with its status."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sofiaflow.runtime import errors
from sofiaflow.runtime.errors import SofiaflowError
from sofiaflow.runtime.http.error_status import STATUS_OF, status_of

PARTS = ("sofiaflow.runtime", "sofiaflow.nodes", "sofiaflow.editor")


def _import_everything() -> None:
    """Import every module of the code base; a module that fails first (import cycles depend on the order)
    is tried again once the others are loaded, and must load then."""
    failed: list[str] = []
    for part in PARTS:
        package = importlib.import_module(part)
        for info in pkgutil.walk_packages(package.__path__, part + "."):
            try:
                importlib.import_module(info.name)
            except ImportError:
                failed.append(info.name)
    for name in failed:
        importlib.import_module(name)


def _subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    stack = [cls]
    while stack:
        for sub in stack.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                stack.append(sub)
    return found


def _defined_here() -> list[type]:
    _import_everything()
    return sorted(
        (c for c in _subclasses(BaseException) if c.__module__.startswith("sofiaflow.")),
        key=lambda c: (c.__module__, c.__qualname__),
    )


def test_every_exception_class_of_the_code_base_is_a_sofiaflow_error() -> None:
    classes = _defined_here()
    assert len(classes) > 40  # the walk found the code base's classes, not just errors.py
    strays = [f"{c.__module__}.{c.__qualname__}" for c in classes if not issubclass(c, SofiaflowError)]
    assert strays == []


MEANINGS = (
    errors.ValidationError,
    errors.AuthError,
    errors.PermissionDenied,
    errors.NotFound,
    errors.Conflict,
    errors.ServiceUnavailable,
    errors.NodeError,
)


def test_the_known_errors_sit_under_the_base_that_says_what_to_do() -> None:
    from sofiaflow.runtime.data.schema import OntologyExistsError, OntologyNotFoundError
    from sofiaflow.runtime.errors import FlowValidationError, StaleRevisionError, UnknownNodeTypeError
    from sofiaflow.runtime.sandbox import SandboxCrashed, SandboxTimeout
    from sofiaflow.runtime.security.devices import DeviceExistsError, DeviceValidationError
    from sofiaflow.runtime.security.permissions import PermissionDenied

    expected = {
        FlowValidationError: errors.ValidationError,
        DeviceValidationError: errors.ValidationError,
        UnknownNodeTypeError: errors.NotFound,
        OntologyNotFoundError: errors.NotFound,
        StaleRevisionError: errors.Conflict,
        OntologyExistsError: errors.Conflict,
        DeviceExistsError: errors.Conflict,
        PermissionDenied: errors.PermissionDenied,
        SandboxCrashed: errors.ServiceUnavailable,
        SandboxTimeout: errors.ServiceUnavailable,
    }
    wrong = {cls.__name__: base.__name__ for cls, base in expected.items() if not issubclass(cls, base)}
    assert wrong == {}


def test_the_bases_keep_the_builtin_kinds_callers_already_catch() -> None:
    assert issubclass(errors.ValidationError, ValueError)
    assert issubclass(errors.NotFound, LookupError)
    assert issubclass(errors.PermissionDenied, PermissionError)


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (errors.ValidationError("field 'x' of node 'n1': not a number"), 400, "invalid_request"),
        (errors.AuthError("token expired"), 401, "unauthorized"),
        (errors.PermissionDenied("ana has no INSERT right on ontology 'T'"), 403, "forbidden"),
        (errors.NotFound("no ontology 'T'"), 404, "not_found"),
        (errors.Conflict("device 'd' exists already"), 409, "conflict"),
        (errors.ServiceUnavailable("the sandbox worker crashed"), 503, "unavailable"),
    ],
)
def test_the_admin_api_answers_each_base_with_its_status(error: Exception, status: int, code: str) -> None:
    client = _client_raising(error)
    response = client.get("/boom")
    assert response.status_code == status
    assert response.json() == {"code": code, "message": str(error)}


def test_an_error_under_two_bases_is_answered_by_the_nearer_one() -> None:
    from sofiaflow.runtime.security.devices import DeviceNotFoundError

    assert status_of(DeviceNotFoundError("no device 'd'")) == (404, "not_found")
    assert status_of(errors.StaleRevisionError("a", "b")) == (409, "conflict")


def test_an_unmapped_error_is_an_unexpected_error_and_its_text_stays_in_the_log() -> None:
    response = _client_raising(errors.NodeError("SELECT secret FROM t")).get("/boom")
    assert response.status_code == 500
    assert response.json()["code"] == "unexpected_error"
    assert "secret" not in response.text


def test_an_auth_error_asks_for_a_bearer_token() -> None:
    response = _client_raising(errors.AuthError("token expired")).get("/boom")
    assert response.headers["www-authenticate"] == "Bearer"


def test_every_mapped_base_is_a_meaning_base() -> None:
    assert set(STATUS_OF) <= set(MEANINGS)


def _client_raising(error: Exception) -> TestClient:
    """The admin API's error handlers on an app with one route that raises `error`."""
    from sofiaflow.runtime.http.app import _install_error_handlers

    app = FastAPI()
    _install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise error

    return TestClient(app, raise_server_exceptions=False)
