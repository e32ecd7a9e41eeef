/* SPDX-License-Identifier: MIT */
/*
 * iter.c - the read path: point lookups through every source, the merging
 * iterator, and the public iterator.
 *
 * Sources, newest first: the memtables of the super (active first), then
 * level 0 newest first, then levels 1.. . For one key, a newer source only
 * holds newer versions than an older one (flushes go in order; compaction
 * moves data down whole), so a lookup stops at the first source that has a
 * version visible at its snapshot. Range tombstones are tracked on the way:
 * the largest tombstone lsn covering the key in this or any newer source;
 * the version found is deleted if it is older than that.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"

struct hit {
	int found;
	unsigned kind;
	uint64_t lsn;
	void *buf;
	size_t cap, vlen;
};

static void copy_hit(struct hit *h, unsigned kind, uint64_t lsn, const void *val, size_t vlen)
{
	h->found = 1;
	h->kind = kind;
	h->lsn = lsn;
	h->vlen = vlen;
	if (kind == KV_IK_PUT && h->cap && vlen)
		memcpy(h->buf, val, vlen < h->cap ? vlen : h->cap);
}

static void table_hit(void *arg, unsigned kind, uint64_t lsn, const void *val, size_t vlen)
{
	copy_hit(arg, kind, lsn, val, vlen);
}

static ssize_t result(const struct hit *h, uint64_t tomb)
{
	if (h->kind != KV_IK_PUT || h->lsn < tomb)
		return -ENOENT;
	return (ssize_t)h->vlen;
}

/* The memtable part of a lookup: 1 found (in *h), 0 go on. */
static int read_mem(struct kv_mem *m, uint64_t snap, int latest, const void *key, size_t klen,
		    uint64_t hash, struct hit *h, uint64_t *tomb)
{
	uint64_t limit, off;
	const uint8_t *op;

	if (snap != UINT64_MAX) {
		if (snap <= m->base_lsn)
			return 0;
		limit = snap - m->base_lsn;
	} else if (latest) {
		limit = UINT64_MAX;
	} else {
		limit = atomic_load_explicit(&m->lb.durable, memory_order_acquire);
	}
	if (atomic_load_explicit(&m->mt.nrdels, memory_order_acquire) &&
	    kv_memtable_rdel_cover(&m->mt, key, klen, limit, &off) && m->base_lsn + off > *tomb)
		*tomb = m->base_lsn + off;
	if (!kv_memtable_get_at_hashed(&m->mt, key, klen, hash, limit, &off))
		return 0;
	op = m->lb.base + off;
	copy_hit(h, op[0] == KV_OP_PUT ? KV_IK_PUT : KV_IK_DEL, m->base_lsn + off,
		 op + KV_OP_HEADER_SIZE + klen, op[0] == KV_OP_PUT ? kv_get_le32(op + 4) : 0);
	return 1;
}

/* One table: 1 found, 0 not, or -errno. */
static int read_table(struct kv_tref *t, uint64_t snap, const void *key, size_t klen, uint64_t hash,
		      struct hit *h, uint64_t *tomb)
{
	uint64_t c = kv_rdset_cover(kv_table_rangedels(t->t), key, klen, snap);

	if (c > *tomb)
		*tomb = c;
	return kv_table_get_hashed(t->t, key, klen, hash, snap, table_hit, h);
}

