# shellcheck shell=sh
# Helpers for guest test scripts (busybox sh compatible). Source with
#   . /armlet-qt/lib.sh
#
# Console protocol read by the host (qemu-tests/lib.sh, qt_report):
#   ARMLET-QT-BOOTED ...            printed by /init before the test script
#   ARMLET-QT-CHECK <name> PASS [detail]
#   ARMLET-QT-CHECK <name> FAIL <why>
#   ARMLET-QT-DONE rc=<n> ...       printed by /init after the test script
# <name> is one word ([A-Za-z0-9._-]); the detail stays on one line.

qt_one_line() { tr '\n\001-\037\177-\377' '                                  ' | tr -s ' ' | sed 's/ *$//' | cut -c1-300; }

qt_check_pass() { _n=$1; shift; echo "ARMLET-QT-CHECK $_n PASS $(printf '%s' "$*" | qt_one_line)"; }
qt_check_fail() { _n=$1; shift; echo "ARMLET-QT-CHECK $_n FAIL $(printf '%s' "${*:-failed}" | qt_one_line)"; }

# qt_check NAME CMD...: PASS when CMD exits 0 (detail: its first output line),
# FAIL otherwise (why: exit code and output).
qt_check() {
    _n=$1; shift
    _out=$("$@" 2>&1); _rc=$?
    if [ $_rc -eq 0 ]; then qt_check_pass "$_n" "$(printf '%s\n' "$_out" | head -n1)"
    else qt_check_fail "$_n" "exit $_rc: $_out"; fi
    return $_rc
}

# qt_check_contains NAME FILE WORD: PASS when FILE's content contains WORD as a
# comma/space/newline separated item.
qt_check_contains() {
    _n=$1 _f=$2 _w=$3
    if [ ! -r "$_f" ]; then qt_check_fail "$_n" "$_f not readable"; return 1; fi
    _c=$(cat "$_f")
    case ",$(printf '%s' "$_c" | tr ' \n' ',,')," in
        *",$_w,"*) qt_check_pass "$_n" "$_w in $_f" ;;
        *) qt_check_fail "$_n" "$_w not in $_f ($_c)"; return 1 ;;
    esac
}
