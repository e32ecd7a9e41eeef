/* SPDX-License-Identifier: MIT */
/*
 * env.c - helpers that work over any struct kv_env: loops that hide short
 * reads and writes, and the small file protocols the engine builds on.
 *
 * Every helper calls only the env's ops, never the system directly, so it
 * behaves the same over the POSIX env, the default (io_uring) env and the
 * fault injector, and a fault test exercises exactly the code production
 * runs.
 *
 * Protocols (each returns 0 or the first negative errno):
 *
 *   1. Preallocated file, kv_env_create_zeroed(): open with O_CREAT|O_EXCL,
 *      write @len zero bytes (the env's zero_fill op if it has one, which
 *      the POSIX env does without copying them through the page cache),
 *      fsync the file, fsync its directory. The zeros
 *      are real writes, not ftruncate(): a sparse or fallocate()d file would
 *      allocate (or convert) blocks on the first in-place write, which makes
 *      every later fdatasync a metadata commit. O_EXCL because the caller
 *      names files it believes new (a WAL segment); silently truncating one
 *      that exists could destroy data. On failure the half-made file is
 *      unlinked.
 *
 *   2. Atomic replace, kv_env_write_file_atomic(): write @name.tmp (O_TRUNC,
 *      so a leftover from an earlier crash is simply overwritten), fsync it,
 *      rename it over @name, fsync @dir. A crash at any point leaves either
 *      the complete old file or the complete new one under @name, and at
 *      most a stale @name.tmp that the next call overwrites.
 *
 *   3. Whole small file, kv_env_read_file(): size, then read exactly that
 *      much; -EFBIG beyond @max so a corrupt or hostile file cannot make us
 *      allocate without bound.
 *
 * Invariants:
 *   1. kv_env_write_all() returns 0 only when every byte was accepted by the
 *      env; a pwrite that makes no progress is an error (-EIO), never a
 *      silent loop.
 *   2. kv_env_read_all() never returns a partial buffer as success: a file
 *      that ends first is -ENODATA, which callers report as a truncated
 *      file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"

/* Zeros for kv_env_create_zeroed(); large enough to keep the write count low. */
#define ZERO_CHUNK (64u << 10)
static const unsigned char zero_chunk[ZERO_CHUNK];

int kv_env_write_all(struct kv_file *f, const void *buf, size_t len, uint64_t off)
{
	const unsigned char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = f->env->ops->pwrite(f, p, len, off);
		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EIO; /* no progress: invariant 1 */
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int kv_env_read_all(struct kv_file *f, void *buf, size_t len, uint64_t off)
{
	unsigned char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = f->env->ops->pread(f, p, len, off);
		if (n < 0)
			return (int)n;
		if (n == 0)
			return -ENODATA; /* invariant 2 */
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* The directory holding @path ("." for a bare name), malloc'd; NULL if out of memory. */
static char *parent_dir(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

static int write_zeros(struct kv_file *f, uint64_t len)
{
	uint64_t off = 0;
	size_t n;
	int ret;

	if (f->env->ops->zero_fill)
		return f->env->ops->zero_fill(f, len);
	while (off < len) {
		n = len - off < ZERO_CHUNK ? (size_t)(len - off) : ZERO_CHUNK;
		ret = kv_env_write_all(f, zero_chunk, n, off);
		if (ret)
			return ret;
		off += n;
	}
	return 0;
}

int kv_env_create_zeroed(struct kv_env *env, const char *path, uint64_t len, struct kv_file **out)
{
	struct kv_file *f = NULL;
	char *dir;
	int ret;

	dir = parent_dir(path);
	if (!dir)
		return -ENOMEM;
	ret = env->ops->open(env, path, O_RDWR | O_CREAT | O_EXCL, 0644, &f);
	if (ret)
		goto out;
	ret = write_zeros(f, len);
	if (!ret)
		ret = f->env->ops->sync(f, 0); /* fsync: the size is metadata */
	if (!ret)
		ret = env->ops->sync_dir(env, dir);
	if (ret) {
		f->env->ops->close(f);
		env->ops->unlink(env, path); /* best effort; we made it (O_EXCL) */
		f = NULL;
	}
out:
	free(dir);
	*out = f;
	return ret;
}

int kv_env_write_file_atomic(struct kv_env *env, const char *dir, const char *name, const void *buf,
			     size_t len)
{
	struct kv_file *f = NULL;
	char *path = NULL, *tmp = NULL;
	int ret, ret2;

	if (asprintf(&path, "%s/%s", dir, name) < 0)
		return -ENOMEM;
	if (asprintf(&tmp, "%s.tmp", path) < 0) {
		tmp = NULL;
		ret = -ENOMEM;
		goto out;
	}
	ret = env->ops->open(env, tmp, O_RDWR | O_CREAT | O_TRUNC, 0644, &f);
	if (ret)
		goto out;
	ret = kv_env_write_all(f, buf, len, 0);
	if (!ret)
		ret = f->env->ops->sync(f, 0);
	ret2 = f->env->ops->close(f);
	if (!ret)
		ret = ret2;
	if (!ret)
		ret = env->ops->rename(env, tmp, path);
	if (ret) {
		env->ops->unlink(env, tmp); /* best effort; @path is untouched */
		goto out;
	}
	ret = env->ops->sync_dir(env, dir);
out:
	free(tmp);
	free(path);
	return ret;
}

int kv_env_read_file(struct kv_env *env, const char *path, size_t max, void **buf, size_t *len)
{
	struct kv_file *f;
	uint64_t size;
	void *data = NULL;
	int ret;

	*buf = NULL;
	*len = 0;
	ret = env->ops->open(env, path, O_RDONLY, 0, &f);
	if (ret)
		return ret;
	ret = f->env->ops->size(f, &size);
	if (ret)
		goto out;
	if (size > max) {
		ret = -EFBIG;
		goto out;
	}
	data = malloc(size ? (size_t)size : 1);
	if (!data) {
		ret = -ENOMEM;
		goto out;
	}
	ret = kv_env_read_all(f, data, (size_t)size, 0);
	if (ret)
		goto out;
	*buf = data;
	*len = (size_t)size;
	data = NULL;
out:
	free(data);
	f->env->ops->close(f);
	return ret;
}
