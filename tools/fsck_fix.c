// SPDX-License-Identifier: MIT
/*
 * fsck.kvfs passes 4-7, on the records the scan built: orphans and unlinked
 * inodes, directory connectivity (lost+found), counts and sizes, the inode
 * allocator. Each repair reads the inodes it changes (newest version),
 * changes them and writes them in one batch with everything else it does.
 */
#include "fsck_int.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct ibuf {
	struct kvfs_inode in;
	uint8_t inl[FSCK_INLINE_CAP];
	size_t len;
};

static int get(struct fsck *c, uint64_t ino, struct ibuf *ib)
{
	int err = fsck_inode_get(c, ino, &ib->in, ib->inl, &ib->len);

	if (err) {
		fprintf(c->io->err, "fsck.kvfs: %s: cannot read inode %llu: %s\n", c->store,
			(unsigned long long)ino, strerror(-err));
		c->operr = 1;
	}
	return err;
}

static int put(struct kv_batch *b, uint64_t ino, const struct ibuf *ib)
{
	return kvfs_batch_put_inode(b, ino, &ib->in, ib->inl, ib->len);
}

static void new_dir(struct ibuf *ib, uint32_t perm, uint64_t parent)
{
	memset(&ib->in, 0, sizeof(ib->in));
	ib->len = 0;
	ib->in.mode = S_IFDIR | perm;
	ib->in.nlink = 2;
	kvfs_now(&ib->in.atime);
	ib->in.mtime = ib->in.ctime = ib->in.btime = ib->in.atime;
	ib->in.generation = 1;
	ib->in.parent = parent;
}

/* ---- pass 4 ------------------------------------------------------------ */

/*
 * Unlinked while still open (or still known to the kernel) when the daemon
 * stopped: no link, no entry naming it (a directory: none in it either) and
 * an orphan record. That is the state a crash leaves, not an inconsistency:
 * the next mount reclaims it (fs/core.c), as e2fsck's orphan list.
 */
static bool crash_orphan(const struct fsck_rec *r)
{
	return (r->flags & R_ORPHAN) && !(r->flags & (R_BAD | R_DEAD | R_SYNTH)) &&
	       r->ino != KVFS_ROOT_INO && !r->nlink && !r->refs &&
	       (!S_ISDIR(r->mode) || !r->u.d.nent);
}

/* -n notes it; any other mode reclaims it without asking, as a mount would:
 * everything it owns in one batch, counted as a repair. */
static void reclaim_orphan(struct fsck *c, struct fsck_rec *r)
{
	struct kv_batch *b;

	if (c->mode == FSCK_MODE_NO) {
		fsck_info(c,
			  "Inode %llu (unlinked while open) will be reclaimed at the next mount "
			  "or by fsck -y/-p\n",
			  (unsigned long long)r->ino);
		return;
	}
	if (fsck_stop(c))
		return;
	c->found++;
	b = fsck_batch(c);
	if (!b || kvfs_batch_drop_inode(b, r->ino)) {
		c->operr = 1;
		return;
	}
	if (fsck_commit(c, b))
		return;
	r->flags |= R_DEAD;
	fsck_info(c, "%s%sInode %llu (unlinked while open): reclaimed\n",
		  c->mode == FSCK_MODE_PREEN ? c->store : "",
		  c->mode == FSCK_MODE_PREEN ? ": " : "", (unsigned long long)r->ino);
}

