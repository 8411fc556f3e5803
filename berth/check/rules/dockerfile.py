"""Dockerfiles that compose builds: parseable, pinned, not root, small, no secrets baked in.

The Dockerfiles are the ones compose would build: `build: DIR` (DIR/Dockerfile), `build.context` +
`build.dockerfile` (relative to the context), or `build.dockerfile_inline`. A remote context (a git
URL) is not looked at. Findings point at the Dockerfile's line (for an inline Dockerfile, at the line
inside the compose file). Rules about the image that runs (USER, CMD, HEALTHCHECK) judge the stage
compose builds (`build.target`, else the last one) and the stages it is built FROM; compose's own
`user:`, `command:`, `entrypoint:` and `healthcheck:` overrides are taken into account.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth.check.findings import Severity, finding, rule
from berth.model.compose.interpolation import InterpolationError, find_references, interpolate
from berth.model.compose.services import at, compose_healthcheck, image_name, one_shot_services, resolve, services
from berth.model.dockerfile import (
    Dockerfile,
    DockerfileError,
    Instruction,
    Stage,
    arg_pairs,
    healthcheck_test,
    key_value_pairs,
    parse,
    parse_file,
)
from berth.secrets.masking import is_secret_key, url_password

ARCHIVE_SUFFIXES = (".tar", ".Z", ".bz2", ".gz", ".lz", ".lzma", ".tZ", ".tb2", ".tbz", ".tbz2", ".tgz", ".tlz",
                    ".tpz", ".txz", ".xz", ".zst")  # hadolint's list (DL3020), plus zstd
_URL = re.compile(r"^(?:https?://|git@|git://|ssh://)", re.IGNORECASE)
_REMOTE_CONTEXT = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|git@)", re.IGNORECASE)
NOT_SECRET_VALUES = {"true", "false", "yes", "no", "on", "off", "none", "null", "changeme", "change_me", "x", "-"}


@dataclass
class Build:
    """One service's `build:` as compose resolves it, and the Dockerfile it names."""

    service: str
    cf: Any  # the compose file whose `build:` counts
    key_path: tuple  # where to point at in that compose file for problems of the build itself
    target: str | None = None
    args: dict[str, str] = field(default_factory=dict)
    path: Path | None = None  # the Dockerfile (None: inline or remote)
    inline_line: int | None = None  # compose line of the inline Dockerfile's first line
    problem: str | None = None  # the context or the Dockerfile does not exist
    parsed: Dockerfile | None = None
    error: DockerfileError | None = None
    user: str | None = None  # compose `user:` override
    overrides: frozenset[str] = frozenset()  # of "command", "entrypoint"

    @property
    def key(self) -> tuple:
        return (str(self.path) if self.path else f"{self.cf.path}#{self.service}",)

    def loc(self, line: int | None) -> dict:
        """finding() keywords for a Dockerfile line."""
        if self.path is not None:
            return {"file": self.path, "line": line}
        base = self.inline_line or 1
        return {"file": self.cf.path, "line": base + (line or 1) - 1}

    def stage(self) -> Stage | None:
        return self.parsed.stage(self.target) if self.parsed else None

    def chain(self) -> list[Stage]:
        stage = self.stage()
        return self.parsed.ancestry(stage) if stage is not None and self.parsed else []


def builds(ctx) -> dict[str, Build]:
    """Every service that compose builds, with its parsed Dockerfile (once per context)."""
    cache = ctx.__dict__.get("_dockerfile_builds")
    if cache is None:
        cache = ctx.__dict__["_dockerfile_builds"] = _collect_builds(ctx)
    return cache


