/* SPDX-License-Identifier: MIT */
/*
 * table_read.c - the decoders of the table format (table_fmt.h) and the
 * reader: open, point lookups and iterators over one sorted table.
 *
 * At open the footer, properties, filter, range-del and index blocks are
 * read once, their checksums verified and their contents validated; the
 * index is decoded into an array (tidx) and the range tombstones into a
 * kv_rdset. Data blocks are read on use: through the block cache, keyed by
 * (file number, block offset) and charged their size, or without a cache
 * into a private buffer freed after use. A data block's checksum and
 * restart array are verified when it is read from the file, so a block
 * found in the cache is already known good.
 *
 * The file. Without a file cache the table opens its file at open and keeps
 * it to the end. With one (tcache.h) it owns a slot there and pins the file
 * for each read from it (t_pread): at open, for the metadata; after that,
 * only for a data block missing from the block cache, so a block cache hit
 * never touches the file cache. No fd is held between reads, not even by an
 * iterator positioned in a block (the block itself is pinned, not the fd).
 * A file closed by the cache is reopened on the next read; a failed reopen
 * is a read error like any other: logged with the path, returned.
 *
 * Invariants:
 *   1. struct kv_table is immutable after kv_table_open() returns: any
 *      number of threads may call get/iter on it at once with no lock (the
 *      block cache has its own shard locks, the file cache its mutex; the
 *      env allows concurrent pread on one file).
 *   2. Index handles tile the data region [0, filter offset) in order, and
 *      index keys strictly increase: checked at open, so a handle from the
 *      index never points outside the file.
 *   3. No byte from the file is trusted: every varint, length and offset is
 *      checked against the bytes that remain in its block before use
 *      (kv_bcur_*), and a bad one is an error naming file and offset
 *      (logged through the options' log), never a crash.
 *   4. A block handed to a caller (get's callback, an iterator's val) stays
 *      pinned (cache handle or private buffer) until the next call.
 */
#include "table_fmt.h"

#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

