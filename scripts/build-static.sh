#!/usr/bin/env bash
# Build the `armlet` binary (package armlet) in release mode, fully static (musl),
# for aarch64 and/or x86_64; verify it is static and that it runs
# (aarch64 under qemu-aarch64 user emulation).
#
#   scripts/build-static.sh [aarch64|x86_64|all]     (default: all)
#
# stdout: one line per target, machine-readable:
#   BINARY <arch> <path> <size-in-bytes>
# stderr: progress and diagnostics.
#
# Environment:
#   ARMLET_AARCH64_LINKER   linker for aarch64-unknown-linux-musl
#                           (default aarch64-linux-gnu-gcc; "rust-lld" works for pure-Rust builds)
#   ARMLET_SKIP_SETUP=1     do not run scripts/setup-cross.sh first
#   ARMLET_SKIP_RUNCHECK=1  do not execute the built binaries
#   CARGO_TARGET_DIR        honoured as usual (default <repo>/target)
#   CARGO                   cargo to use (default cargo)
#
# Linker setup lives here on purpose (no .cargo/config.toml):
#   aarch64: linker aarch64-linux-gnu-gcc (Debian gcc-aarch64-linux-gnu); Rust's musl target
#            links its own self-contained crt objects and libc.a, gcc is only the driver.
#            C dependencies (ring, aws-lc, ...) are compiled with aarch64-linux-musl-gcc
#            (the musl-gcc wrapper shipped by musl-dev:arm64). The default `cc` linker
#            fails for this target.
#   x86_64:  the default linker (cc) works; C dependencies use musl-gcc (musl-tools).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
cargo=${CARGO:-cargo}

which_arch=${1:-all}
case "$which_arch" in
    aarch64|arm64) archs=(aarch64) ;;
    x86_64|amd64) archs=(x86_64) ;;
    all) archs=(aarch64 x86_64) ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "build-static: unknown arch '$which_arch' (aarch64|x86_64|all)" >&2; exit 2 ;;
esac

log() { echo "build-static: $*" >&2; }

if [ "${ARMLET_SKIP_SETUP:-0}" != 1 ]; then
    "$here/setup-cross.sh"
fi

target_dir=${CARGO_TARGET_DIR:-$repo/target}

# --- per-target toolchain environment (exported only for the cargo call) ----
aarch64_env() {
    local linker=${ARMLET_AARCH64_LINKER:-aarch64-linux-gnu-gcc}
    if [ "$linker" = aarch64-linux-gnu-gcc ] && ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1; then
        log "aarch64-linux-gnu-gcc not found; falling back to rust-lld (pure-Rust dependencies only)"
        linker=rust-lld
    fi
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=$linker
    if [ "$linker" = rust-lld ]; then
        # rust-lld as a bare ld: use Rust's self-contained crt objects and libc.
        export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS:-} -C linker-flavor=ld.lld -C link-self-contained=yes"
    fi
    if command -v aarch64-linux-musl-gcc >/dev/null 2>&1; then
        export CC_aarch64_unknown_linux_musl=aarch64-linux-musl-gcc
    else
        export CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc
    fi
    export AR_aarch64_unknown_linux_musl=aarch64-linux-gnu-ar
    export CFLAGS_aarch64_unknown_linux_musl="${CFLAGS_aarch64_unknown_linux_musl:-}"
}
x86_64_env() {
    if command -v musl-gcc >/dev/null 2>&1; then
        export CC_x86_64_unknown_linux_musl=musl-gcc
    fi
}

is_static() {
    # Static: no PT_INTERP program header and no DT_NEEDED entries.
    local bin=$1
    if readelf -lW "$bin" 2>/dev/null | grep -q 'INTERP'; then
        log "$bin has a PT_INTERP (dynamic loader) header"; return 1
    fi
    if readelf -dW "$bin" 2>/dev/null | grep -q '(NEEDED)'; then
        log "$bin has DT_NEEDED entries:"; readelf -dW "$bin" | grep '(NEEDED)' >&2; return 1
    fi
    return 0
}

rc=0
for arch in "${archs[@]}"; do
    triple="$arch-unknown-linux-musl"
    log "cargo build --release -p armlet --bin armlet --target $triple"
    start=$(date +%s%N)
    (
        cd "$repo"
        "${arch}_env"
        exec "$cargo" build --release -p armlet --bin armlet --target "$triple"
    ) || { log "build failed for $triple"; rc=1; continue; }
    end=$(date +%s%N)
    bin="$target_dir/$triple/release/armlet"
    [ -f "$bin" ] || { log "expected binary not found: $bin"; rc=1; continue; }
    size=$(stat -c %s "$bin")
    desc=$(file -b "$bin")
    ms=$(( (end - start) / 1000000 ))
    log "$arch: cargo took $((ms / 1000)).$(printf '%03d' $((ms % 1000)))s; $size bytes; $desc"
    if ! is_static "$bin"; then rc=1; continue; fi
    case "$arch" in
        aarch64) grep -q 'ARM aarch64' <<<"$desc" || { log "not an aarch64 ELF: $desc"; rc=1; continue; } ;;
        x86_64) grep -q 'x86-64' <<<"$desc" || { log "not an x86-64 ELF: $desc"; rc=1; continue; } ;;
    esac
    if [ "${ARMLET_SKIP_RUNCHECK:-0}" != 1 ]; then
        if [ "$arch" = aarch64 ]; then
            out=$(qemu-aarch64 "$bin" version 2>&1) || { log "qemu-aarch64 $bin version failed: $out"; rc=1; continue; }
        else
            out=$("$bin" version 2>&1) || { log "$bin version failed: $out"; rc=1; continue; }
        fi
        log "$arch: '$(head -n1 <<<"$out")'"
        # A build without clang embeds empty eBPF objects and refuses to enforce: stop here,
        # not in a VM minutes later (scripts/setup-dev.sh installs clang and libbpf-dev).
        if grep -q 'enforcement refused' <<<"$out"; then
            log "$arch: the binary has no eBPF objects ($(grep 'enforcement refused' <<<"$out" | head -n1)); install clang and libbpf-dev (scripts/setup-dev.sh) and build again"
            rc=1; continue
        fi
    fi
    echo "BINARY $arch $bin $size"
done
exit $rc
