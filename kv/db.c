/* SPDX-License-Identifier: MIT */
/*
 * db.c - opening and closing a database, reads, statistics, logging.
 *
 * Open: check and lock the store directory (store.c), replay the WAL into
 * read-only memtables (recovery.c), start a new active memtable on a new
 * segment, start the backstop (commit.c). Close: commit everything, stop the
 * backstop, remove unused segment files, free.
 *
 * Reads walk the memtables newest first and take, in each, the newest
 * committed version (memtable.h); a delete ends the search. Memtables are
 * freed only at close in this version (no flush yet), so a reader may hold
 * pointers into any log buffer for as long as the handle is open.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "db.h"
#include "wal.h"

#define KV_DEF_OPEN_TABLES 512 /* kv_options.max_open_tables */
#define KV_MIN_OPEN_TABLES 16

static const char *const dur_names[] = {
	[KV_DUR_DEFAULT] = "default", [KV_DUR_SYNC] = "sync",
	[KV_DUR_BATCH] = "batch",     [KV_DUR_FSYNC_PER_OP] = "fsync-per-op",
	[KV_DUR_LOCKED] = "locked",
};

const char *kv_durability_name(enum kv_durability d)
{
	if ((unsigned)d >= sizeof(dur_names) / sizeof(dur_names[0]))
		return "unknown";
	return dur_names[d];
}

int kv_durability_parse(const char *name, enum kv_durability *out)
{
	for (unsigned i = KV_DUR_SYNC; i < sizeof(dur_names) / sizeof(dur_names[0]); i++) {
		if (!strcmp(name, dur_names[i])) {
			*out = (enum kv_durability)i;
			return 0;
		}
	}
	return -EINVAL;
}

void kv_options_init(struct kv_options *opt)
{
	memset(opt, 0, sizeof(*opt));
	opt->durability = KV_DUR_SYNC;
	opt->log_buffer_size = 64u << 20;
}

static __attribute__((format(printf, 3, 0))) void
vlog(const struct kv_options *opt, enum kv_log_level level, const char *fmt, va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (opt && opt->log)
		opt->log(opt->log_ctx, level, msg);
	else if (level <= KV_LOG_WARN)
		fprintf(stderr, "libkv: %s\n", msg);
}

void kv_log_opt(const struct kv_options *opt, enum kv_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(opt, level, fmt, ap);
	va_end(ap);
}

void kv_log(struct kv_db *db, enum kv_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(&db->opt, level, fmt, ap);
	va_end(ap);
}

static int check_options(const char *dir, const struct kv_options *opt)
{
	size_t sz = opt->log_buffer_size;

	if (!dir || !*dir) {
		kv_log_opt(opt, KV_LOG_ERROR, "kv_open: no store directory given");
		return -EINVAL;
	}
	if (sz < KV_LOGBUF_MIN || sz > KV_LOGBUF_MAX || sz % 4096) {
		kv_log_opt(opt, KV_LOG_ERROR,
			   "%s: log_buffer_size %zu must be a multiple of 4096 in [%llu, %llu]",
			   dir, sz, KV_LOGBUF_MIN, KV_LOGBUF_MAX);
		return -EINVAL;
	}
	if (opt->batch_max_pending &&
	    (opt->batch_max_pending < 4096 || opt->batch_max_pending > sz / 2)) {
		kv_log_opt(opt, KV_LOG_ERROR,
			   "%s: batch_max_pending %zu must be in [4096, log_buffer_size / 2]", dir,
			   opt->batch_max_pending);
		return -EINVAL;
	}
	if (opt->max_immutable < 0 || opt->max_immutable > 16 || opt->l0_compact_trigger < 0 ||
	    opt->l0_stall < 0 || (opt->l0_stall && opt->l0_stall <= opt->l0_compact_trigger)) {
		kv_log_opt(
			opt, KV_LOG_ERROR,
			"%s: max_immutable must be in [1, 16] and l0_stall above l0_compact_trigger",
			dir);
		return -EINVAL;
	}
	if (opt->max_open_tables && opt->max_open_tables < KV_MIN_OPEN_TABLES) {
		kv_log_opt(opt, KV_LOG_ERROR,
			   "%s: max_open_tables %d must be 0 (the default, %d) or at least %d", dir,
			   opt->max_open_tables, KV_DEF_OPEN_TABLES, KV_MIN_OPEN_TABLES);
		return -EINVAL;
	}
	if (opt->durability < KV_DUR_DEFAULT || opt->durability > KV_DUR_LOCKED) {
		kv_log_opt(opt, KV_LOG_ERROR, "%s: unknown durability mode %d", dir,
			   opt->durability);
		return -EINVAL;
	}
	return 0;
}

