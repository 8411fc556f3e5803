"""`berth init`: look at a repository and write the deployment files it lacks.

`detect` reads the repository (never executes anything): the language and framework from
requirements*.txt / pyproject.toml / package.json / go.mod / index.html, an existing Dockerfile or
compose file, PostgreSQL and Redis from the dependencies, the port and whether a /health route
exists from the source. `plan` turns that into file contents; `apply` writes them.

Rules: a file that exists is never replaced without `force` (its planned content is still used to
document the deployment); `.gitignore` only gets the entries it lacks appended. Everything written
passes `berth check` once `.env` and `.env.docker` are filled from the examples (`berth secrets
generate` fills the secrets). Placeholders are `change_me`, which berth check refuses in real files.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from berth.configuration.target import COMPOSE_FILE_NAMES as COMPOSE_NAMES  # the order compose picks them in
from berth.errors import UsageError

SKIP_DIRS = {".git", "node_modules", ".venv", "venv", "env", "__pycache__", "dist", "build", ".tox", "vendor",
             ".mypy_cache", ".pytest_cache", "site-packages", "tests", "test"}
MAX_SCAN_FILES = 400
MAX_SCAN_BYTES = 256 * 1024

PYTHON_IMAGE = "python:3.12-slim"
NODE_IMAGE = "node:20-slim"
NGINX_IMAGE = "nginxinc/nginx-unprivileged:1.27-alpine"
ALPINE_IMAGE = "alpine:3.20"
POSTGRES_IMAGE = "postgres:16.4-alpine"
REDIS_IMAGE = "redis:7.4-alpine"
UVICORN = "uvicorn==0.32.1"
GUNICORN = "gunicorn==23.0.0"

# names an app reads that are not its settings
_IGNORED_VARS = {"PATH", "HOME", "USER", "PWD", "SHELL", "TERM", "LANG", "HOSTNAME", "TZ", "NODE_ENV", "DEBUG",
                 "PYTHONPATH", "VIRTUAL_ENV", "CI", "TMPDIR"}

# what a variable means, for the examples' comments and docs/DEPLOYMENT.md
MEANINGS = {
    "APP_PORT": "host port the app is published on (the server's firewall must allow it)",
    "APP_ENV": "the app's mode: production on servers",
    "SECRET_KEY": "secret for sessions, CSRF and signed data (berth secrets generate makes one)",
    "JWT_SECRET": "secret that signs JSON web tokens (berth secrets generate makes one)",
    "POSTGRES_USER": "PostgreSQL user the db service creates on its first start",
    "POSTGRES_PASSWORD": "that user's password (berth secrets generate makes one; the database keeps the first one "
                         "it was started with)",
    "POSTGRES_DB": "database the db service creates on its first start",
    "DATABASE_URL": "how the app reaches PostgreSQL: user, POSTGRES_PASSWORD, host db (the service), database",
    "REDIS_PASSWORD": "password the redis service requires (berth secrets generate makes one)",
    "REDIS_URL": "how the app reaches Redis: REDIS_PASSWORD, host redis (the service), database number",
    "PORT": "port the app listens on inside its container",
    "SERVER_IP": "the server: IP address, DNS name or Host alias from ~/.ssh/config (comma-separated for several)",
    "SERVER_USER": "SSH user on the server (needs docker rights)",
    "PEM_KEY_PATH": "private key for SSH, mode 0600; empty: ssh-agent and ~/.ssh/config decide",
    "ENVIRONMENT": "which environment this .env describes: development, staging or production",
    "HEALTH_URL": "URL(s) that must answer 2xx after a deploy (comma-separated); a localhost URL is fetched on the "
                  "server",
    "BERTH_PROXY": "berth's proxy: the web service switches start-first and no request is dropped during a deploy "
                   "(docs/ROLLOUTS.md in berth); false recreates every service",
}


@dataclass
class Stack:
    kind: str  # python, node, go, static, unknown
    framework: str | None = None  # fastapi, django, flask
    name: str = "app"
    port: int = 8080
    health: str = "/"
    postgres: bool = False
    redis: bool = False
    dockerfile: str | None = None  # an existing Dockerfile (relative path)
    compose: str | None = None  # an existing compose file
    entry: list[str] = field(default_factory=list)  # CMD of the generated Dockerfile
    extra_pip: list[str] = field(default_factory=list)
    python_deps: str | None = None  # requirements.txt / pyproject.toml
    node_lock: bool = False
    node_build: bool = False
    go_version: str = "1.22"
    asyncpg_sqlalchemy: bool = False
    app_vars: list[str] = field(default_factory=list)  # variables the source reads
    compose_vars: list[str] = field(default_factory=list)  # variables an existing compose file interpolates
    compose_defaults: dict = field(default_factory=dict)  # their ${VAR:-default}s
    compose_services: dict = field(default_factory=dict)
    evidence: list[str] = field(default_factory=list)  # why we think so, for the output

    @property
    def service(self) -> str:
        return "web" if self.kind == "static" else "app"


# --------------------------------------------------------------------------- detection


def _read(path: Path) -> str:
    from berth.errors import UsageError
    from berth.model.files import read_bytes

    try:  # too big, a FIFO or a device: nothing to learn from it
        return read_bytes(path, limit=MAX_SCAN_BYTES).decode("utf-8", errors="replace")
    except UsageError:
        return ""


def _sources(root: Path, suffixes: tuple[str, ...]) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(suffixes):
                found.append(Path(dirpath) / name)
                if len(found) >= MAX_SCAN_FILES:
                    return found
    return found


def _python_deps(root: Path) -> str:
    text = ""
    for path in sorted(root.glob("requirements*.txt")) + [root / "pyproject.toml", root / "Pipfile", root / "setup.py"]:
        if path.is_file():
            text += _read(path).lower() + "\n"
    return text


def _has_dep(text: str, *names: str) -> bool:
    return any(re.search(rf"(^|[\s\"'\[,]){re.escape(n)}($|[\s\"'=<>~!\[;,@])", text, re.M) for n in names)


def detect(root: Path) -> Stack:
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory", fix="run berth init in your app's repository (or pass -C DIR)")
    name = re.sub(r"[^a-z0-9_-]", "-", root.resolve().name.lower()).strip("-") or "app"
    stack = Stack("unknown", name=name)
    existing_compose = next((n for n in COMPOSE_NAMES if (root / n).is_file()), None)
    stack.compose = existing_compose
    if (root / "Dockerfile").is_file():
        stack.dockerfile = "Dockerfile"
    py = _python_deps(root)
    pkg = _package_json(root)
    gomod = _read(root / "go.mod") if (root / "go.mod").is_file() else ""
    if py.strip() or (root / "manage.py").is_file():
        _detect_python(root, stack, py)
    elif pkg is not None:
        _detect_node(root, stack, pkg)
    elif gomod:
        _detect_go(root, stack, gomod)
    elif (root / "index.html").is_file():
        stack.kind, stack.port, stack.health = "static", 8080, "/"
        stack.evidence.append("index.html: a static site")
    if stack.kind in ("python", "node", "go"):
        suffix = {"python": (".py",), "node": (".js", ".mjs", ".cjs", ".ts"), "go": (".go",)}[stack.kind]
        files = _sources(root, suffix)
        text = "\n".join(_read(p) for p in files)
        if re.search(r"[\"'`]/health[\"'`/]", text):
            stack.health = "/health"
        stack.app_vars = _read_vars(text, stack.kind)
    if existing_compose:
        _read_compose(root, stack)
    return stack


def _detect_python(root: Path, stack: Stack, deps: str) -> None:
    stack.kind, stack.port = "python", 8000
    stack.python_deps = "requirements.txt" if (root / "requirements.txt").is_file() else (
        "pyproject.toml" if (root / "pyproject.toml").is_file() else None)
    files = _sources(root, (".py",))
    if _has_dep(deps, "fastapi"):
        stack.framework = "fastapi"
        module, var = _find_app(root, files, r"^(\w+)\s*(?::\s*\w+\s*)?=\s*FastAPI\(") or ("main", "app")
        stack.entry = ["uvicorn", f"{module}:{var}", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers"]
        if not _has_dep(deps, "uvicorn"):
            stack.extra_pip.append(UVICORN)
    elif _has_dep(deps, "django") or (root / "manage.py").is_file():
        stack.framework = "django"
        wsgi = next((p for p in files if p.name == "wsgi.py"), None)
        module = _module(root, wsgi) if wsgi else f"{stack.name.replace('-', '_')}.wsgi"
        stack.entry = ["gunicorn", f"{module}:application", "--bind", "0.0.0.0:8000", "--workers", "2"]
        if not _has_dep(deps, "gunicorn"):
            stack.extra_pip.append(GUNICORN)
    elif _has_dep(deps, "flask"):
        stack.framework = "flask"
        module, var = _find_app(root, files, r"^(\w+)\s*=\s*Flask\(") or ("app", "app")
        stack.entry = ["gunicorn", f"{module}:{var}", "--bind", "0.0.0.0:8000", "--workers", "2"]
        if not _has_dep(deps, "gunicorn"):
            stack.extra_pip.append(GUNICORN)
    else:
        main = next((p for p in ("main.py", "app.py") if (root / p).is_file()), "main.py")
        stack.entry = ["python", main]
    stack.evidence.append(f"Python{' (' + stack.framework + ')' if stack.framework else ''} from "
                          f"{stack.python_deps or 'manage.py'}")
    stack.postgres = _has_dep(deps, "psycopg", "psycopg2", "psycopg2-binary", "psycopg-binary", "asyncpg",
                              "psycopg[binary]", "pg8000", "dj-database-url")
    stack.asyncpg_sqlalchemy = _has_dep(deps, "asyncpg") and _has_dep(deps, "sqlalchemy", "sqlmodel")
    stack.redis = _has_dep(deps, "redis", "aioredis", "hiredis", "django-redis", "rq", "celery[redis]")
    _evidence_services(stack)


def _find_app(root: Path, files: list[Path], pattern: str) -> tuple[str, str] | None:
    for path in sorted(files, key=lambda p: (len(p.relative_to(root).parts), p.name not in ("main.py", "app.py"))):
        m = re.search(pattern, _read(path), re.M)
        if m:
            return _module(root, path), m.group(1)
    return None


def _module(root: Path, path: Path) -> str:
    return ".".join(path.relative_to(root).with_suffix("").parts)


def _package_json(root: Path) -> dict | None:
    path = root / "package.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(_read(path) or "{}")
    except json.JSONDecodeError as exc:
        raise UsageError(f"package.json is not valid JSON: {exc.msg}", where=f"{path}:{exc.lineno}",
                         fix="fix package.json first") from None
    return data if isinstance(data, dict) else {}


def _detect_node(root: Path, stack: Stack, pkg: dict) -> None:
    deps = {**(pkg.get("dependencies") or {}), **(pkg.get("devDependencies") or {})}
    runtime = pkg.get("dependencies") or {}
    scripts = pkg.get("scripts") or {}
    stack.node_lock = (root / "package-lock.json").is_file()
    stack.node_build = "build" in scripts
    if not runtime and stack.node_build and (root / "index.html").is_file() and "start" not in scripts:
        stack.kind, stack.port = "static", 8080
        stack.evidence.append("package.json with a build script and index.html: a static site built with node")
        return
    stack.kind, stack.port = "node", 3000
    main = None
    start = str(scripts.get("start", ""))
    m = re.fullmatch(r"\s*node\s+([\w./-]+)\s*", start)
    if m:
        main = m.group(1)
    main = main or pkg.get("main") or next((f for f in ("server.js", "index.js", "app.js", "src/index.js",
                                                         "src/server.js") if (root / f).is_file()), "index.js")
    stack.entry = ["node", str(main)]
    text = "\n".join(_read(p) for p in _sources(root, (".js", ".mjs", ".cjs", ".ts"))[:100])
    port = re.search(r"PORT\s*(?:\|\||\?\?)\s*(\d{2,5})", text) or re.search(r"\.listen\(\s*(\d{2,5})", text)
    if port:
        stack.port = int(port.group(1))
    frameworks = sorted(k for k in runtime if k in ("express", "fastify", "koa", "next", "@nestjs/core", "hapi"))
    stack.evidence.append("Node from package.json" + (f" ({', '.join(frameworks)})" if frameworks else ""))
    stack.postgres = any(k in deps for k in ("pg", "postgres", "pg-promise", "slonik"))
    stack.redis = any(k in deps for k in ("redis", "ioredis", "bullmq", "bull", "@redis/client"))
    _evidence_services(stack)


def _detect_go(root: Path, stack: Stack, gomod: str) -> None:
    stack.kind, stack.port = "go", 8080
    m = re.search(r"^go\s+(\d+\.\d+)", gomod, re.M)
    if m:
        stack.go_version = m.group(1)
    text = "\n".join(_read(p) for p in _sources(root, (".go",))[:100])
    port = re.search(r"\"(?:0\.0\.0\.0)?:(\d{2,5})\"", text)
    if port:
        stack.port = int(port.group(1))
    stack.entry = ["/app/server"]
    stack.evidence.append("Go from go.mod")
    stack.postgres = bool(re.search(r"github\.com/(jackc/pgx|lib/pq)", gomod))
    stack.redis = bool(re.search(r"github\.com/(redis/go-redis|go-redis/redis|gomodule/redigo)", gomod))
    _evidence_services(stack)


def _evidence_services(stack: Stack) -> None:
    if stack.postgres:
        stack.evidence.append("PostgreSQL: a postgres driver is a dependency")
    if stack.redis:
        stack.evidence.append("Redis: a redis client is a dependency")


_VAR_PATTERNS = {
    "python": [r"os\.environ\[\s*[\"']([A-Z][A-Z0-9_]+)[\"']", r"os\.environ\.get\(\s*[\"']([A-Z][A-Z0-9_]+)[\"']",
               r"os\.getenv\(\s*[\"']([A-Z][A-Z0-9_]+)[\"']", r"env(?:\.str|\.int|\.bool)?\(\s*[\"']([A-Z][A-Z0-9_]+)[\"']"],
    "node": [r"process\.env\.([A-Z][A-Z0-9_]+)", r"process\.env\[\s*[\"']([A-Z][A-Z0-9_]+)[\"']"],
    "go": [r"os\.Getenv\(\s*\"([A-Z][A-Z0-9_]+)\"", r"os\.LookupEnv\(\s*\"([A-Z][A-Z0-9_]+)\""],
}


def _read_vars(text: str, kind: str) -> list[str]:
    found: dict[str, None] = {}
    for pattern in _VAR_PATTERNS.get(kind, []):
        for m in re.finditer(pattern, text):
            if m.group(1) not in _IGNORED_VARS:
                found[m.group(1)] = None
    return list(found)


def _read_compose(root: Path, stack: Stack) -> None:
    from berth.model.compose.file import load_compose_file
    from berth.model.compose.interpolation import InterpolationError, find_references

    cf = load_compose_file(root / stack.compose)
    names: dict[str, None] = {}
    for scalar in cf.scalars:
        if "$" not in scalar.value:
            continue
        try:
            for ref in find_references(scalar.value):
                names[ref.name] = None
                if ref.has_default and ref.argument and "$" not in ref.argument:
                    stack.compose_defaults.setdefault(ref.name, ref.argument)
        except InterpolationError:
            continue
    stack.compose_vars = list(names)
    stack.compose_services = {str(k): v for k, v in cf.services.items() if isinstance(v, dict)}
    stack.evidence.append(f"{stack.compose}: {len(stack.compose_services)} service(s), kept as it is")
    images = " ".join(str(s.get("image", "")) for s in stack.compose_services.values())
    stack.postgres = stack.postgres or "postgres" in images
    stack.redis = stack.redis or "redis" in images


# --------------------------------------------------------------------------- file contents


def _healthcheck_test(stack: Stack) -> list[str]:
    url = f"http://127.0.0.1:{stack.port}{stack.health}"
    if stack.kind == "python":
        return ["CMD", "python", "-c", f"import urllib.request; urllib.request.urlopen('{url}', timeout=3)"]
    if stack.kind == "node":
        return ["CMD", "node", "-e", f"require('http').get('{url}', r => process.exit(r.statusCode < 400 ? 0 : 1))"
                                     ".on('error', () => process.exit(1))"]
    return ["CMD", "wget", "-q", "-O", "/dev/null", url]


def dockerfile(stack: Stack) -> str:
    hc = json.dumps(_healthcheck_test(stack)[1:])
    head = "# Generated by berth init: a build stage, then a small runtime image that runs as a non-root user.\n"
    health = f"HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 CMD {hc}\n"
    if stack.kind == "python":
        if stack.python_deps == "requirements.txt":
            install = "COPY requirements.txt ./\nRUN pip install -r requirements.txt" + \
                      (f" {' '.join(stack.extra_pip)}" if stack.extra_pip else "") + "\n"
        elif stack.python_deps == "pyproject.toml":
            install = "COPY . .\nRUN pip install ." + (f" {' '.join(stack.extra_pip)}" if stack.extra_pip else "") + "\n"
        else:
            install = f"RUN pip install {' '.join(stack.extra_pip) or 'pip'}\n"
        return (f"{head}FROM {PYTHON_IMAGE} AS builder\n"
                "ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1\n"
                "WORKDIR /src\n"
                "RUN python -m venv /opt/venv\n"
                'ENV PATH="/opt/venv/bin:$PATH"\n'
                f"{install}\n"
                f"FROM {PYTHON_IMAGE} AS runtime\n"
                'ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH="/opt/venv/bin:$PATH"\n'
                "RUN useradd --system --create-home --uid 10001 app\n"
                "WORKDIR /app\n"
                "COPY --from=builder /opt/venv /opt/venv\n"
                "COPY --chown=app:app . .\n"
                "USER app\n"
                f"EXPOSE {stack.port}\n"
                f"{health}"
                f"CMD {json.dumps(stack.entry)}\n")
    if stack.kind == "node":
        install = "npm ci" if stack.node_lock else "npm install"
        return (f"{head}FROM {NODE_IMAGE} AS builder\n"
                "WORKDIR /app\n"
                "COPY package*.json ./\n"
                f"RUN {install}\n"
                "COPY . .\n"
                "RUN npm run build --if-present && npm prune --omit=dev\n\n"
                f"FROM {NODE_IMAGE} AS runtime\n"
                "ENV NODE_ENV=production\n"
                "WORKDIR /app\n"
                "COPY --from=builder --chown=node:node /app /app\n"
                "USER node\n"
                f"EXPOSE {stack.port}\n"
                f"{health}"
                f"CMD {json.dumps(stack.entry)}\n")
    if stack.kind == "go":
        return (f"{head}FROM golang:{stack.go_version}-alpine AS builder\n"
                "WORKDIR /src\n"
                "COPY go.* ./\n"
                "RUN go mod download\n"
                "COPY . .\n"
                "RUN CGO_ENABLED=0 go build -trimpath -ldflags=\"-s -w\" -o /out/server .\n\n"
                f"FROM {ALPINE_IMAGE} AS runtime\n"
                "RUN adduser -D -H -u 10001 app\n"
                "COPY --from=builder /out/server /app/server\n"
                "USER app\n"
                f"EXPOSE {stack.port}\n"
                f"{health}"
                f"CMD {json.dumps(stack.entry)}\n")
    # static: built with node when package.json has a build script, else copied as it is
    if stack.node_build:
        install = "npm ci" if stack.node_lock else "npm install"
        build = (f"FROM {NODE_IMAGE} AS builder\nWORKDIR /app\nCOPY package*.json ./\nRUN {install}\nCOPY . .\n"
                 "RUN npm run build\n\n")
        copy = "COPY --from=builder /app/dist /usr/share/nginx/html\n"
    else:
        build = (f"FROM {ALPINE_IMAGE} AS builder\nWORKDIR /site\nCOPY . .\n"
                 "RUN rm -rf Dockerfile docker-compose.yml berth.toml docs/DEPLOYMENT.md .git* .env* .dockerignore\n\n")
        copy = "COPY --from=builder /site /usr/share/nginx/html\n"
    return (f"{head}{build}"
            f"FROM {NGINX_IMAGE} AS runtime\n"
            "# the unprivileged nginx image runs as user nginx (uid 101) and listens on 8080\n"
            f"{copy}"
            "USER 101\n"
            "EXPOSE 8080\n"
            f"{health}")


def compose(stack: Stack) -> str:
    svc = stack.service
    port = stack.port
    lines = [
        "# Generated by berth init. The same file runs locally and on the server; berth check keeps it honest.",
        "# Variables come from .env.docker (see .env.docker.example); berth ships that file to the server.",
        "services:",
        f"  {svc}:",
        "    build: .",
        "    init: true",
        "    restart: unless-stopped",
    ]
    if stack.kind != "static":
        lines.append("    env_file: .env.docker")
    lines += [
        "    ports:",
        f"      - \"${{APP_PORT:-{port}}}:{port}\"",
        "    healthcheck:",
        f"      test: {json.dumps(_healthcheck_test(stack))}",
        "      interval: 10s",
        "      timeout: 3s",
        "      retries: 5",
        "      start_period: 20s",
    ]
    deps = [d for d, on in (("db", stack.postgres), ("redis", stack.redis)) if on]
    if deps:
        lines.append("    depends_on:")
        for d in deps:
            lines += [f"      {d}:", "        condition: service_healthy"]
    lines += _limits("1.0", "512M")
    if deps:
        lines += ["    networks:", "      - default", "      - backend"]
    if stack.postgres:
        lines += [
            "",
            "  db:",
            f"    image: {POSTGRES_IMAGE}",
            "    restart: unless-stopped",
            "    environment:",
            "      POSTGRES_USER: ${POSTGRES_USER}",
            "      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD}",
            "      POSTGRES_DB: ${POSTGRES_DB}",
            "    volumes:",
            "      - db-data:/var/lib/postgresql/data",
            "    healthcheck:",
            "      test: [\"CMD-SHELL\", \"pg_isready -U \\\"$${POSTGRES_USER}\\\" -d \\\"$${POSTGRES_DB}\\\"\"]",
            "      interval: 5s",
            "      timeout: 3s",
            "      retries: 10",
            *_limits("1.0", "1G"),
            "    networks:",
            "      - backend",
        ]
    if stack.redis:
        lines += [
            "",
            "  redis:",
            f"    image: {REDIS_IMAGE}",
            "    restart: unless-stopped",
            "    # the password reaches redis-server as config on stdin, never as an argument (`ps` shows those)",
            "    command: [\"sh\", \"-c\", \"exec redis-server - <<EOF\\nrequirepass $${REDIS_PASSWORD}\\nappendonly yes\\nEOF\\n\"]",
            "    environment:",
            "      REDIS_PASSWORD: ${REDIS_PASSWORD}",
            "      REDISCLI_AUTH: ${REDIS_PASSWORD}",
            "    volumes:",
            "      - redis-data:/data",
            "    healthcheck:",
            "      test: [\"CMD\", \"redis-cli\", \"ping\"]",
            "      interval: 5s",
            "      timeout: 3s",
            "      retries: 10",
            *_limits("0.5", "256M"),
            "    networks:",
            "      - backend",
        ]
    if deps:
        lines += ["", "networks:", "  backend:",
                  "    internal: true  # the database and cache are reachable only from the app, never from outside",
                  "", "volumes:"]
        lines += [f"  {v}:" for v, on in (("db-data", stack.postgres), ("redis-data", stack.redis)) if on]
    return "\n".join(lines) + "\n"


def _limits(cpus: str, memory: str) -> list[str]:
    return ["    deploy:", "      resources:", "        limits:", f"          cpus: \"{cpus}\"",
            f"          memory: {memory}"]


@dataclass
class Var:
    key: str
    value: str
    comment: str
    secret: bool = False


def app_variables(stack: Stack) -> list[Var]:
    """Every variable the app's env file needs: what compose interpolates, and what the app reads."""
    from berth.scaffold.secrets import is_secret_name, provider_of

    out: dict[str, Var] = {}

    def add(key: str, value: str, comment: str | None = None, secret: bool = False) -> None:
        if key not in out:
            out[key] = Var(key, value, comment or MEANINGS.get(key, "set by you"), secret)

    if stack.compose is None:
        add("APP_PORT", str(stack.port))
    if stack.kind in ("python", "node", "go"):
        add("APP_ENV", "production")
    if stack.postgres:
        db = re.sub(r"[^a-z0-9_]", "_", stack.name)
        scheme = "postgresql+asyncpg" if stack.asyncpg_sqlalchemy else "postgresql"
        add("POSTGRES_USER", db)
        add("POSTGRES_PASSWORD", "change_me", secret=True)
        add("POSTGRES_DB", db)
        add("DATABASE_URL", f"{scheme}://{db}:change_me@db:5432/{db}")
    if stack.redis:
        add("REDIS_PASSWORD", "change_me", secret=True)
        add("REDIS_URL", "redis://:change_me@redis:6379/0")
    for key in [*stack.compose_vars, *stack.app_vars]:
        if key == "PORT":
            add(key, str(stack.port))
            continue
        provider = provider_of(key)
        if provider:
            add(key, "change_me", f"from {provider[0]} ({provider[1]}); berth cannot generate it", secret=True)
        elif is_secret_name(key):
            add(key, "change_me", MEANINGS.get(key, "a secret: berth secrets generate makes one"), secret=True)
        else:
            users = _users_of(stack, key)
            add(key, stack.compose_defaults.get(key, ""), MEANINGS.get(key, f"read by {users}" if users else "read by the app"))
    return list(out.values())


