// SPDX-License-Identifier: MIT
/*
 * Allocation, holes and copies: fallocate, lseek SEEK_DATA/SEEK_HOLE and
 * copy_file_range of regular files, on the block layout of fs/data.c (read
 * its header first; fs/FORMAT.md has the bytes).
 *
 * Allocated, unwritten blocks
 *   A block value may be empty: the block is allocated (it counts in
 *   nblocks, hence st_blocks) and reads as zeros, like an unwritten extent
 *   of ext4. fallocate creates them for the holes of a range; a hole
 *   punched through part of a block can leave one. Nothing else in the
 *   data path needs to know: a value shorter than the block already reads
 *   as zeros up to the block's end (fs/data.c), a write merges into it as
 *   into any short block, truncate keeps or drops it as any block. So the
 *   invariants of fs/data.c hold unchanged: in particular (3) an empty
 *   value, like any other, only exists below block ceil(size / bs).
 *   SEEK_DATA reports allocated blocks as data (as tmpfs does; ext4 and xfs
 *   report unwritten extents as holes): any key is data, which keeps a
 *   dense file's answer O(1) from its inode.
 *
 * What is not done
 *   - Allocation past EOF (FALLOC_FL_KEEP_SIZE beyond the size): the format
 *     keeps no data key at or past ceil(size / bs), which is what lets a
 *     truncate up and an append write nothing but the size and lets a
 *     dense file be recognised from nblocks alone. That part of the range
 *     is accepted and left as it is (a later write allocates it).
 *   - Reserving space: an LSM store writes every new version of a block to
 *     new space, so no allocation can promise that a later write into the
 *     range will not fail with ENOSPC. fallocate records the allocation.
 *   - FALLOC_FL_ZERO_RANGE, COLLAPSE_RANGE, INSERT_RANGE, UNSHARE_RANGE:
 *     -EOPNOTSUPP, as from a Linux filesystem without them.
 *
 * Operations (the caller holds the inode's stripe lock, both inodes' for a
 * copy, while reading with KV_READ_LATEST and appending, as in fs/data.c)
 *   - allocate (mode 0, KEEP_SIZE): an inline file moves to blocks (its
 *     bytes become block 0), then every hole of the range inside the new
 *     size gets an empty value. Whether a block exists comes from nblocks
 *     for a file with no blocks or a dense one, else from a kv_get per
 *     block of the range below the old end. At most ALLOC_BATCH blocks per
 *     batch, appended in order; each batch puts the inode with the size
 *     grown to the end of its last block (or the final size), so every
 *     prefix a crash keeps is a consistent file.
 *   - punch (PUNCH_HOLE | KEEP_SIZE): one batch. Blocks wholly inside the
 *     range (the last block counts as whole when the range reaches EOF) are
 *     deleted, one by one up to PUNCH_POINT_MAX, else by one range
 *     tombstone; nblocks drops by the number that existed: all of them in a
 *     dense file, else counted by a kv_get each (few) or by
 *     kvfs_file_count_blocks (many: a KV_READ_LATEST scan, O(blocks stored
 *     in the range), no wait for a commit, as a sparse truncate).
 *     The blocks at the edges are rewritten with the range zeroed (shorter
 *     if the range reaches the end of their value: possibly empty, still
 *     allocated). An inline file has its bytes zeroed.
 *   - copy: chunks of the destination of at most COPY_CHUNK bytes, one
 *     batch each. When both offsets have the same alignment in a block,
 *     the destination's whole blocks take the source block's value as it
 *     is (absent: the destination block is deleted; empty: it stays
 *     empty); partial blocks, other alignments and inline files go through
 *     a buffer and kvfs_file_write. The ranges of a same-file copy do not
 *     overlap (-EINVAL), so no byte read is one this copy wrote: reading a
 *     source block that shares a block with the destination sees its older
 *     version, whose source bytes are the same.
 *   - seek: no lock, like a read. An inline file is data up to its size,
 *     a dense file data, a file without blocks a hole; otherwise the data
 *     keys from the offset's block are scanned until the answer, with
 *     kvfs_scan_latest: the inode was read as its newest appended version,
 *     so its blocks are too (appended blocks count, no wait for a commit).
 */
