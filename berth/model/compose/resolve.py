"""The resolved compose model, as `docker compose config` prints it — computed without docker.

`berth config` shows what compose on the server will run: the compose files merged, every `${VAR}`
interpolated with the shipped env file (berth.model.compose.interpolation, exact to compose-go), `env_file:`
contents merged into `environment`, and compose's defaults and normal forms applied:

* `build: DIR` → `{context: /abs/DIR, dockerfile: Dockerfile}`; relative paths (build contexts, bind
  mounts, env files, secret/config files) are resolved against the project directory;
* `command`/`entrypoint` strings are split like a shell; both are `null` when not set;
* `environment`/`labels`/`sysctls`/`build.args` lists become mappings; a bare `KEY` takes its value
  from the env file (or stays `null`); `env_file:` contents come first, `environment:` overrides;
* `ports`, `volumes`, `depends_on`, `secrets`, `configs`, `networks` short syntax becomes the long
  syntax (`published` as a string, ranges expanded, `bind.create_host_path` for short bind mounts,
  `condition: service_started` + `required: true`);
* durations print as Go does (`90s` → `1m30s`), byte sizes as a number of bytes (`512M` →
  `"536870912"`), numbers and booleans get their types back after interpolation;
* `extends:` (same file or `file:`), several compose files (later ones override), `profiles:`
  (only `COMPOSE_PROFILES` from the env file activates them) and the top-level `networks`,
  `volumes`, `secrets` and `configs` (only those the services use, named PROJECT_NAME).

Keys berth does not know are passed through interpolated. Output strings escape `$` as `$$`, as
compose does, so the output is itself a valid compose file. tests/unit/test_compose_config.py
compares the `services` part with the real `docker compose config --format json`.
"""

from __future__ import annotations

import copy
import re
import shlex
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from berth.errors import UsageError
from berth.model.compose.file import ComposeFile, load_compose_file, read_compose_text
from berth.model.compose.profiles import active_profiles, profile_enabled
from berth.model.compose.services import parse_port, where


class Target(Protocol):
    """What the model needs of a target (berth.configuration.target.Target): where the project's files are."""

    root: Path
    project: str
    env_file: str
    compose_files: tuple[str, ...]

_BOOL_KEYS = {"init", "privileged", "read_only", "tty", "stdin_open", "oom_kill_disable"}
_POINTER_BOOLS = {"init"}  # compose keeps these when false; the others are dropped when false
_INT_KEYS = {"scale", "pids_limit", "cpu_shares", "cpu_count", "cpu_percent", "cpu_period", "cpu_quota",
             "oom_score_adj", "mem_swappiness", "cpu_rt_runtime", "cpu_rt_period"}
_FLOAT_KEYS = {"cpus"}
_BYTE_KEYS = {"mem_limit", "mem_reservation", "memswap_limit", "shm_size"}
_DURATION_KEYS = {"stop_grace_period"}
_LIST_OR_STRING = {"dns", "dns_search", "dns_opt", "tmpfs", "env_file", "cap_add", "cap_drop", "security_opt",
                   "devices", "group_add", "profiles", "links", "external_links", "volumes_from"}
_DATA_TOP_LEVEL = ("networks", "volumes", "secrets", "configs")


@dataclass
class ResolvedConfig:
    model: dict[str, Any]  # the compose model (values unescaped and unmasked)
    project_env: dict[str, str]  # the interpolation environment (the shipped env file)
    secrets: list[str] = field(default_factory=list)  # values to mask
    secret_keys: set[str] = field(default_factory=set)  # environment/arg keys whose values are masked whole
    # where secrets were interpolated: a field (`("services", "command")`, `("x-foo",)`) → the forms of the
    # secret variables its `${...}` referenced; only there are secrets searched for inside free text
    secret_fields: dict[tuple, set[str]] = field(default_factory=dict)
    # each started service's `x-` keys (compose keeps them out of its model; berth reads `x-berth` there)
    extensions: dict[str, dict[str, Any]] = field(default_factory=dict)


# --------------------------------------------------------------------------- env files


def project_environment(target: Target) -> dict[str, str]:
    """The shipped env file as compose reads it with --env-file (bare KEYs without a value are unset)."""
    from berth.model.envfile import read_env_file

    path = target.root / target.env_file
    if not path.exists():
        raise UsageError(f"{target.env_file} does not exist, so compose's variables cannot be resolved",
                         where=str(path), fix=f"cp {target.env_file}.example {target.env_file} and fill in the values")
    env = read_env_file(path)
    _refuse_env_errors(env, path)
    out: dict[str, str] = {}
    for e in env.entries:
        if e.value is not None:
            out[e.key] = e.value
    return out


