// SPDX-License-Identifier: MIT
/*
 * The key schema's encoders and decoders (layout in fs/FORMAT.md).
 */
#include "schema.h"

#include <errno.h>
#include <string.h>
#include <xxhash.h>

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

uint64_t kvfs_name_hash(const char *name, size_t len)
{
	uint64_t h = XXH3_64bits(name, len) >> 1;

	return h < KVFS_DIROFF_FIRST ? h + KVFS_DIROFF_FIRST : h;
}

size_t kvfs_key_super(uint8_t *k)
{
	k[0] = KVFS_K_SUPER;
	return 1;
}

size_t kvfs_key_prefix(uint8_t *k, enum kvfs_ktype t, uint64_t ino)
{
	k[0] = (uint8_t)t;
	put_be64(k + 1, ino);
	return 9;
}

size_t kvfs_key_inode(uint8_t *k, uint64_t ino)
{
	return kvfs_key_prefix(k, KVFS_K_INODE, ino);
}

size_t kvfs_key_orphan(uint8_t *k, uint64_t ino)
{
	return kvfs_key_prefix(k, KVFS_K_ORPHAN, ino);
}

size_t kvfs_key_entry_from(uint8_t *k, uint64_t dir, uint64_t hash)
{
	kvfs_key_prefix(k, KVFS_K_ENTRY, dir);
	put_be64(k + 9, hash);
	return 17;
}

size_t kvfs_key_entry(uint8_t *k, uint64_t dir, const char *name, size_t len)
{
	kvfs_key_entry_from(k, dir, kvfs_name_hash(name, len));
	memcpy(k + 17, name, len);
	return 17 + len;
}

size_t kvfs_key_data(uint8_t *k, uint64_t ino, uint64_t block)
{
	kvfs_key_prefix(k, KVFS_K_DATA, ino);
	put_be64(k + 9, block);
	return 17;
}

size_t kvfs_key_xattr(uint8_t *k, uint64_t ino, const char *name, size_t len)
{
	kvfs_key_prefix(k, KVFS_K_XATTR, ino);
	memcpy(k + 9, name, len);
	return 9 + len;
}

int kvfs_key_parse(const void *key, size_t len, struct kvfs_key *out)
{
	const uint8_t *k = key;

	memset(out, 0, sizeof(*out));
	if (len < 1)
		return -EINVAL;
	out->type = k[0];
	switch (k[0]) {
	case KVFS_K_SUPER:
		return len == 1 ? 0 : -EINVAL;
	case KVFS_K_INODE:
	case KVFS_K_ORPHAN:
		if (len != 9)
			return -EINVAL;
		out->ino = get_be64(k + 1);
		return 0;
	case KVFS_K_DATA:
		if (len != 17)
			return -EINVAL;
		out->ino = get_be64(k + 1);
		out->block = get_be64(k + 9);
		return 0;
	case KVFS_K_ENTRY:
		if (len < 18 || len > 17 + 255)
			return -EINVAL;
		out->ino = get_be64(k + 1);
		out->hash = get_be64(k + 9);
		out->name = (const char *)k + 17;
		out->namelen = len - 17;
		return 0;
	case KVFS_K_XATTR:
		if (len < 10 || len > 9 + 255)
			return -EINVAL;
		out->ino = get_be64(k + 1);
		out->name = (const char *)k + 9;
		out->namelen = len - 9;
		return 0;
	default:
		return -EINVAL;
	}
}

/*
 * Superblock value, 128 bytes:
 *   0 magic  4 version  8 block_size  12 inline_max  16 ino_next
 *  24 features  32 created_ns  40 uuid[16]  56 label[64]  120 reserved (0)
 */
void kvfs_super_encode(const struct kvfs_super *s, uint8_t out[KVFS_SUPER_SIZE])
{
	memset(out, 0, KVFS_SUPER_SIZE);
	put_le32(out, KVFS_MAGIC);
	put_le32(out + 4, s->version);
	put_le32(out + 8, s->block_size);
	put_le32(out + 12, s->inline_max);
	put_le64(out + 16, s->ino_next);
	put_le64(out + 24, s->features);
	put_le64(out + 32, (uint64_t)s->created_ns);
	memcpy(out + 40, s->uuid, 16);
	memcpy(out + 56, s->label, 63);
}

