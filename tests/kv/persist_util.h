/* SPDX-License-Identifier: MIT */
/*
 * persist_util.h - helpers shared by the persistence tests (test_persist.c,
 * test_iter.c, test_model.c, test_bigdata.c, test_persist_crash.c).
 *
 * 1. The store under test (struct kvp_store): a scratch directory, options
 *    from kvt_options() with a log sink, the open handle and, for the crash
 *    tests, a fault env under it. A test's fixture embeds one (by custom as
 *    member `kv`), adjusts kv.opt before opening, and calls kvp_store_fini()
 *    from its teardown, which cleans up after a failed test too.
 * 2. Failing with the store's log: kvp_open, kvp_close, kvp_flush, ... fail
 *    the cmocka test with the call, the error and the store's recent log
 *    messages, prefixed by kvp_store.ctx where a test sets it.
 * 3. Tracked iterators and snapshots: a db must not be closed under them, so
 *    the ones made through kvp_iter_open / kvp_snap_take are remembered
 *    until kvp_iter_close / kvp_snap_drop, and kvp_store_fini frees what a
 *    failed test still held. Main thread only; at most KVP_LIVE_MAX of each
 *    are tracked (more are not remembered).
 * 4. A sorted in-memory model of the store (struct kvp_model): byte-string
 *    keys in memcmp order (a shorter key first on a tie), each with its
 *    value; and kvp_iter_compare(), which compares an iterator with it.
 * 5. Small things: deterministic values, printable keys, counting the
 *    store's files, totals over the levels of struct kv_stats.
 */
#ifndef PERSIST_UTIL_H
#define PERSIST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "kv.h"
#include "kv_test_util.h"

/* ---- 1. the store under test ------------------------------------------- */

struct kvp_store {
	char *dir;		 /* scratch directory, removed by kvp_store_fini */
	struct kvt_log log;	 /* the store's last log messages */
	struct kv_options opt;	 /* used by the next open */
	struct kv_db *db;	 /* NULL while closed */
	struct kv_fault_env *fe; /* the env under opt.env, or NULL: the default env */
	const char *ctx;	 /* if set, prefixes every failure message */
};

/*
 * A fresh directory "kvtest-<tag>-XXXXXX" and kvt_options(), with a fault env
 * over the default one if @fault. The store is not opened. 0, or a negative
 * errno (then nothing is left to clean up).
 */
int kvp_store_init(struct kvp_store *s, const char *tag, int fault);
/*
 * Free the tracked iterators and snapshots, close the db (abandon it if
 * there is a fault env: an injected fault may have "killed" it), destroy the
 * fault env and remove the directory. Safe after a failed test.
 */
void kvp_store_fini(struct kvp_store *s);
/* A cmocka teardown: kvp_store_fini and free of the store in *@state
 * (one the test's setup allocated). */
int kvp_store_teardown(void **state);

/* ---- 2. calls that fail the test with the store's log ------------------- */

/* Clear the log and open s->dir with s->opt; s->db must be NULL. 0 or the
 * error of kv_open (s->db stays NULL). */
int kvp_try_open(struct kvp_store *s);
void kvp_open(struct kvp_store *s);
void kvp_close(struct kvp_store *s);
void kvp_reopen(struct kvp_store *s);
void kvp_flush(struct kvp_store *s);
void kvp_compact(struct kvp_store *s);
/* kv_stats, and neither failed nor a background error. */
void kvp_stats(const struct kvp_store *s, struct kv_stats *st);
/* Fail the test if @err: "<what> = <err> (<strerror>); log: ...". */
void kvp_ok(const struct kvp_store *s, int err, const char *what);

/* ---- 3. tracked iterators and snapshots --------------------------------- */

#define KVP_LIVE_MAX 8

int kvp_iter_open(struct kv_db *db, const struct kv_snapshot *snap, struct kv_iter **out);
void kvp_iter_close(struct kv_iter *it);
int kvp_snap_take(struct kv_db *db, struct kv_snapshot **out);
void kvp_snap_drop(struct kv_db *db, struct kv_snapshot *snap);
/* Destroy the tracked iterators, then release the tracked snapshots (if @db;
 * without a db there is nothing to release them to). */
void kvp_live_free(struct kv_db *db);

/* ---- 4. the sorted model ------------------------------------------------- */

struct kvp_ment {
	uint8_t *k, *v; /* malloc'd */
	size_t kl, vl;
};

struct kvp_model {
	struct kvp_ment *e; /* sorted by kvp_key_cmp, no two keys equal */
	size_t n, cap;
};

/* memcmp order; on a tie the shorter key first. */
int kvp_key_cmp(const void *a, size_t al, const void *b, size_t bl);
/* Index of the first entry >= @k (m->n if none). */
size_t kvp_model_lower(const struct kvp_model *m, const void *k, size_t kl);
/* The entry of @k, or NULL. */
const struct kvp_ment *kvp_model_get(const struct kvp_model *m, const void *k, size_t kl);
void kvp_model_put(struct kvp_model *m, const void *k, size_t kl, const void *v, size_t vl);
void kvp_model_del(struct kvp_model *m, const void *k, size_t kl);
/* Remove [s, e). */
void kvp_model_del_range(struct kvp_model *m, const void *s, size_t sl, const void *e, size_t el);
/* @dst (uninitialised) becomes a deep copy of @src. */
void kvp_model_copy(struct kvp_model *dst, const struct kvp_model *src);
void kvp_model_free(struct kvp_model *m);

/*
 * Compare @it, already positioned, with @m from entry @i on, for at most
 * @limit keys (0: to the end); *@seen = the keys compared. 0 if they agree;
 * else -1, and @why says what differs: a key or value, a key past the
 * model's end, an early end, or kv_iter_status.
 */
int kvp_iter_compare(struct kv_iter *it, const struct kvp_model *m, size_t i, size_t limit,
		     size_t *seen, char *why, size_t cap);

/* ---- 5. small things ------------------------------------------------------ */

/* A 64-bit mixing function (splitmix64's finalizer): x -> a well-spread hash. */
uint64_t kvp_mix(uint64_t x);

/*
 * A deterministic value: @len bytes of a stream that follows from @seed, then
 * the printf header written over its start (with its NUL where it fits,
 * truncated where it does not), so that people can read whose value it is.
 * Returns @len.
 */
size_t kvp_value(uint8_t *buf, size_t len, uint64_t seed, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Bytes for people: printable ones as is, others (and '\') as \xx; at most
 * @max bytes of @p, then "...". */
void kvp_fmt_bytes(char *out, size_t cap, const void *p, size_t n, size_t max);

/* Files in @dir named <prefix><16 lowercase hex digits><suffix>, as the store
 * names its WAL segments ("wal-", ".log") and tables ("tbl-", ".sst"). */
unsigned kvp_count_files(const char *dir, const char *prefix, const char *suffix);

/* Tables, and their bytes, over all levels. */
uint64_t kvp_table_count(const struct kv_stats *st);
uint64_t kvp_table_bytes(const struct kv_stats *st);

#endif
