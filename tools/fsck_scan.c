// SPDX-License-Identifier: MIT
/*
 * fsck.kvfs passes 1-3: the superblock, then one ordered scan of the store
 * (inodes, entries, data blocks, xattrs; orphan records are only noted).
 * Everything is parsed through fs/schema.h.
 */
#include "fsck_int.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define DT_NAME(t)                         \
	((t) == DT_DIR	? "directory" :    \
	 (t) == DT_REG	? "regular file" : \
	 (t) == DT_FIFO ? "fifo" :         \
	 (t) == DT_LNK	? "symlink" :      \
	 (t) == DT_SOCK ? "socket" :       \
			  "device")

struct fsck_rec *fsck_find(struct fsck *c, uint64_t ino)
{
	size_t lo = 0, hi = c->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (c->r[mid].ino < ino)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < c->n && c->r[lo].ino == ino ? &c->r[lo] : NULL;
}

/* Append a record (the scan meets inodes in increasing order). */
static struct fsck_rec *rec_add(struct fsck *c, uint64_t ino)
{
	struct fsck_rec *r;

	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 4096;

		r = realloc(c->r, cap * sizeof(*r));
		if (!r)
			return NULL;
		c->r = r;
		c->cap = cap;
	}
	r = &c->r[c->n++];
	memset(r, 0, sizeof(*r));
	r->ino = ino;
	if (ino > c->max_ino)
		c->max_ino = ino;
	return r;
}

void fsck_print_name(char *out, size_t cap, const char *name, size_t len)
{
	size_t o = 0;

	for (size_t i = 0; i < len && o + 5 < cap; i++) {
		unsigned char ch = (unsigned char)name[i];

		if (ch < 0x20 || ch == 0x7f || ch == '\\')
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
		else
			out[o++] = (char)ch;
	}
	out[o] = 0;
}

int fsck_inode_get(struct fsck *c, uint64_t ino, struct kvfs_inode *in, uint8_t *inl,
		   size_t *inl_len)
{
	uint8_t key[KVFS_KEY_MAX], *v;
	const void *p;
	size_t vlen;
	int err = kv_get_alloc(c->db, KV_READ_LATEST, key, kvfs_key_inode(key, ino), (void **)&v,
			       &vlen);

	if (err)
		return err;
	err = kvfs_inode_decode(v, vlen, in, &p, inl_len);
	if (!err && *inl_len > FSCK_INLINE_CAP)
		err = -EUCLEAN;
	if (!err && *inl_len)
		memcpy(inl, p, *inl_len);
	free(v);
	return err;
}

/* ---- the superblock ---------------------------------------------------- */

/* The block size the data keys imply: the smallest power of two that
 * holds the longest block (full blocks are exactly one block long). */
static int guess_block_size(struct fsck *c, uint32_t *bs, int *any_inode)
{
	uint8_t k[KVFS_KEY_MAX];
	struct kv_iter *it;
	size_t max = 0;
	int err = kv_iter_create(c->db, NULL, &it);

	if (err)
		return err;
	kv_iter_seek(it, k, kvfs_key_prefix(k, KVFS_K_INODE, 0));
	*any_inode = 0;
	if (kv_iter_valid(it)) {
		size_t klen;
		const uint8_t *key = kv_iter_key(it, &klen);

		*any_inode = key[0] == KVFS_K_INODE;
	}
	for (kv_iter_seek(it, k, kvfs_key_prefix(k, KVFS_K_DATA, 0)); kv_iter_valid(it);
	     kv_iter_next(it)) {
		size_t klen, vlen;
		const uint8_t *key = kv_iter_key(it, &klen);

		if (key[0] != KVFS_K_DATA)
			break;
		kv_iter_value(it, &vlen);
		if (vlen > max)
			max = vlen;
	}
	err = kv_iter_status(it);
	kv_iter_destroy(it);
	*bs = 1024;
	while (*bs < max && *bs < 65536)
		*bs <<= 1;
	if (!max)
		*bs = 4096;
	return err;
}

/* The largest inode number with an inode key: a binary search by seeks
 * (64 of them), not a scan. 0 if there is none. */
