/* SPDX-License-Identifier: MIT */
/*
 * test_env.c - the file I/O environments (kv/env*.c).
 *
 * What is checked, and how the answer is observed:
 *   - posix env: every op round-trips, errors are negative errno, a second
 *     lock of the same file in this process is -EBUSY;
 *   - helpers: write_all over short writes (fault env with short_writes),
 *     create_zeroed, write_file_atomic, read_file's limit;
 *   - io_uring commit: bytes land (read back with plain POSIX), several
 *     threads commit at once (one ring each), and the short-write path: on
 *     a tiny tmpfs a commit that only partly fits returns -ENOSPC and the
 *     part that fit is on disk (skipped if tmpfs cannot be mounted);
 *   - fault env rules: each fires at the right call and stays fired;
 *   - power cut: the state on disk afterwards (read with the plain posix
 *     env, not through the fault env) is exactly the durable state: synced
 *     bytes kept, unsynced undone, unsynced creates removed, unsynced
 *     renames and unlinks undone; torn mode keeps whole sectors and can keep
 *     a later one while losing an earlier one; settle forgets.
 * Every test works in its own scratch directory, removed by its teardown
 * (which cmocka runs even when the test fails); the tmpfs is always
 * unmounted there too.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "env.h"
#include "kv_test_util.h"

struct fx {
	char *dir;		 /* scratch directory (or tmpfs mount point) */
	struct kv_fault_env *fe; /* fault tests only */
	struct kv_env *env;	 /* the env under test */
	int mounted;
};

/* "@dir/@name" in one of a few rotating buffers (tests are single-threaded). */
static const char *fxp(struct fx *x, const char *name)
{
	static char bufs[8][PATH_MAX];
	static int next;
	char *b = bufs[next++ % 8];

	snprintf(b, PATH_MAX, "%s/%s", x->dir, name);
	return b;
}

static int dir_setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));

	if (!x)
		return -1;
	x->dir = kvt_mkdtemp("env");
	x->env = kv_env_posix();
	*state = x;
	return 0;
}

static int fault_setup(void **state)
{
	struct fx *x;

	if (dir_setup(state))
		return -1;
	x = *state;
	if (kv_fault_env_create(kv_env_posix(), &x->fe))
		return -1;
	x->env = kv_fault_env_env(x->fe);
	return 0;
}

/* A 64 KiB tmpfs on the scratch directory, if we may mount one. */
static int tmpfs_setup(void **state)
{
	struct fx *x;

	if (dir_setup(state))
		return -1;
	x = *state;
	x->mounted = mount("tmpfs", x->dir, "tmpfs", 0, "size=64k,mode=0700") == 0;
	x->env = kv_env_default();
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *x = *state;

	kv_fault_env_destroy(x->fe);
	if (x->mounted && umount(x->dir))
		umount2(x->dir, MNT_DETACH); /* a failed test left a file open */
	kvt_rmrf(x->dir);
	free(x->dir);
	free(x);
	return 0;
}

/* ---- small helpers ------------------------------------------------------ */

static struct kv_file *xopen(struct kv_env *env, const char *path, int flags)
{
	struct kv_file *f = NULL;

	assert_int_equal(env->ops->open(env, path, flags, 0644, &f), 0);
	return f;
}

static void xclose(struct kv_file *f)
{
	assert_int_equal(f->env->ops->close(f), 0);
}

/* Create @path with @data, fsync it and its directory: durable. */
static void put_durable(struct fx *x, const char *name, const char *data)
{
	struct kv_file *f = xopen(x->env, fxp(x, name), O_RDWR | O_CREAT | O_TRUNC);

	assert_int_equal(kv_env_write_all(f, data, strlen(data), 0), 0);
	assert_int_equal(f->env->ops->sync(f, 0), 0);
	xclose(f);
	assert_int_equal(x->env->ops->sync_dir(x->env, x->dir), 0);
}

/* The file's bytes as they are on disk, read around any fault env. */
static void disk_expect(const char *path, const void *data, size_t len)
{
	void *buf;
	size_t n;

	assert_int_equal(kv_env_read_file(kv_env_posix(), path, 1 << 30, &buf, &n), 0);
	assert_int_equal(n, len);
	assert_memory_equal(buf, data, len);
	free(buf);
}

static void disk_expect_str(const char *path, const char *s)
{
	disk_expect(path, s, strlen(s));
}

static int disk_exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static void fill_random(void *buf, size_t len, uint64_t seed)
{
	unsigned char *p = buf;
	size_t i;

	for (i = 0; i < len; i++)
		p[i] = (unsigned char)kvt_rand(&seed);
}

/* ---- posix env and helpers ---------------------------------------------- */

static int count_cb(void *arg, const char *name)
{
	(*(int *)arg)++;
	return 0;
}

static int stop_cb(void *arg, const char *name)
{
	return 7;
}

