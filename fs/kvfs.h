/* SPDX-License-Identifier: MIT */
/*
 * kvfs: the filesystem as a library, without a kernel.
 *
 * Every namespace and data operation the FUSE adapter (fs/fuse.c) needs,
 * on plain C types: inode numbers, names, struct stat. The daemon, mkfs.kvfs,
 * fsck.kvfs and the tests all go through this header (and fs/schema.h for
 * the key schema); only fs/fuse.c includes fuse_lowlevel.h.
 *
 * Conventions
 * - Functions return 0 (or a byte count) on success and a negative errno
 *   on failure, the code POSIX and Linux give for the same case (ENOENT,
 *   EEXIST, ENOTDIR, EISDIR, ENOTEMPTY, ENAMETOOLONG, EINVAL, EPERM, EXDEV,
 *   ENOSPC, EIO ...).
 * - Permission checks are the kernel's (the daemon mounts with
 *   default_permissions); the library enforces what the kernel cannot:
 *   file types, emptiness, loops, name lengths, link counts.
 * - Operations that write take an optional struct kvfs_done. With NULL the
 *   call returns once the write is acknowledged under the mount's durability
 *   mode. With a kvfs_done, a call that has written returns KVFS_PENDING
 *   and done->fn(done->arg, status) is called exactly once when the write is
 *   acknowledged: possibly before the call returns (batch durability: at
 *   append), possibly later from an engine thread (sync durability: when
 *   its group commit lands). Every output parameter is filled before the
 *   write is appended, so the callback may use them. A call that returns
 *   anything other than KVFS_PENDING never calls done->fn.
 * - Readers (lookup, getattr, read, readdir, getxattr) take no lock a writer
 *   holds across I/O; they read the newest appended version of each key.
 */
#ifndef KVFS_H
#define KVFS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KVFS_ROOT_INO 1ull
#define KVFS_NAME_MAX 255u     /* bytes in one name */
#define KVFS_SYMLINK_MAX 4095u /* bytes in a symlink target */
#define KVFS_XATTR_NAME_MAX 255u
#define KVFS_XATTR_SIZE_MAX 65536u
#define KVFS_PENDING 1 /* see "Conventions" */

struct kvfs;
struct kv_env;

enum kvfs_durability {
	KVFS_DUR_BATCH = 0, /* acknowledged at append; fsync & co. wait */
	KVFS_DUR_SYNC,	    /* acknowledged once durable */
};

struct kvfs_options {
	enum kvfs_durability durability;
	size_t block_cache_size; /* bytes; 0 = the engine's default */
	size_t log_buffer_size;	 /* bytes per memtable; 0 = the engine's default */
	int read_only;		 /* refuse every write with -EROFS */
	/* Engine log messages; NULL = stderr. */
	void (*log)(void *ctx, int level, const char *msg);
	void *log_ctx;
	struct kv_env *env; /* the engine's file I/O; NULL = the real one (tests) */
};
void kvfs_options_init(struct kvfs_options *o);

struct kvfs_mkfs_options {
	uint32_t block_size; /* power of two in [1024, 65536]; 0 = 4096 */
	const char *label;   /* at most 63 bytes; NULL = none */
	int force;	     /* -f: wipe an existing store / non-empty dir */
	uid_t root_uid;	     /* owner of / and lost+found */
	gid_t root_gid;
};

/*
 * Make a new filesystem in directory @store (created if missing): superblock,
 * root directory (ino 1, mode 0755) and /lost+found (mode 0700). Refuses
 * (-EEXIST) a directory that already holds a store or any other file unless
 * o->force. On failure @err gets a one-line reason naming what is wrong.
 */
int kvfs_mkfs(const char *store, const struct kvfs_mkfs_options *o, char *err, size_t errlen);

/*
 * Mount-time open of @store. Errors: -ENOENT (no such directory or no store
 * in it), -EMEDIUMTYPE (not a kvfs store), -EPROTONOSUPPORT (a newer
 * format), -EBUSY (open elsewhere: already mounted), -EUCLEAN (corrupt).
 * @err gets a one-line reason. Reclaims the orphans a crash left behind.
 */
int kvfs_open(const char *store, const struct kvfs_options *o, struct kvfs **out, char *err,
	      size_t errlen);
