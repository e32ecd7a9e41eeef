// SPDX-License-Identifier: MIT
/*
 * fs/fuse.c: the FUSE low-level adapter, the only file that speaks FUSE.
 *
 * Every handler turns one kernel request into one call of the kvfs library
 * (fs/kvfs.h) and replies exactly once. FUSE inode numbers are kvfs inode
 * numbers (the root is 1 in both), so there is no inode table here: the
 * library keeps the lookup counts (kvfs_forget) and open counts
 * (kvfs_open_file / kvfs_release) that decide when an unlinked inode goes.
 *
 * Replies to writes
 *   A handler that writes allocates a struct fs_op (the request, what to
 *   reply, room for the library's outputs) and passes its struct kvfs_done.
 *   The library returns KVFS_PENDING and calls op_done once the write is
 *   acknowledged: during the call (batch durability: at append) or later
 *   from an engine thread (sync durability: when the group commit lands).
 *   Any other return means the library never calls back. No worker thread
 *   waits for a group commit, and no reply is sent under the library's
 *   locks: see "Who replies" below. f->inflight counts ops not yet replied,
 *   so that the session is not destroyed under a reply still owed
 *   (fs_fuse_run drains it after the loop).
 *
 * Lookup references
 *   Every reply that hands the kernel an inode (entry, create, readdirplus
 *   entry) carries one lookup reference the library took. When the reply
 *   cannot be delivered (the request was interrupted), the kernel will never
 *   forget it, so it is dropped here. readdirplus hands out "." and ".."
 *   without a node id: the kernel takes no reference for them.
 *
 * Kernel features (fs_ll_init)
 *   - writeback cache: the kernel keeps dirty pages and sends big writes,
 *     owns O_APPEND offsets and mtime/ctime (sent back through setattr);
 *     flush/close writes back before FLUSH, fsync before FSYNC.
 *     LSEEK comes without writeback: fs_ll_lseek has it done.
 *     Optional (cfg.writeback_cache): without it every write(2) comes at
 *     once, the kernel still sets O_APPEND offsets from its i_size (exact:
 *     nothing else changes the file) and the library sets mtime/ctime, and
 *     unlink/rename of a file need no SETATTR of its ctime afterwards.
 *   - readdirplus with READDIRPLUS_AUTO: the first batch of a listing and
 *     every batch after the caller looked names up (ls -l, cp -a, rsync,
 *     du) come with attributes and references; a plain walk (ls, find -name)
 *     does not pin an inode in the kernel for each of 100k entries.
 *   - parallel dirops, async read, atomic O_TRUNC, cached symlinks.
 *   - max_write: libfuse 3.14 offers what its request buffer holds,
 *     FUSE_MAX_MAX_PAGES (256) pages = 1 MiB, which is also the kernel's
 *     default fs.fuse.max_pages_limit; kept as libfuse sets it.
 *   - no HANDLE_KILLPRIV: the kernel decides when a write, truncate or
 *     chown clears S_ISUID/S_ISGID (it knows the caller's CAP_FSETID) and
 *     sends the new mode in a setattr.
 *   - no AUTO_INVAL_DATA, keep_cache on open: the daemon holds the store
 *     exclusively, so nothing changes a file behind the kernel's page cache.
 *   - no splice: the data is copied into the engine's log buffer anyway.
 *   - locks (POSIX, flock, OFD) stay in the kernel, which is right for a
 *     local mount.
 *   - POSIX ACLs (FUSE_CAP_POSIX_ACL): the kernel enforces them in its
 *     permission checks and validates what is set; the library derives the
 *     mode from an access ACL, inherits default ACLs and updates the ACL on
 *     chmod (fs/acl.h). With it, DONT_MASK: the kernel sends the create mode
 *     unmasked and the caller's umask beside it, for the library to apply
 *     when the parent has no default ACL (and not when it has one).
 */
#define FUSE_USE_VERSION 312

#include "acl.h"
#include "daemon.h"

#include <fuse_lowlevel.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

/* Slots of fs_fuse.writers: a power of two. */
#define FS_WRITER_SLOTS 4096

/* fuse_file_info.fh of a handle open for writing (fs_ll_release). */
#define FS_FH_WRITER 1

struct fs_fuse {
	struct fuse_session *se;
	struct kvfs *fs;	   /* [immutable after fs_fuse_mount] */
	struct fs_fuse_config cfg; /* [immutable] */
	pthread_mutex_t lock;
	pthread_cond_t idle;	 /* inflight dropped to 0 */
	unsigned long inflight;	 /* [lock] ops whose reply is still owed */
	struct fs_unref *unrefs; /* [lock] references to drop (unref_drain) */
	atomic_int nunrefs;	 /* [atomic] unrefs is not empty */
	atomic_int posix_acl;	 /* [atomic] fs_ll_init: FUSE_CAP_POSIX_ACL granted */
	/* Handles open for writing, counted by a hash of the inode number: a
	 * slot at 0 means no such inode has dirty pages in the kernel. */
	atomic_uint writers[FS_WRITER_SLOTS];
	/* The seeker thread (seek_main): SEEK_DATA/SEEK_HOLE of files with
	 * writers, which wait for the kernel. */
	pthread_t seeker;	   /* [lock] valid if seeker_on */
	int seeker_on;		   /* [lock] */
	int seek_stop;		   /* [lock] seek_main returns once the queue is empty */
	pthread_cond_t seek_wake;  /* seeks queued or seek_stop */
	struct fs_seek *seeks;	   /* [lock] queued, oldest first */
	struct fs_seek **seek_end; /* [lock] &last->next */
};

/* ---- async replies -------------------------------------------------- */

enum fs_reply {
	FS_REPLY_ERR,	 /* fuse_reply_err: 0 or the error */
	FS_REPLY_ENTRY,	 /* fuse_reply_entry with op->e */
	FS_REPLY_CREATE, /* fuse_reply_create with op->e, op->fi */
	FS_REPLY_OPEN,	 /* fuse_reply_open with op->fi */
	FS_REPLY_ATTR,	 /* fuse_reply_attr with op->st */
	FS_REPLY_WRITE,	 /* fuse_reply_write of op->count */
};