def _refuse_env_errors(env, path: Path) -> None:
    errors = getattr(env, "errors", ())
    if errors:
        e = errors[0]
        raise UsageError(f"{path.name}: {e.message}; compose refuses the file", where=f"{path}:{e.line}:{e.col}",
                         fix="fix that line (berth check shows every problem)")
    bad = getattr(env, "bad_lines", ())
    if bad:
        raise UsageError(f"{path.name}: line {bad[0][0]} cannot be parsed; compose refuses the file",
                         where=f"{path}:{bad[0][0]}", fix="write KEY=value; quote values with special characters")


def service_env_file(path: Path, project_env: Mapping[str, str]) -> dict[str, str]:
    """A service's `env_file:` as compose reads it: the project's variables win over the file's own lines."""
    from berth.model.compose.interpolation import InterpolationError, MissingRequiredVariable, interpolate
    from berth.model.envfile import read_env_file

    env = read_env_file(path)
    _refuse_env_errors(env, path)
    out: dict[str, str] = {}
    for e in env.entries:
        template = getattr(e, "template", None)
        if e.value is None:  # bare KEY: from the project's environment, else unset
            if e.key in project_env:
                out[e.key] = project_env[e.key]
            continue
        if template is None:  # single-quoted: literal
            out[e.key] = e.value
            continue
        try:
            out[e.key] = interpolate(template, ChainMap(dict(project_env), out))
        except (InterpolationError, MissingRequiredVariable) as exc:
            raise UsageError(f"{path.name}: the value of {e.key}: {exc}", where=f"{path}:{e.line}") from None
    return out


# --------------------------------------------------------------------------- profiles


def active_services(compose_files: list[ComposeFile], project_env: Mapping[str, str]) -> list[str]:
    """The services `docker compose up` starts: those whose `profiles:` (the last file's that sets it) are enabled.

    Read from the files as written (no interpolation or extends): what the deploy and rollback expect verify to see.
    """
    profiles: dict[str, Any] = {}
    for cf in compose_files:
        for name, spec in cf.services.items():
            spec = spec if isinstance(spec, dict) else {}
            if "profiles" in spec or str(name) not in profiles:
                profiles[str(name)] = spec.get("profiles")
    active = active_profiles(project_env)
    return [name for name, p in profiles.items() if profile_enabled(p, active)]


def built_services(compose_files: list[ComposeFile]) -> set[str]:
    """Services with `build:` in any of the files: their images are this project's own."""
    return {str(name) for cf in compose_files for name, spec in cf.services.items()
            if isinstance(spec, dict) and spec.get("build")}


# --------------------------------------------------------------------------- the model


