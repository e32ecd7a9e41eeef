// SPDX-License-Identifier: MIT
/*
 * crashload - the workload and the verifier of the filesystem-level crash
 * test (test_crash.sh).
 *
 *   crashload run ROOT LOGDIR SEED THREADS READY CRASHED
 *       Make ROOT (on a kvfs mount) with ROOT/t<i>/d0..d2 for each thread,
 *       fsync it all, create the file READY, then run THREADS threads (in
 *       two processes: the odd ones in a child) until each has had an
 *       operation fail (the daemon was killed). Thread i
 *       works only under ROOT/t<i> and writes its journal LOGDIR/t<i>.log.
 *       The test creates the file CRASHED just before it crashes the daemon:
 *       a failure before that is a failure of its own.
 *   crashload check ROOT LOGDIR sync|batch kill|powercut
 *       After the crash and a remount: is what is under ROOT a state the
 *       journals allow? Exit 0 yes, 1 no (with the reasons), 2 bad usage.
 *
 * The journal lives outside the mount (the test's temp dir on the host
 * filesystem). Only the daemon dies, never this process, so a plain
 * write(2) of each record, made before the next step, is as good as an
 * fsynced one: the page cache keeps it. Records, one per line, each after
 * a ticket: one sequence over all threads, in real time order (an S record
 * takes its ticket before its op is issued, a D record after it returned):
 *   S <n> <op> <args>   op n is about to be issued (n = 0, 1, ... per thread)
 *   D <n>               it returned success
 *   E <n> <errno> alive|crashed
 *                       it failed (before or after the test created the
 *                       file CRASHED); the thread stops there
 * Ops (names are relative to ROOT/t<i>: d<j>/f<k> files, d<j>/x<k> empty
 * directories, d<j> the thread's three directories, "." itself):
 *   create NAME FID             open(O_CREAT|O_EXCL), close
 *   write FID OFF LEN SEED SYNC open, pwrite (or an O_APPEND write at
 *                               OFF = the size), [fsync if SYNC], close
 *   trunc FID SIZE              open, ftruncate, close
 *   fsync FID / fdatasync FID   open, fsync or fdatasync, close
 *   fsyncdir DIR                open the directory, fsync, close
 *   rename FROM TO              a file over a free or a file name; or an
 *                               empty directory over a free or an empty one
 *   exchange A B                renameat2(RENAME_EXCHANGE) of two files
 *   unlink NAME / mkdir NAME / rmdir NAME
 * The bytes of a write are a function of its SEED (gen_bytes), so the
 * verifier rebuilds every version of every file from the journal.
 *
 * What a crash may leave (the check). Every operation is one batch of the
 * engine, appended to one ordered log, and a thread's operations are
 * sequential (close(2) writes the dirty pages of the writeback cache back
 * before it returns), so after a crash each thread's tree is its tree after
 * some number c of its operations: a "cut". The operation in flight, if
 * any, may be applied or not. A write or truncate reaches the daemon in
 * several requests (the writeback of its pages), so the log may also end
 * among them: the cut may be "c ops, and op c partly", for a write or
 * truncate that was in flight or not yet durable; its file then holds, at
 * each byte, the byte of the version before or after it, and a size
 * between the two. The cut must keep what was acknowledged as durable:
 *   - batch: every fsync, fdatasync, fsyncdir and write+fsync that
 *     returned is a durability point of the whole filesystem (kvfs_sync
 *     waits for everything acknowledged before it), so c >= the index of
 *     the thread's last one + 1 (in particular the exact content of every
 *     fsynced file and every rename, create and unlink before an
 *     fsyncdir), and every op that returned before another thread issued
 *     a durability point that returned is in the cut too;
 *   - sync: every operation that returned was durable, c >= all of them.
 * Nothing else is allowed: a name not in the history, a file under a name
 * it never had at that cut, a byte no version had, a half-done rename (a
 * file in two places or in none), a directory that is not empty.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NDIRS 3
#define NFILES 12 /* f0..f11 per directory */
#define NXDIRS 4  /* x0..x3 per directory */
#define MAX_SIZE (768u << 10)
#define MAX_THREADS 16

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("crashload: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		die("out of memory");
	return p;
}

static const char *ename(int e)
{
	const char *s = strerrorname_np(e);

	return s ? s : "?";
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (!p)
		die("out of memory");
	return p;
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t rnd(uint64_t *s)
{
	*s += 0x9e3779b97f4a7c15ull;
	return mix(*s);
}

/* The bytes of a write: 8 per 64-bit hash of (seed, position / 8). */
static void gen_bytes(uint64_t seed, unsigned char *buf, size_t len)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t h = mix(seed ^ (i / 8) * 0x100000001b3ull);

		for (size_t k = 0; k < 8 && i + k < len; k++)
			buf[i + k] = (unsigned char)(h >> (8 * k));
	}
}

/* ---- names ------------------------------------------------------------- */

/* A name slot: a file name d<dir>/f<k> or a directory name d<dir>/x<k>. */
#define NSLOTS (NDIRS * (NFILES + NXDIRS))

static int slot_is_dir(int s)
{
	return s % (NFILES + NXDIRS) >= NFILES;
}

static int slot_dir(int s)
{
	return s / (NFILES + NXDIRS);
}

static void slot_name(int s, char *buf, size_t cap)
{
	int k = s % (NFILES + NXDIRS);

	if (k < NFILES)
		snprintf(buf, cap, "d%d/f%d", slot_dir(s), k);
	else
		snprintf(buf, cap, "d%d/x%d", slot_dir(s), k - NFILES);
}

