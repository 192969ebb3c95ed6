"""OpenAPI 3.1 for the rpc routes, generated from the service contracts.

A contract (``protocol/spec/<service>.json``) is
``{"service", "methods": {name: {"params", "result", "idempotent", "shadow_safe"}}}``
with JSON Schemas for params and result. Each method becomes one POST
operation whose bodies use the JSON-only view (bytes as ``{"$bytes": base64}``)::

    contracts = load_contracts("protocol/spec")
    paths = rpc_operations(route, contracts) # one rpc route's part of /_gateway/openapi.json
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from gateway.errors import ConfigError
from gateway.http.config import Route
from protocol import contract as contract_files
from protocol.contract import Contract
from protocol.errors import ProtocolError

BYTES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"$bytes": {"type": "string", "contentEncoding": "base64"}},
    "required": ["$bytes"],
    "additionalProperties": False,
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"},
        "status": {"type": "integer"}, "detail": {"type": "string"},
        "code": {"type": "string"}, "request_id": {"type": "string"},
    },
    "required": ["type", "title", "status", "request_id"],
}

_ERROR_STATUSES = ("400", "404", "413", "415", "422", "500", "502", "503", "504")


def load_contracts(directory: str) -> dict[str, Contract]:
    """Every contract in ``directory`` (``*.json`` but not ``*.schema.json``), by service.

    A missing directory is a configuration error: without it every rpc route
    would answer 404 with nothing said at startup.
    """
    if not os.path.isdir(directory):
        raise ConfigError(f"contracts_dir: {directory!r} is not a directory")
    out: dict[str, Contract] = {}
    for name in contract_files.available(directory):
        try:
            loaded = contract_files.load(name, directory)
        except ProtocolError as exc:
            raise ConfigError(f"contracts.{name}: {exc.message}") from None
        out[loaded.service] = loaded
    return out


def json_view(schema: Any, root: Mapping[str, Any] | None = None, depth: int = 0) -> Any:
    """``schema`` as it applies to the JSON-only view: local $refs inlined, bytes as $bytes."""
    root = schema if root is None else root
    if depth > 32:
        return {}
    if isinstance(schema, list):
        return [json_view(s, root, depth + 1) for s in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node: Any = root
        for part in ref[2:].split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        resolved = json_view(node, root, depth + 1)
        return {**resolved, **json_view(rest, root, depth + 1)} if rest else resolved
    if schema.get("type") == "string" and schema.get("contentEncoding") == "base64":
        return dict(BYTES_SCHEMA)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("definitions", "$defs", "$schema", "$id"):
            continue
        if key in ("properties", "patternProperties", "dependentSchemas"):
            out[key] = {k: json_view(v, root, depth + 1) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not", "if", "then", "else",
                     "contains", "propertyNames", "unevaluatedProperties", "allOf", "anyOf",
                     "oneOf", "prefixItems"):
            out[key] = json_view(value, root, depth + 1)
        else:
            out[key] = value
    return out


def rpc_paths(route: Route,
              contracts: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[str, str]]:
    """Every URL path -> (service, method) that one rpc route serves."""
    out: dict[str, tuple[str, str]] = {}
    base = route.script_name
    for service, contract in sorted(contracts.items()):
        if route.service and route.service != service:
            continue
        for method in sorted(contract["methods"]):
            path = f"{base}/{method}" if route.service else f"{base}/{service}/{method}"
            out[path] = (service, method)
    return out


def rpc_operations(route: Route, contracts: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The OpenAPI ``paths`` of one rpc route: a POST operation per contracted method."""
    problem = {"content": {"application/problem+json": {"schema": PROBLEM_SCHEMA}}}
    paths: dict[str, Any] = {}
    for path, (service, method) in rpc_paths(route, contracts).items():
        contract = contracts[service]
        spec = contract["methods"][method]
        responses: dict[str, Any] = {
            "200": {"description": "the method's result",
                    "content": {"application/json": {
                        "schema": json_view(spec.get("result", {}), contract)}}}}
        for status in _ERROR_STATUSES:
            responses[status] = {"description": "a problem (RFC 9457)", **problem}
        paths[path] = {"post": {
            "operationId": f"{service}.{method}",
            "summary": spec.get("description", f"{service}.{method}"),
            "tags": [service],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": json_view(spec.get("params", {}), contract)}}},
            "responses": responses,
            "x-idempotent": bool(spec.get("idempotent", False)),
            "x-shadow-safe": bool(spec.get("shadow_safe", False)),
        }}
    return paths
