# shellcheck shell=bash
# qemu proving ground: runner library. Source it from a runner script:
#
#   . "$(dirname "$0")/lib.sh"
#
# Pieces (each usable on its own; see qemu-tests/smoke for the whole flow):
#   qt_setup_host                      install host packages (scripts/setup-cross.sh --vm)
#   qt_build_armlet ARCH               static armlet for ARCH -> $QT_ARMLET_BIN
#   qt_kernel ARCH                     Debian 6.12 kernel -> $KERNEL_IMAGE, $KERNEL_RELEASE, $KERNEL_MODULES
#   qt_rootfs_new DIR ARCH             empty root with busybox-static of ARCH
#   qt_rootfs_add_file DIR SRC DEST [MODE]
#   qt_rootfs_add_debs DIR ARCH PKG... Debian userland (bash, coreutils, ...) + shared libs
#   qt_rootfs_add_modules DIR ARCH MOD...  kernel modules (+deps), decompressed, modules.dep
#   qt_rootfs_add_guest DIR SCRIPT [HOSTNAME]  /init + guest helpers + the guest script
#   qt_rootfs_pack DIR OUT             newc cpio, gzip -1
#   qt_vm_boot ARCH INITRD LOG         boot under qemu TCG (no network), wait for power-off
#   qt_rootfs_merge_usr DIR            /bin /sbin /lib /lib64 -> usr/... (Debian merged-/usr layout)
#   qt_report ARCH LOG CHECK...        PASS/FAIL lines from the console log; counts in QT_PASSED/QT_FAILED
#   qt_count_line LINE                 count one PASS/FAIL/SKIP line (e.g. from a judge) and print it
#
# Environment:
#   ARMLET_CACHE          cache dir (default <repo>/.cache/qemu): debs, kernels, work dirs, logs
#   ARMLET_QEMU_TIMEOUT   host-side timeout per VM in seconds (default 120)
#   ARMLET_QEMU_MEM       guest memory in MiB (default 512)
#   ARMLET_QEMU_SMP       guest CPUs (default 1; e.g. 2 to let a scenario's processes really
#                         run at the same time as the agent, see qemu-tests/README.md)
#   ARMLET_QEMU_APPEND    extra kernel command line
#   ARMLET_BIN_AARCH64 / ARMLET_BIN_X86_64   use this prebuilt static armlet instead of building
#   ARMLET_KERNEL_SERIES  Debian kernel series (default 6.12)
#   ARMLET_QEMU_QUIET=0   boot without `quiet` (full kernel log in the console log)
#   ARMLET_VERBOSE=1      echo the guest console while it runs

QT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
QT_REPO=$(cd "$QT_DIR/.." && pwd)
export ARMLET_CACHE=${ARMLET_CACHE:-$QT_REPO/.cache/qemu}
QT_TIMEOUT=${ARMLET_QEMU_TIMEOUT:-120}
QT_MEM=${ARMLET_QEMU_MEM:-512}
QT_SMP=${ARMLET_QEMU_SMP:-1}
QT_LSM="lockdown,capability,landlock,yama,apparmor,bpf"
QT_PASSED=${QT_PASSED:-0}
QT_FAILED=${QT_FAILED:-0}
QT_SKIPPED=${QT_SKIPPED:-0}
# Guest protocol (console lines, see guest/lib.sh):
QT_SENTINEL_BOOT="ARMLET-QT-BOOTED"
QT_SENTINEL_DONE="ARMLET-QT-DONE"
QT_CHECK_TAG="ARMLET-QT-CHECK"

qt_log() { echo "qemu-tests: $*" >&2; }
qt_die() { qt_log "error: $*"; exit 1; }
qt_now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
qt_secs() { local ms=$1; printf '%d.%01d' $((ms / 1000)) $(((ms % 1000) / 100)); }

# aarch64|arm64 -> aarch64 ; x86_64|amd64 -> x86_64
qt_arch() {
    case "$1" in
        aarch64|arm64) echo aarch64 ;;
        x86_64|amd64|x86-64) echo x86_64 ;;
        *) qt_die "unknown arch '$1' (aarch64|x86_64)" ;;
    esac
}
qt_debarch() { case "$(qt_arch "$1")" in aarch64) echo arm64 ;; x86_64) echo amd64 ;; esac; }
qt_debtool() { python3 "$QT_DIR/lib/debtool.py" "$@"; }

qt_setup_host() {
    "$QT_REPO/scripts/setup-cross.sh" --vm
}

