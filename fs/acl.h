/* SPDX-License-Identifier: MIT */
/*
 * POSIX ACLs: the bytes Linux passes through the attributes
 * system.posix_acl_access and system.posix_acl_default, and what a
 * filesystem does with them. kvfs stores an ACL as that attribute's value,
 * unchanged (fs/FORMAT.md, "Extended attributes and POSIX ACLs").
 *
 * The value (Linux's posix_acl_xattr format, little-endian):
 *   header  le32 version, 2
 *   entries le16 tag, le16 perm (bits 4 r, 2 w, 1 x), le32 id (a uid for
 *           USER, a gid for GROUP; unused, 0xffffffff, for the others)
 * A well-formed ACL: the entries sorted by tag in the order USER_OBJ, USER...,
 * GROUP_OBJ, GROUP..., MASK, OTHER; exactly one USER_OBJ, GROUP_OBJ and
 * OTHER; USER and GROUP ids strictly increasing (sorted, no duplicate); a
 * MASK required when there is a USER or GROUP entry (allowed without, as
 * Linux allows it).
 *
 * The first half of this header is pure functions on such values (fs/acl.c,
 * no store, unit-tested alone). The second half is the library's side
 * (fs/xattr.c): what the FUSE kernel with FUSE_CAP_POSIX_ACL leaves to the
 * daemon. The kernel enforces ACLs in its permission checks and validates
 * what a user sets, but it neither derives the mode from an access ACL, nor
 * applies a directory's default ACL to a new inode, nor updates the ACL on
 * chmod: Linux filesystems do that in posix_acl_update_mode(),
 * posix_acl_create() and posix_acl_chmod(), and kvfs does it here, each in
 * the batch of the operation that causes it.
 */
#ifndef KVFS_ACL_H
#define KVFS_ACL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KVFS_ACL_ACCESS "system.posix_acl_access"
#define KVFS_ACL_DEFAULT "system.posix_acl_default"

#define KVFS_ACL_VERSION 2u
#define KVFS_ACL_HEADER_SIZE 4u
#define KVFS_ACL_ENTRY_SIZE 8u
/* The FUSE kernel reads an ACL into one page (and refuses to set a larger
 * one, -E2BIG): so do we. 511 entries. */
#define KVFS_ACL_SIZE_MAX 4096u

enum kvfs_acl_tag {
	KVFS_ACL_USER_OBJ = 0x01,
	KVFS_ACL_USER = 0x02,
	KVFS_ACL_GROUP_OBJ = 0x04,
	KVFS_ACL_GROUP = 0x08,
	KVFS_ACL_MASK = 0x10,
	KVFS_ACL_OTHER = 0x20,
};
#define KVFS_ACL_UNDEFINED_ID 0xffffffffu

/*
 * kvfs_setxattr flag for an access ACL: the setter is neither in the
 * file's group nor privileged, so S_ISGID goes (the kernel's
 * FUSE_SETXATTR_ACL_KILL_SGID, which libfuse 3.14 does not pass on: the
 * FUSE adapter works it out itself).
 */
#define KVFS_XATTR_ACL_KILL_SGID 0x100

/* ---- the value format (pure) ------------------------------------------ */

/*
 * Check @size bytes at @acl: the number of entries (0: a bare header or an
 * empty value, which Linux takes as "remove the ACL"), -EOPNOTSUPP for a
 * version other than 2 (as Linux), -EINVAL for anything else malformed (a
 * size that is not a header plus whole entries, an unknown tag or
 * permission bit, entries out of order, a missing or repeated USER_OBJ,
 * GROUP_OBJ, OTHER, a named entry without a MASK), -E2BIG above
 * KVFS_ACL_SIZE_MAX.
 */
int kvfs_acl_valid(const void *acl, size_t size);

/*
 * The mode an access ACL (valid) stands for: sets the rwx bits of *mode
 * (owner from USER_OBJ, group from MASK if there is one else GROUP_OBJ,
 * other from OTHER), leaving the rest. Returns 0 if the ACL says no more
 * than that mode (it is then stored as the mode alone), 1 if it has named
 * entries or a MASK.
 */
int kvfs_acl_equiv_mode(const void *acl, size_t size, mode_t *mode);

/* chmod: set USER_OBJ, MASK (or GROUP_OBJ without one) and OTHER of an
 * access ACL (valid) from @mode's rwx bits, in place. */
void kvfs_acl_chmod(void *acl, size_t size, mode_t mode);

/*
 * A new inode's access ACL from its directory's default ACL: @acl (valid,
 * a copy of the default ACL) is restricted in place by the create mode
 * *mode (USER_OBJ by the owner bits, MASK or else GROUP_OBJ by the group
 * bits, OTHER by the other bits), and *mode's rwx bits by the ACL. Returns
 * as kvfs_acl_equiv_mode: 0 when the result is just the mode.
 */
int kvfs_acl_create_masq(void *acl, size_t size, mode_t *mode);

/* ---- the library's side (fs/xattr.c) ------------------------------------ */

struct kvfs;
struct kvfs_inode;
struct kv_batch;

/*
 * Permissions of a new inode @in (number @ino; in->mode the type and the
 * create mode, the umask not applied) made in directory @dir (stripe lock
 * held; @dirin its inode). If @dir has a default ACL, the new inode gets
 * the access ACL it implies (kvfs_acl_create_masq; only the mode when that
 * is all it says) and, for a directory, the default ACL too, as keys added
 * to @b (in->flags gains KVFS_IF_XATTR). Otherwise @umask clears mode
 * bits. Symlinks are left alone. -EUCLEAN for a corrupt default ACL.
 */
int kvfs_acl_new_inode(struct kvfs *fs, struct kv_batch *b, uint64_t dir,
		       const struct kvfs_inode *dirin, uint64_t ino, struct kvfs_inode *in,
		       mode_t umask);

/*
 * After a chmod of @ino (stripe lock held; @in its inode with the new
 * mode): if it has an access ACL, the ACL updated by kvfs_acl_chmod goes
 * into @b.
 */
int kvfs_acl_on_chmod(struct kvfs *fs, struct kv_batch *b, uint64_t ino,
		      const struct kvfs_inode *in);

#endif /* KVFS_ACL_H */
