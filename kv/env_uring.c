/* SPDX-License-Identifier: MIT */
/*
 * env_uring.c - the WAL commit through io_uring: one write linked to one
 * fdatasync, submitted together, so a group commit costs one io_uring_enter
 * instead of a pwrite and an fdatasync. The only file in kv/ that includes
 * liburing.h (house rule 1).
 *
 * The chain, per attempt:
 *
 *   SQE 0  IORING_OP_WRITE  buf[done..len) at off+done   IOSQE_IO_LINK  tag WRITE
 *   SQE 1  IORING_OP_FSYNC  IORING_FSYNC_DATASYNC                        tag FSYNC
 *
 * and both CQEs are always reaped before we look at either (so the ring is
 * empty again and no stale CQE can be mistaken for the next call's). The
 * outcomes:
 *
 *   write == n, fsync == 0   done (or go on with the next chunk);
 *   0 < write < n            short write: the kernel fails the link, so the
 *                            fsync CQE is -ECANCELED; submit the remainder
 *                            with a new linked fsync;
 *   write < 0                return it; the fsync was -ECANCELED;
 *   fsync < 0, not canceled  return it. Never retried: after a failed
 *                            fdatasync the kernel may have dropped the dirty
 *                            pages, and a second fdatasync would "succeed"
 *                            for data that is gone (house rule 3);
 *   write == 0               no progress: -EIO rather than a busy loop.
 *
 * One ring per thread, not one ring behind a mutex. Reason: the caller waits
 * for the fdatasync with the ring in hand, and house rule 5 forbids holding
 * a lock across a wait for I/O; with a shared ring two stores (or a commit
 * and a segment flush) in one process would serialize on each other's disk
 * flush. Per-thread rings need no lock at all. Their cost is one ring (a
 * few pages and an fd) per thread that ever commits, created lazily on the
 * first commit and torn down by a pthread key destructor at thread exit.
 * Four entries suffice: a chain is two SQEs and is fully reaped before the
 * next.
 *
 * Fallback: if io_uring_queue_init() fails with ENOSYS (old kernel) or EPERM
 * (io_uring disabled by sysctl or seccomp), remember that process-wide and
 * use pwrite + fdatasync from then on, silently: the result is the same,
 * only slower. Any other init failure (ENOMEM, EMFILE) falls back for that
 * call only and the next call tries again.
 *
 * State:
 *   tls_ring         [thread-local] this thread's ring, NULL until first use
 *   ring_key         [immutable after ring_once] destroys a thread's ring
 *   uring_missing    [atomic] set once, never cleared
 */
#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "env.h"

#define URING_ENTRIES 4
#define TAG_WRITE 1
#define TAG_FSYNC 2
/* Linux writes at most ~2 GiB per call; stay well below the u32 length. */
#define URING_MAX_CHUNK (1u << 30)

static __thread struct io_uring *tls_ring;
static pthread_key_t ring_key;
static int ring_key_ok;
static pthread_once_t ring_once = PTHREAD_ONCE_INIT;
static atomic_int uring_missing;

static void ring_destroy(void *arg)
{
	struct io_uring *ring = arg;

	io_uring_queue_exit(ring);
	free(ring);
}

static void ring_key_init(void)
{
	ring_key_ok = pthread_key_create(&ring_key, ring_destroy) == 0;
}

/* This thread's ring, created on first use; NULL means "use the fallback". */
static struct io_uring *ring_get(void)
{
	struct io_uring *ring;
	int ret;

	if (tls_ring)
		return tls_ring;
	if (atomic_load_explicit(&uring_missing, memory_order_relaxed))
		return NULL;
	pthread_once(&ring_once, ring_key_init);
	if (!ring_key_ok)
		return NULL;
	ring = malloc(sizeof(*ring));
	if (!ring)
		return NULL;
	ret = io_uring_queue_init(URING_ENTRIES, ring, 0);
	if (ret < 0) {
		free(ring);
		if (ret == -ENOSYS || ret == -EPERM)
			atomic_store_explicit(&uring_missing, 1, memory_order_relaxed);
		return NULL;
	}
	if (pthread_setspecific(ring_key, ring)) {
		ring_destroy(ring);
		return NULL;
	}
	tls_ring = ring;
	return ring;
}

