// SPDX-License-Identifier: MIT
/*
 * fsbench's phases on one target directory.
 *
 * Everything happens under t->work (TARGET/fsbench.PID), removed at the end
 * even after a failure.
 *
 * Metadata (like mdtest): for each thread count T, and for T > 1 once more
 * with all threads in one shared directory, files f<index> are made with
 * open(O_CREAT|O_EXCL)+close (create), looked at with fstatat (stat), listed
 * with getdents64 (readdir: each thread lists its directory, in the shared
 * variant the whole shared one; ops are entries, a latency sample is one
 * getdents64 call of 64 KiB), renamed to r<index> in the same directory
 * (rename) and removed (unlink). o->files is the total of one variant,
 * split evenly among the threads. Each thread works through a directory fd
 * (the *at calls), so the path walk to the target is not measured. The wall
 * time of a phase runs from the first thread's start (after a barrier) to
 * the last thread's end; each operation is timed alone for the latencies.
 *
 * Data: seqwrite writes o->seq_size bytes in o->block writes to a new file
 * and fsyncs it (the rate is over both; the fsync time is reported apart);
 * seqread reads it back in o->block reads after dropping what can be
 * dropped: the file's pages with posix_fadvise(DONTNEED) after the fsync,
 * a FUSE filesystem's page cache included; with --drop-caches also every
 * cache of the machine (so that the files under a FUSE daemon are read from
 * the disk too); with --odirect the read uses O_DIRECT where the target
 * accepts it. randread/randwrite: 4 KiB pread / pwrite+fsync at uniformly
 * random aligned offsets of a file of o->rand_size bytes, made (untimed)
 * beforehand.
 *
 * Tree: tar -xf the given (uncompressed) tarball, syncfs+fsync of the tree
 * (sync), find, grep -r -F, tar -cf - piped to fsbench (GNU tar skips
 * reading the files when its archive is /dev/null itself) and rm -rf, each
 * timed from fork to exit.
 */
#include "fsbench.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define RAND_IO 4096
#define DENTS_BUF 65536

/* ---- results ----------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted @v. */
static double pct(const uint64_t *v, size_t n, double q)
{
	size_t i = (size_t)(q * (double)n + 0.999999);

	if (i < 1)
		i = 1;
	if (i > n)
		i = n;
	return (double)v[i - 1] / 1000.0;
}

/* Sorts @lat (ns) and fills r's latency fields. */
static void set_lat(struct fsb_result *r, uint64_t *lat, size_t n)
{
	double sum = 0;

	r->nlat = (int)(n > INT32_MAX ? INT32_MAX : n);
	if (!n)
		return;
	qsort(lat, n, sizeof(*lat), cmp_u64);
	for (size_t i = 0; i < n; i++)
		sum += (double)lat[i];
	r->lat_us[0] = sum / (double)n / 1000.0;
	r->lat_us[1] = pct(lat, n, 0.50);
	r->lat_us[2] = pct(lat, n, 0.90);
	r->lat_us[3] = pct(lat, n, 0.99);
	r->lat_us[4] = pct(lat, n, 0.999);
	r->lat_us[5] = (double)lat[n - 1] / 1000.0;
}

static struct fsb_result *new_result(struct fsb_target *t, enum fsb_phase p)
{
	struct fsb_result *r;

