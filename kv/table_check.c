/* SPDX-License-Identifier: MIT */
/*
 * table_check.c - the validating decoders of the table format (table_fmt.h),
 * shared with the reader, and kv_table_check(), which verifies every byte
 * of a table file.
 *
 * The decoders are pure functions of their arguments and trust no byte:
 * every varint, length and offset is checked against the bytes that remain
 * in its block before it is used, and a bad one returns -EUCLEAN (-EBADMSG
 * for a checksum) with the absolute file offset and a reason.
 */
#include "table_fmt.h"

#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* ---- format decoders ----------------------------------------------------------- */

int kv_tbl_unseal(const uint8_t *blk, size_t size, uint8_t type, uint64_t foff,
		  struct kv_tbl_err *e)
{
	const uint8_t *tr = blk + size;

	if (kv_get_le64(tr + 8) != XXH3_64bits_withSeed(blk, size + 8, 0)) {
		e->off = foff;
		e->why = "block checksum mismatch";
		return -EBADMSG;
	}
	if (tr[0] != type)
		return kv_tbl_bad(e, foff + size, "block of the wrong type");
	for (int i = 1; i < 8; i++)
		if (tr[i])
			return kv_tbl_bad(e, foff + size + (unsigned)i,
					  "reserved trailer byte not 0");
	return 0;
}

int kv_blk_init(struct kv_blk *b, const uint8_t *p, size_t size, uint64_t foff, uint32_t minklen,
		struct kv_tbl_err *e)
{
	uint32_t n, lim, prev = 0;

	if (size < 4 || size > KV_TBL_MAX_BLOCK)
		return kv_tbl_bad(e, foff, "block too short for its restart count");
	n = kv_get_le32(p + size - 4);
	if (n > (size - 4) / 4)
		return kv_tbl_bad(e, foff + size - 4, "restart count larger than the block");
	lim = (uint32_t)size - 4 - 4 * n;
	if (!n && lim)
		return kv_tbl_bad(e, foff + size - 4, "entries but no restart point");
	for (uint32_t i = 0; i < n; i++) {
		uint32_t r = kv_get_le32(p + lim + 4 * i);

		if ((i ? r <= prev : r != 0) || r >= lim)
			return kv_tbl_bad(e, foff + lim + 4 * i, "restart point out of order");
		prev = r;
	}
	*b = (struct kv_blk){ .p = p,
			      .foff = foff,
			      .size = (uint32_t)size,
			      .limit = lim,
			      .nrestarts = n,
			      .minklen = minklen };
	return 0;
}

static uint32_t blk_restart(const struct kv_blk *b, uint32_t i)
{
	return kv_get_le32(b->p + b->limit + 4 * i);
}

/* Decode the entry at @off after the entry whose key is in c->key. */
static int bcur_decode(struct kv_bcur *c, uint32_t off, struct kv_tbl_err *e)
{
	const struct kv_blk *b = c->b;
	const uint8_t *p = b->p + off, *end = b->p + b->limit;
	uint64_t shared, unshared, vlen;

	if (kv_varint_get(&p, end, &shared) || kv_varint_get(&p, end, &unshared) ||
	    kv_varint_get(&p, end, &vlen))
		return kv_tbl_bad(e, b->foff + off, "entry header runs past the entries");
	if (shared > c->klen)
		return kv_tbl_bad(e, b->foff + off, "shared prefix longer than the previous key");
	if (unshared > KV_TBL_MAX_IKEY - shared || shared + unshared < b->minklen)
		return kv_tbl_bad(e, b->foff + off, "key length out of range");
	if (unshared > (uint64_t)(end - p))
		return kv_tbl_bad(e, b->foff + off, "key runs past the entries");
	memcpy(c->key + shared, p, unshared);
	p += unshared;
	if (vlen > (uint64_t)(end - p))
		return kv_tbl_bad(e, b->foff + off, "value runs past the entries");
	c->off = off;
	c->shared = (uint32_t)shared;
	c->klen = (uint32_t)(shared + unshared);
	c->val = p;
	c->vlen = (uint32_t)vlen;
	c->next = (uint32_t)(p + vlen - b->p);
	return 1;
}

