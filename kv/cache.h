/* SPDX-License-Identifier: MIT */
/*
 * cache.h - the block cache: a sharded LRU of decoded table blocks keyed by
 * (table file number, block offset), bounded by a byte capacity.
 *
 * Each shard has its own mutex, held for a few instructions (hash lookup,
 * list splice), never across I/O. An entry handed out by lookup or insert
 * is pinned until released; pinned entries are never freed, and may make
 * the cache exceed its capacity briefly. File numbers are never reused, so
 * blocks of a deleted table simply age out (or kv_cache_erase_file drops
 * them at once).
 */
#ifndef KV_CACHE_H
#define KV_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct kv_cache;
struct kv_cache_handle;

/* @capacity 0 makes a cache that keeps nothing unpinned. */
int kv_cache_create(size_t capacity, struct kv_cache **out);
/* All handles must have been released. */
void kv_cache_destroy(struct kv_cache *c);

/* A pinned handle, or NULL on a miss. */
struct kv_cache_handle *kv_cache_lookup(struct kv_cache *c, uint64_t file, uint64_t off);
/*
 * Insert @value (ownership passes to the cache; @free_fn(value) frees it when
 * evicted) charging @charge bytes, and return it pinned. If the key is
 * already present (another thread inserted it meanwhile), @value is freed and
 * the existing entry is returned pinned. NULL only on -ENOMEM (value freed).
 */
struct kv_cache_handle *kv_cache_insert(struct kv_cache *c, uint64_t file, uint64_t off,
					void *value, size_t charge, void (*free_fn)(void *));
void *kv_cache_value(struct kv_cache_handle *h);
void kv_cache_release(struct kv_cache *c, struct kv_cache_handle *h);
/* Drop the unpinned blocks of @file (pinned ones go when released). */
void kv_cache_erase_file(struct kv_cache *c, uint64_t file);

struct kv_cache_stats {
	uint64_t hits, misses, inserts, evictions;
	uint64_t usage; /* bytes charged now */
	uint64_t capacity;
};
void kv_cache_stats(struct kv_cache *c, struct kv_cache_stats *st);

#endif /* KV_CACHE_H */
