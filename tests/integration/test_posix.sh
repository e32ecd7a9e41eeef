#!/bin/bash
# SPDX-License-Identifier: MIT
#
# test_posix.sh - coreutils on a mounted kvfs, checking the exact values
# stat, du and df report: ln, ln -s, mv across directories, mkfifo, touch -d
# (nanoseconds), chmod, chown, truncate, find, du, df; a sparse 5 GiB file;
# then unmount, remount, and every value must be the same. ctest runs it with
# the default durability and again with ITEST_DURABILITY=sync.
. "$(dirname "$0")/lib.sh"
itest_init
export TZ=UTC LC_ALL=C

new_store store
M=$T/mnt
mkdir "$M"
kvfs_mount "$STORE" "$M"

# df's inode count must be the number of distinct inodes in the tree.
check_inodes() {
	local used reach
	used=$(df --output=iused "$M" | tail -1 | tr -d ' ')
	reach=$(find "$M" -xdev -printf '%i\n' | sort -u | wc -l)
	check_eq "$used" "$reach" "$1: df's inodes used vs. inodes in the tree"
}

say "a new filesystem"
check_eq "$(stat -c '%i %h %a %F' "$M")" "1 3 755 directory" "the root"
check_eq "$(stat -c '%h %a %F' "$M/lost+found")" "2 700 directory" "lost+found"
check_eq "$(ls -A "$M")" "lost+found" "the root's entries"

say "directories: nlink is 2 + subdirectories"
mkdir "$M/d1" "$M/d2"
check_eq "$(stat -c %h "$M/d1")" 2 "nlink of an empty dir"
mkdir "$M/d1/s1" "$M/d1/s2" "$M/d1/s3"
touch "$M/d1/file"
check_eq "$(stat -c %h "$M/d1")" 5 "nlink of a dir with 3 subdirs and a file"
check_eq "$(stat -c %h "$M")" 5 "nlink of the root with 3 subdirs"
rmdir "$M/d1/s3"
check_eq "$(stat -c %h "$M/d1")" 4 "nlink after rmdir"
rmdir "$M/d1" 2>"$T/err" && fail "rmdir of a non-empty dir succeeded"
grep -q "not empty" "$T/err" || fail "rmdir of a non-empty dir: $(cat "$T/err")"

say "hard links, symlinks"
printf 'hello\n' >"$M/d1/f"
ln "$M/d1/f" "$M/d2/g"
check_eq "$(stat -c %h "$M/d1/f")" 2 "nlink after ln"
check_eq "$(stat -c %i "$M/d2/g")" "$(stat -c %i "$M/d1/f")" "ln: same inode"
ln -s ../d1/f "$M/d2/s"
check_eq "$(stat -c '%F %s' "$M/d2/s")" "symbolic link 7" "a symlink's type and size"
check_eq "$(readlink "$M/d2/s")" ../d1/f "readlink"
check_eq "$(cat "$M/d2/s")" hello "reading through a symlink"
long=$(printf 'x%.0s' $(seq 1000))
ln -s "$long" "$M/d2/longlink"
check_eq "$(readlink "$M/d2/longlink")" "$long" "a 1000-byte symlink target"
ln "$M/d1" "$M/d1-link" 2>"$T/err" && fail "ln of a directory succeeded"
grep -q "not allowed" "$T/err" || fail "ln of a directory: $(cat "$T/err")"
rm "$M/d1/f"
check_eq "$(stat -c %h "$M/d2/g")" 1 "nlink after removing the other name"
check_eq "$(cat "$M/d2/g")" hello "the remaining name after unlink"
[ ! -e "$M/d2/s" ] || fail "a dangling symlink resolves"
ln "$M/d2/g" "$M/d1/f"

