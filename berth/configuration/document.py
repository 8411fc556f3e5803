"""The document `berth config` prints: the resolved compose model (berth.model.compose.resolve) with the
deployment settings and where each came from, masked by position."""

from __future__ import annotations

from typing import Any

from berth.configuration.target import Target
from berth.model.compose.resolve import field_of, resolve_compose

# --------------------------------------------------------------------------- the document berth config prints


def config_document(target: Target, *, show_secrets: bool = False, environment_from: str | None = None) -> dict:
    """The compose model plus `x-berth` (the deployment settings and where each came from).

    Masked by position unless `show_secrets`: the value of a secret key (by name or by its value's format) is
    ****; names and paths (images, services, volumes, build contexts...) are never cut into; the other strings
    (commands, labels, values of ordinary keys) have the secrets inside them masked, names left whole.
    """
    from berth.secrets.masking import MASK, Masker, keyed_secrets, redact_setting

    resolved = resolve_compose(target)
    model = resolved.model
    settings = deployment_settings(target, environment_from)
    if not show_secrets:
        public, keyed = _public_names(model), keyed_secrets(resolved.project_env)
        maskers = {f: Masker(forms, public=public, keyed=keyed) for f, forms in resolved.secret_fields.items()}
        maskers[()] = Masker(keyed=keyed)  # fields no secret was interpolated into: KEY=value and tokens only
        model = _mask(model, maskers, resolved.secret_keys, MASK)
        for setting in settings.values():
            value = setting["value"]
            setting["value"] = [redact_setting(v) for v in value] if isinstance(value, list) else redact_setting(value)
    doc: dict[str, Any] = {"x-berth": settings}
    doc.update(_escape(model))
    return doc


def deployment_settings(target: Target, environment_from: str | None = None) -> dict[str, Any]:
    def setting(name: str, value: Any) -> dict[str, Any]:
        origin = target.where(name)
        return {"value": value, "from": "default" if origin == "not set" else origin}

    env_origin = environment_from
    if env_origin is None:
        line = target.dotenv.line_of("ENVIRONMENT") if target.dotenv and "ENVIRONMENT" in target.dotenv else None
        env_origin = f".env:{line}" if line else "berth.toml (the only environment)"
    out: dict[str, Any] = {"environment": {"value": target.environment, "from": env_origin}}
    out["hosts"] = setting("hosts", list(target.get("hosts", [])))
    out["user"] = setting("user", target.get("user"))
    if target.get("port"):
        out["port"] = setting("port", target.get("port"))
    if target.get("key"):
        out["key"] = setting("key", target.get("key"))
    out["app_dir"] = setting("app_dir", target.app_dir)
    out["project"] = {"value": target.project, "from": target.project_name.origin}
    out["compose_files"] = setting("compose_files", list(target.compose_files))
    out["env_file"] = setting("env_file", target.env_file)
    out["health_urls"] = setting("health_urls", list(target.health_urls))
    out["remote"] = setting("remote", target.get("remote", "origin"))
    if target.get("branch"):
        out["branch"] = setting("branch", target.get("branch"))
    out["confirm"] = setting("confirm", target.confirm)
    out["verify_timeout"] = setting("verify_timeout", target.verify_timeout)
    return out


# fields that hold names and paths: shown as they are (a password `postgres` must not turn the image
# `postgres:16` into `****:16`); a value in a known token format is masked even there
_NAME_FIELDS = frozenset({
    "image", "container_name", "hostname", "domainname", "context", "dockerfile", "target", "source", "name",
    "driver", "network_mode", "working_dir", "pull_policy", "restart", "platform", "user", "path", "published",
    "mode", "type", "protocol", "host_ip", "file", "profiles", "condition", "ipc", "pid", "cgroup", "isolation",
})


def _mask(value: Any, maskers: dict[tuple, Any], secret_keys: set[str], mask: str, path: tuple = (),
          in_secret_map: bool = False) -> Any:
    """By position: the value of a secret key is ****; a name or path field is left whole; other strings have
    masked the secrets that were interpolated into their field (`command: --token ${API_TOKEN}`), `KEY=value`
    of secret keys, and tokens of a known format."""
    key = str(path[-1]) if path and not isinstance(path[-1], int) else None
    if isinstance(value, dict):
        secret_map = key in ("environment", "args")
        return {k: _mask(v, maskers, secret_keys, mask, (*path, str(k)), secret_map) for k, v in value.items()}
    if isinstance(value, list):
        field_key = path[:-1] if path and isinstance(path[-1], int) else path
        return [_mask(v, maskers, secret_keys, mask, (*field_key, i)) for i, v in enumerate(value)]
    if isinstance(value, str):
        from berth.secrets.masking import Masker, is_secret_setting, secret_tokens

        if in_secret_map and key is not None and value and (key in secret_keys or is_secret_setting(key, value)):
            return mask
        named = [p for p in path if not isinstance(p, int)]
        tokens = secret_tokens(value)
        if tokens:
            value = Masker(tokens)(value)
        if not in_secret_map and named and named[-1] in _NAME_FIELDS:
            return value
        return maskers.get(field_of(tuple(named)), maskers[()])(value)
    return value


def _public_names(model: Any, key: str | None = None, out: list[str] | None = None) -> list[str]:
    """The names in the model (its mapping keys, the values of name fields): kept whole in the other strings."""
    out = [] if out is None else out
    if isinstance(model, dict):
        for k, v in model.items():
            out.append(str(k))
            if key not in ("environment", "args"):
                _public_names(v, str(k), out)
    elif isinstance(model, list):
        for v in model:
            _public_names(v, key, out)
    elif isinstance(model, str) and key in _NAME_FIELDS:
        out.append(model)
    return out


def _escape(value: Any) -> Any:
    """`$` → `$$` in every string, as `docker compose config` prints them."""
    if isinstance(value, dict):
        return {k: _escape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape(v) for v in value]
    if isinstance(value, str):
        return value.replace("$", "$$")
    return value


def render(doc: dict, fmt: str = "yaml") -> str:
    if fmt == "json":
        import json

        return json.dumps(doc, indent=2, ensure_ascii=False)
    import yaml

    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1000)