int kv_bcur_first(struct kv_bcur *c, const struct kv_blk *b, struct kv_tbl_err *e)
{
	c->b = b;
	c->klen = 0;
	c->next = 0;
	return b->limit ? bcur_decode(c, 0, e) : 0;
}

int kv_bcur_next(struct kv_bcur *c, struct kv_tbl_err *e)
{
	if (c->next >= c->b->limit)
		return 0;
	return bcur_decode(c, c->next, e);
}

/* The key of the restart entry at @off, left in the block (its shared is
 * 0): the checks of bcur_decode without the copy. 0 or -EUCLEAN. */
static int restart_key(const struct kv_blk *b, uint32_t off, const uint8_t **key, size_t *klen,
		       struct kv_tbl_err *e)
{
	const uint8_t *p = b->p + off, *end = b->p + b->limit;
	uint64_t shared, unshared, vlen;

	if (kv_varint_get(&p, end, &shared) || kv_varint_get(&p, end, &unshared) ||
	    kv_varint_get(&p, end, &vlen))
		return kv_tbl_bad(e, b->foff + off, "entry header runs past the entries");
	if (shared)
		return kv_tbl_bad(e, b->foff + off, "shared prefix longer than the previous key");
	if (unshared > KV_TBL_MAX_IKEY || unshared < b->minklen)
		return kv_tbl_bad(e, b->foff + off, "key length out of range");
	if (unshared > (uint64_t)(end - p))
		return kv_tbl_bad(e, b->foff + off, "key runs past the entries");
	if (vlen > (uint64_t)(end - p) - unshared)
		return kv_tbl_bad(e, b->foff + off, "value runs past the entries");
	*key = p;
	*klen = (size_t)unshared;
	return 0;
}

int kv_bcur_seek(struct kv_bcur *c, const struct kv_blk *b, const uint8_t *ik, size_t iklen,
		 struct kv_tbl_err *e)
{
	uint32_t lo = 0, hi;
	int r;

	assert(b->minklen >= KV_IKEY_TRAILER && iklen >= KV_IKEY_TRAILER);
	c->b = b;
	if (!b->nrestarts)
		return 0;
	/* the last restart point whose key is < ik (or the first) */
	hi = b->nrestarts - 1;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo + 1) / 2;
		const uint8_t *k;
		size_t klen;

		r = restart_key(b, blk_restart(b, mid), &k, &klen, e);
		if (r < 0)
			return r;
		if (kv_ikey_cmp(k, klen, ik, iklen) < 0)
			lo = mid;
		else
			hi = mid - 1;
	}
	c->klen = 0;
	r = bcur_decode(c, blk_restart(b, lo), e);
	while (r == 1 && kv_ikey_cmp(c->key, c->klen, ik, iklen) < 0)
		r = kv_bcur_next(c, e);
	return r;
}

/* Check that the handles tile [filter.off, @fstart) in file order. */
static int footer_tiles(const struct kv_footer *f, uint64_t fstart, struct kv_tbl_err *e)
{
	const struct kv_bhandle *h[4] = { &f->filter, &f->rangedel, &f->props, &f->index };
	uint64_t pos = f->filter.off;

	for (int i = 0; i < 4; i++) {
		if (h[i]->off != pos || pos > fstart || h[i]->size > KV_TBL_MAX_BLOCK ||
		    h[i]->size + KV_TBL_TRAILER > fstart - pos)
			return kv_tbl_bad(e, fstart + 8 + 16 * (unsigned)i,
					  "block handle outside the file or out of order");
		pos += h[i]->size + KV_TBL_TRAILER;
	}
	if (pos != fstart)
		return kv_tbl_bad(e, fstart + 56, "index block does not end at the footer");
	return 0;
}

int kv_tbl_footer_decode(const uint8_t *tail, size_t tlen, uint64_t fsize, struct kv_footer *f,
			 struct kv_tbl_err *e)
{
	const uint8_t *end = tail + tlen, *fp;
	uint64_t fstart;
	uint32_t fsz;

