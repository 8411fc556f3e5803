"""kompose's `kompose.*` labels on compose services, read as berth's [kubernetes.services.NAME] settings.

A team moving from `kompose convert` keeps its compose file as it is: the labels it put there for kompose
mean the same to `berth k8s render`. A setting in berth.toml wins over a label.
https://kompose.io/user-guide/#labels
"""

from __future__ import annotations

import dataclasses
from typing import Any

from berth.k8s.settings import Autoscale, ServiceSettings

PREFIX = "kompose."
_SERVICE_TYPES = {"nodeport": "NodePort", "clusterip": "ClusterIP", "loadbalancer": "LoadBalancer"}


def kompose_labels(service: dict) -> dict[str, str]:
    """The service's `kompose.*` labels (mapping or KEY=VALUE list form), values as strings."""
    labels = service.get("labels")
    if isinstance(labels, list):
        labels = dict(str(item).partition("=")[::2] for item in labels)
    if not isinstance(labels, dict):
        return {}
    return {str(k): str(v).strip() for k, v in labels.items() if str(k).startswith(PREFIX) and v is not None}


def apply(conf: ServiceSettings, labels: dict[str, str]) -> tuple[ServiceSettings, list[str]]:
    """`conf` with the labels' settings where berth.toml left the default; and a note for each label that is
    not used (unknown to berth, or a value it cannot use)."""
    default = ServiceSettings()
    values: dict[str, Any] = {}
    notes: list[str] = []

    def put(field: str, value: Any) -> None:
        if getattr(conf, field) == getattr(default, field):  # berth.toml did not set it
            values[field] = value

    def number(key: str) -> int | None:
        text = labels.get(key)
        if text is None:
            return None
        if text.isdigit():
            return int(text)
        notes.append(f"{key}: {text!r} is not a whole number")
        return None

    for key, value in labels.items():
        if key == "kompose.service.type":
            if value.lower() in _SERVICE_TYPES:
                put("service_type", _SERVICE_TYPES[value.lower()])
            else:
                notes.append(f"{key}: {value!r} is not rendered (berth renders nodeport, clusterip, loadbalancer)")
        elif key == "kompose.service.expose":
            if value.lower() == "true":
                notes.append(f"{key}: true needs a host name for berth's Ingress: set the label to the host "
                             "(or host = \"...\" in berth.toml)")
            elif value.lower() != "false":
                host, _, path = value.split(",")[0].strip().partition("/")
                put("host", host)
                if path:
                    put("path", "/" + path)
        elif key == "kompose.service.expose.tls-secret":
            put("tls_secret", value)
        elif key == "kompose.volume.size":
            put("storage", value)
        elif key == "kompose.controller.type":
            if value.lower() in ("statefulset", "deployment"):
                put("stateful", value.lower() == "statefulset")
            else:
                notes.append(f"{key}: {value!r} is not rendered (berth renders Deployments and StatefulSets)")
        elif key == "kompose.service.healthcheck.readiness.http_get_path":
            put("ready_path", value)
        elif key.startswith("kompose.hpa."):
            continue  # below, together
        else:
            notes.append(f"{key} is not read by berth")
    low, high = number("kompose.hpa.replicas.min"), number("kompose.hpa.replicas.max")
    cpu, memory = number("kompose.hpa.cpu"), number("kompose.hpa.memory")
    if high is not None:
        put("autoscale", Autoscale(low or 1, high, cpu if cpu is not None else (None if memory else 70), memory))
    elif any(k.startswith("kompose.hpa.") for k in labels):
        notes.append("kompose.hpa.*: autoscaling needs kompose.hpa.replicas.max")
    return dataclasses.replace(conf, **values), notes
