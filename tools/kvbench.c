/* SPDX-License-Identifier: MIT */
/*
 * kvbench.c - the write-path benchmark of libkv.
 *
 * It measures what the write path of the design note promises, against the
 * baselines libkv keeps selectable for exactly this purpose:
 *
 *   disk     the physical limit: 4 KiB pwrite + fdatasync, overwriting a
 *            zero-filled preallocated file in place (what a WAL commit costs
 *            at best on this disk);
 *   commit   durable writes/s and put latency for each durability mode and
 *            thread count, and the group size (ops per group commit): group
 *            commit (sync) against one fsync per write (fsync-per-op);
 *   hotread  one hot key written continuously by W writers while one reader
 *            reads it: read latency with the writer holding the key's lock
 *            across its commit (locked) against multi-version reads (sync),
 *            each against a baseline with no writer on the same store;
 *   all      the three in turn, then the ratios the project reports;
 *   persist  (kvbench_persist.c) the read and write paths once the data has
 *            outgrown the memtable and the block cache: fill, random and
 *            sequential reads, reads under a writer, amplification after a
 *            full compaction. Not part of all, which is the write path.
 *   ycsb     (kvbench_ycsb.c) YCSB workloads A-F on libkv and, when built
 *            with them, RocksDB and LevelDB side by side.
 *
 * It is built on kv.h alone. Latency is clock_gettime(CLOCK_MONOTONIC) around
 * each operation, kept in a per-thread log-bucketed histogram (128 linear
 * sub-buckets per power of two, so a percentile is within 0.4% of the true
 * value) and merged at the end; no allocation or lock on the measured path.
 * Recording is inline in kvbench.h; percentiles, the tables and the JSON
 * file are in kvbench_report.c.
 *
 * Every store is a fresh directory under --dir named kvbench-PID-WHAT, removed
 * at the end of its run unless --keep.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* nftw flags, clock_nanosleep; CMake passes it too */
#endif

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kv.h"
#include "kvbench.h"

#define MAX_THREADS 256
#define DISK_BLOCK 4096u
#define DISK_MAX_BLOCKS 16384u /* the disk test's file is at most 64 MiB */
#define HOT_KEY "hot"

/* ---- time, small helpers (clocks and randomness are inline in kvbench.h) ---- */

void sleep_until_ns(uint64_t deadline)
{
	struct timespec ts = {
		.tv_sec = (time_t)(deadline / 1000000000u),
		.tv_nsec = (long)(deadline % 1000000000u),
	};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("kvbench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (!p)
		die("out of memory (%zu x %zu bytes)", n, size);
	return p;
}

/* ---- configuration --------------------------------------------------------- */

static void cfg_defaults(struct bench_cfg *c)
{
	static const unsigned thr[] = { 1, 2, 4, 8, 16 };

	memset(c, 0, sizeof(*c));
	c->dir = "/var/tmp";
	c->disk_ops = 1000;
	memcpy(c->threads, thr, sizeof(thr));
	c->nthreads = 5;
	c->commit_modes[0] = KV_DUR_FSYNC_PER_OP;
	c->commit_modes[1] = KV_DUR_SYNC;
	c->commit_modes[2] = KV_DUR_BATCH;
	c->ncommit_modes = 3;
	c->hot_modes[0] = KV_DUR_LOCKED;
	c->hot_modes[1] = KV_DUR_SYNC;
	c->nhot_modes = 2;
	/* 15 commit runs x 4 s + 4 hotread phases x 6 s + disk: about 90 s. */
	c->commit_seconds = 4;
	c->hot_seconds = 6;
	c->value_size = 1024;
	c->keys = 100000;
	c->writers = 8;
	c->persist_threads = PERSIST_THREADS;
	c->persist_seconds = PERSIST_SECONDS;
}

/* ---- stores ------------------------------------------------------------------ */

void store_path(char *buf, size_t cap, const struct bench_cfg *c, const char *what)
{
	int n = snprintf(buf, cap, "%s/kvbench-%ld-%s", c->dir, (long)getpid(), what);

	if (n < 0 || (size_t)n >= cap)
		die("path too long: %s/kvbench-%ld-%s", c->dir, (long)getpid(), what);
}

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	if (remove(path) && errno != ENOENT)
		fprintf(stderr, "kvbench: remove %s: %s\n", path, strerror(errno));
	return 0;
}

