#!/usr/bin/env python3
"""Offline checks of deploy/kubernetes that a JSON schema alone cannot make.

kubernetes-validate (run by check.sh) checks the built-in kinds against the official
schemas. This script adds:
  * ServiceMonitor and PrometheusRule (CRDs, no schema shipped): the fields and formats the
    Prometheus Operator CRDs require (duration pattern, one of record/alert per rule,
    string-valued labels and annotations, endpoint ports that exist on the Service);
  * cross-references between the manifests: selectors and labels, port names, probe paths,
    ConfigMap/Secret/ServiceAccount names, the --config.file path versus the mount, the
    config's client_secret_file versus the mounted Secret item;
  * the hardening the brief requires (non-root, read-only root, no capabilities, seccomp,
    resources), so a later edit cannot silently drop it.

Usage: python3 tests/deploy/check_kubernetes.py [DIR]   (needs PyYAML). Exit 1 on failure.
"""

import copy
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DURATION = re.compile(r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$")
UNITS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
ENDPOINT_KEYS = {"port", "targetPort", "path", "scheme", "interval", "scrapeTimeout", "honorLabels",
                 "honorTimestamps", "relabelings", "metricRelabelings", "tlsConfig", "basicAuth",
                 "authorization", "bearerTokenSecret", "params", "followRedirects"}
RULE_KEYS = {"record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations"}


class Checker:
    def __init__(self):
        self.failures = []
        self.passed = 0

    def check(self, ok, message):
        if ok:
            self.passed += 1
        else:
            self.failures.append(message)
        return ok


def seconds(duration):
    total = 0.0
    for number, unit in re.findall(r"([0-9]+)(ms|[ywdhms])", duration):
        total += int(number) * UNITS[unit]
    return total


def load(directory, name):
    return yaml.safe_load((directory / name).read_text(encoding="utf-8"))


def check_service_monitor(c, sm, service):
    c.check(sm.get("apiVersion") == "monitoring.coreos.com/v1" and sm.get("kind") == "ServiceMonitor",
            "servicemonitor.yaml: apiVersion/kind must be monitoring.coreos.com/v1 ServiceMonitor")
    spec = sm.get("spec") or {}
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    labels = service["metadata"].get("labels") or {}
    c.check(selector and all(labels.get(k) == v for k, v in selector.items()),
            f"ServiceMonitor selector {selector} does not select the Service labels {labels}")
    port_names = {p.get("name") for p in service["spec"]["ports"]}
    endpoints = spec.get("endpoints") or []
    c.check(endpoints, "ServiceMonitor has no endpoints")
    for i, ep in enumerate(endpoints):
        c.check(set(ep) <= ENDPOINT_KEYS, f"ServiceMonitor endpoints[{i}] unknown keys {set(ep) - ENDPOINT_KEYS}")
        c.check(ep.get("port") in port_names, f"ServiceMonitor endpoints[{i}].port {ep.get('port')!r} is not a Service port name {port_names}")
        c.check(ep.get("path") == "/metrics", f"ServiceMonitor endpoints[{i}].path must be /metrics")
        for key in ("interval", "scrapeTimeout"):
            c.check(isinstance(ep.get(key), str) and DURATION.match(ep[key]),
                    f"ServiceMonitor endpoints[{i}].{key} {ep.get(key)!r} is not an operator duration")
        if isinstance(ep.get("interval"), str) and isinstance(ep.get("scrapeTimeout"), str):
            c.check(seconds(ep["scrapeTimeout"]) <= seconds(ep["interval"]),
                    f"ServiceMonitor endpoints[{i}].scrapeTimeout exceeds interval")


def check_prometheus_rule(c, pr):
    c.check(pr.get("apiVersion") == "monitoring.coreos.com/v1" and pr.get("kind") == "PrometheusRule",
            "prometheusrule.yaml: apiVersion/kind must be monitoring.coreos.com/v1 PrometheusRule")
    groups = (pr.get("spec") or {}).get("groups") or []
    c.check(groups, "PrometheusRule has no groups")
    names = [g.get("name") for g in groups]
    c.check(len(names) == len(set(names)) and all(names), f"PrometheusRule group names must be unique and set: {names}")
    for g in groups:
        if "interval" in g:
            c.check(DURATION.match(str(g["interval"])), f"group {g.get('name')}: interval {g['interval']!r}")
        for j, rule in enumerate(g.get("rules") or []):
            where = f"group {g.get('name')} rule {j} ({rule.get('alert') or rule.get('record')})"
            c.check(set(rule) <= RULE_KEYS, f"{where}: unknown keys {set(rule) - RULE_KEYS}")
            c.check(("alert" in rule) != ("record" in rule), f"{where}: needs exactly one of alert/record")
            c.check(isinstance(rule.get("expr"), str) and rule["expr"].strip(), f"{where}: expr must be a non-empty string")
            if "for" in rule:
                c.check(isinstance(rule["for"], str) and DURATION.match(rule["for"]), f"{where}: for {rule['for']!r}")
            for key in ("labels", "annotations"):
                values = rule.get(key) or {}
                c.check(all(isinstance(k, str) and isinstance(v, str) for k, v in values.items()),
                        f"{where}: {key} must map strings to strings")


def check_deployment(c, d, service, configmap, secret, service_account, claim, sharded=False):
    spec = d["spec"]
    pod = spec["template"]["spec"]
    template_labels = spec["template"]["metadata"]["labels"]
    c.check(spec["selector"]["matchLabels"].items() <= template_labels.items(),
            "Deployment selector does not match its pod template labels")
    c.check(service["spec"]["selector"].items() <= template_labels.items(),
            "Service selector does not select the Deployment's pods")
    if not sharded:
        c.check(spec.get("replicas") == 1 and spec.get("strategy", {}).get("type") == "Recreate",
                "Deployment must run one replica with the Recreate strategy (one poller per tenant)")
    c.check(pod.get("serviceAccountName") == service_account["metadata"]["name"], "serviceAccountName does not name serviceaccount.yaml")
    c.check(pod.get("automountServiceAccountToken") is False, "automountServiceAccountToken must be false")
    psc = pod.get("securityContext") or {}
    c.check(psc.get("runAsNonRoot") is True and isinstance(psc.get("runAsUser"), int) and psc["runAsUser"] > 0,
            "pod securityContext must set runAsNonRoot and a non-zero runAsUser")
    c.check((psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault", "pod seccompProfile must be RuntimeDefault")
    containers = pod["containers"]
    c.check(len(containers) == 1, "one container expected")
    ct = containers[0]
    sc = ct.get("securityContext") or {}
    c.check(sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem must be true")
    c.check(sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation must be false")
    c.check((sc.get("capabilities") or {}).get("drop") == ["ALL"], "capabilities must drop ALL")
    c.check((sc.get("seccompProfile") or {}).get("type") == "RuntimeDefault", "container seccompProfile must be RuntimeDefault")
    res = ct.get("resources") or {}
    for kind in ("requests", "limits"):
        c.check({"cpu", "memory"} <= set(res.get(kind) or {}), f"resources.{kind} must set cpu and memory")
    ports = {p["name"]: p["containerPort"] for p in ct.get("ports") or []}
    c.check(ports.get("http-metrics") == 11011, "container port http-metrics must be 11011")
    svc_port = next((p for p in service["spec"]["ports"] if p["name"] == "http-metrics"), {})
    c.check(svc_port.get("targetPort") in ("http-metrics", 11011) and svc_port.get("port") == 11011,
            "Service port http-metrics must target the container port 11011")
    for probe, path in (("livenessProbe", "/-/healthy"), ("readinessProbe", "/-/ready")):
        get = (ct.get(probe) or {}).get("httpGet") or {}
        c.check(get.get("path") == path and get.get("port") in ports, f"{probe} must GET {path} on a named container port")

    args = ct.get("args") or []
    config_args = [a.split("=", 1)[1] for a in args if a.startswith("--config.file=")]
    c.check(args[:1] == ["serve"] and len(config_args) == 1, f"args must be serve --config.file=PATH, got {args}")
    if sharded:
        counts = [a.split("=", 1)[1] for a in args if a.startswith("--shard.count=")]
        c.check(counts == [str(spec.get("replicas"))],
                f"StatefulSet --shard.count {counts} must equal spec.replicas {spec.get('replicas')}")
        c.check("--shard.index-from-hostname" in args, "StatefulSet pods must take their shard from the pod ordinal")
    else:
        c.check(not any(a.startswith("--shard.") for a in args), "the single Deployment polls every tenant: no --shard flags")
    env = {e["name"]: e.get("value") for e in ct.get("env") or []}
    c.check(env.get("SAILPOINT_EXPORTER_CONFIG") == config_args[:1][0] if config_args else False,
            "env SAILPOINT_EXPORTER_CONFIG must name the same file as --config.file (for kubectl exec ... tasks)")
    mounts = {m["name"]: m["mountPath"] for m in ct.get("volumeMounts") or []}
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    cm_volume = next((v for v in volumes.values() if "configMap" in v), None)
    secret_volume = next((v for v in volumes.values() if "secret" in v), None)
    c.check(cm_volume and cm_volume["configMap"]["name"] == configmap["metadata"]["name"], "config volume must use configmap.yaml")
    c.check(secret_volume and secret_volume["secret"]["secretName"] == secret["metadata"]["name"], "secret volume must use the Secret of secret.example.yaml")
    storage_args = [a.split("=", 1)[1] for a in args if a.startswith("--storage.path=")]
    state_volume = next((n for n, path in mounts.items() if storage_args and path == storage_args[0]), None)
    if sharded:
        templates = [t for t in spec.get("volumeClaimTemplates") or [] if t["metadata"]["name"] == state_volume]
        c.check(state_volume and state_volume not in volumes and len(templates) == 1,
                "StatefulSet --storage.path must be the mount point of a volumeClaimTemplates volume (one per shard)")
        c.check(templates[:1] and templates[0]["spec"] == claim["spec"],
                "the StatefulSet's state claim template must have the spec of persistentvolumeclaim.yaml")
    else:
        claim_name = ((volumes.get(state_volume) or {}).get("persistentVolumeClaim") or {}).get("claimName")
        c.check(claim_name == claim["metadata"]["name"],
                "--storage.path must be the mount point of a volume of persistentvolumeclaim.yaml (state survives pod rescheduling)")
    if not (cm_volume and secret_volume and config_args):
        return
    items = {i["key"]: i["path"] for i in cm_volume["configMap"].get("items") or []}
    mounted_configs = {f"{mounts.get(cm_volume['name'])}/{path}": key for key, path in items.items()}
    key = mounted_configs.get(config_args[0])
    c.check(key in (configmap.get("data") or {}), f"--config.file {config_args[0]} is not a mounted ConfigMap key ({mounted_configs})")
    secret_items = {i["path"]: i["key"] for i in secret_volume["secret"].get("items") or []}
    secret_files = {f"{mounts.get(secret_volume['name'])}/{path}": k for path, k in secret_items.items()}
    c.check(all(k in (secret.get("stringData") or secret.get("data") or {}) for k in secret_items.values()),
            "the Secret volume's items name keys missing from secret.example.yaml")
    c.check(secret_volume["secret"].get("defaultMode") in (0o400, 0o440), "secret files must be mode 0400 or 0440")
    if key is None:
        return
    config = yaml.safe_load(configmap["data"][key])
    tenants = config.get("tenants") or []
    c.check(tenants, "the ConfigMap's config has no tenants")
    for t in tenants:
        c.check("client_secret" not in t, f"tenant {t.get('name')}: the client secret must not be in the ConfigMap")
        c.check(t.get("client_secret_file") in secret_files,
                f"tenant {t.get('name')}: client_secret_file {t.get('client_secret_file')!r} is not a mounted Secret file {sorted(secret_files)}")
    listen = (config.get("web") or {}).get("listen_address", "0.0.0.0:11011")
    c.check(listen.endswith(":11011") and not listen.startswith("127."), f"web.listen_address {listen!r} must listen on 11011, not loopback only")


def check_sharded(c, directory, service, service_monitor, configmap, secret, service_account, claim):
    """The `sharded` Kustomize component: a StatefulSet of shards replacing the Deployment."""
    sharded = directory / "sharded"
    component = load(sharded, "kustomization.yaml")
    c.check(component.get("kind") == "Component" and component.get("apiVersion") == "kustomize.config.k8s.io/v1alpha1",
            "sharded/kustomization.yaml must be a Kustomize Component")
    resources = component.get("resources") or []
    c.check(resources and all((sharded / r).exists() for r in resources), f"sharded/kustomization.yaml lists missing files: {resources}")
    patches = " ".join(p.get("patch", "") for p in component.get("patches") or [])
    c.check("$patch: delete" in patches and "kind: Deployment" in patches and "kind: PersistentVolumeClaim" in patches,
            "the component must delete the Deployment and the shared state claim")
    statefulset = load(sharded, "statefulset.yaml")
    headless = load(sharded, "service-headless.yaml")
    c.check(statefulset.get("kind") == "StatefulSet", "sharded/statefulset.yaml must be a StatefulSet")
    c.check(statefulset["spec"].get("serviceName") == headless["metadata"]["name"], "StatefulSet serviceName must name the headless Service")
    c.check(headless["spec"].get("clusterIP") == "None", "the governing Service must be headless (clusterIP: None)")
    selector = ((service_monitor.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    headless_labels = headless["metadata"].get("labels") or {}
    c.check(not all(headless_labels.get(k) == v for k, v in selector.items()),
            "the ServiceMonitor must not select the headless Service (every pod would be scraped twice)")
    c.check(statefulset["spec"].get("podManagementPolicy") == "Parallel", "shards are independent: podManagementPolicy Parallel")
    check_deployment(c, statefulset, service, configmap, secret, service_account, claim, sharded=True)
    deployment = load(directory, "deployment.yaml")
    c.check(without_shard_flags(statefulset["spec"]["template"]) == deployment["spec"]["template"],
            "the StatefulSet's pod template must equal the Deployment's apart from the --shard flags")


def without_shard_flags(template):
    """The StatefulSet's pod template as the Deployment's would be: no --shard flags, and
    the state volume (a claim template in the StatefulSet) back in the volumes."""
    template = copy.deepcopy(template)
    template["spec"]["volumes"] = [{"name": "state", "persistentVolumeClaim": {"claimName": "sailpoint-task-exporter-state"}}] \
        + template["spec"].get("volumes", [])
    for container in template["spec"]["containers"]:
        container["args"] = [a for a in container.get("args") or [] if not a.startswith("--shard.")]
    return template


def main(argv):
    directory = Path(argv[1]) if len(argv) > 1 else ROOT / "deploy/kubernetes"
    c = Checker()
    kustomization = load(directory, "kustomization.yaml")
    resources = kustomization.get("resources") or []
    c.check(all((directory / r).exists() for r in resources), f"kustomization.yaml lists missing files: {resources}")
    c.check("secret.example.yaml" not in resources, "kustomization.yaml must not apply the example Secret")
    service = load(directory, "service.yaml")
    check_service_monitor(c, load(directory, "servicemonitor.yaml"), service)
    check_prometheus_rule(c, load(directory, "prometheusrule.yaml"))
    check_deployment(c, load(directory, "deployment.yaml"), service, load(directory, "configmap.yaml"),
                     load(directory, "secret.example.yaml"), load(directory, "serviceaccount.yaml"),
                     load(directory, "persistentvolumeclaim.yaml"))
    check_sharded(c, directory, service, load(directory, "servicemonitor.yaml"), load(directory, "configmap.yaml"),
                  load(directory, "secret.example.yaml"), load(directory, "serviceaccount.yaml"),
                  load(directory, "persistentvolumeclaim.yaml"))
    for failure in c.failures:
        print(f"FAIL {failure}")
    print(f"kubernetes structure and cross-references: {c.passed} passed, {len(c.failures)} failed")
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
