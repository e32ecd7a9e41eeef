/* SPDX-License-Identifier: MIT */
/*
 * Private to the kvfs library (the fs/ sources): the mounted filesystem's state and
 * the helpers every operation shares. See DESIGN.md, "Locking".
 *
 * How an operation that writes goes:
 *   1. kvfs_lock_inodes() on every inode it changes (striped mutexes, taken
 *      in stripe order, so multi-inode operations cannot deadlock);
 *   2. read the current state with kvfs_inode_read()/kv_get(KV_READ_LATEST):
 *      the newest appended versions, so an operation builds on the one
 *      before it even if that one's group commit is still in flight;
 *   3. build one kv_batch (kvfs_batch()) with every key it changes;
 *   4. kvfs_commit() appends it (atomic: all or nothing, after a crash too);
 *   5. kvfs_unlock_inodes(), before anything waits for durability.
 * The stripe locks are held only for in-memory work and reads of the
 * current state, never across a wait for a commit.
 */
#ifndef KVFS_INTERNAL_H
#define KVFS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "kv.h"
#include "kvfs.h"
#include "schema.h"

#define KVFS_LOCK_STRIPES 1024u
/* log2 of the node table's initial chains; it doubles when it holds more
 * nodes than chains. */
#define KVFS_NODE_BITS 12u
/* Inode numbers reserved per superblock write (see kvfs_alloc_ino). */
#define KVFS_INO_BATCH 1024u

/* An inode the kernel (or an open file) holds a reference to. */
struct kvfs_node {
	uint64_t ino;		/* immutable */
	uint64_t nlookup;	/* nodes_lock */
	uint64_t nopen;		/* nodes_lock */
	struct kvfs_node *next; /* nodes_lock: hash chain */
};

struct kvfs {
	/* Immutable after kvfs_open. */
	struct kv_db *db;
	char *store;
	enum kvfs_durability durability;
	int read_only;
	uint32_t block_size;
	uint32_t inline_max;
	struct kvfs_super sb; /* as read at open; sb.ino_next is stale */
	void (*log)(void *ctx, int level, const char *msg); /* NULL = stderr */
	void *log_ctx;

	/* Namespace locks, by inode number (kvfs_lock_inodes). */
	pthread_mutex_t stripes[KVFS_LOCK_STRIPES];
	/* Held by renames across directories, before the stripes (fs/ns.c). */
	pthread_mutex_t rename_lock;

	/* The inode allocator: alloc_lock protects both. */
	pthread_mutex_t alloc_lock;
	uint64_t ino_next;     /* next number to hand out */
	uint64_t ino_reserved; /* superblock's ino_next as last appended */

	/* Referenced inodes: nodes_lock protects the table and each node. */
	pthread_mutex_t nodes_lock;
	struct kvfs_node **nodes; /* 2^nodes_bits hash chains */
	unsigned nodes_bits;
	size_t nodes_count;

	atomic_int_least64_t inodes_used; /* for statfs: counted at open, then
					   * +1 per create, -1 per reclaim */
};

/* ---- locks ------------------------------------------------------------ */

/* Lock (unlock) the stripes of @n inodes (n <= 4; 0 entries are ignored). */
void kvfs_lock_inodes(struct kvfs *fs, const uint64_t *inos, int n);
void kvfs_unlock_inodes(struct kvfs *fs, const uint64_t *inos, int n);
/*
 * With the stripes of the @n inodes @held locked (by kvfs_lock_inodes and
 * earlier kvfs_lock_add calls), also lock @ino's without breaking the
 * stripe order: it waits only for a stripe above all held ones and
 * otherwise only tries. True if @ino's stripe is now held (release it with
 * the others in one kvfs_unlock_inodes); false if nothing changed: then
 * unlock and take them all at once with kvfs_lock_inodes.
 */
bool kvfs_lock_add(struct kvfs *fs, const uint64_t *held, int n, uint64_t ino);
static inline void kvfs_lock1(struct kvfs *fs, uint64_t ino)
{
	kvfs_lock_inodes(fs, &ino, 1);
}
static inline void kvfs_unlock1(struct kvfs *fs, uint64_t ino)
{
	kvfs_unlock_inodes(fs, &ino, 1);
}

/* ---- reading and writing the state ------------------------------------ */

/*
 * Read inode @ino (newest appended version). With @inl, its inline data
 * (at most @cap bytes; -EUCLEAN if more) and *inline_len. -ENOENT if there
 * is no such inode, -EUCLEAN if its value is corrupt (logged with the ino).
 */
