#!/bin/bash
# atomic-update, cmd3: abcheck watches A and B while the bundle file becomes serial 2 and the
# runner sends SIGHUP (qt-signal: self-protection lets only the agent's parent signal it).
set -u
W=/tmp/qt-atomic
rm -f "$W/ready"
reloaded0=$(grep -c 'armlet: reloaded' "$ARMLET_STDERR" || true)
# --pause-us: every denied open is an alert the agent has to write; faster than the agent
# writes them (~200/s on arm64 under TCG), the ring buffer never drains and the agent does not
# get to the reload (see qemu-tests/README.md). 5 ms keeps the rate at or below ~200/s.
abcheck --ready "$W/ready" --settle 50 --after 300 --max-ms 60000 --pause-us 5000 \
    "$W/a" "$W/b" >"$W/abcheck.out" 2>&1 &
ck=$!
for _ in $(seq 1 200); do [ -e "$W/ready" ] && break; kill -0 "$ck" 2>/dev/null || break; sleep 0.05; done
cp "$W/serial2.bundle" "$W/active.bundle.new"
mv -f "$W/active.bundle.new" "$W/active.bundle"   # rename: the agent never reads half a file
qt-signal HUP
wait "$ck"
rc=$?
cat "$W/abcheck.out"
grep 'armlet: reloaded' "$ARMLET_STDERR" | tail -n 1
if [ "$(grep -c 'armlet: reloaded' "$ARMLET_STDERR" || true)" -le "$reloaded0" ]; then
    echo "swap.sh: the agent did not print 'armlet: reloaded'"
    grep 'reload refused' "$ARMLET_STDERR" | tail -n 2
    rc=1
fi
exit "$rc"
