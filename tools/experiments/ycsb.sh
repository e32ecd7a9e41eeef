#!/bin/sh
# YCSB A-F side by side: libkv, RocksDB and LevelDB, 8 threads, zipfian
# (D: latest), 100k records of 10 x 100 bytes; durability sync (RocksDB and
# LevelDB sync=true), then batch (sync=false). Workloads run in YCSB's order
# on one loaded store per backend and mode.
#
#   tools/experiments/ycsb.sh           about 6 minutes
#
# Writes $OUT/ycsb.csv, ycsb.json, ycsb.txt (kvbench's tables) and ycsb.md
# (the tables of the README's Performance section).
. "$(dirname "$0")/common.sh"
setup

secs=8
bsecs=4
[ "$QUICK" = 1 ] && secs=0.5 bsecs=0.5
"$KVBENCH" ycsb --workload A,B,C,F,D,E --threads 8 --records 100000 --seconds $secs \
	--durability sync --backend libkv,rocksdb,leveldb --dir "$STORE" \
	--csv "$OUT/ycsb-sync.csv" --json "$OUT/ycsb-sync.json" >"$OUT/ycsb-sync.txt"
"$KVBENCH" ycsb --workload A,B,C,F,D,E --threads 8 --records 100000 --seconds $bsecs \
	--durability batch --backend libkv,rocksdb,leveldb --dir "$STORE" \
	--csv "$OUT/ycsb-batch.csv" --json "$OUT/ycsb-batch.json" >"$OUT/ycsb-batch.txt"
{
	head -1 "$OUT/ycsb-sync.csv"
	tail -n +2 "$OUT/ycsb-sync.csv"
	tail -n +2 "$OUT/ycsb-batch.csv"
} >"$OUT/ycsb.csv"

# The markdown tables, from the CSV alone.
awk -F, '
NR == 1 { next }
$4 == "load" { next }
{
	key = $1 SUBSEP $2 SUBSEP $4
	tput[key] = $11
	mode[$2] = 1
	if ($12 == "read") rp99[key] = $19
	lat[++n] = sprintf("| %s | %s | %s | %s | %.1f | %.1f | %.1f | %.1f | %.1f |", $2, $4, $1, \
		$12, $17, $18, $19, $20, $21)
	if ($1 == "libkv" && $25 != "" && !(key in lb)) {
		lb[key] = 1
		lbrow[++nlb] = sprintf("| %s | %s | %.1f | %.1f | %.1f%% | %d |", $2, $4, \
			$22 / 1048576, $24 / 1048576, $22 ? 100 * $23 / $22 : 0, $25)
	}
}
function row(label, b, m,    w, s) {
	s = "| " label " |"
	for (w = 1; w <= 6; w++)
		s = s sprintf(" %.0f |", tput[b, m, W[w]])
	print s
}
function ratio_row(label, b, m,    w, s) {
	s = "| " label " |"
	for (w = 1; w <= 6; w++)
		s = s sprintf(" %.2fx |", tput[b, m, W[w]] ? tput["libkv", m, W[w]] / tput[b, m, W[w]] : 0)
	print s
}
END {
	split("A B C D E F", W, " ")
	for (mi = 1; mi <= 2; mi++) {
		m = mi == 1 ? "sync" : "batch"
		if (!(m in mode)) continue
		printf "\nThroughput, ops/s, 8 threads, durability %s%s:\n\n", m, \
			m == "sync" ? " (RocksDB/LevelDB sync=true)" : " (RocksDB/LevelDB sync=false)"
		print "| store | A | B | C | D | E | F |"
		print "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
		row("libkv", "libkv", m); row("RocksDB", "rocksdb", m); row("LevelDB", "leveldb", m)
		ratio_row("libkv / RocksDB", "rocksdb", m); ratio_row("libkv / LevelDB", "leveldb", m)
		if (rp99["libkv", m, "C"] > 0)
			printf "\nlibkv read p99 (%s): %.1f us in A (50%% updates) vs %.1f us in C (no writers): %.2fx\n", \
				m, rp99["libkv", m, "A"], rp99["libkv", m, "C"], \
				rp99["libkv", m, "A"] / rp99["libkv", m, "C"]
	}
	print "\nLatency per operation, us:\n"
	print "| durability | workload | store | op | p50 | p90 | p99 | p99.9 | max |"
	print "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"
	for (i = 1; i <= n; i++) print lat[i]
	print "\nlibkv log buffer at the end of each run (design note, point 3):\n"
	print "| durability | workload | buffer MiB | dead MiB | live | versions replaced in place |"
	print "| --- | --- | ---: | ---: | ---: | ---: |"
	for (i = 1; i <= nlb; i++) print lbrow[i]
}' "$OUT/ycsb.csv" >"$OUT/ycsb.md"
echo "ycsb: $OUT/ycsb.md"