# Sets QT_ARMLET_BIN. Honors ARMLET_BIN_AARCH64 / ARMLET_BIN_X86_64.
qt_build_armlet() {
    local arch; arch=$(qt_arch "$1")
    local override_var="ARMLET_BIN_${arch^^}"
    if [ -n "${!override_var:-}" ]; then
        QT_ARMLET_BIN=${!override_var}
        [ -x "$QT_ARMLET_BIN" ] || qt_die "$override_var=$QT_ARMLET_BIN is not an executable"
        qt_log "$arch: using prebuilt $QT_ARMLET_BIN"
        return 0
    fi
    local line blog="$ARMLET_CACHE/work/build-$arch.log"
    mkdir -p "$ARMLET_CACHE/work"
    if ! line=$(ARMLET_SKIP_SETUP=1 "$QT_REPO/scripts/build-static.sh" "$arch" 2>"$blog" \
            | grep "^BINARY $arch "); then
        qt_log "$arch: scripts/build-static.sh failed; last lines of $blog:"
        tail -n 30 "$blog" >&2
        return 1
    fi
    grep '^build-static: ' "$blog" >&2 || true
    QT_ARMLET_BIN=$(awk '{print $3}' <<<"$line")
}

# Sets KERNEL_IMAGE KERNEL_RELEASE KERNEL_MODULES KERNEL_CONFIG KERNEL_PACKAGE KERNEL_VERSION.
qt_kernel() {
    local debarch; debarch=$(qt_debarch "$1")
    local vars
    vars=$(qt_debtool kernel "$debarch" "${ARMLET_KERNEL_SERIES:-6.12}") || return 1
    eval "$vars"
}

# ---------------------------------------------------------------- initramfs
qt_rootfs_new() {
    local dir=$1 debarch; debarch=$(qt_debarch "$2")
    rm -rf "$dir"
    mkdir -p "$dir"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,root,var/log,armlet-qt}
    local deb
    deb=$(qt_debtool fetch "$debarch" busybox-static) || return 1
    local bbtmp; bbtmp=$(mktemp -d "$ARMLET_CACHE/.bb.XXXXXX")
    dpkg-deb -x "$deb" "$bbtmp"
    install -m 0755 "$bbtmp/bin/busybox" "$dir/bin/busybox"
    rm -rf "$bbtmp"
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$dir/etc/passwd"
    printf 'root:x:0:\n' >"$dir/etc/group"
}

qt_rootfs_add_file() {
    local dir=$1 src=$2 dest=$3 mode=${4:-0755}
    install -D -m "$mode" "$src" "$dir/${dest#/}"
}

qt_rootfs_add_debs() {
    local dir=$1 debarch; debarch=$(qt_debarch "$2"); shift 2
    qt_debtool rootfs-add "$dir" "$debarch" "$@"
}

# Needs qt_kernel ARCH first (KERNEL_MODULES, KERNEL_RELEASE).
qt_rootfs_add_modules() {
    local dir=$1; shift 2
    qt_debtool modules "$dir" "$KERNEL_MODULES" "$KERNEL_RELEASE" "$@"
}

# /init, the guest helper library and the guest script (run as /armlet-qt/test.sh).
qt_rootfs_add_guest() {
    local dir=$1 script=$2 hostname=${3:-kubearmor-dev}
    install -m 0755 "$QT_DIR/guest/init" "$dir/init"
    install -m 0644 "$QT_DIR/guest/lib.sh" "$dir/armlet-qt/lib.sh"
    install -m 0755 "$script" "$dir/armlet-qt/test.sh"
    printf '%s\n' "$hostname" >"$dir/etc/hostname"
}

# Debian's merged-/usr layout (bookworm systems, KubeArmor's Ubuntu images): /bin, /sbin,
# /lib, /lib64 are symlinks into /usr, so the kernel reports /usr/bin/date for /bin/date, as
# on a real node. Run after all packages are unpacked (dpkg-deb -x replaces a symlinked dir).
qt_rootfs_merge_usr() {
    local dir=$1 d
    for d in bin sbin lib lib64; do
        [ -L "$dir/$d" ] && continue
        if [ -d "$dir/$d" ]; then
            mkdir -p "$dir/usr/$d"
            cp -a "$dir/$d/." "$dir/usr/$d/" && rm -rf "${dir:?}/$d" || return 1
        fi
        [ -d "$dir/usr/$d" ] && ln -s "usr/$d" "$dir/$d"
    done
    return 0
}

qt_rootfs_pack() {
    local dir=$1 out=$2
    ( cd "$dir" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet ) \
        | gzip -1 >"$out.tmp" && mv "$out.tmp" "$out"
}

