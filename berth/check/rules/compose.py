"""The compose file: every variable it interpolates is set, and every file it needs reaches the server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from berth.check.findings import Severity, finding, rule
from berth.errors import BerthError
from berth.model.compose.file import ComposeFile
from berth.model.compose.interpolation import InterpolationError, find_references
from berth.model.compose.services import at, depends_on, env_values, parse_mount, resolve, services


def _references(ctx, only_used: bool = False):
    """(compose file, scalar, reference) for every variable reference; invalid templates are skipped here.

    With `only_used`, a reference nested in a default or alternative that will not be used
    (`${IMAGE:-${REGISTRY}/shop}` with IMAGE set) is left out: its value cannot matter.
    """
    for cf in ctx.compose_files:
        defined = ctx.variables_of(cf)  # an included file adds its own .env
        for scalar in cf.scalars:
            if "$" not in scalar.value:
                continue
            try:
                refs = find_references(scalar.value)
            except InterpolationError:
                continue
            for ref in refs:
                if only_used and not _argument_used_by_all_enclosing(ref, refs, defined):
                    continue
                yield cf, scalar, ref


def _argument_used_by_all_enclosing(ref, refs, defined: dict[str, str]) -> bool:
    for outer in refs:
        if outer is ref or not (outer.start < ref.start and ref.end <= outer.end):
            continue
        value = defined.get(outer.name)
        uses_argument = {
            ":-": value is None or value == "",
            "-": value is None,
            ":+": bool(value),
            "+": value is not None,
            ":?": value is None or value == "",
            "?": value is None,
        }.get(outer.operator, True)
        if not uses_argument:
            return False
    return True


def _defined(ctx) -> dict[str, str]:
    return ctx.app_env.values() if ctx.app_env else {}


@rule("compose.no-services", Severity.ERROR, "the compose file defines no services",
      "add a services: mapping with at least one service")
def no_services(ctx):
    for cf in ctx.compose_files:
        if not cf.services and "include" not in cf.data:  # included files may define them
            yield finding(f"{cf.path.name} defines no services", cf.path, 1)


@rule("compose.invalid-template", Severity.ERROR, "a ${...} template compose cannot parse",
      "close the brace and use ${VAR}, ${VAR:-default} or ${VAR:?message}; write $$ for a literal $")
def invalid_template(ctx):
    for cf in ctx.compose_files:
        for scalar in cf.scalars:
            if "$" not in scalar.value:
                continue
            try:
                find_references(scalar.value)
            except InterpolationError as exc:
                line, col = scalar.position_of(getattr(exc, "offset", 0) or 0)
                yield finding(f"invalid interpolation {scalar.value!r}: {exc}", cf.path, line, col)


@rule("compose.unset-variable", Severity.ERROR,
      "compose interpolates a variable that the env file does not set, and it has no default",
      "add the variable to the env file, or give it a default with ${VAR:-value}")
def unset_variable(ctx):
    env_name = ctx.target.env_file
    for cf, scalar, ref in _references(ctx, only_used=True):
        if ref.name in ctx.variables_of(cf) or ref.has_default or ref.required:
            continue
        line, col = scalar.position_of(ref.start, ref.end)
        yield finding(f"${{{ref.name}}} is not set in {env_name}; compose would substitute an empty string",
                      cf.path, line, col, fix=f"add {ref.name}=... to {env_name} (and {env_name}.example)")


@rule("compose.required-variable", Severity.ERROR, "a variable marked required with ${VAR:?message} is not set",
      "set the variable in the env file")
def required_variable(ctx):
    for cf, scalar, ref in _references(ctx):
        if not ref.required:
            continue
        value = ctx.variables_of(cf).get(ref.name)
        if value is None or (ref.operator == ":?" and value == ""):
            line, col = scalar.position_of(ref.start, ref.end)
            msg = f": {ref.argument}" if ref.argument else ""
            yield finding(f"${{{ref.name}}} is required{msg}", cf.path, line, col,
                          fix=f"set {ref.name} in {ctx.target.env_file}")


@rule("compose.default-used", Severity.INFO, "a variable is not set, so compose uses its default",
      "set it in the env file if the default is not what this environment needs")
def default_used(ctx):
    seen = set()
    for cf, scalar, ref in _references(ctx, only_used=True):
        if ref.has_default and ref.name not in ctx.variables_of(cf) and ref.name not in seen:
            seen.add(ref.name)
            line, col = scalar.position_of(ref.start, ref.end)
            yield finding(f"${{{ref.name}}} is not set; the default {ref.argument!r} is used", cf.path, line, col)


# --------------------------------------------------------------------------- files compose reads locally

# build contexts (and include: sources) that are fetched, not read from the checkout (compose-go's list)
_REMOTE_PREFIXES = ("http://", "https://", "git://", "ssh://", "github.com/", "git@", "oci://")


@dataclass(frozen=True)
class NeededFile:
    """A file or directory a compose file makes compose read on the server."""

    cf: ComposeFile
    at: tuple[str | int, ...]  # the YAML path of the entry, for its line and column
    what: str  # "include", "service web: extends.file", ...
    written: str  # the path as written (interpolated)
    base: Path  # what a relative path is relative to
    # "env_file" (compose.env-file-not-shipped), "secret" or "config" (compose.secret-file: berth ships those
    # git does not carry) or "other" (compose.outside-repo)
    kind: str


def needed_files(ctx) -> Iterator[NeededFile]:
    """Every local path the compose files name that compose reads: include, extends.file, env_file, build
    contexts, Dockerfiles and additional contexts, and the files of top-level secrets and configs.
    Optional env files (`required: false`), URLs and values that cannot be interpolated are left out."""
    if not ctx.compose_files:
        return
    # compose resolves paths against the project directory (the first file's, or an included project's);
    # include and extends name files relative to the file that holds them

    def entry(cf, at, what, value, base, kind="other"):
        value = resolve(ctx, value)
        if isinstance(value, str) and value.strip() and not value.startswith(_REMOTE_PREFIXES) and "://" not in value:
            yield NeededFile(cf, at, what, value, base, kind)

    def paths(value, at):
        """(path, YAML path) of a string or a list of strings."""
        if isinstance(value, list):
            for i, item in enumerate(value):
                yield item, (*at, i)
        else:
            yield value, at

    for cf in ctx.compose_files:
        here = cf.path.parent
        project_dir = ctx.project_dir_of(cf)
        include = cf.data.get("include")
        for i, item in (enumerate(include) if isinstance(include, list) else [(None, include)] if include else []):
            at = ("include",) if i is None else ("include", i)
            if isinstance(item, dict):
                for value, where in paths(item.get("path"), (*at, "path")):
                    yield from entry(cf, where, "include", value, here)
                for value, where in paths(item.get("env_file"), (*at, "env_file")):
                    yield from entry(cf, where, "include env_file", value, here)
            else:
                yield from entry(cf, at, "include", item, here)
        for name, service in cf.services.items():
            if not isinstance(service, dict):
                continue
            svc_at = ("services", str(name))
            extends = service.get("extends")
            if isinstance(extends, dict) and extends.get("file") is not None:
                yield from entry(cf, (*svc_at, "extends", "file"), f"service {name}: extends.file", extends["file"],
                                 here)
            env_files = service.get("env_file")
            for i, item in (enumerate(env_files) if isinstance(env_files, list) else [(None, env_files)]):
                at = (*svc_at, "env_file") if i is None else (*svc_at, "env_file", i)
                if isinstance(item, dict):
                    if str(resolve(ctx, item.get("required", True))).lower() in ("false", "no", "off", "0"):
                        continue
                    at, item = (*at, "path"), item.get("path")
                yield from entry(cf, at, f"service {name}: env_file", item, project_dir, "env_file")
            yield from _build_paths(ctx, cf, svc_at, str(name), service.get("build"), project_dir, entry)
        for section, singular in (("secrets", "secret"), ("configs", "config")):
            top = cf.data.get(section)
            for key, spec in (top.items() if isinstance(top, dict) else []):
                if isinstance(spec, dict) and spec.get("file") is not None:
                    yield from entry(cf, (section, str(key), "file"), f"{singular} {key}: file", spec["file"],
                                     project_dir, singular)


def _build_paths(ctx, cf, svc_at, name, build, project_dir, entry):
    if isinstance(build, str):
        yield from entry(cf, (*svc_at, "build"), f"service {name}: build context", build, project_dir)
        return
    if not isinstance(build, dict):
        return
    context = resolve(ctx, build.get("context", "."))
    yield from entry(cf, (*svc_at, "build", "context") if "context" in build else (*svc_at, "build"),
                     f"service {name}: build context", context, project_dir)
    if isinstance(context, str) and not context.startswith(_REMOTE_PREFIXES) and "://" not in context:
        dockerfile = build.get("dockerfile")
        if dockerfile is not None and "dockerfile_inline" not in build:
            yield from entry(cf, (*svc_at, "build", "dockerfile"), f"service {name}: build.dockerfile", dockerfile,
                             project_dir / context)
    extra = build.get("additional_contexts")
    items = extra.items() if isinstance(extra, dict) else (
        (str(v).partition("=")[0], str(v).partition("=")[2]) for v in extra) if isinstance(extra, list) else []
    for i, (key, value) in enumerate(items):
        if isinstance(value, str) and value.startswith(("docker-image:", "service:", "target:")):
            continue  # another image or stage, not a directory
        at = (*svc_at, "build", "additional_contexts", key if isinstance(extra, dict) else i)
        yield from entry(cf, at, f"service {name}: additional context {key}", value, project_dir)


def file_problem(ctx, needed: NeededFile) -> str | None:
    """Why the server will not have this path: outside the project, or not tracked by git."""
    written = needed.written
    rel = ctx.repo_path(written if written.startswith("~") else needed.base / written)  # compose expands ~ too
    if rel is None:
        return "is outside the project directory"
    if ctx.is_git_repo and not ctx.tracks(rel):
        return "is not tracked by git"
    return None


def _shipped(ctx) -> str:
    return (f"the server receives only the git checkout plus {ctx.target.env_file} and the secret and config "
            "files in the project")


@rule("compose.env-file-not-shipped", Severity.ERROR,
      "a service's env_file is neither committed nor the env file berth ships, so it will be missing on the server",
      "put those settings in the shipped env file, or commit the file if it holds no secrets")
def env_file_reaches_server(ctx):
    shipped = ctx.target.env_file
    for needed in needed_files(ctx):
        if needed.kind != "env_file" or ctx.repo_path(needed.base / needed.written) == shipped:
            continue
        problem = file_problem(ctx, needed)
        if problem:
            yield finding(f"{needed.what} {needed.written} {problem} and is not {shipped}, which berth ships; "
                          f"{_shipped(ctx)}", **at(needed.cf, *needed.at))


@rule("compose.outside-repo", Severity.ERROR,
      "the compose file needs a file outside the project or not tracked by git (include, extends.file, a build "
      "context, a secret or config file), which the server will not have",
      "move the file into the repository and commit it (secrets: use an environment: source and put the value "
      "in the env file berth ships)")
def outside_repo(ctx):
    for needed in needed_files(ctx):
        if needed.kind == "env_file":
            continue  # compose.env-file-not-shipped
        problem = file_problem(ctx, needed)
        if needed.kind in ("secret", "config") and problem == "is not tracked by git":
            continue  # berth ships it (compose.secret-file checks it)
        if problem:
            yield finding(f"{needed.what} {needed.written} {problem}; {_shipped(ctx)}, so compose on the server "
                          "would not find it (or would use whatever is at that path there)", **at(needed.cf, *needed.at))


@rule("compose.secret-file", Severity.ERROR,
      "a secret or config file a service mounts is missing, or a committed secret file holds a weak or placeholder "
      "value (berth ships those git does not carry, like the env file)",
      "create the file with the real value and keep secret files out of git (.gitignore): berth ships them to the "
      "server over SSH, 0600, and keeps them per release for rollbacks")
def secret_file(ctx):
    from berth.check.rules.env_values import placeholder_kind, weakness
    from berth.model import git as gitlocal
    from berth.model.files import read_bytes

    used: dict[str, set[str]] = {"secret": set(), "config": set()}
    for svc in services(ctx):
        for kind, section in (("secret", "secrets"), ("config", "configs")):
            for item in svc.get(section) or []:
                used[kind].add(str(item.get("source") if isinstance(item, dict) else item))
    for needed in needed_files(ctx):
        if needed.kind not in used:
            continue
        name = str(needed.at[1])
        rel = ctx.repo_path(needed.base / needed.written)
        if rel is None:
            continue  # compose.outside-repo
        path = ctx.root / rel
        where = at(needed.cf, *needed.at)
        if not path.is_file():
            if name in used[needed.kind]:
                yield finding(f"{needed.what} {needed.written} does not exist, so compose cannot start the services "
                              f"that use {needed.kind} {name}", **where)
            continue
        tracked = ctx.is_git_repo and ctx.tracks(rel)
        if needed.kind == "secret" and tracked:
            try:
                value = read_bytes(path, limit=64 * 1024, kind="a secret file").decode("utf-8", "replace").strip()
            except BerthError:
                continue  # unreadable: berth ships nothing from it and compose will say
            weak = placeholder_kind(value, secret=True) or (weakness(value) if "\n" not in value else None)
            if weak:
                yield finding(f"{needed.what} {needed.written} is committed to git and holds a value that is {weak}",
                              **where, fix=f"put a real, random value in {needed.written}, remove it from git "
                              f"(git rm --cached {rel}) and add it to .gitignore: berth ships it")
            else:
                yield finding(f"{needed.what} {needed.written} is committed to git: everyone with the repository has "
                              "this secret", **where, severity=Severity.WARNING,
                              fix=f"git rm --cached {rel}, add it to .gitignore and change the secret: berth ships "
                              "secret files git does not carry")
        elif ctx.is_git_repo and not tracked and not gitlocal.is_ignored(ctx.root, rel):
            yield finding(f"{needed.what} {needed.written} is neither committed nor ignored: berth ships it, but a "
                          "`git add -A` would commit it", **where, severity=Severity.WARNING,
                          fix=f"add {rel} to .gitignore")


@rule("compose.override-not-deployed", Severity.WARNING,
      "an override file that `docker compose` merges by itself is not deployed: berth names the compose files it "
      "deploys, so the server runs without it",
      "add it to COMPOSE_FILES (or compose_files in berth.toml) to deploy it; keep development-only settings there "
      "if it is not meant for servers, and silence this with # berth: ignore[compose.override-not-deployed]")
def override_not_deployed(ctx):
    from berth.configuration.target import COMPOSE_OVERRIDE_NAMES

    override = next((n for n in COMPOSE_OVERRIDE_NAMES if (ctx.root / n).is_file()), None)
    if override is None or override in ctx.target.compose_files or not ctx.compose_files:
        return
    files = ", ".join(ctx.target.compose_files)
    yield finding(f"{override} is here and `docker compose up` would merge it into {files}, but berth deploys "
                  f"{files} only", ctx.root / override, 1, 1)


@rule("compose.no-active-service", Severity.ERROR,
      "no service would start: every service is behind a profile COMPOSE_PROFILES does not enable (or is "
      "scaled to 0), so a deploy would run no container and still pass verify",
      "set COMPOSE_PROFILES in the env file berth ships to the profiles to deploy, or remove profiles: from the "
      "services that must run")
def no_active_service(ctx):
    defining = [cf for cf in ctx.compose_files if cf.services]
    if not defining or ctx.include_errors:
        return  # no services at all is compose.no-services'; an include that cannot be followed is invalid-project's
    active = {svc.name: svc for svc in services(ctx)}
    if any(not _scaled_to_zero(ctx, svc) for svc in active.values()):
        return
    names = sorted({str(n) for cf in defining for n, d in cf.services.items() if isinstance(d, dict)})
    gated = [n for n in names if n not in active]
    if not names:
        return
    profiles = env_values(ctx).get("COMPOSE_PROFILES")
    enabled = f"COMPOSE_PROFILES={profiles}" if profiles else f"COMPOSE_PROFILES is not set in {ctx.target.env_file}"
    why = []
    if gated:
        why.append(f"{', '.join(gated)} {'has' if len(gated) == 1 else 'have'} profiles: that are not enabled ({enabled})")
    if active:
        why.append(f"{', '.join(active)} {'is' if len(active) == 1 else 'are'} scaled to 0")
    yield finding(f"no service would start: {'; '.join(why)}, so compose up would run no container",
                  **at(defining[0], "services"))


def _scaled_to_zero(ctx, svc) -> bool:
    values = [resolve(ctx, svc.get("scale")), resolve(ctx, svc.merged("deploy").get("replicas"))]
    return any(str(v).strip() == "0" for v in values if v is not None)


def _declared(ctx, kind: str) -> set[str]:
    """The names the compose files declare at the top level under `kind` (volumes, networks, secrets, configs)."""
    names: set[str] = set()
    for cf in ctx.compose_files:
        section = cf.data.get(kind) if isinstance(cf.data, dict) else None
        if isinstance(section, dict):
            names |= {str(k) for k in section}
    return names


def _named(item) -> str | None:
    """The name a service's networks/secrets/configs entry refers to (short or long syntax)."""
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and isinstance(item.get("source"), str):
        return item["source"]
    return None


