#!/bin/bash
# kvfs against ext4 and against libfuse's passthrough_ll over ext4 (the FUSE
# floor), with tools/fsbench, in one run: the README's "Filesystem
# performance" table.
#
#   tools/experiments/fsbench.sh        as root; 15-20 minutes on 2 cores
#   QUICK=1 tools/experiments/fsbench.sh   smoke test of the script, ~1 minute
#
# What it does: installs what it needs (fuse3, libfuse3-dev, linux-source-6.1,
# python3; apt-get, only what is missing), builds kvfs, mkfs.kvfs and fsbench
# in Release ($BUILD), compiles a passthrough example from Debian's libfuse3
# examples in a temporary directory (see PT below), unpacks the Linux source tarball once to
# $CACHE/linux-source-6.1.tar (so xz is not measured), and under $WORK makes:
#   ext4/                 a plain directory on the machine's ext4 (the target)
#   pt-lower/ pt-mnt/     passthrough_ll -o source=pt-lower,$PT_OPTS on pt-mnt
#                         (PT=hl: passthrough on pt-mnt, target pt-mnt/$WORK/pt-lower)
#   kvfs-store/ kvfs/     kvfs -o durability=batch
#   kvfs-nowb-store/ kvfs-nowb/   kvfs -o durability=batch,no_writeback_cache
#   kvfs-sync-store/ kvfs-sync/   kvfs -o durability=sync (creates, 1 and 4 threads)
#   pt-dp-mnt/            the same passthrough with -o default_permissions, on
#                         pt-lower too (metadata and tree phases): the floor of a
#                         filesystem that lets the kernel check permissions, as
#                         kvfs must for POSIX ACLs (FUSE_POSIX_ACL implies
#                         default_permissions; the kernel then asks for a
#                         directory's attributes again after every change to it)
# Every daemon runs in the foreground as a child of this script; an EXIT trap
# unmounts everything it mounted and waits for the daemons, even after a
# failure or ^C. Then it runs fsbench on ext4, passthrough and kvfs (every
# phase), the metadata and tree phases on pt-dp-mnt, and the create phase on
# kvfs-sync, and writes to $OUT:
#   fsbench.txt    fsbench's tables, the ratio table and the sync scaling
#   fsbench.json   both fsbench JSONs, the ratios and this script's settings
#   fsbench.md     the tables for the README
# With PERF=1 it then records `perf record -g` of the kvfs daemon during a
# create run (4 threads), a sequential write and an untar, and writes the
# top symbols of each phase's time window to $OUT/fsbench-perf.txt (the
# perf.data files stay in $WORK).
#
# Knobs (environment):
#   FILES=100000   files per metadata variant      SIZE=1G     sequential file
#   RAND_SIZE=256M random I/O file                 RAND_READS=20000 RAND_WRITES=2000
#   THREADS=1,4    metadata thread counts          TAR=FILE    another tarball
#   DROP_CACHES=1  drop the machine's caches before reading phases (root)
#   PT=auto|ll|hl  the FUSE floor. ll: passthrough_ll.c (low-level API, like
#                  kvfs; caches names and attributes 1 s, as kvfs does). It holds
#                  an O_PATH fd for every inode the kernel knows, so 100k files
#                  need RLIMIT_NOFILE > 100k: raised to 1M, which takes
#                  CAP_SYS_RESOURCE when the hard limit is lower. hl:
#                  passthrough.c (high-level API, paths, no fd per inode), with
#                  two changes in the temporary copy: its name/attribute
#                  timeouts from 0 to kvfs's 1 s (0 would send every stat to
#                  the daemon) and its fsync, a stub, made an fsync.
#                  auto (default): ll if the limit can be raised, else hl.
#   PT_OPTS=writeback  passthrough_ll options (kvfs uses the writeback cache too)
#   BUILD=DIR (build-release)  OUT=DIR (tools/experiments/results)
#   WORK=DIR (/var/tmp/fsbench, removed at the end unless KEEP=1)
#   CACHE=DIR (/var/tmp/fsbench-cache)  JOBS=2  QUICK=0
#   PERF=0|1|only  only: the perf runs without the benchmarks
#   NOWB=1         also kvfs -o no_writeback_cache, a column of its own (0: not)
#   PT_DP=1        also the passthrough with default_permissions (0: not)
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$repo/build-release}
OUT=${OUT:-$repo/tools/experiments/results}
WORK=${WORK:-/var/tmp/fsbench}
case $WORK in /*) ;; *) WORK=$(pwd)/$WORK ;; esac
CACHE=${CACHE:-/var/tmp/fsbench-cache}
QUICK=${QUICK:-0}
FILES=${FILES:-100000}
SIZE=${SIZE:-1G}
RAND_SIZE=${RAND_SIZE:-256M}
RAND_READS=${RAND_READS:-20000}
RAND_WRITES=${RAND_WRITES:-2000}
THREADS=${THREADS:-1,4}
PT=${PT:-auto}
PT_OPTS=${PT_OPTS:-writeback}
PERF=${PERF:-0}
NOWB=${NOWB:-1}
PT_DP=${PT_DP:-1}
KEEP=${KEEP:-0}
DROP_CACHES=${DROP_CACHES:-1}
if [ "$QUICK" = 1 ]; then
	FILES=${QUICK_FILES:-3000} SIZE=32M RAND_SIZE=16M RAND_READS=1000 RAND_WRITES=100
fi

say() { echo "== fsbench.sh: $*" >&2; }
die() {
	echo "fsbench.sh: $*" >&2
	exit 1
}

[ "$(id -u)" -eq 0 ] || die "run as root (mounts, apt-get, drop_caches)"
extra_pkgs=""
[ "$QUICK" = 1 ] || [ -n "${TAR:-}" ] || extra_pkgs=linux-source-6.1
[ "$PERF" = 0 ] || extra_pkgs="$extra_pkgs linux-perf"
# shellcheck disable=SC2086 # a list of package names
"$repo/tools/install-deps.sh" fuse3 libfuse3-dev python3 $extra_pkgs

# ---- mounts, and the trap that always undoes them -------------------------
declare -a MNTS=() PIDS=()
ptdir=""

is_mounted() { awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo; }

cleanup() {
	local rc=$? i
	set +e
	for i in "${!MNTS[@]}"; do
		local m=${MNTS[$i]} p=${PIDS[$i]} n=0
		while is_mounted "$m" && [ $n -lt 20 ]; do
			fusermount3 -u "$m" 2>/dev/null || sleep 0.5
			n=$((n + 1))
		done
		is_mounted "$m" && fusermount3 -uz "$m"
		# kvfs makes everything durable before it exits: give it time.
		n=0
		while kill -0 "$p" 2>/dev/null && [ $n -lt 600 ]; do
			sleep 0.1
			n=$((n + 1))
		done
		kill -0 "$p" 2>/dev/null && { echo "fsbench.sh: killing daemon $p" >&2; kill "$p"; }
		wait "$p" 2>/dev/null
	done
	[ -n "$ptdir" ] && rm -rf "$ptdir"
	if [ "$KEEP" != 1 ] && [ -d "$WORK" ]; then
		rm -rf "$WORK/ext4" "$WORK/pt-lower" "$WORK/kvfs-store" "$WORK/kvfs-nowb-store" \
			"$WORK/kvfs-sync-store" \
			"$WORK/small.tar"
	fi
	[ $rc -eq 0 ] || echo "fsbench.sh: failed (exit $rc); daemon logs in $WORK/*.log" >&2
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_daemon NAME MNT CMD...: CMD in the foreground as a background job;
# waits until MNT is in the mount table.
start_daemon() {
	local name=$1 mnt=$2 n=0
	shift 2
	"$@" >"$WORK/$name.log" 2>&1 &
	MNTS+=("$mnt")
	PIDS+=($!)
	until is_mounted "$mnt"; do
		kill -0 $! 2>/dev/null || die "$name exited before mounting: $(cat "$WORK/$name.log")"
		[ $n -lt 600 ] || die "$name: not mounted after 60 s"
		sleep 0.1
		n=$((n + 1))
	done
}

# ---- build ------------------------------------------------------------------
say "Release build in $BUILD"
cmake -S "$repo" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release --log-level=WARNING >/dev/null
make -C "$BUILD" -j"${JOBS:-2}" --no-print-directory kvfs-daemon mkfs.kvfs fsbench >/dev/null
KVFS=$BUILD/fs/kvfs
MKFS=$BUILD/mkfs/mkfs.kvfs
FSBENCH=$BUILD/tools/fsbench

examples=/usr/share/doc/libfuse3-dev/examples
mkdir -p "$WORK"
if [ "$PT" = auto ]; then
	PT=hl
	(ulimit -n 1048576) 2>/dev/null && PT=ll
	[ "$PT" = ll ] || say "open files cannot be raised above $(ulimit -Hn): passthrough.c (PT=hl)"
fi
case $PT in
ll) ptsrc=passthrough_ll ;;
hl) ptsrc=passthrough ;;
*) die "PT=$PT: auto, ll or hl" ;;
esac
ptdir=$(mktemp -d /tmp/fsbench-pt.XXXXXX)
for f in $ptsrc.c passthrough_helpers.h; do
	if [ -f "$examples/$f" ]; then
		cp "$examples/$f" "$ptdir/"
	elif [ -f "$examples/$f.gz" ]; then
		gunzip -c "$examples/$f.gz" >"$ptdir/$f"
	else
		die "$examples/$f: not found (package libfuse3-dev)"
	fi
done
if [ "$PT" = hl ]; then
	sed -i 's/cfg->\(entry\|attr\|negative\)_timeout = 0;/cfg->\1_timeout = 1;/' "$ptdir/$ptsrc.c"
	# Its fsync is a stub returning 0: make it one, or the fsync phases
	# would compare kvfs's durable writes with nothing.
	sed -i '/^static int xmp_fsync(/,/^}/s/^\treturn 0;/\treturn (isdatasync ? fdatasync(fi->fh) : fsync(fi->fh)) ? -errno : 0;/' \
		"$ptdir/$ptsrc.c"
	if [ "$(grep -c '_timeout = 1;' "$ptdir/$ptsrc.c")" != 3 ] ||
		! grep -q 'fdatasync(fi->fh)' "$ptdir/$ptsrc.c"; then
		die "$examples/$ptsrc.c: its timeouts or fsync are not where expected"
	fi
fi
# libfuse's build defines these from its configure checks; without them
# the examples lack utimens (tar fails), fallocate and xattrs.
# shellcheck disable=SC2046 # pkg-config prints several words
gcc -O2 -DHAVE_UTIMENSAT -DHAVE_POSIX_FALLOCATE -DHAVE_FALLOCATE -DHAVE_SETXATTR \
	-DHAVE_COPY_FILE_RANGE -o "$ptdir/$ptsrc" "$ptdir/$ptsrc.c" $(pkg-config fuse3 --cflags --libs)
say "$ptsrc from $examples (libfuse $(pkg-config --modversion fuse3))"

# ---- the tarball --------------------------------------------------------------
mkdir -p "$WORK" "$CACHE" "$OUT"
if [ -n "${TAR:-}" ]; then
	tarball=$TAR
elif [ "$QUICK" = 1 ]; then
	tarball=$WORK/small.tar
	tar -cf "$tarball" -C "$repo" kv fs tests
else
	tarball=$CACHE/linux-source-6.1.tar
	if [ ! -s "$tarball" ]; then
		say "decompressing /usr/src/linux-source-6.1.tar.xz to $tarball (once)"
		xz -dc /usr/src/linux-source-6.1.tar.xz >"$tarball.part"
		mv "$tarball.part" "$tarball"
	fi
fi

# ---- targets ------------------------------------------------------------------
for m in pt-mnt pt-dp-mnt kvfs kvfs-nowb kvfs-sync; do
	is_mounted "$WORK/$m" && die "$WORK/$m is mounted (an earlier run?): unmount it first"
done
rm -rf "$WORK/ext4" "$WORK/pt-lower" "$WORK/kvfs-store" "$WORK/kvfs-nowb-store" \
	"$WORK/kvfs-sync-store"
mkdir -p "$WORK/ext4" "$WORK/pt-lower" "$WORK/pt-mnt" "$WORK/pt-dp-mnt" "$WORK/kvfs" \
	"$WORK/kvfs-nowb" "$WORK/kvfs-sync"
fstype=$(df --output=fstype "$WORK/ext4" | tail -1)
[ "$fstype" = ext4 ] || say "warning: $WORK is on $fstype, not ext4"

if [ "$PT" = ll ]; then
	# An O_PATH fd for every inode the kernel knows: 100k files need more
	# than the usual 20k open files.
	start_daemon passthrough "$WORK/pt-mnt" bash -c 'ulimit -n 1048576 && exec "$@"' - \
		"$ptdir/$ptsrc" -f -o "source=$WORK/pt-lower${PT_OPTS:+,$PT_OPTS}" "$WORK/pt-mnt"
	pt_target=$WORK/pt-mnt
	if [ "$PT_DP" = 1 ]; then
		start_daemon passthrough-dp "$WORK/pt-dp-mnt" bash -c 'ulimit -n 1048576 && exec "$@"' - \
			"$ptdir/$ptsrc" -f -o "source=$WORK/pt-lower,default_permissions${PT_OPTS:+,$PT_OPTS}" \
			"$WORK/pt-dp-mnt"
		pt_dp_target=$WORK/pt-dp-mnt
	fi
else
	# passthrough.c mirrors / : the lower directory is under its own path.
	start_daemon passthrough "$WORK/pt-mnt" "$ptdir/$ptsrc" -f "$WORK/pt-mnt"
	pt_target=$WORK/pt-mnt$WORK/pt-lower
	if [ "$PT_DP" = 1 ]; then
		start_daemon passthrough-dp "$WORK/pt-dp-mnt" "$ptdir/$ptsrc" -f -o default_permissions \
			"$WORK/pt-dp-mnt"
		pt_dp_target=$WORK/pt-dp-mnt$WORK/pt-lower
	fi
fi
"$MKFS" "$WORK/kvfs-store" >/dev/null
start_daemon kvfs "$WORK/kvfs" "$KVFS" "$WORK/kvfs-store" "$WORK/kvfs" -o durability=batch -f
kvfs_pid=${PIDS[-1]}
nowb=()
if [ "$NOWB" = 1 ]; then
	"$MKFS" "$WORK/kvfs-nowb-store" >/dev/null
	start_daemon kvfs-nowb "$WORK/kvfs-nowb" "$KVFS" "$WORK/kvfs-nowb-store" "$WORK/kvfs-nowb" \
		-o durability=batch,no_writeback_cache -f
	nowb=(kvfs-nowb="$WORK/kvfs-nowb")
fi
"$MKFS" "$WORK/kvfs-sync-store" >/dev/null
start_daemon kvfs-sync "$WORK/kvfs-sync" \
	"$KVFS" "$WORK/kvfs-sync-store" "$WORK/kvfs-sync" -o durability=sync -f

# ---- runs ---------------------------------------------------------------------
run_benchmarks() {
	common=(--files "$FILES" --threads "$THREADS" --size "$SIZE" --rand-size "$RAND_SIZE"
		--rand-reads "$RAND_READS" --rand-writes "$RAND_WRITES")
	[ "$DROP_CACHES" = 1 ] && common+=(--drop-caches)
	start=$(date +%s)
	say "fsbench on ext4, passthrough, kvfs (batch)${nowb:+, kvfs (no_writeback_cache)}"
	"$FSBENCH" "${common[@]}" --tar "$tarball" --json "$WORK/main.json" \
		ext4="$WORK/ext4" passthrough="$pt_target" kvfs="$WORK/kvfs" "${nowb[@]}" |
		tee "$WORK/main.txt"
	echo '{"targets": []}' >"$WORK/dp.json"
	if [ "$PT_DP" = 1 ]; then
		say "fsbench metadata and tree phases on passthrough -o default_permissions"
		"$FSBENCH" "${common[@]}" --tar "$tarball" --phases meta,tree --json "$WORK/dp.json" \
			passthrough-dp="$pt_dp_target" | tee "$WORK/dp.txt"
	fi
	say "fsbench create on kvfs durability=sync, threads 1 and 4"
	"$FSBENCH" --files "$FILES" --threads 1,4 --no-shared --phases create \
		--json "$WORK/sync.json" kvfs-sync="$WORK/kvfs-sync" | tee "$WORK/sync.txt"
	secs=$(($(date +%s) - start))

	# ---- tables -------------------------------------------------------------------
	machine="$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')),"
	machine="$machine $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM, kernel $(uname -r),"
	machine="$machine $fstype on $(df --output=source "$WORK/ext4" | tail -1)"
	settings="FILES=$FILES THREADS=$THREADS SIZE=$SIZE RAND_SIZE=$RAND_SIZE"
	settings="$settings RAND_READS=$RAND_READS RAND_WRITES=$RAND_WRITES DROP_CACHES=$DROP_CACHES"
	settings="$settings PT=$PT$([ "$PT" = ll ] && echo " PT_OPTS=$PT_OPTS") QUICK=$QUICK tarball=$(basename "$tarball")"

	python3 - "$WORK/main.json" "$WORK/sync.json" "$WORK/dp.json" "$OUT" "$machine" "$settings" \
		"$secs" <<-'EOF'
	import json, sys

	main, sync, dp = (json.load(open(p)) for p in sys.argv[1:4])
	out, machine, settings, secs = sys.argv[4], sys.argv[5], sys.argv[6], int(sys.argv[7])
	tgt = {t["label"]: t for t in main["targets"] + dp["targets"]}
	META = ("create", "stat", "readdir", "rename", "unlink")
	TREE = ("untar", "sync", "find", "grep", "tarc", "rm")

	def key(r):
	    return (r["phase"], r["threads"], r["shared"])

	def name(r):
	    if r["phase"] in META:
	        return "%s, %d thread%s%s" % (r["phase"], r["threads"], "s" if r["threads"] > 1 else "",
	                                      ", shared dir" if r["shared"] else "")
	    return {"seqwrite": "sequential write + fsync", "seqread": "sequential read",
	            "randread": "4 KiB random read", "randwrite": "4 KiB random write + fsync",
	            "untar": "untar", "sync": "sync after untar", "find": "find", "grep": "grep -r",
	            "tarc": "tar c", "rm": "rm -rf"}[r["phase"]]

	def goal(r, to_ext4, to_pt):
	    """The issue's expectation for this row, and whether it is met."""
	    p = r["phase"]
	    if p in META:
	        ok = to_pt >= 1 and to_ext4 >= 0.5
	        return ">= passthrough, >= 0.5x ext4: " + ("yes" if ok else "no")
	    if p == "untar":
	        return "<= 1.5x ext4 time: " + ("yes" if to_ext4 <= 1.5 else "no")
	    if p in ("seqwrite", "seqread"):
	        return ">= 0.8x passthrough: " + ("yes" if to_pt >= 0.8 else "no")
	    return ""

	rows, ratios = [], []
	kv = {key(r): r for r in tgt["kvfs"]["results"]}
	by = {l: {key(r): r for r in t["results"]} for l, t in tgt.items()}
	for r in tgt["kvfs"]["results"]:
	    k = key(r)
	    e, p = by["ext4"].get(k), by["passthrough"].get(k)
	    if not e or not p:
	        continue
	    tree = r["phase"] in TREE
	    # Times: kvfs / other (lower is better); rates: kvfs / other (higher is better).
	    to_e = r["value"] / e["value"] if e["value"] > 0 else float("nan")
	    to_p = r["value"] / p["value"] if p["value"] > 0 else float("nan")
	    fmt = "%.2f" if tree else "%.0f"
	    rx = lambda x: "-" if x != x else "%.2fx" % x
	    extra = ""
	    if "kvfs-nowb" in by:
	        n = by["kvfs-nowb"].get(k)
	        n_p = n["value"] / p["value"] if n and p["value"] > 0 else float("nan")
	        extra = " %s | %s |" % (fmt % n["value"] if n else "-", rx(n_p))
	    d = by.get("passthrough-dp", {}).get(k)
	    to_d = r["value"] / d["value"] if d and d["value"] > 0 else float("nan")
	    if "passthrough-dp" in by:
	        extra += " %s | %s |" % (fmt % d["value"] if d else "-", rx(to_d))
	    rows.append("| %s | %s | %s | %s | %s | %s | %s | %s |%s" % (
	        name(r), "s" if tree else r["unit"], fmt % e["value"], fmt % p["value"], fmt % r["value"],
	        rx(to_e), rx(to_p), goal(r, to_e, to_p), extra))
	    ratios.append({"phase": r["phase"], "threads": r["threads"], "shared": r["shared"],
	                   "unit": r["unit"], "ext4": e["value"], "passthrough": p["value"],
	                   "kvfs": r["value"], "kvfs_over_ext4": to_e, "kvfs_over_passthrough": to_p,
	                   "passthrough_dp": d["value"] if d else None,
	                   "kvfs_over_passthrough_dp": to_d if d else None,
	                   "lower_is_better": tree})
	lat = []
	for r in tgt["kvfs"]["results"]:
	    if "latency_us" not in r:
	        continue
	    cells = []
	    for l in ("ext4", "passthrough", "kvfs") + (("kvfs-nowb",) if "kvfs-nowb" in by else ()):
	        x = by[l].get(key(r))
	        cells.append("%.1f / %.1f" % (x["latency_us"]["p50"], x["latency_us"]["p99"])
	                     if x and "latency_us" in x else "-")
	    lat.append("| %s | %s |" % (name(r), " | ".join(cells)))
	sc = {r["threads"]: r["value"] for r in sync["targets"][0]["results"] if r["phase"] == "create"}
	scale = sc[4] / sc[1] if 1 in sc and 4 in sc and sc[1] else float("nan")

	md = []
	md.append("Machine: %s. Settings: %s. Run time %d s." % (machine, settings, secs))
	md.append("")
	md.append("Rates are per second (higher is better), untar..rm are seconds (lower is better); "
	          "the ratios are kvfs's value over the other's (for seconds, below 1x is faster).")
	md.append("")
	nw, dpc = "kvfs-nowb" in by, "passthrough-dp" in by
	md.append("| phase | unit | ext4 | passthrough | kvfs (batch) | kvfs / ext4 | kvfs / passthrough | goal |"
	          + (" kvfs no_writeback_cache | it / passthrough |" if nw else "")
	          + (" passthrough default_permissions | kvfs / it |" if dpc else ""))
	md.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |" + (" ---: | ---: |" if nw else "")
	          + (" ---: | ---: |" if dpc else ""))
	md += rows
	md.append("")
	md.append("kvfs durability=sync, creates/s: 1 thread %.0f, 4 threads %.0f: %.2fx (goal >= 3x: %s)."
	          % (sc.get(1, 0), sc.get(4, 0), scale, "yes" if scale >= 3 else "no"))
	md.append("")
	md.append("Latency p50 / p99, microseconds:")
	md.append("")
	md.append("| phase | ext4 | passthrough | kvfs (batch) |" + (" kvfs no_writeback_cache |" if nw else ""))
	md.append("| --- | ---: | ---: | ---: |" + (" ---: |" if nw else ""))
	md += lat
	open(out + "/fsbench.md", "w").write("\n".join(md) + "\n")
	json.dump({"machine": machine, "settings": settings, "seconds": secs, "main": main,
	           "sync": sync, "ratios": ratios,
	           "sync_create": {"threads_1": sc.get(1), "threads_4": sc.get(4), "scaling": scale}},
	          open(out + "/fsbench.json", "w"), indent=1)
	EOF
	cat "$WORK/main.txt" "$WORK/sync.txt" "$OUT/fsbench.md" >"$OUT/fsbench.txt"
	say "results in $OUT/fsbench.{txt,json,md} ($secs s of benchmarks)"
}
[ "$PERF" = only ] || run_benchmarks

# ---- perf -------------------------------------------------------------------
if [ "$PERF" = 1 ] || [ "$PERF" = only ]; then
	# perf_phase NAME PHASE FSBENCH-ARGS...: perf record -g of the kvfs daemon
	# while fsbench runs, on CLOCK_MONOTONIC as fsbench's timestamps; the
	# report covers only PHASE's window from fsbench's JSON, not its set-up
	# or clean-up.
	perf_phase() {
		local name=$1 phase=$2 ppid window
		shift 2
		perf record -q -g -k mono -p "$kvfs_pid" -o "$WORK/perf-$name.data" >/dev/null 2>&1 &
		ppid=$!
		sleep 1
		"$FSBENCH" "$@" --json "$WORK/perf-$name.json" kvfs="$WORK/kvfs" >/dev/null
		kill -INT $ppid
		wait $ppid || true
		window=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
r = [r for r in d["targets"][0]["results"] if r["phase"] == sys.argv[2]][0]
print("%.6f,%.6f" % (r["mono_start"], r["mono_end"]))' "$WORK/perf-$name.json" "$phase")
		{
			echo "== perf: kvfs daemon, $phase phase of: fsbench $*"
			echo "-- symbols by cycles (self)"
			perf report -i "$WORK/perf-$name.data" --time "$window" --no-children \
				--sort symbol --stdio -g none 2>/dev/null | awk '!/^#/ && NF && n++ < 30'
			echo "-- FUSE handlers and engine threads (children included)"
			perf report -i "$WORK/perf-$name.data" --time "$window" --children \
				--sort symbol --stdio -g none 2>/dev/null |
				awk '$4 ~ /^(fs_ll_|flush_main|compact_main|io_wq_worker)/ && n++ < 20'
			echo
		} >>"$OUT/fsbench-perf.txt"
	}
	: >"$OUT/fsbench-perf.txt"
	say "perf: create, 4 threads"
	perf_phase create create --files "$FILES" --threads 4 --no-shared --phases create
	say "perf: sequential write"
	perf_phase seqwrite seqwrite --phases seqwrite --size "$SIZE"
	say "perf: untar"
	perf_phase untar untar --phases untar --tar "$tarball"
	say "perf summary in $OUT/fsbench-perf.txt (perf.data files in $WORK)"
fi
