/* SPDX-License-Identifier: MIT */
/*
 * test_wal.c - unit tests of kv/wal.c: op and header encoding, record
 * validation, the segment scanner's torn-tail rule, segment file names.
 *
 * The golden test freezes the on-disk bytes of a segment header and one
 * record: if it fails, the format changed. A format change updates
 * kv/FORMAT.md, KV_FORMAT_VERSION (or a feature bit), the code and the golden
 * bytes in one commit; never just the bytes.
 *
 * Segments here are built in zeroed memory exactly as the log buffer builds
 * them (records at 8-aligned offsets from 64, zero padding, zero tail), so
 * "truncated" and "never written" both read as zeros, as in a preallocated
 * file after a power cut.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include <cmocka.h>

#include "kv.h"
#include "kv_test_util.h"
#include "wal.h"

#define SEG_SIZE (16u << 10)
#define MAX_RECS 128

/* ---- helpers ------------------------------------------------------------ */

/* A segment image under construction, and where its records are. */
struct tseg {
	uint8_t *buf;
	size_t size;
	uint64_t seg_id;
	uint64_t off; /* where the next record goes */
	int n;
	uint64_t rec_off[MAX_RECS];
	uint32_t rec_len[MAX_RECS];
	uint32_t rec_epoch[MAX_RECS];
};

static void tseg_init(struct tseg *t, size_t size, uint64_t seg_id)
{
	struct kv_seg_header h = {
		.seg_id = seg_id,
		.capacity = size,
		.version = KV_FORMAT_VERSION,
	};

	memset(t, 0, sizeof(*t));
	t->buf = calloc(1, size);
	assert_non_null(t->buf);
	t->size = size;
	t->seg_id = seg_id;
	t->off = KV_SEG_HEADER_SIZE;
	kv_seg_header_encode(t->buf, &h);
}

static void tseg_free(struct tseg *t)
{
	free(t->buf);
	t->buf = NULL;
}

/* Append a sealed record of @nops pseudo-random puts and deletes. */
static int tseg_add(struct tseg *t, uint32_t epoch, uint32_t nops, uint64_t *rng)
{
	uint8_t *rec = t->buf + t->off, *p = rec + KV_REC_HEADER_SIZE;
	uint8_t val[64];
	char key[32];
	uint32_t len;

	assert_true(t->n < MAX_RECS);
	for (uint32_t i = 0; i < nops; i++) {
		uint32_t klen = (uint32_t)snprintf(key, sizeof(key), "key-%d-%u", t->n, i);
		uint32_t vlen = (uint32_t)(kvt_rand(rng) % sizeof(val));

		for (uint32_t j = 0; j < vlen; j++)
			val[j] = (uint8_t)kvt_rand(rng);
		if (kvt_rand(rng) % 4 == 0)
			p = kv_op_encode(p, KV_OP_DEL, key, klen, NULL, 0);
		else
			p = kv_op_encode(p, KV_OP_PUT, key, klen, val, vlen);
	}
	len = (uint32_t)(p - rec);
	assert_true(t->off + kv_align8(len) <= t->size);
	kv_rec_seal(rec, len, nops, epoch, t->seg_id);
	t->rec_off[t->n] = t->off;
	t->rec_len[t->n] = len;
	t->rec_epoch[t->n] = epoch;
	t->off += kv_align8(len);
	return t->n++;
}

/* Recompute a record's checksum from its (possibly doctored) len field. */
static void reseal_raw(uint8_t *rec, uint64_t seg_id)
{
	uint32_t len = kv_get_le32(rec + 8);

	kv_put_le64(rec, XXH3_64bits_withSeed(rec + 8, len - 8, seg_id));
}

static void reseal_header_raw(uint8_t *hdr)
{
	kv_put_le64(hdr + 56, XXH3_64bits_withSeed(hdr, 56, 0));
}

/* What a scan replayed. */
struct replay {
	int n;
	int stop_at; /* return 42 from this call (0-based); -1: never */
	uint64_t off[MAX_RECS];
	uint32_t epoch[MAX_RECS];
};

static int replay_fn(void *arg, uint64_t off, const struct kv_rec_header *h, const uint8_t *rec)
{
	struct replay *r = arg;
	struct kv_op_iter it;
	struct kv_op op;
	uint32_t ops = 0;

	kv_op_iter_init(&it, rec, h);
	while (kv_op_next(&it, &op))
		ops++;
	assert_int_equal(ops, h->count);
	assert_true(r->n < MAX_RECS);
	r->off[r->n] = off;
	r->epoch[r->n] = h->epoch;
	if (r->n++ == r->stop_at)
		return 42;
	return 0;
}

struct scan_res {
	int ret;
	int n;
	uint64_t end;
	uint64_t bad_off;
};

static struct scan_res scan(const uint8_t *seg, size_t size, uint64_t seg_id, uint64_t limit)
{
	struct replay r = { .stop_at = -1 };
	struct scan_res res;

	res.end = res.bad_off = UINT64_MAX;
	res.ret = kv_wal_scan(seg, size, seg_id, limit, replay_fn, &r, &res.end, &res.bad_off);
	res.n = r.n;
	return res;
}

/* Assert a scan's outcome, saying which iteration of a loop failed. */
#define CHECK_SCAN(res, want_ret, want_n, want_end, want_bad, what, ...)                           \
	do {                                                                                       \
		if ((res).ret != (want_ret) || (res).n != (want_n) || (res).end != (want_end) ||   \
		    (res).bad_off != (want_bad))                                                   \
			fail_msg(what ": ret %d n %d end %llu bad_off %llu, want %d %d %llu %llu", \
				 __VA_ARGS__, (res).ret, (res).n, (unsigned long long)(res).end,   \
				 (unsigned long long)(res).bad_off, (int)(want_ret),               \
				 (int)(want_n), (unsigned long long)(want_end),                    \
				 (unsigned long long)(want_bad));                                  \
	} while (0)

