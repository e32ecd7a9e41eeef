// SPDX-License-Identifier: MIT
/*
 * itest_extent: the system calls test_extent.sh needs and no standard tool
 * makes, on files of a mounted kvfs.
 *
 *   itest_extent map FILE
 *	print FILE's SEEK_DATA/SEEK_HOLE map as lines "data START END" and
 *	"hole START END" covering [0, size); checks that both whences give
 *	ENXIO at EOF.
 *   itest_extent copy SRC OFF_IN DST OFF_OUT LEN
 *	copy_file_range until LEN bytes or SRC's EOF; prints the bytes copied.
 *   itest_extent errors FILE DIR
 *	error codes of fallocate, lseek and copy_file_range (FILE: a regular
 *	file of at least 8 KiB, DIR: a directory).
 *   itest_extent posix FILE
 *	fcntl POSIX locks between this process and a child: conflicts,
 *	F_GETLK, a blocked F_SETLKW, release when any fd of the owner closes.
 *   itest_extent ofd FILE
 *	OFD locks and flock between two open file descriptions of one process:
 *	conflicts, F_OFD_GETLK, survival of a closed dup, release on close.
 *   itest_extent dirty FILE REF
 *	data the writeback cache still holds: FILE is a 1 MiB sparse file
 *	whose only data is [0, 4096), REF a local copy of it. Writes a
 *	pattern into FILE's hole at 256 KiB and past its EOF (to 1 MiB +
 *	64 KiB + 5000), the same into REF, checks FILE's map through this fd
 *	and a second one without closing or syncing, prints "ready" and waits
 *	for a line on stdin (the shell checks from other processes meanwhile);
 *	then twice more 100 bytes into a hole (at 512 KiB, then 768 KiB), the
 *	checks, "ready" and a line; then closes.
 *
 * Exit 0 if every check passed, 1 naming the failed check, 2 for bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;

#define CHECK(cond, ...)                                                      \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "itest_extent: line %d: ", __LINE__); \
			fprintf(stderr, __VA_ARGS__);                         \
			fprintf(stderr, "\n");                                \
			failures++;                                           \
		}                                                             \
	} while (0)

/* A call that must fail with @want. */
#define CHECK_ERR(call, want)                                                                   \
	do {                                                                                    \
		errno = 0;                                                                      \
		long r_ = (long)(call);                                                         \
		CHECK(r_ == -1 && errno == (want), "%s: returned %ld errno %s, want %s", #call, \
		      r_, strerror(errno), strerror(want));                                     \
	} while (0)

