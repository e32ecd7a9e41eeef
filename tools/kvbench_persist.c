/* SPDX-License-Identifier: MIT */
/*
 * kvbench_persist.c - kvbench persist: libkv once the data has outgrown
 * memory.
 *
 * The write-path commands (kvbench.c) keep everything in the memtable. This
 * one fills a store with PERSIST_DATA_FACTOR (10) log buffers of data, so
 * that most of it lives in tables, through flushes and compactions, behind
 * a block cache a fraction of its size (defaults: 16 MiB log buffer, 8 MiB
 * cache, 1 KiB values as in the other commands, ~160 MiB of data). Then, on
 * the same store, in this order:
 *
 *   1. fillrandom        every key once, in random key order, PERSIST_BATCH
 *                        (100) puts per kv_write, fewer if that would take
 *                        over a quarter of the log buffer, durability batch;
 *                        the phase ends with a kv_sync, counted in its time;
 *   2. readrandom        T threads, kv_get of uniformly random keys, S s;
 *   3. readseq           one kv_iter over the whole store;
 *   4. readwhilewriting  T readers as in 2 and one writer putting new
 *                        versions of random keys (kv_put, durability
 *                        batch), S s; then a kv_sync outside the phase;
 *   5. kv_compact        then write amplification and space amplification
 *                        from kv_stats, the bytes per level, and the bytes
 *                        of the store directory against the live data.
 * The read phases do not wait for the fill's background work to finish:
 * they measure the store as a writer leaves it.
 *
 * Keys and values (only this file makes or reads them):
 *
 *   key    [0..8)  mix64(index), big-endian  (a bijection: spread, unique)
 *          [8..16) index, big-endian
 *   value  [0..8)  index, little-endian
 *          [8..16) generation, little-endian (0 from the fill, then 1, 2, ...
 *                  from the writer of readwhilewriting)
 *          [16..)  xorshift64* stream seeded by (index, generation)
 *
 * So every answer can be checked without a model: a key's index is in it,
 * and a value must name that index and be exactly the bytes of its
 * generation. Invariants checked, each a wrong answer that aborts the run
 * (the store is left in place for inspection):
 *   1. kv_get of a filled key finds it (never -ENOENT);
 *   2. its value has --value-size bytes, its index, and the stream of its
 *      generation, byte for byte;
 *   3. readseq sees exactly --keys keys, in strictly increasing order, each
 *      of the form above, with its generation-0 value (index and generation
 *      only: the scan is timed, and a per-byte check would dominate it).
 * A call that fails with any other negative errno is counted as an error
 * and reported; the phase goes on.
 *
 * Timing: readers time each kv_get, the writer each kv_put, the fill each
 * kv_write (up to PERSIST_BATCH puts), into per-thread histograms merged at the
 * end; checking a value is outside the timed call but inside the phase, so
 * ops/s includes it (a few hundred ns per 1 KiB value).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* CMake passes it too */
#endif

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
#include <unistd.h>

#include "kv.h"
#include "kvbench.h"

/* ---- keys and values ------------------------------------------------------------ */

/* The splitmix64 finalizer: each step is invertible, so distinct indexes
 * give distinct keys, spread over the key space. */
static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void key_make(uint8_t key[PERSIST_KEY_SIZE], uint64_t idx)
{
	put_be64(key, mix64(idx));
	put_be64(key + 8, idx);
}

/* @len >= PERSIST_VALUE_MIN. */
static void value_make(uint8_t *v, size_t len, uint64_t idx, uint64_t gen)
{
	uint64_t s = mix64(idx ^ mix64(gen + 1)) | 1; /* xorshift state: never 0 */
	size_t off;

	put_le64(v, idx);
	put_le64(v + 8, gen);
	for (off = PERSIST_VALUE_MIN; off + 8 <= len; off += 8) {
		uint64_t w = rng_next(&s);

		memcpy(v + off, &w, 8);
	}
	if (off < len) {
		uint64_t w = rng_next(&s);

		memcpy(v + off, &w, len - off);
	}
}

/* ---- a run: the store, its phase, and its checks ------------------------------------ */

