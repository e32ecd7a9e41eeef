/* SPDX-License-Identifier: MIT */
/*
 * table_build.c - writing a sorted table (table.h; bytes: table_fmt.h and
 * kv/FORMAT.md, "Sorted tables").
 *
 * A builder is used by one thread. Entries arrive in internal key order;
 * each is appended to the current data block, which is cut once it reaches
 * the target size (a single large entry makes one oversized block). A cut
 * block gets its trailer and goes to the output buffer, and its last key
 * and handle go to the index. Range tombstones arrive in any order and are
 * kept (copied) until the end. The user key hashes for the filter are kept
 * too (8 bytes per distinct user key) since the filter size depends on their
 * number. kv_tb_finish() then writes, in this order, the filter, the
 * range-del block (tombstones sorted by start, then lsn descending), the
 * properties, the index and the footer, fsyncs and closes.
 *
 * Output goes through a buffer flushed in large writes at increasing file
 * offsets; b->off is the file offset of buf[0]. Any error is sticky: the
 * builder refuses further work, and finish/abandon remove the file.
 */
#include "table_fmt.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "log.h"

#define OUT_FLUSH (1u << 20) /* write the output buffer out beyond this */

struct tomb {
	uint8_t *start, *end;
	size_t slen, elen;
	uint64_t lsn;
};

/* Used by one thread (the flush or compaction that owns it): no field is
 * shared, none needs a lock. */
struct kv_table_builder {
	struct kv_env *env;
	const struct kv_options *log;
	char *path;
	struct kv_file *file;
	uint64_t file_no;
	size_t block_size;
	size_t big_block_size; /* cut target of blocks of large entries */
	int bloom_bits;
	int err; /* sticky */

	uint8_t *out; /* not yet written; starts at file offset off */
	size_t olen, ocap;
	uint64_t off;

	struct kv_bbuild data, index;
	uint64_t data_blocks;
	uint8_t last[KV_TBL_MAX_IKEY]; /* the last internal key added */
	size_t lastlen;
	uint8_t *first; /* the first internal key added */
	size_t firstlen;
	uint64_t entries, min_lsn, max_lsn;

	uint64_t *hashes; /* one per distinct user key */
	size_t nhash, hcap;

	struct tomb *tombs;
	size_t ntomb, tcap;
};

/* ---- encoders shared with the format --------------------------------------- */

static uint64_t block_sum(const uint8_t *blk, size_t size)
{
	return XXH3_64bits_withSeed(blk, size + 8, 0);
}

void kv_tbl_seal(uint8_t *blk, size_t size, uint8_t type)
{
	uint8_t *tr = blk + size;

	memset(tr, 0, KV_TBL_TRAILER);
	tr[0] = type;
	kv_put_le64(tr + 8, block_sum(blk, size));
}

void kv_tbl_footer_encode(uint8_t out[KV_TBL_FOOTER], const struct kv_footer *f)
{
	const struct kv_bhandle *h[4] = { &f->filter, &f->rangedel, &f->props, &f->index };

	for (int i = 0; i < 4; i++) {
		kv_put_le64(out + 8 + 16 * i, h[i]->off);
		kv_put_le64(out + 16 + 16 * i, h[i]->size);
	}
	kv_put_le32(out + 72, KV_TBL_FOOTER);
	kv_put_le32(out + 76, f->version);
	kv_put_le64(out + 80, KV_TABLE_MAGIC);
	kv_put_le64(out, XXH3_64bits_withSeed(out + 8, KV_TBL_FOOTER - 8, 0));
}

size_t kv_tprops_size(const struct kv_tprops *p)
{
	return KV_TBL_PROPS_FIXED + p->slen + p->llen;
}

void kv_tprops_encode(uint8_t *out, const struct kv_tprops *p)
{
	const uint64_t v[8] = { p->file_no,	p->entries,   p->rangedels, p->data_bytes,
				p->data_blocks, p->user_keys, p->min_lsn,   p->max_lsn };

	for (int i = 0; i < 8; i++)
		kv_put_le64(out + 8 * i, v[i]);
	kv_put_le32(out + 64, p->slen);
	kv_put_le32(out + 68, p->llen);
	if (p->slen)
		memcpy(out + KV_TBL_PROPS_FIXED, p->smallest, p->slen);
	if (p->llen)
		memcpy(out + KV_TBL_PROPS_FIXED + p->slen, p->largest, p->llen);
}

