"""Compose services as the check rules and the deploy see them: every definition of a service across the
compose files (an override can add what the base lacks), values resolved with the shipped env file,
ports and mounts parsed, and where each key sits in its file (for findings that point at it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from berth.model.compose.interpolation import find_references, interpolate
from berth.model.compose.profiles import active_profiles, profile_enabled

# container ports of databases, caches and brokers: publishing one to the world is rarely intended
DATA_PORTS: dict[int, str] = {
    5432: "PostgreSQL", 3306: "MySQL/MariaDB", 33060: "MySQL X protocol", 6379: "Redis", 6380: "Redis",
    27017: "MongoDB", 27018: "MongoDB", 27019: "MongoDB", 11211: "memcached", 9200: "Elasticsearch/OpenSearch",
    9300: "Elasticsearch/OpenSearch", 5984: "CouchDB", 9042: "Cassandra", 7687: "Neo4j", 7474: "Neo4j",
    8086: "InfluxDB", 26257: "CockroachDB", 1433: "SQL Server", 1521: "Oracle", 5672: "RabbitMQ",
    15672: "RabbitMQ management", 8123: "ClickHouse", 2379: "etcd", 2181: "ZooKeeper", 9092: "Kafka",
    4222: "NATS", 28015: "RethinkDB", 8529: "ArangoDB",
}
# image names (last path part, without tag) of data services
DATA_IMAGES = frozenset({
    "postgres", "postgresql", "postgis", "timescaledb", "timescaledb-ha", "pgvector", "mysql", "mariadb",
    "percona", "percona-server", "redis", "redis-stack", "redis-stack-server", "valkey", "keydb", "dragonfly",
    "mongo", "mongodb", "mongodb-community-server", "memcached", "elasticsearch", "opensearch", "couchdb",
    "cassandra", "scylla", "neo4j", "influxdb", "clickhouse-server", "cockroach", "rabbitmq", "etcd",
    "zookeeper", "kafka", "nats", "rethinkdb", "arangodb", "mssql-server",
})
ANY_INTERFACE = {"", "0.0.0.0", "::", "[::]", "*"}
DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")


@dataclass
class Service:
    """One service across every compose file that defines it (later files override earlier ones)."""

    name: str
    defs: list[tuple[Any, dict]] = field(default_factory=list)  # (ComposeFile, its mapping), in file order
    # what `extends:` brings in, the farthest base first: it counts for has/get/merged (restart:, healthcheck:
    # ...) but is not located, so findings about list items (items, defined_in) stay with the service's own keys
    inherited: list[dict] = field(default_factory=list)

    @property
    def cf(self):
        return self.defs[0][0]

    def _layers(self) -> list[dict]:
        return [*self.inherited, *(d for _, d in self.defs)]

    def has(self, key: str) -> bool:
        return any(key in d for d in self._layers())

    def get(self, key: str, default: Any = None) -> Any:
        for d in reversed(self._layers()):
            if key in d:
                return d[key]
        return default

    def merged(self, key: str) -> dict:
        """A mapping-valued key (deploy, healthcheck, build...) merged over the files, as compose does."""
        def merge(a: dict, b: dict) -> dict:
            out = dict(a)
            for k, v in b.items():
                out[k] = merge(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, dict) else v
            return out

        result: dict = {}
        for d in self._layers():
            if isinstance(d.get(key), dict):
                result = merge(result, d[key])
        return result

    def defined_in(self, key: str):
        """The compose file whose value of `key` counts (the last one that sets it)."""
        for cf, d in reversed(self.defs):
            if key in d:
                return cf
        return self.cf

    def items(self, key: str) -> Iterator[tuple[Any, int | str, Any]]:
        """(compose file, index or key, item) of a list- or mapping-valued key, across the files."""
        for cf, d in self.defs:
            value = d.get(key)
            if isinstance(value, list):
                for i, item in enumerate(value):
                    yield cf, i, item
            elif isinstance(value, dict):
                for k, item in value.items():
                    yield cf, str(k), item
            elif isinstance(value, str) and key in ("depends_on", "networks", "volumes", "ports"):
                yield cf, 0, value


def services(ctx) -> list[Service]:
    """The services compose will start: those with `profiles:` only when COMPOSE_PROFILES activates one."""
    found: dict[str, Service] = {}
    for cf in ctx.compose_files:
        for name, definition in cf.services.items():
            if isinstance(definition, dict):
                found.setdefault(str(name), Service(str(name))).defs.append((cf, definition))
    own = {name: svc.defs for name, svc in found.items()}
    memo: dict = {}
    for svc in found.values():
        for cf, definition in svc.defs:
            svc.inherited += _extended(ctx, cf, definition, own, "", frozenset({("", svc.name)}), memo)
    active = active_profiles(env_values(ctx))
    return [svc for svc in found.values() if profile_enabled(svc.get("profiles"), active)]


def _extended(ctx, cf, definition: dict, lookup: dict[str, list[tuple[Any, dict]]], origin: str,
              seen: frozenset, memo: dict) -> list[dict]:
    """The definitions `extends:` brings into a service, the farthest base first, as compose merges them
    (depends_on is not inherited). `lookup` finds a service of the same file(s) by name; `origin` names
    them ("" for the compose files, else the path of a file named by extends.file) and `seen` holds the
    (origin, service) pairs on the way here, so a cycle ends; `memo` keeps each base's layers, so shared
    bases are resolved once. A base that cannot be found is left out: compose.outside-repo, or compose on
    the server, reports that."""
    ext = definition.get("extends")
    if isinstance(ext, str):
        name, file = ext, None
    elif isinstance(ext, dict):
        name, file = ext.get("service"), ext.get("file")
    else:
        return []
    name, file = resolve(ctx, name), resolve(ctx, file)
    if not isinstance(name, str):
        return []
    if isinstance(file, str):
        from berth.errors import UsageError
        from berth.model.compose.file import load_compose_file

        path = cf.path.parent / file
        try:
            other = load_compose_file(path) if path.is_file() else None
        except UsageError:
            other = None
        if other is None:
            return []
        lookup = {str(n): [(other, d)] for n, d in other.services.items() if isinstance(d, dict)}
        origin = str(path.resolve())
    key = (origin, name)
    if key in seen or name not in lookup:
        return []
    if key not in memo:
        out: list[dict] = []
        for base_cf, base in lookup[name]:
            out += _extended(ctx, base_cf, base, lookup, origin, seen | {key}, memo)
            out.append({k: v for k, v in base.items() if k not in ("extends", "depends_on")})
        memo[key] = out
    return memo[key]


def env_values(ctx) -> dict[str, str]:
    return ctx.app_env.values() if ctx.app_env else {}


def resolve(ctx, value: Any) -> Any:
    """A value as compose sees it after interpolation; None when it cannot be known: a bad template, an
    unmet ${VAR:?}, or a variable that is not set and has no default (compose.unset-variable reports those,
    and judging `nginx:` for `nginx:${TAG}` would only add a second, misleading finding)."""
    if not isinstance(value, str) or "$" not in value:
        return value
    env = env_values(ctx)
    try:
        if any(r.name not in env and not r.has_default for r in find_references(value)):
            return None
        return interpolate(value, env)
    except ValueError:
        return None


def truthy(ctx, value: Any) -> bool:
    value = resolve(ctx, value)
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1"))


@lru_cache(maxsize=64)
def _positions(text: str) -> dict[tuple, tuple[int, int]]:
    """path → (line, col) of every mapping key and sequence item in a YAML text."""
    import yaml

    out: dict[tuple, tuple[int, int]] = {}
    try:
        root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return out

    def walk(node, path: tuple, depth: int) -> None:
        if depth > 64:
            return
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                p = (*path, str(key.value))
                out.setdefault(p, (key.start_mark.line + 1, key.start_mark.column + 1))
                walk(value, p, depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                p = (*path, i)
                out.setdefault(p, (item.start_mark.line + 1, item.start_mark.column + 1))
                walk(item, p, depth + 1)

    if root is not None:
        walk(root, (), 0)
    return out


def where(cf, *path: str | int) -> tuple[int | None, int | None]:
    """(line, col) of the key or item at `path` in a compose file, or of its nearest enclosing one."""
    from berth.errors import UsageError
    from berth.model.compose.file import read_compose_text

    try:
        text = read_compose_text(cf.path)
    except UsageError:
        return None, None
    positions = _positions(text)
    path = tuple(path)
    while path:
        if path in positions:
            return positions[path]
        path = path[:-1]
    return 1, None


def at(cf, *path: str | int) -> dict:
    line, col = where(cf, *path)
    return {"file": cf.path, "line": line, "col": col}


def image_name(ref: str) -> tuple[str, str | None, bool]:
    """(repository, tag or None, has digest) of an image reference `[registry[:port]/]path[:tag][@digest]`."""
    ref = ref.strip()
    digest = "@" in ref
    ref = ref.split("@", 1)[0]
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1:], digest
    return ref, None, digest


def is_data_image(ref: Any) -> bool:
    if not isinstance(ref, str) or not ref:
        return False
    repo = image_name(ref)[0].lower()
    return repo.rsplit("/", 1)[-1] in DATA_IMAGES


@dataclass(frozen=True)
class Port:
    host_ip: str | None
    published: str | None
    targets: tuple[int, ...]  # container ports (a range is expanded)
    protocol: str = "tcp"


def parse_port(item: Any) -> Port | None:
    """A `ports:` entry (short string, number or long mapping), already interpolated; None if unreadable."""
    if isinstance(item, bool):
        return None
    if isinstance(item, int):
        return Port(None, None, (item,))
    if isinstance(item, dict):
        target = _port_range(str(item.get("target", "")))
        if target is None:
            return None
        published = item.get("published")
        host_ip = item.get("host_ip")
        return Port(str(host_ip) if host_ip is not None else None,
                    str(published) if published is not None else None, target, str(item.get("protocol") or "tcp"))
    if not isinstance(item, str):
        return None
    text, _, protocol = item.strip().partition("/")
    host_ip = None
    if text.startswith("["):  # [::1]:5432:5432
        end = text.find("]")
        if end < 0:
            return None
        host_ip, text = text[1:end], text[end + 1:].lstrip(":")
    parts = text.split(":")
    if len(parts) > 2:
        host_ip = host_ip if host_ip is not None else ":".join(parts[:-2])
        parts = parts[-2:]
    published = parts[0] if len(parts) == 2 and parts[0] != "" else None
    target = _port_range(parts[-1])
    if target is None:
        return None
    return Port(host_ip, published, target, protocol or "tcp")


def _port_range(text: str) -> tuple[int, ...] | None:
    text = text.strip()
    m = re.fullmatch(r"(\d+)(?:-(\d+))?", text)
    if not m:
        return None
    lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
    if hi < lo:
        return None
    return tuple(range(lo, hi + 1))


def is_public(port: Port) -> bool:
    return port.host_ip is None or port.host_ip.strip() in ANY_INTERFACE


@dataclass(frozen=True)
class Mount:
    kind: str  # "bind", "volume", "tmpfs", ...
    source: str | None
    target: str | None
    read_only: bool


def parse_mount(item: Any) -> Mount | None:
    """A `volumes:` entry (short `SRC:DST[:MODE]` or long mapping), already interpolated."""
    if isinstance(item, dict):
        kind = str(item.get("type") or "volume")
        source = item.get("source")
        return Mount(kind, str(source) if source is not None else None,
                     str(item.get("target")) if item.get("target") is not None else None,
                     item.get("read_only") is True or str(item.get("read_only")).lower() == "true")
    if not isinstance(item, str):
        return None
    parts = item.split(":")
    if len(parts) == 1:
        return Mount("volume", None, parts[0], False)  # anonymous volume
    source, target = parts[0], parts[1]
    mode = parts[2] if len(parts) > 2 else ""
    kind = "bind" if source.startswith(("/", ".", "~")) or source == "" else "volume"
    return Mount(kind, source, target, "ro" in mode.split(","))


def depends_on(svc: Service) -> Iterator[tuple[Any, int | str, str, dict]]:
    """(compose file, path key, dependency name, long-syntax options) for each depends_on entry."""
    for cf, key, item in svc.items("depends_on"):
        if isinstance(key, int):  # list (short syntax)
            if isinstance(item, str):
                yield cf, key, item, {}
        else:
            yield cf, key, key, item if isinstance(item, dict) else {}


def one_shot_services(all_services: list[Service]) -> set[str]:
    """Services others wait on with `condition: service_completed_successfully` (migrations, setup jobs)."""
    out = set()
    for svc in all_services:
        for _, _, dep, opts in depends_on(svc):
            if opts.get("condition") == "service_completed_successfully":
                out.add(dep)
    return out


def compose_healthcheck(svc: Service) -> str:
    """'on' (a test is defined), 'off' (disable: true or test NONE), 'inherit' (only interval, retries...:
    the image's test is used) or 'none' (not mentioned). Override files merge into the base's mapping."""
    hc = svc.merged("healthcheck")
    if not hc:
        return "none"
    if hc.get("disable") is True or str(hc.get("disable")).lower() == "true":
        return "off"
    test = hc.get("test")
    if isinstance(test, list) and test and str(test[0]).upper() == "NONE":
        return "off"
    if test in (None, "", []):
        # an override that only changes the interval keeps the image's test
        return "inherit"
    return "on"


def network_names(svc: Service) -> set[str]:
    if svc.has("network_mode"):
        return set()
    names = {str(key) if not isinstance(key, int) else str(item) for _, key, item in svc.items("networks")}
    return names or {"default"}


def is_data_service(ctx, svc: Service) -> bool:
    if is_data_image(resolve(ctx, svc.get("image"))):
        return True
    targets = set()
    for _, _, item in svc.items("ports"):
        port = parse_port(resolve(ctx, item))
        if port:
            targets.update(port.targets)
    return bool(targets & DATA_PORTS.keys())


def service_at(svc: Service) -> dict:
    """The location of a service's name, for findings about something it lacks."""
    return at(svc.cf, "services", svc.name)
