/* SPDX-License-Identifier: MIT */
/*
 * table_fmt.h - the bytes of a sorted table (normative text: kv/FORMAT.md,
 * "Sorted tables"), shared by the builder (table_build.c), the reader
 * (table_read.c) and the checker (table_check.c). Private to those three.
 *
 *   file    [data block]...[filter][range-del][properties][index][footer]
 *   block   contents (size bytes) | trailer (16 bytes):
 *             0 u8  type          enum kv_blk_type
 *             1 u8[7] reserved    0
 *             8 u64 checksum      xxh3_64(contents ++ trailer[0, 8), seed 0)
 *   keyed block (data, index, range-del) contents:
 *             entries: varint shared | varint unshared | varint vlen |
 *                      key[shared, shared + unshared) | value
 *             u32 restart[n]  offsets of entries whose shared == 0
 *             u32 n           0 only for an empty block (contents = 4 bytes)
 *   footer  (88 bytes, the last of the file)
 *             0 u64 checksum     xxh3_64(footer[8, 88), seed 0)
 *             8 u64 filter off,  16 u64 filter size
 *            24 u64 rangedel off, 32 u64 rangedel size
 *            40 u64 props off,   48 u64 props size
 *            56 u64 index off,   64 u64 index size
 *            72 u32 footer_size  88
 *            76 u32 version      KV_FORMAT_VERSION
 *            80 u64 magic        "LVKVTBL1"
 *   props   (type 5) 0 file_no, 8 entries, 16 rangedels, 24 data_bytes,
 *           32 data_blocks, 40 user_keys, 48 min_lsn, 56 max_lsn (u64 each),
 *           64 u32 slen, 68 u32 llen, 72 smallest, 72 + slen largest.
 *   filter  (type 3) bit array | u8 k
 *
 * Every decoder here treats its input as untrusted: lengths are checked
 * against the bytes left before use, and a bad byte is -EUCLEAN (or
 * -EBADMSG for a checksum) with the file offset and a reason in a
 * struct kv_tbl_err, never an assertion.
 */
#ifndef KV_TABLE_FMT_H
#define KV_TABLE_FMT_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "ikey.h"
#include "kv.h"
#include "table.h"

#define KV_TABLE_MAGIC 0x314c4254564b564cull /* "LVKVTBL1" read as LE bytes */
#define KV_TABLE_MIN_VERSION 2u		     /* tables first appear in version 2 */
#define KV_TBL_TRAILER 16u
#define KV_TBL_FOOTER 88u
#define KV_TBL_FOOTER_MAX 4096u /* a later version's footer may grow up to this */
#define KV_TBL_PROPS_FIXED 72u
#define KV_TBL_MAX_IKEY (KV_MAX_KEY + KV_IKEY_TRAILER)
#define KV_TBL_MAX_BLOCK (UINT32_MAX - KV_TBL_TRAILER) /* contents bytes */

/* The builder's cut rule (kv/FORMAT.md, "Data block"): a data block whose
 * entries average at least half the target block size (file data: values of
 * the filesystem's block size) is cut at KV_TBL_BIG_MUL times the target
 * instead of at the target, so that one read, one checksum and one cache
 * entry serve several consecutive large values. */
#ifndef KV_TBL_BIG_MUL
#define KV_TBL_BIG_MUL 4u
#endif

#define KV_TBL_MAX_K 30u
#define KV_VARINT_MAX 10u

enum kv_blk_type {
	KV_BLK_DATA = 1,
	KV_BLK_INDEX = 2,
	KV_BLK_FILTER = 3,
	KV_BLK_RANGEDEL = 4,
	KV_BLK_PROPS = 5,
};

/* Where a decoder found a problem: an absolute file offset and why. */
struct kv_tbl_err {
	uint64_t off;
	const char *why;
};

static inline int kv_tbl_bad(struct kv_tbl_err *e, uint64_t off, const char *why)
{
	e->off = off;
	e->why = why;
	return -EUCLEAN;
}

/* ---- varints: LEB128, least significant 7 bits first, minimal length ---- */

static inline uint8_t *kv_varint_put(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

/* Decode at *pp, not reading at or past @end; 0 and *pp advanced, or
 * -EUCLEAN (runs off the end, longer than 10 bytes, over 64 bits, or not
 * minimal: a last byte of 0 after the first). */
static inline int kv_varint_get(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
	const uint8_t *p = *pp;
	uint64_t r = 0;

	for (unsigned shift = 0; shift < 64 && p < end; shift += 7) {
		uint8_t c = *p++;

		if (shift == 63 && c > 1)
			return -EUCLEAN;
		r |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			if (c == 0 && shift)
				return -EUCLEAN;
			*pp = p;
			*v = r;
			return 0;
		}
	}
	return -EUCLEAN;
}

/* ---- block trailer and handles ------------------------------------------ */

struct kv_bhandle {
	uint64_t off;  /* of the contents */
	uint64_t size; /* contents bytes, without the trailer */
};

/* Write the trailer of the @size content bytes at @blk (room for 16 more). */
void kv_tbl_seal(uint8_t *blk, size_t size, uint8_t type);
/* Check the trailer after @size content bytes at @blk, read from file offset
 * @foff: -EBADMSG (checksum), -EUCLEAN (type not @type, reserved not 0). */
int kv_tbl_unseal(const uint8_t *blk, size_t size, uint8_t type, uint64_t foff,
		  struct kv_tbl_err *e);

/* ---- keyed blocks --------------------------------------------------------- */

