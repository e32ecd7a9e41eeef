/* SPDX-License-Identifier: MIT */
/*
 * memtable.c - the MVCC skiplist (the version protocol is in memtable.h).
 *
 * Insert-only and lock-free for readers: a node is linked bottom-up with one
 * CAS per level, level 0 first, so a node is in the list exactly when it is
 * linked at level 0; nodes are never unlinked and live in an arena until the
 * memtable is destroyed. Two writers inserting the same key race at level 0:
 * the loser finds the winner's node and applies its version there (its own
 * node stays unused in the arena). Keys are not copied: a node points at the
 * key bytes of the first record that wrote it, in the log buffer, which
 * lives as long as the memtable. Point lookups, and writes of a key already
 * here, find the node through the hash index instead (memtable.h): one
 * bucket and a short chain instead of a walk whose every step is a cache
 * miss on a node and another on its key.
 *
 * Range tombstones are a list (newest first) that a lookup cannot scan
 * whole. A published view (struct view, whose first member is the
 * struct kv_mfrag that mt->frag points at) cuts the list below the head it
 * was built from into runs, newest first, each a fragmented set
 * (rangedel.h) with the largest op offset in it. A lookup scans the
 * tombstones pushed since (at most REBUILD_TAIL, plus whatever other
 * writers push while a rebuild is under way) and asks each set, skipping a
 * set whose largest offset cannot beat what it found: O(REBUILD_TAIL +
 * sets x log n). A reader whose scan passes REBUILD_TAIL rebuilds (one at a
 * time, trylock): the new tombstones and the newest runs whose counts are
 * within a factor of two of the run so far become one set, so each run is
 * at least twice the next newer one: at most log2(n / REBUILD_TAIL) + 1
 * sets, and each tombstone is copied O(log n) times over the memtable's
 * life. A superseded view, and the sets it alone referenced, may be in use
 * by a lookup: they are kept until kv_memtable_frag_detach hands them to a
 * caller who frees them after no lookup can hold them (the db does that
 * after a grace period: every lookup runs inside a guard) or until the
 * memtable is destroyed.
 */
#include "memtable.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "ikey.h"
#include "rangedel.h"
#include "sync.h"

#define ARENA_CHUNK (256u << 10)

/* One hash bucket per this many bytes of log buffer: chains average at most
 * one node while the ops that bring new keys average this size or more (a
 * kvfs create brings two keys in about 350 bytes; the buckets of a 64 MiB
 * buffer take 4 MiB). */
#define HASH_BYTES_PER_BUCKET 128u
#define HASH_MIN_BUCKETS 64u

struct kv_arena_chunk {
	struct kv_arena_chunk *next;
	size_t size;
	_Alignas(16) uint8_t data[];
};

static void *arena_alloc(struct kv_memtable *mt, size_t size)
{
	struct kv_arena_chunk *c;
	void *p = NULL;

	size = (size + 15) & ~(size_t)15;
	pthread_mutex_lock(&mt->arena_mu);
	c = mt->chunks;
	if (!c || mt->chunk_used + size > c->size) {
		size_t csize = size > ARENA_CHUNK ? size : ARENA_CHUNK;

		c = malloc(sizeof(*c) + csize);
		if (!c)
			goto out;
		c->size = csize;
		c->next = mt->chunks;
		mt->chunks = c;
		mt->chunk_used = 0;
		atomic_fetch_add_explicit(&mt->arena_bytes, sizeof(*c) + csize,
					  memory_order_relaxed);
	}
	p = c->data + mt->chunk_used;
	mt->chunk_used += size;
out:
	pthread_mutex_unlock(&mt->arena_mu);
	return p;
}

/* ---- range tombstone sets (see the top) ---- */

#define REBUILD_TAIL 16

/* One fragmented set of the run of the rdel list from @top down to @end. */
struct mset {
	struct kv_rdset *set;	/* [immutable] lsn = op offset */
	struct kv_mrdel *top;	/* [immutable] */
	struct kv_mrdel *end;	/* [immutable] NULL: to the list's end */
	size_t count;		/* [immutable] tombstones */
	uint64_t max_off;	/* [immutable] the largest op offset in it */
	struct mset *next_dead; /* [frag_mu] on a view's dead list */
};