static void test_posix_file_ops(void **state)
{
	struct fx *x = *state;
	const struct kv_env_ops *o = x->env->ops;
	struct kv_file *f, *g;
	char buf[64] = { 0 };
	uint64_t size;

	f = xopen(x->env, fxp(x, "a"), O_RDWR | O_CREAT | O_EXCL);
	assert_true(kv_env_posix_fd(f) >= 0);
	assert_int_equal(o->pwrite(f, "hello world", 11, 0), 11);
	assert_int_equal(o->pwrite(f, "XY", 2, 20), 2);
	assert_int_equal(o->size(f, &size), 0);
	assert_int_equal(size, 22);
	assert_int_equal(o->pread(f, buf, sizeof(buf), 0), 22);
	assert_memory_equal(buf, "hello world\0\0\0\0\0\0\0\0\0XY", 22);
	assert_int_equal(o->pread(f, buf, sizeof(buf), 100), 0);
	assert_int_equal(kv_env_read_all(f, buf, 10, 15), -ENODATA);
	assert_int_equal(kv_env_read_all(f, buf, 5, 6), 0);
	assert_memory_equal(buf, "world", 5);
	assert_int_equal(o->sync(f, 0), 0);
	assert_int_equal(o->sync(f, 1), 0);
	assert_int_equal(o->write_durable(f, "HELLO", 5, 0), 0);
	assert_int_equal(o->truncate(f, 5), 0);
	assert_int_equal(o->size(f, &size), 0);
	assert_int_equal(size, 5);

	assert_int_equal(o->lock(f), 0);
	g = xopen(x->env, fxp(x, "a"), O_RDWR);
	assert_int_equal(o->lock(g), -EBUSY);
	xclose(g);
	xclose(f);
	disk_expect_str(fxp(x, "a"), "HELLO");

	assert_int_equal(o->open(x->env, fxp(x, "a"), O_RDWR | O_CREAT | O_EXCL, 0644, &f),
			 -EEXIST);
	assert_int_equal(o->open(x->env, fxp(x, "nope"), O_RDONLY, 0, &f), -ENOENT);
}

static void test_posix_namespace_ops(void **state)
{
	struct fx *x = *state;
	struct kv_env *env = x->env;
	const struct kv_env_ops *o = env->ops;
	int is_dir = -1, n = 0;

	put_durable(x, "a", "data");
	assert_int_equal(o->mkdir(env, fxp(x, "sub"), 0755), 0);
	assert_int_equal(o->mkdir(env, fxp(x, "sub"), 0755), -EEXIST);
	assert_int_equal(o->exists(env, fxp(x, "sub"), &is_dir), 0);
	assert_int_equal(is_dir, 1);
	assert_int_equal(o->exists(env, fxp(x, "a"), &is_dir), 0);
	assert_int_equal(is_dir, 0);
	assert_int_equal(o->exists(env, fxp(x, "a"), NULL), 0);
	assert_int_equal(o->exists(env, fxp(x, "nope"), NULL), -ENOENT);

	assert_int_equal(o->rename(env, fxp(x, "a"), fxp(x, "sub/b")), 0);
	assert_int_equal(o->exists(env, fxp(x, "a"), NULL), -ENOENT);
	disk_expect_str(fxp(x, "sub/b"), "data");
	assert_int_equal(o->sync_dir(env, x->dir), 0);
	assert_int_equal(o->sync_dir(env, fxp(x, "sub")), 0);
	assert_int_equal(o->sync_dir(env, fxp(x, "nope")), -ENOENT);

	assert_int_equal(o->list_dir(env, x->dir, count_cb, &n), 0);
	assert_int_equal(n, 1); /* "sub" only: no "." or ".." */
	assert_int_equal(o->list_dir(env, fxp(x, "sub"), stop_cb, NULL), 7);
	assert_int_equal(o->list_dir(env, fxp(x, "nope"), count_cb, &n), -ENOENT);

	assert_int_equal(o->unlink(env, fxp(x, "sub/b")), 0);
	assert_int_equal(o->unlink(env, fxp(x, "sub/b")), -ENOENT);
}

static void test_write_all_short_writes(void **state)
{
	struct fx *x = *state;
	struct kv_fault_rules r = { .short_writes = 1 };
	static unsigned char data[10000], back[sizeof(data)];
	struct kv_file *f;
	ssize_t n;

	fill_random(data, sizeof(data), 1);
	kv_fault_env_set_rules(x->fe, &r);
	f = xopen(x->env, fxp(x, "f"), O_RDWR | O_CREAT);
	n = f->env->ops->pwrite(f, data, 1000, 0);
	assert_true(n >= 1 && n <= 500);
	assert_int_equal(kv_env_write_all(f, data, sizeof(data), 3), 0);
	xclose(f);
	/* The first 3 bytes are from the lone pwrite; the rest is the loop's. */
	f = xopen(kv_env_posix(), fxp(x, "f"), O_RDONLY);
	assert_int_equal(kv_env_read_all(f, back, sizeof(back), 3), 0);
	assert_memory_equal(back, data, sizeof(data));
	xclose(f);
}

static void test_create_zeroed(void **state)
{
	struct fx *x = *state;
	static unsigned char zeros[200000];
	struct kv_file *f = NULL;
	uint64_t size;

	assert_int_equal(kv_env_create_zeroed(x->env, fxp(x, "z"), sizeof(zeros), &f), 0);
	assert_non_null(f);
	assert_int_equal(f->env->ops->size(f, &size), 0);
	assert_int_equal(size, sizeof(zeros));
	xclose(f);
	disk_expect(fxp(x, "z"), zeros, sizeof(zeros));

	/* Never clobbers an existing file. */
	assert_int_equal(kv_env_create_zeroed(x->env, fxp(x, "z"), 10, &f), -EEXIST);
	assert_null(f);
	disk_expect(fxp(x, "z"), zeros, sizeof(zeros));

	assert_int_equal(kv_env_create_zeroed(x->env, fxp(x, "empty"), 0, &f), 0);
	xclose(f);
	disk_expect(fxp(x, "empty"), "", 0);
}

