/* SPDX-License-Identifier: MIT */
/*
 * write.c - the write path: batches, append, durability modes, completions.
 *
 * append(): one reservation in the active log buffer (logbuf.c), the record
 * copied in and sealed with its checksum, its ops indexed in the memtable as
 * uncommitted versions, the async request (if any) queued on its epoch, then
 * release. The caller then, by durability mode:
 *
 *   sync          waits for its commit, leading one if no one is (commit.c);
 *   batch         kicks the backstop and returns, unless more than
 *                 batch_max_pending bytes are not yet durable: then it
 *                 waits until the excess is (the durability bound);
 *   fsync-per-op  holds db->fpo_mu across append and commit, so each epoch
 *                 holds exactly one record: one write + fdatasync per op;
 *   locked        holds the write locks of its keys' stripes across append
 *                 and commit; plain readers take the read lock (db.c).
 *
 * A batch is encoded once, in the WAL op format, by kv_batch_put/delete, so
 * appending it is a single memcpy.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "ikey.h"
#include "sync.h"
#include "wal.h"

/* What to append: a batch, or one op given in place. */
struct wsrc {
	const struct kv_batch *b;
	uint8_t type;
	const void *key, *val;
	uint32_t klen, vlen;
};

static size_t src_len(const struct wsrc *s)
{
	return s->b ? s->b->len : kv_op_size(s->klen, s->vlen);
}

/* Key and value bytes (for write amplification). */
static size_t user_len(const struct wsrc *s)
{
	return s->b ? s->b->len - (size_t)KV_OP_HEADER_SIZE * s->b->count : s->klen + s->vlen;
}

static int check_op(const void *key, size_t klen, size_t vlen)
{
	if (!key || !klen)
		return -EINVAL;
	if (klen > KV_MAX_KEY || vlen > KV_MAX_VALUE)
		return -E2BIG;
	return 0;
}

/* ---- batches ---- */