static int highest_inode(struct fsck *c, uint64_t *max)
{
	uint8_t k[KVFS_KEY_MAX];
	uint64_t lo = 1, hi = UINT64_MAX; /* an inode >= lo exists; none > hi */
	struct kv_iter *it;
	int err = kv_iter_create(c->db, NULL, &it);

	if (err)
		return err;
	*max = 0;
	while (lo <= hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		struct kvfs_key key;
		const void *kp;
		size_t kl;
		bool found;

		kv_iter_seek(it, k, kvfs_key_prefix(k, KVFS_K_INODE, mid));
		found = kv_iter_valid(it);
		if (found) {
			kp = kv_iter_key(it, &kl);
			found = !kvfs_key_parse(kp, kl, &key) && key.type == KVFS_K_INODE;
		}
		if (!found) {
			hi = mid - 1;
			continue;
		}
		*max = key.ino; /* the first inode >= mid */
		if (key.ino == UINT64_MAX)
			break;
		lo = key.ino + 1;
	}
	err = kv_iter_status(it);
	kv_iter_destroy(it);
	return err;
}

int fsck_super(struct fsck *c)
{
	uint8_t k[KVFS_KEY_MAX], v[KVFS_SUPER_SIZE + 1];
	size_t klen = kvfs_key_super(k);
	ssize_t n = kv_get(c->db, KV_READ_LATEST, k, klen, v, sizeof(v));
	const char *why = "is missing";
	struct kvfs_super sb = { 0 };
	struct timespec now;
	struct kv_batch *b;
	int err = -ENOENT, any_inode;
	uint64_t max;

	fsck_pass(c, 1, "checking the superblock and inodes");
	if (n < 0 && n != -ENOENT) {
		fprintf(c->io->err, "fsck.kvfs: %s: cannot read the superblock: %s\n", c->store,
			strerror((int)-n));
		return (int)n;
	}
	if (n >= 0) {
		err = kvfs_super_decode(v, (size_t)n < sizeof(v) ? (size_t)n : sizeof(v), &sb);
		why = err == -EMEDIUMTYPE ? "has a bad magic number" : "is corrupt";
	}
	if (!err) {
		c->sb = sb;
		c->sb_ok = 1;
		return 0;
	}
	if (err == -EPROTONOSUPPORT) {
		fprintf(c->io->err,
			"fsck.kvfs: %s: a newer kvfs format or unknown features (version %u): "
			"this fsck cannot check it\n",
			c->store, sb.version);
		return err;
	}
	err = guess_block_size(c, &sb.block_size, &any_inode);
	if (err)
		return err;
	if (!any_inode) {
		fprintf(c->io->err,
			"fsck.kvfs: %s: not a kvfs filesystem (no superblock, no inodes)\n",
			c->store);
		return -EMEDIUMTYPE;
	}
	if (!fsck_ask(c, false, "Rebuild it",
		      "The superblock %s; the data suggest a block size of %u", why,
		      sb.block_size)) {
		fsck_info(c, "%s: cannot check the filesystem without a valid superblock\n",
			  c->store);
		return -EUCLEAN;
	}
	err = highest_inode(c, &max);
	if (err)
		return err;
	kvfs_now(&now);
	sb.version = KVFS_FORMAT_VERSION;
	sb.inline_max = sb.block_size / 2 < 2048 ? sb.block_size / 2 : 2048;
	/* Past every inode in the same batch: pass 7 has nothing left to do. */
	sb.ino_next = max + 1 > 3 ? max + 1 : 3;
	sb.created_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
	if (getrandom(sb.uuid, sizeof(sb.uuid), 0) != (ssize_t)sizeof(sb.uuid))
		memcpy(sb.uuid, &now, sizeof(sb.uuid));
	b = fsck_batch(c);
	if (!b)
		return -ENOMEM;
	kvfs_super_encode(&sb, v);
	err = kv_batch_put(b, k, klen, v, KVFS_SUPER_SIZE);
	if (err || fsck_commit(c, b))
		return err ? err : -EIO;
	c->sb = sb;
	c->sb_ok = 1;
	return 0;
}

/* ---- the scan ---------------------------------------------------------- */

struct scan {
	struct kv_iter *it;
	unsigned type;	  /* of the keys being scanned */
	int seeked;	  /* the iterator was moved: do not step */
	uint64_t dir_ino; /* entries: the directory of the last one */
	struct fsck_rec *dir;
};