void kv_bloom_set(uint8_t *bits, uint64_t nbits, unsigned k, uint64_t h)
{
	uint64_t d = kv_bloom_delta(h);

	for (unsigned i = 0; i < k; i++, h += d) {
		uint64_t pos = h % nbits;

		bits[pos >> 3] |= (uint8_t)(1u << (pos & 7));
	}
}

/* ---- keyed block builder ------------------------------------------------------ */

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
	size_t ncap = *cap ? *cap : 4096;
	uint8_t *nb;

	if (need <= *cap)
		return 0;
	while (ncap < need)
		ncap *= 2;
	nb = realloc(*buf, ncap);
	if (!nb)
		return -ENOMEM;
	*buf = nb;
	*cap = ncap;
	return 0;
}

void kv_bbuild_init(struct kv_bbuild *bb, int interval)
{
	memset(bb, 0, offsetof(struct kv_bbuild, last));
	bb->lastlen = 0;
	bb->interval = interval;
}

void kv_bbuild_reset(struct kv_bbuild *bb)
{
	bb->len = 0;
	bb->nrestarts = 0;
	bb->since = 0;
	bb->entries = 0;
	bb->lastlen = 0;
}

void kv_bbuild_free(struct kv_bbuild *bb)
{
	free(bb->buf);
	free(bb->restarts);
	bb->buf = NULL;
	bb->restarts = NULL;
}

static int push_restart(struct kv_bbuild *bb)
{
	if (bb->nrestarts == bb->rcap) {
		size_t ncap = bb->rcap ? 2 * bb->rcap : 64;
		uint32_t *nr = realloc(bb->restarts, ncap * sizeof(*nr));

		if (!nr)
			return -ENOMEM;
		bb->restarts = nr;
		bb->rcap = ncap;
	}
	bb->restarts[bb->nrestarts++] = (uint32_t)bb->len;
	bb->since = 0;
	return 0;
}

int kv_bbuild_add(struct kv_bbuild *bb, const uint8_t *key, size_t klen, const void *val,
		  size_t vlen)
{
	size_t shared = 0;
	uint8_t *p;

	if (klen > KV_TBL_MAX_IKEY || bb->len + klen + vlen + 64 > KV_TBL_MAX_BLOCK)
		return -EINVAL;
	if (bb->entries == 0 || bb->since >= bb->interval) {
		if (push_restart(bb))
			return -ENOMEM;
	} else {
		size_t m = klen < bb->lastlen ? klen : bb->lastlen;

		while (shared < m && key[shared] == bb->last[shared])
			shared++;
	}
	if (grow(&bb->buf, &bb->cap, bb->len + 3 * KV_VARINT_MAX + klen + vlen))
		return -ENOMEM;
	p = bb->buf + bb->len;
	p = kv_varint_put(p, shared);
	p = kv_varint_put(p, klen - shared);
	p = kv_varint_put(p, vlen);
	memcpy(p, key + shared, klen - shared);
	p += klen - shared;
	if (vlen)
		memcpy(p, val, vlen);
	bb->len = (size_t)(p - bb->buf) + vlen;
	memcpy(bb->last, key, klen);
	bb->lastlen = klen;
	bb->since++;
	bb->entries++;
	return 0;
}

size_t kv_bbuild_size(const struct kv_bbuild *bb)
{
	return bb->len + 4 * bb->nrestarts + 4;
}

int kv_bbuild_finish(struct kv_bbuild *bb)
{
	size_t n = kv_bbuild_size(bb) + KV_TBL_TRAILER;

	if (grow(&bb->buf, &bb->cap, n))
		return -ENOMEM;
	for (size_t i = 0; i < bb->nrestarts; i++, bb->len += 4)
		kv_put_le32(bb->buf + bb->len, bb->restarts[i]);
	kv_put_le32(bb->buf + bb->len, (uint32_t)bb->nrestarts);
	bb->len += 4;
	return 0;
}

/* ---- output --------------------------------------------------------------------- */

static int tb_fail(struct kv_table_builder *b, int err, const char *what)
{
	if (!b->err)
		kv_log_opt(b->log, KV_LOG_ERROR, "%s: offset %" PRIu64 ": %s: error %d", b->path,
			   b->off + b->olen, what, err);
	b->err = b->err ? b->err : err;
	return b->err;
}