static void hex(char *out, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

/* ---- ops ---------------------------------------------------------------- */

static void test_op_roundtrip(void **state)
{
	static const uint32_t klens[] = { 1, 2, 255, 256, KV_MAX_KEY };
	static const uint32_t vlens[] = { 0, 1, 7, 4096, 100000 };
	size_t cap = kv_op_size(KV_MAX_KEY, 100000);
	uint8_t *buf = malloc(cap), *key = malloc(KV_MAX_KEY), *val = malloc(100000);
	struct kv_op op;

	assert_non_null(buf);
	assert_non_null(key);
	assert_non_null(val);
	for (uint32_t i = 0; i < KV_MAX_KEY; i++)
		key[i] = (uint8_t)(i * 7 + 1);
	for (uint32_t i = 0; i < 100000; i++)
		val[i] = (uint8_t)(i * 13 + 5);
	for (size_t k = 0; k < sizeof(klens) / sizeof(klens[0]); k++) {
		for (size_t v = 0; v < sizeof(vlens) / sizeof(vlens[0]); v++) {
			uint32_t kl = klens[k], vl = vlens[v];
			uint8_t *end = kv_op_encode(buf, KV_OP_PUT, key, kl, val, vl);

			assert_int_equal(end - buf, kv_op_size(kl, vl));
			assert_int_equal(kv_op_decode(buf, cap, &op), kv_op_size(kl, vl));
			assert_int_equal(op.type, KV_OP_PUT);
			assert_int_equal(op.klen, kl);
			assert_int_equal(op.vlen, vl);
			assert_ptr_equal(op.key, buf + KV_OP_HEADER_SIZE);
			assert_ptr_equal(op.val, buf + KV_OP_HEADER_SIZE + kl);
			assert_memory_equal(op.key, key, kl);
			if (vl)
				assert_memory_equal(op.val, val, vl);
			/* Exactly enough bytes is enough. */
			assert_int_equal(kv_op_decode(buf, kv_op_size(kl, vl), &op),
					 kv_op_size(kl, vl));
		}
		uint8_t *end = kv_op_encode(buf, KV_OP_DEL, key, klens[k], NULL, 0);

		assert_int_equal(end - buf, kv_op_size(klens[k], 0));
		assert_int_equal(kv_op_decode(buf, cap, &op), kv_op_size(klens[k], 0));
		assert_int_equal(op.type, KV_OP_DEL);
		assert_int_equal(op.klen, klens[k]);
		assert_int_equal(op.vlen, 0);
		assert_memory_equal(op.key, key, klens[k]);
	}
	free(buf);
	free(key);
	free(val);
}

/* The largest value decodes; one more byte does not. */
static void test_op_max_value(void **state)
{
	size_t cap = kv_op_size(1, KV_MAX_VALUE);
	uint8_t *buf = calloc(1, cap);
	struct kv_op op;

	assert_non_null(buf);
	kv_op_encode(buf, KV_OP_PUT, "k", 1, buf + cap - KV_MAX_VALUE, KV_MAX_VALUE);
	assert_int_equal(kv_op_decode(buf, cap, &op), cap);
	assert_int_equal(op.vlen, KV_MAX_VALUE);
	kv_put_le32(buf + 4, KV_MAX_VALUE + 1);
	assert_int_equal(kv_op_decode(buf, cap, &op), -EUCLEAN);
	free(buf);
}

static void test_op_decode_rejects(void **state)
{
	uint8_t buf[64], good[64];
	struct kv_op op;
	size_t n = (size_t)(kv_op_encode(good, KV_OP_PUT, "abc", 3, "xy", 2) - good);

	assert_int_equal(n, 13);
	assert_int_equal(kv_op_decode(good, n, &op), 13);

	/* A range delete [key, value) must be non-empty. */
	memcpy(buf, good, n);
	buf[0] = KV_OP_DELRANGE;
	assert_int_equal(kv_op_decode(buf, n, &op), 13);
	n = (size_t)(kv_op_encode(buf, KV_OP_DELRANGE, "xy", 2, "abc", 3) - buf);
	assert_int_equal(kv_op_decode(buf, n, &op), -EUCLEAN);
	n = (size_t)(kv_op_encode(buf, KV_OP_DELRANGE, "abc", 3, "abc", 3) - buf);
	assert_int_equal(kv_op_decode(buf, n, &op), -EUCLEAN);
	n = (size_t)(kv_op_encode(good, KV_OP_PUT, "abc", 3, "xy", 2) - good);

	/* Unknown types. */
	for (int type = 0; type < 256; type++) {
		if (type == KV_OP_PUT || type == KV_OP_DEL || type == KV_OP_DELRANGE)
			continue;
		memcpy(buf, good, n);
		buf[0] = (uint8_t)type;
		assert_int_equal(kv_op_decode(buf, n, &op), -EUCLEAN);
	}
	/* Reserved byte must be zero. */
	memcpy(buf, good, n);
	buf[1] = 1;
	assert_int_equal(kv_op_decode(buf, n, &op), -EUCLEAN);
	/* Empty key, key over the limit. */
	memcpy(buf, good, n);
	kv_put_le16(buf + 2, 0);
	assert_int_equal(kv_op_decode(buf, n, &op), -EUCLEAN);
	kv_put_le16(buf + 2, KV_MAX_KEY + 1);
	assert_int_equal(kv_op_decode(buf, sizeof(buf), &op), -EUCLEAN);
	kv_put_le16(buf + 2, 0xffff);
	assert_int_equal(kv_op_decode(buf, sizeof(buf), &op), -EUCLEAN);
	/* A delete carries no value. */
	kv_op_encode(buf, KV_OP_DEL, "abc", 3, NULL, 0);
	assert_int_equal(kv_op_decode(buf, 11, &op), 11);
	kv_put_le32(buf + 4, 1);
	assert_int_equal(kv_op_decode(buf, sizeof(buf), &op), -EUCLEAN);
	/* Value over the limit, and one that would wrap a 32-bit sum. */
	memcpy(buf, good, n);
	kv_put_le32(buf + 4, KV_MAX_VALUE + 1);
	assert_int_equal(kv_op_decode(buf, sizeof(buf), &op), -EUCLEAN);
	kv_put_le32(buf + 4, UINT32_MAX);
	assert_int_equal(kv_op_decode(buf, sizeof(buf), &op), -EUCLEAN);
	/* Sizes past avail: every short length, header included. */
	for (size_t avail = 0; avail < n; avail++)
		assert_int_equal(kv_op_decode(good, avail, &op), -EUCLEAN);
}

/* ---- golden bytes ------------------------------------------------------- */

/*
 * A segment header and one record, frozen. The fields are chosen so that a
 * byte-order or offset mistake shows: base_lsn has eight distinct bytes.
 */
static const char golden_header[] = "4c564b5653454731"	/*  0 magic "LVKVSEG1" */
				    "01000000"		/*  8 version 1 */
				    "40000000"		/* 12 header_size 64 */
				    "0700000000000000"	/* 16 seg_id 7 */
				    "0807060504030201"	/* 24 base_lsn 0x0102030405060708 */
				    "3812000000000000"	/* 32 prev_end 0x1238 */
				    "0000040000000000"	/* 40 capacity 0x40000 */
				    "00000000"		/* 48 flags */
				    "00000000"		/* 52 reserved */
				    "3f331f9199bf60f8"; /* 56 xxh3_64 of [0, 56), seed 0 */

static const char golden_record[] = "cd4b7ce61f1e07da" /*  0 xxh3_64 of [8, 52), seed 7 */
				    "34000000"	       /*  8 len 52 */
				    "02000000"	       /* 12 count 2 */
				    "03000000"	       /* 16 epoch 3 */
				    "01"	       /* 20 type KV_REC_BATCH */
				    "00"	       /* 21 flags */
				    "0000"	       /* 22 reserved */
				    "0100040006000000" /* 24 op: PUT, klen 4, vlen 6 */
				    "6b657931"	       /* 32 "key1" */
				    "76616c756531"     /* 36 "value1" */
				    "0200020000000000" /* 42 op: DEL, klen 2, vlen 0 */
				    "6b32"	       /* 50 "k2" */
				    "00000000";	       /* 52 padding to 56 */

static void test_golden(void **state)
{
	struct kv_seg_header h = {
		.seg_id = 7,
		.base_lsn = 0x0102030405060708ull,
		.prev_end = 0x1238,
		.capacity = 0x40000,
		.version = 1,
		.flags = 0,
	}, d;
	uint8_t seg[KV_SEG_HEADER_SIZE + 56] = { 0 };
	uint8_t *rec = seg + KV_SEG_HEADER_SIZE, *p = rec + KV_REC_HEADER_SIZE;
	struct kv_rec_header rh;
	struct kv_op_iter it;
	struct kv_op op;
	char got[2 * sizeof(seg) + 1];

	kv_seg_header_encode(seg, &h);
	p = kv_op_encode(p, KV_OP_PUT, "key1", 4, "value1", 6);
	p = kv_op_encode(p, KV_OP_DEL, "k2", 2, NULL, 0);
	assert_int_equal(p - rec, 52);
	kv_rec_seal(rec, 52, 2, 3, 7);

	hex(got, seg, KV_SEG_HEADER_SIZE);
	if (strcmp(got, golden_header))
		fail_msg("segment header bytes changed:\n got  %s\n want %s", got, golden_header);
	hex(got, rec, 56);
	if (strcmp(got, golden_record))
		fail_msg("record bytes changed:\n got  %s\n want %s", got, golden_record);

	/* And the frozen bytes read back as what was written. */
	assert_int_equal(kv_seg_header_decode(seg, &d), 0);
	assert_int_equal(d.seg_id, 7);
	assert_int_equal(d.base_lsn, 0x0102030405060708ull);
	assert_int_equal(d.prev_end, 0x1238);
	assert_int_equal(d.capacity, 0x40000);
	assert_int_equal(d.version, 1);
	assert_int_equal(d.flags, 0);
	assert_int_equal(kv_rec_check(rec, 56, 7, &rh), 0);
	assert_int_equal(rh.len, 52);
	assert_int_equal(rh.count, 2);
	assert_int_equal(rh.epoch, 3);
	assert_int_equal(rh.type, KV_REC_BATCH);
	kv_op_iter_init(&it, rec, &rh);
	assert_int_equal(kv_op_next(&it, &op), 1);
	assert_int_equal(op.type, KV_OP_PUT);
	assert_int_equal(op.klen, 4);
	assert_memory_equal(op.key, "key1", 4);
	assert_int_equal(op.vlen, 6);
	assert_memory_equal(op.val, "value1", 6);
	assert_int_equal(kv_op_next(&it, &op), 1);
	assert_int_equal(op.type, KV_OP_DEL);
	assert_int_equal(op.klen, 2);
	assert_memory_equal(op.key, "k2", 2);
	assert_int_equal(op.vlen, 0);
	assert_int_equal(kv_op_next(&it, &op), 0);
	assert_int_equal(kv_op_next(&it, &op), 0);
}

/* ---- segment header ----------------------------------------------------- */

static void encode_header(uint8_t *buf, uint32_t version, uint64_t capacity, uint32_t flags)
{
	struct kv_seg_header h = {
		.seg_id = 0xabcdef,
		.base_lsn = 1 << 20,
		.prev_end = 4096,
		.capacity = capacity,
		.version = version,
		.flags = flags,
	};

	kv_seg_header_encode(buf, &h);
}

static void test_seg_header_roundtrip(void **state)
{
	uint8_t buf[KV_SEG_HEADER_SIZE];
	struct kv_seg_header h;

	encode_header(buf, KV_FORMAT_VERSION, 64, 0);
	assert_int_equal(kv_seg_header_decode(buf, &h), 0);
	assert_int_equal(h.seg_id, 0xabcdef);
	assert_int_equal(h.base_lsn, 1 << 20);
	assert_int_equal(h.prev_end, 4096);
	assert_int_equal(h.capacity, 64);
	assert_int_equal(h.version, KV_FORMAT_VERSION);
	assert_int_equal(h.flags, 0);
}

static void test_seg_header_errors(void **state)
{
	uint8_t buf[KV_SEG_HEADER_SIZE] = { 0 };
	struct kv_seg_header h;

	/* Never written. */
	assert_int_equal(kv_seg_header_decode(buf, &h), -ENODATA);
	/* Not a segment: wrong magic (even with a matching checksum). */
	encode_header(buf, KV_FORMAT_VERSION, 1 << 16, 0);
	buf[0] ^= 0x20;
	assert_int_equal(kv_seg_header_decode(buf, &h), -EUCLEAN);
	reseal_header_raw(buf);
	assert_int_equal(kv_seg_header_decode(buf, &h), -EUCLEAN);
	/* header_size other than 64. */
	encode_header(buf, KV_FORMAT_VERSION, 1 << 16, 0);
	kv_put_le32(buf + 12, 128);
	reseal_header_raw(buf);
	assert_int_equal(kv_seg_header_decode(buf, &h), -EUCLEAN);
	/* A flipped byte. */
	encode_header(buf, KV_FORMAT_VERSION, 1 << 16, 0);
	buf[30] ^= 0x01;
	assert_int_equal(kv_seg_header_decode(buf, &h), -EBADMSG);
	/* A newer version; but a damaged one is damage, not a newer version. */
	encode_header(buf, KV_FORMAT_VERSION + 1, 1 << 16, 0);
	assert_int_equal(kv_seg_header_decode(buf, &h), -EPROTONOSUPPORT);
	buf[40] ^= 0x01;
	assert_int_equal(kv_seg_header_decode(buf, &h), -EBADMSG);
	encode_header(buf, UINT32_MAX, 1 << 16, 0);
	assert_int_equal(kv_seg_header_decode(buf, &h), -EPROTONOSUPPORT);
	/* Version 0 never existed. */
	encode_header(buf, 0, 1 << 16, 0);
	assert_int_equal(kv_seg_header_decode(buf, &h), -EUCLEAN);
	/* Capacity smaller than the header. */
	encode_header(buf, KV_FORMAT_VERSION, 63, 0);
	assert_int_equal(kv_seg_header_decode(buf, &h), -EUCLEAN);
	encode_header(buf, KV_FORMAT_VERSION, 0, 0);
	assert_int_equal(kv_seg_header_decode(buf, &h), -EUCLEAN);
	/* Version 1 defines no flags and no reserved bits. */
	encode_header(buf, KV_FORMAT_VERSION, 1 << 16, 1);
	assert_int_equal(kv_seg_header_decode(buf, &h), -EUCLEAN);
	encode_header(buf, KV_FORMAT_VERSION, 1 << 16, 0);
	buf[55] = 0x80;
	reseal_header_raw(buf);
	assert_int_equal(kv_seg_header_decode(buf, &h), -EUCLEAN);
}

/* Every single-byte change is caught: identity bytes as -EUCLEAN, others by
 * the checksum. */
static void test_seg_header_flip_every_byte(void **state)
{
	uint8_t good[KV_SEG_HEADER_SIZE], buf[KV_SEG_HEADER_SIZE];
	struct kv_seg_header h;

	encode_header(good, KV_FORMAT_VERSION, 1 << 16, 0);
	for (int i = 0; i < (int)KV_SEG_HEADER_SIZE; i++) {
		for (int bit = 0; bit < 8; bit++) {
			int identity = i < 8 || (i >= 12 && i < 16);
			int want = identity ? -EUCLEAN : -EBADMSG;
			int got;

			memcpy(buf, good, sizeof(buf));
			buf[i] ^= (uint8_t)(1u << bit);
			got = kv_seg_header_decode(buf, &h);
			if (got != want)
				fail_msg("byte %d bit %d: %d, want %d", i, bit, got, want);
		}
	}
}

/* ---- records ------------------------------------------------------------ */

/* The golden record's ops at rec + 24, in a zeroed 128-byte buffer. */
static uint32_t two_op_record(uint8_t *rec, uint64_t seg_id)
{
	uint8_t *p = rec + KV_REC_HEADER_SIZE;

	memset(rec, 0, 128);
	p = kv_op_encode(p, KV_OP_PUT, "key1", 4, "value1", 6);
	p = kv_op_encode(p, KV_OP_DEL, "k2", 2, NULL, 0);
	kv_rec_seal(rec, (uint32_t)(p - rec), 2, 1, seg_id);
	return (uint32_t)(p - rec);
}

static void test_rec_check_ok(void **state)
{
	uint8_t rec[128];
	uint32_t len = two_op_record(rec, 99);
	struct kv_rec_header h;

	assert_int_equal(kv_rec_check(rec, len, 99, &h), 0);
	assert_int_equal(h.len, len);
	assert_int_equal(kv_rec_check(rec, sizeof(rec), 99, &h), 0);
	assert_int_equal(kv_rec_check(rec, len, 99, NULL), 0);
	/* Another segment's seed. */
	assert_int_equal(kv_rec_check(rec, len, 98, &h), -EBADMSG);
	assert_int_equal(kv_rec_check(rec, len, 0, &h), -EBADMSG);
	/* The smallest record: one op with a one-byte key, no value. */
	memset(rec, 0, sizeof(rec));
	kv_op_encode(rec + KV_REC_HEADER_SIZE, KV_OP_DEL, "z", 1, NULL, 0);
	kv_rec_seal(rec, 33, 1, 1, 99);
	assert_int_equal(kv_rec_check(rec, 33, 99, &h), 0);
}

static void test_rec_check_rejects(void **state)
{
	uint8_t good[128], rec[128];
	uint32_t len = two_op_record(good, 5);
	struct kv_rec_header h;

	/* Nothing written, or a header never written over a written body. */
	memset(rec, 0, sizeof(rec));
	assert_int_equal(kv_rec_check(rec, sizeof(rec), 5, &h), -ENODATA);
	memcpy(rec, good, sizeof(rec));
	memset(rec, 0, KV_REC_HEADER_SIZE);
	assert_int_equal(kv_rec_check(rec, sizeof(rec), 5, &h), -ENODATA);
	/* No room for a header. */
	assert_int_equal(kv_rec_check(good, KV_REC_HEADER_SIZE - 1, 5, &h), -EUCLEAN);
	/* len past avail. */
	assert_int_equal(kv_rec_check(good, len - 1, 5, &h), -EUCLEAN);
	/* Checksum, header and body bytes: caught by the checksum. */
	memcpy(rec, good, sizeof(rec));
	rec[3] ^= 0x10;
	assert_int_equal(kv_rec_check(rec, sizeof(rec), 5, &h), -EBADMSG);
	memcpy(rec, good, sizeof(rec));
	rec[16] ^= 0x02; /* epoch */
	assert_int_equal(kv_rec_check(rec, sizeof(rec), 5, &h), -EBADMSG);
	memcpy(rec, good, sizeof(rec));
	rec[len - 1] ^= 0x01;
	assert_int_equal(kv_rec_check(rec, sizeof(rec), 5, &h), -EBADMSG);
}

/* Structural faults, each with a checksum that matches: -EUCLEAN. */
static void test_rec_check_structure(void **state)
{
	uint8_t good[128], rec[128];
	struct kv_rec_header h;
	struct {
		int off, width;
		uint32_t val;
		const char *what;
	} bad[] = {
		{ 8, 4, 31, "len below header + one op header" },
		{ 8, 4, 0, "len 0" },
		{ 8, 4, 50, "len cuts the last op" },
		{ 8, 4, 60, "len leaves bytes after the last op" },
		{ 12, 4, 0, "count 0" },
		{ 12, 4, 1, "count short of the ops" },
		{ 12, 4, 3, "count past the ops" },
		{ 20, 1, 0, "type 0" },
		{ 20, 1, 2, "type 2" },
		{ 21, 1, 1, "flags" },
		{ 22, 2, 0x100, "reserved" },
		{ 24, 1, 9, "op type" },
		{ 26, 2, 40, "op klen past the record" },
		{ 28, 4, 1 << 20, "op vlen past the record" },
		{ 44, 2, 3, "delete key past the record" },
		{ 46, 4, 1, "delete with a value" },
	};
	assert_int_equal(two_op_record(good, 5), 52);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int got;

		memcpy(rec, good, sizeof(rec));
		if (bad[i].width == 1)
			rec[bad[i].off] = (uint8_t)bad[i].val;
		else if (bad[i].width == 2)
			kv_put_le16(rec + bad[i].off, (uint16_t)bad[i].val);
		else
			kv_put_le32(rec + bad[i].off, bad[i].val);
		if (kv_get_le32(rec + 8) >= 8)
			reseal_raw(rec, 5);
		got = kv_rec_check(rec, sizeof(rec), 5, &h);
		if (got != -EUCLEAN)
			fail_msg("%s: %d, want -EUCLEAN", bad[i].what, got);
	}
}

