/* SPDX-License-Identifier: MIT */
/*
 * kvbench_ycsb.h - what the runner of kvbench ycsb (kvbench_ycsb.c) hands to
 * its reports (kvbench_ycsb_report.c): one result per load phase and per
 * workload run.
 */
#ifndef KVBENCH_YCSB_H
#define KVBENCH_YCSB_H

#include <stdbool.h>
#include <stdint.h>

#include "kv.h"
#include "kvbench.h"
#include "ycsb_gen.h"
#include "ycsb_opts.h"

struct ycsb_result {
	enum ycsb_backend backend;
	enum kv_durability mode;
	unsigned threads;
	char workload; /* 'A'..'F', or 'L' for the load phase */
	enum ycsb_dist dist;
	uint64_t ops;		     /* operations completed (with errors) */
	double seconds;		     /* from the start until the last thread stopped */
	struct hist *lat[YCSB_NOPS]; /* NULL for operations the run has not */
	uint64_t errors[YCSB_NOPS];  /* failed, or a wrong value read */
	uint64_t not_found[YCSB_NOPS];
	int first_err;
	uint64_t scan_records, scan_bytes;
	uint64_t records_before, records_after; /* keys acknowledged */
	bool have_stats;			/* libkv: the engine's counters */
	struct kv_stats before, after;
};

static inline double ycsb_tput(const struct ycsb_result *r)
{
	return r->seconds > 0 ? (double)r->ops / r->seconds : 0;
}

/* kvbench_ycsb_report.c */
void ycsb_print_head(const struct ycsb_cfg *c);
void ycsb_print_result(const struct ycsb_result *r);
void ycsb_print_summary(const struct ycsb_cfg *c, const struct ycsb_result *r, unsigned n);
void ycsb_write_json(const struct ycsb_cfg *c, const struct ycsb_result *r, unsigned n);
void ycsb_write_csv(const struct ycsb_cfg *c, const struct ycsb_result *r, unsigned n);

#endif