struct view {
	struct kv_mfrag f; /* f.below: the head it cuts; f.count: tombstones in
			    * its sets; f.older [frag_mu]: superseded views */
	struct mset *dead; /* [frag_mu] sets of the previous view merged away */
	size_t n;	   /* [immutable] */
	struct mset *s[];  /* [immutable] newest run first */
};

static void mset_free(struct mset *m)
{
	if (m) {
		kv_rdset_free(m->set);
		free(m);
	}
}

static struct view *as_view(struct kv_mfrag *f)
{
	return (struct view *)f;
}

/* Free superseded views (linked by f.older) and their dead sets. */
static void views_free(struct kv_mfrag *f)
{
	while (f) {
		struct view *v = as_view(f);
		struct kv_mfrag *older = f->older;

		for (struct mset *m = v->dead, *next; m; m = next) {
			next = m->next_dead;
			mset_free(m);
		}
		free(v);
		f = older;
	}
}

/* The current view @f: its sets too, then everything superseded. */
static void view_free_all(struct kv_mfrag *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < as_view(f)->n; i++)
		mset_free(as_view(f)->s[i]);
	views_free(f);
}

struct kv_mfrag *kv_memtable_frag_detach(struct kv_memtable *mt)
{
	struct kv_mfrag *cur, *old;

	pthread_mutex_lock(&mt->frag_mu);
	cur = atomic_load_explicit(&mt->frag, memory_order_relaxed);
	old = cur ? cur->older : NULL;
	if (old) {
		/* The sets cur merged away are referenced by older views only. */
		struct mset **tail = &as_view(old)->dead;

		while (*tail)
			tail = &(*tail)->next_dead;
		*tail = as_view(cur)->dead;
		as_view(cur)->dead = NULL;
		cur->older = NULL;
	}
	pthread_mutex_unlock(&mt->frag_mu);
	return old;
}

void kv_memtable_frag_free(struct kv_mfrag *chain)
{
	views_free(chain);
}

/* A set of the run from @top down to @end. */
static struct mset *mset_build(struct kv_mrdel *top, struct kv_mrdel *end)
{
	struct mset *m = calloc(1, sizeof(*m));
	struct kv_rtombs l = { 0 };
	int err = m ? 0 : -ENOMEM;

	for (struct kv_mrdel *d = top; !err && d != end; d = d->next) {
		struct kv_rtomb t = { d->start, d->slen, d->end, d->elen, d->op_off };

		err = kv_rtombs_add(&l, &t);
		if (d->op_off > m->max_off)
			m->max_off = d->op_off;
	}
	if (!err)
		err = kv_rdset_build(l.t, l.n, &m->set);
	free(l.t);
	if (err) {
		free(m);
		return NULL;
	}
	m->top = top;
	m->end = end;
	m->count = l.n;
	return m;
}

static struct kv_mnode *node_new(struct kv_memtable *mt, int height)
{
	size_t size = sizeof(struct kv_mnode) + (size_t)height * sizeof(_Atomic(void *));
	struct kv_mnode *n = arena_alloc(mt, size);

	if (!n)
		return NULL;
	memset(n, 0, size);
	n->height = (uint8_t)height;
	return n;
}

/* Buckets for a log buffer of @cap bytes: a power of two. */
static uint64_t hash_buckets(uint64_t cap)
{
	uint64_t n = HASH_MIN_BUCKETS;

	while (n < cap / HASH_BYTES_PER_BUCKET)
		n <<= 1;
	return n;
}

