"""Crayon's published OpenAPI document (2021) as a checker of real HTTP traffic.

``Contract`` finds the documented operation of a request (paths matched ignoring
case, a trailing slash optional, the document's server path ``/api/v1`` in
front) and validates bodies against the document's component schemas with
OpenAPI 3.0's rules (``nullable``, ``int32``, ``date-time``, ...). Property names
are matched ignoring case, as the API reads them and as its answers mix
PascalCase and camelCase; two names differing only in case are a problem. A list
the document declares as a bare array may come as ``{"Items": [...],
"TotalHits": n}`` (Crayon's SDK's shape): its items are checked against the
array's schema.

``Traffic`` records every request ``requests`` sends in this process and the
answer to it (the reconciler's client, plain ``requests`` calls and third-party
SDKs alike), so a test can check all of it against the contract.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from openapi_schema_validator import OAS30Validator, oas30_format_checker

DOCUMENT_PATH = Path(__file__).resolve().parent.parent / "data" / "crayon-openapi-2021.json"
SERVER_PATH = "/api/v1"


@dataclass(frozen=True)
class Exchange:
    """One request sent through ``requests`` and the answer it got."""

    method: str
    url: str
    body: Any  # the JSON sent, None without one
    status: int
    answer: bytes
    content_type: str

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(urlsplit(self.url).query)


class Contract:
    """The document's operations, and the problems of a request or an answer."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self._components = document["components"]
        self._operations: list[tuple[re.Pattern[str], str, Mapping[str, Any]]] = []
        # Literal paths first: /Assets/orders is not /Assets/{id}.
        for template, item in sorted(document["paths"].items(), key=lambda t: t[0].count("{")):
            pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
            compiled = re.compile(f"{re.escape(SERVER_PATH)}{pattern}/?", re.IGNORECASE)
            for method, operation in item.items():
                self._operations.append((compiled, method.upper(), operation))

    @classmethod
    def load(cls) -> Contract:
        return cls(json.loads(DOCUMENT_PATH.read_text(encoding="utf-8")))

    def operation(self, method: str, path: str) -> Mapping[str, Any] | None:
        """The documented operation of ``method path``; None when the document has none."""
        for pattern, documented, operation in self._operations:
            if documented == method.upper() and pattern.fullmatch(path):
                return operation
        return None

    # ----------------------------------------------------------------- checks

    def check(self, exchanges: Iterable[Exchange]) -> tuple[list[str], set[tuple[str, str]]]:
        """The problems of every documented exchange, and the operations they were."""
        problems: list[str] = []
        seen: set[tuple[str, str]] = set()
        for exchange in exchanges:
            operation = self.operation(exchange.method, exchange.path)
            if operation is None:
                continue
            seen.add((exchange.method, operation["operationId"]))
            problems += self.request_problems(
                exchange.method, exchange.path, exchange.body, exchange.query
            )
            problems += self.answer_problems(
                exchange.method,
                exchange.path,
                exchange.status,
                exchange.answer,
                exchange.content_type,
            )
        return problems, seen

    def request_problems(self, method: str, path: str, body: Any, query: Any = ()) -> list[str]:
        """What is wrong with a request body and query parameter names."""
        operation = self.operation(method, path)
        if operation is None:
            return [f"{method} {path}: not in the document"]
        problems = []
        documented = {p["name"].casefold() for p in operation.get("parameters", ())}
        problems += [
            f"{method} {path}: query parameter {name!r} is not documented"
            for name, _ in query
            if name.casefold() not in documented
        ]
        schema = _json_schema(operation.get("requestBody", {}))
        if schema is not None and body is not None:
            problems += [f"{method} {path}: {p}" for p in self.problems(schema, body)]
        return problems

    def answer_problems(
        self, method: str, path: str, status: int, answer: bytes, content_type: str = ""
    ) -> list[str]:
        """What is wrong with a 2xx answer (error answers are not in the document)."""
        operation = self.operation(method, path)
        if operation is None:
            return [f"{method} {path}: not in the document"]
        if not 200 <= status < 300:
            return []
        response = operation["responses"].get(str(status))
        if response is None:
            return [f"{method} {path}: HTTP {status} is not a documented answer"]
        schema = _json_schema(response)
        if schema is None:
            if answer.strip():
                return [f"{method} {path}: a body where none is documented"]
            return []
        if not content_type.startswith("application/json"):
            return [f"{method} {path}: answered {content_type or 'no content type'}, not JSON"]
        body = json.loads(answer)
        if schema.get("type") == "array" and isinstance(body, dict):
            envelope = {k.casefold(): v for k, v in body.items()}
            if set(envelope) != {"items", "totalhits"} or not isinstance(
                envelope["totalhits"], int
            ):
                return [f"{method} {path}: neither the documented array nor Items/TotalHits"]
            body = envelope["items"]
        return [f"{method} {path}: {p}" for p in self.problems(schema, body)]

    def problems(self, schema: Mapping[str, Any], value: Any) -> list[str]:
        """``value`` against ``schema`` (refs into the components), names ignoring case."""
        duplicates: list[str] = []
        value = self._named(schema, value, "", duplicates)
        validator = OAS30Validator(
            {**schema, "components": self._components}, format_checker=oas30_format_checker
        )
        found = [
            f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
            for error in validator.iter_errors(value)
        ]
        return sorted(duplicates + found)

    def schema(self, name: str) -> Mapping[str, Any]:
        return {"$ref": f"#/components/schemas/{name}"}

    def _resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in schema:
            name = schema["$ref"].removeprefix("#/components/schemas/")
            schema = self._components["schemas"][name]
        return schema

    def _named(
        self, schema: Mapping[str, Any], value: Any, where: str, duplicates: list[str]
    ) -> Any:
        """``value`` with its property names spelled as ``schema`` spells them."""
        schema = self._resolve(schema)
        if isinstance(value, list) and "items" in schema:
            return [
                self._named(schema["items"], v, f"{where}/{i}", duplicates)
                for i, v in enumerate(value)
            ]
        if not isinstance(value, dict):
            return value
        properties: Mapping[str, Any] = schema.get("properties", {})
        spelled = {name.casefold(): name for name in properties}
        extra = schema.get("additionalProperties")
        named: dict[str, Any] = {}
        for key, item in value.items():
            known = spelled.get(str(key).casefold(), str(key))
            if known in named:
                duplicates.append(f"{where or '(root)'}: {key!r} is given twice (ignoring case)")
            sub = properties.get(known, extra if isinstance(extra, dict) else {})
            named[known] = self._named(sub, item, f"{where}/{known}", duplicates)
        return named