/*
 * Who replies: the library may call op_done inside the call (batch
 * durability: at append, with its namespace locks held) or later from an
 * engine thread. Replying, and above all dropping references (which may
 * reclaim an inode: locks and a write), must not happen under the library's
 * locks, so an op_done that comes during the call only records the status
 * and the handler completes the op once the call has returned:
 *
 *   FS_OP_IN_CALL --op_done--> FS_OP_DONE_IN_CALL --op_finish--> completed
 *   FS_OP_IN_CALL --op_finish--> FS_OP_RETURNED --op_done--> completed
 *
 * Both transitions are one compare-and-swap on op->state; whichever side
 * loses the race completes the op.
 */
enum { FS_OP_IN_CALL, FS_OP_DONE_IN_CALL, FS_OP_RETURNED };

struct fs_op {
	struct kvfs_done done; /* done.arg == this */
	fuse_req_t req;
	struct fs_fuse *f;
	enum fs_reply reply;
	_Atomic int state;	  /* FS_OP_* */
	int status;		  /* from op_done, read after its CAS */
	uint64_t ino;		  /* FS_REPLY_OPEN: the file opened */
	size_t count;		  /* FS_REPLY_WRITE */
	struct fuse_file_info fi; /* FS_REPLY_CREATE, FS_REPLY_OPEN */
	struct kvfs_entry e;	  /* FS_REPLY_ENTRY, FS_REPLY_CREATE */
	struct stat st;		  /* FS_REPLY_ATTR */
};

/* A SEEK_DATA/SEEK_HOLE request waiting for the seeker thread. */
struct fs_seek {
	struct fs_seek *next;
	fuse_req_t req;
	uint64_t ino, off;
	int whence;
};

/* A reference to drop later: taken by a reply that failed on an engine
 * thread, where the library may not be re-entered. */
struct fs_unref {
	struct fs_unref *next;
	uint64_t ino, lookups, opens;
};

static struct fs_fuse *req_fuse(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void entry_param(const struct fs_fuse *f, const struct kvfs_entry *e,
			struct fuse_entry_param *p)
{
	memset(p, 0, sizeof(*p));
	p->ino = e->ino;
	p->generation = e->generation;
	p->attr = e->attr;
	p->attr_timeout = f->cfg.attr_timeout;
	p->entry_timeout = f->cfg.entry_timeout;
}

static void unref(struct fs_fuse *f, uint64_t ino, uint64_t lookups, uint64_t opens, int later)
{
	struct fs_unref *u;

	if (!lookups && !opens)
		return;
	if (!later) {
		if (opens)
			kvfs_release(f->fs, ino);
		if (lookups)
			kvfs_forget(f->fs, ino, lookups);
		return;
	}
	u = malloc(sizeof(*u));
	if (!u) {
		fprintf(stderr, "kvfs: out of memory: inode %llu stays referenced until unmount\n",
			(unsigned long long)ino);
		return;
	}
	u->ino = ino;
	u->lookups = lookups;
	u->opens = opens;
	pthread_mutex_lock(&f->lock);
	u->next = f->unrefs;
	f->unrefs = u;
	atomic_store(&f->nunrefs, 1);
	pthread_mutex_unlock(&f->lock);
}

/* Drop the references queued by engine threads (from a handler). */
static void unref_drain(struct fs_fuse *f)
{
	struct fs_unref *u;

	if (!atomic_load(&f->nunrefs))
		return;
	pthread_mutex_lock(&f->lock);
	u = f->unrefs;
	f->unrefs = NULL;
	atomic_store(&f->nunrefs, 0);
	pthread_mutex_unlock(&f->lock);
	while (u) {
		struct fs_unref *next = u->next;

		unref(f, u->ino, u->lookups, u->opens, 0);
		free(u);
		u = next;
	}
}

/* ---- handles open for writing ------------------------------------------ */

static atomic_uint *writers_slot(struct fs_fuse *f, uint64_t ino)
{
	return &f->writers[(ino * 0x9e3779b97f4a7c15ull) >> 52 & (FS_WRITER_SLOTS - 1)];
}

/* The kernel is about to get (@n = 1) or has given back (-1) a handle @fi
 * of @ino; only handles open for writing count. */
static void writers_add(struct fs_fuse *f, uint64_t ino, const struct fuse_file_info *fi, int n)
{
	if (fi->fh == FS_FH_WRITER)
		atomic_fetch_add(writers_slot(f, ino), (unsigned)n);
}

/* fh of a handle the kernel opens with @flags. The kernel can only hold
 * dirty pages of a file open for writing (O_WRONLY becomes O_RDWR under the
 * writeback cache), and writes them back before it releases the last such
 * handle (fuse_release). */
static uint64_t open_fh(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY ? FS_FH_WRITER : 0;
}

/*
 * Reply with the library's result. The references the library took for the
 * kernel (an entry's lookup, an open) are dropped when the kernel does not
 * get them: the operation failed after its write was appended (@pending: a
 * call that fails before returning KVFS_PENDING has dropped them itself), or
 * the request was interrupted and the reply refused.
 */
static void op_reply(struct fs_op *op, int status, int pending, int later)
{
	struct fs_fuse *f = op->f;
	struct fuse_entry_param p;
	uint64_t lookups = 0, opens = 0;

	switch (op->reply) {
	case FS_REPLY_ERR:
		fuse_reply_err(op->req, -status);
		return;
	case FS_REPLY_ENTRY:
		entry_param(f, &op->e, &p);
		lookups = status ? pending : fuse_reply_entry(op->req, &p) != 0;
		break;
	case FS_REPLY_CREATE:
		entry_param(f, &op->e, &p);
		if (status) {
			lookups = opens = pending;
			break;
		}
		writers_add(f, op->e.ino, &op->fi, 1); /* before the kernel can write */
		lookups = opens = fuse_reply_create(op->req, &p, &op->fi) != 0;
		if (opens)
			writers_add(f, op->e.ino, &op->fi, -1);
		break;
	case FS_REPLY_OPEN:
		if (status) {
			opens = pending;
			break;
		}
		writers_add(f, op->ino, &op->fi, 1);
		opens = fuse_reply_open(op->req, &op->fi) != 0;
		if (opens)
			writers_add(f, op->ino, &op->fi, -1);
		break;
	case FS_REPLY_ATTR:
		if (!status)
			fuse_reply_attr(op->req, &op->st, f->cfg.attr_timeout);
		break;
	case FS_REPLY_WRITE:
		if (!status)
			fuse_reply_write(op->req, op->count);
		break;
	}
	if (status)
		fuse_reply_err(op->req, -status);
	unref(f, op->reply == FS_REPLY_OPEN ? op->ino : op->e.ino, lookups, opens, later);
}

/* A request counted in f->inflight has been replied to. */
static void inflight_put(struct fs_fuse *f)
{
	pthread_mutex_lock(&f->lock);
	if (--f->inflight == 0)
		pthread_cond_broadcast(&f->idle);
	pthread_mutex_unlock(&f->lock);
}

static void op_complete(struct fs_op *op, int status, int pending, int later)
{
	struct fs_fuse *f = op->f;

	op_reply(op, status, pending, later);
	free(op);
	inflight_put(f);
}

/* The kvfs_done callback. */
static void op_done(void *arg, int status)
{
	struct fs_op *op = arg;
	int in_call = FS_OP_IN_CALL;

	op->status = status < 0 ? status : 0;
	if (atomic_compare_exchange_strong(&op->state, &in_call, FS_OP_DONE_IN_CALL))
		return; /* op_finish completes it */
	op_complete(op, op->status, 1, 1);
}

/* NULL after replying ENOMEM. */
static struct fs_op *op_new(fuse_req_t req, enum fs_reply reply)
{
	struct fs_fuse *f = req_fuse(req);
	struct fs_op *op = calloc(1, sizeof(*op));

	if (!op) {
		fuse_reply_err(req, ENOMEM);
		return NULL;
	}
	op->done.fn = op_done;
	op->done.arg = op;
	op->req = req;
	op->f = f;
	op->reply = reply;
	atomic_init(&op->state, FS_OP_IN_CALL);
	pthread_mutex_lock(&f->lock);
	f->inflight++;
	pthread_mutex_unlock(&f->lock);
	return op;
}

/* In the handler, once the library call has returned @ret. */
static void op_finish(struct fs_op *op, long ret)
{
	struct fs_fuse *f = op->f;
	int in_call = FS_OP_IN_CALL, pending = ret == KVFS_PENDING;

	if (pending) {
		if (atomic_compare_exchange_strong(&op->state, &in_call, FS_OP_RETURNED))
			goto out; /* op_done will come from an engine thread */
		ret = op->status;
	}
	op_complete(op, ret < 0 ? (int)ret : 0, pending, 0);
out:
	unref_drain(f);
}

static void req_cred(fuse_req_t req, struct kvfs_cred *cr)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);

	cr->uid = c->uid;
	cr->gid = c->gid;
	/* FUSE_CAP_DONT_MASK: the library applies the umask (0 for requests
	 * other than create, mknod and mkdir). */
	cr->umask = c->umask;
}