@rule("compose.invalid-project", Severity.ERROR, "docker compose would refuse the project",
      "declare the volume, network, secret or config at the top level of the compose file, or correct the name; "
      "docker compose config shows the same error")
def invalid_project(ctx):
    """What `docker compose` itself rejects before it starts anything, with compose's own words."""
    for exc in ctx.include_errors:  # a missing included file, a cycle, a name defined twice
        path, _, line = (exc.where or "").partition(":")
        yield finding(exc.what, Path(path) if path else ctx.root, int(line.split(":")[0]) if line[:1].isdigit() else 1,
                      fix=exc.fix)
    if ctx.include_errors:
        return  # the included files could not all be read: compose on the server decides the rest
    for cf in ctx.compose_files:
        for key in cf.data:
            if str(key) not in TOP_LEVEL_KEYS and not str(key).startswith("x-"):
                yield finding(f"(root) Additional property {key} is not allowed", **at(cf, str(key)),
                              fix=_unknown_key_fix(str(key), TOP_LEVEL_KEYS))
        for name, definition in cf.services.items():
            if not isinstance(definition, dict):
                yield finding(f"services.{name} must be a mapping", **at(cf, "services", name))
                continue
            for key in definition:
                if str(key) not in SERVICE_KEYS and not str(key).startswith("x-"):
                    yield finding(f"services.{name} Additional property {key} is not allowed",
                                  **at(cf, "services", name, str(key)), fix=_unknown_key_fix(str(key), SERVICE_KEYS))
    every_service = {str(name) for cf in ctx.compose_files for name in cf.services}
    declared = {kind: _declared(ctx, kind) for kind in ("volumes", "networks", "secrets", "configs")}
    declared["networks"].add("default")
    started = services(ctx)
    active = {svc.name for svc in started}
    for svc in started:
        yield from _undefined_references(ctx, svc, every_service, declared, active)
        if svc.has("network_mode") and svc.has("networks"):
            yield finding(f"service {svc.name} declares mutually exclusive `network_mode` and `networks`",
                          **at(svc.defined_in("network_mode"), "services", svc.name, "network_mode"))
        yield from _conflicting_settings(ctx, svc)


