// SPDX-License-Identifier: MIT
/*
 * kvfs STORE MOUNTPOINT [-o options] [-f] [-d]: the daemon that mounts a
 * kvfs store.
 *
 * The order matters and each step fails with a message and a non-zero exit
 * before anything is mounted:
 *  1. parse the command line (exit 2 on a usage error or a bad option);
 *  2. unless -f/-d: fork; the parent waits on a pipe for the child's
 *     verdict and exits with it, so "kvfs ... && ls MNT" and mount(8) see a
 *     mounted filesystem or a failure, never a daemon still starting.
 *     Forking first keeps the engine's threads (started by kvfs_open) in
 *     the process that uses them;
 *  3. make the FUSE session from FUSE's options (libfuse checks them);
 *  4. kvfs_open the store: missing, not a store, newer format, corrupt or
 *     already mounted all get kvfs_open's message (exit 1). A store still
 *     held by a daemon that is closing it after an unmount is waited for
 *     (up to BUSY_WAIT_MS) so that "umount; mount" works;
 *  5. check the mountpoint and mount;
 *  6. detach (setsid, chdir /, stdio to /dev/null, log to syslog), tell the
 *     parent, serve until the kernel ends the connection;
 *  7. kvfs_close (everything durable), exit 0.
 *
 * Signals. SIGINT, SIGTERM and SIGHUP are blocked in every thread and taken
 * by one thread with sigwait: the first unmounts the filesystem as
 * fusermount3 -u would (the kernel writes back its dirty pages through the
 * still-running loop first; lazily if busy), which ends the loop and takes
 * the normal path to kvfs_close. A second one makes acknowledged writes
 * durable and exits at once (1). libfuse's own handlers end the loop
 * without unmounting, and the kernel then drops the page cache's unwritten
 * data; that is why they are not used.
 */
#include "daemon.h"
#include "kv.h"
#include "kvfs.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define EXIT_FAIL 1  /* the store, the mountpoint or the mount failed */
#define EXIT_USAGE 2 /* bad command line */
#define BUSY_WAIT_MS 10000
#define OPTS_MAX 4096

extern char **environ;

struct daemon_args {
	const char *store, *mountpoint;
	int foreground, debug;
	struct kvfs_options ko;
	int durability_set;
	struct fs_fuse_config fc;
	char fuse_opts[OPTS_MAX]; /* forwarded to libfuse, comma-separated */
	int fsname_set, subtype_set;
};

static const char *progname = "kvfs";
static int use_syslog; /* after detaching */
static int verbose;    /* -d: engine info messages too */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (use_syslog)
		syslog(LOG_ERR, "%s", msg);
	else
		fprintf(stderr, "%s: %s\n", progname, msg);
}

/* While kvfs_open runs: its engine messages, held back until we know
 * whether the attempt counts (one that finds the store busy is retried). */