/* ---- a per-thread buffer for reads and xattrs ------------------------- */

struct fs_tbuf {
	char *p;
	size_t cap;
};

static pthread_key_t tbuf_key;
static pthread_once_t tbuf_once = PTHREAD_ONCE_INIT;

static void tbuf_free(void *arg)
{
	struct fs_tbuf *b = arg;

	free(b->p);
	free(b);
}

static void tbuf_init(void)
{
	if (pthread_key_create(&tbuf_key, tbuf_free))
		abort();
}

/* A buffer of at least @size bytes owned by the calling thread. */
static char *tbuf_get(size_t size)
{
	struct fs_tbuf *b;

	pthread_once(&tbuf_once, tbuf_init);
	b = pthread_getspecific(tbuf_key);
	if (!b) {
		b = calloc(1, sizeof(*b));
		if (!b || pthread_setspecific(tbuf_key, b)) {
			free(b);
			return NULL;
		}
	}
	if (b->cap < size) {
		size_t cap = size < 65536 ? 65536 : size;
		char *p = malloc(cap);

		if (!p)
			return NULL;
		free(b->p);
		b->p = p;
		b->cap = cap;
	}
	return b->p;
}

/* ---- session ---------------------------------------------------------- */

static void fs_ll_init(void *userdata, struct fuse_conn_info *conn)
{
	unsigned want = FUSE_CAP_ASYNC_READ | FUSE_CAP_ATOMIC_O_TRUNC | FUSE_CAP_PARALLEL_DIROPS |
			FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_READDIRPLUS |
			FUSE_CAP_READDIRPLUS_AUTO | FUSE_CAP_CACHE_SYMLINKS | FUSE_CAP_ASYNC_DIO |
			FUSE_CAP_POSIX_ACL | FUSE_CAP_DONT_MASK;
	unsigned unwanted = FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE |
			    FUSE_CAP_HANDLE_KILLPRIV | FUSE_CAP_AUTO_INVAL_DATA |
			    FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS | FUSE_CAP_EXPORT_SUPPORT;
	struct fs_fuse *f = userdata;

	if (!f->cfg.writeback_cache) {
		want &= ~FUSE_CAP_WRITEBACK_CACHE;
		unwanted |= FUSE_CAP_WRITEBACK_CACHE;
	}
	conn->want = (conn->want & ~unwanted) | (want & conn->capable);
	atomic_store(&f->posix_acl, !!(conn->want & FUSE_CAP_POSIX_ACL));
	/* Writeback of dirty pages and readahead are "background" requests:
	 * let more of them run at once than the kernel's default 12. */
	conn->max_background = 64;
	conn->congestion_threshold = 48;
	conn->time_gran = 1; /* nanosecond timestamps */
}

static void fs_ll_destroy(void *userdata)
{
	(void)userdata; /* fs_fuse_run syncs and the daemon closes the store */
}

/* ---- namespace -------------------------------------------------------- */