#include "data.h"

#include <errno.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Static_assert(KVFS_FALLOC_KEEP_SIZE == FALLOC_FL_KEEP_SIZE, "fallocate mode");
_Static_assert(KVFS_FALLOC_PUNCH_HOLE == FALLOC_FL_PUNCH_HOLE, "fallocate mode");

/* Empty values per allocation batch: about 100 KiB of batch, far below a
 * quarter of the smallest log buffer kvfs runs with (1 MiB in the tests). */
#define ALLOC_BATCH 4096u
/* Bytes of the destination per copy batch (as fs/data.c's WRITE_CHUNK). */
#define COPY_CHUNK (128u << 10)
/* Whole blocks a punch deletes one by one; more take a range tombstone. */
#define PUNCH_POINT_MAX 64u

/* ---- blocks ------------------------------------------------------------- */

static uint64_t blocks_for(uint64_t size, uint32_t bs)
{
	return size / bs + (size % bs != 0);
}

/* Whether @in's data may be handled inline (fs/data.c, invariant 4). */
static bool file_inline(const struct kvfs *fs, const struct kvfs_inode *in)
{
	return (in->flags & KVFS_IF_INLINE) || (!in->nblocks && in->size <= fs->inline_max);
}

/* Block @blk of @ino (newest appended version) into @buf: its length, or
 * -ENOENT for a hole. @cap 0 only asks whether it exists. */
static ssize_t blk_get(struct kvfs *fs, uint64_t ino, uint64_t blk, void *buf, size_t cap)
{
	uint8_t key[KVFS_KEY_MAX], none;
	ssize_t n = kv_get(fs->db, KV_READ_LATEST, key, kvfs_key_data(key, ino, blk),
			   cap ? buf : &none, cap);

	if (n > (ssize_t)fs->block_size) {
		kvfs_log(fs, KV_LOG_ERROR,
			 "%s: inode %llu: block %llu holds %zd bytes (block size %u)", fs->store,
			 (unsigned long long)ino, (unsigned long long)blk, n, fs->block_size);
		return -EUCLEAN;
	}
	return n;
}

static int blk_put(struct kv_batch *b, uint64_t ino, uint64_t blk, const void *v, size_t len)
{
	uint8_t key[KVFS_KEY_MAX];

	return kv_batch_put(b, key, kvfs_key_data(key, ino, blk), v, len);
}

static int blk_del(struct kv_batch *b, uint64_t ino, uint64_t blk)
{
	uint8_t key[KVFS_KEY_MAX];

	return kv_batch_delete(b, key, kvfs_key_data(key, ino, blk));
}

/*
 * Whether block @blk of a file in blocks exists (1), is a hole (0), or
 * -errno, from @in as the operation has changed it so far (nblocks exact,
 * no block at or past ceil(size / bs)): a block this operation has put in
 * its unappended batch is never asked about.
 */
static int blk_exists(struct kvfs *fs, uint64_t ino, const struct kvfs_inode *in, uint64_t blk)
{
	uint64_t end = blocks_for(in->size, fs->block_size);
	ssize_t n;

	if (!in->nblocks || blk >= end)
		return 0;
	if (in->nblocks == end)
		return 1;
	n = blk_get(fs, ino, blk, NULL, 0);
	if (n == -ENOENT)
		return 0;
	return n < 0 ? (int)n : 1;
}

/* Move an inline file's bytes to block 0 (added to @b): it is in blocks. */
static int to_blocks(uint64_t ino, struct kvfs_file *f, struct kv_batch *b)
{
	int err = 0;

	if (f->inline_len)
		err = blk_put(b, ino, 0, f->inl, f->inline_len);
	f->in.nblocks = f->inline_len ? 1 : 0;
	f->in.flags &= ~KVFS_IF_INLINE;
	f->inline_len = 0;
	return err;
}

