// SPDX-License-Identifier: MIT
/*
 * fsck.kvfs: check and repair a kvfs store, in the manner of e2fsck.
 *
 *   fsck.kvfs [-n|-y|-p] [-f] [-v] STORE
 *
 * Exit codes are fsck(8)'s, ORed: 0 clean, 1 errors corrected, 4 errors
 * left uncorrected, 8 operational error, 16 usage error, 32 cancelled.
 * Without -n, -y or -p the check asks before each repair, which needs a
 * terminal: like e2fsck ("need terminal for interactive repairs") it refuses
 * to run otherwise, with exit code 8. -f is accepted for fsck(8)'s sake: the
 * store has no "clean" flag, so every run is a full check.
 *
 * The order of the work:
 *   engine   kv_check: every manifest record, table and WAL segment. Any
 *            problem there ends the run (exit 4): the filesystem level is not
 *            checked on top of files the engine cannot read.
 *   pass 1   the superblock (rebuilt if unreadable), then every inode
 *   pass 2   directory entries
 *   pass 3   data blocks and extended attributes
 *   pass 4   orphan records and unlinked inodes (an inode unlinked while
 *            open, a crash's orphan, is no problem: -n notes it, the
 *            other modes reclaim it without asking)
 *   pass 5   directory connectivity (lost+found)
 *   pass 6   link counts, directory counts, sizes, inline data
 *   pass 7   the inode allocator
 * Passes 1-3 (and the collection of orphan records) are one ordered scan
 * (tools/fsck_scan.c); passes 4-7 work on the in-memory records
 * (tools/fsck_fix.c).
 */
#include "fsck_int.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

volatile sig_atomic_t fsck_cancel;

static void usage(const struct fsck_io *io)
{
	fprintf(io->err, "Usage: fsck.kvfs [-n|-y|-p] [-f] [-v] STORE\n"
			 "  -n  check only: make no changes\n"
			 "  -y  repair every problem\n"
			 "  -p  repair what is safe without asking (-a: the same)\n"
			 "  -f  force a full check (every check is full)\n"
			 "  -v  verbose: pass headers and counts\n");
}

bool fsck_stop(struct fsck *c)
{
	if (fsck_cancel)
		c->cancelled = 1;
	return c->cancelled || c->operr;
}

static void bar_clear(struct fsck *c)
{
	if (c->bar_shown) {
		fprintf(c->io->out, "\r%70s\r", "");
		c->bar_shown = 0;
	}
}

void fsck_pass(struct fsck *c, int pass, const char *what)
{
	c->pass = pass;
	if (!c->verbose && !c->io->tty)
		return;
	bar_clear(c);
	fprintf(c->io->out, "Pass %d: %s\n", pass, what);
}

/* Not a terminal: plain progress lines with -v, or for a store of at least
 * this many inodes (by its allocator). */
#define PLAIN_PROGRESS_INODES 100000u

/* Progress over the scan: the key type gives the pass, the inode number the
 * position in it (relative to the allocator). A bar on a terminal, else a
 * line at every tenth (the first one as soon as the scan has started). */
void fsck_progress(struct fsck *c, unsigned type, uint64_t ino)
{
	double f;
	int w = 40, n;

	if (!c->progress || (++c->keys & 4095))
		return;
	f = c->sb.ino_next ? (double)ino / (double)c->sb.ino_next : 0;
	if (f > 1)
		f = 1;
	f = ((type > 1 ? type - 2 : 0) + f) / 5.0;
	if (c->progress == 2) {
		if ((int)(f * 10) < c->line_tenth)
			return;
		c->line_tenth = (int)(f * 10) + 1;
		fprintf(c->io->out, "%s: %d%% checked (%llu keys)\n", c->store, (int)(f * 10) * 10,
			(unsigned long long)c->keys);
		fflush(c->io->out);
		return;
	}
	if ((int)(f * 1000) == c->bar_pm && c->bar_shown)
		return;
	c->bar_pm = (int)(f * 1000);
	n = (int)(f * w);
	fprintf(c->io->out, "\r%s: |%.*s%*s| %5.1f%%", c->store, n,
		"========================================", w - n, "", f * 100);
	fflush(c->io->out);
	c->bar_shown = 1;
}

