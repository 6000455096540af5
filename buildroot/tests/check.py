#!/usr/bin/env python3
"""Checks for the buildroot/ BR2_EXTERNAL tree (run by scripts/test.sh), one PASS/FAIL line
each. These re-implement the conventions Buildroot's utils/check-package enforces for the
file kinds we ship (the rules are read from Buildroot's manual and checkpackagelib; the
code is ours):

  .mk        80-hash header with the package name; tabs inside define/continuations and no
             tab elsewhere; one space before a backslash; no trailing backslash before an
             empty line; every variable prefixed ARMLET_; no default _SOURCE; no useless
             default flags; $() not ${}; no unconditional override
  Config.in  attributes indented with one tab; help text <tab><2 spaces>, at most 62
             characters; attribute order type, default, depends on, select, help; no
             `default n`
  .hash      three fields separated by two spaces, a known hash type of the right length,
             and the hash of every file present in the tree (LICENSE) is right
  S50armlet  tab indentation, DAEMON without a path matching the file name,
             PIDFILE=/var/run/$DAEMON.pid, executable, `sh -n`
  all        no trailing space, no consecutive empty lines, no empty last line, final newline
  tree       external.desc names ARMLET; external.mk includes the package .mk files;
             Config.in sources the package; the kernel fragment equals the Yocto one; the
             init script and unit equal the Yocto ones

Needs a Buildroot tree (not checked here): running check-package itself (and shellcheck),
`make armlet-source` (downloading and vendoring the crates, whose tarball hash then goes into
armlet.hash), Kconfig parsing of Config.in, and building the package.
"""
import hashlib
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BR = os.path.dirname(HERE)
REPO = os.path.dirname(BR)
PKG = os.path.join(BR, "package", "armlet")
FAILED = 0


def result(problems, name, ok_detail):
    global FAILED
    if problems:
        FAILED += 1
        print(f"FAIL buildroot/{name}: " + "; ".join(problems))
    else:
        print(f"PASS buildroot/{name}: {ok_detail}")


def lines_of(path):
    return open(path, encoding="utf-8").read().split("\n")[:-1]


def common(path):
    text = open(path, encoding="utf-8").read()
    rel = os.path.relpath(path, BR)
    p = []
    if not text.endswith("\n"):
        p.append(f"{rel}: no newline at end of file")
    if text.endswith("\n\n"):
        p.append(f"{rel}: empty last line")
    prev_empty = False
    for n, line in enumerate(text.split("\n")[:-1], 1):
        if line != line.rstrip():
            p.append(f"{rel}:{n}: trailing space")
        if line.strip() == "" and prev_empty:
            p.append(f"{rel}:{n}: consecutive empty lines")
        prev_empty = line.strip() == ""
    return p


