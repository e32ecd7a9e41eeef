/* SPDX-License-Identifier: MIT */
/*
 * memtable.h - the MVCC memtable: an ordered, insert-only concurrent skiplist
 * whose nodes point at versions in the log buffer.
 *
 * A node holds up to three version refs (logbuf.h), newest first:
 *
 *   ver[0]  the newest version appended (possibly uncommitted);
 *   ver[1]  the newest version of an epoch older than ver[0]'s;
 *   ver[2]  the newest version of an epoch older than ver[1]'s.
 *
 * The design note names two pointers, "last committed" and "last
 * uncommitted". Two are not enough once appends continue into the next epoch
 * while a commit is in flight: a key written in the sealed epoch S and again
 * in the open epoch S + 1 has two unpublished versions, and a reader must
 * still find the committed one under both. At most two epochs are unpublished
 * at a time (logbuf.c, I2), so three slots always hold the newest committed
 * version:
 *
 *   write of ref v in epoch E (writers serialize on the node's spinlock,
 *   held for a few instructions, never across I/O): the slots hold versions
 *   of distinct epochs ordered by offset; v takes its place by offset:
 *     - a slot of epoch E newer than v  -> v is superseded; drop it;
 *     - a slot of epoch E older than v  -> replace it (nobody can read it);
 *     - otherwise                        -> insert v there, pushing older
 *                                           slots down, the oldest out.
 *   A version of epoch E may arrive after one of E + 1 (its writer was slow
 *   between reservation and indexing); it is inserted below it, never
 *   dropped, since E is published first. What falls out is older than a
 *   committed slot: while a writer of epoch E has not released, E is open or
 *   sealed waiting for it, so at most two epochs are unpublished (E - 1 and
 *   E, or E and E + 1) and the third slot is always published.
 *
 *   read (no lock, never waits): d = durable (acquire); load ver[0], ver[1],
 *   ver[2] in that order (acquire) and take the first whose offset is below d.
 *   Writers store in the opposite order (ver[2] first), so a reader sees each
 *   version at an index no lower than where it was when the read began; if
 *   none qualifies and durable moved meanwhile, it retries.
 *
 * The KV_READ_LATEST read takes ver[0].
 *
 * Older versions are kept for snapshots and iterators: the version pushed out
 * of ver[2] goes to the head of the node's old list (arena entries, newest
 * first, each immutable once linked) *before* the slots shift, so a reader
 * walking ver[0..2] then the old list still meets every version at an index
 * no lower than where it was. Only a version replaced within its own epoch is
 * forgotten: no snapshot can separate two versions of one epoch (snapshots
 * are commit points, and a commit publishes whole epochs).
 *
 * The hash index. Point lookups do not walk the skiplist: every node is
 * also on the chain of its key's hash bucket (a fixed array sized from the
 * log buffer's capacity, chains pushed by CAS at the head, never unlinked),
 * so a lookup costs a hash, one bucket load and a short chain walk that
 * compares the stored hash before the key. The skiplist's level 0 stays the
 * one arbiter of "one node per key": a node is pushed on its bucket only
 * after it is linked at level 0, by whichever writer first applies a
 * version to it, under the node's spinlock (the hashed flag), and before
 * that writer's kv_memtable_apply returns. So a version whose apply has
 * returned is found through the hash, and a key missing from the hash has
 * no version that any reader is entitled to see yet: records are released
 * (and so published) only after they are indexed.
 *
 * Range tombstones (KV_OP_DELRANGE) are not nodes: each is pushed (CAS) on
 * the memtable's rdel list, newest first, and read like a version (visible
 * when its op offset is below the reader's limit).
 */
#ifndef KV_MEMTABLE_H
#define KV_MEMTABLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "logbuf.h"

#define KV_SKIP_MAX_HEIGHT 20

struct kv_oldver {
	uint64_t ref;		/* [immutable] */
	struct kv_oldver *next; /* [immutable] older */
};

struct kv_mrdel {
	uint64_t op_off;       /* [immutable] the op in the log buffer */
	const uint8_t *start;  /* [immutable] in the log buffer */
	const uint8_t *end;    /* [immutable] */
	uint32_t slen, elen;   /* [immutable] */
	struct kv_mrdel *next; /* [immutable once pushed] older */
};

/*
 * The head of a published view of the memtable's range tombstones (the
 * private struct view of memtable.c starts with it): the tombstones up to
 * @below (exclusive, a list node) as a few fragmented sets, newest first, so
 * that a lookup scans only a short tail of newer list nodes and binary
 * searches each set (see the top of memtable.c for the bounds). A reader
 * rebuilds a view when its tail grows past a small fixed count. Superseded
 * views hang from @older until kv_memtable_frag_detach hands them to the db,
 * which frees them after a grace period (every lookup runs inside a guard).
 */
struct kv_mfrag {
	struct kv_rdset *set;	/* [immutable] lsn = op offset */
	struct kv_mrdel *below; /* [immutable] the list head it was built from */
	size_t count;		/* [immutable] tombstones in it */
	struct kv_mfrag *older; /* [frag_mu] superseded views, newest first */
};