/* Move past every key of type @t of @ino. */
static void seek_past(struct scan *s, unsigned t, uint64_t ino)
{
	uint8_t k[KVFS_KEY_MAX];
	size_t kl;

	if (ino == UINT64_MAX) {
		k[0] = (uint8_t)(t + 1);
		kl = 1;
	} else {
		kl = kvfs_key_prefix(k, t, ino + 1);
	}
	kv_iter_seek(s->it, k, kl);
	s->seeked = 1;
}

/* Delete every key of type @t of @ino (one range tombstone). */
static void delete_all(struct fsck *c, unsigned t, uint64_t ino)
{
	uint8_t k1[KVFS_KEY_MAX], k2[KVFS_KEY_MAX];
	size_t l1 = kvfs_key_prefix(k1, t, ino), l2;
	struct kv_batch *b = fsck_batch(c);

	if (ino == UINT64_MAX) {
		k2[0] = (uint8_t)(t + 1);
		l2 = 1;
	} else {
		l2 = kvfs_key_prefix(k2, t, ino + 1);
	}
	if (!b || kv_batch_delete_range(b, k1, l1, k2, l2)) {
		c->operr = 1;
		return;
	}
	fsck_commit(c, b);
}

static void delete_key(struct fsck *c, const void *k, size_t klen)
{
	struct kv_batch *b = fsck_batch(c);

	if (!b || kv_batch_delete(b, k, klen)) {
		c->operr = 1;
		return;
	}
	fsck_commit(c, b);
}

static struct fsck_rec *synth_root(struct fsck *c)
{
	struct fsck_rec *r = rec_add(c, KVFS_ROOT_INO);

	if (r) {
		r->mode = S_IFDIR | 0755;
		r->flags = R_SYNTH;
	}
	return r;
}

static bool mode_valid(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
	case S_IFDIR:
	case S_IFLNK:
	case S_IFCHR:
	case S_IFBLK:
	case S_IFIFO:
	case S_IFSOCK:
		return true;
	}
	return false;
}

/* Clear a broken inode (its entries, data and xattrs go in later passes). */
static bool clear_inode(struct fsck *c, uint64_t ino, const char *what)
{
	struct kv_batch *b;

	if (!fsck_ask(c, false, "Clear", "Inode %llu %s", (unsigned long long)ino, what))
		return false;
	b = fsck_batch(c);
	if (!b || kvfs_batch_drop_inode(b, ino)) {
		c->operr = 1;
		return false;
	}
	return !fsck_commit(c, b);
}

/* Problems of one inode that do not depend on counts (pass 6 repairs them). */
static bool inode_odd(struct fsck *c, uint64_t ino, const struct kvfs_inode *in, size_t inl)
{
	if (!S_ISDIR(in->mode) && in->parent)
		return true;
	if (S_ISDIR(in->mode))
		return in->nblocks || (in->flags & KVFS_IF_INLINE) ||
		       (ino == KVFS_ROOT_INO && in->parent != KVFS_ROOT_INO);
	if (S_ISREG(in->mode) && (in->flags & KVFS_IF_INLINE))
		return in->nblocks || in->size < inl || in->size > c->sb.inline_max;
	if (S_ISLNK(in->mode))
		return in->size != inl || in->nblocks;
	if (!S_ISREG(in->mode))
		return in->nblocks || (in->flags & KVFS_IF_INLINE);
	return false;
}

