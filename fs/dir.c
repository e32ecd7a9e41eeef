// SPDX-License-Identifier: MIT
/*
 * Directory listings and statfs.
 *
 * A directory's entries are the keys 03 dir hash name, so a listing is one
 * ordered scan of that range. The offset handed out with each entry is its
 * 63-bit name hash (1 and 2 for "." and ".."), and a listing resumes by
 * seeking to the first key whose hash is above the offset it was given.
 * That position does not depend on what else was added or removed since, so
 * an entry present for the whole listing is returned exactly once, and
 * entries are never skipped or repeated because others moved (the two
 * names of a 63-bit hash collision aside: fs/FORMAT.md).
 *
 * The scan reads the latest view (kv_iter_create_flags, KV_READ_LATEST), as
 * lookups and getattr read inodes: a listing shows every operation
 * acknowledged before it started (in batch durability, acknowledged means
 * appended, not yet committed) without waiting for a group commit, so that
 * `rm -rf` (list a directory, unlink its entries, list the next one) or an
 * `ls` after a burst of creates never waits for the disk. Of operations
 * appended while the scan runs some may show and some not, which POSIX
 * allows for entries added or removed after opendir.
 */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/statvfs.h>

/* The parent of directory @in (root: itself; 0 = a store without the field). */
static uint64_t dir_parent(uint64_t ino, const struct kvfs_inode *in)
{
	if (ino == KVFS_ROOT_INO || !in->parent)
		return KVFS_ROOT_INO;
	return in->parent;
}

struct lister {
	struct kvfs *fs;
	int plus;
	kvfs_dirent_fn fn;
	void *arg;
};

/*
 * Hand one entry to the callback. With plus, the child is referenced before
 * it is read (as in kvfs_lookup) and unreferenced unless the callback keeps
 * it. Returns 1 if the callback asked to stop, 0 to go on; an entry whose
 * inode went away since the scan's view is skipped.
 */
static int emit(struct lister *l, const char *name, size_t len, uint64_t ino, unsigned type,
		uint64_t off)
{
	struct kvfs_dirent d = { .name = name,
				 .namelen = len,
				 .ino = ino,
				 .type = type,
				 .off = off };
	struct kvfs_entry e;
	struct kvfs_inode in;
	int took = 0, stop;

	if (l->plus) {
		kvfs_node_ref(l->fs, ino, 1, 0);
		if (kvfs_inode_read(l->fs, ino, &in, NULL, 0, NULL) || !in.nlink) {
			kvfs_node_unref(l->fs, ino, 1, 0);
			return 0;
		}
		e.ino = ino;
		e.generation = in.generation;
		kvfs_inode_stat(l->fs, ino, &in, &e.attr);
		d.e = &e;
		d.type = kvfs_mode_dtype(in.mode);
	}
	stop = l->fn(l->arg, &d, &took);
	if (l->plus && (stop || !took))
		kvfs_node_unref(l->fs, ino, 1, 0);
	return stop ? 1 : 0;
}

/* Entries of @dir from cookie @from on, until the callback stops. */
static int scan_entries(struct lister *l, uint64_t dir, uint64_t from)
{
	uint8_t lo[KVFS_KEY_MAX], hi[KVFS_KEY_MAX];
	size_t llen = kvfs_key_entry_from(lo, dir, from);
	size_t hlen = kvfs_key_prefix(hi, KVFS_K_ENTRY, dir + 1);
	struct kv_iter *it;
	int err;

	err = kv_iter_create_flags(l->fs->db, KV_READ_LATEST, NULL, &it);
	if (err)
		return err;
	for (kv_iter_seek(it, lo, llen); kv_iter_valid(it); kv_iter_next(it)) {
		struct kvfs_key key;
		size_t klen, vlen;
		const void *k = kv_iter_key(it, &klen), *v;
		uint64_t ino;
		unsigned type;

		if (memcmp(k, hi, klen < hlen ? klen : hlen) >= 0)
			break;
		v = kv_iter_value(it, &vlen);
		if (kvfs_key_parse(k, klen, &key) || key.type != KVFS_K_ENTRY || key.ino != dir ||
		    kvfs_entry_decode(v, vlen, &ino, &type)) {
			kvfs_log(l->fs, KV_LOG_ERROR, "%s: directory %llu: corrupt entry skipped",
				 l->fs->store, (unsigned long long)dir);
			continue;
		}
		if (emit(l, key.name, key.namelen, ino, type, key.hash))
			break;
	}
	err = kv_iter_status(it);
	kv_iter_destroy(it);
	return err;
}

int kvfs_readdir(struct kvfs *fs, uint64_t ino, uint64_t off, int plus, kvfs_dirent_fn fn,
		 void *arg)
{
	struct lister l = { .fs = fs, .plus = plus, .fn = fn, .arg = arg };
	struct kvfs_inode in;
	int err = kvfs_inode_read(fs, ino, &in, NULL, 0, NULL);

	if (err)
		return err;
	if (!S_ISDIR(in.mode))
		return -ENOTDIR;
	if (!in.nlink)
		return -ENOENT; /* removed (Linux: a dead directory lists nothing) */
	if (off == 0 && emit(&l, ".", 1, ino, DT_DIR, 1))
		return 0;
	if (off <= 1 && emit(&l, "..", 2, dir_parent(ino, &in), DT_DIR, 2))
		return 0;
	if (off >= UINT64_MAX >> 1)
		return 0; /* past the largest hash */
	return scan_entries(&l, ino, off < KVFS_DIROFF_FIRST ? KVFS_DIROFF_FIRST : off + 1);
}

/* @n units of @from bytes in units of @to bytes (rounding down). */
static uint64_t units(uint64_t n, uint64_t from, uint64_t to)
{
	return (uint64_t)((unsigned __int128)n * from / to);
}

int kvfs_statfs(struct kvfs *fs, struct statvfs *st)
{
	struct statvfs host;
	struct kv_stats ks;
	uint64_t used = (uint64_t)atomic_load(&fs->inodes_used), frsize;

	if (statvfs(fs->store, &host))
		return -errno;
	frsize = host.f_frsize ? host.f_frsize : host.f_bsize;
	memset(st, 0, sizeof(*st));
	st->f_bsize = fs->block_size;
	st->f_frsize = fs->block_size;
	st->f_blocks = units(host.f_blocks, frsize, fs->block_size);
	st->f_bfree = units(host.f_bfree, frsize, fs->block_size);
	st->f_bavail = units(host.f_bavail, frsize, fs->block_size);
	/* The WAL is preallocated: bytes appended since the last flush use
	 * no new host space yet, but they are the store's, so count them. */
	if (!kv_stats(fs->db, &ks)) {
		uint64_t pending = ks.log_buffer_bytes / fs->block_size;

		st->f_bfree -= pending < st->f_bfree ? pending : st->f_bfree;
		st->f_bavail -= pending < st->f_bavail ? pending : st->f_bavail;
	}
	/* Inodes cost keys, not a table: as many as the host lets us add, or
	 * (a host that does not count them, as btrfs) a large number. */
	st->f_ffree = host.f_files ? host.f_ffree : (1ull << 32);
	st->f_favail = host.f_files ? host.f_favail : (1ull << 32);
	st->f_files = used + st->f_ffree;
	st->f_namemax = KVFS_NAME_MAX;
	memcpy(&st->f_fsid, fs->sb.uuid, sizeof(st->f_fsid));
	if (fs->read_only)
		st->f_flag |= ST_RDONLY;
	return 0;
}