/* Index of the first table of a sorted level whose largest user key is >= key. */
static size_t level_find(struct kv_tref **f, size_t n, const void *key, size_t klen)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const struct kv_file_meta *m = &f[mid]->meta;

		if (kv_ukey_cmp(m->largest, kv_ikey_ulen(m->llen), key, klen) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int read_tables(struct kv_version *v, uint64_t snap, const void *key, size_t klen,
		       uint64_t hash, struct hit *h, uint64_t *tomb)
{
	int r;

	for (size_t i = 0; i < v->n[0]; i++) {
		const struct kv_file_meta *m = &v->files[0][i]->meta;

		if (kv_ukey_cmp(key, klen, m->smallest, kv_ikey_ulen(m->slen)) < 0 ||
		    kv_ukey_cmp(key, klen, m->largest, kv_ikey_ulen(m->llen)) > 0)
			continue;
		r = read_table(v->files[0][i], snap, key, klen, hash, h, tomb);
		if (r)
			return r;
	}
	for (int l = 1; l < KV_MAX_LEVELS; l++) {
		/* A tombstone's exclusive end may be the next table's first key:
		 * then two tables of the level touch the key. */
		for (size_t i = level_find(v->files[l], v->n[l], key, klen); i < v->n[l]; i++) {
			const struct kv_file_meta *m = &v->files[l][i]->meta;

			if (kv_ukey_cmp(key, klen, m->smallest, kv_ikey_ulen(m->slen)) < 0)
				break;
			r = read_table(v->files[l][i], snap, key, klen, hash, h, tomb);
			if (r)
				return r;
		}
	}
	return 0;
}

ssize_t kv_read(struct kv_super *s, uint64_t snap, int latest, const void *key, size_t klen,
		void *buf, size_t cap)
{
	struct hit h = { .buf = buf, .cap = cap };
	/* One hash for every source: the memtables' index and the tables'
	 * bloom filters use the same function (memtable.h). */
	uint64_t tomb = 0, hash = kv_memtable_hash(key, klen);
	int r;

	for (int i = 0; i < s->nmem; i++)
		if (read_mem(s->mem[i], snap, latest, key, klen, hash, &h, &tomb))
			return result(&h, tomb);
	r = read_tables(s->v, snap, key, klen, hash, &h, &tomb);
	if (r < 0)
		return r;
	return r ? result(&h, tomb) : -ENOENT;
}

/* ---- the merging iterator ---- */

struct merge {
	struct kv_iiter it;
	size_t n, live;	       /* children; those valid, in heap[0, live) */
	struct kv_iiter **kid; /* all children */
	struct kv_iiter **heap;
};

static int kid_less(struct kv_iiter *a, struct kv_iiter *b)
{
	return kv_ikey_cmp(a->key, a->klen, b->key, b->klen) < 0;
}

static void sift_down(struct merge *m, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, min = i;
		struct kv_iiter *t;

		if (l < m->live && kid_less(m->heap[l], m->heap[min]))
			min = l;
		if (r < m->live && kid_less(m->heap[r], m->heap[min]))
			min = r;
		if (min == i)
			return;
		t = m->heap[i];
		m->heap[i] = m->heap[min];
		m->heap[min] = t;
		i = min;
	}
}

static void merge_settle(struct merge *m)
{
	m->it.valid = 0;
	for (size_t i = 0; i < m->n; i++)
		if (m->kid[i]->err && !m->it.err)
			m->it.err = m->kid[i]->err;
	if (m->it.err || !m->live)
		return;
	m->it.valid = 1;
	m->it.key = m->heap[0]->key;
	m->it.klen = m->heap[0]->klen;
	m->it.val = m->heap[0]->val;
	m->it.vlen = m->heap[0]->vlen;
}

static void merge_build(struct merge *m)
{
	m->live = 0;
	for (size_t i = 0; i < m->n; i++)
		if (m->kid[i]->valid)
			m->heap[m->live++] = m->kid[i];
	for (size_t i = m->live / 2; i-- > 0;)
		sift_down(m, i);
	merge_settle(m);
}

static void merge_seek_first(struct kv_iiter *it)
{
	struct merge *m = (struct merge *)it;

	for (size_t i = 0; i < m->n; i++)
		m->kid[i]->ops->seek_first(m->kid[i]);
	merge_build(m);
}

static void merge_seek(struct kv_iiter *it, const uint8_t *ik, size_t iklen)
{
	struct merge *m = (struct merge *)it;

	for (size_t i = 0; i < m->n; i++)
		m->kid[i]->ops->seek(m->kid[i], ik, iklen);
	merge_build(m);
}

static void merge_next(struct kv_iiter *it)
{
	struct merge *m = (struct merge *)it;
	struct kv_iiter *top = m->heap[0];

	top->ops->next(top);
	if (!top->valid)
		m->heap[0] = m->heap[--m->live];
	sift_down(m, 0);
	merge_settle(m);
}

static void merge_destroy(struct kv_iiter *it)
{
	struct merge *m = (struct merge *)it;

	for (size_t i = 0; i < m->n; i++)
		m->kid[i]->ops->destroy(m->kid[i]);
	free(m->kid);
	free(m->heap);
	free(m);
}