struct kv_mnode {
	_Atomic uint64_t ver[3];	   /* [lock to write; atomic to read] refs */
	_Atomic(struct kv_oldver *) old;   /* [lock to write; atomic to read] */
	_Atomic(struct kv_mnode *) hnext;  /* [lock to write, once, before the push
					    * that publishes it; then immutable]
					    * next in its hash bucket */
	uint64_t hash;			   /* [immutable] the key's hash */
	const uint8_t *key;		   /* [immutable] in the log buffer */
	uint32_t klen;			   /* [immutable] */
	_Atomic uint8_t lock;		   /* writers' spinlock over ver[], hashed */
	uint8_t height;			   /* [immutable] */
	uint8_t hashed;			   /* [lock] pushed on its hash bucket */
	uint64_t pw[2];			   /* [immutable] the key's first 16 bytes,
					    * zero-padded, as big-endian words: a
					    * skiplist step compares these, next to
					    * next[], and reads the key in the log
					    * buffer only on a tie */
	_Atomic(struct kv_mnode *) next[]; /* [atomic; set once per insert] */
};

struct kv_arena_chunk;

struct kv_memtable {
	/* Read by every reader: kept apart from the writers' counters below. */
	struct kv_logbuf *lb;		      /* [immutable] whose refs the nodes hold */
	struct kv_mnode *head;		      /* [immutable] sentinel of full height */
	_Atomic(struct kv_mnode *) *hbuckets; /* [immutable array; each bucket: atomic
					       * CAS push] the hash index */
	uint64_t hmask;			      /* [immutable] buckets - 1 */
	_Atomic int height;		      /* [atomic] highest level in use */
	_Atomic(struct kv_mrdel *) rdels;     /* [atomic CAS push] range tombstones */
	_Atomic uint64_t nrdels;	      /* [atomic] */
	_Atomic(struct kv_mfrag *) frag;      /* [atomic; replaced under frag_mu] */
	pthread_mutex_t frag_mu;

	_Alignas(64) pthread_mutex_t arena_mu; /* guards the arena fields below */
	struct kv_arena_chunk *chunks;	       /* [arena_mu] */
	size_t chunk_used;		       /* [arena_mu] */
	_Atomic uint64_t arena_bytes;	       /* [atomic] memory held by nodes */
	_Atomic uint64_t nodes;		       /* [atomic] distinct keys */
	_Atomic uint64_t replaced;	       /* [atomic] versions replaced in place */
	_Atomic uint64_t superseded;	       /* [atomic] versions dropped as older */
};

/* Take the superseded range tombstone views (with the sets only they hold)
 * from @mt; free them with kv_memtable_frag_free once no lookup can be using
 * them (after a grace period). NULL if none. */
struct kv_mfrag *kv_memtable_frag_detach(struct kv_memtable *mt);
void kv_memtable_frag_free(struct kv_mfrag *chain);

int kv_memtable_init(struct kv_memtable *mt, struct kv_logbuf *lb);
void kv_memtable_destroy(struct kv_memtable *mt);

/*
 * Index version @ref (the op at buffer offset @op_off, whose key is @key of
 * @klen bytes in the buffer). Thread-safe against other writers and readers.
 * Returns 0 or -ENOMEM.
 */
int kv_memtable_apply(struct kv_memtable *mt, uint64_t ref, uint64_t op_off, const uint8_t *key,
		      uint32_t klen);

/*
 * Find @key. Returns 1 and *op_off (the buffer offset of the op: a put or a
 * delete) of the newest committed version (or the newest of all with
 * @latest); 0 if this memtable has no such version (look in older sources).
 */
int kv_memtable_get(struct kv_memtable *mt, const void *key, size_t klen, int latest,
		    uint64_t *op_off);

/* As kv_memtable_get, the newest version whose op offset is below @limit
 * (a snapshot; the caller makes sure everything below it is committed). */
int kv_memtable_get_at(struct kv_memtable *mt, const void *key, size_t klen, uint64_t limit,
		       uint64_t *op_off);

/*
 * The hash of @key the index uses: XXH3-64 with seed 0, the same function
 * as the tables' bloom hash (kv_bloom_hash, table_fmt.h), so a point read
 * hashes its key once for every memtable and table it asks.
 */
uint64_t kv_memtable_hash(const void *key, size_t klen);
/* kv_memtable_get_at with @hash = kv_memtable_hash(key, klen). */
int kv_memtable_get_at_hashed(struct kv_memtable *mt, const void *key, size_t klen, uint64_t hash,
			      uint64_t limit, uint64_t *op_off);

/* Index range tombstone [@start, @end) of the op at @op_off. 0 or -ENOMEM. */
int kv_memtable_add_rdel(struct kv_memtable *mt, uint64_t op_off, const uint8_t *start,
			 uint32_t slen, const uint8_t *end, uint32_t elen);
/*
 * The newest range tombstone covering @key whose op offset is below @limit
 * (UINT64_MAX: all of them): 1 and *op_off, or 0.
 */
int kv_memtable_rdel_cover(struct kv_memtable *mt, const void *key, size_t klen, uint64_t limit,
			   uint64_t *op_off);

/*
 * An internal iterator (ikey.h) over every version with op offset below
 * @limit, as internal keys with lsn = @base_lsn + op offset. Nodes inserted
 * after creation show up only with their versions below the limit. The
 * memtable must outlive it.
 */
struct kv_iiter;
int kv_memtable_iter(struct kv_memtable *mt, uint64_t base_lsn, uint64_t limit,
		     struct kv_iiter **out);

/* Call @fn for every node's versions (for live-byte accounting); not
 * concurrent with writers' shifts in any way that matters for statistics. */
void kv_memtable_for_each(struct kv_memtable *mt, void (*fn)(void *arg, struct kv_mnode *n),
			  void *arg);

/*
 * The version ref in the node stores the *op* offset (not the record's) in
 * its low 40 bits, so readers go straight to the op. Ops start after their
 * record's header, so op offsets are as ordered as record offsets.
 */

#endif /* KV_MEMTABLE_H */
