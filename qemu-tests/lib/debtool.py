#!/usr/bin/env python3
"""Debian package helper for the qemu proving ground (stdlib only).

Everything comes from the machine's configured apt sources, by package name,
through apt-cache / apt-get download / dpkg-deb. Downloads are cached under
$ARMLET_CACHE/debs/<debarch>/ and never fetched twice (a warm run asks apt-cache
for the file name, which is local, and finds the file in the cache).

Subcommands
  fetch DEBARCH PKG...              download PKG:DEBARCH, print the .deb paths
  kernel DEBARCH [SERIES]           fetch + extract the Debian kernel of SERIES
                                    (default 6.12); print shell assignments:
                                    KERNEL_IMAGE, KERNEL_RELEASE, KERNEL_MODULES,
                                    KERNEL_CONFIG, KERNEL_PACKAGE, KERNEL_VERSION
  rootfs-add ROOT DEBARCH PKG...    unpack PKG and the library packages they need
                                    (Depends/Pre-Depends named lib*, recursively)
                                    into ROOT; then check that every ELF's
                                    DT_NEEDED resolves inside ROOT
  modules ROOT MODDIR KREL MOD...   copy kernel modules MOD (and their modules.dep
                                    closure) from MODDIR into ROOT/lib/modules/KREL,
                                    decompressed, with a matching modules.dep
"""
from __future__ import annotations

import glob
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile

CACHE = os.environ.get("ARMLET_CACHE") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), ".cache", "qemu")

# Library packages we never unpack: data-only or pulled for maintainer scripts.
SKIP = {"gcc-12-base", "libgcc-s1-dbg", "readline-common", "libc-bin", "debconf",
        "dpkg", "perl-base", "install-info", "base-files", "debianutils", "tar"}


def log(msg: str) -> None:
    print(f"debtool: {msg}", file=sys.stderr)


def run(cmd: list[str], **kw) -> str:
    return subprocess.run(cmd, check=True, text=True, stdout=subprocess.PIPE, **kw).stdout


_MEMO: dict | None = None


def _lists_signature() -> str:
    """Changes whenever apt-get update (or dpkg --add-architecture + update) ran."""
    sig = []
    for p in sorted(glob.glob("/var/lib/apt/lists/*Packages*")):
        st = os.stat(p)
        sig.append(f"{os.path.basename(p)}:{st.st_size}:{int(st.st_mtime)}")
    return "|".join(sig)


def _memo() -> dict:
    """apt-cache answers memoised in the cache (apt-cache takes ~1 s per call here)."""
    global _MEMO
    if _MEMO is None:
        path = os.path.join(CACHE, "apt-meta.json")
        sig = _lists_signature()
        try:
            with open(path) as f:
                data = json.load(f)
            if data.get("lists") != sig:
                data = {"lists": sig, "pkgs": {}}
        except (OSError, ValueError):
            data = {"lists": sig, "pkgs": {}}
        _MEMO = data
    return _MEMO


def _memo_save() -> None:
    if _MEMO is None:
        return
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, "apt-meta.json")
    with open(path + ".tmp", "w") as f:
        json.dump(_MEMO, f)
    os.replace(path + ".tmp", path)


def _parse_stanzas(out: str) -> dict[str, dict[str, str]]:
    res: dict[str, dict[str, str]] = {}
    for stanza in re.split(r"\n\s*\n", out):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line and line[0] in " \t" and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, val = line.partition(":")
                fields[key] = val.strip()
        if "Package" in fields and "Architecture" in fields:
            k = fields["Package"]
            res.setdefault(k, fields)  # --no-all-versions: first = candidate
    return res