static const struct kv_iiter_ops merge_ops = {
	.seek_first = merge_seek_first,
	.seek = merge_seek,
	.next = merge_next,
	.destroy = merge_destroy,
};

int kv_merge_new(struct kv_iiter **kids, size_t n, int err, struct kv_iiter **out)
{
	struct merge *m = err ? NULL : calloc(1, sizeof(*m));

	if (m) {
		m->kid = calloc(n ? n : 1, sizeof(*m->kid));
		m->heap = calloc(n ? n : 1, sizeof(*m->heap));
	}
	if (!m || !m->kid || !m->heap) {
		for (size_t i = 0; i < n; i++)
			kids[i]->ops->destroy(kids[i]);
		if (m) {
			free(m->kid);
			free(m->heap);
		}
		free(m);
		return err ? err : -ENOMEM;
	}
	memcpy(m->kid, kids, n * sizeof(*kids));
	m->n = n;
	m->it.ops = &merge_ops;
	*out = &m->it;
	return 0;
}

int kv_merge_iter(struct kv_super *s, struct kv_version *v, uint64_t snap, struct kv_iiter **out)
{
	size_t cap = (size_t)(s ? s->nmem : 0), n = 0;
	struct kv_iiter **kids;
	int err = 0;

	for (int l = 0; l < KV_MAX_LEVELS; l++)
		cap += v->n[l];
	kids = calloc(cap ? cap : 1, sizeof(*kids));
	if (!kids)
		return -ENOMEM;
	for (int i = 0; s && i < s->nmem && !err; i++) {
		struct kv_mem *m = s->mem[i];

		if (snap <= m->base_lsn)
			continue;
		err = kv_memtable_iter(&m->mt, m->base_lsn, snap - m->base_lsn, &kids[n]);
		n += !err;
	}
	for (int l = 0; l < KV_MAX_LEVELS && !err; l++)
		for (size_t i = 0; i < v->n[l] && !err; i++) {
			err = kv_table_iter(v->files[l][i]->t, &kids[n]);
			n += !err;
		}
	err = kv_merge_new(kids, n, err, out);
	free(kids);
	return err;
}

/* ---- the public iterator ---- */

struct kv_iter {
	struct kv_super *s; /* referenced: memtables and tables stay */
	uint64_t snap;	    /* versions below it; UINT64_MAX: KV_READ_LATEST */
	struct kv_iiter *m;
	struct kv_rdset *rd;  /* every range tombstone below snap (at creation) */
	struct kv_keybuf key; /* the current user key (a copy) */
	int valid, err;
};

/* Every range tombstone of @s below @snap, in one set. */
static int gather_tombs(struct kv_super *s, uint64_t snap, struct kv_rdset **out)
{
	struct kv_rtombs ts = { 0 };
	int err = 0;

	for (int i = 0; i < s->nmem && !err; i++) {
		struct kv_mem *m = s->mem[i];

		for (struct kv_mrdel *d = atomic_load(&m->mt.rdels); d && !err; d = d->next) {
			struct kv_rtomb t = { d->start, d->slen, d->end, d->elen,
					      m->base_lsn + d->op_off };

			if (t.lsn < snap)
				err = kv_rtombs_add(&ts, &t);
		}
	}
	for (int l = 0; l < KV_MAX_LEVELS && !err; l++)
		for (size_t i = 0; i < s->v->n[l] && !err; i++)
			err = kv_rtombs_add_set(&ts, kv_table_rangedels(s->v->files[l][i]->t),
						snap);
	if (!err)
		err = kv_rdset_build(ts.t, ts.n, out);
	free(ts.t);
	return err;
}

/*
 * The view's bound: the snapshot's lsn, the durable lsn now, or with
 * KV_READ_LATEST no bound at all (UINT64_MAX). A latest view cannot stop at
 * the lsn appended at creation: a version of an unpublished epoch may be
 * replaced in place by a newer one of the same epoch (memtable.h), and a
 * bound between the two would then see neither of them but an older version
 * from an older source. So the memtables of the super are read as
 * kv_get(KV_READ_LATEST) reads them, newest version first, whenever the
 * iterator gets to a key; tables hold committed versions only.
 */