void fsck_info(struct fsck *c, const char *fmt, ...)
{
	va_list ap;

	bar_clear(c);
	va_start(ap, fmt);
	vfprintf(c->io->out, fmt, ap);
	va_end(ap);
}

/* Interactive: y (or empty), n, a (yes to all). EOF: no to all. */
static bool prompt(struct fsck *c, const char *action)
{
	char line[64];

	for (;;) {
		fprintf(c->io->out, "%s<y>? ", action);
		fflush(c->io->out);
		if (!fgets(line, sizeof(line), c->io->in)) {
			fprintf(c->io->out, "no\n");
			c->mode = FSCK_MODE_NO;
			return false;
		}
		if (line[0] == 'y' || line[0] == 'Y' || line[0] == '\n')
			return true;
		if (line[0] == 'n' || line[0] == 'N')
			return false;
		if (line[0] == 'a' || line[0] == 'A') {
			c->mode = FSCK_MODE_YES;
			return true;
		}
	}
}

bool fsck_ask(struct fsck *c, bool safe, const char *action, const char *fmt, ...)
{
	FILE *out = c->io->out;
	bool yes = false;
	va_list ap;

	bar_clear(c);
	c->found++;
	if (c->mode == FSCK_MODE_PREEN)
		fprintf(out, "%s: ", c->store);
	va_start(ap, fmt);
	vfprintf(out, fmt, ap);
	va_end(ap);
	fputs(".  ", out);
	if (fsck_stop(c)) {
		fprintf(out, "%s? no (stopped)\n", action);
		c->left++;
		return false;
	}
	switch (c->mode) {
	case FSCK_MODE_NO:
		fprintf(out, "%s? no\n", action);
		break;
	case FSCK_MODE_YES:
		fprintf(out, "%s? yes\n", action);
		yes = true;
		break;
	case FSCK_MODE_PREEN:
		if (safe) {
			fprintf(out, "%s: FIXED.\n", action);
			yes = true;
		} else {
			fprintf(out, "UNEXPECTED INCONSISTENCY: not repaired in preen mode.\n");
			c->unexpected = 1;
		}
		break;
	case FSCK_MODE_ASK:
		yes = prompt(c, action);
		break;
	}
	if (!yes)
		c->left++;
	return yes;
}

/* Durable before it is counted (and before the next repair is asked): a
 * repair reported as made survives a crash of fsck itself. */
int fsck_commit(struct fsck *c, struct kv_batch *b)
{
	static const struct kv_write_options wo = { .durability = KV_DUR_SYNC };
	int err = kv_write(c->db, &wo, b);

	kv_batch_clear(b);
	if (err) {
		fprintf(c->io->err, "fsck.kvfs: %s: writing a repair failed: %s\n", c->store,
			strerror(-err));
		c->operr = 1;
		c->left++;
		return err;
	}
	c->fixed++;
	return 0;
}

struct kv_batch *fsck_batch(struct fsck *c)
{
	static struct kv_batch *b;

	if (!b && kv_batch_create(&b))
		return NULL;
	kv_batch_clear(b);
	return b;
}

/* ---- engine level ------------------------------------------------------ */

struct engine_report {
	struct fsck *c;
	unsigned long n;
};

static void engine_problem(void *arg, const char *file, uint64_t off, const char *problem)
{
	struct engine_report *r = arg;

	r->n++;
	fprintf(r->c->io->out, "Engine: %s at offset %llu: %s\n", file, (unsigned long long)off,
		problem);
}