def resolve_compose(target: Target, project_env: Mapping[str, str] | None = None,
                    references: dict[tuple, str] | None = None) -> ResolvedConfig:
    """Load, interpolate, merge and normalize the compose files of `target`.

    `references` learns every string that interpolated something, by its path in the file as written
    (`("services", "web", "environment", "DB_URL")` → `"postgres://app:${DB_PASSWORD}@db/app"`): k8s render
    judges by it where a secret variable was placed."""
    from berth.secrets.masking import is_secret_setting, secret_values

    env = dict(project_env) if project_env is not None else project_environment(target)
    secret_vars = {k: secret_values({k: v}) for k, v in env.items() if v and is_secret_setting(k, v)}
    secret_fields: dict[tuple, set[str]] = {}
    root = target.root
    files: list[ComposeFile] = []
    for name in target.compose_files:
        path = root / name
        if not path.exists():
            raise UsageError(f"compose file {name} does not exist", where=str(path),
                             fix="create it, or fix COMPOSE_FILES / compose_files")
        files.append(load_compose_file(path))
    model: dict[str, Any] = {}
    services: dict[str, dict] = {}
    raw_services: dict[str, list[tuple[ComposeFile, dict]]] = {}
    ctx = _Ctx(root, env)
    contexts: dict[str, _Ctx] = {}  # a service's paths and variables: its file's project's
    imported: list[tuple[ComposeFile, _Ctx]] = []
    for cf in files:
        data = _interpolate_tree(cf, env, secret_vars, secret_fields, references)
        imported += _includes(cf, data.get("include"), ctx, [cf.path])
        for name, spec in (data.get("services") or {}).items():
            if not isinstance(spec, dict):
                raise UsageError(f"service {name} must be a mapping", where=f"{cf.path}:{cf.line_of('services', name) or 1}")
            raw_services.setdefault(str(name), []).append((cf, spec))
            contexts[str(name)] = ctx
        for key, value in data.items():
            if key in ("services", "include"):
                continue
            if key in _DATA_TOP_LEVEL and isinstance(value, dict):
                merged = model.setdefault(key, {})
                for item, spec in value.items():
                    merged[str(item)] = _merge(merged.get(str(item)) or {}, spec if isinstance(spec, dict) else {})
            else:
                model[key] = value
    # include: each included file is a project of its own (its directory, its .env under the project's
    # variables), loaded after the files are merged; a name both define is an error, as in compose
    for cf, own_ctx in imported:
        data = _interpolate_tree(cf, own_ctx.env, secret_vars, secret_fields)
        for name, spec in (data.get("services") or {}).items():
            if str(name) in raw_services:
                raise UsageError(f"services.{name} conflicts with imported resource: {cf.path.name} defines it too",
                                 where=f"{cf.path}:{where(cf, 'services', name)[0] or 1}",
                                 fix="rename one of them; compose does not merge included services")
            if not isinstance(spec, dict):
                raise UsageError(f"service {name} must be a mapping", where=f"{cf.path}:{cf.line_of('services', name) or 1}")
            raw_services[str(name)] = [(cf, spec)]
            contexts[str(name)] = own_ctx
        for key in _DATA_TOP_LEVEL:
            for item, spec in (data.get(key) or {}).items() if isinstance(data.get(key), dict) else ():
                merged = model.setdefault(key, {})
                if str(item) in merged:
                    raise UsageError(f"{key}.{item} conflicts with imported resource: {cf.path.name} defines it too",
                                     where=f"{cf.path}:{where(cf, key, item)[0] or 1}", fix="rename one of them")
                spec = dict(spec) if isinstance(spec, dict) else {}
                if isinstance(spec.get("file"), str):
                    spec["file"] = own_ctx.path(spec["file"])  # relative to the included file's project
                merged[str(item)] = spec
    # compose follows `extends:` inside each file first (a service extends what its own file says), then
    # merges the files
    for cf in [*files, *(icf for icf, _ in imported)]:
        own = {name: _normalize_service(spec, contexts[name]) for name, defs in raw_services.items()
               for file, spec in defs if file is cf}
        for name, spec in own.items():
            services[name] = _merge_service(services.get(name, {}),
                                            _extends(name, spec, own, raw_services, contexts[name], set()))
    active = active_profiles(env)
    services = {n: s for n, s in services.items() if profile_enabled(s.get("profiles"), active)}
    secret_keys: set[str] = set()
    extensions = {name: {k: v for k, v in spec.items() if str(k).startswith("x-")} for name, spec in services.items()}
    for name, spec in services.items():
        services[name] = _finish_service(spec, contexts[name])
        for key, value in (spec.get("environment") or {}).items():
            if is_secret_setting(key, value if isinstance(value, str) else None):
                secret_keys.add(key)
    out: dict[str, Any] = {"name": target.project, "services": dict(sorted(services.items()))}
    out.update(_top_level(model, services, target.project, ctx))
    for key, value in model.items():
        if key not in out and key not in _DATA_TOP_LEVEL and key != "version":
            out[key] = value
    secrets = set(secret_values(env))
    for spec in services.values():
        secrets.update(secret_values({k: v for k, v in (spec.get("environment") or {}).items() if v is not None}))
    return ResolvedConfig(out, env, sorted(secrets, key=len, reverse=True), secret_keys, secret_fields,
                          {name: ext for name, ext in extensions.items() if ext})


def included_files(root: Path, files: list[ComposeFile], env: Mapping[str, str]) -> list[tuple[ComposeFile, Path, dict]]:
    """The files `include:` brings into the project (nested ones too), each with its own project directory
    and variables, for the check rules to read as compose will. Raises UsageError as resolve_compose does."""
    parent = _Ctx(root, dict(env))
    out: list[tuple[ComposeFile, _Ctx]] = []
    for cf in files:
        out += _includes(cf, _interpolate_tree(cf, env).get("include"), parent, [cf.path])
    return [(cf, ctx.root, ctx.env) for cf, ctx in out]