/* Put @f's inode with times @now (mtime too if @mtime) and append @b. */
static int put_append(struct kvfs *fs, uint64_t ino, struct kvfs_file *f, bool mtime,
		      const struct timespec *now, struct kvfs_ack *a, struct kv_batch *b)
{
	int err;

	f->in.ctime = *now;
	if (mtime)
		f->in.mtime = *now;
	err = kvfs_file_put(b, ino, f);
	return err ? err : kvfs_ack_append(fs, a, b);
}

/* ---- fallocate ---------------------------------------------------------- */

/* Mode 0 and KEEP_SIZE: give every hole of [off, off + len) an empty value. */
static int alloc_range(struct kvfs *fs, uint64_t ino, struct kvfs_file *f, uint64_t off,
		       uint64_t len, bool keep, struct kvfs_ack *a)
{
	struct kvfs_inode *in = &f->in;
	uint32_t bs = fs->block_size;
	uint64_t size = in->size, aend, blk, last, old_end;
	struct kv_batch *b = kvfs_batch();
	struct timespec now;
	unsigned pending = 0;
	bool none, dense;
	int err = 0;

	if (!keep && off + len > size)
		size = off + len;
	aend = off + len < size ? off + len : size;
	if (off >= aend)
		return 0; /* KEEP_SIZE wholly at or past EOF: see "What is not done" */
	kvfs_now(&now);
	if (file_inline(fs, in))
		err = to_blocks(ino, f, b);
	old_end = blocks_for(in->size, bs);
	none = !in->nblocks;
	dense = in->nblocks == old_end;
	blk = off / bs;
	last = blocks_for(aend, bs);
	if (dense && blk < old_end)
		blk = old_end; /* every block below the old end exists */
	for (; !err && blk < last; blk++) {
		int have = 0;

		if (!none && !dense && blk < old_end) {
			ssize_t n = blk_get(fs, ino, blk, NULL, 0);

			have = n >= 0;
			if (n < 0 && n != -ENOENT)
				err = (int)n;
		}
		if (err || have)
			continue;
		err = blk_put(b, ino, blk, "", 0);
		in->nblocks++;
		if (!err && ++pending == ALLOC_BATCH && blk + 1 < last) {
			/* Grow the size just enough for this batch's blocks. */
			uint64_t upto = (blk + 1) * bs < size ? (blk + 1) * bs : size;
			bool grow = upto > in->size;

			if (grow)
				in->size = upto;
			err = put_append(fs, ino, f, grow, &now, a, b);
			b = kvfs_batch();
			pending = 0;
		}
	}
	if (err)
		return err;
	if (size > in->size) {
		in->size = size;
		return put_append(fs, ino, f, true, &now, a, b);
	}
	return put_append(fs, ino, f, false, &now, a, b);
}

/* Zero bytes [s, e) of block @blk (kept allocated, perhaps shortened). */
static int zero_part(struct kvfs *fs, uint64_t ino, struct kvfs_file *f, uint64_t blk, size_t s,
		     size_t e, struct kv_batch *b)
{
	ssize_t n = blk_get(fs, ino, blk, f->scratch, fs->block_size);

	if (n == -ENOENT || (n >= 0 && (size_t)n <= s))
		return 0; /* nothing stored in [s, e) */
	if (n < 0)
		return (int)n;
	if ((size_t)n <= e)
		n = (ssize_t)s;
	else
		memset(f->scratch + s, 0, e - s);
	return blk_put(b, ino, blk, f->scratch, (size_t)n);
}

