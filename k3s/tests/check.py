#!/usr/bin/env python3
"""Checks for the k3s/ manifests (run by scripts/test.sh):

1. every manifest validates against the Kubernetes OpenAPI schemas, strictly (unknown
   fields are errors), offline, with kubernetes-validate -- and a manifest with a misspelt
   field is refused, so the validator is known to be looking;
2. the kustomization renders (tests/render.py) and the rendered documents validate too;
3. the capabilities, host mounts and hostPID of the rendered DaemonSet are exactly what
   `armlet probe --requirements` says the enforcers need (the union over all of them,
   because the agent chooses its enforcer on each node at run time).

usage: check.py ARMLET_BINARY   (kubernetes-validate from .cache/venv, see scripts/setup-dev.sh)
Prints one PASS/FAIL line per check; exit 1 if any failed.
"""
import copy
import glob
import json
import os
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
K3S = os.path.dirname(HERE)
K8S_VERSION = "1.31.0"  # appArmorProfile needs 1.30+; K3s/MicroK8s 1.31 are current LTS-ish
FAILED = 0


def result(ok, name, detail=""):
    global FAILED
    if not ok:
        FAILED += 1
    print(f"{'PASS' if ok else 'FAIL'} k3s/{name}{': ' + detail if detail else ''}")


def validate(docs, label):
    """Validate each document strictly; returns a list of problems."""
    import kubernetes_validate
    problems = []
    for d in docs:
        try:
            kubernetes_validate.validate(d, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            problems.append(f"{label}: {d.get('kind')}/{d['metadata'].get('name')}: {e.message}")
        except kubernetes_validate.utils.SchemaNotFoundError as e:
            problems.append(f"{label}: no schema: {e}")
    return problems


def load(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    armlet = sys.argv[1]

    files = sorted(f for f in glob.glob(os.path.join(K3S, "**", "*.yaml"), recursive=True)
                   if os.path.basename(f) != "kustomization.yaml"
                   and os.sep + "tests" + os.sep not in f)
    problems, count = [], 0
    for f in files:
        docs = load(f)
        count += len(docs)
        problems += validate(docs, os.path.relpath(f, K3S))
    result(not problems and count > 0, "schemas",
           "; ".join(problems) if problems else f"{count} documents in {len(files)} files, Kubernetes {K8S_VERSION}, strict")

    ds_file = os.path.join(K3S, "base", "daemonset.yaml")
    bad = copy.deepcopy(load(ds_file)[0])
    bad["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {}
    refused = validate([bad], "mutant")
    result(bool(refused), "schemas-refuse-misspelt-field",
           "a DaemonSet with `securityContex` was refused" if refused else "the validator accepted a misspelt field")

    render = subprocess.run([sys.executable, os.path.join(HERE, "render.py"), K3S],
                            capture_output=True, text=True)
    if render.returncode != 0:
        result(False, "kustomize-render", render.stderr.strip())
        return 1
    rendered = list(yaml.safe_load_all(render.stdout))
    kinds = sorted(d["kind"] for d in rendered)
    want = sorted(["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                   "ConfigMap", "DaemonSet"])
    p = validate(rendered, "rendered")
    ns_ok = all(d["metadata"].get("namespace") == "armlet-system" for d in rendered
                if d["kind"] in ("ServiceAccount", "ConfigMap", "DaemonSet"))
    result(kinds == want and not p and ns_ok, "kustomize-render",
           f"{len(rendered)} documents: {', '.join(kinds)}" if kinds == want and not p and ns_ok
           else f"kinds {kinds}, problems {p}, namespaces ok: {ns_ok}")

    req = subprocess.run([armlet, "probe", "--requirements"], capture_output=True, text=True)
    if req.returncode != 0:
        result(False, "requirements", f"armlet probe --requirements failed: {req.stderr.strip()}")
        return 1
    union = json.loads(req.stdout)["union"]
    ds = next(d for d in rendered if d["kind"] == "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    c = pod["containers"][0]
    sc = c["securityContext"]
    caps = sorted(sc["capabilities"]["add"])
    want_caps = sorted(x["name"] for x in union["capabilities"])
    result(caps == want_caps and sc["capabilities"]["drop"] == ["ALL"]
           and sc.get("privileged") is False, "capabilities",
           f"add {caps}, drop ALL, not privileged" if caps == want_caps
           else f"DaemonSet adds {caps}, the agent needs {want_caps}")
    volumes = {v["name"]: v for v in pod["volumes"]}
    host_mounts = set()
    for m in c["volumeMounts"]:
        v = volumes[m["name"]]
        if "hostPath" in v:
            if v["hostPath"]["path"] != m["mountPath"]:
                result(False, "mounts", f"{m['name']}: host {v['hostPath']['path']} mounted at {m['mountPath']}")
            host_mounts.add((m["mountPath"], bool(m.get("readOnly", False))))
    want_mounts = {(m["path"], m["read_only"]) for m in union["mounts"]}
    result(host_mounts == want_mounts, "mounts",
           f"{sorted(host_mounts)}" if host_mounts == want_mounts
           else f"DaemonSet mounts {sorted(host_mounts)}, the agent needs {sorted(want_mounts)}")
    result(pod.get("hostPID") is union["host_pid"], "host-pid", f"hostPID {pod.get('hostPID')}")

    # The readiness probe tests the file the agent is told to write.
    cfg = next(d for d in rendered if d["kind"] == "ConfigMap")["data"]
    probe = c["readinessProbe"]["exec"]["command"]
    ready = cfg["ARMLET_READY_FILE"]
    args_ok = "--ready-file=$(ARMLET_READY_FILE)" in c["args"]
    mounted = any(ready.startswith(m["mountPath"] + "/") for m in c["volumeMounts"])
    result(probe[-1] == ready and args_ok and mounted, "readiness",
           f"{' '.join(probe)}" if probe[-1] == ready and args_ok and mounted
           else f"probe {probe}, ready file {ready}, passed to the agent: {args_ok}, on a volume: {mounted}")
    ru = ds["spec"]["updateStrategy"]
    overlap = (ru["type"] == "RollingUpdate" and ru["rollingUpdate"]["maxSurge"] == 1
               and ru["rollingUpdate"]["maxUnavailable"] == 0)
    result(overlap, "update-overlap", "RollingUpdate maxSurge 1 maxUnavailable 0")
    # Every $(VAR) in the arguments is defined (Kubernetes leaves unknown ones verbatim).
    import re
    defined = set(cfg) | {e["name"] for e in c.get("env", [])}
    used = set(re.findall(r"\$\(([A-Z0-9_]+)\)", " ".join(c["args"])))
    result(used <= defined, "args-defined", f"{sorted(used)}" if used <= defined
           else f"undefined: {sorted(used - defined)}")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