/* No single-bit change of a record validates. */
static void test_rec_flip_every_bit(void **state)
{
	uint8_t good[128], rec[128];
	uint32_t len = two_op_record(good, 5);
	struct kv_rec_header h;

	for (uint32_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			int got;

			memcpy(rec, good, sizeof(rec));
			rec[i] ^= (uint8_t)(1u << bit);
			got = kv_rec_check(rec, sizeof(rec), 5, &h);
			if (got != -EBADMSG && got != -EUCLEAN)
				fail_msg("byte %u bit %d: %d", i, bit, got);
		}
	}
}

/* ---- scanning ----------------------------------------------------------- */

static const uint64_t fixed_seed = 0x9e3779b97f4a7c15ull;

/* Records across several epochs replay in order, each exactly once. */
static void test_scan_replay(void **state)
{
	static const uint32_t epochs[] = { 1, 1, 1, 2, 3, 3, 4, 5, 5, 5, 6 };
	uint64_t rng = fixed_seed;
	struct replay r = { .stop_at = -1 };
	uint64_t end = 0, bad = 1;
	struct tseg t;

	tseg_init(&t, SEG_SIZE, 7);
	for (size_t i = 0; i < sizeof(epochs) / sizeof(epochs[0]); i++)
		tseg_add(&t, epochs[i], 1 + (uint32_t)i % 5, &rng);
	assert_int_equal(kv_wal_scan(t.buf, t.size, 7, 0, replay_fn, &r, &end, &bad), 0);
	assert_int_equal(r.n, t.n);
	for (int i = 0; i < t.n; i++) {
		assert_int_equal(r.off[i], t.rec_off[i]);
		assert_int_equal(r.epoch[i], t.rec_epoch[i]);
	}
	assert_int_equal(end, t.off);
	assert_int_equal(bad, 0);
	/* Without a callback: validate only. NULL out-parameters are allowed. */
	assert_int_equal(kv_wal_scan(t.buf, t.size, 7, 0, NULL, NULL, &end, NULL), 0);
	assert_int_equal(end, t.off);
	/* A file that ends right after the last record. */
	struct scan_res res = scan(t.buf, t.off, 7, 0);

	CHECK_SCAN(res, 0, t.n, t.off, 0, "%s", "file ends at the records' end");
	tseg_free(&t);
}