/* Make everything durable and close. Returns the first error. */
int kvfs_close(struct kvfs *fs);
/* Wait until every operation acknowledged before the call is durable
 * (fsync, fdatasync, fsyncdir, syncfs). */
int kvfs_sync(struct kvfs *fs);

/* What the superblock says. */
struct kvfs_info {
	uint32_t block_size;
	uint32_t inline_max; /* files up to this size keep their data inline */
	uint32_t format_version;
	char label[64];
	uint8_t uuid[16];
};
void kvfs_info(struct kvfs *fs, struct kvfs_info *out);

/* The caller of an operation (from the FUSE request context). */
struct kvfs_cred {
	uid_t uid;
	gid_t gid;
	mode_t umask; /* the caller's umask: applied to a new inode unless its
		       * directory has a default ACL (the daemon runs with
		       * FUSE_CAP_DONT_MASK); 0 = none */
};

struct kvfs_done {
	void (*fn)(void *arg, int status);
	void *arg;
};

/* An inode the kernel may now cache: ino, generation and attributes. */
struct kvfs_entry {
	uint64_t ino;
	uint64_t generation;
	struct stat attr;
};

/* ---- inode references (FUSE lookup counts and open files) ------------ */

/*
 * Every call that fills a struct kvfs_entry (lookup, create, mknod, mkdir,
 * symlink, link) takes one lookup reference on the inode; kvfs_forget drops
 * @n of them. kvfs_open_file/kvfs_release bracket an open file. An inode
 * whose link count is 0 is reclaimed (data, xattrs, inode, orphan record)
 * once it has neither references nor open files.
 */
void kvfs_forget(struct kvfs *fs, uint64_t ino, uint64_t n);

/* ---- namespace -------------------------------------------------------- */

int kvfs_lookup(struct kvfs *fs, uint64_t parent, const char *name, struct kvfs_entry *e);
int kvfs_getattr(struct kvfs *fs, uint64_t ino, struct stat *st);

/* Which fields of kvfs_setattr's @attr to apply (FUSE_SET_ATTR_* values). */
enum {
	KVFS_SET_MODE = 1 << 0,
	KVFS_SET_UID = 1 << 1,
	KVFS_SET_GID = 1 << 2,
	KVFS_SET_SIZE = 1 << 3,
	KVFS_SET_ATIME = 1 << 4,
	KVFS_SET_MTIME = 1 << 5,
	KVFS_SET_ATIME_NOW = 1 << 7,
	KVFS_SET_MTIME_NOW = 1 << 8,
	KVFS_SET_CTIME = 1 << 10,
	KVFS_SET_KILL_SUIDGID = 1 << 11,
};
/*
 * chmod/chown/truncate/utimensat in one: apply the @to_set fields of @attr
 * (st_mode's permission bits, st_uid, st_gid, st_size, st_atim, st_mtim,
 * st_ctim). A uid or gid change (by any caller, root too, as on Linux) or
 * KVFS_SET_KILL_SUIDGID clears S_ISUID and (if group-executable) S_ISGID of
 * a non-directory.
 * ctime becomes now unless KVFS_SET_CTIME. @out gets the new attributes.
 */
int kvfs_setattr(struct kvfs *fs, const struct kvfs_cred *cr, uint64_t ino, const struct stat *attr,
		 int to_set, struct stat *out, const struct kvfs_done *done);

int kvfs_readlink(struct kvfs *fs, uint64_t ino, char *buf, size_t cap); /* length */
int kvfs_mknod(struct kvfs *fs, const struct kvfs_cred *cr, uint64_t parent, const char *name,
	       mode_t mode, dev_t rdev, struct kvfs_entry *e, const struct kvfs_done *done);
int kvfs_mkdir(struct kvfs *fs, const struct kvfs_cred *cr, uint64_t parent, const char *name,
	       mode_t mode, struct kvfs_entry *e, const struct kvfs_done *done);
int kvfs_symlink(struct kvfs *fs, const struct kvfs_cred *cr, uint64_t parent, const char *name,
		 const char *target, struct kvfs_entry *e, const struct kvfs_done *done);
int kvfs_link(struct kvfs *fs, uint64_t ino, uint64_t newparent, const char *newname,
	      struct kvfs_entry *e, const struct kvfs_done *done);
int kvfs_unlink(struct kvfs *fs, uint64_t parent, const char *name, const struct kvfs_done *done);
int kvfs_rmdir(struct kvfs *fs, uint64_t parent, const char *name, const struct kvfs_done *done);

