// SPDX-License-Identifier: MIT
/*
 * File data: read, write and truncate of regular files.
 *
 * Layout (fs/FORMAT.md has the bytes)
 *   A regular file is either inline or in blocks.
 *   - Inline (KVFS_IF_INLINE): the file's bytes follow the inode's fixed part
 *     in the inode value; nblocks is 0 and the file has no data keys. Files
 *     up to fs->inline_max bytes start out inline.
 *   - Blocks: byte range [i * bs, (i + 1) * bs) of the file is the value of
 *     kvfs_key_data(ino, i), bs = fs->block_size. A value may be shorter
 *     than bs: the missing tail reads as zeros. A missing key is a hole.
 *     An empty value is an allocated, unwritten block (fallocate, or a
 *     hole punched through a block's stored bytes: fs/extent.c): it reads
 *     as zeros and counts in nblocks; nothing here treats it specially.
 *
 * Invariants (fsck checks them)
 *   1. An inline file has inline_len <= size <= inline_max; bytes between
 *      inline_len and size read as zeros.
 *   2. nblocks is exactly the number of data keys of the inode (st_blocks is
 *      derived from it: kvfs_inode_stat).
 *   3. No data key at or past block ceil(size / bs), and no block value
 *      reaches past the end of the file: value length <= size - i * bs. So
 *      the bytes between the end of a file and the end of its last block
 *      are never stored, and a truncate up needs to write nothing.
 *   4. A file with nblocks == 0 and size <= inline_max may be treated as
 *      inline (it holds only zeros): writes and truncates move such a file
 *      back to inline for free.
 *
 * Transitions
 *   - write within inline_max of an inline file: rewrite the inline bytes.
 *   - write or truncate past inline_max of an inline file: its inline bytes
 *     become block 0 (if any) in the same batch (write_blocks, truncate).
 *   - write in blocks: each touched block is put whole; a partial block is
 *     read (KV_READ_LATEST) and merged. A block inside the old size counts
 *     as new only if it did not exist; a dense file (nblocks == ceil(size /
 *     bs)) needs no lookup for that.
 *   - truncate down: one delete-range for every block past the new end (O(1)
 *     whatever the size), the last partial block rewritten shortened. The new
 *     nblocks is computed for a dense file; for a sparse one the surviving
 *     blocks are counted by kvfs_file_count_blocks over [block 0, new end):
 *     a KV_READ_LATEST iterator (kvfs_scan_latest), so it sees every
 *     appended block, committed or not, without waiting for a commit under
 *     the lock; O(stored blocks that survive).
 *   - truncate up: only the size (the file becomes sparse).
 *
 * Concurrency
 *   Writers (write, truncate, setattr, relatime updates) hold the inode's
 *   stripe lock while they read the inode and blocks (KV_READ_LATEST) and
 *   append their batch; acknowledgements are waited for after unlocking.
 *   One kvfs_write is one batch, except that a batch may not exceed a
 *   quarter of the engine's log buffer, so a large write is split into
 *   batches of at most WRITE_CHUNK bytes, appended in order under the lock:
 *   a crash may keep a prefix of them (as a crash in the middle of a large
 *   write on ext4 may), readers may see a prefix. Readers take no lock: they
 *   read the inode, then each block, newest appended version.
 */
#include "data.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Data bytes per batch: far below a quarter of the smallest log buffer kvfs
 * is run with (1 MiB in the tests, 64 MiB by default). */
#define WRITE_CHUNK (128u << 10)
/* relatime: an atime older than this is updated even if not stale. */
#define RELATIME_SEC (24 * 60 * 60)

/* ---- helpers shared with attr.c ---------------------------------------- */

int kvfs_file_init(struct kvfs *fs, struct kvfs_file *f)
{
	memset(f, 0, sizeof(*f));
	f->inl = malloc(kvfs_file_inline_cap(fs));
	f->scratch = malloc(fs->block_size);
	if (!f->inl || !f->scratch) {
		kvfs_file_free(f);
		return -ENOMEM;
	}
	return 0;
}

void kvfs_file_free(struct kvfs_file *f)
{
	free(f->inl);
	free(f->scratch);
	f->inl = f->scratch = NULL;
}

