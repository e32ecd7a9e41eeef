#!/bin/sh
# The design note's second question: read latency on a highly skewed
# dataset, with readers never blocked by writers. YCSB C (no writers), B (5%
# updates) and A (50% updates), zipfian, 8 threads: libkv sync (MVCC reads of
# committed versions) against libkv locked (the writer holds the key's lock
# across its fsync, readers wait), RocksDB and LevelDB with sync=true.
#
#   tools/experiments/readlatency.sh    about 2 minutes
#
# Writes $OUT/readlatency.csv, readlatency.json and readlatency.png (read
# p50/p90/p99/p99.9 per store and workload).
. "$(dirname "$0")/common.sh"
setup

secs=4
[ "$QUICK" = 1 ] && secs=0.5
"$KVBENCH" ycsb --workload C,B,A --threads 8 --records 100000 --seconds $secs \
	--durability sync,locked --backend libkv,rocksdb,leveldb --dir "$STORE" \
	--csv "$OUT/readlatency.csv" --json "$OUT/readlatency.json" >"$OUT/readlatency.txt"

# One row per store and workload: label, p50, p90, p99, p99.9 of reads.
dat=$OUT/readlatency.dat
select_rows "$OUT/readlatency.csv" '$12 == "read" && $4 != "load"' |
	awk -F, '{ printf "%s-%s-%s %s %s %s %s\n", $1, $2, $4, $17, $18, $19, $20 }' >"$dat"

gnuplot <<GP
set terminal pngcairo size 1000,600 font ",10"
set output "$OUT/readlatency.png"
set title "Read latency under writes, zipfian, 8 threads (C: none, B: 5%, A: 50% updates)"
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.8 border -1
set logscale y
set ylabel "read latency (us)"
set grid y
set xtics rotate by -40
set key top left
plot "$dat" using 2:xtic(1) title "p50", "" using 3 title "p90", "" using 4 title "p99", \
	"" using 5 title "p99.9"
GP
echo "readlatency: $OUT/readlatency.png"