def _includes(cf: ComposeFile, entries: Any, parent: _Ctx, chain: list[Path]) -> list[tuple[ComposeFile, _Ctx]]:
    """The files an `include:` list (interpolated) brings in, with their own project directory and variables,
    in order, recursively. Paths are relative to the including project's directory; an included project
    reads its `.env` (or the entry's `env_file`), and the including project's variables win over it."""
    out: list[tuple[ComposeFile, _Ctx]] = []
    for i, entry in enumerate(entries or []):
        where = f"{cf.path}:{cf.line_of('include', i) or cf.line_of('include') or 1}"
        if isinstance(entry, str):
            paths, project_dir, env_files = [entry], None, None
        elif isinstance(entry, dict) and entry.get("path"):
            paths = entry["path"] if isinstance(entry["path"], list) else [entry["path"]]
            project_dir, env_files = entry.get("project_directory"), entry.get("env_file")
        else:
            raise UsageError(f"include entry {i + 1} of {cf.path.name} has no path", where=where,
                             fix="write - path/to/compose.yaml, or path: under the entry")
        first = _clean(parent.root / str(paths[0]))
        own_root = _clean(parent.root / str(project_dir)) if project_dir else first.parent
        if env_files is None:
            env_paths = [own_root / ".env"] if (own_root / ".env").is_file() else []
        else:
            env_paths = [_clean(parent.root / str(e)) for e in (env_files if isinstance(env_files, list) else [env_files])]
        own_env: dict[str, str] = {}
        for env_path in env_paths:
            if not env_path.is_file():
                raise UsageError(f"include: env_file {env_path.name} does not exist", where=where,
                                 fix="create it, or fix env_file of the include entry")
            own_env.update(service_env_file(env_path, own_env))
        ctx = _Ctx(own_root, {**own_env, **parent.env})
        for rel in paths:
            path = _clean(parent.root / str(rel))
            if path in chain:
                raise UsageError(f"include: {rel} includes itself ({' → '.join(p.name for p in [*chain, path])})",
                                 where=where, fix="remove the include that closes the cycle")
            if not path.is_file():
                raise UsageError(f"include: {rel} does not exist", where=where,
                                 fix="create the file, or fix the path (relative to the project directory)")
            included = load_compose_file(path)
            out.append((included, ctx))
            from_included = _interpolate_tree(included, ctx.env)
            out += _includes(included, from_included.get("include"), ctx, [*chain, path])
    return out


def _key_line(cf: ComposeFile, key: str) -> int:
    for number, line in enumerate(read_compose_text(cf.path).splitlines(), 1):
        if line.startswith(f"{key}:"):
            return number
    return 1


@dataclass
class _Ctx:
    root: Path
    env: dict[str, str]

    def path(self, value: str) -> str:
        if value.startswith("/"):
            return value  # compose keeps an absolute path as written (`/etc/pihole/`); it joins and cleans the rest
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else _clean(self.root / p))


def _clean(path: Path) -> Path:
    """Lexically normalized absolute path (compose does not resolve symlinks)."""
    import os

    return Path(os.path.normpath(path))


_REFERENCE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


def field_of(path: tuple) -> tuple:
    """The field a model path is in, as berth config masks it: `("services", "command")`, `("x-foo",)`."""
    if len(path) >= 3 and path[0] == "services":
        return ("services", str(path[2]))
    return tuple(str(p) for p in path[:1])


def _interpolate_tree(cf: ComposeFile, env: Mapping[str, str], secret_vars: Mapping[str, list[str]] | None = None,
                      secret_fields: dict[tuple, set[str]] | None = None,
                      references: dict[tuple, str] | None = None) -> dict:
    """The compose file with `${...}` interpolated; `secret_fields` learns which fields referenced which of
    `secret_vars` (name → the forms to mask of its value)."""
    from berth.model.compose.interpolation import InterpolationError, MissingRequiredVariable, interpolate

    def where(path: tuple) -> str:
        for s in cf.scalars:
            if s.path == path:
                return f"{cf.path}:{s.line}:{s.col}"
        return str(cf.path)

    def walk(value: Any, path: tuple) -> Any:
        if isinstance(value, str):
            if "$" not in value:
                return value
            if references is not None:
                references[path] = value
            if secret_vars and secret_fields is not None:
                for var in _REFERENCE.findall(value):
                    if var in secret_vars:
                        secret_fields.setdefault(field_of(path), set()).update(secret_vars[var])
            try:
                return interpolate(value, env)
            except InterpolationError as exc:
                raise UsageError(f"invalid interpolation in {'.'.join(map(str, path))}: {exc.reason}",
                                 where=where(path), fix="write $$ for a literal $") from None
            except MissingRequiredVariable as exc:
                raise UsageError(f"{'.'.join(map(str, path))}: {exc}", where=where(path),
                                 fix="set the variable in the env file") from None
        if isinstance(value, dict):
            return {k: walk(v, (*path, str(k))) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        return value

    return walk(copy.deepcopy(cf.data), ())


# --------------------------------------------------------------------------- scalar conversions


def _bool(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "y"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "no", "off", "n", ""):
        return False
    return value


def _int(value: Any) -> Any:
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    return value


def _float(value: Any) -> Any:
    if isinstance(value, str):
        try:
            f = float(value)
        except ValueError:
            return value
        return int(f) if f.is_integer() else f
    return value


_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4, "p": 1024 ** 5}


