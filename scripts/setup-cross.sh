#!/usr/bin/env bash
# Install what a fresh Debian 12 (bookworm) x86_64 machine needs to build static
# (musl) armlet binaries for aarch64 and x86_64, and to smoke-run the aarch64
# binary under qemu user emulation.
#
# Idempotent and quiet when everything is already present. Uses only the
# machine's configured apt sources and package names.
#
#   scripts/setup-cross.sh            # cross toolchain (rustup targets + apt packages)
#   scripts/setup-cross.sh --vm       # also the packages the qemu VM tests need
#   scripts/setup-cross.sh --check    # report what is missing, install nothing (exit 1 if any)
#
# Environment: ARMLET_SETUP_VERBOSE=1 prints what is already there too.
set -euo pipefail

want_vm=0
check_only=0
for arg in "$@"; do
    case "$arg" in
        --vm) want_vm=1 ;;
        --check) check_only=1 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "setup-cross: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

verbose=${ARMLET_SETUP_VERBOSE:-0}
log() { echo "setup-cross: $*" >&2; }
vlog() { if [ "$verbose" = 1 ]; then log "$@"; fi; }

SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        log "not root and no sudo: apt steps may fail"; fi
fi

RUST_TARGETS=(aarch64-unknown-linux-musl x86_64-unknown-linux-musl)

# Host packages for cross builds:
#   gcc-aarch64-linux-gnu  cross C compiler/binutils (linker driver for aarch64)
#   musl-dev:arm64         aarch64 musl headers, crt files and libc.a (for C deps such as ring)
#   musl-tools             x86_64 musl-gcc wrapper (C deps of the x86_64 musl target)
#   qemu-user              qemu-aarch64 to run the aarch64 binary on this host
#   file, binutils         static-ness checks (file / readelf)
APT_PKGS=(gcc-aarch64-linux-gnu musl-dev:arm64 musl-tools qemu-user file binutils)
# Packages for the qemu proving ground (qemu-tests/): system emulators, a static
# busybox for the x86_64 guest, cpio for the initramfs. qemu-utils (qemu-img) is
# listed so that it stays installed: the machine image may carry a newer qemu-utils
# from elsewhere that conflicts with qemu-system-* from the configured sources, and
# apt replaces it with the matching version.
VM_PKGS=(qemu-system-arm qemu-system-x86 qemu-utils busybox-static cpio gzip)
if [ "$want_vm" = 1 ]; then APT_PKGS+=("${VM_PKGS[@]}"); fi

missing=0

# ---- rustup targets -------------------------------------------------------
if ! command -v rustup >/dev/null 2>&1; then
    log "rustup not found: install Rust with rustup first"; exit 1
fi
installed_targets=$(rustup target list --installed 2>/dev/null || true)
need_targets=()
for t in "${RUST_TARGETS[@]}"; do
    if grep -qx "$t" <<<"$installed_targets"; then vlog "rust target $t present"; else need_targets+=("$t"); fi
done
if [ ${#need_targets[@]} -gt 0 ]; then
    missing=1
    if [ "$check_only" = 1 ]; then log "missing rust targets: ${need_targets[*]}"; else
        log "rustup target add ${need_targets[*]}"
        rustup target add "${need_targets[@]}" >&2
    fi
fi

# ---- dpkg foreign architecture --------------------------------------------
need_update=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    missing=1
    if [ "$check_only" = 1 ]; then log "dpkg foreign architecture arm64 not enabled"; else
        log "dpkg --add-architecture arm64"
        $SUDO dpkg --add-architecture arm64
        need_update=1
    fi
fi
# No arm64 package index yet (arch just added, or lists never fetched) -> update.
if ! compgen -G "/var/lib/apt/lists/*_binary-arm64_Packages*" >/dev/null; then need_update=1; fi
if ! compgen -G "/var/lib/apt/lists/*_binary-amd64_Packages*" >/dev/null; then need_update=1; fi

# ---- apt packages ---------------------------------------------------------
pkg_installed() {
    local st
    st=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)
    [ "$st" = "install ok installed" ]
}
# apt output goes to a log shown only on failure (quiet on success).
apt_log=$(mktemp "${TMPDIR:-/tmp}/armlet-setup-apt.XXXXXX")
trap 'rm -f "$apt_log"' EXIT
apt_quiet() { $SUDO apt-get "$@" >"$apt_log" 2>&1; }
apt_update() {
    log "apt-get update"
    apt_quiet update -q || { log "apt-get update failed:"; cat "$apt_log" >&2; exit 1; }
}
need_pkgs=()
for p in "${APT_PKGS[@]}"; do
    if pkg_installed "$p"; then vlog "package $p present"; else need_pkgs+=("$p"); fi
done

if [ ${#need_pkgs[@]} -gt 0 ]; then
    missing=1
    if [ "$check_only" = 1 ]; then log "missing packages: ${need_pkgs[*]}"; else
        export DEBIAN_FRONTEND=noninteractive
        if [ "$need_update" = 1 ]; then apt_update; need_update=0; fi
        log "apt-get install ${need_pkgs[*]}"
        if ! apt_quiet install -y -q --no-install-recommends "${need_pkgs[@]}"; then
            # Stale package lists are the usual cause: update once and retry.
            log "install failed; apt-get update and retry"
            apt_update
            apt_quiet install -y -q --no-install-recommends "${need_pkgs[@]}" || {
                log "apt-get install failed:"; cat "$apt_log" >&2; exit 1; }
        fi
    fi
elif [ "$need_update" = 1 ] && [ "$check_only" = 0 ]; then
    apt_update
fi

# ---- sanity: the tools the build script relies on -------------------------
if [ "$check_only" = 0 ]; then
    for tool in aarch64-linux-gnu-gcc musl-gcc qemu-aarch64 file readelf; do
        command -v "$tool" >/dev/null 2>&1 || { log "expected tool missing after install: $tool"; exit 1; }
    done
    [ -f /usr/lib/aarch64-linux-musl/libc.a ] || [ -f /usr/lib/musl/aarch64-linux-musl/lib/libc.a ] \
        || compgen -G "/usr/lib/*aarch64*musl*/libc.a" >/dev/null \
        || { log "aarch64 musl libc.a not found (musl-dev:arm64)"; exit 1; }
    if [ "$want_vm" = 1 ]; then
        for tool in qemu-system-aarch64 qemu-system-x86_64 cpio; do
            command -v "$tool" >/dev/null 2>&1 || { log "expected tool missing after install: $tool"; exit 1; }
        done
        [ -x /bin/busybox ] || { log "busybox-static did not provide /bin/busybox"; exit 1; }
    fi
    vlog "all present"
fi

if [ "$check_only" = 1 ] && [ "$missing" = 1 ]; then exit 1; fi
exit 0
