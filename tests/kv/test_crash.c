/* SPDX-License-Identifier: MIT */
/*
 * test_crash.c - kill -9 a writer process at random moments, then check
 * what recovery gives back.
 *
 * Each round forks a child that opens the store (sync mode) and writes with
 * 1..4 threads, each thread its own range of keys "k%08u" in increasing
 * order, values derived from the key. After each write returns 0 the thread
 * writes the key's number to a pipe: what reached the pipe is acknowledged.
 * The parent reads the pipe and, after a seeded random delay (0..50 ms; one
 * round in four within the first few ms, while the child is still opening and
 * recovering the store), kills the child with SIGKILL and reaps it, then
 * drains the pipe. Only then (the child is gone and cannot be left running)
 * does it open the store itself and check:
 *
 *   1. every acknowledged key is there, with its value;
 *   2. per writer thread, the keys present are a prefix of its sequence: no
 *      holes, nothing beyond the one write that may have been in flight;
 *   3. no value is wrong anywhere, and every earlier round's keys are all
 *      still there (recovery of a recovered store loses nothing);
 *   4. in rounds whose writes are batches {key, progress key of the thread},
 *      the progress key names exactly the last key present (batches are
 *      atomic across a crash).
 *
 * The next round goes on with the same store. One round in two uses a 64 KiB
 * log buffer so that kills land during rotations.
 *
 * Knobs: KV_TEST_SEED repeats a run; KV_TEST_LONG=n runs 30 * n rounds;
 * KV_CRASH_LOGBUF=bytes forces one log buffer size in every round.
 *
 * Under ThreadSanitizer: the parent is single-threaded whenever it forks (its
 * own handle is closed), so the child may start threads.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include <cmocka.h>

#include "kv.h"
#include "kv_test_util.h"

#define ROUNDS 30
#define MAX_THREADS 4
#define RANGE 20000u /* keys per (round, thread); a child never gets near it */
#define MAX_ROUNDS (100000000u / RANGE / MAX_THREADS) /* keys stay 8 digits */
#define CHECK_BEYOND 256u			      /* keys past a prefix checked to be absent */
#define MSG_ERROR 0xffffffffu /* child -> parent: MSG_ERROR, where, -errno */
#define VAL_MAX 700u

enum child_where { AT_OPEN = 1, AT_WRITE, AT_PIPE, AT_THREAD };

struct round_cfg {
	uint32_t round;
	int threads;
	int batch; /* writes are {key, progress key} batches */
	size_t log_buffer;
	long delay_us;
};

/* What the parent learns about a round. */
struct round_obs {
	uint32_t acked[MAX_THREADS]; /* keys acknowledged, per thread */
	int order_bad;		     /* a thread acknowledged out of order */
	uint32_t child_where, child_err;
	int status; /* from waitpid */
};

/* The parent's model of the store: per round and thread, how many keys. */
struct model {
	uint32_t rounds;
	uint32_t count[MAX_ROUNDS][MAX_THREADS];
	int have_progress[MAX_THREADS];
	uint32_t progress_round[MAX_THREADS], progress_key[MAX_THREADS];
};

static uint32_t key_no(uint32_t round, int t, uint32_t i)
{
	return (round * MAX_THREADS + (uint32_t)t) * RANGE + i;
}

static size_t key_of(char *buf, uint32_t no)
{
	return (size_t)snprintf(buf, 16, "k%08u", no);
}

/* The value of key @no: 16..615 bytes, "v%08u" then filler, all from @no. */
static size_t value_of(uint8_t *buf, uint32_t no)
{
	size_t len = 16 + XXH3_64bits(&no, sizeof(no)) % 600;
	uint64_t s = XXH3_64bits_withSeed(&no, sizeof(no), 7) | 1;

	snprintf((char *)buf, 16, "v%08u", no);
	for (size_t i = 9; i < len; i++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		buf[i] = (uint8_t)s;
	}
	return len;
}

static size_t progress_key(char *buf, int t)
{
	return (size_t)snprintf(buf, 16, "p%d", t);
}

static size_t progress_value(char *buf, uint32_t round, uint32_t no)
{
	return (size_t)snprintf(buf, 32, "r%06u:k%08u", round, no);
}

/* ---- the child: never returns, never touches cmocka ---- */

struct child_thread {
	struct kv_db *db;
	const struct round_cfg *cfg;
	int t, fd;
};

static void child_send(int fd, const uint32_t *msg, size_t n)
{
	ssize_t w;

	do
		w = write(fd, msg, n * sizeof(*msg));
	while (w < 0 && errno == EINTR);
	if (w != (ssize_t)(n * sizeof(*msg)))
		_exit(4); /* the parent is gone or the pipe broke */
}

