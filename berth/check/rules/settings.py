"""Deployment settings (.env / berth.toml) hold usable values."""

from __future__ import annotations

import difflib
import re
from urllib.parse import urlsplit

from berth.check.findings import Severity, finding, rule
from berth.configuration.target import HOST_FIX, USER_FIX, bool_setting, host_problem, setting_spec, user_problem
from berth.errors import BerthError, UsageError


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


@rule("settings.engine", Severity.ERROR, "engine is neither compose nor swarm",
      'write engine = "compose" (the default) or engine = "swarm"')
def engine_valid(ctx):
    try:
        ctx.target.engine  # noqa: B018  (the property deploy uses)
    except UsageError as exc:
        file, line = _at(ctx, "engine")
        yield finding(exc.what, file, line, fix=exc.fix)


@rule("settings.fleet", Severity.ERROR, "a setting of how a deploy goes over several hosts cannot be followed",
      'write parallel = 2 or "25%", canary = true or one of the hosts, batch_pause = seconds, on_failure = "rollback" '
      'or "stop", build = "each" or "once" (docs/FLEETS.md)')
def fleet_valid(ctx):
    try:
        ctx.target.fleet  # noqa: B018  (the property deploy uses)
    except UsageError as exc:
        name = exc.what.split(" ", 1)[0]
        file, line = _at(ctx, name)
        yield finding(exc.what, file, line, fix=exc.fix)


@rule("settings.roles", Severity.ERROR, "a role names a host or a service that does not exist",
      "list each role's hosts in hosts (or leave hosts out: the roles' hosts are the environment's), and name "
      "services of the compose file (docs/FLEETS.md)")
def roles_valid(ctx):
    from berth.model.compose.resolve import resolve_compose

    roles = ctx.target.roles
    if not roles:
        return
    file, line = _at(ctx, "roles")
    listed = [str(a) for a in ctx.target.get("hosts", [])]
    if listed and ctx.target.where("hosts") != "--host":
        for role in roles.values():
            for address in role.hosts:
                if address not in listed:
                    yield finding(f"role '{role.name}' names host {address!r}, which hosts does not list "
                                  f"({', '.join(listed)}): it would never be deployed", file, line)
    try:
        services = resolve_compose(ctx.target).model.get("services") or {}
    except BerthError:
        return  # the compose rules say why
    for role in roles.values():
        for service in role.services:
            if service not in services:
                yield finding(f"role '{role.name}' runs service {service!r}, which the compose file does not "
                              f"define (it has {', '.join(services) or 'none'})", file, line)


# a DNS host name a public CA issues for: labels of letters, digits and inner hyphens, at least two of them
_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
PROXY_PORTS = (80, 443)  # the proxy serves the domains there (and answers the ACME challenges)


def domain_problem(name: str) -> str | None:
    """Why berth's proxy cannot get a certificate for `name` by HTTP or TLS challenge; None when it can."""
    if "://" in name or "/" in name or ":" in name:
        return "is not a bare host name (write it without scheme, port or path)"
    if name.startswith("*."):
        return "is a wildcard, which needs the DNS challenge; name each host instead"
    labels = name.lower().rstrip(".").split(".")
    if len(name) > 253 or len(labels) < 2 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return "is not a DNS host name (letters, digits and hyphens, in at least two dot-separated labels)"
    if all(label.isdigit() for label in labels):
        return "is an IP address; ACME certificates name host names"
    return None


@rule("settings.domains", Severity.ERROR, "domains in berth.toml cannot be served by HTTPS",
      "name each service of the compose file with its public host names, e.g. domains = { web = [\"app.example.com\"] }; "
      "docs/ROLLOUTS.md (HTTPS) says what the proxy needs")
