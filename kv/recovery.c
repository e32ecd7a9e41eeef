/* SPDX-License-Identifier: MIT */
/*
 * recovery.c - rebuild the memtables from the WAL segments on open.
 *
 * Each segment file is read whole into a new log buffer (buffer offset ==
 * file offset, as when it was written) and its records are indexed in a
 * memtable of their own, all versions committed. The recovered memtables are
 * read-only; new writes go to a new segment, never after a recovered tail, so
 * that bytes of a torn write beyond the recovered end can never be taken for
 * records later.
 *
 * What is accepted (kv/FORMAT.md, "Recovery"):
 *   0. A segment file that is all zero never carried a commit (a discarded
 *      spare whose unlink was lost, an unfinished zero fill): removed,
 *      wherever it is; the LSN chain of the others still catches a loss.
 *   1. Trailing segments whose header was never written (all zero), or is
 *      bad, and that hold no record of epoch 2 or later, are segments whose
 *      first commit (which carries the header) never completed: they are
 *      removed. An epoch-2 record proves epoch 1 durable: then a bad header
 *      is corruption. A newer format version is refused, never removed.
 *      A trailing file shorter than any segment and all zero is one whose
 *      zero fill was cut short: removed too.
 *   2. Every other segment must have a valid header naming its own id and
 *      size, and its records must reach the prev_end its successor's header
 *      records, with LSNs continuing (base_lsn of the next = base_lsn +
 *      prev_end).
 *   3. The last segment is replayed up to its first invalid record, unless
 *      the scan proves that record was durable (kv_wal_scan): that is
 *      corruption, reported with the file and offset.
 * The result is a prefix of the acknowledged order, batches all or nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "wal.h"

struct seg {
	uint64_t id;
	char *path;
	struct kv_mem *m;
	struct kv_seg_header h;
	int herr;	/* header decode result */
	int short_zero; /* shorter than any segment and all zero */
};

struct seg_list {
	struct seg *v;
	size_t n, cap;
	const char *dir;
	struct kv_db *db;
	int removed; /* flushed segments removed: sync the directory */
};