void store_remove(const char *path)
{
	if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) && errno != ENOENT)
		fprintf(stderr, "kvbench: remove %s: %s\n", path, strerror(errno));
}

struct kv_db *store_create(const struct bench_cfg *c, const char *path, enum kv_durability mode)
{
	struct kv_options opt;
	struct kv_db *db;
	int err;

	store_remove(path);
	if (mkdir(path, 0755) && errno != EEXIST)
		die("mkdir %s: %s", path, strerror(errno));
	kv_options_init(&opt);
	opt.create_if_missing = 1;
	opt.error_if_exists = 1;
	opt.durability = mode;
	if (c->log_buffer_size)
		opt.log_buffer_size = c->log_buffer_size;
	if (c->block_cache_size)
		opt.block_cache_size = c->block_cache_size;
	err = kv_open(path, &opt, &db);
	if (err && !c->keep)
		store_remove(path);
	if (err)
		die("kv_open %s (%s): %s", path, kv_durability_name(mode), strerror(-err));
	return db;
}

void store_done(const struct bench_cfg *c, struct kv_db *db, const char *path)
{
	int err = kv_close(db);

	if (err)
		fprintf(stderr, "kvbench: kv_close %s: %s\n", path, strerror(-err));
	if (!c->keep)
		store_remove(path);
}

/* ---- disk: the physical limit ------------------------------------------------ */

static int disk_prepare(const char *path, uint64_t bytes)
{
	static char zero[1 << 20];
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);

	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	for (uint64_t off = 0; off < bytes; off += sizeof(zero)) {
		size_t n = bytes - off < sizeof(zero) ? (size_t)(bytes - off) : sizeof(zero);

		if (pwrite(fd, zero, n, (off_t)off) != (ssize_t)n)
			die("write %s: %s", path, strerror(errno));
	}
	/* Blocks allocated and metadata durable: later writes are in place. */
	if (fsync(fd))
		die("fsync %s: %s", path, strerror(errno));
	return fd;
}

static void disk_run(const struct bench_cfg *c, struct disk_result *r)
{
	char path[4096];
	uint64_t blocks = c->disk_ops < DISK_MAX_BLOCKS ? c->disk_ops : DISK_MAX_BLOCKS;
	char *block = aligned_alloc(DISK_BLOCK, DISK_BLOCK);
	uint64_t t0;
	int fd;

	if (!block)
		die("out of memory");
	memset(block, 0xa5, DISK_BLOCK);
	store_path(path, sizeof(path), c, "disk.dat");
	fd = disk_prepare(path, blocks * DISK_BLOCK);
	r->lat = xcalloc(1, sizeof(*r->lat));
	t0 = now_ns();
	for (uint64_t i = 0; i < c->disk_ops; i++) {
		uint64_t s = now_ns();

		if (pwrite(fd, block, DISK_BLOCK, (off_t)((i % blocks) * DISK_BLOCK)) !=
		    (ssize_t)DISK_BLOCK)
			die("write %s: %s", path, strerror(errno));
		if (fdatasync(fd))
			die("fdatasync %s: %s", path, strerror(errno));
		hist_add(r->lat, now_ns() - s);
	}
	r->seconds = (double)(now_ns() - t0) / 1e9;
	r->ops = c->disk_ops;
	r->file_bytes = blocks * DISK_BLOCK;
	r->done = true;
	close(fd);
	free(block);
	if (!c->keep && unlink(path))
		fprintf(stderr, "kvbench: unlink %s: %s\n", path, strerror(errno));
}

/* ---- worker threads ------------------------------------------------------------ */

enum role { ROLE_PUT_RANDOM, ROLE_PUT_HOT, ROLE_GET_HOT };

struct run {
	struct kv_db *db;
	const struct bench_cfg *cfg;
	struct phase ph;
};

struct worker {
	struct run *run;
	enum role role;
	unsigned id;
	uint64_t ops;
	int err; /* the first error; the worker stops at it */
	struct hist lat;
};