static void engine_log(void *ctx, enum kv_log_level level, const char *msg)
{
	struct fsck *c = ctx;

	if (level <= KV_LOG_WARN)
		fprintf(c->io->err, "fsck.kvfs: %s: engine: %s\n", c->store, msg);
}

/* 0: go on; else the exit code. */
static int check_engine(struct fsck *c)
{
	struct engine_report r = { c, 0 };
	int n;

	if (c->verbose || c->io->tty)
		fprintf(c->io->out, "Checking the engine's manifest, tables and WAL\n");
	n = kv_check(c->store, c->io->env, engine_problem, &r);
	if (n == -EBUSY) {
		fprintf(c->io->err,
			"fsck.kvfs: %s: the store is in use (mounted?): unmount it first\n",
			c->store);
		return FSCK_EXIT_ERROR;
	}
	if (n == -ENOENT || n == -EMEDIUMTYPE) {
		fprintf(c->io->err, "fsck.kvfs: %s: %s\n", c->store,
			n == -ENOENT ? "no such store" : "not a kvfs store");
		return FSCK_EXIT_ERROR;
	}
	if (n < 0) {
		fprintf(c->io->err, "fsck.kvfs: %s: cannot check the store's files: %s\n", c->store,
			strerror(-n));
		return FSCK_EXIT_ERROR;
	}
	if (n > 0) {
		fprintf(c->io->out,
			"%s: %d problem(s) in the engine's files: the filesystem level was not "
			"checked. Restore the store from a backup.\n",
			c->store, n);
		c->found += (uint64_t)n;
		c->left += (uint64_t)n;
		return FSCK_EXIT_UNCORRECTED;
	}
	return 0;
}

static int open_store(struct fsck *c)
{
	struct kv_options ko;
	int err;

	kv_options_init(&ko);
	ko.durability = KV_DUR_BATCH;
	ko.block_cache_size = 8u << 20;
	/* Repairs are few and small: a 4 MiB log (each open makes a new,
	 * zero-filled one) instead of 64; level 1 keeps the size a mount's
	 * default gives it, so that opening starts no compaction. */
	ko.log_buffer_size = 4u << 20;
	ko.level1_max_bytes = 4 * (64u << 20);
	ko.env = c->io->env;
	ko.log = engine_log;
	ko.log_ctx = c;
	err = kv_open(c->store, &ko, &c->db);
	if (!err)
		return 0;
	if (err == -EBUSY)
		fprintf(c->io->err,
			"fsck.kvfs: %s: the store is in use (mounted?): unmount it first\n",
			c->store);
	else
		fprintf(c->io->err, "fsck.kvfs: %s: cannot open the store: %s\n", c->store,
			strerror(-err));
	return FSCK_EXIT_ERROR;
}

static void summary(struct fsck *c)
{
	uint64_t dirs = 0, files = 0, links = 0, other = 0, blocks = 0, bytes = 0;

	for (size_t i = 0; i < c->n; i++) {
		struct fsck_rec *r = &c->r[i];

		if (r->flags & (R_DEAD | R_SYNTH))
			continue;
		if (S_ISDIR(r->mode)) {
			dirs++;
		} else if (S_ISREG(r->mode)) {
			files++;
			blocks += r->u.f.dkeys;
			bytes += r->u.f.size;
		} else if (S_ISLNK(r->mode)) {
			links++;
		} else {
			other++;
		}
	}
	bar_clear(c);
	fprintf(c->io->out,
		"%s: %s%llu inodes (%llu directories, %llu regular files, %llu symlinks, %llu "
		"other), %llu data blocks of %u bytes, %llu bytes in files\n",
		c->store, c->found ? "" : "clean, ",
		(unsigned long long)(dirs + files + links + other), (unsigned long long)dirs,
		(unsigned long long)files, (unsigned long long)links, (unsigned long long)other,
		(unsigned long long)blocks, c->sb.block_size, (unsigned long long)bytes);
	if (c->fixed)
		fprintf(c->io->out, "\n%s: ***** FILE SYSTEM WAS MODIFIED (%llu repairs) *****\n",
			c->store, (unsigned long long)c->fixed);
	if (c->left)
		fprintf(c->io->out,
			"\n%s: ********** WARNING: %llu problem(s) left uncorrected **********\n",
			c->store, (unsigned long long)c->left);
	if (c->unexpected)
		fprintf(c->io->out,
			"%s: UNEXPECTED INCONSISTENCY; RUN fsck.kvfs MANUALLY (without -p).\n",
			c->store);
}