/* "d1/f3" -> slot, or -1. */
static int slot_parse(const char *name)
{
	int d, k, n = 0;
	char c;

	if (sscanf(name, "d%d/%c%d%n", &d, &c, &k, &n) != 3 || name[n] || d < 0 || d >= NDIRS ||
	    k < 0)
		return -1;
	if (c == 'f' && k < NFILES)
		return d * (NFILES + NXDIRS) + k;
	if (c == 'x' && k < NXDIRS)
		return d * (NFILES + NXDIRS) + NFILES + k;
	return -1;
}

/* ---- the workload ------------------------------------------------------ */

struct worker {
	int id;
	char base[4096];    /* ROOT/t<id> */
	const char *killed; /* exists once the test crashes the daemon */
	int log;	    /* journal fd */
	uint64_t rng;
	uint64_t n;	       /* next op number */
	uint32_t slot[NSLOTS]; /* fid (files) or 1 (dirs) at each name; 0 none */
	uint64_t *size;	       /* by fid */
	uint32_t nfid, capfid; /* fids 1..nfid used */
	int use_exchange;
	unsigned sync_pct;  /* of the durability points drawn, the share kept */
	uint64_t max_ops;   /* CRASHLOAD_MAX_OPS (to try the verifier); else no limit */
	int err;	    /* errno of the failed op */
	unsigned char *buf; /* MAX_SIZE */
};

/* Records of all threads are numbered in one sequence, in real time order:
 * an S record's ticket is taken before its op is issued, a D record's after
 * its op returned. */
static _Atomic uint64_t *ticket; /* shared by the two processes */

static void jwrite(struct worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jwrite(struct worker *w, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n, k;

	k = snprintf(line, sizeof(line), "%" PRIu64 " ", atomic_fetch_add(ticket, 1));
	va_start(ap, fmt);
	n = k + vsnprintf(line + k, sizeof(line) - (size_t)k, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) || write(w->log, line, (size_t)n) != n)
		die("journal of thread %d: %s", w->id, strerror(errno));
}

static void wpath(struct worker *w, const char *rel, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s/%s", w->base, rel);
}

static void spath(struct worker *w, int s, char *buf, size_t cap)
{
	char rel[32];

	slot_name(s, rel, sizeof(rel));
	wpath(w, rel, buf, cap);
}

/* A random slot of the kind (dir or not) that is used (want_used) or free;
 * -1 if none. */
static int pick(struct worker *w, int dirs, int want_used)
{
	int cand[NSLOTS], n = 0;

	for (int s = 0; s < NSLOTS; s++)
		if (slot_is_dir(s) == dirs && (w->slot[s] != 0) == want_used)
			cand[n++] = s;
	return n ? cand[rnd(&w->rng) % (unsigned)n] : -1;
}