static struct {
	pthread_mutex_t lock; /* engine threads may log too */
	int on;		      /* [lock] */
	char buf[4096];	      /* [lock] */
	size_t len;	      /* [lock] */
} held = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void engine_log(void *ctx, int level, const char *msg)
{
	(void)ctx;
	if (level > 1 && !verbose) /* 0 error, 1 warning, 2 info, 3 debug */
		return;
	pthread_mutex_lock(&held.lock);
	if (held.on) {
		int n = snprintf(held.buf + held.len, sizeof(held.buf) - held.len, "%s: %s\n",
				 progname, msg);

		if (n > 0)
			held.len += (size_t)n;
		if (held.len >= sizeof(held.buf))
			held.len = sizeof(held.buf) - 1;
		pthread_mutex_unlock(&held.lock);
		return;
	}
	pthread_mutex_unlock(&held.lock);
	if (use_syslog)
		syslog(level == 0 ? LOG_ERR : level == 1 ? LOG_WARNING : LOG_INFO, "%s", msg);
	else
		fprintf(stderr, "%s: %s\n", progname, msg);
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: %s STORE MOUNTPOINT [-o OPTION[,OPTION...]] [-f] [-d]\n"
		"\n"
		"Mount the kvfs store in directory STORE (made by mkfs.kvfs) on MOUNTPOINT.\n"
		"Unmount with: fusermount3 -u MOUNTPOINT (or umount, or SIGTERM to the daemon);\n"
		"everything written is durable once the daemon has exited.\n"
		"\n"
		"  -f              stay in the foreground (logs to stderr)\n"
		"  -d              foreground, and print every FUSE request\n"
		"  -h, --help      this text\n"
		"  -V, --version   versions of kvfs and libfuse\n"
		"\n"
		"kvfs options (-o):\n"
		"  durability=batch|sync  batch (default): an operation is acknowledged once\n"
		"                         in the log buffer and durable within one group commit;\n"
		"                         fsync, fdatasync, fsyncdir and unmount wait for it.\n"
		"                         sync: acknowledged once durable\n"
		"  sync                   durability=sync, and the kernel writes through its\n"
		"                         page cache at every write(2)\n"
		"  block_cache=SIZE       engine block cache (K, M, G suffixes)\n"
		"  log_buffer=SIZE        engine log buffer per memtable (K, M, G suffixes)\n"
		"  entry_timeout=SECONDS  kernel cache of names (default 60)\n"
		"  attr_timeout=SECONDS   kernel cache of attributes (default 60)\n"
		"  negative_timeout=SECONDS kernel cache of absent names (default 1)\n"
		"  writeback_cache        (default) the kernel caches written data and writes\n"
		"                         it back later\n"
		"  no_writeback_cache     every write(2) goes to the daemon at once\n"
		"  ro                     read-only\n"
		"\n"
		"FUSE and mount options, passed on: allow_other, allow_root, auto_unmount,\n"
		"fsname=NAME (default: STORE), subtype=NAME (default: kvfs), rw, dev, nodev,\n"
		"suid, nosuid, exec, noexec, atime, noatime, relatime, strictatime, lazytime,\n"
		"dirsync, async, context=... . default_permissions is always on (the kernel\n"
		"checks permissions). From /etc/fstab:\n"
		"  /var/tmp/kvfs/store  /mnt/kvfs  fuse.kvfs  defaults  0 0\n",
		progname);
}

/* ---- options ---------------------------------------------------------- */

/* "64M" -> bytes; K/M/G/T, optionally followed by "iB" or "B". */
static int parse_size(const char *s, size_t *out)
{
	static const char units[] = "kmgt";
	const char *unit;
	char *end;
	unsigned long long v;
	int shift = 0;

	errno = 0;
	if (*s < '0' || *s > '9')
		return -EINVAL;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	unit = *end ? strchr(units, tolower((unsigned char)*end)) : NULL;
	if (unit) {
		shift = 10 * (int)(unit - units + 1);
		end++;
	}
	if (shift && !strcmp(end, "iB"))
		end += 2;
	else if (!strcmp(end, "B") || !strcmp(end, "b"))
		end++;
	if (*end || (shift && v > (SIZE_MAX >> shift)))
		return -EINVAL;
	*out = (size_t)(v << shift);
	return 0;
}

static int parse_seconds(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < 0)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Append @opt to the options for libfuse; @escape: a value that may hold
 * commas or backslashes (fsname). */
static int fuse_opt_append(struct daemon_args *a, const char *opt, int escape)
{
	size_t n = strlen(a->fuse_opts);

	if (n && n + 1 < OPTS_MAX)
		a->fuse_opts[n++] = ',';
	for (; *opt; opt++) {
		if (escape && (*opt == ',' || *opt == '\\') && n + 1 < OPTS_MAX)
			a->fuse_opts[n++] = '\\';
		if (n + 1 >= OPTS_MAX)
			return -E2BIG;
		a->fuse_opts[n++] = *opt;
	}
	a->fuse_opts[n] = '\0';
	return 0;
}

