#!/usr/bin/env python3
"""Offline checks of deploy/docker-compose.yml and deploy/docker/Dockerfile.

No container engine runs where this is checked, so neither file is executed. Checked:
  * compose: the three services; the exporter runs `demo` listening on 0.0.0.0:11011 and
    is built from deploy/docker/Dockerfile; every bind-mounted host path exists; Prometheus
    gets its config and the rules file side by side (rule_files is relative); Grafana's
    dashboard mount is the provisioning provider's path; the provisioned datasource URL
    names the prometheus service; images are pinned (no `latest`);
  * Dockerfile: multi-stage, final stage distroless/static or scratch, numeric non-root
    USER, EXPOSE 11011, no HEALTHCHECK (impossible on distroless), the ENTRYPOINT binary
    is the one copied from the builder.

Usage: python3 tests/deploy/check_compose.py   (needs PyYAML). Exit 1 on failure.
"""

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def main():
    failures = []
    fail = failures.append
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose.get("services") or {}
    if set(services) != {"exporter", "prometheus", "grafana"}:
        fail(f"services must be exporter, prometheus, grafana: {sorted(services)}")
    exporter = services.get("exporter", {})
    command = exporter.get("command") or []
    if command[:1] != ["demo"] or "--web.listen-address=0.0.0.0:11011" not in command:
        fail(f"exporter command must be demo --web.listen-address=0.0.0.0:11011: {command}")
    if "11011:11011" not in (exporter.get("ports") or []):
        fail("exporter must publish 11011")
    build = exporter.get("build") or {}
    if not (DEPLOY / build.get("context", "") / build.get("dockerfile", "")).is_file():
        fail(f"exporter build {build} does not name the Dockerfile")
    if exporter.get("read_only") is not True or exporter.get("cap_drop") != ["ALL"]:
        fail("exporter must run read_only with cap_drop [ALL]")

    mounts = {}
    for name, service in services.items():
        image = service.get("image", "")
        if name != "exporter" and (":" not in image or image.endswith(":latest")):
            fail(f"{name}: image {image!r} must be pinned")
        for volume in service.get("volumes") or []:
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                if not (DEPLOY / source).exists():
                    fail(f"{name}: bind mount source {source} does not exist")
                mounts[(name, target)] = (DEPLOY / source).resolve()

    prom_config_target = "/etc/prometheus/prometheus.yml"
    prom_config = mounts.get(("prometheus", prom_config_target))
    if not prom_config:
        fail("prometheus must mount deploy/prometheus/prometheus.yml")
    else:
        config = yaml.safe_load(prom_config.read_text(encoding="utf-8"))
        for rule_file in config.get("rule_files") or []:
            target = f"/etc/prometheus/{rule_file}"
            if mounts.get(("prometheus", target)) != (prom_config.parent / rule_file).resolve():
                fail(f"prometheus: rule file {rule_file} is not mounted at {target}")
        targets = [t for sc in config.get("scrape_configs") or [] for s in sc.get("static_configs") or [] for t in s.get("targets") or []]
        if "exporter:11011" not in targets:
            fail("prometheus.yml must scrape exporter:11011")
        if not any(re.search("sailpoint", sc.get("job_name", "")) for sc in config.get("scrape_configs") or []):
            fail("prometheus.yml job name must contain 'sailpoint' (SailPointExporterDown)")

    providers = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/sailpoint-task-exporter.yml").read_text(encoding="utf-8"))
    provider_path = providers["providers"][0]["options"]["path"]
    dashboard_mounts = [t for (n, t), src in mounts.items() if n == "grafana" and src.name == "sailpoint-task-exporter.json"]
    if not any(t.startswith(provider_path + "/") for t in dashboard_mounts):
        fail(f"grafana: the dashboard JSON is not mounted under the provider path {provider_path}")
    datasources = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text(encoding="utf-8"))
    if datasources["datasources"][0].get("url") != "http://prometheus:9090":
        fail("the provisioned datasource must point at http://prometheus:9090")

    dockerfile = (DEPLOY / "docker/Dockerfile").read_text(encoding="utf-8")
    instructions = [line.strip() for line in dockerfile.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    froms = [line for line in instructions if line.upper().startswith("FROM ")]
    if len(froms) < 2:
        fail("Dockerfile must be multi-stage")
    elif not re.search(r"(distroless/static|^FROM scratch)", froms[-1]):
        fail(f"final stage must be distroless/static or scratch: {froms[-1]}")
    users = [line.split()[1] for line in instructions if line.upper().startswith("USER ")]
    if not users or not re.fullmatch(r"[1-9][0-9]*(:[1-9][0-9]*)?", users[-1]):
        fail(f"Dockerfile must end as a numeric non-root USER: {users}")
    if "EXPOSE 11011" not in instructions:
        fail("Dockerfile must EXPOSE 11011")
    if any(line.upper().startswith("HEALTHCHECK") for line in instructions):
        fail("HEALTHCHECK cannot run on distroless (no shell or HTTP client)")
    copied = re.findall(r"^COPY --from=builder \S+ (\S+)$", dockerfile, re.M)
    entry = re.findall(r'^ENTRYPOINT \["([^"]+)"', dockerfile, re.M)
    if not entry or entry[-1] not in copied:
        fail(f"ENTRYPOINT {entry} is not the binary copied from the builder {copied}")
    if not (DEPLOY / "docker/Dockerfile.dockerignore").is_file():
        fail("deploy/docker/Dockerfile.dockerignore is missing")

    for f in failures:
        print(f"FAIL {f}")
    print(f"compose and Dockerfile: {len(failures)} problem(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