static void test_scan_empty(void **state)
{
	struct tseg t;
	struct scan_res res;

	tseg_init(&t, SEG_SIZE, 7);
	res = scan(t.buf, t.size, 7, 0);
	CHECK_SCAN(res, 0, 0, KV_SEG_HEADER_SIZE, 0, "%s", "empty");
	res = scan(t.buf, KV_SEG_HEADER_SIZE, 7, 0);
	CHECK_SCAN(res, 0, 0, KV_SEG_HEADER_SIZE, 0, "%s", "header only");
	res = scan(t.buf, KV_SEG_HEADER_SIZE + KV_REC_HEADER_SIZE - 1, 7, 0);
	CHECK_SCAN(res, 0, 0, KV_SEG_HEADER_SIZE, 0, "%s", "no room for a record");
	tseg_free(&t);
}

/* Build the segment most scan tests use: epochs 1 1 2 2 3 4 4 5. */
static void std_segment(struct tseg *t, uint64_t *rng)
{
	static const uint32_t epochs[] = { 1, 1, 2, 2, 3, 4, 4, 5 };

	tseg_init(t, SEG_SIZE, 7);
	for (size_t i = 0; i < sizeof(epochs) / sizeof(epochs[0]); i++)
		tseg_add(t, epochs[i], 2 + (uint32_t)i % 3, rng);
}