int kv_memtable_init(struct kv_memtable *mt, struct kv_logbuf *lb)
{
	uint64_t nb = hash_buckets(lb->cap);

	memset(mt, 0, sizeof(*mt));
	mt->lb = lb;
	pthread_mutex_init(&mt->arena_mu, NULL);
	pthread_mutex_init(&mt->frag_mu, NULL);
	atomic_init(&mt->height, 1);
	/* Zeroed pages come lazily: untouched buckets cost no memory. */
	mt->hbuckets = calloc(nb, sizeof(*mt->hbuckets));
	mt->hmask = nb - 1;
	mt->head = mt->hbuckets ? node_new(mt, KV_SKIP_MAX_HEIGHT) : NULL;
	if (!mt->head) {
		free(mt->hbuckets);
		mt->hbuckets = NULL;
		pthread_mutex_destroy(&mt->arena_mu);
		pthread_mutex_destroy(&mt->frag_mu);
		return -ENOMEM;
	}
	atomic_fetch_add_explicit(&mt->arena_bytes, nb * sizeof(*mt->hbuckets),
				  memory_order_relaxed);
	return 0;
}

void kv_memtable_destroy(struct kv_memtable *mt)
{
	struct kv_arena_chunk *c = mt->chunks;

	while (c) {
		struct kv_arena_chunk *next = c->next;

		free(c);
		c = next;
	}
	mt->chunks = NULL;
	free(mt->hbuckets);
	mt->hbuckets = NULL;
	pthread_mutex_destroy(&mt->arena_mu);
	view_free_all(atomic_load(&mt->frag));
	pthread_mutex_destroy(&mt->frag_mu);
}

/* A key being searched for, with its prefix words (struct kv_mnode.pw). */
struct skey {
	const uint8_t *k;
	uint32_t len;
	uint64_t pw[2];
};

#define PW_BYTES 16u

/* Bytes [at, at + 8) of @k (zero past its end) as a big-endian number. */
static uint64_t prefix_word(const uint8_t *k, uint32_t len, uint32_t at)
{
	uint64_t w = 0;

	if (len >= at + 8) {
		memcpy(&w, k + at, 8);
		return be64toh(w);
	}
	for (uint32_t i = 0; i < 8; i++)
		w = w << 8 | (at + i < len ? k[at + i] : 0);
	return w;
}

static void skey_init(struct skey *s, const uint8_t *k, uint32_t len)
{
	s->k = k;
	s->len = len;
	s->pw[0] = prefix_word(k, len, 0);
	s->pw[1] = prefix_word(k, len, 8);
}

static void skey_of_node(struct skey *s, const struct kv_mnode *n)
{
	s->k = n->key;
	s->len = n->klen;
	s->pw[0] = n->pw[0];
	s->pw[1] = n->pw[1];
}

/*
 * Node @n's key against @s (kv_ukey_cmp order). Zero padding never
 * contradicts that order: where a padded prefix differs at a byte past one
 * key's end, that key is a prefix of the other, hence the smaller. Equal
 * prefixes: the rest decides (the whole keys when one is shorter than them).
 */
static int node_cmp(const struct kv_mnode *n, const struct skey *s)
{
	if (n->pw[0] != s->pw[0])
		return n->pw[0] < s->pw[0] ? -1 : 1;
	if (n->pw[1] != s->pw[1])
		return n->pw[1] < s->pw[1] ? -1 : 1;
	if (n->klen < PW_BYTES || s->len < PW_BYTES)
		return kv_ukey_cmp(n->key, n->klen, s->k, s->len);
	return kv_ukey_cmp(n->key + PW_BYTES, n->klen - PW_BYTES, s->k + PW_BYTES,
			   s->len - PW_BYTES);
}

/* 1/4 branching, as LevelDB and RocksDB use. */
static int random_height(void)
{
	static __thread uint64_t rng;
	int h = 1;

	if (!rng) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)(uintptr_t)&rng ^
		      0x9e3779b97f4a7c15ull;
	}
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	for (uint64_t r = rng; h < KV_SKIP_MAX_HEIGHT && (r & 3) == 0; r >>= 2)
		h++;
	return h;
}

/*
 * From @x at @level, advance while the next key is below @key. Returns the
 * last node below @key; *succ gets the first node >= key (or NULL).
 */