def _collect_builds(ctx) -> dict[str, Build]:
    parsed: dict[Path, tuple[Dockerfile | None, DockerfileError | None]] = {}
    out: dict[str, Build] = {}
    for svc in services(ctx):
        spec: dict[str, Any] = {}
        cf = None
        for def_cf, d in svc.defs:
            raw = d.get("build")
            if raw is None:
                continue
            cf = def_cf
            if isinstance(raw, str):
                spec["context"] = raw
            elif isinstance(raw, dict):
                for k, v in raw.items():
                    if k == "args" and isinstance(spec.get("args"), dict) and isinstance(v, dict):
                        spec["args"] = {**spec["args"], **v}
                    else:
                        spec[k] = v
        if cf is None:
            continue
        b = Build(svc.name, cf, ("services", svc.name, "build"))
        b.user = resolve(ctx, svc.get("user")) if svc.get("user") is not None else None
        b.overrides = frozenset(k for k in ("command", "entrypoint") if svc.get(k) is not None)
        target = resolve(ctx, spec.get("target"))
        b.target = str(target) if target not in (None, "") else None
        b.args = _build_args(ctx, spec.get("args"))
        inline = spec.get("dockerfile_inline")
        if isinstance(inline, str):
            b.key_path = ("services", svc.name, "build", "dockerfile_inline")
            b.inline_line = _inline_first_line(cf, b.key_path)
            try:
                b.parsed = parse(inline)
            except DockerfileError as exc:
                b.error = exc
            out[svc.name] = b
            continue
        context = resolve(ctx, spec.get("context", "."))
        if not isinstance(context, str) or _REMOTE_CONTEXT.match(context):
            continue  # remote (git) context or unknowable: nothing local to look at
        context_dir = Path(context).expanduser()
        if not context_dir.is_absolute():
            context_dir = cf.path.parent / context_dir
        name = resolve(ctx, spec.get("dockerfile", "Dockerfile"))
        if not isinstance(name, str) or not name:
            continue
        path = Path(name).expanduser()
        path = path if path.is_absolute() else context_dir / path
        b.path = path
        if "dockerfile" in spec:
            b.key_path = ("services", svc.name, "build", "dockerfile")
        elif isinstance(svc.get("build"), dict):
            b.key_path = ("services", svc.name, "build", "context")
        if not context_dir.is_dir():
            b.problem = f"its build context {context} does not exist"
        elif not path.exists():  # a FIFO or /dev/zero behind a symlink exists: parse_file refuses it (invalid)
            b.problem = f"{_rel(ctx, path)} does not exist" + (" (build.dockerfile is relative to the context)"
                                                                 if "dockerfile" in spec else "")
        else:
            if path not in parsed:
                try:
                    parsed[path] = (parse_file(path), None)
                except DockerfileError as exc:
                    parsed[path] = (None, exc)
            b.parsed, b.error = parsed[path]
        out[svc.name] = b
    return out


def _build_args(ctx, raw: Any) -> dict[str, str]:
    values: dict[str, str] = {}
    if isinstance(raw, dict):
        items = [(str(k), v) for k, v in raw.items()]
    elif isinstance(raw, list):
        items = [(str(i).partition("=")[0], str(i).partition("=")[2] if "=" in str(i) else None) for i in raw]
    else:
        return values
    env = ctx.app_env.values() if ctx.app_env else {}
    for name, value in items:
        if value is None:
            if name in env:  # `args: [NAME]` takes the value from the environment
                values[name] = env[name]
            continue
        value = resolve(ctx, str(value) if not isinstance(value, str) else value)
        if value is not None:
            values[name] = str(value)
    return values


def _inline_first_line(cf, path: tuple) -> int | None:
    for s in cf.scalars:
        if s.path == path:
            return s.line + 1 if s.raw[:1] in "|>" else s.line
    return None


def _rel(ctx, path: Path) -> str:
    try:
        return path.relative_to(ctx.root).as_posix()
    except ValueError:
        return str(path)


def image_healthcheck(ctx, service: str) -> bool | None:
    """Does the image compose builds for `service` declare a HEALTHCHECK? None: not built here, or unreadable.

    A base image pulled from a registry may declare one too; that cannot be known without pulling it,
    so only this Dockerfile's stages count.
    """
    b = builds(ctx).get(service)
    if b is None or b.parsed is None or b.stage() is None:
        return None
    ins = _last(b.chain(), "HEALTHCHECK")
    return ins is not None and healthcheck_test(ins) != ("NONE",)


def _last(chain: list[Stage], keyword: str) -> Instruction | None:
    for stage in chain:
        for ins in reversed(stage.instructions):
            if ins.keyword == keyword:
                return ins
    return None


def _ok_builds(ctx) -> list[Build]:
    return [b for b in builds(ctx).values() if b.parsed is not None]


def _files(ctx) -> Iterator[tuple[Build, list[Build]]]:
    """Each parsed Dockerfile once: (its first build, every build that uses it)."""
    groups: dict[tuple, list[Build]] = {}
    for b in _ok_builds(ctx):
        groups.setdefault(b.key, []).append(b)
    for group in groups.values():
        yield group[0], group


def _images(ctx) -> Iterator[tuple[Build, list[Build]]]:
    """Each (Dockerfile, target stage) once: the images compose builds."""
    groups: dict[tuple, list[Build]] = {}
    for b in _ok_builds(ctx):
        if b.stage() is not None:
            groups.setdefault((*b.key, b.stage().index), []).append(b)
    for group in groups.values():
        yield group[0], group


