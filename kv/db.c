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

static void vlog(const struct kv_options *opt, enum kv_log_level level, const char *fmt, va_list ap)
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
	if (opt->durability < KV_DUR_DEFAULT || opt->durability > KV_DUR_LOCKED) {
		kv_log_opt(opt, KV_LOG_ERROR, "%s: unknown durability mode %d", dir,
			   opt->durability);
		return -EINVAL;
	}
	return 0;
}

static struct kv_db *db_alloc(const char *dir, const struct kv_options *opt)
{
	struct kv_db *db = calloc(1, sizeof(*db));
	pthread_rwlockattr_t ra;

	if (!db)
		return NULL;
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
	db->env = opt->env ? opt->env : kv_env_default();
	pthread_mutex_init(&db->rot_mu, NULL);
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
	struct kv_mem *m = db->oldest;

	while (m) {
		struct kv_mem *next = atomic_load(&m->newer);

		kv_mem_free(m);
		m = next;
	}
	if (db->spare)
		db->spare->env->ops->close(db->spare);
	free(db->spare_path);
	if (db->lock_file)
		db->lock_file->env->ops->close(db->lock_file);
	for (int i = 0; i < KV_STRIPES; i++)
		pthread_rwlock_destroy(&db->stripe[i]);
	pthread_mutex_destroy(&db->rot_mu);
	pthread_mutex_destroy(&db->fpo_mu);
	free(db->dir);
	free(db);
}

int kv_open(const char *dir, const struct kv_options *opt, struct kv_db **out)
{
	struct kv_options defaults;
	struct kv_mem *newest = NULL, *m;
	uint64_t base = 0, prev_end = 0;
	struct kv_db *db;
	int err;

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
		err = kv_recover(db, &db->next_seg_id, &base, &prev_end, &newest);
	if (!err)
		err = kv_store_new_active(db, base, prev_end, &m);
	if (err)
		goto fail;
	m->older = newest;
	if (newest)
		atomic_store(&newest->newer, m);
	else
		db->oldest = m;
	atomic_store(&db->active, m);
	db->commit_mem = m;
	err = kv_commit_start(db);
	if (err)
		goto fail;
	*out = db;
	return 0;
fail:
	db_free(db);
	return err;
}

static int sync_all(struct kv_db *db)
{
	struct kv_mem *chain[64], *m = atomic_load_explicit(&db->active, memory_order_acquire);
	int n = 0, err = 0;

	/* Oldest first; memtables not all durable are few (one or two). */
	for (; m && !kv_logbuf_done(&m->lb) && n < 64; m = m->older)
		chain[n++] = m;
	while (n-- > 0 && !err) {
		uint64_t end = kv_logbuf_appended(&chain[n]->lb);

		if (end > KV_SEG_HEADER_SIZE)
			err = kv_commit_wait(db, chain[n], end);
	}
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

/* The op of the version to read, or NULL if no memtable has the key. */
static const uint8_t *lookup(struct kv_db *db, const void *key, size_t klen, int latest)
{
	struct kv_mem *m = atomic_load_explicit(&db->active, memory_order_acquire);
	uint64_t off;

	for (; m; m = m->older)
		if (kv_memtable_get(&m->mt, key, klen, latest, &off))
			return m->lb.base + off;
	return NULL;
}

ssize_t kv_get(struct kv_db *db, unsigned flags, const void *key, size_t klen, void *buf,
	       size_t cap)
{
	int locked = db->opt.durability == KV_DUR_LOCKED && !(flags & KV_READ_LATEST);
	unsigned stripe = 0;
	const uint8_t *p;
	struct kv_op op;
	ssize_t ret;

	ret = check_key(key, klen);
	if (ret)
		return ret;
	if (locked) {
		stripe = kv_key_stripe(key, klen);
		pthread_rwlock_rdlock(&db->stripe[stripe]);
	}
	p = lookup(db, key, klen, flags & KV_READ_LATEST);
	if (!p || kv_op_decode(p, KV_OP_HEADER_SIZE + klen + KV_MAX_VALUE, &op) < 0 ||
	    op.type != KV_OP_PUT) {
		ret = -ENOENT;
	} else {
		if (cap && op.vlen)
			memcpy(buf, op.val, op.vlen < cap ? op.vlen : cap);
		ret = op.vlen;
	}
	if (locked)
		pthread_rwlock_unlock(&db->stripe[stripe]);
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

int kv_stats(struct kv_db *db, struct kv_stats *st)
{
	struct kv_mem *m = atomic_load_explicit(&db->active, memory_order_acquire);

	memset(st, 0, sizeof(*st));
	st->appended_lsn = m->base_lsn + kv_logbuf_appended(&m->lb);
	for (struct kv_mem *d = m; d; d = d->older) {
		struct live_acc a = { .base = d->lb.base };

		if (!st->durable_lsn && (atomic_load(&d->lb.durable) || !d->older))
			st->durable_lsn = d->base_lsn + atomic_load(&d->lb.durable);
		st->versions_replaced += atomic_load(&d->mt.replaced);
		st->versions_superseded += atomic_load(&d->mt.superseded);
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
	return 0;
}