static int out_flush(struct kv_table_builder *b)
{
	int err;

	if (!b->olen)
		return 0;
	err = kv_env_write_all(b->file, b->out, b->olen, b->off);
	if (err)
		return tb_fail(b, err, "writing the table");
	b->off += b->olen;
	b->olen = 0;
	return 0;
}

/* Append @size content bytes at @p as a block of @type (p has 16 bytes of
 * room after them for the trailer) and return its handle. */
static int out_block(struct kv_table_builder *b, uint8_t *p, size_t size, uint8_t type,
		     struct kv_bhandle *h)
{
	kv_tbl_seal(p, size, type);
	if (grow(&b->out, &b->ocap, b->olen + size + KV_TBL_TRAILER))
		return tb_fail(b, -ENOMEM, "buffering a block");
	h->off = b->off + b->olen;
	h->size = size;
	memcpy(b->out + b->olen, p, size + KV_TBL_TRAILER);
	b->olen += size + KV_TBL_TRAILER;
	return b->olen >= OUT_FLUSH ? out_flush(b) : 0;
}

/* Finish a keyed block and write it out. */
static int out_bbuild(struct kv_table_builder *b, struct kv_bbuild *bb, uint8_t type,
		      struct kv_bhandle *h)
{
	if (kv_bbuild_finish(bb))
		return tb_fail(b, -ENOMEM, "building a block");
	return out_block(b, bb->buf, bb->len, type, h);
}

/* Cut the current data block: write it, index it under its last key. */
static int flush_data(struct kv_table_builder *b)
{
	uint8_t hv[2 * KV_VARINT_MAX], *p;
	struct kv_bhandle h;
	int err;

	if (!b->data.entries)
		return 0;
	err = out_bbuild(b, &b->data, KV_BLK_DATA, &h);
	if (err)
		return err;
	p = kv_varint_put(hv, h.off);
	p = kv_varint_put(p, h.size);
	if (kv_bbuild_add(&b->index, b->last, b->lastlen, hv, (size_t)(p - hv)))
		return tb_fail(b, -ENOMEM, "building the index");
	kv_bbuild_reset(&b->data);
	b->data_blocks++;
	return 0;
}

/* ---- the builder ------------------------------------------------------------------ */

int kv_tb_create(struct kv_env *env, const struct kv_options *log, const char *path,
		 uint64_t file_no, const struct kv_table_build_opts *o,
		 struct kv_table_builder **out)
{
	struct kv_table_build_opts d = { 0 };
	struct kv_table_builder *b;
	int err;

	if (!o)
		o = &d;
	if (o->restart_interval < 0 || o->restart_interval > 1024 || o->bloom_bits_per_key < 0 ||
	    o->bloom_bits_per_key > 64 || o->block_size > (64u << 20)) {
		kv_log_opt(log, KV_LOG_ERROR, "%s: bad table build options", path);
		return -EINVAL;
	}
	b = calloc(1, sizeof(*b));
	if (!b || !(b->path = strdup(path))) {
		free(b);
		return -ENOMEM;
	}
	b->env = env;
	b->log = log;
	b->file_no = file_no;
	b->block_size = o->block_size ? o->block_size : 4096;
	b->big_block_size = b->block_size * KV_TBL_BIG_MUL;
	b->bloom_bits = o->bloom_bits_per_key ? o->bloom_bits_per_key : 10;
	kv_bbuild_init(&b->data, o->restart_interval ? o->restart_interval : 16);
	kv_bbuild_init(&b->index, o->restart_interval ? o->restart_interval : 16);
	err = env->ops->open(env, path, O_RDWR | O_CREAT | O_EXCL, 0644, &b->file);
	if (err) {
		kv_log_opt(log, KV_LOG_ERROR, "%s: offset 0: cannot create the table: error %d",
			   path, err);
		free(b->path);
		free(b);
		return err;
	}
	*out = b;
	return 0;
}

static int push_hash(struct kv_table_builder *b, const uint8_t *ukey, size_t len)
{
	if (b->nhash == b->hcap) {
		size_t ncap = b->hcap ? 2 * b->hcap : 1024;
		uint64_t *nh = realloc(b->hashes, ncap * sizeof(*nh));

		if (!nh)
			return -ENOMEM;
		b->hashes = nh;
		b->hcap = ncap;
	}
	b->hashes[b->nhash++] = kv_bloom_hash(ukey, len);
	return 0;
}

