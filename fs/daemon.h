/* SPDX-License-Identifier: MIT */
/*
 * The FUSE adapter (fs/fuse.c) as the daemon (fs/main.c) drives it.
 *
 * main.c parses the command line, opens the store and owns the process
 * (daemonizing, signals); fuse.c owns everything that speaks FUSE, so that it
 * stays the only file including fuse_lowlevel.h. A session is made from
 * FUSE's own mount options first (so bad options fail before the store is
 * touched), then mounted, then run until the kernel ends the connection
 * (fusermount3 -u, umount: the daemon's SIGTERM handler unmounts too).
 */
#ifndef KVFS_DAEMON_H
#define KVFS_DAEMON_H

#include "kvfs.h"

struct fs_fuse;

struct fs_fuse_config {
	double entry_timeout;	 /* seconds the kernel may cache a name -> inode */
	double attr_timeout;	 /* seconds the kernel may cache attributes */
	double negative_timeout; /* seconds the kernel may cache "no such name" */
	int debug;		 /* -d: FUSE's request trace on stderr */
	int writeback_cache;	 /* ask for the kernel's writeback cache */
};

/*
 * A session from FUSE's own options (@fuse_opts: comma-separated, as after
 * -o; NULL for none). Returns 0, -EINVAL for options FUSE refuses (it has
 * printed why), -ENOMEM.
 */
int fs_fuse_new(const char *progname, const char *fuse_opts, const struct fs_fuse_config *cfg,
		struct fs_fuse **out);
/* Mount @mountpoint (a directory, or /dev/fd/N from mount.fuse3) for @fs. */
int fs_fuse_mount(struct fs_fuse *f, struct kvfs *fs, const char *mountpoint);
/*
 * Serve requests on a multi-threaded loop until the connection ends.
 * Before returning, waits until every reply still owed by a write in flight
 * has been sent. Returns 0 or a negative errno.
 */
int fs_fuse_run(struct fs_fuse *f);
/* Unmount if still mounted and free the session. The kvfs stays open. */
void fs_fuse_destroy(struct fs_fuse *f);
/* "3.14.0" */
const char *fs_fuse_version(void);

#endif /* KVFS_DAEMON_H */