static int open_or_die(const char *path, int flags)
{
	int fd = open(path, flags, 0644);

	if (fd < 0) {
		fprintf(stderr, "itest_extent: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	return fd;
}

static int cmd_map(const char *path)
{
	int fd = open_or_die(path, O_RDONLY);
	struct stat st;
	off_t off = 0;

	if (fstat(fd, &st))
		return 1;
	while (off < st.st_size) {
		off_t d = lseek(fd, off, SEEK_DATA), h;

		if (d < 0) {
			CHECK(errno == ENXIO, "SEEK_DATA from %jd: %s", (intmax_t)off,
			      strerror(errno));
			printf("hole %jd %jd\n", (intmax_t)off, (intmax_t)st.st_size);
			break;
		}
		if (d > off)
			printf("hole %jd %jd\n", (intmax_t)off, (intmax_t)d);
		h = lseek(fd, d, SEEK_HOLE);
		CHECK(h > d, "SEEK_HOLE from %jd: %jd (%s)", (intmax_t)d, (intmax_t)h,
		      strerror(errno));
		if (h <= d)
			break;
		printf("data %jd %jd\n", (intmax_t)d, (intmax_t)h);
		off = h;
	}
	CHECK_ERR(lseek(fd, st.st_size, SEEK_DATA), ENXIO);
	CHECK_ERR(lseek(fd, st.st_size, SEEK_HOLE), ENXIO);
	close(fd);
	return failures != 0;
}

static int cmd_copy(const char *src, const char *off_in_s, const char *dst, const char *off_out_s,
		    const char *len_s)
{
	int in = open_or_die(src, O_RDONLY), out = open_or_die(dst, O_WRONLY | O_CREAT);
	loff_t off_in = strtoll(off_in_s, NULL, 0), off_out = strtoll(off_out_s, NULL, 0);
	long long left = strtoll(len_s, NULL, 0), total = 0;

	while (left > 0) {
		ssize_t n = copy_file_range(in, &off_in, out, &off_out, (size_t)left, 0);

		if (n < 0) {
			fprintf(stderr, "itest_extent: copy_file_range %s -> %s: %s\n", src, dst,
				strerror(errno));
			return 1;
		}
		if (n == 0)
			break;
		total += n;
		left -= n;
	}
	printf("%lld\n", total);
	close(in);
	return close(out) != 0;
}

static int cmd_errors(const char *path, const char *dir)
{
	int fd = open_or_die(path, O_RDWR), ro = open_or_die(path, O_RDONLY);
	int d = open_or_die(dir, O_RDONLY | O_DIRECTORY);
	loff_t a = 0, b = 100;
	struct stat st;

	if (fstat(fd, &st))
		return 1;
	CHECK(st.st_size >= 8192, "%s: %jd bytes, want >= 8192", path, (intmax_t)st.st_size);
	CHECK_ERR(fallocate(fd, FALLOC_FL_ZERO_RANGE, 0, 4096), EOPNOTSUPP);
	CHECK_ERR(fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, 4096), EOPNOTSUPP);
	CHECK_ERR(fallocate(fd, FALLOC_FL_INSERT_RANGE, 0, 4096), EOPNOTSUPP);
	CHECK_ERR(fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 4096), EOPNOTSUPP);
	CHECK_ERR(fallocate(fd, 0, 0, 0), EINVAL);
	CHECK_ERR(fallocate(fd, 0, -1, 10), EINVAL);
	CHECK_ERR(fallocate(fd, 0, INT64_MAX - 10, 100), EFBIG);
	CHECK_ERR(fallocate(ro, 0, 0, 10), EBADF);
	CHECK_ERR(lseek(fd, st.st_size, SEEK_DATA), ENXIO);
	CHECK_ERR(lseek(fd, st.st_size + 12345, SEEK_HOLE), ENXIO);
	CHECK_ERR(lseek(fd, -1, SEEK_DATA), ENXIO);
	CHECK_ERR(copy_file_range(fd, &a, fd, &b, 200, 0), EINVAL); /* overlapping */
	a = 0;
	b = 4096;
	CHECK_ERR(copy_file_range(fd, &a, fd, &b, 100, 1), EINVAL); /* flags */
	CHECK_ERR(copy_file_range(d, NULL, fd, NULL, 100, 0), EISDIR);
	/* Same file, disjoint ranges: fine. */
	a = 0;
	b = 4096;
	CHECK(copy_file_range(fd, &a, fd, &b, 100, 0) == 100, "copy within one file: %s",
	      strerror(errno));
	close(fd);
	close(ro);
	close(d);
	return failures != 0;
}

static void set_lock(struct flock *l, short type, off_t start, off_t len)
{
	memset(l, 0, sizeof(*l));
	l->l_type = type;
	l->l_whence = SEEK_SET;
	l->l_start = start;
	l->l_len = len;
}