struct persist_run {
	struct kv_db *db;	     /* [immutable while threads run] */
	const struct bench_cfg *cfg; /* [immutable] */
	const char *path;	     /* the store, named in messages [immutable] */
	const char *phase;	     /* the phase running [set before threads start] */
	unsigned salt;		     /* makes each phase's random keys differ [ditto] */
	struct phase ph;
};

/* A wrong answer is an engine bug: say which, and stop with the store left in place. */
static __attribute__((noreturn, format(printf, 3, 4))) void
wrong(const struct persist_run *r, uint64_t idx, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	die("%s: WRONG ANSWER for key %016" PRIx64 "%016" PRIx64 " (index %" PRIu64
	    "): %s; the store is left in %s",
	    r->phase, mix64(idx), idx, idx, msg, r->path);
}

/* Invariants 1 and 2 for the answer @n of a kv_get of key @idx into @buf;
 * @scratch holds value_size bytes. */
static void value_check(const struct persist_run *r, uint64_t idx, const uint8_t *buf, ssize_t n,
			uint8_t *scratch)
{
	size_t vs = r->cfg->value_size;
	uint64_t gen;

	if (n == -ENOENT)
		wrong(r, idx, "not found");
	if (n != (ssize_t)vs)
		wrong(r, idx, "a value of %zd bytes, expected %zu", n, vs);
	if (get_le64(buf) != idx)
		wrong(r, idx, "the value of index %" PRIu64, get_le64(buf));
	gen = get_le64(buf + 8);
	value_make(scratch, vs, idx, gen);
	if (memcmp(buf, scratch, vs)) {
		size_t i = 0;

		while (buf[i] == scratch[i])
			i++;
		wrong(r, idx,
		      "value of generation %" PRIu64 " differs from what was written at byte %zu "
		      "(0x%02x, expected 0x%02x)",
		      gen, i, buf[i], scratch[i]);
	}
}

static void stats_get(const struct persist_run *r, struct kv_stats *st)
{
	int err;

	memset(st, 0, sizeof(*st));
	err = kv_stats(r->db, st);
	if (err)
		die("%s: kv_stats %s: %s", r->phase, r->path, strerror(-err));
}

static void phase_begin(struct persist_run *r, struct persist_phase *ph, const char *name,
			unsigned threads, bool timed_calls)
{
	r->phase = name;
	r->salt++;
	ph->threads = threads;
	if (timed_calls)
		ph->lat = xcalloc(1, sizeof(*ph->lat));
	stats_get(r, &ph->before);
}

static void note_error(uint64_t *errors, int *first, int err)
{
	if (!(*errors)++)
		*first = err;
}

/* ---- 1. fillrandom ------------------------------------------------------------------ */

static void fill(struct persist_run *r, struct persist_result *res)
{
	const struct bench_cfg *c = r->cfg;
	const struct kv_write_options wo = { .durability = KV_DUR_BATCH };
	struct persist_phase *ph = &res->fill;
	uint8_t key[PERSIST_KEY_SIZE], *val = xcalloc(1, c->value_size);
	struct kv_batch *b;
	uint64_t t0, t1, t2;
	int err;

	assert(c->persist_batch >= 1); /* cfg_finish: else the loop below never ends */
	phase_begin(r, ph, "fillrandom", 1, true);
	err = kv_batch_create(&b);
	if (err)
		die("kv_batch_create: %s", strerror(-err));
	t0 = now_ns();
	for (uint64_t idx = 0; idx < c->keys;) {
		uint64_t t;

		kv_batch_clear(b);
		for (unsigned j = 0; j < c->persist_batch && idx < c->keys; j++, idx++) {
			key_make(key, idx);
			value_make(val, c->value_size, idx, 0);
			err = kv_batch_put(b, key, sizeof(key), val, c->value_size);
			if (err)
				die("fillrandom: kv_batch_put: %s", strerror(-err));
		}
		t = now_ns();
		err = kv_write(r->db, &wo, b);
		hist_add(ph->lat, now_ns() - t);
		if (err)
			die("fillrandom: kv_write of %u puts at index %" PRIu64
			    ": %s; the store is left in %s",
			    kv_batch_count(b), idx, strerror(-err), r->path);
		ph->ops += kv_batch_count(b);
	}
	t1 = now_ns();
	err = kv_sync(r->db);
	t2 = now_ns();
	if (err)
		die("fillrandom: kv_sync: %s; the store is left in %s", strerror(-err), r->path);
	ph->seconds = (double)(t2 - t0) / 1e9;
	res->fill_sync_seconds = (double)(t2 - t1) / 1e9;
	ph->bytes = ph->ops * (PERSIST_KEY_SIZE + c->value_size);
	stats_get(r, &ph->after);
	kv_batch_destroy(b);
	free(val);
}

