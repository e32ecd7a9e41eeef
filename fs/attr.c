// SPDX-License-Identifier: MIT
/*
 * Attributes and open files: setattr (chmod, chown, truncate, utimensat in
 * one call, as FUSE sends them), open (O_TRUNC) and release.
 *
 * Each setattr is one batch (the inode, plus the data keys a truncate
 * changes) built and appended under the inode's stripe lock; either every
 * requested change is made or none.
 *
 * Rules, as Linux applies them (the kernel has already checked permissions
 * and, with default_permissions, dropped S_ISGID from a chmod by a caller
 * outside the file's group):
 *   - mode: the type bits stay; the permission bits (with suid, sgid and
 *     sticky) are replaced, and an access ACL's owner, mask (or group) and
 *     other entries follow them, in the same batch.
 *   - uid/gid on a non-directory: S_ISUID is cleared, and S_ISGID if the
 *     file is group-executable, whoever the caller is (chown_common() in
 *     Linux: root's chown clears them too). KVFS_SET_KILL_SUIDGID likewise.
 *   - size: -EISDIR for a directory, -EINVAL for anything else that is not
 *     a regular file; mtime and ctime become now if the size changes.
 *   - atime/mtime: the given time, or now with *_NOW; a time whose tv_nsec
 *     is UTIME_OMIT is left alone and UTIME_NOW means now (for callers that
 *     pass utimensat's values through).
 *   - ctime: the given one with KVFS_SET_CTIME (the kernel's writeback
 *     cache), else now whenever anything is set.
 */
#include "acl.h"
#include "data.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

#define SET_ALL                                                                         \
	(KVFS_SET_MODE | KVFS_SET_UID | KVFS_SET_GID | KVFS_SET_SIZE | KVFS_SET_ATIME | \
	 KVFS_SET_MTIME | KVFS_SET_ATIME_NOW | KVFS_SET_MTIME_NOW | KVFS_SET_CTIME |    \
	 KVFS_SET_KILL_SUIDGID)

static bool ts_valid(const struct timespec *ts)
{
	return ts->tv_nsec == UTIME_NOW || ts->tv_nsec == UTIME_OMIT ||
	       (ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000);
}

/* Set @dst from an explicit time @ts (or now with @now_flag). */
static void set_time(struct timespec *dst, const struct timespec *ts, bool now_flag,
		     const struct timespec *now)
{
	if (now_flag || ts->tv_nsec == UTIME_NOW)
		*dst = *now;
	else if (ts->tv_nsec != UTIME_OMIT)
		*dst = *ts;
}

static int check_attr(const struct stat *attr, int to_set)
{
	if ((to_set & KVFS_SET_SIZE) && attr->st_size < 0)
		return -EINVAL;
	if ((to_set & KVFS_SET_ATIME) && !(to_set & KVFS_SET_ATIME_NOW) &&
	    !ts_valid(&attr->st_atim))
		return -EINVAL;
	if ((to_set & KVFS_SET_MTIME) && !(to_set & KVFS_SET_MTIME_NOW) &&
	    !ts_valid(&attr->st_mtim))
		return -EINVAL;
	if ((to_set & KVFS_SET_CTIME) &&
	    (attr->st_ctim.tv_nsec < 0 || attr->st_ctim.tv_nsec >= 1000000000))
		return -EINVAL;
	return 0;
}