/*
 * The POSIX env's zero_fill: O_DIRECT for the aligned part, buffered for
 * the rest. Lengths below, across and above the 1 MiB chunk and the 4 KiB
 * alignment all give a file of exactly that many zero bytes, whose
 * descriptor no longer has O_DIRECT (the commit writes unaligned ranges),
 * and whose bytes read back through the page cache as zeros even after an
 * unaligned write next to them.
 */
static void test_create_zeroed_direct(void **state)
{
	struct fx *x = *state;
	static const uint64_t lens[] = { 1,	      4095,
					 4096,	      4097,
					 65536 + 100, (1u << 20) - 4096,
					 1u << 20,    (3u << 20) + 512,
					 4u << 20 };
	static unsigned char want[(4u << 20) + 4096];
	struct kv_file *f;
	char name[32];
	uint64_t size;

	assert_non_null(x->env->ops->zero_fill);
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		uint64_t len = lens[i];
		int fd, fl;

		snprintf(name, sizeof(name), "z%zu", i);
		f = NULL;
		assert_int_equal(kv_env_create_zeroed(x->env, fxp(x, name), len, &f), 0);
		assert_non_null(f);
		fd = kv_env_posix_fd(f);
		assert_true(fd >= 0);
		fl = fcntl(fd, F_GETFL);
		assert_true(fl >= 0);
		assert_int_equal(fl & O_DIRECT, 0);
		assert_int_equal(f->env->ops->size(f, &size), 0);
		assert_int_equal(size, len);
		/* An unaligned in-place write, as a commit does: accepted. */
		memset(want, 0, (size_t)len);
		want[len / 2] = 0xa5;
		assert_int_equal(kv_env_write_all(f, "\xa5", 1, len / 2), 0);
		assert_int_equal(f->env->ops->sync(f, 1), 0);
		xclose(f);
		disk_expect(fxp(x, name), want, (size_t)len);
	}
}

/* A zero fill that runs out of space (64 KiB tmpfs) fails and leaves no file. */
static void test_create_zeroed_enospc(void **state)
{
	struct fx *x = *state;
	struct kv_file *f = (struct kv_file *)1;

	if (!x->mounted)
		skip();
	assert_int_equal(kv_env_create_zeroed(x->env, fxp(x, "big"), 1u << 20, &f), -ENOSPC);
	assert_null(f);
	assert_int_equal(x->env->ops->exists(x->env, fxp(x, "big"), NULL), -ENOENT);
	/* And one that fits is made, all zero. */
	assert_int_equal(kv_env_create_zeroed(x->env, fxp(x, "small"), 12288 + 7, &f), 0);
	xclose(f);
	{
		static const unsigned char zeros[12288 + 7];

		disk_expect(fxp(x, "small"), zeros, sizeof(zeros));
	}
}

static void test_write_file_atomic(void **state)
{
	struct fx *x = *state;
	void *buf;
	size_t len;

	assert_int_equal(kv_env_write_file_atomic(x->env, x->dir, "CURRENT", "one\n", 4), 0);
	disk_expect_str(fxp(x, "CURRENT"), "one\n");
	assert_int_equal(kv_env_write_file_atomic(x->env, x->dir, "CURRENT", "second\n", 7), 0);
	disk_expect_str(fxp(x, "CURRENT"), "second\n");
	assert_false(disk_exists(fxp(x, "CURRENT.tmp")));

	assert_int_equal(kv_env_read_file(x->env, fxp(x, "CURRENT"), 7, &buf, &len), 0);
	assert_int_equal(len, 7);
	assert_memory_equal(buf, "second\n", 7);
	free(buf);
	assert_int_equal(kv_env_read_file(x->env, fxp(x, "CURRENT"), 6, &buf, &len), -EFBIG);
	assert_null(buf);
	assert_int_equal(kv_env_read_file(x->env, fxp(x, "nope"), 6, &buf, &len), -ENOENT);

	assert_int_equal(kv_env_write_file_atomic(x->env, fxp(x, "nodir"), "X", "x", 1), -ENOENT);
}

/* ---- io_uring commit ----------------------------------------------------- */

static void test_uring_write_durable(void **state)
{
	struct fx *x = *state;
	struct kv_env *env = kv_env_default();
	static unsigned char data[300000], back[sizeof(data)];
	struct kv_file *f;
	int fd;

	fill_random(data, sizeof(data), 2);
	f = xopen(env, fxp(x, "wal"), O_RDWR | O_CREAT);
	assert_ptr_equal(f->env, env);
	assert_int_equal(env->ops->write_durable(f, data, sizeof(data), 4096), 0);
	fd = kv_env_posix_fd(f);
	assert_true(fd >= 0);
	assert_int_equal(kv_uring_write_durable(fd, "tail", 4, 4096 + sizeof(data)), 0);
	assert_int_equal(kv_uring_write_durable(fd, NULL, 0, 0), 0);
	assert_int_equal(kv_uring_write_durable(-1, "x", 1, 0), -EBADF);
	xclose(f);

	f = xopen(kv_env_posix(), fxp(x, "wal"), O_RDONLY);
	assert_int_equal(kv_env_read_all(f, back, sizeof(back), 4096), 0);
	assert_memory_equal(back, data, sizeof(data));
	assert_int_equal(kv_env_read_all(f, back, 4, 4096 + sizeof(data)), 0);
	assert_memory_equal(back, "tail", 4);
	xclose(f);

	/* A read-only fd: the write's error comes back, the fsync is reaped. */
	f = xopen(env, fxp(x, "wal"), O_RDONLY);
	assert_int_equal(env->ops->write_durable(f, "x", 1, 0), -EBADF);
	assert_int_equal(env->ops->write_durable(f, "x", 1, 0), -EBADF);
	xclose(f);
}