/* ---- 2. and 4.: timed readers, and the writer ------------------------------------------ */

struct persist_worker {
	struct persist_run *run;
	unsigned id;
	bool writer;
	uint64_t ops;
	uint64_t errors;
	int first_err;
	struct hist lat;
};

static void reader_loop(struct persist_worker *w)
{
	const struct persist_run *r = w->run;
	size_t vs = r->cfg->value_size;
	uint8_t key[PERSIST_KEY_SIZE], *buf = xcalloc(2, vs), *scratch = buf + vs;
	uint64_t seed = mix64((uint64_t)r->salt << 32 | w->id) | 1;

	while (!atomic_load_explicit(&w->run->ph.stop, memory_order_relaxed)) {
		uint64_t idx = rng_next(&seed) % r->cfg->keys, t;
		ssize_t n;

		key_make(key, idx);
		t = now_ns();
		n = kv_get(r->db, 0, key, sizeof(key), buf, vs);
		hist_add(&w->lat, now_ns() - t);
		if (n < 0 && n != -ENOENT) {
			note_error(&w->errors, &w->first_err, (int)n);
			continue;
		}
		value_check(r, idx, buf, n, scratch);
		w->ops++;
	}
	free(buf);
}

/* New versions of random keys: generation 1, 2, ... */
static void writer_loop(struct persist_worker *w)
{
	const struct persist_run *r = w->run;
	const struct kv_write_options wo = { .durability = KV_DUR_BATCH };
	size_t vs = r->cfg->value_size;
	uint8_t key[PERSIST_KEY_SIZE], *val = xcalloc(1, vs);
	uint64_t seed = mix64((uint64_t)r->salt << 32 | 0xffffffffu) | 1, gen = 0;

	while (!atomic_load_explicit(&w->run->ph.stop, memory_order_relaxed)) {
		uint64_t idx = rng_next(&seed) % r->cfg->keys, t;
		int err;

		key_make(key, idx);
		value_make(val, vs, idx, ++gen);
		t = now_ns();
		err = kv_put(r->db, &wo, key, sizeof(key), val, vs);
		hist_add(&w->lat, now_ns() - t);
		if (err) {
			/* A failed write fails the store: no point in going on. */
			note_error(&w->errors, &w->first_err, err);
			break;
		}
		w->ops++;
	}
	free(val);
}

static void *worker_main(void *arg)
{
	struct persist_worker *w = arg;

	pthread_barrier_wait(&w->run->ph.start);
	if (w->writer)
		writer_loop(w);
	else
		reader_loop(w);
	return NULL;
}

/* Run @n workers together for --seconds; returns the phase's wall time. */
static double run_timed(struct persist_run *r, struct persist_worker *w, unsigned n)
{
	uint64_t t0, t1;

	for (unsigned i = 0; i < n; i++)
		w[i].run = r;
	t0 = phase_run(&r->ph, w, sizeof(*w), n, worker_main, r->cfg->persist_seconds, &t1);
	return (double)(t1 - t0) / 1e9;
}

/* Sum the workers of one kind into @ph. */
static void phase_collect(struct persist_phase *ph, const struct persist_worker *w, unsigned n,
			  bool writer, size_t value_size)
{
	for (unsigned i = 0; i < n; i++) {
		if (w[i].writer != writer)
			continue;
		hist_merge(ph->lat, &w[i].lat);
		ph->ops += w[i].ops;
		if (w[i].errors && !ph->errors)
			ph->first_err = w[i].first_err;
		ph->errors += w[i].errors;
	}
	ph->bytes = ph->ops * (PERSIST_KEY_SIZE + value_size);
}