static struct kv_db *db_alloc(const char *dir, const struct kv_options *opt)
{
	struct kv_db *db = NULL;
	pthread_rwlockattr_t ra;

	/* Some fields sit on their own cache lines. */
	if (posix_memalign((void **)&db, _Alignof(struct kv_db), sizeof(*db)))
		return NULL;
	memset(db, 0, sizeof(*db));
	db->dir = strdup(dir);
	if (!db->dir) {
		free(db);
		return NULL;
	}
	db->opt = *opt;
	if (db->opt.durability == KV_DUR_DEFAULT)
		db->opt.durability = KV_DUR_SYNC;
	if (!db->opt.batch_max_pending)
		db->opt.batch_max_pending = opt->log_buffer_size / 4 < (1u << 20) ?
						    opt->log_buffer_size / 4 :
						    (1u << 20);
	if (!db->opt.block_cache_size)
		db->opt.block_cache_size = 32u << 20;
	if (!db->opt.table_target_size)
		db->opt.table_target_size = 8u << 20;
	if (!db->opt.max_open_tables)
		db->opt.max_open_tables = KV_DEF_OPEN_TABLES;
	if (!db->opt.level1_max_bytes)
		db->opt.level1_max_bytes = 4 * db->opt.log_buffer_size;
	if (!db->opt.max_immutable)
		db->opt.max_immutable = 2;
	if (!db->opt.l0_compact_trigger)
		db->opt.l0_compact_trigger = 4;
	if (!db->opt.l0_stall)
		db->opt.l0_stall = db->opt.l0_compact_trigger > 9 ? db->opt.l0_compact_trigger + 3 :
								    12;
	db->env = opt->env ? opt->env : kv_env_default();
	pthread_mutex_init(&db->rot_mu, NULL);
	pthread_mutex_init(&db->lbuf_mu, NULL);
	pthread_mutex_init(&db->sv_mu, NULL);
	pthread_mutex_init(&db->gp_mu, NULL);
	pthread_mutex_init(&db->ver_mu, NULL);
	pthread_mutex_init(&db->snap_mu, NULL);
	pthread_mutex_init(&db->retired_mu, NULL);
	pthread_mutex_init(&db->bg_mu, NULL);
	pthread_cond_init(&db->bg_cv, NULL);
	pthread_cond_init(&db->progress_cv, NULL);
	db->snaps.next = db->snaps.prev = &db->snaps;
	pthread_mutex_init(&db->fpo_mu, NULL);
	pthread_rwlockattr_init(&ra);
	/*
	 * The locked baseline measures what a reader waits for when the writer
	 * holds the key across its fsync: the default (reader-preferring) kind
	 * makes it wait for that writer, not behind every queued writer, which
	 * would starve it outright.
	 */
	for (int i = 0; i < KV_STRIPES; i++)
		pthread_rwlock_init(&db->stripe[i], &ra);
	pthread_rwlockattr_destroy(&ra);
	return db;
}