/* Options libfuse and the kernel know, passed on as they are. */
static const char *const fuse_flags[] = {
	"allow_other", "allow_root",  "auto_unmount",  "rw",	   "dev",	 "nodev",
	"suid",	       "nosuid",      "exec",	       "noexec",   "async",	 "atime",
	"noatime",     "diratime",    "nodiratime",    "lazytime", "nolazytime", "relatime",
	"norelatime",  "strictatime", "nostrictatime", "dirsync",  NULL,
};
static const char *const fuse_keyed[] = {
	"fsname=",    "subtype=",    "user=",	     "context=",
	"fscontext=", "defcontext=", "rootcontext=", NULL,
};
/* fstab and mount(8) words that mean nothing to a FUSE daemon. */
static const char *const ignored[] = {
	"defaults", "auto",  "noauto",	"user",	  "nouser",
	"users",    "owner", "_netdev", "nofail", "default_permissions",
	NULL,
};

static int in_list(const char *const *list, const char *opt, int prefix)
{
	for (; *list; list++) {
		if (prefix ? !strncmp(opt, *list, strlen(*list)) : !strcmp(opt, *list))
			return 1;
	}
	return 0;
}

static int one_option(struct daemon_args *a, const char *opt)
{
	const char *v = strchr(opt, '=');
	size_t size;

	v = v ? v + 1 : NULL;
	if (!strncmp(opt, "durability=", 11)) {
		if (!strcmp(v, "batch"))
			a->ko.durability = KVFS_DUR_BATCH;
		else if (!strcmp(v, "sync"))
			a->ko.durability = KVFS_DUR_SYNC;
		else
			goto bad_value;
		a->durability_set = 1;
		return 0;
	}
	if (!strncmp(opt, "block_cache=", 12) || !strncmp(opt, "log_buffer=", 11)) {
		if (parse_size(v, &size) || !size)
			goto bad_value;
		if (opt[0] == 'b')
			a->ko.block_cache_size = size;
		else
			a->ko.log_buffer_size = size;
		return 0;
	}
	if (!strncmp(opt, "entry_timeout=", 14))
		return parse_seconds(v, &a->fc.entry_timeout) ? -EINVAL : 0;
	if (!strncmp(opt, "attr_timeout=", 13))
		return parse_seconds(v, &a->fc.attr_timeout) ? -EINVAL : 0;
	if (!strncmp(opt, "negative_timeout=", 17))
		return parse_seconds(v, &a->fc.negative_timeout) ? -EINVAL : 0;
	if (!strcmp(opt, "writeback_cache") || !strcmp(opt, "no_writeback_cache")) {
		a->fc.writeback_cache = opt[0] == 'w';
		return 0;
	}
	if (!strcmp(opt, "debug")) {
		a->debug = a->foreground = 1;
		return 0;
	}
	if (!strcmp(opt, "ro")) {
		a->ko.read_only = 1;
		return fuse_opt_append(a, opt, 0);
	}
	if (!strcmp(opt, "sync")) {
		if (!a->durability_set)
			a->ko.durability = KVFS_DUR_SYNC;
		return fuse_opt_append(a, opt, 0);
	}
	if (!*opt || in_list(ignored, opt, 0) || !strncmp(opt, "x-", 2) ||
	    !strncmp(opt, "comment=", 8))
		return 0;
	if (in_list(fuse_flags, opt, 0))
		return fuse_opt_append(a, opt, 0);
	if (in_list(fuse_keyed, opt, 1)) {
		a->fsname_set |= !strncmp(opt, "fsname=", 7);
		a->subtype_set |= !strncmp(opt, "subtype=", 8);
		return fuse_opt_append(a, opt, !strncmp(opt, "fsname=", 7));
	}
	say("unknown option '%s' (see %s --help)", opt, progname);
	return -EINVAL;
bad_value:
	say("option '%s': bad value", opt);
	return -EINVAL;
}