/* Throw away a ring in an unknown state; the next call makes a new one. */
static void ring_drop(void)
{
	pthread_setspecific(ring_key, NULL);
	ring_destroy(tls_ring);
	tls_ring = NULL;
}

static int fallback_write_durable(int fd, const unsigned char *p, size_t len, uint64_t off)
{
	ssize_t n;

	while (len > 0) {
		do
			n = pwrite(fd, p, len, (off_t)off);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return fdatasync(fd) ? -errno : 0;
}

/* Wait for @count CQEs and record their results by tag. */
static int chain_reap(struct io_uring *ring, int count, int *res_write, int *res_fsync)
{
	struct io_uring_cqe *cqe;
	int ret;

	while (count-- > 0) {
		do
			ret = io_uring_wait_cqe(ring, &cqe);
		while (ret == -EINTR);
		if (ret < 0)
			return ret;
		if (cqe->user_data == TAG_WRITE)
			*res_write = cqe->res;
		else
			*res_fsync = cqe->res;
		io_uring_cqe_seen(ring, cqe);
	}
	return 0;
}

/*
 * Submit one write of @n bytes linked to one fdatasync and reap both. On 0,
 * *res_write and *res_fsync hold the CQE results. A negative return is a
 * ring failure (the ring has been dropped), not an I/O result.
 */
static int chain_run(struct io_uring *ring, int fd, const void *buf, unsigned n, uint64_t off,
		     int *res_write, int *res_fsync)
{
	struct io_uring_sqe *sqe;
	int submitted, ret;

	*res_write = -ECANCELED;
	*res_fsync = -ECANCELED;
	sqe = io_uring_get_sqe(ring); /* cannot fail: the ring is empty */
	io_uring_prep_write(sqe, fd, buf, n, off);
	sqe->flags |= IOSQE_IO_LINK;
	sqe->user_data = TAG_WRITE;
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
	sqe->user_data = TAG_FSYNC;

	do
		submitted = io_uring_submit(ring);
	while (submitted == -EINTR);
	/* Reap what the kernel took before giving up on the ring, so it never
	 * writes from @buf after we return. */
	ret = chain_reap(ring, submitted > 0 ? submitted : 0, res_write, res_fsync);
	if (submitted < 0 || ret < 0 || submitted != 2) {
		ring_drop();
		return submitted < 0 ? submitted : ret < 0 ? ret : -EIO;
	}
	return 0;
}

int kv_uring_write_durable(int fd, const void *buf, size_t len, uint64_t off)
{
	const unsigned char *p = buf;
	struct io_uring *ring;
	int res_write, res_fsync, ret;
	unsigned n;

	if (fd < 0)
		return -EBADF;
	if (off > INT64_MAX || len > INT64_MAX - off)
		return -EINVAL;
	ring = ring_get();
	if (!ring || len == 0)
		return fallback_write_durable(fd, p, len, off);
	while (len > 0) {
		n = len < URING_MAX_CHUNK ? (unsigned)len : URING_MAX_CHUNK;
		ret = chain_run(ring, fd, p, n, off, &res_write, &res_fsync);
		if (ret)
			return ret;
		if (res_write < 0)
			return res_write;
		if (res_fsync < 0 && res_fsync != -ECANCELED)
			return res_fsync;
		if (res_write == 0)
			return -EIO;
		if ((unsigned)res_write == n && res_fsync != 0)
			return res_fsync; /* full write, fsync canceled: cannot happen */
		/* Full write + fsync, or a short write: continue after it. */
		p += res_write;
		len -= (size_t)res_write;
		off += (uint64_t)res_write;
	}
	return 0;
}
