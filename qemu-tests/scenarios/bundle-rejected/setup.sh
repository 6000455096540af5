#!/bin/bash
# bundle-rejected: keys, trust root, the good bundle (serial 5, active.bundle) and the bad
# candidates. Runs as root in the guest before the agent.
set -euo pipefail
W=/tmp/qt-rejected
rm -rf "$W" && mkdir -p "$W/keys" "$W/state"
echo "secret" >"$W/secret"
echo "other" >"$W/other"
armlet keygen --role root --out "$W/keys/root"
armlet keygen --role policy --out "$W/keys/policy"
armlet keygen --role policy --out "$W/keys/rogue"     # not in the trust root
armlet trust init --root "$W/keys/root.pub" --threshold 1 --policy-key "$W/keys/policy.pub" \
    --expires 30d --sign-with "$W/keys/root.key" -o "$W/trust.bin"
good="$SCENARIO_DIR/hsp-armlet-bundle-good.yaml"
other="$SCENARIO_DIR/other/hsp-armlet-bundle-other.yaml"
armlet bundle build --serial 5 --expires 1d --key "$W/keys/policy.key" -o "$W/serial5.bundle" "$good"
armlet bundle build --serial 3 --expires 1d --key "$W/keys/policy.key" -o "$W/rollback.bundle" "$other"
armlet bundle build --serial 6 --expires 1d --key "$W/keys/policy.key" -o "$W/tampered.bundle" "$other"
armlet bundle build --serial 7 --expires 1d --key "$W/keys/rogue.key" -o "$W/unknown-signer.bundle" "$other"
# Flip one bit of the last byte (the end of the payload, which the signed manifest pins).
f="$W/tampered.bundle" off=$(( $(stat -c %s "$W/tampered.bundle") - 1 ))
b=$(od -An -tu1 -j "$off" -N1 "$f" | tr -d ' ')
printf "\\$(printf %o $((b ^ 1)))" | dd of="$f" bs=1 seek="$off" conv=notrunc status=none
! cmp -s "$f" "$W/serial5.bundle"
for _ in 1 2 3 4 5 6 7 8; do echo "this is not an armlet bundle"; done >"$W/garbage.bundle"
cp "$W/serial5.bundle" "$W/active.bundle"
