/* SPDX-License-Identifier: MIT */
/*
 * flush.c - the background threads, writer admission, and the flush of an
 * immutable memtable to a level-0 table.
 *
 * Two threads: the flush thread turns immutable memtables into tables,
 * oldest first, and frees retired supers after a grace period; the
 * compaction thread runs compactions (compact.c). Only they change the shape
 * (under ver_mu, with the manifest).
 *
 * Flush of memtable m (immutable: a newer one exists):
 *   1. wait until every record of m is durable (the commit pipeline does it;
 *      the flush kicks it), then make sure the pipeline has moved past m;
 *   2. write every version a reader may still need (kv_cfilter: the newest
 *      per key and per live snapshot) and m's range tombstones to a new
 *      table; fsync it and the directory;
 *   3. one manifest edit adds the table to level 0 and moves the log start
 *      past m's segment (log_min_seg/lsn = m's successor); the new super
 *      drops m;
 *   4. unlink m's segment (a crash before that leaves a segment below
 *      log_min_seg, which the next open removes).
 * m's memory goes once no reader can be in it (grace period + refcounts).
 *
 * Admission: a writer stalls before its write while max_immutable memtables
 * wait for a flush or level 0 holds l0_stall tables, until the background
 * catches up: memory stays bounded at about (max_immutable + 2) log
 * buffers. A background error (a full disk, say) is returned to stalled
 * writers instead of waiting forever; the background retries.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "sync.h"

static void timed_wait(pthread_cond_t *cv, pthread_mutex_t *mu, unsigned ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	ts.tv_sec += ms / 1000 + ts.tv_nsec / 1000000000;
	ts.tv_nsec %= 1000000000;
	pthread_cond_timedwait(cv, mu, &ts);
}

void kv_bg_error(struct kv_db *db, int err)
{
	pthread_mutex_lock(&db->bg_mu);
	db->bg_error = err;
	pthread_cond_broadcast(&db->progress_cv);
	pthread_mutex_unlock(&db->bg_mu);
}

/* ---- admission ---- */

static int over_bounds(struct kv_db *db)
{
	return atomic_load_explicit(&db->imm, memory_order_relaxed) >= db->opt.max_immutable ||
	       atomic_load_explicit(&db->l0_files, memory_order_relaxed) >= db->opt.l0_stall;
}

int kv_bg_admit(struct kv_db *db)
{
	uint64_t t0;
	int err = 0;

	if (db->opt.manual_background || !over_bounds(db))
		return 0;
	t0 = kv_now_ns();
	pthread_mutex_lock(&db->bg_mu);
	while (over_bounds(db) && !db->bg_stop && !atomic_load(&db->failed)) {
		err = db->bg_error;
		if (err)
			break;
		timed_wait(&db->progress_cv, &db->bg_mu, 100);
	}
	pthread_mutex_unlock(&db->bg_mu);
	atomic_fetch_add(&db->stalls, 1);
	atomic_fetch_add(&db->stall_ns, kv_now_ns() - t0);
	if (!err && atomic_load(&db->failed))
		err = -EIO;
	return err;
}

void kv_bg_rotated(struct kv_db *db)
{
	atomic_fetch_add(&db->imm, 1);
	pthread_mutex_lock(&db->bg_mu);
	pthread_cond_broadcast(&db->bg_cv);
	pthread_mutex_unlock(&db->bg_mu);
}

/* ---- flush ---- */

/* Wait until @m is all durable and the commit pipeline is past it. */
static int wait_done(struct kv_db *db, struct kv_mem *m)
{
	for (;;) {
		uint32_t seq = atomic_load_explicit(&db->commit_seq, memory_order_acquire);

		if (atomic_load(&db->failed))
			return -EIO;
		if (atomic_load(&db->bg_stop))
			return -ECANCELED;
		if (kv_logbuf_done(&m->lb))
			break;
		kv_commit_kick(db);
		kv_futex_wait(&db->commit_seq, seq);
	}
	kv_commit_forget(db, m);
	return 0;
}