/* A programmer's error: logged, returned, not sticky. */
static int tb_misuse(struct kv_table_builder *b, const char *what)
{
	kv_log_opt(b->log, KV_LOG_ERROR, "%s: offset %" PRIu64 ": %s", b->path, b->off + b->olen,
		   what);
	return -EINVAL;
}

/* Record @ik as the newest key: first/last, lsns, the filter's user keys. */
static int note_key(struct kv_table_builder *b, const uint8_t *ik, size_t iklen)
{
	size_t ulen = kv_ikey_ulen(iklen);
	uint64_t lsn = kv_ikey_lsn(ik, iklen);

	if (!b->entries) {
		b->first = malloc(iklen);
		if (!b->first)
			return -ENOMEM;
		memcpy(b->first, ik, iklen);
		b->firstlen = iklen;
		b->min_lsn = b->max_lsn = lsn;
	}
	if (!b->entries || kv_ukey_cmp(b->last, kv_ikey_ulen(b->lastlen), ik, ulen))
		if (push_hash(b, ik, ulen))
			return -ENOMEM;
	memcpy(b->last, ik, iklen);
	b->lastlen = iklen;
	b->min_lsn = lsn < b->min_lsn ? lsn : b->min_lsn;
	b->max_lsn = lsn > b->max_lsn ? lsn : b->max_lsn;
	b->entries++;
	return 0;
}

/* The current data block has reached its cut target: block_size, or
 * big_block_size while its entries average block_size / 2 bytes or more. */
static bool block_full(const struct kv_table_builder *b)
{
	size_t size = kv_bbuild_size(&b->data);

	if (size < b->block_size)
		return false;
	return size >= b->big_block_size || 2 * b->data.len < b->data.entries * b->block_size;
}

int kv_tb_add(struct kv_table_builder *b, const uint8_t *ik, size_t iklen, const void *val,
	      size_t vlen)
{
	unsigned kind;

	if (b->err)
		return b->err;
	if (iklen < KV_IKEY_TRAILER || iklen > KV_TBL_MAX_IKEY || vlen > KV_MAX_VALUE)
		return tb_misuse(b, "key or value size out of range");
	kind = kv_ikey_kind(ik, iklen);
	if (kind != KV_IK_PUT && kind != KV_IK_DEL)
		return tb_misuse(b, "entry of unknown kind");
	if (b->entries && kv_ikey_cmp(b->last, b->lastlen, ik, iklen) >= 0)
		return tb_misuse(b, "internal keys not strictly increasing");
	if (kv_bbuild_add(&b->data, ik, iklen, val, vlen) || note_key(b, ik, iklen))
		return tb_fail(b, -ENOMEM, "adding an entry");
	if (block_full(b))
		return flush_data(b);
	return 0;
}

int kv_tb_add_rangedel(struct kv_table_builder *b, const void *start, size_t slen, const void *end,
		       size_t elen, uint64_t lsn)
{
	struct tomb *t;

	if (b->err)
		return b->err;
	if (slen > KV_MAX_KEY || elen > KV_MAX_KEY || !lsn || lsn > KV_LSN_MAX ||
	    kv_ukey_cmp(start, slen, end, elen) >= 0)
		return tb_misuse(b, "range tombstone: empty range, key too long or bad lsn");
	if (b->ntomb == b->tcap) {
		size_t ncap = b->tcap ? 2 * b->tcap : 16;
		struct tomb *nt = realloc(b->tombs, ncap * sizeof(*nt));

		if (!nt)
			return tb_fail(b, -ENOMEM, "adding a range tombstone");
		b->tombs = nt;
		b->tcap = ncap;
	}
	t = &b->tombs[b->ntomb];
	t->start = malloc(slen + 1);
	t->end = malloc(elen + 1);
	if (!t->start || !t->end) {
		free(t->start);
		free(t->end);
		return tb_fail(b, -ENOMEM, "adding a range tombstone");
	}
	memcpy(t->start, start, slen);
	memcpy(t->end, end, elen);
	t->slen = slen;
	t->elen = elen;
	t->lsn = lsn;
	b->ntomb++;
	return 0;
}