static int child_posix(const char *path, int to_parent, pid_t parent)
{
	int fd = open_or_die(path, O_RDWR);
	struct flock l;

	set_lock(&l, F_WRLCK, 50, 10);
	errno = 0;
	CHECK(fcntl(fd, F_SETLK, &l) == -1 && (errno == EAGAIN || errno == EACCES),
	      "child: F_SETLK over the parent's lock: %s", strerror(errno));
	set_lock(&l, F_RDLCK, 50, 10);
	CHECK(fcntl(fd, F_SETLK, &l) == -1, "child: a read lock over the parent's write lock");
	set_lock(&l, F_WRLCK, 50, 10);
	CHECK(fcntl(fd, F_GETLK, &l) == 0 && l.l_type == F_WRLCK && l.l_pid == parent &&
		      l.l_start == 0 && l.l_len == 100,
	      "child: F_GETLK: type %d pid %d start %jd len %jd, want the parent's [0, 100)",
	      l.l_type, (int)l.l_pid, (intmax_t)l.l_start, (intmax_t)l.l_len);
	set_lock(&l, F_WRLCK, 100, 100);
	CHECK(fcntl(fd, F_SETLK, &l) == 0, "child: F_SETLK next to the parent's lock: %s",
	      strerror(errno));
	if (write(to_parent, "a", 1) != 1)
		return 1;
	/* Blocks until the parent's locks go (it closes another fd). */
	set_lock(&l, F_WRLCK, 0, 10);
	CHECK(fcntl(fd, F_SETLKW, &l) == 0, "child: F_SETLKW: %s", strerror(errno));
	if (write(to_parent, "b", 1) != 1)
		return 1;
	/* Hold until the parent has looked. */
	if (read(to_parent, &l, 1) < 0)
		return 1;
	return failures != 0;
}

static int cmd_posix(const char *path)
{
	int fd = open_or_die(path, O_RDWR), sv[2], status;
	struct flock l;
	char c;
	pid_t pid;

	set_lock(&l, F_WRLCK, 0, 100);
	CHECK(fcntl(fd, F_SETLK, &l) == 0, "F_SETLK: %s", strerror(errno));
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		return 1;
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		close(sv[0]);
		_exit(child_posix(path, sv[1], getppid()));
	}
	close(sv[1]);
	CHECK(read(sv[0], &c, 1) == 1 && c == 'a', "the child did not get through its checks");
	set_lock(&l, F_WRLCK, 150, 10);
	CHECK(fcntl(fd, F_GETLK, &l) == 0 && l.l_type == F_WRLCK && l.l_pid == pid,
	      "parent: F_GETLK does not see the child's lock (type %d pid %d)", l.l_type,
	      (int)l.l_pid);
	/* Closing any fd of the file drops this process's POSIX locks. */
	close(open_or_die(path, O_RDONLY));
	CHECK(read(sv[0], &c, 1) == 1 && c == 'b', "the child's F_SETLKW did not succeed");
	set_lock(&l, F_WRLCK, 0, 10);
	CHECK(fcntl(fd, F_GETLK, &l) == 0 && l.l_type == F_WRLCK && l.l_pid == pid,
	      "parent: F_GETLK does not see the child's new lock (type %d pid %d)", l.l_type,
	      (int)l.l_pid);
	if (write(sv[0], "c", 1) != 1)
		return 1;
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "the child failed (status %#x)", status);
	/* The child's locks went with it. */
	set_lock(&l, F_WRLCK, 0, 0);
	CHECK(fcntl(fd, F_SETLK, &l) == 0, "F_SETLK of the whole file after the child: %s",
	      strerror(errno));
	close(fd);
	return failures != 0;
}