static void readrandom(struct persist_run *r, struct persist_result *res)
{
	const struct bench_cfg *c = r->cfg;
	unsigned n = c->persist_threads;
	struct persist_worker *w = xcalloc(n, sizeof(*w));

	phase_begin(r, &res->readrandom, "readrandom", n, true);
	for (unsigned i = 0; i < n; i++)
		w[i].id = i;
	res->readrandom.seconds = run_timed(r, w, n);
	phase_collect(&res->readrandom, w, n, false, c->value_size);
	stats_get(r, &res->readrandom.after);
	free(w);
}

static void readwhilewriting(struct persist_run *r, struct persist_result *res)
{
	const struct bench_cfg *c = r->cfg;
	unsigned n = c->persist_threads + 1;
	struct persist_worker *w = xcalloc(n, sizeof(*w));
	uint64_t t;
	int err;

	phase_begin(r, &res->rww_read, "readwhilewriting", n - 1, true);
	res->rww_write.threads = 1;
	res->rww_write.lat = xcalloc(1, sizeof(*res->rww_write.lat));
	res->rww_write.before = res->rww_read.before;
	for (unsigned i = 0; i < n; i++)
		w[i] = (struct persist_worker){ .id = i, .writer = i == n - 1 };
	res->rww_read.seconds = res->rww_write.seconds = run_timed(r, w, n);
	phase_collect(&res->rww_read, w, n, false, c->value_size);
	phase_collect(&res->rww_write, w, n, true, c->value_size);
	stats_get(r, &res->rww_read.after);
	res->rww_write.after = res->rww_read.after;
	t = now_ns();
	err = kv_sync(r->db);
	res->rww_sync_seconds = (double)(now_ns() - t) / 1e9;
	if (err)
		die("readwhilewriting: kv_sync: %s; the store is left in %s", strerror(-err),
		    r->path);
	free(w);
}

/* ---- 3. readseq --------------------------------------------------------------------- */

/* Invariant 3 for one entry; @prev is the previous key, NULL at the first. */
static void scan_check(const struct persist_run *r, const uint8_t *prev, const uint8_t *k,
		       size_t klen, const uint8_t *v, size_t vlen)
{
	uint64_t idx;

	if (klen != PERSIST_KEY_SIZE)
		die("readseq: WRONG ANSWER: a key of %zu bytes, expected %u; the store is left in "
		    "%s",
		    klen, PERSIST_KEY_SIZE, r->path);
	idx = get_be64(k + 8);
	if (get_be64(k) != mix64(idx) || idx >= r->cfg->keys)
		die("readseq: WRONG ANSWER: key %016" PRIx64 "%016" PRIx64
		    " was never written; the store is left in %s",
		    get_be64(k), idx, r->path);
	if (prev && memcmp(prev, k, PERSIST_KEY_SIZE) >= 0)
		wrong(r, idx, "out of order after key %016" PRIx64 "%016" PRIx64, get_be64(prev),
		      get_be64(prev + 8));
	if (vlen != r->cfg->value_size)
		wrong(r, idx, "a value of %zu bytes, expected %zu", vlen, r->cfg->value_size);
	if (get_le64(v) != idx || get_le64(v + 8) != 0)
		wrong(r, idx,
		      "the value of index %" PRIu64 " generation %" PRIu64
		      ", expected generation 0",
		      get_le64(v), get_le64(v + 8));
}

