"""`berth k8s check`: each rule fires on a known-bad manifest and stays quiet on a good one; the
schema is the one of the version asked for; the finding format and exit codes are berth check's."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from berth.errors import UsageError
from berth.k8s.check import K8S_RULES, check_paths, selector_matches
from berth.k8s.schema import newest_version, resolve_versions, shipped_versions
from tests.helpers import run_berth

VERSIONS = ("1.30", "newest")

GOOD = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web, tier: front}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 1000}
      containers:
      - name: web
        image: ghcr.io/acme/web:1.2.3
        env:
        - {name: LOG_LEVEL, value: info}
        - name: SECRET_KEY
          valueFrom: {secretKeyRef: {name: web, key: SECRET_KEY}}
        livenessProbe: {httpGet: {path: /health, port: 8080}}
        readinessProbe: {httpGet: {path: /ready, port: 8080}}
        resources:
          requests: {cpu: 100m, memory: 128Mi}
          limits: {memory: 256Mi}
        securityContext: {allowPrivilegeEscalation: false}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: shop}
spec:
  maxUnavailable: 1
  selector: {matchLabels: {app: web}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: 5
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web, namespace: shop}
data: {LOG_LEVEL: info, PUBLIC_URL: "https://shop.example.com"}
"""

# every rule fires at least once here; the comment names the rule each part is for
BAD = """\
# k8s.manifest
apiVersion: v1
kind: ConfigMap
data: {a: b}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: Bad_Name          # k8s.name
  namespace: shop
spec:
  replicas: one           # k8s.schema
  selector:
    matchLabels: {app: api}   # k8s.selector-mismatch
  template:
    metadata:
      labels: {app: web}
    spec:
      hostNetwork: true       # k8s.privileged
      containers:
      - name: api             # no probes, no resources: k8s.liveness-probe, k8s.readiness-probe, k8s.resources
        image: nginx          # k8s.image-tag (untagged)
        env:
        - {name: DB_PASSWORD, value: hunter2hunter2}          # k8s.secret-in-env
        - {name: DATABASE_URL, value: "postgres://u:pw1234@db/x"}
        securityContext: {privileged: true, runAsUser: 0}      # k8s.privileged, k8s.root
      - name: side
        image: busybox:latest # k8s.image-tag (latest), k8s.run-as-non-root
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: db
        image: postgres:16.4
        securityContext: {runAsNonRoot: true, runAsUser: 999}
        livenessProbe: {exec: {command: [pg_isready]}}
        readinessProbe: {exec: {command: [pg_isready]}}
        resources: {requests: {cpu: 100m, memory: 1Gi}, limits: {memory: 1Gi}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: many, namespace: shop}
spec:
  replicas: 3             # k8s.pdb-missing (and db above: k8s.single-replica)
  selector: {matchLabels: {app: many}}
  template:
    metadata: {labels: {app: many}}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 1000}
      containers:
      - name: many
        image: ghcr.io/acme/many:1.0.0
        livenessProbe: {exec: {command: ["true"]}}
        readinessProbe: {exec: {command: ["true"]}}
        resources: {requests: {cpu: 100m, memory: 1Gi}, limits: {memory: 1Gi}}
---
apiVersion: v1
kind: Service
metadata: {name: orphan, namespace: shop}
spec:
  selector: {app: nothing-has-this}   # k8s.service-no-pods
  ports: [{port: 80}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: ghost, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: ghost}   # k8s.hpa-target
  minReplicas: 1
  maxReplicas: 3
---
apiVersion: v1
kind: ConfigMap
metadata: {name: leaky, namespace: shop}
data:
  API_TOKEN: tok_abcdef123456                                # k8s.secret-in-env
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor                                        # k8s.no-schema
metadata: {name: web, namespace: shop}
spec: {}
"""


@pytest.fixture
def manifests(tmp_path):
    def write(name: str, text: str) -> Path:
        p = tmp_path / name
        p.write_text(text)
        return p
    return write


