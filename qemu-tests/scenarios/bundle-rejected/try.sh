#!/bin/bash
# bundle-rejected: try.sh CANDIDATE REASON-CODE — put /tmp/qt-rejected/CANDIDATE in place of
# the active bundle, have the runner send SIGHUP (qt-signal), and expect the agent to print
# 'armlet: reload refused, ...' naming REASON-CODE within 15 s (and no 'armlet: reloaded').
set -u
W=/tmp/qt-rejected
cand=$1 code=$2
n0=$(grep -c 'reload refused' "$ARMLET_STDERR" || true)
cp "$W/$cand" "$W/active.bundle.new"
mv -f "$W/active.bundle.new" "$W/active.bundle"
qt-signal HUP || exit 1
n=$n0
for _ in $(seq 1 300); do
    n=$(grep -c 'reload refused' "$ARMLET_STDERR" || true)
    [ "$n" -gt "$n0" ] && break
    sleep 0.05
done
if [ "$n" -le "$n0" ]; then
    echo "try.sh: no 'reload refused' on the agent's stderr 15 s after SIGHUP ($cand)"
    tail -n 3 "$ARMLET_STDERR"
    exit 1
fi
line=$(grep 'reload refused' "$ARMLET_STDERR" | tail -n 1)
echo "$line"
case "$line" in
    *"$code"*) ;;
    *) echo "try.sh: expected the reason code '$code'"; exit 1 ;;
esac
if grep -q 'armlet: reloaded' "$ARMLET_STDERR"; then
    echo "try.sh: the agent reloaded a bundle"
    exit 1
fi
exit 0
