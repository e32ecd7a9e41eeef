/* SPDX-License-Identifier: MIT */
/*
 * wal.h - byte layout of WAL segments, records and operations (normative
 * description: kv/FORMAT.md, "WAL segments"), and the segment scanner used
 * by recovery.
 *
 * A segment file is the image of one memtable's log buffer: buffer offset ==
 * file offset. It starts with a 64-byte header; records follow at 8-byte
 * aligned offsets; the rest of the preallocated file is zero.
 *
 *   segment header (64 bytes, little-endian)
 *     0  u64 magic        KV_SEG_MAGIC
 *     8  u32 version      KV_FORMAT_VERSION
 *    12  u32 header_size  64
 *    16  u64 seg_id       also in the file name; seeds every record checksum
 *    24  u64 base_lsn     LSN of byte 0 of this segment
 *    32  u64 prev_end     where the previous segment's records end (0: none)
 *    40  u64 capacity     file size = log buffer size
 *    48  u32 flags        0
 *    52  u32 reserved     0
 *    56  u64 checksum     xxh3_64 of bytes [0, 56), seed 0
 *
 *   record (one write batch), 24-byte header then ops, padded with zeros to 8
 *     0  u64 checksum     xxh3_64 of bytes [8, len), seed = seg_id
 *     8  u32 len          header + ops, without the padding
 *    12  u32 count        number of ops
 *    16  u32 epoch        group-commit epoch within the segment (1, 2, ...)
 *    20  u8  type         KV_REC_BATCH
 *    21  u8  flags        0
 *    22  u16 reserved     0
 *
 *   op, 8-byte header then key then value (not aligned)
 *     0  u8  type         KV_OP_PUT, KV_OP_DEL, KV_OP_DELRANGE (value = end key)
 *     1  u8  reserved     0
 *     2  u16 klen         1 .. KV_MAX_KEY
 *     4  u32 vlen         0 for KV_OP_DEL
 *     8  key, value
 */
#ifndef KV_WAL_H
#define KV_WAL_H

#include <stddef.h>
#include <stdint.h>

#define KV_SEG_MAGIC 0x31474553564b564cull /* "LVKVSEG1" read as LE bytes */
#define KV_SEG_HEADER_SIZE 64u
#define KV_REC_HEADER_SIZE 24u
#define KV_OP_HEADER_SIZE 8u
#define KV_REC_ALIGN 8u

enum kv_rec_type { KV_REC_BATCH = 1 };
/* KV_OP_DELRANGE: key = start, value = end of [start, end), start < end. */
enum kv_op_type { KV_OP_PUT = 1, KV_OP_DEL = 2, KV_OP_DELRANGE = 3 };

struct kv_seg_header {
	uint64_t seg_id;
	uint64_t base_lsn;
	uint64_t prev_end;
	uint64_t capacity;
	uint32_t version;
	uint32_t flags;
};

struct kv_rec_header {
	uint32_t len;
	uint32_t count;
	uint32_t epoch;
	uint8_t type;
};

/* A decoded op; key and val point into the record. */
struct kv_op {
	uint8_t type;
	uint32_t klen;
	uint32_t vlen;
	const uint8_t *key;
	const uint8_t *val;
};

static inline uint64_t kv_align8(uint64_t n)
{
	return (n + KV_REC_ALIGN - 1) & ~(uint64_t)(KV_REC_ALIGN - 1);
}

static inline size_t kv_op_size(size_t klen, size_t vlen)
{
	return KV_OP_HEADER_SIZE + klen + vlen;
}

/* Little-endian helpers (never a struct dumped to disk). */
static inline void kv_put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static inline void kv_put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void kv_put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t kv_get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t kv_get_le32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}
static inline uint64_t kv_get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

void kv_seg_header_encode(uint8_t out[KV_SEG_HEADER_SIZE], const struct kv_seg_header *h);
/* 0, -EBADMSG (checksum), -EUCLEAN (bad magic or sizes), -EPROTONOSUPPORT
 * (newer version). An all-zero header returns -ENODATA (never written). */
int kv_seg_header_decode(const uint8_t in[KV_SEG_HEADER_SIZE], struct kv_seg_header *h);

/* Write op @type at @p; returns the byte after it. */
uint8_t *kv_op_encode(uint8_t *p, uint8_t type, const void *key, uint32_t klen, const void *val,
		      uint32_t vlen);
/* Decode the op at @p with @avail bytes left; returns its size or -EUCLEAN. */
int kv_op_decode(const uint8_t *p, size_t avail, struct kv_op *op);

/* Fill in the header of the record at @rec (whose ops are already in place
 * after the header, @len bytes in all) and its checksum. */
void kv_rec_seal(uint8_t *rec, uint32_t len, uint32_t count, uint32_t epoch, uint64_t seg_id);
/*
 * Validate the record at @rec with @avail bytes left in the segment: header
 * sane, len within avail, checksum (seed @seg_id), and every op decodes and
 * the ops fill len exactly. 0 or -EBADMSG / -EUCLEAN / -ENODATA (all zero).
 */
int kv_rec_check(const uint8_t *rec, size_t avail, uint64_t seg_id, struct kv_rec_header *h);

/* Iterate the ops of a checked record. */
struct kv_op_iter {
	const uint8_t *p, *end;
};
void kv_op_iter_init(struct kv_op_iter *it, const uint8_t *rec, const struct kv_rec_header *h);
/* 1 and *op filled, or 0 at the end. Only on checked records. */
int kv_op_next(struct kv_op_iter *it, struct kv_op *op);

/*
 * Scan a segment image (whole file in memory) from its first record.
 *
 * Calls @fn for each valid record in order (non-zero return stops the scan
 * and is returned). Stops at the first invalid record (bad checksum, zeros,
 * epoch going backwards) or at @limit if non-zero. The result:
 *   *end     offset after the last valid record replayed;
 *   returns  0 when the stop is a clean end or a torn tail;
 *            -EUCLEAN when it cannot be a torn tail, with *bad_off set: a
 *            record at or past @limit is missing (limit given), or a valid
 *            record of epoch >= last_epoch + 2 lies beyond the bad one (so the
 *            epoch holding the bad record had been made durable before).
 * The torn-tail rule is documented in kv/FORMAT.md, "Recovery".
 */
typedef int (*kv_rec_fn)(void *arg, uint64_t off, const struct kv_rec_header *h,
			 const uint8_t *rec);
int kv_wal_scan(const uint8_t *seg, size_t size, uint64_t seg_id, uint64_t limit, kv_rec_fn fn,
		void *arg, uint64_t *end, uint64_t *bad_off);

/*
 * 1 if a valid record of epoch >= @min_epoch starts at an 8-aligned offset
 * >= @from (checksums seeded with @seg_id), else 0. A record of epoch 2
 * proves epoch 1's commit (which carried the segment header) was durable.
 */
int kv_wal_probe(const uint8_t *seg, size_t size, uint64_t seg_id, uint64_t from,
		 uint32_t min_epoch);

/* "wal-%016llx.log" */
#define KV_WAL_NAME_FMT "wal-%016llx.log"
int kv_wal_parse_name(const char *name, uint64_t *seg_id);

#endif /* KV_WAL_H */
