#!/bin/bash
# SPDX-License-Identifier: MIT
#
# test_crash.sh - crash safety at the filesystem level. Round after round on
# one store: mount, run crashload (threads creating, writing, appending,
# truncating, renaming across directories, exchanging, unlinking, making and
# removing directories, fsyncing files and directories, with a journal of
# what was issued and acknowledged, kept outside the mount), crash the
# daemon at a seeded random moment, detach the dead mount, fsck.kvfs -n the
# store, remount, and let crashload check that the tree is a state the
# journal allows (every durable operation there, exact contents, renames
# atomic; see crashload.c), then walk and read the whole tree.
#
# Two kinds of crash, CRASH_ROUNDS rounds each (default 12; 60 with
# KV_TEST_LONG=1):
#   kill      SIGKILL: the daemon's memory is lost (in batch mode the log
#             buffer too), what it wrote to its files is not;
#   powercut  the daemon runs with the test hook KVFS_TEST_POWERCUT (see
#             fs/main.c) and SIGUSR2 makes it cut the power: its store's
#             files go back to their durable state (every other round with
#             torn sectors) and it exits at once.
# ITEST_DURABILITY (batch or sync) is the mount's durability mode; in sync
# mode every operation that returned before the crash must be there.
#
# Reproduce a round: the failure names its seed; run
#   CRASH_SEED=SEED CRASH_ROUNDS=1 CRASH_KINDS=KIND ctest -R NAME
# (the workload's operations follow from the seed; the moment of the crash
# and the interleaving of threads are timing, so a rerun is close, not
# identical). CRASH_THREADS sets the workload's threads (default 3, in two
# processes).

. "$(dirname "$0")/lib.sh"
itest_init

# The workload and the background rm of a round die with the test, however
# it ends (then lib.sh's cleanup unmounts and stops the daemons).
BG_PIDS=()
crash_cleanup() {
	local rc=$? p
	for p in "${BG_PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null
	done
	(exit $rc)
	itest_cleanup
}
trap crash_cleanup EXIT

if [ -z "${CRASHLOAD:-}" ] || [ ! -x "$CRASHLOAD" ]; then
	die "\$CRASHLOAD is not set (run through ctest)"
fi
MODE=${ITEST_DURABILITY:-batch}
if [ "${KV_TEST_LONG:-0}" = 1 ]; then
	ROUNDS=${CRASH_ROUNDS:-60}
else
	ROUNDS=${CRASH_ROUNDS:-12}
fi
KINDS=${CRASH_KINDS:-kill powercut}
THREADS=${CRASH_THREADS:-3}
BASE_SEED=${CRASH_SEED:-$(($(date +%s%N) % 1000000000))}
say "durability=$MODE, $ROUNDS rounds of: $KINDS; seed $BASE_SEED (CRASH_SEED)"

new_store store
MNT=$T/mnt
mkdir "$MNT"
RUNS=0
ORPHAN_ROUNDS=0

# The daemon of the current mount.
daemon_pid() { echo "${ITEST_PID[$MNT]}"; }

