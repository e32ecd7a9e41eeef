#!/bin/bash
# SPDX-License-Identifier: MIT
#
# test_extent.sh - fallocate, holes, copies and locks on a mounted kvfs with
# the real tools: fallocate -l / -n (--keep-size) / -p with st_blocks and du
# before and after, the SEEK_DATA/SEEK_HOLE map (itest_extent map),
# cp --reflink=never and cat compared with cmp, the map and cp of a file
# whose writer still holds data in the writeback cache (itest_extent dirty),
# copy_file_range done by the daemon (holes kept, so no byte went through
# the kernel), flock -n contention between two shells, POSIX locks between
# two processes and OFD locks (itest_extent), the error codes; then a
# remount keeps every map and size. ctest runs it
# with the default durability and again with ITEST_DURABILITY=sync.
. "$(dirname "$0")/lib.sh"
itest_init
export LC_ALL=C
[ -n "${ITEST_EXTENT:-}" ] && [ -x "$ITEST_EXTENT" ] || die "\$ITEST_EXTENT is not set (run through ctest)"
X=$ITEST_EXTENT

new_store store
M=$T/mnt
mkdir "$M"
kvfs_mount "$STORE" "$M"

blocks() { stat -c %b "$1"; }
size() { stat -c %s "$1"; }
# zero_ref FILE OFF LEN: zero bytes [OFF, OFF + LEN) of a local reference.
zero_ref() { dd if=/dev/zero of="$1" bs=1 seek="$2" count="$3" conv=notrunc status=none; }

say "fallocate -l: a new file of zeros, every block counted"
fallocate -l 1M "$M/a"
check_eq "$(stat -c '%s %b' "$M/a")" "1048576 2048" "size and st_blocks after fallocate -l 1M"
check_eq "$(du -k "$M/a" | cut -f1)" 1024 "du -k after fallocate -l 1M"
check "a fallocated file reads zeros" cmp -n 1048576 "$M/a" /dev/zero
fallocate -o 1M -l 10000 "$M/a"
check_eq "$(stat -c '%s %b' "$M/a")" "1058576 2072" "fallocate -o 1M -l 10000 grows it"
printf 'xyz' | dd of="$M/a" bs=1 seek=5000 conv=notrunc status=none
check_eq "$(blocks "$M/a")" 2072 "writing into allocated blocks allocates nothing more"
check_eq "$(dd if="$M/a" bs=1 skip=5000 count=3 status=none)" xyz "data written into them"

say "fallocate -n (--keep-size): the size does not change"
truncate -s 1M "$M/k"
check_eq "$(blocks "$M/k")" 0 "st_blocks of a 1 MiB hole"
fallocate -n -o 0 -l 256K "$M/k"
check_eq "$(stat -c '%s %b' "$M/k")" "1048576 512" "fallocate -n inside the file"
fallocate -n -o 768K -l 1M "$M/k"
check_eq "$(stat -c '%s %b' "$M/k")" "1048576 1024" "fallocate -n across EOF: only what is inside"
fallocate -n -o 4M -l 1M "$M/k"
check_eq "$(stat -c '%s %b' "$M/k")" "1048576 1024" "fallocate -n past EOF"
check "the file still reads zeros" cmp "$M/k" <(head -c 1048576 /dev/zero)

say "fallocate -p: punching frees blocks, keeps the size, reads zeros"
head -c 1048576 /dev/urandom >"$T/p.ref"
cp "$T/p.ref" "$M/p"
check_eq "$(blocks "$M/p")" 2048 "st_blocks of 1 MiB of data"
du_before=$(du -k "$M/p" | cut -f1)
fallocate -p -o 4096 -l 65536 "$M/p"
zero_ref "$T/p.ref" 4096 65536
check_eq "$(stat -c '%s %b' "$M/p")" "1048576 1920" "after punching 16 whole blocks"
check_eq "$(du -k "$M/p" | cut -f1)" $((du_before - 64)) "du -k after the punch"
fallocate -p -o 100000 -l 5000 "$M/p" # inside blocks 24 and 25 only
zero_ref "$T/p.ref" 100000 5000
check_eq "$(blocks "$M/p")" 1920 "a punch of partial blocks frees none"
fallocate -p -o 1000000 -l 1M "$M/p" # to EOF: the last partial blocks go
zero_ref "$T/p.ref" 1000000 48576
check_eq "$(stat -c '%s %b' "$M/p")" "1048576 1832" "a punch through EOF"
check "the punched file's bytes" cmp "$M/p" "$T/p.ref"
printf 'small file' >"$M/small"
fallocate -p -o 2 -l 3 "$M/small"
check_eq "$(od -An -c "$M/small" | tr -s ' ')" " s m \\0 \\0 \\0 f i l e" "a punch in an inline file"

