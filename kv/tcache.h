/* SPDX-License-Identifier: MIT */
/*
 * tcache.h - the table file cache: bounds how many table files the db holds
 * open (kv_options.max_open_tables), as LevelDB's table cache does, but
 * smaller: an open table (table.h) keeps its parsed metadata for its whole
 * life and only borrows its file descriptor from here for each data-block
 * read, so a db of many thousand tables holds a few hundred fds.
 *
 * Each open table owns one slot (struct kv_tfile) from kv_table_open to
 * kv_table_close; no lookup by name is ever needed. A slot's file is opened
 * on first use, pinned while a read uses it, kept open while idle, and
 * closed when the cache needs room (then reopened, O_RDONLY by the same path
 * through the same env, on the next use) or when the slot is removed. A
 * pinned file is never closed. Which idle file goes: CLOCK, an LRU
 * approximation whose hits need no lock (tcache.c says why).
 *
 * Thread safety: pin and unpin may be called from any number of threads on
 * the same or different slots at once; pinning an open file is one atomic
 * compare-and-swap on the slot. Add and remove are called by the slot's
 * owner while no read uses the slot. One mutex, taken to open, evict or
 * remove, held for a few list splices, never across open(2), close(2) or any
 * read; a leaf in the lock order (db.h).
 *
 * Bound: the cache holds at most capacity + T files open, T being the
 * threads inside a pin..unpin window at the time (each holds at most one
 * pin, one open in flight or one file it is closing); with no reader
 * active, at most capacity.
 */
#ifndef KV_TCACHE_H
#define KV_TCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "env.h"

struct kv_tcache;
struct kv_tfile;

/* @capacity >= 1 files kept open; -EINVAL or -ENOMEM. */
int kv_tcache_create(size_t capacity, struct kv_tcache **out);
/* Every slot must have been removed. */
void kv_tcache_destroy(struct kv_tcache *c);

/* A new slot for the file at @path (copied), read through @env; not yet
 * open. 0 or -ENOMEM. */
int kv_tcache_add(struct kv_tcache *c, struct kv_env *env, const char *path, struct kv_tfile **out);
/* Close the slot's file if it is open and free the slot. No pin may be
 * held; once it returns, the cache holds no fd of the file (which may then
 * be unlinked). */
void kv_tcache_remove(struct kv_tcache *c, struct kv_tfile *tf);

/*
 * The slot's file, open and pinned until kv_tcache_unpin: 0, or the open's
 * negative errno (-ENOENT if the file vanished, -EMFILE, ...; nothing is
 * logged: the caller knows what it was reading). Opening a closed file may
 * first close an idle one that was not used lately.
 */
int kv_tcache_pin(struct kv_tcache *c, struct kv_tfile *tf, struct kv_file **out);
void kv_tcache_unpin(struct kv_tcache *c, struct kv_tfile *tf);

struct kv_tcache_stats {
	uint64_t opens;	    /* files opened: first uses and reopens */
	uint64_t evictions; /* idle files closed to stay within the capacity */
	size_t open;	    /* files open now, counting opens in flight */
	size_t capacity;
};
void kv_tcache_stats(struct kv_tcache *c, struct kv_tcache_stats *st);

#endif /* KV_TCACHE_H */