static void put_loop(struct worker *w, bool hot)
{
	const struct bench_cfg *c = w->run->cfg;
	uint64_t seed = 0x9e3779b97f4a7c15ull * (w->id + 1);
	uint8_t *val = xcalloc(1, c->value_size + 8);
	char key[32];
	size_t klen = strlen(HOT_KEY);

	for (size_t i = 0; i < c->value_size; i++)
		val[i] = (uint8_t)rng_next(&seed);
	memcpy(key, HOT_KEY, klen);
	while (!atomic_load_explicit(&w->run->ph.stop, memory_order_relaxed)) {
		uint64_t r = rng_next(&seed), t;
		int err;

		if (!hot)
			klen = (size_t)snprintf(key, sizeof(key), "k%015" PRIu64, r % c->keys);
		/* Each version differs, so a reader can never be served stale bytes unseen. */
		memcpy(val, &r, c->value_size < 8 ? c->value_size : 8);
		t = now_ns();
		err = kv_put(w->run->db, NULL, key, klen, val, c->value_size);
		hist_add(&w->lat, now_ns() - t);
		if (err) {
			w->err = err;
			break;
		}
		w->ops++;
	}
	free(val);
}

static void get_loop(struct worker *w)
{
	const struct bench_cfg *c = w->run->cfg;
	uint8_t *buf = xcalloc(1, c->value_size + 1);

	while (!atomic_load_explicit(&w->run->ph.stop, memory_order_relaxed)) {
		uint64_t t = now_ns();
		ssize_t n = kv_get(w->run->db, 0, HOT_KEY, strlen(HOT_KEY), buf, c->value_size);

		hist_add(&w->lat, now_ns() - t);
		if (n != (ssize_t)c->value_size) {
			w->err = n < 0 ? (int)n : -EUCLEAN;
			break;
		}
		w->ops++;
	}
	free(buf);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	pthread_barrier_wait(&w->run->ph.start);
	if (w->role == ROLE_GET_HOT)
		get_loop(w);
	else
		put_loop(w, w->role == ROLE_PUT_HOT);
	return NULL;
}

uint64_t phase_run(struct phase *p, void *workers, size_t size, unsigned n, void *(*fn)(void *),
		   double seconds, uint64_t *end)
{
	pthread_t *tid = xcalloc(n, sizeof(*tid));
	uint64_t t0;
	int err;

	atomic_store(&p->stop, false);
	if (pthread_barrier_init(&p->start, NULL, n + 1))
		die("pthread_barrier_init failed");
	for (unsigned i = 0; i < n; i++) {
		err = pthread_create(&tid[i], NULL, fn, (char *)workers + i * size);
		if (err)
			die("pthread_create: %s", strerror(err));
	}
	pthread_barrier_wait(&p->start);
	t0 = now_ns();
	if (seconds > 0) {
		sleep_until_ns(t0 + (uint64_t)(seconds * 1e9));
		atomic_store(&p->stop, true);
	}
	for (unsigned i = 0; i < n; i++)
		pthread_join(tid[i], NULL);
	*end = now_ns();
	pthread_barrier_destroy(&p->start);
	free(tid);
	return t0;
}

/* Run @n workers of @r for @seconds (see phase_run). */
static uint64_t run_workers(struct run *r, struct worker *w, unsigned n, double seconds,
			    uint64_t *end)
{
	for (unsigned i = 0; i < n; i++)
		w[i].run = r;
	return phase_run(&r->ph, w, sizeof(*w), n, worker_main, seconds, end);
}

/* ---- commit: group commit against fsync per op ---------------------------------- */

static void commit_run(const struct bench_cfg *c, enum kv_durability mode, unsigned threads,
		       struct commit_result *res)
{
	char what[64], path[4096];
	struct run r = { .cfg = c };
	struct worker *w = xcalloc(threads, sizeof(*w));
	uint64_t t0, t1;

	snprintf(what, sizeof(what), "commit-%s-%u", kv_durability_name(mode), threads);
	store_path(path, sizeof(path), c, what);
	r.db = store_create(c, path, mode);
	for (unsigned i = 0; i < threads; i++)
		w[i] = (struct worker){ .role = ROLE_PUT_RANDOM, .id = i };
	t0 = run_workers(&r, w, threads, c->commit_seconds, &t1);