static int scan_inode(struct fsck *c, const struct kvfs_key *key, const void *v, size_t vlen)
{
	struct kvfs_inode in;
	struct fsck_rec *r;
	const void *inl;
	size_t inl_len;
	int err;

	if (!c->n && key->ino != KVFS_ROOT_INO && !synth_root(c))
		return -ENOMEM;
	err = kvfs_inode_decode(v, vlen, &in, &inl, &inl_len);
	if (err || !mode_valid(in.mode) ||
	    (S_ISLNK(in.mode) && (!inl_len || inl_len > KVFS_SYMLINK_MAX)) ||
	    (key->ino == KVFS_ROOT_INO && !S_ISDIR(in.mode))) {
		const char *what = err			? "is corrupt" :
				   !mode_valid(in.mode) ? "has an invalid mode" :
				   key->ino == KVFS_ROOT_INO ?
							  "(the root) is not a directory" :
							  "is a symlink without a valid target";

		if (clear_inode(c, key->ino, what)) {
			if (key->ino == KVFS_ROOT_INO && !synth_root(c))
				return -ENOMEM;
			return 0;
		}
		r = rec_add(c, key->ino);
		if (!r)
			return -ENOMEM;
		r->flags = R_BAD;
		return 0;
	}
	r = rec_add(c, key->ino);
	if (!r)
		return -ENOMEM;
	r->mode = in.mode;
	r->nlink = in.nlink;
	if (S_ISDIR(in.mode)) {
		r->u.d.nentries = in.nentries;
		r->u.d.parent = in.parent;
	} else {
		r->u.f.size = in.size;
		r->u.f.nblocks = in.nblocks;
	}
	if (S_ISREG(in.mode) && (in.flags & KVFS_IF_INLINE))
		r->flags |= R_INLINE;
	if (in.flags & KVFS_IF_XATTR)
		r->flags |= R_XFLAG;
	if (inode_odd(c, key->ino, &in, inl_len))
		r->flags |= R_CHECK;
	return 0;
}

static bool name_valid(const char *name, size_t len)
{
	if (!len || len > KVFS_NAME_MAX || (len == 1 && name[0] == '.') ||
	    (len == 2 && name[0] == '.' && name[1] == '.'))
		return false;
	return !memchr(name, '/', len) && !memchr(name, 0, len);
}

/*
 * An entry key whose name is empty or longer than kvfs_key_parse accepts:
 * its directory and hash, read by the parser from a copy given a one-byte
 * name, and the name as it is. False if it is not even that.
 */
static bool parse_bad_entry(const void *k, size_t klen, struct kvfs_key *key)
{
	uint8_t tmp[KVFS_KEY_MAX];
	size_t head = kvfs_key_entry_from(tmp, 0, 0);

	if (klen < head || *(const uint8_t *)k != KVFS_K_ENTRY)
		return false;
	memcpy(tmp, k, head);
	tmp[head] = 'x';
	if (kvfs_key_parse(tmp, head + 1, key) || key->type != KVFS_K_ENTRY)
		return false;
	key->name = (const char *)k + head;
	key->namelen = klen - head;
	return true;
}

void fsck_touch(struct kvfs_inode *in)
{
	kvfs_now(&in->mtime);
	in->ctime = in->mtime;
}

/*
 * Remove the entry @k of directory @d and update @d in the same batch: one
 * entry fewer, one link fewer if it named a directory (@type DT_DIR), new
 * change times. A directory not in the store (the root, created in pass 5
 * from the counts) has nothing to update.
 */
static bool remove_entry(struct fsck *c, struct fsck_rec *d, const void *k, size_t klen,
			 unsigned type)
{
	static uint8_t inl[FSCK_INLINE_CAP];
	struct kv_batch *b = fsck_batch(c);
	struct kvfs_inode in;
	bool synth = d->flags & R_SYNTH;
	size_t len;

	if (!b || kv_batch_delete(b, k, klen))
		goto fail;
	if (!synth) {
		if (fsck_inode_get(c, d->ino, &in, inl, &len))
			goto fail;
		if (in.nentries)
			in.nentries--;
		if (type == DT_DIR && in.nlink > 2)
			in.nlink--;
		fsck_touch(&in);
		if (kvfs_batch_put_inode(b, d->ino, &in, inl, len))
			goto fail;
	}
	if (fsck_commit(c, b))
		return false;
	if (!synth) {
		d->nlink = in.nlink;
		d->u.d.nentries = in.nentries;
	}
	return true;
fail:
	fprintf(c->io->err, "fsck.kvfs: %s: cannot remove an entry of directory %llu\n", c->store,
		(unsigned long long)d->ino);
	c->operr = 1;
	return false;
}

/* Move the entry to its key under the right hash (@nk), in one batch. */
static bool rehash_entry(struct fsck *c, const void *k, size_t klen, const void *nk, size_t nl,
			 const void *v, size_t vlen)
{
	struct kv_batch *b = fsck_batch(c);

	if (!b || kv_batch_delete(b, k, klen) || kv_batch_put(b, nk, nl, v, vlen)) {
		c->operr = 1;
		return false;
	}
	return !fsck_commit(c, b);
}