	if (t->nres == FSB_MAX_RESULTS)
		return NULL;
	r = &t->res[t->nres++];
	memset(r, 0, sizeof(*r));
	r->phase = p;
	r->threads = 1;
	return r;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The phase ran from @t0 to @t1 (CLOCK_MONOTONIC ns). */
static void set_time(struct fsb_result *r, uint64_t t0, uint64_t t1)
{
	r->secs = (double)(t1 - t0) / 1e9;
	r->mono_start = (double)t0 / 1e9;
	r->mono_end = (double)t1 / 1e9;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/*
 * Disk writes of timed phase @r (NULL: untimed, nothing to do): disk_start
 * just before its clock starts, disk_stop just after it stops, both outside
 * the timed part. No sync is added: a phase that ends without one leaves
 * its writeback (the kernel's, a FUSE daemon's) to land later, uncounted
 * here. Between the two calls disk_written holds the reading at the start.
 */
static void disk_start(const struct fsb_opts *o, struct fsb_result *r)
{
	if (r)
		r->has_disk = !fsb_disk_written(o->disks, &r->disk_written, NULL, 0);
}

static void disk_stop(const struct fsb_opts *o, struct fsb_result *r)
{
	uint64_t now;

	if (!r || !r->has_disk)
		return;
	if (fsb_disk_written(o->disks, &now, NULL, 0) || now < r->disk_written) {
		/* a disk went away: the difference means nothing */
		r->has_disk = 0;
		r->disk_written = 0;
		return;
	}
	r->disk_written = now - r->disk_written;
}

/* sync, then drop the page, dentry and inode caches (root only; checked at
 * start). */
static int drop_caches(const struct fsb_opts *o)
{
	int fd;

	if (!o->drop_caches)
		return 0;
	sync();
	fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "3\n", 2) != 2) {
		fsb_err("/proc/sys/vm/drop_caches: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* ---- metadata ---------------------------------------------------------- */

struct md_thread {
	pthread_t tid;
	pthread_barrier_t *bar;
	enum fsb_phase phase;
	int dfd;
	int renamed;	       /* the files are r<index> */
	uint64_t first, count; /* file indices */
	uint64_t *lat;
	size_t nlat, cap;
	uint64_t ops;
	uint64_t t0, t1;
	int err;       /* errno of the first failure */
	char what[64]; /* the name it failed on */
};

static int lat_push(struct md_thread *m, uint64_t ns)
{
	if (m->nlat == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 1024;
		uint64_t *p = realloc(m->lat, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		m->lat = p;
		m->cap = cap;
	}
	m->lat[m->nlat++] = ns;
	return 0;
}

static int md_list(struct md_thread *m)
{
	char *buf = malloc(DENTS_BUF);
	int fd = openat(m->dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret = 0;

	if (!buf || fd < 0) {
		ret = buf ? -errno : -ENOMEM;
		goto out;
	}
	for (;;) {
		uint64_t a = now_ns();
		long n = syscall(SYS_getdents64, fd, buf, DENTS_BUF);

		if (n < 0) {
			ret = -errno;
			break;
		}
		ret = lat_push(m, now_ns() - a);
		if (ret || n == 0)
			break;
		for (long off = 0; off < n;) {
			/* struct linux_dirent64: ino 8, off 8, reclen 2, type 1, name */
			unsigned short reclen;
			const char *name = buf + off + 19;

			memcpy(&reclen, buf + off + 16, sizeof(reclen));
			if (strcmp(name, ".") && strcmp(name, ".."))
				m->ops++;
			off += reclen;
		}
	}
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return ret;
}

static int md_one(struct md_thread *m, uint64_t i)
{
	char name[32], to[32];
	struct stat st;
	int fd;

	snprintf(name, sizeof(name), "%c%09" PRIu64, m->renamed ? 'r' : 'f', i);
	switch (m->phase) {
	case FSB_CREATE:
		fd = openat(m->dfd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
		if (fd < 0 || close(fd))
			goto fail;
		return 0;
	case FSB_STAT:
		if (fstatat(m->dfd, name, &st, AT_SYMLINK_NOFOLLOW))
			goto fail;
		return 0;
	case FSB_RENAME:
		snprintf(to, sizeof(to), "r%09" PRIu64, i);
		if (renameat(m->dfd, name, m->dfd, to))
			goto fail;
		return 0;
	case FSB_UNLINK:
		if (unlinkat(m->dfd, name, 0))
			goto fail;
		return 0;
	default:
		errno = EINVAL;
		goto fail;
	}
fail:
	snprintf(m->what, sizeof(m->what), "%s", name);
	return -errno;
}

static void *md_worker(void *arg)
{
	struct md_thread *m = arg;
	int ret = 0;

	pthread_barrier_wait(m->bar);
	m->t0 = now_ns();
	if (m->phase == FSB_READDIR) {
		ret = md_list(m);
		if (ret)
			snprintf(m->what, sizeof(m->what), "getdents64");
	} else {
		for (uint64_t i = m->first; i < m->first + m->count; i++) {
			uint64_t a = now_ns();

			ret = md_one(m, i);
			if (ret)
				break;
			m->lat[m->nlat++] = now_ns() - a;
			m->ops++;
		}
	}
	m->t1 = now_ns();
	m->err = -ret;
	return NULL;
}

/* One metadata phase with @n threads on directory fds @dfd (one per thread,
 * possibly the same). @r: NULL for an untimed set-up or clean-up run. */
static int md_phase(const struct fsb_opts *o, struct fsb_target *t, enum fsb_phase p, unsigned n,
		    const int *dfd, int renamed, struct fsb_result *r, const char *dir)
{
	struct md_thread *m = calloc(n, sizeof(*m));
	pthread_barrier_t bar;
	uint64_t t0 = UINT64_MAX, t1 = 0, ops = 0;
	size_t nlat = 0;
	uint64_t *all = NULL;
	int ret = 0;
	unsigned started = 0;

	if (!m)
		return -ENOMEM;
	pthread_barrier_init(&bar, NULL, n);
	for (unsigned i = 0; i < n; i++) {
		m[i].bar = &bar;
		m[i].phase = p;
		m[i].dfd = dfd[i];
		m[i].renamed = renamed;
		m[i].first = o->files * i / n;
		m[i].count = o->files * (i + 1) / n - m[i].first;
		if (p != FSB_READDIR) {
			m[i].cap = m[i].count ? m[i].count : 1;
			m[i].lat = malloc(m[i].cap * sizeof(uint64_t));
			if (!m[i].lat) {
				ret = -ENOMEM;
				goto out;
			}
		}
	}
	disk_start(o, r);
	for (; started < n; started++) {
		ret = -pthread_create(&m[started].tid, NULL, md_worker, &m[started]);
		if (ret)
			break;
	}
	if (ret) {
		/* The started threads wait on the barrier forever: nothing to do
		 * but say so. Thread creation failing means the machine is out of
		 * resources anyway. */
		fsb_err("%s: pthread_create: %s", t->label, strerror(-ret));
		exit(1);
	}
	for (unsigned i = 0; i < n; i++) {
		pthread_join(m[i].tid, NULL);
		if (m[i].err && !ret) {
			fsb_err("%s: %s %s/%s: %s", t->label, fsb_phase_names[p], dir, m[i].what,
				strerror(m[i].err));
			ret = -m[i].err;
		}
		t0 = m[i].t0 < t0 ? m[i].t0 : t0;
		t1 = m[i].t1 > t1 ? m[i].t1 : t1;
		ops += m[i].ops;
		nlat += m[i].nlat;
	}
	disk_stop(o, r);
	if (ret || !r)
		goto out;
	all = malloc((nlat ? nlat : 1) * sizeof(*all));
	if (!all) {
		ret = -ENOMEM;
		goto out;
	}
	nlat = 0;
	for (unsigned i = 0; i < n; i++) {
		memcpy(all + nlat, m[i].lat, m[i].nlat * sizeof(*all));
		nlat += m[i].nlat;
	}
	r->ops = ops;
	set_time(r, t0, t1);
	set_lat(r, all, nlat);
out:
	pthread_barrier_destroy(&bar);
	for (unsigned i = 0; i < n; i++)
		free(m[i].lat);
	free(m);
	free(all);
	return ret;
}

/* One variant: @n threads, private directories or one shared. */
static int md_variant(const struct fsb_opts *o, struct fsb_target *t, unsigned n, int shared)
{
	char dir[PATH_MAX], sub[PATH_MAX + 32];
	int dfd[FSB_MAX_THREADS];
	unsigned ndirs = shared ? 1 : n;
	int renamed = 0, ret = 0, created = 0;

	for (unsigned i = 0; i < n; i++)
		dfd[i] = -1;
	snprintf(dir, sizeof(dir), "%s/md-t%u%s", t->work, n, shared ? "-shared" : "");
	if (mkdir(dir, 0755)) {
		fsb_err("%s: mkdir %s: %s", t->label, dir, strerror(errno));
		return -1;
	}
	for (unsigned i = 0; i < ndirs; i++) {
		snprintf(sub, sizeof(sub), "%s/%s%u", dir, shared ? "shared" : "t", i);
		if (mkdir(sub, 0755) ||
		    (dfd[i] = open(sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
			fsb_err("%s: %s: %s", t->label, sub, strerror(errno));
			ret = -1;
			goto out;
		}
	}
	for (unsigned i = ndirs; i < n; i++)
		dfd[i] = dfd[0];

	for (enum fsb_phase p = FSB_CREATE; p <= FSB_UNLINK; p++) {
		int sel = !!(o->phases & (1u << p));
		struct fsb_result *r = NULL;

		if (!sel && p != FSB_CREATE && p != FSB_UNLINK)
			continue;
		if (sel) {
			r = new_result(t, p);
			if (!r)
				break;
			r->threads = n;
			r->shared = shared;
			if ((p == FSB_STAT || p == FSB_READDIR) && o->drop_caches) {
				snprintf(r->note, sizeof(r->note), "after drop_caches");
				if (drop_caches(o)) {
					ret = -1;
					goto out;
				}
			}
		}
		if (md_phase(o, t, p, n, dfd, renamed, r, dir)) {
			if (r)
				t->nres--;
			ret = -1;
			break;
		}
		if (p == FSB_CREATE)
			created = 1;
		if (p == FSB_RENAME)
			renamed = 1;
		if (p == FSB_UNLINK)
			created = 0;
	}
out:
	for (unsigned i = 0; i < ndirs; i++)
		if (dfd[i] >= 0)
			close(dfd[i]);
	if (created || ret) {
		/* Failed half-way: whatever is left goes with the work directory. */
		return -1;
	}
	for (unsigned i = 0; i < ndirs; i++) {
		snprintf(sub, sizeof(sub), "%s/%s%u", dir, shared ? "shared" : "t", i);
		if (rmdir(sub)) {
			fsb_err("%s: rmdir %s: %s", t->label, sub, strerror(errno));
			return -1;
		}
	}
	if (rmdir(dir)) {
		fsb_err("%s: rmdir %s: %s", t->label, dir, strerror(errno));
		return -1;
	}
	return 0;
}

static int run_meta(const struct fsb_opts *o, struct fsb_target *t)
{
	for (int i = 0; i < o->nthreads; i++) {
		if (md_variant(o, t, o->threads[i], 0))
			return -1;
		if (o->shared && o->threads[i] > 1 && md_variant(o, t, o->threads[i], 1))
			return -1;
	}
	return 0;
}

/* ---- data -------------------------------------------------------------- */

static void fill(char *buf, size_t n, uint64_t *seed)
{
	for (size_t i = 0; i + 8 <= n; i += 8) {
		uint64_t v = xorshift(seed);

		memcpy(buf + i, &v, 8);
	}
}

/* Writes @size bytes in @block writes to new file @path and fsyncs it;
 * timed into @r when not NULL. */
static int write_file(const struct fsb_opts *o, struct fsb_target *t, const char *path,
		      uint64_t size, struct fsb_result *r)
{
	uint64_t nw = (size + o->block - 1) / o->block, seed = o->seed | 1;
	uint64_t *lat = r ? malloc((nw ? nw : 1) * sizeof(*lat)) : NULL;
	char *buf = NULL;
	uint64_t t0, t1, done = 0;
	size_t n = 0;
	int fd = -1, ret = -1;

	if ((r && !lat) || posix_memalign((void **)&buf, 4096, o->block)) {
		fsb_err("%s: out of memory", t->label);
		goto out;
	}
	fill(buf, o->block, &seed);
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
	if (fd < 0) {
		fsb_err("%s: %s: %s", t->label, path, strerror(errno));
		goto out;
	}
	disk_start(o, r);
	t0 = now_ns();
	while (done < size) {
		size_t len = size - done < o->block ? size - done : o->block;
		uint64_t a = now_ns();
		ssize_t w = write(fd, buf, len);

		if (w <= 0) {
			fsb_err("%s: write %s at %" PRIu64 ": %s", t->label, path, done,
				w < 0 ? strerror(errno) : "wrote nothing");
			goto out;
		}
		if (lat)
			lat[n++] = now_ns() - a;
		done += (uint64_t)w;
		buf[0]++; /* no two blocks alike */
	}
	t1 = now_ns();
	if (fsync(fd)) {
		fsb_err("%s: fsync %s: %s", t->label, path, strerror(errno));
		goto out;
	}
	if (r) {
		uint64_t t2 = now_ns();

		r->ops = n;
		r->bytes = size;
		set_time(r, t0, t2);
		disk_stop(o, r);
		r->extra = (double)(t2 - t1) / 1e9;
		set_lat(r, lat, n);
		snprintf(r->note, sizeof(r->note), "%" PRIu64 "-byte writes, then fsync", o->block);
	}
	ret = 0;
out:
	if (fd >= 0 && close(fd) && !ret) {
		fsb_err("%s: close %s: %s", t->label, path, strerror(errno));
		ret = -1;
	}
	free(buf);
	free(lat);
	return ret;
}

/* The file's pages out of the page cache (after an fsync they are clean). */
static int drop_file(const struct fsb_opts *o, struct fsb_target *t, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), e;

	if (fd < 0) {
		fsb_err("%s: %s: %s", t->label, path, strerror(errno));
		return -1;
	}
	e = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
	if (e) {
		fsb_err("%s: posix_fadvise %s: %s", t->label, path, strerror(e));
		return -1;
	}
	return drop_caches(o);
}

static void read_note(const struct fsb_opts *o, struct fsb_result *r, int direct)
{
	snprintf(r->note, sizeof(r->note), "fadvise DONTNEED%s%s",
		 o->drop_caches ? ", drop_caches" : "",
		 direct ? ", O_DIRECT" : (o->odirect ? ", O_DIRECT refused: cached read" : ""));
}

static int seq_read(const struct fsb_opts *o, struct fsb_target *t, const char *path,
		    struct fsb_result *r)
{
	uint64_t nr = o->seq_size / o->block + 2, done = 0, t0;
	uint64_t *lat = malloc(nr * sizeof(*lat));
	char *buf = NULL;
	size_t n = 0;
	int fd = -1, ret = -1, direct = 0;

	if (!lat || posix_memalign((void **)&buf, 4096, o->block)) {
		fsb_err("%s: out of memory", t->label);
		goto out;
	}
	if (drop_file(o, t, path))
		goto out;
	if (o->odirect) {
		fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
		direct = fd >= 0;
	}
	if (fd < 0)
		fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fsb_err("%s: %s: %s", t->label, path, strerror(errno));
		goto out;
	}
	disk_start(o, r);
	t0 = now_ns();
	for (;;) {
		uint64_t a = now_ns();
		ssize_t got = read(fd, buf, o->block);

		if (got < 0) {
			fsb_err("%s: read %s at %" PRIu64 ": %s", t->label, path, done,
				strerror(errno));
			goto out;
		}
		if (n < nr)
			lat[n++] = now_ns() - a;
		if (!got)
			break;
		done += (uint64_t)got;
	}
	set_time(r, t0, now_ns());
	disk_stop(o, r);
	if (done != o->seq_size) {
		fsb_err("%s: %s: read back %" PRIu64 " bytes of %" PRIu64, t->label, path, done,
			o->seq_size);
		goto out;
	}
	r->ops = n;
	r->bytes = done;
	set_lat(r, lat, n);
	read_note(o, r, direct);
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(lat);
	return ret;
}

static int rand_io(const struct fsb_opts *o, struct fsb_target *t, const char *path, int wr,
		   struct fsb_result *r)
{
	uint64_t nops = wr ? o->rand_writes : o->rand_reads, blocks = o->rand_size / RAND_IO;
	uint64_t *lat = malloc((nops ? nops : 1) * sizeof(*lat)), seed = o->seed * 2 + wr + 1, t0;
	char *buf = NULL;
	int fd = -1, ret = -1;

	if (!lat || posix_memalign((void **)&buf, 4096, RAND_IO)) {
		fsb_err("%s: out of memory", t->label);
		goto out;
	}
	fill(buf, RAND_IO, &seed);
	if (!wr && drop_file(o, t, path))
		goto out;
	fd = open(path, (wr ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
	if (fd < 0) {
		fsb_err("%s: %s: %s", t->label, path, strerror(errno));
		goto out;
	}
	disk_start(o, r);
	t0 = now_ns();
	for (uint64_t i = 0; i < nops; i++) {
		off_t off = (off_t)(xorshift(&seed) % blocks) * RAND_IO;
		uint64_t a = now_ns();
		ssize_t n = wr ? pwrite(fd, buf, RAND_IO, off) : pread(fd, buf, RAND_IO, off);

		if (n != RAND_IO || (wr && fsync(fd))) {
			fsb_err("%s: %s %s at %lld: %s", t->label, wr ? "pwrite+fsync" : "pread",
				path, (long long)off,
				n < 0 || n == RAND_IO ? strerror(errno) : "short");
			goto out;
		}
		lat[i] = now_ns() - a;
		buf[0]++;
	}
	set_time(r, t0, now_ns());
	disk_stop(o, r);
	r->ops = nops;
	r->bytes = nops * RAND_IO;
	set_lat(r, lat, nops);
	if (wr)
		snprintf(r->note, sizeof(r->note), "pwrite 4 KiB + fsync, file %" PRIu64 " bytes",
			 o->rand_size);
	else
		read_note(o, r, 0);
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(lat);
	return ret;
}

static int run_data(const struct fsb_opts *o, struct fsb_target *t)
{
	char path[PATH_MAX];
	struct fsb_result *r;
	int ret = 0;

	snprintf(path, sizeof(path), "%s/seq.dat", t->work);
	if (o->phases & (1u << FSB_SEQWRITE | 1u << FSB_SEQREAD)) {
		r = o->phases & (1u << FSB_SEQWRITE) ? new_result(t, FSB_SEQWRITE) : NULL;
		if (write_file(o, t, path, o->seq_size, r))
			return -1;
		if (o->phases & (1u << FSB_SEQREAD)) {
			r = new_result(t, FSB_SEQREAD);
			if (r && seq_read(o, t, path, r))
				return -1;
		}
		if (unlink(path)) {
			fsb_err("%s: unlink %s: %s", t->label, path, strerror(errno));
			return -1;
		}
	}
	snprintf(path, sizeof(path), "%s/rand.dat", t->work);
	if (o->phases & (1u << FSB_RANDREAD | 1u << FSB_RANDWRITE)) {
		if (write_file(o, t, path, o->rand_size, NULL))
			return -1;
		for (int wr = 0; wr < 2 && !ret; wr++) {
			if (!(o->phases & (1u << (wr ? FSB_RANDWRITE : FSB_RANDREAD))))
				continue;
			r = new_result(t, wr ? FSB_RANDWRITE : FSB_RANDREAD);
			if (r && rand_io(o, t, path, wr, r))
				ret = -1;
		}
		if (unlink(path) && !ret) {
			fsb_err("%s: unlink %s: %s", t->label, path, strerror(errno));
			return -1;
		}
	}
	return ret;
}

/* ---- tree -------------------------------------------------------------- */

enum { OUT_NULL, OUT_LINES, OUT_BYTES };

/* Runs @argv with stdout to /dev/null or to a pipe whose lines or bytes are
 * counted into *@count; the exit status (or 128 + signal), -1 if it could
 * not be run. */
static int run_cmd(char *const argv[], int out, uint64_t *count)
{
	int pfd[2] = { -1, -1 }, st;
	char buf[65536];
	pid_t pid;

	if (out != OUT_NULL && pipe2(pfd, O_CLOEXEC))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = out == OUT_NULL ? open("/dev/null", O_WRONLY) : pfd[1];

		if (fd < 0 || dup2(fd, 1) < 0)
			_exit(127);
		execvp(argv[0], argv);
		fprintf(stderr, "fsbench: %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (out != OUT_NULL) {
		ssize_t n;

		close(pfd[1]);
		*count = 0;
		while ((n = read(pfd[0], buf, sizeof(buf))) != 0) {
			if (n < 0) {
				if (errno == EINTR)
					continue;
				break;
			}
			if (out == OUT_BYTES)
				*count += (uint64_t)n;
			else
				for (ssize_t i = 0; i < n; i++)
					*count += buf[i] == '\n';
		}
		close(pfd[0]);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* One timed command; @ok2: exit status 1 is no failure (grep: no match). */
static int tree_cmd(const struct fsb_opts *o, struct fsb_target *t, enum fsb_phase p,
		    char *const argv[], int out, int ok2)
{
	struct fsb_result *r = (o->phases & (1u << p)) ? new_result(t, p) : NULL;
	uint64_t count = 0, t0;
	int st;

	if (r && (p == FSB_FIND || p == FSB_GREP || p == FSB_TARC) && drop_caches(o))
		return -1;
	disk_start(o, r);
	t0 = now_ns();
	st = run_cmd(argv, out, &count);
	if (r) {
		set_time(r, t0, now_ns());
		disk_stop(o, r);
		r->ops = 1;
		if (out == OUT_BYTES)
			r->bytes = count;
		if (out == OUT_LINES)
			r->extra = (double)count;
		if (o->drop_caches && (p == FSB_FIND || p == FSB_GREP || p == FSB_TARC))
			snprintf(r->note, sizeof(r->note), "after drop_caches");
	}
	if (st != 0 && !(ok2 && st == 1)) {
		fsb_err("%s: %s: '%s' failed (%s %d)", t->label, fsb_phase_names[p], argv[0],
			st < 0	 ? "could not run" :
			st > 128 ? "signal" :
				   "exit status",
			st > 128 ? st - 128 : st);
		if (r)
			t->nres--;
		return -1;
	}
	return 0;
}

static int tree_sync(const struct fsb_opts *o, struct fsb_target *t, const char *tree)
{
	struct fsb_result *r = (o->phases & (1u << FSB_SYNC)) ? new_result(t, FSB_SYNC) : NULL;
	uint64_t t0;
	int fd;

	disk_start(o, r);
	t0 = now_ns();
	fd = open(tree, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || syncfs(fd) || fsync(fd)) {
		fsb_err("%s: syncfs/fsync %s: %s", t->label, tree, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	if (r) {
		set_time(r, t0, now_ns());
		disk_stop(o, r);
		r->ops = 1;
		snprintf(r->note, sizeof(r->note), "syncfs + fsync of the tree's top directory");
	}
	return 0;
}

static int run_tree(const struct fsb_opts *o, struct fsb_target *t)
{
	char tree[PATH_MAX], *tar = (char *)o->tar, *grep = (char *)o->grep;
	struct fsb_result *r;
	struct stat st;
	unsigned later = o->phases & FSB_TREE_MASK & ~(1u << FSB_UNTAR | 1u << FSB_RM);

	snprintf(tree, sizeof(tree), "%s/tree", t->work);
	if (mkdir(tree, 0755)) {
		fsb_err("%s: mkdir %s: %s", t->label, tree, strerror(errno));
		return -1;
	}
	{
		char *untar[] = { "tar", "-xf", tar, "-C", tree, NULL };

		if ((o->phases & (1u << FSB_UNTAR)) && drop_caches(o))
			return -1;
		if (tree_cmd(o, t, FSB_UNTAR, untar, OUT_NULL, 0))
			return -1;
		r = t->nres ? &t->res[t->nres - 1] : NULL;
		if (r && r->phase == FSB_UNTAR && !stat(tar, &st)) {
			r->bytes = (uint64_t)st.st_size;
			snprintf(r->note, sizeof(r->note), "tar -xf (uncompressed, %.0f MiB)",
				 (double)st.st_size / 1048576.0);
		}
	}
	if (later && tree_sync(o, t, tree))
		return -1;
	{
		char *find[] = { "find", tree, NULL };
		char *grepv[] = { "grep", "-r", "-F", "--", grep, tree, NULL };
		char *tarc[] = { "tar", "-cf", "-", "-C", t->work, "tree", NULL };

		if ((o->phases & (1u << FSB_FIND)) && tree_cmd(o, t, FSB_FIND, find, OUT_LINES, 0))
			return -1;
		if ((o->phases & (1u << FSB_GREP)) && tree_cmd(o, t, FSB_GREP, grepv, OUT_NULL, 1))
			return -1;
		if ((o->phases & (1u << FSB_TARC)) && tree_cmd(o, t, FSB_TARC, tarc, OUT_BYTES, 0))
			return -1;
	}
	{
		char *rm[] = { "rm", "-rf", tree, NULL };

		return tree_cmd(o, t, FSB_RM, rm, OUT_NULL, 0);
	}
}

/* ---- one target -------------------------------------------------------- */

int fsb_run_target(const struct fsb_opts *o, struct fsb_target *t)
{
	char *rm[] = { "rm", "-rf", t->work, NULL };
	int ret = 0;

	if (mkdir(t->work, 0755)) {
		fsb_err("%s: mkdir %s: %s", t->label, t->work, strerror(errno));
		return -1;
	}
	/* The groups share nothing but the work directory: one failing does not
	 * keep the others from running. */
	if ((o->phases & FSB_META_MASK) && run_meta(o, t))
		ret = -1;
	if ((o->phases & FSB_DATA_MASK) && run_data(o, t))
		ret = -1;
	if ((o->phases & FSB_TREE_MASK) && o->tar && run_tree(o, t))
		ret = -1;
	if (run_cmd(rm, OUT_NULL, NULL)) {
		fsb_err("%s: could not remove %s", t->label, t->work);
		ret = -1;
	}
	t->failed = ret != 0;
	return ret;
}
