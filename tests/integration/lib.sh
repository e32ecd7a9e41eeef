# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# lib.sh - sourced by every integration test (bash). Mounts real kvfs
# stores with the real daemon and guarantees that a test leaves nothing
# behind: whatever happens (a failed check, a failed command, a signal, the
# watchdog), the EXIT trap unmounts every mount under the test's temp dir,
# stops every daemon the test started (politely, then by force, each by its
# own PID) and removes the temp dir.
#
# Environment (set by tests/integration/CMakeLists.txt):
#   KVFS          the daemon (build/fs/kvfs)
#   MKFS          mkfs.kvfs
#   ITEST_HELPER  tests/integration/itest_helper
#   SRCDIR        the source tree (something real to copy)
# Optional:
#   ITEST_DURABILITY  batch|sync: every kvfs_mount adds -o durability=...
#   ITEST_OPTS        more -o options for every kvfs_mount (comma-separated)
#   ITEST_TIMEOUT     seconds before the watchdog aborts the test (unmounts,
#                     stops the daemons) so that ctest's own, harsher
#                     timeout never leaves a stale mount; default 600
#   ITEST_KEEP=1      keep the temp dir (stores and daemon logs) for a post
#                     mortem
#   TMPDIR            where the temp dir goes
#
# Exit status: 0 all checks passed, 1 a check or a command failed, 77 skip
# (no /dev/fuse, no fusermount3).
#
# Conventions: scripts run under set -eu -o pipefail; a command that must
# succeed is just run (a failure aborts the test through the ERR trap, which
# names the line); checks that should report and go on use check/fail.

set -eu -o pipefail
set -E

ITEST_NAME=$(basename "$0" .sh)
ITEST_FAILURES=0
ITEST_WATCHDOG=
T=
declare -A ITEST_PID=() # mountpoint -> PID of its daemon (started with -f)
declare -A ITEST_LOG=() # mountpoint -> the daemon's stdout + stderr
ITEST_NLOG=0

say() { echo "== $ITEST_NAME: $*"; }
fail() {
	echo "FAIL: $ITEST_NAME: $*" >&2
	ITEST_FAILURES=$((ITEST_FAILURES + 1))
}
die() {
	echo "FAIL: $ITEST_NAME: $*" >&2
	exit 1
}
skip() {
	echo "SKIP: $ITEST_NAME: $*"
	exit 77
}

# check_eq ACTUAL EXPECTED WHAT
check_eq() {
	[ "$1" = "$2" ] || fail "$3: got '$1', expected '$2'"
}

# check_range VALUE LOW HIGH WHAT: LOW <= VALUE <= HIGH.
check_range() {
	if [ "$1" -lt "$2" ] || [ "$1" -gt "$3" ]; then
		fail "$4: $1, expected $2 to $3"
	fi
}

# check WHAT CMD...: CMD must succeed.
check() {
	local what=$1
	shift
	"$@" || fail "$what: '$*' failed (exit $?)"
}

# ---- mounts and daemons ---------------------------------------------------

# The mountinfo line of MNT (canonical path), if mounted.
itest_mountinfo() {
	awk -v m="$1" '$5 == m' /proc/self/mountinfo
}
is_mounted() {
	[ -n "$(itest_mountinfo "$1")" ]
}
# The filesystem type of the mount at MNT ("fuse.kvfs").
fstype_of() {
	itest_mountinfo "$1" |
		awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { print $(i + 1); exit } }'
}
# Every mountpoint at or under DIR, deepest first.
mounts_under() {
	awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
		sort -r
}

# PIDs of kvfs processes whose command line names something under $T: the
# daemons of this test, however they were started (-f, mount.fuse3, a
# failed start that forked anyway).
itest_daemons() {
	local p exe
	for p in /proc/[0-9]*; do
		exe=$(readlink "$p/exe" 2>/dev/null) || continue
		[ "$exe" = "$KVFS_REAL" ] || continue
		if tr '\0' '\n' <"$p/cmdline" 2>/dev/null | grep -qF "$T/"; then
			echo "${p#/proc/}"
		fi
	done
}