/* m's range tombstones as a set (for the filter) and into the table. */
static int mem_rdels(struct kv_mem *m, struct kv_table_builder *b, struct kv_rdset **out)
{
	size_t n = atomic_load(&m->mt.nrdels), i = 0;
	struct kv_rtomb *t = calloc(n ? n : 1, sizeof(*t));
	int err = t ? 0 : -ENOMEM;

	for (struct kv_mrdel *d = atomic_load(&m->mt.rdels); !err && d && i < n; d = d->next) {
		t[i] = (struct kv_rtomb){ d->start, d->slen, d->end, d->elen,
					  m->base_lsn + d->op_off };
		err = kv_tb_add_rangedel(b, d->start, d->slen, d->end, d->elen, t[i].lsn);
		i++;
	}
	if (!err)
		err = kv_rdset_build(t, i, out);
	free(t);
	return err;
}

/* The tables one flush writes. */
struct fouts {
	struct kv_table_builder *b; /* the one being written */
	uint64_t *file_no;
	struct kv_table_props *props;
	size_t n; /* started; all but the last finished while b is open */
};

/* Finish the current table (if any) and start the next one. */
static int fout_next(struct kv_db *db, struct fouts *o)
{
	uint64_t *no;
	struct kv_table_props *p;
	char *path;
	int err = 0;

	if (o->b) {
		err = kv_tb_finish(o->b, &o->props[o->n - 1]);
		o->b = NULL;
		if (err)
			return err;
	}
	no = realloc(o->file_no, (o->n + 1) * sizeof(*no));
	if (no)
		o->file_no = no;
	p = realloc(o->props, (o->n + 1) * sizeof(*p));
	if (p)
		o->props = p;
	if (!no || !p)
		return -ENOMEM;
	memset(&o->props[o->n], 0, sizeof(*p));
	pthread_mutex_lock(&db->ver_mu);
	o->file_no[o->n] = db->next_file++;
	pthread_mutex_unlock(&db->ver_mu);
	path = kv_table_path(db, o->file_no[o->n]);
	if (!path)
		return -ENOMEM;
	o->n++;
	err = kv_tb_create(db->env, &db->opt, path, o->file_no[o->n - 1], NULL, &o->b);
	if (err)
		o->b = NULL;
	free(path);
	return err;
}

/* The key region of a user key: its first byte (256: the empty key). */
static int key_region(const uint8_t *ik, size_t iklen)
{
	return kv_ikey_ulen(iklen) ? ik[0] : 256;
}

/*
 * Write @m into level-0 tables. A memtable without range tombstones and of
 * at least table_target_size log bytes (a small one, from an explicit
 * flush, gains nothing) is cut into tables at each change of key region
 * (first byte of the key) and after table_target_size bytes (between two
 * user keys), so that keys written in order (a file's data blocks, between
 * its inode's key and the next file's keys) make tables that other flushes
 * do not overlap, which later compactions pass through to level 1 without
 * rewriting them (compact.c). The tables of one flush are disjoint: level
 * 0's depth (kv_l0_depth) counts them once.
 */
static int write_tables(struct kv_db *db, struct kv_mem *m, struct fouts *o)
{
	struct kv_cfilter f = { 0 };
	struct kv_rdset *rd = NULL;
	struct kv_iiter *it = NULL;
	uint64_t *snaps = NULL;
	int err, region = -1,
		 split = !atomic_load(&m->mt.nrdels) &&
			 kv_logbuf_appended(&m->lb) >= db->opt.table_target_size;
	struct kv_keybuf last = { 0 };

	err = kv_snapshot_list(db, &snaps, &f.nsnaps);
	if (!err)
		err = fout_next(db, o);
	if (!err)
		err = mem_rdels(m, o->b, &rd);
	if (!err)
		err = kv_memtable_iter(&m->mt, m->base_lsn, UINT64_MAX, &it);
	if (err)
		goto out;
	f.snaps = snaps;
	f.rd = rd;
	for (it->ops->seek_first(it); it->valid && !err; it->ops->next(it)) {
		int keep = kv_cfilter_keep(&f, it->key, it->klen), r;

		if (keep <= 0) {
			err = keep;
			continue;
		}
		r = key_region(it->key, it->klen);
		if (split && region >= 0 &&
		    (r != region ||
		     (kv_tb_size(o->b) >= db->opt.table_target_size &&
		      kv_ukey_cmp(it->key, kv_ikey_ulen(it->klen), last.p, last.len) != 0)))
			err = fout_next(db, o);
		region = r;
		if (!err)
			err = kv_tb_add(o->b, it->key, it->klen, it->val, it->vlen);
		if (!err)
			err = kv_keybuf_set(&last, it->key, kv_ikey_ulen(it->klen));
	}
	if (!err)
		err = it->err;
	if (!err) {
		err = kv_tb_finish(o->b, &o->props[o->n - 1]);
		o->b = NULL;
	}
out:
	if (it)
		it->ops->destroy(it);
	kv_rdset_free(rd);
	free(f.ukey.p);
	free(last.p);
	free(snaps);
	return err;
}