	if (fsize < KV_TBL_FOOTER || tlen < KV_TBL_FOOTER)
		return kv_tbl_bad(e, 0, "file too short to hold a table footer");
	if (kv_get_le64(end - 8) != KV_TABLE_MAGIC)
		return kv_tbl_bad(e, fsize - 8, "bad magic: not a table");
	fsz = kv_get_le32(end - 16);
	if (fsz < KV_TBL_FOOTER || fsz > tlen)
		return kv_tbl_bad(e, fsize - 16, "impossible footer size");
	fstart = fsize - fsz;
	fp = end - fsz;
	if (kv_get_le64(fp) != XXH3_64bits_withSeed(fp + 8, fsz - 8, 0)) {
		/* with an unexpected size, the size field is the likely culprit */
		e->off = fsz == KV_TBL_FOOTER ? fstart : fsize - 16;
		e->why = "footer checksum mismatch";
		return -EBADMSG;
	}
	f->version = kv_get_le32(end - 12);
	if (f->version > KV_FORMAT_VERSION) {
		e->off = fsize - 12;
		e->why = "table of a newer format version";
		return -EPROTONOSUPPORT;
	}
	if (f->version < KV_TABLE_MIN_VERSION || fsz != KV_TBL_FOOTER)
		return kv_tbl_bad(e, fsize - 16, "bad footer size or version");
	f->filter = (struct kv_bhandle){ kv_get_le64(fp + 8), kv_get_le64(fp + 16) };
	f->rangedel = (struct kv_bhandle){ kv_get_le64(fp + 24), kv_get_le64(fp + 32) };
	f->props = (struct kv_bhandle){ kv_get_le64(fp + 40), kv_get_le64(fp + 48) };
	f->index = (struct kv_bhandle){ kv_get_le64(fp + 56), kv_get_le64(fp + 64) };
	return footer_tiles(f, fstart, e);
}

int kv_tprops_decode(const uint8_t *in, size_t size, uint64_t foff, struct kv_tprops *p,
		     struct kv_tbl_err *e)
{
	uint64_t v[8];
	int bad_len;

	if (size < KV_TBL_PROPS_FIXED)
		return kv_tbl_bad(e, foff, "properties block too short");
	for (int i = 0; i < 8; i++)
		v[i] = kv_get_le64(in + 8 * i);
	*p = (struct kv_tprops){ .file_no = v[0],
				 .entries = v[1],
				 .rangedels = v[2],
				 .data_bytes = v[3],
				 .data_blocks = v[4],
				 .user_keys = v[5],
				 .min_lsn = v[6],
				 .max_lsn = v[7] };
	p->slen = kv_get_le32(in + 64);
	p->llen = kv_get_le32(in + 68);
	if ((uint64_t)p->slen + p->llen != size - KV_TBL_PROPS_FIXED)
		return kv_tbl_bad(e, foff + 64, "key lengths do not fill the properties block");
	p->smallest = in + KV_TBL_PROPS_FIXED;
	p->largest = p->smallest + p->slen;
	if (!p->entries && !p->rangedels)
		bad_len = p->slen || p->llen; /* an empty table has no range */
	else
		bad_len = p->slen < KV_IKEY_TRAILER || p->llen < KV_IKEY_TRAILER ||
			  p->slen > KV_TBL_MAX_IKEY || p->llen > KV_TBL_MAX_IKEY;
	if (bad_len)
		return kv_tbl_bad(e, foff + 64, "smallest or largest key of a bad length");
	if (p->slen && kv_ikey_cmp(p->smallest, p->slen, p->largest, p->llen) > 0)
		return kv_tbl_bad(e, foff + KV_TBL_PROPS_FIXED, "smallest key above the largest");
	if (p->min_lsn > p->max_lsn || p->max_lsn > KV_LSN_MAX)
		return kv_tbl_bad(e, foff + 48, "bad lsn range");
	if (p->user_keys > p->entries || p->data_blocks > p->entries ||
	    (p->entries && !p->data_blocks))
		return kv_tbl_bad(e, foff + 8, "inconsistent entry counts");
	return 0;
}

uint64_t kv_bloom_hash(const void *ukey, size_t len)
{
	return XXH3_64bits_withSeed(ukey, len, 0);
}

unsigned kv_bloom_k(int bits_per_key)
{
	int k = (bits_per_key * 69 + 50) / 100; /* round(bits * 0.69) */

	return k < 1 ? 1 : k > (int)KV_TBL_MAX_K ? KV_TBL_MAX_K : (unsigned)k;
}