/* A validated keyed block; part of a cached block, so [immutable after
 * kv_blk_init] and shared by every reader of the block. */
struct kv_blk {
	const uint8_t *p; /* contents */
	uint64_t foff;	  /* file offset of the contents (for messages) */
	uint32_t size;	  /* contents bytes */
	uint32_t limit;	  /* entries end here, the restart array begins */
	uint32_t nrestarts;
	uint32_t minklen; /* KV_IKEY_TRAILER for internal keys, else 0 */
};

/* Validate the restart array of @size content bytes: n >= 1 (or an empty
 * block), offsets start at 0, increase, and lie before the array. */
int kv_blk_init(struct kv_blk *b, const uint8_t *p, size_t size, uint64_t foff, uint32_t minklen,
		struct kv_tbl_err *e);

/* A position in a keyed block; the key is rebuilt in key[]. Private to
 * one reader (on its stack or in its iterator). */
struct kv_bcur {
	const struct kv_blk *b;
	uint32_t off;  /* of the current entry */
	uint32_t next; /* of the next entry; b->limit at the last */
	uint32_t shared;
	uint32_t klen;
	uint32_t vlen;
	const uint8_t *val;
	uint8_t key[KV_TBL_MAX_IKEY];
};

/* Each returns 1 (positioned), 0 (no such entry: end of block) or -EUCLEAN
 * with @e set. */
int kv_bcur_first(struct kv_bcur *c, const struct kv_blk *b, struct kv_tbl_err *e);
int kv_bcur_next(struct kv_bcur *c, struct kv_tbl_err *e);
/* First entry whose internal key is >= @ik (blocks of internal keys only). */
int kv_bcur_seek(struct kv_bcur *c, const struct kv_blk *b, const uint8_t *ik, size_t iklen,
		 struct kv_tbl_err *e);

/* Build a keyed block in memory: append entries in order, then finish. */
struct kv_bbuild {
	uint8_t *buf;
	size_t len, cap;
	uint32_t *restarts;
	size_t nrestarts, rcap;
	int interval, since; /* entries since the last restart */
	size_t entries;
	uint8_t last[KV_TBL_MAX_IKEY];
	size_t lastlen;
};

void kv_bbuild_init(struct kv_bbuild *bb, int interval);
void kv_bbuild_reset(struct kv_bbuild *bb);
void kv_bbuild_free(struct kv_bbuild *bb);
int kv_bbuild_add(struct kv_bbuild *bb, const uint8_t *key, size_t klen, const void *val,
		  size_t vlen);
/* Contents bytes if finished now. */
size_t kv_bbuild_size(const struct kv_bbuild *bb);
/* Append the restart array; bb->buf[0, bb->len) is then the contents, with
 * KV_TBL_TRAILER bytes of room after it. */
int kv_bbuild_finish(struct kv_bbuild *bb);

/* ---- footer --------------------------------------------------------------- */

struct kv_footer {
	struct kv_bhandle filter, rangedel, props, index;
	uint32_t version;
};

void kv_tbl_footer_encode(uint8_t out[KV_TBL_FOOTER], const struct kv_footer *f);
/*
 * Decode the footer from @tail, the last @tlen bytes (tlen >= KV_TBL_FOOTER
 * or all of a shorter file) of a file of @fsize bytes. Judged in this order:
 * too short or bad magic -EUCLEAN; footer_size impossible -EUCLEAN;
 * checksum -EBADMSG; newer version -EPROTONOSUPPORT; older version, other
 * footer size or handles that do not tile the file -EUCLEAN.
 */
int kv_tbl_footer_decode(const uint8_t *tail, size_t tlen, uint64_t fsize, struct kv_footer *f,
			 struct kv_tbl_err *e);

/* ---- properties ----------------------------------------------------------- */

struct kv_tprops {
	uint64_t file_no, entries, rangedels, data_bytes, data_blocks, user_keys;
	uint64_t min_lsn, max_lsn;
	const uint8_t *smallest, *largest;
	uint32_t slen, llen;
};

size_t kv_tprops_size(const struct kv_tprops *p);
void kv_tprops_encode(uint8_t *out, const struct kv_tprops *p);
/* Keys point into @in. */
int kv_tprops_decode(const uint8_t *in, size_t size, uint64_t foff, struct kv_tprops *p,
		     struct kv_tbl_err *e);

/* ---- bloom filter ----------------------------------------------------------- */

static inline uint64_t kv_bloom_delta(uint64_t h)
{
	return (h >> 33) | (h << 31);
}
uint64_t kv_bloom_hash(const void *ukey, size_t len);
unsigned kv_bloom_k(int bits_per_key);
void kv_bloom_set(uint8_t *bits, uint64_t nbits, unsigned k, uint64_t h);
int kv_bloom_maybe(const uint8_t *bits, uint64_t nbits, unsigned k, uint64_t h);

/* ---- range tombstones in the range-del block ------------------------------ */

/* Decode the value of a range-del entry (varint lsn, then the end key). */
int kv_rdel_value(const uint8_t *v, size_t vlen, uint64_t *lsn, const uint8_t **end, size_t *elen);

/* The bounds a tombstone [s, e) at lsn adds to a table's range. */
static inline uint64_t kv_rdel_lo_trailer(uint64_t lsn)
{
	return kv_trailer(lsn, KV_IK_SEEK);
}
static inline uint64_t kv_rdel_hi_trailer(void)
{
	return kv_trailer(KV_LSN_MAX, KV_IK_SEEK);
}

#endif /* KV_TABLE_FMT_H */
