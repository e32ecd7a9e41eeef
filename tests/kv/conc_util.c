/* SPDX-License-Identifier: MIT */
/* conc_util.c - helpers shared by the concurrency tests; see conc_util.h. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "conc_util.h"

/* Scale an iteration count: smaller under TSan, larger with KV_TEST_LONG. */
int scaled(int n)
{
	if (KVT_UNDER_TSAN)
		n /= 2;
	return n * kvt_scale();
}

/* ---- failures recorded by worker threads ---- */

_Atomic int bad_count;
static pthread_mutex_t bad_mu = PTHREAD_MUTEX_INITIALIZER;
static char bad_first[512]; /* [bad_mu] */

void failf(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	n = atomic_fetch_add(&bad_count, 1);
	if (n < 10)
		fprintf(stderr, "FAILURE: %s\n", msg);
	if (n == 0) {
		pthread_mutex_lock(&bad_mu);
		snprintf(bad_first, sizeof(bad_first), "%s", msg);
		pthread_mutex_unlock(&bad_mu);
	}
}

void bad_reset(void)
{
	atomic_store(&bad_count, 0);
	pthread_mutex_lock(&bad_mu);
	bad_first[0] = '\0';
	pthread_mutex_unlock(&bad_mu);
}

/* Main thread, after joining the workers. */
void assert_no_failures(void)
{
	int n = atomic_load(&bad_count);
	char first[sizeof(bad_first)];

	pthread_mutex_lock(&bad_mu);
	memcpy(first, bad_first, sizeof(first));
	pthread_mutex_unlock(&bad_mu);
	if (n)
		fail_msg("%d failure(s) in worker threads; the first: %s", n, first);
}

/* ---- small helpers ---- */

/* Worker threads: a call that cannot fail unless the test itself is broken. */
void must(int err, const char *what)
{
	if (err) {
		fprintf(stderr, "%s failed: %d\n", what, err);
		abort();
	}
}

void put_u32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

uint32_t get_u32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

/* Deterministic filler, so that a value's payload follows from its header. */
void fill(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t s = seed | 1;

	for (size_t i = 0; i < n; i += 8) {
		uint64_t r = kvt_rand(&s);

		memcpy(p + i, &r, n - i < 8 ? n - i : 8);
	}
}

void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	nanosleep(&ts, NULL);
}

double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wait until *ctr reaches @want, at most @secs seconds; 0 or -ETIMEDOUT. */
int wait_count(_Atomic uint64_t *ctr, uint64_t want, double secs)
{
	double end = now_s() + secs;

	while (atomic_load(ctr) < want) {
		if (now_s() > end)
			return -ETIMEDOUT;
		sleep_us(200);
	}
	return 0;
}

/* ---- the store fixture ---- */

int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	bad_reset();
	f->dir = kvt_mkdtemp("conc");
	kvt_options(&f->opt, NULL, &f->log);
	*state = f;
	return 0;
}

int teardown(void **state)
{
	struct fx *f = *state;

	if (f->db)
		kv_close(f->db);
	if (f->fault)
		kv_fault_env_destroy(f->fault);
	if (f->cleanup)
		f->cleanup(f->cleanup_arg);
	kvt_rmrf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

void fx_open(struct fx *f)
{
	int err = kv_open(f->dir, &f->opt, &f->db);

	if (err)
		fail_msg("kv_open(%s) returned %d (%s); the engine said:\n%s", f->dir, err,
			 strerror(-err), f->log.text);
}

void fx_reopen(struct fx *f)
{
	assert_int_equal(kv_close(f->db), 0);
	f->db = NULL;
	fx_open(f);
}

void run_threads(int n, void *(*fn)(void *), void *args, size_t arg_size)
{
	pthread_t *t = calloc((size_t)n, sizeof(*t));

	assert_non_null(t);
	for (int i = 0; i < n; i++)
		assert_int_equal(pthread_create(&t[i], NULL, fn, (char *)args + i * arg_size), 0);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	free(t);
}
