/* SPDX-License-Identifier: MIT */
/*
 * kvdump_mkstore.c - make a store with known contents for test_kvdump.sh.
 * Built on kv.h alone.
 *
 *   kvdump_mkstore DIR
 *
 * The store it leaves (DIR must not exist or be empty):
 *   bottom level  key0000 .. key0199 = "val-NNNN" and the binary key
 *                 00 01 ff (value 1 KiB of 'v'), without key0100 (deleted
 *                 before the compaction, so its tombstone is gone too);
 *   level 0       a range tombstone [key0150, key0160) and late0 .. late4;
 *   WAL only      wal-only = "in the log" (written after the last flush).
 * Live keys: 200 + 1 - 1 - 10 + 5 + 1 = 196.
 */
#include <stdio.h>
#include <string.h>

#include "kv.h"

static int fail(const char *what, int err)
{
	fprintf(stderr, "kvdump_mkstore: %s: error %d\n", what, err);
	return 1;
}

static int put_str(struct kv_db *db, const char *k, const char *v)
{
	return kv_put(db, NULL, k, strlen(k), v, strlen(v));
}

int main(int argc, char **argv)
{
	static const unsigned char bin[] = { 0x00, 0x01, 0xff };
	static char big[1024];
	struct kv_options o;
	struct kv_db *db;
	char k[32], v[32];
	int err = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: kvdump_mkstore DIR\n");
		return 2;
	}
	kv_options_init(&o);
	o.create_if_missing = 1;
	o.error_if_exists = 1;
	o.manual_background = 1;
	o.log_buffer_size = 1 << 20;
	err = kv_open(argv[1], &o, &db);
	if (err)
		return fail("kv_open", err);
	for (int i = 0; i < 200 && !err; i++) {
		snprintf(k, sizeof(k), "key%04d", i);
		snprintf(v, sizeof(v), "val-%04d", i);
		err = put_str(db, k, v);
	}
	memset(big, 'v', sizeof(big));
	if (!err)
		err = kv_put(db, NULL, bin, sizeof(bin), big, sizeof(big));
	if (!err)
		err = kv_delete(db, NULL, "key0100", 7);
	if (!err)
		err = kv_compact(db);
	if (!err)
		err = kv_delete_range(db, NULL, "key0150", 7, "key0160", 7);
	for (int i = 0; i < 5 && !err; i++) {
		snprintf(k, sizeof(k), "late%d", i);
		err = put_str(db, k, "late value");
	}
	if (!err)
		err = kv_flush(db);
	if (!err)
		err = put_str(db, "wal-only", "in the log");
	if (err) {
		kv_close(db);
		return fail("writing", err);
	}
	err = kv_close(db);
	return err ? fail("kv_close", err) : 0;
}
