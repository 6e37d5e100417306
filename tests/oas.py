"""Check HTTP requests and responses against a vendor's OpenAPI 3.0 document in ../shared.

The documents are read from ../shared/vendor-specs and never copied into the project. Known
faults of a document are patched here, each one named, so that everything else stays strict.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import httpx

SPECS = Path(__file__).resolve().parents[2] / "shared" / "vendor-specs"


class Spec:
    def __init__(self, document: dict[str, Any], silent: dict[tuple[str, str], set[str]]) -> None:
        self.doc = document
        self.silent = silent  # (METHOD, template) -> query parameters the document omits but the vendor documents
        self._templates = [(template, self._regex(template)) for template in document["paths"]]

    @staticmethod
    def _regex(template: str) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)) + "$")

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
        path = path.removesuffix(".json")
        for template, pattern in sorted(self._templates, key=lambda t: t[0].count("{")):
            if pattern.match(path) and method.lower() in self.doc["paths"][template]:
                item = self.doc["paths"][template]
                return template, item, item[method.lower()]
        return None

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            parts = node["$ref"].lstrip("#/").split("/")
            node = self.doc
            for part in parts:
                node = node[part]
        return node

    def check_request(self, request: httpx.Request) -> list[str]:
        found = self.operation(request.method, request.url.path)
        if found is None:
            return [f"{request.method} {request.url.path}: no such operation in the document"]
        template, item, op = found
        declared = {self._resolve(p)["name"] for p in item.get("parameters", []) + op.get("parameters", [])}
        allowed = declared | self.silent.get((request.method, template), set())
        problems = [
            f"{request.method} {template}: query parameter {name!r} is not in the document"
            for name in dict.fromkeys(k for k, _ in request.url.params.multi_items())
            if name not in allowed
        ]
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if body is not None and request.content:
            problems += [f"{request.method} {template} request body: {p}" for p in self.validate(body, json.loads(request.content))]
        return problems

    def check_response(self, request: httpx.Request, response: httpx.Response) -> list[str]:
        found = self.operation(request.method, request.url.path)
        if found is None:
            return [f"{request.method} {request.url.path}: no such operation in the document"]
        template, _, op = found
        responses = op.get("responses", {})
        spec = responses.get(str(response.status_code)) or responses.get("default")
        if spec is None:
            if response.status_code >= 400:
                return []  # the document models almost no error bodies (BEHAVIOR.md)
            return [f"{request.method} {template}: status {response.status_code} is not in the document"]
        schema = self._resolve(spec).get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            return []
        if not response.content:
            # 204 No Content (Jira's edit): the document gives it a schema, the vendor no body at all.
            return [] if response.status_code == 204 else [f"{request.method} {template} -> {response.status_code}: an empty body"]
        return [f"{request.method} {template} -> {response.status_code}: {p}" for p in self.validate(schema, response.json())]

    def validate(self, schema: dict[str, Any], instance: Any) -> list[str]:
        from openapi_schema_validator import OAS30Validator

        validator = OAS30Validator({**schema, "components": self.doc["components"]})
        return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:200]}" for e in validator.iter_errors(instance)]


@cache
def _load(name: str) -> dict[str, Any] | None:
    path = SPECS / name
    if not path.is_file():
        return None
    if name.endswith(".json"):
        return json.loads(path.read_text())
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(loader):  # type: ignore[misc, valid-type]
        pass

    # The Zendesk document has unquoted "=" scalars, YAML 1.1's value tag: read them as strings.
    Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))
    return yaml.load(path.read_text(), Loader=Loader)


def load_spec(name: str, patch: Callable[[dict[str, Any]], None], silent: dict[tuple[str, str], set[str]]) -> Spec | None:
    document = _load(name)
    if document is None:
        return None
    patched = copy.deepcopy(document)
    patch(patched)
    return Spec(patched, silent)


class Recording(httpx.BaseTransport):
    """A transport that keeps every exchange, its body read, for checking against a document."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        response.read()
        self.exchanges.append((request, response))
        return response