/* One -o argument: comma-separated, "\," is a comma inside a value. */
static int parse_o(struct daemon_args *a, const char *arg)
{
	char opt[OPTS_MAX];
	size_t n = 0;
	int e;

	for (;; arg++) {
		if (*arg == '\\' && arg[1]) {
			arg++;
		} else if (*arg == ',' || !*arg) {
			opt[n] = '\0';
			e = one_option(a, opt);
			if (e == -EINVAL && (!strncmp(opt, "entry_timeout=", 14) ||
					     !strncmp(opt, "attr_timeout=", 13) ||
					     !strncmp(opt, "negative_timeout=", 17)))
				say("option '%s': not a number of seconds", opt);
			if (e == -E2BIG)
				say("-o: options too long");
			if (e)
				return e;
			if (!*arg)
				return 0;
			n = 0;
			continue;
		}
		if (n + 1 >= sizeof(opt)) {
			say("-o: option too long");
			return -E2BIG;
		}
		opt[n++] = *arg;
	}
}

static int parse_args(int argc, char **argv, struct daemon_args *a)
{
	int nonopt = 0, only_args = 0;

	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];

		if (only_args || s[0] != '-' || !s[1]) {
			if (nonopt == 0)
				a->store = s;
			else if (nonopt == 1)
				a->mountpoint = s;
			else {
				say("unexpected argument '%s' (see %s --help)", s, progname);
				return -EINVAL;
			}
			nonopt++;
		} else if (!strcmp(s, "--")) {
			only_args = 1;
		} else if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
			usage(stdout);
			exit(0);
		} else if (!strcmp(s, "-V") || !strcmp(s, "--version")) {
			printf("kvfs, libfuse %s\n", fs_fuse_version());
			exit(0);
		} else if (!strcmp(s, "-f")) {
			a->foreground = 1;
		} else if (!strcmp(s, "-d") || !strcmp(s, "--debug")) {
			a->foreground = a->debug = 1;
		} else if (!strcmp(s, "-o")) {
			if (++i == argc) {
				say("-o needs an argument");
				return -EINVAL;
			}
			if (parse_o(a, argv[i]))
				return -EINVAL;
		} else if (!strncmp(s, "-o", 2)) {
			if (parse_o(a, s + 2))
				return -EINVAL;
		} else {
			say("unknown option '%s' (see %s --help)", s, progname);
			return -EINVAL;
		}
	}
	if (nonopt < 2) {
		say("%s (see %s --help)",
		    nonopt ? "missing MOUNTPOINT" : "missing STORE and MOUNTPOINT", progname);
		return -EINVAL;
	}
	return 0;
}

/* ---- the store and the mountpoint ---------------------------------------- */

/* Undo mountinfo's octal escapes (\040 for a space) in place. */
static void unescape(char *s)
{
	char *d = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*d++ = *s;
		}
	}
	*d = '\0';
}

/* 1 and @mnt filled if a fuse.kvfs mount's source is @store. */
static int store_mounted(const char *store, char *mnt, size_t cap)
{
	FILE *fp = fopen("/proc/self/mountinfo", "r");
	char *line = NULL;
	size_t len = 0;
	int found = 0;

	if (!fp)
		return 0;
	while (!found && getline(&line, &len, fp) > 0) {
		char *save, *f[5], *dash = strstr(line, " - "), *type, *src;
		int i;

		if (!dash)
			continue;
		*dash = '\0';
		f[0] = strtok_r(line, " ", &save);
		for (i = 1; i < 5 && f[i - 1]; i++)
			f[i] = strtok_r(NULL, " ", &save);
		type = strtok_r(dash + 3, " ", &save);
		src = strtok_r(NULL, " \n", &save);
		if (i < 5 || !f[4] || !type || !src || strcmp(type, "fuse.kvfs"))
			continue;
		unescape(src);
		if (!strcmp(src, store)) {
			unescape(f[4]);
			snprintf(mnt, cap, "%s", f[4]);
			found = 1;
		}
	}
	free(line);
	fclose(fp);
	return found;
}