static void child_fail(int fd, enum child_where where, int err)
{
	uint32_t msg[3] = { MSG_ERROR, where, (uint32_t)-err };

	child_send(fd, msg, 3);
	_exit(3);
}

static int child_write(struct child_thread *c, struct kv_batch *b, uint32_t no)
{
	uint8_t val[VAL_MAX];
	char key[16], pkey[16], pval[32];
	size_t klen = key_of(key, no), vlen = value_of(val, no);
	int err;

	if (!c->cfg->batch)
		return kv_put(c->db, NULL, key, klen, val, vlen);
	kv_batch_clear(b);
	err = kv_batch_put(b, key, klen, val, vlen);
	if (!err)
		err = kv_batch_put(b, pkey, progress_key(pkey, c->t), pval,
				   progress_value(pval, c->cfg->round, no));
	return err ? err : kv_write(c->db, NULL, b);
}

static void *child_writer(void *arg)
{
	struct child_thread *c = arg;
	struct kv_batch *b;
	int err = kv_batch_create(&b);

	if (err)
		child_fail(c->fd, AT_WRITE, err);
	for (uint32_t i = 0; i < RANGE; i++) {
		uint32_t no = key_no(c->cfg->round, c->t, i);

		err = child_write(c, b, no);
		if (err)
			child_fail(c->fd, AT_WRITE, err);
		child_send(c->fd, &no, 1);
	}
	kv_batch_destroy(b);
	return NULL;
}

static void __attribute__((noreturn))
child_main(const char *dir, const struct round_cfg *cfg, int fd)
{
	struct child_thread c[MAX_THREADS];
	pthread_t tid[MAX_THREADS];
	struct kv_options opt;
	struct kv_db *db;
	int err;

	kv_options_init(&opt);
	opt.create_if_missing = 1;
	opt.durability = KV_DUR_SYNC;
	opt.log_buffer_size = cfg->log_buffer;
	err = kv_open(dir, &opt, &db);
	if (err)
		child_fail(fd, AT_OPEN, err);
	for (int t = 0; t < cfg->threads; t++) {
		c[t] = (struct child_thread){ db, cfg, t, fd };
		err = pthread_create(&tid[t], NULL, child_writer, &c[t]);
		if (err)
			child_fail(fd, AT_THREAD, -err);
	}
	for (int t = 0; t < cfg->threads; t++)
		pthread_join(tid[t], NULL);
	kv_close(db);
	_exit(0);
}

/* ---- the parent ---- */

struct fx {
	char *dir;
	struct kvt_log log;
	struct kv_db *db; /* the parent's handle while it checks */
	struct model *model;
	pid_t child;	/* running child, or 0 */
	double open_us; /* how long the parent's last kv_open took */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	f->dir = kvt_mkdtemp("crash");
	f->model = calloc(1, sizeof(*f->model));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f->child > 0) { /* never leave a child running */
		kill(f->child, SIGKILL);
		waitpid(f->child, NULL, 0);
	}
	if (f->db)
		kv_close(f->db);
	kvt_rmrf(f->dir);
	free(f->dir);
	free(f->model);
	free(f);
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Take whole messages out of @buf (@len bytes); returns bytes consumed. */
static size_t parse(struct round_obs *o, const struct round_cfg *cfg, const uint8_t *buf,
		    size_t len)
{
	size_t off = 0;

	while (len - off >= 4) {
		uint32_t m, i;
		int t;

		memcpy(&m, buf + off, 4);
		if (m == MSG_ERROR) {
			if (len - off < 12)
				break;
			memcpy(&o->child_where, buf + off + 4, 4);
			memcpy(&o->child_err, buf + off + 8, 4);
			off += 12;
			continue;
		}
		off += 4;
		t = (int)(m / RANGE % MAX_THREADS);
		i = m % RANGE;
		if (m / RANGE / MAX_THREADS != cfg->round || t >= cfg->threads ||
		    i != o->acked[t]) {
			o->order_bad++;
			continue;
		}
		o->acked[t]++;
	}
	return off;
}

/* Read what is in the pipe; 0 at EOF, 1 if more may come. */
static int pipe_read(int fd, struct round_obs *o, const struct round_cfg *cfg, uint8_t *buf,
		     size_t *have)
{
	ssize_t n = read(fd, buf + *have, 4096 - *have);
	size_t used;

	if (n < 0)
		return errno == EINTR || errno == EAGAIN;
	if (n == 0)
		return 0;
	*have += (size_t)n;
	used = parse(o, cfg, buf, *have);
	memmove(buf, buf + used, *have - used);
	*have -= used;
	return 1;
}

