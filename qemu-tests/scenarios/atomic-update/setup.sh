#!/bin/bash
# atomic-update: keys, trust root, bundles serial 1 (blocks A) and 2 (blocks B); the agent
# starts on active.bundle = serial 1 (agent.args). Runs as root in the guest before the agent.
set -euo pipefail
W=/tmp/qt-atomic
rm -rf "$W" && mkdir -p "$W/keys" "$W/state"
echo "file A" >"$W/a"
echo "file B" >"$W/b"
armlet keygen --role root --out "$W/keys/root"
armlet keygen --role policy --out "$W/keys/policy"
armlet trust init --root "$W/keys/root.pub" --threshold 1 --policy-key "$W/keys/policy.pub" \
    --expires 30d --sign-with "$W/keys/root.key" -o "$W/trust.bin"
armlet bundle build --serial 1 --expires 1d --key "$W/keys/policy.key" -o "$W/serial1.bundle" \
    "$SCENARIO_DIR/hsp-armlet-atomic-serial1.yaml"
armlet bundle build --serial 2 --expires 1d --key "$W/keys/policy.key" -o "$W/serial2.bundle" \
    "$SCENARIO_DIR/serial2/hsp-armlet-atomic-serial2.yaml"
cp "$W/serial1.bundle" "$W/active.bundle"