int kv_bloom_maybe(const uint8_t *bits, uint64_t nbits, unsigned k, uint64_t h)
{
	uint64_t d = kv_bloom_delta(h);

	for (unsigned i = 0; i < k; i++, h += d) {
		uint64_t pos = h % nbits;

		if (!(bits[pos >> 3] & (1u << (pos & 7))))
			return 0;
	}
	return 1;
}

int kv_rdel_value(const uint8_t *v, size_t vlen, uint64_t *lsn, const uint8_t **end, size_t *elen)
{
	const uint8_t *p = v;

	if (kv_varint_get(&p, v + vlen, lsn) || !*lsn || *lsn > KV_LSN_MAX)
		return -EUCLEAN;
	*end = p;
	*elen = vlen - (size_t)(p - v);
	return *elen > KV_MAX_KEY ? -EUCLEAN : 0;
}

/* ---- kv_table_check ---------------------------------------------------------------- */

/* What the checker knows and what it has seen so far. */
struct chk {
	const char *path;
	kv_check_fn report;
	void *arg;
	int problems;
	const uint8_t *file;
	uint64_t size, file_no;
	struct kv_footer f;
	struct kv_tprops tp;
	int have_props, data_whole; /* data_whole: every data block was read */
	const uint8_t *filter;
	uint64_t nbits;
	unsigned k;
	uint64_t entries, user_keys, data_blocks, rangedels, min_lsn, max_lsn;
	uint8_t lo[KV_TBL_MAX_IKEY], hi[KV_TBL_MAX_IKEY]; /* the range seen */
	size_t lolen, hilen;
	uint8_t prev[KV_TBL_MAX_IKEY]; /* the last data key */
	size_t prevlen;
};

static __attribute__((format(printf, 3, 4))) void problem(struct chk *c, uint64_t off,
							  const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->report)
		c->report(c->arg, c->path, off, msg);
	c->problems++;
}

static void problem_e(struct chk *c, const struct kv_tbl_err *e)
{
	problem(c, e->off, "%s", e->why);
}

/* Widen the range seen by @ik and the lsns by @lsn. */
static void saw(struct chk *c, const uint8_t *ik, size_t iklen, uint64_t lsn)
{
	int first = !c->lolen;

	if (first || kv_ikey_cmp(ik, iklen, c->lo, c->lolen) < 0)
		memcpy(c->lo, ik, iklen), c->lolen = iklen;
	if (first || kv_ikey_cmp(ik, iklen, c->hi, c->hilen) > 0)
		memcpy(c->hi, ik, iklen), c->hilen = iklen;
	if (first || lsn < c->min_lsn)
		c->min_lsn = lsn;
	if (first || lsn > c->max_lsn)
		c->max_lsn = lsn;
}

/* The contents of the block at @h if its trailer is good, else NULL. */
static const uint8_t *chk_block(struct chk *c, const struct kv_bhandle *h, uint8_t type)
{
	struct kv_tbl_err e;

	if (kv_tbl_unseal(c->file + h->off, h->size, type, h->off, &e)) {
		problem_e(c, &e);
		return NULL;
	}
	return c->file + h->off;
}

static int chk_footer(struct chk *c)
{
	size_t tlen = c->size < KV_TBL_FOOTER_MAX ? (size_t)c->size : KV_TBL_FOOTER_MAX;
	const uint8_t *fp;
	struct kv_tbl_err e;
	int err = kv_tbl_footer_decode(c->file + c->size - tlen, tlen, c->size, &c->f, &e);

	if (err != -EBADMSG) {
		if (err)
			problem_e(c, &e);
		return err;
	}
	/* A damaged footer: go on only if its handles still tile the file. */
	problem_e(c, &e);
	fp = c->file + c->size - KV_TBL_FOOTER;
	c->f.filter = (struct kv_bhandle){ kv_get_le64(fp + 8), kv_get_le64(fp + 16) };
	c->f.rangedel = (struct kv_bhandle){ kv_get_le64(fp + 24), kv_get_le64(fp + 32) };
	c->f.props = (struct kv_bhandle){ kv_get_le64(fp + 40), kv_get_le64(fp + 48) };
	c->f.index = (struct kv_bhandle){ kv_get_le64(fp + 56), kv_get_le64(fp + 64) };
	if (footer_tiles(&c->f, c->size - KV_TBL_FOOTER, &e)) {
		problem_e(c, &e);
		return err;
	}
	return 0;
}