def test_good_manifest_is_clean(manifests):
    report = check_paths([manifests("good.yaml", GOOD)], VERSIONS)
    assert report.findings == (), [f.message for f in report.findings]
    assert report.versions == ("1.30", newest_version())


def test_every_rule_fires_on_the_known_bad_manifest(manifests):
    report = check_paths([manifests("bad.yaml", BAD)], VERSIONS)
    fired = {f.rule for f in report.findings}
    assert fired == set(K8S_RULES), f"rules that did not fire: {set(K8S_RULES) - fired}"


@pytest.mark.parametrize("rule,needle,line", [
    ("k8s.manifest", "missing metadata.name", 2),
    ("k8s.name", "name 'Bad_Name' is not valid", 9),
    ("k8s.schema", "spec.replicas: 'one' is not of type 'integer', 'null' (Kubernetes 1.30, ", 12),
    ("k8s.selector-mismatch", "does not select its own pod template", 13),
    ("k8s.privileged", "hostNetwork: true", 19),
    ("k8s.privileged", "container api is privileged", 26),
    ("k8s.root", "container api runs as root", 21),
    ("k8s.image-tag", "image nginx has no tag", 22),
    ("k8s.image-tag", "image busybox:latest uses :latest", 28),
    ("k8s.secret-in-env", "env DB_PASSWORD holds a secret", 24),
    ("k8s.secret-in-env", "env DATABASE_URL holds a secret", 25),
    ("k8s.secret-in-env", "key API_TOKEN holds a secret in a ConfigMap", 83),
    ("k8s.liveness-probe", "container api has no livenessProbe", 21),
    ("k8s.readiness-probe", "container side has no readinessProbe", 27),
    ("k8s.resources", "container api has no requests.cpu, requests.memory, limits.memory", 21),
    ("k8s.run-as-non-root", "container side may run as root", 27),
    ("k8s.single-replica", "StatefulSet/db: 1 replica and no PodDisruptionBudget", 33),
    ("k8s.pdb-missing", "Deployment/many: 3 replicas and no PodDisruptionBudget", 51),
    ("k8s.service-no-pods", "selector {app=nothing-has-this} matches no pods in namespace shop", 68),
    ("k8s.hpa-target", "scaleTargetRef Deployment/ghost is not in namespace shop", 75),
    ("k8s.no-schema", "no schema for monitoring.coreos.com/v1 ServiceMonitor", 86),
])
def test_findings_name_the_problem_and_the_line(manifests, rule, needle, line):
    path = manifests("bad.yaml", BAD)
    report = check_paths([path], VERSIONS)
    hits = [f for f in report.findings if f.rule == rule and needle in f.message]
    assert hits, [f.message for f in report.findings if f.rule == rule]
    assert hits[0].line == line and hits[0].file == path
    assert hits[0].fix == K8S_RULES[rule].fix


def test_secret_values_are_not_printed(manifests):
    report = check_paths([manifests("bad.yaml", BAD)], VERSIONS)
    text = " ".join(f.message for f in report.findings)
    assert "hunter2" not in text and "pw1234" not in text and "tok_abcdef" not in text


def test_schema_differs_by_version(manifests):
    """FlowSchema flowcontrol v1beta3 was removed in 1.32: valid for 1.30, no schema for the newest."""
    doc = """\
apiVersion: flowcontrol.apiserver.k8s.io/v1beta3
kind: FlowSchema
metadata: {name: x}
spec:
  priorityLevelConfiguration: {name: global-default}
"""
    path = manifests("fs.yaml", doc)
    assert not [f for f in check_paths([path], ("1.30",)).findings if f.rule == "k8s.no-schema"]
    newest = check_paths([path], ("newest",)).findings
    assert [f for f in newest if f.rule == "k8s.no-schema"]


def test_versions():
    assert "1.30" in shipped_versions()
    assert resolve_versions(["v1.30.4", "newest", "1.30"]) == ("1.30", newest_version())
    with pytest.raises(UsageError, match="no schemas for Kubernetes 1.99"):
        resolve_versions(["1.99"])