uint64_t kv_tb_size(const struct kv_table_builder *b)
{
	uint64_t n = b->off + b->olen;

	if (b->data.entries)
		n += kv_bbuild_size(&b->data) + KV_TBL_TRAILER;
	return n + kv_bbuild_size(&b->index) + b->nhash * (uint64_t)b->bloom_bits / 8 +
	       KV_TBL_FOOTER;
}

uint64_t kv_tb_entries(const struct kv_table_builder *b)
{
	return b->entries;
}

static void tb_free(struct kv_table_builder *b)
{
	for (size_t i = 0; i < b->ntomb; i++) {
		free(b->tombs[i].start);
		free(b->tombs[i].end);
	}
	free(b->tombs);
	free(b->hashes);
	free(b->first);
	free(b->out);
	kv_bbuild_free(&b->data);
	kv_bbuild_free(&b->index);
	free(b->path);
	free(b);
}

void kv_tb_abandon(struct kv_table_builder *b)
{
	if (!b)
		return;
	b->file->env->ops->close(b->file);
	b->env->ops->unlink(b->env, b->path);
	tb_free(b);
}

/* ---- finishing -------------------------------------------------------------------- */

static int write_filter(struct kv_table_builder *b, struct kv_bhandle *h)
{
	uint64_t nbits = (uint64_t)b->nhash * (uint64_t)b->bloom_bits;
	size_t nbytes;
	uint8_t *f;
	unsigned k = kv_bloom_k(b->bloom_bits);
	int err;

	nbits = nbits < 64 ? 64 : (nbits + 7) & ~7ull;
	nbytes = (size_t)(nbits / 8);
	f = calloc(1, nbytes + 1 + KV_TBL_TRAILER);
	if (!f)
		return tb_fail(b, -ENOMEM, "building the filter");
	for (size_t i = 0; i < b->nhash; i++)
		kv_bloom_set(f, nbits, k, b->hashes[i]);
	f[nbytes] = (uint8_t)k;
	err = out_block(b, f, nbytes + 1, KV_BLK_FILTER, h);
	free(f);
	return err;
}

/* Start ascending, then lsn descending, then end ascending. */
static int tomb_cmp(const void *a, const void *b)
{
	const struct tomb *x = a, *y = b;
	int c = kv_ukey_cmp(x->start, x->slen, y->start, y->slen);

	if (c)
		return c;
	if (x->lsn != y->lsn)
		return x->lsn > y->lsn ? -1 : 1;
	return kv_ukey_cmp(x->end, x->elen, y->end, y->elen);
}

/* The range-del block, built in the (finished) data block builder. */
static int write_rangedels(struct kv_table_builder *b, struct kv_bhandle *h)
{
	uint8_t v[KV_VARINT_MAX + KV_MAX_KEY], *p;

	if (b->ntomb)
		qsort(b->tombs, b->ntomb, sizeof(*b->tombs), tomb_cmp);
	kv_bbuild_reset(&b->data);
	for (size_t i = 0; i < b->ntomb; i++) {
		const struct tomb *t = &b->tombs[i];

		p = kv_varint_put(v, t->lsn);
		memcpy(p, t->end, t->elen);
		p += t->elen;
		if (kv_bbuild_add(&b->data, t->start, t->slen, v, (size_t)(p - v)))
			return tb_fail(b, -ENOMEM, "building the range-del block");
	}
	return out_bbuild(b, &b->data, KV_BLK_RANGEDEL, h);
}

static uint8_t *dup_key(const uint8_t *k, size_t len)
{
	uint8_t *d = malloc(len ? len : 1);

	if (d && len)
		memcpy(d, k, len);
	return d;
}

/*
 * The table's range and lsns: the entries', widened by the tombstones
 * (sorted already): [s, e) at lsn L spans (s, L, SEEK) .. (e, KV_LSN_MAX,
 * SEEK), the first internal key of e, so that a table ending with a
 * tombstone up to e does not overlap one that starts with e.
 */
