/* SPDX-License-Identifier: MIT */
/*
 * rangedel.h - range tombstones. A tombstone [start, end) at lsn deletes
 * every version of every key k with start <= k < end and version lsn < lsn,
 * for readers whose snapshot sees the tombstone (lsn < snapshot).
 *
 * A struct kv_rdset is an immutable, fragmented set: the tombstones cut into
 * non-overlapping fragments sorted by start, each fragment with the lsns of
 * every tombstone covering it, descending. Tables build one at open from
 * their range-del block; iterators and compaction build one from several
 * sources. Queries are a binary search.
 */
#ifndef KV_RANGEDEL_H
#define KV_RANGEDEL_H

#include <stddef.h>
#include <stdint.h>

struct kv_rtomb {
	const uint8_t *start;
	size_t slen;
	const uint8_t *end;
	size_t elen;
	uint64_t lsn;
};

struct kv_rdset;

/* Build a set from @n tombstones in any order (keys are copied). An empty
 * set (n == 0) is valid. 0 or -ENOMEM. */
int kv_rdset_build(const struct kv_rtomb *t, size_t n, struct kv_rdset **out);
void kv_rdset_free(struct kv_rdset *s);
size_t kv_rdset_fragments(const struct kv_rdset *s);

/* The largest lsn below @snap of a tombstone covering @key; 0 if none
 * (no version has lsn 0). */
uint64_t kv_rdset_cover(const struct kv_rdset *s, const void *key, size_t klen, uint64_t snap);

/* Fragment @i (0 <= i < kv_rdset_fragments): its bounds and its lsns,
 * descending. Pointers live as long as the set. */
void kv_rdset_fragment(const struct kv_rdset *s, size_t i, struct kv_rtomb *bounds,
		       const uint64_t **lsns, size_t *nlsns);

/* A growable list of tombstones, to gather several sources into one set. */
struct kv_rtombs {
	struct kv_rtomb *t;
	size_t n, cap;
};
int kv_rtombs_add(struct kv_rtombs *l, const struct kv_rtomb *t);
/* Add every tombstone of @s with lsn below @below (keys are not copied:
 * @s must outlive the list). */
int kv_rtombs_add_set(struct kv_rtombs *l, const struct kv_rdset *s, uint64_t below);

#endif /* KV_RANGEDEL_H */