static int cmd_ofd(const char *path)
{
	int fd1 = open_or_die(path, O_RDWR), fd2 = open_or_die(path, O_RDWR), dup1;
	struct flock l;

	set_lock(&l, F_WRLCK, 0, 100);
	CHECK(fcntl(fd1, F_OFD_SETLK, &l) == 0, "F_OFD_SETLK: %s", strerror(errno));
	set_lock(&l, F_WRLCK, 10, 10);
	CHECK_ERR(fcntl(fd2, F_OFD_SETLK, &l), EAGAIN);
	set_lock(&l, F_RDLCK, 99, 10);
	CHECK_ERR(fcntl(fd2, F_OFD_SETLK, &l), EAGAIN);
	set_lock(&l, F_WRLCK, 10, 10);
	CHECK(fcntl(fd2, F_OFD_GETLK, &l) == 0 && l.l_type == F_WRLCK && l.l_pid == -1 &&
		      l.l_start == 0 && l.l_len == 100,
	      "F_OFD_GETLK: type %d pid %d start %jd len %jd", l.l_type, (int)l.l_pid,
	      (intmax_t)l.l_start, (intmax_t)l.l_len);
	/* A POSIX lock of this same process conflicts with the OFD lock. */
	set_lock(&l, F_WRLCK, 10, 10);
	CHECK_ERR(fcntl(fd2, F_SETLK, &l), EAGAIN);
	set_lock(&l, F_WRLCK, 100, 10);
	CHECK(fcntl(fd2, F_OFD_SETLK, &l) == 0, "F_OFD_SETLK next to it: %s", strerror(errno));
	/* Closing a dup does not release an OFD lock; closing the last fd
	 * of the description does. */
	dup1 = dup(fd1);
	close(dup1);
	set_lock(&l, F_WRLCK, 0, 10);
	CHECK_ERR(fcntl(fd2, F_OFD_SETLK, &l), EAGAIN);
	close(fd1);
	CHECK(fcntl(fd2, F_OFD_SETLK, &l) == 0, "F_OFD_SETLK after the holder's close: %s",
	      strerror(errno));
	close(fd2);

	/* flock: per open file description too. */
	fd1 = open_or_die(path, O_RDONLY);
	fd2 = open_or_die(path, O_RDONLY);
	CHECK(flock(fd1, LOCK_EX | LOCK_NB) == 0, "flock LOCK_EX: %s", strerror(errno));
	CHECK_ERR(flock(fd2, LOCK_EX | LOCK_NB), EWOULDBLOCK);
	CHECK_ERR(flock(fd2, LOCK_SH | LOCK_NB), EWOULDBLOCK);
	CHECK(flock(fd1, LOCK_SH) == 0, "flock: converting to LOCK_SH: %s", strerror(errno));
	CHECK(flock(fd2, LOCK_SH | LOCK_NB) == 0, "flock: two LOCK_SH: %s", strerror(errno));
	CHECK_ERR(flock(fd1, LOCK_EX | LOCK_NB), EWOULDBLOCK);
	close(fd2);
	CHECK(flock(fd1, LOCK_EX | LOCK_NB) == 0, "flock LOCK_EX after the other's close: %s",
	      strerror(errno));
	close(fd1);
	return failures != 0;
}

/* A pattern of non-zero bytes, a function of the file offset. */
static void pattern(char *buf, size_t len, off_t off)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)(((uint64_t)off + i) * 131 % 251 + 1);
}

/* pwrite the pattern of [off, off + len) into both files. */
static void write_both(int fd, int ref, off_t off, size_t len)
{
	char *buf = malloc(len);

	if (!buf)
		exit(1);
	pattern(buf, len, off);
	CHECK(pwrite(fd, buf, len, off) == (ssize_t)len, "pwrite at %jd: %s", (intmax_t)off,
	      strerror(errno));
	CHECK(pwrite(ref, buf, len, off) == (ssize_t)len, "pwrite of the reference: %s",
	      strerror(errno));
	free(buf);
}

/*
 * Check fd's SEEK_DATA/SEEK_HOLE map against @want: pairs [start, end) of
 * data, ascending, the last ending at EOF (@size). Every offset a whence
 * can answer from is tried at the edges of each extent.
 */
static void check_map(int fd, const char *what, const off_t (*want)[2], int n, off_t size)
{
	off_t hole = 0; /* start of the hole before extent i */

	for (int i = 0; i < n; i++) {
		off_t ds = want[i][0], de = want[i][1];
		off_t probes[] = { hole, ds - 1, ds, de - 1 };

		for (unsigned j = 0; j < sizeof(probes) / sizeof(probes[0]); j++) {
			off_t p = probes[j], d, h;

			if (p < hole)
				continue;
			d = lseek(fd, p, SEEK_DATA);
			h = lseek(fd, p, SEEK_HOLE);
			CHECK(d == (p < ds ? ds : p), "%s: SEEK_DATA from %jd: %jd (%s), want %jd",
			      what, (intmax_t)p, (intmax_t)d, d < 0 ? strerror(errno) : "",
			      (intmax_t)(p < ds ? ds : p));
			CHECK(h == (p < ds ? p : de), "%s: SEEK_HOLE from %jd: %jd (%s), want %jd",
			      what, (intmax_t)p, (intmax_t)h, h < 0 ? strerror(errno) : "",
			      (intmax_t)(p < ds ? p : de));
		}
		hole = de;
	}
	if (hole < size) {
		CHECK_ERR(lseek(fd, hole, SEEK_DATA), ENXIO);
		CHECK(lseek(fd, hole, SEEK_HOLE) == hole, "%s: SEEK_HOLE from %jd", what,
		      (intmax_t)hole);
	}
	CHECK_ERR(lseek(fd, size, SEEK_DATA), ENXIO);
	CHECK_ERR(lseek(fd, size, SEEK_HOLE), ENXIO);
}

