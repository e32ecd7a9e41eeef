// SPDX-License-Identifier: MIT
/*
 * Extended attributes: one key per attribute, 05 ino name -> value, so an
 * inode's attributes are one contiguous range (listed by one scan, deleted
 * with the inode by one range tombstone).
 *
 * Limits and codes are Linux's: a name (with its namespace prefix) of 1 to
 * 255 bytes, else -ERANGE; a value of at most 64 KiB, else -E2BIG; a name
 * outside the user., trusted., security. and system. namespaces,
 * -EOPNOTSUPP; a bare prefix, -EINVAL. As in Linux, user.* attributes exist
 * only on regular files and directories. Setting or removing one changes the
 * inode's ctime, in the same batch. Who may read or write which namespace
 * (trusted.* needs CAP_SYS_ADMIN, security.* is up to the LSMs, user.* needs
 * write permission on the file) is the kernel's check, made before a request
 * reaches the daemon; the one thing it leaves to a FUSE daemon, hiding
 * trusted.* names from an unprivileged listxattr, is fs/fuse.c's.
 *
 * POSIX ACLs (system.posix_acl_access, system.posix_acl_default; format and
 * rules in acl.h) are attributes with more to them, as in Linux's
 * set_posix_acl():
 *   1. the value must be a valid ACL (-EINVAL, -EOPNOTSUPP for another
 *      version, -E2BIG above a page); an empty one removes the ACL;
 *   2. XATTR_CREATE / XATTR_REPLACE are ignored, and removing an ACL that
 *      is not there succeeds;
 *   3. only a directory has a default ACL (-EACCES for anything else; a
 *      symlink has neither: -EOPNOTSUPP);
 *   4. setting an access ACL sets the mode's rwx bits from it, in the same
 *      batch, and clears S_ISGID with KVFS_XATTR_ACL_KILL_SGID; an ACL that
 *      says no more than the mode is stored as the mode alone (the
 *      attribute is deleted).
 * New inodes inherit a directory's default ACL (kvfs_acl_new_inode) and
 * chmod rewrites the access ACL (kvfs_acl_on_chmod), in their operations'
 * batches.
 */
#include "acl.h"
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/xattr.h>

/* See ns.c: the inode value is rewritten whole, inline payload included. */
#define XA_INLINE_CAP 4096u

static const char *const namespaces[] = { "user.", "trusted.", "security.", "system." };

/* 0 or the error for attribute name @name; *user when it is a user.* one. */
static int name_check(const char *name, size_t *len, bool *user)
{
	size_t n = strnlen(name, KVFS_XATTR_NAME_MAX + 1);

	if (!n || n > KVFS_XATTR_NAME_MAX)
		return -ERANGE;
	for (size_t i = 0; i < sizeof(namespaces) / sizeof(namespaces[0]); i++) {
		size_t p = strlen(namespaces[i]);

		if (!strncmp(name, namespaces[i], p)) {
			*len = n;
			*user = i == 0;
			return n == p ? -EINVAL : 0;
		}
	}
	return -EOPNOTSUPP;
}

/* Whether inode @mode may carry user.* attributes (Linux's xattr_permission). */
static bool user_ok(uint32_t mode)
{
	return S_ISREG(mode) || S_ISDIR(mode);
}

/*
 * Append, as one batch, attribute @key set to @value (NULL: deleted) with
 * inode @in (ctime now; KVFS_IF_XATTR once it has had an attribute, so that
 * kvfs_batch_drop deletes them). The caller holds @ino's stripe lock.
 */
static int xattr_commit(struct kvfs *fs, uint64_t ino, struct kvfs_inode *in, const void *inl,
			size_t ilen, const uint8_t *key, size_t klen, const void *value,
			size_t size, const struct kvfs_done *done)
{
	struct kv_batch *b = kvfs_batch();
	int err;

	kvfs_now(&in->ctime);
	if (value) {
		in->flags |= KVFS_IF_XATTR;
		err = kv_batch_put(b, key, klen, value, size);
	} else {
		err = kv_batch_delete(b, key, klen);
	}
	if (!err)
		err = kvfs_batch_put_inode(b, ino, in, inl, ilen);
	return err ? err : kvfs_commit(fs, b, done);
}