def _users_of(stack: Stack, key: str) -> str:
    if key in stack.compose_vars and stack.compose:
        return stack.compose
    return ""


def app_env_example(stack: Stack) -> str:
    head = ["# App settings and secrets for docker compose (written by berth init).",
            "# Copy to .env.docker, or run `berth secrets generate` to create it with strong secrets;",
            "# .env.docker is never committed: berth ships it to the server over SSH (mode 0600)."]
    body = []
    for var in app_variables(stack):
        body += ["", f"# {var.comment}", f"{var.key}={var.value}"]
    return "\n".join(head + body) + "\n"


def dotenv_example(stack: Stack) -> str:
    url = f"http://203.0.113.10:{stack.port}{stack.health}"
    rows = [
        ("SERVER_IP", "203.0.113.10"),
        ("SERVER_USER", "deploy"),
        ("PEM_KEY_PATH", ""),
        ("ENVIRONMENT", "staging"),
        ("HEALTH_URL", url),
        ("BERTH_PROXY", "true"),
    ]
    lines = ["# Deploy settings for berth (written by berth init). Copy to .env and fill in; never commit .env."]
    for key, value in rows:
        lines += ["", f"# {MEANINGS[key]}", f"{key}={value}"]
    return "\n".join(lines) + "\n"


GITIGNORE_ENTRIES = [".env", ".env.docker", ".env.local", ".env.*.local", ".env.production", ".env.staging",
                     "*.pem", "*.key", "id_rsa", "id_ed25519"]
