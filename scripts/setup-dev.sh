#!/usr/bin/env bash
# Install what building and testing armlet needs on a fresh machine of this kind, idempotently:
# rustfmt and clippy for the stable toolchain, a nightly toolchain and cargo-fuzz for the fuzz
# targets. Everything comes from the machine's configured registries by name.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

if ! have cargo; then
    echo "setup: cargo is missing; this project needs the machine's Rust toolchain (rustup)" >&2
    exit 1
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