int kvfs_super_decode(const void *v, size_t len, struct kvfs_super *s)
{
	const uint8_t *p = v;

	memset(s, 0, sizeof(*s));
	if (len < 4 || get_le32(p) != KVFS_MAGIC)
		return -EMEDIUMTYPE;
	if (len < 8)
		return -EUCLEAN;
	s->version = get_le32(p + 4);
	if (s->version > KVFS_FORMAT_VERSION)
		return -EPROTONOSUPPORT;
	if (len != KVFS_SUPER_SIZE)
		return -EUCLEAN;
	s->block_size = get_le32(p + 8);
	s->inline_max = get_le32(p + 12);
	s->ino_next = get_le64(p + 16);
	s->features = get_le64(p + 24);
	s->created_ns = (int64_t)get_le64(p + 32);
	memcpy(s->uuid, p + 40, 16);
	memcpy(s->label, p + 56, 63);
	if (s->features & ~KVFS_FEATURES_KNOWN)
		return -EPROTONOSUPPORT;
	if (s->block_size < 1024 || s->block_size > 65536 ||
	    (s->block_size & (s->block_size - 1)) || s->inline_max > s->block_size ||
	    s->inline_max > 4096 || s->ino_next < 2)
		return -EUCLEAN;
	return 0;
}

/*
 * Inode value: a 120-byte fixed part, then inline data.
 *   0 version(1) 1..3 reserved  4 mode  8 uid  12 gid  16 nlink  20 flags
 *  24 size  32 nblocks  40 nentries  48 atime.s  56 mtime.s  64 ctime.s
 *  72 btime.s  80 atime.ns  84 mtime.ns  88 ctime.ns  92 btime.ns
 *  96 rdev  104 generation  112 parent
 */
#define INODE_VERSION 1

size_t kvfs_inode_encode(const struct kvfs_inode *ino, const void *inl, size_t inline_len,
			 uint8_t *out)
{
	const struct timespec *ts[4] = { &ino->atime, &ino->mtime, &ino->ctime, &ino->btime };

	memset(out, 0, KVFS_INODE_SIZE);
	out[0] = INODE_VERSION;
	put_le32(out + 4, ino->mode);
	put_le32(out + 8, ino->uid);
	put_le32(out + 12, ino->gid);
	put_le32(out + 16, ino->nlink);
	put_le32(out + 20, ino->flags);
	put_le64(out + 24, ino->size);
	put_le64(out + 32, ino->nblocks);
	put_le64(out + 40, ino->nentries);
	for (int i = 0; i < 4; i++) {
		put_le64(out + 48 + 8 * i, (uint64_t)ts[i]->tv_sec);
		put_le32(out + 80 + 4 * i, (uint32_t)ts[i]->tv_nsec);
	}
	put_le64(out + 96, ino->rdev);
	put_le64(out + 104, ino->generation);
	put_le64(out + 112, ino->parent);
	if (inline_len)
		memcpy(out + KVFS_INODE_SIZE, inl, inline_len);
	return KVFS_INODE_SIZE + inline_len;
}

int kvfs_inode_decode(const void *v, size_t len, struct kvfs_inode *ino, const void **inl,
		      size_t *inline_len)
{
	const uint8_t *p = v;
	struct timespec *ts[4] = { &ino->atime, &ino->mtime, &ino->ctime, &ino->btime };

	memset(ino, 0, sizeof(*ino));
	if (len < KVFS_INODE_SIZE || p[0] != INODE_VERSION)
		return -EUCLEAN;
	ino->mode = get_le32(p + 4);
	ino->uid = get_le32(p + 8);
	ino->gid = get_le32(p + 12);
	ino->nlink = get_le32(p + 16);
	ino->flags = get_le32(p + 20);
	ino->size = get_le64(p + 24);
	ino->nblocks = get_le64(p + 32);
	ino->nentries = get_le64(p + 40);
	for (int i = 0; i < 4; i++) {
		ts[i]->tv_sec = (time_t)get_le64(p + 48 + 8 * i);
		ts[i]->tv_nsec = get_le32(p + 80 + 4 * i);
		if (ts[i]->tv_nsec >= 1000000000)
			return -EUCLEAN;
	}
	ino->rdev = get_le64(p + 96);
	ino->generation = get_le64(p + 104);
	ino->parent = get_le64(p + 112);
	*inl = len > KVFS_INODE_SIZE ? p + KVFS_INODE_SIZE : NULL;
	*inline_len = len - KVFS_INODE_SIZE;
	if (*inline_len && !(ino->flags & KVFS_IF_INLINE))
		return -EUCLEAN;
	return 0;
}

/* Entry value: child ino (le64), then its DT_* type (u8). */
void kvfs_entry_encode(uint64_t ino, unsigned type, uint8_t out[KVFS_ENTRY_SIZE])
{
	put_le64(out, ino);
	out[8] = (uint8_t)type;
}

int kvfs_entry_decode(const void *v, size_t len, uint64_t *ino, unsigned *type)
{
	const uint8_t *p = v;

	if (len != KVFS_ENTRY_SIZE)
		return -EUCLEAN;
	*ino = get_le64(p);
	*type = p[8];
	return *ino ? 0 : -EUCLEAN;
}