/* Set (@value != NULL) or remove an attribute of a locked, read inode. */
static int xattr_change(struct kvfs *fs, uint64_t ino, const char *name, size_t len, bool user,
			const void *value, size_t size, int flags, const struct kvfs_done *done)
{
	uint8_t key[KVFS_KEY_MAX], inl[XA_INLINE_CAP];
	size_t klen = kvfs_key_xattr(key, ino, name, len), ilen;
	struct kvfs_inode in;
	uint8_t probe;
	ssize_t n;
	int err;

	kvfs_lock1(fs, ino);
	err = kvfs_inode_read(fs, ino, &in, inl, sizeof(inl), &ilen);
	if (err)
		goto out;
	if (user && !user_ok(in.mode)) {
		err = value ? -EPERM : -ENODATA;
		goto out;
	}
	n = kv_get(fs->db, KV_READ_LATEST, key, klen, &probe, 0);
	if (n < 0 && n != -ENOENT) {
		err = (int)n;
		goto out;
	}
	if (n >= 0 && value && (flags & XATTR_CREATE))
		err = -EEXIST;
	else if (n == -ENOENT && (!value || (flags & XATTR_REPLACE)))
		err = -ENODATA;
	if (err)
		goto out;

	err = xattr_commit(fs, ino, &in, inl, ilen, key, klen, value, size, done);
out:
	kvfs_unlock1(fs, ino);
	return err;
}

/* ---- POSIX ACLs --------------------------------------------------------- */

enum acl_type { ACL_NONE, ACL_ACCESS, ACL_DEFAULT };

static enum acl_type acl_type(const char *name)
{
	if (!strcmp(name, KVFS_ACL_ACCESS))
		return ACL_ACCESS;
	if (!strcmp(name, KVFS_ACL_DEFAULT))
		return ACL_DEFAULT;
	return ACL_NONE;
}

static size_t acl_key(uint8_t *key, uint64_t ino, enum acl_type type)
{
	const char *name = type == ACL_ACCESS ? KVFS_ACL_ACCESS : KVFS_ACL_DEFAULT;

	return kvfs_key_xattr(key, ino, name, strlen(name));
}

/*
 * Read ACL @type of locked inode @ino into @buf (KVFS_ACL_SIZE_MAX bytes):
 * its size, 0 if it has none, -EUCLEAN if the stored value is not a valid
 * ACL (logged).
 */
static ssize_t acl_read(struct kvfs *fs, uint64_t ino, enum acl_type type, uint8_t *buf)
{
	uint8_t key[KVFS_KEY_MAX];
	ssize_t n = kv_get(fs->db, KV_READ_LATEST, key, acl_key(key, ino, type), buf,
			   KVFS_ACL_SIZE_MAX);

	if (n == -ENOENT)
		return 0;
	if (n < 0)
		return n;
	if ((size_t)n > KVFS_ACL_SIZE_MAX || kvfs_acl_valid(buf, (size_t)n) <= 0) {
		kvfs_log(fs, KV_LOG_ERROR, "%s: inode %llu: corrupt %s (%zd bytes)", fs->store,
			 (unsigned long long)ino,
			 type == ACL_ACCESS ? KVFS_ACL_ACCESS : KVFS_ACL_DEFAULT, n);
		return -EUCLEAN;
	}
	return n;
}