int kv_iter_create_flags(struct kv_db *db, unsigned flags, const struct kv_snapshot *snap,
			 struct kv_iter **out)
{
	struct kv_iter *it;
	int err;

	if ((flags & ~KV_READ_LATEST) || (snap && (flags & KV_READ_LATEST)))
		return -EINVAL;
	it = calloc(1, sizeof(*it));
	if (!it)
		return -ENOMEM;
	it->s = kv_super_get(db);
	if (snap)
		it->snap = snap->lsn;
	else if (flags & KV_READ_LATEST)
		it->snap = UINT64_MAX;
	else
		it->snap = atomic_load_explicit(&db->durable_lsn, memory_order_acquire);
	err = gather_tombs(it->s, it->snap, &it->rd);
	if (!err)
		err = kv_merge_iter(it->s, it->s->v, it->snap, &it->m);
	if (err) {
		kv_rdset_free(it->rd);
		kv_super_unref(it->s);
		free(it);
		return err;
	}
	*out = it;
	return 0;
}

int kv_iter_create(struct kv_db *db, const struct kv_snapshot *snap, struct kv_iter **out)
{
	return kv_iter_create_flags(db, 0, snap, out);
}

void kv_iter_destroy(struct kv_iter *it)
{
	if (!it)
		return;
	it->m->ops->destroy(it->m);
	kv_rdset_free(it->rd);
	kv_super_unref(it->s);
	free(it->key.p);
	free(it);
}

static int same_ukey(const struct kv_iter *it, const struct kv_iiter *m)
{
	return kv_ukey_cmp(m->key, kv_ikey_ulen(m->klen), it->key.p, it->key.len) == 0;
}

/* From the merge's position: the next user key whose newest visible version
 * is a live put. */
static void iter_settle(struct kv_iter *it)
{
	struct kv_iiter *m = it->m;

	it->valid = 0;
	while (m->valid) {
		uint64_t lsn = kv_ikey_lsn(m->key, m->klen);
		int err;

		if (lsn >= it->snap) {
			m->ops->next(m);
			continue;
		}
		err = kv_keybuf_set(&it->key, m->key, kv_ikey_ulen(m->klen));
		if (err) {
			it->err = err;
			return;
		}
		if (kv_ikey_kind(m->key, m->klen) == KV_IK_PUT &&
		    kv_rdset_cover(it->rd, it->key.p, it->key.len, it->snap) <= lsn) {
			it->valid = 1;
			return;
		}
		/* Deleted: skip every older version of this key. */
		while (m->valid && same_ukey(it, m))
			m->ops->next(m);
	}
	if (m->err)
		it->err = m->err;
}

void kv_iter_seek_first(struct kv_iter *it)
{
	it->err = 0;
	it->m->ops->seek_first(it->m);
	iter_settle(it);
}

void kv_iter_seek(struct kv_iter *it, const void *key, size_t klen)
{
	uint8_t stack[256], *ik = klen + KV_IKEY_TRAILER <= sizeof(stack) ?
					  stack :
					  malloc(klen + KV_IKEY_TRAILER);

	it->err = 0;
	if (!ik) {
		it->valid = 0;
		it->err = -ENOMEM;
		return;
	}
	kv_ikey_make(ik, key, klen, KV_LSN_MAX, KV_IK_SEEK);
	it->m->ops->seek(it->m, ik, klen + KV_IKEY_TRAILER);
	if (ik != stack)
		free(ik);
	iter_settle(it);
}

int kv_iter_valid(const struct kv_iter *it)
{
	return it->valid;
}

void kv_iter_next(struct kv_iter *it)
{
	struct kv_iiter *m = it->m;

	if (!it->valid)
		return;
	while (m->valid && same_ukey(it, m))
		m->ops->next(m);
	iter_settle(it);
}

const void *kv_iter_key(const struct kv_iter *it, size_t *klen)
{
	*klen = it->key.len;
	return it->key.p;
}

const void *kv_iter_value(const struct kv_iter *it, size_t *vlen)
{
	*vlen = it->m->vlen;
	return it->m->val;
}

int kv_iter_status(const struct kv_iter *it)
{
	return it->err;
}