/* Apply @attr's @to_set fields to @f (locked, loaded); keys go to @b. */
static int apply_attr(struct kvfs *fs, uint64_t ino, struct kvfs_file *f, const struct stat *attr,
		      int to_set, struct kv_batch *b)
{
	struct kvfs_inode *in = &f->in;
	struct timespec now;
	int err;

	kvfs_now(&now);
	if (to_set & KVFS_SET_SIZE) {
		if (!S_ISREG(in->mode))
			return S_ISDIR(in->mode) ? -EISDIR : -EINVAL;
		if ((uint64_t)attr->st_size != in->size) {
			err = kvfs_file_truncate(fs, ino, f, (uint64_t)attr->st_size, b);
			if (err)
				return err;
			in->mtime = in->ctime = now;
		}
	}
	if (to_set & KVFS_SET_MODE)
		in->mode = (in->mode & S_IFMT) | (attr->st_mode & 07777);
	if (to_set & KVFS_SET_UID)
		in->uid = attr->st_uid;
	if (to_set & KVFS_SET_GID)
		in->gid = attr->st_gid;
	if (to_set & (KVFS_SET_UID | KVFS_SET_GID | KVFS_SET_KILL_SUIDGID))
		kvfs_kill_suid(in);
	if (to_set & (KVFS_SET_ATIME | KVFS_SET_ATIME_NOW))
		set_time(&in->atime, &attr->st_atim, to_set & KVFS_SET_ATIME_NOW, &now);
	if (to_set & (KVFS_SET_MTIME | KVFS_SET_MTIME_NOW))
		set_time(&in->mtime, &attr->st_mtim, to_set & KVFS_SET_MTIME_NOW, &now);
	in->ctime = (to_set & KVFS_SET_CTIME) ? attr->st_ctim : now;
	if (to_set & KVFS_SET_MODE) {
		err = kvfs_acl_on_chmod(fs, b, ino, in); /* posix_acl_chmod */
		if (err)
			return err;
	}
	return kvfs_file_put(b, ino, f);
}

int kvfs_setattr(struct kvfs *fs, const struct kvfs_cred *cr, uint64_t ino, const struct stat *attr,
		 int to_set, struct stat *out, const struct kvfs_done *done)
{
	struct kvfs_fop op;
	int err;

	(void)cr; /* the kernel checked permissions; chown clears suid for anyone */
	to_set &= SET_ALL;
	err = check_attr(attr, to_set);
	if (err)
		return err;
	if (to_set && fs->read_only)
		return -EROFS;
	err = kvfs_fop_begin(fs, ino, done, true, &op);
	if (err)
		return err;
	if (to_set) {
		struct kv_batch *b = kvfs_batch();

		err = apply_attr(fs, ino, &op.f, attr, to_set, b);
		if (!err) {
			kvfs_inode_stat(fs, ino, &op.f.in, out);
			err = kvfs_ack_append(fs, op.a, b);
		}
	} else {
		kvfs_inode_stat(fs, ino, &op.f.in, out);
	}
	return kvfs_fop_end(fs, ino, &op, err);
}

/* O_TRUNC of an open: size 0, mtime and ctime now (even if already empty,
 * as Linux does). */
static int open_truncate(struct kvfs *fs, uint64_t ino, const struct kvfs_done *done)
{
	struct kvfs_fop op;
	struct timespec now;
	int err;

	err = kvfs_fop_begin(fs, ino, done, true, &op);
	if (err)
		return err;
	if (S_ISREG(op.f.in.mode)) {
		struct kv_batch *b = kvfs_batch();

		err = kvfs_file_truncate(fs, ino, &op.f, 0, b);
		kvfs_now(&now);
		op.f.in.mtime = op.f.in.ctime = now;
		if (!err)
			err = kvfs_file_put(b, ino, &op.f);
		if (!err)
			err = kvfs_ack_append(fs, op.a, b);
	}
	return kvfs_fop_end(fs, ino, &op, err);
}

int kvfs_open_file(struct kvfs *fs, uint64_t ino, int flags, const struct kvfs_done *done)
{
	bool writes = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
	struct kvfs_inode in;
	int err;

	/* The reference first: reclaim cannot take the inode after the check. */
	kvfs_node_ref(fs, ino, 0, 1);
	err = kvfs_inode_read(fs, ino, &in, NULL, 0, NULL);
	if (!err && S_ISDIR(in.mode) && writes)
		err = -EISDIR;
	/* Only a regular file's data lives here: a fifo or device opens for
	 * writing on a read-only mount (Linux's sb_permission()). */
	if (!err && writes && fs->read_only && S_ISREG(in.mode))
		err = -EROFS;
	if (!err && S_ISREG(in.mode) && (flags & O_TRUNC))
		err = open_truncate(fs, ino, done);
	if (err < 0)
		kvfs_node_unref(fs, ino, 0, 1);
	return err;
}

void kvfs_release(struct kvfs *fs, uint64_t ino)
{
	kvfs_node_unref(fs, ino, 0, 1);
}