check_inodes "before 'mv across directories'"
say "mv across directories"
mv "$M/d1/f" "$M/d2/moved"
[ ! -e "$M/d1/f" ] || fail "mv left the source"
check_eq "$(stat -c %h "$M/d2/moved")" 2 "nlink after mv"
check_eq "$(stat -c %i "$M/d2/moved")" "$(stat -c %i "$M/d2/g")" "mv keeps the inode"
mv "$M/d1/s1" "$M/d2/"
check_eq "$(stat -c %h "$M/d1")" 3 "nlink of the source dir after mv of a subdir"
check_eq "$(stat -c %h "$M/d2")" 3 "nlink of the target dir after mv of a subdir"
check_eq "$(stat -c %i "$M/d2/s1/..")" "$(stat -c %i "$M/d2")" ".. of a moved dir"
printf 'replace me\n' >"$M/d1/victim"
printf 'winner\n' >"$M/d2/w"
mv -f "$M/d2/w" "$M/d1/victim"
check_eq "$(cat "$M/d1/victim")" winner "mv over an existing file"
mkdir "$M/d2/empty" "$M/d1/s2/inner"
mv -T "$M/d2/empty" "$M/d1/s2" 2>"$T/err" && fail "mv over a non-empty dir succeeded"
mv "$M/d1" "$M/d1/s2/" 2>"$T/err" && fail "mv of a dir into its own subtree succeeded"
[ -d "$M/d1/s2/inner" ] || fail "a refused mv changed the tree"

check_inodes "before 'mkfifo, mknod'"
say "mkfifo, mknod"
mkfifo -m 0640 "$M/fifo"
check_eq "$(stat -c '%F %a %s' "$M/fifo")" "fifo 640 0" "a fifo"
(echo through-the-fifo >"$M/fifo") &
writer=$!
check_eq "$(timeout 60 cat "$M/fifo")" through-the-fifo "data through a fifo"
wait $writer
mknod "$M/null" c 1 3
check_eq "$(stat -c '%F %t,%T' "$M/null")" "character special file 1,3" "a char device"
mknod "$M/blk" b 7 0
check_eq "$(stat -c '%F %t,%T' "$M/blk")" "block special file 7,0" "a block device"

check_inodes "before 'touch -d with nanoseconds'"
say "touch -d with nanoseconds"
touch "$M/t"
touch -m -d '2001-02-03 04:05:06.123456789' "$M/t"
touch -a -d '1999-12-31 23:59:59.987654321' "$M/t"
check_eq "$(stat -c %y "$M/t")" "2001-02-03 04:05:06.123456789 +0000" "mtime after touch -m -d"
check_eq "$(stat -c %x "$M/t")" "1999-12-31 23:59:59.987654321 +0000" "atime after touch -a -d"
touch -d '@0.5' "$M/t0"
check_eq "$(stat -c '%X %Y' "$M/t0")" "0 0" "touch -d @0.5 seconds"
check_eq "$(stat -c %y "$M/t0")" "1970-01-01 00:00:00.500000000 +0000" "touch -d @0.5"
touch -r "$M/t" "$M/t0"
check_eq "$(stat -c %y "$M/t0")" "2001-02-03 04:05:06.123456789 +0000" "touch -r"
before=$(date +%s)
touch "$M/t0"
mt=$(stat -c %Y "$M/t0")
check_range "$mt" "$before" "$(($(date +%s) + 1))" "touch (now): mtime"
ct=$(stat -c %Z "$M/t")
[ "$ct" -ge "$((before - 60))" ] || fail "ctime of a touched file is $ct, not recent"

check_inodes "before 'chmod, chown'"
say "chmod, chown"
printf 'x\n' >"$M/p"
for mode in 600 644 4755 2750 1777 0; do
	chmod "$mode" "$M/p"
	check_eq "$(stat -c %a "$M/p")" "$mode" "chmod $mode"
