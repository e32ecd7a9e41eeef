#!/bin/bash
# SPDX-License-Identifier: MIT
#
# test_dirs.sh - big and busy directories on a mounted kvfs:
#   - a directory of ITEST_ENTRIES entries (100000 by default) listed
#     completely and exactly once, before and after a remount, then removed;
#   - 4 concurrent writers creating ITEST_WRITER_FILES files each (300 by
#     default, inline and multi-block sizes) in one directory, all content
#     verified, before and after a remount.
. "$(dirname "$0")/lib.sh"
itest_init
export LC_ALL=C

N=${ITEST_ENTRIES:-100000}
W=${ITEST_WRITER_FILES:-300}

new_store store
M=$T/mnt
mkdir "$M"
kvfs_mount "$STORE" "$M"

# The names "itest_helper mkfiles" makes, sorted.
printf 'entry-%07d\n' $(seq 0 $((N - 1))) >"$T/expected"

# list_big WHEN: ls -f lists every entry exactly once.
list_big() {
	ls -f "$M/big" >"$T/listing"
	grep -vxE '\.|\.\.' "$T/listing" | sort >"$T/names"
	check_eq "$(grep -cxE '\.|\.\.' "$T/listing")" 2 "$1: . and .. listed once each"
	check_eq "$(uniq -d "$T/names" | head -5 | tr '\n' ' ')" "" "$1: names listed twice"
	check_eq "$(wc -l <"$T/names")" "$N" "$1: entries listed"
	check "$1: the listing is exactly the names created" cmp -s "$T/names" "$T/expected"
}

say "a directory of $N entries"
mkdir "$M/big"
"$ITEST_HELPER" mkfiles "$M/big" "$N"
list_big "after creating"
check_eq "$(find "$M/big" -type f | wc -l)" "$N" "find in the big dir"
check_eq "$(stat -c %h "$M/big")" 2 "nlink of the big dir"
check_eq "$(stat -c %s "$M/big/entry-0000007")" 0 "stat of one entry"

say "listing the big directory while another process changes it"
# Entries present for the whole listing must be listed exactly once; the
# ones created and removed meanwhile at most once.
"$ITEST_HELPER" churn "$M/big" 1000000 &
churn=$!
ls -f "$M/big" >"$T/listing"
ls -f "$M/big" >"$T/listing2"
kill "$churn"
wait "$churn" || true
for l in listing listing2; do
	check_eq "$(sort "$T/$l" | uniq -d | head -5 | tr '\n' ' ')" "" "listing during changes: names listed twice"
	grep -vxE '\.|\.\.|churn-[0-9]+' "$T/$l" | sort >"$T/names"
	check "listing during changes: every stable name exactly once" cmp -s "$T/names" "$T/expected"
done
rm -f "$M/big/"churn-*

say "4 concurrent writers in one directory"
mkdir "$M/conc"
pids=()
for id in 1 2 3 4; do
	"$ITEST_HELPER" write "$M/conc" $id "$W" &
	pids+=($!)
done
for id in 1 2 3 4; do
	rc=0
	wait "${pids[$((id - 1))]}" || rc=$?
	check_eq "$rc" 0 "writer $id"
done
verify_conc() {
	check_eq "$(find "$M/conc" -mindepth 1 | wc -l)" $((4 * W)) "$1: files of 4 writers"
	for id in 1 2 3 4; do
		check "$1: content of writer $id" "$ITEST_HELPER" verify "$M/conc" $id "$W"
	done
}
verify_conc "after writing"

say "unmount, remount"
fingerprint "$M/conc" >"$T/fp.before"
kvfs_remount "$STORE" "$M"
list_big "after remount"
verify_conc "after remount"
fingerprint "$M/conc" >"$T/fp.after"
check "the writers' files after remount" diff "$T/fp.before" "$T/fp.after"

say "removing the big directory"
rm -rf "$M/big"
[ ! -e "$M/big" ] || fail "rm -rf left the big directory"
check_eq "$(stat -c %h "$M")" 4 "nlink of the root after rm -rf big"
kvfs_umount "$M"