static int open_store(const char *store, const struct kvfs_options *ko, struct kvfs **fs)
{
	char err[512] = "", mnt[PATH_MAX];
	int waited = 0, e;

	for (;;) {
		pthread_mutex_lock(&held.lock);
		held.on = 1;
		held.len = 0;
		held.buf[0] = '\0';
		pthread_mutex_unlock(&held.lock);
		e = kvfs_open(store, ko, fs, err, sizeof(err));
		pthread_mutex_lock(&held.lock);
		held.on = 0;
		/* The engine's words on a store that opened (recovery) or, with
		 * -d, on why it did not: kvfs_open's message says that. */
		if (e != -EBUSY && (!e || verbose))
			fputs(held.buf, stderr);
		pthread_mutex_unlock(&held.lock);
		if (e != -EBUSY)
			break;
		if (store_mounted(store, mnt, sizeof(mnt))) {
			say("%s: already mounted on %s", store, mnt);
			return e;
		}
		/* Held but not mounted: the daemon of a mount that just ended
		 * is still closing it (or fsck.kvfs has it open). */
		if (waited >= BUSY_WAIT_MS)
			break;
		nanosleep(&(struct timespec){ 0, 50 * 1000 * 1000 }, NULL);
		waited += 50;
	}
	if (e)
		say("%s", err[0] ? err : strerror(-e));
	return e;
}

static int check_mountpoint(const char *mnt)
{
	struct stat st;

	if (!strncmp(mnt, "/dev/fd/", 8))
		return 0; /* an open /dev/fuse from mount.fuse3 -o drop_privileges */
	if (stat(mnt, &st)) {
		if (errno == ENOENT)
			say("%s: mountpoint does not exist (create the directory first)", mnt);
		else
			say("%s: cannot use as mountpoint: %s", mnt, strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(st.st_mode)) {
		say("%s: mountpoint is not a directory", mnt);
		return -ENOTDIR;
	}
	return 0;
}

/* ---- daemon process ------------------------------------------------------ */

/*
 * Fork; the parent waits for one status byte from the child (sent once
 * mounted) or for its exit, and exits with that status. Returns in the
 * child with the pipe's write end.
 */
static int fork_daemon(void)
{
	int p[2], status;
	unsigned char verdict;
	pid_t pid;
	ssize_t n;

	/* Close-on-exec: a helper libfuse starts (fusermount3) must not hold
	 * the parent's end open after we die. */
	if (pipe2(p, O_CLOEXEC)) {
		say("pipe: %s", strerror(errno));
		exit(EXIT_FAIL);
	}
	pid = fork();
	if (pid < 0) {
		say("fork: %s", strerror(errno));
		exit(EXIT_FAIL);
	}
	if (pid == 0) {
		close(p[0]);
		return p[1];
	}
	close(p[1]);
	do
		n = read(p[0], &verdict, 1);
	while (n < 0 && errno == EINTR);
	if (n == 1)
		_exit(verdict);
	/* The child died before mounting: its exit status is the answer. */
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : EXIT_FAIL);
}

/* Mounted: leave the terminal and release the waiting parent. */
static void detach(int fd)
{
	unsigned char ok = 0;
	int null = open("/dev/null", O_RDWR);

	setsid();
	if (chdir("/"))
		say("chdir /: %s", strerror(errno));
	openlog("kvfs", LOG_PID, LOG_DAEMON);
	use_syslog = 1;
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		if (null > 2)
			close(null);
	}
	if (write(fd, &ok, 1) != 1)
		syslog(LOG_WARNING, "cannot tell the parent process we are mounted");
	close(fd);
}