static void fs_ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_fuse *f = req_fuse(req);
	struct fuse_entry_param p;
	struct kvfs_entry e;
	int ret = kvfs_lookup(f->fs, parent, name, &e);

	if (ret == -ENOENT && f->cfg.negative_timeout > 0) {
		/* ino 0: "no such name", cached for negative_timeout. */
		memset(&p, 0, sizeof(p));
		p.entry_timeout = f->cfg.negative_timeout;
		fuse_reply_entry(req, &p);
		return;
	}
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	entry_param(f, &e, &p);
	if (fuse_reply_entry(req, &p))
		kvfs_forget(f->fs, e.ino, 1);
}

static void fs_ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	kvfs_forget(req_fuse(req)->fs, ino, nlookup);
	fuse_reply_none(req);
}

static void fs_ll_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fs_fuse *f = req_fuse(req);

	for (size_t i = 0; i < count; i++)
		kvfs_forget(f->fs, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void fs_ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_fuse *f = req_fuse(req);
	struct stat st;
	int ret = kvfs_getattr(f->fs, ino, &st);

	(void)fi;
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_attr(req, &st, f->cfg.attr_timeout);
}

/* FUSE_SET_ATTR_* to KVFS_SET_* (the same bits; the kernel-internal ones
 * that do not reach a filesystem are dropped). */
static int setattr_bits(int to_set)
{
	int out = to_set &
		  (KVFS_SET_MODE | KVFS_SET_UID | KVFS_SET_GID | KVFS_SET_SIZE | KVFS_SET_ATIME |
		   KVFS_SET_MTIME | KVFS_SET_ATIME_NOW | KVFS_SET_MTIME_NOW | KVFS_SET_CTIME);

	if (to_set & (FUSE_SET_ATTR_KILL_SUID | FUSE_SET_ATTR_KILL_SGID))
		out |= KVFS_SET_KILL_SUIDGID;
	return out;
}

static void fs_ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			  struct fuse_file_info *fi)
{
	struct fs_fuse *f = req_fuse(req);
	struct fs_op *op = op_new(req, FS_REPLY_ATTR);
	struct kvfs_cred cr;

	(void)fi;
	if (!op)
		return;
	req_cred(req, &cr);
	op_finish(op,
		  kvfs_setattr(f->fs, &cr, ino, attr, setattr_bits(to_set), &op->st, &op->done));
}

static void fs_ll_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[KVFS_SYMLINK_MAX + 1];
	int n = kvfs_readlink(req_fuse(req)->fs, ino, buf, sizeof(buf) - 1);

	if (n < 0) {
		fuse_reply_err(req, -n);
		return;
	}
	buf[n] = '\0';
	fuse_reply_readlink(req, buf);
}

static void fs_ll_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			dev_t rdev)
{
	struct fs_fuse *f = req_fuse(req);
	struct fs_op *op = op_new(req, FS_REPLY_ENTRY);
	struct kvfs_cred cr;

	if (!op)
		return;
	req_cred(req, &cr);
	op_finish(op, kvfs_mknod(f->fs, &cr, parent, name, mode, rdev, &op->e, &op->done));
}

static void fs_ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct fs_fuse *f = req_fuse(req);
	struct fs_op *op = op_new(req, FS_REPLY_ENTRY);
	struct kvfs_cred cr;

	if (!op)
		return;
	req_cred(req, &cr);
	op_finish(op, kvfs_mkdir(f->fs, &cr, parent, name, mode, &op->e, &op->done));
}

static void fs_ll_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct fs_fuse *f = req_fuse(req);
	struct fs_op *op = op_new(req, FS_REPLY_ENTRY);
	struct kvfs_cred cr;

	if (!op)
		return;
	req_cred(req, &cr);
	op_finish(op, kvfs_symlink(f->fs, &cr, parent, name, link, &op->e, &op->done));
}

static void fs_ll_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct fs_fuse *f = req_fuse(req);
	struct fs_op *op = op_new(req, FS_REPLY_ENTRY);

	if (!op)
		return;
	op_finish(op, kvfs_link(f->fs, ino, newparent, newname, &op->e, &op->done));
}

static void fs_ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_fuse *f = req_fuse(req);
	struct fs_op *op = op_new(req, FS_REPLY_ERR);

	if (!op)
		return;
	op_finish(op, kvfs_unlink(f->fs, parent, name, &op->done));
}

static void fs_ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_fuse *f = req_fuse(req);
	struct fs_op *op = op_new(req, FS_REPLY_ERR);

	if (!op)
		return;
	op_finish(op, kvfs_rmdir(f->fs, parent, name, &op->done));
}

static void fs_ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
			 const char *newname, unsigned int flags)
{
	struct fs_fuse *f = req_fuse(req);
	struct fs_op *op = op_new(req, FS_REPLY_ERR);

	if (!op)
		return;
	op_finish(op, kvfs_rename(f->fs, parent, name, newparent, newname, flags, &op->done));
}

/* ---- files ------------------------------------------------------------ */

/* O_APPEND is the kernel's under the writeback cache; the library only
 * acts on O_TRUNC. */
static int open_flags(int flags)
{
	return flags & ~O_APPEND;
}

static void fs_ll_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			 struct fuse_file_info *fi)
{
	struct fs_fuse *f = req_fuse(req);
	struct fs_op *op = op_new(req, FS_REPLY_CREATE);
	struct kvfs_cred cr;

	if (!op)
		return;
	req_cred(req, &cr);
	fi->fh = open_fh(fi->flags);
	op->fi = *fi;
	op_finish(op, kvfs_create(f->fs, &cr, parent, name, mode, open_flags(fi->flags), &op->e,
				  &op->done));
}

static void fs_ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_fuse *f = req_fuse(req);
	struct fs_op *op = op_new(req, FS_REPLY_OPEN);

	if (!op)
		return;
	fi->fh = open_fh(fi->flags);
	fi->keep_cache = 1; /* nothing but this mount changes the file */
	op->fi = *fi;
	op->ino = ino;
	op_finish(op, kvfs_open_file(f->fs, ino, open_flags(fi->flags), &op->done));
}