# wait_gone PID SECONDS: poll until PID has exited (0) or the cap (1).
wait_gone() {
	local i=0 n=$(($2 * 10))
	while kill -0 "$1" 2>/dev/null; do
		[ $i -lt $n ] || return 1
		sleep 0.1
		i=$((i + 1))
	done
}

# Is PID a zombie or gone? (kill -0 succeeds on our own unreaped children.)
itest_exited() {
	local st
	st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 0
	[ "$st" = Z ] || [ -z "$st" ]
}

# Poll until PID exits; SECONDS is a generous cap, not a timed assertion.
wait_exit() {
	local i=0 n=$(($2 * 10))
	until itest_exited "$1"; do
		[ $i -lt $n ] || return 1
		sleep 0.1
		i=$((i + 1))
	done
}

# Unmount MNT: plain, retried while busy (a process leaving it), then lazy.
itest_unmount() {
	local i
	for i in 1 2 3 4 5 6 7 8 9 10; do
		fusermount3 -u "$1" 2>/dev/null && return 0
		is_mounted "$1" || return 0
		sleep 0.3
	done
	fusermount3 -u "$1" || fusermount3 -uz "$1"
}

# Sanitizer reports in a daemon log fail the test.
check_log() {
	if grep -qE 'Sanitizer|runtime error:' "$1"; then
		fail "sanitizer report in $1:"
		sed 's/^/    /' "$1" | head -60 >&2
	fi
}

# kvfs_start STORE MNT [ARGS...]: start the daemon in the foreground (-f)
# as a background job and wait until MNT appears in the mount table. On
# success ITEST_PID[MNT] is the daemon; returns 1 (with the log shown) if
# the daemon exits before mounting.
kvfs_start() {
	local store=$1 mnt=$2 log pid i=0
	shift 2
	if [ -n "${ITEST_DURABILITY:-}" ]; then
		set -- -o "durability=$ITEST_DURABILITY" "$@"
	fi
	if [ -n "${ITEST_OPTS:-}" ]; then
		set -- -o "$ITEST_OPTS" "$@"
	fi
	ITEST_NLOG=$((ITEST_NLOG + 1))
	log=$T/kvfs.$ITEST_NLOG.log
	"$KVFS" "$store" "$mnt" -f "$@" >"$log" 2>&1 </dev/null &
	pid=$!
	ITEST_PID[$mnt]=$pid
	ITEST_LOG[$mnt]=$log
	# Readiness: a generous cap that only turns a hang into a message.
	until is_mounted "$mnt"; do
		if itest_exited "$pid"; then
			local rc=0
			wait "$pid" || rc=$?
			unset "ITEST_PID[$mnt]"
			echo "kvfs $store $mnt $*: exited $rc before mounting:" >&2
			sed 's/^/    /' "$log" | head -40 >&2
			return 1
		fi
		[ $i -lt 1200 ] || die "kvfs $store $mnt: not mounted after 120 s"
		sleep 0.1
		i=$((i + 1))
	done
}

# kvfs_mount STORE MNT [ARGS...]: kvfs_start that must succeed.
kvfs_mount() {
	kvfs_start "$@" || die "cannot mount $1 at $2"
}

# kvfs_umount MNT: unmount with fusermount3 -u; the daemon must then exit
# with status 0 and a clean log.
kvfs_umount() {
	local mnt=$1 pid=${ITEST_PID[$1]:-} rc=0
	itest_unmount "$mnt"
	is_mounted "$mnt" && fail "$mnt still mounted after fusermount3 -u"
	[ -n "$pid" ] || return 0
	wait_exit "$pid" 120 || die "the daemon of $mnt (pid $pid) did not exit after unmount"
	wait "$pid" || rc=$?
	unset "ITEST_PID[$mnt]"
	[ $rc -eq 0 ] || fail "the daemon of $mnt exited $rc after unmount"
	check_log "${ITEST_LOG[$mnt]}"
	return 0
}

