// SPDX-License-Identifier: MIT
/*
 * The key schema (fs/schema.c): every key builds and parses back; keys sort
 * as fs/FORMAT.md promises (big-endian integers: an inode's keys and a
 * directory's entries contiguous and in numeric order); malformed keys are
 * refused; superblock, inode and entry values round-trip, sit at the
 * offsets FORMAT.md gives, and decode errors are the documented ones.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "kv_test_util.h"
#include "schema.h"

/* memcmp-then-length: libkv's key order. */
static int key_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);

	return c ? c : (al > bl) - (al < bl);
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- keys --------------------------------------------------------------- */

static void test_key_round_trip(void **state)
{
	uint8_t k[KVFS_KEY_MAX];
	struct kvfs_key key;
	char name[256];
	size_t n;

	(void)state;
	n = kvfs_key_super(k);
	assert_int_equal(n, 1);
	assert_int_equal(kvfs_key_parse(k, n, &key), 0);
	assert_int_equal(key.type, KVFS_K_SUPER);

	n = kvfs_key_inode(k, 0x0102030405060708ull);
	assert_int_equal(n, 9);
	assert_int_equal(k[0], KVFS_K_INODE);
	assert_memory_equal(k + 1, "\x01\x02\x03\x04\x05\x06\x07\x08", 8); /* big-endian */
	assert_int_equal(kvfs_key_parse(k, n, &key), 0);
	assert_int_equal(key.type, KVFS_K_INODE);
	assert_int_equal(key.ino, 0x0102030405060708ull);

	n = kvfs_key_orphan(k, 77);
	assert_int_equal(kvfs_key_parse(k, n, &key), 0);
	assert_int_equal(key.type, KVFS_K_ORPHAN);
	assert_int_equal(key.ino, 77);

	n = kvfs_key_data(k, 5, 0xabcdefull);
	assert_int_equal(n, 17);
	assert_int_equal(kvfs_key_parse(k, n, &key), 0);
	assert_int_equal(key.type, KVFS_K_DATA);
	assert_int_equal(key.ino, 5);
	assert_int_equal(key.block, 0xabcdefull);

	n = kvfs_key_entry(k, 9, "hello", 5);
	assert_int_equal(n, 17 + 5);
	assert_int_equal(kvfs_key_parse(k, n, &key), 0);
	assert_int_equal(key.type, KVFS_K_ENTRY);
	assert_int_equal(key.ino, 9);
	assert_int_equal(key.hash, kvfs_name_hash("hello", 5));
	assert_int_equal(key.namelen, 5);
	assert_memory_equal(key.name, "hello", 5);

	memset(name, 'z', 255);
	n = kvfs_key_entry(k, 9, name, 255);
	assert_int_equal(n, KVFS_KEY_MAX);
	assert_int_equal(kvfs_key_parse(k, n, &key), 0);
	assert_int_equal(key.namelen, 255);

	n = kvfs_key_xattr(k, 12, "user.x", 6);
	assert_int_equal(n, 9 + 6);
	assert_int_equal(kvfs_key_parse(k, n, &key), 0);
	assert_int_equal(key.type, KVFS_K_XATTR);
	assert_int_equal(key.ino, 12);
	assert_memory_equal(key.name, "user.x", 6);

	n = kvfs_key_prefix(k, KVFS_K_DATA, 5);
	assert_int_equal(n, 9);
	assert_int_equal(k[0], KVFS_K_DATA);
}

static void test_name_hash(void **state)
{
	uint64_t rs = kvt_seed("name_hash");
	char name[32];

	(void)state;
	assert_int_equal(kvfs_name_hash("abc", 3), kvfs_name_hash("abc", 3));
	assert_true(kvfs_name_hash("abc", 3) != kvfs_name_hash("abd", 3));
	assert_true(kvfs_name_hash("abc", 3) != kvfs_name_hash("abc", 2));
	for (int i = 0; i < 10000; i++) {
		uint64_t h;
		int len = snprintf(name, sizeof(name), "%llx", (unsigned long long)kvt_rand(&rs));

		h = kvfs_name_hash(name, (size_t)len);
		assert_true(h >= KVFS_DIROFF_FIRST);
		assert_true(h < (1ull << 63));
	}
}