int kvfs_inode_read(struct kvfs *fs, uint64_t ino, struct kvfs_inode *out, void *inl, size_t cap,
		    size_t *inline_len);
/* Add "put inode @ino" to @b. */
int kvfs_batch_put_inode(struct kv_batch *b, uint64_t ino, const struct kvfs_inode *in,
			 const void *inl, size_t inline_len);
/* Look up entry @name in @dir: -ENOENT, or the child's ino and DT_* type. */
int kvfs_entry_read(struct kvfs *fs, uint64_t dir, const char *name, size_t len, uint64_t *ino,
		    unsigned *type);

/*
 * Call @fn for every key in [@lo, @hi) of the committed state (kv_sync first,
 * or kvfs_scan_latest, to include appended writes), in order; stops at @fn's
 * first nonzero return, which it returns, or at an iteration error.
 */
int kvfs_scan(struct kvfs *fs, const uint8_t *lo, size_t llen, const uint8_t *hi, size_t hlen,
	      int (*fn)(struct kvfs *fs, const void *k, size_t klen, void *arg), void *arg);
/*
 * As kvfs_scan, over the newest appended version of every key
 * (kv_iter_create_flags with KV_READ_LATEST): sees writes appended and not
 * yet committed without waiting for them, so it may be called under stripe
 * locks. Exact for keys whose writers the caller excludes (the stripe lock
 * of their inode, or appends the caller made itself); a concurrent write
 * to other keys may show in part.
 */
int kvfs_scan_latest(struct kvfs *fs, const uint8_t *lo, size_t llen, const uint8_t *hi,
		     size_t hlen, int (*fn)(struct kvfs *fs, const void *k, size_t klen, void *arg),
		     void *arg);

/* This thread's batch, cleared (one per thread, reused; never freed by the
 * caller). */
struct kv_batch *kvfs_batch(void);

/*
 * Append @b with the mount's durability. done == NULL: wait for the
 * acknowledgement and return 0 or -errno. Otherwise return KVFS_PENDING
 * (done->fn is called once, possibly before this returns) or -errno (the
 * write did not happen; done->fn is not called). An empty batch completes
 * at once (0, done->fn not called).
 */
int kvfs_commit(struct kvfs *fs, struct kv_batch *b, const struct kvfs_done *done);

/* A new inode number (never reused). May append a superblock update (its
 * own write, ordered before any batch that uses the number). */
int kvfs_alloc_ino(struct kvfs *fs, uint64_t *ino);

/* The current time, CLOCK_REALTIME. */
void kvfs_now(struct timespec *ts);
/* Attributes for the kernel. */
void kvfs_inode_stat(const struct kvfs *fs, uint64_t ino, const struct kvfs_inode *in,
		     struct stat *st);
/* DT_* of a mode. */
unsigned kvfs_mode_dtype(uint32_t mode);

/* ---- references and reclaim ------------------------------------------- */

void kvfs_node_ref(struct kvfs *fs, uint64_t ino, uint64_t lookups, uint64_t opens);
/* Drop references; once an inode has none and its link count is 0, its
 * keys are deleted (kvfs_reclaim). */
void kvfs_node_unref(struct kvfs *fs, uint64_t ino, uint64_t lookups, uint64_t opens);
/* Whether the kernel or an open file still refers to @ino. */
bool kvfs_node_busy(struct kvfs *fs, uint64_t ino);
/*
 * Add to @b the deletion of everything @ino owns: inode, data blocks,
 * xattrs and its orphan record. With @in (its current inode) it skips what
 * the inode says is not there (no blocks; no KVFS_IF_XATTR) and deletes the
 * blocks of a small dense file one by one; otherwise (and always for a big
 * file) by delete-ranges: O(1) whatever the size. @in NULL: everything by
 * ranges (@fs may then be NULL).
 */
int kvfs_batch_drop(struct kvfs *fs, struct kv_batch *b, uint64_t ino, const struct kvfs_inode *in);
int kvfs_batch_drop_inode(struct kv_batch *b, uint64_t ino); /* @in NULL */
/* Add to @b the deletion of @ino's data blocks from block @from on (@in as
 * for kvfs_batch_drop; its size and nblocks are the file's before). */
int kvfs_batch_drop_blocks(struct kvfs *fs, struct kv_batch *b, uint64_t ino,
			   const struct kvfs_inode *in, uint64_t from);

/* Format a one-line reason into @err (if @err and @errlen). */
void kvfs_errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Log through the engine's log hook (or stderr). */
void kvfs_log(struct kvfs *fs, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif /* KVFS_INTERNAL_H */