static void fix_entry_type(struct fsck *c, const void *k, size_t klen, uint64_t child,
			   unsigned type)
{
	uint8_t v[KVFS_ENTRY_SIZE];
	struct kv_batch *b = fsck_batch(c);

	kvfs_entry_encode(child, type, v);
	if (!b || kv_batch_put(b, k, klen, v, sizeof(v))) {
		c->operr = 1;
		return;
	}
	fsck_commit(c, b);
}

static int scan_entry(struct fsck *c, struct scan *s, const struct kvfs_key *key, const void *k,
		      size_t klen, const void *v, size_t vlen)
{
	static uint8_t nk[KVFS_KEY_MAX];
	char name[4 * 255 + 1];
	struct fsck_rec *d, *ch;
	uint64_t child;
	unsigned type, real;
	bool missing;
	size_t nl;

	if (s->dir_ino != key->ino || !s->dir) {
		s->dir_ino = key->ino;
		s->dir = fsck_find(c, key->ino);
	}
	d = s->dir;
	fsck_print_name(name, sizeof(name), key->name, key->namelen);
	missing = !d || (d->flags & R_DEAD);
	if (missing || (d->flags & R_BAD) || !S_ISDIR(d->mode)) {
		if (!missing && (d->flags & R_BAD)) {
			/* Its entries may be fine: leave them alone. */
		} else if (fsck_ask(c, missing, "Delete them",
				    "Entries of %s inode %llu (the first is '%s')",
				    missing ? "missing" : "non-directory",
				    (unsigned long long)key->ino, name)) {
			delete_all(c, KVFS_K_ENTRY, key->ino);
		}
		seek_past(s, KVFS_K_ENTRY, key->ino);
		return 0;
	}
	if (kvfs_entry_decode(v, vlen, &child, &type)) {
		if (fsck_ask(c, false, "Clear", "Entry '%s' in directory %llu is corrupt", name,
			     (unsigned long long)key->ino) &&
		    remove_entry(c, d, k, klen, 0))
			return 0;
		d->u.d.nent++;
		return 0;
	}
	if (!name_valid(key->name, key->namelen)) {
		if (fsck_ask(c, false, "Clear",
			     "Entry '%s' (%zu bytes) in directory %llu has an invalid name", name,
			     key->namelen, (unsigned long long)key->ino) &&
		    remove_entry(c, d, k, klen, type))
			return 0;
		/* Kept: counted below like any other entry. */
	} else if (kvfs_name_hash(key->name, key->namelen) != key->hash) {
		nl = kvfs_key_entry(nk, key->ino, key->name, key->namelen);
		if (kv_get(c->db, KV_READ_LATEST, nk, nl, NULL, 0) != -ENOENT) {
			if (fsck_ask(c, false, "Clear",
				     "Entry '%s' in directory %llu is stored twice, once under a "
				     "wrong hash",
				     name, (unsigned long long)key->ino) &&
			    remove_entry(c, d, k, klen, type))
				return 0;
		} else if (fsck_ask(c, true, "Fix",
				    "Entry '%s' in directory %llu is stored under a wrong hash",
				    name, (unsigned long long)key->ino) &&
			   rehash_entry(c, k, klen, nk, nl, v, vlen)) {
			k = nk; /* later repairs of this entry change the new key */
			klen = nl;
		}
	}
	ch = fsck_find(c, child);
	if (!ch || (ch->flags & (R_DEAD | R_SYNTH))) {
		if (fsck_ask(c, true, "Clear",
			     "Entry '%s' in directory %llu points to missing inode %llu", name,
			     (unsigned long long)key->ino, (unsigned long long)child) &&
		    remove_entry(c, d, k, klen, type))
			return 0;
		d->u.d.nent++;
		d->nsub += type == DT_DIR;
		return 0;
	}
	d->u.d.nent++;
	if (ch->flags & R_BAD) {
		ch->refs++;
		return 0;
	}
	real = kvfs_mode_dtype(ch->mode);
	if (S_ISDIR(ch->mode) && (child == key->ino || child == KVFS_ROOT_INO || ch->u.d.fparent)) {
		if (fsck_ask(c, false, "Clear",
			     "Entry '%s' in directory %llu is an extra link to directory %llu%s",
			     name, (unsigned long long)key->ino, (unsigned long long)child,
			     child == key->ino	    ? " (itself)" :
			     child == KVFS_ROOT_INO ? " (the root)" :
						      "") &&
		    remove_entry(c, d, k, klen, DT_DIR)) {
			d->u.d.nent--;
			return 0;
		}
		d->nsub++;
		ch->refs++;
		return 0;
	}
	if (type != real &&
	    fsck_ask(c, true, "Fix",
		     "Entry '%s' in directory %llu has type %u, but inode %llu is a %s", name,
		     (unsigned long long)key->ino, type, (unsigned long long)child, DT_NAME(real)))
		fix_entry_type(c, k, klen, child, real);
	ch->refs++;
	if (S_ISDIR(ch->mode)) {
		d->nsub++;
		ch->u.d.fparent = key->ino;
		if (key->ino == KVFS_ROOT_INO && key->namelen == 10 &&
		    !memcmp(key->name, "lost+found", 10))
			c->lf = child;
	}
	return 0;
}