/* Punch [off, end) (end <= size) of a file in blocks into @b. */
static int punch_blocks(struct kvfs *fs, uint64_t ino, struct kvfs_file *f, uint64_t off,
			uint64_t end, struct kv_batch *b)
{
	struct kvfs_inode *in = &f->in;
	uint32_t bs = fs->block_size;
	uint64_t fend = blocks_for(in->size, bs), gone = 0;
	/* Whole blocks [fb, lb): the last block is whole when the range
	 * reaches EOF, since nothing past EOF is stored. */
	uint64_t fb = blocks_for(off, bs), lb = end == in->size ? fend : end / bs;
	int err = 0;

	if (!in->nblocks)
		return 0;
	if (off % bs) {
		uint64_t hb = off / bs;
		size_t e = end - hb * bs < bs ? (size_t)(end - hb * bs) : bs;

		err = zero_part(fs, ino, f, hb, (size_t)(off % bs), e, b);
	}
	if (!err && lb >= fb && lb * bs < end)
		err = zero_part(fs, ino, f, lb, 0, (size_t)(end - lb * bs), b);
	if (err || fb >= lb)
		return err;
	if (lb - fb <= PUNCH_POINT_MAX) {
		for (uint64_t i = fb; i < lb && !err; i++) {
			int have = blk_exists(fs, ino, in, i);

			if (have < 0)
				return have;
			gone += (uint64_t)have;
			err = blk_del(b, ino, i);
		}
	} else {
		uint8_t k1[KVFS_KEY_MAX], k2[KVFS_KEY_MAX];

		if (in->nblocks == fend)
			gone = lb - fb;
		else
			err = kvfs_file_count_blocks(fs, ino, fb, lb, &gone);
		if (!err)
			err = kv_batch_delete_range(b, k1, kvfs_key_data(k1, ino, fb), k2,
						    kvfs_key_data(k2, ino, lb));
	}
	if (!err)
		in->nblocks -= gone < in->nblocks ? gone : in->nblocks;
	return err;
}

static int punch(struct kvfs *fs, uint64_t ino, struct kvfs_file *f, uint64_t off, uint64_t len,
		 struct kvfs_ack *a)
{
	uint64_t end = off + len < f->in.size ? off + len : f->in.size;
	struct kv_batch *b;
	struct timespec now;
	int err = 0;

	if (off >= end)
		return 0; /* nothing of the file in the range */
	b = kvfs_batch();
	if (file_inline(fs, &f->in)) {
		if (off < f->inline_len && end >= f->inline_len)
			f->inline_len = (size_t)off;
		else if (off < f->inline_len)
			memset(f->inl + off, 0, (size_t)(end - off));
	} else {
		err = punch_blocks(fs, ino, f, off, end, b);
	}
	kvfs_now(&now);
	return err ? err : put_append(fs, ino, f, true, &now, a, b);
}

int kvfs_fallocate(struct kvfs *fs, uint64_t ino, int mode, uint64_t off, uint64_t len,
		   const struct kvfs_done *done)
{
	bool keep = mode & KVFS_FALLOC_KEEP_SIZE, hole = mode & KVFS_FALLOC_PUNCH_HOLE;
	uint32_t bs = fs->block_size;
	struct kvfs_fop op;
	bool one;
	int err;

	if (off > KVFS_MAX_FILE_SIZE || !len || len > KVFS_MAX_FILE_SIZE)
		return -EINVAL; /* a negative off_t, or len <= 0 */
	if ((mode & ~(KVFS_FALLOC_KEEP_SIZE | KVFS_FALLOC_PUNCH_HOLE)) || (hole && !keep))
		return -EOPNOTSUPP;
	if (fs->read_only)
		return -EROFS;
	/* Blocks the range touches (+ block 0 of an inline file). */
	one = hole || (off + len - 1) / bs - off / bs + 1 < ALLOC_BATCH;
	err = kvfs_fop_begin(fs, ino, done, one, &op);
	if (err)
		return err;
	if (!S_ISREG(op.f.in.mode))
		err = S_ISDIR(op.f.in.mode) ? -EISDIR : -ENODEV;
	if (!err && off + len > KVFS_MAX_FILE_SIZE)
		err = -EFBIG;
	if (!err)
		err = hole ? punch(fs, ino, &op.f, off, len, op.a) :
			     alloc_range(fs, ino, &op.f, off, len, keep, op.a);
	return kvfs_fop_end(fs, ino, &op, err);
}