# kvfs_fsck STORE: with $FSCK set, fsck.kvfs -n must find the unmounted
# store clean: every workload leaves the filesystem's invariants intact.
kvfs_fsck() {
	[ -n "${FSCK:-}" ] || return 0
	"$FSCK" -n "$1" >"$T/fsck.out" 2>&1 || {
		sed 's/^/    /' "$T/fsck.out" >&2
		fail "fsck.kvfs -n $1 does not find the store clean"
	}
}

# kvfs_remount STORE MNT [ARGS...]: unmount, fsck -n, mount again.
kvfs_remount() {
	kvfs_umount "$2"
	kvfs_fsck "$1"
	kvfs_mount "$@"
}

# ---- runs of programs that must fail --------------------------------------

# expect_fail WHAT CMD...: CMD must exit non-zero (not by a signal, not by
# a sanitizer report, not by hanging); its output is in $T/out and $T/err.
expect_fail() {
	local what=$1 rc=0
	shift
	timeout -k 5 60 "$@" >"$T/out" 2>"$T/err" </dev/null || rc=$?
	if [ $rc -eq 0 ]; then
		fail "$what: '$*' succeeded"
	elif [ $rc -eq 124 ] || [ $rc -gt 128 ]; then
		fail "$what: '$*' hung or crashed (exit $rc)"
	fi
	if grep -qE 'Sanitizer|runtime error:' "$T/err"; then
		fail "$what: '$*': sanitizer report"
	fi
	if [ $rc -eq 0 ] || [ $rc -eq 124 ] || [ $rc -gt 128 ]; then
		sed 's/^/    err: /' "$T/err" | head -20 >&2
	fi
	return 0
}

# says WHAT TEXT: the last expect_fail's stderr names TEXT (fixed string).
says() {
	if ! grep -qF -e "$2" "$T/err"; then
		fail "$1: the message does not name '$2'"
		sed 's/^/    err: /' "$T/err" | head -10 >&2
	fi
}

# ---- setup and teardown -----------------------------------------------------

itest_cleanup() {
	local rc=$? mnt pid left
	set +eu
	trap - ERR
	cd /
	if [ -n "$ITEST_WATCHDOG" ]; then
		kill "$ITEST_WATCHDOG" 2>/dev/null
		wait "$ITEST_WATCHDOG" 2>/dev/null
	fi
	if [ -n "$T" ]; then
		for mnt in $(mounts_under "$T"); do
			echo "cleanup: unmounting $mnt" >&2
			itest_unmount "$mnt"
		done
		# The daemons of -f mounts, then any other (mount.fuse3's).
		for pid in "${ITEST_PID[@]}" $(itest_daemons); do
			wait_exit "$pid" 30 || kill -TERM "$pid" 2>/dev/null
			wait_exit "$pid" 10 || kill -KILL "$pid" 2>/dev/null
			wait_exit "$pid" 10
			wait "$pid" 2>/dev/null
		done
		for mnt in "${!ITEST_LOG[@]}"; do
			[ $rc -eq 0 ] && [ $ITEST_FAILURES -eq 0 ] && continue
			[ -s "${ITEST_LOG[$mnt]}" ] || continue
			echo "---- daemon log of $mnt (${ITEST_LOG[$mnt]}):" >&2
			tail -n 30 "${ITEST_LOG[$mnt]}" >&2
		done
		left=$(mounts_under "$T")
		if [ -n "$left" ]; then
			echo "FAIL: $ITEST_NAME: still mounted, not removing $T: $left" >&2
			rc=1
		elif [ "${ITEST_KEEP:-0}" = 1 ]; then
			echo "kept $T" >&2
		else
			rm -rf "$T"
		fi
	fi
	if [ $rc -eq 0 ] && [ $ITEST_FAILURES -gt 0 ]; then
		rc=1
	fi
	if [ $rc -eq 0 ]; then
		echo "== $ITEST_NAME: passed"
	elif [ $rc -ne 77 ]; then
		echo "== $ITEST_NAME: FAILED ($ITEST_FAILURES failed checks, exit $rc)" >&2
	fi
	exit $rc
}