static void reclaim_pass(struct fsck *c)
{
	uint8_t k[KVFS_KEY_MAX];

	fsck_pass(c, 4, "reclaiming orphans and unlinked inodes");
	for (size_t i = 0; i < c->n && !fsck_stop(c); i++) {
		struct fsck_rec *r = &c->r[i];
		bool dir = S_ISDIR(r->mode);
		struct kv_batch *b;

		if (r->flags & (R_BAD | R_DEAD | R_SYNTH))
			continue;
		if (crash_orphan(r)) {
			reclaim_orphan(c, r);
		} else if (r->ino != KVFS_ROOT_INO && !r->refs &&
			   (!r->nlink || (r->flags & R_ORPHAN)) && (!dir || !r->u.d.nent)) {
			/* No entry names it: with an orphan record, a link
			 * count is left; without, the record is missing. */
			bool yes = r->flags & R_ORPHAN ?
					   fsck_ask(c, true, "Reclaim",
						    "Inode %llu has an orphan record and no "
						    "entries, but link count %u",
						    (unsigned long long)r->ino, r->nlink) :
					   fsck_ask(c, true, "Reclaim",
						    "Inode %llu has no links and no orphan record",
						    (unsigned long long)r->ino);

			if (!yes)
				continue;
			b = fsck_batch(c);
			if (!b || kvfs_batch_drop_inode(b, r->ino)) {
				c->operr = 1;
				return;
			}
			if (!fsck_commit(c, b))
				r->flags |= R_DEAD;
		} else if (r->flags & R_ORPHAN) {
			if (!fsck_ask(c, true, "Delete the record",
				      "Inode %llu has an orphan record but %s",
				      (unsigned long long)r->ino,
				      r->refs || r->ino == KVFS_ROOT_INO ? "is still linked" :
									   "still holds entries"))
				continue;
			b = fsck_batch(c);
			if (!b || kv_batch_delete(b, k, kvfs_key_orphan(k, r->ino))) {
				c->operr = 1;
				return;
			}
			if (!fsck_commit(c, b))
				r->flags &= ~R_ORPHAN;
		}
	}
}

/* ---- pass 5 ------------------------------------------------------------ */

/* A number past every inode, for a new one; the superblock put in @b. */
static int alloc_ino(struct fsck *c, struct kv_batch *b, uint64_t *ino)
{
	uint8_t k[KVFS_KEY_MAX], v[KVFS_SUPER_SIZE];
	struct kvfs_super sb = c->sb;

	*ino = sb.ino_next > c->max_ino ? sb.ino_next : c->max_ino + 1;
	sb.ino_next = *ino + 1;
	kvfs_super_encode(&sb, v);
	return kv_batch_put(b, k, kvfs_key_super(k), v, sizeof(v));
}

static struct fsck_rec *lost_found(struct fsck *c)
{
	static struct ibuf lf, root;
	uint8_t k[KVFS_KEY_MAX], v[KVFS_ENTRY_SIZE];
	struct fsck_rec *r = c->lf ? fsck_find(c, c->lf) : NULL, *rt;
	struct kv_batch *b;
	uint64_t ino;
	size_t kl;

	if (r && !(r->flags & (R_DEAD | R_BAD)) && S_ISDIR(r->mode))
		return r;
	kl = kvfs_key_entry(k, KVFS_ROOT_INO, "lost+found", 10);
	if (kv_get(c->db, KV_READ_LATEST, k, kl, NULL, 0) != -ENOENT) {
		fsck_info(c, "/lost+found is not a directory: cannot reconnect anything\n");
		return NULL;
	}
	if (!fsck_ask(c, false, "Create it", "/lost+found is missing"))
		return NULL;
	b = fsck_batch(c);
	if (!b || get(c, KVFS_ROOT_INO, &root) || alloc_ino(c, b, &ino))
		goto fail;
	new_dir(&lf, 0700, KVFS_ROOT_INO);
	root.in.nentries++;
	root.in.nlink++;
	fsck_touch(&root.in);
	kvfs_entry_encode(ino, DT_DIR, v);
	if (put(b, ino, &lf) || put(b, KVFS_ROOT_INO, &root) ||
	    kv_batch_put(b, k, kl, v, sizeof(v)))
		goto fail;
	if (fsck_commit(c, b))
		return NULL;
	c->sb.ino_next = ino + 1;
	rt = fsck_find(c, KVFS_ROOT_INO);
	rt->nlink++;
	rt->nsub++;
	rt->u.d.nentries++;
	rt->u.d.nent++;
	r = &c->r[c->n]; /* rec_add's job, inlined: the array may need to grow */
	if (c->n == c->cap) {
		struct fsck_rec *nr = realloc(c->r, (c->cap + 1) * sizeof(*nr));

		if (!nr)
			goto fail;
		c->r = nr;
		c->cap++;
	}
	r = &c->r[c->n++];
	memset(r, 0, sizeof(*r));
	r->ino = ino;
	r->mode = lf.in.mode;
	r->nlink = 2;
	r->refs = 1;
	r->flags = R_DONE;
	r->u.d.parent = r->u.d.fparent = KVFS_ROOT_INO;
	c->max_ino = ino;
	c->lf = ino;
	return r;
fail:
	c->operr = 1;
	return NULL;
}

