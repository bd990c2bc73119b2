"""The deploy files are valid and agree with the binaries they start:
- systemd units: `systemd-analyze verify` (with ExecStart pointed at the built
  binaries) reports nothing; the flags they pass are accepted by the binaries;
- Grafana provisioning: apiVersion 1, one data source of type
  grafana-pyroscope-datasource, proxy access, url = the collector's default
  HTTP address;
- Kubernetes: every document parses, Deployment/DaemonSet selectors match
  their pod labels, Service target ports name container ports, the agent's
  socket is on a hostPath at the path hosts use by default, the agent sends to
  the collector Service's gRPC port, probes hit /healthz on the HTTP port;
  and every document validates against the Kubernetes API's JSON schemas
  (npm kubernetes-models, manifest_check/validate.mjs, installed with `npm ci`
  from its lock file into <build>/manifest-check). Exits 77 (skipped) after
  the other checks when node/npm or the registry is missing."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

from stackstream_test import BUILD, Checker

SRC = os.environ.get("STACKSTREAM_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(SRC, "deploy")
BINARIES = {"stackstream-collector": os.path.join(BUILD, "collector", "stackstream-collector"),
            "stackstream-agent": os.path.join(BUILD, "bin", "stackstream-agent")}
c = Checker()


def unit_exec(path):
    for line in open(path):
        if line.startswith("ExecStart="):
            return line[len("ExecStart="):].split()
    return []


def check_systemd():
    tmp = tempfile.mkdtemp(prefix="ss-units-")
    try:
        for name in ("stackstream-collector.service", "stackstream-agent.service"):
            src = os.path.join(DEPLOY, "systemd", name)
            argv = unit_exec(src)
            binary = BINARIES.get(os.path.basename(argv[0]) if argv else "")
            c.check(binary is not None and os.path.exists(binary), name + ": ExecStart names a built binary")
            if binary is None:
                continue
            text = open(src).read().replace(argv[0], binary)
            dst = os.path.join(tmp, name)
            open(dst, "w").write(text)
            if shutil.which("systemd-analyze"):
                r = subprocess.run(["systemd-analyze", "verify", dst], capture_output=True, text=True,
                                   timeout=60)
                msgs = [l for l in (r.stdout + r.stderr).splitlines() if l.strip()]
                c.check(r.returncode == 0 and not msgs, name + ": systemd-analyze verify clean %s" % msgs)
            # The flags parse: --help must not be needed; an unknown flag fails fast.
            flags = [a.split("=")[0] for a in argv[1:] if a.startswith("--")]
            r = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
            helptext = r.stdout + r.stderr
            missing = [f for f in flags if f not in helptext]
            c.check(not missing, name + ": flags known to the binary (missing %s)" % missing)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_grafana():
    doc = yaml.safe_load(open(os.path.join(DEPLOY, "grafana", "provisioning", "datasources",
                                           "stackstream.yaml")))
    ds = doc.get("datasources", [])
    c.check(doc.get("apiVersion") == 1 and len(ds) == 1, "grafana: apiVersion 1, one data source")
    d = ds[0] if ds else {}
    c.check(d.get("type") == "grafana-pyroscope-datasource" and d.get("access") == "proxy" and
            d.get("url") == "http://127.0.0.1:7434" and d.get("name") and d.get("uid"),
            "grafana: Pyroscope data source, proxy, at the collector's HTTP address: %s" % d)


def check_kubernetes():
    docs = []
    for name in sorted(os.listdir(os.path.join(DEPLOY, "kubernetes"))):
        if name.endswith(".yaml"):
            docs += [d for d in yaml.safe_load_all(open(os.path.join(DEPLOY, "kubernetes", name))) if d]
    by_kind = {}
    for d in docs:
        c.check(isinstance(d.get("apiVersion"), str) and d.get("kind") and d.get("metadata", {}).get("name"),
                "k8s: %s/%s has apiVersion, kind, metadata.name" % (d.get("kind"), d.get("metadata", {}).get("name")))
        by_kind.setdefault(d["kind"], []).append(d)
    c.check({"Namespace", "Deployment", "Service", "DaemonSet"} <= set(by_kind), "k8s kinds: %s" % sorted(by_kind))
    api = {"Namespace": "v1", "Service": "v1", "Deployment": "apps/v1", "DaemonSet": "apps/v1"}
    for d in docs:
        c.check(api.get(d["kind"]) == d["apiVersion"], "k8s: %s apiVersion %s" % (d["kind"], d["apiVersion"]))
    ports = {}
    for kind in ("Deployment", "DaemonSet"):
        for d in by_kind.get(kind, []):
            spec = d["spec"]
            labels = spec["template"]["metadata"]["labels"]
            sel = spec["selector"]["matchLabels"]
            c.check(all(labels.get(k) == v for k, v in sel.items()), "k8s: %s selector matches pod labels" % kind)
            for ctr in spec["template"]["spec"]["containers"]:
                c.check(ctr.get("name") and ctr.get("image") and ctr.get("command"),
                        "k8s: %s container has name, image, command" % kind)
                for p in ctr.get("ports", []):
                    ports[p["name"]] = p["containerPort"]
                mounts = {m["name"]: m["mountPath"] for m in ctr.get("volumeMounts", [])}
                vols = {v["name"]: v for v in spec["template"]["spec"].get("volumes", [])}
                c.check(set(mounts) <= set(vols), "k8s: %s mounts only declared volumes" % kind)
                if kind == "DaemonSet":
                    args = " ".join(ctr.get("args", []))
                    m = re.search(r"--listen=unix:(\S+)", args)
                    sock = m.group(1) if m else ""
                    c.check(sock == "/run/stackstream/agent.sock", "k8s: agent listens on the default socket path")
                    hp = [vols[n].get("hostPath", {}).get("path") for n, p in mounts.items()
                          if p == os.path.dirname(sock)]
                    c.check(hp == ["/run/stackstream"], "k8s: socket directory is a hostPath: %s" % hp)
                    c.check("--collector=stackstream-collector.stackstream.svc:7433" in args,
                            "k8s: agent sends to the collector Service's gRPC port")
                if kind == "Deployment":
                    probe = ctr.get("readinessProbe", {}).get("httpGet", {})
                    c.check(probe.get("path") == "/healthz" and probe.get("port") == "http",
                            "k8s: collector readiness probe is /healthz on the http port")
    for svc in by_kind.get("Service", []):
        for p in svc["spec"]["ports"]:
            c.check(p["targetPort"] in ports and ports[p["targetPort"]] == p["port"],
                    "k8s: Service port %s targets container port %s" % (p["name"], p["targetPort"]))
        dep_labels = by_kind["Deployment"][0]["spec"]["template"]["metadata"]["labels"]
        c.check(all(dep_labels.get(k) == v for k, v in svc["spec"]["selector"].items()),
                "k8s: Service selects the collector pods")


def check_kubernetes_schemas():
    """Returns False when the schema tool cannot be installed here."""
    if not shutil.which("node") or not shutil.which("npm"):
        print("skip: node or npm missing for the Kubernetes schema check")
        return False
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "manifest_check")
    work = os.path.join(BUILD, "manifest-check")
    os.makedirs(work, exist_ok=True)
    fresh = False
    for f in ("package.json", "package-lock.json", "validate.mjs"):
        dst = os.path.join(work, f)
        if f != "validate.mjs" and (not os.path.exists(dst) or open(dst).read() != open(os.path.join(here, f)).read()):
            fresh = True
        shutil.copy(os.path.join(here, f), dst)
    if fresh or not os.path.isdir(os.path.join(work, "node_modules", "kubernetes-models")):
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefer-offline"], cwd=work,
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            print("skip: npm ci failed for the Kubernetes schema check: " + r.stderr[-300:])
            return False
    files = sorted(os.path.join(DEPLOY, "kubernetes", n) for n in os.listdir(os.path.join(DEPLOY, "kubernetes"))
                   if n.endswith(".yaml"))
    r = subprocess.run(["node", "validate.mjs"] + files, cwd=work, capture_output=True, text=True, timeout=60)
    lines = r.stdout.splitlines()
    c.check(r.returncode == 0 and len(lines) >= 4 and all(l.startswith("ok ") for l in lines),
            "k8s: every document validates against the Kubernetes schemas: %s %s" % (lines, r.stderr[-300:]))
    # The tool does catch errors: a Deployment with a string replica count fails.
    bad = os.path.join(work, "bad.yaml")
    open(bad, "w").write("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n"
                         "spec: {replicas: two, selector: {}, template: {}}\n")
    r = subprocess.run(["node", "validate.mjs", bad], cwd=work, capture_output=True, text=True, timeout=60)
    c.check(r.returncode == 1 and "replicas" in r.stdout, "k8s: the schema check rejects a bad manifest")
    return True


check_systemd()
check_grafana()
check_kubernetes()
schemas_ran = check_kubernetes_schemas()
if not schemas_ran and c.failed == 0:
    print("%d passed, %d failed (Kubernetes schema check skipped)" % (c.passed, c.failed))
    sys.exit(77)
c.finish()
