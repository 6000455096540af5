#!/usr/bin/env bash
# The whole test suite, from a fresh machine of this kind: installs what it needs, then
# formatting, lints, unit and integration tests, bounded fuzzing, and the qemu smoke boot.
# This is the command README.md names and .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "setup"
scripts/setup-dev.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cargo test"
cargo test --workspace 2>&1 | tee target/test.log | grep -vE '^\s*(Running|Compiling|Doc-tests)' || { tail -50 target/test.log; exit 1; }
if grep -qE '^test result: FAILED' target/test.log; then exit 1; fi

step "fuzz (bounded)"
scripts/fuzz.sh "${ARMLET_FUZZ_SECONDS:-15}"

step "qemu smoke boot (aarch64 + x86_64)"
qemu-tests/smoke

step "qemu scenarios: BPF-LSM enforcement in Debian 6.12 VMs (aarch64 + x86_64)"
# armlet's own scenarios and, where ../shared is present, KubeArmor's host scenarios.
qemu-tests/run --no-setup

conformance=../shared/conformance/kubearmor/host_scenarios
if [ -d "$conformance" ]; then
    step "qemu scenarios: KubeArmor host scenarios with --enforcer audit (report-only)"
    qemu-tests/run --no-setup --enforcer audit --scenarios "$conformance"
fi

step "qemu scenarios: AppArmor enforcement (--enforcer apparmor, kernel without bpf LSM; aarch64 + x86_64)"
# armlet's own scenarios (self-protection is SKIP: BPF-LSM only) and, where ../shared is
# present, KubeArmor's host scenarios; about 2 minutes per arch, both VMs in parallel.
qemu-tests/run --no-setup --enforcer apparmor

# Totals over every cargo test binary, as one plain closing line.
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "\ncargo: %d passed, %d failed, %d skipped\n", p, f, i }' target/test.log