# round KIND SEED N: one crash round; ROUND_FAILED=1 after a failed check.
# (Not called in an "||" list: that would turn off set -e inside it.)
round() {
	local kind=$1 seed=$2 n=$3 dpid lpid rc delay hook='' rm_pid=''
	local logs=$T/logs.$n root=$MNT/r$n fails=$ITEST_FAILURES
	RANDOM=$((seed % 32768))
	mkdir -p "$logs"
	rm -f "$T/ready" "$T/crashed"
	if [ "$kind" = powercut ]; then
		hook=1
		[ $((seed % 2)) = 0 ] || hook=torn:$seed
	fi
	# The hook reaches the daemon through the environment kvfs_start gives it.
	if [ -n "$hook" ]; then
		export KVFS_TEST_POWERCUT=$hook
	fi
	kvfs_mount "$STORE" "$MNT"
	unset KVFS_TEST_POWERCUT
	dpid=$(daemon_pid)
	# Older rounds' trees go away while the workload runs: more unlinks and
	# reclaims in flight at the crash (not checked, but fsck sees them).
	if [ -d "$MNT/r$((n - 2))" ]; then
		rm -rf "$MNT/r$((n - 2))" 2>/dev/null &
		rm_pid=$!
		BG_PIDS+=("$rm_pid")
	fi
	"$CRASHLOAD" run "$root" "$logs" "$seed" "$THREADS" "$T/ready" "$T/crashed" >"$logs/run.out" 2>&1 &
	lpid=$!
	BG_PIDS+=("$lpid")
	local i=0
	until [ -e "$T/ready" ]; do
		if itest_exited "$lpid"; then
			wait "$lpid" || true
			sed 's/^/    /' "$logs/run.out" >&2
			fail "seed $seed: the workload stopped before it was ready"
			break
		fi
		[ $i -lt 600 ] || die "seed $seed: the workload not ready after 60 s"
		sleep 0.1
		i=$((i + 1))
	done
	# The crash: 50 ms to 1.5 s into the workload.
	delay=$((50 + RANDOM % 1450))
	sleep "$((delay / 1000)).$(printf %03d $((delay % 1000)))"
	if itest_exited "$lpid"; then
		fail "seed $seed: the workload ended before the crash:"
		sed 's/^/    /' "$logs/run.out" >&2
	fi
	: >"$T/crashed" # a workload op failing from now on is the crash's doing
	rc=0
	{ # (stderr: not bash's "Killed" message about its job)
		if [ "$kind" = kill ]; then
			kill -KILL "$dpid"
		else
			kill -USR2 "$dpid"
		fi
		wait_exit "$dpid" 60 || die "seed $seed: the daemon (pid $dpid) did not die"
		wait "$dpid" || rc=$?
	} 2>/dev/null
	unset "ITEST_PID[$MNT]"
	if [ "$kind" = kill ]; then
		check_eq "$rc" 137 "seed $seed: exit status of the SIGKILLed daemon"
	else
		check_eq "$rc" 9 "seed $seed: exit status of the daemon after its power cut"
	fi
	check_log "${ITEST_LOG[$MNT]}"
	# The workload's threads see the dead connection and stop.
	wait_exit "$lpid" 60 || {
		fail "seed $seed: the workload still runs 60 s after the crash"
		kill -KILL "$lpid"
	}
	wait "$lpid" || fail "seed $seed: crashload run exited $?: $(tail -3 "$logs/run.out")"
	if [ -n "$rm_pid" ]; then
		wait "$rm_pid" || true
	fi
	itest_unmount "$MNT"
	is_mounted "$MNT" && die "seed $seed: the dead mount $MNT is still mounted"
	# Inodes unlinked while open are left on the orphan list: fsck.kvfs -n
	# notes them (the next mount reclaims them) and must still exit 0.
	if [ -n "${FSCK:-}" ]; then
		if ! "$FSCK" -n "$STORE" >"$logs/fsck.out" 2>&1; then
			sed 's/^/    /' "$logs/fsck.out" >&2
			fail "seed $seed: fsck.kvfs -n does not find the crashed store clean"
		fi
		if grep -q 'unlinked while open' "$logs/fsck.out"; then
			ORPHAN_ROUNDS=$((ORPHAN_ROUNDS + 1))
		fi
	fi
	kvfs_mount "$STORE" "$MNT"
	if ! "$CRASHLOAD" check "$root" "$logs" "$MODE" "$kind" >"$logs/check.out" 2>&1; then
		sed 's/^/    /' "$logs/check.out" >&2
		fail "seed $seed: the tree after the crash is not one the journal allows"
	fi
	# Everything can be listed, stat'ed and read.
	if ! find "$MNT" -xdev -printf '%p %y %s %n\n' >"$logs/walk.out" 2>"$logs/walk.err" ||
		[ -s "$logs/walk.err" ]; then
		sed 's/^/    /' "$logs/walk.err" >&2
		fail "seed $seed: walking the tree after the crash failed"
	fi
	if ! find "$MNT" -xdev -type f -exec cat {} + >/dev/null 2>"$logs/read.err"; then
		sed 's/^/    /' "$logs/read.err" >&2
		fail "seed $seed: reading the files after the crash failed"
	fi
	kvfs_umount "$MNT"
	BG_PIDS=()
	RUNS=$((RUNS + 1))
	if [ "$ITEST_FAILURES" -gt "$fails" ]; then
		echo "FAIL: $ITEST_NAME: round $n ($kind): rerun with" \
			"CRASH_SEED=$seed CRASH_ROUNDS=1 CRASH_KINDS=$kind ctest -R itest_crash_$MODE" >&2
		sed 's/^/    run: /' "$logs/run.out" >&2
		ROUND_FAILED=1
		return 0
	fi
	sed 's/^/    /' "$logs/check.out"
}

n=0
for kind in $KINDS; do
	for r in $(seq 0 $((ROUNDS - 1))); do
		seed=$((BASE_SEED + r))
		say "round $n: $kind, seed $seed"
		ROUND_FAILED=0
		round "$kind" "$seed" "$n"
		[ $ROUND_FAILED = 0 ] || break 2
		n=$((n + 1))
	done
done

# The verifier itself: one changed byte in the last round's tree must be
# caught (a check that cannot fail proves nothing).
if [ "$ITEST_FAILURES" = 0 ] && [ "$RUNS" -gt 0 ]; then
	last=$((n - 1))
	kvfs_mount "$STORE" "$MNT"
	victim=$(find "$MNT/r$last" -type f -size +0 | LC_ALL=C sort | head -1)
	if [ -n "$victim" ]; then
		b=$(od -An -tu1 -N1 "$victim" | tr -d ' ')
		printf '%b' "\\$(printf %03o $(((b + 1) % 256)))" |
			dd of="$victim" bs=1 count=1 conv=notrunc status=none
		if "$CRASHLOAD" check "$MNT/r$last" "$T/logs.$last" "$MODE" kill >"$T/control.out" 2>&1; then
			fail "crashload check did not notice a changed byte in $victim"
		else
			check "the report names the changed file" grep -qF "${victim#"$MNT"/r"$last"/}" "$T/control.out"
			say "control: the changed byte in ${victim#"$MNT"/} was caught"
		fi
	fi
	kvfs_umount "$MNT"
fi
kvfs_fsck "$STORE"
say "$RUNS crash rounds ($ORPHAN_ROUNDS left orphans for the next mount to reclaim)"
