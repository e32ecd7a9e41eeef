#!/bin/bash
# SPDX-License-Identifier: MIT
#
# test_badinput.sh - every error path of mkfs.kvfs and kvfs: each run must
# exit non-zero (not crash, not hang), print a message naming the path or
# the option at fault, change nothing, mount nothing and leave no daemon.
. "$(dirname "$0")/lib.sh"
itest_init

# What a directory holds, to prove a failed command changed nothing.
snapshot() { (cd "$1" && ls -lAR --time-style=+%s.%N . && find . -type f -exec md5sum {} +); }

# nothing_left WHAT: no mount and no kvfs daemon of this test exist besides
# the ones kvfs_mount made (those have an entry in ITEST_PID).
nothing_left() {
	local p m
	for m in $(mounts_under "$T"); do
		[ -z "${ITEST_PID[$m]:-}" ] || continue
		fail "$1: $m got mounted"
		itest_unmount "$m"
	done
	for p in $(itest_daemons); do
		case " ${ITEST_PID[*]} " in *" $p "*) continue ;; esac
		# A child that is on its way out is not left running.
		wait_gone "$p" 5 && continue
		fail "$1: a kvfs process was left running: $(tr '\0' ' ' <"/proc/$p/cmdline")"
		kill -TERM "$p"
	done
}

# mountable STORE WHAT: STORE still mounts (a failed run released it).
mountable() {
	mkdir -p "$T/probe"
	if kvfs_start "$1" "$T/probe"; then
		[ -d "$T/probe/lost+found" ] || fail "$2: $1 mounts but has no lost+found"
		kvfs_umount "$T/probe"
	else
		fail "$2: $1 no longer mounts"
	fi
}

# ---- mkfs.kvfs ----------------------------------------------------------
say "mkfs.kvfs: missing arguments, unknown option"
expect_fail "mkfs no args" "$MKFS"
says "mkfs no args" STORE
expect_fail "mkfs unknown option" "$MKFS" "$T/s-opt" -Z
[ ! -e "$T/s-opt" ] || fail "mkfs with an unknown option created $T/s-opt"
expect_fail "mkfs two stores" "$MKFS" "$T/s-a" "$T/s-b"
if [ -e "$T/s-a" ] || [ -e "$T/s-b" ]; then fail "mkfs with two stores created one"; fi

for prog in "$MKFS" "$KVFS"; do
	"$prog" --help >"$T/out" 2>&1 || fail "$prog --help: exit $?"
	grep -q STORE "$T/out" || fail "$prog --help says nothing about STORE"
done

say "mkfs.kvfs: an existing store without -f"
new_store s1 -L first
grep -qF "$STORE" "$T/mkfs.out" || fail "mkfs does not say what it made: $(cat "$T/mkfs.out")"
snapshot "$STORE" >"$T/before"
expect_fail "mkfs existing store" "$MKFS" "$STORE"
says "mkfs existing store" "$STORE"
grep -q -e "-f" "$T/err" || fail "mkfs existing store: the message does not mention -f"
snapshot "$STORE" >"$T/after"
if ! cmp -s "$T/before" "$T/after"; then
	fail "mkfs without -f changed the existing store:"
	diff "$T/before" "$T/after" | head -20 >&2 || true
fi
# The store is intact and -f really replaces it.
mkdir "$T/m1"
kvfs_mount "$STORE" "$T/m1"
echo old >"$T/m1/old"
kvfs_umount "$T/m1"
"$MKFS" "$STORE" -f >/dev/null 2>&1 || fail "mkfs -f over an existing store failed"
kvfs_mount "$STORE" "$T/m1"
[ ! -e "$T/m1/old" ] || fail "mkfs -f kept the old filesystem's files"
check_eq "$(ls -A "$T/m1")" "lost+found" "root of a store remade with -f"
kvfs_umount "$T/m1"

