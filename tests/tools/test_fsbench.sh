#!/bin/sh
# fsbench: bad command lines are refused with exit 2 and a message naming
# the option; a --quick run on two temporary directories writes a JSON that
# parses and holds every phase for both, with every parameter, and leaves
# nothing behind; --phases runs exactly the phases named. Every phase
# reports the bytes the machine's whole disks wrote (disk_bytes_written, a
# non-negative integer, with disk_write_amplification for seqwrite and
# randwrite) when /proc/diskstats lists a disk, over the same disks as found
# here, and nothing when it cannot be read; on a disk-backed target seqwrite's
# fsync puts at least the file's bytes on the disk. No timing is asserted.
#
#   test_fsbench.sh FSBENCH
set -eu

fsbench=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_fsbench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fails=0

fail() {
	echo "FAIL: $*" >&2
	fails=$((fails + 1))
}

# JSON checks with python3 (the build machine has it; jq as a fallback).
if command -v python3 >/dev/null 2>&1; then
	json() { python3 -c "$@"; }
else
	echo "test_fsbench: no python3, skipped" >&2
	exit 77
fi

mkdir -p "$tmp/a" "$tmp/b" "$tmp/src/d1/d2"
echo "hello needle" >"$tmp/src/d1/f1"
seq 1 5000 >"$tmp/src/d1/d2/f2"
ln -s f1 "$tmp/src/d1/link"
tar -cf "$tmp/src.tar" -C "$tmp" src
printf 'not a tar' >"$tmp/bad.tar"

# expect_usage "what the message must contain" ARGS...
expect_usage() {
	want=$1
	shift
	rc=0
	"$fsbench" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
	if [ "$rc" -ne 2 ]; then
		fail "fsbench $*: exit $rc, expected 2"
	elif ! grep -q -- "$want" "$tmp/err"; then
		fail "fsbench $*: message '$(cat "$tmp/err")' lacks '$want'"
	fi
}

expect_usage "no target directory"
expect_usage "--files '0'" --files 0 "$tmp/a"
expect_usage "--files 'x1'" --files x1 "$tmp/a"
expect_usage "--files '-5'" --files -5 "$tmp/a"
expect_usage "--threads '0'" --threads 1,0 "$tmp/a"
expect_usage "--threads '9999'" --threads 9999 "$tmp/a"
expect_usage "more threads than files" --files 2 --threads 4 "$tmp/a"
expect_usage "--size '12Q'" --size 12Q "$tmp/a"
expect_usage "--size '0'" --size 0 "$tmp/a"
expect_usage "--block '5000'" --block 5000 "$tmp/a"
expect_usage "--rand-size '100'" --rand-size 100 "$tmp/a"
expect_usage "--rand-reads ''" --rand-reads "" "$tmp/a"
expect_usage "unknown phase 'nope'" --phases create,nope "$tmp/a"
expect_usage "need --tar" --phases untar "$tmp/a"
expect_usage "not an uncompressed tar" --tar "$tmp/bad.tar" "$tmp/a"
expect_usage "$tmp/missing.tar" --tar "$tmp/missing.tar" "$tmp/a"
expect_usage "unknown option '--frobnicate'" --frobnicate "$tmp/a"
expect_usage "needs a value" "$tmp/a" --files
expect_usage "not a directory" "$tmp/src.tar"
expect_usage "$tmp/nowhere" "$tmp/nowhere"
expect_usage "given twice" x="$tmp/a" x="$tmp/b"
if [ "$(id -u)" -ne 0 ]; then
	expect_usage "--drop-caches" --drop-caches "$tmp/a"
fi
expect_usage "no device 'nodisk9'" --disks nodisk9 "$tmp/a"
expect_usage "--disks ','" --disks , "$tmp/a"

"$fsbench" --help >"$tmp/out" 2>&1 || fail "--help: exit $?"
grep -q "usage: fsbench" "$tmp/out" || fail "--help: no usage line"

# The whole disks, as fsbench --help defines them: the devices of
# /proc/diskstats with a /sys/block/NAME/device link. Empty: none readable.
disks=$(awk '{ n = $3; gsub("/", "!", n); print n }' /proc/diskstats 2>/dev/null |
	while read -r n; do
		if [ -e "/sys/block/$n/device" ]; then echo "$n"; fi
	done | tr '\n' ' ')
export FSBENCH_TEST_DISKS="$disks"

# A quick run of everything on two targets.
rc=0
"$fsbench" --quick --files 300 --threads 1,3 --tar "$tmp/src.tar" --grep needle \
	--json "$tmp/all.json" one="$tmp/a" "$tmp/b" >"$tmp/table" 2>"$tmp/err" || rc=$?