DOCKERIGNORE = """\
# Written by berth init: what never goes into the image (secrets, git, local clutter).
.git
.env
.env.*
*.pem
*.key
id_rsa
id_ed25519
node_modules
__pycache__
*.pyc
.venv
venv
.pytest_cache
.mypy_cache
berth.toml
docs/DEPLOYMENT.md
"""


def gitignore(existing: str) -> str:
    present = {line.strip() for line in existing.splitlines()}
    missing = [e for e in GITIGNORE_ENTRIES if e not in present]
    if not missing:
        return existing
    block = "# real env files and keys: never commit them (berth init)\n" + "\n".join(missing) + "\n"
    if not existing:
        return block
    return existing + ("" if existing.endswith("\n") else "\n") + "\n" + block


def berth_toml(stack: Stack) -> str:
    health = f"http://{{host}}:{stack.port}{stack.health}"
    return f"""\
# Environments for berth deploy -e NAME (written by berth init; docs/CONFIG.md lists every key).
[defaults]
user = "deploy"
app_dir = "~/{stack.name}"
proxy = true  # start-first deploys behind berth's proxy: no request dropped
# domains = {{ {stack.service} = ["app.example.com"] }}  # HTTPS by ACME (Let's Encrypt) for these names; docs/CONFIG.md

[environments.staging]
hosts = ["203.0.113.10"]
branch = "main"
health_urls = ["{health.format(host="203.0.113.10")}"]

[environments.production]
hosts = ["203.0.113.20"]
branch = "main"
confirm = true
verify_timeout = 180
health_urls = ["{health.format(host="203.0.113.20")}"]
"""