static struct kv_mnode *scan_level(struct kv_mnode *x, int level, const struct skey *key,
				   struct kv_mnode **succ)
{
	for (;;) {
		struct kv_mnode *n = atomic_load_explicit(&x->next[level], memory_order_acquire);

		if (!n || node_cmp(n, key) >= 0) {
			*succ = n;
			return x;
		}
		x = n;
	}
}

static struct kv_mnode *find(struct kv_memtable *mt, const struct skey *key, int top,
			     struct kv_mnode **prev, struct kv_mnode **succ)
{
	struct kv_mnode *x = mt->head, *n = NULL;

	for (int level = top - 1; level >= 0; level--) {
		x = scan_level(x, level, key, &n);
		prev[level] = x;
		succ[level] = n;
	}
	if (n && node_cmp(n, key) == 0)
		return n;
	return NULL;
}

static void node_lock(struct kv_mnode *n)
{
	unsigned spins = 0;

	while (atomic_exchange_explicit(&n->lock, 1, memory_order_acquire))
		kv_backoff(&spins);
}

static void node_unlock(struct kv_mnode *n)
{
	atomic_store_explicit(&n->lock, 0, memory_order_release);
}

/* ---- the hash index (memtable.h) ---- */

uint64_t kv_memtable_hash(const void *key, size_t klen)
{
	return XXH3_64bits_withSeed(key, klen, 0);
}

static uint64_t key_hash(const void *key, size_t klen)
{
	return kv_memtable_hash(key, klen);
}

static _Atomic(struct kv_mnode *) *bucket_of(struct kv_memtable *mt, uint64_t h)
{
	return &mt->hbuckets[h & mt->hmask];
}

/* The node of @key (hash @h) if it is on its bucket, else NULL. */
static struct kv_mnode *hash_find(struct kv_memtable *mt, const uint8_t *key, uint32_t klen,
				  uint64_t h)
{
	struct kv_mnode *n = atomic_load_explicit(bucket_of(mt, h), memory_order_acquire);

	for (; n; n = atomic_load_explicit(&n->hnext, memory_order_acquire))
		if (n->hash == h && n->klen == klen && !memcmp(n->key, key, klen))
			return n;
	return NULL;
}

/* Push @n (linked at level 0, its lock held) on its bucket unless it is
 * there already. */
static void hash_push_locked(struct kv_memtable *mt, struct kv_mnode *n)
{
	_Atomic(struct kv_mnode *) *b;
	struct kv_mnode *head;

	if (n->hashed)
		return;
	b = bucket_of(mt, n->hash);
	head = atomic_load_explicit(b, memory_order_relaxed);
	do
		atomic_store_explicit(&n->hnext, head, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(b, &head, n, memory_order_release,
						      memory_order_relaxed));
	n->hashed = 1;
}

/*
 * Slots hold versions of distinct epochs, newest first (memtable.h). @ref
 * goes where its offset puts it: replacing the slot of its own epoch if it is
 * newer than that one, dropped if older (superseded within its epoch), else
 * inserted, pushing older slots down and the oldest out. A version of an
 * older epoch can arrive after a newer one (its writer was slow between
 * reservation and indexing while the next epoch opened); it is never dropped
 * for that, because its epoch is published first.
 */