static int wait_line(void)
{
	char line[64];

	printf("ready\n");
	return fgets(line, sizeof(line), stdin) ? 0 : -1;
}

/*
 * Three rounds of writes, each leaving the kernel with dirty pages in a hole
 * of the store: a close of any fd of the file (FLUSH) writes them all back,
 * so each of the shell's checks from another process gets a round of its
 * own, and the second fd here stays open until the end.
 */
static int cmd_dirty(const char *path, const char *refpath)
{
	const off_t tail = (1 << 20) + (64 << 10), size = tail + 5000;
	/* The data map after each round: 4 KiB blocks, the last cut at EOF. */
	const off_t map[][5][2] = {
		{ { 0, 4096 }, { 262144, 270336 }, { tail, size } },
		{ { 0, 4096 }, { 262144, 270336 }, { 524288, 528384 }, { tail, size } },
		{ { 0, 4096 },
		  { 262144, 270336 },
		  { 524288, 528384 },
		  { 786432, 790528 },
		  { tail, size } },
	};
	const int nmap[] = { 3, 4, 5 };
	int fd = open_or_die(path, O_RDWR), ref = open_or_die(refpath, O_RDWR), fd2;
	struct stat st;

	/* Round 1: into the hole at 256 KiB, and past EOF. */
	write_both(fd, ref, 262144, 8192);
	write_both(fd, ref, tail, 5000);
	CHECK(fstat(fd, &st) == 0 && st.st_size == size, "size after the writes: %jd",
	      (intmax_t)st.st_size);
	check_map(fd, "round 1, the writer's fd", map[0], nmap[0], size);
	fd2 = open_or_die(path, O_RDONLY);
	check_map(fd2, "round 1, another fd", map[0], nmap[0], size);
	for (int round = 2; round <= 3; round++) {
		if (wait_line())
			return 1;
		/* 100 bytes into a hole: the block they land in is data. */
		write_both(fd, ref, round == 2 ? 524288 : 786432, 100);
		check_map(fd, round == 2 ? "round 2, the writer's fd" : "round 3, the writer's fd",
			  map[round - 1], nmap[round - 1], size);
		check_map(fd2, round == 2 ? "round 2, another fd" : "round 3, another fd",
			  map[round - 1], nmap[round - 1], size);
	}
	if (wait_line())
		return 1;
	close(fd2);
	close(ref);
	close(fd);
	return failures != 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 3 && !strcmp(argv[1], "map"))
		return cmd_map(argv[2]);
	if (argc == 7 && !strcmp(argv[1], "copy"))
		return cmd_copy(argv[2], argv[3], argv[4], argv[5], argv[6]);
	if (argc == 4 && !strcmp(argv[1], "errors"))
		return cmd_errors(argv[2], argv[3]);
	if (argc == 3 && !strcmp(argv[1], "posix"))
		return cmd_posix(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "ofd"))
		return cmd_ofd(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "dirty"))
		return cmd_dirty(argv[2], argv[3]);
	fprintf(stderr, "usage: itest_extent map FILE | copy SRC OFF_IN DST OFF_OUT LEN |\n"
			"       errors FILE DIR | posix FILE | ofd FILE | dirty FILE REF\n");
	return 2;
}
