// SPDX-License-Identifier: MIT
/*
 * Namespace operations: lookup, getattr, readlink, mknod, mkdir, symlink,
 * create, link, unlink, rmdir, rename.
 *
 * Each operation that writes follows internal.h: lock the stripes of every
 * inode it changes in one kvfs_lock_inodes call, read the newest appended
 * state, build one batch, kvfs_commit it, unlock.
 *
 * Invariants kept here (fsck checks them):
 *   1. A directory's nentries is the number of its entry keys; its nlink is
 *      2 + the number of its subdirectories; its parent field names the one
 *      directory whose entry points at it (the root's parent is itself).
 *   2. A non-directory's nlink is the number of entries pointing at it.
 *   3. An inode with nlink 0 still exists only while the kernel or an open
 *      file refers to it, and then has an orphan key (kvfs_key_orphan); the
 *      last kvfs_forget/kvfs_release reclaims it (core.c), or the next mount.
 *
 * Operations that must find an inode by name before they can lock it
 * (unlink, rmdir, rename) lock the directories, look the name up and add
 * the inode's lock with kvfs_lock_add (which keeps the stripe order); when
 * that cannot be done, they take every lock at once, look the name up again
 * and start over if it moved in between.
 *
 * Rename of a directory into its own subtree is found by walking the parent
 * fields up from the destination directory. That walk must see a tree that
 * does not change under it: every rename across two directories holds
 * fs->rename_lock (as Linux's s_vfs_rename_mutex), and only such renames change
 * a directory's parent. The lock order is rename_lock, then stripes.
 */
#include "acl.h"
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>

/* Hard links per non-directory inode (ext4's limit). */
#define NS_LINK_MAX 65000u
/* Largest inline payload an inode value carries: a symlink target
 * (KVFS_SYMLINK_MAX) or a small file's data (inline_max <= 2048). */
#define NS_INLINE_CAP 4096u
/* Deeper than any real tree: a longer parent chain is a loop (corruption). */
#define NS_DEPTH_MAX (1u << 20)

/* An inode with its inline payload, to rewrite the value whole. */
struct ibuf {
	struct kvfs_inode in;
	size_t ilen;
	uint8_t inl[NS_INLINE_CAP];
};

static int ib_read(struct kvfs *fs, uint64_t ino, struct ibuf *ib)
{
	return kvfs_inode_read(fs, ino, &ib->in, ib->inl, sizeof(ib->inl), &ib->ilen);
}

static int ib_put(struct kv_batch *b, uint64_t ino, const struct ibuf *ib)
{
	return kvfs_batch_put_inode(b, ino, &ib->in, ib->inl, ib->ilen);
}

/* 0, or the error Linux gives for a path component that is @name. */
static int name_check(const char *name, size_t *len)
{
	size_t n = strnlen(name, KVFS_NAME_MAX + 1);

	if (!n)
		return -ENOENT;
	if (n > KVFS_NAME_MAX)
		return -ENAMETOOLONG;
	if (memchr(name, '/', n))
		return -EINVAL;
	*len = n;
	return 0;
}

