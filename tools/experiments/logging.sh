#!/bin/sh
# The design note's first question: logging throughput against latency,
# one fsync per write (fsync-per-op) against group commit (sync), with the
# locked baseline and batch, RocksDB and LevelDB beside them (sync=true for
# sync, sync=false for batch). YCSB A (50% updates, zipfian), 1 to 32
# threads; each point is one thread count.
#
#   tools/experiments/logging.sh        about 3 minutes
#
# Writes $OUT/logging.csv, logging.json, logging-latency.png (update p99
# against throughput) and logging-threads.png (throughput against threads).
. "$(dirname "$0")/common.sh"
setup

secs=2
[ "$QUICK" = 1 ] && secs=0.5
"$KVBENCH" ycsb --workload A --threads 1,2,4,8,16,32 --records 50000 --seconds $secs \
	--durability fsync-per-op,locked,sync,batch --backend libkv,rocksdb,leveldb \
	--dir "$STORE" --csv "$OUT/logging.csv" --json "$OUT/logging.json" >"$OUT/logging.txt"

# One data block per backend and mode: threads, ops/s, update p50, p99.
dat=$OUT/logging.dat
: >"$dat"
series=""
for s in libkv:fsync-per-op libkv:locked libkv:sync libkv:batch rocksdb:sync rocksdb:batch \
	leveldb:sync leveldb:batch; do
	b=${s%%:*}
	m=${s#*:}
	select_rows "$OUT/logging.csv" "\$1 == \"$b\" && \$2 == \"$m\" && \$4 == \"A\" && \$12 == \"update\"" |
		awk -F, '{ print $3, $11, $17, $19 }' >>"$dat"
	printf '\n\n' >>"$dat"
	series="$series $b-$m"
done

gnuplot <<GP
set terminal pngcairo size 900,600 font ",10"
set colorsequence podo
set datafile separator " "
set grid
set key outside right
set logscale xy
set output "$OUT/logging-latency.png"
set title "YCSB A (zipfian, 1 KB values): update p99 vs throughput, threads 1..32"
set xlabel "throughput (ops/s, reads + updates)"
set ylabel "update p99 latency (us)"
names = "$series"
plot for [i=0:7] "$dat" index i using 2:4 with linespoints title word(names, i + 1)
set output "$OUT/logging-threads.png"
set title "YCSB A (zipfian, 1 KB values): throughput vs client threads"
set xlabel "threads"
set ylabel "throughput (ops/s)"
set logscale x 2
plot for [i=0:7] "$dat" index i using 1:2 with linespoints title word(names, i + 1)
GP
echo "logging: $OUT/logging-latency.png $OUT/logging-threads.png"