static int collect(void *arg, const char *name)
{
	struct seg_list *l = arg;
	uint64_t id;

	if (kv_wal_parse_name(name, &id))
		return 0;
	if (id < l->db->log_min_seg) {
		/* Flushed; a crash came between the manifest edit and the unlink. */
		char *path;

		if (asprintf(&path, "%s/%s", l->dir, name) < 0)
			return -ENOMEM;
		kv_log(l->db, KV_LOG_INFO, "%s: removing a segment already flushed to a table",
		       path);
		l->db->env->ops->unlink(l->db->env, path);
		free(path);
		l->removed = 1;
		return 0;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		struct seg *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	memset(&l->v[l->n], 0, sizeof(l->v[0]));
	l->v[l->n].id = id;
	if (asprintf(&l->v[l->n].path, "%s/%s", l->dir, name) < 0)
		return -ENOMEM;
	l->n++;
	return 0;
}

static int seg_cmp(const void *a, const void *b)
{
	const struct seg *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/* Read a segment file whole into a fresh memtable's buffer. */
/* A file shorter than any segment: all zero means its creation (zero fill)
 * was cut short, before any commit could use it. */
static int short_file(struct kv_db *db, struct seg *s, struct kv_file *f, uint64_t size)
{
	uint8_t buf[4096];

	for (uint64_t off = 0; off < size; off += sizeof(buf)) {
		size_t n = size - off < sizeof(buf) ? (size_t)(size - off) : sizeof(buf);
		int err = kv_env_read_all(f, buf, n, off);

		if (err)
			return err;
		for (size_t i = 0; i < n; i++) {
			if (buf[i]) {
				kv_log(db, KV_LOG_ERROR,
				       "%s: size %llu is not a WAL segment size (%llu .. %llu)",
				       s->path, (unsigned long long)size, KV_LOGBUF_MIN,
				       KV_LOGBUF_MAX);
				return -EUCLEAN;
			}
		}
	}
	s->short_zero = 1;
	return 0;
}

/*
 * Read a segment file whole into a fresh memtable's buffer, and make it
 * durable: the page cache may hold a commit's write whose fdatasync never
 * completed (a crash, a failed sync), and the new segment's header will
 * record where these records end; they must not vanish at a power cut after.
 */
static int load(struct kv_db *db, struct seg *s)
{
	struct kv_file *f;
	uint64_t size;
	int err;

	err = db->env->ops->open(db->env, s->path, O_RDONLY, 0, &f);
	if (err) {
		kv_log(db, KV_LOG_ERROR, "%s: cannot open: %s", s->path, strerror(-err));
		return err;
	}
	err = f->env->ops->size(f, &size);
	if (!err && size < KV_LOGBUF_MIN) {
		err = short_file(db, s, f, size);
		goto out;
	}
	if (!err && size > KV_LOGBUF_MAX) {
		kv_log(db, KV_LOG_ERROR, "%s: size %llu is not a WAL segment size (%llu .. %llu)",
		       s->path, (unsigned long long)size, KV_LOGBUF_MIN, KV_LOGBUF_MAX);
		err = -EUCLEAN;
	}
	if (!err)
		err = kv_mem_new(size, &s->m);
	if (!err) {
		err = kv_env_read_all(f, s->m->lb.base, size, 0);
		if (err)
			kv_log(db, KV_LOG_ERROR, "%s: read failed: %s", s->path, strerror(-err));
	}
	if (!err) {
		err = f->env->ops->sync(f, 1);
		if (err)
			kv_log(db, KV_LOG_ERROR, "%s: fdatasync failed: %s", s->path,
			       strerror(-err));
	}
	if (!err) {
		s->m->seg_id = s->id;
		s->m->path = strdup(s->path);
		s->herr = kv_seg_header_decode(s->m->lb.base, &s->h);
	}
out:
	f->env->ops->close(f);
	return err;
}

static int replay_rec(void *arg, uint64_t off, const struct kv_rec_header *h, const uint8_t *rec)
{
	return kv_mem_index(arg, kv_ref_make(h->epoch, off), rec, h);
}

static int all_zero(const uint8_t *p, uint64_t n)
{
	/* Word at a time; the buffer is page-aligned (mmap). */
	const uint64_t *w = (const uint64_t *)p;

	for (uint64_t i = 0; i < n / 8; i++)
		if (w[i])
			return 0;
	for (uint64_t i = n & ~7ull; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/*
 * Rule 0: a segment file that is all zero never carried a commit, wherever
 * it sits: a spare that was prepared and then discarded (its unlink need not
 * survive a crash), or whose zero fill was cut short. Removed. If it was a
 * used segment zeroed by a fault, the LSN chain check of its neighbours
 * (check_header) still reports the loss.
 */
static int drop_never_used(struct kv_db *db, struct seg_list *l)
{
	size_t out = 0;

	for (size_t i = 0; i < l->n; i++) {
		struct seg *s = &l->v[i];

		if (s->short_zero ||
		    (s->herr == -ENODATA && all_zero(s->m->lb.base, s->m->lb.cap))) {
			kv_log(db, KV_LOG_INFO, "%s: removing a segment that was never used",
			       s->path);
			db->env->ops->unlink(db->env, s->path);
			kv_mem_free(s->m);
			free(s->path);
			continue;
		}
		l->v[out++] = *s;
	}
	l->n = out;
	return 0;
}

/* Rule 1: drop trailing segments whose first commit never completed. */
static int drop_unborn(struct kv_db *db, struct seg_list *l)
{
	while (l->n) {
		struct seg *s = &l->v[l->n - 1];

		if (!s->herr)
			return 0;
		if (s->herr == -EPROTONOSUPPORT) {
			kv_log(db, KV_LOG_ERROR,
			       "%s: segment format version %u is newer than this libkv reads (%u)",
			       s->path, kv_get_le32(s->m->lb.base + 8), KV_FORMAT_VERSION);
			return s->herr;
		}
		/* The header went out with epoch 1: an epoch-2 record proves it
		 * was durable, so its loss is corruption, not a torn commit. */
		if (kv_wal_probe(s->m->lb.base, s->m->lb.cap, s->id, KV_SEG_HEADER_SIZE, 2)) {
			kv_log(db, KV_LOG_ERROR,
			       "%s: segment header at offset 0 is %s but committed records follow it",
			       s->path, s->herr == -ENODATA ? "missing" : "corrupt");
			return s->herr == -ENODATA ? -EUCLEAN : s->herr;
		}
		kv_log(db, KV_LOG_INFO, "%s: removing a segment that never got a commit", s->path);
		db->env->ops->unlink(db->env, s->path);
		kv_mem_free(s->m);
		free(s->path);
		l->n--;
	}
	return 0;
}

static int check_header(struct kv_db *db, struct seg *s, struct seg *next, int first)
{
	if (s->herr) {
		kv_log(db, KV_LOG_ERROR, "%s: bad segment header at offset 0 (%s)", s->path,
		       strerror(-s->herr));
		return s->herr == -ENODATA ? -EUCLEAN : s->herr;
	}
	if (s->h.seg_id != s->id || s->h.capacity != s->m->lb.cap) {
		kv_log(db, KV_LOG_ERROR,
		       "%s: header names segment %llu of %llu bytes; expected %llu of %llu",
		       s->path, (unsigned long long)s->h.seg_id, (unsigned long long)s->h.capacity,
		       (unsigned long long)s->id, (unsigned long long)s->m->lb.cap);
		return -EUCLEAN;
	}
	/* Tables hold everything below the manifest's log_min_lsn. */
	if (first && s->h.base_lsn != db->log_min_lsn) {
		kv_log(db, KV_LOG_ERROR,
		       "%s: the log starts at LSN %llu, not at %llu where the tables end: segments are missing",
		       s->path, (unsigned long long)s->h.base_lsn,
		       (unsigned long long)db->log_min_lsn);
		return -EUCLEAN;
	}
	if (next && !next->herr && next->h.base_lsn != s->h.base_lsn + next->h.prev_end) {
		kv_log(db, KV_LOG_ERROR,
		       "%s: base LSN %llu does not continue %s (base %llu + end %llu)", next->path,
		       (unsigned long long)next->h.base_lsn, s->path,
		       (unsigned long long)s->h.base_lsn, (unsigned long long)next->h.prev_end);
		return -EUCLEAN;
	}
	return 0;
}

static int replay_seg(struct kv_db *db, struct seg *s, struct seg *next, int first, uint64_t *end)
{
	struct kv_logbuf *lb = &s->m->lb;
	uint64_t limit = next ? next->h.prev_end : 0, bad = 0;
	int err;

	err = check_header(db, s, next, first);
	if (err)
		return err;
	err = kv_wal_scan(lb->base, lb->cap, s->id, limit, replay_rec, s->m, end, &bad);
	if (err == -EUCLEAN && limit)
		kv_log(db, KV_LOG_ERROR,
		       "%s: corrupt WAL record at offset %llu (records must reach offset %llu, where the next segment continues)",
		       s->path, (unsigned long long)bad, (unsigned long long)limit);
	else if (err == -EUCLEAN)
		kv_log(db, KV_LOG_ERROR,
		       "%s: corrupt WAL record at offset %llu (a record of a later epoch follows, so it is not a torn tail)",
		       s->path, (unsigned long long)bad);
	if (err)
		return err;
	if (!next && *end + KV_REC_HEADER_SIZE <= lb->cap) {
		static const uint8_t zero[KV_REC_HEADER_SIZE];

		if (memcmp(lb->base + *end, zero, sizeof(zero)))
			kv_log(db, KV_LOG_WARN,
			       "%s: torn tail at offset %llu dropped (its commit never completed)",
			       s->path, (unsigned long long)*end);
	}
	s->m->base_lsn = s->h.base_lsn;
	atomic_store(&lb->resv, kv_ref_make(1, lb->cap + 1));
	atomic_store(&lb->final_end, *end);
	atomic_store(&lb->durable, *end);
	lb->sealed = *end;
	return 0;
}

static void free_list(struct seg_list *l, int free_mems)
{
	for (size_t i = 0; i < l->n; i++) {
		if (free_mems)
			kv_mem_free(l->v[i].m);
		free(l->v[i].path);
	}
	free(l->v);
}

int kv_recover(struct kv_db *db, uint64_t *next_seg_id, uint64_t *base_lsn, uint64_t *prev_end,
	       struct kv_mem ***mems, int *nmem)
{
	struct seg_list l = { .dir = db->dir, .db = db };
	uint64_t end = 0;
	int err;

	err = db->env->ops->list_dir(db->env, db->dir, collect, &l);
	if (!err && l.removed)
		err = db->env->ops->sync_dir(db->env, db->dir);
	if (err)
		goto fail;
	if (l.n)
		qsort(l.v, l.n, sizeof(*l.v), seg_cmp);
	*next_seg_id = l.n ? l.v[l.n - 1].id + 1 : 1;
	if (*next_seg_id < db->log_min_seg)
		*next_seg_id = db->log_min_seg;
	for (size_t i = 0; i < l.n && !err; i++)
		err = load(db, &l.v[i]);
	if (!err)
		err = drop_never_used(db, &l);
	if (!err)
		err = drop_unborn(db, &l);
	for (size_t i = 0; i < l.n && !err; i++)
		err = replay_seg(db, &l.v[i], i + 1 < l.n ? &l.v[i + 1] : NULL, i == 0, &end);
	if (err)
		goto fail;
	*base_lsn = l.n ? l.v[l.n - 1].h.base_lsn + end : db->log_min_lsn;
	*prev_end = l.n ? end : 0;
	*nmem = (int)l.n;
	*mems = calloc(l.n ? l.n : 1, sizeof(**mems));
	if (!*mems) {
		err = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < l.n; i++)
		(*mems)[i] = l.v[i].m;
	free_list(&l, 0);
	return 0;
fail:
	free_list(&l, 1);
	return err;
}
