#!/bin/bash
# SPDX-License-Identifier: MIT
#
# test_unlinked.sh - open but unlinked files. A program (this shell, through
# fd 3) holds a big file open; another process (rm) unlinks it; the holder
# still reads and writes it, and the space stays held until the close, then
# comes back in the background (bounded polls on du of the store and on df).
# Then the same with the daemon SIGKILLed while the file is open and
# unlinked: the next mount reclaims the orphan (the name is gone, the space
# comes back, fsck.kvfs -n finds the store clean).
#
# df on kvfs is the host's free space (less the WAL bytes not yet flushed),
# so other activity on the host moves it: the df checks poll for the change
# instead of comparing two readings, and allow a quarter of the file of
# noise. du of the store directory is exact.
. "$(dirname "$0")/lib.sh"
itest_init

N=$((256 << 20))
[ "${KV_TEST_LONG:-0}" != 0 ] && N=$((2048 << 20))

store_kib() { du -sk "$STORE" | cut -f1; }
avail_kib() { df --output=avail -k "$M" | tail -1 | tr -d ' '; }

# poll_until SECONDS WHAT CMD...: CMD must succeed before the cap.
poll_until() {
	local cap=$1 what=$2 i=0
	shift 2
	until "$@"; do
		[ $i -lt $((cap * 5)) ] || {
			fail "$what: not after $cap s"
			return 1
		}
		sleep 0.2
		i=$((i + 1))
	done
}
store_below() { [ "$(store_kib)" -le "$1" ]; }
avail_above() { [ "$(avail_kib)" -ge "$1" ]; }
# The engine keeps a spare WAL segment ready beside the active one, made in
# the background after a mount: a base taken while it is still being
# zero-filled would be short of one segment, which the later readings have.
# Ready: two segments or more, all of the same size and fully allocated.
wal_ready() {
	local f n=0 size=
	for f in "$STORE"/wal-*.log; do
		[ -e "$f" ] || return 1
		[ -z "$size" ] && size=$(stat -c %s "$f")
		[ "$(stat -c %s "$f")" = "$size" ] || return 1
		[ $(($(stat -c %b "$f") * $(stat -c %B "$f"))) -ge "$size" ] || return 1
		n=$((n + 1))
	done
	[ $n -ge 2 ]
}

new_store store
M=$T/mnt
mkdir "$M"
head -c "$N" /dev/urandom >"$T/src"

say "open, unlinked by another process: read, write, space held until close"
kvfs_mount "$STORE" "$M"
poll_until 120 "the store's WAL segments ready after the mount" wal_ready
base=$(store_kib)
cp "$T/src" "$M/big"
exec 3<>"$M/big"
rm "$M/big"
[ -e "$M/big" ] && fail "the name is still there after rm"
printf 'HELLO' >&3
check "the holder reads the rest after the unlink" \
	cmp <(cat <&3) <(tail -c +6 "$T/src")
check_eq "$(head -c 5 "/proc/$$/fd/3")" HELLO "the holder's write, read back"
check_eq "$(stat -L -c %h "/proc/$$/fd/3")" 0 "link count of the open unlinked file"
# Held: give the background a few of its rounds to prove it wrong.
sleep 3
held=$(store_kib)
check_range "$held" $((base + N / 1024 * 3 / 4)) $((1 << 40)) \
	"store KiB while the unlinked file is open"
before=$(avail_kib)
exec 3>&-
poll_until 300 "the store's space after the close" store_below $((base + N / 1024 / 8 + 8192))
poll_until 300 "df's free space after the close" avail_above $((before + N / 1024 / 2))
kvfs_umount "$M"
kvfs_fsck "$STORE"

say "SIGKILL while open and unlinked: the next mount reclaims the orphan"
kvfs_mount "$STORE" "$M"
poll_until 120 "the store's WAL segments ready after the mount" wal_ready
base=$(store_kib)
cp "$T/src" "$M/big2"
exec 3<"$M/big2"
rm "$M/big2"
check "the holder reads it after the unlink" cmp <(cat <&3) "$T/src"
pid=${ITEST_PID[$M]}
kill -KILL "$pid"
wait "$pid" || true
unset "ITEST_PID[$M]"
exec 3<&-
itest_unmount "$M"
held=$(store_kib)
check_range "$held" $((base + N / 1024 / 2)) $((1 << 40)) "store KiB after the crash"
kvfs_mount "$STORE" "$M"
[ -e "$M/big2" ] && fail "the unlinked name came back after the crash"
poll_until 300 "the store's space after the orphan's reclaim" \
	store_below $((base + N / 1024 / 8 + 8192))
kvfs_umount "$M"
kvfs_fsck "$STORE"
