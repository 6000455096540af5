#!/bin/bash
# apparmor-precompiled, cmd3: a changed policy has no binary: the reload is refused with the
# missing file named, and the previous profile stays in force (cmd4).
set -u
sed -i 's#- path: /etc/shadow#- path: /etc/shadow\n    - path: /etc/gshadow#' /tmp/qt-aa/policy.yaml
qt-signal HUP
for _ in $(seq 1 100); do
    grep -q 'reload refused' "$ARMLET_STDERR" && break
    sleep 0.1
done
grep 'reload refused' "$ARMLET_STDERR" | tail -n 1
grep -q 'reload refused.*no precompiled binary policy for profile armlet-host' "$ARMLET_STDERR"
