/* SPDX-License-Identifier: MIT */
/*
 * ycsb_opts.h - the options of kvbench ycsb: what one invocation runs, and
 * their parser (ycsb_opts.c), kept apart from main() so the tests call it.
 *
 * One invocation runs, for each backend and durability mode (outer loops),
 * a fresh store: the load phase, then for each thread count each workload
 * in the order given, on the same store (as YCSB's load-then-run; D and E
 * insert, so later workloads see their records).
 */
#ifndef YCSB_OPTS_H
#define YCSB_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kv.h"
#include "ycsb_gen.h"

#define YCSB_MAX_LIST 16
#define YCSB_MAX_THREADS 256

enum ycsb_backend { YCSB_LIBKV, YCSB_ROCKSDB, YCSB_LEVELDB, YCSB_NBACKENDS };

/* How the records get in before the runs. */
enum ycsb_load {
	YCSB_LOAD_BATCH, /* write batches of YCSB_LOAD_BATCH_OPS, not waiting for
			  * durability, one sync at the end (fast, the default) */
	YCSB_LOAD_OPS,	 /* one insert per operation at the run's durability,
			  * timed like a YCSB load run */
};
#define YCSB_LOAD_BATCH_OPS 100u

struct ycsb_cfg {
	const struct ycsb_workload *workloads[YCSB_MAX_LIST];
	unsigned nworkloads;
	bool dist_set;	     /* --distribution given: overrides the workloads' */
	enum ycsb_dist dist; /* if dist_set */
	enum ycsb_backend backends[YCSB_MAX_LIST];
	unsigned nbackends;
	enum kv_durability modes[YCSB_MAX_LIST];
	unsigned nmodes;
	unsigned threads[YCSB_MAX_LIST];
	unsigned nthreads;
	uint64_t records;
	unsigned fields, field_length; /* value = fields x field_length bytes */
	size_t value_size;
	double seconds; /* per workload run, if ops == 0 */
	uint64_t ops;	/* per workload run, over all threads; 0 = by time */
	enum ycsb_load load;
	unsigned load_threads;
	unsigned max_scan; /* E: scan length uniform in [1, max_scan] */
	uint64_t seed;
	size_t log_buffer_size; /* libkv log buffer = others' write buffer; 0 = libkv's */
	size_t cache_size;	/* block cache of every backend; 0 = libkv's */
	const char *dir;
	bool keep;
	const char *json;
	const char *csv;
};

const char *ycsb_backend_name(enum ycsb_backend b);

/* The defaults; then the options after "ycsb" (argv[0] is the command). */
void ycsb_cfg_defaults(struct ycsb_cfg *c);
/*
 * Returns 0, 1 for --help, or -EINVAL with a message for people in @err
 * ("--threads: '0' is not a number in [1, 256]"). Does not print or exit.
 */
int ycsb_parse_args(int argc, char **argv, struct ycsb_cfg *c, char *err, size_t errlen);
void ycsb_usage(FILE *f);

#endif