int kvfs_file_load(struct kvfs *fs, uint64_t ino, struct kvfs_file *f)
{
	int err =
		kvfs_inode_read(fs, ino, &f->in, f->inl, kvfs_file_inline_cap(fs), &f->inline_len);

	if (err)
		return err;
	if (S_ISREG(f->in.mode) && (f->in.flags & KVFS_IF_INLINE) &&
	    (f->inline_len > f->in.size || f->in.size > fs->block_size || f->in.nblocks)) {
		kvfs_log(fs, KV_LOG_ERROR,
			 "%s: inode %llu: inline file of size %llu with %zu inline bytes and "
			 "%llu blocks",
			 fs->store, (unsigned long long)ino, (unsigned long long)f->in.size,
			 f->inline_len, (unsigned long long)f->in.nblocks);
		return -EUCLEAN;
	}
	return 0;
}

int kvfs_file_put(struct kv_batch *b, uint64_t ino, const struct kvfs_file *f)
{
	return kvfs_batch_put_inode(b, ino, &f->in, f->inl, f->inline_len);
}

void kvfs_kill_suid(struct kvfs_inode *in)
{
	if (S_ISDIR(in->mode))
		return;
	in->mode &= ~(uint32_t)S_ISUID;
	if (in->mode & S_IXGRP)
		in->mode &= ~(uint32_t)S_ISGID;
}

/* ---- acknowledgements --------------------------------------------------- */

static void ack_put(struct kvfs_ack *a, int status)
{
	/* Read before the unlock: a waiter on the stack may return at once. */
	bool heap = a->heap, last;

	pthread_mutex_lock(&a->mu);
	if (status < 0 && !a->status)
		a->status = status;
	last = --a->pending == 0;
	status = a->status;
	if (last && !heap)
		pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
	if (last && heap) {
		/* Only heap acks carry a user callback. */
		a->user.fn(a->user.arg, status);
		pthread_mutex_destroy(&a->mu);
		pthread_cond_destroy(&a->cv);
		free(a);
	}
}

static void ack_cb(void *arg, int status)
{
	ack_put(arg, status);
}

int kvfs_ack_start(struct kvfs_ack **a, struct kvfs_ack *stack, const struct kvfs_done *done,
		   bool one)
{
	struct kvfs_ack *p = stack;

	if (done && !one) {
		p = malloc(sizeof(*p));
		if (!p)
			return -ENOMEM;
	}
	memset(p, 0, sizeof(*p));
	p->heap = p != stack;
	p->direct = done && one;
	if (done)
		p->user = *done;
	if (!p->direct) {
		pthread_mutex_init(&p->mu, NULL);
		pthread_cond_init(&p->cv, NULL);
		p->pending = 1;
	}
	*a = p;
	return 0;
}

int kvfs_ack_append(struct kvfs *fs, struct kvfs_ack *a, struct kv_batch *b)
{
	struct kvfs_done d = { ack_cb, a };
	int err;

	if (a->direct) {
		err = kvfs_commit(fs, b, &a->user);
		if (err == KVFS_PENDING)
			a->appended++;
		return err < 0 ? err : 0;
	}
	pthread_mutex_lock(&a->mu);
	a->pending++;
	pthread_mutex_unlock(&a->mu);
	err = kvfs_commit(fs, b, &d);
	if (err == KVFS_PENDING) {
		a->appended++;
		return 0;
	}
	/* Not appended (or an empty batch): no callback will come. */
	pthread_mutex_lock(&a->mu);
	a->pending--;
	pthread_mutex_unlock(&a->mu);
	return err;
}

int kvfs_ack_end(struct kvfs_ack *a, int err)
{
	int status;

	if (a->direct)
		return a->appended ? KVFS_PENDING : err;
	if (a->heap) {
		if (!a->appended) {
			pthread_mutex_destroy(&a->mu);
			pthread_cond_destroy(&a->cv);
			free(a);
			return err;
		}
		ack_put(a, err);
		return KVFS_PENDING;
	}
	pthread_mutex_lock(&a->mu);
	a->pending--;
	while (a->pending)
		pthread_cond_wait(&a->cv, &a->mu);
	status = a->status;
	pthread_mutex_unlock(&a->mu);
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->cv);
	return err ? err : status;
}

int kvfs_fop_begin(struct kvfs *fs, uint64_t ino, const struct kvfs_done *done, bool one,
		   struct kvfs_fop *op)
{
	int err = kvfs_file_init(fs, &op->f);