def check_mk():
    path = os.path.join(PKG, "armlet.mk")
    lines = lines_of(path)
    p = common(path)
    header = ["#" * 80, "#", "# armlet", "#", "#" * 80, ""]
    if lines[:6] != header:
        p.append("armlet.mk: header is not 80 hashes / # / # armlet / # / 80 hashes / blank")
    in_define = backslash = False
    seen = set()
    for n, line in enumerate(lines, 1):
        if re.match(r"^\s*define\s", line):
            in_define = True
            name = line.split()[1]
            if not name.startswith("ARMLET_"):
                p.append(f"armlet.mk:{n}: define {name} lacks the ARMLET_ prefix")
            continue
        if re.match(r"^\s*endef\b", line):
            in_define = False
            continue
        expect_tab = in_define or backslash
        if line.strip() and not line.lstrip().startswith("#"):
            if expect_tab and not line.startswith("\t"):
                p.append(f"armlet.mk:{n}: expected indent with tabs")
            if not expect_tab and line.startswith("\t"):
                p.append(f"armlet.mk:{n}: unexpected indent with tabs")
        if re.match(r"^.*(  |\t ?)\\$", line):
            p.append(f"armlet.mk:{n}: use only one space before backslash")
        if backslash and line.strip() == "":
            p.append(f"armlet.mk:{n - 1}: trailing backslash")
        backslash = bool(re.match(r"^[^#].*\\$", line))
        if re.match(r"^[^#].*[^$]\$\{\w+\}", line):
            p.append(f"armlet.mk:{n}: use $() not ${{}}")
        m = re.match(r"^([A-Z0-9_]+)\s*(\+=|:=|\?=|=)", line)
        if m and not in_define:
            var, op = m.groups()
            if not var.startswith("ARMLET_"):
                p.append(f"armlet.mk:{n}: possible typo: {var} -> *ARMLET*")
            if op in ("=", ":=") and var in seen:
                p.append(f"armlet.mk:{n}: unconditional override of {var}")
            seen.add(var)
        if re.match(r"^ARMLET_SOURCE\s*=\s*armlet-\$\(ARMLET_VERSION\)\.tar\.gz", line):
            p.append(f"armlet.mk:{n}: remove the default _SOURCE")
        if re.search(r"_(INSTALL_STAGING\s*=\s*NO|INSTALL_TARGET\s*=\s*YES|INSTALL_IMAGES\s*=\s*NO)", line):
            p.append(f"armlet.mk:{n}: useless default flag")
    if lines[-1] != "$(eval $(cargo-package))":
        p.append("armlet.mk: last line is not $(eval $(cargo-package))")
    lic = [l for l in lines if l.startswith("ARMLET_LICENSE_FILES")]
    if not lic:
        p.append("armlet.mk: no ARMLET_LICENSE_FILES")
    result(p, "mk", f"{len(lines)} lines, cargo-package, conventions hold")


ORDER = {"bool": 1, "prompt": 1, "string": 1, "default": 2, "depends": 3, "select": 4, "help": 5}
TOP = {"choice", "comment", "config", "endchoice", "endif", "endmenu", "if", "menu",
       "menuconfig", "source"}


def check_config_in(path):
    rel = os.path.relpath(path, BR)
    p = common(path)
    state, in_help, first_help = 0, False, False
    for n, line in enumerate(lines_of(path), 1):
        s = line.strip()
        if s == "" or s.startswith("#"):
            continue
        word = s.split()[0]
        if in_help and line.startswith("\t  "):
            text = line.rstrip()
            ok = re.match(r"^\t  \S.{,61}$" if first_help else r"^\t  .{,62}$", text) \
                or re.match(r"^(http|https|git)://\S*$", s)
            if not ok:
                p.append(f"{rel}:{n}: help text: <tab><2 spaces><62 chars>")
            first_help = False
            continue
        in_help = False
        if word in TOP:
            state = 0
            if line != line.lstrip():
                p.append(f"{rel}:{n}: {word} should not be indented")
            continue
        if word in ORDER:
            if not line.startswith("\t" + word):
                p.append(f"{rel}:{n}: should be indented with one tab")
            if ORDER[word] < state:
                p.append(f"{rel}:{n}: attributes order: type, default, depends on, select, help")
            state = ORDER[word]
            if word == "help":
                in_help, first_help = True, True
        if re.match(r"^\tdefault n$", line.split("#")[0].rstrip()):
            p.append(f"{rel}:{n}: redundant `default n`")
    return p