	res->mode = mode;
	res->threads = threads;
	res->lat = xcalloc(1, sizeof(*res->lat));
	for (unsigned i = 0; i < threads; i++) {
		hist_merge(res->lat, &w[i].lat);
		res->ops += w[i].ops;
		if (w[i].err && !res->err)
			res->err = w[i].err;
	}
	/* batch acknowledges before durability: the run ends when all is durable. */
	if (mode == KV_DUR_BATCH) {
		int err = kv_sync(r.db);
		uint64_t t2 = now_ns();

		if (err && !res->err)
			res->err = err;
		res->sync_seconds = (double)(t2 - t1) / 1e9;
		t1 = t2;
	}
	res->seconds = (double)(t1 - t0) / 1e9;
	res->have_stats = kv_stats(r.db, &res->st) == 0;
	store_done(c, r.db, path);
	free(w);
}

static void commit_all(const struct bench_cfg *c, struct results *res)
{
	res->commit = xcalloc((size_t)c->ncommit_modes * c->nthreads, sizeof(*res->commit));
	commit_print_head(c);
	for (unsigned m = 0; m < c->ncommit_modes; m++) {
		for (unsigned t = 0; t < c->nthreads; t++) {
			struct commit_result *r = &res->commit[res->ncommit++];

			commit_run(c, c->commit_modes[m], c->threads[t], r);
			commit_print(r);
		}
	}
}

/* ---- hotread: reads of a key under writes ---------------------------------------- */

/* One phase: the reader and @writers writers on the open store. */
static void hot_phase(struct run *r, enum kv_durability mode, unsigned writers,
		      struct hot_result *res)
{
	const struct bench_cfg *c = r->cfg;
	struct worker *w = xcalloc(writers + 1, sizeof(*w));
	uint64_t t0, t1;

	w[0] = (struct worker){ .role = ROLE_GET_HOT, .id = 0 };
	for (unsigned i = 1; i <= writers; i++)
		w[i] = (struct worker){ .role = ROLE_PUT_HOT, .id = i };
	t0 = run_workers(r, w, writers + 1, c->hot_seconds, &t1);

	res->mode = mode;
	res->writers = writers;
	res->seconds = (double)(t1 - t0) / 1e9;
	res->lat = xcalloc(1, sizeof(*res->lat));
	hist_merge(res->lat, &w[0].lat);
	res->reads = w[0].ops;
	res->err = w[0].err;
	for (unsigned i = 1; i <= writers; i++) {
		res->writes += w[i].ops;
		if (w[i].err && !res->err)
			res->err = w[i].err;
	}
	free(w);
}

/* Baseline without writers, then under load, on the same store and key. */
static void hot_run(const struct bench_cfg *c, enum kv_durability mode, struct hot_result *res)
{
	char what[64], path[4096];
	struct run r = { .cfg = c };
	uint8_t *val = xcalloc(1, c->value_size + 1);
	int err;

	snprintf(what, sizeof(what), "hotread-%s", kv_durability_name(mode));
	store_path(path, sizeof(path), c, what);
	r.db = store_create(c, path, mode);
	err = kv_put(r.db, NULL, HOT_KEY, strlen(HOT_KEY), val, c->value_size);
	if (!err)
		err = kv_sync(r.db);
	if (err)
		die("kv_put %s: %s", path, strerror(-err));
	free(val);
	hot_phase(&r, mode, 0, &res[0]);
	hot_print(&res[0]);
	hot_phase(&r, mode, c->writers, &res[1]);
	hot_print(&res[1]);
	printf("%-13s read p99 with %u writers / without: %.1fx\n", "", c->writers,
	       ratio(hist_pct(res[1].lat, 0.99), hist_pct(res[0].lat, 0.99)));
	store_done(c, r.db, path);
}

static void hot_all(const struct bench_cfg *c, struct results *res)
{
	res->hot = xcalloc((size_t)c->nhot_modes * 2, sizeof(*res->hot));
	printf("\n== hotread: 1 reader of one hot key, 0 then %u writers of it, %zu-byte value, "
	       "%.1f s per phase, stores kvbench-%ld-hotread-* in %s\n",
	       c->writers, c->value_size, c->hot_seconds, (long)getpid(), c->dir);
	printf("%-13s %7s %10s %12s %10s %10s %10s %10s\n", "mode", "writers", "reads", "reads/s",
	       "p50 us", "p99 us", "p99.9 us", "writes/s");
	for (unsigned m = 0; m < c->nhot_modes; m++) {
		hot_run(c, c->hot_modes[m], &res->hot[res->nhot]);
		res->nhot += 2;
	}
}

