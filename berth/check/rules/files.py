"""Required files exist and can be read."""

from __future__ import annotations

import re

from berth.check.findings import Severity, finding, rule
from berth.configuration.target import COMPOSE_FILE_NAMES
from berth.model.envfile import example_of


@rule("files.missing", Severity.ERROR, "a file the deploy needs does not exist",
      "create it; for env files copy the .example and fill in the values")
def missing_files(ctx):
    for name in ctx.target.compose_files:
        if not (ctx.root / name).exists():
            if ctx.target.get("compose_files") is None:  # none of the names compose looks for is there
                yield finding(f"no compose file: none of {', '.join(COMPOSE_FILE_NAMES)} exists", ctx.root / name,
                              fix="add compose.yaml (or docker-compose.yml), or name the file with COMPOSE_FILES in .env "
                                  "or compose_files in berth.toml")
            else:
                yield finding(f"compose file {name} does not exist", ctx.root / name)
    if not ctx.app_env_path.exists():
        example = example_of(ctx.app_env_path)
        hint = f"cp {example.name} {ctx.target.env_file} and fill in the values" if example.exists() else None
        yield finding(f"{ctx.target.env_file} does not exist: compose on the server needs it", ctx.app_env_path, fix=hint)
    if not ctx.target.has_toml and not ctx.dotenv_path.exists():
        yield finding(".env with SERVER_IP, SERVER_USER, PEM_KEY_PATH and ENVIRONMENT does not exist", ctx.dotenv_path)


@rule("files.example-missing", Severity.WARNING, "an env file has no committed .example beside it",
      "commit NAME.example listing every key with a placeholder value, so others know what to set")
def missing_examples(ctx):
    for path in (ctx.dotenv_path, ctx.app_env_path):
        example = example_of(path)
        if path.exists() and not example.exists():
            yield finding(f"{path.name} has no {example.name}", example)


@rule("files.unreadable", Severity.ERROR, "a file is malformed (YAML, env syntax, encoding)",
      "fix the file at the position shown")
def unreadable_files(ctx):
    # touch the lazy loaders so their errors are collected
    ctx.app_env, ctx.compose_files  # noqa: B018
    for path, exc in ctx.load_errors:
        where = exc.where or str(path)
        line = col = None
        parts = where.rsplit(":", 2)
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            line, col = int(parts[1]), int(parts[2])
        elif len(parts) >= 2 and parts[-1].isdigit():
            line = int(parts[-1])
        yield finding(exc.what, path, line, col, fix=exc.fix)


@rule("env.syntax", Severity.ERROR, "a line in an env file cannot be parsed",
      "write KEY=value; quote values with spaces or special characters")
def env_syntax(ctx):
    for env in (ctx.target.dotenv, ctx.app_env):
        if env is None:
            continue
        for line, text in env.bad_lines:
            # never echo the line: it may hold a secret that the masker cannot know about
            key = re.match(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)", text)
            what = f"the line of {key.group(1)}" if key else "this line"
            hint = "check its quotes" if "=" in text else "write KEY=value"
            yield finding(f"cannot parse {what} ({hint})", env.path, line)
