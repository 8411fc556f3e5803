"""`kubectl` commands, as data: each function returns the argv and the bytes for its stdin.

Manifests — Secrets included — only ever travel on stdin (`--filename=-`): never on a command line,
never through a file. Apply is server-side (`--server-side`, field manager `berth`), so no
`last-applied-configuration` annotation copies a Secret's data into the object's metadata.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from berth.remote.shell import join

FIELD_MANAGER = "berth"
RELEASE_CONFIGMAP = "berth-release"


@dataclass(frozen=True)
class Invocation:
    argv: tuple[str, ...]
    stdin: bytes | None = None
    timeout: float = 120

    def describe(self) -> str:
        """The command line as a person would type it; stdin is named, never shown."""
        return join(self.argv) + (" < (manifests on stdin)" if self.stdin is not None else "")


@dataclass(frozen=True)
class Kubectl:
    namespace: str
    context: str | None = None
    kubeconfig: str | None = None
    program: str = "kubectl"

    def _global(self) -> list[str]:
        argv = [self.program]
        if self.kubeconfig:
            argv.append(f"--kubeconfig={self.kubeconfig}")
        if self.context:
            argv.append(f"--context={self.context}")
        return argv

    def base(self) -> list[str]:
        return [*self._global(), f"--namespace={self.namespace}"]

    def current_context(self) -> Invocation:
        return Invocation((*self._global(), "config", "current-context"), timeout=30)

    def apply(self, manifests: bytes, *, dry_run: bool = False, timeout: int = 300) -> Invocation:
        argv = [*self.base(), "apply", "--server-side", f"--field-manager={FIELD_MANAGER}"]
        if dry_run:
            argv.append("--dry-run=server")
        argv.append("--filename=-")
        return Invocation(tuple(argv), manifests, timeout)

    def get_release(self) -> Invocation:
        return Invocation((*self.base(), "get", "configmap", RELEASE_CONFIGMAP, "--ignore-not-found",
                           "--output=json"), timeout=60)

    def rollout_status(self, kind: str, name: str, timeout: int) -> Invocation:
        return Invocation((*self.base(), "rollout", "status", f"{kind.lower()}/{name}", "--watch=true",
                           f"--timeout={timeout}s"), timeout=timeout + 30)

    def rollout_undo(self, kind: str, name: str, to_revision: int | None = None) -> Invocation:
        argv = [*self.base(), "rollout", "undo", f"{kind.lower()}/{name}"]
        if to_revision is not None:
            argv.append(f"--to-revision={to_revision}")
        return Invocation(tuple(argv), timeout=60)

    def get_workloads(self, selector: str) -> Invocation:
        return Invocation((*self.base(), "get", "deployments,statefulsets", f"--selector={selector}",
                           "--output=json"), timeout=60)

    def logs(self, kind: str, name: str, tail: int = 30) -> Invocation:
        return Invocation((*self.base(), "logs", f"{kind.lower()}/{name}", "--all-containers=true", "--prefix=true",
                           f"--tail={tail}"), timeout=60)


@dataclass(frozen=True)
class WorkloadStatus:
    kind: str
    name: str
    desired: int
    ready: int
    updated: int
    current: bool  # the controller has seen the newest spec and every pod runs it

    @property
    def ok(self) -> bool:
        return self.current and self.ready >= self.desired and self.updated >= self.desired

    def describe(self) -> str:
        state = "ready" if self.ok else "NOT ready"
        return f"{self.kind.lower()}/{self.name} {self.ready}/{self.desired} {state}"


def parse_workloads(stdout: str) -> list[WorkloadStatus]:
    """`kubectl get deployments,statefulsets -o json` → readiness of each."""
    data = json.loads(stdout or "{}")
    items = data.get("items", []) if data.get("kind") == "List" or "items" in data else [data]
    out = []
    for item in items:
        kind = item.get("kind", "")
        meta, spec, status = item.get("metadata", {}), item.get("spec", {}), item.get("status", {})
        desired = spec.get("replicas", 1)
        observed = status.get("observedGeneration", 0) >= meta.get("generation", 0)
        if kind == "StatefulSet":
            current = observed and (status.get("updateRevision") in (None, status.get("currentRevision")))
        else:
            current = observed and status.get("availableReplicas", 0) >= desired
        out.append(WorkloadStatus(kind, meta.get("name", ""), desired, status.get("readyReplicas", 0),
                                  status.get("updatedReplicas", 0), current))
    return out


def parse_release(stdout: str) -> dict | None:
    """The release record kept in the berth-release ConfigMap; None when there is none (first apply)."""
    if not stdout.strip():
        return None
    data = json.loads(stdout)
    raw = (data.get("data") or {}).get("release.json")
    return json.loads(raw) if raw else None
