#!/bin/bash
# SPDX-License-Identifier: MIT
#
# test_tools.sh - real programs on a mounted kvfs: cp -a + diff -r, tar with
# xattrs, rsync -aH, git, make + cc, sqlite3; then unmount, remount, and
# everything (content, modes, mtimes, inode numbers, xattrs, the git repo,
# the database) must be as it was.
. "$(dirname "$0")/lib.sh"
itest_init

for tool in tar rsync git sqlite3 make cc setfattr getfattr; do
	command -v $tool >/dev/null || skip "$tool is not installed (tools/install-deps.sh)"
done

new_store store
M=$T/mnt
mkdir "$M"
kvfs_mount "$STORE" "$M"

# A private copy of real source files: the work tree may change under us.
SNAP=$T/snap
mkdir "$SNAP"
cp -a "$SRCDIR/kv" "$SRCDIR/tests" "$SRCDIR/fs" "$SNAP/"

# Names, types, modes, sizes and mtimes of a tree, relative to its root
# (not the sizes of directories: they are each filesystem's own).
meta() {
	(cd "$1" && find . \( -type d -printf '%p %y %m - %T@\n' \) -o \
		-printf '%p %y %m %s %T@ %l\n' | LC_ALL=C sort)
}

say "cp -a of a source tree, diff -r"
cp -a "$SNAP" "$M/src"
check "diff -r after cp -a" diff -r "$SNAP" "$M/src"
meta "$SNAP" >"$T/meta.snap"
meta "$M/src" >"$T/meta.kvfs"
check "modes, sizes and mtimes kept by cp -a" diff "$T/meta.snap" "$T/meta.kvfs"
check_eq "$(find "$M/src" | wc -l)" "$(find "$SNAP" | wc -l)" "names copied"

say "tar --xattrs round trip"
mkdir -p "$M/x/sub"
printf 'with attributes\n' >"$M/x/a"
printf 'nested\n' >"$M/x/sub/b"
ln -s a "$M/x/link"
setfattr -n user.color -v blue "$M/x/a"
setfattr -n user.empty "$M/x/a"
setfattr -n user.bin -v 0x00ff10 "$M/x/sub/b"
setfattr -n user.dir -v yes "$M/x/sub"
big=$(head -c 3000 /dev/zero | tr '\0' v)
setfattr -n user.big -v "$big" "$M/x/sub/b"
cp -a "$M/src/kv" "$M/x/kv"
xa() { (cd "$1" && getfattr -h -R -d -m - -e hex . 2>/dev/null); }
xa "$M/x" >"$T/xattrs.before"
check_eq "$(grep -c '^user\.' "$T/xattrs.before")" 5 "user.* xattrs set on the tree"
tar --xattrs --xattrs-include='user.*' -cf "$M/x.tar" -C "$M" x
mkdir "$M/untar"
tar --xattrs --xattrs-include='user.*' -xpf "$M/x.tar" -C "$M/untar"
check "diff -r after tar x" diff -r "$M/x" "$M/untar/x"
xa "$M/untar/x" >"$T/xattrs.after"
check "xattrs after tar x" diff "$T/xattrs.before" "$T/xattrs.after"
meta "$M/x" >"$T/meta.x"
meta "$M/untar/x" >"$T/meta.untar"
check "modes and mtimes after tar x" diff "$T/meta.x" "$T/meta.untar"
# And to and from the host's filesystem.
mkdir "$T/hostx"
tar --xattrs --xattrs-include='user.*' -xpf "$M/x.tar" -C "$T/hostx"
check "diff -r, kvfs tar extracted on the host" diff -r "$M/x" "$T/hostx/x"

say "rsync -aH keeps hard links"
mkdir -p "$M/h/d1" "$M/h/d2" "$M/h/d3"
printf 'linked\n' >"$M/h/d1/orig"
ln "$M/h/d1/orig" "$M/h/d2/second"
ln "$M/h/d1/orig" "$M/h/d3/third"
printf 'single\n' >"$M/h/d1/single"
ln -s ../d1/orig "$M/h/d2/sym"
check_eq "$(stat -c %h "$M/h/d1/orig")" 3 "nlink of a file with 3 names"
rsync -aH "$M/h/" "$M/h2/"
check "diff -r after rsync" diff -r "$M/h" "$M/h2"
i1=$(stat -c %i "$M/h2/d1/orig")
check_eq "$(stat -c %i "$M/h2/d2/second")" "$i1" "rsync -aH: second name, same inode"
check_eq "$(stat -c %i "$M/h2/d3/third")" "$i1" "rsync -aH: third name, same inode"
check_eq "$(stat -c %h "$M/h2/d1/orig")" 3 "rsync -aH: nlink"
[ "$(stat -c %i "$M/h2/d1/single")" != "$i1" ] || fail "rsync -aH linked an unrelated file"
check_eq "$(readlink "$M/h2/d2/sym")" ../d1/orig "rsync: symlink target"
# From the host, with xattrs, then an update pass that must change nothing.
rsync -aHX "$SNAP/" "$M/rs/"
check "diff -r after rsync from the host" diff -r "$SNAP" "$M/rs"
rsync -aHX --itemize-changes "$SNAP/" "$M/rs/" >"$T/rsync2"
check_eq "$(wc -l <"$T/rsync2")" 0 "a second rsync -a of an unchanged tree transfers"

