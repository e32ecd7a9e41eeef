/* SPDX-License-Identifier: MIT */
/*
 * fsck.kvfs as a library function: the program's main() is a thin wrapper
 * around fsck_main(), and the tests call it directly with their own streams.
 */
#ifndef KVFS_FSCK_H
#define KVFS_FSCK_H

#include <signal.h>
#include <stdio.h>

/* fsck(8)'s exit codes (ORed together). */
enum {
	FSCK_EXIT_OK = 0,
	FSCK_EXIT_CORRECTED = 1,
	FSCK_EXIT_UNCORRECTED = 4,
	FSCK_EXIT_ERROR = 8,
	FSCK_EXIT_USAGE = 16,
	FSCK_EXIT_CANCELLED = 32,
};

enum fsck_mode {
	FSCK_MODE_ASK = 0, /* interactive: ask before each repair */
	FSCK_MODE_NO,	   /* -n */
	FSCK_MODE_YES,	   /* -y */
	FSCK_MODE_PREEN,   /* -p (or -a) */
};

struct kv_env;

struct fsck_io {
	FILE *in;	    /* answers to questions (interactive mode) */
	FILE *out;	    /* the report */
	FILE *err;	    /* usage and operational errors */
	int tty;	    /* a terminal: questions allowed, pass headers, progress bar */
	struct kv_env *env; /* the engine's file I/O; NULL = the real one (tests) */
};

/* Set (by a SIGINT handler) to stop at the next repair or key: exit 32. */
extern volatile sig_atomic_t fsck_cancel;

/* fsck.kvfs [-n|-y|-p] [-f] [-v] STORE: returns the exit code. */
int fsck_main(int argc, char **argv, const struct fsck_io *io);

#endif /* KVFS_FSCK_H */