def byte_size(value: Any) -> Any:
    """go-units RAMInBytes: "512M", "1.5g", "64mb" → "536870912" (compose prints a string)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        return value
    m = re.fullmatch(r"(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?", value.strip())
    if not m:
        return value
    return str(int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()]))


_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                   "m": 60_000_000_000, "h": 3_600_000_000_000}


def duration_ns(text: str) -> int | None:
    """Go's time.ParseDuration ("1m30s", "500ms", "0") in nanoseconds; None when it is not a duration."""
    text = text.strip()
    if text == "0":
        return 0
    m = re.fullmatch(r"([-+]?)((?:\d*\.?\d+(?:ns|us|µs|μs|ms|s|m|h))+)", text)
    if not m:
        return None
    total = 0
    for num, unit in re.findall(r"(\d*\.?\d+)(ns|us|µs|μs|ms|s|m|h)", m.group(2)):
        whole, _, frac = num.partition(".")
        scale = _DURATION_UNITS[unit]
        total += int(whole or 0) * scale + (int(frac) * scale // 10 ** len(frac) if frac else 0)
    return -total if m.group(1) == "-" else total


def go_duration(value: Any) -> Any:
    """Go's time.ParseDuration + Duration.String: "90s" → "1m30s", "1500ms" → "1.5s"."""
    if not isinstance(value, str):
        return value
    if value.strip() == "":
        return value
    ns = duration_ns(value)
    return value if ns is None else format_duration(ns)


def format_duration(ns: int) -> str:
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)

    def frac(v: int, unit: int) -> str:
        whole, rest = divmod(v, unit)
        if not rest:
            return str(whole)
        digits = str(rest).rjust(len(str(unit)) - 1, "0").rstrip("0")
        return f"{whole}.{digits}"

    if u < 1_000_000_000:
        if u < 1_000:
            return f"{sign}{u}ns"
        if u < 1_000_000:
            return f"{sign}{frac(u, 1_000)}µs"
        return f"{sign}{frac(u, 1_000_000)}ms"
    hours, rest = divmod(u, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    out = sign
    if hours:
        out += f"{hours}h"
    if hours or minutes:
        out += f"{minutes}m"
    return out + frac(rest, 1_000_000_000) + "s"


def _str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _mapping(value: Any, bare: Any = None) -> dict[str, Any]:
    """environment/labels/sysctls/args: a mapping or a list of KEY=VALUE; values as strings."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            out[str(k)] = bare if v is None else _str(v)
    elif isinstance(value, list):
        for item in value:
            key, eq, val = str(item).partition("=")
            out[key] = val if eq else bare
    return out


# --------------------------------------------------------------------------- services


def _normalize_service(spec: dict, ctx: _Ctx) -> dict:
    s: dict[str, Any] = {}
    for key, value in spec.items():
        if key == "build":
            s[key] = _build(value, ctx)
        elif key in ("command", "entrypoint"):
            s[key] = _argv(value)
        elif key == "environment":
            s[key] = _mapping(value)
        elif key in ("labels", "annotations"):
            s[key] = _mapping(value, bare="")
        elif key == "sysctls":
            s[key] = _mapping(value, bare="")
        elif key == "ports":
            s[key] = [p for item in (value or []) for p in _ports(item)]
        elif key == "expose":
            s[key] = [_str(v) for v in (value or [])]
        elif key == "volumes":
            s[key] = [_volume(v, ctx) for v in (value or [])]
        elif key == "depends_on":
            s[key] = _depends_on(value)
        elif key == "networks":
            s[key] = {str(n): None for n in value} if isinstance(value, list) else {
                str(n): v for n, v in (value or {}).items()}
        elif key == "healthcheck":
            s[key] = _healthcheck(value)
        elif key == "deploy":
            s[key] = _deploy(value)
        elif key in ("secrets", "configs"):
            s[key] = [_grant(key, v) for v in (value or [])]
        elif key == "extra_hosts":
            s[key] = _extra_hosts(value)
        elif key in _LIST_OR_STRING and isinstance(value, str):
            s[key] = [value]
        elif key in _BOOL_KEYS:
            s[key] = _bool(value)
        elif key in _INT_KEYS:
            s[key] = _int(value)
        elif key in _FLOAT_KEYS:
            s[key] = _float(value)
        elif key in _BYTE_KEYS:
            s[key] = byte_size(value)
        elif key in _DURATION_KEYS:
            s[key] = go_duration(value)
        elif key == "extends":
            s[key] = {"service": value} if isinstance(value, str) else value
        else:
            s[key] = value
    if isinstance(s.get("env_file"), list):
        entries = [dict(e) if isinstance(e, dict) else {"path": e} for e in s["env_file"]]
        for e in entries:
            e["shown"] = str(e.get("path", ""))
            e["path"] = ctx.path(str(e.get("path", "")))  # relative to the file that names it
        s["env_file"] = entries
    return s


def _argv(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError:
            return value.split()
    if isinstance(value, list):
        return [_str(v) for v in value]
    return value


def _build(value: Any, ctx: _Ctx) -> Any:
    if isinstance(value, str):
        value = {"context": value}
    if not isinstance(value, dict):
        return value
    b = dict(value)
    context = str(b.get("context", "."))
    b["context"] = context if re.match(r"^(?:[a-z][a-z0-9+.-]*://|git@)", context, re.I) else ctx.path(context)
    if "dockerfile" not in b and "dockerfile_inline" not in b:
        b["dockerfile"] = "Dockerfile"
    if "args" in b:
        args = {}
        for k, v in _mapping(b["args"]).items():
            if v is None:
                if k in ctx.env:
                    args[k] = ctx.env[k]
            else:
                args[k] = v
        b["args"] = args
    if "labels" in b:
        b["labels"] = _mapping(b["labels"], bare="")
    return b


def _ports(item: Any) -> list[dict]:
    if isinstance(item, dict):
        p = dict(item)
        p.setdefault("mode", "ingress")
        p["target"] = _int(p.get("target"))
        if p.get("published") is not None:
            p["published"] = _str(p["published"])
        p.setdefault("protocol", "tcp")
        return [p]
    port = parse_port(_str(item) or "")  # the one reading of the short syntax
    if port is None:
        return [{"mode": "ingress", "target": _str(item), "protocol": "tcp"}]  # compose refuses it; keep it visible
    pubs = _range(port.published) if port.published else None
    out = []
    for i, target in enumerate(port.targets):
        p: dict[str, Any] = {"mode": "ingress"}
        if port.host_ip:
            p["host_ip"] = port.host_ip
        p["target"] = target
        if port.published is not None:
            p["published"] = str(pubs[i]) if pubs and len(pubs) == len(port.targets) else port.published
        p["protocol"] = port.protocol
        out.append(p)
    return out


def _range(text: str) -> list[int]:
    m = re.fullmatch(r"(\d+)(?:-(\d+))?", text.strip())
    if not m:
        return [text]  # type: ignore[list-item]  # compose would refuse it; keep it visible
    lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
    return list(range(lo, hi + 1))


def _target(path: Any) -> Any:
    """A mount target as compose keeps it: cleaned (`/var/www/html/` → `/var/www/html`)."""
    import posixpath

    return posixpath.normpath(path) if isinstance(path, str) and path.startswith("/") else path


def _volume(item: Any, ctx: _Ctx) -> Any:
    if isinstance(item, dict):
        v = dict(item)
        if "target" in v:
            v["target"] = _target(v["target"])
        if v.get("type") == "bind" and isinstance(v.get("source"), str):
            v["source"] = ctx.path(v["source"])
        if "read_only" in v:
            v["read_only"] = _bool(v["read_only"])
            if v["read_only"] is False:
                del v["read_only"]
        if isinstance(v.get("tmpfs"), dict) and "size" in v["tmpfs"]:
            v["tmpfs"] = {**v["tmpfs"], "size": byte_size(v["tmpfs"]["size"])}
        return v
    if not isinstance(item, str):
        return item
    parts = item.split(":")
    if len(parts) == 1:
        return {"type": "volume", "target": _target(parts[0]), "volume": {}}
    source, target = parts[0], _target(parts[1])
    modes = parts[2].split(",") if len(parts) > 2 else []
    bind = source.startswith((".", "/", "~"))
    v: dict[str, Any] = {"type": "bind" if bind else "volume", "source": ctx.path(source) if bind else source,
                         "target": target}
    if "ro" in modes:
        v["read_only"] = True
    if bind:
        opts: dict[str, Any] = {}
        for m in modes:
            if m in ("z", "Z"):
                opts["selinux"] = m
            elif m in ("shared", "rshared", "slave", "rslave", "private", "rprivate"):
                opts["propagation"] = m
        opts["create_host_path"] = True
        v["bind"] = opts
    else:
        v["volume"] = {"nocopy": True} if "nocopy" in modes else {}
    return v


def _depends_on(value: Any) -> dict:
    out: dict[str, dict] = {}
    if isinstance(value, list):
        for name in value:
            out[str(name)] = {"condition": "service_started", "required": True}
    elif isinstance(value, dict):
        for name, opts in value.items():
            opts = dict(opts or {})
            d: dict[str, Any] = {"condition": opts.pop("condition", "service_started")}
            if "restart" in opts:
                d["restart"] = _bool(opts.pop("restart"))
            d["required"] = _bool(opts.pop("required", True))
            d.update(opts)
            out[str(name)] = d
    return out


def _healthcheck(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    h = dict(value)
    if isinstance(h.get("test"), str):
        h["test"] = ["CMD-SHELL", h["test"]]
    for k in ("interval", "timeout", "start_period", "start_interval"):
        if k in h:
            h[k] = go_duration(h[k])
    if "retries" in h:
        h["retries"] = _int(h["retries"])
    if "disable" in h:
        h["disable"] = _bool(h["disable"])
        if h["disable"] is False:
            del h["disable"]
    return h


def _deploy(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    d = copy.deepcopy(value)
    if "replicas" in d:
        d["replicas"] = _int(d["replicas"])
    res = d.get("resources")
    if isinstance(res, dict):
        for part in ("limits", "reservations"):
            r = res.get(part)
            if isinstance(r, dict):
                if "cpus" in r:
                    r["cpus"] = _float(r["cpus"])
                if "memory" in r:
                    r["memory"] = byte_size(r["memory"])
                if "pids" in r:
                    r["pids"] = _int(r["pids"])
    rp = d.get("restart_policy")
    if isinstance(rp, dict):
        for k in ("delay", "window"):
            if k in rp:
                rp[k] = go_duration(rp[k])
        if "max_attempts" in rp:
            rp["max_attempts"] = _int(rp["max_attempts"])
    for part in ("update_config", "rollback_config"):
        c = d.get(part)
        if isinstance(c, dict):
            for k in ("delay", "monitor"):
                if k in c:
                    c[k] = go_duration(c[k])
            if "parallelism" in c:
                c["parallelism"] = _int(c["parallelism"])
            if "max_failure_ratio" in c:
                c["max_failure_ratio"] = _float(c["max_failure_ratio"])
    d.setdefault("resources", {})
    d.setdefault("placement", {})
    return d


def _grant(kind: str, value: Any) -> Any:
    if isinstance(value, str):
        return {"source": value, "target": f"/run/secrets/{value}"} if kind == "secrets" else {"source": value}
    return value


def _extra_hosts(value: Any) -> Any:
    if isinstance(value, dict):
        out = []
        for host, ips in value.items():
            for ip in (ips if isinstance(ips, list) else [ips]):
                out.append(f"{host}={ip}")
        return out
    if isinstance(value, list):
        out = []
        for item in value:
            text = str(item)
            if "=" not in text and ":" in text:
                host, _, ip = text.partition(":")
                text = f"{host}={ip}"
            out.append(text)
        return out
    return value


# --------------------------------------------------------------------------- merging


def _merge(base: Any, over: Any) -> Any:
    """Mappings merge key by key; anything else is replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base[k], v) if k in base else v
        return out
    return copy.deepcopy(over)