#define URING_THREADS 4
#define URING_COMMITS 50
#define URING_REC 4096

struct uring_thread {
	char *path;
	int seed;
	int ret;
};

static void *uring_thread_main(void *arg)
{
	struct uring_thread *t = arg;
	struct kv_env *env = kv_env_default();
	unsigned char rec[URING_REC];
	struct kv_file *f = NULL;
	int i;

	t->ret = env->ops->open(env, t->path, O_RDWR | O_CREAT, 0644, &f);
	for (i = 0; !t->ret && i < URING_COMMITS; i++) {
		memset(rec, t->seed + i, sizeof(rec));
		t->ret = env->ops->write_durable(f, rec, sizeof(rec), (uint64_t)i * URING_REC);
	}
	if (f)
		env->ops->close(f);
	return NULL;
}

static void test_uring_threads(void **state)
{
	struct fx *x = *state;
	struct uring_thread t[URING_THREADS];
	pthread_t th[URING_THREADS];
	static unsigned char want[URING_COMMITS * URING_REC];
	char name[16];
	int i, j;

	for (i = 0; i < URING_THREADS; i++) {
		snprintf(name, sizeof(name), "wal%d", i);
		t[i] = (struct uring_thread){ .path = strdup(fxp(x, name)), .seed = 10 * i };
		assert_int_equal(pthread_create(&th[i], NULL, uring_thread_main, &t[i]), 0);
	}
	for (i = 0; i < URING_THREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(t[i].ret, 0);
		for (j = 0; j < URING_COMMITS; j++)
			memset(want + j * URING_REC, t[i].seed + j, URING_REC);
		disk_expect(t[i].path, want, sizeof(want));
		free(t[i].path);
	}
}

/* How many io_uring instances this process has open. */
static int count_uring_fds(void)
{
	char link[PATH_MAX], target[64];
	struct dirent *e;
	DIR *d = opendir("/proc/self/fd");
	ssize_t n;
	int count = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		snprintf(link, sizeof(link), "/proc/self/fd/%s", e->d_name);
		n = readlink(link, target, sizeof(target) - 1);
		if (n < 0)
			continue;
		target[n] = '\0';
		count += strstr(target, "io_uring") != NULL;
	}
	closedir(d);
	return count;
}

/* In a child with io_uring_setup() denied (EPERM, as seccomp or the
 * io_uring_disabled sysctl would): a commit from a fresh thread. */
static void *fallback_thread_main(void *arg)
{
	const char *path = arg;
	struct kv_env *env = kv_env_default();
	struct kv_file *f;
	char back[6];
	int rings = count_uring_fds(); /* the parent's, inherited */
	intptr_t ok;

	if (env->ops->open(env, path, O_RDWR | O_CREAT, 0644, &f))
		return (void *)0;
	ok = env->ops->write_durable(f, "fall", 4, 0) == 0 &&
	     env->ops->write_durable(f, "back", 4, 4) == 0 &&
	     env->ops->write_durable(f, "", 0, 8) == 0 && kv_env_read_all(f, back, 6, 2) == 0 &&
	     !memcmp(back, "llback", 6) && count_uring_fds() == rings;
	env->ops->close(f);
	return (void *)ok;
}

static void test_uring_fallback(void **state)
{
	struct fx *x = *state;
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = 4, .filter = filter };
	const char *path = fxp(x, "wal");
	pthread_t th;
	void *ok = NULL;
	pid_t pid;
	int status;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
			_exit(77);
		if (pthread_create(&th, NULL, fallback_thread_main, (void *)path) ||
		    pthread_join(th, &ok))
			_exit(2);
		_exit(ok ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		skip();
	assert_int_equal(WEXITSTATUS(status), 0);
	disk_expect_str(path, "fallback");
}

/*
 * 64 KiB tmpfs, 40 KiB used: a 64 KiB commit gets a short write (the part
 * that fits), the linked fsync is canceled, the remainder is resubmitted
 * and fails with -ENOSPC.
 */
static void test_uring_short_write_enospc(void **state)
{
	struct fx *x = *state;
	static unsigned char data[64 << 10], back[sizeof(data)];
	struct kv_file *f;
	uint64_t size;

	if (!x->mounted)
		skip();
	memset(data, 0x5a, 40 << 10);
	f = xopen(x->env, fxp(x, "filler"), O_RDWR | O_CREAT);
	assert_int_equal(kv_env_write_all(f, data, 40 << 10, 0), 0);
	xclose(f);

	fill_random(data, sizeof(data), 3);
	f = xopen(x->env, fxp(x, "wal"), O_RDWR | O_CREAT);
	assert_int_equal(x->env->ops->write_durable(f, data, sizeof(data), 0), -ENOSPC);
	assert_int_equal(f->env->ops->size(f, &size), 0);
	assert_true(size > 0 && size < sizeof(data));
	assert_int_equal(kv_env_read_all(f, back, (size_t)size, 0), 0);
	assert_memory_equal(back, data, (size_t)size);
	xclose(f);
}

/* ---- fault env rules -------------------------------------------------------- */