def _names(group: list[Build]) -> str:
    return ", ".join(b.service for b in group)


# --------------------------------------------------------------------------- rules


@rule("dockerfile.missing", Severity.ERROR, "compose builds from a Dockerfile or context that does not exist",
      "create the Dockerfile, or fix build: / build.context / build.dockerfile (dockerfile is relative to the context)")
def dockerfile_missing(ctx):
    for b in builds(ctx).values():
        if b.problem:
            yield finding(f"service {b.service} cannot be built: {b.problem}", **at(b.cf, *b.key_path))


@rule("dockerfile.invalid", Severity.ERROR, "a Dockerfile compose builds cannot be parsed, so the build would fail",
      "fix the Dockerfile at the line shown")
def dockerfile_invalid(ctx):
    seen = set()
    for b in builds(ctx).values():
        if b.error is not None and b.key not in seen:
            seen.add(b.key)
            yield finding(f"{b.error.message}", **b.loc(b.error.line), fix=getattr(b.error, "fix", None))
        elif b.parsed is not None and b.target and b.stage() is None:
            names = ", ".join(s.name for s in b.parsed.stages if s.name) or "none"
            yield finding(f"service {b.service} builds target {b.target!r}, which is not a stage of "
                          f"{_rel(ctx, b.path) if b.path else 'its Dockerfile'} (stages: {names})",
                          **at(b.cf, "services", b.service, "build", "target"),
                          fix="set build.target to a name from a FROM ... AS name line")


@rule("dockerfile.base-unpinned", Severity.WARNING, "a FROM image is :latest or has no tag",
      "pin the base image to a version tag (python:3.12-slim) or a digest")
def base_unpinned(ctx):
    seen = set()
    for b in _ok_builds(ctx):
        stages = b.parsed.stages
        known = {k: v for k, v in b.parsed.meta_arg_defaults().items() if v is not None}
        known.update(b.args)
        for stage in stages:
            ins = stage.from_
            if (b.key, ins.line) in seen:
                continue
            image = _expand(stage.base, known)
            if image is None or image.lower() == "scratch":
                continue
            if image.lower() in {s.name for s in stages[: stage.index] if s.name}:
                continue  # an earlier stage
            _, tag, digest = image_name(image)
            if digest or (tag and tag != "latest"):
                continue
            seen.add((b.key, ins.line))
            shown = image + (f" (from {stage.base})" if image != stage.base else "")
            what = "is :latest" if tag == "latest" else "has no tag, so it means :latest"
            yield finding(f"base image {shown} {what}", **b.loc(ins.line))


def _expand(text: str, known: dict[str, str]) -> str | None:
    """FROM's ${VAR} expansion with the ARG values; None when a variable has no value."""
    if "$" not in text:
        return text
    try:
        refs = find_references(text)
        if any(r.name not in known and not r.has_default for r in refs):
            return None
        return interpolate(text, known)
    except (InterpolationError, ValueError):
        return None


def _is_root(user: str) -> bool:
    name = user.strip().split(":", 1)[0]
    return name in ("root", "0")


@rule("dockerfile.runs-as-root", Severity.WARNING,
      "the image compose runs has no USER (or USER root) in its final stage, so the app runs as root",
      "create a user and switch to it: RUN useradd --system app ... then USER app")
def runs_as_root(ctx):
    for b, group in _images(ctx):
        users = [x.user for x in group]
        if all(u is not None and "$" not in str(u) and not _is_root(str(u)) for u in users):
            continue  # compose's user: runs every one of them as someone else
        ins = _last(b.chain(), "USER")
        if ins is not None and ("$" in ins.value or not _is_root(ins.value)):
            continue
        if ins is None:
            stage = b.stage()
            yield finding(f"the image of {_names(group)} runs as root: its final stage ({stage.base}) sets no USER",
                          **b.loc(stage.from_.line))
        else:
            yield finding(f"the image of {_names(group)} runs as root: USER {ins.value}", **b.loc(ins.line))


def _add_sources(ins: Instruction) -> list[str]:
    args = ins.args
    return [a for a in args[:-1] if not re.match(r"^\d*<<", a)]


def _is_archive(src: str) -> bool:
    return src.endswith(ARCHIVE_SUFFIXES)