def _merge_service(base: dict, over: dict) -> dict:
    """compose's override rules for one service (normalized on both sides)."""
    out = dict(base)
    for key, value in over.items():
        if key not in base:
            out[key] = value
        elif key in ("ports",):
            out[key] = base[key] + [p for p in value if p not in base[key]]
        elif key in ("expose", "dns", "dns_search", "cap_add", "cap_drop", "security_opt", "external_links"):
            out[key] = list(dict.fromkeys([*base[key], *value])) if all(isinstance(x, str) for x in
                                                                          [*base[key], *value]) else value
        elif key == "env_file":
            out[key] = [*base[key], *value]
        elif key == "volumes":
            by_target = {v.get("target") if isinstance(v, dict) else v: v for v in base[key]}
            for v in value:
                by_target[v.get("target") if isinstance(v, dict) else v] = v
            out[key] = list(by_target.values())
        elif key in ("secrets", "configs"):
            by_source = {g.get("source") if isinstance(g, dict) else g: g for g in base[key]}
            for g in value:
                by_source[g.get("source") if isinstance(g, dict) else g] = g
            out[key] = list(by_source.values())
        elif key in ("command", "entrypoint"):
            out[key] = value
        elif isinstance(base[key], dict) and isinstance(value, dict):
            out[key] = _merge(base[key], value)
        else:
            out[key] = value
    return out