[ "$rc" -eq 0 ] || fail "quick run: exit $rc: $(cat "$tmp/err")"
for p in create stat readdir rename unlink seqwrite seqread randread randwrite untar sync \
	find grep tarc rm; do
	grep -q "^$p" "$tmp/table" || fail "table lacks phase $p"
done
[ -z "$(ls -A "$tmp/a")$(ls -A "$tmp/b")" ] || fail "quick run left files: $(ls -A "$tmp/a" "$tmp/b")"
json '
import json, sys
d = json.load(open(sys.argv[1]))
p = d["params"]
for k in ("files", "threads", "shared", "seq_size", "block", "rand_size", "rand_reads",
          "rand_writes", "tar", "grep", "phases", "drop_caches", "odirect", "seed", "quick"):
    assert k in p, "params lack " + k
assert p["files"] == 300 and p["threads"] == [1, 3] and p["quick"] is True
assert p["seq_size"] == 16 << 20 and p["grep"] == "needle"
assert [t["label"] for t in d["targets"]] == ["one", d["targets"][1]["dir"]]
phases = ["create", "stat", "readdir", "rename", "unlink"]
want = [(ph, 1, False) for ph in phases] + [(ph, 3, False) for ph in phases] + \
       [(ph, 3, True) for ph in phases] + \
       [(ph, 1, False) for ph in ("seqwrite", "seqread", "randread", "randwrite", "untar",
                                  "sync", "find", "grep", "tarc", "rm")]
for t in d["targets"]:
    assert t["failed"] is False, t["label"]
    got = [(r["phase"], r["threads"], r["shared"]) for r in t["results"]]
    assert got == want, (t["label"], got)
    for r in t["results"]:
        assert r["seconds"] >= 0 and r["value"] >= 0, r
        if r["phase"] in phases and r["phase"] != "readdir":
            assert r["ops"] == 300, r
            assert r["latency_us"]["samples"] == 300, r
        if r["phase"] == "readdir":
            # each thread lists its own directory; shared: each the whole one
            assert r["ops"] == (900 if r["shared"] else 300), r
        if r["phase"] in ("seqwrite", "seqread"):
            assert r["bytes"] == 16 << 20, r
        if r["phase"] == "randread":
            assert r["ops"] == 500, r
        if r["phase"] == "randwrite":
            assert r["ops"] == 50, r
        if r["phase"] == "find":
            assert r["entries"] == 7, r   # tree, src, d1, f1, link, d2, f2
        if r["phase"] == "tarc":
            assert r["bytes"] > 5000, r
        if r["phase"] in ("stat", "seqwrite", "randread"):
            lat = r["latency_us"]
            assert lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99_9"] <= lat["max"], r
import os
disks = os.environ["FSBENCH_TEST_DISKS"].split()
if not disks:
    assert d["machine"]["disks"] is None, d["machine"]
for t in d["targets"] if disks else []:
    assert d["machine"]["disks"] == disks, (d["machine"], disks)
    for r in t["results"]:
        n = r["disk_bytes_written"]
        assert type(n) is int and n >= 0, r
        if r["phase"] in ("seqwrite", "randwrite"):
            assert abs(r["disk_write_amplification"] - n / r["bytes"]) < 1e-3, r
        else:
            assert "disk_write_amplification" not in r, r
    # A target on a disk (or a partition of one) counted: the fsync of the
    # 16 MiB file wrote at least that much to it.
    dev = os.path.basename(t["source"])
    sys = os.path.realpath("/sys/class/block/" + dev)
    if os.path.exists(sys + "/partition"):
        dev = os.path.basename(os.path.dirname(sys))
    if t["source"].startswith("/dev/") and dev in disks and t["fstype"] in ("ext4", "xfs"):
        seq = [r for r in t["results"] if r["phase"] == "seqwrite"][0]
        assert seq["disk_bytes_written"] >= 16 << 20, seq
for t in d["targets"] if not disks else []:
    for r in t["results"]:
        assert "disk_bytes_written" not in r, r
' "$tmp/all.json" || fail "all.json: $(head -c 2000 "$tmp/all.json")"
if [ -n "$disks" ]; then
	grep -q "^disk MiB written" "$tmp/table" || fail "table lacks disk MiB written"
	grep -q "^disk bytes / bytes written" "$tmp/table" || fail "table lacks disk bytes / bytes written"
fi