def show_many(pkgs: list[str], debarch: str) -> dict[str, dict[str, str]]:
    """Fields of the candidate versions of pkgs (for debarch) from apt-cache, memoised."""
    memo = _memo()["pkgs"]
    want = [p for p in pkgs if f"{p}:{debarch}" not in memo]
    if want:
        proc = subprocess.run(["apt-cache", "show", "--no-all-versions"] + [f"{p}:{debarch}" for p in want],
                              text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        got = _parse_stanzas(proc.stdout)
        # Architecture: all packages (e.g. libaudit-common) are unknown as pkg:<foreign
        # arch>; apt-cache knows them as pkg:all.
        absent = [p for p in want if p not in got]
        if absent:
            proc2 = subprocess.run(["apt-cache", "show", "--no-all-versions"] + [f"{p}:all" for p in absent],
                                   text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for k, v in _parse_stanzas(proc2.stdout).items():
                if k in absent and v.get("Architecture") == "all":
                    got[k] = v
        for p in want:
            if p not in got:
                raise SystemExit(f"debtool: apt-cache knows no package {p}:{debarch} "
                                 f"(apt-get update? dpkg --add-architecture?): {proc.stderr.strip()}")
            memo[f"{p}:{debarch}"] = got[p]
        _memo_save()
    return {p: memo[f"{p}:{debarch}"] for p in pkgs}


def show(pkg: str, debarch: str) -> dict[str, str]:
    return show_many([pkg], debarch)[pkg]


def dep_names(field: str) -> list[str]:
    """First alternative of each dependency, without version or arch qualifiers."""
    names = []
    for part in field.split(","):
        part = part.strip()
        if not part:
            continue
        first = part.split("|")[0].strip()
        name = re.split(r"[\s(:]", first, maxsplit=1)[0]
        names.append(name)
    return names


def fetch_many(pkgs: list[str], debarch: str) -> list[str]:
    """Paths of the cached .debs for pkgs (debarch), downloading absent ones in one call."""
    infos = show_many(pkgs, debarch)
    ddir = os.path.join(CACHE, "debs", debarch)
    os.makedirs(ddir, exist_ok=True)
    paths = {p: os.path.join(ddir, os.path.basename(infos[p]["Filename"])) for p in pkgs}
    absent = [p for p in pkgs if not os.path.exists(paths[p])]
    if absent:
        total = sum(int(infos[p].get("Size", 0)) for p in absent)
        log(f"apt-get download ({debarch}, {total} bytes): {' '.join(absent)}")
        with tempfile.TemporaryDirectory(dir=ddir, prefix=".dl-") as tmp:
            os.chmod(tmp, 0o777)  # let apt's sandbox user write here
            subprocess.run(["apt-get", "download", "-q"]
                           + [f"{p}:{'all' if infos[p].get('Architecture') == 'all' else debarch}"
                              f"={infos[p]['Version']}" for p in absent],
                           cwd=tmp, check=True, stdout=subprocess.DEVNULL)
            for p in absent:
                # apt-get names files <pkg>_<version, ':' escaped>_<arch>.deb
                got = glob.glob(os.path.join(tmp, f"{p}_*.deb"))
                if len(got) != 1:
                    raise SystemExit(f"debtool: expected one .deb for {p}:{debarch}, got {got}")
                os.replace(got[0], paths[p])
    return [paths[p] for p in pkgs]


def fetch(pkg: str, debarch: str) -> str:
    return fetch_many([pkg], debarch)[0]


def extract(deb: str, root: str) -> None:
    subprocess.run(["dpkg-deb", "-x", deb, root], check=True)


# ---------------------------------------------------------------- kernel
def cmd_kernel(debarch: str, series: str = "6.12") -> None:
    meta = f"linux-image-{series}-{debarch}"
    info = show(meta, debarch)
    deps = dep_names(info.get("Depends", ""))
    image_pkgs = [d for d in deps if d.startswith("linux-image-")]
    if not image_pkgs:
        raise SystemExit(f"debtool: {meta} has no linux-image dependency: {info.get('Depends')}")
    pkg = image_pkgs[0]
    pinfo = show(pkg, debarch)
    version = pinfo["Version"]
    kdir = os.path.join(CACHE, "kernels", debarch, pkg)
    stamp = os.path.join(kdir, ".complete")
    if not (os.path.exists(stamp) and open(stamp).read().strip() == version):
        deb = fetch(pkg, debarch)
        if os.path.exists(kdir):
            shutil.rmtree(kdir)
        tmp = kdir + ".tmp"
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
        os.makedirs(tmp)
        log(f"extracting {os.path.basename(deb)}")
        extract(deb, tmp)
        os.replace(tmp, kdir)
        with open(stamp, "w") as f:
            f.write(version + "\n")
        # The .deb is large (~100 MB) and fully extracted now: drop it.
        if os.environ.get("ARMLET_KEEP_KERNEL_DEB") != "1":
            os.unlink(deb)
    vmlinuz = sorted(glob.glob(os.path.join(kdir, "boot", "vmlinuz-*")))
    if not vmlinuz:
        raise SystemExit(f"debtool: no boot/vmlinuz-* in {pkg}")
    image = vmlinuz[0]
    krel = os.path.basename(image)[len("vmlinuz-"):]
    # arm64: Debian ships a raw (uncompressed) Image as vmlinuz; qemu -kernel boots it
    # directly and also accepts a gzip-compressed Image. Keep a gzipped copy (smaller
    # to read) and use it; the raw one is the fallback.
    if debarch == "arm64":
        with open(image, "rb") as f:
            magic = f.read(2)
        if magic != b"\x1f\x8b":
            gz = os.path.join(kdir, "boot", f"Image-{krel}.gz")
            if not os.path.exists(gz):
                subprocess.run(f"gzip -1 -c '{image}' > '{gz}.tmp' && mv '{gz}.tmp' '{gz}'",
                               shell=True, check=True)
            image = gz
    moddir = os.path.join(kdir, "lib", "modules", krel)
    print(f"KERNEL_IMAGE='{image}'")
    print(f"KERNEL_RELEASE='{krel}'")
    print(f"KERNEL_MODULES='{moddir}'")
    print(f"KERNEL_CONFIG='{os.path.join(kdir, 'boot', 'config-' + krel)}'")
    print(f"KERNEL_PACKAGE='{pkg}'")
    print(f"KERNEL_VERSION='{version}'")


# ---------------------------------------------------------------- rootfs
def lib_closure(pkgs: list[str], debarch: str) -> list[str]:
    order: list[str] = []
    seen: set[str] = set(pkgs)
    explicit = set(pkgs)
    level = list(pkgs)
    while level:
        infos = show_many(level, debarch)
        nxt: list[str] = []
        for p in level:
            order.append(p)
            for field in ("Pre-Depends", "Depends"):
                for d in dep_names(infos[p].get(field, "")):
                    if (d.startswith("lib") or d == "zlib1g") and d not in seen and (d not in SKIP or d in explicit):
                        seen.add(d)
                        nxt.append(d)
        level = nxt
    return order


ELF_DIRS = ["lib", "lib64", "usr/lib", "usr/lib64"]


def needed(path: str) -> list[str] | None:
    try:
        out = subprocess.run(["readelf", "-dW", path], text=True, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL).stdout
    except OSError:
        return None
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def check_needed(root: str) -> list[str]:
    """DT_NEEDED entries that no file in the root's library dirs provides."""
    have: set[str] = set()
    for d, _, files in os.walk(root):
        rel = os.path.relpath(d, root)
        if any(rel == e or rel.startswith(e + "/") for e in ELF_DIRS):
            have.update(files)
    missing = []
    for d, _, files in os.walk(root):
        for fn in files:
            p = os.path.join(d, fn)
            if os.path.islink(p) or not is_elf(p):
                continue
            for lib in needed(p) or []:
                if lib not in have:
                    missing.append(f"{os.path.relpath(p, root)} needs {lib}")
    return missing


def cmd_rootfs_add(root: str, debarch: str, pkgs: list[str]) -> None:
    closure = lib_closure(pkgs, debarch)
    log(f"unpacking into initramfs ({debarch}): {' '.join(closure)}")
    for deb in fetch_many(closure, debarch):
        extract(deb, root)
    # Documentation, locale data and iconv modules (20 MB) are dead weight here.
    junk = ["usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
            "usr/share/lintian", "usr/share/bug"]
    if os.environ.get("ARMLET_KEEP_GCONV") != "1":
        junk += [os.path.relpath(g, root) for g in glob.glob(os.path.join(root, "usr/lib/*/gconv"))]
    for j in junk:
        shutil.rmtree(os.path.join(root, j), ignore_errors=True)
    missing = check_needed(root)
    if missing:
        for m in missing:
            log(f"unresolved: {m}")
        raise SystemExit("debtool: unresolved shared libraries in initramfs (see above)")


# ---------------------------------------------------------------- modules
def _read_module(path: str) -> bytes:
    if path.endswith(".xz"):
        with lzma.open(path) as f:
            return f.read()
    if path.endswith(".ko"):
        with open(path, "rb") as f:
            return f.read()
    raise SystemExit(f"debtool: unsupported module compression: {path}")


def _modinfo_depends(data: bytes) -> list[str]:
    # .modinfo holds NUL-separated key=value strings; "depends=a,b" (may be empty).
    m = re.search(rb"(?:^|\x00)depends=([A-Za-z0-9_,\-]*)\x00", data)
    if not m or not m.group(1):
        return []
    return [d.decode().replace("-", "_") for d in m.group(1).split(b",") if d]


def cmd_modules(root: str, moddir: str, krel: str, mods: list[str]) -> None:
    """Copy modules + their dependency closure, decompressed, and write modules.dep.

    Debian's kernel package does not ship modules.dep (depmod runs in postinst), and
    the host may have no kmod: dependencies come from each module's .modinfo."""
    index: dict[str, str] = {}  # module name -> path relative to moddir
    for d, _, files in os.walk(os.path.join(moddir, "kernel")):
        for fn in files:
            if re.search(r"\.ko(\.xz)?$", fn):
                name = re.sub(r"\.ko(\.xz)?$", "", fn).replace("-", "_")
                index[name] = os.path.relpath(os.path.join(d, fn), moddir)
    builtin: set[str] = set()
    bpath = os.path.join(moddir, "modules.builtin")
    if os.path.exists(bpath):
        with open(bpath) as f:
            builtin = {re.sub(r"\.ko$", "", os.path.basename(l.strip())).replace("-", "_") for l in f}
    deps: dict[str, list[str]] = {}
    data: dict[str, bytes] = {}

    def visit(name: str) -> None:
        if name in deps:
            return
        if name not in index:
            if name in builtin:
                log(f"module {name} is built into {krel}: nothing to copy")
                deps[name] = []
                return
            raise SystemExit(f"debtool: no module {name} in {moddir}")
        data[name] = _read_module(os.path.join(moddir, index[name]))
        deps[name] = _modinfo_depends(data[name])
        for d in deps[name]:
            visit(d)

    for m in mods:
        visit(m.replace("-", "_"))

    def plain(name: str) -> str:
        return re.sub(r"\.xz$", "", index[name])

    def closure(name: str) -> list[str]:
        """Dependencies of name, ordered like depmod: load from the last to the first."""
        post: list[str] = []
        seen: set[str] = set()

        def dfs(n: str) -> None:
            for d in deps[n]:
                if d not in seen and d in index:
                    seen.add(d)
                    dfs(d)
                    post.append(d)
        dfs(name)
        return list(reversed(post))

    dest = os.path.join(root, "lib", "modules", krel)
    os.makedirs(dest, exist_ok=True)
    depfile = os.path.join(dest, "modules.dep")
    lines: dict[str, str] = {}
    if os.path.exists(depfile):
        with open(depfile) as f:
            for line in f:
                k, _, v = line.partition(":")
                lines[k.strip()] = v.strip()
    for name, blob in data.items():
        out = os.path.join(dest, plain(name))
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "wb") as f:
            f.write(blob)
        lines[plain(name)] = " ".join(plain(d) for d in closure(name))
    with open(depfile, "w") as f:
        for k, v in lines.items():
            f.write(f"{k}: {v}\n" if v else f"{k}:\n")
    for extra in ("modules.builtin", "modules.builtin.modinfo", "modules.order"):
        src = os.path.join(moddir, extra)
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(dest, extra))
    log(f"modules for {krel}: {' '.join(sorted(data))}")


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    cmd, args = argv[1], argv[2:]
    if cmd == "fetch" and len(args) >= 2:
        for path in fetch_many(args[1:], args[0]):
            print(path)
    elif cmd == "kernel" and len(args) in (1, 2):
        cmd_kernel(*args)
    elif cmd == "rootfs-add" and len(args) >= 3:
        cmd_rootfs_add(args[0], args[1], args[2:])
    elif cmd == "modules" and len(args) >= 4:
        cmd_modules(args[0], args[1], args[2], args[3:])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv)