	if (err)
		return err;
	err = kvfs_ack_start(&op->a, &op->stack, done, one);
	if (err) {
		kvfs_file_free(&op->f);
		return err;
	}
	kvfs_lock1(fs, ino);
	err = kvfs_file_load(fs, ino, &op->f);
	/* Nothing appended: kvfs_ack_end gives err back and frees the ack. */
	return err ? kvfs_fop_end(fs, ino, op, err) : 0;
}

int kvfs_fop_end(struct kvfs *fs, uint64_t ino, struct kvfs_fop *op, int err)
{
	kvfs_unlock1(fs, ino);
	err = kvfs_ack_end(op->a, err);
	kvfs_file_free(&op->f);
	return err;
}

/* ---- blocks ------------------------------------------------------------- */

static uint64_t blocks_for(uint64_t size, uint32_t bs)
{
	return size / bs + (size % bs != 0);
}

/* Whether @in's data may be handled inline (invariant 4). */
static bool file_inline(const struct kvfs *fs, const struct kvfs_inode *in)
{
	return (in->flags & KVFS_IF_INLINE) || (!in->nblocks && in->size <= fs->inline_max);
}

static int put_block(struct kv_batch *b, uint64_t ino, uint64_t blk, const void *v, size_t len)
{
	uint8_t key[KVFS_KEY_MAX];

	return kv_batch_put(b, key, kvfs_key_data(key, ino, blk), v, len);
}

/*
 * Read block @blk of @ino (newest appended version) into @buf (bs bytes):
 * its length, or -ENOENT for a hole.
 */
static ssize_t get_block(struct kvfs *fs, uint64_t ino, uint64_t blk, void *buf, size_t cap)
{
	uint8_t key[KVFS_KEY_MAX];
	ssize_t n = kv_get(fs->db, KV_READ_LATEST, key, kvfs_key_data(key, ino, blk), buf, cap);

	if (n > (ssize_t)fs->block_size) {
		kvfs_log(fs, KV_LOG_ERROR,
			 "%s: inode %llu: block %llu holds %zd bytes (block size %u)", fs->store,
			 (unsigned long long)ino, (unsigned long long)blk, n, fs->block_size);
		return -EUCLEAN;
	}
	return n;
}

/* What is known of the blocks of a file in blocks before a write. */
struct block_state {
	uint64_t end;	     /* ceil(size / bs): no block at or past it */
	bool none;	     /* no block is stored (nblocks == 0, or inline) */
	bool dense;	     /* every block below end exists */
	const uint8_t *conv; /* the file was inline: its bytes become block 0 */
	size_t conv_len;
	bool conv_done; /* block 0 written */
};

/* Whether block @blk exists (1), is a hole (0), or -errno. */
static int block_exists(struct kvfs *fs, uint64_t ino, const struct block_state *bst, uint64_t blk,
			uint8_t *scratch)
{
	ssize_t n;

	if (bst->none || blk >= bst->end)
		return 0;
	if (bst->dense)
		return 1;
	n = get_block(fs, ino, blk, scratch, 0);
	if (n == -ENOENT)
		return 0;
	return n < 0 ? (int)n : 1;
}

/*
 * Block @blk's bytes [s, e) get @src: merge with its current content in
 * f->scratch and add the put to @b. Returns 1 if the block is new, 0 if it
 * existed, or -errno.
 */
static int write_partial(struct kvfs *fs, uint64_t ino, struct kvfs_file *f,
			 struct block_state *bst, uint64_t blk, size_t s, size_t e,
			 const uint8_t *src, struct kv_batch *b)
{
	uint8_t *cur = f->scratch;
	size_t len = 0;
	int existed = 0, err;

	if (bst->conv && blk == 0) {
		memcpy(cur, bst->conv, bst->conv_len);
		len = bst->conv_len;
	} else if (!bst->none && blk < bst->end) {
		ssize_t n = get_block(fs, ino, blk, cur, fs->block_size);

		if (n < 0 && n != -ENOENT)
			return (int)n;
		if (n >= 0) {
			len = (size_t)n;
			existed = 1;
		}
	}
	if (s > len)
		memset(cur + len, 0, s - len);
	memcpy(cur + s, src, e - s);
	err = put_block(b, ino, blk, cur, e > len ? e : len);
	return err ? err : !existed;
}

/*
 * Write @len bytes of @src at @off of a file in blocks (or an inline file
 * moving to blocks): add every touched block to @b and update f->in's size,
 * nblocks and flags. The caller puts the inode.
 */