/*
 * A write cut short at any byte of the last record, as zeros (preallocated
 * file) or as a shorter file: a torn tail, the record is dropped.
 */
static void test_scan_truncate_last(void **state)
{
	uint64_t rng = fixed_seed;
	struct tseg t;
	uint8_t *copy = malloc(SEG_SIZE);

	assert_non_null(copy);
	std_segment(&t, &rng);
	uint64_t start = t.rec_off[t.n - 1], stop = start + t.rec_len[t.n - 1];

	for (uint64_t cut = start; cut < stop; cut++) {
		struct scan_res res;

		memcpy(copy, t.buf, SEG_SIZE);
		memset(copy + cut, 0, SEG_SIZE - cut);
		res = scan(copy, SEG_SIZE, 7, 0);
		CHECK_SCAN(res, 0, t.n - 1, start, 0, "zeros from %llu", (unsigned long long)cut);
		res = scan(t.buf, cut, 7, 0);
		CHECK_SCAN(res, 0, t.n - 1, start, 0, "file cut at %llu", (unsigned long long)cut);
	}
	/* Cut at the record's end (padding lost): the record is whole. */
	struct scan_res res = scan(t.buf, stop, 7, 0);

	CHECK_SCAN(res, 0, t.n, kv_align8(stop), 0, "%s", "cut in the padding");
	free(copy);
	tseg_free(&t);
}