/* Fork the child, listen until the deadline, kill it, reap it, drain. */
static void run_child(struct fx *f, const struct round_cfg *cfg, struct round_obs *o)
{
	uint8_t buf[4096];
	size_t have = 0;
	double deadline;
	int fds[2], open = 1;

	memset(o, 0, sizeof(*o));
	assert_int_equal(pipe(fds), 0);
	fflush(NULL);
	f->child = fork();
	assert_true(f->child >= 0);
	if (f->child == 0) {
		close(fds[0]);
		child_main(f->dir, cfg, fds[1]);
	}
	close(fds[1]);
	deadline = now_s() + (double)cfg->delay_us / 1e6;
	while (open) {
		double left = deadline - now_s();
		struct timespec ts;
		struct pollfd p = { fds[0], POLLIN, 0 };

		if (left <= 0)
			break;
		ts.tv_sec = (time_t)left;
		ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
		if (ppoll(&p, 1, &ts, NULL) > 0)
			open = pipe_read(fds[0], o, cfg, buf, &have);
	}
	kill(f->child, SIGKILL);
	while (waitpid(f->child, &o->status, 0) < 0 && errno == EINTR)
		;
	f->child = 0;
	/* Everything written before the death counts as acknowledged. */
	while (open)
		open = pipe_read(fds[0], o, cfg, buf, &have);
	close(fds[0]);
}

static void parent_open(struct fx *f)
{
	struct kv_options opt;
	int err;

	double t0 = now_s();

	memset(&f->log, 0, sizeof(f->log));
	kvt_options(&opt, NULL, &f->log);
	err = kv_open(f->dir, &opt, &f->db);
	f->open_us = (now_s() - t0) * 1e6;
	if (err) {
		fprintf(stderr, "the engine said:\n%s", f->log.text);
		fail_msg("recovery failed: kv_open returned %d (%s)", err, strerror(-err));
	}
}

/* Is key @no there? Fails on a wrong value. */
static int present(struct kv_db *db, uint32_t no)
{
	uint8_t got[VAL_MAX + 1], want[VAL_MAX];
	size_t wlen = value_of(want, no);
	char key[16];
	ssize_t n = kv_get(db, 0, key, key_of(key, no), got, sizeof(got));

	if (n == -ENOENT)
		return 0;
	if (n != (ssize_t)wlen || memcmp(got, want, wlen))
		fail_msg("key k%08u: wrong value (%zd bytes, expected %zu)", no, n, wlen);
	return 1;
}

static void expect_progress(struct fx *f, int t)
{
	struct model *m = f->model;
	char key[16], want[32], got[64];
	size_t wlen;
	ssize_t n;

	n = kv_get(f->db, 0, key, progress_key(key, t), got, sizeof(got));
	if (!m->have_progress[t]) {
		assert_int_equal(n, -ENOENT);
		return;
	}
	wlen = progress_value(want, m->progress_round[t], m->progress_key[t]);
	if (n != (ssize_t)wlen || memcmp(got, want, wlen))
		fail_msg(
			"progress key p%d is \"%.*s\", expected \"%s\": a batch was torn by the crash",
			t, n > 0 ? (int)n : 0, got, want);
}

/* Checks 1, 2 and 4 for the round just run; records it in the model. */
static void check_round(struct fx *f, const struct round_cfg *cfg, const struct round_obs *o)
{
	struct model *m = f->model;

	for (int t = 0; t < MAX_THREADS; t++) {
		uint32_t n = 0;

		while (n < RANGE && present(f->db, key_no(cfg->round, t, n)))
			n++;
		if (t >= cfg->threads && n)
			fail_msg("round %u: thread %d did not run, yet %u of its keys exist",
				 cfg->round, t, n);
		if (t < cfg->threads && n < o->acked[t])
			fail_msg(
				"round %u thread %d: %u keys acknowledged but only %u recovered (k%08u is missing)",
				cfg->round, t, o->acked[t], n, key_no(cfg->round, t, n));
		if (t < cfg->threads && n > o->acked[t] + 1)
			fail_msg(
				"round %u thread %d: %u keys recovered, but only %u acknowledged and one more in flight",
				cfg->round, t, n, o->acked[t]);
		for (uint32_t i = n + 1; i < RANGE && i <= n + CHECK_BEYOND; i++)
			if (present(f->db, key_no(cfg->round, t, i)))
				fail_msg(
					"round %u thread %d: hole: k%08u is missing but k%08u is there",
					cfg->round, t, key_no(cfg->round, t, n),
					key_no(cfg->round, t, i));
		m->count[cfg->round][t] = n;
		if (cfg->batch && n) {
			m->have_progress[t] = 1;
			m->progress_round[t] = cfg->round;
			m->progress_key[t] = key_no(cfg->round, t, n - 1);
		}
		expect_progress(f, t);
	}
	m->rounds = cfg->round + 1;
}

