#!/usr/bin/env bash
# armlet's main job on the embedded default: the demo host policy as a local policy directory
# (unsigned, so --insecure-dev), alerts to stdout, the best enforcer the kernel allows.
# Extra arguments are passed to `armlet run` (e.g. --enforcer audit, --default-posture block).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "run: cargo is missing (the machine's Rust toolchain)" >&2; exit 1; }
cargo build --release --quiet -p armlet
exec target/release/armlet run --insecure-dev \
    --policies policies/examples/host/default-demo.yaml --default-posture block "$@"