say "mkfs.kvfs: a non-empty directory without -f"
mkdir "$T/junk"
echo precious >"$T/junk/file"
expect_fail "mkfs non-empty dir" "$MKFS" "$T/junk"
says "mkfs non-empty dir" "$T/junk"
check_eq "$(cat "$T/junk/file")" precious "a file in a dir mkfs refused"
check_eq "$(ls -A "$T/junk")" file "a dir mkfs refused"
"$MKFS" "$T/junk" -f >/dev/null 2>&1 || fail "mkfs -f of a non-empty dir failed"
[ ! -e "$T/junk/file" ] || fail "mkfs -f left the old file"
mountable "$T/junk" "mkfs -f of a non-empty dir"

say "mkfs.kvfs: bad block sizes"
for bs in 512 1000 3000 131072 0x1000 abc -4096 ""; do
	expect_fail "mkfs -b '$bs'" "$MKFS" "$T/s-bs" -b "$bs"
	[ ! -e "$T/s-bs" ] || [ -z "$(ls -A "$T/s-bs")" ] ||
		fail "mkfs -b '$bs' left a store behind"
	rm -rf "$T/s-bs"
done
expect_fail "mkfs -b 3000" "$MKFS" "$T/s-bs" -b 3000
says "mkfs -b 3000" 3000
expect_fail "mkfs -b without a value" "$MKFS" "$T/s-bs" -b
for bs in 1024 65536; do
	new_store "s-bs$bs" -b $bs
	mountable "$STORE" "mkfs -b $bs"
done

say "mkfs.kvfs: labels"
long=$(printf 'L%.0s' $(seq 64))
expect_fail "mkfs 64-byte label" "$MKFS" "$T/s-label" -L "$long"
says "mkfs 64-byte label" label
[ ! -e "$T/s-label" ] || [ -z "$(ls -A "$T/s-label")" ] || fail "mkfs -L (too long) left a store"
new_store s-label63 -L "${long:1}"
mountable "$STORE" "mkfs -L (63 bytes)"

say "mkfs.kvfs: a file, a missing parent"
echo data >"$T/afile"
expect_fail "mkfs on a file" "$MKFS" "$T/afile"
says "mkfs on a file" "$T/afile"
check_eq "$(cat "$T/afile")" data "a file mkfs refused"
expect_fail "mkfs -f on a file" "$MKFS" "$T/afile" -f
check_eq "$(cat "$T/afile")" data "a file mkfs -f refused"
expect_fail "mkfs under a file" "$MKFS" "$T/afile/store"
says "mkfs under a file" "$T/afile/store"
expect_fail "mkfs missing parent" "$MKFS" "$T/no/such/dir"
says "mkfs missing parent" "$T/no/such/dir"

say "mkfs.kvfs: a mounted store, even with -f"
new_store s-busy
mkdir "$T/m-busy"
kvfs_mount "$STORE" "$T/m-busy"
echo alive >"$T/m-busy/f"
expect_fail "mkfs -f on a mounted store" "$MKFS" "$STORE" -f
says "mkfs -f on a mounted store" "$STORE"
check_eq "$(cat "$T/m-busy/f")" alive "the mounted store after mkfs -f was refused"
kvfs_umount "$T/m-busy"
kvfs_mount "$STORE" "$T/m-busy"
check_eq "$(cat "$T/m-busy/f" 2>&1)" alive "the store after mkfs -f was refused, remounted"
kvfs_umount "$T/m-busy"

# ---- kvfs ---------------------------------------------------------------
new_store good
GOOD=$STORE
mkdir -p "$T/mnt"

# kvfs_fails WHAT TEXT ARGS...: kvfs ARGS fails naming TEXT, mounts nothing
# and leaves no process, both in the foreground (-f) and as a daemon.
kvfs_fails() {
	local what=$1 text=$2
	shift 2
	expect_fail "$what (-f)" "$KVFS" "$@" -f
	says "$what (-f)" "$text"
	nothing_left "$what (-f)"
	expect_fail "$what" "$KVFS" "$@"
	says "$what" "$text"
	nothing_left "$what"
}