def _extends(name: str, spec: dict, services: dict[str, dict], raw: dict, ctx: _Ctx, seen: set[str]) -> dict:
    ext = spec.get("extends")
    if not isinstance(ext, dict):
        return spec
    base_name = str(ext.get("service", ""))
    if name in seen:
        raise UsageError(f"service {name}: extends forms a cycle ({' → '.join(seen)})")
    if ext.get("file"):
        path = Path(str(ext["file"]))
        path = path if path.is_absolute() else ctx.root / path
        if not path.exists():
            raise UsageError(f"service {name} extends {base_name} from {ext['file']}, which does not exist",
                             where=str(path))
        other = load_compose_file(path)
        data = _interpolate_tree(other, ctx.env)
        base_raw = (data.get("services") or {}).get(base_name)
        if not isinstance(base_raw, dict):
            raise UsageError(f"service {name} extends {base_name}, which {ext['file']} does not define", where=str(path))
        base = _normalize_service(base_raw, _Ctx(path.parent, ctx.env))
    else:
        if base_name not in services:
            raise UsageError(f"service {name} extends {base_name}, which is not defined")
        base = services[base_name]
    base = _extends(base_name, base, services, raw, ctx, seen | {name})
    merged = _merge_service({k: v for k, v in base.items() if k not in ("extends", "depends_on")},
                            {k: v for k, v in spec.items() if k != "extends"})
    return merged