static int exit_code(struct fsck *c)
{
	int code = 0;

	if (c->fixed)
		code |= FSCK_EXIT_CORRECTED;
	if (c->left)
		code |= FSCK_EXIT_UNCORRECTED;
	if (c->operr)
		code |= FSCK_EXIT_ERROR;
	if (c->cancelled)
		code |= FSCK_EXIT_CANCELLED;
	return code;
}

static int run(struct fsck *c)
{
	int code = check_engine(c);

	if (code)
		return code;
	code = open_store(c);
	if (code)
		return code;
	code = fsck_super(c);
	if (!c->io->tty && (c->verbose || c->sb.ino_next >= PLAIN_PROGRESS_INODES))
		c->progress = 2;
	if (!code)
		code = fsck_scan(c);
	if (!code)
		code = fsck_fixup(c);
	if (!code || code == -ECANCELED)
		summary(c);
	if (kv_close(c->db) && !c->operr) {
		fprintf(c->io->err, "fsck.kvfs: %s: closing the store failed\n", c->store);
		c->operr = 1;
	}
	c->db = NULL;
	/* -EUCLEAN: stopped on a problem left uncorrected (counted). */
	if (code && code != -ECANCELED && code != -EUCLEAN)
		c->operr = 1;
	if (c->cancelled)
		fprintf(c->io->out, "%s: cancelled\n", c->store);
	return exit_code(c);
}

int fsck_main(int argc, char **argv, const struct fsck_io *io)
{
	struct fsck c = { 0 };
	int opt, modes = 0, code;

	c.io = io;
	c.mode = FSCK_MODE_ASK;
	optind = 0; /* glibc: a full reset, so that tests may call us again */
	opterr = 0;
	while ((opt = getopt(argc, argv, "+nypafvh")) != -1) {
		switch (opt) {
		case 'n':
			c.mode = FSCK_MODE_NO;
			modes++;
			break;
		case 'y':
			c.mode = FSCK_MODE_YES;
			modes++;
			break;
		case 'p':
		case 'a':
			c.mode = FSCK_MODE_PREEN;
			modes++;
			break;
		case 'f':
			break;
		case 'v':
			c.verbose = 1;
			break;
		case 'h':
			usage(io);
			return FSCK_EXIT_USAGE;
		default:
			fprintf(io->err, "fsck.kvfs: unknown option -%c\n", optopt);
			usage(io);
			return FSCK_EXIT_USAGE;
		}
	}
	if (modes > 1) {
		fprintf(io->err, "fsck.kvfs: only one of -n, -y and -p may be given\n");
		usage(io);
		return FSCK_EXIT_USAGE;
	}
	if (optind != argc - 1) {
		fprintf(io->err, "fsck.kvfs: %s\n",
			optind >= argc ? "no store given" : "more than one store given");
		usage(io);
		return FSCK_EXIT_USAGE;
	}
	c.store = argv[optind];
	if (c.mode == FSCK_MODE_ASK && !io->tty) {
		fprintf(io->err,
			"fsck.kvfs: %s: need a terminal for interactive repairs "
			"(use -n, -y or -p)\n",
			c.store);
		return FSCK_EXIT_ERROR;
	}
	c.progress = io->tty;
	code = run(&c);
	free(c.r);
	return code;
}