# what the compose specification allows (compose refuses any other key; x- keys are extensions), newer keys
# included: the server's compose may be newer than the one the schema was read from
TOP_LEVEL_KEYS = frozenset({"version", "name", "include", "services", "networks", "volumes", "secrets", "configs",
                            "models"})
SERVICE_KEYS = frozenset({
    "annotations", "attach", "blkio_config", "build", "cap_add", "cap_drop", "cgroup", "cgroup_parent", "command",
    "configs", "container_name", "cpu_count", "cpu_percent", "cpu_period", "cpu_quota", "cpu_rt_period",
    "cpu_rt_runtime", "cpu_shares", "cpus", "cpuset", "credential_spec", "depends_on", "deploy", "develop",
    "device_cgroup_rules", "devices", "dns", "dns_opt", "dns_search", "domainname", "entrypoint", "env_file",
    "environment", "expose", "extends", "external_links", "extra_hosts", "gpus", "group_add", "healthcheck",
    "hostname", "image", "init", "ipc", "isolation", "label_file", "labels", "links", "logging", "mac_address",
    "mem_limit", "mem_reservation", "mem_swappiness", "memswap_limit", "models", "network_mode", "networks",
    "oom_kill_disable", "oom_score_adj", "pid", "pids_limit", "platform", "ports", "post_start", "pre_stop",
    "privileged", "profiles", "provider", "pull_policy", "read_only", "restart", "runtime", "scale", "secrets",
    "security_opt", "shm_size", "stdin_open", "stop_grace_period", "stop_signal", "storage_opt", "sysctls", "tmpfs",
    "tty", "ulimits", "use_api_socket", "user", "userns_mode", "uts", "volumes", "volumes_from", "working_dir",
})


