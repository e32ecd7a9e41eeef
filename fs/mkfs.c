// SPDX-License-Identifier: MIT
/*
 * kvfs_mkfs: a new filesystem in a store directory.
 */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define LOST_FOUND_INO 2ull

/* 1: @dir has entries, 0: empty, -errno. */
static int dir_has_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int found = 0;

	if (!d)
		return -errno;
	while (!found && (de = readdir(d)))
		found = strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return found;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (ftw->level == 0)
		return 0; /* the store directory itself stays */
	return remove(path) ? -1 : 0;
}

static void quiet(void *ctx, enum kv_log_level level, const char *msg)
{
}

/*
 * What @store (a non-empty directory) holds, without writing to it: a
 * store in use (-EBUSY), a store (-EEXIST), other files (-EMEDIUMTYPE).
 * kv_open with error_if_exists stops at the identity file, before
 * recovery writes anything.
 */
static int probe(const char *store)
{
	struct kv_options ko;
	struct kv_db *db;
	int e;

	kv_options_init(&ko);
	ko.create_if_missing = 1;
	ko.error_if_exists = 1;
	ko.log = quiet;
	e = kv_open(store, &ko, &db);
	if (!e) {
		/* Only a leftover LOCK was there: it is an empty store now. */
		kv_close(db);
		return -EMEDIUMTYPE;
	}
	return e;
}

/* Refuse or (with force) empty @store; create it if missing. */
static int prepare_dir(const char *store, int force, char *err, size_t errlen)
{
	struct stat st;
	int e;

	if (stat(store, &st)) {
		if (errno != ENOENT || mkdir(store, 0755)) {
			e = -errno;
			kvfs_errf(err, errlen, "%s: cannot create the directory: %s", store,
				  strerror(errno));
			return e;
		}
		return 0;
	}
	if (!S_ISDIR(st.st_mode)) {
		kvfs_errf(err, errlen, "%s: exists and is not a directory", store);
		return -ENOTDIR;
	}
	e = dir_has_entries(store);
	if (e < 0) {
		kvfs_errf(err, errlen, "%s: cannot read the directory: %s", store, strerror(-e));
		return e;
	}
	if (!e)
		return 0;
	e = probe(store);
	if (e == -EBUSY) {
		/* A store someone has open (mounted) is never touched. */
		kvfs_errf(err, errlen, "%s: the store is in use (mounted?); unmount it first",
			  store);
		return -EBUSY;
	}
	if (!force) {
		if (e == -EEXIST)
			kvfs_errf(err, errlen, "%s: already holds a store (use -f to overwrite it)",
				  store);
		else
			kvfs_errf(err, errlen, "%s: the directory is not empty (use -f to wipe it)",
				  store);
		return -EEXIST;
	}
	if (nftw(store, rm_one, 16, FTW_DEPTH | FTW_PHYS)) {
		e = -errno;
		kvfs_errf(err, errlen, "%s: cannot empty the directory: %s", store,
			  strerror(errno));
		return e;
	}
	return 0;
}

static void new_dir(struct kvfs_inode *in, mode_t perm, const struct kvfs_mkfs_options *o,
		    const struct timespec *now)
{
	memset(in, 0, sizeof(*in));
	in->mode = S_IFDIR | perm;
	in->uid = o->root_uid;
	in->gid = o->root_gid;
	in->nlink = 2;
	in->atime = in->mtime = in->ctime = in->btime = *now;
	in->generation = 1;
	in->parent = KVFS_ROOT_INO;
}

int kvfs_mkfs(const char *store, const struct kvfs_mkfs_options *o, char *err, size_t errlen)
{
	uint8_t key[KVFS_KEY_MAX], sbv[KVFS_SUPER_SIZE], ent[KVFS_ENTRY_SIZE];
	struct kvfs_inode root, lf;
	struct kvfs_super sb = { 0 };
	struct kv_options ko;
	struct kv_batch *b;
	struct kv_db *db;
	struct timespec now;
	int e, e2;

	sb.block_size = o->block_size ? o->block_size : 4096;
	if (sb.block_size < 1024 || sb.block_size > 65536 ||
	    (sb.block_size & (sb.block_size - 1))) {
		kvfs_errf(err, errlen, "block size %u: must be a power of two from 1024 to 65536",
			  sb.block_size);
		return -EINVAL;
	}
	if (o->label && strlen(o->label) > sizeof(sb.label) - 1) {
		kvfs_errf(err, errlen, "label '%s': longer than %zu bytes", o->label,
			  sizeof(sb.label) - 1);
		return -EINVAL;
	}
	e = prepare_dir(store, o->force, err, errlen);
	if (e)
		return e;

	kvfs_now(&now);
	sb.version = KVFS_FORMAT_VERSION;
	sb.inline_max = sb.block_size / 2 < 2048 ? sb.block_size / 2 : 2048;
	sb.ino_next = LOST_FOUND_INO + 1;
	sb.created_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
	if (getrandom(sb.uuid, sizeof(sb.uuid), 0) != (ssize_t)sizeof(sb.uuid))
		memcpy(sb.uuid, &now,
		       sizeof(sb.uuid) < sizeof(now) ? sizeof(sb.uuid) : sizeof(now));
	if (o->label)
		strcpy(sb.label, o->label);

	new_dir(&root, 0755, o, &now);
	root.nlink = 3; /* ".", its own "..", and lost+found's ".." */
	root.nentries = 1;
	new_dir(&lf, 0700, o, &now);

	kv_options_init(&ko);
	ko.create_if_missing = 1;
	ko.error_if_exists = 1;
	e = kv_open(store, &ko, &db);
	if (e) {
		kvfs_errf(err, errlen, "%s: cannot create the store: %s", store, strerror(-e));
		return e;
	}
	e = kv_batch_create(&b);
	if (!e) {
		kvfs_super_encode(&sb, sbv);
		e = kv_batch_put(b, key, kvfs_key_super(key), sbv, sizeof(sbv));
	}
	if (!e)
		e = kvfs_batch_put_inode(b, KVFS_ROOT_INO, &root, NULL, 0);
	if (!e)
		e = kvfs_batch_put_inode(b, LOST_FOUND_INO, &lf, NULL, 0);
	if (!e) {
		kvfs_entry_encode(LOST_FOUND_INO, kvfs_mode_dtype(lf.mode), ent);
		e = kv_batch_put(b, key, kvfs_key_entry(key, KVFS_ROOT_INO, "lost+found", 10), ent,
				 sizeof(ent));
	}
	if (!e)
		e = kv_write(db, NULL, b);
	kv_batch_destroy(b);
	e2 = kv_close(db);
	if (!e)
		e = e2;
	if (e)
		kvfs_errf(err, errlen, "%s: cannot write the new filesystem: %s", store,
			  strerror(-e));
	return e;
}
