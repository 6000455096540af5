#!/usr/bin/env python3
"""Checks for yocto/meta-armlet (run by scripts/test.sh). One PASS/FAIL line per check.

  crates        armlet-crates.inc is what scripts/yocto-crates.py (= `bitbake -c
                update_crates`) generates from Cargo.lock
  license       LICENSE matches the workspace's license, LIC_FILES_CHKSUM's md5 (and
                beginline/endline) match the real files, and LICENSE is the Apache-2.0 text
                Debian ships in /usr/share/common-licenses (when that file exists)
  unit          `systemd-analyze verify` (Debian's systemd) passes on armlet.service with no
                message at all, in a scratch root holding the host's units and the binary;
                and it refuses a misspelt key (so it is looking); ExecReload is sent by
                systemd itself (self-protection refuses a `kill` child of systemd)
  init-script   `sh -n` passes; the Yocto init script and Buildroot's S50armlet are the
                same file; the default configuration sets every variable the script reads
  kernel        the fragment sets every option the agent needs, and an lsm list with bpf
  layer         layer.conf declares the collection, pattern, priority and series

usage: check.py ARMLET_BINARY
"""
import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
LAYER = os.path.join(REPO, "yocto", "meta-armlet")
RECIPE_DIR = os.path.join(LAYER, "recipes-security", "armlet")
FILES = os.path.join(RECIPE_DIR, "files")
FAILED = 0


def result(ok, name, detail=""):
    global FAILED
    if not ok:
        FAILED += 1
    print(f"{'PASS' if ok else 'FAIL'} yocto/{name}{': ' + detail if detail else ''}")


def bb_var(text, name):
    """The value of NAME = "..." (with line continuations) in a recipe."""
    m = re.search(r'^%s\s*\??=\s*"((?:[^"\\]|\\.|\\\n)*)"' % re.escape(name), text, re.M)
    return m.group(1).replace("\\\n", " ") if m else None


def check_crates():
    r = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "yocto-crates.py"), "--check"],
                       capture_output=True, text=True)
    out = (r.stdout + r.stderr).strip().splitlines()
    result(r.returncode == 0, "crates", out[-1] if r.returncode == 0 else "\n".join(out[-15:]))


def check_license():
    recipe = open(os.path.join(RECIPE_DIR, "armlet_0.1.0.bb"), encoding="utf-8").read()
    ws = tomllib.load(open(os.path.join(REPO, "Cargo.toml"), "rb"))["workspace"]["package"]["license"]
    lic = bb_var(recipe, "LICENSE")
    problems = []
    if lic != ws:
        problems.append(f"recipe LICENSE {lic!r} but the workspace says {ws!r}")
    chk = bb_var(recipe, "LIC_FILES_CHKSUM") or ""
    entries = chk.split()
    if not entries:
        problems.append("no LIC_FILES_CHKSUM")
    for e in entries:
        parts = e.split(";")
        path = parts[0].removeprefix("file://")
        params = dict(p.split("=", 1) for p in parts[1:])
        try:
            lines = open(os.path.join(REPO, path), "rb").read().splitlines(True)
        except OSError as err:
            problems.append(f"{path}: {err}")
            continue
        b = int(params.get("beginline", 1)) - 1
        end = int(params["endline"]) if "endline" in params else len(lines)
        md5 = hashlib.md5(b"".join(lines[b:end])).hexdigest()
        if md5 != params.get("md5"):
            problems.append(f"{path}: md5 {md5}, recipe says {params.get('md5')}")
    debian = "/usr/share/common-licenses/Apache-2.0"
    note = ""
    if ws == "Apache-2.0" and os.path.exists(debian):
        if open(debian, "rb").read() != open(os.path.join(REPO, "LICENSE"), "rb").read():
            problems.append("LICENSE differs from Debian's Apache-2.0 text")
        else:
            note = ", LICENSE is the Apache-2.0 text"
    result(not problems, "license", "; ".join(problems) if problems
           else f"{lic}, {len(entries)} LIC_FILES_CHKSUM entr{'y' if len(entries) == 1 else 'ies'} match{note}")


def verify_unit(root, unit_name):
    r = subprocess.run(["systemd-analyze", "verify", f"--root={root}",
                        f"/etc/systemd/system/{unit_name}"], capture_output=True, text=True, cwd="/")
    return r.returncode, (r.stdout + r.stderr).strip()