/*
 * Whether a data block of @vlen bytes at @block is one kvfs writes: at most
 * a block long, at an offset that fits in off_t. An empty value is a block
 * allocated by fallocate that reads as zeros (fs/FORMAT.md).
 */
static bool block_valid(const struct fsck *c, uint64_t block, size_t vlen)
{
	if (vlen > c->sb.block_size)
		return false;
	return block < (UINT64_MAX >> 1) / c->sb.block_size;
}

/*
 * Delete data of inode @r in one batch with its block count: the key @k, or
 * with @k NULL all of them (@r is not a file that may have blocks: its count
 * becomes 0).
 */
static void drop_data(struct fsck *c, struct fsck_rec *r, const void *k, size_t klen)
{
	static uint8_t inl[FSCK_INLINE_CAP];
	uint8_t k1[KVFS_KEY_MAX], k2[KVFS_KEY_MAX];
	struct kv_batch *b = fsck_batch(c);
	struct kvfs_inode in;
	size_t len;
	int err;

	if (!b || fsck_inode_get(c, r->ino, &in, inl, &len))
		goto fail;
	if (k)
		err = kv_batch_delete(b, k, klen);
	else
		err = kv_batch_delete_range(b, k1, kvfs_key_prefix(k1, KVFS_K_DATA, r->ino), k2,
					    kvfs_key_prefix(k2, KVFS_K_DATA, r->ino + 1));
	if (err)
		goto fail;
	if (in.nblocks) {
		in.nblocks = k ? in.nblocks - 1 : 0;
		if (kvfs_batch_put_inode(b, r->ino, &in, inl, len))
			goto fail;
	}
	if (!fsck_commit(c, b) && !S_ISDIR(r->mode))
		r->u.f.nblocks = in.nblocks;
	return;
fail:
	c->operr = 1;
}

/* Data and xattr keys: owned by a live inode that may have them. */
static void scan_owned(struct fsck *c, struct scan *s, const struct kvfs_key *key, const void *k,
		       size_t klen, size_t vlen)
{
	struct fsck_rec *r = fsck_find(c, key->ino);
	bool data = key->type == KVFS_K_DATA;
	const char *what = data ? "Data blocks" : "Extended attributes";
	uint64_t end;

	if (!r || (r->flags & (R_DEAD | R_SYNTH))) {
		if (fsck_ask(c, true, "Delete", "%s of missing inode %llu", what,
			     (unsigned long long)key->ino))
			delete_all(c, key->type, key->ino);
		seek_past(s, key->type, key->ino);
		return;
	}
	if (r->flags & R_BAD) {
		seek_past(s, key->type, key->ino);
		return;
	}
	if (!data) {
		r->flags |= R_XKEYS;
		seek_past(s, KVFS_K_XATTR, key->ino);
		return;
	}
	if (!S_ISREG(r->mode) || (r->flags & R_INLINE)) {
		if (fsck_ask(c, false, "Delete", "Data blocks of inode %llu, which is %s",
			     (unsigned long long)key->ino,
			     S_ISREG(r->mode) ? "an inline file" : "not a regular file"))
			drop_data(c, r, NULL, 0);
		seek_past(s, KVFS_K_DATA, key->ino);
		return;
	}
	if (!block_valid(c, key->block, vlen)) {
		if (fsck_ask(c, false, "Delete", "Data block %llu of inode %llu holds %zu bytes",
			     (unsigned long long)key->block, (unsigned long long)key->ino, vlen))
			drop_data(c, r, k, klen);
		else
			r->u.f.dkeys++;
		return;
	}
	r->u.f.dkeys++;
	/* An empty (allocated) block still reaches into its block: like every
	 * data key it must lie below block ceil(size / block size). */
	end = key->block * c->sb.block_size + (vlen ? vlen : 1);
	if (end > r->u.f.dend)
		r->u.f.dend = end;
}