static void test_key_order(void **state)
{
	uint8_t a[KVFS_KEY_MAX], b[KVFS_KEY_MAX], lo[KVFS_KEY_MAX], hi[KVFS_KEY_MAX];
	size_t al, bl, ll, hl;
	uint64_t rs = kvt_seed("key_order");

	(void)state;
	/* Numeric order of inos, blocks (big-endian, not little-endian). */
	al = kvfs_key_inode(a, 255);
	bl = kvfs_key_inode(b, 256);
	assert_true(key_cmp(a, al, b, bl) < 0);
	al = kvfs_key_data(a, 1, 255);
	bl = kvfs_key_data(b, 1, 256);
	assert_true(key_cmp(a, al, b, bl) < 0);
	al = kvfs_key_data(a, 1, UINT64_MAX);
	bl = kvfs_key_data(b, 2, 0);
	assert_true(key_cmp(a, al, b, bl) < 0);
	/* Types never interleave: every inode key before every entry key. */
	al = kvfs_key_inode(a, UINT64_MAX);
	bl = kvfs_key_entry(b, 0, "a", 1);
	assert_true(key_cmp(a, al, b, bl) < 0);
	al = kvfs_key_super(a);
	bl = kvfs_key_inode(b, 0);
	assert_true(key_cmp(a, al, b, bl) < 0);

	/* Entries of one directory lie in [prefix(dir), prefix(dir + 1)), in
	 * hash order, and each sits at or after its kvfs_key_entry_from. */
	for (int i = 0; i < 2000; i++) {
		uint64_t dir = kvt_rand(&rs) % 1000 + 1, h;
		char name[24];
		int len = snprintf(name, sizeof(name), "n%llu", (unsigned long long)kvt_rand(&rs));

		al = kvfs_key_entry(a, dir, name, (size_t)len);
		ll = kvfs_key_prefix(lo, KVFS_K_ENTRY, dir);
		hl = kvfs_key_prefix(hi, KVFS_K_ENTRY, dir + 1);
		assert_true(key_cmp(lo, ll, a, al) < 0);
		assert_true(key_cmp(a, al, hi, hl) < 0);
		h = kvfs_name_hash(name, (size_t)len);
		bl = kvfs_key_entry_from(b, dir, h);
		assert_true(key_cmp(b, bl, a, al) < 0);
		bl = kvfs_key_entry_from(b, dir, h + 1);
		assert_true(key_cmp(a, al, b, bl) < 0);
		/* Another directory's entry is outside the range. */
		bl = kvfs_key_entry(b, dir + 1, name, (size_t)len);
		assert_true(key_cmp(b, bl, hi, hl) >= 0);
		bl = kvfs_key_entry(b, dir - 1, name, (size_t)len);
		assert_true(key_cmp(b, bl, lo, ll) < 0);
	}
	/* Xattrs of one inode: within [prefix(ino), prefix(ino + 1)). */
	al = kvfs_key_xattr(a, 7, "user.\xff\xff", 7);
	hl = kvfs_key_prefix(hi, KVFS_K_XATTR, 8);
	assert_true(key_cmp(a, al, hi, hl) < 0);
}