static bool is_dot(const char *name, size_t len)
{
	return (len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.');
}

/* The parent of directory @in (0 in a store made before the field: root). */
static uint64_t dir_parent(uint64_t ino, const struct kvfs_inode *in)
{
	if (ino == KVFS_ROOT_INO || !in->parent)
		return KVFS_ROOT_INO;
	return in->parent;
}

/* Check that @ib (inode @ino) is a live directory new names can go into. */
static int dir_usable(const struct ibuf *ib)
{
	if (!S_ISDIR(ib->in.mode))
		return -ENOTDIR;
	if (!ib->in.nlink)
		return -ENOENT; /* removed while someone still had it */
	return 0;
}

static int put_entry(struct kv_batch *b, uint64_t dir, const char *name, size_t len, uint64_t ino,
		     uint32_t mode)
{
	uint8_t key[KVFS_KEY_MAX], val[KVFS_ENTRY_SIZE];

	kvfs_entry_encode(ino, kvfs_mode_dtype(mode), val);
	return kv_batch_put(b, key, kvfs_key_entry(key, dir, name, len), val, sizeof(val));
}

static int del_entry(struct kv_batch *b, uint64_t dir, const char *name, size_t len)
{
	uint8_t key[KVFS_KEY_MAX];

	return kv_batch_delete(b, key, kvfs_key_entry(key, dir, name, len));
}

/* 0 and the entry's ino, or 0 and *ino = 0 if @name is absent, or -errno. */
static int entry_find(struct kvfs *fs, uint64_t dir, const char *name, size_t len, uint64_t *ino)
{
	unsigned type;
	int err = kvfs_entry_read(fs, dir, name, len, ino, &type);

	if (err == -ENOENT) {
		*ino = 0;
		return 0;
	}
	return err;
}

static void fill_entry(struct kvfs *fs, uint64_t ino, const struct kvfs_inode *in,
		       struct kvfs_entry *e)
{
	e->ino = ino;
	e->generation = in->generation;
	kvfs_inode_stat(fs, ino, in, &e->attr);
}

/*
 * The inode @victim (locked, read into @ib) loses a link at @now. When that
 * was its last one, it is dropped in @b, or kept as an orphan if the kernel
 * or an open file still refers to it. Sets *dropped when it is dropped.
 */
static int put_unlinked(struct kvfs *fs, struct kv_batch *b, uint64_t victim, struct ibuf *ib,
			const struct timespec *now, bool *dropped)
{
	uint8_t key[KVFS_KEY_MAX];
	int err;

	if (S_ISDIR(ib->in.mode))
		ib->in.nlink = 0; /* "." and the parent's entry go together */
	else if (ib->in.nlink)
		ib->in.nlink--;
	ib->in.ctime = *now;
	if (ib->in.nlink)
		return ib_put(b, victim, ib);
	if (!kvfs_node_busy(fs, victim)) {
		*dropped = true;
		return kvfs_batch_drop(fs, b, victim, &ib->in);
	}
	err = ib_put(b, victim, ib);
	if (!err)
		err = kv_batch_put(b, key, kvfs_key_orphan(key, victim), NULL, 0);
	return err;
}

/* Commit @b; count a dropped inode out of statfs once it is written. */
static int commit_counted(struct kvfs *fs, struct kv_batch *b, const struct kvfs_done *done,
			  int delta)
{
	int err = kvfs_commit(fs, b, done);

	if (err >= 0 && delta)
		atomic_fetch_add(&fs->inodes_used, delta);
	return err;
}

/* ---- reading ---------------------------------------------------------- */

int kvfs_lookup(struct kvfs *fs, uint64_t parent, const char *name, struct kvfs_entry *e)
{
	struct kvfs_inode in;
	uint64_t ino;
	unsigned type;
	size_t len;
	int err = name_check(name, &len);

	if (err)
		return err;
	if (is_dot(name, len)) {
		err = kvfs_inode_read(fs, parent, &in, NULL, 0, NULL);
		if (err)
			return err;
		if (!S_ISDIR(in.mode))
			return -ENOTDIR;
		ino = len == 1 ? parent : dir_parent(parent, &in);
	} else {
		err = kvfs_entry_read(fs, parent, name, len, &ino, &type);
		if (err == -ENOENT && !kvfs_inode_read(fs, parent, &in, NULL, 0, NULL) &&
		    !S_ISDIR(in.mode))
			err = -ENOTDIR;
		if (err)
			return err;
	}
	/* Referenced before it is read: an unlink that runs between the two
	 * then keeps it as an orphan instead of deleting it under us. */
	kvfs_node_ref(fs, ino, 1, 0);
	err = kvfs_inode_read(fs, ino, &in, NULL, 0, NULL);
	if (!err && !in.nlink)
		err = -ENOENT;
	if (err) {
		kvfs_node_unref(fs, ino, 1, 0);
		return err;
	}
	fill_entry(fs, ino, &in, e);
	return 0;
}

int kvfs_getattr(struct kvfs *fs, uint64_t ino, struct stat *st)
{
	struct kvfs_inode in;
	int err = kvfs_inode_read(fs, ino, &in, NULL, 0, NULL);

	if (!err)
		kvfs_inode_stat(fs, ino, &in, st);
	return err;
}

/* Copies min(length, @cap) bytes, NUL-terminated if there is room; returns
 * the target's length. -EINVAL if @ino is not a symlink. */
int kvfs_readlink(struct kvfs *fs, uint64_t ino, char *buf, size_t cap)
{
	struct ibuf ib;
	int err = ib_read(fs, ino, &ib);

	if (err)
		return err;
	if (!S_ISLNK(ib.in.mode))
		return -EINVAL;
	if (ib.ilen != ib.in.size || !ib.ilen) {
		kvfs_log(fs, KV_LOG_ERROR, "%s: symlink %llu: %zu inline bytes, size %llu",
			 fs->store, (unsigned long long)ino, ib.ilen,
			 (unsigned long long)ib.in.size);
		return -EUCLEAN;
	}
	if (cap)
		memcpy(buf, ib.inl, ib.ilen < cap ? ib.ilen : cap);
	if (ib.ilen < cap)
		buf[ib.ilen] = '\0';
	return (int)ib.ilen;
}

/* ---- creating --------------------------------------------------------- */

/* What a new inode is: its mode and, for device files and symlinks, more. */
struct newnode {
	mode_t mode; /* type | permission bits, before umask or default ACL */
	dev_t rdev;
	const char *target; /* symlink */
	size_t tlen;
	uint64_t opens; /* create: 1 */
};

static void init_inode(struct kvfs_inode *in, const struct kvfs_cred *cr,
		       const struct kvfs_inode *dir, uint64_t parent, const struct newnode *nn,
		       const struct timespec *now)
{
	mode_t perm = nn->mode & 07777;

	memset(in, 0, sizeof(*in));
	/* The umask, or the parent's default ACL: kvfs_acl_new_inode. */
	in->uid = cr ? cr->uid : 0;
	in->gid = cr ? cr->gid : 0;
	if (dir->mode & S_ISGID) {
		in->gid = dir->gid;
		if (S_ISDIR(nn->mode))
			perm |= S_ISGID;
	}
	in->mode = (nn->mode & S_IFMT) | perm;
	in->nlink = S_ISDIR(nn->mode) ? 2 : 1;
	in->atime = in->mtime = in->ctime = in->btime = *now;
	in->generation = 1;
	if (S_ISCHR(nn->mode) || S_ISBLK(nn->mode))
		in->rdev = nn->rdev;
	if (S_ISDIR(nn->mode))
		in->parent = parent;
	if (S_ISLNK(nn->mode)) {
		in->size = nn->tlen;
		in->flags = KVFS_IF_INLINE;
	}
}

/* Every create: a new inode named @name in @parent. */
static int make_node(struct kvfs *fs, const struct kvfs_cred *cr, uint64_t parent, const char *name,
		     const struct newnode *nn, struct kvfs_entry *e, const struct kvfs_done *done)
{
	struct kv_batch *b;
	struct kvfs_inode in;
	struct timespec now;
	struct ibuf dir;
	uint64_t ino = 0, old;
	size_t len;
	int err = name_check(name, &len);

	if (err)
		return err;
	if (is_dot(name, len))
		return -EEXIST;
	kvfs_lock1(fs, parent);
	err = ib_read(fs, parent, &dir);
	if (!err)
		err = dir_usable(&dir);
	if (!err)
		err = entry_find(fs, parent, name, len, &old);
	if (!err && old)
		err = -EEXIST;
	if (!err && S_ISDIR(nn->mode) && dir.in.nlink >= UINT32_MAX - 1)
		err = -EMLINK;
	if (!err)
		err = kvfs_alloc_ino(fs, &ino);
	if (err) {
		ino = 0;
		goto out;
	}

	kvfs_now(&now);
	init_inode(&in, cr, &dir.in, parent, nn, &now);
	dir.in.nentries++;
	if (S_ISDIR(nn->mode))
		dir.in.nlink++;
	dir.in.mtime = dir.in.ctime = now;
	b = kvfs_batch();
	err = kvfs_acl_new_inode(fs, b, parent, &dir.in, ino, &in, cr ? cr->umask : 0);
	if (!err)
		err = kvfs_batch_put_inode(b, ino, &in, nn->target, nn->tlen);
	if (!err)
		err = put_entry(b, parent, name, len, ino, in.mode);
	if (!err)
		err = ib_put(b, parent, &dir);
	if (err)
		goto out;
	fill_entry(fs, ino, &in, e);
	/* Before the commit: with batch durability the reply (and so the
	 * kernel's forget) may come before kvfs_commit returns. */
	kvfs_node_ref(fs, ino, 1, nn->opens);
	err = commit_counted(fs, b, done, 1);
out:
	kvfs_unlock1(fs, parent);
	/* Unlocked: dropping the last reference reclaims, which locks @ino. */
	if (err < 0 && ino)
		kvfs_node_unref(fs, ino, 1, nn->opens);
	return err;
}

int kvfs_mknod(struct kvfs *fs, const struct kvfs_cred *cr, uint64_t parent, const char *name,
	       mode_t mode, dev_t rdev, struct kvfs_entry *e, const struct kvfs_done *done)
{
	struct newnode nn = { .mode = mode, .rdev = rdev };

	switch (mode & S_IFMT) {
	case 0:
		nn.mode |= S_IFREG; /* as mknod(2) */
		break;
	case S_IFREG:
	case S_IFIFO:
	case S_IFSOCK:
	case S_IFCHR:
	case S_IFBLK:
		break;
	case S_IFDIR:
		return -EPERM; /* as mknod(2): mkdir makes directories */
	default:
		return -EINVAL;
	}
	return make_node(fs, cr, parent, name, &nn, e, done);
}

int kvfs_mkdir(struct kvfs *fs, const struct kvfs_cred *cr, uint64_t parent, const char *name,
	       mode_t mode, struct kvfs_entry *e, const struct kvfs_done *done)
{
	struct newnode nn = { .mode = S_IFDIR | (mode & (S_IRWXU | S_IRWXG | S_IRWXO | S_ISVTX)) };

	return make_node(fs, cr, parent, name, &nn, e, done);
}

int kvfs_symlink(struct kvfs *fs, const struct kvfs_cred *cr, uint64_t parent, const char *name,
		 const char *target, struct kvfs_entry *e, const struct kvfs_done *done)
{
	struct newnode nn = { .mode = S_IFLNK | 0777, .target = target };

	nn.tlen = strnlen(target, KVFS_SYMLINK_MAX + 1);
	if (!nn.tlen)
		return -ENOENT;
	if (nn.tlen > KVFS_SYMLINK_MAX)
		return -ENAMETOOLONG;
	return make_node(fs, cr, parent, name, &nn, e, done);
}

int kvfs_create(struct kvfs *fs, const struct kvfs_cred *cr, uint64_t parent, const char *name,
		mode_t mode, int flags, struct kvfs_entry *e, const struct kvfs_done *done)
{
	struct newnode nn = { .mode = S_IFREG | (mode & 07777), .opens = 1 };

	(void)flags; /* a new file has nothing to truncate */
	return make_node(fs, cr, parent, name, &nn, e, done);
}

int kvfs_link(struct kvfs *fs, uint64_t ino, uint64_t newparent, const char *newname,
	      struct kvfs_entry *e, const struct kvfs_done *done)
{
	uint64_t locks[2] = { ino, newparent }, old;
	bool refd = false;
	struct ibuf *dir, *node;
	struct ibuf bufs[2];
	struct kv_batch *b;
	struct timespec now;
	size_t len;
	int err = name_check(newname, &len);

	if (err)
		return err;
	if (is_dot(newname, len))
		return -EEXIST;
	dir = &bufs[0];
	node = ino == newparent ? dir : &bufs[1];
	kvfs_lock_inodes(fs, locks, 2);
	err = ib_read(fs, newparent, dir);
	if (!err)
		err = dir_usable(dir);
	if (!err)
		err = entry_find(fs, newparent, newname, len, &old);
	if (!err && old)
		err = -EEXIST;
	if (!err && node != dir)
		err = ib_read(fs, ino, node);
	/* In Linux's order: a directory, then a dead inode, then the limit. */
	if (!err && S_ISDIR(node->in.mode))
		err = -EPERM;
	if (!err && !node->in.nlink)
		err = -ENOENT;
	if (!err && node->in.nlink >= NS_LINK_MAX)
		err = -EMLINK;
	if (err)
		goto out;

	kvfs_now(&now);
	node->in.nlink++;
	node->in.ctime = now;
	dir->in.nentries++;
	dir->in.mtime = dir->in.ctime = now;
	b = kvfs_batch();
	err = put_entry(b, newparent, newname, len, ino, node->in.mode);
	if (!err)
		err = ib_put(b, ino, node);
	if (!err)
		err = ib_put(b, newparent, dir);
	if (err)
		goto out;
	fill_entry(fs, ino, &node->in, e);
	kvfs_node_ref(fs, ino, 1, 0);
	refd = true;
	err = kvfs_commit(fs, b, done);
out:
	kvfs_unlock_inodes(fs, locks, 2);
	if (err < 0 && refd)
		kvfs_node_unref(fs, ino, 1, 0);
	return err;
}

/* ---- removing --------------------------------------------------------- */

/* unlink (@want_dir false) and rmdir (true). */
static int remove_name(struct kvfs *fs, uint64_t parent, const char *name, bool want_dir,
		       const struct kvfs_done *done)
{
	uint64_t locks[2] = { parent, 0 }, child;
	struct ibuf bufs[2], *dir = &bufs[0], *node = &bufs[1];
	struct kv_batch *b;
	struct timespec now;
	bool dropped = false;
	size_t len;
	int err = name_check(name, &len);

	if (err)
		return err;
	if (is_dot(name, len))
		return !want_dir ? -EISDIR : len == 1 ? -EINVAL : -ENOTEMPTY;
	/* The name is found under the parent's lock, and the child's is added
	 * in stripe order; if it cannot be, both are taken at once and the
	 * name looked up again. */
	kvfs_lock_inodes(fs, locks, 1);
	for (;;) {
		err = ib_read(fs, parent, dir);
		if (!err && !S_ISDIR(dir->in.mode))
			err = -ENOTDIR;
		if (!err)
			err = entry_find(fs, parent, name, len, &child);
		if (err || !child || child == locks[1])
			break;
		if (!locks[1] && kvfs_lock_add(fs, locks, 1, child)) {
			locks[1] = child;
			break;
		}
		kvfs_unlock_inodes(fs, locks, 2); /* out of order, or renamed */
		locks[1] = child;
		kvfs_lock_inodes(fs, locks, 2);
	}
	if (!err && !child)
		err = -ENOENT;
	if (!err)
		err = ib_read(fs, child, node);
	if (!err && want_dir && !S_ISDIR(node->in.mode))
		err = -ENOTDIR;
	if (!err && !want_dir && S_ISDIR(node->in.mode))
		err = -EISDIR;
	if (!err && want_dir && node->in.nentries)
		err = -ENOTEMPTY;
	if (!err && child == parent)
		err = -EUCLEAN; /* a directory holding itself */
	if (err)
		goto out;

	kvfs_now(&now);
	if (dir->in.nentries)
		dir->in.nentries--;
	if (want_dir && dir->in.nlink > 2)
		dir->in.nlink--;
	dir->in.mtime = dir->in.ctime = now;
	b = kvfs_batch();
	err = del_entry(b, parent, name, len);
	if (!err)
		err = ib_put(b, parent, dir);
	if (!err)
		err = put_unlinked(fs, b, child, node, &now, &dropped);
	if (!err)
		err = commit_counted(fs, b, done, dropped ? -1 : 0);
out:
	kvfs_unlock_inodes(fs, locks, 2);
	return err;
}

int kvfs_unlink(struct kvfs *fs, uint64_t parent, const char *name, const struct kvfs_done *done)
{
	return remove_name(fs, parent, name, false, done);
}

int kvfs_rmdir(struct kvfs *fs, uint64_t parent, const char *name, const struct kvfs_done *done)
{
	return remove_name(fs, parent, name, true, done);
}

/* ---- rename ----------------------------------------------------------- */

/*
 * Whether directory @anc is @dir or one of its ancestors (1), or not (0).
 * Needs rename_lock: the parent fields on the way must not change.
 */
static int is_ancestor(struct kvfs *fs, uint64_t anc, uint64_t dir)
{
	struct kvfs_inode in;

	for (unsigned depth = 0; depth < NS_DEPTH_MAX; depth++) {
		int err;

		if (dir == anc)
			return 1;
		if (dir == KVFS_ROOT_INO)
			return 0;
		err = kvfs_inode_read(fs, dir, &in, NULL, 0, NULL);
		if (err)
			return err == -ENOENT ? -EUCLEAN : err;
		dir = dir_parent(dir, &in);
	}
	kvfs_log(fs, KV_LOG_ERROR, "%s: directory %llu: its parents form a loop", fs->store,
		 (unsigned long long)dir);
	return -EUCLEAN;
}

/* Everything one rename works on. op/np may be the same buffer, as may
 * nothing else (src == dst is a no-op found before they are used). */
struct rn {
	uint64_t parent, newparent, src, dst; /* dst 0: the new name is free */
	const char *name, *newname;
	size_t len, newlen;
	unsigned flags;
	bool cross; /* parent != newparent */
	struct ibuf *op, *np, *sp, *dp;
};

/* Lock the four inodes with the names still pointing where they did: the
 * names are found under the parents' locks, and the inodes they name are
 * added in stripe order; if they cannot be, all four are taken at once and
 * the names looked up again. */
static int rn_lock(struct kvfs *fs, struct rn *r, uint64_t locks[4])
{
	uint64_t s, d;
	int err;

	locks[0] = r->parent, locks[1] = r->newparent, locks[2] = 0, locks[3] = 0;
	kvfs_lock_inodes(fs, locks, 2);
	for (;;) {
		err = ib_read(fs, r->parent, r->op);
		if (!err)
			err = dir_usable(r->op);
		if (!err && r->cross)
			err = ib_read(fs, r->newparent, r->np);
		if (!err && r->cross)
			err = dir_usable(r->np);
		if (!err)
			err = entry_find(fs, r->parent, r->name, r->len, &s);
		if (!err)
			err = entry_find(fs, r->newparent, r->newname, r->newlen, &d);
		if (err)
			return err;
		r->src = s;
		r->dst = d;
		if (s == locks[2] && d == locks[3])
			return 0;
		if (!locks[2] && !locks[3] && (!s || kvfs_lock_add(fs, locks, 2, s))) {
			locks[2] = s;
			if (!d || kvfs_lock_add(fs, locks, 3, d)) {
				locks[3] = d;
				return 0;
			}
		}
		kvfs_unlock_inodes(fs, locks, 4); /* out of order, or renamed */
		locks[2] = s;
		locks[3] = d;
		kvfs_lock_inodes(fs, locks, 4);
	}
}

/* The checks, in Linux's order, once everything is locked and read. */
static int rn_check(struct kvfs *fs, struct rn *r)
{
	bool sdir, ddir;
	int err;

	if (!r->src)
		return -ENOENT;
	if (r->dst && (r->flags & KVFS_RENAME_NOREPLACE))
		return -EEXIST;
	if (!r->dst && (r->flags & KVFS_RENAME_EXCHANGE))
		return -ENOENT;
	err = ib_read(fs, r->src, r->sp);
	if (!err && r->dst && r->dst != r->src)
		err = ib_read(fs, r->dst, r->dp);
	if (err)
		return err;
	sdir = S_ISDIR(r->sp->in.mode);
	ddir = r->dst && S_ISDIR(r->dp->in.mode);
	if (r->cross && sdir) {
		err = is_ancestor(fs, r->src, r->newparent);
		if (err)
			return err < 0 ? err : -EINVAL;
	}
	if (r->cross && ddir && r->dst != r->src) {
		err = is_ancestor(fs, r->dst, r->parent);
		if (err)
			return err < 0				 ? err :
			       (r->flags & KVFS_RENAME_EXCHANGE) ? -EINVAL :
								   -ENOTEMPTY;
	}
	if (r->src == r->dst || (r->flags & KVFS_RENAME_EXCHANGE) || !r->dst)
		return 0;
	if (sdir && !ddir)
		return -ENOTDIR;
	if (!sdir && ddir)
		return -EISDIR;
	if (ddir && r->dp->in.nentries)
		return -ENOTEMPTY;
	return 0;
}

/* A directory @ib moves from r->parent to r->newparent (or back: @back). */
static void rn_move_dir(struct rn *r, struct ibuf *ib, bool back)
{
	struct ibuf *from = back ? r->np : r->op, *to = back ? r->op : r->np;

	if (!r->cross || !S_ISDIR(ib->in.mode))
		return;
	ib->in.parent = back ? r->parent : r->newparent;
	from->in.nlink--;
	to->in.nlink++;
}

static int rn_build(struct kvfs *fs, struct rn *r, struct kv_batch *b, bool *dropped)
{
	struct timespec now;
	int err;

	kvfs_now(&now);
	r->sp->in.ctime = now;
	r->op->in.mtime = r->op->in.ctime = now;
	r->np->in.mtime = r->np->in.ctime = now;
	err = put_entry(b, r->newparent, r->newname, r->newlen, r->src, r->sp->in.mode);
	rn_move_dir(r, r->sp, false);
	if (r->flags & KVFS_RENAME_EXCHANGE) {
		r->dp->in.ctime = now;
		rn_move_dir(r, r->dp, true);
		if (!err)
			err = put_entry(b, r->parent, r->name, r->len, r->dst, r->dp->in.mode);
		if (!err)
			err = ib_put(b, r->dst, r->dp);
	} else {
		if (!err)
			err = del_entry(b, r->parent, r->name, r->len);
		r->op->in.nentries--;
		if (!r->dst)
			r->np->in.nentries++;
		else if (S_ISDIR(r->dp->in.mode))
			r->np->in.nlink--;
		if (!err && r->dst)
			err = put_unlinked(fs, b, r->dst, r->dp, &now, dropped);
	}
	if (!err)
		err = ib_put(b, r->src, r->sp);
	if (!err)
		err = ib_put(b, r->parent, r->op);
	if (!err && r->cross)
		err = ib_put(b, r->newparent, r->np);
	return err;
}

int kvfs_rename(struct kvfs *fs, uint64_t parent, const char *name, uint64_t newparent,
		const char *newname, unsigned flags, const struct kvfs_done *done)
{
	struct ibuf bufs[4];
	uint64_t locks[4] = { 0 };
	struct rn r = { .parent = parent,
			.newparent = newparent,
			.name = name,
			.newname = newname,
			.flags = flags,
			.cross = parent != newparent };
	bool dropped = false;
	int err;

	if ((flags & ~(KVFS_RENAME_NOREPLACE | KVFS_RENAME_EXCHANGE)) ||
	    flags == (KVFS_RENAME_NOREPLACE | KVFS_RENAME_EXCHANGE))
		return -EINVAL;
	err = name_check(name, &r.len);
	if (!err)
		err = name_check(newname, &r.newlen);
	if (err)
		return err;
	if (is_dot(name, r.len))
		return -EBUSY;
	if (is_dot(newname, r.newlen))
		return (flags & KVFS_RENAME_NOREPLACE) ? -EEXIST : -EBUSY;
	r.op = &bufs[0];
	r.np = r.cross ? &bufs[1] : r.op;
	r.sp = &bufs[2];
	r.dp = &bufs[3];

	if (r.cross)
		pthread_mutex_lock(&fs->rename_lock);
	err = rn_lock(fs, &r, locks);
	if (!err)
		err = rn_check(fs, &r);
	if (!err && r.src != r.dst) {
		struct kv_batch *b = kvfs_batch();

		err = rn_build(fs, &r, b, &dropped);
		if (!err)
			err = commit_counted(fs, b, done, dropped ? -1 : 0);
	}
	kvfs_unlock_inodes(fs, locks, 4);
	if (r.cross)
		pthread_mutex_unlock(&fs->rename_lock);
	return err;
}
