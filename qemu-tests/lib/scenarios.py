#!/usr/bin/env python3
"""KubeArmor-format scenario folders for qemu-tests/run (python3 stdlib only).

A scenario folder holds one policy `*.yaml` and `cmd1`, `cmd2`, ... files, each two
flat YAML documents (see /work/shared/conformance/README.md and qemu-tests/README.md):

    source: kubearmor-dev        # the workload (host scenarios: the node name)
    cmd: diff --help
    result: failed               # passed | failed | default
    ---
    operation: Process           # Process | File | Network | Capabilities
    condition: diff              # a substring of the expected alert's Resource
    action: Block                # Allow | Audit | Block | default

armlet's extensions, all optional (qemu-tests/README.md, "armlet's extensions"): in the
first document `agent: alive` (the agent must still be running, not stopped, after the
command), `alert: none|ignore` (no alert may match / alerts are not judged) and
`timeout: SECONDS` (this command's limit); in the folder `agent.args` (extra `armlet run`
arguments, a shell fragment) and `setup.sh` (run as root in the guest before the agent).

Subcommands
  prepare --node NODE --stage DIR --manifest FILE [--base-packages "P ..."] SCENDIR...
      Parse every scenario folder under each SCENDIR (or SCENDIR itself when it is a
      scenario folder), write the guest tree (DIR/index, DIR/<name>/policy.yaml, cmds,
      <cmdN>.cmd, programs, expect) and the manifest (JSON, for judge). Prints
      `PACKAGES <debian packages the runnable scenarios need>` and
      `SCENARIOS <run> <skip> <bad> <cmds>` on stdout.
  judge --manifest FILE --posture P --enforcer E ARCH=CONSOLE_LOG|ARCH=!WHY-NOT-RUN...
      One `PASS|FAIL|SKIP <arch>/<name>...` line per scenario (FAIL lines followed by
      indented detail lines), from the guest's console protocol lines.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import sys

OPERATIONS = {"process": "Process", "file": "File", "network": "Network",
              "capabilities": "Capabilities"}
ACTIONS = {"allow": "Allow", "audit": "Audit", "block": "Block", "default": "default"}
RESULTS = {"passed", "failed", "default"}

# Program -> Debian package that provides it (what a scenario command may call).
# Programs not listed here must come from the base packages or busybox; the guest checks
# each program with `command -v` before running a scenario and reports it when missing.
COREUTILS = """arch b2sum base32 base64 basename basenc cat chcon chgrp chmod chown chroot cksum
comm cp csplit cut date dd df dir dircolors dirname du echo env expand expr factor false
fmt fold groups head hostid id install join link ln logname ls md5sum mkdir mkfifo mknod
mktemp mv nice nl nohup nproc numfmt od paste pathchk pinky pr printenv printf ptx pwd
readlink realpath rm rmdir runcon seq sha1sum sha224sum sha256sum sha384sum sha512sum
shred shuf sleep sort split stat stdbuf stty sum sync tac tail tee test timeout touch tr
true truncate tsort tty uname unexpand uniq unlink users vdir wc who whoami yes""".split()
PROGRAM_PACKAGES = {p: "coreutils" for p in COREUTILS}
PROGRAM_PACKAGES.update({
    "bash": "bash", "rbash": "bash",
    "diff": "diffutils", "cmp": "diffutils", "diff3": "diffutils", "sdiff": "diffutils",
    "grep": "grep", "egrep": "grep", "fgrep": "grep", "sed": "sed",
    "su": "util-linux", "more": "util-linux", "lsblk": "util-linux", "mount": "util-linux",
    "umount": "util-linux", "findmnt": "util-linux", "nsenter": "util-linux",
    "unshare": "util-linux", "setpriv": "util-linux", "runuser": "util-linux",
    "ps": "procps", "pgrep": "procps", "pkill": "procps", "top": "procps", "free": "procps",
    "uptime": "procps", "watch": "procps", "pidof": "procps",
    "find": "findutils", "xargs": "findutils", "tar": "tar", "gzip": "gzip",
    "gunzip": "gzip", "zcat": "gzip", "awk": "mawk", "mawk": "mawk",
    "hostname": "hostname", "ip": "iproute2", "ss": "iproute2",
    "curl": "curl", "wget": "wget", "ping": "iputils-ping", "arping": "arping",
    "dash": "dash", "nc": "netcat-openbsd", "less": "less", "file": "file",
    "useradd": "passwd", "usermod": "passwd", "passwd": "passwd", "chpasswd": "passwd",
    "login": "login", "newgrp": "login",
})
# Shell words that are not programs to look for.
SHELL_BUILTINS = set("""! . : [ [[ ]] { } alias bg bind break builtin caller case cd command
compgen complete continue declare dirs disown do done echo elif else enable esac eval exec
exit export fc fg fi for function getopts hash help history if in jobs kill let local logout
mapfile popd printf pushd pwd read readarray readonly return select set shift shopt source
suspend test then time times trap true false type typeset ulimit umask unalias unset until
wait while""".split())
SHELLS_WITH_C = {"bash", "sh", "dash", "rbash", "ash", "zsh", "ksh"}
WRAPPERS = {"sudo", "env", "nohup", "nice", "stdbuf", "setsid", "exec", "command", "time"}


# ---------------------------------------------------------------- parsing
def _scalar(raw: str) -> str:
    """A flat YAML scalar: quoted ("...", '...') or plain (trailing ' #' comment dropped)."""
    v = raw.strip()
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        try:
            return json.loads(v)
        except ValueError:
            return v[1:-1]
    if len(v) >= 2 and v[0] == "'" and v[-1] == "'":
        return v[1:-1].replace("''", "'")
    m = re.search(r"\s#", v)
    if m:
        v = v[:m.start()].rstrip()
    return v


def parse_flat_yaml_docs(text: str) -> list[dict[str, str]]:
    docs: list[dict[str, str]] = [{}]
    for n, line in enumerate(text.splitlines(), 1):
        s = line.rstrip()
        if re.fullmatch(r"---(\s.*)?|\.\.\.", s):
            if docs[-1]:
                docs.append({})
            continue
        if not s.strip() or s.lstrip().startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z_][\w.-]*)\s*:(?:\s+(.*))?", s)
        if not m:
            raise ValueError(f"line {n}: not a flat 'key: value' line: {s!r}")
        key, val = m.group(1), _scalar(m.group(2) or "")
        if key in docs[-1]:
            raise ValueError(f"line {n}: duplicate key {key!r}")
        docs[-1][key] = val
    return [d for d in docs if d]


def programs_of(cmd: str, depth: int = 0) -> list[str]:
    """Program names (or paths) a shell command line runs, recursing into `sh -c` / `su -c`."""
    try:
        lex = shlex.shlex(cmd, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        toks = list(lex)
    except ValueError:
        return []
    out: list[str] = []
    start, i = True, 0
    seps = {";", "|", "||", "&", "&&", "(", ")", ";;", "|&"}
    while i < len(toks):
        t = toks[i]
        if t in seps:
            start = True
            i += 1
            continue
        if re.fullmatch(r"[<>]+&?|&>+|[0-9]*[<>]+", t):
            i += 2  # a redirection and its target
            continue
        if not start:
            i += 1
            continue
        if re.fullmatch(r"[A-Za-z_]\w*=.*", t):
            i += 1
            continue
        start = False
        if "$" in t or "`" in t:
            i += 1  # `$SCENARIO_DIR/x.sh`, `$(...)`: only known in the guest
            continue
        name = os.path.basename(t)
        if name in WRAPPERS:
            if name not in ("exec", "command", "time"):
                out.append(t)
            start = True
            i += 1
            while i < len(toks) and toks[i].startswith("-"):
                # options; those that take a value: sudo -u/-g/-C/-D, env -u/-C, nice -n
                i += 2 if toks[i] in ("-u", "-g", "-C", "-D", "-n", "-i", "-o", "-e") else 1
            continue
        if name in SHELL_BUILTINS:
            i += 1
            continue
        out.append(t)
        if depth < 4 and (name in SHELLS_WITH_C or name == "su"):
            j = i + 1
            while j < len(toks) and toks[j] not in seps:
                if toks[j] == "-c" and j + 1 < len(toks):
                    out.extend(programs_of(toks[j + 1], depth + 1))
                    break
                j += 1
        i += 1
    seen, res = set(), []
    for p in out:
        if p not in seen:
            seen.add(p)
            res.append(p)
    return res


def is_scenario_dir(d: str) -> bool:
    return os.path.isfile(os.path.join(d, "cmd1")) or any(
        re.fullmatch(r"cmd\d+", f) for f in os.listdir(d))


def find_scenarios(roots: list[str]) -> list[str]:
    dirs: list[str] = []
    for r in roots:
        if is_scenario_dir(r):
            dirs.append(r)
            continue
        for e in sorted(os.listdir(r)):
            p = os.path.join(r, e)
            if os.path.isdir(p) and is_scenario_dir(p):
                dirs.append(p)
    return dirs


RESERVED = {"policy.yaml", "cmds", "expect", "programs", "agent.env"}


def load_agent_args(sc: dict, path: str) -> str | None:
    """agent.args: extra `armlet run` arguments (a shell fragment, `#` comments allowed;
    the guest evaluates it, so `$SCENARIO_DIR` expands). Sets sc['agent_args'] (the text),
    sc['agent_flags'] (which of the runner's own arguments to leave out) and sc['posture']
    (the --default-posture the judge uses for `default` expectations, or None)."""
    sc["agent_args"], sc["posture"] = "", None
    sc["agent_flags"] = {"policies": True, "posture": True, "enforcer": True}
    f = os.path.join(path, "agent.args")
    if not os.path.isfile(f):
        return None
    with open(f, encoding="utf-8") as fh:
        lines = [re.sub(r"(^|\s)#.*$", "", l).strip() for l in fh.read().splitlines()]
    text = " ".join(l for l in lines if l)
    try:
        words = shlex.split(text)
    except ValueError as e:
        return f"agent.args: {e}"
    opts = {w.split("=", 1)[0] for w in words if w.startswith("--")}
    for bad in ("--alerts-file", "--ready-file", "--node"):
        if bad in opts:
            return f"agent.args: {bad} is set by the runner"
    sc["agent_args"] = text
    if "--bundle" in opts or "--policies" in opts:
        sc["agent_flags"]["policies"] = False
    if "--bundle" in opts:  # a bundle carries its own posture (`bundle build --default-posture`)
        sc["agent_flags"]["posture"] = False
    if "--enforcer" in opts:
        sc["agent_flags"]["enforcer"] = False
    if "--default-posture" in opts:
        sc["agent_flags"]["posture"] = False
        for k, w in enumerate(words):
            if w == "--default-posture" and k + 1 < len(words):
                sc["posture"] = words[k + 1]
            elif w.startswith("--default-posture="):
                sc["posture"] = w.split("=", 1)[1]
    return None


def posture_for(spec: str, operation: str) -> str:
    """The posture of one category from `block` or `file=block,process=audit,...`."""
    if "=" not in spec:
        return spec
    cat = {"Process": "process", "File": "file", "Network": "network",
           "Capabilities": "capabilities"}[operation]
    for part in spec.split(","):
        k, _, v = part.partition("=")
        if k.strip() == cat:
            return v.strip()
    return "audit"


CONTAINER_SOURCE = re.compile(r"(ubuntu-\d+)-deployment")


def load_scenario(path: str, node: str, containers: bool = False) -> dict:
    """{'dir', 'name', 'policy', 'policy_names', 'cmds': [...], 'skip', 'error'}"""
    sc: dict = {"dir": os.path.abspath(path), "cmds": [], "skip": None, "error": None,
                "policy": None, "policy_names": []}
    files = sorted(os.listdir(path))
    yamls = [f for f in files if f.endswith((".yaml", ".yml"))]
    cmdfiles = sorted((f for f in files if re.fullmatch(r"cmd\d+", f)), key=lambda f: int(f[3:]))
    if len(yamls) != 1:
        sc["error"] = f"expected one policy *.yaml in {path}, found {len(yamls)}"
        return sc
    sc["policy"] = os.path.join(path, yamls[0])
    with open(sc["policy"], encoding="utf-8", errors="replace") as f:
        ptxt = f.read()
    # metadata.name of each document (for "no alert for that policy").
    sc["policy_names"] = re.findall(r"(?m)^metadata:\s*\n(?:[ \t]+.*\n)*?[ \t]+name:\s*['\"]?([^'\"\s#]+)", ptxt)
    kinds = re.findall(r"(?m)^kind:\s*['\"]?(\w+)", ptxt)
    sc["kinds"] = kinds
    for cf in cmdfiles:
        try:
            with open(os.path.join(path, cf), encoding="utf-8") as f:
                docs = parse_flat_yaml_docs(f.read())
        except (OSError, ValueError, UnicodeDecodeError) as e:
            sc["error"] = f"{cf}: {e}"
            return sc
        if len(docs) != 2:
            sc["error"] = f"{cf}: expected two YAML documents, found {len(docs)}"
            return sc
        run, exp = docs
        missing = [k for k in ("source", "cmd", "result") if k not in run] + \
                  [k for k in ("operation", "condition", "action") if k not in exp]
        if missing:
            sc["error"] = f"{cf}: missing keys: {', '.join(missing)}"
            return sc
        result = run["result"].strip().lower()
        op = OPERATIONS.get(exp["operation"].strip().lower())
        action = ACTIONS.get(exp["action"].strip().lower())
        if result not in RESULTS or op is None or action is None:
            sc["error"] = (f"{cf}: bad value (result {run['result']!r}, operation "
                           f"{exp['operation']!r}, action {exp['action']!r})")
            return sc
        if action == "default" and result != "default":
            sc["error"] = f"{cf}: action 'default' needs result 'default'"
            return sc
        extra = {}
        unknown = sorted(set(run) - {"source", "cmd", "result", "agent", "alert", "timeout"})
        if unknown:
            sc["error"] = f"{cf}: unknown key(s) in the first document: {', '.join(unknown)}"
            return sc
        if "agent" in run and run["agent"].strip().lower() != "alive":
            sc["error"] = f"{cf}: agent: {run['agent']!r} (only 'alive')"
            return sc
        if "alert" in run and run["alert"].strip().lower() not in ("none", "ignore"):
            sc["error"] = f"{cf}: alert: {run['alert']!r} (none | ignore)"
            return sc
        if "timeout" in run and not re.fullmatch(r"[1-9][0-9]{0,3}", run["timeout"].strip()):
            sc["error"] = f"{cf}: timeout: {run['timeout']!r} (whole seconds, 1-9999)"
            return sc
        sc["cmds"].append({"id": cf, "source": run["source"], "cmd": run["cmd"],
                           "result": result, "operation": op,
                           "condition": exp["condition"], "action": action,
                           "programs": programs_of(run["cmd"]),
                           "agent_alive": "agent" in run,
                           "alert": run.get("alert", "").strip().lower() or None,
                           "timeout": int(run["timeout"]) if "timeout" in run else None})
    if not sc["cmds"]:
        sc["error"] = f"no cmdN files in {path}"
        return sc
    err = load_agent_args(sc, path)
    if err:
        sc["error"] = err
        return sc
    sc["setup"] = os.path.isfile(os.path.join(path, "setup.sh"))
    sources = sorted({c["source"] for c in sc["cmds"] if c["source"] != node})
    if sources and not containers:
        sc["skip"] = (f"container scenario (source {', '.join(sources)}; the node is {node}): "
                      "this runner has no containers (host mode: qemu-tests/run --host)")
    elif sources:
        bad = [s for s in sources if not CONTAINER_SOURCE.fullmatch(s)]
        if bad:
            sc["skip"] = f"unknown workload source(s) {', '.join(bad)} (ubuntu-N-deployment)"
        else:
            ns = re.findall(r"(?m)^\s+namespace:\s*['\"]?([A-Za-z0-9.-]+)", ptxt)
            sc["namespace"] = ns[0] if ns else "multiubuntu"
            for c in sc["cmds"]:
                m = CONTAINER_SOURCE.fullmatch(c["source"])
                c["container"] = m.group(1) if m else None
    return sc


def unsupported_by(path: str, enforcer: str | None) -> str | None:
    """`unsupported` in a scenario folder: lines `ENFORCER: reason` for enforcers that cannot
    express what the scenario tests (the runner prints SKIP and does not count it as passed)."""
    f = os.path.join(path, "unsupported")
    if not enforcer or not os.path.isfile(f):
        return None
    with open(f, encoding="utf-8") as fh:
        for line in fh:
            name, sep, why = line.partition(":")
            if sep and name.strip() == enforcer:
                return why.strip()
    return None


def cmd_prepare(a: argparse.Namespace) -> int:
    roots = a.dirs
    scen: list[dict] = []
    for d in find_scenarios(roots):
        sc = load_scenario(d, a.node, a.containers)
        why = unsupported_by(d, a.enforcer)
        if why and not sc["error"] and not sc["skip"]:
            sc["skip"] = f"the {a.enforcer} enforcer cannot run it: {why}"
        scen.append(sc)
    # Unique guest-safe names: the folder name; on a clash, prefix the parent folder.
    used: set[str] = set()
    for sc in scen:
        base = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(sc["dir"].rstrip("/")))
        name = base
        if name in used:
            parent = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(os.path.dirname(sc["dir"])))
            name = f"{parent}.{base}"
            k = 2
            while name in used:
                name = f"{parent}.{base}.{k}"
                k += 1
        used.add(name)
        sc["name"] = name
    if a.support_check:
        # A scenario the enforcer's support table cannot express is skipped, not failed:
        # `armlet policy compile --enforcer E` lists every rule E does not enforce as written.
        import subprocess
        for sc in scen:
            if sc["error"] or sc["skip"]:
                continue
            if a.support_scope == "containers" and not any(c.get("container") for c in sc["cmds"]):
                continue
            argv = shlex.split(a.support_check) + [sc["policy"]]
            try:
                out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            except (OSError, subprocess.TimeoutExpired) as e:
                sc["error"] = f"support check failed: {e}"
                continue
            text = out.stdout + out.stderr
            if "every rule is enforced as written" not in text:
                lines = text.strip().splitlines()
                at = next((i for i, l in enumerate(lines) if "downgrade(s):" in l), None)
                why = [l.strip() for l in lines[at + 1:]] if at is not None else lines[-1:]
                sc["skip"] = "the support table cannot express it: " + "; ".join(why[:3])
    if os.path.exists(a.stage):
        shutil.rmtree(a.stage)
    os.makedirs(a.stage)
    packages = list(dict.fromkeys((a.base_packages or "").split()))
    all_containers: set[str] = set()
    runnable = [sc for sc in scen if not sc["error"] and not sc["skip"]]
    with open(os.path.join(a.stage, "index"), "w") as idx:
        for sc in runnable:
            idx.write(sc["name"] + "\n")
            d = os.path.join(a.stage, sc["name"])
            # The whole folder (setup.sh, extra policies, scripts) is available in the guest
            # as $SCENARIO_DIR = /scenarios/<name>; the runner's own files are written over it.
            shutil.copytree(sc["dir"], d, symlinks=False,
                            ignore=lambda _d, names: [n for n in names if n in RESERVED])
            shutil.copyfile(sc["policy"], os.path.join(d, "policy.yaml"))
            ctrs = sorted({c["container"] for c in sc["cmds"] if c.get("container")})
            if ctrs:
                # The agent names the containers from a WorkloadMap: the scenario's namespace,
                # the labels KubeArmor's multiubuntu deployments carry.
                with open(os.path.join(d, "workloads.yaml"), "w") as wf:
                    wf.write("apiVersion: armlet.io/v1\nkind: WorkloadMap\nworkloads:\n")
                    for ct in ctrs:
                        wf.write(f"- match: {{containerName: {ct}}}\n  namespace: {sc['namespace']}\n"
                                 f"  pod: {ct}-deployment\n  labels: {{container: {ct}}}\n")
                sc["agent_args"] = (sc["agent_args"] + ' --workloads "$SCENARIO_DIR/workloads.yaml"').strip()
                all_containers.update(ctrs)
                # VM runs start these after the agent is ready (guest/scenarios.sh).
                with open(os.path.join(d, "containers"), "w") as cf:
                    cf.write("".join(f"{ct} {sc['namespace']}\n" for ct in ctrs))
            fl = sc["agent_flags"]
            with open(os.path.join(d, "agent.env"), "w") as ae:
                ae.write(f"QT_A_POLICIES={int(fl['policies'])}\nQT_A_POSTURE={int(fl['posture'])}\n"
                         f"QT_A_ENFORCER={int(fl['enforcer'])}\nQT_A_SETUP={int(sc['setup'])}\n"
                         f"QT_A_ARGS={shlex.quote(sc['agent_args'])}\n")
            progs: list[str] = []
            with open(os.path.join(d, "cmds"), "w") as cl, \
                    open(os.path.join(d, "expect"), "w") as ex:
                for c in sc["cmds"]:
                    cl.write(c["id"] + "\n")
                    with open(os.path.join(d, c["id"] + ".cmd"), "w") as cf:
                        cf.write(c["cmd"] + "\n")
                    with open(os.path.join(d, c["id"] + ".cond"), "w") as cf:
                        cf.write(c["condition"] + "\n")
                    if c["alert"] == "ignore":  # the guest sends only the count
                        open(os.path.join(d, c["id"] + ".noalerts"), "w").close()
                    if c.get("container"):
                        with open(os.path.join(d, c["id"] + ".container"), "w") as cf:
                            cf.write(c["container"] + "\n")
                    if c["timeout"]:
                        with open(os.path.join(d, c["id"] + ".timeout"), "w") as cf:
                            cf.write(f"{c['timeout']}\n")
                    ex.write(f"{c['id']} result={c['result']} operation={c['operation']} "
                             f"action={c['action']} condition={c['condition']}\n")
                    for p in ["bash"] + c["programs"]:
                        if p not in progs:
                            progs.append(p)
                        pkg = PROGRAM_PACKAGES.get(os.path.basename(p))
                        if pkg and pkg not in packages:
                            packages.append(pkg)
            with open(os.path.join(d, "programs"), "w") as pf:
                pf.write("".join(p + "\n" for p in progs))
    with open(a.manifest, "w") as f:
        json.dump({"node": a.node, "roots": [os.path.abspath(r) for r in roots],
                   "scenarios": scen}, f, indent=1)
    ncmds = sum(len(sc["cmds"]) for sc in runnable)
    nsetup = sum(1 for sc in runnable if sc.get("setup"))
    extra_secs = sum(max(0, (c["timeout"] or 0) - 20) for sc in runnable for c in sc["cmds"])
    print("PACKAGES " + " ".join(packages))
    print("CONTAINERS " + " ".join(sorted(all_containers)))
    print(f"EXTRA {nsetup} {extra_secs}")
    print(f"SCENARIOS {len(runnable)} {sum(1 for s in scen if s['skip'] and not s['error'])} "
          f"{sum(1 for s in scen if s['error'])} {ncmds}")
    return 0


# ---------------------------------------------------------------- judging
TAG = "ARMLET-QT-"


def read_console(path: str) -> dict[str, dict]:
    """Per scenario: begin/end, missing programs, agent events, results, outputs, alerts."""
    per: dict[str, dict] = {}

    def s(name: str) -> dict:
        return per.setdefault(name, {"begin": False, "end": False, "missing": [], "agent": [],
                                     "stderr": [], "results": {}, "out": {}, "alerts": [],
                                     "bad_alerts": [], "omitted": 0, "setup": None,
                                     "setup_out": [], "alive": {}, "signals": {},
                                     "containers": {}})
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return per
    for line in lines:
        i = line.find(TAG)
        if i < 0:
            continue
        line = line[i + len(TAG):]
        kind, _, rest = line.partition(" ")
        name, _, rest = rest.partition(" ")
        if not name:
            continue
        if kind == "SCENARIO":
            s(name)["begin" if rest.startswith("BEGIN") else "end"] = True
        elif kind == "MISSING":
            s(name)["missing"].append(rest.strip())
        elif kind == "AGENT":
            s(name)["agent"].append(rest.strip())
        elif kind == "STDERR":
            s(name)["stderr"].append(rest)
        elif kind == "RESULT":
            parts = rest.split()
            if len(parts) >= 2:
                s(name)["results"][parts[0]] = {"exit": parts[1], "secs": parts[2] if len(parts) > 2 else "?"}
        elif kind == "CONTAINER":
            parts = rest.split(None, 2)
            if len(parts) >= 2:
                s(name)["containers"][parts[0]] = (parts[1], parts[2] if len(parts) > 2 else "")
        elif kind == "SETUP":
            s(name)["setup"] = rest.split()
        elif kind == "SETUPOUT":
            s(name)["setup_out"].append(rest)
        elif kind == "ALIVE":
            parts = rest.split()
            if len(parts) >= 2:
                s(name)["alive"][parts[0]] = parts[1:]
        elif kind == "SIGNAL":
            parts = rest.split()
            if len(parts) >= 3:
                s(name)["signals"].setdefault(parts[0], []).append(f"{parts[1]}->{parts[2]}")
        elif kind == "OUT":
            cid, _, text = rest.partition(" ")
            s(name)["out"].setdefault(cid, []).append(text)
        elif kind == "OMITTED":
            s(name)["omitted"] += int(rest.split()[-1]) if rest.split() and rest.split()[-1].isdigit() else 0
        elif kind == "ALERT":
            cid, _, js = rest.partition(" ")
            try:
                al = json.loads(js)
                if not isinstance(al, dict):
                    raise ValueError("not an object")
                s(name)["alerts"].append((cid, al))
            except ValueError:
                s(name)["bad_alerts"].append(js[:200])
    return per


def short_alert(a: dict) -> str:
    keys = ("PolicyName", "Operation", "Resource", "Action", "Result", "Source")
    return " ".join(f"{k}={a.get(k)!s}" for k in keys if k in a)


def expectation(c: dict, posture: str, enforcer: str) -> dict:
    """What to see: exit ('zero'|'nonzero'|None), alert rule."""
    result, action = c["result"], c["action"]
    if result == "default" and action != "default":
        # KubeArmor's runner: e.g. a native (AppArmor) policy's Block under `result: default`
        # is a denial; any other action keeps "default", which its checks treat as failed.
        result = "failed"
    policy_default = False
    if action == "default":
        policy_default = True
        if posture == "block":
            result, action = "failed", "Block"
        elif posture == "audit":
            result, action = "passed", "Audit"
        else:
            result, action = "passed", "Allow"
    audit_form = False
    if enforcer == "audit" and result == "failed" and action in ("Block", "Allow"):
        result, action, audit_form = "passed", "Audit", True
    e = {"exit": "zero" if result == "passed" else "nonzero", "policy_default": policy_default,
         "audit_form": audit_form}
    if policy_default:
        if action == "Allow":
            e["alert"] = None  # posture allow: no alert requirement
        else:
            e["alert"] = ("want", action)
        return e
    if action == "Allow" and result == "passed":
        e["alert"] = ("none", None)
    elif action == "Block" and result == "passed":
        e["alert"] = ("none-policy", None)
    elif result == "failed":
        e["alert"] = ("want", "Block")
    else:  # Audit + passed (incl. the audit-enforcer form of Block/Allow + failed)
        e["alert"] = ("want", "Audit")
    return e


def action_ok(got: str, want: str, audit_form: bool) -> bool:
    if want == "Block":
        return got == "Block"
    if want == "Audit":
        return got == "Audit" or (audit_form and got in ("Audit (Block)", "Audit (Allow)"))
    return got == want


def judge_cmd(c: dict, res: dict | None, alerts: list[dict], posture: str, enforcer: str,
              policy_names: list[str]) -> tuple[bool, str, str]:
    """(ok, why, expected-text) for one command."""
    e = expectation(c, posture_for(posture, c["operation"]), enforcer)
    if c.get("alert") == "none":
        e["alert"] = ("none", None)
    elif c.get("alert") == "ignore":
        e["alert"] = ("ignore", None)
    cond, op = c["condition"], c["operation"]
    matching = [a for a in alerts if str(a.get("Operation", "")) == op
                and cond in str(a.get("Resource", ""))]
    desc = f"expected exit {'0' if e['exit'] == 'zero' else 'non-zero'}"
    rule = e["alert"]
    if rule is None:
        desc += ", no alert requirement (posture allow)"
    elif rule[0] == "ignore":
        desc += ", alerts not judged (alert: ignore)"
    elif rule[0] == "none":
        desc += f", no {op} alert for '{cond}'"
    elif rule[0] == "none-policy":
        desc += f", no {op} alert for '{cond}' from {'/'.join(policy_names) or 'the policy'}"
    else:
        pol = " PolicyName=DefaultPosture" if e["policy_default"] else ""
        act = rule[1] + (" or 'Audit (Block)'" if rule[1] == "Audit" and e["audit_form"] else "")
        res_txt = " Result=Passed" if rule[1] == "Audit" else ""
        desc += f", a {op} alert with Resource~'{cond}' Action={act}{res_txt}{pol}"
    if e["audit_form"]:
        desc += " [audit enforcer: Block/Allow+failed judged as Audit+passed]"
    whys = []
    if c.get("agent_alive"):
        desc += ", the agent still running afterwards"
    if res is None:
        return False, "no result from the guest", desc
    if c.get("agent_alive"):
        al = res.get("alive")
        if not al:
            whys.append("no agent state reported after the command")
        elif al[0] != "yes":
            whys.append(f"the agent is not running after the command (state {' '.join(al[1:]) or '?'})")
    code = res["exit"]
    if e["exit"] == "zero" and code != "0":
        whys.append(f"exit {code}")
    if e["exit"] == "nonzero" and code == "0":
        whys.append("exit 0 (not denied)")
    if rule is not None:
        if rule[0] == "none" and matching:
            whys.append(f"unexpected alert: {short_alert(matching[0])}")
        elif rule[0] == "none-policy":
            bad = [a for a in matching if a.get("PolicyName") in policy_names
                   or (not policy_names and a.get("PolicyName") != "DefaultPosture")]
            if bad:
                whys.append(f"unexpected alert: {short_alert(bad[0])}")
        elif rule[0] == "want":
            ok = [a for a in matching if action_ok(str(a.get("Action", "")), rule[1], e["audit_form"])
                  and (rule[1] != "Audit" or a.get("Result") == "Passed")
                  and (not e["policy_default"] or a.get("PolicyName") == "DefaultPosture")]
            if not ok:
                if matching:
                    whys.append("no matching alert; close: " + "; ".join(short_alert(a) for a in matching[:3]))
                else:
                    whys.append(f"no {op} alert with Resource containing '{cond}'")
    return not whys, "; ".join(whys), desc


def cmd_judge(a: argparse.Namespace) -> int:
    with open(a.manifest) as f:
        man = json.load(f)
    for spec in a.logs:
        arch, _, logf = spec.partition("=")
        notrun = logf[1:] if logf.startswith("!") else None
        per = {} if notrun else read_console(logf)
        for sc in man["scenarios"]:
            name = sc.get("name") or os.path.basename(sc["dir"])
            label = f"{arch}/{name}"
            if sc["error"]:
                print(f"FAIL {label}: bad scenario: {sc['error']}")
                continue
            if sc["skip"]:
                print(f"SKIP {label}: {sc['skip']}")
                continue
            g = per.get(name)
            if notrun:
                print(f"FAIL {label}: not run: {notrun}")
                continue
            if g is None or not g["begin"]:
                print(f"FAIL {label}: the guest never ran this scenario (console log {logf})")
                continue
            details: list[str] = []
            if g["missing"]:
                print(f"FAIL {label}: program(s) missing in the guest root: {', '.join(g['missing'])} "
                      "(add the Debian package to PROGRAM_PACKAGES in qemu-tests/lib/scenarios.py)")
                continue
            agent = g["agent"]
            notready = [x for x in agent if x.startswith("NOTREADY")]
            if notready:
                print(f"FAIL {label}: agent not ready: {notready[0][len('NOTREADY'):].strip()}")
                for l in g["stderr"][-15:]:
                    print(f"    agent output: {l}")
                continue
            fails: list[str] = []
            alerts_by_cmd: dict[str, list[dict]] = {}
            ids = [c["id"] for c in sc["cmds"]]
            for cid, al in g["alerts"]:
                # Alerts that arrived only after the last command (at agent stop) belong to it.
                alerts_by_cmd.setdefault(cid if cid in ids else ids[-1], []).append(al)
            if sc.get("setup") and (not g["setup"] or g["setup"][0] != "0"):
                st = g["setup"]
                print(f"FAIL {label}: setup.sh " + (f"exited {st[0]} after {st[1] if len(st) > 1 else '?'}s"
                                                    if st else "did not report"))
                for l in g["setup_out"][-15:]:
                    print(f"    setup.sh output: {l}")
                continue
            bad_ct = {k: v for k, v in g["containers"].items() if v[0] != "enforced"}
            if bad_ct:
                print(f"FAIL {label}: container(s) not confined: " + "; ".join(
                    f"{k}: {v[0]} {v[1]}".strip() for k, v in sorted(bad_ct.items())))
                for l in g["stderr"][-8:]:
                    print(f"    agent output: {l}")
                continue
            posture = sc.get("posture") or a.posture
            for c in sc["cmds"]:
                res = g["results"].get(c["id"])
                if res is not None:
                    res = dict(res, alive=g["alive"].get(c["id"]))
                ok, why, desc = judge_cmd(c, res, alerts_by_cmd.get(c["id"], []), posture,
                                          a.enforcer, sc.get("policy_names", []))
                if not ok:
                    fails.append(f"{c['id']} `{c['cmd']}`: {why}")
                    details.append(f"{c['id']}: `{c['cmd']}` {desc}")
                    details.append(f"{c['id']}: got exit {res['exit'] if res else '?'}"
                                   f" ({res['secs'] if res else '?'}s), "
                                   f"{len(alerts_by_cmd.get(c['id'], []))} alert(s) in its window")
                    for l in g["out"].get(c["id"], [])[:8]:
                        details.append(f"{c['id']}: output: {l}")
                    if g["signals"].get(c["id"]):
                        details.append(f"{c['id']}: signals sent to the agent (signal->kill status): "
                                       + " ".join(g["signals"][c["id"]]))
            exits = [x for x in agent if x.startswith("EXIT")]
            if exits and not re.match(r"EXIT (0|143) stopped", exits[-1]):
                fails.append(f"agent: {exits[-1].lower()}")
                details += [f"agent output: {l}" for l in g["stderr"][-10:]]
            elif not exits:
                fails.append("agent: no exit report")
            if not g["end"]:
                fails.append("scenario did not finish in the guest")
            if g["bad_alerts"]:
                details.append(f"{len(g['bad_alerts'])} alert line(s) were not JSON objects, e.g. "
                               f"{g['bad_alerts'][0]}")
            if fails:
                print(f"FAIL {label}: " + "; ".join(fails))
                for d in details:
                    print(f"    {d}")
                allal = g["alerts"]
                omitted = f" (+{g['omitted']} not sent by the guest: busy windows)" if g["omitted"] else ""
                print(f"    alerts seen in this scenario: {len(allal)}{omitted}")
                for cid, al in allal[:12]:
                    print(f"      [{cid}] {short_alert(al)}")
                if len(allal) > 12:
                    print(f"      ... {len(allal) - 12} more")
            else:
                print(f"PASS {label}")
    return 0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="scenarios.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--node", required=True)
    p.add_argument("--stage", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--base-packages", default="")
    p.add_argument("--containers", action="store_true",
                   help="container scenarios run in containers ubuntu-N (their commands get <cmd>.container)")
    p.add_argument("--support-check", default="",
                   help="command printing the support plan of a policy file (skip what it cannot enforce)")
    p.add_argument("--support-scope", choices=("all", "containers"), default="all",
                   help="which scenarios --support-check applies to")
    p.add_argument("--enforcer", default=None, help="skip scenarios whose `unsupported` names it")
    p.add_argument("dirs", nargs="+")
    j = sub.add_parser("judge")
    j.add_argument("--manifest", required=True)
    j.add_argument("--posture", required=True)
    j.add_argument("--enforcer", required=True)
    j.add_argument("logs", nargs="+", metavar="ARCH=LOG")
    a = ap.parse_args(argv[1:])
    return cmd_prepare(a) if a.cmd == "prepare" else cmd_judge(a)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
