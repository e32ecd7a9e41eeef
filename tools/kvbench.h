/* SPDX-License-Identifier: MIT */
/*
 * kvbench.h - what the parts of kvbench share: the configuration, the
 * results, the latency histogram, clocks and randomness, the stores
 * (kvbench.c), the persist command (kvbench_persist.c) and the reports
 * (kvbench_report.c: tables on stdout and the JSON file).
 */
#ifndef KVBENCH_H
#define KVBENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "kv.h"

#define MAX_LIST 16 /* thread counts or modes in one list */

/*
 * A timed phase of worker threads: they wait at @start, run until @stop.
 * phase_run starts @n threads running @fn on the workers laid out every
 * @size bytes from @workers, releases them together, lets them run @seconds, stops and joins them.
 * With @seconds <= 0 there is no deadline: the workers stop by themselves.
 * Returns the start time; *end is when the last one returned.
 */
struct phase {
	pthread_barrier_t start;
	atomic_bool stop;
};
uint64_t phase_run(struct phase *p, void *workers, size_t size, unsigned n, void *(*fn)(void *),
		   double seconds, uint64_t *end);

/* kvbench.c: "kvbench: MESSAGE" on stderr, exit status 1. */
__attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt, ...);
/* calloc or die. */
void *xcalloc(size_t n, size_t size);

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void sleep_until_ns(uint64_t deadline);

/* xorshift64*: per-thread, no shared state on the measured path; *s != 0. */
static inline uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

/* ---- latency histogram --------------------------------------------------- */

#define HIST_SUB 128u		      /* linear sub-buckets per power of 2 */
#define HIST_BUCKETS (HIST_SUB * 58u) /* covers every uint64_t */

struct hist {
	uint64_t count;
	uint64_t sum; /* ns */
	uint64_t max; /* ns */
	uint64_t b[HIST_BUCKETS];
};

/*
 * Recording: inline here, so that the measured paths of kvbench.c and
 * kvbench_persist.c pay no call. Values below 256 get a bucket each; above,
 * the bucket is the value's top eight bits (128..255) and its shift, so
 * index = 128 * shift + top.
 */
static inline unsigned hist_index(uint64_t v)
{
	unsigned shift;

	if (v < 2 * HIST_SUB)
		return (unsigned)v;
	shift = (unsigned)(63 - __builtin_clzll(v)) - 7;
	return HIST_SUB * shift + (unsigned)(v >> shift);
}

static inline void hist_add(struct hist *h, uint64_t v)
{
	h->b[hist_index(v)]++;
	h->count++;
	h->sum += v;
	if (v > h->max)
		h->max = v;
}

void hist_merge(struct hist *to, const struct hist *from);
/* The @p quantile (0 < p <= 1) in ns: the middle of its bucket. */
double hist_pct(const struct hist *h, double p);
double hist_mean(const struct hist *h);

/* ---- configuration --------------------------------------------------------- */

enum cmd { CMD_DISK = 1, CMD_COMMIT = 2, CMD_HOTREAD = 4, CMD_ALL = 8, CMD_PERSIST = 16 };

/* persist: the defaults that make the data outgrow memory (kvbench_persist.c). */
#define PERSIST_LOG_BUFFER (16u << 20) /* --log-buffer */
#define PERSIST_CACHE (8u << 20)       /* --cache */
#define PERSIST_DATA_FACTOR 10u	       /* default --keys: data = 10 x log buffer */
#define PERSIST_THREADS 4u	       /* --threads */
#define PERSIST_SECONDS 10.0	       /* --seconds */
#define PERSIST_KEY_SIZE 16u	       /* hash(index) then index, both big-endian */
#define PERSIST_VALUE_MIN 16u	       /* a value starts with its index and generation */
#define PERSIST_BATCH 100u	       /* puts per kv_write in fillrandom, at most */
#define PERSIST_OP_SLACK 64u	       /* per op, more than a WAL op header takes */

struct bench_cfg {
	enum cmd cmd;
	const char *dir;
	const char *json;
	bool keep;
	uint64_t disk_ops;
	unsigned threads[MAX_LIST];
	unsigned nthreads;
	enum kv_durability commit_modes[MAX_LIST];
	unsigned ncommit_modes;
	enum kv_durability hot_modes[MAX_LIST];
	unsigned nhot_modes;
	double commit_seconds;
	double hot_seconds;
	size_t value_size;
	uint64_t keys;
	bool keys_set; /* --keys given (persist derives it otherwise) */
	unsigned writers;
	size_t log_buffer_size;	 /* 0: the engine's default */
	size_t block_cache_size; /* 0: the engine's default */
	unsigned persist_threads;
	double persist_seconds;
	unsigned persist_batch; /* puts per kv_write in fillrandom */
};

/* ---- results ----------------------------------------------------------------- */

struct disk_result {
	bool done;
	uint64_t ops;
	uint64_t file_bytes;
	double seconds;
	struct hist *lat;
};