# The watchdog: shortly before ctest's timeout (which kills with SIGKILL and
# would leave a stale mount), detach every mount under $T and stop the
# daemons, so that whatever the test is blocked in fails and the EXIT trap
# runs.
itest_watchdog() {
	local secs=${ITEST_TIMEOUT:-600} main=$$
	(
		trap - EXIT ERR INT
		trap 'kill "$spid" 2>/dev/null; exit 0' TERM
		sleep "$secs" >/dev/null 2>&1 &
		spid=$!
		wait "$spid"
		echo "FAIL: $ITEST_NAME: watchdog: still running after $secs s; aborting" >&2
		for m in $(mounts_under "$T"); do
			fusermount3 -uz "$m"
		done
		for p in $(itest_daemons); do
			kill -TERM "$p" 2>/dev/null
		done
		kill -TERM "$main" 2>/dev/null
	) &
	ITEST_WATCHDOG=$!
}

# itest_init: check the environment, make the temp dir $T, set the traps.
# As root, the test first re-executes itself in a private mount namespace:
# its mounts are invisible to the rest of the machine, and even a test killed
# with SIGKILL (daemons and all) leaves no mount behind, because the kernel
# tears the namespace down with its last process.
itest_init() {
	local v
	if [ -z "${ITEST_IN_NS:-}" ] && [ "$(id -u)" -eq 0 ] &&
		unshare -m --propagation private true 2>/dev/null; then
		ITEST_IN_NS=1 exec unshare -m --propagation private "$BASH" "$0"
	fi
	for v in KVFS MKFS ITEST_HELPER; do
		[ -n "${!v:-}" ] || die "\$$v is not set (run through ctest)"
		[ -x "${!v}" ] || die "\$$v: ${!v} is not an executable"
	done
	[ -c /dev/fuse ] || skip "no /dev/fuse"
	command -v fusermount3 >/dev/null || skip "no fusermount3 (install fuse3)"
	KVFS_REAL=$(readlink -f "$KVFS")
	umask 022
	trap itest_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'echo "FAIL: $ITEST_NAME: line $LINENO: command failed: $BASH_COMMAND" >&2' ERR
	T=$(mktemp -d "${TMPDIR:-/tmp}/kvfs-$ITEST_NAME.XXXXXX")
	T=$(cd "$T" && pwd -P) # mountinfo shows canonical paths
	itest_watchdog
	# Sanitizer reports of the daemon go to its log; make them fatal there.
	export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
}

# new_store NAME [MKFS ARGS...]: mkfs a store at $T/NAME (path in $STORE).
new_store() {
	STORE=$T/$1
	shift
	"$MKFS" "$STORE" "$@" >"$T/mkfs.out" 2>&1 || {
		sed 's/^/    /' "$T/mkfs.out" >&2
		die "mkfs.kvfs $STORE $* failed"
	}
}

# A listing that must survive a remount: type, mode, links, owner, size,
# mtime (ns) and inode number of every name under DIR, plus the checksum of
# every regular file up to 64 MiB (reading GiBs of holes through FUSE takes
# a minute under ASan: tests check big sparse files by regions).
fingerprint() {
	(
		cd "$1"
		find . -printf '%p %y %m %n %U:%G %s %T@ %i\n' | LC_ALL=C sort
		find . -type f -size -65537k -print0 | LC_ALL=C sort -z | xargs -0r sha256sum
	)
}