static void test_key_parse_rejects(void **state)
{
	uint8_t k[KVFS_KEY_MAX + 1] = { 0 };
	struct kvfs_key key;
	size_t n;

	(void)state;
	assert_int_equal(kvfs_key_parse(k, 0, &key), -EINVAL);
	k[0] = 0;
	assert_int_equal(kvfs_key_parse(k, 1, &key), -EINVAL);
	k[0] = 0x07;
	assert_int_equal(kvfs_key_parse(k, 9, &key), -EINVAL);
	k[0] = 0xff;
	assert_int_equal(kvfs_key_parse(k, 9, &key), -EINVAL);
	n = kvfs_key_super(k);
	assert_int_equal(kvfs_key_parse(k, n + 1, &key), -EINVAL);
	n = kvfs_key_inode(k, 3);
	assert_int_equal(kvfs_key_parse(k, n - 1, &key), -EINVAL);
	assert_int_equal(kvfs_key_parse(k, n + 1, &key), -EINVAL);
	n = kvfs_key_orphan(k, 3);
	assert_int_equal(kvfs_key_parse(k, n + 1, &key), -EINVAL);
	n = kvfs_key_data(k, 3, 4);
	assert_int_equal(kvfs_key_parse(k, n - 1, &key), -EINVAL);
	assert_int_equal(kvfs_key_parse(k, n + 1, &key), -EINVAL);
	/* An entry without a name, or with a name over 255 bytes. */
	n = kvfs_key_entry_from(k, 3, 99);
	assert_int_equal(kvfs_key_parse(k, n, &key), -EINVAL);
	memset(k + 17, 'a', 256);
	assert_int_equal(kvfs_key_parse(k, 17 + 255, &key), 0);
	assert_int_equal(kvfs_key_parse(k, 17 + 256, &key), -EINVAL);
	/* An xattr key without a name, or too long. */
	n = kvfs_key_prefix(k, KVFS_K_XATTR, 3);
	assert_int_equal(kvfs_key_parse(k, n, &key), -EINVAL);
	memset(k + 9, 'a', 256);
	assert_int_equal(kvfs_key_parse(k, 9 + 256, &key), -EINVAL);
	/* A truncated prefix of any type. */
	for (uint8_t t = KVFS_K_INODE; t <= KVFS_K_ORPHAN; t++) {
		k[0] = t;
		assert_int_equal(kvfs_key_parse(k, 5, &key), -EINVAL);
	}
}

/* ---- values ------------------------------------------------------------- */

static struct kvfs_super sample_super(void)
{
	struct kvfs_super s = { 0 };

	s.version = KVFS_FORMAT_VERSION;
	s.block_size = 4096;
	s.inline_max = 2048;
	s.ino_next = 1027;
	s.features = 0;
	s.created_ns = 1700000000123456789ll;
	for (int i = 0; i < 16; i++)
		s.uuid[i] = (uint8_t)(i * 17);
	strcpy(s.label, "my label");
	return s;
}