/* ---- command line ------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fputs("usage: kvbench COMMAND [options]\n"
	      "\n"
	      "commands:\n"
	      "  disk      raw 4 KiB pwrite + fdatasync latency, in place (the physical limit)\n"
	      "  commit    durable writes/s and put latency per durability mode and thread count\n"
	      "  hotread   read latency of one hot key, without and with writers of it\n"
	      "  all       disk, commit and hotread with short defaults (about 90 s),\n"
	      "            then the ratios the project reports\n"
	      "  persist   data 10x the memtable: fillrandom, readrandom, readseq,\n"
	      "            readwhilewriting, then write and space amplification after\n"
	      "            kv_compact (not part of all)\n"
	      "  ycsb      YCSB workloads A-F against libkv and, if built with them,\n"
	      "            RocksDB and LevelDB (options: kvbench ycsb --help)\n"
	      "\n"
	      "options (the command each applies to in brackets):\n"
	      "  --dir D             where stores and files are made (default /var/tmp)\n"
	      "  --keep              keep the stores instead of removing them\n"
	      "  --json FILE         also write every parameter and result to FILE\n"
	      "  --ops N             [disk] synced writes (default 1000)\n"
	      "  --threads LIST      [commit] thread counts (default 1,2,4,8,16)\n"
	      "  --threads N         [persist] readers in readrandom and readwhilewriting (4)\n"
	      "  --modes LIST        [commit] default fsync-per-op,sync,batch;\n"
	      "                      [hotread] default locked,sync\n"
	      "  --seconds S         [commit, hotread, all, persist] per run (default 4) or\n"
	      "                      phase (hotread 6, persist 10: readrandom, readwhilewriting)\n"
	      "  --value-size N      [commit, hotread, all, persist] value bytes (default 1024)\n"
	      "  --keys N            [commit, all] distinct random keys (default 100000);\n"
	      "                      [persist] keys filled (default: 10 log buffers of data)\n"
	      "  --writers N         [hotread, all] writers of the hot key (default 8)\n"
	      "  --log-buffer MIB    [commit, hotread, all, persist] log buffer size\n"
	      "                      (default: the engine's; persist 16)\n"
	      "  --cache MIB         [persist] block cache size (default 8)\n"
	      "  -h, --help          this text\n"
	      "\n"
	      "modes: sync, batch, fsync-per-op, locked (see kv.h, enum kv_durability)\n",
	      f);
}

static __attribute__((noreturn, format(printf, 1, 2))) void bad_usage(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("kvbench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs("\nTry 'kvbench --help'.\n", stderr);
	va_end(ap);
	exit(2);
}

static uint64_t parse_num(const char *opt, const char *s, uint64_t min, uint64_t max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		bad_usage("%s: '%s' is not a number in [%" PRIu64 ", %" PRIu64 "]", opt, s, min,
			  max);
	return v;
}

static double parse_seconds(const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= 0.01 && v <= 3600))
		bad_usage("--seconds: '%s' is not a duration in [0.01, 3600]", s);
	return v;
}

/* Split @s at commas into at most MAX_LIST items; calls @fn on each. */
static unsigned parse_list(const char *opt, const char *s,
			   void (*fn)(const char *, void *, unsigned), void *out)
{
	char buf[512], *save = NULL, *tok;
	unsigned n = 0;

	if (strlen(s) >= sizeof(buf))
		bad_usage("%s: list too long", opt);
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (n == MAX_LIST)
			bad_usage("%s: at most %d items", opt, MAX_LIST);
		fn(tok, out, n++);
	}
	if (!n)
		bad_usage("%s: empty list", opt);
	return n;
}

static void parse_thread_item(const char *tok, void *out, unsigned i)
{
	((unsigned *)out)[i] = (unsigned)parse_num("--threads", tok, 1, MAX_THREADS);
}

static void parse_mode_item(const char *tok, void *out, unsigned i)
{
	enum kv_durability d;

	if (kv_durability_parse(tok, &d) || d == KV_DUR_DEFAULT)
		bad_usage("--modes: unknown mode '%s' (sync, batch, fsync-per-op, locked)", tok);
	((enum kv_durability *)out)[i] = d;
}

