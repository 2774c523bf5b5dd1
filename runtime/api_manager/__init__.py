"""The API Manager: versioned REST APIs published by `api` / `api-endpoint` nodes over ontologies or flows,
called with per-user API keys under quotas, described by OpenAPI documents and a catalogue with Swagger UI.

`ApiManager` (service.py) is the runtime service "api-manager"; `routes.install(app)` serves it over HTTP.
"""

from __future__ import annotations

from sofiaflow.runtime.api_manager.model import (
    ApiSpec,
    EndpointSpec,
    Parameter,
    SpecError,
    api_spec,
    endpoint_spec,
)
from sofiaflow.runtime.api_manager.service import ApiCall, ApiManager

__all__ = [
    "ApiCall",
    "ApiManager",
    "ApiSpec",
    "EndpointSpec",
    "Parameter",
    "SpecError",
    "api_spec",
    "endpoint_spec",
]