@rule("dockerfile.add-local", Severity.WARNING, "ADD copies local files; COPY does that without ADD's surprises",
      "use COPY for local files and directories (ADD also fetches URLs and unpacks archives)")
def add_local(ctx):
    for b, _ in _files(ctx):
        for ins in b.parsed.instructions:
            if ins.keyword != "ADD":
                continue
            local = [s for s in _add_sources(ins) if not _URL.match(s) and not _is_archive(s)]
            if local:
                yield finding(f"ADD {' '.join(local)}: use COPY for local files", **b.loc(ins.line))


@rule("dockerfile.add-url-or-archive", Severity.INFO, "ADD fetches a URL or unpacks an archive",
      "fine if intended; for a URL pin its content with ADD --checksum=sha256:... (or download and verify in RUN)")
def add_url_or_archive(ctx):
    for b, _ in _files(ctx):
        for ins in b.parsed.instructions:
            if ins.keyword != "ADD":
                continue
            sources = _add_sources(ins)
            remote = [s for s in sources if _URL.match(s)]
            archives = [s for s in sources if not _URL.match(s) and _is_archive(s)]
            if remote and ins.flag("checksum") is None:
                yield finding(f"ADD downloads {' '.join(remote)} at build time, unverified", **b.loc(ins.line))
            elif archives and not remote:
                yield finding(f"ADD unpacks {' '.join(archives)} into the image", **b.loc(ins.line))


@rule("dockerfile.shell-form-cmd", Severity.WARNING,
      "CMD/ENTRYPOINT in shell form: the app runs under /bin/sh -c and does not get SIGTERM, so stops take 10s "
      "and are not clean",
      "use the exec (JSON) form: CMD [\"gunicorn\", \"app:app\"] (or start the shell form with exec)")
def shell_form_cmd(ctx):
    for b, group in _images(ctx):
        chain = b.chain()
        overridden = frozenset.intersection(*(x.overrides for x in group))
        entrypoint = _last(chain, "ENTRYPOINT")
        cmd = _last(chain, "CMD")
        candidates = []
        if "entrypoint" not in overridden:
            candidates.append(entrypoint)
            if "command" not in overridden:
                candidates.append(cmd)
        for ins in candidates:
            if ins is None or ins.is_exec_form or not ins.value or ins.value.startswith("exec "):
                continue
            yield finding(f"{ins.keyword} {ins.value} is in shell form: {_names(group)} will run under /bin/sh -c",
                          **b.loc(ins.line))


# -- apt-get


def _commands(ins: Instruction) -> list[list[str]]:
    """The simple commands a RUN runs (split at ;, &&, ||, | and line breaks), as word lists."""
    if ins.exec_form is not None:
        argv = list(ins.exec_form)
        if len(argv) >= 3 and argv[0].rsplit("/", 1)[-1] in ("sh", "bash", "ash", "dash") and argv[1] == "-c":
            return _split_shell(argv[2])
        return [argv]
    texts = [ins.value] + [h.content for h in ins.heredocs]
    out: list[list[str]] = []
    for text in texts:
        out.extend(_split_shell(text))
    return out


def _split_shell(text: str) -> list[list[str]]:
    out: list[list[str]] = []
    for line in text.replace("\\\n", " ").splitlines():
        try:
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()")
            lexer.whitespace_split = True
            lexer.commenters = ""
            tokens = list(lexer)
        except ValueError:
            tokens = line.split()
        current: list[str] = []
        for tok in tokens:
            if tok and set(tok) <= set(";&|()"):
                if current:
                    out.append(current)
                current = []
            else:
                current.append(tok)
        if current:
            out.append(current)
    return out


def _apt(cmd: list[str]) -> tuple[str | None, list[str]]:
    """(apt-get subcommand, its words) if `cmd` runs apt-get/apt, else (None, [])."""
    words = list(cmd)
    while words and (re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]) or words[0] in ("sudo", "env", "-E")):
        words.pop(0)
    if not words or words[0].rsplit("/", 1)[-1] not in ("apt-get", "apt"):
        return None, []
    i = 1
    while i < len(words) and words[i].startswith("-"):
        i += 2 if words[i] in ("-o", "-c", "-t") else 1
    return (words[i] if i < len(words) else None), words


def _apt_runs(b: Build) -> Iterator[Instruction]:
    for stage in b.chain():
        for ins in stage.instructions:
            if ins.keyword == "RUN":
                yield ins


@rule("dockerfile.apt-no-recommends", Severity.INFO,
      "apt-get install without --no-install-recommends pulls in packages nobody asked for",
      "apt-get install -y --no-install-recommends PACKAGES")