def _finish_service(spec: dict, ctx: _Ctx) -> dict:
    s = dict(spec)
    env: dict[str, Any] = {}
    for entry in s.pop("env_file", None) or []:
        path = Path(str(entry.get("path", "")))
        required = _bool(entry.get("required", True))
        if not path.is_file():
            if required is False:
                continue
            raise UsageError(f"env_file {entry.get('shown') or path} does not exist", where=str(path),
                             fix="create it, or mark it required: false")
        env.update(service_env_file(path, ctx.env))
    env.update(s.get("environment") or {})
    for key, value in list(env.items()):
        if value is None and key in ctx.env:
            env[key] = ctx.env[key]
    if env or "environment" in s:
        s["environment"] = dict(sorted(env.items()))
    s.setdefault("command", None)
    s.setdefault("entrypoint", None)
    if "network_mode" not in s and not s.get("networks"):
        s["networks"] = {"default": None}
    for key in _BOOL_KEYS - _POINTER_BOOLS:
        if s.get(key) is False:
            del s[key]
    s.pop("extends", None)
    # compose keeps a service's x- extensions out of its model (top-level ones stay)
    return dict(sorted((k, v) for k, v in s.items() if not str(k).startswith("x-")))


@dataclass(frozen=True)
class MountedFile:
    """A secret or config that compose reads from a local file and mounts into the services that use it."""

    kind: str  # "secret" or "config"
    name: str
    path: Path  # absolute, lexically normalized
    services: tuple[str, ...]  # the started services that mount it


def mounted_files(model: Mapping[str, Any]) -> list[MountedFile]:
    """The secrets and configs of a resolved model that the started services use and compose reads from files."""
    out = []
    for section, kind in (("secrets", "secret"), ("configs", "config")):
        for name, spec in sorted((model.get(section) or {}).items()):
            if isinstance(spec, dict) and isinstance(spec.get("file"), str) and _bool(spec.get("external")) is not True:
                users = tuple(sorted(s for s, svc in (model.get("services") or {}).items()
                                     if any(isinstance(g, dict) and g.get("source") == name
                                            for g in (svc.get(section) or []))))
                out.append(MountedFile(kind, str(name), Path(spec["file"]), users))
    return out


def _top_level(model: dict, services: dict[str, dict], project: str, ctx: _Ctx) -> dict:
    out: dict[str, Any] = {}
    used_networks = {n for s in services.values() for n in (s.get("networks") or {})}
    declared = model.get("networks") or {}
    networks = {}
    for name in sorted(used_networks | ({"default"} & set(declared))):
        if name not in used_networks:
            continue
        spec = dict(declared.get(name) or {})
        external = _bool(spec.get("external")) is True
        spec.setdefault("name", name if external else f"{project}_{name}")
        if not external:
            spec.setdefault("ipam", {})
        networks[name] = spec
    if networks:
        out["networks"] = networks
    used_volumes = {v.get("source") for s in services.values() for v in (s.get("volumes") or [])
                    if isinstance(v, dict) and v.get("type") == "volume" and v.get("source")}
    volumes = {}
    for name, spec in sorted((model.get("volumes") or {}).items()):
        if name not in used_volumes:
            continue
        spec = dict(spec or {})
        external = _bool(spec.get("external")) is True
        spec.setdefault("name", name if external else f"{project}_{name}")
        volumes[name] = spec
    if volumes:
        out["volumes"] = volumes
    for kind in ("secrets", "configs"):
        used = {g.get("source") for s in services.values() for g in (s.get(kind) or []) if isinstance(g, dict)}
        found = {}
        for name, spec in sorted((model.get(kind) or {}).items()):
            if name not in used:
                continue
            spec = dict(spec or {})
            external = _bool(spec.get("external")) is True
            spec.setdefault("name", name if external else f"{project}_{name}")
            if isinstance(spec.get("file"), str):
                spec["file"] = ctx.path(spec["file"])
            found[name] = spec
        if found:
            out[kind] = found
    return out