def _unknown_key_fix(key: str, known) -> str:
    import difflib

    close = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return f"{hint}remove {key}, or name it x-{key} to keep it as an extension compose ignores"


# a service-level setting and its deploy.resources twin: compose refuses two different values
_RESOURCE_TWINS = (("mem_limit", "limits", "memory"), ("mem_reservation", "reservations", "memory"),
                   ("cpus", "limits", "cpus"), ("pids_limit", "limits", "pids"))


def _conflicting_settings(ctx, svc):
    from berth.model.compose.resolve import byte_size

    resources = svc.merged("deploy").get("resources")
    resources = resources if isinstance(resources, dict) else {}
    for key, part, twin in _RESOURCE_TWINS:
        value, limits = resolve(ctx, svc.get(key)), resources.get(part)
        if value is None or not isinstance(limits, dict):
            continue
        other = resolve(ctx, limits.get(twin))  # unset counts as 0 there: compose refuses a value beside it too
        same = other is not None and (byte_size(value) == byte_size(other) if twin == "memory"
                                      else _number(value) == _number(other))
        if not same:
            yield finding(f"services.{svc.name}: can't set distinct values on '{key}' and "
                          f"'deploy.resources.{part}.{twin}'", **at(svc.defined_in(key), "services", svc.name, key),
                          fix=f"set one of them: {key} or deploy.resources.{part}.{twin}")
    if svc.has("container_name"):
        for key, value in (("scale", svc.get("scale")), ("deploy.replicas", svc.merged("deploy").get("replicas"))):
            count = _number(resolve(ctx, value))
            if count is not None and count > 1:
                yield finding(f"services.{key.split('.')[-1]}: can't set container_name and {svc.name} as container "
                              "name must be unique", **at(svc.defined_in("container_name"), "services", svc.name,
                                                          "container_name"),
                              fix="remove container_name (compose names the replicas), or run one replica")


