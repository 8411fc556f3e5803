"""`berth k8s apply` and `berth k8s rollback`: kubectl, driven step by step like `berth deploy`.

apply:    render (Secrets in memory) → check → context → confirm → read the release record →
          namespace (applied alone, so the dry run can see it) → server-side dry run →
          server-side apply (manifests + release record on stdin) →
          rollout status of every workload (with a timeout) → readiness verification
rollback: render (names only) → context → confirm → read the release record → rollout undo of the
          workloads the last apply changed (or --service) → rollout status → verification →
          release record updated

The release record is a ConfigMap (berth-release) holding, per workload, a checksum of the pod
template berth applied. From it apply knows which workloads it changed, so rollback undoes exactly
those — never a workload the last apply left alone, which `rollout undo` would send back to an older
revision. It holds no secret value (only checksums, image names and times).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from berth.configuration.target import Target
from berth.deploy.gate import confirm
from berth.errors import BerthError
from berth.k8s.settings import K8sSettings
from berth.model.release import AppliedRelease
from berth.remote.engines.kubernetes import RELEASE_CONFIGMAP, Invocation, Kubectl, parse_release, parse_workloads
from berth.remote.session import DEBUG_OUTPUT_LIMIT
from berth.secrets.masking import masked_tail


@dataclass(frozen=True)
class ApplyOptions:
    yes: bool = False
    tag: str | None = None
    monitoring: bool = False
    timeout: int | None = None
    services: tuple[str, ...] = ()  # rollback: these services only
    to_revision: int | None = None  # rollback: this revision instead of the previous one


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


Runner = Callable[[Invocation], Result]


def run_kubectl(inv: Invocation) -> Result:
    """Run one kubectl invocation; stdin (manifests, Secrets) is written to the pipe, never to a file."""
    try:
        proc = subprocess.run(list(inv.argv), input=inv.stdin if inv.stdin is not None else b"",
                              capture_output=True, timeout=inv.timeout, env=os.environ.copy())
    except FileNotFoundError:
        raise BerthError(f"{inv.argv[0]} is not installed (or not on PATH)",
                         fix="install kubectl and configure access to the cluster") from None
    except subprocess.TimeoutExpired:
        raise BerthError(f"kubectl did not finish within {int(inv.timeout)}s: {inv.describe()}",
                         fix="check that the cluster is reachable (kubectl get nodes)") from None
    return Result(proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"))


class _Session:
    """kubectl with the step log: every call checked, its output masked in errors."""

    def __init__(self, kubectl: Kubectl, runner: Runner, printer):
        self.kubectl = kubectl
        self.runner = runner
        self.printer = printer
        self.calls: list[Invocation] = []

    def run(self, inv: Invocation, what: str, fix: str | None = None, check: bool = True) -> Result:
        self.calls.append(inv)
        self.printer.debug(f"$ {inv.describe()}")
        result = self.runner(inv)
        for text in (result.out, result.err):
            if text.strip():  # masked before it is cut
                self.printer.debug(self.tail(text, DEBUG_OUTPUT_LIMIT))
        if check and result.code != 0:
            message = self.tail(result.err.strip() or result.out.strip() or f"exit code {result.code}", 600)
            raise BerthError(f"{what} failed: {' '.join(message.splitlines()[-3:])}",
                             fix=fix or "read kubectl's message above; berth k8s check shows problems in the manifests")
        return result

    def tail(self, text: str, limit: int) -> str:
        """The end of kubectl's output, masked before it is cut (berth.secrets.masking.masked_tail)."""
        return masked_tail(text, limit, self.printer.mask)


def _context(session: _Session, settings: K8sSettings, log) -> str:
    with log.step("context") as info:
        if settings.context:
            info["detail"] = f"{settings.context} ← {settings.origin.get('context', 'berth.toml')}, namespace {settings.namespace}"
            return settings.context
        result = session.run(session.kubectl.current_context(), "kubectl config current-context",
                             fix="set context in [kubernetes] (or [kubernetes.environments.NAME]) of berth.toml, "
                                 "or select one with kubectl config use-context")
        context = result.out.strip()
        info["detail"] = f"{context} ← kubectl's current context, namespace {settings.namespace}"
        return context


def _kubectl_for(settings: K8sSettings, root: Path) -> Kubectl:
    kubeconfig = settings.kubeconfig
    if kubeconfig:
        p = Path(kubeconfig).expanduser()
        kubeconfig = str(p if p.is_absolute() else root / p)
    return Kubectl(settings.namespace, settings.context, kubeconfig)


def _template_checksums(rendered) -> dict[str, str]:
    import hashlib

    out = {}
    for m in rendered.manifests:
        if m.obj.get("kind") in ("Deployment", "StatefulSet"):
            text = json.dumps(m.obj["spec"]["template"], sort_keys=True)
            out[f"{m.obj['kind']}/{m.obj['metadata']['name']}"] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return out