static void fs_ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	char *buf = tbuf_get(size);
	ssize_t n;

	(void)fi;
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = kvfs_read(req_fuse(req)->fs, ino, (uint64_t)off, size, buf);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
}

/*
 * write_buf rather than write: the same call for data in memory (the only
 * kind without splice), and correct should a pipe buffer ever come.
 */
static void fs_ll_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bufv, off_t off,
			    struct fuse_file_info *fi)
{
	struct fs_fuse *f = req_fuse(req);
	size_t size = fuse_buf_size(bufv);
	const struct fuse_buf *b0 = &bufv->buf[bufv->idx];
	const char *data;
	struct fs_op *op;

	(void)fi;
	if (bufv->count - bufv->idx == 1 && !(b0->flags & FUSE_BUF_IS_FD)) {
		data = (const char *)b0->mem + bufv->off;
	} else {
		char *tmp = tbuf_get(size);
		struct fuse_bufvec dst = FUSE_BUFVEC_INIT(size);
		ssize_t n;

		if (!tmp) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		dst.buf[0].mem = tmp;
		n = fuse_buf_copy(&dst, bufv, 0);
		if (n < 0) {
			fuse_reply_err(req, (int)-n);
			return;
		}
		size = (size_t)n;
		data = tmp;
	}
	op = op_new(req, FS_REPLY_WRITE);
	if (!op)
		return;
	op->count = size;
	/* S_ISUID/S_ISGID: the kernel clears them with a setattr (no
	 * HANDLE_KILLPRIV), so the write itself never kills them. */
	op_finish(op, kvfs_write(f->fs, ino, (uint64_t)off, data, size, 0, &op->done));
}

static void fs_ll_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* close(2) is no durability point: nothing to do. The writeback cache
	 * has sent the file's dirty pages (and reported their errors) before
	 * this request. ENOSYS makes the kernel stop sending it (no_flush),
	 * which saves a round trip at every close; close(2) still returns 0. */
	(void)ino;
	(void)fi;
	fuse_reply_err(req, ENOSYS);
}

static void fs_ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	writers_add(req_fuse(req), ino, fi, -1);
	kvfs_release(req_fuse(req)->fs, ino);
	fuse_reply_err(req, 0);
}

/* fsync, fdatasync, fsyncdir: the kernel wrote back the dirty pages first;
 * wait for the group commit holding everything acknowledged so far. */
static void fs_ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, -kvfs_sync(req_fuse(req)->fs));
}

/* ---- allocation, holes, copies (fs/extent.c) -------------------------- */

/* The kernel has written back the dirty pages of a range it punches. */
static void fs_ll_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
			    struct fuse_file_info *fi)
{
	struct fs_op *op = op_new(req, FS_REPLY_ERR);

	(void)fi;
	if (!op)
		return;
	op_finish(op, kvfs_fallocate(req_fuse(req)->fs, ino, mode, (uint64_t)offset,
				     (uint64_t)length, &op->done));
}

/*
 * SEEK_DATA/SEEK_HOLE (the kernel answers the other whences).
 *
 * The kernel sends FUSE_LSEEK without writing back its dirty pages first
 * (fuse_file_llseek, 6.18), so data in the writeback cache (written, not yet
 * flushed, fsynced or closed), in a hole or past the store's EOF, would be
 * missed: SEEK_DATA would skip it, SEEK_HOLE would report a hole there, and
 * cp, which uses both, would copy zeros. Whatever POSIX lets us answer
 * without the data ("all of [off, EOF) is data") needs the kernel's i_size,
 * which dirty appends leave ahead of the store's, so no answer from the
 * store alone is sound. Instead the kernel is made to write the pages back
 * first: a reverse invalidation of the range (notify_inval_inode) runs
 * invalidate_inode_pages2_range, which launders each dirty folio (a WRITE,
 * waited for) before dropping it, and returns only then.
 *
 * Only the ranges that can change the answer are invalidated, so that few
 * clean pages are dropped (written-back data only ever turns a hole of the
 * store into data, never the reverse: punches and truncations reach us
 * synchronously, after the kernel dropped its pages):
 *   - SEEK_DATA from off: [off, the store's answer), or [off, end) if the
 *     store says ENXIO; then the store's answer is exact;
 *   - SEEK_HOLE from off, the store answering h: the store's hole [h, next
 *     data); if h is still a hole afterwards it is the answer, else the
 *     store's new answer h' is, once [h', end) is written back too
 *     (everything from off if the store says ENXIO).
 * It only happens for an inode some handle has open for writing
 * (f->writers; a hash collision costs an invalidation, never a wrong
 * answer): the kernel holds no dirty pages of others.
 *
 * Deadlocks: the invalidation blocks until the WRITEs it caused are
 * answered, by the worker threads; the kernel holds the inode's i_rwsem for
 * the whole FUSE_LSEEK, which the WRITEs of writeback do not need. A worker
 * must not wait there itself: as many concurrent seeks on files with
 * writers as the loop has threads would leave none to serve the WRITEs. So
 * these seeks go to one seeker thread; workers never wait for the kernel.
 * None of libfuse's "related operations" of an inode (setattr, getattr,
 * lookup...) is involved.
 */
static int64_t store_seek(struct fs_fuse *f, uint64_t ino, uint64_t off, int whence)
{
	uint64_t pos = 0;
	int err = kvfs_lseek(f->fs, ino, off, whence, &pos);

	return err ? err : (int64_t)pos;
}

/* Have the kernel write back its dirty pages of [from, to); to 0: to the
 * end. It also drops their clean pages and its cached attributes (it keeps
 * i_size and the times it owns under the writeback cache). Errors are
 * ignored: ENOENT (the kernel dropped the inode), ENODEV (unmounted). */
static void writeback(struct fs_fuse *f, uint64_t ino, uint64_t from, uint64_t to)
{
	fuse_lowlevel_notify_inval_inode(f->se, ino, (off_t)from, to ? (off_t)(to - from) : 0);
}