static void db_free(struct kv_db *db)
{
	kv_version_close(db);
	kv_store_release_lbufs(db); /* after the last memtable is freed */
	if (db->cache)
		kv_cache_destroy(db->cache);
	kv_tcache_destroy(db->tcache); /* after the tables: they hold slots */
	for (int l = 0; l < KV_MAX_LEVELS; l++)
		free(db->compact_cursor[l]);
	pthread_mutex_destroy(&db->sv_mu);
	pthread_mutex_destroy(&db->gp_mu);
	pthread_mutex_destroy(&db->ver_mu);
	pthread_mutex_destroy(&db->snap_mu);
	pthread_mutex_destroy(&db->retired_mu);
	pthread_mutex_destroy(&db->bg_mu);
	pthread_cond_destroy(&db->bg_cv);
	pthread_cond_destroy(&db->progress_cv);
	if (db->spare)
		db->spare->env->ops->close(db->spare);
	free(db->spare_path);
	if (db->lock_file)
		db->lock_file->env->ops->close(db->lock_file);
	for (int i = 0; i < KV_STRIPES; i++)
		pthread_rwlock_destroy(&db->stripe[i]);
	pthread_mutex_destroy(&db->rot_mu);
	pthread_mutex_destroy(&db->lbuf_mu);
	pthread_mutex_destroy(&db->fpo_mu);
	free(db->dir);
	free(db);
}

/* Recovered memtables (oldest first) then @m: chained, and newest first
 * into the first super. */
static int start_shape(struct kv_db *db, struct kv_mem **mems, int n, struct kv_mem *m)
{
	struct kv_mem **order = calloc((size_t)n + 1, sizeof(*order));
	int err;

	if (!order)
		return -ENOMEM;
	order[0] = m;
	for (int i = 0; i < n; i++) {
		atomic_store(&mems[i]->newer, i + 1 < n ? mems[i + 1] : m);
		order[n - i] = mems[i];
	}
	err = kv_version_start(db, order, n + 1);
	free(order);
	return err;
}

int kv_open(const char *dir, const struct kv_options *opt, struct kv_db **out)
{
	struct kv_options defaults;
	struct kv_mem **mems = NULL, *m = NULL;
	uint64_t base = 0, prev_end = 0;
	struct kv_db *db;
	int err, nmem = 0;

	if (!opt) {
		kv_options_init(&defaults);
		opt = &defaults;
	}
	err = check_options(dir, opt);
	if (err)
		return err;
	db = db_alloc(dir, opt);
	if (!db)
		return -ENOMEM;
	err = kv_store_open_dir(db);
	if (!err)
		err = kv_cache_create(db->opt.block_cache_size, &db->cache);
	if (!err)
		err = kv_tcache_create((size_t)db->opt.max_open_tables, &db->tcache);
	if (!err)
		err = kv_version_open(db);
	if (!err)
		err = kv_recover(db, &db->next_seg_id, &base, &prev_end, &mems, &nmem);
	if (!err)
		err = kv_store_new_active(db, base, prev_end, &m);
	if (!err)
		err = start_shape(db, mems, nmem, m);
	if (err) {
		for (int i = 0; i < nmem; i++)
			kv_mem_free(mems[i]);
		kv_mem_free(m);
		goto fail;
	}
	free(mems);
	mems = NULL;
	atomic_store(&db->active, m);
	atomic_store(&db->durable_lsn, base);
	atomic_store(&db->imm, nmem);
	db->commit_mem = m;
	err = kv_commit_start(db);
	if (!err)
		err = kv_bg_start(db);
	if (err)
		goto fail;
	*out = db;
	return 0;
fail:
	free(mems);
	kv_bg_stop(db);
	kv_commit_stop(db);
	db_free(db);
	return err;
}