/* ---- SEEK_DATA / SEEK_HOLE ---------------------------------------------- */

struct seek_walk {
	int whence;
	uint64_t next; /* SEEK_HOLE: the next block expected to be stored */
	uint64_t data; /* SEEK_DATA: the first block stored */
	bool found;
};

static int seek_key(struct kvfs *fs, const void *k, size_t klen, void *arg)
{
	struct seek_walk *w = arg;
	struct kvfs_key key;

	(void)fs;
	if (kvfs_key_parse(k, klen, &key) || key.type != KVFS_K_DATA)
		return -EUCLEAN;
	if (w->whence == SEEK_DATA) {
		w->data = key.block;
		w->found = true;
		return 1;
	}
	if (key.block != w->next)
		return 1; /* a hole at w->next */
	w->next++;
	return 0;
}

/* Scan the data keys of a sparse file from @off's block. */
static int seek_scan(struct kvfs *fs, uint64_t ino, const struct kvfs_inode *in, uint64_t off,
		     int whence, uint64_t *out)
{
	uint32_t bs = fs->block_size;
	uint8_t lo[KVFS_KEY_MAX], hi[KVFS_KEY_MAX];
	size_t llen = kvfs_key_data(lo, ino, off / bs);
	size_t hlen = kvfs_key_data(hi, ino, blocks_for(in->size, bs));
	struct seek_walk w = { .whence = whence, .next = off / bs };
	int err = kvfs_scan_latest(fs, lo, llen, hi, hlen, seek_key, &w);

	if (err < 0)
		return err;
	if (whence == SEEK_DATA) {
		if (!w.found)
			return -ENXIO;
		*out = w.data * bs > off ? w.data * bs : off;
	} else {
		*out = w.next * bs > off ? w.next * bs : off;
		if (*out > in->size)
			*out = in->size;
	}
	return 0;
}

int kvfs_lseek(struct kvfs *fs, uint64_t ino, uint64_t off, int whence, uint64_t *out)
{
	struct kvfs_file f;
	uint64_t end;
	int err;

	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	err = kvfs_file_init(fs, &f);
	if (err)
		return err;
	err = kvfs_file_load(fs, ino, &f);
	if (!err && !S_ISREG(f.in.mode))
		err = -EINVAL;
	if (!err && off >= f.in.size)
		err = -ENXIO;
	if (err)
		goto out;
	end = blocks_for(f.in.size, fs->block_size);
	if (((f.in.flags & KVFS_IF_INLINE) && f.inline_len) ||
	    (f.in.nblocks && f.in.nblocks == end))
		*out = whence == SEEK_DATA ? off : f.in.size; /* all data */
	else if (f.in.nblocks)
		err = seek_scan(fs, ino, &f.in, off, whence, out);
	else if (whence == SEEK_DATA)
		err = -ENXIO; /* all hole */
	else
		*out = off;
out:
	kvfs_file_free(&f);
	return err;
}

/* ---- copy_file_range ---------------------------------------------------- */

struct copy_job {
	struct kvfs *fs;
	uint64_t ino_in, ino_out;
	struct kvfs_file *fin, *fout; /* the same for a copy within one file */
	uint64_t off_in, off_out;
	uint8_t *buf; /* COPY_CHUNK bytes */
	uint8_t *blk; /* one block */
};