/* Any byte of the last record damaged: a torn tail. */
static void test_scan_corrupt_last(void **state)
{
	uint64_t rng = fixed_seed;
	struct tseg t;
	uint8_t *copy = malloc(SEG_SIZE);

	assert_non_null(copy);
	std_segment(&t, &rng);
	uint64_t start = t.rec_off[t.n - 1], stop = start + t.rec_len[t.n - 1];

	for (uint64_t i = start; i < stop; i++) {
		for (int bit = 0; bit < 8; bit += 3) {
			struct scan_res res;

			memcpy(copy, t.buf, SEG_SIZE);
			copy[i] ^= (uint8_t)(1u << bit);
			res = scan(copy, SEG_SIZE, 7, 0);
			CHECK_SCAN(res, 0, t.n - 1, start, 0, "byte %llu bit %d",
				   (unsigned long long)i, bit);
		}
	}
	free(copy);
	tseg_free(&t);
}

/*
 * A damaged record followed by a record of epoch >= last + 2 (last = the
 * epoch of the record before the damage): corruption, at that record.
 */
static void test_scan_corrupt_earlier(void **state)
{
	uint64_t rng = fixed_seed;
	struct tseg t;
	struct scan_res res;

	std_segment(&t, &rng); /* epochs 1 1 2 2 3 4 4 5 */
	/* Record 2 (epoch 2) after last = 1; epoch 3 follows. */
	t.buf[t.rec_off[2] + 30] ^= 0x04;
	res = scan(t.buf, t.size, 7, 0);
	CHECK_SCAN(res, -EUCLEAN, 2, t.rec_off[2], t.rec_off[2], "%s", "record 2 body");
	t.buf[t.rec_off[2] + 30] ^= 0x04;
	/* Its header zeroed (a lost sector) is no better. */
	memset(t.buf + t.rec_off[2], 0, KV_REC_HEADER_SIZE);
	res = scan(t.buf, t.size, 7, 0);
	CHECK_SCAN(res, -EUCLEAN, 2, t.rec_off[2], t.rec_off[2], "%s", "record 2 zeroed");
	tseg_free(&t);

	/* The first record: last = 0, epoch 2 follows. */
	std_segment(&t, &rng);
	t.buf[t.rec_off[0]] ^= 0x80;
	res = scan(t.buf, t.size, 7, 0);
	CHECK_SCAN(res, -EUCLEAN, 0, KV_SEG_HEADER_SIZE, KV_SEG_HEADER_SIZE, "%s", "record 0");
	tseg_free(&t);
}

/*
 * The ambiguous case, pinned: what follows the damage is of epoch last + 1
 * only, so the damaged record may be the torn first record of that epoch,
 * whose commit never completed. By the rule that is a torn tail.
 */
static void test_scan_torn_next_epoch_only(void **state)
{
	uint64_t rng = fixed_seed;
	struct tseg t;
	struct scan_res res;

	/* epochs 1 1 [2 damaged] 2 2: torn tail at record 2. */
	tseg_init(&t, SEG_SIZE, 7);
	tseg_add(&t, 1, 2, &rng);
	tseg_add(&t, 1, 2, &rng);
	tseg_add(&t, 2, 2, &rng);
	tseg_add(&t, 2, 2, &rng);
	tseg_add(&t, 2, 1, &rng);
	t.buf[t.rec_off[2] + 40] ^= 0x01;
	res = scan(t.buf, t.size, 7, 0);
	CHECK_SCAN(res, 0, 2, t.rec_off[2], 0, "%s", "epoch 2 follows last 1");

	/* Damage to the second record of epoch 1: last is still 1, same verdict. */
	t.buf[t.rec_off[2] + 40] ^= 0x01;
	t.buf[t.rec_off[1] + 40] ^= 0x01;
	res = scan(t.buf, t.size, 7, 0);
	CHECK_SCAN(res, 0, 1, t.rec_off[1], 0, "%s", "record 1 damaged, epoch 2 follows");

	/* One record of epoch 3 later makes it corruption. */
	tseg_add(&t, 3, 1, &rng);
	res = scan(t.buf, t.size, 7, 0);
	CHECK_SCAN(res, -EUCLEAN, 1, t.rec_off[1], t.rec_off[1], "%s", "epoch 3 follows last 1");
	tseg_free(&t);

	/* The first record damaged, only epoch 1 after it: torn first commit. */
	tseg_init(&t, SEG_SIZE, 7);
	tseg_add(&t, 1, 2, &rng);
	tseg_add(&t, 1, 2, &rng);
	t.buf[t.rec_off[0] + 8] ^= 0x01;
	res = scan(t.buf, t.size, 7, 0);
	CHECK_SCAN(res, 0, 0, KV_SEG_HEADER_SIZE, 0, "%s", "record 0 damaged, epoch 1 follows");
	tseg_free(&t);
}