/* A failed flush removes what it wrote. */
static void fouts_free(struct kv_db *db, struct fouts *o, int remove)
{
	if (o->b)
		kv_tb_abandon(o->b);
	for (size_t i = 0; i < o->n; i++) {
		char *path = remove ? kv_table_path(db, o->file_no[i]) : NULL;

		if (path)
			db->env->ops->unlink(db->env, path);
		free(path);
		kv_table_props_free(&o->props[i]);
	}
	free(o->file_no);
	free(o->props);
}

static void meta_from_props(struct kv_file_meta *fm, uint32_t level, uint64_t file_no,
			    struct kv_table_props *p)
{
	fm->level = level;
	fm->file_no = file_no;
	fm->size = p->file_size;
	fm->entries = p->entries;
	fm->min_lsn = p->min_lsn;
	fm->max_lsn = p->max_lsn;
	fm->smallest = p->smallest;
	fm->slen = p->slen;
	fm->largest = p->largest;
	fm->llen = p->llen;
}

static void remove_segment(struct kv_db *db, struct kv_mem *m)
{
	char *path;

	if (asprintf(&path, "%s/" KV_WAL_NAME_FMT, db->dir, (unsigned long long)m->seg_id) < 0)
		return;
	db->env->ops->unlink(db->env, path);
	free(path);
}

/*
 * Move @m's version counters to the db's retired ones (@sign 1), before the
 * super without it is installed, or back (-1) if that failed. Memtables are
 * flushed oldest first, so the retired ones are exactly those below.
 */
static void retire_counts(struct kv_db *db, struct kv_mem *m, int sign)
{
	uint64_t r = atomic_load(&m->mt.replaced), s = atomic_load(&m->mt.superseded);

	pthread_mutex_lock(&db->retired_mu);
	db->retired_below = sign > 0 ? m->seg_id + 1 : m->seg_id;
	db->retired_replaced += sign > 0 ? r : -r;
	db->retired_superseded += sign > 0 ? s : -s;
	pthread_mutex_unlock(&db->retired_mu);
}

static int flush_mem(struct kv_db *db, struct kv_mem *m)
{
	struct kv_mem *next = atomic_load(&m->newer);
	struct fouts o = { 0 };
	uint64_t bytes = 0;
	struct kv_vedit e;
	int err;

	err = wait_done(db, m);
	if (err)
		return err;
	err = write_tables(db, m, &o);
	if (!err)
		err = db->env->ops->sync_dir(db->env, db->dir);
	if (err) {
		kv_log(db, KV_LOG_ERROR, "%s: flush of WAL segment %llu failed: %s", db->dir,
		       (unsigned long long)m->seg_id, strerror(-err));
		fouts_free(db, &o, 1);
		return err;
	}
	kv_vedit_init(&e);
	e.has_log = 1;
	e.log_min_seg = next->seg_id;
	e.log_min_lsn = next->base_lsn;
	for (size_t i = 0; i < o.n && !err; i++) {
		struct kv_file_meta fm;

		bytes += o.props[i].file_size;
		if (!o.props[i].entries && !o.props[i].rangedels)
			continue;
		meta_from_props(&fm, 0, o.file_no[i], &o.props[i]);
		err = kv_vedit_add(&e, &fm);
	}
	pthread_mutex_lock(&db->ver_mu);
	if (!err) {
		retire_counts(db, m, 1);
		err = kv_version_apply(db, &e, m);
		if (err)
			retire_counts(db, m, -1);
	}
	pthread_mutex_unlock(&db->ver_mu);
	kv_vedit_free(&e);
	if (!err) {
		for (size_t i = 0; i < o.n; i++) {
			char *p;

			if (o.props[i].entries || o.props[i].rangedels)
				continue;
			p = kv_table_path(db, o.file_no[i]);
			if (p)
				db->env->ops->unlink(db->env, p);
			free(p);
		}
		remove_segment(db, m);
		atomic_fetch_add(&db->flushes, 1);
		atomic_fetch_add(&db->flush_bytes, bytes);
	}
	fouts_free(db, &o, 0);
	return err;
}