/* Read @n bytes of the source at @off (inside its size) into @dst. */
static int gather(struct copy_job *j, uint64_t off, size_t n, uint8_t *dst)
{
	struct kvfs_file *f = j->fin;
	uint32_t bs = j->fs->block_size;
	uint64_t end = off + n;

	if (file_inline(j->fs, &f->in)) {
		size_t have = 0;

		if (off < f->inline_len)
			have = f->inline_len - off < n ? f->inline_len - (size_t)off : n;
		memcpy(dst, f->inl + off, have);
		memset(dst + have, 0, n - have);
		return 0;
	}
	for (uint64_t p = off; p < end;) {
		size_t s = (size_t)(p % bs), e = end - p < bs - s ? s + (size_t)(end - p) : bs;
		ssize_t got = f->in.nblocks ? blk_get(j->fs, j->ino_in, p / bs, j->blk, bs) :
					      -ENOENT;

		if (got == -ENOENT)
			got = 0;
		if (got < 0)
			return (int)got;
		if ((size_t)got < e)
			memset(j->blk + got, 0, e - (size_t)got);
		memcpy(dst + (p - off), j->blk + s, e - s);
		p += e - s;
	}
	return 0;
}

/* Destination bytes [pos, stop) through a buffer, as a write. */
static int copy_bytes(struct copy_job *j, uint64_t pos, uint64_t stop, struct kv_batch *b)
{
	size_t n = (size_t)(stop - pos);
	int err = gather(j, j->off_in + (pos - j->off_out), n, j->buf);

	return err ? err : kvfs_file_write(j->fs, j->ino_out, j->fout, pos, j->buf, n, b);
}

/* Whole destination block @blk from the source block at the same alignment. */
static int copy_block(struct copy_job *j, uint64_t blk, struct kv_batch *b)
{
	struct kvfs_inode *out = &j->fout->in;
	uint32_t bs = j->fs->block_size;
	uint64_t sblk = (j->off_in + (blk * bs - j->off_out)) / bs;
	ssize_t n = j->fin->in.nblocks ? blk_get(j->fs, j->ino_in, sblk, j->blk, bs) : -ENOENT;
	int have = blk_exists(j->fs, j->ino_out, out, blk), err = 0;

	if (have < 0)
		return have;
	if (n == -ENOENT) {
		if (have) {
			err = blk_del(b, j->ino_out, blk);
			out->nblocks--;
		}
	} else if (n < 0) {
		return (int)n;
	} else {
		err = blk_put(b, j->ino_out, blk, j->blk, (size_t)n);
		out->nblocks += (uint64_t)!have;
	}
	if ((blk + 1) * bs > out->size)
		out->size = (blk + 1) * bs;
	return err;
}

/* Destination bytes [pos, stop) (one chunk) into @b. */
static int copy_chunk(struct copy_job *j, uint64_t pos, uint64_t stop, struct kv_batch *b)
{
	uint32_t bs = j->fs->block_size;
	uint64_t head;
	int err = 0;

	if (j->off_in % bs != j->off_out % bs || file_inline(j->fs, &j->fin->in))
		return copy_bytes(j, pos, stop, b);
	if (file_inline(j->fs, &j->fout->in)) {
		/* An empty destination (a new file) moves to blocks at no cost;
		 * one with bytes goes through kvfs_file_write, which moves
		 * them to block 0 in this batch. */
		if (j->fout->inline_len || stop <= j->fs->inline_max)
			return copy_bytes(j, pos, stop, b);
		to_blocks(j->ino_out, j->fout, b);
	}
	head = blocks_for(pos, bs) * bs;
	if (pos % bs) {
		err = copy_bytes(j, pos, head < stop ? head : stop, b);
		pos = head;
	}
	for (; !err && pos + bs <= stop; pos += bs)
		err = copy_block(j, pos / bs, b);
	if (!err && pos < stop)
		err = copy_bytes(j, pos, stop, b);
	return err;
}

/* Where the batch of a copy whose destination starts at @pos ends. */
static uint64_t chunk_end(const struct kvfs *fs, uint64_t pos)
{
	uint32_t bs = fs->block_size;
	uint64_t blocks = COPY_CHUNK / bs ? COPY_CHUNK / bs : 1;

	return (pos / bs + blocks) * bs;
}

static int check_copyable(uint32_t mode)
{
	if (S_ISREG(mode))
		return 0;
	return S_ISDIR(mode) ? -EISDIR : -EINVAL;
}

