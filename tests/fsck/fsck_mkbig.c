// SPDX-License-Identifier: MIT
/*
 * fsck_mkbig STORE NFILES [PER_DIR]: a consistent kvfs store with NFILES
 * small (inline, 16-byte) regular files spread over directories of PER_DIR
 * files (default 1000), written straight through the schema in large
 * batches: a fast way to get the store of a million files fsck.kvfs is
 * timed on. Every fourth file also has one 4 KiB data block.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

static struct kv_db *db;
static struct kv_batch *b;

static void die(const char *what, int err)
{
	fprintf(stderr, "fsck_mkbig: %s: %d\n", what, err);
	exit(1);
}

static void flush_if(int force)
{
	int err;

	if (!force && kv_batch_count(b) < 20000)
		return;
	err = kv_write(db, NULL, b);
	if (err)
		die("write", err);
	kv_batch_clear(b);
}

static void inode(uint64_t ino, const struct kvfs_inode *in, const void *inl, size_t len)
{
	int err = kvfs_batch_put_inode(b, ino, in, inl, len);

	if (err)
		die("put inode", err);
}

static void entry(uint64_t dir, const char *name, uint64_t ino, unsigned type)
{
	uint8_t k[KVFS_KEY_MAX], v[KVFS_ENTRY_SIZE];

	kvfs_entry_encode(ino, type, v);
	if (kv_batch_put(b, k, kvfs_key_entry(k, dir, name, strlen(name)), v, sizeof(v)))
		die("put entry", -1);
}

int main(int argc, char **argv)
{
	struct kvfs_mkfs_options mo = { 0 };
	uint64_t n, per, ndirs, next = 3;
	uint8_t k[KVFS_KEY_MAX], v[KVFS_SUPER_SIZE], block[4096];
	struct kvfs_inode root, d, f;
	struct kvfs_super sb;
	struct kv_options ko;
	const void *inl;
	size_t inl_len;
	char err[256], name[64];
	int e;

	if (argc < 3)
		die("usage: fsck_mkbig STORE NFILES [PER_DIR]", 0);
	n = strtoull(argv[2], NULL, 0);
	per = argc > 3 ? strtoull(argv[3], NULL, 0) : 1000;
	ndirs = (n + per - 1) / per;
	if (kvfs_mkfs(argv[1], &mo, err, sizeof(err)))
		die(err, 0);
	kv_options_init(&ko);
	ko.durability = KV_DUR_BATCH;
	if ((e = kv_open(argv[1], &ko, &db)) || (e = kv_batch_create(&b)))
		die("open", e);
	memset(block, 'x', sizeof(block));
	{
		uint8_t rv[KVFS_INODE_SIZE];
		ssize_t len = kv_get(db, 0, k, kvfs_key_inode(k, 1), rv, sizeof(rv));

		if (len != KVFS_INODE_SIZE ||
		    kvfs_inode_decode(rv, (size_t)len, &root, &inl, &inl_len))
			die("root", (int)len);
	}
	d = root;
	d.nlink = 2;
	f = root;
	f.mode = S_IFREG | 0644;
	f.nlink = 1;
	f.parent = 0;
	f.nentries = 0;
	for (uint64_t i = 0; i < ndirs; i++) {
		uint64_t dino = next++, files = n - i * per < per ? n - i * per : per;

		d.nentries = files;
		d.parent = 1;
		inode(dino, &d, NULL, 0);
		snprintf(name, sizeof(name), "d%llu", (unsigned long long)i);
		entry(1, name, dino, DT_DIR);
		for (uint64_t j = 0; j < files; j++) {
			uint64_t fino = next++;

			snprintf(name, sizeof(name), "file-%llu", (unsigned long long)j);
			entry(dino, name, fino, DT_REG);
			if (fino % 4 == 0) {
				f.flags = 0;
				f.size = sizeof(block);
				f.nblocks = 1;
				inode(fino, &f, NULL, 0);
				if (kv_batch_put(b, k, kvfs_key_data(k, fino, 0), block,
						 sizeof(block)))
					die("put data", -1);
			} else {
				f.flags = KVFS_IF_INLINE;
				f.size = 16;
				f.nblocks = 0;
				inode(fino, &f, "0123456789abcdef", 16);
			}
			flush_if(0);
		}
	}
	root.nentries += ndirs;
	root.nlink += (uint32_t)ndirs;
	inode(1, &root, NULL, 0);
	if (kv_get(db, 0, k, kvfs_key_super(k), v, sizeof(v)) != KVFS_SUPER_SIZE ||
	    kvfs_super_decode(v, sizeof(v), &sb))
		die("super", -1);
	sb.ino_next = next;
	kvfs_super_encode(&sb, v);
	if (kv_batch_put(b, k, kvfs_key_super(k), v, sizeof(v)))
		die("put super", -1);
	flush_if(1);
	kv_batch_destroy(b);
	if ((e = kv_close(db)))
		die("close", e);
	printf("%llu files in %llu directories\n", (unsigned long long)n,
	       (unsigned long long)ndirs);
	return 0;
}