static void test_fault_fail_sync_after(void **state)
{
	struct fx *x = *state;
	struct kv_fault_rules r = { .fail_sync_after = 3 };
	struct kv_env *env = x->env;
	struct kv_file *f;

	f = xopen(env, fxp(x, "f"), O_RDWR | O_CREAT);
	kv_fault_env_set_rules(x->fe, &r);
	assert_int_equal(env->ops->sync(f, 0), 0);			 /* 1 */
	assert_int_equal(env->ops->sync_dir(env, x->dir), 0);		 /* 2 */
	assert_int_equal(env->ops->write_durable(f, "abc", 3, 0), -EIO); /* 3 */
	assert_int_equal(env->ops->sync(f, 1), -EIO);
	assert_int_equal(env->ops->sync_dir(env, x->dir), -EIO);
	assert_int_equal(env->ops->write_durable(f, "abc", 3, 0), -EIO);
	assert_int_equal(env->ops->pwrite(f, "d", 1, 3), 1); /* only syncs fail */

	memset(&r, 0, sizeof(r));
	kv_fault_env_set_rules(x->fe, &r);
	assert_int_equal(env->ops->sync(f, 1), 0);
	xclose(f);
	disk_expect_str(fxp(x, "f"), "abcd");
}

static void test_fault_enospc(void **state)
{
	struct fx *x = *state;
	struct kv_fault_rules r = { .enospc_after_bytes = 1000 };
	struct kv_env *env = x->env;
	static char data[2000];
	struct kv_file *f;
	uint64_t size;

	memset(data, 'e', sizeof(data));
	f = xopen(env, fxp(x, "f"), O_RDWR | O_CREAT);
	kv_fault_env_set_rules(x->fe, &r);
	assert_int_equal(env->ops->pwrite(f, data, 600, 0), 600);
	assert_int_equal(env->ops->pwrite(f, data, 600, 600), 400); /* what fits */
	assert_int_equal(env->ops->pwrite(f, data, 10, 1000), -ENOSPC);
	assert_int_equal(env->ops->pwrite(f, data, 1, 1000), -ENOSPC);
	assert_int_equal(env->ops->size(f, &size), 0);
	assert_int_equal(size, 1000);

	r.enospc_after_bytes = 100;
	kv_fault_env_set_rules(x->fe, &r);
	assert_int_equal(kv_env_write_all(f, data, 300, 2000), -ENOSPC);
	assert_int_equal(env->ops->size(f, &size), 0);
	assert_int_equal(size, 2100);
	assert_int_equal(env->ops->write_durable(f, data, 10, 0), -ENOSPC);
	xclose(f);
}

static void test_fault_short_writes(void **state)
{
	struct fx *x = *state;
	struct kv_fault_rules r = { .short_writes = 1 };
	struct kv_env *env = x->env;
	struct kv_file *f;

	f = xopen(env, fxp(x, "f"), O_RDWR | O_CREAT);
	kv_fault_env_set_rules(x->fe, &r);
	assert_int_equal(env->ops->pwrite(f, "0123456789", 10, 0), 5);
	assert_int_equal(env->ops->pwrite(f, "56789", 5, 5), 2);
	assert_int_equal(env->ops->pwrite(f, "789", 3, 7), 1);
	assert_int_equal(env->ops->pwrite(f, "8", 1, 8), 1);
	assert_int_equal(env->ops->pwrite(f, "9", 0, 9), 0);
	assert_int_equal(env->ops->write_durable(f, "9abcdef", 7, 9), 0);
	xclose(f);
	disk_expect_str(fxp(x, "f"), "0123456789abcdef");
}

static void test_fault_crash_after_ops(void **state)
{
	struct fx *x = *state;
	struct kv_fault_rules r = { .crash_after_ops = 3 };
	struct kv_env *env = x->env;
	struct kv_file *f, *g;
	char buf[8];
	uint64_t size;

	f = xopen(env, fxp(x, "f"), O_RDWR | O_CREAT);
	kv_fault_env_set_rules(x->fe, &r);
	assert_int_equal(env->ops->pwrite(f, "abc", 3, 0), 3); /* 1 */
	assert_int_equal(env->ops->pread(f, buf, 3, 0), 3);    /* 2 */
	assert_int_equal(env->ops->size(f, &size), 0);	       /* 3 */
	assert_int_equal(env->ops->sync(f, 0), -EIO);	       /* dead */
	assert_int_equal(env->ops->pwrite(f, "d", 1, 3), -EIO);
	assert_int_equal(env->ops->pread(f, buf, 3, 0), -EIO);
	assert_int_equal(env->ops->exists(env, x->dir, NULL), -EIO);
	assert_int_equal(env->ops->open(env, fxp(x, "g"), O_RDWR | O_CREAT, 0644, &g), -EIO);
	assert_false(disk_exists(fxp(x, "g")));
	assert_int_equal(env->ops->close(f), -EIO); /* but closed: ASan sees no leak */

	/* The bytes are on disk, never synced: a power cut removes the file
	 * (its create was never dir-synced either) and revives the env. */
	disk_expect_str(fxp(x, "f"), "abc");
	assert_int_equal(kv_fault_env_power_cut(x->fe, 0), 0);
	assert_false(disk_exists(fxp(x, "f")));
	assert_int_equal(env->ops->exists(env, x->dir, NULL), 0);
}

/* A crash between write_durable's write and its fdatasync. */
static void test_fault_crash_inside_write_durable(void **state)
{
	struct fx *x = *state;
	struct kv_fault_rules r = { .crash_after_ops = 1 };
	struct kv_env *env = x->env;
	struct kv_file *f;

	put_durable(x, "wal", "0000");
	f = xopen(env, fxp(x, "wal"), O_RDWR);
	kv_fault_env_set_rules(x->fe, &r);
	assert_int_equal(env->ops->write_durable(f, "11", 2, 0), -EIO);
	env->ops->close(f);
	disk_expect_str(fxp(x, "wal"), "1100");
	assert_int_equal(kv_fault_env_power_cut(x->fe, 0), 0);
	disk_expect_str(fxp(x, "wal"), "0000");
}