static void chk_props(struct chk *c)
{
	const uint8_t *p = chk_block(c, &c->f.props, KV_BLK_PROPS);
	struct kv_tbl_err e;

	if (!p)
		return;
	if (kv_tprops_decode(p, c->f.props.size, c->f.props.off, &c->tp, &e)) {
		problem_e(c, &e);
		return;
	}
	c->have_props = 1;
	if (c->tp.file_no != c->file_no)
		problem(c, c->f.props.off, "table numbered %" PRIu64 ", expected %" PRIu64,
			c->tp.file_no, c->file_no);
	if (c->tp.data_bytes != c->f.filter.off)
		problem(c, c->f.props.off + 24,
			"data_bytes %" PRIu64 " but the filter is at %" PRIu64, c->tp.data_bytes,
			c->f.filter.off);
}

static void chk_filter(struct chk *c)
{
	const uint8_t *p = chk_block(c, &c->f.filter, KV_BLK_FILTER);
	uint64_t n = c->f.filter.size;

	if (!p)
		return;
	if (n < 2 || p[n - 1] < 1 || p[n - 1] > KV_TBL_MAX_K) {
		problem(c, c->f.filter.off + (n ? n - 1 : 0), "bad filter size or probe count");
		return;
	}
	c->filter = p;
	c->nbits = (n - 1) * 8;
	c->k = p[n - 1];
}

static void chk_tomb(struct chk *c, const struct kv_bcur *cur, uint8_t *prev, size_t *prevlen,
		     uint64_t *prevlsn)
{
	const uint64_t off = cur->b->foff + cur->off;
	uint8_t ik[KV_TBL_MAX_IKEY];
	const uint8_t *end;
	size_t elen;
	uint64_t lsn;
	int cmp;

	if (cur->klen > KV_MAX_KEY || kv_rdel_value(cur->val, cur->vlen, &lsn, &end, &elen)) {
		problem(c, off, "bad range tombstone");
		return;
	}
	if (kv_ukey_cmp(cur->key, cur->klen, end, elen) >= 0)
		problem(c, off, "range tombstone with an empty range");
	cmp = kv_ukey_cmp(prev, *prevlen, cur->key, cur->klen);
	if (c->rangedels && (cmp > 0 || (!cmp && *prevlsn < lsn)))
		problem(c, off, "range tombstones out of order");
	memcpy(prev, cur->key, cur->klen);
	*prevlen = cur->klen;
	*prevlsn = lsn;
	c->rangedels++;
	kv_ikey_make(ik, cur->key, cur->klen, lsn, KV_IK_SEEK);
	saw(c, ik, cur->klen + KV_IKEY_TRAILER, lsn);
	memcpy(ik, end, elen);
	kv_put_le64(ik + elen, kv_rdel_hi_trailer());
	saw(c, ik, elen + KV_IKEY_TRAILER, lsn);
}

/* 1 if every tombstone could be read. */
static int chk_rangedels(struct chk *c)
{
	const uint8_t *p = chk_block(c, &c->f.rangedel, KV_BLK_RANGEDEL);
	uint8_t prev[KV_MAX_KEY];
	size_t prevlen = 0;
	uint64_t prevlsn = 0;
	struct kv_tbl_err e;
	struct kv_bcur cur;
	struct kv_blk b;
	int r;

	if (!p)
		return 0;
	if (kv_blk_init(&b, p, c->f.rangedel.size, c->f.rangedel.off, 0, &e)) {
		problem_e(c, &e);
		return 0;
	}
	for (r = kv_bcur_first(&cur, &b, &e); r == 1; r = kv_bcur_next(&cur, &e))
		chk_tomb(c, &cur, prev, &prevlen, &prevlsn);
	if (r < 0)
		problem_e(c, &e);
	return r == 0;
}