static int write_blocks(struct kvfs *fs, uint64_t ino, struct kvfs_file *f, uint64_t off,
			const uint8_t *src, size_t len, struct kv_batch *b)
{
	struct kvfs_inode *in = &f->in;
	uint32_t bs = fs->block_size;
	struct block_state bst = { .end = blocks_for(in->size, bs) };
	uint64_t end = off + len;
	int err = 0;

	if (file_inline(fs, in)) {
		bst.conv = f->inl;
		bst.conv_len = f->inline_len;
		bst.none = true;
		in->flags &= ~KVFS_IF_INLINE;
		in->nblocks = 0;
	}
	bst.none = bst.none || !in->nblocks;
	bst.dense = in->nblocks == bst.end;
	for (uint64_t blk = off / bs; !err && blk * bs < end; blk++) {
		uint64_t start = blk * bs;
		size_t s = off > start ? (size_t)(off - start) : 0;
		size_t e = end - start < bs ? (size_t)(end - start) : bs;
		const uint8_t *p = src + (start + s - off);
		int isnew;

		if (s == 0 && e == bs) { /* whole: no need for the old bytes */
			isnew = block_exists(fs, ino, &bst, blk, f->scratch);
			if (isnew >= 0) {
				isnew = !isnew;
				err = put_block(b, ino, blk, p, bs);
			}
		} else {
			isnew = write_partial(fs, ino, f, &bst, blk, s, e, p, b);
		}
		if (isnew < 0)
			err = isnew;
		else if (!err)
			in->nblocks += (uint64_t)isnew;
		if (blk == 0)
			bst.conv_done = true;
	}
	if (!err && bst.conv && !bst.conv_done && bst.conv_len) {
		err = put_block(b, ino, 0, bst.conv, bst.conv_len);
		in->nblocks++;
	}
	if (bst.conv)
		f->inline_len = 0;
	if (end > in->size)
		in->size = end;
	return err;
}

/* Write into an inline file that stays within inline_max. */
static void write_inline(struct kvfs_file *f, uint64_t off, const void *src, size_t len)
{
	uint64_t size = f->in.size > off + len ? f->in.size : off + len;

	if (size > f->inline_len)
		memset(f->inl + f->inline_len, 0, size - f->inline_len);
	memcpy(f->inl + off, src, len);
	f->inline_len = size;
	f->in.size = size;
	f->in.flags |= KVFS_IF_INLINE;
}

int kvfs_file_write(struct kvfs *fs, uint64_t ino, struct kvfs_file *f, uint64_t off,
		    const void *src, size_t len, struct kv_batch *b)
{
	if (file_inline(fs, &f->in) && off + len <= fs->inline_max) {
		write_inline(f, off, src, len);
		return 0;
	}
	return write_blocks(fs, ino, f, off, src, len, b);
}

/* ---- truncate ----------------------------------------------------------- */

static int count_key(struct kvfs *fs, const void *k, size_t klen, void *arg)
{
	(void)fs;
	(void)k;
	(void)klen;
	(*(uint64_t *)arg)++;
	return 0;
}

int kvfs_file_count_blocks(struct kvfs *fs, uint64_t ino, uint64_t from, uint64_t to, uint64_t *out)
{
	uint8_t lo[KVFS_KEY_MAX], hi[KVFS_KEY_MAX];
	size_t llen = kvfs_key_data(lo, ino, from), hlen = kvfs_key_data(hi, ino, to);

	*out = 0;
	if (from >= to)
		return 0;
	return kvfs_scan_latest(fs, lo, llen, hi, hlen, count_key, out);
}

/* Shrink a file in blocks to @size. */
static int shrink_blocks(struct kvfs *fs, uint64_t ino, struct kvfs_file *f, uint64_t size,
			 struct kv_batch *b)
{
	struct kvfs_inode *in = &f->in;
	uint32_t bs = fs->block_size;
	uint64_t old_end = blocks_for(in->size, bs), keep = blocks_for(size, bs);
	size_t tail = size % bs;
	int err;

	if (!in->nblocks)
		return 0;
	err = kvfs_batch_drop_blocks(fs, b, ino, in, keep);
	if (!err && tail) {
		ssize_t n = get_block(fs, ino, keep - 1, f->scratch, bs);

		if (n > (ssize_t)tail)
			err = put_block(b, ino, keep - 1, f->scratch, tail);
		else if (n < 0 && n != -ENOENT)
			err = (int)n;
	}
	if (err)
		return err;
	if (in->nblocks == old_end)
		in->nblocks = keep;
	else if (!keep)
		in->nblocks = 0;
	else
		err = kvfs_file_count_blocks(fs, ino, 0, keep, &in->nblocks);
	return err;
}