static void readseq(struct persist_run *r, struct persist_result *res)
{
	struct persist_phase *ph = &res->readseq;
	uint8_t prev[PERSIST_KEY_SIZE];
	struct kv_iter *it;
	uint64_t t0;
	int err;

	phase_begin(r, ph, "readseq", 1, false);
	t0 = now_ns();
	err = kv_iter_create(r->db, NULL, &it);
	if (err)
		die("readseq: kv_iter_create: %s", strerror(-err));
	for (kv_iter_seek_first(it); kv_iter_valid(it); kv_iter_next(it)) {
		size_t klen, vlen;
		const uint8_t *k = kv_iter_key(it, &klen);
		const uint8_t *v = kv_iter_value(it, &vlen);

		scan_check(r, ph->ops ? prev : NULL, k, klen, v, vlen);
		memcpy(prev, k, PERSIST_KEY_SIZE);
		ph->ops++;
		ph->bytes += klen + vlen;
	}
	err = kv_iter_status(it);
	kv_iter_destroy(it);
	ph->seconds = (double)(now_ns() - t0) / 1e9;
	if (err) {
		/* The scan ended early: report it rather than a wrong count. */
		note_error(&ph->errors, &ph->first_err, err);
	} else if (ph->ops != r->cfg->keys) {
		die("readseq: WRONG ANSWER: the scan saw %" PRIu64 " keys, expected %" PRIu64
		    "; the store is left in %s",
		    ph->ops, r->cfg->keys, r->path);
	}
	stats_get(r, &ph->after);
}

/* ---- 5. kv_compact, amplification, the directory ---------------------------------------- */

static bool name_ends(const char *name, const char *suffix)
{
	size_t n = strlen(name), s = strlen(suffix);

	return n >= s && !strcmp(name + n - s, suffix);
}

/* Sizes of the store's files (it is flat): tables *.sst, WAL segments *.log. */
static void dir_usage(const char *path, struct dir_usage *u)
{
	DIR *d = opendir(path);
	struct dirent *e;

	if (!d)
		die("opendir %s: %s", path, strerror(errno));
	memset(u, 0, sizeof(*u));
	while ((e = readdir(d))) {
		struct stat sb;
		uint64_t size;

		if (fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW)) {
			if (errno == ENOENT) /* removed by the engine since readdir */
				continue;
			die("stat %s/%s: %s", path, e->d_name, strerror(errno));
		}
		if (!S_ISREG(sb.st_mode))
			continue;
		size = (uint64_t)sb.st_size;
		u->files++;
		u->bytes += size;
		if (name_ends(e->d_name, ".sst")) {
			u->table_files++;
			u->table_bytes += size;
		} else if (name_ends(e->d_name, ".log")) {
			u->wal_files++;
			u->wal_bytes += size;
		}
	}
	closedir(d);
}

static void compact(struct persist_run *r, struct persist_result *res)
{
	uint64_t t0;
	int err;

	r->phase = "kv_compact";
	t0 = now_ns();
	err = kv_compact(r->db);
	res->compact_seconds = (double)(now_ns() - t0) / 1e9;
	if (err)
		die("kv_compact: %s; the store is left in %s", strerror(-err), r->path);
	stats_get(r, &res->final);
	res->live_bytes = r->cfg->keys * (PERSIST_KEY_SIZE + r->cfg->value_size);
	/* Tables a compaction replaced are unlinked when their last reference
	 * goes, after a grace period run by a background thread: some may still
	 * be here now, none after kv_close. */
	dir_usage(r->path, &res->compacted);
}

/* ---- the command ------------------------------------------------------------------- */

void persist_run(const struct bench_cfg *c, struct results *res)
{
	struct persist_run r = { .cfg = c };
	struct persist_result *p = xcalloc(1, sizeof(*p));
	char path[4096];
	int err;

	res->persist = p;
	store_path(path, sizeof(path), c, "persist");
	r.path = path;
	r.db = store_create(c, path, KV_DUR_BATCH);
	persist_print_head(c);
	fill(&r, p);
	persist_print_fill(c, p);
	readrandom(&r, p);
	persist_print_readrandom(p);
	readseq(&r, p);
	persist_print_readseq(c, p);
	readwhilewriting(&r, p);
	persist_print_rww(p);
	compact(&r, p);
	err = kv_close(r.db);
	if (err)
		fprintf(stderr, "kvbench: kv_close %s: %s\n", path, strerror(-err));
	dir_usage(path, &p->closed);
	persist_print_compact(c, p);
	if (!c->keep)
		store_remove(path);
}