/* Entry @cur of a data block; *j is the next restart point expected. */
static void chk_entry(struct chk *c, const struct kv_bcur *cur, uint32_t *j)
{
	const struct kv_blk *b = cur->b;
	const uint64_t off = b->foff + cur->off;
	size_t ulen = kv_ikey_ulen(cur->klen);
	unsigned kind = kv_ikey_kind(cur->key, cur->klen);

	for (; *j < b->nrestarts && blk_restart(b, *j) < cur->off; (*j)++)
		problem(c, b->foff + b->limit + 4 * *j, "restart point not at an entry");
	if (*j < b->nrestarts && blk_restart(b, *j) == cur->off) {
		if (cur->shared)
			problem(c, off, "entry at a restart point shares a prefix");
		(*j)++;
	}
	if (kind != KV_IK_PUT && kind != KV_IK_DEL)
		problem(c, off, "entry of unknown kind %u", kind);
	if (c->entries && kv_ikey_cmp(c->prev, c->prevlen, cur->key, cur->klen) >= 0)
		problem(c, off, "internal keys out of order");
	if (!c->entries || kv_ukey_cmp(c->prev, kv_ikey_ulen(c->prevlen), cur->key, ulen)) {
		c->user_keys++;
		if (c->filter &&
		    !kv_bloom_maybe(c->filter, c->nbits, c->k, kv_bloom_hash(cur->key, ulen)))
			problem(c, off, "the filter says a key of the table is absent");
	}
	c->entries++;
	saw(c, cur->key, cur->klen, kv_ikey_lsn(cur->key, cur->klen));
	memcpy(c->prev, cur->key, cur->klen);
	c->prevlen = cur->klen;
}

/* Data block @h, indexed under @ik by the index entry at @ioff. */
static void chk_data(struct chk *c, const struct kv_bhandle *h, const uint8_t *ik, size_t iklen,
		     uint64_t ioff)
{
	const uint8_t *p = chk_block(c, h, KV_BLK_DATA);
	struct kv_tbl_err e;
	struct kv_bcur cur;
	struct kv_blk b;
	uint32_t j = 0;
	int r;

	if (!p || kv_blk_init(&b, p, h->size, h->off, KV_IKEY_TRAILER, &e)) {
		if (p)
			problem_e(c, &e);
		c->data_whole = 0;
		return;
	}
	c->data_blocks++;
	for (r = kv_bcur_first(&cur, &b, &e); r == 1; r = kv_bcur_next(&cur, &e))
		chk_entry(c, &cur, &j);
	if (r < 0) {
		problem_e(c, &e);
		c->data_whole = 0;
		return;
	}
	if (!b.nrestarts)
		problem(c, h->off, "empty data block");
	else if (cur.klen != iklen || memcmp(cur.key, ik, iklen))
		problem(c, ioff, "index key is not the last key of its block at %" PRIu64, h->off);
}

/* One index entry: its handle must continue the data region at *pos. */
static int chk_index_entry(struct chk *c, const struct kv_bcur *cur, uint64_t *pos)
{
	const uint64_t off = cur->b->foff + cur->off;
	const uint8_t *v = cur->val, *vend = cur->val + cur->vlen;
	struct kv_bhandle h;

	if (kv_varint_get(&v, vend, &h.off) || kv_varint_get(&v, vend, &h.size) || v != vend) {
		problem(c, off, "bad block handle in the index");
		return -EUCLEAN;
	}
	if (h.off > c->f.filter.off || h.size > KV_TBL_MAX_BLOCK ||
	    h.size + KV_TBL_TRAILER > c->f.filter.off - h.off) {
		problem(c, off,
			"data block handle [%" PRIu64 ", +%" PRIu64 ") outside the data region",
			h.off, h.size);
		return -EUCLEAN;
	}
	if (h.off != *pos)
		problem(c, off,
			"data block at %" PRIu64 ", expected at %" PRIu64 " (gap or overlap)",
			h.off, *pos);
	chk_data(c, &h, cur->key, cur->klen, off);
	*pos = h.off + h.size + KV_TBL_TRAILER;
	return 0;
}