/* ---- signals ---------------------------------------------------------- */

static struct {
	const char *mountpoint;
	struct kvfs *fs;
	sigset_t set;
} sig;

/* fusermount3 -u [-z] for a mount made without privileges. */
static int fusermount_u(const char *mnt, int lazy)
{
	char *argv[] = { "fusermount3", "-u", "-q", lazy ? "-z" : NULL, NULL, NULL };
	pid_t pid;
	int status;

	argv[lazy ? 4 : 3] = (char *)mnt;
	if (posix_spawnp(&pid, "fusermount3", NULL, NULL, argv, environ))
		return -1;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Unmount as fusermount3 -u does; lazily if files are open. The kernel
 * writes back dirty pages during the unmount, through the running loop. */
static void unmount_self(const char *mnt)
{
	if (geteuid() == 0) {
		if (umount2(mnt, 0) && errno == EBUSY && umount2(mnt, MNT_DETACH))
			say("umount %s: %s", mnt, strerror(errno));
		return;
	}
	if (fusermount_u(mnt, 0) && fusermount_u(mnt, 1))
		say("fusermount3 -u -z %s failed", mnt);
}

static void *signal_thread(void *arg)
{
	int signo;

	(void)arg;
	if (sigwait(&sig.set, &signo))
		return NULL;
	say("SIG%s: unmounting %s", sigabbrev_np(signo), sig.mountpoint);
	unmount_self(sig.mountpoint);
	if (sigwait(&sig.set, &signo))
		return NULL;
	say("SIG%s again: making acknowledged writes durable and exiting without waiting for "
	    "the unmount",
	    sigabbrev_np(signo));
	kvfs_sync(sig.fs);
	_exit(EXIT_FAIL);
}

/* ---- test hook: a simulated power cut ----------------------------------- */

/*
 * For the crash tests only (tests/integration/test_crash.sh), deliberately
 * not in --help: with KVFS_TEST_POWERCUT=1 in the environment the store is
 * opened through the engine's fault-injecting env, and SIGUSR2 cuts the
 * power: the env freezes (no I/O completes durably from that instant on),
 * the store's files are put back to their durable state, and the process
 * exits at once (no unmount, no sync), leaving a dead mount as a crash
 * would. KVFS_TEST_POWERCUT=torn:SEED also lets a seeded half of the
 * unsynced sectors survive (torn writes).
 */
#define EXIT_POWERCUT 9

static struct {
	int on;
	uint64_t torn_seed;
	sigset_t set; /* SIGUSR2 */
	struct kv_fault_env *fe;
} pc;

static void powercut_parse(void)
{
	const char *v = getenv("KVFS_TEST_POWERCUT");

	if (!v || !*v || !strcmp(v, "0"))
		return;
	pc.on = 1;
	if (!strncmp(v, "torn:", 5))
		pc.torn_seed = strtoull(v + 5, NULL, 0) | 1;
	sigemptyset(&pc.set);
	sigaddset(&pc.set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &pc.set, NULL);
}

static void *powercut_thread(void *arg)
{
	int signo, e;

	(void)arg;
	if (sigwait(&pc.set, &signo))
		return NULL;
	e = kv_fault_env_freeze(pc.fe, pc.torn_seed);
	say("SIGUSR2: simulated power cut%s", e ? " (restoring the durable state failed)" : "");
	_exit(e ? EXIT_FAIL : EXIT_POWERCUT);
}

/* In the process that serves (after the fork): the env and its thread. */
static int powercut_start(struct kvfs_options *ko)
{
	pthread_t thr;

	if (!pc.on)
		return 0;
	if (kv_fault_env_create(kv_env_default(), &pc.fe) ||
	    pthread_create(&thr, NULL, powercut_thread, NULL)) {
		say("KVFS_TEST_POWERCUT: cannot set up the fault env");
		return -1;
	}
	pthread_detach(thr);
	ko->env = kv_fault_env_env(pc.fe);
	return 0;
}

/* ---- main ------------------------------------------------------------- */

static int serve(struct daemon_args *a, int notify_fd)
{
	struct fs_fuse *f = NULL;
	struct kvfs *fs = NULL;
	pthread_t sigthr;
	int e, ret = EXIT_FAIL;

	e = fs_fuse_new(progname, a->fuse_opts, &a->fc, &f);
	if (e) {
		if (e != -EINVAL)
			say("cannot start a FUSE session: %s", strerror(-e));
		return e == -EINVAL ? EXIT_USAGE : EXIT_FAIL;
	}
	if (powercut_start(&a->ko) || open_store(a->store, &a->ko, &fs))
		goto out;
	if (check_mountpoint(a->mountpoint))
		goto out;
	if (fs_fuse_mount(f, fs, a->mountpoint)) {
		say("%s: cannot mount (see the message above)", a->mountpoint);
		goto out;
	}
	sig.mountpoint = a->mountpoint;
	sig.fs = fs;
	if (pthread_create(&sigthr, NULL, signal_thread, NULL)) {
		say("cannot start the signal thread");
		goto out;
	}
	pthread_detach(sigthr);
	if (notify_fd >= 0)
		detach(notify_fd);
	notify_fd = -1;
	e = fs_fuse_run(f);
	if (e)
		say("session loop: %s", strerror(-e));
	ret = e ? EXIT_FAIL : 0;
out:
	fs_fuse_destroy(f);
	if (fs) {
		e = kvfs_close(fs);
		if (e) {
			say("%s: closing the store: %s", a->store, strerror(-e));
			ret = EXIT_FAIL;
		}
	}
	return ret;
}

/* realpath into @buf, or the name as given when it does not resolve (so
 * that the error about it comes from where it is used). */
static const char *absolute(const char *path, char *buf)
{
	return realpath(path, buf) ? buf : path;
}

int main(int argc, char **argv)
{
	struct daemon_args a = { 0 };
	static char store[PATH_MAX], mountpoint[PATH_MAX];
	char opt[PATH_MAX + 16];
	int notify_fd = -1;

	kvfs_options_init(&a.ko);
	a.ko.log = engine_log;
	/* The daemon holds its store alone (the engine's lock file): every
	 * change to names and attributes goes through this kernel, which
	 * invalidates what it caches, so names and attributes may be cached
	 * long. Absent names only briefly. */
	a.fc.entry_timeout = a.fc.attr_timeout = 60.0;
	a.fc.negative_timeout = 1.0;
	a.fc.writeback_cache = 1;
	if (parse_args(argc, argv, &a))
		return EXIT_USAGE;
	verbose = a.debug;
	a.fc.debug = a.debug;
	/* Absolute paths: the daemon leaves the working directory. */
	a.store = absolute(a.store, store);
	a.mountpoint = absolute(a.mountpoint, mountpoint);
	if (!a.fsname_set) {
		snprintf(opt, sizeof(opt), "fsname=%s", a.store);
		if (fuse_opt_append(&a, opt, 1))
			goto too_long;
	}
	if ((!a.subtype_set && fuse_opt_append(&a, "subtype=kvfs", 0)) ||
	    fuse_opt_append(&a, "default_permissions", 0))
		goto too_long;

	/* Before any thread exists, so that every thread inherits it. */
	sigemptyset(&sig.set);
	sigaddset(&sig.set, SIGINT);
	sigaddset(&sig.set, SIGTERM);
	sigaddset(&sig.set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sig.set, NULL);
	signal(SIGPIPE, SIG_IGN);
	powercut_parse();

	if (!a.foreground)
		notify_fd = fork_daemon();
	return serve(&a, notify_fd);
too_long:
	say("options too long");
	return EXIT_USAGE;
}