int kv_batch_create(struct kv_batch **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void kv_batch_destroy(struct kv_batch *b)
{
	if (b)
		free(b->buf);
	free(b);
}

void kv_batch_clear(struct kv_batch *b)
{
	b->len = 0;
	b->count = 0;
}

uint32_t kv_batch_count(const struct kv_batch *b)
{
	return b->count;
}

static int batch_add(struct kv_batch *b, uint8_t type, const void *key, size_t klen,
		     const void *val, size_t vlen)
{
	size_t need = kv_op_size(klen, vlen);
	int err = check_op(key, klen, vlen);

	if (err)
		return err;
	if (b->len + need > KV_LOGBUF_MAX)
		return -E2BIG;
	if (b->len + need > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		uint8_t *p;

		while (cap < b->len + need)
			cap *= 2;
		p = realloc(b->buf, cap);
		if (!p)
			return -ENOMEM;
		b->buf = p;
		b->cap = cap;
	}
	kv_op_encode(b->buf + b->len, type, key, (uint32_t)klen, val, (uint32_t)vlen);
	b->len += need;
	b->count++;
	return 0;
}

int kv_batch_put(struct kv_batch *b, const void *key, size_t klen, const void *val, size_t vlen)
{
	return batch_add(b, KV_OP_PUT, key, klen, val, vlen);
}

int kv_batch_delete(struct kv_batch *b, const void *key, size_t klen)
{
	return batch_add(b, KV_OP_DEL, key, klen, NULL, 0);
}

static int check_range(const void *start, size_t slen, const void *end, size_t elen)
{
	if (!start || !slen || !end || !elen)
		return -EINVAL;
	if (slen > KV_MAX_KEY || elen > KV_MAX_KEY)
		return -E2BIG;
	return kv_ukey_cmp(start, slen, end, elen) < 0 ? 0 : -EINVAL;
}

int kv_batch_delete_range(struct kv_batch *b, const void *start, size_t slen, const void *end,
			  size_t elen)
{
	int err = check_range(start, slen, end, elen);

	return err ? err : batch_add(b, KV_OP_DELRANGE, start, slen, end, elen);
}

/* ---- append ---- */

/* Reserve @len bytes in the active buffer, rotating when it is full. */
static int reserve(struct kv_db *db, uint64_t len, struct kv_mem **mp, uint64_t *ref)
{
	for (;;) {
		uint32_t seq = atomic_load_explicit(&db->rotate_seq, memory_order_acquire);
		struct kv_mem *m = atomic_load_explicit(&db->active, memory_order_acquire);
		int crossing, err;

		if (atomic_load_explicit(&db->failed, memory_order_acquire))
			return -EIO;
		if (!kv_logbuf_reserve(&m->lb, len, ref, &crossing)) {
			*mp = m;
			return 0;
		}
		if (crossing) {
			err = kv_store_rotate(db, m, kv_ref_off(*ref));
			if (err)
				return err;
			continue;
		}
		if (atomic_load_explicit(&db->active, memory_order_acquire) == m)
			kv_futex_wait(&db->rotate_seq, seq);
	}
}

static int append(struct kv_db *db, const struct wsrc *s, struct kv_req *req, struct kv_mem **mp,
		  uint64_t *endp)
{
	uint64_t len = KV_REC_HEADER_SIZE + src_len(s), ref, off;
	struct kv_rec_header h = { 0 };
	struct kv_mem *m;
	uint8_t *rec;
	int err;

	err = reserve(db, kv_align8(len), &m, &ref);
	if (err)
		return err;
	off = kv_ref_off(ref);
	rec = m->lb.base + off;
	if (s->b)
		memcpy(rec + KV_REC_HEADER_SIZE, s->b->buf, s->b->len);
	else
		kv_op_encode(rec + KV_REC_HEADER_SIZE, s->type, s->key, s->klen, s->val, s->vlen);
	h.len = (uint32_t)len;
	h.count = s->b ? s->b->count : 1;
	kv_rec_seal(rec, h.len, h.count, kv_ref_epoch(ref), m->seg_id);
	err = kv_mem_index(m, ref, rec, &h);
	if (err) /* before release: the epoch holding it is never written */
		kv_commit_fail(db, err);
	else if (req) {
		req->ref = ref;
		kv_logbuf_push_req(&m->lb, ref, req);
	}
	kv_logbuf_release(&m->lb, ref, kv_align8(len));
	atomic_fetch_add_explicit(&db->records, 1, memory_order_relaxed);
	kv_commit_arrived(db);
	*mp = m;
	*endp = off + kv_align8(len);
	return err;
}

/* ---- durability modes ---- */

static enum kv_durability mode_of(struct kv_db *db, const struct kv_write_options *wo)
{
	if (wo && wo->durability != KV_DUR_DEFAULT)
		return wo->durability;
	return db->opt.durability;
}

/* The set of stripes a write touches, as a bitmap, locked in index order. */
static void stripes_of(const struct wsrc *s, uint64_t set[KV_STRIPES / 64])
{
	memset(set, 0, KV_STRIPES / 8);
	if (!s->b) {
		unsigned i = kv_key_stripe(s->key, s->klen);

		set[i / 64] |= 1ull << (i % 64);
		return;
	}
	for (size_t off = 0; off < s->b->len;) {
		struct kv_op op;
		int n = kv_op_decode(s->b->buf + off, s->b->len - off, &op);
		unsigned i;

		if (n <= 0)
			break;
		i = kv_key_stripe(op.key, op.klen);
		set[i / 64] |= 1ull << (i % 64);
		off += (size_t)n;
	}
}

static void stripes_lock(struct kv_db *db, const uint64_t set[KV_STRIPES / 64], int lock)
{
	for (unsigned i = 0; i < KV_STRIPES; i++) {
		if (!(set[i / 64] & (1ull << (i % 64))))
			continue;
		if (lock)
			pthread_rwlock_wrlock(&db->stripe[i]);
		else
			pthread_rwlock_unlock(&db->stripe[i]);
	}
}

/*
 * Batch mode: kick the backstop; if more than batch_max_pending bytes of this
 * buffer are not yet durable, wait until the excess is, so that no
 * acknowledged write waits behind an unbounded backlog.
 */
static int batch_backpressure(struct kv_db *db, struct kv_mem *m, uint64_t end)
{
	uint64_t limit = db->opt.batch_max_pending;

	kv_commit_kick(db);
	if (end <= limit ||
	    atomic_load_explicit(&m->lb.durable, memory_order_acquire) >= end - limit)
		return 0;
	return kv_commit_wait(db, m, end - limit);
}

static int append_and_wait(struct kv_db *db, const struct wsrc *s)
{
	struct kv_mem *m;
	uint64_t end;
	int err = append(db, s, NULL, &m, &end);

	return err ? err : kv_commit_wait(db, m, end);
}

static int write_mode(struct kv_db *db, const struct kv_write_options *wo, const struct wsrc *s)
{
	uint64_t set[KV_STRIPES / 64];
	struct kv_mem *m;
	uint64_t end;
	int err;

	switch (mode_of(db, wo)) {
	case KV_DUR_BATCH:
		err = append(db, s, NULL, &m, &end);
		if (!err)
			err = batch_backpressure(db, m, end);
		return err;
	case KV_DUR_FSYNC_PER_OP:
		pthread_mutex_lock(&db->fpo_mu);
		err = append_and_wait(db, s);
		pthread_mutex_unlock(&db->fpo_mu);
		return err;
	case KV_DUR_LOCKED:
		stripes_of(s, set);
		stripes_lock(db, set, 1);
		err = append_and_wait(db, s);
		stripes_lock(db, set, 0);
		return err;
	default:
		return append_and_wait(db, s);
	}
}

/*
 * Admission (a stall while flushes or level 0 are behind), then the write
 * inside a guard: the memtables it touches live until it is out.
 */
static int write_src(struct kv_db *db, const struct kv_write_options *wo, const struct wsrc *s)
{
	int err = kv_bg_admit(db), g;

	if (err)
		return err;
	g = kv_guard_enter(db);
	err = write_mode(db, wo, s);
	kv_guard_exit(db, g);
	if (!err)
		atomic_fetch_add_explicit(&db->user_bytes, user_len(s), memory_order_relaxed);
	return err;
}

int kv_put(struct kv_db *db, const struct kv_write_options *wo, const void *key, size_t klen,
	   const void *val, size_t vlen)
{
	struct wsrc s = { .type = KV_OP_PUT,
			  .key = key,
			  .klen = (uint32_t)klen,
			  .val = val,
			  .vlen = (uint32_t)vlen };
	int err = check_op(key, klen, vlen);

	return err ? err : write_src(db, wo, &s);
}

int kv_delete(struct kv_db *db, const struct kv_write_options *wo, const void *key, size_t klen)
{
	struct wsrc s = { .type = KV_OP_DEL, .key = key, .klen = (uint32_t)klen };
	int err = check_op(key, klen, 0);

	return err ? err : write_src(db, wo, &s);
}

int kv_delete_range(struct kv_db *db, const struct kv_write_options *wo, const void *start,
		    size_t slen, const void *end, size_t elen)
{
	struct wsrc s = { .type = KV_OP_DELRANGE,
			  .key = start,
			  .klen = (uint32_t)slen,
			  .val = end,
			  .vlen = (uint32_t)elen };
	int err = check_range(start, slen, end, elen);

	return err ? err : write_src(db, wo, &s);
}

static int check_batch(struct kv_db *db, const struct kv_batch *b)
{
	if (kv_align8(KV_REC_HEADER_SIZE + b->len) > db->opt.log_buffer_size / 4) {
		kv_log(db, KV_LOG_ERROR,
		       "%s: a batch of %zu bytes exceeds a quarter of the log buffer (%zu)",
		       db->dir, b->len, db->opt.log_buffer_size / 4);
		return -E2BIG;
	}
	return 0;
}

int kv_write(struct kv_db *db, const struct kv_write_options *wo, const struct kv_batch *b)
{
	struct wsrc s = { .b = b };
	int err;

	if (!b->count)
		return 0;
	err = check_batch(db, b);
	return err ? err : write_src(db, wo, &s);
}

/* ---- asynchronous writes and completion queues ---- */

static int write_async(struct kv_db *db, const struct kv_write_options *wo,
		       const struct kv_batch *b, struct kv_req *req)
{
	struct wsrc s = { .b = b };
	struct kv_mem *m;
	uint64_t end;
	int err, g, early = mode_of(db, wo) == KV_DUR_BATCH || !b->count;

	err = b->count ? check_batch(db, b) : 0;
	if (!err && b->count)
		err = kv_bg_admit(db);
	if (err) {
		free(req);
		return err;
	}
	g = kv_guard_enter(db);
	if (b->count)
		err = append(db, &s, early ? NULL : req, &m, &end);
	if (err) {
		kv_guard_exit(db, g);
		free(req);
		return err;
	}
	atomic_fetch_add_explicit(&db->user_bytes, user_len(&s), memory_order_relaxed);
	if (early && b->count)
		err = batch_backpressure(db, m, end);
	else if (b->count)
		kv_commit_kick(db);
	kv_guard_exit(db, g);
	/* Acknowledged at append: a backpressure failure is the db's, later. */
	if (early)
		kv_req_complete(req, 0);
	return 0;
}

int kv_write_async(struct kv_db *db, const struct kv_write_options *wo, const struct kv_batch *b,
		   struct kv_cq *cq, uint64_t tag)
{
	struct kv_req *req = calloc(1, sizeof(*req));

	if (!req)
		return -ENOMEM;
	req->cq = cq;
	req->tag = tag;
	return write_async(db, wo, b, req);
}

int kv_write_cb(struct kv_db *db, const struct kv_write_options *wo, const struct kv_batch *b,
		kv_done_fn cb, void *arg)
{
	struct kv_req *req = calloc(1, sizeof(*req));

	if (!req)
		return -ENOMEM;
	req->cb = cb;
	req->arg = arg;
	return write_async(db, wo, b, req);
}

int kv_cq_create(struct kv_cq **out)
{
	struct kv_cq *cq = calloc(1, sizeof(*cq));

	if (!cq)
		return -ENOMEM;
	pthread_mutex_init(&cq->mu, NULL);
	pthread_cond_init(&cq->cond, NULL);
	*out = cq;
	return 0;
}

void kv_cq_destroy(struct kv_cq *cq)
{
	if (!cq)
		return;
	pthread_mutex_destroy(&cq->mu);
	pthread_cond_destroy(&cq->cond);
	free(cq->items);
	free(cq);
}

static void cq_push(struct kv_cq *cq, uint64_t tag, int status)
{
	pthread_mutex_lock(&cq->mu);
	if (cq->count == cq->cap) {
		int cap = cq->cap ? 2 * cq->cap : 64;
		struct kv_completion *items = malloc((size_t)cap * sizeof(*items));

		if (!items)
			abort(); /* cannot drop an acknowledgement */
		for (int i = 0; i < cq->count; i++)
			items[i] = cq->items[(cq->head + i) % cq->cap];
		free(cq->items);
		cq->items = items;
		cq->cap = cap;
		cq->head = 0;
	}
	cq->items[(cq->head + cq->count) % cq->cap] = (struct kv_completion){ tag, status };
	cq->count++;
	pthread_cond_signal(&cq->cond);
	pthread_mutex_unlock(&cq->mu);
}

int kv_cq_reap(struct kv_cq *cq, struct kv_completion *out, int max, int min)
{
	int n = 0;

	pthread_mutex_lock(&cq->mu);
	while (cq->count < min)
		pthread_cond_wait(&cq->cond, &cq->mu);
	while (n < max && cq->count) {
		out[n++] = cq->items[cq->head];
		cq->head = (cq->head + 1) % cq->cap;
		cq->count--;
	}
	pthread_mutex_unlock(&cq->mu);
	return n;
}

void kv_req_complete(struct kv_req *req, int status)
{
	if (req->cq)
		cq_push(req->cq, req->tag, status);
	else
		req->cb(req->arg, status);
	free(req);
}
