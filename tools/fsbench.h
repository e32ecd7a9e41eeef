/* SPDX-License-Identifier: MIT */
/*
 * fsbench: the same filesystem workloads on any number of directories.
 *
 * fsbench.c parses the options, walks the targets and prints the table and
 * the JSON; fsbench_phases.c runs the phases on one target. A phase is one
 * timed measurement (one row of the table); a group of phases shares its
 * set-up (the metadata phases of one thread count share their files, the
 * tree phases share the unpacked tree). A phase not selected but needed by a
 * later selected one runs untimed, as set-up; the files a group makes are
 * always removed at its end.
 */
#ifndef FSBENCH_H
#define FSBENCH_H

#include <stddef.h>
#include <stdint.h>

enum fsb_phase {
	FSB_CREATE,
	FSB_STAT,
	FSB_READDIR,
	FSB_RENAME,
	FSB_UNLINK,
	FSB_SEQWRITE,
	FSB_SEQREAD,
	FSB_RANDREAD,
	FSB_RANDWRITE,
	FSB_UNTAR,
	FSB_SYNC,
	FSB_FIND,
	FSB_GREP,
	FSB_TARC,
	FSB_RM,
	FSB_NPHASES
};

#define FSB_META_MASK 0x1fu   /* create .. unlink */
#define FSB_DATA_MASK 0x1e0u  /* seqwrite .. randwrite */
#define FSB_TREE_MASK 0x7e00u /* untar .. rm */
#define FSB_MAX_THREADS 256
#define FSB_MAX_TLIST 8
#define FSB_MAX_TARGETS 8
#define FSB_MAX_RESULTS 128

struct fsb_opts {
	uint64_t files; /* metadata: files per variant, split among threads */
	unsigned threads[FSB_MAX_TLIST];
	int nthreads;
	int shared;		  /* also all threads in one directory */
	uint64_t seq_size, block; /* sequential file size, write/read size */
	uint64_t rand_size;	  /* random I/O file size */
	uint64_t rand_reads, rand_writes;
	const char *tar;  /* uncompressed tarball for the tree phases */
	const char *grep; /* string grep -r looks for */
	unsigned phases;  /* 1 << enum fsb_phase */
	int drop_caches;  /* sync + /proc/sys/vm/drop_caches before reads */
	int odirect;	  /* O_DIRECT for the sequential read back */
	uint64_t seed;
	const char *disks; /* --disks: the devices counted (NULL: the whole disks) */
	int quick;
};

struct fsb_result {
	enum fsb_phase phase;
	unsigned threads;
	int shared;
	uint64_t ops;		     /* operations (files, entries, I/Os) */
	uint64_t bytes;		     /* bytes moved, data and tree phases */
	double secs;		     /* wall time of the phase */
	double mono_start, mono_end; /* CLOCK_MONOTONIC seconds (perf record -k mono) */
	double extra;		     /* seqwrite: seconds in fsync; untar/find: entries */
	int nlat;		     /* latency samples taken (0: none) */
	double lat_us[6];	     /* mean, p50, p90, p99, p99.9, max */
	char note[96];		     /* how the phase was run (O_DIRECT, cache drop...) */
	int has_disk;		     /* disk_written is known (0: /proc/diskstats unreadable) */
	uint64_t disk_written;	     /* bytes the machine's whole disks wrote during the phase */
};

struct fsb_target {
	const char *label, *dir;
	char fstype[64], source[256];
	char work[3072]; /* DIR/fsbench.PID: everything fsbench makes */
	struct fsb_result res[FSB_MAX_RESULTS];
	int nres;
	int failed;
};

extern const char *const fsb_phase_names[FSB_NPHASES];

/* Runs every selected phase on @t; 0 or -1 (a message was printed). */
int fsb_run_target(const struct fsb_opts *o, struct fsb_target *t);

/*
 * Bytes written so far by the machine's whole disks, or by the devices of
 * @disks (--disks LIST, NULL: the whole disks; fsbench.c says which devices
 * count), into *@bytes; their names, space-separated, into @names
 * when not NULL. 0, or -1 when unknown: /proc/diskstats (or the file named
 * by $FSBENCH_DISKSTATS) cannot be read or lists no whole disk.
 */
int fsb_disk_written(const char *disks, uint64_t *bytes, char *names, size_t len);

/* A message on stderr, "fsbench: " first. */
void fsb_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
