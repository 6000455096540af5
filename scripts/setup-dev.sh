#!/usr/bin/env bash
# Install what building and testing armlet needs on a fresh machine of this kind, idempotently:
# clang and the libbpf headers for the eBPF programs, Mosquitto and openssl for the MQTT tests,
# apparmor (its parser checks the generated profiles), rustfmt and clippy for the stable
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
# qemu-tests/host-run runs the scenario script under busybox sh on this machine.
have busybox || missing+=(busybox)
# qemu-tests/host-run's containers: runc (Debian's; crun refuses hybrid cgroups), the test
# network (iproute2, util-linux nsenter) and what the container scenarios run.
have runc || missing+=(runc)
have ip || missing+=(iproute2)
have nsenter || missing+=(util-linux)
have curl || missing+=(curl)
have wget || missing+=(wget)
have ping || missing+=(iputils-ping)
[ -x /usr/sbin/arping ] || missing+=(arping)
have su || missing+=(login)
# MQTT broker tests (agent/tests/mqtt_broker.rs): Debian's Mosquitto and openssl for test certs.
[ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
have openssl || missing+=(openssl)
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

# Packaging checks (issue #6): kubernetes-validate (offline Kubernetes schema validation,
# PyPI) in a venv under .cache; systemd for `systemd-analyze verify` of the Yocto unit.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$repo/.cache/venv"
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
    echo "setup: creating $venv with kubernetes-validate (once)"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q python3-venv >/tmp/armlet-setup-apt.log 2>&1 \
            || { cat /tmp/armlet-setup-apt.log >&2; exit 1; }
        python3 -m venv "$venv"
    fi
    "$venv/bin/pip" install -q --disable-pip-version-check 'kubernetes-validate==1.37.0' pyyaml
fi
if ! have systemd-analyze; then
    echo "setup: installing systemd (for systemd-analyze verify)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q systemd >/tmp/armlet-setup-apt.log 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q systemd >/tmp/armlet-setup-apt.log 2>&1; } \
        || { cat /tmp/armlet-setup-apt.log >&2; exit 1; }
fi
