/* SPDX-License-Identifier: MIT */
/*
 * ikey.h - internal keys, the order of everything below the memtable, and
 * the internal iterator interface shared by tables, memtables, the merging
 * iterator, flush and compaction.
 *
 * An internal key is the user key followed by an 8-byte trailer:
 *
 *   user key (klen bytes) | trailer (u64, little-endian) = lsn << 8 | kind
 *
 * lsn is the global log sequence number of the version: the LSN of its op
 * (segment base_lsn + the op's offset in the segment), unique per version
 * and increasing with the write order. A read at snapshot S sees exactly
 * the versions with lsn < S (S is always a commit boundary, so a batch is
 * seen whole or not at all). Internal keys sort by user key (memcmp, then
 * length), then by trailer *descending*: newest version first.
 *
 * Range tombstones are not internal keys; they live in their own list per
 * source (rangedel.h).
 */
#ifndef KV_IKEY_H
#define KV_IKEY_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wal.h"

#define KV_IKEY_TRAILER 8u
#define KV_LSN_MAX ((1ull << 56) - 1)

enum kv_ikind {
	KV_IK_DEL = 0, /* point tombstone */
	KV_IK_PUT = 1,
	KV_IK_SEEK = 0xff, /* only in seek targets: sorts before every kind */
};

static inline uint64_t kv_trailer(uint64_t lsn, unsigned kind)
{
	return (lsn << 8) | kind;
}

/* Write the internal key of (@key, @lsn, @kind) at @out (klen + 8 bytes). */
static inline void kv_ikey_make(uint8_t *out, const void *key, size_t klen, uint64_t lsn,
				unsigned kind)
{
	memcpy(out, key, klen);
	kv_put_le64(out + klen, kv_trailer(lsn, kind));
}

static inline size_t kv_ikey_ulen(size_t iklen)
{
	return iklen - KV_IKEY_TRAILER;
}
static inline uint64_t kv_ikey_trailer(const uint8_t *ik, size_t iklen)
{
	return kv_get_le64(ik + iklen - KV_IKEY_TRAILER);
}
static inline uint64_t kv_ikey_lsn(const uint8_t *ik, size_t iklen)
{
	return kv_ikey_trailer(ik, iklen) >> 8;
}
static inline unsigned kv_ikey_kind(const uint8_t *ik, size_t iklen)
{
	return (unsigned)(kv_ikey_trailer(ik, iklen) & 0xff);
}

/* User key order: memcmp, then the shorter first. */
static inline int kv_ukey_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

/* Internal key order: user key ascending, then trailer descending. */
static inline int kv_ikey_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	int c = kv_ukey_cmp(a, alen - KV_IKEY_TRAILER, b, blen - KV_IKEY_TRAILER);
	uint64_t ta, tb;

	if (c)
		return c;
	ta = kv_ikey_trailer(a, alen);
	tb = kv_ikey_trailer(b, blen);
	return ta > tb ? -1 : ta < tb;
}

/* A growable copy of one key (the current key of a scan). */
struct kv_keybuf {
	uint8_t *p;
	size_t len, cap;
};

/* Make @b hold a copy of @key. 0 or -ENOMEM (then @b is unchanged). */
static inline int kv_keybuf_set(struct kv_keybuf *b, const void *key, size_t len)
{
	if (b->cap < len) {
		uint8_t *p = realloc(b->p, len);

		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = len;
	}
	memcpy(b->p, key, len);
	b->len = len;
	return 0;
}

/*
 * An internal iterator: ordered by kv_ikey_cmp, forward only. After any
 * positioning call, valid says whether key/val hold an entry; when it turns
 * 0, err says why (0 = the end). key and val stay valid until the next call
 * on the iterator.
 */
struct kv_iiter;

struct kv_iiter_ops {
	void (*seek_first)(struct kv_iiter *it);
	/* First entry >= @ik (an internal key). */
	void (*seek)(struct kv_iiter *it, const uint8_t *ik, size_t iklen);
	void (*next)(struct kv_iiter *it);
	void (*destroy)(struct kv_iiter *it);
};

struct kv_iiter {
	const struct kv_iiter_ops *ops;
	int valid;
	int err;	    /* 0, or the negative errno that stopped it */
	const uint8_t *key; /* internal key */
	size_t klen;
	const uint8_t *val;
	size_t vlen;
};

#endif /* KV_IKEY_H */