def _port_text(item) -> str:
    """A ports: entry as the server publishes it: `8080→80/tcp`, `127.0.0.1:5432→5432/tcp`, `80/tcp` (internal)."""
    from berth.model.compose.services import parse_port

    port = parse_port(item)
    targets = f"{port.targets[0]}-{port.targets[-1]}" if len(port.targets) > 1 else str(port.targets[0])
    if port.published is None:
        return f"{targets}/{port.protocol} (random host port)"
    host = f"{port.host_ip}:" if port.host_ip else ""
    return f"{host}{port.published}→{targets}/{port.protocol}"


def deployment_doc(root: Path, stack: Stack, files: dict[str, str]) -> str:
    """docs/DEPLOYMENT.md from the configuration as it will be: the planned files, else the existing ones."""
    from berth.model.envfile import parse_env_text

    def text_of(rel: str) -> str:
        if rel in files:
            return files[rel]
        path = root / rel
        return _read(path) if path.is_file() else ""

    out = [f"# Deploying {stack.name}", "",
           "This app runs with docker compose on your own servers and is deployed with "
           "berth: it checks the repository, the server fetches the exact commit by "
           "git, the app's env file travels over SSH, `docker compose up` starts it and berth verifies that it is "
           "healthy (or rolls back). This file was generated by `berth init` from the configuration below; "
           "`berth init --force` regenerates it.", ""]
    # environments and servers
    out += ["## Servers and environments", ""]
    toml_text = text_of("berth.toml")
    envs = []
    if toml_text:
        import tomllib

        try:
            data = tomllib.loads(toml_text)
        except (tomllib.TOMLDecodeError, RecursionError):
            data = {}
        defaults = data.get("defaults", {})
        for name, env in (data.get("environments") or {}).items():
            merged = {**defaults, **env}
            envs.append((name, ", ".join(merged.get("hosts", [])) or "(none)", merged.get("user", "(ssh default)"),
                         merged.get("branch", "(current)"), ", ".join(merged.get("health_urls", [])) or "(none)"))
    dotenv = text_of(".env") or text_of(".env.example")
    if dotenv and not envs:
        values = parse_env_text(dotenv, root / ".env").values()
        envs.append((values.get("ENVIRONMENT", "staging"), values.get("SERVER_IP", "(unset)") or "(unset)",
                     values.get("SERVER_USER") or "(ssh default)", values.get("GIT_BRANCH") or "(current)",
                     values.get("HEALTH_URL") or "(none)"))
    if envs:
        out += ["| environment | hosts | SSH user | branch | health URL |", "| --- | --- | --- | --- | --- |"]
        out += [f"| {' | '.join(str(c) for c in row)} |" for row in envs]
        out += ["", "`.env` describes one environment (the one its ENVIRONMENT names); berth.toml describes several "
                    "(docs/CONFIG.md of berth). Example addresses (203.0.113.x) must be replaced with your servers.", ""]
    # services
    compose_text = text_of(stack.compose or "docker-compose.yml")
    services = {}
    if compose_text:
        from berth.errors import UsageError
        from berth.model.compose.file import parse_compose_text

        try:  # as berth reads it: an alias bomb is refused before it is expanded
            services = parse_compose_text(compose_text, root / (stack.compose or "docker-compose.yml")).services
        except UsageError:
            services = {}
    if services:
        from berth.model.compose.interpolation import InterpolationError, MissingRequiredVariable, interpolate
        from berth.model.compose.profiles import active_profiles, profile_enabled
        from berth.model.compose.services import parse_port

        example = text_of(".env.docker.example")
        example_env = parse_env_text(example, root / ".env.docker.example").values() if example else {}
        starts = active_profiles(example_env)

        def port_of(item):  # as compose reads it with the example's values (${APP_PORT:-8000}:8000 → 8000:8000)
            try:
                return interpolate(item, example_env) if isinstance(item, str) else item
            except (InterpolationError, MissingRequiredVariable):
                return None
        out += ["## Services", "", f"From `{stack.compose or 'docker-compose.yml'}`:", "",
                "| service | image / build | ports | healthcheck | waits for |", "| --- | --- | --- | --- | --- |"]
        for name, svc in services.items():
            if not isinstance(svc, dict):
                continue
            image = svc.get("image") or ("build " + str(svc.get("build", {}).get("context", ".")
                                                        if isinstance(svc.get("build"), dict) else svc.get("build")))
            shown = [p for p in map(port_of, svc.get("ports") or []) if parse_port(p) is not None]
            ports = ", ".join(map(_port_text, shown)) or "internal only"
            if not profile_enabled(svc.get("profiles"), starts):
                name = f"{name} (profile {', '.join(map(str, svc['profiles']))}: not started by default)"
            hc = "yes" if svc.get("healthcheck") else "from the image" if svc.get("build") else "no"
            deps = svc.get("depends_on") or []
            deps = ", ".join(deps if isinstance(deps, list) else list(deps)) or "-"
            out.append(f"| {name} | `{image}` | `{ports}` | {hc} | {deps} |")
        out.append("")
    # variables
    out += ["## Configuration", ""]
    for rel, real, what in ((".env.example", ".env", "deploy settings, read by berth on your machine"),
                            (".env.docker.example", ".env.docker",
                             "the app's settings and secrets, shipped to the server as a 0600 file")):
        text = text_of(rel)
        if not text:
            continue
        out += [f"### `{real}`: {what}", "", f"Listed in `{rel}` (committed); `{real}` itself is never committed.",
                "", "| variable | meaning | secret |", "| --- | --- | --- |"]
        out += [f"| `{k}` | {meaning} | {secret} |" for k, meaning, secret in _documented(text, root / rel)]
        out.append("")
    # commands
    out += [
        "## First deploy", "",
        "```sh",
        "cp .env.example .env            # then set SERVER_IP, SERVER_USER, PEM_KEY_PATH, ENVIRONMENT",
        "berth secrets generate          # creates .env.docker from .env.docker.example with strong secrets",
        "                                # keys it lists as 'needs' come from a third party: paste them in",
        "berth check                     # everything berth verifies before it touches a server",
        "berth deploy --push             # push HEAD, deploy, verify",
        "```", "",
        "## Day to day", "",
        "| what | command |", "| --- | --- |",
        "| deploy the current commit | `berth deploy --push` |",
        "| deploy to production | `berth -e production deploy --push` (asks you to type the name) |",
        "| see what would happen | `berth plan` |",
        "| what runs, and is it healthy | `berth status` |",
        "| read logs (secrets masked) | `berth logs` / `berth logs -f " + stack.service + "` |",
        "| something is wrong: why, and the fix | `berth doctor` (`-e production` for production) |",
        "| roll back to the previous good release | `berth rollback` (`berth releases` lists them) |",
        "| who deployed what | `berth audit` |",
        "| new secret | `berth secrets rotate NAME`, then `berth deploy` |",
        "| stop deploys during maintenance | `berth lock acquire -m \"why\"` / `berth lock release` |",
        "",
        "A deploy that fails verification is rolled back automatically to the last good release. Database "
        "passwords: PostgreSQL keeps the password it was first started with in its volume, so rotating "
        "POSTGRES_PASSWORD needs an `ALTER USER ... PASSWORD` in the database as well.", "",
    ]
    return "\n".join(out)