struct commit_result {
	enum kv_durability mode;
	unsigned threads;
	int err; /* first error of a put, kv_sync or kv_stats */
	uint64_t ops;
	double seconds;	     /* until the last put returned (and kv_sync) */
	double sync_seconds; /* the final kv_sync (batch mode) */
	bool have_stats;
	struct kv_stats st;
	struct hist *lat;
};

struct hot_result {
	enum kv_durability mode;
	unsigned writers;
	int err;
	uint64_t reads;
	uint64_t writes;
	double seconds;
	struct hist *lat;
};

/* One phase of persist. Wrong answers abort the run; they are not counted. */
struct persist_phase {
	unsigned threads;
	uint64_t ops;	  /* gets, puts or keys scanned that succeeded */
	uint64_t bytes;	  /* their key + value bytes */
	uint64_t errors;  /* calls that failed (a negative errno) */
	int first_err;	  /* the first of them, or kv_iter_status */
	double seconds;	  /* wall time of the phase */
	struct hist *lat; /* per call (fill: per kv_write); NULL for readseq */
	struct kv_stats before, after;
};

/* The files of a store directory (it is flat). */
struct dir_usage {
	uint64_t files, bytes;		   /* regular files */
	uint64_t table_files, table_bytes; /* of which tables, *.sst */
	uint64_t wal_files, wal_bytes;	   /* and WAL segments, *.log (preallocated) */
};

struct persist_result {
	struct persist_phase fill; /* fillrandom, ending with kv_sync */
	double fill_sync_seconds;  /* of which the final kv_sync */
	struct persist_phase readrandom;
	struct persist_phase readseq;
	struct persist_phase rww_read;	/* readwhilewriting: the readers */
	struct persist_phase rww_write; /* and the writer */
	double rww_sync_seconds;	/* kv_sync after it, not in the phase */
	double compact_seconds;		/* kv_compact */
	struct kv_stats final;		/* after kv_compact */
	uint64_t live_bytes;		/* keys x (key + value size) */
	struct dir_usage compacted;	/* the directory when kv_compact returned */
	struct dir_usage closed;	/* and after kv_close */
};

struct results {
	struct disk_result disk;
	struct commit_result *commit;
	unsigned ncommit;
	struct hot_result *hot;
	unsigned nhot;
	struct persist_result *persist; /* NULL unless it ran */
};

/* ---- stores (kvbench.c): kvbench-PID-WHAT under --dir ------------------------- */

void store_path(char *buf, size_t cap, const struct bench_cfg *c, const char *what);
void store_remove(const char *path);
/* A fresh store with @c's log buffer and block cache sizes; dies on error. */
struct kv_db *store_create(const struct bench_cfg *c, const char *path, enum kv_durability mode);
/* Close it and remove it unless --keep. */
void store_done(const struct bench_cfg *c, struct kv_db *db, const char *path);

/* ---- persist (kvbench_persist.c) ----------------------------------------------- */

void persist_run(const struct bench_cfg *c, struct results *res);

/* ---- ycsb (kvbench_ycsb.c): argv[0] is "ycsb"; returns the exit status ---- */

int ycsb_main(int argc, char **argv);

/* ---- reports (kvbench_report.c) ---------------------------------------------- */

struct ratios {
	double group_vs_fsync; /* sync / fsync-per-op durable writes/s, 8 threads */
	double locked_vs_mvcc; /* locked / sync read p99 under writers */
	double mvcc_loaded;    /* sync read p99 with writers / without */
};

/* num / den, 0 if den is not positive. */
double ratio(double num, double den);

void disk_print(const struct bench_cfg *c, const struct disk_result *r);
void commit_print_head(const struct bench_cfg *c);
void commit_print(const struct commit_result *r);
void hot_print(const struct hot_result *r);
void ratios_compute(const struct results *res, struct ratios *q);
void ratios_print(const struct bench_cfg *c, const struct ratios *q);
void persist_print_head(const struct bench_cfg *c);
void persist_print_fill(const struct bench_cfg *c, const struct persist_result *r);
void persist_print_readrandom(const struct persist_result *r);
void persist_print_readseq(const struct bench_cfg *c, const struct persist_result *r);
void persist_print_rww(const struct persist_result *r);
void persist_print_compact(const struct bench_cfg *c, const struct persist_result *r);
void json_write(const struct bench_cfg *c, const struct results *res, const struct ratios *q);
/* JSON pieces kvbench_ycsb_report.c shares: a string, a histogram's
 * percentiles, every field of struct kv_stats, the machine ("host", "kernel",
 * "cpus" members, each line starting with two spaces and ending with a comma). */
void json_str(FILE *f, const char *s);
void json_hist(FILE *f, const struct hist *h);
void json_stats(FILE *f, const struct kv_stats *st);
void json_machine(FILE *f);
void results_free(struct results *res);

#endif