static int apply_version(struct kv_memtable *mt, struct kv_mnode *n, uint64_t ref)
{
	uint64_t v[3], off = kv_ref_off(ref);
	uint32_t epoch = kv_ref_epoch(ref);
	int i, err = 0;

	node_lock(n);
	hash_push_locked(mt, n);
	for (i = 0; i < 3; i++)
		v[i] = atomic_load_explicit(&n->ver[i], memory_order_relaxed);
	for (i = 0; i < 3; i++)
		if (!v[i] || kv_ref_epoch(v[i]) == epoch || kv_ref_off(v[i]) < off)
			break;
	if (i == 3 || (v[i] && kv_ref_epoch(v[i]) == epoch && kv_ref_off(v[i]) > off)) {
		atomic_fetch_add_explicit(&mt->superseded, 1, memory_order_relaxed);
	} else if (v[i] && kv_ref_epoch(v[i]) == epoch) {
		atomic_store_explicit(&n->ver[i], ref, memory_order_release);
		atomic_fetch_add_explicit(&mt->replaced, 1, memory_order_relaxed);
	} else {
		/* The oldest slot moves to the old list before it leaves ver[2]. */
		if (v[2]) {
			struct kv_oldver *o = arena_alloc(mt, sizeof(*o));

			if (!o) {
				err = -ENOMEM;
				goto out;
			}
			o->ref = v[2];
			o->next = atomic_load_explicit(&n->old, memory_order_relaxed);
			atomic_store_explicit(&n->old, o, memory_order_release);
		}
		/* Readers look newest first; store oldest first (memtable.h). */
		for (int j = 2; j > i; j--)
			atomic_store_explicit(&n->ver[j], v[j - 1], memory_order_release);
		atomic_store_explicit(&n->ver[i], ref, memory_order_release);
	}
out:
	node_unlock(n);
	return err;
}

static void raise_height(struct kv_memtable *mt, int h)
{
	int cur = atomic_load_explicit(&mt->height, memory_order_relaxed);

	while (h > cur && !atomic_compare_exchange_weak_explicit(
				  &mt->height, &cur, h, memory_order_relaxed, memory_order_relaxed))
		;
}

/* Link @n at @level after prev[level], re-scanning on a lost race. Returns the
 * node that holds the key at level 0 if another writer got there first. */
static struct kv_mnode *link_level(struct kv_mnode *n, int level, struct kv_mnode **prev,
				   struct kv_mnode **succ)
{
	struct skey key;

	skey_of_node(&key, n);
	for (;;) {
		struct kv_mnode *expect = succ[level];

		atomic_store_explicit(&n->next[level], expect, memory_order_relaxed);
		if (atomic_compare_exchange_strong_explicit(&prev[level]->next[level], &expect, n,
							    memory_order_release,
							    memory_order_relaxed))
			return NULL;
		prev[level] = scan_level(prev[level], level, &key, &succ[level]);
		if (level == 0 && succ[0] && node_cmp(succ[0], &key) == 0)
			return succ[0];
	}
}

int kv_memtable_apply(struct kv_memtable *mt, uint64_t ref, uint64_t op_off, const uint8_t *key,
		      uint32_t klen)
{
	struct kv_mnode *prev[KV_SKIP_MAX_HEIGHT], *succ[KV_SKIP_MAX_HEIGHT];
	uint64_t vref = kv_ref_make(kv_ref_epoch(ref), op_off), hash = key_hash(key, klen);
	struct kv_mnode *n, *won;
	struct skey sk;
	int h, top;

	/* A key already here (on its bucket): no skiplist walk. */
	n = hash_find(mt, key, klen, hash);
	if (n)
		return apply_version(mt, n, vref);
	h = random_height();
	top = atomic_load_explicit(&mt->height, memory_order_relaxed);
	if (h > top)
		top = h;
	skey_init(&sk, key, klen);
	n = find(mt, &sk, top, prev, succ);
	if (n)
		return apply_version(mt, n, vref);
	n = node_new(mt, h);
	if (!n)
		return -ENOMEM;
	n->key = key;
	n->klen = klen;
	n->hash = hash;
	n->pw[0] = sk.pw[0];
	n->pw[1] = sk.pw[1];
	atomic_init(&n->ver[0], vref);
	raise_height(mt, h);
	won = link_level(n, 0, prev, succ);
	if (won)
		return apply_version(mt, won, vref);
	/* On its bucket before this apply returns (memtable.h), unless a
	 * writer of the same key that found it at level 0 did it already. */
	node_lock(n);
	hash_push_locked(mt, n);
	node_unlock(n);
	atomic_fetch_add_explicit(&mt->nodes, 1, memory_order_relaxed);
	for (int level = 1; level < h; level++)
		link_level(n, level, prev, succ);
	return 0;
}

