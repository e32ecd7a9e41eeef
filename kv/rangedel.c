/* SPDX-License-Identifier: MIT */
/*
 * rangedel.c - fragmented range tombstone sets (rangedel.h).
 *
 * kv_rdset_build() cuts a set of possibly overlapping tombstones at every
 * start and end key, giving the elementary intervals between consecutive
 * distinct boundaries. An interval covered by at least one tombstone becomes
 * a fragment; its lsns are those of the tombstones covering it, distinct and
 * descending. Adjacent fragments are not merged, even with equal lsns: the
 * result is a pure function of the boundaries, simple to test.
 *
 * Invariants of a built set (all fields [immutable after build]):
 *   1. frag[i].start < frag[i].end <= frag[i + 1].start (user key order);
 *   2. every fragment has at least one lsn, lsns strictly decreasing, > 0;
 *   3. a key k is deleted for snapshot S by the set iff some fragment i has
 *      start <= k < end and an lsn L with L < S; cover() returns the largest.
 *
 * The build is a sweep over the sorted boundaries with the set of active
 * tombstones (start <= boundary < end); its cost is O(n log n) plus the
 * output, which is O(n^2) in the worst case (n nested tombstones), inherent
 * in this representation. A tombstone with start >= end or lsn 0 deletes
 * nothing and is ignored. Keys are copied into one arena; no pointer into
 * the caller's tombstones is kept. A built set is read by any number of
 * threads without locks; building uses no global state (qsort_r).
 */
#include "rangedel.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ikey.h"

struct rfrag {
	size_t start, end; /* boundary indexes */
	size_t lsn0, nlsn; /* into s->lsns */
};

/* Every field [immutable after build]. */
struct kv_rdset {
	size_t n;	      /* fragments */
	struct rfrag *frag;   /* n of them, by start */
	uint64_t *lsns;	      /* each fragment's, descending */
	size_t nb;	      /* distinct boundaries */
	const uint8_t **bkey; /* boundary keys, sorted, into keys */
	size_t *blen;
	uint8_t *keys; /* arena of the boundary keys */
};

/* A boundary key while building: a pointer into the caller's tombstones. */
struct bkey {
	const uint8_t *k;
	size_t len;
};

static int bkey_cmp(const void *a, const void *b)
{
	const struct bkey *x = a, *y = b;

	return kv_ukey_cmp(x->k, x->len, y->k, y->len);
}

static int u64_desc(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? 1 : x > y ? -1 : 0;
}

/* Tombstones sorted by start, the order in which they become active. */
static int by_start(const void *a, const void *b, void *arg)
{
	const struct kv_rtomb *t = arg;
	const struct kv_rtomb *x = &t[*(const size_t *)a];
	const struct kv_rtomb *y = &t[*(const size_t *)b];

	return kv_ukey_cmp(x->start, x->slen, y->start, y->slen);
}

/* A tombstone that deletes nothing: an empty range, or lsn 0 (no version
 * has a smaller lsn). Ignored. */
static int tomb_void(const struct kv_rtomb *t)
{
	return !t->lsn || kv_ukey_cmp(t->start, t->slen, t->end, t->elen) >= 0;
}

/* Sorted distinct boundaries, copied into s->keys. */
static int collect_bounds(struct kv_rdset *s, const struct kv_rtomb *t, size_t n)
{
	struct bkey *b = malloc(2 * n * sizeof(*b) + 1);
	size_t nb = 0, bytes = 0, j = 0;
	uint8_t *p;

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (tomb_void(&t[i]))
			continue;
		b[nb++] = (struct bkey){ t[i].start, t[i].slen };
		b[nb++] = (struct bkey){ t[i].end, t[i].elen };
	}
	qsort(b, nb, sizeof(*b), bkey_cmp);
	for (size_t i = 0; i < nb; i++)
		if (i == 0 || bkey_cmp(&b[i - 1], &b[i]))
			b[j++] = b[i], bytes += b[i].len;
	nb = j;
	s->keys = malloc(bytes + 1);
	s->bkey = malloc(nb * sizeof(*s->bkey) + 1);
	s->blen = malloc(nb * sizeof(*s->blen) + 1);
	if (!s->keys || !s->bkey || !s->blen) {
		free(b);
		return -ENOMEM;
	}
	p = s->keys;
	for (size_t i = 0; i < nb; i++) {
		memcpy(p, b[i].k, b[i].len);
		s->bkey[i] = p;
		s->blen[i] = b[i].len;
		p += b[i].len;
	}
	s->nb = nb;
	free(b);
	return 0;
}

/* Append @v to a growing array of u64 (*arr, *len, *cap). */
static int push_u64(uint64_t **arr, size_t *len, size_t *cap, uint64_t v)
{
	if (*len == *cap) {
		size_t ncap = *cap ? 2 * *cap : 16;
		uint64_t *na = realloc(*arr, ncap * sizeof(*na));

		if (!na)
			return -ENOMEM;
		*arr = na;
		*cap = ncap;
	}
	(*arr)[(*len)++] = v;
	return 0;
}

struct sweep {
	const struct kv_rtomb *t;
	size_t *order;	/* tombstones by start */
	size_t next;	/* first of order not yet active */
	size_t *active; /* indexes of active tombstones */
	size_t nactive;
	uint64_t *tmp;	    /* scratch for one fragment's lsns */
	size_t nlsns, lcap; /* of s->lsns */
};

/* Make the tombstones starting at boundary @i active, drop those ending at
 * or before it, and emit the fragment [b_i, b_i+1) if any remain. */