/* The oldest memtable waiting for a flush (referenced), or NULL. */
static struct kv_mem *pick_flush(struct kv_db *db)
{
	struct kv_super *s = kv_super_get(db);
	struct kv_mem *m = NULL;

	if (s->nmem >= 2 && s->mem[s->nmem - 1] != atomic_load(&db->active)) {
		m = s->mem[s->nmem - 1];
		atomic_fetch_add(&m->refs, 1);
	}
	kv_super_unref(s);
	return m;
}

static void *flush_main(void *arg)
{
	struct kv_db *db = arg;

	pthread_mutex_lock(&db->bg_mu);
	while (!db->bg_stop) {
		struct kv_mem *m = NULL;
		int err;

		pthread_mutex_unlock(&db->bg_mu);
		kv_super_reclaim(db);
		if (!atomic_load(&db->failed))
			m = pick_flush(db);
		pthread_mutex_lock(&db->bg_mu);
		if (!m || (db->opt.manual_background && !db->flush_req)) {
			kv_mem_unref(m);
			if (!db->bg_stop)
				timed_wait(&db->bg_cv, &db->bg_mu, 1000);
			continue;
		}
		pthread_mutex_unlock(&db->bg_mu);
		err = flush_mem(db, m);
		kv_mem_unref(m);
		pthread_mutex_lock(&db->bg_mu);
		db->flush_attempts++;
		db->flush_err = err;
		if (err) {
			db->bg_error = err;
			pthread_cond_broadcast(&db->progress_cv);
			/* A full disk may clear; a failed store will not. */
			if (!db->bg_stop)
				timed_wait(&db->bg_cv, &db->bg_mu, 200);
			continue;
		}
		db->bg_error = 0;
		atomic_fetch_sub(&db->imm, 1);
		db->flushed_seq++;
		pthread_cond_broadcast(&db->progress_cv);
		pthread_cond_broadcast(&db->bg_cv);
	}
	pthread_mutex_unlock(&db->bg_mu);
	return NULL;
}

/* Make the active memtable immutable if it holds records. */
static int rotate_active(struct kv_db *db)
{
	int g = kv_guard_enter(db), crossing, err = 0;
	struct kv_mem *m = atomic_load_explicit(&db->active, memory_order_acquire);
	uint64_t ref;

	if (kv_logbuf_appended(&m->lb) > KV_SEG_HEADER_SIZE &&
	    kv_logbuf_reserve(&m->lb, kv_align8(m->lb.cap + 1), &ref, &crossing) && crossing)
		err = kv_store_rotate(db, m, kv_ref_off(ref));
	kv_guard_exit(db, g);
	return err;
}

int kv_flush(struct kv_db *db)
{
	uint64_t target, attempts;
	int err;

	if (atomic_load(&db->failed))
		return -EIO;
	err = rotate_active(db);
	if (err)
		return err;
	pthread_mutex_lock(&db->bg_mu);
	target = db->flushed_seq + (uint64_t)atomic_load(&db->imm);
	attempts = db->flush_attempts;
	db->flush_req++;
	pthread_cond_broadcast(&db->bg_cv);
	/* An error counts only from an attempt made after this call began. */
	while (db->flushed_seq < target && !db->bg_stop && !atomic_load(&db->failed)) {
		if (db->flush_attempts != attempts && db->flush_err) {
			err = db->flush_err;
			break;
		}
		timed_wait(&db->progress_cv, &db->bg_mu, 100);
	}
	db->flush_req--;
	pthread_mutex_unlock(&db->bg_mu);
	if (!err && atomic_load(&db->failed))
		err = -EIO;
	return err;
}