#define KVFS_RENAME_NOREPLACE 1u /* = RENAME_NOREPLACE */
#define KVFS_RENAME_EXCHANGE 2u	 /* = RENAME_EXCHANGE */
int kvfs_rename(struct kvfs *fs, uint64_t parent, const char *name, uint64_t newparent,
		const char *newname, unsigned flags, const struct kvfs_done *done);

/* ---- files ------------------------------------------------------------ */

/*
 * create = mknod of a regular file + open, atomically; O_EXCL is implied by
 * the kernel's lookup, but an existing name still gets -EEXIST. Opens count
 * as in kvfs_open_file.
 */
int kvfs_create(struct kvfs *fs, const struct kvfs_cred *cr, uint64_t parent, const char *name,
		mode_t mode, int flags, struct kvfs_entry *e, const struct kvfs_done *done);
/* Open: O_TRUNC truncates (a write, hence @done). */
int kvfs_open_file(struct kvfs *fs, uint64_t ino, int flags, const struct kvfs_done *done);
void kvfs_release(struct kvfs *fs, uint64_t ino);

/* Read up to @size bytes at @off into @buf; returns bytes read (0 at EOF);
 * holes read as zeros. Updates atime relatime-style. */
ssize_t kvfs_read(struct kvfs *fs, uint64_t ino, uint64_t off, size_t size, void *buf);
/* Write @size bytes at @off (O_APPEND is the kernel's business under the
 * writeback cache; the daemon passes the final offset). Returns the bytes
 * written, min(@size, INT64_MAX - @off), or KVFS_PENDING (then the count is
 * that same number). @kill_suid as KVFS_SET_KILL_SUIDGID. -EFBIG at or past
 * the largest file size (INT64_MAX, the kernel's limit for FUSE), -EINVAL
 * for an offset above it. A write larger than one engine batch may go out
 * as several batches (a crash can keep a prefix of them). */
ssize_t kvfs_write(struct kvfs *fs, uint64_t ino, uint64_t off, const void *buf, size_t size,
		   int kill_suid, const struct kvfs_done *done);

/* ---- directories ------------------------------------------------------ */

/*
 * One directory entry for kvfs_readdir's callback. @off is the cookie to
 * pass back to resume after this entry: stable across changes to the
 * directory (1 after ".", 2 after "..", then the entry's 63-bit name hash),
 * so that every entry present for the whole listing is returned exactly
 * once. With @plus, @e is a full entry (and the callback, if it keeps the
 * entry, must return with *took_ref = 1 so the lookup reference stays; the
 * library drops the reference otherwise).
 */
struct kvfs_dirent {
	const char *name;
	size_t namelen;
	uint64_t ino;
	unsigned type; /* DT_* */
	uint64_t off;
	const struct kvfs_entry *e; /* only with plus */
};
/* Return nonzero to stop (the entry was not taken). */
typedef int (*kvfs_dirent_fn)(void *arg, const struct kvfs_dirent *d, int *took_ref);
int kvfs_readdir(struct kvfs *fs, uint64_t ino, uint64_t off, int plus, kvfs_dirent_fn fn,
		 void *arg);

int kvfs_statfs(struct kvfs *fs, struct statvfs *st);

/* ---- extended attributes ---------------------------------------------- */

/* @flags: XATTR_CREATE / XATTR_REPLACE. The names system.posix_acl_access
 * and system.posix_acl_default are POSIX ACLs, validated and tied to the
 * mode (fs/acl.h, also for the KVFS_XATTR_ACL_KILL_SGID flag). */
int kvfs_setxattr(struct kvfs *fs, uint64_t ino, const char *name, const void *value, size_t size,
		  int flags, const struct kvfs_done *done);
/* Returns the value's size; copies it if @cap is big enough, -ERANGE if not
 * (cap 0: size only). -ENODATA if absent. */
ssize_t kvfs_getxattr(struct kvfs *fs, uint64_t ino, const char *name, void *buf, size_t cap);
/* NUL-separated names; same size protocol as getxattr. */
ssize_t kvfs_listxattr(struct kvfs *fs, uint64_t ino, char *buf, size_t cap);
int kvfs_removexattr(struct kvfs *fs, uint64_t ino, const char *name, const struct kvfs_done *done);

/* ---- allocation, holes, copies ---------------------------------------- */