# --disks: exactly the devices named are counted (a partition, a loop
# device: any line of /proc/diskstats).
one=$(awk 'NR == 1 { print $3 }' /proc/diskstats 2>/dev/null || true)
if [ -n "$one" ]; then
	rc=0
	"$fsbench" --quick --files 50 --threads 1 --phases create --disks "$one" \
		--json "$tmp/one.json" "$tmp/a" >"$tmp/table" 2>"$tmp/err" || rc=$?
	[ "$rc" -eq 0 ] || fail "--disks $one: exit $rc: $(cat "$tmp/err")"
	grep -q "^disk MiB written (--disks: $one)" "$tmp/table" ||
		fail "--disks $one: table: $(cat "$tmp/table")"
	json '
import json, sys
d = json.load(open(sys.argv[1]))
want = sys.argv[2].replace("/", "!")
assert d["params"]["disks"] == sys.argv[2], d["params"]
assert d["machine"]["disks"] == [want], d["machine"]
r = d["targets"][0]["results"][0]
assert type(r["disk_bytes_written"]) is int and r["disk_bytes_written"] >= 0, r
' "$tmp/one.json" "$one" || fail "one.json: $(cat "$tmp/one.json")"
fi

# Disk counters from a file that does not change: every phase wrote 0 bytes
# (so the file given is the one read); from no file: no disk numbers at all,
# and no failure.
if [ -n "$disks" ]; then
	cp /proc/diskstats "$tmp/diskstats"
	rc=0
	FSBENCH_DISKSTATS=$tmp/diskstats "$fsbench" --quick --files 50 --threads 1 \
		--phases create,seqwrite --json "$tmp/frozen.json" "$tmp/a" >/dev/null 2>"$tmp/err" ||
		rc=$?
	[ "$rc" -eq 0 ] || fail "frozen diskstats run: exit $rc: $(cat "$tmp/err")"
	json '
import json, sys
d = json.load(open(sys.argv[1]))
rs = d["targets"][0]["results"]
assert [r["phase"] for r in rs] == ["create", "seqwrite"], rs
for r in rs:
    assert r["disk_bytes_written"] == 0, r
assert rs[1]["disk_write_amplification"] == 0, rs[1]
' "$tmp/frozen.json" || fail "frozen.json: $(cat "$tmp/frozen.json")"
fi
rc=0
FSBENCH_DISKSTATS=$tmp/no-diskstats "$fsbench" --quick --files 50 --threads 1 \
	--phases create,seqwrite --json "$tmp/nodisk.json" "$tmp/a" >"$tmp/table" 2>"$tmp/err" ||
	rc=$?
[ "$rc" -eq 0 ] || fail "run without diskstats: exit $rc: $(cat "$tmp/err")"
! grep -q "disk MiB" "$tmp/table" || fail "run without diskstats: table has disk MiB written"
json '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["machine"]["disks"] is None, d["machine"]
rs = d["targets"][0]["results"]
assert [r["phase"] for r in rs] == ["create", "seqwrite"], rs
for r in rs:
    assert "disk_bytes_written" not in r and "disk_write_amplification" not in r, r
' "$tmp/nodisk.json" || fail "nodisk.json: $(cat "$tmp/nodisk.json")"

# --phases: exactly these, JSON on stdout (the table then goes to stderr).
rc=0
"$fsbench" --quick --files 50 --threads 2 --no-shared --phases create,seqread \
	--json - "$tmp/a" >"$tmp/sub.json" 2>"$tmp/err" || rc=$?
[ "$rc" -eq 0 ] || fail "subset run: exit $rc: $(cat "$tmp/err")"
grep -q "^create t2" "$tmp/err" || fail "subset run: no table on stderr"
json '
import json, sys
d = json.load(open(sys.argv[1]))
got = [(r["phase"], r["threads"], r["shared"]) for r in d["targets"][0]["results"]]
assert got == [("create", 2, False), ("seqread", 1, False)], got
assert d["params"]["phases"] == ["create", "seqread"]
assert d["params"]["shared"] is False
' "$tmp/sub.json" || fail "sub.json: $(cat "$tmp/sub.json")"
[ -z "$(ls -A "$tmp/a")" ] || fail "subset run left files: $(ls -A "$tmp/a")"

# A directory fsbench cannot write in is refused up front (root writes anyway).
if [ "$(id -u)" -ne 0 ]; then
	mkdir "$tmp/ro" && chmod 555 "$tmp/ro"
	expect_usage "not writable" "$tmp/ro"
fi

if [ "$fails" -ne 0 ]; then
	echo "test_fsbench: $fails failure(s)" >&2
	exit 1
fi
echo "test_fsbench: ok"