/* SEEK_DATA/SEEK_HOLE of an inode with writers: see above. */
static int64_t seek_written_back(struct fs_fuse *f, uint64_t ino, uint64_t off, int whence)
{
	int64_t r = store_seek(f, ino, off, whence), d, h;

	if (whence == SEEK_DATA) {
		if (r != -ENXIO && (r < 0 || (uint64_t)r == off))
			return r; /* data at off, or an error */
		writeback(f, ino, off, r < 0 ? 0 : (uint64_t)r);
		return store_seek(f, ino, off, SEEK_DATA);
	}
	if (r == -ENXIO) {
		writeback(f, ino, off, 0);
		return store_seek(f, ino, off, SEEK_HOLE);
	}
	if (r < 0)
		return r;
	d = store_seek(f, ino, (uint64_t)r, SEEK_DATA);
	if (d < 0 && d != -ENXIO)
		return d;
	writeback(f, ino, (uint64_t)r, d < 0 ? 0 : (uint64_t)d);
	h = store_seek(f, ino, off, SEEK_HOLE);
	if (h < 0 || h == r)
		return h;
	writeback(f, ino, (uint64_t)h, 0);
	return store_seek(f, ino, off, SEEK_HOLE);
}

static void seek_reply(fuse_req_t req, int64_t r)
{
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else
		fuse_reply_lseek(req, (off_t)r);
}

static void *seek_main(void *arg)
{
	struct fs_fuse *f = arg;
	struct fs_seek *s;

	pthread_mutex_lock(&f->lock);
	for (;;) {
		while (!f->seeks && !f->seek_stop)
			pthread_cond_wait(&f->seek_wake, &f->lock);
		s = f->seeks;
		if (!s)
			break;
		f->seeks = s->next;
		if (!f->seeks)
			f->seek_end = &f->seeks;
		pthread_mutex_unlock(&f->lock);
		seek_reply(s->req, seek_written_back(f, s->ino, s->off, s->whence));
		free(s);
		inflight_put(f);
		pthread_mutex_lock(&f->lock);
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

/* Queue a seek for the seeker thread (started on first use). 0, or -errno
 * if it cannot run: the caller answers. */
static int seek_queue(struct fs_fuse *f, fuse_req_t req, uint64_t ino, uint64_t off, int whence)
{
	struct fs_seek *s = calloc(1, sizeof(*s));
	int err = 0;

	if (!s)
		return -ENOMEM;
	*s = (struct fs_seek){ .req = req, .ino = ino, .off = off, .whence = whence };
	pthread_mutex_lock(&f->lock);
	if (!f->seeker_on) {
		err = -pthread_create(&f->seeker, NULL, seek_main, f);
		f->seeker_on = !err;
	}
	if (!err) {
		*f->seek_end = s;
		f->seek_end = &s->next;
		f->inflight++;
		pthread_cond_signal(&f->seek_wake);
	}
	pthread_mutex_unlock(&f->lock);
	if (err)
		free(s);
	return err;
}

static void fs_ll_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
			struct fuse_file_info *fi)
{
	struct fs_fuse *f = req_fuse(req);

	(void)fi;
	if (off >= 0 && atomic_load(writers_slot(f, ino))) {
		if (!seek_queue(f, req, ino, (uint64_t)off, whence))
			return;
		/* No memory or no thread: on this worker rather than not at
		 * all (the answer is right; only a pool of workers all doing
		 * this at once would stall). */
		seek_reply(req, seek_written_back(f, ino, (uint64_t)off, whence));
		return;
	}
	seek_reply(req, store_seek(f, ino, (uint64_t)off, whence));
}

/* Bytes per copy request: the reply's count is 32 bits (fuse_write_out). */
#define FS_COPY_MAX (1ul << 30)

/*
 * The kernel wrote back both ranges first, clears S_ISUID/S_ISGID of the
 * destination itself (file_modified: a setattr) and drops the copied pages
 * afterwards, so the copy needs neither the data nor kill_suid here.
 */
static void fs_ll_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
				  struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
				  struct fuse_file_info *fi_out, size_t len, int flags)
{
	struct fs_op *op = op_new(req, FS_REPLY_WRITE);

	(void)fi_in;
	(void)fi_out;
	if (!op)
		return;
	if (len > FS_COPY_MAX)
		len = FS_COPY_MAX;
	op_finish(op, kvfs_copy_file_range(req_fuse(req)->fs, ino_in, (uint64_t)off_in, ino_out,
					   (uint64_t)off_out, len, (unsigned)flags, 0, &op->count,
					   &op->done));
}

/* ---- directories ------------------------------------------------------ */

/* Directories need no open state: readdir's cookies say where to go on. */
static void fs_ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	fi->fh = 0;
	fuse_reply_open(req, fi);
}

/*
 * One readdir/readdirplus reply being filled. The library resumes after
 * the cookie @off it was given, so an entry that does not fit is simply not
 * taken: the next request starts at it again.
 */
struct fs_dirbuf {
	fuse_req_t req;
	struct fs_fuse *f;
	int plus;
	char *buf;
	size_t size, used;
	uint64_t *refs; /* plus: inodes whose lookup reference went in buf */
	size_t nrefs, maxrefs;
};

static int is_dot_or_dotdot(const char *name)
{
	return name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2]));
}