def check_unit(armlet):
    if not shutil.which("systemd-analyze"):
        result(False, "unit", "systemd-analyze not installed (scripts/setup-dev.sh installs systemd)")
        return
    with tempfile.TemporaryDirectory(prefix="armlet-unit.") as root:
        for d in ("etc/systemd/system", "usr/bin", "tmp", "usr/lib/systemd"):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        os.symlink("usr/bin", os.path.join(root, "bin"))
        # The host's units (targets, mounts the unit orders itself against).
        shutil.copytree("/usr/lib/systemd/system", os.path.join(root, "usr/lib/systemd/system"),
                        symlinks=True)
        shutil.copy(armlet, os.path.join(root, "usr/bin/armlet"))
        # ExecReload runs systemctl (systemd itself then signals the agent, its child).
        for tool in ("systemctl",):
            path = shutil.which(tool) or f"/usr/bin/{tool}"
            shutil.copy(path, os.path.join(root, "usr/bin", tool))
        unit = open(os.path.join(FILES, "armlet.service"), encoding="utf-8").read()
        open(os.path.join(root, "etc/systemd/system/armlet.service"), "w").write(unit)
        rc, out = verify_unit(root, "armlet.service")
        result(rc == 0 and not out, "unit", "systemd-analyze verify: no messages"
               if rc == 0 and not out else f"exit {rc}: {out}")
        mutant = unit.replace("ProtectSystem=", "ProtectSytem=")
        open(os.path.join(root, "etc/systemd/system/armlet-mutant.service"), "w").write(mutant)
        rc, out = verify_unit(root, "armlet-mutant.service")
        result(bool(out), "unit-refuses-misspelt-key",
               "a misspelt key is reported" if out else "systemd-analyze said nothing about ProtectSytem=")
    # Self-protection lets only the agent's parent (systemd) signal it: a reload through a
    # `kill` child of systemd would be refused with EPERM while a policy is in force.
    reload = re.search(r"^ExecReload=(.*)$", unit, re.M)
    ok = bool(reload) and reload.group(1).split()[0] in ("systemctl", "/usr/bin/systemctl", "/bin/systemctl") \
        and "kill" in reload.group(1) and "--kill-whom=main" in reload.group(1)
    result(ok, "unit-reload", f"ExecReload={reload.group(1)}" if ok
           else f"ExecReload must be sent by systemd itself (systemctl kill --kill-whom=main): {reload and reload.group(1)}")
    # Hardening must not take away what the agent needs.
    caps = set(re.search(r"^CapabilityBoundingSet=(.*)$", unit, re.M).group(1).split())
    req = subprocess.run([armlet, "probe", "--requirements"], capture_output=True, text=True)
    import json
    need = {"CAP_" + c["name"] for c in json.loads(req.stdout)["union"]["capabilities"]}
    result(caps == need, "unit-capabilities", f"{sorted(caps)}" if caps == need
           else f"unit grants {sorted(caps)}, the agent needs {sorted(need)}")


def check_init():
    init = os.path.join(FILES, "armlet.init")
    problems = []
    r = subprocess.run(["sh", "-n", init], capture_output=True, text=True)
    if r.returncode != 0:
        problems.append(f"sh -n: {r.stderr.strip()}")
    br = os.path.join(REPO, "buildroot", "package", "armlet", "S50armlet")
    if not os.path.exists(br) or open(br, "rb").read() != open(init, "rb").read():
        problems.append("buildroot/package/armlet/S50armlet differs from the Yocto init script")
    script = open(init, encoding="utf-8").read()
    used = set(re.findall(r"\$\{?(ARMLET_[A-Z_]+)", script))
    default = open(os.path.join(FILES, "armlet.default"), encoding="utf-8").read()
    set_vars = set(re.findall(r"^(ARMLET_[A-Z_]+)=", default, re.M))
    if used - set_vars:
        problems.append(f"not in armlet.default: {sorted(used - set_vars)}")
    bad = [l for l in default.splitlines() if l and not l.startswith("#")
           and not re.fullmatch(r"[A-Z_]+=[^\s'\"$`;]*", l)]
    if bad:
        problems.append(f"armlet.default lines that are not plain KEY=value: {bad}")
    result(not problems, "init-script", "; ".join(problems) if problems
           else f"sh -n ok, same as Buildroot's S50armlet, {len(set_vars)} settings")


REQUIRED_KCONFIG = ["CONFIG_BPF_SYSCALL", "CONFIG_BPF_JIT", "CONFIG_BPF_LSM", "CONFIG_DEBUG_INFO_BTF",
                    "CONFIG_SECURITY_APPARMOR", "CONFIG_FANOTIFY_ACCESS_PERMISSIONS",
                    "CONFIG_CGROUP_BPF", "CONFIG_SECURITYFS"]


def kconfig(path):
    vals = {}
    for line in open(path, encoding="utf-8"):
        m = re.match(r"^(CONFIG_[A-Z0-9_]+)=(.*)$", line.strip())
        if m:
            vals[m.group(1)] = m.group(2)
    return vals


def check_kernel_fragment(path, name):
    vals = kconfig(path)
    missing = [c for c in REQUIRED_KCONFIG if vals.get(c) != "y"]
    lsm = vals.get("CONFIG_LSM", "").strip('"').split(",")
    problems = [f"{c} not =y" for c in missing]
    if "bpf" not in lsm:
        problems.append(f"CONFIG_LSM {lsm} lacks bpf")
    result(not problems, name, "; ".join(problems) if problems
           else f"{len(REQUIRED_KCONFIG)} options =y, CONFIG_LSM={','.join(lsm)}")


def check_layer():
    text = open(os.path.join(LAYER, "conf", "layer.conf"), encoding="utf-8").read()
    need = ["BBFILE_COLLECTIONS += \"armlet\"", "BBFILE_PATTERN_armlet", "BBFILE_PRIORITY_armlet",
            "LAYERSERIES_COMPAT_armlet", "LAYERDEPENDS_armlet"]
    missing = [n for n in need if n not in text]
    recipes = glob.glob(os.path.join(LAYER, "recipes-*", "*", "*.bb"))
    result(not missing and recipes, "layer", f"missing {missing}" if missing
           else f"{len(recipes)} recipe(s) under BBFILES")


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    check_crates()
    check_license()
    check_unit(sys.argv[1])
    check_init()
    check_kernel_fragment(os.path.join(LAYER, "recipes-kernel", "linux", "files", "armlet.cfg"),
                          "kernel-fragment")
    check_layer()
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
