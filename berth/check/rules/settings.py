"""Deployment settings (.env / berth.toml) hold usable values."""

from __future__ import annotations

from urllib.parse import urlsplit

from berth.check.findings import Severity, finding, rule
from berth.configuration.target import HOST_FIX, USER_FIX, bool_setting, host_problem, setting_spec, user_problem
from berth.errors import UsageError


def _at(ctx, name):
    s = ctx.target.settings.get(name)
    return (s.file, s.line) if s else (ctx.dotenv_path if ctx.dotenv_path.exists() else None, None)


@rule("settings.environment", Severity.ERROR, "ENVIRONMENT is not an allowed value",
      "set ENVIRONMENT to development, staging or production (or an environment defined in berth.toml)")
def environment_allowed(ctx):
    t = ctx.target
    if t.environment not in t.defined_environments:
        file = ctx.dotenv_path if t.dotenv and "ENVIRONMENT" in t.dotenv else None
        line = t.dotenv.line_of("ENVIRONMENT") if file else None
        yield finding(f"environment '{t.environment}' is not one of {', '.join(t.defined_environments)}", file, line)


@rule("settings.no-hosts", Severity.ERROR, "no server to deploy to",
      "set SERVER_IP in .env, or hosts = [...] for this environment in berth.toml")
def hosts_present(ctx):
    if not ctx.target.get("hosts"):  # the raw setting: Target.hosts refuses unusable hosts (settings.host)
        s = ctx.target.settings.get("hosts")
        # `hosts = []` in berth.toml is the line to fix; otherwise .env is where SERVER_IP would go
        file, line = (s.file, s.line) if s and s.file and s.file.name == "berth.toml" else (
            ctx.dotenv_path if ctx.dotenv_path.exists() else None, None)
        yield finding(f"no host is configured for the {ctx.target.environment} environment", file, line)


@rule("settings.port", Severity.ERROR, "SERVER_PORT is not a port number", "use a whole number from 1 to 65535")
def port_valid(ctx):
    port = ctx.target.get("port")
    if port is None:
        return
    if not str(port).isdigit() or not 0 < int(port) < 65536:
        file, line = _at(ctx, "port")
        yield finding(f"port {port!r} is not a number from 1 to 65535", file, line)


@rule("settings.health-url", Severity.ERROR, "a health URL is not an http(s) URL",
      "write the full URL, e.g. http://203.0.113.5:8080/health")
def health_urls_valid(ctx):
    for url in ctx.target.health_urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            file, line = _at(ctx, "health_urls")
            yield finding(f"health URL {url!r} is not an http:// or https:// URL with a host", file, line)


@rule("settings.host", Severity.ERROR, "a host is not a usable address or ssh alias", HOST_FIX)
def hosts_valid(ctx):
    # the same test as Target.hosts, which status, logs, doctor and deploy use: here as findings, every one
    for address in ctx.target.get("hosts", []):
        problem = host_problem(address)
        if problem:
            file, line = _at(ctx, "hosts")
            yield finding(f"host {address!r} {problem}: it is not an address or ssh alias", file, line)


@rule("settings.boolean", Severity.ERROR, "a yes/no setting in .env is not a boolean word",
      "write true or false (yes/no, on/off and 1/0 work too)")
def booleans_valid(ctx):
    # berth.toml's booleans are type-checked when it is read; .env values are words
    for name, s in ctx.target.settings.items():
        env_key, kind = setting_spec(name) or (None, "")
        if kind == "bool" and isinstance(s.value, str) and s.value.strip() and bool_setting(s.value) is None:
            yield finding(f"{env_key or name}={s.value!r} is not true or false; berth takes it as false", s.file, s.line)


@rule("settings.remote", Severity.ERROR, "the git remote starts with '-', so git would read it as an option",
      "set GIT_REMOTE in .env (remote in berth.toml) to a remote name such as origin or to a URL")
def remote_valid(ctx):
    refused = ctx.remote_error  # berth never passes such a value to git: not even git.unpushed's ls-remote
    if refused is None:
        return
    s = ctx.target.settings.get("remote")
    if s is not None and str(s.value).startswith("-"):
        yield finding(refused.what, s.file, s.line)
    else:  # the setting names a remote whose URL in .git/config starts with '-'
        yield finding(f"{refused.what} ({refused.where})", fix="git remote set-url origin URL, with a real URL")


@rule("settings.user", Severity.ERROR, "SERVER_USER is not a user name ssh can be given", USER_FIX)
def user_valid(ctx):
    user = ctx.target.get("user")
    problem = user_problem(user) if user is not None else None
    if problem:
        file, line = _at(ctx, "user")
        yield finding(f"SERVER_USER {user!r} {problem}", file, line)


@rule("settings.verify-timeout", Severity.ERROR, "VERIFY_TIMEOUT is not a whole number of seconds from 1 to 3600",
      "set VERIFY_TIMEOUT (or verify_timeout in berth.toml) to seconds, e.g. 90, or leave it out for the default")
def verify_timeout_valid(ctx):
    try:
        ctx.target.verify_timeout  # noqa: B018  (the property deploy, rollback and config use)
    except UsageError as exc:
        file, line = _at(ctx, "verify_timeout")
        yield finding(exc.what, file, line, fix=exc.fix)