static int scan_orphan(struct fsck *c, const struct kvfs_key *key, const void *k, size_t klen)
{
	struct fsck_rec *r = fsck_find(c, key->ino);

	if (!r || (r->flags & (R_DEAD | R_SYNTH))) {
		if (fsck_ask(c, true, "Delete", "Orphan record of missing inode %llu",
			     (unsigned long long)key->ino))
			delete_key(c, k, klen);
		return 0;
	}
	r->flags |= R_ORPHAN;
	return 0;
}

/* The headers of the passes up to the one of key type @type. */
static void headers(struct fsck *c, unsigned type)
{
	if (type >= KVFS_K_ENTRY && c->pass < 2)
		fsck_pass(c, 2, "checking directory entries");
	if (type >= KVFS_K_DATA && c->pass < 3)
		fsck_pass(c, 3, "checking data blocks and extended attributes");
}

/* The first key of a new type: pass headers, and the root once inodes end. */
static int enter(struct fsck *c, struct scan *s, unsigned type)
{
	if (s->type <= KVFS_K_INODE && type > KVFS_K_INODE && !c->n && !synth_root(c))
		return -ENOMEM;
	headers(c, type);
	s->type = type;
	return 0;
}

int fsck_scan(struct fsck *c)
{
	struct scan s = { 0 };
	int err = kv_iter_create(c->db, NULL, &s.it);

	if (err)
		return err;
	s.type = KVFS_K_SUPER;
	for (kv_iter_seek_first(s.it); !err && kv_iter_valid(s.it);) {
		size_t klen, vlen;
		const void *k = kv_iter_key(s.it, &klen);
		const void *v = kv_iter_value(s.it, &vlen);
		struct kvfs_key key;

		if (fsck_stop(c))
			break;
		s.seeked = 0;
		if (kvfs_key_parse(k, klen, &key) && !parse_bad_entry(k, klen, &key))
			key.type = 0;
		if (!key.type ||
		    ((key.type == KVFS_K_INODE || key.type == KVFS_K_ORPHAN) && !key.ino)) {
			if (fsck_ask(c, false, "Delete",
				     "A key that is not kvfs's (type %u, %zu bytes)",
				     klen ? *(const uint8_t *)k : 0, klen))
				delete_key(c, k, klen);
			kv_iter_next(s.it);
			continue;
		}
		if (key.type != s.type)
			err = enter(c, &s, key.type);
		switch (key.type) {
		case KVFS_K_SUPER:
			break;
		case KVFS_K_INODE:
			err = err ? err : scan_inode(c, &key, v, vlen);
			break;
		case KVFS_K_ENTRY:
			err = err ? err : scan_entry(c, &s, &key, k, klen, v, vlen);
			break;
		case KVFS_K_DATA:
		case KVFS_K_XATTR:
			scan_owned(c, &s, &key, k, klen, vlen);
			break;
		case KVFS_K_ORPHAN:
			err = err ? err : scan_orphan(c, &key, k, klen);
			break;
		}
		fsck_progress(c, key.type, key.ino);
		if (!s.seeked)
			kv_iter_next(s.it);
	}
	if (!err)
		err = kv_iter_status(s.it);
	kv_iter_destroy(s.it);
	headers(c, KVFS_K_ORPHAN);
	if (!err && !c->n && !synth_root(c))
		err = -ENOMEM;
	if (err)
		fprintf(c->io->err, "fsck.kvfs: %s: the scan failed: %s\n", c->store,
			strerror(-err));
	if (!err && fsck_stop(c))
		return -ECANCELED;
	return err;
}
