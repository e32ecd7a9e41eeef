/* SPDX-License-Identifier: MIT */
/*
 * env.h - the one small interface through which libkv does all file I/O.
 *
 * Three implementations:
 *   env_posix.c  plain POSIX calls (open, pread, pwrite, fdatasync, ...);
 *   env_uring.c  the WAL commit (write_durable) as one io_uring write linked
 *                to one fdatasync; the only file in kv/ that includes
 *                liburing.h. The default env is posix + this commit path;
 *   env_fault.c  a wrapper that injects faults (EIO on sync, ENOSPC, short
 *                writes, a crash point) and remembers unsynced state so a
 *                power cut can be simulated (kv_fault_env_power_cut).
 *
 * Conventions: every call returns 0 / a byte count, or a negative errno.
 * Paths are absolute or relative to the process's cwd, as given by the
 * engine. A struct kv_file is used by one thread at a time except where a
 * call says otherwise (pread and write_durable may run concurrently with
 * pread on the same file).
 */
#ifndef KV_ENV_H
#define KV_ENV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kv.h"

struct kv_file {
	struct kv_env *env; /* [immutable] the env that opened it */
};

struct kv_env_ops {
	/* open(2) flags: O_RDONLY/O_RDWR/O_CREAT/O_EXCL/O_TRUNC. */
	int (*open)(struct kv_env *env, const char *path, int flags, mode_t mode,
		    struct kv_file **out);
	int (*close)(struct kv_file *f);
	/* May return fewer bytes than asked (short read at end of file). */
	ssize_t (*pread)(struct kv_file *f, void *buf, size_t len, uint64_t off);
	/* May return fewer bytes than asked (short write); callers loop. */
	ssize_t (*pwrite)(struct kv_file *f, const void *buf, size_t len, uint64_t off);
	/* fsync (datasync == 0) or fdatasync (datasync != 0). */
	int (*sync)(struct kv_file *f, int datasync);
	/* Write all @len bytes at @off, then fdatasync: the WAL commit. Short
	 * writes are continued; returns 0 only when the bytes are durable. */
	int (*write_durable)(struct kv_file *f, const void *buf, size_t len, uint64_t off);
	int (*size)(struct kv_file *f, uint64_t *size);
	int (*truncate)(struct kv_file *f, uint64_t size);
	/* Exclusive advisory lock for the life of the file: -EBUSY if held. */
	int (*lock)(struct kv_file *f);
	/* Optional (NULL: kv_env_create_zeroed() writes zeros with pwrite).
	 * Write @len zero bytes at offset 0 of a new, empty file, as cheaply
	 * as the env can, and leave them readable; the caller syncs. */
	int (*zero_fill)(struct kv_file *f, uint64_t len);

	int (*rename)(struct kv_env *env, const char *from, const char *to);
	int (*unlink)(struct kv_env *env, const char *path);
	int (*mkdir)(struct kv_env *env, const char *path, mode_t mode);
	/* fsync of a directory: makes creates, renames, unlinks in it durable. */
	int (*sync_dir)(struct kv_env *env, const char *path);
	/* Calls @cb for each entry except "." and ".."; stops at and returns
	 * the first non-zero value @cb returns. -ENOENT if no such dir. */
	int (*list_dir)(struct kv_env *env, const char *path,
			int (*cb)(void *arg, const char *name), void *arg);
	/* 0 if @path exists, -ENOENT if not; *is_dir set when not NULL. */
	int (*exists)(struct kv_env *env, const char *path, int *is_dir);
};

struct kv_env {
	const struct kv_env_ops *ops;
};

/* Write all of @len at @off, looping over short writes; -ENOSPC etc. */
int kv_env_write_all(struct kv_file *f, const void *buf, size_t len, uint64_t off);
/* Read exactly @len at @off; -ENODATA if the file ends first. */
int kv_env_read_all(struct kv_file *f, void *buf, size_t len, uint64_t off);
/* Create @path with @len zero bytes, fsync it and its directory: a
 * preallocated file whose later in-place writes need no metadata update. */
int kv_env_create_zeroed(struct kv_env *env, const char *path, uint64_t len, struct kv_file **out);
/* Crash-safe replace: write @path.tmp, fsync, rename over @path, fsync dir. */
int kv_env_write_file_atomic(struct kv_env *env, const char *dir, const char *name, const void *buf,
			     size_t len);
/* Read a whole small file into a malloc'd buffer (at most @max bytes). */
int kv_env_read_file(struct kv_env *env, const char *path, size_t max, void **buf, size_t *len);

/* The POSIX env (used by the default env for everything but commits). */
struct kv_env *kv_env_posix(void);
/* write_durable through io_uring on a posix file; 0 or -errno. Implemented
 * in env_uring.c; falls back to pwrite + fdatasync if io_uring is missing. */
int kv_uring_write_durable(int fd, const void *buf, size_t len, uint64_t off);
/* The fd under a posix kv_file (for env_uring.c only). */
int kv_env_posix_fd(struct kv_file *f);

#endif /* KV_ENV_H */