static int write_all(int fd, const unsigned char *p, size_t len, off_t off, int append)
{
	while (len) {
		ssize_t n = append ? write(fd, p, len) : pwrite(fd, p, len, off);

		if (n < 0)
			return -1;
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

static uint64_t pick_len(struct worker *w)
{
	uint64_t r = rnd(&w->rng) % 100;

	if (r < 55)
		return 1 + rnd(&w->rng) % 2048;
	if (r < 85)
		return 1 + rnd(&w->rng) % (32 << 10);
	return 1 + rnd(&w->rng) % (256 << 10);
}

/* One random operation; 0, -1 with w->err set (the thread stops), or 1 when
 * the chosen op had nothing to work on (nothing journaled). */
static int step(struct worker *w)
{
	char p1[4200], p2[4200], r1[32], r2[32];
	uint64_t n = w->n, r = rnd(&w->rng) % 100;
	int s, t, fd = -1, ret = 0;

	/* Durability points (write + fsync, fsync, fdatasync, fsyncdir) at the
	 * thread's own rate: between them, acknowledged work a crash may lose. */
	if (((r >= 36 && r < 42) || (r >= 48 && r < 61)) && rnd(&w->rng) % 100 >= w->sync_pct)
		return 1;

	if (r < 10) { /* create */
		s = pick(w, 0, 0);
		if (s < 0)
			return 1;
		if (w->nfid + 1 >= w->capfid) {
			w->capfid = w->capfid ? 2 * w->capfid : 256;
			w->size = realloc(w->size, w->capfid * sizeof(*w->size));
			if (!w->size)
				die("out of memory");
		}
		slot_name(s, r1, sizeof(r1));
		spath(w, s, p1, sizeof(p1));
		jwrite(w, "S %" PRIu64 " create %s %u\n", n, r1, w->nfid + 1);
		fd = open(p1, O_CREAT | O_EXCL | O_WRONLY, 0644);
		if (fd < 0)
			goto fail;
		if (close(fd))
			goto fail;
		w->slot[s] = ++w->nfid;
		w->size[w->nfid] = 0;
	} else if (r < 42) { /* write, append, write + fsync */
		uint64_t off, len, seed = rnd(&w->rng), size;
		int append = r < 18, sync = r >= 36;
		uint32_t fid;

		s = pick(w, 0, 1);
		if (s < 0)
			return 1;
		fid = w->slot[s];
		size = w->size[fid];
		if (size >= MAX_SIZE)
			append = 0; /* full: O_APPEND would write past MAX_SIZE */
		len = pick_len(w);
		if (append)
			off = size;
		else if (rnd(&w->rng) % 4 == 0)
			off = rnd(&w->rng) % (MAX_SIZE / 2);
		else
			off = rnd(&w->rng) % (size + 4096);
		if (off >= MAX_SIZE)
			off = MAX_SIZE - 1;
		if (off + len > MAX_SIZE)
			len = MAX_SIZE - off;
		spath(w, s, p1, sizeof(p1));
		jwrite(w, "S %" PRIu64 " write %u %" PRIu64 " %" PRIu64 " %" PRIu64 " %d\n", n, fid,
		       off, len, seed, sync);
		gen_bytes(seed, w->buf, len);
		fd = open(p1, O_WRONLY | (append ? O_APPEND : 0));
		if (fd < 0 || write_all(fd, w->buf, len, (off_t)off, append) ||
		    (sync && fsync(fd)) || close(fd))
			goto fail;
		if (off + len > size)
			w->size[fid] = off + len;
	} else if (r < 48) { /* truncate */
		uint64_t size, to;
		uint32_t fid;

		s = pick(w, 0, 1);
		if (s < 0)
			return 1;
		fid = w->slot[s];
		size = w->size[fid];
		to = rnd(&w->rng) % (size + size / 2 + 8192);
		if (to > MAX_SIZE)
			to = MAX_SIZE;
		spath(w, s, p1, sizeof(p1));
		jwrite(w, "S %" PRIu64 " trunc %u %" PRIu64 "\n", n, fid, to);
		fd = open(p1, O_WRONLY);
		if (fd < 0 || ftruncate(fd, (off_t)to) || close(fd))
			goto fail;
		w->size[fid] = to;
	} else if (r < 56) { /* fsync, fdatasync */
		int data = r >= 53;

		s = pick(w, 0, 1);
		if (s < 0)
			return 1;
		spath(w, s, p1, sizeof(p1));
		jwrite(w, "S %" PRIu64 " %s %u\n", n, data ? "fdatasync" : "fsync", w->slot[s]);
		fd = open(p1, O_RDONLY);
		if (fd < 0 || (data ? fdatasync(fd) : fsync(fd)) || close(fd))
			goto fail;
	} else if (r < 61) { /* fsyncdir */
		t = (int)(rnd(&w->rng) % (NDIRS + 1));
		if (t == NDIRS)
			snprintf(r1, sizeof(r1), ".");
		else
			snprintf(r1, sizeof(r1), "d%d", t);
		wpath(w, r1, p1, sizeof(p1));
		jwrite(w, "S %" PRIu64 " fsyncdir %s\n", n, r1);
		fd = open(p1, O_RDONLY | O_DIRECTORY);
		if (fd < 0 || fsync(fd) || close(fd))
			goto fail;
	} else if (r < 75) { /* rename a file */
		s = pick(w, 0, 1);
		t = (int)(rnd(&w->rng) % NSLOTS);
		if (s < 0 || slot_is_dir(t) || s == t)
			return 1;
		slot_name(s, r1, sizeof(r1));
		slot_name(t, r2, sizeof(r2));
		spath(w, s, p1, sizeof(p1));
		spath(w, t, p2, sizeof(p2));
		jwrite(w, "S %" PRIu64 " rename %s %s\n", n, r1, r2);
		if (rename(p1, p2))
			goto fail;
		w->slot[t] = w->slot[s];
		w->slot[s] = 0;
	} else if (r < 78) { /* exchange two files */
		uint32_t tmp;

		s = pick(w, 0, 1);
		t = pick(w, 0, 1);
		if (!w->use_exchange || s < 0 || s == t)
			return 1;
		slot_name(s, r1, sizeof(r1));
		slot_name(t, r2, sizeof(r2));
		spath(w, s, p1, sizeof(p1));
		spath(w, t, p2, sizeof(p2));
		jwrite(w, "S %" PRIu64 " exchange %s %s\n", n, r1, r2);
		if (renameat2(AT_FDCWD, p1, AT_FDCWD, p2, RENAME_EXCHANGE))
			goto fail;
		tmp = w->slot[t];
		w->slot[t] = w->slot[s];
		w->slot[s] = tmp;
	} else if (r < 88) { /* unlink */
		s = pick(w, 0, 1);
		if (s < 0)
			return 1;
		slot_name(s, r1, sizeof(r1));
		spath(w, s, p1, sizeof(p1));
		jwrite(w, "S %" PRIu64 " unlink %s\n", n, r1);
		if (unlink(p1))
			goto fail;
		w->slot[s] = 0;
	} else if (r < 93) { /* mkdir */
		s = pick(w, 1, 0);
		if (s < 0)
			return 1;
		slot_name(s, r1, sizeof(r1));
		spath(w, s, p1, sizeof(p1));
		jwrite(w, "S %" PRIu64 " mkdir %s\n", n, r1);
		if (mkdir(p1, 0755))
			goto fail;
		w->slot[s] = 1;
	} else if (r < 96) { /* rmdir */
		s = pick(w, 1, 1);
		if (s < 0)
			return 1;
		slot_name(s, r1, sizeof(r1));
		spath(w, s, p1, sizeof(p1));
		jwrite(w, "S %" PRIu64 " rmdir %s\n", n, r1);
		if (rmdir(p1))
			goto fail;
		w->slot[s] = 0;
	} else { /* rename an empty directory */
		s = pick(w, 1, 1);
		t = (int)(rnd(&w->rng) % NSLOTS);
		if (s < 0 || !slot_is_dir(t) || s == t)
			return 1;
		slot_name(s, r1, sizeof(r1));
		slot_name(t, r2, sizeof(r2));
		spath(w, s, p1, sizeof(p1));
		spath(w, t, p2, sizeof(p2));
		jwrite(w, "S %" PRIu64 " rename %s %s\n", n, r1, r2);
		if (rename(p1, p2))
			goto fail;
		w->slot[t] = 1;
		w->slot[s] = 0;
	}
	jwrite(w, "D %" PRIu64 "\n", n);
	w->n++;
	return ret;
fail:
	w->err = errno;
	jwrite(w, "E %" PRIu64 " %d %s\n", n, w->err,
	       access(w->killed, F_OK) ? "alive" : "crashed");
	return -1;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int e;

	while (w->n < w->max_ops && (e = step(w)) >= 0)
		;
	return NULL;
}

static void mkdir_sync(const char *path)
{
	int fd;

	if (mkdir(path, 0755) && errno != EEXIST)
		die("mkdir %s: %s", path, strerror(errno));
	fd = open(path, O_RDONLY | O_DIRECTORY);
	if (fd < 0 || fsync(fd) || close(fd))
		die("fsync %s: %s", path, strerror(errno));
}

/* Does the mount do renameat2(RENAME_EXCHANGE)? */
static int probe_exchange(const char *root)
{
	char a[4200], b[4200];
	int ok, fd;

	snprintf(a, sizeof(a), "%s/xa", root);
	snprintf(b, sizeof(b), "%s/xb", root);
	fd = open(a, O_CREAT | O_WRONLY, 0644);
	if (fd < 0 || close(fd))
		die("create %s: %s", a, strerror(errno));
	fd = open(b, O_CREAT | O_WRONLY, 0644);
	if (fd < 0 || close(fd))
		die("create %s: %s", b, strerror(errno));
	ok = renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) == 0;
	if (unlink(a) || unlink(b))
		die("unlink %s: %s", a, strerror(errno));
	return ok;
}

static int cmd_run(int argc, char **argv)
{
	const char *root, *logdir, *ready;
	struct worker *w;
	pthread_t thr[MAX_THREADS];
	uint64_t seed;
	int nthr, fd, xchg, first = 0, step_by, status;
	char path[4200];
	pid_t child;

	if (argc != 8)
		die("usage: crashload run ROOT LOGDIR SEED THREADS READY CRASHED");
	root = argv[2];
	logdir = argv[3];
	seed = strtoull(argv[4], NULL, 0);
	nthr = atoi(argv[5]);
	ready = argv[6];
	if (nthr < 1 || nthr > MAX_THREADS)
		die("THREADS: 1 to %d", MAX_THREADS);
	ticket = mmap(NULL, sizeof(*ticket), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
		      0);
	if (ticket == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	atomic_store(ticket, 1);
	mkdir_sync(root);
	xchg = probe_exchange(root);
	w = xcalloc((size_t)nthr, sizeof(*w));
	for (int i = 0; i < nthr; i++) {
		w[i].id = i;
		w[i].rng = mix(seed * 31 + (uint64_t)i);
		w[i].use_exchange = xchg;
		w[i].killed = argv[7];
		w[i].sync_pct = (unsigned[]){ 100, 40, 10, 3 }[mix(seed + (uint64_t)i) % 4];
		w[i].max_ops = getenv("CRASHLOAD_MAX_OPS") ?
				       strtoull(getenv("CRASHLOAD_MAX_OPS"), NULL, 0) :
				       UINT64_MAX;
		w[i].buf = xmalloc(MAX_SIZE);
		snprintf(w[i].base, sizeof(w[i].base), "%s/t%d", root, i);
		snprintf(path, sizeof(path), "%s/t%d.log", logdir, i);
		w[i].log = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
		if (w[i].log < 0)
			die("%s: %s", path, strerror(errno));
		for (int d = 0; d < NDIRS; d++) {
			snprintf(path, sizeof(path), "%s/d%d", w[i].base, d);
			if (d == 0)
				mkdir_sync(w[i].base);
			mkdir_sync(path);
		}
		mkdir_sync(w[i].base);
	}
	mkdir_sync(root);
	snprintf(path, sizeof(path), "%s/..", root);
	mkdir_sync(path);
	fd = open(ready, O_CREAT | O_WRONLY, 0644);
	if (fd < 0 || close(fd))
		die("%s: %s", ready, strerror(errno));
	/* Two processes (with more than one thread): the odd threads in a
	 * child. */
	child = nthr > 1 ? fork() : -1;
	if (child == 0)
		first = 1;
	else if (child < 0 && nthr > 1)
		die("fork: %s", strerror(errno));
	step_by = nthr > 1 ? 2 : 1;
	for (int i = first; i < nthr; i += step_by)
		if (pthread_create(&thr[i], NULL, worker_main, &w[i]))
			die("pthread_create failed");
	for (int i = first; i < nthr; i += step_by) {
		pthread_join(thr[i], NULL);
		printf("thread %d: %" PRIu64 " ops, stopped by %s\n", i, w[i].n, ename(w[i].err));
	}
	for (int i = 0; i < nthr; i++) {
		close(w[i].log);
		free(w[i].buf);
		free(w[i].size);
	}
	if (child == 0) {
		fflush(stdout);
		_exit(0);
	}
	free(w);
	if (child > 0) {
		while (waitpid(child, &status, 0) < 0)
			if (errno != EINTR)
				die("waitpid: %s", strerror(errno));
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			die("the workload's second process failed (status %#x)", status);
	}
	return 0;
}

/* ---- the verifier ------------------------------------------------------ */

enum op_kind {
	OP_CREATE,
	OP_WRITE,
	OP_TRUNC,
	OP_FSYNC,
	OP_FSYNCDIR,
	OP_RENAME,
	OP_EXCHANGE,
	OP_UNLINK,
	OP_MKDIR,
	OP_RMDIR,
};

struct op {
	enum op_kind kind;
	int a, b;     /* slots */
	uint32_t fid; /* create, write, trunc, fsync */
	uint64_t off, len, seed;
	int sync;		     /* a write + fsync, or an fsync: a durability point */
	uint64_t s_ticket, d_ticket; /* of its S and D records */
	char text[160];		     /* the S record, for messages */
};

struct journal {
	struct op *ops;
	size_t n, cap;
	size_t done;   /* ops 0..done-1 returned success */
	int inflight;  /* op `done` was issued and did not return success */
	int err;       /* its errno (E record), 0 if none */
	int alive;     /* ... and it failed before the crash */
	uint32_t nfid; /* highest fid */
};

static void parse_journal(const char *path, struct journal *j)
{
	FILE *fp = fopen(path, "r");
	char buf[512], *line, kind[32], x[64], y[64];
	unsigned long long n, tk;
	size_t lineno = 0;

	if (!fp)
		die("%s: %s", path, strerror(errno));
	memset(j, 0, sizeof(*j));
	while (fgets(buf, sizeof(buf), fp)) {
		struct op *o;
		int e, k;

		lineno++;
		if (sscanf(buf, "%llu %n", &tk, &k) != 1)
			die("%s:%zu: no ticket", path, lineno);
		line = buf + k;
		if (line[0] == 'D') {
			if (sscanf(line, "D %llu", &n) != 1 || n != j->done || j->done + 1 != j->n)
				die("%s:%zu: bad D record", path, lineno);
			j->ops[j->done++].d_ticket = tk;
			continue;
		}
		if (line[0] == 'E') {
			if (sscanf(line, "E %llu %d %31s", &n, &e, kind) != 3 || n != j->done ||
			    j->done + 1 != j->n)
				die("%s:%zu: bad E record", path, lineno);
			j->err = e;
			j->alive = !strcmp(kind, "alive");
			continue;
		}
		if (line[0] != 'S' || sscanf(line, "S %llu %31s", &n, kind) != 2 || n != j->n ||
		    j->done != j->n || j->err)
			die("%s:%zu: bad record '%s'", path, lineno, line);
		if (j->n == j->cap) {
			j->cap = j->cap ? 2 * j->cap : 1024;
			j->ops = realloc(j->ops, j->cap * sizeof(*j->ops));
			if (!j->ops)
				die("out of memory");
		}
		o = &j->ops[j->n++];
		memset(o, 0, sizeof(*o));
		o->s_ticket = tk;
		o->a = o->b = -1; /* no name */
		line[strcspn(line, "\n")] = '\0';
		snprintf(o->text, sizeof(o->text), "%.150s", line + 2);
		x[0] = y[0] = '\0';
		if (!strcmp(kind, "create")) {
			o->kind = OP_CREATE;
			if (sscanf(line, "S %*u %*s %63s %u", x, &o->fid) != 2)
				goto bad;
			o->a = slot_parse(x);
			if (o->fid != j->nfid + 1)
				goto bad;
			j->nfid = o->fid;
		} else if (!strcmp(kind, "write")) {
			o->kind = OP_WRITE;
			if (sscanf(line, "S %*u %*s %u %" SCNu64 " %" SCNu64 " %" SCNu64 " %d",
				   &o->fid, &o->off, &o->len, &o->seed, &o->sync) != 5)
				goto bad;
		} else if (!strcmp(kind, "trunc")) {
			o->kind = OP_TRUNC;
			if (sscanf(line, "S %*u %*s %u %" SCNu64, &o->fid, &o->off) != 2)
				goto bad;
		} else if (!strcmp(kind, "fsync") || !strcmp(kind, "fdatasync")) {
			o->kind = OP_FSYNC;
			o->sync = 1;
			if (sscanf(line, "S %*u %*s %u", &o->fid) != 1)
				goto bad;
		} else if (!strcmp(kind, "fsyncdir")) {
			o->kind = OP_FSYNCDIR;
			o->sync = 1;
		} else if (!strcmp(kind, "rename") || !strcmp(kind, "exchange")) {
			o->kind = kind[0] == 'r' ? OP_RENAME : OP_EXCHANGE;
			if (sscanf(line, "S %*u %*s %63s %63s", x, y) != 2)
				goto bad;
			o->a = slot_parse(x);
			o->b = slot_parse(y);
			if (o->b < 0)
				goto bad;
		} else if (!strcmp(kind, "unlink") || !strcmp(kind, "mkdir") ||
			   !strcmp(kind, "rmdir")) {
			o->kind = kind[0] == 'u' ? OP_UNLINK : kind[0] == 'm' ? OP_MKDIR : OP_RMDIR;
			if (sscanf(line, "S %*u %*s %63s", x) != 1)
				goto bad;
			o->a = slot_parse(x);
		} else {
			goto bad;
		}
		if ((o->a < 0 && (o->kind == OP_CREATE || o->kind >= OP_RENAME)) ||
		    ((o->kind == OP_WRITE || o->kind == OP_TRUNC || o->kind == OP_FSYNC) &&
		     (o->fid == 0 || o->fid > j->nfid)) ||
		    (o->kind == OP_WRITE && o->off + o->len > MAX_SIZE) ||
		    (o->kind == OP_TRUNC && o->off > MAX_SIZE))
			goto bad;
		continue;
bad:
		die("%s:%zu: bad op '%s'", path, lineno, line);
	}
	fclose(fp);
	j->inflight = j->n > j->done;
}

/* What is at a name after the crash. */
struct found {
	int kind; /* 0 nothing, 1 regular file, 2 empty directory, 3 other */
	unsigned char *data;
	size_t size;
	char what[64]; /* for "other" */
};

/* The model while replaying: per slot a fid (files) or 1 (dirs), per fid
 * its content. */
struct model {
	uint32_t slot[NSLOTS];
	unsigned char **data; /* by fid; zero from size to cap */
	size_t *size, *cap;
	uint32_t nfid;
};

static void model_init(struct model *m, uint32_t nfid)
{
	memset(m->slot, 0, sizeof(m->slot));
	m->nfid = nfid;
	m->data = xcalloc(nfid + 1, sizeof(*m->data));
	m->size = xcalloc(nfid + 1, sizeof(*m->size));
	m->cap = xcalloc(nfid + 1, sizeof(*m->cap));
}

static void model_free(struct model *m)
{
	for (uint32_t i = 0; i <= m->nfid; i++)
		free(m->data[i]);
	free(m->data);
	free(m->size);
	free(m->cap);
}

static void set_size(struct model *m, uint32_t fid, size_t size)
{
	if (size > m->cap[fid] || !m->data[fid]) {
		size_t cap = m->cap[fid] * 2 > size ? m->cap[fid] * 2 : size + 4096;
		unsigned char *p = realloc(m->data[fid], cap);

		if (!p)
			die("out of memory");
		memset(p + m->cap[fid], 0, cap - m->cap[fid]);
		m->data[fid] = p;
		m->cap[fid] = cap;
	}
	if (size < m->size[fid])
		memset(m->data[fid] + size, 0, m->size[fid] - size);
	m->size[fid] = size;
}

/* The file in slot @s is gone (unlinked or replaced): free its content. */
static void drop_file(struct model *m, int s)
{
	uint32_t fid = m->slot[s];

	if (!fid || slot_is_dir(s))
		return;
	free(m->data[fid]);
	m->data[fid] = NULL;
	m->size[fid] = m->cap[fid] = 0;
}

/* Apply op @o; the slots it changes get flagged in @touched. */
static void model_apply(struct model *m, const struct op *o, int *touched)
{
	uint32_t tmp;

	switch (o->kind) {
	case OP_CREATE:
		m->slot[o->a] = o->fid;
		set_size(m, o->fid, 0);
		touched[o->a] = 1;
		break;
	case OP_WRITE:
		if (o->off + o->len > m->size[o->fid])
			set_size(m, o->fid, o->off + o->len);
		gen_bytes(o->seed, m->data[o->fid] + o->off, o->len);
		break;
	case OP_TRUNC:
		set_size(m, o->fid, o->off);
		break;
	case OP_FSYNC:
	case OP_FSYNCDIR:
		break;
	case OP_RENAME:
		drop_file(m, o->b);
		m->slot[o->b] = m->slot[o->a];
		m->slot[o->a] = 0;
		touched[o->a] = touched[o->b] = 1;
		break;
	case OP_EXCHANGE:
		tmp = m->slot[o->b];
		m->slot[o->b] = m->slot[o->a];
		m->slot[o->a] = tmp;
		touched[o->a] = touched[o->b] = 1;
		break;
	case OP_UNLINK:
	case OP_RMDIR:
		drop_file(m, o->a);
		m->slot[o->a] = 0;
		touched[o->a] = 1;
		break;
	case OP_MKDIR:
		m->slot[o->a] = 1;
		touched[o->a] = 1;
		break;
	}
	if (o->kind == OP_WRITE || o->kind == OP_TRUNC) {
		for (int s = 0; s < NSLOTS; s++)
			if (!slot_is_dir(s) && m->slot[s] == o->fid)
				touched[s] = 1;
	}
}

/* Does what was found at slot @s match the model? */
static int slot_match(const struct model *m, int s, const struct found *f)
{
	uint32_t fid = m->slot[s];

	if (!fid)
		return f->kind == 0;
	if (slot_is_dir(s))
		return f->kind == 2;
	return f->kind == 1 && f->size == m->size[fid] && !memcmp(f->data, m->data[fid], f->size);
}

/*
 * Could the file of slot @s be op @o (a write or truncate of it) partly
 * done: at each byte the byte of the version before (the model now) or of
 * the version after, and a size between theirs?
 */
static int partial_match(const struct model *m, int s, const struct op *o, const struct found *f)
{
	const unsigned char *before = m->data[o->fid];
	size_t bsize = m->size[o->fid], asize, lo, hi;
	unsigned char *gen = NULL;
	int ok = 1;

	if (f->kind != 1 || m->slot[s] != o->fid)
		return 0;
	if (o->kind == OP_WRITE) {
		asize = o->off + o->len > bsize ? o->off + o->len : bsize;
		gen = xmalloc(o->len);
		gen_bytes(o->seed, gen, o->len);
	} else {
		asize = o->off;
	}
	lo = bsize < asize ? bsize : asize;
	hi = bsize < asize ? asize : bsize;
	if (f->size < lo || f->size > hi)
		ok = 0;
	for (size_t i = 0; ok && i < f->size; i++) {
		unsigned char b = f->data[i];

		if (i < bsize && b == before[i])
			continue;
		if (i >= asize)
			ok = 0;
		else if (gen && i >= o->off && i < o->off + o->len)
			ok = b == gen[i - o->off];
		else
			ok = b == (i < bsize ? before[i] : 0);
	}
	free(gen);
	return ok;
}

static void describe(const struct model *m, int s, char *buf, size_t cap)
{
	uint32_t fid = m->slot[s];

	if (!fid)
		snprintf(buf, cap, "nothing");
	else if (slot_is_dir(s))
		snprintf(buf, cap, "an empty directory");
	else
		snprintf(buf, cap, "file %u, %zu bytes", fid, m->size[fid]);
}

static void describe_found(const struct found *f, const struct model *m, int s, char *buf,
			   size_t cap)
{
	uint32_t fid = m->slot[s];
	size_t i = 0;

	switch (f->kind) {
	case 0:
		snprintf(buf, cap, "nothing");
		break;
	case 1:
		if (fid && !slot_is_dir(s)) {
			size_t n = f->size < m->size[fid] ? f->size : m->size[fid];

			while (i < n && f->data[i] == m->data[fid][i])
				i++;
			snprintf(buf, cap, "a file of %zu bytes (first difference at byte %zu)",
				 f->size, i);
		} else {
			snprintf(buf, cap, "a file of %zu bytes", f->size);
		}
		break;
	case 2:
		snprintf(buf, cap, "an empty directory");
		break;
	default:
		snprintf(buf, cap, "%s", f->what);
	}
}

/* Read what is at ROOT/t<i>/<slot> into @f. */
static void read_found(const char *base, int s, struct found *f)
{
	char rel[32], path[4200];
	struct stat st;

	memset(f, 0, sizeof(*f));
	slot_name(s, rel, sizeof(rel));
	snprintf(path, sizeof(path), "%s/%s", base, rel);
	if (lstat(path, &st)) {
		if (errno != ENOENT)
			die("lstat %s: %s", path, strerror(errno));
		return;
	}
	if (S_ISREG(st.st_mode)) {
		int fd = open(path, O_RDONLY);
		size_t got = 0;

		if (fd < 0)
			die("open %s: %s", path, strerror(errno));
		f->kind = 1;
		f->size = (size_t)st.st_size;
		f->data = xmalloc(f->size + 1);
		while (got <= f->size) {
			ssize_t n = read(fd, f->data + got, f->size + 1 - got);

			if (n < 0)
				die("read %s: %s", path, strerror(errno));
			if (n == 0)
				break;
			got += (size_t)n;
		}
		close(fd);
		if (got != f->size) {
			f->kind = 3;
			snprintf(f->what, sizeof(f->what),
				 "a file whose size %zu reads as %zu bytes", f->size, got);
		} else if (st.st_nlink != 1) {
			f->kind = 3;
			snprintf(f->what, sizeof(f->what), "a file with link count %ju",
				 (uintmax_t)st.st_nlink);
		}
	} else if (S_ISDIR(st.st_mode)) {
		DIR *d = opendir(path);
		struct dirent *e;
		int n = 0;

		if (!d)
			die("opendir %s: %s", path, strerror(errno));
		while ((e = readdir(d)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
				n++;
		closedir(d);
		f->kind = n ? 3 : 2;
		if (n)
			snprintf(f->what, sizeof(f->what), "a directory of %d entries", n);
		if (st.st_nlink != 2) {
			f->kind = 3;
			snprintf(f->what, sizeof(f->what), "a directory with nlink %ju",
				 (uintmax_t)st.st_nlink);
		}
	} else {
		f->kind = 3;
		snprintf(f->what, sizeof(f->what), "a file of mode %o", st.st_mode);
	}
}

/* Every name in ROOT/t<i> and its d<j> must be one of ours. */
static int check_names(const char *base)
{
	char path[4200];
	int bad = 0;

	for (int d = -1; d < NDIRS; d++) {
		DIR *dir;
		struct dirent *e;

		if (d < 0)
			snprintf(path, sizeof(path), "%s", base);
		else
			snprintf(path, sizeof(path), "%s/d%d", base, d);
		dir = opendir(path);
		if (!dir) {
			printf("  %s: %s\n", path, strerror(errno));
			bad++;
			continue;
		}
		while ((e = readdir(dir))) {
			char rel[300];

			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			if (d < 0) {
				int k;
				char c;

				if (sscanf(e->d_name, "d%d%c", &k, &c) == 1 && k >= 0 && k < NDIRS)
					continue;
			} else {
				snprintf(rel, sizeof(rel), "d%d/%s", d, e->d_name);
				if (slot_parse(rel) >= 0)
					continue;
			}
			printf("  %s/%s: a name the workload never made\n", path, e->d_name);
			bad++;
		}
		closedir(dir);
	}
	return bad;
}

/* The connection aborted: requests in flight get ECONNABORTED, later ones
 * ENOTCONN, and writeback (close, fsync) EIO. */
/* The last few ops on slot @s or on file @fid (0: none). */
static void print_history(const struct journal *j, int s, uint32_t fid)
{
	size_t i, shown = 0, from = j->n;

	while (from > 0 && shown < 10) {
		const struct op *o = &j->ops[--from];

		if (o->a == s || ((o->kind == OP_RENAME || o->kind == OP_EXCHANGE) && o->b == s) ||
		    (fid && !slot_is_dir(s) && o->fid == fid && o->kind != OP_CREATE))
			shown++;
	}
	for (i = from; i < j->n; i++) {
		const struct op *o = &j->ops[i];

		if (o->a == s || ((o->kind == OP_RENAME || o->kind == OP_EXCHANGE) && o->b == s) ||
		    (fid && !slot_is_dir(s) && o->fid == fid && o->kind != OP_CREATE))
			printf("      op %s%s\n", o->text, i < j->done ? "" : " (in flight)");
	}
}

static int allowed_errno(int e)
{
	return e == ENOTCONN || e == ECONNABORTED || e == EIO;
}

/*
 * One thread's tree against its journal. Returns the number of problems
 * (each printed).
 */
static int check_thread(const char *root, int t, struct journal *jp, int sync_mode,
			uint64_t sync_ticket)
{
	char base[4096], a[128], b[128];
	struct journal j = *jp;
	struct found found[NSLOTS];
	struct model m;
	int touched[NSLOTS], match[NSLOTS], nbad = 0, problems = 0;
	size_t cmin = 0, cmax, best = 0, c, ncut;
	int *bad_at;
	size_t partial = SIZE_MAX; /* the tree is op `partial` partly done */
	const struct op *fl;

	snprintf(base, sizeof(base), "%s/t%d", root, t);
	if (j.err && (j.alive || !allowed_errno(j.err))) {
		printf("  t%d: op %zu (%s) failed with %s %s\n", t, j.done, j.ops[j.done].text,
		       ename(j.err), j.alive ? "before the crash" : "(not what a crash gives)");
		problems++;
	}
	problems += check_names(base);
	for (int s = 0; s < NSLOTS; s++)
		read_found(base, s, &found[s]);

	/* The lowest cut the promises allow. */
	if (sync_mode)
		cmin = j.done;
	for (size_t i = 0; i < j.done; i++) {
		/* Its own durability points, and every op that returned before
		 * any thread's durability point was issued: kvfs_sync waits for
		 * everything acknowledged. */
		if ((j.ops[i].sync || j.ops[i].d_ticket < sync_ticket) && i + 1 > cmin)
			cmin = i + 1;
	}
	cmax = j.done + (size_t)j.inflight;
	ncut = cmax + 1;
	bad_at = xcalloc(ncut, sizeof(*bad_at));

	/* Replay: after c ops, how many names disagree with what was found? */
	model_init(&m, j.nfid);
	for (int s = 0; s < NSLOTS; s++) {
		match[s] = slot_match(&m, s, &found[s]);
		nbad += !match[s];
	}
	bad_at[0] = nbad;
	for (c = 1; c < ncut; c++) {
		const struct op *o = &j.ops[c - 1];

		/* A write or truncate goes to the engine in several requests
		 * (the writeback of its pages): the log may end among them. */
		if (c - 1 >= cmin && partial == SIZE_MAX &&
		    (o->kind == OP_WRITE || o->kind == OP_TRUNC)) {
			int s;

			for (s = 0; s < NSLOTS; s++)
				if (!slot_is_dir(s) && m.slot[s] == o->fid)
					break;
			if (s < NSLOTS && bad_at[c - 1] - !match[s] == 0 &&
			    partial_match(&m, s, o, &found[s]))
				partial = c - 1;
		}
		memset(touched, 0, sizeof(touched));
		model_apply(&m, o, touched);
		for (int s = 0; s < NSLOTS; s++) {
			if (!touched[s])
				continue;
			nbad -= !match[s];
			match[s] = slot_match(&m, s, &found[s]);
			nbad += !match[s];
		}
		bad_at[c] = nbad;
	}
	fl = j.inflight ? &j.ops[j.done] : NULL;
	for (c = cmin; c < ncut; c++)
		if (bad_at[c] == 0)
			break;
	if (c < ncut || partial != SIZE_MAX) {
		if (c < ncut)
			printf("t%d: %zu ops done%s, durable from %zu: the tree is their state after "
			       "%zu\n",
			       t, j.done, j.inflight ? " + 1 in flight" : "", cmin, c);
		else
			printf("t%d: %zu ops done%s, durable from %zu: the tree is their "
			       "state with op %zu partly done\n",
			       t, j.done, j.inflight ? " + 1 in flight" : "", cmin, partial);
		goto out;
	}

	/* No cut explains the tree: show the closest allowed one. */
	problems++;
	best = cmin;
	for (c = cmin; c < ncut; c++)
		if (bad_at[c] < bad_at[best])
			best = c;
	for (c = 0; c < ncut; c++)
		if (bad_at[c] == 0)
			break;
	printf("  t%d: no state after %zu..%zu of its %zu ops (%zu done%s) is what the disk "
	       "holds;\n  the closest is after %zu ops (%d names differ)%s\n",
	       t, cmin, cmax, j.n, j.done, j.inflight ? ", 1 in flight" : "", best, bad_at[best],
	       c < ncut ? "" : "; no cut at all matches");
	if (c < ncut)
		printf("  (the tree is the state after %zu ops: below what was durable)\n", c);
	if (fl)
		printf("  in flight: %s (%s)\n", fl->text, j.err ? ename(j.err) : "no reply");
	model_free(&m);
	model_init(&m, j.nfid);
	for (c = 0; c < best; c++)
		model_apply(&m, &j.ops[c], touched);
	for (int s = 0; s < NSLOTS; s++) {
		char rel[32];

		if (slot_match(&m, s, &found[s]))
			continue;
		slot_name(s, rel, sizeof(rel));
		describe(&m, s, a, sizeof(a));
		describe_found(&found[s], &m, s, b, sizeof(b));
		printf("    %s/%s: expected %s, found %s\n", base, rel, a, b);
		print_history(&j, s, m.slot[s]);
	}
out:
	model_free(&m);
	free(bad_at);
	for (int s = 0; s < NSLOTS; s++)
		free(found[s].data);
	return problems;
}

static int cmd_check(int argc, char **argv)
{
	const char *root, *logdir;
	int sync_mode, problems = 0, t, nthr;
	struct journal j[MAX_THREADS];
	uint64_t sync_ticket = 0;
	char path[4200];

	if (argc != 6 || (strcmp(argv[4], "sync") && strcmp(argv[4], "batch")) ||
	    (strcmp(argv[5], "kill") && strcmp(argv[5], "powercut")))
		die("usage: crashload check ROOT LOGDIR sync|batch kill|powercut");
	root = argv[2];
	logdir = argv[3];
	sync_mode = !strcmp(argv[4], "sync");
	for (nthr = 0; nthr < MAX_THREADS; nthr++) {
		snprintf(path, sizeof(path), "%s/t%d.log", logdir, nthr);
		if (access(path, F_OK))
			break;
		parse_journal(path, &j[nthr]);
		/* The last durability point issued by any thread. */
		for (size_t i = 0; i < j[nthr].done; i++)
			if (j[nthr].ops[i].sync && j[nthr].ops[i].s_ticket > sync_ticket)
				sync_ticket = j[nthr].ops[i].s_ticket;
	}
	if (nthr == 0)
		die("%s: no journals", logdir);
	for (t = 0; t < nthr; t++) {
		problems += check_thread(root, t, &j[t], sync_mode, sync_ticket);
		free(j[t].ops);
	}
	if (problems)
		printf("crashload check: %d problems\n", problems);
	fflush(stdout);
	return problems ? 1 : 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 2 && !strcmp(argv[1], "run"))
		return cmd_run(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "check"))
		return cmd_check(argc, argv);
	die("usage: crashload run ROOT LOGDIR SEED THREADS READY | "
	    "crashload check ROOT LOGDIR sync|batch kill|powercut");
}