/* Set (@value a valid ACL) or remove (@value NULL or empty) ACL @type. */
static int acl_set(struct kvfs *fs, uint64_t ino, enum acl_type type, const void *value,
		   size_t size, bool kill_sgid, const struct kvfs_done *done)
{
	uint8_t key[KVFS_KEY_MAX], inl[XA_INLINE_CAP], probe;
	size_t klen = acl_key(key, ino, type), ilen;
	struct kvfs_inode in;
	bool store;
	ssize_t n;
	int err = value ? kvfs_acl_valid(value, size) : 0;

	if (err < 0)
		return err;
	store = err > 0;
	kvfs_lock1(fs, ino);
	err = kvfs_inode_read(fs, ino, &in, inl, sizeof(inl), &ilen);
	if (err)
		goto out;
	if (S_ISLNK(in.mode)) {
		err = -EOPNOTSUPP;
		goto out;
	}
	if (type == ACL_DEFAULT && !S_ISDIR(in.mode)) {
		err = store ? -EACCES : 0;
		goto out;
	}
	if (store && type == ACL_ACCESS) {
		mode_t mode = in.mode;

		store = kvfs_acl_equiv_mode(value, size, &mode) > 0;
		if (kill_sgid)
			mode &= ~(mode_t)S_ISGID;
		in.mode = (uint32_t)mode;
	} else if (!store) {
		/* Removing an ACL that is not there changes nothing. */
		n = kv_get(fs->db, KV_READ_LATEST, key, klen, &probe, 0);
		if (n < 0) {
			err = n == -ENOENT ? 0 : (int)n;
			goto out;
		}
	}

	err = xattr_commit(fs, ino, &in, inl, ilen, key, klen, store ? value : NULL, size, done);
out:
	kvfs_unlock1(fs, ino);
	return err;
}

int kvfs_acl_new_inode(struct kvfs *fs, struct kv_batch *b, uint64_t dir,
		       const struct kvfs_inode *dirin, uint64_t ino, struct kvfs_inode *in,
		       mode_t umask)
{
	uint8_t def[KVFS_ACL_SIZE_MAX], acc[KVFS_ACL_SIZE_MAX], key[KVFS_KEY_MAX];
	mode_t mode = in->mode;
	ssize_t n = 0;
	int err = 0;

	if (S_ISLNK(in->mode))
		return 0;
	if (dirin->flags & KVFS_IF_XATTR)
		n = acl_read(fs, dir, ACL_DEFAULT, def);
	if (n < 0)
		return (int)n;
	if (!n) {
		in->mode &= ~(uint32_t)(umask & 0777);
		return 0;
	}
	memcpy(acc, def, (size_t)n);
	if (kvfs_acl_create_masq(acc, (size_t)n, &mode)) {
		err = kv_batch_put(b, key, acl_key(key, ino, ACL_ACCESS), acc, (size_t)n);
		in->flags |= KVFS_IF_XATTR;
	}
	if (!err && S_ISDIR(in->mode)) {
		err = kv_batch_put(b, key, acl_key(key, ino, ACL_DEFAULT), def, (size_t)n);
		in->flags |= KVFS_IF_XATTR;
	}
	in->mode = (uint32_t)mode;
	return err;
}

int kvfs_acl_on_chmod(struct kvfs *fs, struct kv_batch *b, uint64_t ino,
		      const struct kvfs_inode *in)
{
	uint8_t acl[KVFS_ACL_SIZE_MAX], key[KVFS_KEY_MAX];
	ssize_t n;

	if (!(in->flags & KVFS_IF_XATTR) || S_ISLNK(in->mode))
		return 0;
	n = acl_read(fs, ino, ACL_ACCESS, acl);
	if (n <= 0)
		return (int)n;
	kvfs_acl_chmod(acl, (size_t)n, in->mode);
	return kv_batch_put(b, key, acl_key(key, ino, ACL_ACCESS), acl, (size_t)n);
}

/* ---- the calls -------------------------------------------------------------- */