/*
 * fs/extent.c. A block of a file is stored (data), a hole (no key, reads as
 * zeros), or allocated but unwritten (a zero-length value: reads as zeros,
 * counts in st_blocks, reported as data by SEEK_DATA); see fs/FORMAT.md.
 * kvfs cannot reserve space ahead (every write of an LSM store takes new
 * space), so unlike fallocate(2)'s promise a later write into an allocated
 * range may still fail with -ENOSPC.
 */

/* fallocate modes: the values of FALLOC_FL_KEEP_SIZE and _PUNCH_HOLE. */
#define KVFS_FALLOC_KEEP_SIZE 0x01
#define KVFS_FALLOC_PUNCH_HOLE 0x02

/*
 * fallocate(2) on regular file @ino, @len bytes at @off. Modes:
 * - 0: allocate every hole of the range (zero-length blocks) and grow the
 *   size to @off + @len if that is larger (mtime too then; ctime always).
 * - KVFS_FALLOC_KEEP_SIZE: the same without changing the size; the part of
 *   the range at or past EOF is not allocated (the format keeps no block
 *   past EOF, see fs/FORMAT.md), so only what lies inside the file is.
 * - KVFS_FALLOC_PUNCH_HOLE | KVFS_FALLOC_KEEP_SIZE: the range reads as
 *   zeros, the size is unchanged; blocks wholly inside it are deleted (a
 *   range tombstone beyond a few: O(1) whatever the range), blocks at its
 *   edges are zeroed in place and stay allocated. One batch, atomic.
 * An inline file that gets blocks allocated moves to blocks first (same
 * bytes). Allocation appends one batch per 4096 blocks, in order, under
 * the inode's lock: a crash may keep a prefix of them (each one consistent:
 * size, st_blocks and keys agree). Errors: -EINVAL (@off above INT64_MAX, @len 0 or
 * above INT64_MAX), -EOPNOTSUPP (any other mode, PUNCH_HOLE without
 * KEEP_SIZE), -EFBIG (@off + @len past INT64_MAX), -EISDIR, -ENODEV (not a
 * regular file), -EROFS, -ENOENT, -ENOSPC/-EIO from the store.
 */
int kvfs_fallocate(struct kvfs *fs, uint64_t ino, int mode, uint64_t off, uint64_t len,
		   const struct kvfs_done *done);

/*
 * lseek(2) SEEK_DATA (@whence 3) or SEEK_HOLE (@whence 4) from @off, at
 * block granularity (an inline file is all data): *out gets the offset of
 * the first data (hole) byte at or after @off; EOF counts as a hole.
 * -ENXIO if @off is at or past EOF (or no data follows it, SEEK_DATA),
 * -EINVAL for another @whence or a file that is not regular. Takes no lock;
 * a sparse file is scanned after kv_sync (O(blocks stored after @off up to
 * the answer)); a dense or inline one is answered from its inode.
 */
int kvfs_lseek(struct kvfs *fs, uint64_t ino, uint64_t off, int whence, uint64_t *out);

/*
 * copy_file_range(2): copy min(@len, size_in - @off_in) bytes of @ino_in at
 * @off_in to @ino_out at @off_out, inside the library (the data never
 * leaves the daemon). Where the two offsets have the same alignment in a
 * block, whole blocks go key to key (a hole stays a hole, an allocated
 * block stays allocated); partial blocks are merged as a write would.
 * The destination grows as by kvfs_write; @kill_suid as there. *copied gets
 * the count before anything is appended. Without @done, returns the bytes
 * copied (short if a later batch failed); with @done, 0 if there was
 * nothing to copy, else KVFS_PENDING. Copies of more than 128 KiB go out as
 * several batches in order (a crash can keep a prefix). Errors: -EINVAL
 * (@flags not 0, an offset above INT64_MAX, overlapping ranges of one file,
 * a file that is not regular), -EISDIR, -EFBIG (@off_out at INT64_MAX),
 * -EROFS, -ENOENT, -ENOSPC/-EIO.
 */
ssize_t kvfs_copy_file_range(struct kvfs *fs, uint64_t ino_in, uint64_t off_in, uint64_t ino_out,
			     uint64_t off_out, size_t len, unsigned flags, int kill_suid,
			     size_t *copied, const struct kvfs_done *done);

#ifdef __cplusplus
}
#endif
#endif /* KVFS_H */
