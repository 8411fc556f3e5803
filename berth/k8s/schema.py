"""Offline validation against the Kubernetes OpenAPI schemas, as JSON schema.

The schemas come from the `kubernetes-validate` package (installed with berth), which ships the
strict JSON schemas of every Kubernetes minor version it supports; nothing is fetched at run time.
Validators are built once per (version, kind) and every error of a document is reported, not just
the first.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from berth.errors import UsageError

SCHEMA_PACKAGE = "kubernetes_validate"
_DIR = "kubernetes-json-schema"


@dataclass(frozen=True)
class SchemaError:
    path: tuple  # where in the document
    message: str


def _root():
    from importlib.resources import files

    return files(SCHEMA_PACKAGE).joinpath(_DIR)


@lru_cache(maxsize=1)
def shipped_versions() -> tuple[str, ...]:
    """The Kubernetes minor versions ("1.30", ...) the installed schema package has strict schemas for."""
    versions = set()
    for entry in _root().iterdir():
        m = re.match(r"^v(\d+)\.(\d+)\.\d+-local-strict$", entry.name)
        if m:
            versions.add((int(m.group(1)), int(m.group(2))))
    return tuple(f"{a}.{b}" for a, b in sorted(versions))


def newest_version() -> str:
    return shipped_versions()[-1]


def resolve_versions(requested: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """"newest" → the newest shipped version; an unshipped version is a usage error naming what is shipped."""
    shipped = shipped_versions()
    out = []
    for v in requested:
        v = v.removeprefix("v")
        v = newest_version() if v == "newest" else ".".join(v.split(".")[:2])
        if v not in shipped:
            raise UsageError(f"no schemas for Kubernetes {v}: the installed {SCHEMA_PACKAGE} ships "
                             f"{shipped[0]} to {shipped[-1]}",
                             fix=f"pick a version from {shipped[0]} to {shipped[-1]}, or 'newest'")
        if v not in out:
            out.append(v)
    return tuple(out)


def _schema_dir(version: str):
    for entry in _root().iterdir():
        if entry.name.startswith(f"v{version}.") and entry.name.endswith("-local-strict"):
            return entry
    raise UsageError(f"no schemas for Kubernetes {version}")


@lru_cache(maxsize=8)
def _definitions(version: str):
    return json.loads(_schema_dir(version).joinpath("_definitions.json").read_text(encoding="utf-8"))


def _schema_file(kind: str, api_version: str) -> str:
    # apps/v1 → apps-v1; networking.k8s.io/v1 → networking-v1; v1 → v1 (as the package names its files)
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    return f"{kind.lower()}-{api}.json"


@lru_cache(maxsize=256)
def _validator(version: str, kind: str, api_version: str):
    import jsonschema
    from referencing import Registry, Resource

    entry = _schema_dir(version).joinpath(_schema_file(kind, api_version))
    if not entry.is_file():
        return None
    schema = json.loads(entry.read_text(encoding="utf-8"))
    registry = Registry().with_resources([
        (schema.get("$id", ""), Resource.from_contents(schema)),
        ("https://kubernetes.io/api/_definitions.json", Resource.from_contents(_definitions(version))),
    ])
    return jsonschema.Draft202012Validator(schema, registry=registry)


def has_schema(version: str, kind: str, api_version: str) -> bool:
    return _validator(version, kind, api_version) is not None


def validate(doc: Any, version: str, limit: int = 20) -> list[SchemaError] | None:
    """Schema errors of one manifest for one version; None when the package has no schema for its kind."""
    if not isinstance(doc, dict) or not isinstance(doc.get("kind"), str) or not isinstance(doc.get("apiVersion"), str):
        return [SchemaError((), "a manifest needs string apiVersion and kind")]
    validator = _validator(version, doc["kind"], doc["apiVersion"])
    if validator is None:
        return None
    errors = []
    for err in sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path]):
        errors.append(SchemaError(tuple(err.absolute_path), _message(err)))
        if len(errors) >= limit:
            break
    return errors


def _message(err) -> str:
    if err.validator == "oneOf" and err.context:
        # IntOrString / Quantity: say what is accepted rather than quoting every branch
        types = set()
        for c in err.context:
            t = c.schema.get("type")
            types.update(x for x in (t if isinstance(t, list) else [t]) if x and x != "null")
        return f"{err.instance!r} is not valid here (expected {' or '.join(sorted(types)) or 'another value'})"
    text = err.message
    return text if len(text) <= 300 else text[:297] + "..."
