"""The compose app as Kubernetes manifests.

One pass over the compose file (interpolated exactly as compose does, against the project env file)
builds, per service: a ConfigMap of its non-secret settings, a Secret of its secret ones (only in
memory: `with_secrets=True`, for apply), Services, a Deployment or a StatefulSet, a PDB, an HPA, an
Ingress and NetworkPolicies. Every compose key that cannot be expressed becomes a finding naming the
key and the service; nothing is dropped silently.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth.check.findings import Finding, Severity
from berth.configuration.target import Target
from berth.errors import UsageError
from berth.k8s.env import SecretPolicy, holds_secret, service_environment, split_environment
from berth.k8s.settings import K8sSettings, ServiceSettings
from berth.secrets.masking import is_secret_key

CONFIGMAP_MAX_BYTES = 1024 * 1024
_REFERENCED = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")

NOT_SECRET_ANNOTATION = "berth.dev/not-secret"  # ConfigMap keys declared plain (plain_keys); k8s check honours it
SECRET_FILES_NOTE = "berth k8s apply builds it from {source} in memory and passes it to kubectl on stdin"

# images that keep data: (repository name) → uid:gid their entrypoint can run as, without root
DATA_IMAGES: dict[str, int] = {
    "postgres": 999, "mysql": 999, "mariadb": 999, "redis": 999, "valkey": 999, "mongo": 999, "rabbitmq": 999,
}
DATA_IMAGE_UID_BY_VARIANT = {("postgres", "alpine"): 70}  # the alpine postgres image's user is uid 70

# compose service keys and how they are handled; anything not here (and not x-*) is unsupported
HANDLED_KEYS = {
    "image", "build", "command", "entrypoint", "environment", "env_file", "healthcheck", "ports", "expose",
    "volumes", "tmpfs", "deploy", "labels", "annotations", "restart", "init", "working_dir", "user",
    "read_only", "cap_add", "cap_drop", "privileged", "stop_grace_period", "tty", "stdin_open",
    "extra_hosts", "dns_search", "dns_opt", "sysctls", "shm_size", "pull_policy", "platform", "profiles",
    "depends_on", "networks", "secrets", "configs", "mem_limit", "mem_reservation", "cpus", "scale",
    "links", "container_name", "hostname",
}
WHY_UNSUPPORTED = {
    "logging": "the cluster's log collection reads container output; configure it in the cluster",
    "ulimits": "Kubernetes has no per-container ulimits; set them in the node's container runtime",
    "devices": "host devices need a device plugin in Kubernetes",
    "gpus": "GPUs are requested through a device plugin's resource (e.g. nvidia.com/gpu)",
    "network_mode": "every pod is on the cluster's pod network",
    "dns": "setting nameservers would replace the cluster DNS and break Service names",
    "security_opt": "use the securityContext berth renders (seccomp RuntimeDefault, no privilege escalation)",
    "stop_signal": "Kubernetes sends SIGTERM; make the process stop on SIGTERM",
    "pid": "sharing the host's PID namespace is not rendered",
    "ipc": "sharing IPC namespaces is not rendered",
    "volumes_from": "mount the same volume explicitly instead",
    "extends": "resolve extends before rendering (docker compose config)",
    "external_links": "containers outside the app are not reachable by name in the cluster",
    "oom_score_adj": "the kubelet sets OOM scores from the pod's QoS class",
    "mem_swappiness": "swap is configured per node",
    "memswap_limit": "swap is configured per node",
    "pids_limit": "the kubelet's podPidsLimit sets this per node",
    "runtime": "use a RuntimeClass in the cluster",
    "cgroup_parent": "the kubelet manages cgroups",
    "userns_mode": "user namespaces are a pod feature (hostUsers) not rendered",
    "develop": "compose watch is for development",
    "post_start": "lifecycle hooks are not rendered",
    "pre_stop": "lifecycle hooks are not rendered",
}


@dataclass
class Manifest:
    file: str  # the output file it belongs to ("web.yaml")
    obj: dict
    secret: bool = False  # holds secret values: sent to kubectl on stdin, never written to disk


@dataclass
class Rendered:
    namespace: str
    manifests: list[Manifest]
    findings: list[Finding]
    secrets: dict[str, list[str]]  # Secret name → its keys (the values are only in Secret manifests)
    workloads: list[tuple[str, str]]  # (kind, name) in apply order
    secret_values: list[str] = field(default_factory=list)  # for masking; in memory only
    with_secrets: bool = False
    selector: str = ""  # a label selector matching every workload's pods
    # compose fields outside `environment:` that interpolate a secret variable: path → the variable
    secret_refs: dict[tuple, str] = field(default_factory=dict)
    project_env: dict[str, str] = field(default_factory=dict, repr=False)  # in memory only, for secret_leaks
    # (KEY, value) of settings the user wrote under a key that is not secret, interpolating no secret: a value
    # there is a setting by its position, even when a password happens to be the same word (DB_USER=gitea,
    # DB_PASSWORD=gitea); in memory only
    plain_literals: set[tuple[str, str]] = field(default_factory=set, repr=False)

    def docs(self, include_secrets: bool = False) -> list[dict]:
        return [m.obj for m in self.manifests if include_secrets or not m.secret]

    def files(self) -> dict[str, str]:
        """What `render -o DIR` writes: one file per service (plus namespace.yaml, shared.yaml); no Secret."""
        from berth.k8s.manifests import HEADER, dump_docs

        grouped: dict[str, list[dict]] = {}
        for m in self.manifests:
            if not m.secret:
                grouped.setdefault(m.file, []).append(m.obj)
        return {name: HEADER + dump_docs(docs) for name, docs in grouped.items()}

    def stream(self, include_secrets: bool = False) -> str:
        from berth.k8s.manifests import dump_docs

        return dump_docs(self.docs(include_secrets))

    def secret_leaks(self) -> list[str]:
        """Where a secret would be written outside a Secret, found by position, not by searching the text for
        every secret (a password `postgres` is not leaked by the image `postgres:16`):

        * a ConfigMap value, binary value or container env value holding a secret value (a bug if ever);
        * any field holding the value of a secret variable that a compose field outside `environment:`
          interpolates (`command: --token ${API_TOKEN}`): that value is where it should not be.
        """
        secrets = [v for v in self.secret_values if len(v) >= 4]
        # the setting a secret value is the value of, so the message can name it (never the value)
        names = {v: k for k, v in sorted(self.project_env.items()) if v in self.secret_values}

        def carried(text: str) -> str | None:
            found = next((s for s in secrets if holds_secret(text, s)), None)
            return None if found is None else names.get(found, "a secret of the env file")

        referenced = {}
        for path, var in self.secret_refs.items():
            value = self.project_env.get(var)
            if value and len(value) >= 4:
                referenced.setdefault(value, (".".join(map(str, path)), var))
        leaks = []
        for doc in self.docs():
            name = f"{doc.get('kind')} {(doc.get('metadata') or {}).get('name')}"
            if doc.get("kind") == "ConfigMap":
                for key, value in (doc.get("data") or {}).items():
                    if (key, value) in self.plain_literals:
                        continue
                    which = carried(value) if isinstance(value, str) else None
                    if which:
                        leaks.append(f"{name}: data.{key} holds the value of {which}")
                for key, value in (doc.get("binaryData") or {}).items():
                    try:
                        decoded = base64.b64decode(value).decode("utf-8", "replace")
                    except (ValueError, TypeError):
                        continue
                    which = carried(decoded)
                    if which:
                        leaks.append(f"{name}: binaryData.{key} holds the value of {which}")
            for path, text in _strings(doc, ()):
                env_entry = _node(doc, path[:-1]) if path[-1:] == ("value",) and "env" in path else None
                placed = isinstance(env_entry, dict) and (env_entry.get("name"), text) in self.plain_literals
                which = carried(text) if env_entry is not None and not placed else None
                if which:
                    leaks.append(f"{name}: {'.'.join(map(str, path))} holds the value of {which}")
                    continue
                for value, (origin, var) in referenced.items():
                    if value in text:
                        leaks.append(f"{name}: {'.'.join(map(str, path))} holds {var}, a secret, "
                                     f"from {origin} of the compose file")
        return leaks


def _node(doc, path: tuple):
    for part in path:
        try:
            doc = doc[part]
        except (KeyError, IndexError, TypeError):
            return None
    return doc


def _strings(value, path: tuple):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, (*path, str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, (*path, i))
    elif isinstance(value, str):
        yield path, value


QUALIFIED_NAME = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                            r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def k8s_name(name: str) -> str:
    """A compose name as a DNS-1035 label (Service names): lowercase, [a-z0-9-], starting with a letter."""
    out = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    if not out or not out[0].isalpha():
        out = f"s-{out}".rstrip("-")
    return out[:63].rstrip("-")


def label_value(value: str) -> str:
    out = re.sub(r"[^A-Za-z0-9._-]+", "-", value)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", out)


# ------------------------------------------------------------------------------------------ conversions

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")


def duration_seconds(value: Any) -> float | None:
    """A Go/compose duration ("1m30s", "500ms", "2s") in seconds; None when it cannot be read."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) / 1e9 if value > 1000 else float(value)  # compose ints are nanoseconds
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    pos, total = 0, 0.0
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * scale[m.group(2)]
        pos = m.end()
    return total if pos == len(text) and pos > 0 else None


