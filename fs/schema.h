/* SPDX-License-Identifier: MIT */
/*
 * The key schema: how a kvfs becomes libkv keys and values. The one place
 * that knows the byte layout (documented in fs/FORMAT.md); the daemon, mkfs
 * and fsck build and parse keys and values only through these functions.
 *
 * Every key starts with a one-byte type; integers in keys are big-endian so
 * that keys of one inode (and entries of one directory) are contiguous and
 * ordered. Values are little-endian fixed layouts with a version byte.
 */
#ifndef KVFS_SCHEMA_H
#define KVFS_SCHEMA_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define KVFS_MAGIC 0x5346564bu /* "KVFS" little-endian */
#define KVFS_FORMAT_VERSION 1u
#define KVFS_FEATURES_KNOWN 0ull /* incompatible feature bits we understand */

enum kvfs_ktype {
	KVFS_K_SUPER = 0x01,  /* 01                       -> struct kvfs_super */
	KVFS_K_INODE = 0x02,  /* 02 ino                   -> struct kvfs_inode + inline */
	KVFS_K_ENTRY = 0x03,  /* 03 dir hash name         -> child ino, type */
	KVFS_K_DATA = 0x04,   /* 04 ino block             -> block bytes */
	KVFS_K_XATTR = 0x05,  /* 05 ino name              -> value */
	KVFS_K_ORPHAN = 0x06, /* 06 ino                   -> empty */
};

/* Longest key: type + dir + hash + a 255-byte name. */
#define KVFS_KEY_MAX (1 + 8 + 8 + 255)

/* Readdir cookies: 0 = start, 1 = after ".", 2 = after "..", then hashes. */
#define KVFS_DIROFF_FIRST 3ull

/* 63-bit xxh3 of a name, never below KVFS_DIROFF_FIRST. */
uint64_t kvfs_name_hash(const char *name, size_t len);

/* Key builders: write the key into @k (KVFS_KEY_MAX bytes), return its length. */
size_t kvfs_key_super(uint8_t *k);
size_t kvfs_key_inode(uint8_t *k, uint64_t ino);
size_t kvfs_key_entry(uint8_t *k, uint64_t dir, const char *name, size_t len);
/* The first possible entry key of @dir with hash >= @hash (a seek target). */
size_t kvfs_key_entry_from(uint8_t *k, uint64_t dir, uint64_t hash);
size_t kvfs_key_data(uint8_t *k, uint64_t ino, uint64_t block);
size_t kvfs_key_xattr(uint8_t *k, uint64_t ino, const char *name, size_t len);
size_t kvfs_key_orphan(uint8_t *k, uint64_t ino);
/* The first key of type @t for @ino (empty suffix): range bounds, with
 * (t, ino + 1) as the exclusive end. */
size_t kvfs_key_prefix(uint8_t *k, enum kvfs_ktype t, uint64_t ino);

/* A parsed key. Fields not used by the type are 0 / NULL. */
struct kvfs_key {
	enum kvfs_ktype type;
	uint64_t ino;	  /* inode, directory (entry), owner (data, xattr, orphan) */
	uint64_t hash;	  /* entry */
	uint64_t block;	  /* data */
	const char *name; /* entry, xattr: points into the key, not terminated */
	size_t namelen;
};
/* -EINVAL if @k is not a well-formed kvfs key. */
int kvfs_key_parse(const void *k, size_t len, struct kvfs_key *out);

/* ---- values ----------------------------------------------------------- */

struct kvfs_super {
	uint32_t version;    /* KVFS_FORMAT_VERSION at mkfs */
	uint32_t block_size; /* bytes per data block */
	uint32_t inline_max; /* regular files up to this size are inline */
	uint64_t ino_next;   /* every ino >= this is unused (allocator) */
	uint64_t features;   /* incompatible feature bits */
	int64_t created_ns;  /* mkfs time, CLOCK_REALTIME */
	uint8_t uuid[16];
	char label[64]; /* NUL-terminated */
};
#define KVFS_SUPER_SIZE 128
void kvfs_super_encode(const struct kvfs_super *s, uint8_t out[KVFS_SUPER_SIZE]);
/* -EMEDIUMTYPE (bad magic), -EPROTONOSUPPORT (newer version or unknown
 * feature), -EUCLEAN (wrong size, bad field). */
int kvfs_super_decode(const void *v, size_t len, struct kvfs_super *s);

struct kvfs_inode {
	uint32_t mode; /* type and permission bits */
	uint32_t uid, gid;
	uint32_t nlink;
	uint64_t size;	   /* bytes; a symlink's target length */
	uint64_t nblocks;  /* data blocks stored (0 while inline) */
	uint64_t nentries; /* directories: entries other than . and .. */
	struct timespec atime, mtime, ctime, btime;
	uint64_t rdev;
	uint64_t generation;
	uint32_t flags;	 /* KVFS_IF_* */
	uint64_t parent; /* directories: the parent directory ("..", the root's
			  * is itself); 0 for other types */
};
#define KVFS_IF_INLINE 0x1u /* data (or symlink target) is in the value */
#define KVFS_IF_XATTR 0x2u  /* it has (or had) extended attributes */
/* Fixed part of an inode value; inline data follows it. */
#define KVFS_INODE_SIZE 120
/* Encode into @out (KVFS_INODE_SIZE + inline_len bytes); returns the length. */
size_t kvfs_inode_encode(const struct kvfs_inode *ino, const void *inl, size_t inline_len,
			 uint8_t *out);
/* -EUCLEAN if malformed. *inl points into @v (inline_len 0 when none). */
int kvfs_inode_decode(const void *v, size_t len, struct kvfs_inode *ino, const void **inl,
		      size_t *inline_len);

#define KVFS_ENTRY_SIZE 9
void kvfs_entry_encode(uint64_t ino, unsigned type, uint8_t out[KVFS_ENTRY_SIZE]);
int kvfs_entry_decode(const void *v, size_t len, uint64_t *ino, unsigned *type);

#endif /* KVFS_SCHEMA_H */
