"""kompose's labels as berth's service settings (berth/k8s/kompose.py)."""

from __future__ import annotations

from berth.k8s.kompose import apply, kompose_labels
from berth.k8s.settings import Autoscale, ServiceSettings


def test_labels_in_either_form_become_settings_where_berth_toml_left_the_default():
    labels = kompose_labels({"labels": ["kompose.volume.size=5Gi", "kompose.controller.type=deployment",
                                        "team=core", "kompose.service.type=NodePort",
                                        "kompose.service.healthcheck.readiness.http_get_path=/ready"]})
    assert "team" not in labels
    conf, notes = apply(ServiceSettings(), labels)
    assert (conf.storage, conf.stateful, conf.service_type, conf.ready_path) == ("5Gi", False, "NodePort", "/ready")
    assert notes == []
    conf, _ = apply(ServiceSettings(storage="1Gi", service_type="LoadBalancer"), labels)
    assert (conf.storage, conf.service_type) == ("1Gi", "LoadBalancer")


def test_labels_berth_cannot_use_are_named():
    _, notes = apply(ServiceSettings(), {"kompose.service.expose": "true", "kompose.controller.type": "daemonset",
                                         "kompose.hpa.cpu": "50", "kompose.hpa.replicas.min": "two"})
    assert any("needs a host name" in n for n in notes)
    assert any("'daemonset' is not rendered" in n for n in notes)
    assert any("'two' is not a whole number" in n for n in notes)
    assert any("needs kompose.hpa.replicas.max" in n for n in notes)


def test_hpa_labels_make_one_autoscale():
    conf, _ = apply(ServiceSettings(), {"kompose.hpa.replicas.max": "4", "kompose.hpa.memory": "80"})
    assert conf.autoscale == Autoscale(1, 4, None, 80)