/* The key of the entry in @dir that names @child: 0 or -ENOENT. */
static int find_entry(struct fsck *c, uint64_t dir, uint64_t child, uint8_t *k, size_t *klen)
{
	uint8_t lo[KVFS_KEY_MAX];
	struct kv_iter *it;
	int err = kv_sync(c->db), found = 0;

	if (!err)
		err = kv_iter_create(c->db, NULL, &it);
	if (err)
		return err;
	for (kv_iter_seek(it, lo, kvfs_key_prefix(lo, KVFS_K_ENTRY, dir));
	     !found && kv_iter_valid(it); kv_iter_next(it)) {
		size_t kl, vl;
		const void *key = kv_iter_key(it, &kl);
		const void *v = kv_iter_value(it, &vl);
		struct kvfs_key pk;
		uint64_t ino;
		unsigned type;

		if (kvfs_key_parse(key, kl, &pk) || pk.type != KVFS_K_ENTRY || pk.ino != dir)
			break;
		if (!kvfs_entry_decode(v, vl, &ino, &type) && ino == child) {
			memcpy(k, key, kl);
			*klen = kl;
			found = 1;
		}
	}
	err = kv_iter_status(it);
	kv_iter_destroy(it);
	return err ? err : found ? 0 : -ENOENT;
}

/* Give @r the name #INO in lost+found (moving a directory out of the
 * directory that holds it, if any), in one batch. */
static void reconnect(struct fsck *c, struct fsck_rec *r)
{
	static struct ibuf lfb, old, me;
	uint8_t k[KVFS_KEY_MAX], ok[KVFS_KEY_MAX], v[KVFS_ENTRY_SIZE];
	struct fsck_rec *lf = lost_found(c), *op = NULL;
	bool dir = S_ISDIR(r->mode);
	char name[48];
	size_t kl, okl;
	struct kv_batch *b;

	if (!lf)
		return;
	snprintf(name, sizeof(name), "#%llu", (unsigned long long)r->ino);
	for (int i = 1;
	     kv_get(c->db, KV_READ_LATEST, k, kl = kvfs_key_entry(k, lf->ino, name, strlen(name)),
					      NULL, 0) != -ENOENT;
	     i++)
		snprintf(name, sizeof(name), "#%llu.%d", (unsigned long long)r->ino, i);
	b = fsck_batch(c);
	if (!b || get(c, lf->ino, &lfb))
		goto fail;
	if (dir && r->u.d.fparent) {
		op = fsck_find(c, r->u.d.fparent);
		if (find_entry(c, op->ino, r->ino, ok, &okl) || get(c, op->ino, &old))
			goto fail;
		old.in.nentries--;
		old.in.nlink--;
		fsck_touch(&old.in);
		if (kv_batch_delete(b, ok, okl) || put(b, op->ino, &old))
			goto fail;
	}
	lfb.in.nentries++;
	lfb.in.nlink += dir;
	fsck_touch(&lfb.in);
	kvfs_entry_encode(r->ino, kvfs_mode_dtype(r->mode), v);
	if (kv_batch_put(b, k, kl, v, sizeof(v)) || put(b, lf->ino, &lfb))
		goto fail;
	if (dir) {
		if (get(c, r->ino, &me))
			goto fail;
		me.in.parent = lf->ino;
		if (put(b, r->ino, &me))
			goto fail;
	}
	if (fsck_commit(c, b))
		return;
	fsck_info(c, "Reconnected inode %llu as /lost+found/%s\n", (unsigned long long)r->ino,
		  name);
	if (op) {
		op->u.d.nent--;
		op->u.d.nentries--;
		op->nsub--;
		op->nlink--;
	} else {
		r->refs++;
	}
	lf->u.d.nent++;
	lf->u.d.nentries++;
	lf->nsub += dir;
	lf->nlink += dir;
	if (dir)
		r->u.d.fparent = r->u.d.parent = lf->ino;
	return;
fail:
	c->operr = 1;
}