def apt_no_recommends(ctx):
    seen = set()
    for b, _ in _images(ctx):
        configured = False
        for ins in _apt_runs(b):
            text = " ".join(" ".join(c) for c in _commands(ins))
            if re.search(r"Install-Recommends\W+(false|0)\b", text, re.IGNORECASE):
                configured = True
            for cmd in _commands(ins):
                sub, words = _apt(cmd)
                if sub != "install" or configured or (b.key, ins.line) in seen:
                    continue
                if "--no-install-recommends" in words or any(
                        re.search(r"Install-Recommends=(false|0)", w, re.IGNORECASE) for w in words):
                    continue
                seen.add((b.key, ins.line))
                yield finding(f"{' '.join(words[:3])} ... without --no-install-recommends", **b.loc(ins.line))


@rule("dockerfile.apt-lists-not-cleaned", Severity.INFO,
      "RUN apt-get update leaves /var/lib/apt/lists in the image layer (tens of MB)",
      "end the same RUN with && rm -rf /var/lib/apt/lists/* (or use RUN --mount=type=cache,target=/var/lib/apt)")
def apt_lists_not_cleaned(ctx):
    seen = set()
    for b, _ in _images(ctx):
        for ins in _apt_runs(b):
            if (b.key, ins.line) in seen:
                continue
            cmds = _commands(ins)
            if not any(_apt(c)[0] == "update" for c in cmds):
                continue
            cleaned = any(c and c[0].rsplit("/", 1)[-1] == "rm" and any(a.startswith("/var/lib/apt/lists") for a in c)
                          for c in cmds)
            cached = any(f.startswith("mount=") and "/var/lib/apt" in f and re.search(r"type=(cache|tmpfs)", f)
                         for f in (x[2:] for x in ins.flags))
            if cleaned or cached:
                continue
            seen.add((b.key, ins.line))
            yield finding("apt-get update without rm -rf /var/lib/apt/lists/* in the same RUN", **b.loc(ins.line))


# -- secrets, healthcheck


def _literal_secret(key: str, value: str | None) -> bool:
    """A secret-looking name with a value written out (not a $VAR, a path, a flag or a public key id)."""
    if value is None:
        return False
    v = value.strip()
    if url_password(v):
        return True  # scheme://user:password@host
    if not v or v.startswith(("$", "/")) or v.lower() in NOT_SECRET_VALUES or (v.isdigit() and len(v) < 8):
        return False
    upper = key.upper()
    if "PUBLIC" in upper or "GPG" in upper or upper.endswith(("_FILE", "_PATH", "_DIR")):
        return False
    return is_secret_key(key)


@rule("dockerfile.secret-literal", Severity.WARNING,
      "ARG/ENV gives a secret-looking name a literal value: it is committed to git and baked into the image",
      "leave the value out of the Dockerfile: set it in the env file at runtime, or use RUN --mount=type=secret "
      "for build-time secrets")
def secret_literal(ctx):
    for b, _ in _files(ctx):
        for ins in b.parsed.instructions:
            if ins.keyword == "ENV":
                pairs: list[tuple[str, str | None]] = list(key_value_pairs(ins, b.parsed.escape))
            elif ins.keyword == "ARG":
                pairs = arg_pairs(ins, b.parsed.escape)
            else:
                continue
            for key, value in pairs:
                if _literal_secret(key, value):
                    # never echo the value: it is the secret
                    what = "a URL with a password" if url_password((value or "").strip()) else "a literal value"
                    yield finding(f"{ins.keyword} {key} has {what} in the Dockerfile", **b.loc(ins.line))


@rule("dockerfile.healthcheck-missing", Severity.WARNING,
      "the image compose builds has no HEALTHCHECK and the compose service defines none either",
      "add HEALTHCHECK CMD [\"wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1:PORT/health\"] to the "
      "Dockerfile, or a healthcheck: to the service")
def healthcheck_missing(ctx):
    one_shot = one_shot_services(services(ctx))
    by_name = {s.name: s for s in services(ctx)}
    for b, group in _images(ctx):
        names = [x.service for x in group if x.service not in one_shot
                 and compose_healthcheck(by_name[x.service]) in ("none", "inherit")]
        if not names or image_healthcheck(ctx, b.service) is not False:
            continue
        stage = b.stage()
        yield finding(f"the image of {', '.join(names)} has no HEALTHCHECK and the service defines no healthcheck",
                      **b.loc(stage.from_.line))