done
chmod u=rwx,g=rx,o= "$M/p"
check_eq "$(stat -c '%a %A' "$M/p")" "750 -rwxr-x---" "chmod symbolic"
chmod 1777 "$M/d2"
check_eq "$(stat -c '%a %F' "$M/d2")" "1777 directory" "chmod a dir"
if [ "$(id -u)" -eq 0 ]; then
	chown 1234:5678 "$M/p"
	check_eq "$(stat -c '%u %g' "$M/p")" "1234 5678" "chown uid:gid"
	chmod 6755 "$M/p"
	chown 4321 "$M/p"
	check_eq "$(stat -c '%u %g %a' "$M/p")" "4321 5678 755" "chown uid only (clears setuid/setgid)"
	chown -h 99:98 "$M/d2/s"
	check_eq "$(stat -c '%u %g' "$M/d2/s")" "99 98" "chown -h of a symlink"
	check_eq "$(stat -c '%u %g' "$M/d2/g")" "0 0" "chown -h leaves the target alone"
	chmod 2710 "$M/p"
	chown 0:0 "$M/p"
	check_eq "$(stat -c '%u %g %a' "$M/p")" "0 0 710" "chown clears setgid of a group-executable file"
	chmod 2700 "$M/p"
	chown 1:1 "$M/p"
	check_eq "$(stat -c '%u %g %a' "$M/p")" "1 1 2700" "chown keeps setgid without group exec"
fi

check_inodes "before 'truncate'"
say "truncate"
printf '0123456789' >"$M/tr"
truncate -s 4 "$M/tr"
check_eq "$(cat "$M/tr")" 0123 "truncate -s 4"
truncate -s 10000 "$M/tr"
check_eq "$(stat -c %s "$M/tr")" 10000 "truncate -s 10000: size"
check_eq "$(head -c 4 "$M/tr")" 0123 "truncate up keeps the head"
check "truncate up reads zeros" cmp -n 9996 -i 4:0 "$M/tr" /dev/zero
head -c 100000 /dev/urandom >"$M/rnd"
truncate -s 50000 "$M/rnd"
truncate -s 90000 "$M/rnd"
check "truncate down then up: the tail is zeros" cmp -n 40000 -i 50000:0 "$M/rnd" /dev/zero
truncate -s 0 "$M/tr"
check_eq "$(stat -c '%s %b' "$M/tr")" "0 0" "truncate -s 0: size and blocks"

check_inodes "before 'find'"
say "find"
mkdir -p "$M/f/a/b/c"
for i in 1 2 3 4 5; do
	printf '%s\n' "$i" >"$M/f/a/file$i.txt"
	printf '%s\n' "$i" >"$M/f/a/b/c/deep$i.c"
done
check_eq "$(find "$M/f" -type f | wc -l)" 10 "find -type f"
check_eq "$(find "$M/f" -type d | wc -l)" 4 "find -type d"
check_eq "$(find "$M/f" -name 'deep*.c' | sort | head -1)" "$M/f/a/b/c/deep1.c" "find -name"
touch -d '2000-01-01' "$M/f/a/file1.txt"
check_eq "$(find "$M/f" -type f ! -newer "$M/f/a/file1.txt")" "$M/f/a/file1.txt" "find -newer"
check_eq "$(find "$M/f" -mindepth 4 -type f | wc -l)" 5 "find -mindepth"

check_inodes "before 'du, df, block counts'"
say "du, df, block counts"
head -c 1048576 /dev/urandom >"$M/mib"
check_eq "$(stat -c %s "$M/mib")" 1048576 "size of a 1 MiB file"
kb=$(du -k "$M/mib" | cut -f1)
check_range "$kb" 1024 1100 "du -k of a 1 MiB file"
check_eq "$(stat -c %B "$M/mib")" 512 "st_blocks unit"
printf 'tiny' >"$M/tiny"
check_eq "$(du -k --apparent-size "$M/tiny" | cut -f1)" 1 "du --apparent-size of 4 bytes"
truncate -s 1G "$M/hole"
check_eq "$(du -k "$M/hole" | cut -f1)" 0 "du of a 1 GiB hole"
check_eq "$(du -k --apparent-size "$M/hole" | cut -f1)" 1048576 "du --apparent-size of a 1 GiB hole"
read -r total _ avail itotal iused < <(df -k --output=size,used,avail,itotal,iused "$M" | tail -1)
[ "$total" -gt 0 ] || fail "df: total $total"
[ "$avail" -gt 0 ] || fail "df: avail $avail"
[ "$itotal" -gt "$iused" ] || fail "df: $iused of $itotal inodes used"
mkdir "$M/many"
for i in $(seq 100); do : >"$M/many/$i"; done
head -c 8388608 /dev/urandom >"$M/many/8mib"
read -r _ _ _ _ iused2 < <(df -k --output=size,used,avail,itotal,iused "$M" | tail -1)
check_eq "$((iused2 - iused))" 102 "df: inodes used by a dir with 101 files"
# Space is the host filesystem's (the store's files live there): the same
# total as df of the store's directory, to the block.
host_kb=$(df -k --output=size "$STORE" | tail -1 | tr -d ' ')
check_range "$total" $((host_kb - 64)) "$host_kb" "df: total KiB vs. the store's host filesystem"
check_eq "$(stat -f -c %l "$M")" 255 "statfs: name length"