static const char *type_name(uint32_t mode)
{
	return S_ISDIR(mode)  ? "directory" :
	       S_ISREG(mode)  ? "regular file" :
	       S_ISLNK(mode)  ? "symlink" :
	       S_ISFIFO(mode) ? "fifo" :
	       S_ISSOCK(mode) ? "socket" :
				"device";
}

static bool create_root(struct fsck *c, struct fsck_rec *r)
{
	static struct ibuf ib;
	struct kv_batch *b;

	if (!fsck_ask(c, false, "Create it", "The root directory (inode 1) is missing"))
		return false;
	new_dir(&ib, 0755, KVFS_ROOT_INO);
	ib.in.nlink = 2 + r->nsub;
	ib.in.nentries = r->u.d.nent;
	b = fsck_batch(c);
	if (!b || put(b, KVFS_ROOT_INO, &ib)) {
		c->operr = 1;
		return false;
	}
	if (fsck_commit(c, b))
		return false;
	r->flags &= ~R_SYNTH;
	r->nlink = ib.in.nlink;
	r->u.d.nentries = ib.in.nentries;
	r->u.d.parent = KVFS_ROOT_INO;
	return true;
}

static void connect_pass(struct fsck *c)
{
	struct fsck_rec *root = fsck_find(c, KVFS_ROOT_INO);

	fsck_pass(c, 5, "checking directory connectivity");
	if (!root || (root->flags & R_BAD) || ((root->flags & R_SYNTH) && !create_root(c, root))) {
		fsck_info(c, "%s: no usable root directory: connectivity not checked\n", c->store);
		return;
	}
	for (size_t i = 0; i < c->n && !fsck_stop(c); i++) {
		struct fsck_rec *d = &c->r[i], *cur = d, *top = NULL;
		uint32_t stamp = (uint32_t)i + 1;
		const char *why = "no directory holds it";

		/* A directory removed while open (-n left it) is in no
		 * directory, as it should be. */
		if (!S_ISDIR(d->mode) || (d->flags & (R_BAD | R_DEAD | R_DONE)) || crash_orphan(d))
			continue;
		/* Walk up the kept parent entries: to the root, to a directory
		 * already resolved, to one without a parent, or round a cycle. */
		while (!(cur->flags & R_DONE)) {
			if (cur->stamp == stamp) {
				top = cur;
				why = "it is in a cycle of directories";
				break;
			}
			cur->stamp = stamp;
			if (cur->ino == KVFS_ROOT_INO)
				break;
			if (!cur->u.d.fparent) {
				top = cur;
				break;
			}
			cur = fsck_find(c, cur->u.d.fparent);
		}
		for (cur = d; !(cur->flags & R_DONE);) {
			cur->flags |= R_DONE;
			if (cur->ino == KVFS_ROOT_INO || !cur->u.d.fparent)
				break;
			cur = fsck_find(c, cur->u.d.fparent);
		}
		if (top && fsck_ask(c, false, "Connect to /lost+found",
				    "Directory %llu is not reachable from the root: %s",
				    (unsigned long long)top->ino, why))
			reconnect(c, top);
	}
	for (size_t i = 0; i < c->n && !fsck_stop(c); i++) {
		struct fsck_rec *r = &c->r[i];

		if (S_ISDIR(r->mode) || r->refs || !r->nlink ||
		    (r->flags & (R_BAD | R_DEAD | R_ORPHAN)))
			continue;
		if (fsck_ask(c, false, "Connect to /lost+found",
			     "Inode %llu (a %s) is not in any directory",
			     (unsigned long long)r->ino, type_name(r->mode)))
			reconnect(c, r);
	}
}