def _number(value) -> float | None:
    try:
        return float(str(value).strip()) if value is not None and not isinstance(value, bool) else None
    except ValueError:
        return None


def _undefined_references(ctx, svc, every_service: set[str], declared: dict[str, set[str]], active: set[str]):
    for cf, key, name, options in depends_on(svc):
        name = resolve(ctx, name)
        required = str(resolve(ctx, (options or {}).get("required", True))).lower() not in ("false", "no", "off", "0")
        if name not in every_service:
            yield finding(f'service "{svc.name}" depends on undefined service "{name}"',
                          **at(cf, "services", svc.name, "depends_on", key))
        elif name not in active and required:
            yield finding(f'service "{svc.name}" depends on undefined service "{name}": {name} has profiles that '
                          "COMPOSE_PROFILES does not enable", **at(cf, "services", svc.name, "depends_on", key),
                          fix=f"enable a profile of {name} in COMPOSE_PROFILES, give {svc.name} the same profiles, or "
                              "mark the dependency required: false")
    for cf, key, item in svc.items("volumes"):
        mount = parse_mount(resolve(ctx, item))
        if mount and mount.kind == "volume" and mount.source and mount.source not in declared["volumes"]:
            yield finding(f'service "{svc.name}" refers to undefined volume {mount.source}',
                          **at(cf, "services", svc.name, "volumes", key))
    for kind in ("networks", "secrets", "configs"):
        for cf, key, item in svc.items(kind):
            name = resolve(ctx, key if isinstance(key, str) else _named(item))
            if isinstance(name, str) and name not in declared[kind]:
                yield finding(f'service "{svc.name}" refers to undefined {kind[:-1]} {name}',
                              **at(cf, "services", svc.name, kind, key))