say "SEEK_DATA / SEEK_HOLE"
truncate -s 1M "$M/s"
head -c 4096 /dev/urandom | dd of="$M/s" conv=notrunc status=none
head -c 8192 /dev/urandom | dd of="$M/s" bs=1 seek=262144 conv=notrunc status=none
printf 'e' | dd of="$M/s" bs=1 seek=1048575 conv=notrunc status=none
"$X" map "$M/s" >"$T/map" || fail "itest_extent map"
printf '%s\n' "data 0 4096" "hole 4096 262144" "data 262144 270336" "hole 270336 1044480" \
	"data 1044480 1048576" >"$T/map.want"
check "the data/hole map" diff "$T/map.want" "$T/map"
fallocate -p -o 262144 -l 4096 "$M/s"
fallocate -o 524288 -l 100 "$M/s" # allocated: data for SEEK_DATA
"$X" map "$M/s" >"$T/map" || fail "itest_extent map"
printf '%s\n' "data 0 4096" "hole 4096 266240" "data 266240 270336" "hole 270336 524288" \
	"data 524288 528384" "hole 528384 1044480" "data 1044480 1048576" >"$T/map.want"
check "the map after a punch and an allocation" diff "$T/map.want" "$T/map"
"$X" map "$M/small" >"$T/map" || fail "itest_extent map of an inline file"
check_eq "$(cat "$T/map")" "data 0 10" "an inline file is data"
"$X" map "$M/k" >"$T/map" || fail "itest_extent map"
check_eq "$(tr '\n' ' ' <"$T/map")" "data 0 262144 hole 262144 786432 data 786432 1048576 " \
	"the map after fallocate -n"

say "cp --reflink=never and cat: the same bytes, holes kept by cp"
truncate -s 64M "$M/S"
head -c 1048576 /dev/urandom | dd of="$M/S" bs=1M seek=8 conv=notrunc status=none
head -c 100000 /dev/urandom | dd of="$M/S" bs=1 seek=41943040 conv=notrunc status=none
cp --reflink=never "$M/S" "$M/S.cp"
check "cp --reflink=never" cmp "$M/S" "$M/S.cp"
check_range "$(blocks "$M/S.cp")" 1 "$(blocks "$M/S")" "st_blocks of the cp copy (sparse)"
cat "$M/S" >"$M/S.cat"
check "cat" cmp "$M/S" "$M/S.cat"
cp "$M/S" "$T/S.local"
check "a copy out to local disk" cmp "$T/S.local" "$M/S.cat"

say "copy_file_range inside the daemon"
check_eq "$("$X" copy "$M/S" 0 "$M/S.cfr" 0 $((64 << 20)))" 67108864 "bytes copied"
check "copy_file_range: same bytes" cmp "$M/S" "$M/S.cfr"
# Through the kernel (read + write, or splice) the holes would come back
# as written zeros: the same st_blocks means block values went key to key.
check_eq "$(blocks "$M/S.cfr")" "$(blocks "$M/S")" "copy_file_range keeps the holes"
check_eq "$("$X" copy "$M/S" 8388609 "$M/S.un" 100 2000000)" 2000000 "an unaligned copy"
check "the unaligned copy's bytes" cmp -n 2000000 -i 8388609:100 "$M/S" "$M/S.un"
check "the unaligned copy's head" cmp -n 100 "$M/S.un" /dev/zero
check_eq "$("$X" copy "$M/small" 0 "$M/S.un" 3 100)" 10 "a copy stops at the source's EOF"
check_eq "$(dd if="$M/S.un" bs=1 count=13 status=none | od -An -c | tr -s ' ')" \
	" \\0 \\0 \\0 s m \\0 \\0 \\0 f i l e" "bytes copied from an inline file"