static int dir_add(void *arg, const struct kvfs_dirent *d, int *took_ref)
{
	struct fs_dirbuf *db = arg;
	char name[KVFS_NAME_MAX + 1];
	size_t room = db->size - db->used, n;
	struct fuse_entry_param p;

	if (d->namelen > KVFS_NAME_MAX)
		return 0; /* never stored; skip rather than truncate */
	memcpy(name, d->name, d->namelen);
	name[d->namelen] = '\0';
	if (!db->plus) {
		struct stat st = { .st_ino = d->ino, .st_mode = DTTOIF(d->type) };

		n = fuse_add_direntry(db->req, db->buf + db->used, room, name, &st, (off_t)d->off);
		if (n > room)
			return 1;
		db->used += n;
		return 0;
	}
	if (d->e && !is_dot_or_dotdot(name)) {
		if (db->nrefs == db->maxrefs)
			return 1; /* cannot happen: maxrefs bounds what fits */
		entry_param(db->f, d->e, &p);
	} else {
		/* No node id: the kernel takes no reference for these. */
		memset(&p, 0, sizeof(p));
		p.attr.st_ino = d->ino;
		p.attr.st_mode = DTTOIF(d->type);
	}
	n = fuse_add_direntry_plus(db->req, db->buf + db->used, room, name, &p, (off_t)d->off);
	if (n > room)
		return 1;
	db->used += n;
	if (p.ino) {
		db->refs[db->nrefs++] = p.ino;
		*took_ref = 1;
	}
	return 0;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, int plus)
{
	struct fs_dirbuf db = { .req = req, .f = req_fuse(req), .plus = plus, .size = size };
	int ret;

	db.buf = malloc(size ? size : 1);
	if (plus) {
		/* Each direntplus record is at least 128 bytes of entry and
		 * attributes plus its dirent: this bounds the count. */
		db.maxrefs = size / 128 + 1;
		db.refs = malloc(db.maxrefs * sizeof(*db.refs));
	}
	if (!db.buf || (plus && !db.refs)) {
		fuse_reply_err(req, ENOMEM);
		goto out;
	}
	ret = kvfs_readdir(db.f->fs, ino, (uint64_t)off, plus, dir_add, &db);
	if (ret < 0 && !db.used) {
		fuse_reply_err(req, -ret);
		goto out;
	}
	if (fuse_reply_buf(req, db.buf, db.used)) {
		for (size_t i = 0; i < db.nrefs; i++)
			kvfs_forget(db.f->fs, db.refs[i], 1);
	}
out:
	free(db.refs);
	free(db.buf);
}

static void fs_ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			  struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, 0);
}

static void fs_ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			      struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, 1);
}

static void fs_ll_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void fs_ll_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs st;
	int ret = kvfs_statfs(req_fuse(req)->fs, &st);

	(void)ino;
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_statfs(req, &st);
}

/* ---- extended attributes ---------------------------------------------- */

/*
 * The kernel checks who may touch which namespace before a request gets
 * here (trusted.* needs CAP_SYS_ADMIN, security.* is the LSMs', user.* and
 * ACLs need write permission or ownership). Two things are left to the
 * daemon, which knows the caller's ids but not its capabilities, and takes
 * uid 0 as privileged: hiding trusted.* names from an unprivileged
 * listxattr, and FUSE_SETXATTR_ACL_KILL_SGID (see acl_kill_sgid).
 *
 * Without FUSE_CAP_POSIX_ACL (a kernel that lacks it) the kernel would pass
 * ACLs through as plain attributes nobody enforces: they are then refused
 * as on a filesystem mounted noacl, and tools fall back to chmod.
 */
static int is_posix_acl(const char *name)
{
	return !strcmp(name, KVFS_ACL_ACCESS) || !strcmp(name, KVFS_ACL_DEFAULT);
}

static int acl_refused(fuse_req_t req, const char *name)
{
	return !atomic_load(&req_fuse(req)->posix_acl) && is_posix_acl(name);
}

static int req_privileged(fuse_req_t req)
{
	return fuse_req_ctx(req)->uid == 0;
}

/* Whether the caller is in group @gid, primary or supplementary. */
static int req_in_group(fuse_req_t req, gid_t gid)
{
	gid_t groups[64], *list = groups;
	int n, in = 0;

	if (fuse_req_ctx(req)->gid == gid)
		return 1;
	n = fuse_req_getgroups(req, 64, groups);
	if (n > 64) {
		list = malloc((size_t)n * sizeof(*list));
		n = list ? fuse_req_getgroups(req, n, list) : -ENOMEM;
	}
	for (int i = 0; i < n && !in; i++)
		in = list[i] == gid;
	if (list != groups)
		free(list);
	return in;
}

/*
 * Setting an access ACL clears S_ISGID unless the caller is in the file's
 * group or privileged (Linux's posix_acl_update_mode). The kernel says so
 * with FUSE_SETXATTR_ACL_KILL_SGID only under FUSE_SETXATTR_EXT, which
 * libfuse 3.14 neither negotiates nor passes on: decided here, on the same
 * facts (the caller's groups, the file's group as of now).
 */
static int acl_kill_sgid(fuse_req_t req, fuse_ino_t ino)
{
	struct stat st;

	if (req_privileged(req) || kvfs_getattr(req_fuse(req)->fs, ino, &st) ||
	    !(st.st_mode & S_ISGID))
		return 0;
	return !req_in_group(req, st.st_gid);
}

static void fs_ll_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			   size_t size, int flags)
{
	struct fs_fuse *f = req_fuse(req);
	struct fs_op *op;

	if (acl_refused(req, name)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	flags &= XATTR_CREATE | XATTR_REPLACE;
	if (size && !strcmp(name, KVFS_ACL_ACCESS) && acl_kill_sgid(req, ino))
		flags |= KVFS_XATTR_ACL_KILL_SGID;
	op = op_new(req, FS_REPLY_ERR);
	if (!op)
		return;
	op_finish(op, kvfs_setxattr(f->fs, ino, name, value, size, flags, &op->done));
}

/* getxattr and listxattr: size 0 asks for the length only. */
static void reply_xattr(fuse_req_t req, size_t size, ssize_t n, const char *buf)
{
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else if (!size)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
}

static void fs_ll_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	char *buf = size ? tbuf_get(size) : NULL;

	if (acl_refused(req, name)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	reply_xattr(req, size, kvfs_getxattr(req_fuse(req)->fs, ino, name, buf, size), buf);
}

/* Drop the trusted.* names from the @n bytes of names at @buf; the new length. */
static size_t drop_trusted(char *buf, size_t n)
{
	size_t in = 0, out = 0;

	while (in < n) {
		size_t len = strnlen(buf + in, n - in) + 1;

		if (strncmp(buf + in, "trusted.", 8)) {
			memmove(buf + out, buf + in, len);
			out += len;
		}
		in += len;
	}
	return out;
}

/* The caller is not privileged: the list without trusted.* (Linux lists
 * them only to CAP_SYS_ADMIN), the size protocol applying to what is left. */
static ssize_t list_unprivileged(struct kvfs *fs, fuse_ino_t ino, char **out)
{
	ssize_t n = kvfs_listxattr(fs, ino, NULL, 0);
	char *buf;

	for (;;) {
		if (n <= 0)
			return n;
		buf = tbuf_get((size_t)n);
		if (!buf)
			return -ENOMEM;
		n = kvfs_listxattr(fs, ino, buf, (size_t)n);
		if (n != -ERANGE)
			break;
		n = kvfs_listxattr(fs, ino, NULL, 0); /* it grew meanwhile */
	}
	if (n > 0)
		n = (ssize_t)drop_trusted(buf, (size_t)n);
	*out = buf;
	return n;
}

static void fs_ll_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct kvfs *fs = req_fuse(req)->fs;
	char *buf = NULL;
	ssize_t n;

	if (!req_privileged(req)) {
		n = list_unprivileged(fs, ino, &buf);
		if (n >= 0 && size && (size_t)n > size)
			n = -ERANGE;
		reply_xattr(req, size, n, buf);
		return;
	}
	buf = size ? tbuf_get(size) : NULL;
	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	reply_xattr(req, size, kvfs_listxattr(fs, ino, buf, size), buf);
}