static void test_super(void **state)
{
	struct kvfs_super s = sample_super(), d;
	uint8_t v[KVFS_SUPER_SIZE], w[KVFS_SUPER_SIZE + 1];

	(void)state;
	kvfs_super_encode(&s, v);
	/* The offsets of FORMAT.md. */
	assert_int_equal(le32(v), KVFS_MAGIC);
	assert_memory_equal(v, "KVFS", 4);
	assert_int_equal(le32(v + 4), KVFS_FORMAT_VERSION);
	assert_int_equal(le32(v + 8), 4096);
	assert_int_equal(le32(v + 12), 2048);
	assert_int_equal(le64(v + 16), 1027);
	assert_int_equal(le64(v + 24), 0);
	assert_int_equal(le64(v + 32), 1700000000123456789ull);
	assert_memory_equal(v + 40, s.uuid, 16);
	assert_string_equal((char *)v + 56, "my label");
	for (int i = 120; i < KVFS_SUPER_SIZE; i++)
		assert_int_equal(v[i], 0);

	assert_int_equal(kvfs_super_decode(v, sizeof(v), &d), 0);
	assert_int_equal(d.version, s.version);
	assert_int_equal(d.block_size, s.block_size);
	assert_int_equal(d.inline_max, s.inline_max);
	assert_int_equal(d.ino_next, s.ino_next);
	assert_int_equal(d.created_ns, s.created_ns);
	assert_memory_equal(d.uuid, s.uuid, 16);
	assert_string_equal(d.label, "my label");

	/* Not a kvfs superblock. */
	memcpy(w, v, sizeof(v));
	w[1] ^= 1;
	assert_int_equal(kvfs_super_decode(w, sizeof(v), &d), -EMEDIUMTYPE);
	assert_int_equal(kvfs_super_decode(v, 3, &d), -EMEDIUMTYPE);
	assert_int_equal(kvfs_super_decode(v, 0, &d), -EMEDIUMTYPE);
	/* Newer. */
	s = sample_super();
	s.version = KVFS_FORMAT_VERSION + 1;
	kvfs_super_encode(&s, w);
	assert_int_equal(kvfs_super_decode(w, KVFS_SUPER_SIZE, &d), -EPROTONOSUPPORT);
	s = sample_super();
	s.features = 1;
	kvfs_super_encode(&s, w);
	assert_int_equal(kvfs_super_decode(w, KVFS_SUPER_SIZE, &d), -EPROTONOSUPPORT);
	/* Corrupt. */
	assert_int_equal(kvfs_super_decode(v, KVFS_SUPER_SIZE - 1, &d), -EUCLEAN);
	memcpy(w, v, sizeof(v));
	w[KVFS_SUPER_SIZE] = 0;
	assert_int_equal(kvfs_super_decode(w, KVFS_SUPER_SIZE + 1, &d), -EUCLEAN);
	assert_int_equal(kvfs_super_decode(v, 6, &d), -EUCLEAN);
	static const uint32_t bad_bs[] = { 0, 512, 3000, 131072 };
	for (size_t i = 0; i < sizeof(bad_bs) / sizeof(bad_bs[0]); i++) {
		s = sample_super();
		s.block_size = bad_bs[i];
		s.inline_max = 0;
		kvfs_super_encode(&s, w);
		assert_int_equal(kvfs_super_decode(w, KVFS_SUPER_SIZE, &d), -EUCLEAN);
	}
	s = sample_super();
	s.inline_max = 8192;
	kvfs_super_encode(&s, w);
	assert_int_equal(kvfs_super_decode(w, KVFS_SUPER_SIZE, &d), -EUCLEAN);
	s = sample_super();
	s.ino_next = 1;
	kvfs_super_encode(&s, w);
	assert_int_equal(kvfs_super_decode(w, KVFS_SUPER_SIZE, &d), -EUCLEAN);
}

