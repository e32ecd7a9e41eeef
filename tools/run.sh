#!/bin/sh
# The main job of kvfs.
#
#   tools/run.sh [kvbench-args...]
#
# Until the filesystem (fs/, mkfs/) lands, the main job is the storage
# engine's write path: install the dependencies, build Release in
# build-release/, and run the write-path benchmark, kvbench, briefly on
# stores under /var/tmp/kvfs-run (KVFS_RUN_DIR overrides). The stores are
# kept there for inspection and replaced by the next run. With arguments,
# they are given to kvbench instead of the short default experiment (for
# instance: tools/run.sh all). When the filesystem lands, this becomes
# "mount a kvfs".
set -eu

cd "$(dirname "$0")/.."
tools/install-deps.sh

jobs=${JOBS:-2}
dir=${KVFS_RUN_DIR:-/var/tmp/kvfs-run}

echo "== run.sh: Release build in build-release/"
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release --log-level=WARNING >/dev/null
make -C build-release -j"$jobs" --no-print-directory kvbench

mkdir -p "$dir"
rm -rf "$dir"/kvbench-*
if [ $# -eq 0 ]; then
	# Group commit against one fsync per write, 1 and 8 threads: ~15 s.
	set -- commit --threads 1,8 --modes fsync-per-op,sync,batch --seconds 2
fi
cmd=$1
shift
echo "== run.sh: build-release/tools/kvbench $cmd --dir $dir --keep $*"
status=0
build-release/tools/kvbench "$cmd" --dir "$dir" --keep "$@" || status=$?
echo "== run.sh: the stores are in $dir:"
ls -d "$dir"/kvbench-* 2>/dev/null || echo "   (none)"
exit $status