int kvfs_file_truncate(struct kvfs *fs, uint64_t ino, struct kvfs_file *f, uint64_t size,
		       struct kv_batch *b)
{
	struct kvfs_inode *in = &f->in;
	int err = 0;

	if (size == in->size)
		return 0;
	if (file_inline(fs, in)) {
		if (size <= fs->inline_max) {
			if (size > f->inline_len)
				memset(f->inl + f->inline_len, 0, size - f->inline_len);
			f->inline_len = size;
			in->flags |= KVFS_IF_INLINE;
		} else {
			/* Growing past inline_max: the bytes move to block 0. */
			if (f->inline_len)
				err = put_block(b, ino, 0, f->inl, f->inline_len);
			in->nblocks = f->inline_len ? 1 : 0;
			in->flags &= ~KVFS_IF_INLINE;
			f->inline_len = 0;
		}
	} else if (size < in->size) {
		err = shrink_blocks(fs, ino, f, size, b);
	}
	if (!err)
		in->size = size;
	return err;
}

/* ---- write -------------------------------------------------------------- */

static int check_regular(uint32_t mode)
{
	if (S_ISREG(mode))
		return 0;
	return S_ISDIR(mode) ? -EISDIR : -EINVAL;
}

/*
 * Append @size bytes at @off as one or more batches (see "Concurrency");
 * the caller holds the lock. Returns 0 or -errno; *written counts the bytes
 * of the appended batches.
 */
/* Where the batch of a write that starts at @pos ends (before any limit). */
static uint64_t chunk_end(const struct kvfs *fs, uint64_t pos)
{
	uint32_t bs = fs->block_size;
	uint64_t blocks = WRITE_CHUNK / bs ? WRITE_CHUNK / bs : 1;

	return (pos / bs + blocks) * bs;
}

static int write_locked(struct kvfs *fs, uint64_t ino, struct kvfs_file *f, uint64_t off,
			const uint8_t *buf, size_t size, int kill_suid, struct kvfs_ack *a,
			size_t *written)
{
	uint64_t end = off + size, pos = off;
	struct timespec now;
	int err = check_regular(f->in.mode);

	if (err)
		return err;
	kvfs_now(&now);
	if (kill_suid)
		kvfs_kill_suid(&f->in);
	while (!err && pos < end) {
		uint64_t stop = chunk_end(fs, pos);
		struct kv_batch *b = kvfs_batch();

		if (stop > end)
			stop = end;
		if (file_inline(fs, &f->in) && end <= fs->inline_max)
			write_inline(f, pos, buf + (pos - off), (size_t)(stop - pos));
		else
			err = write_blocks(fs, ino, f, pos, buf + (pos - off), (size_t)(stop - pos),
					   b);
		f->in.mtime = f->in.ctime = now;
		if (!err)
			err = kvfs_file_put(b, ino, f);
		if (!err)
			err = kvfs_ack_append(fs, a, b);
		if (!err)
			*written += (size_t)(stop - pos);
		pos = stop;
	}
	return err;
}

ssize_t kvfs_write(struct kvfs *fs, uint64_t ino, uint64_t off, const void *buf, size_t size,
		   int kill_suid, const struct kvfs_done *done)
{
	struct kvfs_fop op;
	size_t written = 0;
	bool one;
	int err;

	if (off > KVFS_MAX_FILE_SIZE)
		return -EINVAL; /* a negative off_t */
	if (!size)
		return 0;
	if (off >= KVFS_MAX_FILE_SIZE)
		return -EFBIG;
	if (size > KVFS_MAX_FILE_SIZE - off)
		size = (size_t)(KVFS_MAX_FILE_SIZE - off); /* a short write, as Linux does */
	if (fs->read_only)
		return -EROFS;
	/* chunk_end cannot overflow: off < 2^63, a chunk is far below 2^63. */
	one = size <= chunk_end(fs, off) - off;
	err = kvfs_fop_begin(fs, ino, done, one, &op);
	if (err)
		return err;
	err = write_locked(fs, ino, &op.f, off, buf, size, kill_suid, op.a, &written);
	if (!done && err && written)
		err = 0; /* a short write: report what was written */
	err = kvfs_fop_end(fs, ino, &op, err);
	return err || done ? err : (ssize_t)written;
}