int kv_memtable_get(struct kv_memtable *mt, const void *key, size_t klen, int latest,
		    uint64_t *op_off)
{
	struct kv_mnode *n = hash_find(mt, key, (uint32_t)klen, key_hash(key, klen));
	uint64_t d, r;

	if (!n)
		return 0;
	if (latest) {
		*op_off = kv_ref_off(atomic_load_explicit(&n->ver[0], memory_order_acquire));
		return 1;
	}
	d = atomic_load_explicit(&mt->lb->durable, memory_order_acquire);
	for (;;) {
		for (int i = 0; i < 3; i++) {
			r = atomic_load_explicit(&n->ver[i], memory_order_acquire);
			if (r && kv_ref_off(r) < d) {
				*op_off = kv_ref_off(r);
				return 1;
			}
		}
		r = atomic_load_explicit(&mt->lb->durable, memory_order_acquire);
		if (r == d)
			return 0;
		d = r;
	}
}

void kv_memtable_for_each(struct kv_memtable *mt, void (*fn)(void *arg, struct kv_mnode *n),
			  void *arg)
{
	struct kv_mnode *n = atomic_load_explicit(&mt->head->next[0], memory_order_acquire);

	for (; n; n = atomic_load_explicit(&n->next[0], memory_order_acquire))
		fn(arg, n);
}

int kv_memtable_get_at(struct kv_memtable *mt, const void *key, size_t klen, uint64_t limit,
		       uint64_t *op_off)
{
	return kv_memtable_get_at_hashed(mt, key, klen, key_hash(key, klen), limit, op_off);
}

int kv_memtable_get_at_hashed(struct kv_memtable *mt, const void *key, size_t klen, uint64_t hash,
			      uint64_t limit, uint64_t *op_off)
{
	struct kv_mnode *n = hash_find(mt, key, (uint32_t)klen, hash);
	struct kv_oldver *o;
	uint64_t r;

	if (!n)
		return 0;
	for (int i = 0; i < 3; i++) {
		r = atomic_load_explicit(&n->ver[i], memory_order_acquire);
		if (r && kv_ref_off(r) < limit) {
			*op_off = kv_ref_off(r);
			return 1;
		}
	}
	for (o = atomic_load_explicit(&n->old, memory_order_acquire); o; o = o->next) {
		if (kv_ref_off(o->ref) < limit) {
			*op_off = kv_ref_off(o->ref);
			return 1;
		}
	}
	return 0;
}

