#!/usr/bin/env bash
# Runs a command beside N busy processes (default 2, one per core of a 2-core machine), the load a shared CI runner or
# a laptop doing other work puts on a test suite; prints the command's exit status and wall time.
#   bash scripts/under-load.sh [-n N] -- pnpm test
set -u
hogs=2
if [ "${1:-}" = "-n" ]; then hogs=$2; shift 2; fi
[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || { echo "usage: scripts/under-load.sh [-n N] -- command..." >&2; exit 2; }
busy=()
for _ in $(seq 1 "$hogs"); do node -e 'for (;;) {}' & busy+=($!); done
trap 'kill "${busy[@]}" 2>/dev/null' EXIT
started=$(date +%s)
"$@"
status=$?
echo "under-load: exit $status after $(( $(date +%s) - started )) s beside $hogs busy processes"
exit $status
