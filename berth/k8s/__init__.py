"""Kubernetes: render the compose app as manifests, check them offline, apply them with kubectl.

- settings.py  the `[kubernetes]` table of berth.toml, validated
- env.py       a service's environment as compose computes it, split into settings and secrets
- render.py    compose file + env files + settings → manifests (+ notes for what cannot be expressed)
- manifests.py YAML out (deterministic) and in (with line numbers)
- schema.py    offline OpenAPI/JSON-schema validation (kubernetes-validate's packaged schemas)
- check.py     schema + best-practice rules, as berth check findings
- apply.py     apply / rollback with kubectl (commands from berth/remote/engines/kubernetes.py)
- cli.py       the `berth k8s` click group
"""