enum opt_id {
	OPT_DIR = 256,
	OPT_KEEP,
	OPT_JSON,
	OPT_OPS,
	OPT_THREADS,
	OPT_MODES,
	OPT_SECONDS,
	OPT_VALUE_SIZE,
	OPT_KEYS,
	OPT_WRITERS,
	OPT_LOG_BUFFER,
	OPT_CACHE,
};

static const struct option long_opts[] = {
	{ "dir", required_argument, NULL, OPT_DIR },
	{ "keep", no_argument, NULL, OPT_KEEP },
	{ "json", required_argument, NULL, OPT_JSON },
	{ "ops", required_argument, NULL, OPT_OPS },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "modes", required_argument, NULL, OPT_MODES },
	{ "seconds", required_argument, NULL, OPT_SECONDS },
	{ "value-size", required_argument, NULL, OPT_VALUE_SIZE },
	{ "keys", required_argument, NULL, OPT_KEYS },
	{ "writers", required_argument, NULL, OPT_WRITERS },
	{ "log-buffer", required_argument, NULL, OPT_LOG_BUFFER },
	{ "cache", required_argument, NULL, OPT_CACHE },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* Which commands each option applies to; any other use is an error. */
static unsigned opt_cmds(int id)
{
	switch (id) {
	case OPT_OPS:
		return CMD_DISK | CMD_ALL;
	case OPT_THREADS:
		return CMD_COMMIT | CMD_ALL | CMD_PERSIST;
	case OPT_MODES:
		return CMD_COMMIT | CMD_HOTREAD;
	case OPT_KEYS:
		return CMD_COMMIT | CMD_ALL | CMD_PERSIST;
	case OPT_WRITERS:
		return CMD_HOTREAD | CMD_ALL;
	case OPT_CACHE:
		return CMD_PERSIST;
	case OPT_SECONDS:
	case OPT_VALUE_SIZE:
	case OPT_LOG_BUFFER:
		return CMD_COMMIT | CMD_HOTREAD | CMD_ALL | CMD_PERSIST;
	default:
		return CMD_DISK | CMD_COMMIT | CMD_HOTREAD | CMD_ALL | CMD_PERSIST;
	}
}

static const char *opt_name(int id)
{
	for (const struct option *o = long_opts; o->name; o++)
		if (o->val == id)
			return o->name;
	return "?";
}

static void apply_opt(struct bench_cfg *c, int id, const char *arg)
{
	switch (id) {
	case OPT_DIR:
		c->dir = arg;
		break;
	case OPT_KEEP:
		c->keep = true;
		break;
	case OPT_JSON:
		c->json = arg;
		break;
	case OPT_OPS:
		c->disk_ops = parse_num("--ops", arg, 1, 100000000);
		break;
	case OPT_THREADS:
		if (c->cmd == CMD_PERSIST)
			c->persist_threads = (unsigned)parse_num("--threads", arg, 1, MAX_THREADS);
		else
			c->nthreads = parse_list("--threads", arg, parse_thread_item, c->threads);
		break;
	case OPT_MODES:
		if (c->cmd == CMD_COMMIT)
			c->ncommit_modes =
				parse_list("--modes", arg, parse_mode_item, c->commit_modes);
		else
			c->nhot_modes = parse_list("--modes", arg, parse_mode_item, c->hot_modes);
		break;
	case OPT_SECONDS:
		c->commit_seconds = c->hot_seconds = c->persist_seconds = parse_seconds(arg);
		break;
	case OPT_VALUE_SIZE:
		c->value_size = (size_t)parse_num("--value-size", arg, 1, KV_MAX_VALUE);
		break;
	case OPT_KEYS:
		c->keys = parse_num("--keys", arg, 1, UINT64_MAX / 2);
		c->keys_set = true;
		break;
	case OPT_WRITERS:
		c->writers = (unsigned)parse_num("--writers", arg, 1, MAX_THREADS);
		break;
	case OPT_LOG_BUFFER:
		c->log_buffer_size = (size_t)parse_num("--log-buffer", arg, 1, 256) << 20;
		break;
	case OPT_CACHE:
		c->block_cache_size = (size_t)parse_num("--cache", arg, 1, 65536) << 20;
		break;
	}
}