int kv_memtable_add_rdel(struct kv_memtable *mt, uint64_t op_off, const uint8_t *start,
			 uint32_t slen, const uint8_t *end, uint32_t elen)
{
	struct kv_mrdel *d = arena_alloc(mt, sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->op_off = op_off;
	d->start = start;
	d->slen = slen;
	d->end = end;
	d->elen = elen;
	d->next = atomic_load_explicit(&mt->rdels, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(&mt->rdels, &d->next, d, memory_order_release,
						      memory_order_relaxed))
		;
	atomic_fetch_add_explicit(&mt->nrdels, 1, memory_order_relaxed);
	return 0;
}

/* Put the tombstones pushed above the current view's cut into a new view,
 * with the newer runs they catch up with, and publish it. */
static void frag_rebuild(struct kv_memtable *mt)
{
	struct kv_mrdel *head;
	struct kv_mfrag *cur;
	struct view *old, *v;
	struct mset *m;
	size_t tail = 0, k = 0, count;

	if (pthread_mutex_trylock(&mt->frag_mu))
		return; /* another reader is at it */
	/* Loaded under the lock: a view built since the caller's load may cut
	 * the list above the head the caller saw. */
	head = atomic_load_explicit(&mt->rdels, memory_order_acquire);
	cur = atomic_load_explicit(&mt->frag, memory_order_relaxed);
	old = cur ? as_view(cur) : NULL;
	for (struct kv_mrdel *d = head; d != (old ? old->f.below : NULL); d = d->next)
		tail++;
	count = tail;
	while (old && k < old->n && count * 2 >= old->s[k]->count)
		count += old->s[k++]->count;
	m = mset_build(head, k ? old->s[k - 1]->end : old ? old->f.below : NULL);
	v = m ? calloc(1, sizeof(*v) + (1 + (old ? old->n : 0) - k) * sizeof(v->s[0])) : NULL;
	if (!v) {
		mset_free(m); /* out of memory: lookups just keep scanning */
		pthread_mutex_unlock(&mt->frag_mu);
		return;
	}
	v->s[v->n++] = m;
	for (size_t i = k; old && i < old->n; i++)
		v->s[v->n++] = old->s[i];
	for (size_t i = 0; i < k; i++) {
		old->s[i]->next_dead = v->dead;
		v->dead = old->s[i];
	}
	v->f.below = head;
	v->f.count = (old ? old->f.count : 0) + tail;
	v->f.older = cur;
	atomic_store_explicit(&mt->frag, &v->f, memory_order_release);
	pthread_mutex_unlock(&mt->frag_mu);
}

int kv_memtable_rdel_cover(struct kv_memtable *mt, const void *key, size_t klen, uint64_t limit,
			   uint64_t *op_off)
{
	struct kv_mfrag *f = atomic_load_explicit(&mt->frag, memory_order_acquire);
	struct kv_mrdel *head = atomic_load_explicit(&mt->rdels, memory_order_acquire), *d;
	size_t scanned = 0;
	int found = 0;

	*op_off = 0;
	/* The tombstones pushed since the view was built; pushes are not in
	 * offset order (writers race), so look at all of them. */
	for (d = head; d && d != (f ? f->below : NULL); d = d->next, scanned++) {
		if (d->op_off >= limit || (found && d->op_off <= *op_off))
			continue;
		if (kv_ukey_cmp(d->start, d->slen, key, klen) <= 0 &&
		    kv_ukey_cmp(key, klen, d->end, d->elen) < 0) {
			*op_off = d->op_off;
			found = 1;
		}
	}
	for (size_t i = 0; f && i < as_view(f)->n; i++) {
		const struct mset *m = as_view(f)->s[i];
		uint64_t c;

		if (found && m->max_off <= *op_off)
			continue; /* nothing in it can be newer */
		c = kv_rdset_cover(m->set, key, klen, limit);
		if (c > *op_off) {
			*op_off = c;
			found = 1;
		}
	}
	if (scanned > REBUILD_TAIL)
		frag_rebuild(mt);
	return found;
}

/* ---- the internal iterator ---- */

struct mt_iter {
	struct kv_iiter it;
	struct kv_memtable *mt;
	uint64_t base_lsn, limit;
	struct kv_mnode *node;
	int slot; /* 0..2: ver[slot]; 3: the old list at @old */
	struct kv_oldver *old;
	uint64_t last_off; /* the version shown last (versions only go older) */
	uint8_t *kbuf;
	size_t kcap;
};

/* The ref at the iterator's position, or 0 past the node's versions. */
static uint64_t mt_iter_ref(struct mt_iter *mi)
{
	if (mi->slot < 3)
		return atomic_load_explicit(&mi->node->ver[mi->slot], memory_order_acquire);
	return mi->old ? mi->old->ref : 0;
}

static void mt_iter_step(struct mt_iter *mi)
{
	if (mi->slot < 2) {
		mi->slot++;
	} else if (mi->slot == 2) {
		mi->slot = 3;
		mi->old = atomic_load_explicit(&mi->node->old, memory_order_acquire);
	} else if (mi->old) {
		mi->old = mi->old->next;
	}
}

static void mt_iter_node(struct mt_iter *mi, struct kv_mnode *n)
{
	mi->node = n;
	mi->slot = 0;
	mi->old = NULL;
	mi->last_off = UINT64_MAX;
}

static int mt_iter_emit(struct mt_iter *mi, uint64_t off)
{
	const uint8_t *op = mi->mt->lb->base + off;
	size_t need = mi->node->klen + KV_IKEY_TRAILER;

	if (mi->kcap < need) {
		uint8_t *b = realloc(mi->kbuf, need * 2);

		if (!b)
			return -ENOMEM;
		mi->kbuf = b;
		mi->kcap = need * 2;
	}
	kv_ikey_make(mi->kbuf, mi->node->key, mi->node->klen, mi->base_lsn + off,
		     op[0] == KV_OP_PUT ? KV_IK_PUT : KV_IK_DEL);
	mi->it.key = mi->kbuf;
	mi->it.klen = need;
	mi->it.val = op + KV_OP_HEADER_SIZE + mi->node->klen;
	mi->it.vlen = op[0] == KV_OP_PUT ? kv_get_le32(op + 4) : 0;
	mi->last_off = off;
	return 0;
}

/* Settle on the next visible version at or after the position. */
static void mt_iter_settle(struct mt_iter *mi)
{
	while (mi->node) {
		uint64_t r, off;

		if (mi->slot == 3 && !mi->old) {
			mt_iter_node(mi, atomic_load_explicit(&mi->node->next[0],
							      memory_order_acquire));
			continue;
		}
		r = mt_iter_ref(mi);
		off = kv_ref_off(r);
		/* A concurrent shift may show a version twice: only older ones count. */
		if (!r || off >= mi->limit || off >= mi->last_off) {
			mt_iter_step(mi);
			continue;
		}
		mi->it.err = mt_iter_emit(mi, off);
		mi->it.valid = !mi->it.err;
		return;
	}
	mi->it.valid = 0;
}

static void mt_iter_seek_first(struct kv_iiter *it)
{
	struct mt_iter *mi = (struct mt_iter *)it;

	mt_iter_node(mi, atomic_load_explicit(&mi->mt->head->next[0], memory_order_acquire));
	mt_iter_settle(mi);
}

static void mt_iter_seek(struct kv_iiter *it, const uint8_t *ik, size_t iklen)
{
	struct mt_iter *mi = (struct mt_iter *)it;
	int top = atomic_load_explicit(&mi->mt->height, memory_order_acquire);
	uint32_t ulen = (uint32_t)kv_ikey_ulen(iklen);
	struct kv_mnode *x = mi->mt->head, *n = NULL;
	uint64_t lsn = kv_ikey_lsn(ik, iklen);
	struct skey sk;

	skey_init(&sk, ik, ulen);
	for (int level = top - 1; level >= 0; level--)
		x = scan_level(x, level, &sk, &n);
	mt_iter_node(mi, n);
	/* Within the target key, only versions with lsn <= the target's. */
	if (n && node_cmp(n, &sk) == 0 && lsn < KV_LSN_MAX)
		mi->last_off = lsn + 1 <= mi->base_lsn ? 0 : lsn + 1 - mi->base_lsn;
	mt_iter_settle(mi);
}

static void mt_iter_next(struct kv_iiter *it)
{
	struct mt_iter *mi = (struct mt_iter *)it;

	mt_iter_step(mi);
	mt_iter_settle(mi);
}

static void mt_iter_destroy(struct kv_iiter *it)
{
	struct mt_iter *mi = (struct mt_iter *)it;

	free(mi->kbuf);
	free(mi);
}

static const struct kv_iiter_ops mt_iter_ops = {
	.seek_first = mt_iter_seek_first,
	.seek = mt_iter_seek,
	.next = mt_iter_next,
	.destroy = mt_iter_destroy,
};

int kv_memtable_iter(struct kv_memtable *mt, uint64_t base_lsn, uint64_t limit,
		     struct kv_iiter **out)
{
	struct mt_iter *mi = calloc(1, sizeof(*mi));

	if (!mi)
		return -ENOMEM;
	mi->it.ops = &mt_iter_ops;
	mi->mt = mt;
	mi->base_lsn = base_lsn;
	mi->limit = limit;
	*out = &mi->it;
	return 0;
}
