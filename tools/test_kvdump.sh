#!/bin/sh
# SPDX-License-Identifier: MIT
#
# test_kvdump.sh KVDUMP MKSTORE - end-to-end test of tools/kvdump on a store
# with known contents (see kvdump_mkstore.c for what it holds).
set -u

KVDUMP=$1
MKSTORE=$2
T=$(mktemp -d "${TMPDIR:-/tmp}/test_kvdump.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM HUP

failures=0
fail() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}

# run EXPECTED_RC NAME ARGS...: run kvdump, stdout to $T/out, stderr to $T/err.
run() {
	want=$1
	name=$2
	shift 2
	"$KVDUMP" "$@" >"$T/out" 2>"$T/err"
	rc=$?
	if [ "$rc" -ne "$want" ]; then
		fail "$name: kvdump $*: exit $rc, expected $want"
		sed 's/^/    out: /' "$T/out" | head -20 >&2
		sed 's/^/    err: /' "$T/err" | head -20 >&2
	fi
}
has() { grep -q -e "$2" "$T/$1" || fail "$3: no '$2' in std$1"; }
hasnt() { ! grep -q -e "$2" "$T/$1" || fail "$3: unexpected '$2' in std$1"; }
lines() {
	n=$(wc -l <"$T/out")
	[ "$n" -eq "$1" ] || fail "$2: $n lines, expected $1"
}
# Every file's name, size and checksum: to prove a command wrote nothing.
fingerprint() { (cd "$1" && ls -la --time-style=+ . && md5sum ./*) >"$2"; }

S=$T/store
"$MKSTORE" "$S" || { echo "FAIL: kvdump_mkstore" >&2; exit 1; }
fingerprint "$S" "$T/before"

# ---- commands that only read -------------------------------------------------
run 0 levels levels "$S"
has out '^level 0: 1 tables' levels
has out '^level 1: 1 tables, [0-9]* bytes, keys \\x00\\x01\\xff \.\. key0199' levels
has out 'tbl-0000000000000002\.sst' levels
has out '^log_min: segment' levels
has out 'wal-[0-9a-f]\{16\}\.log  id' levels

run 0 tables tables "$S"
[ "$(grep -c 'tbl-[0-9a-f]*\.sst' "$T/out")" -eq 2 ] || fail "tables: expected 2 tables"
has out '^0  tbl-[0-9a-f]*\.sst  [0-9]*  5  1  .*key0150 \.\. late4$' tables
has out '^1  tbl-0000000000000002\.sst  [0-9]*  200  0  .*\\x00\\x01\\xff \.\. key0199$' tables

L0=$(sed -n 's/^0  \(tbl-[0-9a-f]*\.sst\) .*/\1/p' "$T/out")
run 0 table-l0 table "$S/$L0"
has out '^rangedel \[key0150, key0160) lsn [0-9]*$' table-l0
has out '^late3  lsn [0-9]*  PUT  10 bytes$' table-l0
run 0 table-l1 table --versions "$S/tbl-0000000000000002.sst"
has out '^\\x00\\x01\\xff  lsn [0-9]*  PUT  1024 bytes$' table-l1
hasnt out '^key0100 ' table-l1
[ "$(grep -c '^key[0-9]' "$T/out")" -eq 199 ] || fail "table --versions: expected 199 key lines"
run 1 table-badname table "$S/KVSTORE"
has err 'not a table file name' table-badname

run 0 check check "$S"
has out 'clean' check
lines 1 check

# A store in use (its LOCK flock'ed, as an open handle holds it) is refused.
if command -v flock >/dev/null 2>&1; then
	for cmd in levels tables keys check; do
		flock "$S/LOCK" "$KVDUMP" "$cmd" "$S" >"$T/out" 2>"$T/err"
		[ $? -eq 1 ] || fail "in-use-$cmd: expected exit 1"
		has err 'in use' "in-use-$cmd"
	done
fi

fingerprint "$S" "$T/after"
cmp -s "$T/before" "$T/after" || fail "levels/tables/table/check modified the store"

# ---- commands that open the store --------------------------------------------
run 0 keys keys "$S"
lines 196 keys
has out '^key0005$' keys
has out '^\\x00\\x01\\xff$' keys
has out '^wal-only$' keys
has out '^late4$' keys
hasnt out '^key0100$' "keys (deleted key)"
hasnt out '^key0155$' "keys (range-deleted key)"

run 0 keys-range keys --from key0010 --to key0020 "$S"
lines 10 keys-range
has out '^key0010$' keys-range
hasnt out '^key0020$' keys-range
run 0 keys-limit keys --from key0148 --limit 3 "$S"
printf 'key0148\nkey0149\nkey0160\n' | cmp -s - "$T/out" || fail "keys --from --limit: wrong keys"
run 0 keys-values keys --values --from 'key0005' --limit 1 "$S"
printf 'key0005\t[8] val-0005\n' | cmp -s - "$T/out" || fail "keys --values: wrong line"
run 0 keys-bigvalue keys --values --to '\x00\x02' "$S"
has out '^\\x00\\x01\\xff	\[1024\] v\{64\}\.\.\.$' keys-bigvalue
run 0 keys-hex keys --hex --from 0001 --limit 1 "$S"
has out '^0001ff$' keys-hex

run 0 stats stats "$S"
has out '^level 1 .* 1 tables' stats
has out '^failed  *0$' stats

# ---- a corrupt table ---------------------------------------------------------
C=$T/corrupt
cp -a "$S" "$C"
printf '\252' | dd of="$C/tbl-0000000000000002.sst" bs=1 seek=100 count=1 conv=notrunc 2>/dev/null
run 1 check-corrupt check "$C"
has out "^$C/tbl-0000000000000002\.sst: offset [0-9]*: " check-corrupt
has out 'problem' check-corrupt
run 1 table-corrupt table "$C/tbl-0000000000000002.sst"
has err 'tbl-0000000000000002\.sst' table-corrupt

# ---- bad usage and no store --------------------------------------------------
run 2 usage-none
run 2 usage-cmd frobnicate "$S"
run 2 usage-nodir keys
run 2 usage-extra levels "$S" "$S"
run 2 usage-limit keys --limit lots "$S"
run 2 usage-option levels --values "$S"
run 2 usage-key keys --from '\q' "$S"
run 0 help --help
has out '^usage: kvdump' help

run 1 missing levels "$T/nonexistent"
has err "$T/nonexistent" missing
mkdir "$T/foreign" && echo data >"$T/foreign/file"
for cmd in levels tables keys stats check; do
	run 1 "foreign-$cmd" "$cmd" "$T/foreign"
	has err "$T/foreign/KVSTORE" "foreign-$cmd"
done
[ "$(ls "$T/foreign")" = file ] || fail "kvdump wrote into a foreign directory"

if [ "$failures" -ne 0 ]; then
	echo "test_kvdump: $failures failures" >&2
	exit 1
fi
echo "test_kvdump: ok"