check_inodes "before 'a sparse 5 GiB file'"
say "a sparse 5 GiB file"
S=$M/sparse
truncate -s 5G "$S"
head -c 1048576 /dev/urandom >"$T/tail"
dd if="$T/tail" of="$S" bs=1M seek=5119 conv=notrunc status=none
# And a block straddling 4 GiB.
head -c 8192 /dev/urandom >"$T/mid"
dd if="$T/mid" of="$S" bs=4096 seek=$((4 * 262144 - 1)) conv=notrunc status=none
check_eq "$(stat -c %s "$S")" 5368709120 "size of the sparse file"
kb=$(du -k "$S" | cut -f1)
check_range "$kb" 1032 2048 "du -k of the sparse file (KiB)"
check "the tail of the sparse file" cmp <(tail -c 1048576 "$S") "$T/tail"
check "the block across 4 GiB" cmp -n 8192 -i $((4 * 1073741824 - 4096)):0 "$S" "$T/mid"
check "a hole at 2 GiB reads zeros" cmp -n 16777216 -i 2147483648:0 "$S" /dev/zero
check "the hole before 4 GiB reads zeros" \
	cmp -n 1048576 -i $((4 * 1073741824 - 4096 - 1048576)):0 "$S" /dev/zero
check "the hole after 4 GiB reads zeros" cmp -n 1048576 -i $((4 * 1073741824 + 4096)):0 "$S" /dev/zero
sha_sparse=$(dd if="$S" bs=1M skip=4095 count=2 status=none | sha256sum)

say "unmount, remount: every value persisted"
iused2=$(df --output=iused "$M" | tail -1 | tr -d ' ')
fingerprint "$M" >"$T/fp.before"
stat -c '%n %i %h %a %u %g %s %b %F %y %t %T' "$M"/* "$M"/*/* | sort >"$T/stat.before"
kvfs_remount "$STORE" "$M"
fingerprint "$M" >"$T/fp.after"
check "names, modes, owners, sizes, mtimes, inodes, checksums after remount" \
	diff "$T/fp.before" "$T/fp.after"
stat -c '%n %i %h %a %u %g %s %b %F %y %t %T' "$M"/* "$M"/*/* | sort >"$T/stat.after"
check "stat (incl. blocks, rdev) after remount" diff "$T/stat.before" "$T/stat.after"
check_eq "$(dd if="$S" bs=1M skip=4095 count=2 status=none | sha256sum)" "$sha_sparse" \
	"the sparse file around 4 GiB after remount"
check_eq "$(stat -c %x "$M/t")" "1999-12-31 23:59:59.987654321 +0000" "atime after remount"
check "the tail of the sparse file after remount" cmp <(tail -c 1048576 "$S") "$T/tail"
read -r _ _ _ _ iused3 < <(df -k --output=size,used,avail,itotal,iused "$M" | tail -1)
check_eq "$iused3" "$iused2" "df: inodes used after remount"

check_inodes "before 'unlink everything'"
say "unlink everything"
rm -rf "${M:?}"/*
check_eq "$(ls -A "$M")" "" "the root after rm -rf"
check_eq "$(stat -c %h "$M")" 2 "nlink of the emptied root"
read -r _ _ _ _ iused4 < <(df -k --output=size,used,avail,itotal,iused "$M" | tail -1)
check_eq "$iused4" 1 "df: inodes used by an empty root"
kvfs_umount "$M"
