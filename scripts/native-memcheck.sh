#!/usr/bin/env bash
# Memory-safety run for the native addon.
#
# Runs scripts/native-exercise.mjs (every binding entry point: error paths,
# hostile arguments, and the success paths against the software SEV platform,
# including 64 commands in flight at once) with
#   valgrind  - memcheck over a Debug (-O0 -g) cmake-js build of the addon
#   asan      - an AddressSanitizer + UBSan build (libasan preloaded into node)
# Builds go to a temp dir, so build/ (what everything else loads) is untouched.
#
#   scripts/native-memcheck.sh [valgrind|asan|all]     (default: all)
#
# Exit 0 only when every check passed and both tools report 0 errors.
# The simulator shim must be built (npm run build:gyp).
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-all}"
case "$mode" in valgrind|asan|all) ;; *) echo "usage: $0 [valgrind|asan|all]" >&2; exit 2 ;; esac

work="$(mktemp -d "${TMPDIR:-/tmp}/sevkit-memcheck.XXXXXX")"
trap 'rm -rf "$work"' EXIT
sevkit() { node --import tsx lib/cli/sevkit.ts "$@"; }
rounds="${SEVKIT_EXERCISE_ROUNDS:-2}"
status=0

if [ "$mode" = valgrind ] || [ "$mode" = all ]; then
  command -v valgrind >/dev/null || { echo "native-memcheck: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
  echo "== valgrind memcheck (Debug build)"
  npx cmake-js compile -D --out "$work/build-debug" >"$work/build-debug.log" 2>&1 || { cat "$work/build-debug.log" >&2; exit 1; }
  addon="$work/build-debug/Debug/sevkit.node"
  # No --expose-gc here: V8's forced GC scans stacks conservatively and trips
  # memcheck inside node itself; the ASan run below does force GCs.
  set +e
  SEVKIT_EXERCISE_ROUNDS="$rounds" sevkit sim --quiet --state "$work/sim-valgrind" -- \
    valgrind --tool=memcheck --error-exitcode=99 --leak-check=no --num-callers=40 \
    node scripts/native-exercise.mjs "$addon" >"$work/valgrind.log" 2>&1
  rc=$?
  set -e
  grep -E 'native-exercise:|ERROR SUMMARY' "$work/valgrind.log" || true
  if [ $rc -ne 0 ]; then
    echo "native-memcheck: valgrind run failed (exit $rc)" >&2
    grep -B2 -A30 -m5 -E '^==[0-9]+== (Invalid|Conditional|Use of|Syscall param|Mismatched|Source and)' "$work/valgrind.log" >&2 || tail -40 "$work/valgrind.log" >&2
    status=1
  fi
  # The shim itself, from a plain C client: every ioctl path, bad pointers, dup'd and forked fds.
  if command -v cc >/dev/null; then
    cc -std=gnu11 -g -O0 -o "$work/devsev_client" test/native/devsev_client.c
    set +e
    sevkit sim --quiet --state "$work/sim-valgrind-c" -- \
      valgrind --tool=memcheck --error-exitcode=99 --num-callers=30 "$work/devsev_client" >"$work/valgrind-c.log" 2>&1
    rc=$?
    set -e
    grep -E 'checks, |ERROR SUMMARY' "$work/valgrind-c.log" | head -2 || true
    if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
      echo "native-memcheck: the C client under valgrind failed (exit $rc)" >&2
      tail -40 "$work/valgrind-c.log" >&2
      status=1
    fi
  fi
fi

if [ "$mode" = asan ] || [ "$mode" = all ]; then
  echo "== AddressSanitizer + UBSan"
  npx cmake-js compile --out "$work/build-asan" --CDSEVKIT_ASAN=ON >"$work/build-asan.log" 2>&1 || { cat "$work/build-asan.log" >&2; exit 1; }
  addon="$work/build-asan/Release/sevkit.node"
  libasan="$(g++ -print-file-name=libasan.so)"
  [ -f "$libasan" ] || { echo "native-memcheck: libasan not found ($libasan)" >&2; exit 1; }
  set +e
  # node itself is not instrumented: leak checking would only report node's own exit-time allocations.
  SEVKIT_EXERCISE_ROUNDS="$rounds" ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:exitcode=98:detect_stack_use_after_return=1" \
    UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
    sevkit sim --quiet --state "$work/sim-asan" -- \
    sh -c 'LD_PRELOAD="$0${LD_PRELOAD:+:$LD_PRELOAD}" exec node --expose-gc scripts/native-exercise.mjs "$1"' "$libasan" "$addon" \
    >"$work/asan.log" 2>&1
  rc=$?
  set -e
  grep -E 'native-exercise:' "$work/asan.log" || true
  if [ $rc -ne 0 ] || grep -qE 'ERROR: AddressSanitizer|runtime error:' "$work/asan.log"; then
    echo "native-memcheck: ASan/UBSan run failed (exit $rc)" >&2
    tail -60 "$work/asan.log" >&2
    status=1
  else
    echo "ASan/UBSan: 0 errors"
  fi
fi

exit $status
