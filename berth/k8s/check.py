"""`berth k8s check`: manifests validated offline against the Kubernetes schemas, plus best-practice
rules in the spirit of kube-score and kube-linter. Findings use berth check's format and severities.

Each rule is one function over the whole set of documents (some rules relate documents: a Service
and the pods it selects, an HPA and its target, a workload and its PodDisruptionBudget).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from berth.check.findings import Finding, FindingCounts, Severity
from berth.k8s.manifests import Doc
from berth.secrets.masking import is_secret_key, is_secret_value, url_password


@dataclass(frozen=True)
class K8sRule:
    id: str
    severity: Severity
    summary: str
    fix: str
    check: Callable[[ManifestSet], Iterable[Finding]]


K8S_RULES: dict[str, K8sRule] = {}


def k8s_rule(id: str, severity: Severity, summary: str, fix: str):
    def register(fn):
        if id in K8S_RULES:
            raise RuntimeError(f"duplicate rule id {id}")
        K8S_RULES[id] = K8sRule(id, severity, summary, fix, fn)
        return fn

    return register


def _finding(doc: Doc, message: str, *path, severity: Severity | None = None, fix: str | None = None) -> Finding:
    return Finding("", severity, f"{doc.label}: {message}", doc.file, doc.line_of(*path), None, fix)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ the document set

POD_TEMPLATE_PATHS = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
    "Pod": (),
}
SCALABLE = ("Deployment", "StatefulSet", "ReplicaSet")
LONG_RUNNING = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod")


def _get(data: Any, *path) -> Any:
    for p in path:
        if isinstance(data, dict):
            data = data.get(p)
        elif isinstance(data, list) and isinstance(p, int) and 0 <= p < len(data):
            data = data[p]
        else:
            return None
    return data


@dataclass(frozen=True)
class PodTemplate:
    doc: Doc
    path: tuple  # path to the template (metadata + spec) inside the document
    labels: dict
    spec: dict

    def containers(self) -> Iterator[tuple[tuple, dict]]:
        for field in ("initContainers", "containers"):
            for i, c in enumerate(self.spec.get(field) or []):
                if isinstance(c, dict):
                    yield (*self.path, "spec", field, i), c

    def main_containers(self) -> Iterator[tuple[tuple, dict]]:
        for path, c in self.containers():
            if path[-2] == "containers":
                yield path, c


@dataclass
class ManifestSet:
    docs: list[Doc]
    versions: tuple[str, ...]

    def objects(self) -> list[Doc]:
        return [d for d in self.docs if isinstance(d.data, dict) and d.kind]

    def namespace_of(self, doc: Doc) -> str:
        return doc.namespace or "default"

    def templates(self) -> list[PodTemplate]:
        out = []
        for doc in self.objects():
            path = POD_TEMPLATE_PATHS.get(doc.kind)
            if path is None:
                continue
            tpl = _get(doc.data, *path) if path else doc.data
            if not isinstance(tpl, dict):
                continue
            labels = _get(tpl, "metadata", "labels") or {}
            spec = tpl.get("spec")
            if isinstance(spec, dict):
                out.append(PodTemplate(doc, path, labels if isinstance(labels, dict) else {}, spec))
        return out

    def of_kind(self, *kinds: str) -> list[Doc]:
        return [d for d in self.objects() if d.kind in kinds]


def selector_matches(selector: Any, labels: dict) -> bool:
    """A LabelSelector ({matchLabels, matchExpressions}) against a set of labels; an empty selector matches all."""
    if not isinstance(selector, dict):
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        if not isinstance(expr, dict):
            return False
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


# ------------------------------------------------------------------------------------------ rules


@k8s_rule("k8s.manifest", Severity.ERROR, "a document is not a Kubernetes object (apiVersion, kind, metadata.name)",
          "every document needs apiVersion, kind and metadata.name")
def manifest_shape(ms: ManifestSet):
    for doc in ms.docs:
        if not isinstance(doc.data, dict):
            yield _finding(doc, f"the document is a {type(doc.data).__name__}, not a mapping")
            continue
        missing = [k for k in ("apiVersion", "kind") if not isinstance(doc.data.get(k), str) or not doc.data.get(k)]
        meta = doc.data.get("metadata")
        if not isinstance(meta, dict) or not (meta.get("name") or meta.get("generateName")):
            missing.append("metadata.name")
        if missing:
            yield _finding(doc, f"missing {', '.join(missing)}")


@k8s_rule("k8s.schema", Severity.ERROR, "the manifest does not validate against the Kubernetes OpenAPI schema",
          "fix the field named; `kubectl explain KIND.FIELD` shows what it takes")
def schema_valid(ms: ManifestSet):
    from berth.k8s import schema

    for doc in ms.objects():
        if not isinstance(doc.data.get("apiVersion"), str):
            continue
        by_error: dict[tuple, list[str]] = {}
        for version in ms.versions:
            errors = schema.validate(doc.data, version)
            for err in errors or []:
                by_error.setdefault((err.path, err.message), []).append(version)
        for (path, message), versions in by_error.items():
            where = ".".join(str(p) for p in path) or "(document)"
            yield _finding(doc, f"{where}: {message} (Kubernetes {', '.join(versions)})", *path)


@k8s_rule("k8s.no-schema", Severity.WARNING, "no schema for this kind (a custom resource?), so it was not validated",
          "validate it with the CRD's own schema; berth checks only built-in kinds")
def no_schema(ms: ManifestSet):
    from berth.k8s import schema

    for doc in ms.objects():
        if not isinstance(doc.data.get("apiVersion"), str):
            continue
        missing = [v for v in ms.versions if not schema.has_schema(v, doc.kind, doc.data["apiVersion"])]
        if missing:
            yield _finding(doc, f"no schema for {doc.data['apiVersion']} {doc.kind} in Kubernetes {', '.join(missing)}",
                           "kind")


_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def _label_key_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_LABEL_NAME.match(name))


@k8s_rule("k8s.name", Severity.ERROR, "a name or label the API server would reject",
          "names: lowercase letters, digits, '-' (Services and namespaces: at most 63, starting with a letter); "
          "label values: at most 63 of letters, digits, '-', '_', '.'")
def names_valid(ms: ManifestSet):
    for doc in ms.objects():
        name = _get(doc.data, "metadata", "name")
        if isinstance(name, str) and name:
            if doc.kind in ("Service", "Namespace"):
                ok = len(name) <= 63 and bool(_DNS_LABEL.match(name))
            else:
                ok = len(name) <= 253 and bool(_DNS_SUBDOMAIN.match(name))
            if not ok:
                yield _finding(doc, f"name {name!r} is not valid for a {doc.kind}", "metadata", "name")
        label_sets = [(("metadata", "labels"), _get(doc.data, "metadata", "labels"))]
        for tpl in ms.templates():
            if tpl.doc is doc and tpl.path:
                label_sets.append(((*tpl.path, "metadata", "labels"), tpl.labels))
        for path, labels in label_sets:
            for k, v in (labels or {}).items() if isinstance(labels, dict) else ():
                if not _label_key_ok(str(k)):
                    yield _finding(doc, f"label key {k!r} is not valid", *path, k)
                elif not isinstance(v, str) or len(v) > 63 or not _LABEL_VALUE.match(v):
                    yield _finding(doc, f"label {k}: value {v!r} is not valid", *path, k)


@k8s_rule("k8s.liveness-probe", Severity.WARNING, "a long-running container has no liveness probe",
          "add a livenessProbe (berth k8s render makes one from the compose healthcheck)")
def liveness(ms: ManifestSet):
    yield from _missing_probe(ms, "livenessProbe")


@k8s_rule("k8s.readiness-probe", Severity.WARNING, "a long-running container has no readiness probe",
          "add a readinessProbe (ready_path in [kubernetes.services.NAME] renders an HTTP one)")
def readiness(ms: ManifestSet):
    yield from _missing_probe(ms, "readinessProbe")


def _missing_probe(ms: ManifestSet, probe: str):
    for tpl in ms.templates():
        if tpl.doc.kind not in LONG_RUNNING:
            continue
        for path, c in tpl.main_containers():
            if not c.get(probe):
                yield _finding(tpl.doc, f"container {c.get('name')} has no {probe}", *path)


@k8s_rule("k8s.resources", Severity.WARNING, "a container has no CPU/memory requests or no memory limit",
          "set deploy.resources.reservations (cpus, memory) and limits.memory in the compose file")
def resources(ms: ManifestSet):
    for tpl in ms.templates():
        for path, c in tpl.containers():
            res = c.get("resources") if isinstance(c.get("resources"), dict) else {}
            requests = res.get("requests") or {}
            limits = res.get("limits") or {}
            missing = [f"requests.{r}" for r in ("cpu", "memory") if r not in requests and r not in limits]
            if "memory" not in limits:
                missing.append("limits.memory")
            if missing:
                yield _finding(tpl.doc, f"container {c.get('name')} has no {', '.join(missing)}", *path)


@k8s_rule("k8s.image-tag", Severity.ERROR, "an image is untagged or :latest",
          "pin a version tag or a digest, so every node runs the same image and a rollback can go back")
def image_tag(ms: ManifestSet):
    for tpl in ms.templates():
        for path, c in tpl.containers():
            image = c.get("image")
            if not isinstance(image, str) or not image:
                continue
            rest, _, digest = image.partition("@")
            last = rest.rsplit("/", 1)[-1]
            tag = last.split(":", 1)[1] if ":" in last else None
            if digest:
                continue
            if tag is None:
                yield _finding(tpl.doc, f"container {c.get('name')}: image {image} has no tag", *path, "image")
            elif tag == "latest":
                yield _finding(tpl.doc, f"container {c.get('name')}: image {image} uses :latest", *path, "image")


def _hpa_min(ms: ManifestSet, doc: Doc) -> int | None:
    for hpa in ms.of_kind("HorizontalPodAutoscaler"):
        ref = _get(hpa.data, "spec", "scaleTargetRef") or {}
        if ref.get("kind") == doc.kind and ref.get("name") == doc.name and ms.namespace_of(hpa) == ms.namespace_of(doc):
            value = _get(hpa.data, "spec", "minReplicas")
            return value if isinstance(value, int) else 1
    return None


def _has_pdb(ms: ManifestSet, tpl: PodTemplate) -> bool:
    return any(ms.namespace_of(p) == ms.namespace_of(tpl.doc) and selector_matches(_get(p.data, "spec", "selector"), tpl.labels)
               for p in ms.of_kind("PodDisruptionBudget"))


def _replicas(ms: ManifestSet, doc: Doc) -> int:
    hpa = _hpa_min(ms, doc)
    if hpa is not None:
        return hpa
    value = _get(doc.data, "spec", "replicas")
    return value if isinstance(value, int) else 1


@k8s_rule("k8s.single-replica", Severity.WARNING, "fewer than 2 replicas and no PodDisruptionBudget",
          "run 2 or more replicas (deploy.replicas) with a PodDisruptionBudget, or accept the downtime of every "
          "node drain and restart")
def single_replica(ms: ManifestSet):
    for tpl in ms.templates():
        if tpl.doc.kind in SCALABLE and _replicas(ms, tpl.doc) < 2 and not _has_pdb(ms, tpl):
            yield _finding(tpl.doc, f"{_replicas(ms, tpl.doc)} replica and no PodDisruptionBudget: a node drain "
                           "takes it down", "spec", "replicas")


@k8s_rule("k8s.pdb-missing", Severity.WARNING, "several replicas but no PodDisruptionBudget",
          "add a PodDisruptionBudget (maxUnavailable: 1) selecting the pods")
def pdb_missing(ms: ManifestSet):
    for tpl in ms.templates():
        if tpl.doc.kind in SCALABLE and _replicas(ms, tpl.doc) >= 2 and not _has_pdb(ms, tpl):
            yield _finding(tpl.doc, f"{_replicas(ms, tpl.doc)} replicas and no PodDisruptionBudget: a drain may "
                           "evict them all at once", "spec", "replicas")


@k8s_rule("k8s.selector-mismatch", Severity.ERROR, "a workload's selector does not match its pod template's labels",
          "make spec.selector.matchLabels a subset of spec.template.metadata.labels")
def selector_mismatch(ms: ManifestSet):
    for tpl in ms.templates():
        if tpl.doc.kind in ("Pod", "CronJob", "Job"):
            continue
        selector = _get(tpl.doc.data, "spec", "selector")
        if selector is None:
            yield _finding(tpl.doc, "has no spec.selector", "spec")
        elif not selector_matches(selector, tpl.labels) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
            yield _finding(tpl.doc, f"spec.selector {_show(selector)} does not select its own pod template "
                           f"(labels {_show(tpl.labels)})", "spec", "selector")


def _show(value: Any) -> str:
    if isinstance(value, dict) and set(value) <= {"matchLabels"}:
        value = value.get("matchLabels") or {}
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={v}" for k, v in value.items()) + "}"
    return repr(value)


@k8s_rule("k8s.service-no-pods", Severity.ERROR, "a Service's selector matches no pod template in the manifests",
          "make the Service's spec.selector equal the pod labels of the workload it serves")
def service_no_pods(ms: ManifestSet):
    templates = ms.templates()
    for doc in ms.of_kind("Service"):
        selector = _get(doc.data, "spec", "selector")
        if not isinstance(selector, dict) or not selector or _get(doc.data, "spec", "type") == "ExternalName":
            continue  # endpoints managed by hand
        ns = ms.namespace_of(doc)
        if not any(ms.namespace_of(t.doc) == ns and all(t.labels.get(k) == v for k, v in selector.items())
                   for t in templates):
            yield _finding(doc, f"selector {_show(selector)} matches no pods in namespace {ns}", "spec", "selector")


@k8s_rule("k8s.hpa-target", Severity.ERROR, "a HorizontalPodAutoscaler targets a workload that is not in the manifests",
          "point spec.scaleTargetRef at the Deployment or StatefulSet (kind, name, apiVersion apps/v1)")
def hpa_target(ms: ManifestSet):
    for hpa in ms.of_kind("HorizontalPodAutoscaler"):
        ref = _get(hpa.data, "spec", "scaleTargetRef") or {}
        ns = ms.namespace_of(hpa)
        if not any(d.kind == ref.get("kind") and d.name == ref.get("name") and ms.namespace_of(d) == ns
                   for d in ms.objects()):
            yield _finding(hpa, f"scaleTargetRef {ref.get('kind')}/{ref.get('name')} is not in namespace {ns}",
                           "spec", "scaleTargetRef")


def _looks_secret(key: str, value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    return is_secret_key(key) or bool(url_password(value)) or is_secret_value(value)


@k8s_rule("k8s.secret-in-env", Severity.ERROR, "a secret is written in plain text in an env value or a ConfigMap",
          "move it to a Secret and reference it with secretKeyRef / envFrom.secretRef")
def secret_in_env(ms: ManifestSet):
    for tpl in ms.templates():
        for path, c in tpl.containers():
            for i, env in enumerate(c.get("env") or []):
                if isinstance(env, dict) and "value" in env and _looks_secret(str(env.get("name", "")), env["value"]):
                    yield _finding(tpl.doc, f"container {c.get('name')}: env {env.get('name')} holds a secret in plain text",
                                   *path, "env", i, "value")
    for doc in ms.of_kind("ConfigMap"):
        declared = str(_get(doc.data, "metadata", "annotations", "berth.dev/not-secret") or "").split(",")
        for key, value in (doc.data.get("data") or {}).items() if isinstance(doc.data.get("data"), dict) else ():
            if key in declared and not url_password(str(value)) and not is_secret_value(str(value)):
                continue  # plain_keys in berth.toml: the name looks secret, the value is not
            if _looks_secret(str(key), value):
                yield _finding(doc, f"key {key} holds a secret in a ConfigMap", "data", key)


def _effective(tpl: PodTemplate, c: dict, field: str) -> Any:
    sc = c.get("securityContext") if isinstance(c.get("securityContext"), dict) else {}
    if field in sc:
        return sc[field]
    pod_sc = tpl.spec.get("securityContext") if isinstance(tpl.spec.get("securityContext"), dict) else {}
    return pod_sc.get(field)


@k8s_rule("k8s.privileged", Severity.ERROR, "a privileged container, privilege escalation, or the host's namespaces",
          "remove privileged/hostNetwork/hostPID/hostIPC and set allowPrivilegeEscalation: false")
def privileged(ms: ManifestSet):
    for tpl in ms.templates():
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            if tpl.spec.get(key) is True:
                yield _finding(tpl.doc, f"{key}: true shares the node's namespace", *tpl.path, "spec", key)
        for path, c in tpl.containers():
            sc = c.get("securityContext") if isinstance(c.get("securityContext"), dict) else {}
            if sc.get("privileged") is True:
                yield _finding(tpl.doc, f"container {c.get('name')} is privileged", *path, "securityContext", "privileged")
            elif sc.get("allowPrivilegeEscalation") is True:
                yield _finding(tpl.doc, f"container {c.get('name')} allows privilege escalation",
                               *path, "securityContext", "allowPrivilegeEscalation")


@k8s_rule("k8s.root", Severity.ERROR, "a container runs as root (runAsUser: 0 or runAsNonRoot: false)",
          "run as a non-root uid: runAsNonRoot: true and runAsUser: <uid>")
def root_user(ms: ManifestSet):
    for tpl in ms.templates():
        for path, c in tpl.containers():
            uid = _effective(tpl, c, "runAsUser")
            if uid == 0 or (_effective(tpl, c, "runAsNonRoot") is False and not uid):
                yield _finding(tpl.doc, f"container {c.get('name')} runs as root", *path)


@k8s_rule("k8s.run-as-non-root", Severity.WARNING, "nothing makes a container run as non-root",
          "set runAsNonRoot: true with a numeric runAsUser (run_as_user in [kubernetes.services.NAME])")
def run_as_non_root(ms: ManifestSet):
    for tpl in ms.templates():
        for path, c in tpl.containers():
            uid = _effective(tpl, c, "runAsUser")
            non_root = _effective(tpl, c, "runAsNonRoot")
            if uid == 0 or non_root is False:
                continue  # k8s.root reports it
            if non_root is not True and not (isinstance(uid, int) and uid > 0):
                yield _finding(tpl.doc, f"container {c.get('name')} may run as root: runAsNonRoot is not set", *path)


# ------------------------------------------------------------------------------------------ running


@dataclass(frozen=True)
class K8sReport(FindingCounts):
    findings: tuple[Finding, ...]
    documents: int
    versions: tuple[str, ...]
    rules_run: int


def check_docs(docs: list[Doc], versions: tuple[str, ...]) -> K8sReport:
    from berth.k8s.schema import resolve_versions

    versions = resolve_versions(versions)
    ms = ManifestSet(docs, versions)
    findings: list[Finding] = []
    for rule in K8S_RULES.values():
        for f in rule.check(ms):
            findings.append(replace(f, rule=rule.id, severity=f.severity if f.severity is not None else rule.severity,
                                    fix=f.fix or rule.fix))
    findings.sort(key=lambda f: (-f.severity, str(f.file or ""), f.line or 0))
    return K8sReport(tuple(findings), len(docs), versions, len(K8S_RULES))


def check_paths(paths: list[Path], versions: tuple[str, ...]) -> K8sReport:
    from berth.k8s.manifests import manifest_paths, read_manifest_file

    docs: list[Doc] = []
    for path in manifest_paths(paths):
        docs.extend(read_manifest_file(path))
    return check_docs(docs, versions)


def check_rendered(rendered, versions: tuple[str, ...], include_secrets: bool = False) -> K8sReport:
    """Check manifests held in memory (what render writes, or what apply sends with include_secrets);
    findings point at <rendered>/FILE:line, FILE being the file render -o writes."""
    from berth.k8s.manifests import HEADER, dump_docs, parse_docs

    grouped: dict[str, list[dict]] = {}
    for m in rendered.manifests:
        if include_secrets or not m.secret:
            grouped.setdefault(m.file, []).append(m.obj)
    docs: list[Doc] = []
    for name, objs in grouped.items():
        docs.extend(parse_docs(HEADER + dump_docs(objs), Path("<rendered>") / name))
    return check_docs(docs, versions)