static void test_inode(void **state)
{
	struct kvfs_inode in = { 0 }, d;
	uint8_t v[KVFS_INODE_SIZE + 16];
	const void *inl;
	size_t n, ilen;

	(void)state;
	in.mode = S_IFLNK | 0777;
	in.uid = 1000;
	in.gid = 1001;
	in.nlink = 1;
	in.flags = KVFS_IF_INLINE;
	in.size = 6;
	in.nblocks = 0x1122334455ull;
	in.nentries = 42;
	in.atime = (struct timespec){ 1, 2 };
	in.mtime = (struct timespec){ -3, 4 };
	in.ctime = (struct timespec){ 5, 999999999 };
	in.btime = (struct timespec){ 7, 8 };
	in.rdev = 0x0801;
	in.generation = 1;
	in.parent = 0xdeadbeefull;
	n = kvfs_inode_encode(&in, "target", 6, v);
	assert_int_equal(n, KVFS_INODE_SIZE + 6);
	/* The offsets of FORMAT.md. */
	assert_int_equal(v[0], 1);
	assert_int_equal(le32(v + 4), S_IFLNK | 0777);
	assert_int_equal(le32(v + 8), 1000);
	assert_int_equal(le32(v + 12), 1001);
	assert_int_equal(le32(v + 16), 1);
	assert_int_equal(le32(v + 20), KVFS_IF_INLINE);
	assert_int_equal(le64(v + 24), 6);
	assert_int_equal(le64(v + 32), 0x1122334455ull);
	assert_int_equal(le64(v + 40), 42);
	assert_int_equal(le64(v + 48), 1);
	assert_int_equal((int64_t)le64(v + 56), -3);
	assert_int_equal(le64(v + 72), 7);
	assert_int_equal(le32(v + 80), 2);
	assert_int_equal(le32(v + 88), 999999999);
	assert_int_equal(le64(v + 96), 0x0801);
	assert_int_equal(le64(v + 104), 1);
	assert_int_equal(le64(v + 112), 0xdeadbeefull);
	assert_memory_equal(v + KVFS_INODE_SIZE, "target", 6);

	assert_int_equal(kvfs_inode_decode(v, n, &d, &inl, &ilen), 0);
	assert_int_equal(ilen, 6);
	assert_memory_equal(inl, "target", 6);
	assert_int_equal(d.mode, in.mode);
	assert_int_equal(d.uid, in.uid);
	assert_int_equal(d.gid, in.gid);
	assert_int_equal(d.nlink, in.nlink);
	assert_int_equal(d.flags, in.flags);
	assert_int_equal(d.size, in.size);
	assert_int_equal(d.nblocks, in.nblocks);
	assert_int_equal(d.nentries, in.nentries);
	assert_int_equal(d.mtime.tv_sec, -3);
	assert_int_equal(d.ctime.tv_nsec, 999999999);
	assert_int_equal(d.btime.tv_sec, 7);
	assert_int_equal(d.rdev, in.rdev);
	assert_int_equal(d.generation, 1);
	assert_int_equal(d.parent, 0xdeadbeefull);

	/* Without inline data. */
	in.flags = 0;
	n = kvfs_inode_encode(&in, NULL, 0, v);
	assert_int_equal(n, KVFS_INODE_SIZE);
	assert_int_equal(kvfs_inode_decode(v, n, &d, &inl, &ilen), 0);
	assert_int_equal(ilen, 0);
	/* Corrupt: short, unknown layout, nanoseconds out of range, inline
	 * bytes without the inline flag. */
	assert_int_equal(kvfs_inode_decode(v, KVFS_INODE_SIZE - 1, &d, &inl, &ilen), -EUCLEAN);
	v[0] = 2;
	assert_int_equal(kvfs_inode_decode(v, n, &d, &inl, &ilen), -EUCLEAN);
	in.atime.tv_nsec = 1000000000;
	n = kvfs_inode_encode(&in, NULL, 0, v);
	assert_int_equal(kvfs_inode_decode(v, n, &d, &inl, &ilen), -EUCLEAN);
	in.atime.tv_nsec = 0;
	n = kvfs_inode_encode(&in, "xy", 2, v);
	assert_int_equal(kvfs_inode_decode(v, n, &d, &inl, &ilen), -EUCLEAN);
}

static void test_entry(void **state)
{
	uint8_t v[KVFS_ENTRY_SIZE + 1];
	uint64_t ino;
	unsigned type;

	(void)state;
	kvfs_entry_encode(0x0102030405060708ull, DT_DIR, v);
	assert_int_equal(le64(v), 0x0102030405060708ull);
	assert_int_equal(v[8], DT_DIR);
	assert_int_equal(kvfs_entry_decode(v, KVFS_ENTRY_SIZE, &ino, &type), 0);
	assert_int_equal(ino, 0x0102030405060708ull);
	assert_int_equal(type, DT_DIR);
	assert_int_equal(kvfs_entry_decode(v, KVFS_ENTRY_SIZE - 1, &ino, &type), -EUCLEAN);
	assert_int_equal(kvfs_entry_decode(v, KVFS_ENTRY_SIZE + 1, &ino, &type), -EUCLEAN);
	kvfs_entry_encode(0, DT_REG, v);
	assert_int_equal(kvfs_entry_decode(v, KVFS_ENTRY_SIZE, &ino, &type), -EUCLEAN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_round_trip), cmocka_unit_test(test_name_hash),
		cmocka_unit_test(test_key_order),      cmocka_unit_test(test_key_parse_rejects),
		cmocka_unit_test(test_super),	       cmocka_unit_test(test_inode),
		cmocka_unit_test(test_entry),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