static int table_range(struct kv_table_builder *b, struct kv_table_props *pr)
{
	uint8_t tlo[KV_TBL_MAX_IKEY], thi[KV_TBL_MAX_IKEY];
	const uint8_t *s = b->first, *l = b->last;
	size_t slen = b->firstlen, llen = b->lastlen;

	pr->min_lsn = b->min_lsn;
	pr->max_lsn = b->max_lsn;
	if (b->ntomb) {
		const struct tomb *lo = &b->tombs[0], *hi = lo;

		for (size_t i = 0; i < b->ntomb; i++) {
			const struct tomb *t = &b->tombs[i];

			if (kv_ukey_cmp(t->end, t->elen, hi->end, hi->elen) > 0)
				hi = t;
			if (!b->entries && !i)
				pr->min_lsn = pr->max_lsn = t->lsn;
			pr->min_lsn = t->lsn < pr->min_lsn ? t->lsn : pr->min_lsn;
			pr->max_lsn = t->lsn > pr->max_lsn ? t->lsn : pr->max_lsn;
		}
		kv_put_le64(tlo + lo->slen, kv_rdel_lo_trailer(lo->lsn));
		memcpy(tlo, lo->start, lo->slen);
		kv_put_le64(thi + hi->elen, kv_rdel_hi_trailer());
		memcpy(thi, hi->end, hi->elen);
		if (!b->entries || kv_ikey_cmp(tlo, lo->slen + 8, s, slen) < 0)
			s = tlo, slen = lo->slen + 8;
		if (!b->entries || kv_ikey_cmp(thi, hi->elen + 8, l, llen) > 0)
			l = thi, llen = hi->elen + 8;
	} else if (!b->entries) {
		return 0;
	}
	pr->smallest = dup_key(s, slen);
	pr->largest = dup_key(l, llen);
	if (!pr->smallest || !pr->largest)
		return tb_fail(b, -ENOMEM, "table range");
	pr->slen = slen;
	pr->llen = llen;
	return 0;
}

static int write_props(struct kv_table_builder *b, const struct kv_table_props *pr,
		       uint64_t data_bytes, struct kv_bhandle *h)
{
	struct kv_tprops tp = {
		.file_no = b->file_no,
		.entries = b->entries,
		.rangedels = b->ntomb,
		.data_bytes = data_bytes,
		.data_blocks = b->data_blocks,
		.user_keys = b->nhash,
		.min_lsn = pr->min_lsn,
		.max_lsn = pr->max_lsn,
		.smallest = pr->smallest,
		.largest = pr->largest,
		.slen = (uint32_t)pr->slen,
		.llen = (uint32_t)pr->llen,
	};
	size_t n = kv_tprops_size(&tp);
	uint8_t *p = malloc(n + KV_TBL_TRAILER);
	int err;

	if (!p)
		return tb_fail(b, -ENOMEM, "building the properties");
	kv_tprops_encode(p, &tp);
	err = out_block(b, p, n, KV_BLK_PROPS, h);
	free(p);
	return err;
}

static int write_footer(struct kv_table_builder *b, const struct kv_footer *f)
{
	if (grow(&b->out, &b->ocap, b->olen + KV_TBL_FOOTER))
		return tb_fail(b, -ENOMEM, "building the footer");
	kv_tbl_footer_encode(b->out + b->olen, f);
	b->olen += KV_TBL_FOOTER;
	return out_flush(b);
}

/* Everything after the data blocks, in file order. */
static int write_tail(struct kv_table_builder *b, struct kv_table_props *pr)
{
	struct kv_footer f = { .version = KV_FORMAT_VERSION };
	uint64_t data_bytes;
	int err;

	if ((err = flush_data(b)))
		return err;
	data_bytes = b->off + b->olen;
	if ((err = write_filter(b, &f.filter)) || (err = write_rangedels(b, &f.rangedel)) ||
	    (err = table_range(b, pr)) || (err = write_props(b, pr, data_bytes, &f.props)) ||
	    (err = out_bbuild(b, &b->index, KV_BLK_INDEX, &f.index)) || (err = write_footer(b, &f)))
		return err;
	pr->file_size = b->off;
	pr->entries = b->entries;
	pr->rangedels = b->ntomb;
	pr->data_bytes = data_bytes;
	err = b->file->env->ops->sync(b->file, 0);
	return err ? tb_fail(b, err, "fsync of the table") : 0;
}

int kv_tb_finish(struct kv_table_builder *b, struct kv_table_props *props)
{
	struct kv_table_props pr = { 0 };
	int err = b->err ? b->err : write_tail(b, &pr);
	int cerr = b->file->env->ops->close(b->file);

	if (!err && cerr)
		err = tb_fail(b, cerr, "closing the table");
	if (err) {
		b->env->ops->unlink(b->env, b->path);
		kv_table_props_free(&pr);
	} else {
		*props = pr;
	}
	tb_free(b);
	return err;
}
