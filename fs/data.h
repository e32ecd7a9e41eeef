/* SPDX-License-Identifier: MIT */
/*
 * Private to fs/data.c and fs/attr.c: a regular file's state as an operation
 * changes it, truncate, and appending a change with or without a kvfs_done.
 * The layout of file data is described at the top of fs/data.c.
 */
#ifndef KVFS_DATA_H
#define KVFS_DATA_H

#include "internal.h"

/*
 * The largest file: 2^63 - 1 bytes, the kernel's MAX_LFS_FILESIZE (what FUSE
 * sets as s_maxbytes), so the kernel's own checks and ours agree. Block
 * numbers stay below 2^63 / 1024.
 */
#define KVFS_MAX_FILE_SIZE ((uint64_t)INT64_MAX)

/* An inode read under its stripe lock, to be changed and put back. */
struct kvfs_file {
	struct kvfs_inode in;
	uint8_t *inl;	   /* inline bytes: kvfs_file_inline_cap() bytes */
	size_t inline_len; /* of which used */
	uint8_t *scratch;  /* one block of scratch space */
};

/* Bytes an inode value may carry inline: a block, or a symlink target. */
static inline size_t kvfs_file_inline_cap(const struct kvfs *fs)
{
	return fs->block_size > KVFS_SYMLINK_MAX + 1 ? fs->block_size : KVFS_SYMLINK_MAX + 1;
}

/* Allocate @f's buffers (-ENOMEM) and free them. */
int kvfs_file_init(struct kvfs *fs, struct kvfs_file *f);
void kvfs_file_free(struct kvfs_file *f);
/* Read inode @ino (newest appended version) into @f: -ENOENT, -EUCLEAN. */
int kvfs_file_load(struct kvfs *fs, uint64_t ino, struct kvfs_file *f);
/* Add "put @f's inode" to @b. */
int kvfs_file_put(struct kv_batch *b, uint64_t ino, const struct kvfs_file *f);

/*
 * Set regular file @ino's size to @size: add the key changes to @b and
 * update f->in (size, nblocks, flags) and the inline bytes. Times are the
 * caller's. The caller holds @ino's stripe lock and appends @b. Shrinking a
 * sparse file counts the surviving blocks (kvfs_file_count_blocks).
 */
int kvfs_file_truncate(struct kvfs *fs, uint64_t ino, struct kvfs_file *f, uint64_t size,
		       struct kv_batch *b);

/*
 * *@out = the number of data keys of @ino in blocks [@from, @to), appended
 * ones included: a KV_READ_LATEST scan (kvfs_scan_latest). It never waits
 * for a commit, so it may be called under @ino's stripe lock, and it is
 * exact when the caller holds that lock; keys only added to a batch not yet
 * appended do not count. O(keys in the range). 0 or -errno.
 */
int kvfs_file_count_blocks(struct kvfs *fs, uint64_t ino, uint64_t from, uint64_t to,
			   uint64_t *out);

/*
 * Write @len bytes of @src at @off of regular file @ino (state in @f, under
 * its stripe lock), as one chunk of kvfs_write does: inline if the file is
 * inline and stays within inline_max, else in blocks (an inline file moves
 * to blocks in @b). Adds the blocks to @b and updates f->in's size, nblocks
 * and flags; the caller sets the times, puts the inode and appends @b. The
 * blocks touched are read with KV_READ_LATEST, so @b must not already hold
 * one of them. Used by fs/extent.c (copy_file_range).
 */
int kvfs_file_write(struct kvfs *fs, uint64_t ino, struct kvfs_file *f, uint64_t off,
		    const void *src, size_t len, struct kv_batch *b);

/* Clear S_ISUID, and S_ISGID if group-executable, of a non-directory. */
void kvfs_kill_suid(struct kvfs_inode *in);

/*
 * Appending batches for an operation and waiting for their acknowledgement
 * after the stripe lock is released (never under it):
 *
 *	kvfs_ack_start(&a, &stack, done, one);
 *	lock; build b; err = kvfs_ack_append(fs, a, b); ... more batches; unlock;
 *	return kvfs_ack_end(a, err);
 *
 * With done == NULL, kvfs_ack_end waits for every appended batch and returns
 * @err or the first failed acknowledgement (0 if all went well). With a
 * done, kvfs_ack_end returns @err if nothing was appended (done->fn is not
 * called), else KVFS_PENDING, and done->fn gets the first error (or 0) once
 * every appended batch is acknowledged. With @one (the operation appends
 * at most one batch) and a done, the batch goes to kvfs_commit with @done
 * itself: no allocation. -ENOMEM from start only.
 */
struct kvfs_ack {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned pending;      /* [mu] appended, not yet acknowledged; + 1 until end */
	int status;	       /* [mu] first failed acknowledgement */
	unsigned appended;     /* the operation's thread only */
	struct kvfs_done user; /* fn == NULL: end waits */
	bool heap;	       /* immutable: freed by whoever drops the last count */
	bool direct;	       /* immutable: one batch, user's done passed through */
};
int kvfs_ack_start(struct kvfs_ack **a, struct kvfs_ack *stack, const struct kvfs_done *done,
		   bool one);
int kvfs_ack_append(struct kvfs *fs, struct kvfs_ack *a, struct kv_batch *b);
int kvfs_ack_end(struct kvfs_ack *a, int err);

/*
 * The frame of an operation on one file's inode and data (write, fallocate,
 * setattr, O_TRUNC):
 *
 *	err = kvfs_fop_begin(fs, ino, done, one, &op);
 *	if (err)
 *		return err;		(nothing held, nothing appended)
 *	... op.f is loaded and the stripe lock of @ino held: build batches,
 *	kvfs_ack_append(fs, op.a, b) ...
 *	return kvfs_fop_end(fs, ino, &op, err);
 *
 * begin: kvfs_file_init, kvfs_ack_start (@done, @one as there), the stripe
 * lock, kvfs_file_load; on an error it undoes what it did. end: unlock,
 * kvfs_ack_end(@err) (so the wait is never under the lock), kvfs_file_free;
 * returns what kvfs_ack_end returns.
 */
struct kvfs_fop {
	struct kvfs_file f;
	struct kvfs_ack stack, *a; /* a == &stack unless the ack is on the heap */
};
int kvfs_fop_begin(struct kvfs *fs, uint64_t ino, const struct kvfs_done *done, bool one,
		   struct kvfs_fop *op);
int kvfs_fop_end(struct kvfs *fs, uint64_t ino, struct kvfs_fop *op, int err);

#endif /* KVFS_DATA_H */