def test_selector_matching():
    labels = {"app": "web", "tier": "front"}
    assert selector_matches({"matchLabels": {"app": "web"}}, labels)
    assert not selector_matches({"matchLabels": {"app": "api"}}, labels)
    assert selector_matches({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]}, labels)
    assert selector_matches({"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "x", "operator": "Exists"}]}, labels)


def test_kind_list_is_expanded(manifests):
    doc = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: s}\n" \
          "  spec:\n    selector: {app: none}\n    ports: [{port: 1}]\n"
    report = check_paths([manifests("list.yaml", doc)], VERSIONS)
    assert [f.rule for f in report.findings] == ["k8s.service-no-pods"]


# --------------------------------------------------------------------------- the command


def berth(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return run_berth(*args, cwd=cwd, env={**os.environ, "NO_COLOR": "1"})


def test_exit_codes_and_format(tmp_path, manifests):
    good, bad = manifests("good.yaml", GOOD), manifests("bad.yaml", BAD)
    proc = berth(tmp_path, "k8s", "check", str(good))
    assert proc.returncode == 0 and "0 errors, 0 warnings" in proc.stdout
    proc = berth(tmp_path, "k8s", "check", str(bad))
    assert proc.returncode == 1
    assert "bad.yaml:22: error: Deployment/Bad_Name: container api: image nginx has no tag [k8s.image-tag]" in proc.stdout
    assert "    fix: pin a version tag" in proc.stdout
    only_warnings = manifests("warn.yaml", GOOD.replace("replicas: 2", "replicas: 1").split("---")[0])
    assert berth(tmp_path, "k8s", "check", str(only_warnings)).returncode == 0
    assert berth(tmp_path, "k8s", "check", "--fail-on", "warning", str(only_warnings)).returncode == 1
    proc = berth(tmp_path, "k8s", "check", "--format", "json", "--kube-version", "1.31", str(bad))
    data = json.loads(proc.stdout)
    assert proc.returncode == 1 and data["versions"] == ["1.31"]
    assert {"rule", "severity", "message", "file", "line", "col", "fix"} == set(data["findings"][0])
    assert data["counts"]["error"] == sum(f["severity"] == "error" for f in data["findings"])


def test_directory_is_searched(tmp_path, manifests):
    d = tmp_path / "m"
    d.mkdir()
    (d / "a.yaml").write_text(GOOD)
    (d / "notes.txt").write_text("not yaml: [")
    proc = berth(tmp_path, "k8s", "check", str(d))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("setup,message", [
    (lambda p: None, "does not exist"),
    (lambda p: p.write_text("a: [1, 2\nb: 3\n"), "is not valid YAML"),
    (lambda p: p.write_bytes(b"\xff\xfe\x00bad"), "is not UTF-8"),
])
def test_unreadable_input_is_exit_2(tmp_path, setup, message):
    p = tmp_path / "m.yaml"
    setup(p)
    proc = berth(tmp_path, "k8s", "check", str(p))
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and message in proc.stderr and proc.stderr.strip().count("\n") == 0


def test_unknown_version_is_exit_2(tmp_path, manifests):
    proc = berth(tmp_path, "k8s", "check", "--kube-version", "1.12", str(manifests("g.yaml", GOOD)))
    assert proc.returncode == 2 and "no schemas for Kubernetes 1.12" in proc.stderr


def test_list_rules(tmp_path):
    proc = berth(tmp_path, "k8s", "check", "--list-rules")
    assert proc.returncode == 0
    for rule in K8S_RULES:
        assert rule in proc.stdout


def test_check_without_paths_checks_what_render_produces(tmp_path):
    root = tmp_path / "app"
    root.mkdir()
    (root / "docker-compose.yml").write_text("services:\n  web:\n    image: nginx:latest\n")
    (root / ".env").write_text("ENVIRONMENT=staging\n")
    proc = berth(root, "k8s", "check")
    assert proc.returncode == 1
    assert "<rendered>/web.yaml:" in proc.stdout and "[k8s.image-tag]" in proc.stdout
