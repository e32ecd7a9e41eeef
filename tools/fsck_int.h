/* SPDX-License-Identifier: MIT */
/*
 * fsck.kvfs internals, shared by tools/fsck*.c.
 *
 * The check streams the store once in key order (superblock, inodes,
 * entries, data, xattrs, orphans: fs/schema.h sorts keys by type, then
 * inode) and keeps one 64-byte record per inode in an array sorted by inode
 * number (the scan appends them in order); everything after the scan works
 * on that array. Memory: 64 bytes per inode (64 MiB per million inodes) plus
 * the engine's block cache; nothing is kept per entry, block or xattr.
 *
 * Repairs are written while the scan goes on (the iterator reads a fixed
 * view, so they do not disturb it); each is one kv batch. The in-memory
 * counts always describe the store as it is after the repairs accepted so
 * far, so that a declined repair is not undone by a later "safe" one.
 */
#ifndef KVFS_FSCK_INT_H
#define KVFS_FSCK_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "fsck.h"
#include "internal.h"

/* Record flags. */
enum {
	R_BAD = 1u << 0,    /* corrupt and not cleared: never checked further */
	R_DEAD = 1u << 1,   /* cleared or reclaimed by a repair */
	R_ORPHAN = 1u << 2, /* has an orphan record */
	R_INLINE = 1u << 3, /* stored with the inline flag */
	R_SYNTH = 1u << 4,  /* the root, missing from the store */
	R_CHECK = 1u << 5,  /* pass 1 saw something to re-check in pass 6 */
	R_DONE = 1u << 6,   /* connectivity resolved */
	R_XFLAG = 1u << 7,  /* stored with the xattr flag */
	R_XKEYS = 1u << 8,  /* xattr keys found */
};

struct fsck_rec {
	uint64_t ino;
	uint32_t mode;
	uint32_t nlink; /* as stored */
	uint32_t refs;	/* entries naming it */
	uint32_t flags; /* R_* */
	uint32_t stamp; /* connectivity walk */
	uint32_t nsub;	/* directories: subdirectory entries */
	union {
		struct {
			uint64_t size, nblocks; /* as stored */
			uint64_t dkeys;		/* data keys found */
			uint64_t dend;		/* end of the last byte stored */
		} f;
		struct {
			uint64_t nentries, parent; /* as stored */
			uint64_t nent;		   /* entries found */
			uint64_t fparent;	   /* the directory whose entry we kept */
		} d;
	} u;
};

struct fsck {
	const struct fsck_io *io;
	enum fsck_mode mode;
	int verbose;
	const char *store;
	struct kv_db *db;

	struct kvfs_super sb;
	int sb_ok;

	struct fsck_rec *r;
	size_t n, cap;
	uint64_t max_ino; /* largest inode number in the store */
	uint64_t lf;	  /* /lost+found, 0 = not found */

	/* Counts of problems. */
	uint64_t found, fixed, left;
	int unexpected; /* -p left an unsafe problem */
	int operr;	/* an operational error (I/O) happened */
	int cancelled;

	/* Progress: 0 none, 1 a bar (terminal), 2 plain lines. */
	int progress;
	int line_tenth; /* plain lines: tenths shown so far */
	int pass;
	uint64_t keys;
	int bar_shown;
	int bar_pm; /* per mille last shown */
};

/* fsck.c */
void fsck_pass(struct fsck *c, int pass, const char *what);
void fsck_progress(struct fsck *c, unsigned type, uint64_t ino);
void fsck_info(struct fsck *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Report a problem and decide whether to repair it: -n never, -y always,
 * -p if @safe, interactive: ask. @action is the verb of the question. */
bool fsck_ask(struct fsck *c, bool safe, const char *action, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Write an accepted repair (one batch); counts it fixed or failed. */
int fsck_commit(struct fsck *c, struct kv_batch *b);
bool fsck_stop(struct fsck *c);
/* A shared batch, cleared. */
struct kv_batch *fsck_batch(struct fsck *c);

/* fsck_scan.c */
struct fsck_rec *fsck_find(struct fsck *c, uint64_t ino);
int fsck_super(struct fsck *c);
int fsck_scan(struct fsck *c);
/* Read inode @ino (newest version): 0, -ENOENT or -EUCLEAN. @inl gets up to
 * FSCK_INLINE_CAP bytes. */
#define FSCK_INLINE_CAP 8192u
int fsck_inode_get(struct fsck *c, uint64_t ino, struct kvfs_inode *in, uint8_t *inl,
		   size_t *inl_len);
void fsck_print_name(char *out, size_t cap, const char *name, size_t len);
/* A repair changed a directory's entries: mtime and ctime become now. */
void fsck_touch(struct kvfs_inode *in);

/* fsck_fix.c */
int fsck_fixup(struct fsck *c);

#endif /* KVFS_FSCK_INT_H */