say "data still in the writeback cache: SEEK_DATA/SEEK_HOLE and cp see it"
# itest_extent dirty writes into holes and past EOF and keeps the file open
# without syncing: the kernel holds those pages dirty. Another process's
# SEEK_DATA/SEEK_HOLE, and cp, which uses them when st_blocks (the daemon's
# count) looks sparse, must see the data; the writer checks its own view.
# Closing any fd of the file writes its dirty pages back, so each check
# below gets a round of new writes of its own.
truncate -s 1M "$M/d"
head -c 4096 /dev/urandom | dd of="$M/d" conv=notrunc status=none
cp "$M/d" "$T/d.ref"
coproc DIRTY { "$X" dirty "$M/d" "$T/d.ref"; }
dirty_pid=$DIRTY_PID
exec {dirty_out}<&"${DIRTY[0]}" {dirty_in}>&"${DIRTY[1]}"
# dirty_round N: wait for the writer's round N.
dirty_round() {
	local line
	[ "$1" = 1 ] || echo go >&"$dirty_in"
	read -r line <&"$dirty_out" || line=
	check_eq "$line" ready "the writer's round $1"
}
dirty_map() {
	"$X" map "$M/d" >"$T/map" || fail "itest_extent map of the file being written"
	check "the map of the file being written $1" diff "$T/map.want" "$T/map"
}
dirty_cp_out() {
	rm -f "$T/d.cp"
	cp --sparse=auto --reflink=never "$M/d" "$T/d.cp"
	check "cp --sparse=auto out of kvfs of the file being written $1" cmp "$T/d.ref" "$T/d.cp"
}
dirty_cp_in() {
	rm -f "$M/d.cp"
	cp --sparse=auto --reflink=never "$M/d" "$M/d.cp"
	check "cp --sparse=auto within kvfs of the file being written $1" cmp "$T/d.ref" "$M/d.cp"
}
dirty_round 1
printf '%s\n' "data 0 4096" "hole 4096 262144" "data 262144 270336" "hole 270336 1114112" \
	"data 1114112 1119112" >"$T/map.want"
dirty_map "(a hole and the tail)"
dirty_round 2
dirty_cp_out "(another hole)"
dirty_round 3
dirty_cp_in "(a third hole)"
echo go >&"$dirty_in"
exec {dirty_in}>&- {dirty_out}<&-
wait "$dirty_pid" || fail "itest_extent dirty (the writer's own checks)"
printf '%s\n' "data 0 4096" "hole 4096 262144" "data 262144 270336" "hole 270336 524288" \
	"data 524288 528384" "hole 528384 786432" "data 786432 790528" "hole 790528 1114112" \
	"data 1114112 1119112" >"$T/map.want"
dirty_map "(closed)"
dirty_cp_out "(closed)"
dirty_cp_in "(closed)"

say "flock: two shells"
mkfifo "$T/held" "$T/go"
: >"$M/lockfile"
(
	exec 9<"$M/lockfile"
	flock -n 9 || exit 3
	echo held >"$T/held"
	read -r _ <"$T/go"
) &
holder=$!
read -r _ <"$T/held"
flock -n "$M/lockfile" true && fail "flock -n succeeded while another shell held the lock"
flock -n -s "$M/lockfile" true && fail "flock -n -s succeeded while another held it exclusive"
echo go >"$T/go"
wait "$holder" || fail "the shell holding the lock failed"
check "flock -n once the other shell let go" flock -n "$M/lockfile" true

say "POSIX locks between processes, OFD locks, error codes"
check "itest_extent posix" "$X" posix "$M/lockfile"
check "itest_extent ofd" "$X" ofd "$M/lockfile"
head -c 10000 /dev/urandom >"$M/e"
check "itest_extent errors" "$X" errors "$M/e" "$M"

say "unmount, remount: sizes, blocks, maps and bytes kept"
for f in a k p s S S.cfr small; do
	echo "$f $(stat -c '%s %b' "$M/$f") $("$X" map "$M/$f" | tr '\n' ' ')"
done >"$T/before"
sha_before=$(cd "$M" && sha256sum a k p s S.cfr S.un small)
kvfs_umount "$M"
kvfs_mount "$STORE" "$M"
for f in a k p s S S.cfr small; do
	echo "$f $(stat -c '%s %b' "$M/$f") $("$X" map "$M/$f" | tr '\n' ' ')"
done >"$T/after"
check "sizes, blocks and maps after remount" diff "$T/before" "$T/after"
check_eq "$(cd "$M" && sha256sum a k p s S.cfr S.un small)" "$sha_before" "bytes after remount"
check "the punched file after remount" cmp "$M/p" "$T/p.ref"
kvfs_umount "$M"
kvfs_fsck "$STORE"
