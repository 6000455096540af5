#!/usr/bin/env bash
# Install what building and testing armlet needs on a fresh machine of this kind, idempotently:
# clang and the libbpf headers for the eBPF programs, apparmor (its parser checks the generated
# profiles), rustfmt and clippy for the stable
# toolchain, a nightly toolchain and cargo-fuzz for the fuzz targets. Everything comes from the
# machine's configured registries by package name.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

if ! have cargo; then
    echo "setup: cargo is missing; this project needs the machine's Rust toolchain (rustup)" >&2
    exit 1
fi
missing=()
have clang || missing+=(clang)
[ -f /usr/include/bpf/bpf_helpers.h ] || missing+=(libbpf-dev)
# apparmor_parser: the AppArmor profile golden tests have the real parser check the text.
have apparmor_parser || [ -x /usr/sbin/apparmor_parser ] || [ -x /sbin/apparmor_parser ] || missing+=(apparmor)
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${missing[@]}" >/tmp/armlet-setup-apt.log 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${missing[@]}" >/tmp/armlet-setup-apt.log 2>&1; } \
        || { cat /tmp/armlet-setup-apt.log >&2; exit 1; }
fi
for c in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$c"; then
        rustup component add "$c"
    fi
done
if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "setup: installing cargo-fuzz (once)"
    cargo install cargo-fuzz --locked --quiet
fi