def domains_valid(ctx):
    from berth.model.compose.resolve import resolve_compose
    from berth.model.compose.rollout import RolloutSettingsError, settings_of, site_port

    domains = ctx.target.domains
    if not domains:
        return
    file, line = _at(ctx, "domains")
    if bool_setting(ctx.target.get("proxy")) is False:
        yield finding("domains are set, but proxy = false: berth's proxy is what serves them by HTTPS", file, line,
                      fix="remove proxy = false (domains turn the proxy on), or remove domains")
    seen: dict[str, str] = {}
    for service, names in domains.items():
        for name in names:
            problem = domain_problem(name)
            if problem:
                yield finding(f"domain {name!r} of {service} {problem}", file, line)
            elif name.lower() in seen and seen[name.lower()] != service:
                yield finding(f"domain {name!r} is named for both {seen[name.lower()]} and {service}; one host name "
                              "goes to one service", file, line)
            seen.setdefault(name.lower(), service)
    try:
        resolved = resolve_compose(ctx.target, ctx.app_env.values() if ctx.app_env else {})
    except BerthError:
        return  # the compose rules say why it cannot be read
    model, extensions = resolved.model.get("services") or {}, resolved.extensions
    for service in domains:
        svc = model.get(service)
        if svc is None:
            close = difflib.get_close_matches(service, list(model), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            yield finding(f"domains names the service {service!r}, which the compose file does not start{hint}",
                          file, line)
            continue
        if svc.get("network_mode"):
            yield finding(f"{service} has network_mode {svc['network_mode']!r}: the proxy cannot reach it by name, so "
                          "it cannot serve its domains", file, line)
            continue
        try:
            port = site_port(svc, settings_of(service, (extensions.get(service) or {}).get("x-berth")))
        except RolloutSettingsError:
            continue  # compose.x-berth's
        if port is None:
            yield finding(f"berth cannot tell which port of {service} speaks HTTP (it publishes or exposes none, or "
                          "several)", file, line, fix=f"set x-berth: {{http_port: PORT}} under {service} in the "
                          "compose file")
    for service, svc in model.items():
        for p in svc.get("ports") or []:
            if isinstance(p, dict) and str(p.get("published", "")) in {str(n) for n in PROXY_PORTS} \
                    and str(p.get("protocol", "tcp")) == "tcp":
                yield finding(f"{service} publishes port {p['published']}, which berth's proxy needs for the "
                              "domains' HTTPS and its redirect", file, line,
                              fix=f"remove that port from {service} (the proxy serves it by its domains), or "
                                  "publish it on another host port")


@rule("settings.acme", Severity.ERROR, "an ACME setting in berth.toml is not usable",
      "acme_ca is the https:// directory URL of your ACME server, acme_ca_root a PEM file of its root "
      "certificate, acme_email an address; leave them out for Let's Encrypt")
def acme_valid(ctx):
    from berth.model.certificate import CertificateError, validity

    t = ctx.target
    ca = t.get("acme_ca")
    if ca is not None:
        parts = urlsplit(str(ca))
        if parts.scheme != "https" or not parts.netloc:
            yield finding(f"acme_ca {ca!r} is not an https:// URL of an ACME directory", *_at(ctx, "acme_ca"))
    email = t.get("acme_email")
    if email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", str(email)):
        yield finding(f"acme_email {email!r} is not an email address", *_at(ctx, "acme_email"))
    root = t.local_path("acme_ca_root")
    if root is not None:
        try:
            validity(root.read_text(errors="replace")[:1024 * 1024])
        except OSError as exc:
            yield finding(f"acme_ca_root {root} cannot be read ({exc.strerror})", *_at(ctx, "acme_ca_root"))
        except CertificateError as exc:
            yield finding(f"acme_ca_root {root} is not a PEM certificate ({exc})", *_at(ctx, "acme_ca_root"))
    given = [k for k in ("acme_ca", "acme_email", "acme_ca_root") if t.get(k) is not None]
    if not t.domains and given:
        yield finding("ACME settings are set, but no domains: berth's proxy serves plain HTTP only", *_at(ctx, given[0]),
                      fix="add domains = { SERVICE = [\"host.example.com\"] } for this environment, or remove them")