int kv_table_parse_name(const char *name, uint64_t *file_no)
{
	static const char prefix[] = "tbl-", suffix[] = ".sst";
	const size_t plen = sizeof(prefix) - 1, digits = 16;
	uint64_t n = 0;

	if (strncmp(name, prefix, plen) != 0)
		return -EINVAL;
	for (size_t i = 0; i < digits; i++) {
		char c = name[plen + i];

		if (c >= '0' && c <= '9')
			n = n << 4 | (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			n = n << 4 | (uint64_t)(c - 'a' + 10);
		else
			return -EINVAL; /* also the NUL of a short name */
	}
	if (strcmp(name + plen + digits, suffix) != 0)
		return -EINVAL;
	*file_no = n;
	return 0;
}

void kv_table_props_free(struct kv_table_props *p)
{
	free(p->smallest);
	free(p->largest);
	p->smallest = p->largest = NULL;
	p->slen = p->llen = 0;
}

/* ---- the open table ---------------------------------------------------------------- */

/* One index entry: data block i. */
struct tidx {
	uint64_t off;  /* of the contents */
	uint32_t size; /* contents bytes */
	uint32_t klen;
	size_t koff; /* its key (the block's last) in t->idx_keys */
};

struct kv_table {
	struct kv_env *env;	      /* [immutable] */
	const struct kv_options *log; /* [immutable] must outlive the table */
	char *path;		      /* [immutable] */
	struct kv_file *file;	      /* [immutable] without a file cache: open for the
				       * table's life; concurrent preads are allowed */
	struct kv_tcache *files;      /* [immutable] NULL: no file cache; it locks itself */
	struct kv_tfile *slot;	      /* [immutable] the file's slot there (its state:
				       * [the file cache's mutex], tcache.c) */
	uint64_t file_no;	      /* [immutable] */
	struct kv_cache *cache;	      /* [immutable] NULL: no cache; it locks itself */
	struct kv_table_props props;  /* [immutable] */
	uint64_t data_end;	      /* [immutable] the filter's offset */
	uint8_t *filter;	      /* [immutable] the filter block */
	uint64_t nbits;		      /* [immutable] bits in the filter */
	unsigned k;		      /* [immutable] probes per key */
	struct kv_rdset *rd;	      /* [immutable] */
	struct tidx *idx;	      /* [immutable] nidx entries */
	size_t nidx;		      /* [immutable] = data blocks */
	uint64_t data_blocks;	      /* [immutable] from the properties */
	uint8_t *idx_keys;	      /* [immutable] */
};

/* A data block as read, and as held in the cache. */
struct tblock {
	struct kv_blk blk;
	uint8_t buf[]; /* contents and trailer */
};

/* A pinned data block: a cache handle, or a private buffer when h is NULL. */
struct bref {
	struct tblock *b;
	struct kv_cache_handle *h;
	int nofill; /* a block missing from the cache is not added (bulk reads) */
};

static int t_bad(const struct kv_table *t, int err, const struct kv_tbl_err *e)
{
	kv_log_opt(t->log, KV_LOG_ERROR, "%s: offset %" PRIu64 ": %s", t->path, e->off, e->why);
	return err;
}

/* The table's file for one read: its own, or pinned in the file cache
 * (reopened if the cache had closed it). */
static int file_pin(const struct kv_table *t, struct kv_file **f)
{
	if (!t->files) {
		*f = t->file;
		return 0;
	}
	return kv_tcache_pin(t->files, t->slot, f);
}

static void file_unpin(const struct kv_table *t)
{
	if (t->files)
		kv_tcache_unpin(t->files, t->slot);
}

/* Read exactly @len bytes at @off. Errors other than -ENODATA (the file
 * ends first: the caller says what that means) are logged here. */
static int t_pread(const struct kv_table *t, void *buf, size_t len, uint64_t off)
{
	struct kv_file *f;
	int err = file_pin(t, &f);

	if (err) {
		kv_log_opt(t->log, KV_LOG_ERROR,
			   "%s: offset %" PRIu64 ": cannot reopen the table: error %d", t->path,
			   off, err);
		return err == -ENODATA ? -EIO : err; /* not "the file ends" */
	}
	err = kv_env_read_all(f, buf, len, off);
	file_unpin(t);
	if (err && err != -ENODATA)
		kv_log_opt(t->log, KV_LOG_ERROR, "%s: offset %" PRIu64 ": read error %d", t->path,
			   off, err);
	return err;
}

/* Read the block at @h (contents and trailer) into a fresh buffer with
 * @room bytes before it, and verify its trailer. */
static int read_block(const struct kv_table *t, const struct kv_bhandle *h, uint8_t type,
		      size_t room, uint8_t **out)
{
	struct kv_tbl_err e;
	uint8_t *p = malloc(room + h->size + KV_TBL_TRAILER);
	int err;

	if (!p)
		return -ENOMEM;
	err = t_pread(t, p + room, h->size + KV_TBL_TRAILER, h->off);
	if (err == -ENODATA) {
		e = (struct kv_tbl_err){ h->off, "block cut short: file truncated" };
		err = t_bad(t, -EUCLEAN, &e);
	} else if (!err && (err = kv_tbl_unseal(p + room, h->size, type, h->off, &e))) {
		t_bad(t, err, &e);
	}
	if (err) {
		free(p);
		return err;
	}
	*out = p;
	return 0;
}

static const uint8_t *idx_key(const struct kv_table *t, size_t i)
{
	return t->idx_keys + t->idx[i].koff;
}

static int read_data(const struct kv_table *t, size_t i, struct tblock **out)
{
	const struct kv_bhandle h = { t->idx[i].off, t->idx[i].size };
	struct kv_tbl_err e;
	struct tblock *b;
	uint8_t *raw;
	int err = read_block(t, &h, KV_BLK_DATA, sizeof(*b), &raw);

	if (err)
		return err;
	b = (struct tblock *)raw;
	err = kv_blk_init(&b->blk, b->buf, h.size, h.off, KV_IKEY_TRAILER, &e);
	if (!err && !b->blk.nrestarts)
		err = kv_tbl_bad(&e, h.off, "empty data block");
	if (err) {
		free(b);
		return t_bad(t, err, &e);
	}
	*out = b;
	return 0;
}

static int get_block(struct kv_table *t, size_t i, struct bref *ref)
{
	struct tblock *b = NULL;
	int err;

	if (t->cache) {
		ref->h = kv_cache_lookup(t->cache, t->file_no, t->idx[i].off);
		if (ref->h) {
			ref->b = kv_cache_value(ref->h);
			return 0;
		}
	}
	err = read_data(t, i, &b);
	if (err)
		return err;
	ref->h = NULL;
	ref->b = b;
	if (!t->cache || ref->nofill)
		return 0;
	ref->h = kv_cache_insert(t->cache, t->file_no, t->idx[i].off, b,
				 sizeof(*b) + t->idx[i].size + KV_TBL_TRAILER, free);
	if (!ref->h) {
		ref->b = NULL; /* the cache freed it */
		return -ENOMEM;
	}
	ref->b = kv_cache_value(ref->h);
	return 0;
}

static void put_block(struct kv_table *t, struct bref *ref)
{
	if (ref->h)
		kv_cache_release(t->cache, ref->h);
	else
		free(ref->b);
	ref->b = NULL;
	ref->h = NULL;
}

/* The first data block whose last key is >= @ik; t->nidx if none. */
static size_t idx_seek(const struct kv_table *t, const uint8_t *ik, size_t iklen)
{
	size_t lo = 0, hi = t->nidx;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (kv_ikey_cmp(idx_key(t, mid), t->idx[mid].klen, ik, iklen) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* ---- open ---------------------------------------------------------------------------- */

static int open_footer(struct kv_table *t, uint64_t fsize, struct kv_footer *f)
{
	size_t tlen = fsize < KV_TBL_FOOTER_MAX ? (size_t)fsize : KV_TBL_FOOTER_MAX;
	uint8_t tail[KV_TBL_FOOTER_MAX];
	struct kv_tbl_err e;
	int err = t_pread(t, tail, tlen, fsize - tlen);

	if (err == -ENODATA) {
		kv_log_opt(t->log, KV_LOG_ERROR, "%s: offset %" PRIu64 ": read error %d", t->path,
			   fsize - tlen, err);
		return -EUCLEAN;
	}
	if (err)
		return err;
	err = kv_tbl_footer_decode(tail, tlen, fsize, f, &e);
	return err ? t_bad(t, err, &e) : 0;
}

static int open_props(struct kv_table *t, const struct kv_footer *f)
{
	struct kv_table_props *pr = &t->props;
	struct kv_tbl_err e;
	struct kv_tprops tp;
	uint8_t *p;
	int err = read_block(t, &f->props, KV_BLK_PROPS, 0, &p);

	if (err)
		return err;
	err = kv_tprops_decode(p, f->props.size, f->props.off, &tp, &e);
	if (!err && tp.file_no != t->file_no)
		err = kv_tbl_bad(&e, f->props.off, "table of another file number");
	if (!err && tp.data_bytes != f->filter.off)
		err = kv_tbl_bad(&e, f->props.off + 24, "data_bytes is not the filter's offset");
	if (err) {
		free(p);
		return t_bad(t, err, &e);
	}
	t->data_blocks = tp.data_blocks;
	pr->entries = tp.entries;
	pr->rangedels = tp.rangedels;
	pr->data_bytes = tp.data_bytes;
	pr->min_lsn = tp.min_lsn;
	pr->max_lsn = tp.max_lsn;
	pr->slen = tp.slen;
	pr->llen = tp.llen;
	if (tp.slen) {
		pr->smallest = malloc(tp.slen);
		pr->largest = malloc(tp.llen);
		if (!pr->smallest || !pr->largest) {
			free(p);
			return -ENOMEM;
		}
		memcpy(pr->smallest, tp.smallest, tp.slen);
		memcpy(pr->largest, tp.largest, tp.llen);
	}
	free(p);
	t->data_end = f->filter.off;
	return 0;
}

static int open_filter(struct kv_table *t, const struct kv_footer *f)
{
	struct kv_tbl_err e;
	int err = read_block(t, &f->filter, KV_BLK_FILTER, 0, &t->filter);

	if (err)
		return err;
	if (f->filter.size < 2)
		return t_bad(t, -EUCLEAN,
			     &(struct kv_tbl_err){ f->filter.off, "filter too short" });
	t->k = t->filter[f->filter.size - 1];
	t->nbits = (f->filter.size - 1) * 8;
	if (t->k < 1 || t->k > KV_TBL_MAX_K) {
		e = (struct kv_tbl_err){ f->filter.off + f->filter.size - 1, "bad filter probes" };
		return t_bad(t, -EUCLEAN, &e);
	}
	return 0;
}

/* Append @n bytes to a growing arena; their offset in *off. */
static int arena_add(uint8_t **a, size_t *len, size_t *cap, const void *p, size_t n, size_t *off)
{
	if (*len + n > *cap) {
		size_t ncap = *cap ? *cap : 1024;
		uint8_t *na;

		while (ncap < *len + n)
			ncap *= 2;
		na = realloc(*a, ncap);
		if (!na)
			return -ENOMEM;
		*a = na;
		*cap = ncap;
	}
	memcpy(*a + *len, p, n);
	*off = *len;
	*len += n;
	return 0;
}

/* A tombstone being read: its start is in the arena (offset in soff). */
struct rd_acc {
	struct kv_rtomb *rt;
	size_t *soff;
	size_t n, cap;
	uint8_t *keys;
	size_t klen, kcap;
};

/* Validate the range-del entry under @c and append it to @a. */
static int rd_entry(struct rd_acc *a, const struct kv_bcur *c, struct kv_tbl_err *e)
{
	const uint64_t off = c->b->foff + c->off;
	struct kv_rtomb t = { .start = c->key, .slen = c->klen };

	if (c->klen > KV_MAX_KEY || kv_rdel_value(c->val, c->vlen, &t.lsn, &t.end, &t.elen))
		return kv_tbl_bad(e, off, "bad range tombstone");
	if (kv_ukey_cmp(t.start, t.slen, t.end, t.elen) >= 0)
		return kv_tbl_bad(e, off, "range tombstone with an empty range");
	if (a->n) {
		const struct kv_rtomb *p = &a->rt[a->n - 1];
		int cmp = kv_ukey_cmp(a->keys + a->soff[a->n - 1], p->slen, t.start, t.slen);

		if (cmp > 0 || (!cmp && p->lsn < t.lsn))
			return kv_tbl_bad(e, off, "range tombstones out of order");
	}
	if (a->n == a->cap) {
		size_t ncap = a->cap ? 2 * a->cap : 16;
		struct kv_rtomb *nr = realloc(a->rt, ncap * sizeof(*nr));
		size_t *ns = nr ? realloc(a->soff, ncap * sizeof(*ns)) : NULL;

		if (nr)
			a->rt = nr;
		if (!ns)
			return -ENOMEM;
		a->soff = ns;
		a->cap = ncap;
	}
	if (arena_add(&a->keys, &a->klen, &a->kcap, t.start, t.slen, &a->soff[a->n]))
		return -ENOMEM;
	a->rt[a->n++] = t;
	return 0;
}

static int rd_decode(struct kv_table *t, const struct kv_footer *f, const uint8_t *p,
		     struct rd_acc *a, struct kv_tbl_err *e)
{
	struct kv_blk b;
	struct kv_bcur c;
	int r = kv_blk_init(&b, p, f->rangedel.size, f->rangedel.off, 0, e);

	if (r)
		return r;
	for (r = kv_bcur_first(&c, &b, e); r == 1; r = kv_bcur_next(&c, e))
		if ((r = rd_entry(a, &c, e)))
			return r;
	if (r)
		return r;
	if (a->n != t->props.rangedels)
		return kv_tbl_bad(e, f->rangedel.off,
				  "tombstone count differs from the properties");
	for (size_t i = 0; i < a->n; i++)
		a->rt[i].start = a->keys + a->soff[i];
	return kv_rdset_build(a->rt, a->n, &t->rd);
}

static int open_rangedels(struct kv_table *t, const struct kv_footer *f)
{
	struct rd_acc a = { 0 };
	struct kv_tbl_err e;
	uint8_t *p;
	int err = read_block(t, &f->rangedel, KV_BLK_RANGEDEL, 0, &p);

	if (err)
		return err;
	err = rd_decode(t, f, p, &a, &e);
	if (err && err != -ENOMEM)
		t_bad(t, err, &e);
	free(a.rt);
	free(a.soff);
	free(a.keys);
	free(p);
	return err;
}

struct idx_acc {
	uint64_t pos;	   /* where the next data block must start */
	size_t cap;	   /* of t->idx */
	size_t klen, kcap; /* of t->idx_keys */
};

/* Validate index entry @c and append it to t->idx. */
static int idx_entry(struct kv_table *t, const struct kv_bcur *c, struct idx_acc *a,
		     struct kv_tbl_err *e)
{
	const uint64_t off = c->b->foff + c->off;
	const uint8_t *v = c->val, *vend = c->val + c->vlen;
	uint64_t boff, bsize;
	struct tidx *x;

	if (kv_varint_get(&v, vend, &boff) || kv_varint_get(&v, vend, &bsize) || v != vend)
		return kv_tbl_bad(e, off, "bad block handle in the index");
	if (boff != a->pos || bsize > KV_TBL_MAX_BLOCK ||
	    bsize + KV_TBL_TRAILER > t->data_end - boff)
		return kv_tbl_bad(e, off, "index handle does not continue the data region");
	if (t->nidx &&
	    kv_ikey_cmp(idx_key(t, t->nidx - 1), t->idx[t->nidx - 1].klen, c->key, c->klen) >= 0)
		return kv_tbl_bad(e, off, "index keys out of order");
	if (t->nidx == a->cap) {
		size_t ncap = a->cap ? 2 * a->cap : 64;
		struct tidx *ni = realloc(t->idx, ncap * sizeof(*ni));

		if (!ni)
			return -ENOMEM;
		t->idx = ni;
		a->cap = ncap;
	}
	x = &t->idx[t->nidx];
	if (arena_add(&t->idx_keys, &a->klen, &a->kcap, c->key, c->klen, &x->koff))
		return -ENOMEM;
	x->off = boff;
	x->size = (uint32_t)bsize;
	x->klen = c->klen;
	a->pos = boff + bsize + KV_TBL_TRAILER;
	t->nidx++;
	return 0;
}

static int idx_decode(struct kv_table *t, const struct kv_footer *f, const uint8_t *p,
		      struct kv_tbl_err *e)
{
	struct idx_acc a = { 0 };
	struct kv_blk b;
	struct kv_bcur c;
	int r = kv_blk_init(&b, p, f->index.size, f->index.off, KV_IKEY_TRAILER, e);

	if (r)
		return r;
	for (r = kv_bcur_first(&c, &b, e); r == 1; r = kv_bcur_next(&c, e))
		if ((r = idx_entry(t, &c, &a, e)))
			return r;
	if (r)
		return r;
	if (a.pos != t->data_end || t->nidx != t->data_blocks)
		return kv_tbl_bad(e, f->index.off, "index does not cover the data blocks");
	return 0;
}

static int open_index(struct kv_table *t, const struct kv_footer *f)
{
	struct kv_tbl_err e;
	uint8_t *p;
	int err = read_block(t, &f->index, KV_BLK_INDEX, 0, &p);

	if (err)
		return err;
	err = idx_decode(t, f, p, &e);
	if (err && err != -ENOMEM)
		t_bad(t, err, &e);
	free(p);
	return err;
}

/* Open the file (in the file cache: into the table's new slot) and learn
 * its size. */
static int open_file(struct kv_table *t, uint64_t *fsize)
{
	struct kv_file *f = NULL;
	int err;

	if (t->files && (err = kv_tcache_add(t->files, t->env, t->path, &t->slot)))
		return err;
	if (t->files)
		err = kv_tcache_pin(t->files, t->slot, &f);
	else if (!(err = t->env->ops->open(t->env, t->path, O_RDONLY, 0, &t->file)))
		f = t->file;
	if (err) {
		kv_log_opt(t->log, KV_LOG_ERROR, "%s: offset 0: cannot open the table: error %d",
			   t->path, err);
		return err;
	}
	err = f->env->ops->size(f, fsize);
	file_unpin(t);
	return err;
}

int kv_table_open(struct kv_env *env, const struct kv_options *log, const char *path,
		  uint64_t file_no, uint64_t size, struct kv_cache *cache, struct kv_tcache *files,
		  struct kv_table **out)
{
	struct kv_table *t = calloc(1, sizeof(*t));
	struct kv_footer f;
	uint64_t fsize = 0;
	int err;

	if (!t || !(t->path = strdup(path))) {
		free(t);
		return -ENOMEM;
	}
	t->env = env;
	t->log = log;
	t->file_no = file_no;
	t->cache = cache;
	t->files = files;
	err = open_file(t, &fsize);
	if (err)
		goto fail;
	if (size && fsize != size) {
		kv_log_opt(log, KV_LOG_ERROR,
			   "%s: offset %" PRIu64 ": table is %" PRIu64 " bytes, expected %" PRIu64,
			   path, fsize, fsize, size);
		err = -EUCLEAN;
	}
	if (err || (err = open_footer(t, fsize, &f)) || (err = open_props(t, &f)) ||
	    (err = open_filter(t, &f)) || (err = open_rangedels(t, &f)) ||
	    (err = open_index(t, &f)))
		goto fail;
	t->props.file_size = fsize;
	*out = t;
	return 0;
fail:
	kv_table_close(t);
	return err;
}

void kv_table_close(struct kv_table *t)
{
	if (!t)
		return;
	if (t->slot)
		kv_tcache_remove(t->files, t->slot);
	if (t->file)
		t->file->env->ops->close(t->file);
	kv_table_props_free(&t->props);
	kv_rdset_free(t->rd);
	free(t->filter);
	free(t->idx);
	free(t->idx_keys);
	free(t->path);
	free(t);
}

const struct kv_table_props *kv_table_props(const struct kv_table *t)
{
	return &t->props;
}

const struct kv_rdset *kv_table_rangedels(const struct kv_table *t)
{
	return t->rd;
}

uint64_t kv_table_file_no(const struct kv_table *t)
{
	return t->file_no;
}

/* ---- point lookups ---------------------------------------------------------------------- */

/* An entry of a data block: a kind a reader knows. */
static int entry_kind_ok(const struct kv_table *t, const struct kv_bcur *c)
{
	unsigned kind = kv_ikey_kind(c->key, c->klen);
	struct kv_tbl_err e = { c->b->foff + c->off, "entry of unknown kind" };

	if (kind == KV_IK_PUT || kind == KV_IK_DEL)
		return 0;
	return t_bad(t, -EUCLEAN, &e);
}

/* Position @c at the first entry >= @ik from data block *@i on (*i is left
 * at the block); 1, 0 (none) or an error. On 1, @ref pins the block. */
static int data_seek(struct kv_table *t, size_t *i, const uint8_t *ik, size_t iklen,
		     struct bref *ref, struct kv_bcur *c)
{
	struct kv_tbl_err e;
	int r;

	/* The index says block i ends at or after ik; if it does not (a bad
	 * index key), the entry can only be in a later block. */
	for (; *i < t->nidx; (*i)++) {
		if ((r = get_block(t, *i, ref)))
			return r;
		r = kv_bcur_seek(c, &ref->b->blk, ik, iklen, &e);
		if (r == 1)
			return 1;
		put_block(t, ref);
		if (r < 0)
			return t_bad(t, r, &e);
	}
	return 0;
}

int kv_table_get(struct kv_table *t, const void *key, size_t klen, uint64_t snap,
		 kv_table_hit_fn fn, void *arg)
{
	if (!snap || klen > KV_MAX_KEY || !t->nidx)
		return 0;
	return kv_table_get_hashed(t, key, klen, kv_bloom_hash(key, klen), snap, fn, arg);
}

int kv_table_get_hashed(struct kv_table *t, const void *key, size_t klen, uint64_t bloom_hash,
			uint64_t snap, kv_table_hit_fn fn, void *arg)
{
	uint8_t ik[KV_TBL_MAX_IKEY];
	struct bref ref = { 0 };
	struct kv_bcur c;
	uint64_t lsn;
	size_t i;
	int r;

	if (!snap || klen > KV_MAX_KEY || !t->nidx)
		return 0;
	if (!kv_bloom_maybe(t->filter, t->nbits, t->k, bloom_hash))
		return 0;
	/* the first version with lsn <= snap - 1 */
	kv_ikey_make(ik, key, klen, snap - 1 < KV_LSN_MAX ? snap - 1 : KV_LSN_MAX, KV_IK_SEEK);
	i = idx_seek(t, ik, klen + 8);
	r = data_seek(t, &i, ik, klen + 8, &ref, &c);
	if (r <= 0)
		return r;
	lsn = kv_ikey_lsn(c.key, c.klen);
	if (kv_ukey_cmp(c.key, kv_ikey_ulen(c.klen), key, klen) || lsn >= snap)
		r = 0;
	else if (!(r = entry_kind_ok(t, &c)))
		fn(arg, kv_ikey_kind(c.key, c.klen), lsn, c.val, c.vlen), r = 1;
	put_block(t, &ref);
	return r;
}

/* ---- iterators --------------------------------------------------------------------------- */

struct titer {
	struct kv_iiter it;
	struct kv_table *t;
	size_t bi;	 /* the block the cursor is in */
	struct bref ref; /* pins block bi while positioned */
	struct kv_bcur c;
};

/* Publish the cursor's state: r is 1 (an entry), 0 (the end) or an error. */
static void ti_set(struct titer *ti, int r)
{
	if (r == 1 && (r = entry_kind_ok(ti->t, &ti->c)) == 0)
		r = 1;
	ti->it.valid = r == 1;
	ti->it.err = r < 0 ? r : 0;
	if (r == 1) {
		ti->it.key = ti->c.key;
		ti->it.klen = ti->c.klen;
		ti->it.val = ti->c.val;
		ti->it.vlen = ti->c.vlen;
	} else if (ti->ref.b) {
		put_block(ti->t, &ti->ref);
	}
}

/* Move to the first entry of block @i (or past the end). */
static int ti_enter(struct titer *ti, size_t i)
{
	struct kv_tbl_err e;
	int r;

	if (ti->ref.b)
		put_block(ti->t, &ti->ref);
	ti->bi = i;
	if (i >= ti->t->nidx)
		return 0;
	if ((r = get_block(ti->t, i, &ti->ref)))
		return r;
	r = kv_bcur_first(&ti->c, &ti->ref.b->blk, &e);
	return r < 0 ? t_bad(ti->t, r, &e) : r;
}

static void ti_seek_first(struct kv_iiter *it)
{
	struct titer *ti = (struct titer *)it;

	ti_set(ti, ti_enter(ti, 0));
}

static void ti_seek(struct kv_iiter *it, const uint8_t *ik, size_t iklen)
{
	struct titer *ti = (struct titer *)it;

	assert(iklen >= KV_IKEY_TRAILER);
	if (ti->ref.b)
		put_block(ti->t, &ti->ref);
	ti->bi = idx_seek(ti->t, ik, iklen);
	ti_set(ti, data_seek(ti->t, &ti->bi, ik, iklen, &ti->ref, &ti->c));
}

static void ti_next(struct kv_iiter *it)
{
	struct titer *ti = (struct titer *)it;
	struct kv_tbl_err e;
	int r;

	if (!it->valid)
		return;
	r = kv_bcur_next(&ti->c, &e);
	if (r < 0)
		r = t_bad(ti->t, r, &e);
	else if (r == 0)
		r = ti_enter(ti, ti->bi + 1);
	ti_set(ti, r);
}

static void ti_destroy(struct kv_iiter *it)
{
	struct titer *ti = (struct titer *)it;

	if (ti->ref.b)
		put_block(ti->t, &ti->ref);
	free(ti);
}

static const struct kv_iiter_ops titer_ops = {
	.seek_first = ti_seek_first,
	.seek = ti_seek,
	.next = ti_next,
	.destroy = ti_destroy,
};

static int table_iter(struct kv_table *t, int nofill, struct kv_iiter **out)
{
	struct titer *ti = calloc(1, sizeof(*ti));

	if (!ti)
		return -ENOMEM;
	ti->it.ops = &titer_ops;
	ti->t = t;
	ti->ref.nofill = nofill;
	*out = &ti->it;
	return 0;
}

int kv_table_iter(struct kv_table *t, struct kv_iiter **out)
{
	return table_iter(t, 0, out);
}

int kv_table_iter_bulk(struct kv_table *t, struct kv_iiter **out)
{
	return table_iter(t, 1, out);
}
