#!/bin/sh
# Reproduce the README's Performance section: build kvbench (Release) with
# RocksDB and LevelDB (installed if missing, as root), run ycsb.sh,
# logging.sh and readlatency.sh, and gather their tables and plots in
# $OUT (default tools/experiments/results/): summary.md and the PNGs.
#
#   tools/experiments/all.sh            about 12 minutes on 2 cores
. "$(dirname "$0")/common.sh"
setup
here=$(dirname "$0")
"$here/ycsb.sh"
"$here/logging.sh"
"$here/readlatency.sh"
{
	echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 |
		sed 's/^ //')), $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM," \
		"kernel $(uname -r), $(df -T "$STORE" | awk 'NR == 2 { print $2 }') at $STORE"
	cat "$OUT/ycsb.md"
} >"$OUT/summary.md"
echo "all: $OUT/summary.md"