/*
 * The rule, over random segments: damage each record in turn (a body bit, a
 * header bit, or the whole record zeroed) and compare with the verdict the
 * rule predicts from the epochs alone.
 */
static void test_scan_rule_random(void **state)
{
	uint64_t rng = kvt_seed("test_scan_rule_random");
	uint8_t *copy = malloc(SEG_SIZE);
	int rounds = 20 * kvt_scale();

	assert_non_null(copy);
	for (int round = 0; round < rounds; round++) {
		struct tseg t;
		uint32_t epoch = 1;

		tseg_init(&t, SEG_SIZE, kvt_rand(&rng));
		while (t.n < 40) {
			tseg_add(&t, epoch, 1 + (uint32_t)(kvt_rand(&rng) % 4), &rng);
			epoch += kvt_rand(&rng) % 3 == 0;
		}
		for (int i = 0; i < t.n; i++) {
			uint32_t last = i ? t.rec_epoch[i - 1] : 0;
			int corrupt = 0;

			for (int j = i + 1; j < t.n; j++)
				corrupt |= t.rec_epoch[j] >= last + 2;
			for (int how = 0; how < 3; how++) {
				uint64_t off = t.rec_off[i];
				struct scan_res res;

				memcpy(copy, t.buf, SEG_SIZE);
				if (how == 0)
					copy[off + 24 + kvt_rand(&rng) % (t.rec_len[i] - 24)] ^=
						0x20;
				else if (how == 1)
					copy[off + kvt_rand(&rng) % 24] ^= 0x01;
				else
					memset(copy + off, 0, t.rec_len[i]);
				res = scan(copy, SEG_SIZE, t.seg_id, 0);
				CHECK_SCAN(res, corrupt ? -EUCLEAN : 0, i, off, corrupt ? off : 0,
					   "round %d record %d how %d", round, i, how);
			}
		}
		tseg_free(&t);
	}
	free(copy);
}

/* A limit (the next segment's prev_end) stops the scan and must be reached. */
static void test_scan_limit(void **state)
{
	uint64_t rng = fixed_seed;
	struct tseg t;
	struct scan_res res;

	std_segment(&t, &rng);
	/* Stops exactly at the limit; what lies past it is not read. */
	res = scan(t.buf, t.size, 7, t.rec_off[3]);
	CHECK_SCAN(res, 0, 3, t.rec_off[3], 0, "%s", "limit at record 3");
	t.buf[t.rec_off[5] + 30] ^= 0x01;
	res = scan(t.buf, t.size, 7, t.rec_off[3]);
	CHECK_SCAN(res, 0, 3, t.rec_off[3], 0, "%s", "damage past the limit");
	t.buf[t.rec_off[5] + 30] ^= 0x01;
	/* The limit at the end of all records. */
	res = scan(t.buf, t.size, 7, t.off);
	CHECK_SCAN(res, 0, t.n, t.off, 0, "%s", "limit at the end");
	/* Damage before the limit: never a torn tail, whatever the epochs. */
	t.buf[t.rec_off[t.n - 1] + 30] ^= 0x01;
	res = scan(t.buf, t.size, 7, t.off);
	CHECK_SCAN(res, -EUCLEAN, t.n - 1, t.rec_off[t.n - 1], t.rec_off[t.n - 1], "%s",
		   "last record damaged before the limit");
	t.buf[t.rec_off[t.n - 1] + 30] ^= 0x01;
	t.buf[t.rec_off[1] + 30] ^= 0x01;
	res = scan(t.buf, t.size, 7, t.rec_off[3]);
	CHECK_SCAN(res, -EUCLEAN, 1, t.rec_off[1], t.rec_off[1], "%s", "record 1 damaged");
	t.buf[t.rec_off[1] + 30] ^= 0x01;
	/* A limit inside a record: that record runs past it. */
	res = scan(t.buf, t.size, 7, t.rec_off[3] + 8);
	CHECK_SCAN(res, -EUCLEAN, 3, t.rec_off[3], t.rec_off[3], "%s", "limit inside record 3");
	/* A limit past the records: records are missing. */
	res = scan(t.buf, t.size, 7, t.off + 64);
	CHECK_SCAN(res, -EUCLEAN, t.n, t.off, t.off, "%s", "limit past the records");
	/* A limit past the file: the file is short. */
	res = scan(t.buf, t.off, 7, t.off + 8);
	CHECK_SCAN(res, -EUCLEAN, t.n, t.off, t.off, "%s", "limit past the file");
	tseg_free(&t);
}

/* Epochs never go backwards: a valid record of an older epoch ends the scan. */
static void test_scan_epoch_backwards(void **state)
{
	uint64_t rng = fixed_seed;
	struct tseg t;
	struct scan_res res;

	tseg_init(&t, SEG_SIZE, 7);
	tseg_add(&t, 1, 2, &rng);
	tseg_add(&t, 2, 2, &rng);
	tseg_add(&t, 2, 2, &rng);
	tseg_add(&t, 1, 2, &rng);
	res = scan(t.buf, t.size, 7, 0);
	CHECK_SCAN(res, 0, 3, t.rec_off[3], 0, "%s", "epoch 1 after 2");
	/* A later epoch >= last + 2 past it: corruption at the stale record. */
	tseg_add(&t, 4, 2, &rng);
	res = scan(t.buf, t.size, 7, 0);
	CHECK_SCAN(res, -EUCLEAN, 3, t.rec_off[3], t.rec_off[3], "%s", "epoch 4 follows");
	tseg_free(&t);
}

/* Epoch 0 is never written: such a record is not accepted, even first. */
static void test_scan_epoch_zero(void **state)
{
	uint64_t rng = fixed_seed;
	struct tseg t;
	struct scan_res res;

	tseg_init(&t, SEG_SIZE, 7);
	tseg_add(&t, 1, 2, &rng);
	kv_put_le32(t.buf + t.rec_off[0] + 16, 0);
	reseal_raw(t.buf + t.rec_off[0], 7);
	assert_int_equal(kv_rec_check(t.buf + t.rec_off[0], SEG_SIZE, 7, NULL), 0);
	res = scan(t.buf, t.size, 7, 0);
	CHECK_SCAN(res, 0, 0, KV_SEG_HEADER_SIZE, 0, "%s", "epoch 0");
	tseg_free(&t);
}