static int sync_all(struct kv_db *db)
{
	int g = kv_guard_enter(db), err = 0;
	struct kv_super *s = atomic_load_explicit(&db->super, memory_order_acquire);

	/* Oldest first; memtables not all durable are few (one or two). */
	for (int i = s->nmem - 1; i >= 0 && !err; i--) {
		struct kv_mem *m = s->mem[i];
		uint64_t end = kv_logbuf_appended(&m->lb);

		if (!kv_logbuf_done(&m->lb) && end > KV_SEG_HEADER_SIZE)
			err = kv_commit_wait(db, m, end);
	}
	kv_guard_exit(db, g);
	return err;
}

int kv_sync(struct kv_db *db)
{
	int err = sync_all(db);

	if (!err && atomic_load(&db->failed))
		err = -EIO;
	return err;
}

int kv_close(struct kv_db *db)
{
	int err;

	if (!db)
		return 0;
	err = atomic_load(&db->failed) ? -EIO : sync_all(db);
	kv_bg_stop(db);
	kv_commit_stop(db);
	if (!atomic_load(&db->failed))
		kv_store_tidy(db);
	db_free(db);
	return err;
}

void kv_abandon(struct kv_db *db)
{
	if (!db)
		return;
	kv_bg_stop(db);
	kv_commit_stop(db);
	db_free(db);
}

static int check_key(const void *key, size_t klen)
{
	if (!key || !klen)
		return -EINVAL;
	return klen > KV_MAX_KEY ? -E2BIG : 0;
}

unsigned kv_key_stripe(const void *key, size_t klen)
{
	return (unsigned)(XXH3_64bits(key, klen) % KV_STRIPES);
}

ssize_t kv_get(struct kv_db *db, unsigned flags, const void *key, size_t klen, void *buf,
	       size_t cap)
{
	int locked = db->opt.durability == KV_DUR_LOCKED && !(flags & KV_READ_LATEST);
	unsigned stripe = 0;
	ssize_t ret;
	int g;

	ret = check_key(key, klen);
	if (ret)
		return ret;
	if (locked) {
		stripe = kv_key_stripe(key, klen);
		pthread_rwlock_rdlock(&db->stripe[stripe]);
	}
	g = kv_guard_enter(db);
	ret = kv_read(atomic_load_explicit(&db->super, memory_order_acquire), UINT64_MAX,
		      flags & KV_READ_LATEST, key, klen, buf, cap);
	kv_guard_exit(db, g);
	if (locked)
		pthread_rwlock_unlock(&db->stripe[stripe]);
	return ret;
}

ssize_t kv_get_at(struct kv_db *db, const struct kv_snapshot *snap, const void *key, size_t klen,
		  void *buf, size_t cap)
{
	ssize_t ret = check_key(key, klen);
	int g;

	if (ret)
		return ret;
	if (!snap)
		return kv_get(db, 0, key, klen, buf, cap);
	g = kv_guard_enter(db);
	ret = kv_read(atomic_load_explicit(&db->super, memory_order_acquire), snap->lsn, 0, key,
		      klen, buf, cap);
	kv_guard_exit(db, g);
	return ret;
}

int kv_get_alloc(struct kv_db *db, unsigned flags, const void *key, size_t klen, void **val,
		 size_t *vlen)
{
	size_t cap = 256;

	for (;;) {
		void *buf = malloc(cap ? cap : 1);
		ssize_t n;

		if (!buf)
			return -ENOMEM;
		n = kv_get(db, flags, key, klen, buf, cap);
		if (n >= 0 && (size_t)n <= cap) {
			*val = buf;
			*vlen = (size_t)n;
			return 0;
		}
		free(buf);
		if (n < 0)
			return (int)n;
		cap = (size_t)n; /* a newer, longer version: try again */
	}
}

struct live_acc {
	const uint8_t *base;
	uint64_t bytes;
};