/* ---- pass 6 ------------------------------------------------------------ */

/* Move an inline file's bytes into blocks (they no longer fit inline). */
static int uninline(struct fsck *c, struct kv_batch *b, uint64_t ino, struct ibuf *ib)
{
	uint8_t k[KVFS_KEY_MAX];
	uint32_t bs = c->sb.block_size;

	ib->in.nblocks = 0;
	for (size_t off = 0; off < ib->len; off += bs) {
		size_t n = ib->len - off < bs ? ib->len - off : bs;
		int err = kv_batch_put(b, k, kvfs_key_data(k, ino, off / bs), ib->inl + off, n);

		if (err)
			return err;
		ib->in.nblocks++;
	}
	ib->in.flags &= ~KVFS_IF_INLINE;
	ib->len = 0;
	return 0;
}

#define ULL(x) ((unsigned long long)(x))

static void check_inode(struct fsck *c, struct fsck_rec *r)
{
	static struct ibuf ib;
	struct kvfs_inode *in = &ib.in;
	bool dir = S_ISDIR(r->mode), reg = S_ISREG(r->mode), inl = r->flags & R_INLINE;
	/* Removed while open: rmdir took a directory's "." with its entry. */
	uint32_t nlink = crash_orphan(r) ? 0 : dir ? 2 + r->nsub : r->refs;
	uint64_t parent = r->ino == KVFS_ROOT_INO ? KVFS_ROOT_INO : dir ? r->u.d.fparent : 0;
	bool odd = false, changed = false, data = false;
	struct kv_batch *b;

	if (dir)
		odd = r->nlink != nlink || r->u.d.nentries != r->u.d.nent ||
		      (parent && r->u.d.parent != parent);
	else
		odd = (r->refs && r->nlink != r->refs) ||
		      (reg && !inl &&
		       (r->u.f.nblocks != r->u.f.dkeys || r->u.f.dend > r->u.f.size));
	odd |= (r->flags & (R_XKEYS | R_XFLAG)) == R_XKEYS;
	if (!odd && !(r->flags & R_CHECK))
		return;
	if (get(c, r->ino, &ib))
		return;
	/* Without the flag, reclaiming the inode would leave its xattrs. */
	if ((r->flags & R_XKEYS) && !(in->flags & KVFS_IF_XATTR) &&
	    (changed |= fsck_ask(c, true, "Fix",
				 "Inode %llu has extended attributes but not the flag that "
				 "says so",
				 ULL(r->ino))))
		in->flags |= KVFS_IF_XATTR;
	if (!dir && in->parent &&
	    (changed |= fsck_ask(c, true, "Fix",
				 "Inode %llu is not a directory but has parent %llu", ULL(r->ino),
				 ULL(in->parent))))
		in->parent = 0;
	if ((dir || r->refs) && in->nlink != nlink &&
	    (changed |= fsck_ask(c, true, "Fix", "Inode %llu has link count %u, should be %u",
				 ULL(r->ino), in->nlink, nlink)))
		in->nlink = nlink;
	if (dir) {
		if (in->nentries != r->u.d.nent &&
		    (changed |= fsck_ask(c, true, "Fix",
					 "Directory %llu counts %llu entries but holds %llu",
					 ULL(r->ino), ULL(in->nentries), ULL(r->u.d.nent))))
			in->nentries = r->u.d.nent;
		if (parent && in->parent != parent &&
		    (changed |= fsck_ask(c, true, "Fix",
					 "Directory %llu has parent %llu, but its entry is in %llu",
					 ULL(r->ino), ULL(in->parent), ULL(parent))))
			in->parent = parent;
	}
	if (reg && !inl) {
		if (in->nblocks != r->u.f.dkeys &&
		    (changed |= fsck_ask(c, true, "Fix",
					 "Inode %llu counts %llu data blocks but has %llu",
					 ULL(r->ino), ULL(in->nblocks), ULL(r->u.f.dkeys))))
			in->nblocks = r->u.f.dkeys;
		if (r->u.f.dend > in->size &&
		    (changed |= fsck_ask(c, true, "Fix",
					 "Inode %llu has size %llu but data up to byte %llu",
					 ULL(r->ino), ULL(in->size), ULL(r->u.f.dend))))
			in->size = r->u.f.dend;
	} else if (reg) {
		if (in->size < ib.len &&
		    (changed |= fsck_ask(c, true, "Fix",
					 "Inline inode %llu has size %llu but %zu bytes",
					 ULL(r->ino), ULL(in->size), ib.len)))
			in->size = ib.len;
		if (in->nblocks && !r->u.f.dkeys &&
		    (changed |= fsck_ask(c, true, "Fix",
					 "Inline inode %llu counts %llu data blocks", ULL(r->ino),
					 ULL(in->nblocks))))
			in->nblocks = 0;
		if (in->size > c->sb.inline_max &&
		    (data = fsck_ask(c, false, "Move its data to blocks",
				     "Inline inode %llu has size %llu, over the inline limit %u",
				     ULL(r->ino), ULL(in->size), c->sb.inline_max)))
			changed = true;
	} else {
		if (S_ISLNK(r->mode) && in->size != ib.len &&
		    (changed |= fsck_ask(c, true, "Fix",
					 "Symlink %llu has size %llu but a %zu-byte target",
					 ULL(r->ino), ULL(in->size), ib.len)))
			in->size = ib.len;
		if ((in->nblocks || (!S_ISLNK(r->mode) && (in->flags & KVFS_IF_INLINE))) &&
		    (changed |= fsck_ask(c, true, "Fix",
					 "Inode %llu (a %s) has data block fields set", ULL(r->ino),
					 type_name(r->mode)))) {
			in->nblocks = 0;
			if (!S_ISLNK(r->mode))
				in->flags &= ~KVFS_IF_INLINE;
		}
	}
	if (!changed)
		return;
	b = fsck_batch(c);
	if (!b || (data && uninline(c, b, r->ino, &ib)) || put(b, r->ino, &ib)) {
		c->operr = 1;
		return;
	}
	if (fsck_commit(c, b))
		return;
	r->nlink = in->nlink;
	if (dir) {
		r->u.d.nentries = in->nentries;
		r->u.d.parent = in->parent;
	} else {
		r->u.f.size = in->size;
		r->u.f.nblocks = in->nblocks;
		if (data)
			r->u.f.dkeys = in->nblocks;
	}
}