/* ---- power cut ---------------------------------------------------------- */

static void test_power_cut_writes(void **state)
{
	struct fx *x = *state;
	struct kv_env *env = x->env;
	static const char zeros[4096];
	char want[4096];
	struct kv_file *f;

	put_durable(x, "a", "durable");
	f = xopen(env, fxp(x, "a"), O_RDWR);
	assert_int_equal(kv_env_write_all(f, "XXXX", 4, 2), 0);
	assert_int_equal(kv_env_write_all(f, "tail", 4, 7), 0);	    /* extends */
	assert_int_equal(kv_fault_env_power_cut(x->fe, 0), -EBUSY); /* open file */
	xclose(f);

	assert_int_equal(kv_env_create_zeroed(env, fxp(x, "b"), sizeof(zeros), &f), 0);
	assert_int_equal(env->ops->write_durable(f, "commit", 6, 0), 0);
	assert_int_equal(kv_env_write_all(f, "lost", 4, 100), 0);
	assert_int_equal(env->ops->write_durable(f, "again", 5, 6), 0);
	assert_int_equal(kv_env_write_all(f, "gone", 4, 4094), 0); /* extends */
	xclose(f);

	disk_expect_str(fxp(x, "a"), "duXXXXetail");
	assert_int_equal(kv_fault_env_power_cut(x->fe, 0), 0);
	disk_expect_str(fxp(x, "a"), "durable");
	memset(want, 0, sizeof(want));
	memcpy(want, "commitagain", 11);
	memcpy(want + 100, "lost", 4); /* synced by the second commit */
	disk_expect(fxp(x, "b"), want, sizeof(want));
}

static void test_power_cut_truncate(void **state)
{
	struct fx *x = *state;
	struct kv_env *env = x->env;
	struct kv_file *f;

	put_durable(x, "t", "0123456789");
	f = xopen(env, fxp(x, "t"), O_RDWR);
	assert_int_equal(env->ops->truncate(f, 4), 0);
	assert_int_equal(env->ops->truncate(f, 5000), 0);
	assert_int_equal(kv_env_write_all(f, "zz", 2, 1), 0);
	xclose(f);
	f = xopen(env, fxp(x, "t"), O_RDWR | O_TRUNC);
	assert_int_equal(kv_env_write_all(f, "new", 3, 0), 0);
	xclose(f);
	disk_expect_str(fxp(x, "t"), "new");
	assert_int_equal(kv_fault_env_power_cut(x->fe, 0), 0);
	disk_expect_str(fxp(x, "t"), "0123456789");
}

static void test_power_cut_creates(void **state)
{
	struct fx *x = *state;
	struct kv_env *env = x->env;
	struct kv_file *f;
	char sub[PATH_MAX];

	/* Name made durable, never written. */
	f = xopen(env, fxp(x, "d"), O_RDWR | O_CREAT | O_EXCL);
	xclose(f);
	assert_int_equal(env->ops->mkdir(env, fxp(x, "sub"), 0755), 0);
	assert_int_equal(env->ops->sync_dir(env, x->dir), 0);
	/* In sub: put_durable syncs x->dir, the wrong directory for these... */
	put_durable(x, "sub/e", "e");
	f = xopen(env, fxp(x, "sub/f"), O_RDWR | O_CREAT);
	assert_int_equal(env->ops->write_durable(f, "f", 1, 0), 0);
	xclose(f);
	/* ...until sub is synced, here named in a roundabout way. */
	snprintf(sub, sizeof(sub), "%s//sub/./", x->dir);
	assert_int_equal(env->ops->sync_dir(env, sub), 0);
	put_durable(x, "sub/g", "g");
	/* Written and fsynced, but its name never made durable. */
	f = xopen(env, fxp(x, "c"), O_RDWR | O_CREAT);
	assert_int_equal(env->ops->write_durable(f, "c", 1, 0), 0);
	xclose(f);

	assert_int_equal(kv_fault_env_power_cut(x->fe, 0), 0);
	assert_false(disk_exists(fxp(x, "c")));
	disk_expect_str(fxp(x, "d"), "");
	disk_expect_str(fxp(x, "sub/e"), "e");
	disk_expect_str(fxp(x, "sub/f"), "f");
	assert_false(disk_exists(fxp(x, "sub/g")));
}

static void test_power_cut_renames(void **state)
{
	struct fx *x = *state;
	struct kv_env *env = x->env;

	put_durable(x, "x", "old-x");
	put_durable(x, "y", "new-y");
	put_durable(x, "z", "zz");
	put_durable(x, "kept", "kept");
	assert_int_equal(env->ops->rename(env, fxp(x, "y"), fxp(x, "x")), 0); /* over x */
	assert_int_equal(env->ops->rename(env, fxp(x, "z"), fxp(x, "w")), 0); /* new name */
	disk_expect_str(fxp(x, "x"), "new-y");
	assert_false(disk_exists(fxp(x, "y")));

	assert_int_equal(kv_fault_env_power_cut(x->fe, 0), 0);
	disk_expect_str(fxp(x, "x"), "old-x");
	disk_expect_str(fxp(x, "y"), "new-y");
	disk_expect_str(fxp(x, "z"), "zz");
	assert_false(disk_exists(fxp(x, "w")));

	/* Made durable: kept. write_file_atomic is durable by itself. */
	assert_int_equal(env->ops->rename(env, fxp(x, "kept"), fxp(x, "k2")), 0);
	assert_int_equal(env->ops->sync_dir(env, x->dir), 0);
	assert_int_equal(kv_env_write_file_atomic(env, x->dir, "CURRENT", "v1", 2), 0);
	assert_int_equal(kv_env_write_file_atomic(env, x->dir, "CURRENT", "v2", 2), 0);
	assert_int_equal(kv_fault_env_power_cut(x->fe, 0), 0);
	disk_expect_str(fxp(x, "k2"), "kept");
	assert_false(disk_exists(fxp(x, "kept")));
	disk_expect_str(fxp(x, "CURRENT"), "v2");
	assert_false(disk_exists(fxp(x, "CURRENT.tmp")));
}