def _json_schema(holder: Mapping[str, Any]) -> Mapping[str, Any] | None:
    content = holder.get("content") or {}
    media = content.get("application/json")
    return None if media is None else media["schema"]


class Traffic:
    """Every request ``requests`` sends while installed, with its answer."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # At the adapter, where every request goes out, whichever way the client
        # prepared it (its JSON calls skip Session.send: reconciler.api.transport).
        original = requests.adapters.HTTPAdapter.send

        def send(
            adapter: requests.adapters.HTTPAdapter, request: requests.PreparedRequest, **kw: Any
        ) -> Any:
            response = original(adapter, request, **kw)
            body: Any = None
            content_type = request.headers.get("Content-Type", "")
            if request.body and "json" in content_type:
                raw = request.body
                body = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
            self.exchanges.append(
                Exchange(
                    request.method or "",
                    request.url or "",
                    body,
                    response.status_code,
                    response.content,
                    response.headers.get("Content-Type", ""),
                )
            )
            return response

        monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send)

    def to(self, base_url: str) -> Iterator[Exchange]:
        """The exchanges with the server at ``base_url``, API calls only."""
        prefix = (base_url + SERVER_PATH).casefold()
        for exchange in self.exchanges:
            if exchange.url.casefold().startswith(prefix):
                yield exchange