def probe_seconds(value: Any, default: int) -> int:
    s = duration_seconds(value)
    return default if s is None else max(1, math.ceil(s))


_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp])?i?b?\s*$", re.IGNORECASE)


def memory_quantity(value: Any) -> str | None:
    """A compose memory size (binary units: 512m = 512 MiB) as a Kubernetes quantity."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        n = int(value)
    else:
        m = _MEMORY.match(str(value))
        if not m:
            return None
        unit = (m.group(2) or "").lower()
        n = int(float(m.group(1)) * 1024 ** " kmgtp".index(unit or " "))
    for suffix, size in (("Gi", 1024 ** 3), ("Mi", 1024 ** 2), ("Ki", 1024)):
        if n and n % size == 0:
            return f"{n // size}{suffix}"
    return str(n)


def cpu_quantity(value: Any) -> str | None:
    try:
        cpus = float(value)
    except (TypeError, ValueError):
        return None
    if cpus <= 0:
        return None
    milli = round(cpus * 1000)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def _image_parts(image: str) -> tuple[str, str | None, str | None]:
    """(repository, tag, digest) of an image reference."""
    rest, _, digest = image.partition("@")
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = rest.rsplit(":", 1)
    else:
        repo, tag = rest, None
    return repo, tag, digest or None


def image_repository_name(image: str) -> str:
    return _image_parts(image)[0].rsplit("/", 1)[-1]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _checksum(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------ the renderer


@dataclass
class _Port:
    port: int
    protocol: str = "TCP"
    published: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.protocol.lower()}-{self.port}"


class _Renderer:
    def __init__(self, target: Target, settings: K8sSettings, tag: str | None, monitoring: bool, with_secrets: bool):
        self.target = target
        self.settings = settings
        self.tag_override = tag
        self.monitoring = monitoring
        self.with_secrets = with_secrets
        self.findings: list[Finding] = []
        self.manifests: list[Manifest] = []
        self.secrets: dict[str, list[str]] = {}
        self.secret_values: set[str] = set()
        self.secret_refs: dict[tuple, str] = {}
        self.env_secret_refs: set[tuple[str, str]] = set()  # (service, KEY) whose environment value uses a secret
        self.plain_literals: set[tuple[str, str]] = set()
        self.workloads: list[tuple[str, str]] = []
        self.namespace = settings.namespace
        self.instance = label_value(f"{target.project}-{settings.environment}") or "app"
        self._tag: str | None = None

    # ---------------------------------------------------------------- findings

    def note(self, rule: str, severity: Severity, message: str, *path, fix: str | None = None) -> None:
        line = self.line_of(*path) if path else None
        self.findings.append(Finding(f"k8s.render.{rule}", severity, message, self.compose_path, line, None, fix))

    def unsupported(self, service: str, key: str, why: str, *path) -> None:
        self.note("unsupported", Severity.WARNING, f"service {service}: '{key}' is not rendered: {why}",
                  *(path or ("services", service, key.split(".")[0])))

    def line_of(self, *path) -> int | None:
        for n in range(len(path), 0, -1):
            line = self.key_lines.get(tuple(path[:n]))
            if line:
                return line
        return None

    # ---------------------------------------------------------------- inputs

    def load(self) -> None:
        from berth.k8s.manifests import _positions
        from berth.model.compose.file import load_compose_file, read_compose_text
        from berth.model.envfile import example_of, read_env_file

        root = self.target.root
        files = self.target.compose_files
        paths = [root / f for f in files]
        for p in paths:
            if not p.exists():
                raise UsageError(f"{p.name} does not exist", where=str(p),
                                 fix="run berth k8s render in the app's repository (or pass -C)")
        composes = [load_compose_file(p) for p in paths]
        self.compose_path = paths[0]
        import yaml

        self.key_lines: dict[tuple, int] = {}
        # loaded above, so bounded and not an alias bomb
        node = yaml.compose(read_compose_text(paths[0]), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        if node is not None:
            _positions(node, (), self.key_lines)
        if len(composes) > 1:
            self.note("note", Severity.INFO, f"{', '.join(files)} are merged as compose merges them; "
                      "berth config shows the result")
        self.composes = composes

        env_path = root / self.target.env_file
        example = example_of(root / self.target.env_file)
        self.env_source = self.target.env_file
        if env_path.exists():
            project = read_env_file(env_path)
        elif self.with_secrets:
            raise UsageError(f"{self.target.env_file} does not exist; the Secrets are built from it",
                             where=str(env_path), fix=f"create {self.target.env_file} (copy {example.name})")
        elif example.exists():
            project = read_env_file(example)
            self.env_source = example.name
            self.note("env-example", Severity.WARNING,
                      f"{self.target.env_file} does not exist: rendering with {example.name}, so the ConfigMaps "
                      "hold its placeholder values", fix=f"create {self.target.env_file} before rendering for a cluster")
        else:
            project = None
            self.note("env-example", Severity.WARNING, f"{self.target.env_file} does not exist: variables are unset")
        self.project_env: dict[str, str] = project.values() if project else {}
        self.policy = SecretPolicy.for_project(self.project_env, self.settings.secret_keys, self.settings.plain_keys)
        self.secret_values |= set(self.policy.known_secrets)
        self.data = self._resolve()

    def _resolve(self) -> dict:
        """The compose model (berth.model.compose.resolve) every berth command works from; while it is made,
        note where each secret variable was placed: in `environment:` (the key then holds a secret) or
        elsewhere (`command: --token ${API_TOKEN}`: that field must not end up outside a Secret)."""
        from berth.model.compose.resolve import resolve_compose

        references: dict[tuple, str] = {}
        model = resolve_compose(self.target, self.project_env, references).model
        for path, template in references.items():
            in_environment = len(path) >= 4 and path[0] == "services" and path[2] == "environment"
            for var in _REFERENCED.findall(template):
                if var not in self.project_env or not self.policy.is_secret(var, self.project_env[var]):
                    continue
                if not in_environment:
                    self.secret_refs.setdefault(path, var)
                else:
                    key = path[3] if isinstance(path[3], str) else template.partition("=")[0]
                    self.env_secret_refs.add((str(path[1]), key))
        return model

    @property
    def tag(self) -> str:
        if self._tag is None:
            tag = self.tag_override or self.settings.tag
            if not tag:
                from berth.model import git as gitlocal

                head = gitlocal.head_commit(self.target.root) if gitlocal.is_repo(self.target.root) else None
                if not head:
                    raise UsageError("cannot tell the image tag for services that are built: the app has no git commit",
                                     where=str(self.target.root),
                                     fix="commit first, pass --tag, or set tag in [kubernetes] of berth.toml")
                tag = head[:12]
            self._tag = tag
        return self._tag

    # ---------------------------------------------------------------- the whole app

    def render(self) -> Rendered:
        self.load()
        active = self.data.get("services") or {}
        services = {str(name): None for cf in self.composes for name in cf.services}
        if not services:
            raise UsageError(f"{self.compose_path.name} defines no services", where=str(self.compose_path))
        self._top_level_notes()
        from berth.model.compose.profiles import active_profiles

        enabled = active_profiles(self.project_env)
        for name in services:
            if name not in active:
                why = (f"COMPOSE_PROFILES={self.project_env['COMPOSE_PROFILES']}" if enabled
                       else f"COMPOSE_PROFILES is not set in {self.env_source}")
                self.note("unsupported", Severity.WARNING,
                          f"service {name}: not rendered: its profiles are not enabled ({why}), so `docker compose "
                          "up` does not start it either", "services", name, "profiles",
                          fix="enable its profile in COMPOSE_PROFILES to render it")
        for name in self.settings.services:
            if name not in active:
                self.note("config", Severity.WARNING,
                          f"berth.toml [kubernetes.services.{name}]: there is no service {name} in the compose file"
                          + (" (or it has profiles)" if name in services else ""),
                          fix="fix the service name in berth.toml")
        self.names = {}
        for name in active:
            kname = k8s_name(name)
            if kname in self.names.values():
                raise UsageError(f"services {name} and another one both become {kname} in Kubernetes",
                                 where=str(self.compose_path), fix="rename one of them")
            self.names[name] = kname
            if kname != name:
                self.note("name", Severity.WARNING,
                          f"service {name} is named {kname} in Kubernetes (Service names allow only a-z, 0-9 and '-'); "
                          f"other services must reach it as {kname}", "services", name)
        self.networks = {name: self._service_networks(name, svc) for name, svc in active.items()}
        self.isolate = len({n for nets in self.networks.values() for n in nets}) > 1
        self.manifests.append(Manifest("namespace.yaml", self._namespace()))
        self.shared: dict[str, Manifest] = {}
        self._pending_shared: list[Manifest] = []
        per_service = [self._service(name, svc) for name, svc in active.items()]
        self.manifests.extend(self._pending_shared)
        for group in per_service:
            self.manifests.extend(group)
        if self.monitoring and not any(self.settings.service(n).metrics_path or self.settings.service(n).metrics_port
                                       for n in active):
            self.note("monitoring", Severity.WARNING, "--monitoring: no service declares metrics_path or metrics_port, "
                      "so no scrape annotations were added",
                      fix='set metrics_path = "/metrics" in [kubernetes.services.NAME] for services that expose metrics')
        rendered = Rendered(self.namespace, self.manifests, self.findings, self.secrets, self.workloads,
                            sorted(v for v in self.secret_values if len(v) >= 4), self.with_secrets,
                            f"app.kubernetes.io/instance={self.instance},app.kubernetes.io/managed-by=berth",
                            dict(self.secret_refs), dict(self.project_env), set(self.plain_literals))
        return rendered

    def _top_level_notes(self) -> None:
        """Top-level keys the cluster has no place for, as the user wrote them (the model adds compose's defaults)."""
        written: dict[str, Any] = {}
        for cf in self.composes:
            for key, value in cf.data.items():
                if isinstance(value, dict) and isinstance(written.get(key), dict):
                    written[key] = {**written[key], **value}
                else:
                    written[key] = value
        for key in written:
            if key in ("services", "volumes", "networks", "secrets", "configs", "name", "version") or str(key).startswith("x-"):
                continue
            self.note("unsupported", Severity.WARNING, f"top-level '{key}' is not rendered", key)
        for vname, vol in (written.get("volumes") or {}).items():
            for key in (vol or {}) if isinstance(vol, dict) else ():
                if key in ("driver", "driver_opts", "external", "labels"):
                    self.note("unsupported", Severity.WARNING,
                              f"volume {vname}: '{key}' is not rendered: volumes become PersistentVolumeClaims "
                              "of the cluster's storage class" + (" (set storage_class in [kubernetes])" if key != "labels" else ""),
                              "volumes", vname, key)
        for nname, net in (written.get("networks") or {}).items():
            for key in (net or {}) if isinstance(net, dict) else ():
                if key in ("driver", "driver_opts", "ipam", "external", "internal", "attachable", "enable_ipv6"):
                    self.note("unsupported", Severity.WARNING,
                              f"network {nname}: '{key}' is not rendered: pods share the cluster network; "
                              "berth renders NetworkPolicies that let only services on a common network talk",
                              "networks", nname, key)

    def _namespace(self) -> dict:
        return {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": self.namespace,
                "labels": {
                    "app.kubernetes.io/part-of": label_value(self.target.project),
                    "app.kubernetes.io/managed-by": "berth",
                    "berth.dev/environment": label_value(self.settings.environment),
                    # reject privileged pods; report anything short of the restricted profile
                    "pod-security.kubernetes.io/enforce": "baseline",
                    "pod-security.kubernetes.io/warn": "restricted",
                    "pod-security.kubernetes.io/audit": "restricted",
                },
            },
        }

    def _meta(self, name: str, service: str, labels: dict, annotations: dict | None = None) -> dict:
        meta: dict[str, Any] = {"name": name, "namespace": self.namespace, "labels": dict(labels)}
        if annotations:
            meta["annotations"] = annotations
        return meta

    def _service_networks(self, name: str, svc: dict) -> list[str]:
        nets = svc.get("networks")
        if svc.get("network_mode"):
            return []
        if isinstance(nets, dict):
            for net, opts in nets.items():
                for key in (opts or {}) if isinstance(opts, dict) else ():
                    if key in ("aliases", "ipv4_address", "ipv6_address", "link_local_ips", "mac_address", "priority",
                               "gw_priority", "driver_opts", "interface_name"):
                        self.unsupported(name, f"networks.{net}.{key}",
                                         "a pod has one address on the cluster network and one DNS name: its Service"
                                         if key != "aliases" else "the Service name is the only DNS name",
                                         "services", name, "networks", net, key)
            return sorted(nets)
        if isinstance(nets, list):
            return sorted(str(n) for n in nets)
        return ["default"]

    # ---------------------------------------------------------------- one service

    def _service(self, name: str, svc: dict) -> list[Manifest]:
        from berth.k8s import kompose

        conf, unused = kompose.apply(self.settings.service(name), kompose.kompose_labels(svc))
        for why in unused:
            self.note("kompose", Severity.WARNING, f"service {name}: label {why}", "services", name, "labels")
        kname = self.names[name]
        file = f"{kname}.yaml"
        out: list[Manifest] = []
        for key in svc:
            if key in HANDLED_KEYS or str(key).startswith("x-"):
                continue
            self.unsupported(name, key, WHY_UNSUPPORTED.get(key, "it has no Kubernetes equivalent"))

        image = self._image(name, svc, conf)
        repo_name = image_repository_name(image)
        _, image_tag, digest = _image_parts(image)
        deploy = svc.get("deploy") if isinstance(svc.get("deploy"), dict) else {}
        volumes, mounts, claims, uses_named, bind_files = self._volumes(name, svc, conf)
        stateful = conf.stateful if conf.stateful is not None else (uses_named or repo_name in DATA_IMAGES)
        if not stateful and claims:
            for claim in claims:
                self.note("volume", Severity.WARNING,
                          f"service {name}: volume {claim['metadata']['name']} becomes an emptyDir because stateful = false "
                          "in berth.toml: its data is lost when the pod goes", "services", name, "volumes")
                volumes.append({"name": claim["metadata"]["name"], "emptyDir": {}})
            claims = []
        selector = {"app.kubernetes.io/name": kname, "app.kubernetes.io/instance": self.instance}
        labels = {**selector, "app.kubernetes.io/part-of": label_value(self.target.project),
                  "app.kubernetes.io/managed-by": "berth"}
        version = label_value(image_tag or "") if not digest else ""
        if version:
            labels["app.kubernetes.io/version"] = version

        # environment → ConfigMap + Secret
        plain, secret, env_from = self._environment(name, svc, kname, labels, file, out, stateful, repo_name, mounts)

        # compose secrets and configs → mounted Secret/ConfigMap volumes
        config_hash_inputs: dict[str, Any] = {"env": plain}
        self._files(name, kname, svc, "secrets", volumes, mounts, config_hash_inputs)
        self._files(name, kname, svc, "configs", volumes, mounts, config_hash_inputs)
        self._bind_files(name, svc, bind_files, volumes, mounts, config_hash_inputs)

        ports = self._ports(name, svc, conf)
        container, resources, pod_sc = self._container(name, svc, conf, kname, image, repo_name, ports, env_from, mounts,
                                                       deploy, stateful and bool(claims))

        pod_spec: dict[str, Any] = {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
        }
        if svc.get("init"):
            pod_spec["shareProcessNamespace"] = True
            self.note("note", Severity.INFO, f"service {name}: init: true → shareProcessNamespace, so the pod's pause "
                      "process reaps zombie processes as compose's init would", "services", name, "init")
        pod_spec["securityContext"] = pod_sc
        grace = svc.get("stop_grace_period")
        if grace is not None:
            seconds = duration_seconds(grace)
            if seconds is None:
                self.unsupported(name, "stop_grace_period", f"{grace!r} is not a duration")
            else:
                pod_spec["terminationGracePeriodSeconds"] = math.ceil(seconds)
        self._pod_extras(name, svc, pod_spec)
        pod_spec["containers"] = [container]
        if volumes:
            pod_spec["volumes"] = volumes

        annotations = self._pod_annotations(name, svc, conf, ports, config_hash_inputs,
                                            secret if self.with_secrets else {})

        workload_annotations = {"kubernetes.io/change-cause": f"berth k8s apply {image}"}
        deps = self._depends_on(name, svc)
        if deps:
            workload_annotations["berth.dev/depends-on"] = deps
        for k, v in (deploy.get("labels") or {}).items() if isinstance(deploy.get("labels"), dict) else ():
            workload_annotations[str(k)] = "" if v is None else str(v)

        replicas, autoscale = self._replicas(name, svc, deploy, conf, repo_name, stateful)
        template = {"metadata": {"labels": dict(labels), "annotations": annotations}, "spec": pod_spec}
        kind = "StatefulSet" if stateful else "Deployment"
        spec: dict[str, Any] = {}
        if autoscale is None:
            spec["replicas"] = replicas
        spec["revisionHistoryLimit"] = 10
        spec["selector"] = {"matchLabels": dict(selector)}
        if stateful:
            spec["serviceName"] = f"{kname}-headless"
            spec["podManagementPolicy"] = "OrderedReady"
            spec["updateStrategy"] = {"type": "RollingUpdate"}
        else:
            spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
        spec["template"] = template
        if stateful and claims:
            spec["volumeClaimTemplates"] = claims
            spec["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Retain", "whenScaled": "Retain"}
        self._deploy_notes(name, deploy)

        out += self._service_objects(file, kname, labels, selector, conf, ports, stateful)
        out.append(Manifest(file, {"apiVersion": "apps/v1", "kind": kind,
                                   "metadata": self._meta(kname, kname, labels, workload_annotations), "spec": spec}))
        self.workloads.append((kind, kname))

        min_pods = autoscale.min if autoscale else replicas
        if min_pods >= 2:
            out.append(Manifest(file, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                                       "metadata": self._meta(kname, kname, labels),
                                       "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(selector)}}}))
        if autoscale:
            out.append(Manifest(file, self._hpa(name, kname, kind, labels, autoscale, resources)))
        if conf.host:
            ingress = self._ingress(name, kname, labels, conf, ports)
            if ingress:
                out.append(Manifest(file, ingress))
        if self.isolate:
            out.append(Manifest(file, self._network_policy(name, kname, labels, selector, conf, ports)))
        self._publish_notes(name, svc, conf, ports)
        return out

    # ---------------------------------------------------------------- pieces

    def _environment(self, name: str, svc: dict, kname: str, labels: dict, file: str, out: list[Manifest],
                     stateful: bool, repo_name: str, mounts: list) -> tuple[dict, dict, list]:
        """The service's environment → a ConfigMap (settings) and a Secret (secrets), appended to `out`."""
        env_vars = split_environment(
            service_environment(svc),
            self.policy)
        plain = {v.key: v.value for v in env_vars if not v.secret}
        secret = {v.key: v.value for v in env_vars if v.secret}
        self.plain_literals |= {(k, v) for k, v in plain.items() if (name, k) not in self.env_secret_refs}
        if repo_name == "postgres" and stateful and "PGDATA" not in plain and "PGDATA" not in secret and any(
                m["mountPath"] == "/var/lib/postgresql/data" for m in mounts):
            plain["PGDATA"] = "/var/lib/postgresql/data/pgdata"
            self.note("note", Severity.INFO, f"service {name}: PGDATA is set to a subdirectory of the volume, because a "
                      "fresh volume's root can hold lost+found, which initdb refuses", "services", name, "volumes")
        for key in list(plain) + list(secret):
            if not re.match(r"^[-._a-zA-Z0-9]+$", key):
                self.note("env", Severity.WARNING, f"service {name}: variable {key!r} cannot be a ConfigMap/Secret key "
                          "and is left out", "services", name, "environment")
                plain.pop(key, None)
                secret.pop(key, None)
        self.secret_values |= {v for v in secret.values() if v}
        env_from = []
        config_name, secret_name = f"{kname}-config", f"{kname}-secrets"
        if plain:
            # keys berth.toml's plain_keys declared not secret, although their names look secret
            declared = sorted(k for k in plain if is_secret_key(k))
            out.append(Manifest(file, {"apiVersion": "v1", "kind": "ConfigMap",
                                       "metadata": self._meta(config_name, kname, labels, {
                                           NOT_SECRET_ANNOTATION: ",".join(declared)} if declared else None),
                                       "data": dict(sorted(plain.items()))}))
            env_from.append({"configMapRef": {"name": config_name}})
        if secret:
            sources = sorted(self._env_sources(name, secret))
            self.secrets[secret_name] = sorted(secret)
            if self.with_secrets:
                out.append(Manifest(file, {"apiVersion": "v1", "kind": "Secret",
                                           "metadata": self._meta(secret_name, kname, labels),
                                           "type": "Opaque",
                                           "data": {k: _b64(v) for k, v in sorted(secret.items())}}, secret=True))
            else:
                shown = ", ".join(sorted(secret))
                self.note("secret", Severity.INFO,
                          f"service {name}: Secret {secret_name} ({shown}) is not written: "
                          + SECRET_FILES_NOTE.format(source=" and ".join(
                              self.env_source if s == "environment" else s for s in sources)),
                          "services", name, "environment" if self._written(name, "environment") else "env_file")
            env_from.append({"secretRef": {"name": secret_name}})
        return plain, secret, env_from

    def _written(self, name: str, key: str) -> bool:
        """Whether a compose file sets `key` for the service itself (the model also holds compose's defaults)."""
        return any(isinstance(cf.services.get(name), dict) and key in cf.services[name] for cf in self.composes)

    def _env_sources(self, name: str, keys) -> set[str]:
        """Where the service's `keys` are set, as the files say: "environment" (so the env file), or its env_files."""
        from berth.k8s.env import env_file_entries

        written: set[str] = set()
        env_files: list[str] = []
        for cf in self.composes:
            spec = cf.services.get(name)
            if not isinstance(spec, dict):
                continue
            env = spec.get("environment")
            written |= {str(e).partition("=")[0] for e in env} if isinstance(env, list) else set(map(str, env or {}))
            env_files += [path for path, _ in env_file_entries(spec)
                          if path not in env_files and (self.compose_path.parent / path).is_file()]
        return {s for key in keys for s in (["environment"] if key in written or not env_files else env_files)}

    def _container(self, name: str, svc: dict, conf: ServiceSettings, kname: str, image: str, repo_name: str,
                   ports: list, env_from: list, mounts: list, deploy: dict, owns_claims: bool) -> tuple[dict, dict, dict]:
        """The pod's one container; also its resources and the pod's security context."""
        container: dict[str, Any] = {"name": kname, "image": image}
        pull = svc.get("pull_policy")
        if pull in ("always", "never", "missing", "if_not_present"):
            container["imagePullPolicy"] = {"always": "Always", "never": "Never"}.get(pull, "IfNotPresent")
        elif pull:
            self.unsupported(name, "pull_policy", f"{pull!r} has no Kubernetes equivalent", "services", name, "pull_policy")
            container["imagePullPolicy"] = "IfNotPresent"
        else:
            container["imagePullPolicy"] = "IfNotPresent"
        for key, field_name in (("entrypoint", "command"), ("command", "args")):
            value = svc.get(key)
            if value is None:
                continue
            argv = shlex.split(value) if isinstance(value, str) else [str(v) for v in value]
            container[field_name] = argv
        if svc.get("working_dir"):
            container["workingDir"] = str(svc["working_dir"])
        if ports:
            container["ports"] = [{"name": p.name, "containerPort": p.port, "protocol": p.protocol} for p in ports]
        if env_from:
            container["envFrom"] = env_from
        probes = self._probes(name, svc, conf, ports)
        container.update(probes)
        resources = self._resources(name, svc, deploy)
        if resources:
            container["resources"] = resources
        else:
            self.note("resources", Severity.WARNING,
                      f"service {name}: no deploy.resources: the pod gets no CPU/memory requests or limits",
                      "services", name, fix="set deploy.resources.reservations and .limits (cpus, memory)")
        pod_sc, container_sc = self._security(name, svc, conf, image, repo_name, owns_claims)
        container["securityContext"] = container_sc
        if svc.get("tty"):
            container["tty"] = True
        if svc.get("stdin_open"):
            container["stdin"] = True
        if mounts:
            container["volumeMounts"] = mounts
        return container, resources, pod_sc

    def _pod_annotations(self, name: str, svc: dict, conf: ServiceSettings, ports: list, config_hash_inputs: dict,
                         written_secret: dict) -> dict[str, str]:
        """Checksums (a changed setting rolls the pods), the service's labels/annotations, and scrape hints."""
        annotations = {}
        config_checksum = _checksum(config_hash_inputs)
        annotations["berth.dev/config-checksum"] = config_checksum
        if written_secret:
            annotations["berth.dev/secret-checksum"] = _checksum(written_secret)
        for source in ("labels", "annotations"):
            extra = svc.get(source) or {}
            if isinstance(extra, list):
                extra = dict(str(e).partition("=")[::2] for e in extra)
            for k, v in extra.items():
                if QUALIFIED_NAME.match(str(k)) and len(str(k).rsplit("/", 1)[-1]) <= 63:
                    annotations[str(k)] = "" if v is None else str(v)
                else:
                    self.unsupported(name, f"{source}.{k}", "the key is not a valid annotation name",
                                     "services", name, source)
        if self.monitoring and (conf.metrics_path or conf.metrics_port):
            port = conf.metrics_port or conf.port or (ports[0].port if ports else None)
            if port is None:
                self.note("monitoring", Severity.WARNING, f"service {name}: metrics_path is set but no port is known",
                          fix=f"set metrics_port in [kubernetes.services.{name}]")
            else:
                annotations.update({"prometheus.io/scrape": "true", "prometheus.io/port": str(port),
                                    "prometheus.io/path": conf.metrics_path or "/metrics"})
        return annotations

    def _service_objects(self, file: str, kname: str, labels: dict, selector: dict, conf: ServiceSettings,
                         ports: list, stateful: bool) -> list[Manifest]:
        """The Kubernetes Services in front of the workload: headless for a StatefulSet, and one for its ports."""
        objects: list[Manifest] = []
        svc_ports = [{"name": p.name, "port": p.port, "targetPort": p.port, "protocol": p.protocol} for p in ports]
        if stateful:
            headless = {"apiVersion": "v1", "kind": "Service",
                        "metadata": self._meta(f"{kname}-headless", kname, labels),
                        "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                                 "selector": dict(selector)}}
            if svc_ports:
                headless["spec"]["ports"] = svc_ports
            objects.append(Manifest(file, headless))
        if svc_ports:
            service_spec: dict[str, Any] = {}
            if conf.service_type != "ClusterIP":
                service_spec["type"] = conf.service_type
            service_spec["selector"] = dict(selector)
            service_spec["ports"] = svc_ports
            objects.append(Manifest(file, {"apiVersion": "v1", "kind": "Service",
                                           "metadata": self._meta(kname, kname, labels), "spec": service_spec}))
        return objects

    def _image(self, name: str, svc: dict, conf: ServiceSettings) -> str:
        if conf.image:
            return conf.image
        image = svc.get("image")
        if svc.get("build") is not None:
            if image:
                self.note("image", Severity.WARNING,
                          f"service {name}: built with build:, and the cluster pulls {image}: push it before applying",
                          "services", name, "build")
                return str(image)
            registry = self.settings.registry
            if not registry:
                image = f"{self.target.project}-{k8s_name(name)}:{self.tag}"
                self.note("image", Severity.WARNING,
                          f"service {name}: has only build:, so its image {image} exists only where compose built it; "
                          "the cluster cannot pull it", "services", name, "build",
                          fix='set registry = "REGISTRY/PATH" in [kubernetes] and push the image there')
                return image
            image = f"{registry.rstrip('/')}/{k8s_name(name)}:{self.tag}"
            self.note("image", Severity.WARNING,
                      f"service {name}: build: is not run by berth k8s: build and push {image} before applying",
                      "services", name, "build")
            return image
        if not image:
            raise UsageError(f"service {name} has neither image nor build", where=str(self.compose_path),
                             fix=f"add image: to service {name}")
        image = str(image)
        _, tag, digest = _image_parts(image)
        if not digest and (tag is None or tag == "latest"):
            self.note("image", Severity.WARNING,
                      f"service {name}: image {image} is {'untagged' if tag is None else 'latest'}: "
                      "pods on different nodes can run different versions and a rollback cannot go back",
                      "services", name, "image", fix="pin a version tag (or a digest)")
        return image

    def _ports(self, name: str, svc: dict, conf: ServiceSettings) -> list[_Port]:
        ports: dict[tuple[int, str], _Port] = {}

        def add(port: int, protocol: str, published: str | None = None):
            p = ports.setdefault((port, protocol), _Port(port, protocol))
            if published:
                p.published.append(published)

        for i, entry in enumerate(svc.get("ports") or []):  # the model's long syntax: one entry per port
            protocol = str(entry.get("protocol", "tcp")).upper()
            if entry.get("host_ip") or entry.get("mode") == "host":
                self.unsupported(name, "ports", "host_ip and mode: host bind to a node; the Service is rendered",
                                 "services", name, "ports", i)
            try:
                add(int(entry.get("target")), protocol, str(entry.get("published") or "") or None)
            except (TypeError, ValueError):
                self.unsupported(name, "ports", f"{entry.get('target')!r} is not a port", "services", name, "ports", i)
        for entry in svc.get("expose") or []:
            text = str(entry)
            spec, _, proto = text.partition("/")
            lo, _, hi = spec.partition("-")
            try:
                for port in range(int(lo), int(hi or lo) + 1):
                    add(port, (proto or "tcp").upper())
            except ValueError:
                self.unsupported(name, "expose", f"{text!r} is not a port")
        for extra in (conf.port, conf.metrics_port if self.monitoring else None):
            if extra and not any(p.port == extra for p in ports.values()):
                add(extra, "TCP")
        for p in ports.values():
            if p.protocol not in ("TCP", "UDP", "SCTP"):
                self.unsupported(name, "ports", f"protocol {p.protocol} is not one of TCP, UDP, SCTP")
                p.protocol = "TCP"
        return list(ports.values())

    def _publish_notes(self, name: str, svc: dict, conf: ServiceSettings, ports: list[_Port]) -> None:
        published = [p for p in ports if p.published]
        if published and not conf.host and conf.service_type == "ClusterIP":
            shown = ", ".join(f"{pub}→{p.port}" for p in published for pub in p.published)
            self.note("ports", Severity.WARNING,
                      f"service {name}: ports publishes {shown} on the host; in the cluster the Service {self.names[name]} "
                      f"serves port(s) {', '.join(str(p.port) for p in published)} inside the cluster only",
                      "services", name, "ports",
                      fix=f'set host = "NAME" (an Ingress) or service_type = "LoadBalancer" in [kubernetes.services.{name}]')

    def _probe_handler(self, test) -> dict | None:
        if isinstance(test, str):
            return {"exec": {"command": ["/bin/sh", "-c", test]}}
        if isinstance(test, list) and test:
            head = str(test[0])
            if head == "NONE":
                return None
            if head == "CMD":
                return {"exec": {"command": [str(t) for t in test[1:]]}}
            if head == "CMD-SHELL":
                return {"exec": {"command": ["/bin/sh", "-c", " ".join(str(t) for t in test[1:])]}}
        return None

    def _probes(self, name: str, svc: dict, conf: ServiceSettings, ports: list[_Port]) -> dict:
        out: dict[str, Any] = {}
        hc = svc.get("healthcheck") if isinstance(svc.get("healthcheck"), dict) else None
        handler = None
        if hc and not hc.get("disable"):
            for key in hc:
                if key not in ("test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"):
                    self.unsupported(name, f"healthcheck.{key}", "unknown healthcheck key", "services", name, "healthcheck", key)
            handler = self._probe_handler(hc.get("test"))
            if handler is None and hc.get("test") is not None and hc.get("test") != ["NONE"]:
                self.unsupported(name, "healthcheck.test", "it is not a CMD, CMD-SHELL or string test",
                                 "services", name, "healthcheck", "test")
        if handler:
            period = probe_seconds(hc.get("interval"), 30)
            timeout = probe_seconds(hc.get("timeout"), 30)
            retries = hc.get("retries", 3)
            retries = retries if isinstance(retries, int) and retries > 0 else 3
            out["livenessProbe"] = {**handler, "periodSeconds": period, "timeoutSeconds": timeout,
                                    "failureThreshold": retries}
            start = duration_seconds(hc.get("start_period"))
            if start:
                start_every = probe_seconds(hc.get("start_interval"), 5)
                out["startupProbe"] = {**handler, "periodSeconds": start_every, "timeoutSeconds": timeout,
                                       "failureThreshold": math.ceil(start / start_every) + retries}
        else:
            self.note("probes", Severity.WARNING,
                      f"service {name}: no healthcheck, so no liveness probe: a hung process is never restarted",
                      "services", name, fix="add a healthcheck to the service")
        port = conf.port or (ports[0].port if ports else None)
        if conf.ready_path:
            if port is None:
                self.note("probes", Severity.WARNING, f"service {name}: ready_path is set but the service has no port",
                          fix=f"set port in [kubernetes.services.{name}]")
            else:
                out["readinessProbe"] = {"httpGet": {"path": conf.ready_path, "port": port},
                                         "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3}
        if "readinessProbe" not in out and handler:
            period = probe_seconds(hc.get("interval"), 10)
            out["readinessProbe"] = {**handler, "periodSeconds": period,
                                     "timeoutSeconds": min(period, probe_seconds(hc.get("timeout"), 30)),
                                     "failureThreshold": 3}
        elif "readinessProbe" not in out and port and any(p.port == port and p.protocol == "TCP" for p in ports):
            out["readinessProbe"] = {"tcpSocket": {"port": port}, "periodSeconds": 5, "timeoutSeconds": 2,
                                     "failureThreshold": 3}
            self.note("probes", Severity.INFO, f"service {name}: readiness is 'port {port} accepts connections'",
                      "services", name, fix=f'set ready_path = "/ready" in [kubernetes.services.{name}] for a real check')
        return out

    def _resources(self, name: str, svc: dict, deploy: dict) -> dict:
        res = deploy.get("resources") if isinstance(deploy.get("resources"), dict) else {}
        out: dict[str, dict] = {}
        for compose_key, k8s_key in (("reservations", "requests"), ("limits", "limits")):
            block = res.get(compose_key) if isinstance(res.get(compose_key), dict) else {}
            for key, value in block.items():
                if key == "cpus":
                    q = cpu_quantity(value)
                    if q:
                        out.setdefault(k8s_key, {})["cpu"] = q
                    else:
                        self.unsupported(name, f"deploy.resources.{compose_key}.cpus", f"{value!r} is not a CPU count",
                                         "services", name, "deploy", "resources", compose_key, key)
                elif key == "memory":
                    q = memory_quantity(value)
                    if q:
                        out.setdefault(k8s_key, {})["memory"] = q
                    else:
                        self.unsupported(name, f"deploy.resources.{compose_key}.memory", f"{value!r} is not a size",
                                         "services", name, "deploy", "resources", compose_key, key)
                else:
                    why = {"pids": WHY_UNSUPPORTED["pids_limit"],
                           "devices": "devices (GPUs) are requested through a device plugin's resource"}.get(
                        key, "it has no Kubernetes equivalent")
                    self.unsupported(name, f"deploy.resources.{compose_key}.{key}", why,
                                     "services", name, "deploy", "resources", compose_key, key)
        legacy = (("mem_limit", "limits", "memory", memory_quantity), ("cpus", "limits", "cpu", cpu_quantity),
                  ("mem_reservation", "requests", "memory", memory_quantity))
        for key, k8s_key, resource, convert in legacy:
            if svc.get(key) is not None:
                q = convert(svc[key])
                if q:
                    out.setdefault(k8s_key, {}).setdefault(resource, q)
                else:
                    self.unsupported(name, key, f"{svc[key]!r} cannot be read")
        return {k: out[k] for k in ("requests", "limits") if k in out}

    def _replicas(self, name, svc, deploy, conf: ServiceSettings, repo_name: str, stateful: bool):
        replicas = 1
        if isinstance(deploy.get("replicas"), int):
            replicas = deploy["replicas"]
        elif isinstance(svc.get("scale"), int):
            replicas = svc["scale"]
        if conf.replicas is not None:
            replicas = conf.replicas
        mode = deploy.get("mode")
        if mode == "global":
            self.unsupported(name, "deploy.mode", "global (one per node) would be a DaemonSet; rendered as replicas",
                             "services", name, "deploy", "mode")
        autoscale = conf.autoscale
        if stateful and repo_name in DATA_IMAGES and (replicas > 1 or autoscale):
            self.note("replicas", Severity.WARNING,
                      f"service {name}: {replicas} replicas of {repo_name} are {replicas} separate databases, not a "
                      "replicated cluster", "services", name, "deploy", fix="use one replica, or an operator for a cluster")
        return replicas, autoscale

    def _hpa(self, name, kname, kind, labels, auto, resources) -> dict:
        metrics = []
        requests = resources.get("requests", {}) or resources.get("limits", {})
        for resource, target in (("cpu", auto.cpu), ("memory", auto.memory)):
            if target is None:
                continue
            if resource not in requests:
                self.note("autoscale", Severity.WARNING,
                          f"service {name}: autoscale on {resource} needs a {resource} request to compute utilization",
                          "services", name, fix=f"set deploy.resources.reservations.{'cpus' if resource == 'cpu' else 'memory'}")
            metrics.append({"type": "Resource", "resource": {
                "name": resource, "target": {"type": "Utilization", "averageUtilization": target}}})
        return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": self._meta(kname, kname, labels),
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": kname},
                         "minReplicas": auto.min, "maxReplicas": auto.max, "metrics": metrics}}

    def _ingress(self, name, kname, labels, conf: ServiceSettings, ports: list[_Port]) -> dict | None:
        port = conf.port or next((p.port for p in ports if p.protocol == "TCP"), None)
        if port is None:
            self.note("ingress", Severity.WARNING, f"service {name}: host is set but the service has no port: no Ingress",
                      fix=f"set port in [kubernetes.services.{name}]")
            return None
        spec: dict[str, Any] = {}
        if self.settings.ingress_class:
            spec["ingressClassName"] = self.settings.ingress_class
        if conf.tls_secret:
            spec["tls"] = [{"hosts": [conf.host], "secretName": conf.tls_secret}]
        spec["rules"] = [{"host": conf.host, "http": {"paths": [{
            "path": conf.path, "pathType": "Prefix",
            "backend": {"service": {"name": kname, "port": {"number": port}}}}]}}]
        return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": self._meta(kname, kname, labels), "spec": spec}

    def _network_policy(self, name, kname, labels, selector, conf: ServiceSettings, ports: list[_Port]) -> dict:
        mine = set(self.networks[name])
        peers = sorted(self.names[o] for o, nets in self.networks.items() if mine & set(nets))
        rules: list[dict] = [{"from": [{"podSelector": {"matchLabels": {
            "app.kubernetes.io/name": peer, "app.kubernetes.io/instance": self.instance}}} for peer in peers]}]
        open_ports = []
        if conf.host or conf.service_type != "ClusterIP":
            open_ports += [p for p in ports]
        if self.monitoring and conf.metrics_port:
            open_ports += [p for p in ports if p.port == conf.metrics_port and p not in open_ports]
        if open_ports:
            rules.append({"ports": [{"port": p.port, "protocol": p.protocol} for p in open_ports]})
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": self._meta(kname, kname, labels),
                "spec": {"podSelector": {"matchLabels": dict(selector)}, "policyTypes": ["Ingress"], "ingress": rules}}

    def _volumes(self, name: str, svc: dict, conf: ServiceSettings):
        """(pod volumes, container mounts, claim templates, uses a named volume, bind-mounted files)."""
        top = self.data.get("volumes") or {}
        bind_files: list[tuple[int, str, str]] = []  # (entry, source, target) of config files bind-mounted
        volumes: list[dict] = []
        mounts: list[dict] = []
        claims: list[dict] = []
        uses_named = False
        for i, entry in enumerate(svc.get("volumes") or []):  # the model's long syntax
            vtype = entry.get("type", "volume")
            source, target = entry.get("source"), entry.get("target")
            read_only = bool(entry.get("read_only"))
            subpath = (entry.get("volume") or {}).get("subpath") if isinstance(entry.get("volume"), dict) else None
            tmpfs_size = (entry.get("tmpfs") or {}).get("size") if isinstance(entry.get("tmpfs"), dict) else None
            if not target:
                self.unsupported(name, "volumes", f"entry {i} has no target", "services", name, "volumes", i)
                continue
            path = ("services", name, "volumes", i)
            if vtype == "tmpfs":
                vol_name = _path_volume("tmpfs", str(target))
                empty: dict = {"medium": "Memory"}
                size = memory_quantity(tmpfs_size) if tmpfs_size else None
                if size:
                    empty["sizeLimit"] = size
                volumes.append({"name": vol_name, "emptyDir": empty})
                mounts.append({"name": vol_name, "mountPath": str(target)})
                continue
            if vtype == "bind":
                kind = self._bind_kind(str(source or ""), read_only)
                shown = f"{self._as_written(str(source or ''))}:{target}"
                if kind == "file":  # a config file from the repository: a ConfigMap, as configs: would be
                    bind_files.append((i, os.path.relpath(str(source), self.compose_path.parent), str(target)))
                    continue
                if kind != "data":
                    self.unsupported(name, "volumes", f"the bind mount {shown} reads the host's files; "
                                     "bake them into the image or use configs:", *path)
                    continue
                # a data directory on the host (a database's): a claim, whose data starts empty
                source = k8s_name(Path(str(source).rstrip("/")).name or "data")
                self.note("volume", Severity.WARNING,
                          f"service {name}: the bind mount {shown} becomes the "
                          f"PersistentVolumeClaim {source}, which starts empty", *path,
                          fix="copy the data from the server's directory into the claim before you switch (kubectl "
                              "cp, or a dump and restore), or keep that service on the server")
                top, vtype = {**top, source: {}}, "volume"
            if vtype != "volume":
                self.unsupported(name, "volumes", f"volume type {vtype!r} has no Kubernetes equivalent", *path)
                continue
            if not source:
                vol_name = _path_volume("anon", str(target))
                volumes.append({"name": vol_name, "emptyDir": {}})
                mounts.append({"name": vol_name, "mountPath": str(target)})
                self.note("volume", Severity.WARNING,
                          f"service {name}: the anonymous volume at {target} becomes an emptyDir, lost with the pod",
                          *path, fix="use a named volume to keep the data")
                continue
            if source not in top:
                self.unsupported(name, "volumes", f"volume {source} is not declared under top-level volumes:", *path)
                continue
            uses_named = True
            vol_name = k8s_name(str(source))
            others = [o for o, s in (self.data.get("services") or {}).items() if o != name and isinstance(s, dict)
                      and any(_volume_source(v) == source for v in s.get("volumes") or [])]
            if others:
                self.note("volume", Severity.WARNING,
                          f"service {name}: volume {source} is shared with {', '.join(sorted(others))} in compose; "
                          "in the cluster each service gets its own claim", *path)
            mount = {"name": vol_name, "mountPath": str(target)}
            if subpath:
                mount["subPath"] = str(subpath)
            if read_only:
                mount["readOnly"] = True
            mounts.append(mount)
            if not any(c["metadata"]["name"] == vol_name for c in claims):
                spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"]}
                if self.settings.storage_class:
                    spec["storageClassName"] = self.settings.storage_class
                spec["resources"] = {"requests": {"storage": conf.storage or self.settings.storage}}
                claims.append({"metadata": {"name": vol_name}, "spec": spec})
        tmpfs = svc.get("tmpfs")
        for entry in ([tmpfs] if isinstance(tmpfs, str) else tmpfs or []):
            target, _, opts = str(entry).partition(":")
            vol_name = _path_volume("tmpfs", target)
            empty = {"medium": "Memory"}
            size = re.search(r"size=([^,]+)", opts)
            if size and memory_quantity(size.group(1)):
                empty["sizeLimit"] = memory_quantity(size.group(1))
            volumes.append({"name": vol_name, "emptyDir": empty})
            mounts.append({"name": vol_name, "mountPath": target})
        if svc.get("shm_size") is not None:
            size = memory_quantity(svc["shm_size"])
            empty = {"medium": "Memory"}
            if size:
                empty["sizeLimit"] = size
            volumes.append({"name": "shm", "emptyDir": empty})
            mounts.append({"name": "shm", "mountPath": "/dev/shm"})
        return volumes, mounts, claims, uses_named, bind_files

    def _as_written(self, path: str) -> str:
        """A path of the model (absolute) as the user wrote it: ./static for a path beside the compose file."""
        base = str(self.compose_path.parent)
        if path == base or path.startswith(base + "/"):
            return "./" + os.path.relpath(path, base) if path != base else "."
        return path

    def _bind_kind(self, source: str, read_only: bool) -> str:
        """What a bind mount's source is: "file" (a file in the repository: a ConfigMap), "data" (a writable
        directory, or one compose creates: a claim) or "host" (the host's own files, a socket: not rendered)."""
        if not source or source.startswith("~") or source.startswith(("/var/run", "/run", "/proc", "/sys", "/dev")):
            return "host"
        path = Path(source) if source.startswith("/") else self.compose_path.parent / source
        root = self.target.root.resolve()
        inside = Path(os.path.normpath(path if path.is_absolute() else root / path)).is_relative_to(root)
        if path.is_file():  # a ConfigMap holds at most 1 MiB: a bigger file (data, a log) stays unrendered
            return "file" if inside and path.stat().st_size <= CONFIGMAP_MAX_BYTES else "host"
        if path.exists() and not path.is_dir():
            return "host"  # a socket or a device
        return "host" if read_only else "data"

    def _bind_files(self, name, svc, bind_files, volumes, mounts, hash_inputs) -> None:
        """Config files bind-mounted from the repository → one ConfigMap each (shared), mounted at the target."""
        for i, source, target in bind_files:
            object_name = self._file_object("configs", "file-" + re.sub(r"[^-._a-zA-Z0-9]", "-", source.lstrip("./")),
                                            {"file": source})
            if object_name is None:
                continue
            obj_kind, obj_name, key = object_name
            vol_name = f"{'secret' if obj_kind == 'Secret' else 'config'}-{obj_name}"[:63].rstrip("-")
            source_field = {"secretName": obj_name} if obj_kind == "Secret" else {"name": obj_name}
            if not any(v["name"] == vol_name for v in volumes):
                volumes.append({"name": vol_name, ("secret" if obj_kind == "Secret" else "configMap"):
                                {**source_field, "items": [{"key": key, "path": key}]}})
            mounts.append({"name": vol_name, "mountPath": target, "subPath": key, "readOnly": True})
            hash_inputs.setdefault("configs", []).append(obj_name)
            if obj_kind == "ConfigMap" and obj_name in self.shared:
                hash_inputs[f"configs:{obj_name}"] = self.shared[obj_name].obj.get("data")
            self.note("volume", Severity.INFO, f"service {name}: the bind-mounted file {source} becomes the "
                      f"{obj_kind} {obj_name}", "services", name, "volumes", i)

    def _files(self, name, kname, svc, kind: str, volumes, mounts, hash_inputs) -> None:
        """compose `secrets:` / `configs:` of a service → Secret / ConfigMap volumes mounted as files."""
        top = self.data.get(kind) or {}
        for i, entry in enumerate(svc.get(kind) or []):
            if isinstance(entry, dict):
                source, target, mode = entry.get("source"), entry.get("target"), entry.get("mode")
                if entry.get("uid") is not None or entry.get("gid") is not None:
                    self.unsupported(name, f"{kind}.uid/gid", "file owners follow the pod's fsGroup",
                                     "services", name, kind, i)
            else:
                source, target, mode = str(entry), None, None
            if source not in top:
                self.unsupported(name, kind, f"{source} is not declared under top-level {kind}:", "services", name, kind, i)
                continue
            decl = top[source] or {}
            default_dir = "/run/secrets" if kind == "secrets" else "/"
            target = str(target) if target else f"{default_dir.rstrip('/')}/{source}"
            if not target.startswith("/"):
                target = f"{default_dir.rstrip('/')}/{target}"
            object_name = self._file_object(kind, str(source), decl)
            if object_name is None:
                continue
            obj_kind, obj_name, key = object_name
            vol_name = f"{'secret' if obj_kind == 'Secret' else 'config'}-{k8s_name(str(source))}"[:63].rstrip("-")
            source_field = {"secretName": obj_name} if obj_kind == "Secret" else {"name": obj_name}
            item: dict[str, Any] = {"key": key, "path": key}
            if mode is not None:
                try:
                    item["mode"] = int(str(mode), 8) if isinstance(mode, str) else int(mode)
                except ValueError:
                    self.unsupported(name, f"{kind}.mode", f"{mode!r} is not a file mode", "services", name, kind, i)
            volume = {"name": vol_name, ("secret" if obj_kind == "Secret" else "configMap"): {**source_field, "items": [item]}}
            if not any(v["name"] == vol_name for v in volumes):
                volumes.append(volume)
            mounts.append({"name": vol_name, "mountPath": target, "subPath": key, "readOnly": True})
            hash_inputs.setdefault(kind, []).append(obj_name)
            if obj_kind == "ConfigMap" and obj_name in self.shared:
                hash_inputs[f"{kind}:{obj_name}"] = self.shared[obj_name].obj.get("data")

    def _file_object(self, kind: str, source: str, decl: dict):
        """Create (once) the shared Secret/ConfigMap for a compose secret/config; (kind, name, key)."""
        key = re.sub(r"[^-._a-zA-Z0-9]", "_", source)
        if decl.get("external"):
            ext = str(decl.get("name") or source)
            self.note("external", Severity.WARNING,
                      f"{kind[:-1]} {source} is external: a {'Secret' if kind == 'secrets' else 'ConfigMap'} named "
                      f"{k8s_name(ext)} with the key {key} must exist in namespace {self.namespace}", kind, source)
            return ("Secret" if kind == "secrets" else "ConfigMap", k8s_name(ext), key)
        obj_name = f"{'secret' if kind == 'secrets' else 'config'}-{k8s_name(source)}"[:63].rstrip("-")
        for existing in self.shared.values():
            if existing.obj["metadata"]["name"] == obj_name:
                return (existing.obj["kind"], obj_name, key)
        if obj_name in self.secrets:
            return ("Secret", obj_name, key)
        content, origin = self._file_content(kind, source, decl)
        if content is None:
            return None
        labels = {"app.kubernetes.io/instance": self.instance, "app.kubernetes.io/part-of": label_value(self.target.project),
                  "app.kubernetes.io/managed-by": "berth"}
        is_secret = kind == "secrets" or (isinstance(content, str) and any(s in content for s in self.policy.known_secrets))
        if is_secret:
            self.secrets[obj_name] = [key]
            if isinstance(content, str) and content:
                self.secret_values.add(content)
                self.secret_values |= {ln for ln in content.splitlines() if len(ln) >= 8}
            if kind == "configs":
                self.note("secret", Severity.INFO, f"config {source} holds a secret value, so it becomes a Secret",
                          kind, source)
            if self.with_secrets:
                data = content if isinstance(content, bytes) else content.encode("utf-8")
                manifest = Manifest("shared.yaml", {"apiVersion": "v1", "kind": "Secret",
                                                    "metadata": self._meta(obj_name, "", labels), "type": "Opaque",
                                                    "data": {key: base64.b64encode(data).decode("ascii")}}, secret=True)
                self._pending_shared.append(manifest)
                self.shared[obj_name] = manifest
            else:
                self.note("secret", Severity.INFO, f"Secret {obj_name} ({kind[:-1]} {source}) is not written: "
                          + SECRET_FILES_NOTE.format(source=origin), kind, source)
            return ("Secret", obj_name, key)
        data_field = ("binaryData", base64.b64encode(content).decode("ascii")) if isinstance(content, bytes) \
            else ("data", content)
        manifest = Manifest("shared.yaml", {"apiVersion": "v1", "kind": "ConfigMap",
                                            "metadata": self._meta(obj_name, "", labels),
                                            data_field[0]: {key: data_field[1]}})
        self._pending_shared.append(manifest)
        self.shared[obj_name] = manifest
        return ("ConfigMap", obj_name, key)

    def _file_content(self, kind: str, source: str, decl: dict):
        """(content, where it comes from); content is read only when needed: configs always, secrets with_secrets."""
        if "file" in decl:
            path = Path(str(decl["file"]))
            path = path if path.is_absolute() else (self.compose_path.parent / path)
            if not path.exists():
                if kind == "secrets" and not self.with_secrets:
                    self.note("secret", Severity.WARNING, f"secret {source}: {self._as_written(str(decl['file']))} does not exist; "
                              "berth k8s apply will need it", kind, source)
                    return "", self._as_written(str(decl["file"]))
                raise UsageError(f"{kind[:-1]} {source}: {decl['file']} does not exist", where=str(path),
                                 fix="create the file, or remove the entry")
            if kind == "secrets" and not self.with_secrets:
                return "", self._as_written(str(decl["file"]))
            from berth.model.files import read_bytes

            raw = read_bytes(path, limit=1024 * 1024, kind=f"the file of {kind[:-1]} {source} (a ConfigMap/Secret)")
            try:
                return raw.decode("utf-8"), self._as_written(str(decl["file"]))
            except UnicodeDecodeError:
                return raw, self._as_written(str(decl["file"]))
        if "environment" in decl:
            var = str(decl["environment"])
            if var not in self.project_env:
                self.note(kind, Severity.WARNING, f"{kind[:-1]} {source}: {var} is not set in {self.env_source}",
                          kind, source)
            return self.project_env.get(var, ""), f"{var} in {self.env_source}"
        if "content" in decl:
            return str(decl["content"]), "the compose file"
        self.note("unsupported", Severity.WARNING, f"{kind[:-1]} {source}: no file, environment or content", kind, source)
        return None, ""

    def _security(self, name, svc, conf: ServiceSettings, image: str, repo_name: str, has_claims: bool):
        uid: int | None = conf.run_as_user
        gid: int | None = conf.run_as_group
        source = "berth.toml"
        user = svc.get("user")
        if uid is None and user is not None:
            u, _, g = str(user).partition(":")
            source = "user:"
            if u.isdigit():
                uid = int(u)
            elif u == "root":
                uid = 0
            if g.isdigit() and gid is None:
                gid = int(g)
            if uid is None:
                self.note("security", Severity.WARNING,
                          f"service {name}: user {u!r} is a name; Kubernetes can only enforce a non-root user by uid",
                          "services", name, "user", fix=f"set run_as_user in [kubernetes.services.{name}]")
        if uid is None and user is None:
            dockerfile_user = self._dockerfile_user(svc)
            if dockerfile_user is not None:
                u, _, g = dockerfile_user.partition(":")
                source = "the Dockerfile's USER"
                if u.isdigit():
                    uid = int(u)
                    if g.isdigit() and gid is None:
                        gid = int(g)
                elif u == "root":
                    uid = 0
                else:
                    self.note("security", Severity.WARNING,
                              f"service {name}: its Dockerfile runs as user {u!r}; Kubernetes can only enforce a non-root "
                              "user by uid, so runAsNonRoot is not set", "services", name, "build",
                              fix=f"set run_as_user (that user's uid) in [kubernetes.services.{name}], or USER <uid> in the Dockerfile")
            elif repo_name in DATA_IMAGES:
                variant = "alpine" if "alpine" in (_image_parts(image)[1] or "") else ""
                uid = DATA_IMAGE_UID_BY_VARIANT.get((repo_name, variant), DATA_IMAGES[repo_name])
                source = f"the {repo_name} image's own user"
            elif svc.get("build") is None:
                self.note("security", Severity.WARNING,
                          f"service {name}: berth cannot tell which user {image} runs as, so runAsNonRoot is not set",
                          "services", name, "image", fix=f"set run_as_user in [kubernetes.services.{name}] if it runs as non-root")
        pod: dict[str, Any] = {}
        container: dict[str, Any] = {}
        privileged = bool(svc.get("privileged"))
        cap_add = [str(c).upper().removeprefix("CAP_") for c in svc.get("cap_add") or []]
        cap_drop = [str(c).upper().removeprefix("CAP_") for c in svc.get("cap_drop") or []]
        if uid is not None and uid != 0:
            pod["runAsNonRoot"] = True
            pod["runAsUser"] = uid
            pod["runAsGroup"] = gid if gid is not None else uid
            if conf.fs_group is not None or has_claims:
                pod["fsGroup"] = conf.fs_group if conf.fs_group is not None else pod["runAsGroup"]
        elif uid == 0:
            pod["runAsNonRoot"] = False
            pod["runAsUser"] = 0
            self.note("security", Severity.WARNING, f"service {name}: runs as root ({source})",
                      "services", name, fix="run it as a non-root user")
        elif conf.fs_group is not None:
            pod["fsGroup"] = conf.fs_group
        pod["seccompProfile"] = {"type": "RuntimeDefault"}
        if privileged:
            container["privileged"] = True
            self.note("security", Severity.WARNING, f"service {name}: privileged: true gives the container the node",
                      "services", name, "privileged", fix="remove privileged and add only the capabilities it needs")
        elif "SYS_ADMIN" not in cap_add and "ALL" not in cap_add:
            container["allowPrivilegeEscalation"] = False
        if "ALL" in cap_add:
            self.unsupported(name, "cap_add", "ALL is not rendered; list the capabilities", "services", name, "cap_add")
            cap_add = [c for c in cap_add if c != "ALL"]
        caps: dict[str, list[str]] = {}
        if uid is not None and uid != 0:
            caps["drop"] = ["ALL"]
        elif cap_drop:
            caps["drop"] = sorted(set(cap_drop))
        if cap_add:
            caps["add"] = sorted(set(cap_add))
        if caps:
            container["capabilities"] = caps
        if conf.read_only_root or svc.get("read_only"):
            container["readOnlyRootFilesystem"] = True
        return pod, container

    def _dockerfile_user(self, svc: dict) -> str | None:
        build = svc.get("build")
        if build is None:
            return None
        context, dockerfile = (build, "Dockerfile") if isinstance(build, str) else (
            build.get("context", "."), build.get("dockerfile", "Dockerfile"))
        if not isinstance(context, str) or "://" in context:
            return None
        path = self.compose_path.parent / context / str(dockerfile)
        if not path.exists():
            return None
        from berth.model.dockerfile import MAX_DOCKERFILE_BYTES
        from berth.model.files import read_bytes

        # a FIFO, /dev/zero or a huge file: a located error (exit 2), as for the compose file
        text = read_bytes(path, limit=MAX_DOCKERFILE_BYTES, kind="a Dockerfile").decode("utf-8", errors="replace")
        user = None
        for line in re.sub(r"\\\n", " ", text).splitlines():
            words = line.strip().split()
            if not words:
                continue
            if words[0].upper() == "FROM":
                user = None  # a new stage starts as root unless its base image says otherwise
            elif words[0].upper() == "USER" and len(words) > 1:
                user = words[1]
        return user

    def _pod_extras(self, name: str, svc: dict, pod: dict) -> None:
        hosts = svc.get("extra_hosts")
        if hosts:
            items = hosts.items() if isinstance(hosts, dict) else [
                (str(h).split(":", 1)[0], str(h).split(":", 1)[1]) if "=" not in str(h) else tuple(str(h).split("=", 1))
                for h in hosts]
            by_ip: dict[str, list[str]] = {}
            for host, ip in items:
                by_ip.setdefault(str(ip).strip("[]"), []).append(str(host))
            pod["hostAliases"] = [{"ip": ip, "hostnames": names} for ip, names in by_ip.items()]
        dns: dict[str, Any] = {}
        if svc.get("dns_search"):
            v = svc["dns_search"]
            dns["searches"] = [v] if isinstance(v, str) else [str(x) for x in v]
        if svc.get("dns_opt"):
            dns["options"] = [{"name": str(o).split(":")[0], **({"value": str(o).split(":", 1)[1]} if ":" in str(o) else {})}
                              for o in svc["dns_opt"]]
        if dns:
            pod["dnsConfig"] = dns
        if svc.get("sysctls"):
            s = svc["sysctls"]
            items = s.items() if isinstance(s, dict) else (str(x).split("=", 1) for x in s)
            pod.setdefault("securityContext", {})["sysctls"] = [{"name": str(k), "value": str(v)} for k, v in items]
        platform = svc.get("platform")
        if platform:
            os_name, _, arch = str(platform).partition("/")
            selector = {"kubernetes.io/os": os_name}
            if arch:
                selector["kubernetes.io/arch"] = arch.split("/")[0]
            pod["nodeSelector"] = selector
        if svc.get("hostname"):
            self.unsupported(name, "hostname", "a pod's hostname is its pod name; other services reach it by its Service name")
        if svc.get("container_name"):
            self.unsupported(name, "container_name", "pods get generated names; reach it by its Service name")
        for link in svc.get("links") or []:
            if ":" in str(link):
                self.unsupported(name, "links", f"the alias in {link!r}: reach the service by its Service name")
        restart = svc.get("restart")
        if restart in ("no", "on-failure") or (isinstance(restart, str) and restart.startswith("on-failure")):
            self.note("restart", Severity.WARNING,
                      f"service {name}: restart: {restart} — a Deployment/StatefulSet always restarts its pods; "
                      "a one-shot task belongs in a Job", "services", name, "restart")

    def _deploy_notes(self, name: str, deploy: dict) -> None:
        for key in deploy:
            if key in ("replicas", "resources", "labels", "mode") or deploy[key] in ({}, None):
                continue  # an empty placement: {} is compose's default, not the user's
            if key == "restart_policy" and (deploy[key] or {}).get("condition", "any") == "any" and set(deploy[key] or {}) <= {"condition"}:
                continue
            why = {
                "restart_policy": "pods of a Deployment/StatefulSet always restart",
                "placement": "use nodeSelector/affinity in the cluster",
                "update_config": "berth renders a rolling update with maxUnavailable 0 and maxSurge 1",
                "rollback_config": "berth k8s rollback runs rollout undo",
                "endpoint_mode": "Services balance over ready pods",
            }.get(key, "it has no Kubernetes equivalent")
            self.unsupported(name, f"deploy.{key}", why, "services", name, "deploy", key)

    def _depends_on(self, name: str, svc: dict) -> str:
        deps = svc.get("depends_on")
        if not deps:
            return ""
        items = deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps)
        parts = []
        for dep, opts in items:
            condition = (opts or {}).get("condition", "service_started") if isinstance(opts, dict) else "service_started"
            parts.append(f"{dep} ({condition})")
            target = self.names.get(dep, k8s_name(str(dep)))
            if condition == "service_completed_successfully":
                self.note("depends-on", Severity.WARNING,
                          f"service {name}: depends_on {dep} with service_completed_successfully — a one-shot task; "
                          "Kubernetes does not wait for it", "services", name, "depends_on",
                          fix=f"run {dep} as a Job or an init container before {name}")
                continue
            waits = "healthy" if condition == "service_healthy" else "started"
            self.note("depends-on", Severity.INFO,
                      f"service {name}: depends_on {dep} ({condition}) — compose starts {name} after {dep} is {waits}; "
                      f"Kubernetes starts both at once. {name} must retry connecting to {target} until it answers; "
                      f"{target} gets traffic only once its readiness probe passes, and so does {name}",
                      "services", name, "depends_on")
        return ", ".join(parts)


def _path_volume(prefix: str, path: str) -> str:
    """A pod volume name for a path: tmpfs-var-cache, anon-data."""
    slug = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "root"
    return f"{prefix}-{slug}"[:63].rstrip("-")


def _volume_source(entry: dict) -> str | None:
    return entry.get("source") if entry.get("type", "volume") == "volume" else None


def render(target: Target, settings: K8sSettings, *, tag: str | None = None, monitoring: bool = False,
           with_secrets: bool = False) -> Rendered:
    """The app's manifests for one environment. Secret values are read only with `with_secrets` (apply)."""
    return _Renderer(target, settings, tag, monitoring, with_secrets).render()
