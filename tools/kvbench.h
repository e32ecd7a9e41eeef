/* SPDX-License-Identifier: MIT */
/*
 * kvbench.h - what the parts of kvbench share: the configuration, the
 * results, the latency histogram, and the reports (kvbench_report.c: tables
 * on stdout and the JSON file).
 */
#ifndef KVBENCH_H
#define KVBENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv.h"

#define MAX_LIST 16 /* thread counts or modes in one list */

/* kvbench.c: "kvbench: MESSAGE" on stderr, exit status 1. */
__attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt, ...);

/* ---- latency histogram --------------------------------------------------- */

#define HIST_SUB 128u		      /* linear sub-buckets per power of 2 */
#define HIST_BUCKETS (HIST_SUB * 58u) /* covers every uint64_t */

struct hist {
	uint64_t count;
	uint64_t sum; /* ns */
	uint64_t max; /* ns */
	uint64_t b[HIST_BUCKETS];
};

/* Recording (hist_add) is in kvbench.c, next to the measured path. */
void hist_merge(struct hist *to, const struct hist *from);
/* The @p quantile (0 < p <= 1) in ns: the middle of its bucket. */
double hist_pct(const struct hist *h, double p);
double hist_mean(const struct hist *h);

/* ---- configuration --------------------------------------------------------- */

enum cmd { CMD_DISK = 1, CMD_COMMIT = 2, CMD_HOTREAD = 4, CMD_ALL = 8 };

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
	unsigned writers;
	size_t log_buffer_size; /* 0: the engine's default */
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

struct results {
	struct disk_result disk;
	struct commit_result *commit;
	unsigned ncommit;
	struct hot_result *hot;
	unsigned nhot;
};

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
void json_write(const struct bench_cfg *c, const struct results *res, const struct ratios *q);
void results_free(struct results *res);

#endif