def _documented(text: str, path: Path) -> list[tuple[str, str, str]]:
    from berth.model.envfile import parse_env_text
    from berth.scaffold.secrets import is_secret_name

    env = parse_env_text(text, path)
    lines = env.lines
    rows = []
    for e in env.entries:
        comments = []
        n = e.line - 2
        while n >= 0 and lines[n].lstrip().startswith("#"):
            comments.insert(0, lines[n].lstrip("# ").strip())
            n -= 1
        meaning = " ".join(comments) or MEANINGS.get(e.key, "")
        secret = "yes" if is_secret_name(e.key) or "://" in (e.value or "") and "@" in (e.value or "") else ""
        rows.append((e.key, meaning.replace("|", "\\|"), secret))
    return rows


# --------------------------------------------------------------------------- plan and apply


@dataclass
class Planned:
    path: str  # relative to the repository
    content: str
    action: str  # create, replace, update, skip, same
    reason: str = ""
    old: str | None = None
    mode: int | None = None


def plan(root: Path, *, force: bool = False, with_toml: bool = False) -> tuple[Stack, list[Planned]]:
    root = Path(root)
    stack = detect(root)
    if stack.kind == "unknown" and stack.compose is None and stack.dockerfile is None:
        raise UsageError("berth init cannot tell what this repository holds: no requirements.txt, pyproject.toml, "
                         "package.json, go.mod, index.html, Dockerfile or compose file", where=str(root),
                         fix="run berth init in the app's repository (or -C DIR), or write a Dockerfile first")
    files: dict[str, str] = {}
    reasons: dict[str, str] = {}
    if stack.compose is None:
        files["docker-compose.yml"] = compose(stack)
        reasons["docker-compose.yml"] = f"service {stack.service}" + "".join(
            f" + {s}" for s, on in (("db (PostgreSQL)", stack.postgres), ("redis", stack.redis)) if on)
    if stack.dockerfile is None and stack.kind != "unknown" and _builds_here(stack):
        files["Dockerfile"] = dockerfile(stack)
        reasons["Dockerfile"] = f"{stack.kind} build → runtime image, non-root, HEALTHCHECK on {stack.health}"
        files[".dockerignore"] = DOCKERIGNORE
        reasons[".dockerignore"] = "keeps env files, keys and .git out of the image"
    files[".env.docker.example"] = app_env_example(stack)
    files[".env.example"] = dotenv_example(stack)
    if with_toml:
        files["berth.toml"] = berth_toml(stack)
    files["docs/DEPLOYMENT.md"] = deployment_doc(root, stack, files)
    out: list[Planned] = []
    for rel, content in files.items():
        path = root / rel
        if path.exists():
            old = _read(path) if path.is_file() else None
            if old == content:
                out.append(Planned(rel, content, "same", "already as berth init would write it", old))
            elif force and path.is_file():
                out.append(Planned(rel, content, "replace", reasons.get(rel, "--force"), old))
            else:
                out.append(Planned(rel, content, "skip", "exists (--force replaces it)", old))
        else:
            out.append(Planned(rel, content, "create", reasons.get(rel, ""), None))
    gi_path = root / ".gitignore"
    old_gi = _read(gi_path) if gi_path.is_file() else ""
    new_gi = gitignore(old_gi)
    if new_gi != old_gi:
        out.append(Planned(".gitignore", new_gi, "update" if gi_path.exists() else "create",
                           "real env files and keys ignored", old_gi if gi_path.exists() else None))
    else:
        out.append(Planned(".gitignore", new_gi, "same", "already ignores env files and keys", old_gi))
    return stack, out


def _builds_here(stack: Stack) -> bool:
    """An existing compose file that builds nothing needs no Dockerfile."""
    if stack.compose is None:
        return True
    return any("build" in s for s in stack.compose_services.values())


def diff(planned: list[Planned]) -> str:
    chunks = []
    for p in planned:
        if p.action not in ("create", "replace", "update"):
            continue
        old = (p.old or "").splitlines(keepends=True)
        new = p.content.splitlines(keepends=True)
        fromfile = "/dev/null" if p.old is None else f"a/{p.path}"
        chunks.append("".join(difflib.unified_diff(old, new, fromfile, f"b/{p.path}")))
    return "".join(c if c.endswith("\n") else c + "\n" for c in chunks)


def apply(root: Path, planned: list[Planned]) -> list[Planned]:
    written = []
    for p in planned:
        if p.action not in ("create", "replace", "update"):
            continue
        path = Path(root) / p.path
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = (path.stat().st_mode & 0o777) if path.exists() else 0o644
        tmp = path.with_name(f".{path.name}.berth-init.tmp")
        tmp.write_text(p.content, encoding="utf-8")
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        written.append(p)
    return written