/* The checksum seed is the segment id: another segment's records are noise. */
static void test_scan_other_seg_id(void **state)
{
	uint64_t rng = fixed_seed;
	struct tseg t, other;
	struct scan_res res;

	std_segment(&t, &rng);
	res = scan(t.buf, t.size, 8, 0);
	CHECK_SCAN(res, 0, 0, KV_SEG_HEADER_SIZE, 0, "%s", "scanned as segment 8");
	assert_int_equal(kv_rec_check(t.buf + t.rec_off[0], SEG_SIZE - t.rec_off[0], 8, NULL),
			 -EBADMSG);

	/* Segment 8's record of a late epoch, spliced into segment 7 after a
	 * torn record, neither replays nor counts as proof of durability. */
	tseg_init(&other, SEG_SIZE, 8);
	tseg_add(&other, 9, 2, &rng);
	t.buf[t.rec_off[t.n - 1] + 30] ^= 0x01;
	memcpy(t.buf + t.off, other.buf + other.rec_off[0], other.rec_len[0]);
	res = scan(t.buf, t.size, 7, 0);
	CHECK_SCAN(res, 0, t.n - 1, t.rec_off[t.n - 1], 0, "%s", "record of segment 8");
	tseg_free(&other);
	tseg_free(&t);
}

/* A callback's non-zero return stops the scan and is returned. */
static void test_scan_callback_stop(void **state)
{
	uint64_t rng = fixed_seed;
	struct replay r = { .stop_at = 2 };
	uint64_t end = 0, bad = 1;
	struct tseg t;

	std_segment(&t, &rng);
	assert_int_equal(kv_wal_scan(t.buf, t.size, 7, 0, replay_fn, &r, &end, &bad), 42);
	assert_int_equal(r.n, 3);
	assert_int_equal(end, t.rec_off[2]);
	assert_int_equal(bad, 0);
	tseg_free(&t);
}

/* The probe over a large zeroed tail: torn at the first record, quickly. */
static void test_scan_probe_zeroed(void **state)
{
	uint64_t rng = fixed_seed;
	struct tseg t;
	struct scan_res res;

	tseg_init(&t, 64u << 20, 7);
	tseg_add(&t, 1, 3, &rng);
	t.buf[t.rec_off[0] + 30] ^= 0x01;
	res = scan(t.buf, t.size, 7, 0);
	CHECK_SCAN(res, 0, 0, KV_SEG_HEADER_SIZE, 0, "%s", "64 MiB, one torn record");
	/* A record of epoch 2 at the far end is found. */
	uint64_t far = t.size - 4096;

	t.off = far;
	tseg_add(&t, 2, 3, &rng);
	res = scan(t.buf, t.size, 7, 0);
	CHECK_SCAN(res, -EUCLEAN, 0, KV_SEG_HEADER_SIZE, KV_SEG_HEADER_SIZE, "%s",
		   "epoch 2 at the far end");
	tseg_free(&t);
}

/* ---- file names --------------------------------------------------------- */

static void test_parse_name(void **state)
{
	static const char *const bad[] = {
		"",
		"wal-",
		"wal-.log",
		"wal-0123456789abcde.log",
		"wal-0123456789abcdef0.log",
		"wal-0123456789ABCDEF.log",
		"wal-0123456789abcdeg.log",
		"wal- 123456789abcdef.log",
		"wal-+123456789abcdef.log",
		"wal-0123456789abcdef.lo",
		"wal-0123456789abcdef.LOG",
		"wal-0123456789abcdef.log.tmp",
		"wal-0123456789abcdef.log ",
		"wal-0123456789abcdef",
		"WAL-0123456789abcdef.log",
		"xwal-0123456789abcdef.log",
		"wal_0123456789abcdef.log",
		"KVSTORE",
		"LOCK",
	};
	uint64_t id;
	char name[64];

	assert_int_equal(kv_wal_parse_name("wal-0123456789abcdef.log", &id), 0);
	assert_int_equal(id, 0x0123456789abcdefull);
	assert_int_equal(kv_wal_parse_name("wal-0000000000000000.log", &id), 0);
	assert_int_equal(id, 0);
	assert_int_equal(kv_wal_parse_name("wal-ffffffffffffffff.log", &id), 0);
	assert_int_equal(id, UINT64_MAX);
	for (uint64_t v = 1; v; v <<= 7) {
		snprintf(name, sizeof(name), KV_WAL_NAME_FMT, (unsigned long long)v);
		assert_int_equal(kv_wal_parse_name(name, &id), 0);
		assert_int_equal(id, v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (kv_wal_parse_name(bad[i], &id) != -EINVAL)
			fail_msg("\"%s\" accepted", bad[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_op_roundtrip),
		cmocka_unit_test(test_op_max_value),
		cmocka_unit_test(test_op_decode_rejects),
		cmocka_unit_test(test_golden),
		cmocka_unit_test(test_seg_header_roundtrip),
		cmocka_unit_test(test_seg_header_errors),
		cmocka_unit_test(test_seg_header_flip_every_byte),
		cmocka_unit_test(test_rec_check_ok),
		cmocka_unit_test(test_rec_check_rejects),
		cmocka_unit_test(test_rec_check_structure),
		cmocka_unit_test(test_rec_flip_every_bit),
		cmocka_unit_test(test_scan_replay),
		cmocka_unit_test(test_scan_empty),
		cmocka_unit_test(test_scan_truncate_last),
		cmocka_unit_test(test_scan_corrupt_last),
		cmocka_unit_test(test_scan_corrupt_earlier),
		cmocka_unit_test(test_scan_torn_next_epoch_only),
		cmocka_unit_test(test_scan_rule_random),
		cmocka_unit_test(test_scan_limit),
		cmocka_unit_test(test_scan_epoch_backwards),
		cmocka_unit_test(test_scan_epoch_zero),
		cmocka_unit_test(test_scan_other_seg_id),
		cmocka_unit_test(test_scan_callback_stop),
		cmocka_unit_test(test_scan_probe_zeroed),
		cmocka_unit_test(test_parse_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