static void chk_index(struct chk *c)
{
	const uint8_t *p = chk_block(c, &c->f.index, KV_BLK_INDEX);
	uint8_t prev[KV_TBL_MAX_IKEY];
	size_t prevlen = 0, n = 0;
	uint64_t pos = 0;
	struct kv_tbl_err e;
	struct kv_bcur cur;
	struct kv_blk b;
	int r;

	if (!p || kv_blk_init(&b, p, c->f.index.size, c->f.index.off, KV_IKEY_TRAILER, &e)) {
		if (p)
			problem_e(c, &e);
		c->data_whole = 0;
		return;
	}
	for (r = kv_bcur_first(&cur, &b, &e); r == 1; r = kv_bcur_next(&cur, &e), n++) {
		if (n && kv_ikey_cmp(prev, prevlen, cur.key, cur.klen) >= 0)
			problem(c, b.foff + cur.off, "index keys out of order");
		memcpy(prev, cur.key, cur.klen);
		prevlen = cur.klen;
		if (chk_index_entry(c, &cur, &pos)) {
			c->data_whole = 0;
			return;
		}
	}
	if (r < 0) {
		problem_e(c, &e);
		c->data_whole = 0;
	} else if (pos != c->f.filter.off) {
		problem(c, c->f.index.off, "the index covers %" PRIu64 " of %" PRIu64 " data bytes",
			pos, c->f.filter.off);
	}
}

static void chk_count(struct chk *c, uint64_t off, const char *what, uint64_t said, uint64_t saw)
{
	if (said != saw)
		problem(c, off, "properties say %" PRIu64 " %s, the table has %" PRIu64, said, what,
			saw);
}

/* The properties against what the walk saw (only what it saw whole). */
static void chk_totals(struct chk *c, int rd_whole)
{
	const struct kv_tprops *t = &c->tp;
	const uint64_t po = c->f.props.off;

	if (!c->have_props)
		return;
	if (rd_whole)
		chk_count(c, po + 16, "range tombstones", t->rangedels, c->rangedels);
	if (!c->data_whole)
		return;
	chk_count(c, po + 8, "entries", t->entries, c->entries);
	chk_count(c, po + 32, "data blocks", t->data_blocks, c->data_blocks);
	chk_count(c, po + 40, "user keys", t->user_keys, c->user_keys);
	if (!rd_whole)
		return;
	if (t->min_lsn != c->min_lsn || t->max_lsn != c->max_lsn)
		problem(c, po + 48,
			"properties say lsns %" PRIu64 "..%" PRIu64 ", the table has %" PRIu64
			"..%" PRIu64,
			t->min_lsn, t->max_lsn, c->min_lsn, c->max_lsn);
	if (t->slen != c->lolen || memcmp(t->smallest, c->lo, c->lolen) || t->llen != c->hilen ||
	    memcmp(t->largest, c->hi, c->hilen))
		problem(c, po + KV_TBL_PROPS_FIXED, "smallest or largest key is not the table's");
}

static int read_whole(struct kv_env *env, const char *path, uint8_t **buf, uint64_t *size)
{
	struct kv_file *f;
	int err = env->ops->open(env, path, O_RDONLY, 0, &f);

	if (err)
		return err;
	err = f->env->ops->size(f, size);
	if (!err && !(*buf = malloc(*size ? *size : 1)))
		err = -ENOMEM;
	if (!err)
		err = kv_env_read_all(f, *buf, *size, 0);
	f->env->ops->close(f);
	return err;
}

int kv_table_check(struct kv_env *env, const char *path, uint64_t file_no, kv_check_fn report,
		   void *arg)
{
	struct chk *c = calloc(1, sizeof(*c));
	uint8_t *buf = NULL;
	uint64_t size = 0;
	int err = c ? read_whole(env, path, &buf, &size) : -ENOMEM;

	if (err) {
		free(buf);
		free(c);
		return err;
	}
	*c = (struct chk){ .path = path,
			   .report = report,
			   .arg = arg,
			   .file = buf,
			   .size = size,
			   .file_no = file_no,
			   .data_whole = 1 };
	if (!chk_footer(c)) {
		int rd_whole;

		chk_props(c);
		chk_filter(c);
		rd_whole = chk_rangedels(c);
		chk_index(c);
		chk_totals(c, rd_whole);
	}
	err = c->problems;
	free(buf);
	free(c);
	return err;
}