def check_hash():
    path = os.path.join(PKG, "armlet.hash")
    p = common(path)
    lengths = {"md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128}
    checked = 0
    for n, line in enumerate(lines_of(path), 1):
        if line.strip() == "" or line.startswith("#"):
            continue
        f = line.split()
        if len(f) != 3:
            p.append(f"armlet.hash:{n}: expected three fields")
            continue
        if line != "  ".join(f):
            p.append(f"armlet.hash:{n}: fields must be separated by two spaces")
        htype, digest, name = f
        if htype not in lengths or not re.fullmatch("[0-9a-fA-F]{%d}" % lengths.get(htype, 0), digest):
            p.append(f"armlet.hash:{n}: bad hash type or length")
            continue
        local = os.path.join(REPO, name)
        if os.path.exists(local):
            actual = hashlib.new(htype, open(local, "rb").read()).hexdigest()
            if actual != digest.lower():
                p.append(f"armlet.hash:{n}: {name} has {htype} {actual}")
            checked += 1
    mk = open(os.path.join(PKG, "armlet.mk"), encoding="utf-8").read()
    licfiles = re.search(r"^ARMLET_LICENSE_FILES\s*=\s*(.*)$", mk, re.M).group(1).split()
    hashed = {l.split()[2] for l in lines_of(path) if l and not l.startswith("#") and len(l.split()) == 3}
    for lf in licfiles:
        if lf not in hashed:
            p.append(f"armlet.hash: license file {lf} has no hash")
    result(p, "hash", f"{checked} local file hash(es) verified, license files covered")


def check_init():
    path = os.path.join(PKG, "S50armlet")
    p = common(path)
    daemon = None
    for n, line in enumerate(lines_of(path), 1):
        if re.match(r"^[\t]* ", line.rstrip()):
            p.append(f"S50armlet:{n}: should be indented with tabs")
        m = re.match(r"^DAEMON=[\"']?([^\"']*)[\"']?", line)
        if m:
            daemon = m.group(1)
            if "/" in daemon:
                p.append(f"S50armlet:{n}: no path in DAEMON")
        m = re.match(r"^PIDFILE=[\"']?([^\"']*)[\"']?", line)
        if m and not re.match(r"/var/run/(\$DAEMON|\$\{DAEMON\})\.pid", m.group(1)):
            p.append(f"S50armlet:{n}: PIDFILE should be /var/run/$DAEMON.pid")
    if daemon is None:
        p.append("S50armlet: DAEMON not defined")
    elif not re.match(r"S\d\d%s$" % re.escape(daemon), "S50armlet"):
        p.append("S50armlet: file name should be S<nn><daemon>")
    if not os.access(path, os.X_OK):
        p.append("S50armlet: not executable")
    r = subprocess.run(["sh", "-n", path], capture_output=True, text=True)
    if r.returncode:
        p.append(f"sh -n: {r.stderr.strip()}")
    result(p, "init-script", f"DAEMON={daemon}, tabs, pid file, executable, sh -n")


def same(a, b):
    return open(a, "rb").read() == open(b, "rb").read()


def check_tree():
    p = []
    for f in ("external.desc", "external.mk", "Config.in"):
        p += common(os.path.join(BR, f))
    desc = open(os.path.join(BR, "external.desc"), encoding="utf-8").read()
    if not re.search(r"^name: ARMLET$", desc, re.M):
        p.append("external.desc: name is not ARMLET")
    if "$(BR2_EXTERNAL_ARMLET_PATH)/package/*/*.mk" not in open(os.path.join(BR, "external.mk")).read():
        p.append("external.mk does not include package/*/*.mk")
    if 'source "$BR2_EXTERNAL_ARMLET_PATH/package/armlet/Config.in"' not in open(os.path.join(BR, "Config.in")).read():
        p.append("Config.in does not source package/armlet/Config.in")
    p += check_config_in(os.path.join(BR, "Config.in"))
    p += check_config_in(os.path.join(PKG, "Config.in"))
    y = os.path.join(REPO, "yocto", "meta-armlet")
    pairs = [("board/armlet-kernel.fragment", "recipes-kernel/linux/files/armlet.cfg"),
             ("package/armlet/S50armlet", "recipes-security/armlet/files/armlet.init"),
             ("package/armlet/armlet.service", "recipes-security/armlet/files/armlet.service"),
             ("package/armlet/armlet.default", "recipes-security/armlet/files/armlet.default")]
    for b, yy in pairs:
        if not same(os.path.join(BR, b), os.path.join(y, yy)):
            p.append(f"{b} differs from yocto/meta-armlet/{yy}")
    frag = open(os.path.join(BR, "configs", "armlet_qemu_aarch64.fragment")).read()
    for need in ("BR2_aarch64=y", "BR2_PACKAGE_ARMLET=y", "BR2_INIT_BUSYBOX=y",
                 "board/armlet-kernel.fragment"):
        if need not in frag:
            p.append(f"defconfig fragment lacks {need}")
    result(p, "tree", "external.desc/mk, Config.in, same files as the Yocto layer, defconfig fragment")


def main():
    check_mk()
    check_hash()
    check_init()
    check_tree()
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
