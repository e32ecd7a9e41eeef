/* SPDX-License-Identifier: MIT */
/*
 * cache.c - the block cache (interface and contract: cache.h).
 *
 * Layout. The cache is KV_CACHE_SHARDS shards, picked by the top bits of a
 * 64-bit mix of (file, off); each shard is an independent LRU cache with
 * capacity / KV_CACHE_SHARDS bytes (rounded down, so the shards together
 * never exceed the capacity). A shard holds:
 *
 *   - an intrusive chained hash table of all its *live* entries (the ones a
 *     lookup can find), indexed by the low bits of the same mix, doubled
 *     when it holds more entries than buckets;
 *   - a circular LRU list (sentinel shard->lru) of the live entries that no
 *     handle pins, least recently released first.
 *
 * An entry is the handle: a pinned handle is a pointer to an entry whose
 * refs > 0. Entry states and the function that moves each:
 *
 *   live, pinned     in the table, not on the LRU list (insert, lookup)
 *   live, unpinned   in the table and on the LRU list (release: last ref)
 *   orphan, pinned   out of the table, not on the list: erased by
 *                    kv_cache_erase_file while pinned; freed by the release
 *                    of its last ref
 *   freed            evicted from the LRU head, or erased while unpinned
 *
 * Invariants (under the shard mutex):
 *   1. an entry is on the LRU list iff it is live and refs == 0;
 *   2. shard->usage is the sum of the charges of its live and orphan
 *      entries: an entry is charged until it is freed;
 *   3. after any operation returns, usage > cap only if every unpinned
 *      live entry has been evicted (the LRU list is empty): so once every
 *      handle is released, usage <= cap in every shard.
 *
 * Locking. shard->mu guards everything in the shard and the mutable fields
 * of its entries. It is held for a hash lookup and a few list splices; the
 * values' free functions and free() run after it is dropped, on entries
 * already unlinked from everything. malloc of a new entry happens before the
 * lock is taken; only the rare table doubling allocates under it (and a
 * failed doubling is harmless: the chains just get longer). There is no lock
 * order: no code holds two shard mutexes at once.
 */
#include "cache.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#define KV_CACHE_SHARD_BITS 4
#define KV_CACHE_SHARDS (1u << KV_CACHE_SHARD_BITS)
#define KV_CACHE_SHARD_MIN (256u << 10) /* bytes: room for dozens of blocks */
#define KV_CACHE_MIN_BUCKETS 16u

/* An entry; handed out as the handle. */
struct kv_cache_handle {
	struct kv_cache_handle *hnext;	     /* [shard->mu] hash chain */
	struct kv_cache_handle *prev, *next; /* [shard->mu] LRU list (invariant 1) */
	uint64_t file, off;		     /* [immutable] the key */
	uint64_t hash;			     /* [immutable] mix of the key */
	void *value;			     /* [immutable] owned by the entry */
	void (*free_fn)(void *);	     /* [immutable] */
	size_t charge;			     /* [immutable] */
	uint32_t refs;			     /* [shard->mu] pins */
	bool live;			     /* [shard->mu] in the hash table */
};

struct kv_cache_shard {
	pthread_mutex_t mu;
	struct kv_cache_handle **buckets;	   /* [mu] nbuckets chains */
	size_t nbuckets;			   /* [mu] a power of two */
	size_t count;				   /* [mu] live entries */
	size_t usage;				   /* [mu] bytes charged (invariant 2) */
	size_t cap;				   /* [immutable] */
	struct kv_cache_handle lru;		   /* [mu] sentinel: lru.next is the oldest */
	uint64_t hits, misses, inserts, evictions; /* [mu] */
} __attribute__((aligned(64)));

struct kv_cache {
	size_t capacity;  /* [immutable] */
	unsigned nshards; /* [immutable] shards in use: a power of 2, each
			   * holding at least KV_CACHE_SHARD_MIN bytes when
			   * the capacity allows, so a small cache still keeps
			   * whole blocks */
	struct kv_cache_shard shard[KV_CACHE_SHARDS];
};

/* A finalizer mix (Murmur3's fmix64) of the key: every bit of file and off
 * reaches the top bits, which pick the shard, and the low bits (bucket). */