static void fs_ll_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct fs_fuse *f = req_fuse(req);
	struct fs_op *op;

	if (acl_refused(req, name)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	op = op_new(req, FS_REPLY_ERR);
	if (!op)
		return;
	op_finish(op, kvfs_removexattr(f->fs, ino, name, &op->done));
}

static const struct fuse_lowlevel_ops fs_ll_ops = {
	.init = fs_ll_init,
	.destroy = fs_ll_destroy,
	.lookup = fs_ll_lookup,
	.forget = fs_ll_forget,
	.forget_multi = fs_ll_forget_multi,
	.getattr = fs_ll_getattr,
	.setattr = fs_ll_setattr,
	.readlink = fs_ll_readlink,
	.mknod = fs_ll_mknod,
	.mkdir = fs_ll_mkdir,
	.unlink = fs_ll_unlink,
	.rmdir = fs_ll_rmdir,
	.symlink = fs_ll_symlink,
	.rename = fs_ll_rename,
	.link = fs_ll_link,
	.create = fs_ll_create,
	.open = fs_ll_open,
	.read = fs_ll_read,
	.write_buf = fs_ll_write_buf,
	.flush = fs_ll_flush,
	.release = fs_ll_release,
	.fsync = fs_ll_fsync,
	.fallocate = fs_ll_fallocate,
	.lseek = fs_ll_lseek,
	.copy_file_range = fs_ll_copy_file_range,
	.opendir = fs_ll_opendir,
	.readdir = fs_ll_readdir,
	.readdirplus = fs_ll_readdirplus,
	.releasedir = fs_ll_releasedir,
	.fsyncdir = fs_ll_fsync,
	.statfs = fs_ll_statfs,
	.setxattr = fs_ll_setxattr,
	.getxattr = fs_ll_getxattr,
	.listxattr = fs_ll_listxattr,
	.removexattr = fs_ll_removexattr,
};

/* ---- the daemon's side (fs/daemon.h) ---------------------------------- */

int fs_fuse_new(const char *progname, const char *fuse_opts, const struct fs_fuse_config *cfg,
		struct fs_fuse **out)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fs_fuse *f = calloc(1, sizeof(*f));
	int e = -ENOMEM;

	if (!f)
		return -ENOMEM;
	f->cfg = *cfg;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->idle, NULL);
	pthread_cond_init(&f->seek_wake, NULL);
	f->seek_end = &f->seeks;
	if (fuse_opt_add_arg(&args, progname) ||
	    (fuse_opts && *fuse_opts &&
	     (fuse_opt_add_arg(&args, "-o") || fuse_opt_add_arg(&args, fuse_opts))) ||
	    (cfg->debug && fuse_opt_add_arg(&args, "-d")))
		goto fail;
	f->se = fuse_session_new(&args, &fs_ll_ops, sizeof(fs_ll_ops), f);
	if (!f->se) {
		e = -EINVAL; /* libfuse has said which option */
		goto fail;
	}
	fuse_opt_free_args(&args);
	*out = f;
	return 0;
fail:
	fuse_opt_free_args(&args);
	pthread_cond_destroy(&f->seek_wake);
	pthread_cond_destroy(&f->idle);
	pthread_mutex_destroy(&f->lock);
	free(f);
	return e;
}

int fs_fuse_mount(struct fs_fuse *f, struct kvfs *fs, const char *mountpoint)
{
	f->fs = fs;
	return fuse_session_mount(f->se, mountpoint) ? -EIO : 0;
}

int fs_fuse_run(struct fs_fuse *f)
{
	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	int ret, seeker_on;

	if (!lc)
		return -ENOMEM;
	fuse_loop_cfg_set_clone_fd(lc, 1); /* one /dev/fuse queue per worker */
	ret = fuse_session_loop_mt(f->se, lc);
	fuse_loop_cfg_destroy(lc);

	/* Writes in flight still owe their replies: let their commits land
	 * and wait for the callbacks before the session goes away. */
	kvfs_sync(f->fs);
	pthread_mutex_lock(&f->lock);
	while (f->inflight)
		pthread_cond_wait(&f->idle, &f->lock);
	f->seek_stop = 1; /* its queue is empty: queued seeks are inflight */
	pthread_cond_signal(&f->seek_wake);
	seeker_on = f->seeker_on;
	f->seeker_on = 0;
	pthread_mutex_unlock(&f->lock);
	if (seeker_on)
		pthread_join(f->seeker, NULL);
	unref_drain(f);
	/* > 0 is a signal number from libfuse's handlers (not installed). */
	return ret < 0 ? ret : 0;
}

void fs_fuse_destroy(struct fs_fuse *f)
{
	if (!f)
		return;
	fuse_session_unmount(f->se);
	fuse_session_destroy(f->se);
	pthread_cond_destroy(&f->seek_wake);
	pthread_cond_destroy(&f->idle);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

const char *fs_fuse_version(void)
{
	return fuse_pkgversion();
}
