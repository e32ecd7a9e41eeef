#!/bin/sh
# The main job of kvfs: mount a kvfs.
#
#   tools/run.sh [kvfs options...]        e.g. tools/run.sh -o durability=sync
#
# Installs the dependencies, builds the Release configuration in
# build-release/, makes a store if there is none, mounts it, and says where
# both are and how to unmount. Running it again while mounted says so and
# changes nothing.
#
#   KVFS_STORE  the store directory   (default /var/tmp/kvfs/store)
#   KVFS_MNT    the mountpoint        (default /var/tmp/kvfs/mnt, created)
#   JOBS        make -j               (default 2)
set -eu

cd "$(dirname "$0")/.."
tools/install-deps.sh

jobs=${JOBS:-2}
store=${KVFS_STORE:-/var/tmp/kvfs/store}
mnt=${KVFS_MNT:-/var/tmp/kvfs/mnt}

if mountpoint -q "$mnt" 2>/dev/null; then
	what=$(findmnt -n -o FSTYPE,SOURCE --mountpoint "$mnt" 2>/dev/null || true)
	case "$what" in
	fuse.kvfs*)
		echo "== run.sh: a kvfs is already mounted on $mnt (store: ${what#fuse.kvfs })"
		echo "   unmount it with: fusermount3 -u $mnt"
		exit 0
		;;
	*)
		echo "run.sh: $mnt is already a mountpoint (${what:-unknown}), not a kvfs;" \
			"choose another with KVFS_MNT=..." >&2
		exit 1
		;;
	esac
fi

echo "== run.sh: Release build in build-release/"
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release --log-level=WARNING >/dev/null
make -C build-release -j"$jobs" --no-print-directory kvfs-daemon mkfs.kvfs
kvfs=build-release/fs/kvfs
mkfs=build-release/mkfs/mkfs.kvfs

# A store is made only where there is nothing: an existing directory with
# files in it is given to kvfs, which says what is wrong if it is no store.
if [ ! -d "$store" ] || [ -z "$(ls -A "$store")" ]; then
	mkdir -p "$(dirname "$store")"
	echo "== run.sh: no store in $store: making one"
	"$mkfs" "$store"
fi

mkdir -p "$mnt"
# As root, a mount every user can use (the kernel still checks permissions).
extra=""
[ "$(id -u)" -eq 0 ] && extra="-o allow_other"
echo "== run.sh: $kvfs $store $mnt $extra $*"
# shellcheck disable=SC2086 # $extra is one option or nothing
"$kvfs" "$store" "$mnt" $extra "$@"

echo "== run.sh: kvfs is mounted"
echo "   store:       $store"
echo "   mounted on:  $mnt"
df -h "$mnt" | sed 's/^/   /'
echo "   unmount:     fusermount3 -u $mnt   (the daemon then makes everything durable"
echo "                and exits; the store stays for the next mount)"
echo "   mount again: tools/run.sh, or $kvfs $store $mnt"
