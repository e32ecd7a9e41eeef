#!/bin/sh
# Build kvfs and run its tests.
#
#   tools/test.sh [ctest-args...]
#
# 1. A Debug build (ASan + UBSan) in build/: every test, ctest -j2.
# 2. A TSan build in build-tsan/: the tests labelled "concurrent" again, under
#    ThreadSanitizer (the project requires it for the concurrent parts).
# Extra arguments go to both ctest runs (e.g. -L unit, -R test_wal).
#
#   TSAN=1 tools/test.sh   only step 2
#   TSAN=0 tools/test.sh   only step 1
#   JOBS=N                 parallel build and test jobs (default 2)
#
# Works from any directory. Exits non-zero if a build or a test fails.
# Needs the packages of tools/install-deps.sh (run it as root once).
set -eu

cd "$(dirname "$0")/.."
tools/install-deps.sh

jobs=${JOBS:-2}
tsan=${TSAN:-both}
case $tsan in
0 | 1 | both) ;;
*)
	echo "test.sh: TSAN must be 0 or 1, not '$tsan'" >&2
	exit 2
	;;
esac

# Stack traces for UBSan; TSan reports fail the test (exit code 66).
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-second_deadlock_stack=1}"

# build DIR TYPE: configure (warnings and errors only) and build everything.
build() {
	echo "== test.sh: $2 build in $1/"
	if ! cmake -S . -B "$1" -DCMAKE_BUILD_TYPE="$2" --log-level=WARNING >/dev/null ||
		! make -C "$1" -j"$jobs" --no-print-directory; then
		echo "== test.sh: FAILED: the $2 build in $1/ does not build" >&2
		exit 1
	fi
}

status=0

if [ "$tsan" != 1 ]; then
	build build Debug
	echo "== test.sh: all tests (Debug: ASan + UBSan)"
	(cd build && ctest --output-on-failure -j"$jobs" "$@") || status=1
fi

if [ "$tsan" != 0 ]; then
	build build-tsan TSan
	echo "== test.sh: tests labelled 'concurrent' (TSan)"
	(cd build-tsan && ctest --output-on-failure -j"$jobs" -L concurrent "$@") || status=1
fi

if [ $status -ne 0 ]; then
	echo "== test.sh: FAILED" >&2
else
	echo "== test.sh: all passed"
fi
exit $status
