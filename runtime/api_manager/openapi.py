"""OpenAPI 3.0 documents of published APIs, generated from their operations, with the API key header as the
security scheme (as onesait's API Manager)."""

from __future__ import annotations

import re
from typing import Any

from sofiaflow.runtime.api_manager.model import ApiSpec, EndpointSpec, Parameter

BASE = "/api-manager/server/api"
OPENAPI_VERSION = "3.0.3"
_ERROR = {"$ref": "#/components/responses/Error"}
_SUMMARY = {
    "query": "Query {o} (paged)",
    "getById": "One instance of {o} by id",
    "insert": "Insert into {o}",
    "update": "Update instances of {o}",
    "delete": "Delete instances of {o}",
    "flow": "Answered by a flow",
}


def base_url(spec: ApiSpec) -> str:
    return f"{BASE}/v{spec.version}/{spec.name}"


def document_url(spec: ApiSpec) -> str:
    return f"{base_url(spec)}/openapi.json"


def document(spec: ApiSpec, endpoints: list[EndpointSpec]) -> dict[str, Any]:
    """The OpenAPI 3 document of one API."""
    paths: dict[str, dict[str, Any]] = {}
    used: set[str] = set()
    for endpoint in endpoints:
        item = paths.setdefault(_openapi_path(endpoint.path), {})
        item[endpoint.method.lower()] = _operation(spec, endpoint, used)
    info: dict[str, Any] = {
        "title": spec.name,
        "version": str(spec.version),
        "description": spec.description or f"API {spec.label}",
        "x-state": spec.state,
    }
    doc: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": info,
        "servers": [{"url": base_url(spec)}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "X-OP-APIKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-OP-APIKey",
                    "description": "An API key from POST /api-keys (X-SOFIA2-APIKey is accepted too)",
                },
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                },
                "Page": {
                    "type": "object",
                    "required": ["total", "limit", "offset", "items"],
                    "properties": {
                        "total": {"type": "integer"},
                        "limit": {"type": "integer"},
                        "offset": {"type": "integer"},
                        "items": {"type": "array", "items": {"type": "object"}},
                    },
                },
                "Instance": {"type": "object", "additionalProperties": True},
            },
            "responses": {
                "Error": {
                    "description": "Refused: the body says why",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                }
            },
        },
        "security": [{"X-OP-APIKey": []}],
    }
    if spec.state == "deprecated":
        info["description"] += "\n\nThis API is deprecated."
    return doc


def _openapi_path(path: str) -> str:
    return path.rstrip("/") or "/"


def _operation_id(spec: EndpointSpec, used: set[str]) -> str:
    base = (
        re.sub(r"[^A-Za-z0-9]+", "_", f"{spec.method.lower()}{spec.path}").strip("_") or spec.method.lower()
    )
    name, n = base, 2
    while name in used:
        name, n = f"{base}_{n}", n + 1
    used.add(name)
    return name


def _schema(param: Parameter) -> dict[str, Any]:
    return {"type": param.type}


def _operation(api: ApiSpec, spec: EndpointSpec, used: set[str]) -> dict[str, Any]:
    ontology = spec.ontology or ""
    op: dict[str, Any] = {
        "operationId": _operation_id(spec, used),
        "summary": spec.summary or _SUMMARY[spec.operation].format(o=ontology),
        "tags": [api.name],
        "parameters": [
            {
                "name": p.name,
                "in": p.location,
                "required": p.required,
                "schema": _schema(p),
                **({"description": p.description} if p.description else {}),
            }
            for p in spec.parameters
            if p.location != "body"
        ],
        "responses": _responses(spec),
    }
    if spec.description:
        op["description"] = spec.description
    if api.state == "deprecated":
        op["deprecated"] = True
    if spec.operation == "query":
        op["parameters"] += [
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "description": "page size (at most 1000)",
                "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
            },
            {
                "name": "offset",
                "in": "query",
                "required": False,
                "description": "instances skipped",
                "schema": {"type": "integer", "minimum": 0, "default": 0},
            },
        ]
    body = _request_body(spec)
    if body is not None:
        op["requestBody"] = body
    return op


def _request_body(spec: EndpointSpec) -> dict[str, Any] | None:
    fields = [p for p in spec.parameters if p.location == "body"]
    if spec.operation == "insert":
        schema: dict[str, Any] = {
            "oneOf": [
                {"$ref": "#/components/schemas/Instance"},
                {"type": "array", "items": {"$ref": "#/components/schemas/Instance"}},
            ]
        }
        return {
            "required": True,
            "description": f"An instance of {spec.ontology}, or an array of them",
            "content": {"application/json": {"schema": schema}},
        }
    if spec.operation == "update":
        return {
            "required": True,
            "description": f"The new instance of {spec.ontology}",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Instance"}}},
        }
    if fields:
        schema = {"type": "object", "properties": {p.name: _schema(p) for p in fields}}
        required = [p.name for p in fields if p.required]
        if required:
            schema["required"] = required
        return {"required": bool(required), "content": {"application/json": {"schema": schema}}}
    if spec.operation == "flow" and spec.method in ("POST", "PUT", "PATCH"):
        return {
            "required": False,
            "content": {"application/json": {"schema": {}}, "text/plain": {"schema": {"type": "string"}}},
        }
    return None


def _responses(spec: EndpointSpec) -> dict[str, Any]:
    ok: dict[str, Any]
    if spec.operation == "query":
        ok = {
            "200": {
                "description": "One page of matching instances",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Page"}}},
            }
        }
    elif spec.operation == "getById":
        ok = {
            "200": {
                "description": "The instance",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Instance"}}},
            },
            "404": _ERROR,
        }
    elif spec.operation == "insert":
        ok = {
            "201": {
                "description": "Stored: {id} or {ids}",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        }
    elif spec.operation == "update":
        ok = {
            "200": {
                "description": "{matched}",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        }
    elif spec.operation == "delete":
        ok = {
            "200": {
                "description": "{deleted}",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        }
    else:
        ok = {"200": {"description": "The flow's answer"}}
    return {
        **ok,
        "400": _ERROR,
        "401": _ERROR,
        "403": _ERROR,
        "429": {
            "description": "Quota used up; retry after Retry-After seconds",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        },
    }