int kvfs_setxattr(struct kvfs *fs, uint64_t ino, const char *name, const void *value, size_t size,
		  int flags, const struct kvfs_done *done)
{
	static const uint8_t empty;
	enum acl_type acl;
	size_t len;
	bool user;
	int err;

	if (flags & ~(XATTR_CREATE | XATTR_REPLACE | KVFS_XATTR_ACL_KILL_SGID))
		return -EINVAL;
	err = name_check(name, &len, &user);
	if (err)
		return err;
	if (size > KVFS_XATTR_SIZE_MAX)
		return -E2BIG;
	acl = acl_type(name);
	if (acl != ACL_NONE)
		return acl_set(fs, ino, acl, value, size, flags & KVFS_XATTR_ACL_KILL_SGID, done);
	return xattr_change(fs, ino, name, len, user, value ? value : &empty, size,
			    flags & (XATTR_CREATE | XATTR_REPLACE), done);
}

int kvfs_removexattr(struct kvfs *fs, uint64_t ino, const char *name, const struct kvfs_done *done)
{
	size_t len;
	bool user;
	int err = name_check(name, &len, &user);

	if (err)
		return err;
	if (acl_type(name) != ACL_NONE)
		return acl_set(fs, ino, acl_type(name), NULL, 0, false, done);
	return xattr_change(fs, ino, name, len, user, NULL, 0, 0, done);
}

ssize_t kvfs_getxattr(struct kvfs *fs, uint64_t ino, const char *name, void *buf, size_t cap)
{
	uint8_t key[KVFS_KEY_MAX], probe;
	struct kvfs_inode in;
	size_t len;
	ssize_t n;
	bool user;
	int err = name_check(name, &len, &user);

	if (err)
		return err;
	n = kv_get(fs->db, KV_READ_LATEST, key, kvfs_key_xattr(key, ino, name, len),
		   cap ? buf : &probe, cap);
	if (n == -ENOENT) {
		/* Absent: tell a missing inode from a missing attribute. */
		err = kvfs_inode_read(fs, ino, &in, NULL, 0, NULL);
		return err ? err : -ENODATA;
	}
	if (n >= 0 && cap && (size_t)n > cap)
		return -ERANGE;
	return n;
}

struct names {
	char *buf;
	size_t cap, len;
	uint64_t ino; /* for messages */
};

static void add_name(struct names *nm, const char *name, size_t len)
{
	if (nm->cap && nm->len + len + 1 <= nm->cap) {
		memcpy(nm->buf + nm->len, name, len);
		nm->buf[nm->len + len] = '\0';
	}
	nm->len += len + 1;
}

static int list_name(struct kvfs *fs, const void *k, size_t klen, void *arg)
{
	struct names *nm = arg;
	struct kvfs_key key;

	if (kvfs_key_parse(k, klen, &key) || key.type != KVFS_K_XATTR) {
		kvfs_log(fs, KV_LOG_ERROR, "%s: inode %llu: corrupt xattr key skipped", fs->store,
			 (unsigned long long)nm->ino);
		return 0;
	}
	add_name(nm, key.name, key.namelen);
	return 0;
}

ssize_t kvfs_listxattr(struct kvfs *fs, uint64_t ino, char *buf, size_t cap)
{
	uint8_t lo[KVFS_KEY_MAX], hi[KVFS_KEY_MAX];
	size_t llen = kvfs_key_prefix(lo, KVFS_K_XATTR, ino);
	size_t hlen = kvfs_key_prefix(hi, KVFS_K_XATTR, ino + 1);
	struct names nm = { .buf = buf, .cap = cap, .ino = ino };
	struct kvfs_inode in;
	int err;

	/* Appended attributes count, as getxattr sees them: no commit wait. */
	err = kvfs_inode_read(fs, ino, &in, NULL, 0, NULL);
	if (!err)
		err = kvfs_scan_latest(fs, lo, llen, hi, hlen, list_name, &nm);
	if (err)
		return err;
	if (cap && nm.len > cap)
		return -ERANGE;
	return (ssize_t)nm.len;
}