@rule("compose.x-berth", Severity.ERROR, "a service's x-berth settings cannot be followed",
      "write only rollout (start-first or recreate), http_port, health_path and drain_timeout under x-berth; "
      "docs/ROLLOUTS.md explains each")
def x_berth(ctx):
    """x-berth under a service says how berth rolls it out (berth.model.compose.rollout)."""
    from berth.model.compose.rollout import RolloutSettingsError, decide, settings_of

    model = None
    for svc in services(ctx):
        if not svc.has("x-berth"):
            continue
        cf = svc.defined_in("x-berth")
        try:
            settings = settings_of(svc.name, svc.get("x-berth"))
            if model is None:
                model = _model_services(ctx)
            if svc.name in model:
                decide(svc.name, model[svc.name], settings, ctx.target.health_urls,
                       has_domains=bool(ctx.target.domains.get(svc.name)))
        except RolloutSettingsError as exc:
            path = ("services", svc.name, "x-berth", exc.key) if exc.key else ("services", svc.name, "x-berth")
            yield finding(exc.message, **at(cf, *path))


def _model_services(ctx) -> dict:
    """The compose model's services (long syntax); empty when it cannot be made (other rules say why)."""
    from berth.model.compose.resolve import resolve_compose

    try:
        return resolve_compose(ctx.target, ctx.app_env.values() if ctx.app_env else {}).model.get("services") or {}
    except BerthError:
        return {}