static int copy_locked(struct copy_job *j, size_t len, int kill_suid, struct kvfs_ack *a,
		       size_t *copied, size_t *written)
{
	struct kvfs *fs = j->fs;
	uint64_t n, pos, end, size_in;
	struct timespec now;
	int err;

	err = kvfs_file_load(fs, j->ino_in, j->fin);
	if (!err)
		err = check_copyable(j->fin->in.mode);
	if (!err && j->fout != j->fin)
		err = kvfs_file_load(fs, j->ino_out, j->fout);
	if (!err)
		err = check_copyable(j->fout->in.mode);
	if (err)
		return err;
	size_in = j->fin->in.size;
	n = j->off_in >= size_in ? 0 : size_in - j->off_in < len ? size_in - j->off_in : len;
	if (!n)
		return 0;
	if (j->fin == j->fout && j->off_in < j->off_out + n && j->off_out < j->off_in + n)
		return -EINVAL;
	if (j->off_out >= KVFS_MAX_FILE_SIZE)
		return -EFBIG;
	if (n > KVFS_MAX_FILE_SIZE - j->off_out)
		n = KVFS_MAX_FILE_SIZE - j->off_out; /* short, as a write */
	*copied = (size_t)n;
	if (kill_suid)
		kvfs_kill_suid(&j->fout->in);
	kvfs_now(&now);
	end = j->off_out + n;
	for (pos = j->off_out; !err && pos < end;) {
		uint64_t stop = chunk_end(fs, pos) < end ? chunk_end(fs, pos) : end;
		struct kv_batch *b = kvfs_batch();

		err = copy_chunk(j, pos, stop, b);
		if (!err)
			err = put_append(fs, j->ino_out, j->fout, true, &now, a, b);
		if (!err)
			*written += (size_t)(stop - pos);
		pos = stop;
	}
	return err;
}

ssize_t kvfs_copy_file_range(struct kvfs *fs, uint64_t ino_in, uint64_t off_in, uint64_t ino_out,
			     uint64_t off_out, size_t len, unsigned flags, int kill_suid,
			     size_t *copied, const struct kvfs_done *done)
{
	struct copy_job j = { .fs = fs,
			      .ino_in = ino_in,
			      .ino_out = ino_out,
			      .off_in = off_in,
			      .off_out = off_out };
	struct kvfs_file fin, fout;
	struct kvfs_ack stack, *a;
	uint64_t inos[2] = { ino_in, ino_out };
	size_t written = 0;
	int err;

	*copied = 0;
	if (flags || off_in > KVFS_MAX_FILE_SIZE || off_out > KVFS_MAX_FILE_SIZE)
		return -EINVAL;
	if (!len)
		return 0;
	if (fs->read_only)
		return -EROFS;
	j.fin = &fin;
	j.fout = ino_in == ino_out ? &fin : &fout;
	memset(&fout, 0, sizeof(fout));
	err = kvfs_file_init(fs, &fin);
	if (!err && j.fout == &fout)
		err = kvfs_file_init(fs, &fout);
	j.buf = malloc(COPY_CHUNK);
	j.blk = malloc(fs->block_size);
	if (!err && (!j.buf || !j.blk))
		err = -ENOMEM;
	/* chunk_end cannot overflow: off_out <= 2^63 - 1, a chunk is small. */
	if (!err)
		err = kvfs_ack_start(&a, &stack, done, len <= chunk_end(fs, off_out) - off_out);
	if (err)
		goto out;
	kvfs_lock_inodes(fs, inos, 2);
	err = copy_locked(&j, len, kill_suid, a, copied, &written);
	kvfs_unlock_inodes(fs, inos, 2);
	if (done) {
		err = kvfs_ack_end(a, err);
		goto out;
	}
	if (err && written)
		err = 0; /* a short copy: report what was copied */
	err = kvfs_ack_end(a, err);
	*copied = written;
out:
	kvfs_file_free(&fin);
	kvfs_file_free(&fout);
	free(j.buf);
	free(j.blk);
	return err ? err : done ? 0 : (ssize_t)written;
}