static enum cmd parse_cmd(const char *s)
{
	if (!strcmp(s, "disk"))
		return CMD_DISK;
	if (!strcmp(s, "commit"))
		return CMD_COMMIT;
	if (!strcmp(s, "hotread"))
		return CMD_HOTREAD;
	if (!strcmp(s, "all"))
		return CMD_ALL;
	if (!strcmp(s, "persist"))
		return CMD_PERSIST;
	bad_usage("unknown command '%s'", s);
}

/*
 * persist sizes its data from the memtable: unless given, a 16 MiB log
 * buffer, an 8 MiB block cache, and keys for PERSIST_DATA_FACTOR log
 * buffers of key + value bytes. A write may take at most a quarter of the
 * log buffer (kv.h, KV_MAX_VALUE), which bounds the fill's batches.
 */
static void cfg_finish(struct bench_cfg *c)
{
	size_t per_op, quarter, per_key;

	if (c->cmd != CMD_PERSIST)
		return;
	if (c->value_size < PERSIST_VALUE_MIN)
		bad_usage("--value-size: persist needs at least %u bytes (a value starts with its "
			  "key's index and its generation, which the readers check)",
			  PERSIST_VALUE_MIN);
	if (!c->log_buffer_size)
		c->log_buffer_size = PERSIST_LOG_BUFFER;
	if (!c->block_cache_size)
		c->block_cache_size = PERSIST_CACHE;
	per_op = PERSIST_KEY_SIZE + c->value_size + PERSIST_OP_SLACK;
	quarter = c->log_buffer_size / 4;
	if (per_op > quarter)
		bad_usage("--value-size %zu: a write may take at most a quarter of the %zu MiB log "
			  "buffer; raise --log-buffer",
			  c->value_size, c->log_buffer_size >> 20);
	c->persist_batch = quarter / per_op < PERSIST_BATCH ? (unsigned)(quarter / per_op) :
							      PERSIST_BATCH;
	per_key = PERSIST_KEY_SIZE + c->value_size;
	if (!c->keys_set)
		c->keys = ((uint64_t)PERSIST_DATA_FACTOR * c->log_buffer_size + per_key - 1) /
			  per_key;
}

static void parse_args(int argc, char **argv, struct bench_cfg *c)
{
	int id;

	cfg_defaults(c);
	if (argc < 2)
		bad_usage("no command given");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		exit(0);
	}
	c->cmd = parse_cmd(argv[1]);
	opterr = 0;
	while ((id = getopt_long(argc - 1, argv + 1, ":h", long_opts, NULL)) != -1) {
		if (id == 'h') {
			usage(stdout);
			exit(0);
		}
		if (id == '?')
			bad_usage("unknown option '%s'", argv[optind]);
		if (id == ':')
			bad_usage("option '%s' needs a value", argv[optind]);
		if (!(opt_cmds(id) & c->cmd))
			bad_usage("--%s does not apply to '%s'", opt_name(id), argv[1]);
		apply_opt(c, id, optarg);
	}
	if (optind < argc - 1)
		bad_usage("unexpected argument '%s'", argv[optind + 1]);
	cfg_finish(c);
}

int main(int argc, char **argv)
{
	struct bench_cfg c;
	struct results res = { 0 };
	struct ratios q = { 0 };
	struct stat sb;

	if (argc >= 2 && !strcmp(argv[1], "ycsb"))
		return ycsb_main(argc - 1, argv + 1);
	parse_args(argc, argv, &c);
	if (stat(c.dir, &sb) || !S_ISDIR(sb.st_mode))
		bad_usage("--dir %s: not a directory", c.dir);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("kvbench %s: stores under %s (%s)\n", argv[1], c.dir,
	       c.keep ? "kept" : "removed after each run; --keep keeps them");
	if (c.cmd & (CMD_DISK | CMD_ALL)) {
		disk_run(&c, &res.disk);
		disk_print(&c, &res.disk);
	}
	if (c.cmd & (CMD_COMMIT | CMD_ALL))
		commit_all(&c, &res);
	if (c.cmd & (CMD_HOTREAD | CMD_ALL))
		hot_all(&c, &res);
	if (c.cmd & CMD_PERSIST)
		persist_run(&c, &res);
	ratios_compute(&res, &q);
	if (c.cmd == CMD_ALL)
		ratios_print(&c, &q);
	if (c.json)
		json_write(&c, &res, &q);
	results_free(&res);
	return 0;
}