/* Check 3: every earlier round is still all there. */
static void check_history(struct fx *f, uint32_t upto)
{
	struct model *m = f->model;

	for (uint32_t r = 0; r < upto; r++) {
		for (int t = 0; t < MAX_THREADS; t++) {
			uint32_t n = m->count[r][t];

			for (uint32_t i = 0; i < n; i++)
				if (!present(f->db, key_no(r, t, i)))
					fail_msg(
						"k%08u (round %u thread %d) was recovered after its round but is gone now",
						key_no(r, t, i), r, t);
			if (n < RANGE && present(f->db, key_no(r, t, n)))
				fail_msg(
					"k%08u (round %u thread %d) appeared after its round was checked",
					key_no(r, t, n), r, t);
		}
	}
}

static void child_verdict(const struct round_cfg *cfg, const struct round_obs *o)
{
	if (o->child_where)
		fail_msg("round %u: the child failed (%s) with %d (%s)", cfg->round,
			 o->child_where == AT_OPEN  ? "kv_open" :
			 o->child_where == AT_WRITE ? "a write" :
						      "starting threads",
			 -(int)o->child_err, strerror((int)o->child_err));
	if (WIFSIGNALED(o->status) && WTERMSIG(o->status) != SIGKILL)
		fail_msg("round %u: the child died of signal %d", cfg->round, WTERMSIG(o->status));
	if (WIFEXITED(o->status) && WEXITSTATUS(o->status))
		fail_msg("round %u: the child exited with status %d (see its stderr above)",
			 cfg->round, WEXITSTATUS(o->status));
	if (o->order_bad)
		fail_msg("round %u: the child acknowledged %d keys out of order (test bug)",
			 cfg->round, o->order_bad);
}

/*
 * One round in four kills the child within twice the time the parent's last
 * kv_open took (at least 3 ms): while it creates its segments and recovers.
 * The others within 50 ms plus that time, mostly while it writes.
 */
static void pick_round(struct round_cfg *cfg, uint32_t round, uint64_t *rng, double open_us)
{
	uint64_t early = open_us * 2 > 3000 ? (uint64_t)(open_us * 2) : 3000;

	const char *forced = getenv("KV_CRASH_LOGBUF");

	cfg->round = round;
	cfg->threads = 1 + (int)(kvt_rand(rng) % MAX_THREADS);
	cfg->batch = (int)(kvt_rand(rng) % 2);
	cfg->log_buffer = kvt_rand(rng) % 2 ? 64u << 10 : 256u << 10;
	if (forced && *forced)
		cfg->log_buffer = strtoul(forced, NULL, 0);
	if (kvt_rand(rng) % 4 == 0)
		cfg->delay_us = (long)(kvt_rand(rng) % early);
	else
		cfg->delay_us = (long)(kvt_rand(rng) % (50000 + (uint64_t)open_us));
}

static void test_kill_and_recover(void **state)
{
	struct fx *f = *state;
	uint64_t rng = kvt_seed("crash");
	uint32_t rounds = (uint32_t)(ROUNDS * kvt_scale()), total = 0;
	double t0 = now_s();

	if (rounds > MAX_ROUNDS)
		rounds = MAX_ROUNDS;
	for (uint32_t r = 0; r < rounds; r++) {
		struct round_cfg cfg;
		struct round_obs o;
		uint32_t acked = 0;

		pick_round(&cfg, r, &rng, f->open_us);
		run_child(f, &cfg, &o);
		for (int t = 0; t < cfg.threads; t++)
			acked += o.acked[t];
		total += acked;
		fprintf(stderr,
			"  round %2u: %d thread(s), %s, %3zu KiB buffer, kill at %5.1f ms: %4u acknowledged\n",
			r, cfg.threads, cfg.batch ? "batches" : "puts   ", cfg.log_buffer >> 10,
			(double)cfg.delay_us / 1000, acked);
		child_verdict(&cfg, &o);
		parent_open(f);
		check_round(f, &cfg, &o);
		check_history(f, r);
		assert_int_equal(kv_close(f->db), 0);
		f->db = NULL;
	}
	fprintf(stderr, "  %u rounds, %u writes acknowledged, %.1f s\n", rounds, total,
		now_s() - t0);
	/* Some rounds must have written something, or nothing was tested. */
	assert_true(total > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kill_and_recover, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
