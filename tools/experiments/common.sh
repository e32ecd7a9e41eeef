#!/bin/sh
# Sourced by the experiment scripts: the Release kvbench, the packages the
# comparisons need, and where results go.
#
#   BUILD=DIR   the Release build directory (default: build-release in the repo)
#   OUT=DIR     results (default: tools/experiments/results)
#   STORE=DIR   where the stores are made (default /var/tmp)
#   QUICK=1     shorter runs, for a smoke test of the scripts
set -eu

repo=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$repo/build-release}
OUT=${OUT:-$repo/tools/experiments/results}
STORE=${STORE:-/var/tmp}
QUICK=${QUICK:-0}
mkdir -p "$OUT"

# RocksDB and LevelDB for the side-by-side runs, gnuplot for the plots. Only
# here: the build and the test suite never need them.
need_pkgs() {
	missing=""
	for p in librocksdb-dev libleveldb-dev gnuplot-nox; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
			missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "experiments: missing packages:$missing (run as root to install them)" >&2
		exit 1
	fi
	echo "experiments: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq $missing >/dev/null 2>&1 ||
		{ apt-get update -qq >/dev/null && apt-get install -y -qq $missing >/dev/null; }
}

# Configure (again: cmake finds RocksDB and LevelDB once installed) and build.
build_kvbench() {
	cmake -S "$repo" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
	make -C "$BUILD" -j"${JOBS:-2}" kvbench >/dev/null
	KVBENCH=$BUILD/tools/kvbench
	for b in rocksdb leveldb; do
		if ! "$KVBENCH" ycsb --backend $b --ops 1 --records 1 --dir "$STORE" \
			>/dev/null 2>&1; then
			echo "experiments: kvbench was built without $b" >&2
			exit 1
		fi
	done
}

setup() {
	need_pkgs
	build_kvbench
}

# Rows of a kvbench CSV: select(file, awk condition) prints matching rows.
select_rows() {
	awk -F, -v OFS=, "NR > 1 && ($2)" "$1"
}