def release_configmap(namespace: str, record: AppliedRelease, instance_selector: str) -> dict:
    labels = dict(part.split("=", 1) for part in instance_selector.split(","))
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": RELEASE_CONFIGMAP, "namespace": namespace, "labels": labels},
            "data": {"release.json": json.dumps(record.to_record(), indent=2, sort_keys=True)}}


def _who(root: Path) -> str:
    from berth.model import git as gitlocal

    try:
        return gitlocal.user_identity(root)
    except Exception:  # noqa: BLE001 - who applied is informational
        return os.environ.get("USER", "unknown")


def _wait(session: _Session, workloads: list[tuple[str, str]], timeout: int, log, target: Target) -> None:
    for kind, name in workloads:
        with log.step("rollout") as info:
            inv = session.kubectl.rollout_status(kind, name, timeout)
            result = session.run(inv, f"rollout of {kind.lower()}/{name}", check=False)
            if result.code != 0:
                logs = session.run(session.kubectl.logs(kind, name), "logs", check=False)
                raise BerthError(
                    f"{kind.lower()}/{name} did not become ready within {timeout}s: "
                    f"{session.tail(result.err or result.out, 300)}",
                    fix=f"read the pod log lines below; `berth k8s rollback -e {target.environment}` undoes the "
                        "workloads this apply changed",
                    details=(session.tail(logs.out, 3000) if logs.out.strip() else session.tail(logs.err, 1000))
                    or "(no log output)")
            info["detail"] = f"{kind.lower()}/{name} rolled out"


def _verify(session: _Session, rendered, workloads: list[tuple[str, str]], log) -> None:
    with log.step("verify") as info:
        result = session.run(session.kubectl.get_workloads(rendered.selector), "reading the workloads' status")
        try:
            statuses = {(s.kind, s.name): s for s in parse_workloads(result.out)}
        except (ValueError, AttributeError):
            raise BerthError("kubectl get printed something that is not JSON",
                             details=session.tail(result.out, 500)) from None
        problems = []
        for kind, name in workloads:
            s = statuses.get((kind, name))
            if s is None:
                problems.append(f"{kind.lower()}/{name} is missing")
            elif not s.ok:
                problems.append(s.describe())
        if problems:
            raise BerthError("verify failed: " + "; ".join(problems),
                             fix="kubectl get pods and kubectl describe show why; berth k8s rollback undoes the change")
        info["detail"] = ", ".join(statuses[w].describe() for w in workloads)


def run_apply(target: Target, settings: K8sSettings, opts: ApplyOptions, printer, runner: Runner = run_kubectl) -> dict:
    from berth.check.findings import Severity
    from berth.deploy.steplog import StepLog
    from berth.k8s.check import check_rendered
    from berth.k8s.render import render
    from berth.secrets.masking import Masker, secret_forms
    from berth.ui.output import render_findings

    log = StepLog(printer)
    started = time.monotonic()
    with log.step("render") as info:
        rendered = render(target, settings, tag=opts.tag, monitoring=opts.monitoring, with_secrets=True)
        # the values of the Secrets built in memory, in every form (berth.secrets.masking.secret_forms)
        more = [form for value in rendered.secret_values for form in secret_forms(value)]
        printer.mask = printer.mask.extended(more) if isinstance(printer.mask, Masker) else Masker(more)
        secrets = sum(1 for m in rendered.manifests if m.secret)
        info["detail"] = (f"{len(rendered.manifests)} objects for namespace {rendered.namespace} "
                          f"({secrets} Secret{'s' * (secrets != 1)} built in memory)")
        notes = [f for f in rendered.findings if f.severity >= Severity.WARNING]
        if notes:
            printer.block(render_findings(notes, target.root, printer.mask), rendered=True)
    with log.step("check") as info:
        report = check_rendered(rendered, settings.kube_versions, include_secrets=True)
        c = report.counts()
        info["detail"] = (f"{report.rules_run} rules, Kubernetes {', '.join(report.versions)}: "
                          f"{c['error']} errors, {c['warning']} warnings")
        if report.errors:
            printer.block(render_findings(report.errors, target.root, printer.mask), rendered=True)
            n = len(report.errors)
            raise BerthError(f"check found {n} error{'s' * (n != 1)}; nothing was sent to the cluster",
                             fix="fix the findings listed above (berth k8s check shows them alone)")
    session = _Session(_kubectl_for(settings, target.root), runner, printer)
    context = _context(session, settings, log)
    confirm(target, opts.yes, log, "apply to", f"kubectl context {context}, namespace {settings.namespace}")
    with log.step("release") as info:
        previous = AppliedRelease.from_record(
            parse_release(session.run(session.kubectl.get_release(), "reading the release record").out))
        checksums = _template_checksums(rendered)
        old = previous.workloads if previous else {}
        changed = [w for w, c in checksums.items() if old.get(w) != c]
        images = {f"{m.obj['kind']}/{m.obj['metadata']['name']}": m.obj["spec"]["template"]["spec"]["containers"][0]["image"]
                  for m in rendered.manifests if m.obj.get("kind") in ("Deployment", "StatefulSet")}
        record = AppliedRelease(
            id=time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()), environment=target.environment,
            applied_by=_who(target.root), applied_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            images=images, workloads=checksums, changed=changed, previous=previous.id if previous else None)
        info["detail"] = (f"previous {previous.id}" if previous else "first apply") + \
            f"; changes {', '.join(changed) if changed else 'no workload'}"
    stream = rendered.docs(include_secrets=True) + [release_configmap(rendered.namespace, record, rendered.selector)]
    from berth.k8s.manifests import dump_docs

    payload = dump_docs(stream).encode("utf-8")
    with log.step("namespace") as info:
        # the dry run of namespaced objects needs their namespace to exist; an empty namespace changes nothing else
        namespace_doc = [d for d in stream if d.get("kind") == "Namespace"]
        session.run(session.kubectl.apply(dump_docs(namespace_doc).encode("utf-8")), f"creating namespace {rendered.namespace}")
        info["detail"] = rendered.namespace
    with log.step("dry-run") as info:
        session.run(session.kubectl.apply(payload, dry_run=True), "server-side dry run (nothing was changed)")
        info["detail"] = f"{len(stream)} objects accepted by the API server"
    with log.step("apply") as info:
        result = session.run(session.kubectl.apply(payload), "kubectl apply --server-side",
                             fix="another field manager may own these fields (kubectl's message names it); "
                                 "berth never forces ownership")
        info["detail"] = f"{len(stream)} objects, server-side ({len(result.out.strip().splitlines())} reported)"
    timeout = opts.timeout or settings.rollout_timeout
    _wait(session, rendered.workloads, timeout, log, target)
    _verify(session, rendered, rendered.workloads, log)
    return {"ok": True, "environment": target.environment, "namespace": rendered.namespace, "context": context,
            "release": record.id, "changed": changed, "seconds": round(time.monotonic() - started, 3),
            "steps": log.steps, "calls": session.calls}