/* ---- read --------------------------------------------------------------- */

static bool ts_le(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec <= b->tv_nsec);
}

/* relatime: whether a read at @now should update @in's atime. */
static bool atime_stale(const struct kvfs_inode *in, const struct timespec *now)
{
	if (in->atime.tv_sec == now->tv_sec && in->atime.tv_nsec == now->tv_nsec)
		return false;
	return ts_le(&in->atime, &in->mtime) || ts_le(&in->atime, &in->ctime) ||
	       now->tv_sec - in->atime.tv_sec >= RELATIME_SEC;
}

static void atime_done(void *arg, int status)
{
	(void)arg;
	(void)status; /* atime is best effort */
}

/*
 * Update atime: its own small write under the mount's durability, not
 * waited for (nobody asked for atime to be durable).
 */
static void touch_atime(struct kvfs *fs, uint64_t ino, struct kvfs_file *f)
{
	static const struct kvfs_done fire = { atime_done, NULL };
	struct timespec now;
	struct kv_batch *b;
	int err;

	kvfs_lock1(fs, ino);
	kvfs_now(&now);
	err = kvfs_file_load(fs, ino, f);
	if (!err && atime_stale(&f->in, &now)) {
		b = kvfs_batch();
		f->in.atime = now;
		err = kvfs_file_put(b, ino, f);
		if (!err)
			err = kvfs_commit(fs, b, &fire);
	}
	kvfs_unlock1(fs, ino);
	if (err < 0 && err != -ENOENT)
		kvfs_log(fs, KV_LOG_WARN, "%s: inode %llu: atime update failed: %s", fs->store,
			 (unsigned long long)ino, strerror(-err));
}

/* Copy [off, off + n) of a file in blocks into @dst. */
static int read_blocks(struct kvfs *fs, uint64_t ino, const struct kvfs_inode *in, uint64_t off,
		       size_t n, uint8_t *dst, uint8_t *scratch)
{
	uint32_t bs = fs->block_size;
	uint64_t end = off + n;

	if (!in->nblocks) {
		memset(dst, 0, n);
		return 0;
	}
	for (uint64_t blk = off / bs; blk * bs < end; blk++) {
		uint64_t start = blk * bs;
		size_t s = off > start ? (size_t)(off - start) : 0;
		size_t e = end - start < bs ? (size_t)(end - start) : bs;
		uint8_t *p = dst + (start + s - off);
		ssize_t got;

		if (s == 0) {
			/* Straight into the caller's buffer. */
			got = get_block(fs, ino, blk, p, e);
			if (got == -ENOENT)
				got = 0;
			if (got < 0)
				return (int)got;
			if ((size_t)got < e)
				memset(p + got, 0, e - (size_t)got);
			continue;
		}
		got = get_block(fs, ino, blk, scratch, bs);
		if (got == -ENOENT)
			got = 0;
		if (got < 0)
			return (int)got;
		if ((size_t)got < e)
			memset(scratch + got, 0, e - (size_t)got);
		memcpy(p, scratch + s, e - s);
	}
	return 0;
}

ssize_t kvfs_read(struct kvfs *fs, uint64_t ino, uint64_t off, size_t size, void *buf)
{
	struct kvfs_file f;
	struct timespec now;
	size_t n = 0;
	int err;

	if (off > KVFS_MAX_FILE_SIZE)
		return -EINVAL;
	err = kvfs_file_init(fs, &f);
	if (err)
		return err;
	err = kvfs_file_load(fs, ino, &f);
	if (!err)
		err = check_regular(f.in.mode);
	if (err)
		goto out;
	if (off < f.in.size)
		n = f.in.size - off < size ? (size_t)(f.in.size - off) : size;
	if (n && (f.in.flags & KVFS_IF_INLINE)) {
		size_t have = 0;

		if (off < f.inline_len) {
			have = f.inline_len - (size_t)off < n ? f.inline_len - (size_t)off : n;
			memcpy(buf, f.inl + off, have);
		}
		memset((uint8_t *)buf + have, 0, n - have);
	} else if (n) {
		err = read_blocks(fs, ino, &f.in, off, n, buf, f.scratch);
	}
	kvfs_now(&now);
	if (!err && size && !fs->read_only && atime_stale(&f.in, &now))
		touch_atime(fs, ino, &f);
out:
	kvfs_file_free(&f);
	return err ? err : (ssize_t)n;
}
