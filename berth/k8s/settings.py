"""The `[kubernetes]` table of berth.toml: validated here, merged for one environment.

    [kubernetes]                      # every environment
    registry = "ghcr.io/acme/shop"    # services that only `build:` are pulled as <registry>/<service>:<tag>
    [kubernetes.services.web]
    host = "shop.example.com"         # → an Ingress
    ready_path = "/ready"             # → the readiness probe
    [kubernetes.environments.production]          # overrides for one environment
    context = "prod-cluster"
    [kubernetes.environments.production.services.web]
    replicas = 3

Unknown keys and wrong types are usage errors that name the key (as for the rest of berth.toml).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth.errors import UsageError

DEFAULT_STORAGE = "1Gi"
DEFAULT_ROLLOUT_TIMEOUT = 300
DEFAULT_KUBE_VERSIONS = ("1.30", "newest")  # "newest" = the newest version the schema package ships

QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
KUBE_VERSION = re.compile(r"^1\.[0-9]{2}$|^newest$")

# key → (kind, description for errors)
_STR, _INT, _BOOL, _LIST, _TABLE = "str", "int", "bool", "list", "table"
TOP_KEYS: dict[str, str] = {
    "namespace": _STR,
    "registry": _STR,
    "tag": _STR,
    "context": _STR,
    "kubeconfig": _STR,
    "rollout_timeout": _INT,
    "kube_versions": _LIST,
    "storage": _STR,
    "storage_class": _STR,
    "ingress_class": _STR,
    "secret_keys": _LIST,
    "plain_keys": _LIST,
    "services": _TABLE,
    "environments": _TABLE,
}
SERVICE_KEYS: dict[str, str] = {
    "image": _STR,
    "host": _STR,
    "path": _STR,
    "tls_secret": _STR,
    "port": _INT,
    "ready_path": _STR,
    "replicas": _INT,
    "autoscale": _TABLE,
    "stateful": _BOOL,
    "storage": _STR,
    "run_as_user": _INT,
    "run_as_group": _INT,
    "fs_group": _INT,
    "read_only_root": _BOOL,
    "metrics_path": _STR,
    "metrics_port": _INT,
    "service_type": _STR,
}
AUTOSCALE_KEYS = {"min": _INT, "max": _INT, "cpu": _INT, "memory": _INT}
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")


@dataclass(frozen=True)
class Autoscale:
    min: int
    max: int
    cpu: int | None  # target average utilization, percent of requests
    memory: int | None


@dataclass(frozen=True)
class ServiceSettings:
    image: str | None = None
    host: str | None = None
    path: str = "/"
    tls_secret: str | None = None
    port: int | None = None
    ready_path: str | None = None
    replicas: int | None = None
    autoscale: Autoscale | None = None
    stateful: bool | None = None
    storage: str | None = None
    run_as_user: int | None = None
    run_as_group: int | None = None
    fs_group: int | None = None
    read_only_root: bool | None = None
    metrics_path: str | None = None
    metrics_port: int | None = None
    service_type: str = "ClusterIP"


@dataclass(frozen=True)
class K8sSettings:
    environment: str
    namespace: str
    registry: str | None = None
    tag: str | None = None
    context: str | None = None
    kubeconfig: str | None = None
    rollout_timeout: int = DEFAULT_ROLLOUT_TIMEOUT
    kube_versions: tuple[str, ...] = DEFAULT_KUBE_VERSIONS
    storage: str = DEFAULT_STORAGE
    storage_class: str | None = None
    ingress_class: str | None = None
    secret_keys: tuple[str, ...] = ()
    plain_keys: tuple[str, ...] = ()
    services: dict[str, ServiceSettings] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)  # key → "berth.toml [kubernetes...]"

    def service(self, name: str) -> ServiceSettings:
        return self.services.get(name, ServiceSettings())


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _check_type(section: str, key: str, kind: str, value: Any, where: str) -> None:
    ok = {
        _STR: isinstance(value, str),
        _INT: isinstance(value, int) and not isinstance(value, bool),
        _BOOL: isinstance(value, bool),
        _LIST: isinstance(value, list) and all(isinstance(v, str) for v in value),
        _TABLE: isinstance(value, dict),
    }[kind]
    if not ok:
        want = {_STR: "a string", _INT: "a whole number", _BOOL: "true or false", _LIST: "a list of strings",
                _TABLE: "a table"}[kind]
        example = {_STR: '"..."', _INT: "3", _BOOL: "true", _LIST: '["..."]', _TABLE: "{ ... }"}[kind]
        raise UsageError(f"berth.toml: '{key}' in [{section}] must be {want}, not {value!r}", where=where,
                         fix=f"write it as {key} = {example}; see docs/KUBERNETES.md")


def _check_keys(section: str, table: dict, allowed: dict[str, str], where: str) -> None:
    for key, value in table.items():
        if key not in allowed:
            raise UsageError(f"berth.toml: unknown key '{key}' in [{section}]{_did_you_mean(key, allowed)}",
                             where=where, fix="see docs/KUBERNETES.md for the keys berth k8s reads")
        _check_type(section, key, allowed[key], value, where)


def _validate_service(section: str, table: dict, where: str) -> None:
    _check_keys(section, table, SERVICE_KEYS, where)
    if "autoscale" in table:
        auto = table["autoscale"]
        _check_keys(f"{section}.autoscale", auto, AUTOSCALE_KEYS, where)
        for key in ("min", "max"):
            if key not in auto:
                raise UsageError(f"berth.toml: [{section}] autoscale needs '{key}'", where=where,
                                 fix="write autoscale = { min = 2, max = 10, cpu = 70 }")
        if not 1 <= auto["min"] <= auto["max"]:
            raise UsageError(f"berth.toml: [{section}] autoscale needs 1 <= min <= max, not min={auto['min']} "
                             f"max={auto['max']}", where=where, fix="raise max or lower min")
        if "cpu" not in auto and "memory" not in auto:
            raise UsageError(f"berth.toml: [{section}] autoscale needs a cpu or memory target (percent)",
                             where=where, fix="add cpu = 70 (percent of the CPU request)")
        for key in ("cpu", "memory"):
            if key in auto and not 1 <= auto[key] <= 1000:
                raise UsageError(f"berth.toml: [{section}] autoscale {key} must be a percentage between 1 and 1000",
                                 where=where)
    for key in ("port", "metrics_port"):
        if key in table and not 1 <= table[key] <= 65535:
            raise UsageError(f"berth.toml: [{section}] {key} must be a port number (1-65535), not {table[key]}",
                             where=where)
    if "replicas" in table and table["replicas"] < 0:
        raise UsageError(f"berth.toml: [{section}] replicas must not be negative", where=where)
    for key in ("run_as_user", "run_as_group", "fs_group"):
        if key in table and table[key] < 0:
            raise UsageError(f"berth.toml: [{section}] {key} must be a uid/gid (0 or more)", where=where)
    if "storage" in table and not QUANTITY.match(table["storage"]):
        raise UsageError(f"berth.toml: [{section}] storage {table['storage']!r} is not a Kubernetes quantity",
                         where=where, fix='write it like "10Gi"')
    for key in ("path", "ready_path", "metrics_path"):
        if key in table and not table[key].startswith("/"):
            raise UsageError(f"berth.toml: [{section}] {key} must start with '/', not {table[key]!r}", where=where)
    if "service_type" in table and table["service_type"] not in SERVICE_TYPES:
        raise UsageError(f"berth.toml: [{section}] service_type must be one of {', '.join(SERVICE_TYPES)}",
                         where=where)


def _validate_top(section: str, table: dict, where: str, allow_environments: bool) -> None:
    allowed = dict(TOP_KEYS)
    if not allow_environments:
        allowed.pop("environments")
    _check_keys(section, table, allowed, where)
    if "namespace" in table and (not DNS_LABEL.match(table["namespace"]) or len(table["namespace"]) > 63):
        raise UsageError(f"berth.toml: [{section}] namespace {table['namespace']!r} is not a valid namespace name",
                         where=where, fix="use lowercase letters, digits and '-' (at most 63)")
    for key in ("storage",):
        if key in table and not QUANTITY.match(table[key]):
            raise UsageError(f"berth.toml: [{section}] {key} {table[key]!r} is not a Kubernetes quantity",
                             where=where, fix='write it like "10Gi"')
    if "rollout_timeout" in table and not 1 <= table["rollout_timeout"] <= 7200:
        raise UsageError(f"berth.toml: [{section}] rollout_timeout must be 1-7200 seconds", where=where)
    for v in table.get("kube_versions", []):
        if not KUBE_VERSION.match(v):
            raise UsageError(f"berth.toml: [{section}] kube_versions entry {v!r} is not like \"1.30\"", where=where)
    for name, svc in table.get("services", {}).items():
        _check_type(f"{section}.services", name, _TABLE, svc, where)
        _validate_service(f"{section}.services.{name}", svc, where)
    for name, env in table.get("environments", {}).items() if allow_environments else ():
        _check_type(f"{section}.environments", name, _TABLE, env, where)
        _validate_top(f"{section}.environments.{name}", env, where, allow_environments=False)


def validate_table(table: dict, where: str) -> None:
    """Raise UsageError for the first unknown key or wrong type in a [kubernetes] table."""
    _validate_top("kubernetes", table, where, allow_environments=True)


def load_settings(root: Path, environment: str, project: str) -> K8sSettings:
    """The [kubernetes] settings of one environment (defaults when berth.toml has none)."""
    from berth.configuration.target import toml_section

    where = str(root / "berth.toml")
    table = toml_section(root, "kubernetes")
    validate_table(table, where)
    env_table = table.get("environments", {}).get(environment, {})
    merged: dict[str, Any] = {k: v for k, v in table.items() if k not in ("services", "environments")}
    origin = {k: "berth.toml [kubernetes]" for k in merged}
    for k, v in env_table.items():
        if k != "services":
            merged[k] = v
            origin[k] = f"berth.toml [kubernetes.environments.{environment}]"
    services: dict[str, dict] = {}
    for source in (table.get("services", {}), env_table.get("services", {})):
        for name, svc in source.items():
            services.setdefault(name, {}).update(svc)
    built = {}
    for name, svc in services.items():
        svc = dict(svc)
        if "autoscale" in svc:
            a = svc["autoscale"]
            svc["autoscale"] = Autoscale(a["min"], a["max"], a.get("cpu"), a.get("memory"))
        built[name] = ServiceSettings(**svc)
    namespace = merged.pop("namespace", None) or _default_namespace(project, environment)
    for key in ("kube_versions", "secret_keys", "plain_keys"):
        if key in merged:
            merged[key] = tuple(merged[key])
    return K8sSettings(environment=environment, namespace=namespace, services=built, origin=origin, **merged)


def _default_namespace(project: str, environment: str) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", f"{project}-{environment}".lower()).strip("-")
    return name[:63].rstrip("-") or "app"