/* ---- compaction thread ---- */

static void *compact_main(void *arg)
{
	struct kv_db *db = arg;

	pthread_mutex_lock(&db->bg_mu);
	while (!db->bg_stop) {
		int full = db->compact_req > 0, r;

		if (atomic_load(&db->failed) || (db->opt.manual_background && !full)) {
			timed_wait(&db->bg_cv, &db->bg_mu, 1000);
			continue;
		}
		db->compacting = 1;
		pthread_mutex_unlock(&db->bg_mu);
		r = kv_compact_once(db, full);
		pthread_mutex_lock(&db->bg_mu);
		db->compacting = 0;
		if (r < 0) {
			db->bg_error = r;
			if (full) {
				db->compact_err = r;
				db->compact_req = 0;
				db->compact_done++;
			}
			pthread_cond_broadcast(&db->progress_cv);
			if (!db->bg_stop)
				timed_wait(&db->bg_cv, &db->bg_mu, 200);
			continue;
		}
		if (r > 0) {
			/* Free what the compaction replaced (its tables are unlinked
			 * with their last reference) before anyone is told. */
			pthread_mutex_unlock(&db->bg_mu);
			kv_super_reclaim(db);
			pthread_mutex_lock(&db->bg_mu);
		}
		if (full) {
			db->compact_err = 0;
			db->compact_req = 0;
			db->compact_done++;
		}
		pthread_cond_broadcast(&db->progress_cv);
		if (!r && !db->bg_stop && !db->compact_req)
			timed_wait(&db->bg_cv, &db->bg_mu, 1000);
	}
	pthread_mutex_unlock(&db->bg_mu);
	return NULL;
}

int kv_compact(struct kv_db *db)
{
	uint64_t target;
	int err = kv_flush(db);

	if (err)
		return err;
	pthread_mutex_lock(&db->bg_mu);
	target = db->compact_done + 1 + (db->compacting && db->compact_req ? 1 : 0);
	db->compact_req++;
	pthread_cond_broadcast(&db->bg_cv);
	while (db->compact_done < target && !db->bg_stop && !atomic_load(&db->failed))
		timed_wait(&db->progress_cv, &db->bg_mu, 100);
	err = db->compact_done >= target ? db->compact_err : -EIO;
	pthread_mutex_unlock(&db->bg_mu);
	return err;
}

int kv_bg_start(struct kv_db *db)
{
	int err = pthread_create(&db->flush_thr, NULL, flush_main, db);

	if (err)
		return -err;
	err = pthread_create(&db->compact_thr, NULL, compact_main, db);
	if (err) {
		pthread_mutex_lock(&db->bg_mu);
		db->bg_stop = 1;
		pthread_cond_broadcast(&db->bg_cv);
		pthread_mutex_unlock(&db->bg_mu);
		pthread_join(db->flush_thr, NULL);
		return -err;
	}
	db->bg_started = 1;
	return 0;
}

void kv_bg_stop(struct kv_db *db)
{
	if (!db->bg_started)
		return;
	pthread_mutex_lock(&db->bg_mu);
	db->bg_stop = 1;
	pthread_cond_broadcast(&db->bg_cv);
	pthread_cond_broadcast(&db->progress_cv);
	pthread_mutex_unlock(&db->bg_mu);
	/* A flush waiting for commits (wait_done) sleeps on commit_seq. */
	atomic_fetch_add(&db->commit_seq, 1);
	kv_futex_wake_all(&db->commit_seq);
	pthread_join(db->flush_thr, NULL);
	pthread_join(db->compact_thr, NULL);
	db->bg_started = 0;
}