/* The classic: write a new file, rename it over the old one, no fsync. */
static void test_power_cut_rename_unsynced_content(void **state)
{
	struct fx *x = *state;
	struct kv_env *env = x->env;
	struct kv_file *f;

	put_durable(x, "CURRENT", "old");
	f = xopen(env, fxp(x, "CURRENT.tmp"), O_RDWR | O_CREAT | O_TRUNC);
	assert_int_equal(kv_env_write_all(f, "new", 3, 0), 0);
	xclose(f);
	assert_int_equal(env->ops->rename(env, fxp(x, "CURRENT.tmp"), fxp(x, "CURRENT")), 0);
	assert_int_equal(env->ops->sync_dir(env, x->dir), 0);
	/* The rename is durable, the bytes are not: an empty file remains. */
	assert_int_equal(kv_fault_env_power_cut(x->fe, 0), 0);
	disk_expect_str(fxp(x, "CURRENT"), "");
	assert_false(disk_exists(fxp(x, "CURRENT.tmp")));
}

static void test_power_cut_unlinks(void **state)
{
	struct fx *x = *state;
	struct kv_env *env = x->env;
	struct kv_file *f;

	put_durable(x, "u", "keep");
	put_durable(x, "v", "gone");
	f = xopen(env, fxp(x, "u"), O_RDWR);
	assert_int_equal(kv_env_write_all(f, "ZZ", 2, 0), 0); /* never synced */
	xclose(f);
	assert_int_equal(env->ops->unlink(env, fxp(x, "u")), 0);
	assert_int_equal(env->ops->unlink(env, fxp(x, "u")), -ENOENT);
	/* Created and unlinked, neither durable. */
	f = xopen(env, fxp(x, "t"), O_RDWR | O_CREAT);
	xclose(f);
	assert_int_equal(env->ops->unlink(env, fxp(x, "t")), 0);
	assert_int_equal(kv_fault_env_power_cut(x->fe, 0), 0);
	disk_expect_str(fxp(x, "u"), "keep");
	assert_false(disk_exists(fxp(x, "t")));

	assert_int_equal(env->ops->unlink(env, fxp(x, "v")), 0);
	assert_int_equal(env->ops->sync_dir(env, x->dir), 0);
	assert_int_equal(kv_fault_env_power_cut(x->fe, 0), 0);
	assert_false(disk_exists(fxp(x, "v")));
}

#define TORN_SECTORS 8

/* Eight sectors written one by one, never synced; the cut at @seed. */
static void torn_round(struct fx *x, uint64_t seed, unsigned char *out)
{
	struct kv_env *env = x->env;
	unsigned char sec[512];
	struct kv_file *f;
	int i;

	kvt_rmrf(fxp(x, "t"));
	assert_int_equal(kv_env_create_zeroed(env, fxp(x, "t"), sizeof(sec) * TORN_SECTORS, &f), 0);
	for (i = 0; i < TORN_SECTORS; i++) {
		memset(sec, i + 1, sizeof(sec));
		assert_int_equal(kv_env_write_all(f, sec, sizeof(sec), i * sizeof(sec)), 0);
	}
	xclose(f);
	assert_int_equal(kv_fault_env_power_cut(x->fe, seed), 0);
	f = xopen(kv_env_posix(), fxp(x, "t"), O_RDONLY);
	for (i = 0; i < TORN_SECTORS; i++) {
		assert_int_equal(kv_env_read_all(f, sec, sizeof(sec), i * sizeof(sec)), 0);
		/* Whole sectors only: all old (0) or all new (i + 1). */
		assert_true(sec[0] == 0 || sec[0] == i + 1);
		assert_int_equal(memcmp(sec, sec + 1, sizeof(sec) - 1), 0);
		out[i] = sec[0];
	}
	assert_int_equal(kv_env_read_all(f, sec, 1, sizeof(sec) * TORN_SECTORS), -ENODATA);
	xclose(f);
}

static void test_power_cut_torn(void **state)
{
	struct fx *x = *state;
	unsigned char got[TORN_SECTORS], again[TORN_SECTORS];
	int found = 0, kept = 0, lost = 0, i;
	uint64_t seed;

	for (seed = 1; seed <= 64; seed++) {
		torn_round(x, seed, got);
		for (i = 0; i < TORN_SECTORS; i++) {
			kept += got[i] != 0;
			lost += got[i] == 0;
			if (got[0] == 0 && got[i] != 0)
				found = 1;
		}
	}
	assert_true(found); /* a later sector survived, an earlier one did not */
	assert_true(kept > 0 && lost > 0);

	torn_round(x, 12345, got); /* the same seed tears the same way */
	torn_round(x, 12345, again);
	assert_memory_equal(got, again, sizeof(got));
	torn_round(x, 0, got); /* seed 0: everything undone */
	for (i = 0; i < TORN_SECTORS; i++)
		assert_int_equal(got[i], 0);
}