say "git init, add, commit, status, branches"
export GIT_CONFIG_NOSYSTEM=1 HOME=$T GIT_AUTHOR_DATE='2020-01-01T00:00:00Z'
export GIT_COMMITTER_DATE=$GIT_AUTHOR_DATE
git config --global user.name "kvfs test"
git config --global user.email test@kvfs.invalid
git config --global init.defaultBranch main
G=$M/repo
cp -a "$SNAP/kv" "$G"
cd "$G"
git init -q
git add -A
git commit -q -m "the engine"
check_eq "$(git status --porcelain)" "" "git status after the first commit"
git checkout -q -b feature
echo "/* feature */" >>db.c
git rm -q -- wal.c
printf 'new\n' >new.txt
git add -A
git commit -q -m feature
check_eq "$(git status --porcelain)" "" "git status on the feature branch"
git checkout -q main
check_eq "$(git status --porcelain)" "" "git status after checkout main"
[ -e wal.c ] || fail "git checkout main: wal.c is missing"
[ ! -e new.txt ] || fail "git checkout main: new.txt is still there"
check "git checkout main: db.c" cmp db.c "$SNAP/kv/db.c"
git checkout -q feature
check_eq "$(tail -n 1 db.c)" "/* feature */" "git checkout feature: db.c"
[ ! -e wal.c ] || fail "git checkout feature: wal.c is back"
check_eq "$(git log --format=%s main..feature)" feature "git log"
check "git fsck" git fsck --full --strict --no-progress
git gc -q
check "git fsck after gc" git fsck --full --no-progress
cd /

say "make: build and run a small C program"
B=$M/build
mkdir "$B"
cat >"$B/greet.c" <<'EOF'
#include <stdio.h>
#include "greet.h"
int main(void) { printf("%s %d\n", GREETING, answer()); return 0; }
EOF
cat >"$B/answer.c" <<'EOF'
#include "greet.h"
int answer(void) { return 42; }
EOF
printf '#define GREETING "hello from kvfs"\nint answer(void);\n' >"$B/greet.h"
# shellcheck disable=SC2016 # make's variables, not the shell's
printf 'greet: greet.o answer.o\n\t$(CC) -o $@ $^\n%%.o: %%.c greet.h\n\t$(CC) -c -o $@ $<\n' \
	>"$B/Makefile"
make -s -C "$B" >/dev/null
check_eq "$("$B/greet")" "hello from kvfs 42" "the program make built"
check "make -q: up to date" make -q -C "$B"
# A newer source must be rebuilt (make compares mtimes).
sleep 0.01
sed -i 's/42/43/' "$B/answer.c"
make -q -C "$B" && fail "make -q after editing answer.c: still up to date"
make -s -C "$B" >/dev/null
check_eq "$("$B/greet")" "hello from kvfs 43" "the program rebuilt by make"

say "sqlite3: a database in transactions"
D=$M/db.sqlite
sqlite3 "$D" >/dev/null <<'EOF'
PRAGMA journal_mode=DELETE;
BEGIN;
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v INTEGER);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 5000)
INSERT INTO t SELECT i, 'name-' || i, i * 3 FROM c;
COMMIT;
BEGIN;
DELETE FROM t WHERE id > 100;
ROLLBACK;
CREATE INDEX t_name ON t(name);
EOF
check_eq "$(sqlite3 "$D" 'SELECT count(*), sum(v) FROM t;')" "5000|37507500" "sqlite3: rows"
check_eq "$(sqlite3 "$D" 'PRAGMA integrity_check;')" ok "sqlite3 integrity_check"
sqlite3 "$D" 'PRAGMA journal_mode=WAL;' >/dev/null
sqlite3 "$D" "BEGIN; UPDATE t SET v = 0 WHERE id <= 10; COMMIT;"
check_eq "$(sqlite3 "$D" "SELECT v FROM t WHERE name = 'name-7';")" 0 "sqlite3: an update (WAL mode)"
check_eq "$(sqlite3 "$D" 'SELECT sum(v) FROM t;')" 37507335 "sqlite3: sum after the update"

say "unmount, remount: everything persisted"
fingerprint "$M" >"$T/fp.before"
xa "$M/x" >"$T/xattrs.before2"
kvfs_remount "$STORE" "$M"
fingerprint "$M" >"$T/fp.after"
check "files, modes, mtimes, inodes and checksums after remount" \
	diff "$T/fp.before" "$T/fp.after"
xa "$M/x" >"$T/xattrs.after2"
check "xattrs after remount" diff "$T/xattrs.before2" "$T/xattrs.after2"
check "diff -r after remount" diff -r "$SNAP" "$M/src"
cd "$G"
check_eq "$(git status --porcelain)" "" "git status after remount"
check "git fsck after remount" git fsck --full --no-progress
git checkout -q main
[ -e wal.c ] || fail "git checkout main after remount: wal.c is missing"
cd /
check_eq "$(sqlite3 "$D" 'PRAGMA integrity_check;')" ok "sqlite3 integrity_check after remount"
check_eq "$(sqlite3 "$D" 'SELECT sum(v) FROM t;')" 37507335 "sqlite3: sum after remount"
check_eq "$("$B/greet")" "hello from kvfs 43" "the program after remount"
check "make -q after remount" make -q -C "$B"
kvfs_umount "$M"
