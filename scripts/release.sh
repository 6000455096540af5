#!/usr/bin/env bash
# Release binaries: both static musl targets, stripped, with their sizes printed and the
# aarch64 size budget enforced. The one documented command for release builds.
#
#   scripts/release.sh [--out DIR] [--no-setup]
#
# Builds with scripts/build-static.sh (release profile: opt-level z, LTO, one codegen unit,
# panic=abort, strip), checks that each binary is static, stripped and of the right
# machine, runs `armlet version` (aarch64 under qemu-aarch64), copies the binaries to
# DIR (default target/release-dist) as armlet-<version>-<target>, and prints:
#   SIZE <target> <bytes> <MiB> budget <bytes|-> ok|OVER
# then one line per binary with `armlet version`'s first line.
# Exit 1 when a build fails, a binary is not static/stripped, or aarch64 is over budget.
#
# Environment: ARMLET_AARCH64_BUDGET (bytes, default 4194304 = 4 MiB), plus everything
# scripts/build-static.sh honours. ARMLET_GIT_REVISION overrides the embedded revision
# (for builds from a source tarball; default: git rev-parse, else "unknown").
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
out="$repo/target/release-dist" setup=1
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        --no-setup) setup=0; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "release: unknown argument: $1" >&2; exit 2 ;;
    esac
done
budget=${ARMLET_AARCH64_BUDGET:-4194304}
log() { echo "release: $*" >&2; }

[ "$setup" = 1 ] || export ARMLET_SKIP_SETUP=1
lines=$("$here/build-static.sh" all) || { log "scripts/build-static.sh failed"; exit 1; }
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n1)
mkdir -p "$out"
rc=0
while read -r tag arch bin size; do
    [ "$tag" = BINARY ] || continue
    triple="$arch-unknown-linux-musl"
    desc=$(file -b "$bin")
    case "$desc" in
        *"not stripped"*) log "$bin is not stripped: $desc"; rc=1 ;;
        *stripped*) ;;
        *) log "cannot tell whether $bin is stripped: $desc"; rc=1 ;;
    esac
    if readelf -SW "$bin" | grep -qE '\.(symtab|debug_info)'; then
        log "$bin still has .symtab/.debug_info sections"; rc=1
    fi
    mib=$(awk -v b="$size" 'BEGIN { printf "%.2f", b / 1048576 }')
    if [ "$arch" = aarch64 ]; then
        verdict=ok
        [ "$size" -le "$budget" ] || { verdict=OVER; rc=1; }
        echo "SIZE $triple $size ${mib}MiB budget $budget $verdict"
        vline=$(qemu-aarch64 "$bin" version | head -n1)
    else
        echo "SIZE $triple $size ${mib}MiB budget - ok"
        vline=$("$bin" version | head -n1)
    fi
    install -m 0755 "$bin" "$out/armlet-$version-$triple"
    echo "VERSION $triple $vline"
done <<<"$lines"
[ "$rc" = 0 ] && log "binaries in $out" || log "FAILED"
exit $rc