static void test_settle(void **state)
{
	struct fx *x = *state;
	struct kv_env *env = x->env;
	struct kv_file *f;

	put_durable(x, "a", "aaaa");
	f = xopen(env, fxp(x, "a"), O_RDWR);
	assert_int_equal(kv_env_write_all(f, "bb", 2, 0), 0);
	kv_fault_env_settle(x->fe); /* while open: its later writes still count */
	assert_int_equal(kv_env_write_all(f, "c", 1, 3), 0);
	xclose(f);
	assert_int_equal(kv_fault_env_power_cut(x->fe, 0), 0);
	disk_expect_str(fxp(x, "a"), "bbaa"); /* only the write after settle undone */

	f = xopen(env, fxp(x, "new"), O_RDWR | O_CREAT);
	assert_int_equal(kv_env_write_all(f, "n", 1, 0), 0);
	xclose(f);
	assert_int_equal(env->ops->rename(env, fxp(x, "new"), fxp(x, "new2")), 0);
	kv_fault_env_settle(x->fe);
	assert_int_equal(kv_fault_env_power_cut(x->fe, 0), 0);
	disk_expect_str(fxp(x, "new2"), "n");
	assert_false(disk_exists(fxp(x, "new")));
}

struct count_arg {
	struct kv_env *env;
	const char *dir;
	int n;
};

/* Calls back into the env: list_dir must not hold the env's lock. */
static int count_files_cb(void *arg, const char *name)
{
	struct count_arg *c = arg;
	char path[PATH_MAX];
	int is_dir;

	snprintf(path, sizeof(path), "%s/%s", c->dir, name);
	if (c->env->ops->exists(c->env, path, &is_dir))
		return -EIO;
	c->n += !is_dir;
	return 0;
}

#define MANY_DIRS 3
#define MANY_FILES 300

static void test_power_cut_many_files(void **state)
{
	struct fx *x = *state;
	struct kv_env *env = x->env;
	struct kv_file *f;
	char name[64], data[64];
	int i, d;

	for (d = 0; d < MANY_DIRS; d++) {
		snprintf(name, sizeof(name), "d%d", d);
		assert_int_equal(env->ops->mkdir(env, fxp(x, name), 0755), 0);
	}
	assert_int_equal(env->ops->sync_dir(env, x->dir), 0);
	for (i = 0; i < MANY_FILES; i++) {
		snprintf(name, sizeof(name), "d%d/f%d", i % MANY_DIRS, i);
		snprintf(data, sizeof(data), "file-%03d", i);
		f = xopen(env, fxp(x, name), O_RDWR | O_CREAT | O_EXCL);
		assert_int_equal(env->ops->write_durable(f, data, strlen(data), 0), 0);
		xclose(f);
	}
	assert_int_equal(env->ops->sync_dir(env, fxp(x, "d0")), 0);
	assert_int_equal(env->ops->sync_dir(env, fxp(x, "d1")), 0); /* d2 never */
	for (i = 0; i < MANY_FILES; i++) {
		snprintf(name, sizeof(name), "d%d/f%d", i % MANY_DIRS, i);
		f = xopen(env, fxp(x, name), O_RDWR);
		assert_int_equal(kv_env_write_all(f, "+extra", 6, strlen("file-000")), 0);
		if (i % 2 == 0)
			assert_int_equal(f->env->ops->sync(f, 1), 0);
		xclose(f);
	}
	assert_int_equal(kv_fault_env_power_cut(x->fe, 0), 0);

	for (i = 0; i < MANY_FILES; i++) {
		snprintf(name, sizeof(name), "d%d/f%d", i % MANY_DIRS, i);
		if (i % MANY_DIRS == 2) {
			assert_false(disk_exists(fxp(x, name)));
			continue;
		}
		snprintf(data, sizeof(data), "file-%03d%s", i, i % 2 == 0 ? "+extra" : "");
		disk_expect_str(fxp(x, name), data);
	}
	for (d = 0; d < MANY_DIRS; d++) {
		struct count_arg c = { .env = env, .dir = NULL, .n = 0 };

		snprintf(name, sizeof(name), "d%d", d);
		c.dir = fxp(x, name);
		assert_int_equal(env->ops->list_dir(env, c.dir, count_files_cb, &c), 0);
		assert_int_equal(c.n, d == 2 ? 0 : MANY_FILES / MANY_DIRS);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_posix_file_ops, dir_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_posix_namespace_ops, dir_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_write_all_short_writes, fault_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_create_zeroed, dir_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_create_zeroed_direct, dir_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_create_zeroed_enospc, tmpfs_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_write_file_atomic, dir_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_uring_write_durable, dir_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_uring_threads, dir_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_uring_fallback, dir_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_uring_short_write_enospc, tmpfs_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_fault_fail_sync_after, fault_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_fault_enospc, fault_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_fault_short_writes, fault_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_fault_crash_after_ops, fault_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_fault_crash_inside_write_durable, fault_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_power_cut_writes, fault_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_power_cut_truncate, fault_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_power_cut_creates, fault_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_power_cut_renames, fault_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_power_cut_rename_unsynced_content, fault_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_power_cut_unlinks, fault_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_power_cut_torn, fault_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_settle, fault_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_power_cut_many_files, fault_setup,
						fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