static void count_live(void *arg, struct kv_mnode *n)
{
	struct live_acc *a = arg;
	uint64_t r = atomic_load_explicit(&n->ver[0], memory_order_acquire);
	struct kv_op op;

	if (r && kv_op_decode(a->base + kv_ref_off(r), KV_OP_HEADER_SIZE + n->klen + KV_MAX_VALUE,
			      &op) > 0)
		a->bytes += kv_op_size(op.klen, op.vlen);
}

static void stats_shape(struct kv_db *db, struct kv_super *s, struct kv_stats *st)
{
	uint64_t total = 0, deepest = 0, wal;
	struct kv_cache_stats cs = { 0 };

	for (int l = 0; l < KV_MAX_LEVELS; l++) {
		st->level_tables[l] = s->v->n[l];
		for (size_t i = 0; i < s->v->n[l]; i++)
			st->level_bytes[l] += s->v->files[l][i]->meta.size;
		total += st->level_bytes[l];
		if (st->level_bytes[l])
			deepest = st->level_bytes[l];
	}
	st->flushes = atomic_load(&db->flushes);
	st->flush_bytes = atomic_load(&db->flush_bytes);
	st->compactions = atomic_load(&db->compactions);
	st->compact_read_bytes = atomic_load(&db->compact_read);
	st->compact_write_bytes = atomic_load(&db->compact_write);
	st->user_bytes = atomic_load(&db->user_bytes);
	wal = st->commit_bytes;
	if (st->user_bytes)
		st->write_amp = (double)(wal + st->flush_bytes + st->compact_write_bytes) /
				(double)st->user_bytes;
	if (deepest)
		st->space_amp = (double)total / (double)deepest;
	st->stalls = atomic_load(&db->stalls);
	st->stall_ns = atomic_load(&db->stall_ns);
	if (db->cache)
		kv_cache_stats(db->cache, &cs);
	st->cache_hits = cs.hits;
	st->cache_misses = cs.misses;
	st->cache_bytes = cs.usage;
	pthread_mutex_lock(&db->snap_mu);
	st->snapshots = db->nsnaps;
	pthread_mutex_unlock(&db->snap_mu);
	pthread_mutex_lock(&db->bg_mu);
	st->bg_error = db->bg_error;
	pthread_mutex_unlock(&db->bg_mu);
}

int kv_stats(struct kv_db *db, struct kv_stats *st)
{
	struct kv_super *s = kv_super_get(db);
	struct kv_mem *m = s->mem[0];

	uint64_t below;

	memset(st, 0, sizeof(*st));
	/* After taking the super: a memtable flushed since is counted here. */
	pthread_mutex_lock(&db->retired_mu);
	below = db->retired_below;
	st->versions_replaced_total = db->retired_replaced;
	st->versions_superseded_total = db->retired_superseded;
	pthread_mutex_unlock(&db->retired_mu);
	st->appended_lsn = m->base_lsn + kv_logbuf_appended(&m->lb);
	st->durable_lsn = atomic_load(&db->durable_lsn);
	for (int i = 0; i < s->nmem; i++) {
		struct kv_mem *d = s->mem[i];
		struct live_acc a = { .base = d->lb.base };

		st->versions_replaced += atomic_load(&d->mt.replaced);
		st->versions_superseded += atomic_load(&d->mt.superseded);
		if (d->seg_id >= below) {
			st->versions_replaced_total += atomic_load(&d->mt.replaced);
			st->versions_superseded_total += atomic_load(&d->mt.superseded);
		}
		st->log_buffer_bytes += kv_logbuf_appended(&d->lb) - KV_SEG_HEADER_SIZE;
		kv_memtable_for_each(&d->mt, count_live, &a);
		st->log_buffer_live_bytes += a.bytes;
		st->memtables++;
		st->wal_segments++;
	}
	st->records = atomic_load(&db->records);
	st->commits = atomic_load(&db->commits);
	st->commit_bytes = atomic_load(&db->commit_bytes);
	st->failed = atomic_load(&db->failed);
	stats_shape(db, s, st);
	kv_super_unref(s);
	return 0;
}