int fsck_fixup(struct fsck *c)
{
	reclaim_pass(c);
	if (!fsck_stop(c))
		connect_pass(c);
	if (!fsck_stop(c))
		fsck_pass(c, 6, "checking link counts, directory counts and sizes");
	for (size_t i = 0; i < c->n && !fsck_stop(c); i++)
		if (!(c->r[i].flags & (R_BAD | R_DEAD | R_SYNTH)))
			check_inode(c, &c->r[i]);
	if (!fsck_stop(c)) {
		fsck_pass(c, 7, "checking the inode allocator");
		if (c->sb.ino_next <= c->max_ino &&
		    fsck_ask(c, true, "Fix",
			     "The inode allocator (next %llu) is not past inode %llu",
			     ULL(c->sb.ino_next), ULL(c->max_ino))) {
			uint8_t k[KVFS_KEY_MAX], v[KVFS_SUPER_SIZE];
			struct kvfs_super sb = c->sb;
			struct kv_batch *b = fsck_batch(c);

			sb.ino_next = c->max_ino + 1;
			kvfs_super_encode(&sb, v);
			if (!b || kv_batch_put(b, k, kvfs_key_super(k), v, sizeof(v)))
				c->operr = 1;
			else if (!fsck_commit(c, b))
				c->sb = sb;
		}
	}
	if (c->cancelled)
		return -ECANCELED;
	return c->operr ? -EIO : 0;
}