static int sweep_step(struct kv_rdset *s, struct sweep *w, size_t n, size_t i)
{
	const uint8_t *bk = s->bkey[i];
	size_t bl = s->blen[i], k = 0, nl;
	const struct kv_rtomb *t;

	while (w->next < n) {
		t = &w->t[w->order[w->next]];
		if (tomb_void(t)) {
			w->next++;
			continue;
		}
		if (kv_ukey_cmp(t->start, t->slen, bk, bl) > 0)
			break;
		w->active[w->nactive++] = w->order[w->next++];
	}
	for (size_t a = 0; a < w->nactive; a++) {
		t = &w->t[w->active[a]];
		if (kv_ukey_cmp(t->end, t->elen, bk, bl) > 0)
			w->active[k++] = w->active[a];
	}
	w->nactive = k;
	if (!k || i + 1 == s->nb)
		return 0;
	for (size_t a = 0; a < k; a++)
		w->tmp[a] = w->t[w->active[a]].lsn;
	qsort(w->tmp, k, sizeof(*w->tmp), u64_desc);
	nl = w->nlsns;
	for (size_t a = 0; a < k; a++) {
		if (a && w->tmp[a] == w->tmp[a - 1])
			continue;
		if (push_u64(&s->lsns, &w->nlsns, &w->lcap, w->tmp[a]) < 0)
			return -ENOMEM;
	}
	s->frag[s->n++] = (struct rfrag){ i, i + 1, nl, w->nlsns - nl };
	return 0;
}

int kv_rdset_build(const struct kv_rtomb *t, size_t n, struct kv_rdset **out)
{
	struct kv_rdset *s = calloc(1, sizeof(*s));
	struct sweep w = { .t = t };
	int err = -ENOMEM;

	if (!s)
		return -ENOMEM;
	err = collect_bounds(s, t, n);
	if (err)
		goto out;
	err = -ENOMEM;
	w.order = malloc(n * sizeof(*w.order) + 1);
	w.active = malloc(n * sizeof(*w.active) + 1);
	w.tmp = malloc(n * sizeof(*w.tmp) + 1);
	s->frag = malloc(s->nb * sizeof(*s->frag) + 1);
	if (!w.order || !w.active || !w.tmp || !s->frag)
		goto out;
	for (size_t i = 0; i < n; i++)
		w.order[i] = i;
	qsort_r(w.order, n, sizeof(*w.order), by_start, (void *)t);
	err = 0;
	for (size_t i = 0; i < s->nb && !err; i++)
		err = sweep_step(s, &w, n, i);
out:
	free(w.order);
	free(w.active);
	free(w.tmp);
	if (err) {
		kv_rdset_free(s);
		return err;
	}
	*out = s;
	return 0;
}

void kv_rdset_free(struct kv_rdset *s)
{
	if (!s)
		return;
	free(s->frag);
	free(s->lsns);
	free(s->bkey);
	free(s->blen);
	free(s->keys);
	free(s);
}

size_t kv_rdset_fragments(const struct kv_rdset *s)
{
	return s->n;
}

/* The last fragment whose start is <= @key, or s->n if none. */
static size_t frag_at(const struct kv_rdset *s, const void *key, size_t klen)
{
	size_t lo = 0, hi = s->n; /* answer in [lo - 1, hi) */

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		size_t b = s->frag[mid].start;

		if (kv_ukey_cmp(s->bkey[b], s->blen[b], key, klen) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? lo - 1 : s->n;
}

uint64_t kv_rdset_cover(const struct kv_rdset *s, const void *key, size_t klen, uint64_t snap)
{
	size_t i = frag_at(s, key, klen), lo, hi, e;
	const uint64_t *l;

	if (i == s->n)
		return 0;
	e = s->frag[i].end;
	if (kv_ukey_cmp(key, klen, s->bkey[e], s->blen[e]) >= 0)
		return 0;
	/* lsns descend: find the first one below snap */
	l = s->lsns + s->frag[i].lsn0;
	lo = 0;
	hi = s->frag[i].nlsn;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (l[mid] >= snap)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->frag[i].nlsn ? l[lo] : 0;
}

void kv_rdset_fragment(const struct kv_rdset *s, size_t i, struct kv_rtomb *bounds,
		       const uint64_t **lsns, size_t *nlsns)
{
	const struct rfrag *f = &s->frag[i];

	bounds->start = s->bkey[f->start];
	bounds->slen = s->blen[f->start];
	bounds->end = s->bkey[f->end];
	bounds->elen = s->blen[f->end];
	bounds->lsn = s->lsns[f->lsn0]; /* the newest */
	*lsns = s->lsns + f->lsn0;
	*nlsns = f->nlsn;
}

int kv_rtombs_add(struct kv_rtombs *l, const struct kv_rtomb *t)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct kv_rtomb *p = realloc(l->t, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		l->t = p;
		l->cap = cap;
	}
	l->t[l->n++] = *t;
	return 0;
}

int kv_rtombs_add_set(struct kv_rtombs *l, const struct kv_rdset *s, uint64_t below)
{
	for (size_t f = 0; f < kv_rdset_fragments(s); f++) {
		const uint64_t *lsns;
		struct kv_rtomb t;
		size_t n;

		kv_rdset_fragment(s, f, &t, &lsns, &n);
		for (size_t k = 0; k < n; k++) {
			int err;

			t.lsn = lsns[k];
			if (t.lsn >= below)
				continue;
			err = kv_rtombs_add(l, &t);
			if (err)
				return err;
		}
	}
	return 0;
}