say "kvfs: missing arguments, unknown options"
expect_fail "kvfs no args" "$KVFS"
says "kvfs no args" STORE
expect_fail "kvfs one arg" "$KVFS" "$GOOD"
says "kvfs one arg" MOUNTPOINT
nothing_left "kvfs one arg"
expect_fail "kvfs three args" "$KVFS" "$GOOD" "$T/mnt" "$T/extra"
nothing_left "kvfs three args"
kvfs_fails "kvfs unknown -o" no_such_option "$GOOD" "$T/mnt" -o no_such_option
kvfs_fails "kvfs durability=foo" durability "$GOOD" "$T/mnt" -o durability=foo
says "kvfs durability=foo" foo
kvfs_fails "kvfs block_cache=abc" block_cache "$GOOD" "$T/mnt" -o block_cache=abc
kvfs_fails "kvfs log_buffer=-1" log_buffer "$GOOD" "$T/mnt" -o log_buffer=-1
mountable "$GOOD" "after bad options"

say "kvfs: missing store, not a store, not a kvfs store"
kvfs_fails "kvfs missing store" "$T/nostore" "$T/nostore" "$T/mnt"
[ ! -e "$T/nostore" ] || fail "kvfs created the missing store $T/nostore"
kvfs_fails "kvfs store is a file" "$T/afile" "$T/afile" "$T/mnt"
mkdir "$T/random"
head -c 10000 /dev/urandom >"$T/random/data.bin"
echo hello >"$T/random/CURRENT"
snapshot "$T/random" >"$T/before"
kvfs_fails "kvfs random dir" "$T/random" "$T/random" "$T/mnt"
snapshot "$T/random" >"$T/after"
cmp -s "$T/before" "$T/after" || fail "kvfs changed a directory that is not a store"
mkdir "$T/empty"
kvfs_fails "kvfs empty dir" "$T/empty" "$T/empty" "$T/mnt"
check_eq "$(ls -A "$T/empty")" "" "an empty dir kvfs refused"
"$ITEST_HELPER" kvstore "$T/plainkv"
kvfs_fails "kvfs plain libkv store" "$T/plainkv" "$T/plainkv" "$T/mnt"

say "kvfs: newer format, unknown feature, corrupt superblock"
for how in newer features short; do
	new_store "s-$how"
	"$ITEST_HELPER" super "$STORE" $how
	kvfs_fails "kvfs superblock $how" "$STORE" "$STORE" "$T/mnt"
done

say "kvfs: missing or bad mountpoint"
kvfs_fails "kvfs missing mountpoint" "$T/nomnt" "$GOOD" "$T/nomnt"
kvfs_fails "kvfs mountpoint is a file" "$T/afile" "$GOOD" "$T/afile"
check_eq "$(cat "$T/afile")" data "a file used as a mountpoint"
mountable "$GOOD" "after a bad mountpoint"

say "kvfs: a store already mounted"
mkdir -p "$T/m2"
kvfs_mount "$GOOD" "$T/mnt"
echo first >"$T/mnt/f"
kvfs_fails "kvfs second mount" "$GOOD" "$GOOD" "$T/m2"
is_mounted "$T/mnt" || fail "the first mount went away after a second mount was refused"
check_eq "$(cat "$T/mnt/f")" first "the first mount after a second mount was refused"
echo more >>"$T/mnt/f"
check_eq "$(cat "$T/mnt/f")" "first
more" "writing through the first mount after a second was refused"
kvfs_umount "$T/mnt"
kvfs_mount "$GOOD" "$T/m2"
check_eq "$(cat "$T/m2/f")" "first
more" "the store remounted elsewhere"
kvfs_umount "$T/m2"