static uint64_t key_hash(uint64_t file, uint64_t off)
{
	uint64_t h = file * 0x9e3779b97f4a7c15ull ^ off;

	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

static struct kv_cache_shard *shard_of(struct kv_cache *c, uint64_t hash)
{
	return &c->shard[(hash >> (64 - KV_CACHE_SHARD_BITS)) & (c->nshards - 1)];
}

static void lru_unlink(struct kv_cache_handle *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
	e->prev = e->next = NULL;
}

/* Append at the most recently used end. */
static void lru_append(struct kv_cache_shard *s, struct kv_cache_handle *e)
{
	e->next = &s->lru;
	e->prev = s->lru.prev;
	e->prev->next = e;
	s->lru.prev = e;
}

static struct kv_cache_handle **bucket_of(struct kv_cache_shard *s, uint64_t hash)
{
	return &s->buckets[hash & (s->nbuckets - 1)];
}

static struct kv_cache_handle *table_find(struct kv_cache_shard *s, uint64_t hash, uint64_t file,
					  uint64_t off)
{
	struct kv_cache_handle *e = *bucket_of(s, hash);

	while (e && (e->file != file || e->off != off))
		e = e->hnext;
	return e;
}

static void table_remove(struct kv_cache_shard *s, struct kv_cache_handle *e)
{
	struct kv_cache_handle **pp = bucket_of(s, e->hash);

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	e->hnext = NULL;
	e->live = false;
	s->count--;
}

/* Double the table when its load exceeds 1; on ENOMEM keep the old one. */
static void table_grow(struct kv_cache_shard *s)
{
	size_t n = s->nbuckets * 2, i;
	struct kv_cache_handle **b, *e, *next;

	b = calloc(n, sizeof(*b));
	if (!b)
		return;
	for (i = 0; i < s->nbuckets; i++) {
		for (e = s->buckets[i]; e; e = next) {
			next = e->hnext;
			e->hnext = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	}
	free(s->buckets);
	s->buckets = b;
	s->nbuckets = n;
}

static void table_insert(struct kv_cache_shard *s, struct kv_cache_handle *e)
{
	struct kv_cache_handle **b;

	if (s->count >= s->nbuckets)
		table_grow(s);
	b = bucket_of(s, e->hash);
	e->hnext = *b;
	*b = e;
	e->live = true;
	s->count++;
}

/* Take an entry out of the cache's books and put it on @dead (chained
 * through hnext) to be freed once the mutex is dropped. */
static void retire(struct kv_cache_shard *s, struct kv_cache_handle *e,
		   struct kv_cache_handle **dead)
{
	s->usage -= e->charge;
	e->hnext = *dead;
	*dead = e;
}

/* Evict from the LRU head while over capacity (invariant 3). */
static void evict(struct kv_cache_shard *s, struct kv_cache_handle **dead)
{
	struct kv_cache_handle *e;

	while (s->usage > s->cap && s->lru.next != &s->lru) {
		e = s->lru.next;
		lru_unlink(e);
		table_remove(s, e);
		retire(s, e, dead);
		s->evictions++;
	}
}

static void free_entry(struct kv_cache_handle *e)
{
	if (e->free_fn)
		e->free_fn(e->value);
	free(e);
}

static void free_list(struct kv_cache_handle *dead)
{
	struct kv_cache_handle *next;

	for (; dead; dead = next) {
		next = dead->hnext;
		free_entry(dead);
	}
}

int kv_cache_create(size_t capacity, struct kv_cache **out)
{
	struct kv_cache *c;
	unsigned i;

	*out = NULL;
	c = aligned_alloc(_Alignof(struct kv_cache), sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->capacity = capacity;
	c->nshards = KV_CACHE_SHARDS;
	while (c->nshards > 1 && capacity / c->nshards < KV_CACHE_SHARD_MIN)
		c->nshards /= 2;
	for (i = 0; i < KV_CACHE_SHARDS; i++) {
		struct kv_cache_shard *s = &c->shard[i];

		*s = (struct kv_cache_shard){ .cap = i < c->nshards ? capacity / c->nshards : 0 };
		s->lru.next = s->lru.prev = &s->lru;
		s->nbuckets = KV_CACHE_MIN_BUCKETS;
		s->buckets = calloc(s->nbuckets, sizeof(*s->buckets));
		if (!s->buckets || pthread_mutex_init(&s->mu, NULL)) {
			free(s->buckets);
			while (i-- > 0) {
				pthread_mutex_destroy(&c->shard[i].mu);
				free(c->shard[i].buckets);
			}
			free(c);
			return -ENOMEM;
		}
	}
	*out = c;
	return 0;
}

void kv_cache_destroy(struct kv_cache *c)
{
	struct kv_cache_handle *e, *next;
	unsigned i;
	size_t b;

	if (!c)
		return;
	for (i = 0; i < KV_CACHE_SHARDS; i++) {
		struct kv_cache_shard *s = &c->shard[i];

		for (b = 0; b < s->nbuckets; b++) {
			for (e = s->buckets[b]; e; e = next) {
				next = e->hnext;
				assert(e->refs == 0); /* a handle outlived the cache */
				free_entry(e);
			}
		}
		free(s->buckets);
		pthread_mutex_destroy(&s->mu);
	}
	free(c);
}

struct kv_cache_handle *kv_cache_lookup(struct kv_cache *c, uint64_t file, uint64_t off)
{
	uint64_t hash = key_hash(file, off);
	struct kv_cache_shard *s = shard_of(c, hash);
	struct kv_cache_handle *e;

	pthread_mutex_lock(&s->mu);
	e = table_find(s, hash, file, off);
	if (e) {
		if (e->refs++ == 0)
			lru_unlink(e);
		s->hits++;
	} else {
		s->misses++;
	}
	pthread_mutex_unlock(&s->mu);
	return e;
}

struct kv_cache_handle *kv_cache_insert(struct kv_cache *c, uint64_t file, uint64_t off,
					void *value, size_t charge, void (*free_fn)(void *))
{
	uint64_t hash = key_hash(file, off);
	struct kv_cache_shard *s = shard_of(c, hash);
	struct kv_cache_handle *e, *old, *dead = NULL;

	e = malloc(sizeof(*e));
	if (!e) {
		if (free_fn)
			free_fn(value);
		return NULL;
	}
	*e = (struct kv_cache_handle){ .file = file,
				       .off = off,
				       .hash = hash,
				       .value = value,
				       .free_fn = free_fn,
				       .charge = charge,
				       .refs = 1 };
	pthread_mutex_lock(&s->mu);
	old = table_find(s, hash, file, off);
	if (old) {
		/* Lost the race: keep the first value, drop ours. */
		if (old->refs++ == 0)
			lru_unlink(old);
	} else {
		table_insert(s, e);
		s->usage += charge;
		s->inserts++;
		evict(s, &dead);
	}
	pthread_mutex_unlock(&s->mu);
	free_list(dead);
	if (old) {
		free_entry(e);
		return old;
	}
	return e;
}

void *kv_cache_value(struct kv_cache_handle *h)
{
	return h->value;
}

void kv_cache_release(struct kv_cache *c, struct kv_cache_handle *h)
{
	struct kv_cache_shard *s = shard_of(c, h->hash);
	struct kv_cache_handle *dead = NULL;

	pthread_mutex_lock(&s->mu);
	assert(h->refs > 0);
	if (--h->refs == 0) {
		if (h->live) {
			lru_append(s, h);
			evict(s, &dead);
		} else {
			retire(s, h, &dead); /* an orphan: erased while pinned */
		}
	}
	pthread_mutex_unlock(&s->mu);
	free_list(dead);
}

/* Erase @file's entries from one shard: unpinned ones are freed, pinned ones
 * become orphans (freed by their last release). */
static void erase_in_shard(struct kv_cache_shard *s, uint64_t file)
{
	struct kv_cache_handle *e, *next, *dead = NULL;
	size_t b;

	pthread_mutex_lock(&s->mu);
	for (b = 0; b < s->nbuckets; b++) {
		for (e = s->buckets[b]; e; e = next) {
			next = e->hnext;
			if (e->file != file)
				continue;
			table_remove(s, e);
			if (e->refs == 0) {
				lru_unlink(e);
				retire(s, e, &dead);
			}
		}
	}
	pthread_mutex_unlock(&s->mu);
	free_list(dead);
}

/* Every shard is walked: a file's blocks are spread over all of them. This
 * holds each shard's mutex for a scan of its table, which is fine for the
 * rare deletion of a table but is the one long hold in this file. */
void kv_cache_erase_file(struct kv_cache *c, uint64_t file)
{
	unsigned i;

	for (i = 0; i < KV_CACHE_SHARDS; i++)
		erase_in_shard(&c->shard[i], file);
}

void kv_cache_stats(struct kv_cache *c, struct kv_cache_stats *st)
{
	unsigned i;

	*st = (struct kv_cache_stats){ .capacity = c->capacity };
	for (i = 0; i < KV_CACHE_SHARDS; i++) {
		struct kv_cache_shard *s = &c->shard[i];

		pthread_mutex_lock(&s->mu);
		st->hits += s->hits;
		st->misses += s->misses;
		st->inserts += s->inserts;
		st->evictions += s->evictions;
		st->usage += s->usage;
		pthread_mutex_unlock(&s->mu);
	}
}