# ---------------------------------------------------------------- boot
# qt_vm_boot ARCH INITRD LOG: boots $KERNEL_IMAGE (from qt_kernel ARCH) with INITRD,
# console to LOG. Returns 0 when qemu exited by itself, 124 on host timeout.
# Sets QT_BOOT_MS (wall time of the VM).
qt_vm_boot() {
    local arch; arch=$(qt_arch "$1")
    local initrd=$2 logf=$3
    local quiet=quiet
    [ "${ARMLET_QEMU_QUIET:-1}" = 1 ] || quiet=""
    local append="panic=-1 $quiet lsm=$QT_LSM ${ARMLET_QEMU_APPEND:-}"
    local -a cmd
    case "$arch" in
        aarch64)
            cmd=(qemu-system-aarch64 -M virt -cpu cortex-a57 -smp "$QT_SMP"
                 -append "console=ttyAMA0 $append") ;;
        x86_64)
            cmd=(qemu-system-x86_64 -M pc -smp "$QT_SMP"
                 -append "console=ttyS0 $append") ;;
    esac
    cmd+=(-m "$QT_MEM" -nographic -no-reboot -nic none -accel tcg
          -kernel "$KERNEL_IMAGE" -initrd "$initrd")
    : >"$logf"
    local start; start=$(qt_now_ms)
    "${cmd[@]}" </dev/null >"$logf" 2>&1 &
    local pid=$! tailpid=""
    if [ "${ARMLET_VERBOSE:-0}" = 1 ]; then
        tail -n +1 -f --pid="$pid" "$logf" >&2 &
        tailpid=$!
    fi
    local deadline=$(( $(date +%s) + QT_TIMEOUT )) rc=0
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            qt_log "$arch: VM still running after ${QT_TIMEOUT}s: killing qemu (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
            local i
            for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            kill -KILL "$pid" 2>/dev/null || true
            rc=124
            break
        fi
        sleep 0.2
    done
    wait "$pid" 2>/dev/null || true
    if [ -n "$tailpid" ]; then wait "$tailpid" 2>/dev/null || true; fi
    QT_BOOT_MS=$(( $(qt_now_ms) - start ))
    # Drop CRs and terminal escapes (SeaBIOS clears the screen) so lines start clean.
    # Non-printable bytes (a guest printing binary junk) become '?', so grep sees text.
    sed -E 's/\r//g; s/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1b[c78]//g' "$logf" \
        | LC_ALL=C tr -c '[:print:]\t\n' '?' >"$logf.tmp" && mv "$logf.tmp" "$logf"
    echo "$rc" >"$logf.exit"
    return $rc
}

# ---------------------------------------------------------------- results
qt_pass() { echo "PASS $1"; QT_PASSED=$((QT_PASSED + 1)); }
qt_fail() { echo "FAIL $1: $2"; QT_FAILED=$((QT_FAILED + 1)); }
qt_skip() { echo "SKIP $1: $2"; QT_SKIPPED=$((QT_SKIPPED + 1)); }
qt_count_line() {
    case "$1" in
        "PASS "*) QT_PASSED=$((QT_PASSED + 1)) ;;
        "FAIL "*) QT_FAILED=$((QT_FAILED + 1)) ;;
        "SKIP "*) QT_SKIPPED=$((QT_SKIPPED + 1)) ;;
    esac
    printf '%s\n' "$1"
}

# qt_report ARCH LOG CHECK...: one PASS/FAIL line per expected CHECK from the guest's
# "ARMLET-QT-CHECK <name> PASS|FAIL <detail>" lines, plus <arch>/boot for the sentinels.
# Checks the guest reports that were not expected are reported too.
qt_report() {
    local arch=$1 logf=$2; shift 2
    local -a expected=("$@")
    local exitrc; exitrc=$(cat "$logf.exit" 2>/dev/null || echo "?")
    local timeout_note=""
    [ "$exitrc" = 124 ] && timeout_note="host timeout after ${QT_TIMEOUT}s; "
    if grep -aq "^$QT_SENTINEL_DONE" "$logf"; then
        qt_pass "$arch/boot"
    elif grep -aq "$QT_SENTINEL_BOOT" "$logf"; then
        qt_fail "$arch/boot" "${timeout_note}guest script did not finish (no $QT_SENTINEL_DONE; log $logf)"
    else
        local why="guest never reached /init"
        grep -aq 'Kernel panic' "$logf" && why="kernel panic: $(grep -a -m1 'Kernel panic' "$logf")"
        qt_fail "$arch/boot" "${timeout_note}$why (log $logf)"
    fi
    local name status detail seen=" "
    while read -r _ name status detail; do
        seen+="$name "
        if [ "$status" = PASS ]; then qt_pass "$arch/$name${detail:+ ($detail)}"
        else qt_fail "$arch/$name" "${detail:-failed}"; fi
    done < <(grep -a "^$QT_CHECK_TAG " "$logf")
    local c
    for c in "${expected[@]}"; do
        case "$seen" in *" $c "*) ;; *) qt_fail "$arch/$c" "no result from the guest" ;; esac
    done
}

qt_summary() {
    local skipped=""
    [ "$QT_SKIPPED" = 0 ] || skipped=", $QT_SKIPPED skipped"
    echo "$QT_PASSED passed, $QT_FAILED failed$skipped"
    [ "$QT_FAILED" = 0 ]
}
