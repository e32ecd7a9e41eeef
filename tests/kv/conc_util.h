/* SPDX-License-Identifier: MIT */
/*
 * conc_util.h - helpers shared by the concurrency tests (test_concurrency.c,
 * test_async.c): the store fixture, failures recorded by worker threads,
 * byte encoding, sleeps and iteration counts.
 *
 * Worker threads never call cmocka (its asserts longjmp): they record
 * failures (failf) that the main thread asserts on after joining them
 * (assert_no_failures).
 */
#ifndef CONC_UTIL_H
#define CONC_UTIL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "kv.h"
#include "kv_test_util.h"

/* Scale an iteration count: smaller under TSan, larger with KV_TEST_LONG. */
int scaled(int n);

/* ---- failures recorded by worker threads ---- */

extern _Atomic int bad_count; /* failures so far; workers may stop early */
void failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void bad_reset(void);
/* Main thread, after joining the workers. */
void assert_no_failures(void);

/* ---- small helpers ---- */

/* Worker threads: a call that cannot fail unless the test itself is broken. */
void must(int err, const char *what);

void put_u32(uint8_t *p, uint32_t v);
uint32_t get_u32(const uint8_t *p);

#define KEY_BUF 48

/* Deterministic filler, so that a value's payload follows from its header. */
void fill(uint8_t *p, size_t n, uint64_t seed);

void sleep_us(long us);
double now_s(void);
/* Wait until *ctr reaches @want, at most @secs seconds; 0 or -ETIMEDOUT. */
int wait_count(_Atomic uint64_t *ctr, uint64_t want, double secs);

/* ---- the store fixture ---- */

struct fx {
	char *dir;
	struct kvt_log log;
	struct kv_options opt;
	struct kv_db *db;
	struct kv_fault_env *fault; /* if the test uses one */
	void (*cleanup)(void *);    /* frees a test's state, even if it fails */
	void *cleanup_arg;
};

int setup(void **state);
int teardown(void **state);
void fx_open(struct fx *f);
void fx_reopen(struct fx *f);
void run_threads(int n, void *(*fn)(void *), void *args, size_t arg_size);

#endif