def run_rollback(target: Target, settings: K8sSettings, opts: ApplyOptions, printer,
                 runner: Runner = run_kubectl) -> dict:
    from berth.deploy.steplog import StepLog
    from berth.k8s.manifests import dump_docs
    from berth.k8s.render import k8s_name, render

    log = StepLog(printer)
    started = time.monotonic()
    with log.step("render") as info:
        rendered = render(target, settings, tag=opts.tag or "unused", monitoring=opts.monitoring)
        info["detail"] = f"{len(rendered.workloads)} workloads in namespace {rendered.namespace}"
    session = _Session(_kubectl_for(settings, target.root), runner, printer)
    context = _context(session, settings, log)
    with log.step("release") as info:
        record = AppliedRelease.from_record(
            parse_release(session.run(session.kubectl.get_release(), "reading the release record").out))
        known = {f"{kind}/{name}": (kind, name) for kind, name in rendered.workloads}
        if opts.services:
            wanted = []
            for s in opts.services:
                match = [w for w in known.values() if w[1] == k8s_name(s)]
                if not match:
                    raise BerthError(f"there is no workload for service {s}",
                                     fix=f"use one of: {', '.join(n for _, n in rendered.workloads)}", exit_code=2)
                wanted += match
        elif record is None:
            raise BerthError(f"namespace {settings.namespace} has no berth release record, so berth cannot tell "
                             "what the last apply changed",
                             fix="name the services to roll back with --service NAME")
        else:
            wanted = [known[w] for w in record.changed if w in known]
            if not wanted:
                raise BerthError(f"the last apply ({record.id}) changed no workload; there is nothing to undo",
                                 fix="name services with --service NAME to undo them anyway")
        info["detail"] = "undoing " + ", ".join(f"{k.lower()}/{n}" for k, n in wanted) + \
            (f" (release {record.id})" if record else "")
    confirm(target, opts.yes, log, "roll back", f"kubectl context {context}, namespace {settings.namespace}")
    for kind, name in wanted:
        with log.step("undo") as info:
            session.run(session.kubectl.rollout_undo(kind, name, opts.to_revision), f"rollout undo {kind.lower()}/{name}",
                        fix="kubectl rollout history shows the revisions there are")
            info["detail"] = f"{kind.lower()}/{name}" + (f" → revision {opts.to_revision}" if opts.to_revision else "")
    timeout = opts.timeout or settings.rollout_timeout
    _wait(session, wanted, timeout, log, target)
    _verify(session, rendered, wanted, log)
    with log.step("record") as info:
        new = record or AppliedRelease()
        undone = [f"{k}/{n}" for k, n in wanted]
        new.workloads = {w: c for w, c in new.workloads.items() if w not in undone}
        new.changed = []
        new.rolled_back = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "by": _who(target.root),
                           "workloads": undone}
        payload = dump_docs([release_configmap(rendered.namespace, new, rendered.selector)]).encode()
        session.run(session.kubectl.apply(payload), "recording the rollback")
        info["detail"] = f"{RELEASE_CONFIGMAP}: {', '.join(undone)} rolled back"
    return {"ok": True, "environment": target.environment, "namespace": rendered.namespace, "context": context,
            "rolled_back": undone, "seconds": round(time.monotonic() - started, 3), "steps": log.steps,
            "calls": session.calls}
