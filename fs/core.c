// SPDX-License-Identifier: MIT
/*
 * The mounted filesystem: open and close, the namespace locks, the inode
 * allocator, inode references and the reclaim of unlinked inodes, and the
 * helpers every operation uses to read state and append its batch.
 */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* ---- options, logging -------------------------------------------------- */

void kvfs_options_init(struct kvfs_options *o)
{
	memset(o, 0, sizeof(*o));
	o->durability = KVFS_DUR_BATCH;
}

void kvfs_log(struct kvfs *fs, int level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (fs && fs->log)
		fs->log(fs->log_ctx, level, msg);
	else
		fprintf(stderr, "kvfs: %s\n", msg);
}

void kvfs_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* The engine's log hook, forwarded to the mount's. */
static void engine_log(void *ctx, enum kv_log_level level, const char *msg)
{
	kvfs_log(ctx, (int)level, "%s", msg);
}

/* ---- locks ------------------------------------------------------------ */

static unsigned stripe_of(uint64_t ino)
{
	return (unsigned)((ino * 0x9e3779b97f4a7c15ull) >> 54) % KVFS_LOCK_STRIPES;
}

/* The distinct stripes of @inos, ascending; returns how many. */
static int stripes_sorted(const uint64_t *inos, int n, unsigned *out)
{
	int m = 0;

	for (int i = 0; i < n; i++) {
		unsigned s = stripe_of(inos[i]);
		int j;

		if (!inos[i])
			continue;
		for (j = 0; j < m && out[j] < s; j++)
			;
		if (j < m && out[j] == s)
			continue;
		memmove(out + j + 1, out + j, (size_t)(m - j) * sizeof(*out));
		out[j] = s;
		m++;
	}
	return m;
}

void kvfs_lock_inodes(struct kvfs *fs, const uint64_t *inos, int n)
{
	unsigned s[8];
	int m = stripes_sorted(inos, n, s);

	for (int i = 0; i < m; i++)
		pthread_mutex_lock(&fs->stripes[s[i]]);
}

void kvfs_unlock_inodes(struct kvfs *fs, const uint64_t *inos, int n)
{
	unsigned s[8];
	int m = stripes_sorted(inos, n, s);

	for (int i = m - 1; i >= 0; i--)
		pthread_mutex_unlock(&fs->stripes[s[i]]);
}

bool kvfs_lock_add(struct kvfs *fs, const uint64_t *held, int n, uint64_t ino)
{
	unsigned s = stripe_of(ino);
	bool above = true;

	for (int i = 0; i < n; i++) {
		unsigned h;

		if (!held[i])
			continue;
		h = stripe_of(held[i]);
		if (h == s)
			return true;
		if (h > s)
			above = false;
	}
	if (above) {
		pthread_mutex_lock(&fs->stripes[s]);
		return true;
	}
	return pthread_mutex_trylock(&fs->stripes[s]) == 0;
}

/* ---- reading and writing ---------------------------------------------- */

int kvfs_inode_read(struct kvfs *fs, uint64_t ino, struct kvfs_inode *out, void *inl, size_t cap,
		    size_t *inline_len)
{
	uint8_t key[KVFS_KEY_MAX], buf[KVFS_INODE_SIZE + 4096];
	size_t klen = kvfs_key_inode(key, ino), vlen, ilen;
	void *big = NULL;
	const void *val = buf, *data;
	ssize_t n;
	int err;

	n = kv_get(fs->db, KV_READ_LATEST, key, klen, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	vlen = (size_t)n;
	if (vlen > sizeof(buf)) {
		err = kv_get_alloc(fs->db, KV_READ_LATEST, key, klen, &big, &vlen);
		if (err)
			return err;
		val = big;
	}
	err = kvfs_inode_decode(val, vlen, out, &data, &ilen);
	if (!err && inl && ilen > cap)
		err = -EUCLEAN;
	if (err) {
		kvfs_log(fs, KV_LOG_ERROR, "%s: inode %llu: corrupt value (%zu bytes)", fs->store,
			 (unsigned long long)ino, vlen);
	} else {
		if (inl && ilen)
			memcpy(inl, data, ilen);
		if (inline_len)
			*inline_len = ilen;
	}
	free(big);
	return err;
}

int kvfs_batch_put_inode(struct kv_batch *b, uint64_t ino, const struct kvfs_inode *in,
			 const void *inl, size_t inline_len)
{
	uint8_t key[KVFS_KEY_MAX], small[KVFS_INODE_SIZE + 4096], *val = small;
	size_t klen = kvfs_key_inode(key, ino), vlen;
	int err;

	if (inline_len > sizeof(small) - KVFS_INODE_SIZE) {
		val = malloc(KVFS_INODE_SIZE + inline_len);
		if (!val)
			return -ENOMEM;
	}
	vlen = kvfs_inode_encode(in, inl, inline_len, val);
	err = kv_batch_put(b, key, klen, val, vlen);
	if (val != small)
		free(val);
	return err;
}

int kvfs_entry_read(struct kvfs *fs, uint64_t dir, const char *name, size_t len, uint64_t *ino,
		    unsigned *type)
{
	uint8_t key[KVFS_KEY_MAX], val[KVFS_ENTRY_SIZE + 1];
	size_t klen = kvfs_key_entry(key, dir, name, len);
	ssize_t n = kv_get(fs->db, KV_READ_LATEST, key, klen, val, sizeof(val));
	int err;

	if (n < 0)
		return (int)n;
	err = kvfs_entry_decode(val, (size_t)n, ino, type);
	if (err)
		kvfs_log(fs, KV_LOG_ERROR, "%s: directory %llu: entry '%.*s': corrupt value",
			 fs->store, (unsigned long long)dir, (int)len, name);
	return err;
}

static pthread_key_t batch_key;
static pthread_once_t batch_once = PTHREAD_ONCE_INIT;
static __thread struct kv_batch *thread_batch;

static void batch_free(void *b)
{
	kv_batch_destroy(b);
}

static void batch_key_init(void)
{
	pthread_key_create(&batch_key, batch_free);
}

struct kv_batch *kvfs_batch(void)
{
	if (!thread_batch) {
		pthread_once(&batch_once, batch_key_init);
		if (kv_batch_create(&thread_batch))
			abort(); /* out of memory for a few hundred bytes */
		pthread_setspecific(batch_key, thread_batch);
	}
	kv_batch_clear(thread_batch);
	return thread_batch;
}

int kvfs_commit(struct kvfs *fs, struct kv_batch *b, const struct kvfs_done *done)
{
	int err;

	if (!kv_batch_count(b))
		return 0;
	if (fs->read_only)
		return -EROFS;
	if (!done)
		return kv_write(fs->db, NULL, b);
	err = kv_write_cb(fs->db, NULL, b, done->fn, done->arg);
	return err ? err : KVFS_PENDING;
}

int kvfs_alloc_ino(struct kvfs *fs, uint64_t *ino)
{
	/* Acknowledged at append: its LSN precedes every batch that uses the
	 * numbers, so a crash never keeps such a batch without it. */
	static const struct kv_write_options now = { .durability = KV_DUR_BATCH };
	int err = 0;

	if (fs->read_only)
		return -EROFS;
	pthread_mutex_lock(&fs->alloc_lock);
	if (fs->ino_next >= fs->ino_reserved) {
		struct kvfs_super sb = fs->sb;
		uint8_t key[KVFS_KEY_MAX], val[KVFS_SUPER_SIZE];
		size_t klen = kvfs_key_super(key);

		sb.ino_next = fs->ino_next + KVFS_INO_BATCH;
		kvfs_super_encode(&sb, val);
		err = kv_put(fs->db, &now, key, klen, val, sizeof(val));
		if (!err)
			fs->ino_reserved = sb.ino_next;
	}
	if (!err)
		*ino = fs->ino_next++;
	pthread_mutex_unlock(&fs->alloc_lock);
	return err;
}

void kvfs_now(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

unsigned kvfs_mode_dtype(uint32_t mode)
{
	return (mode & S_IFMT) >> 12; /* DT_x == S_IFx >> 12 on Linux */
}

void kvfs_inode_stat(const struct kvfs *fs, uint64_t ino, const struct kvfs_inode *in,
		     struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = in->mode;
	st->st_nlink = in->nlink;
	st->st_uid = in->uid;
	st->st_gid = in->gid;
	st->st_rdev = in->rdev;
	st->st_size = (off_t)in->size;
	st->st_blksize = fs->block_size;
	st->st_atim = in->atime;
	st->st_mtim = in->mtime;
	st->st_ctim = in->ctime;
	/* 512-byte units of what is stored: blocks, or the inline bytes of a
	 * small file (never 0 for a non-empty file: tools take st_blocks == 0
	 * for "all hole"), or one block per directory. */
	if (in->nblocks)
		st->st_blocks = (blkcnt_t)(in->nblocks * (fs->block_size / 512));
	else if (S_ISREG(in->mode) && (in->flags & KVFS_IF_INLINE))
		st->st_blocks = (blkcnt_t)((in->size + 511) / 512);
	else if (S_ISDIR(in->mode))
		st->st_blocks = fs->block_size / 512;
	if (S_ISDIR(in->mode))
		st->st_size = fs->block_size; /* as ext4 reports an empty one */
}

/* ---- references and reclaim ------------------------------------------- */

static size_t node_hash(uint64_t ino, unsigned bits)
{
	return (size_t)((ino * 0x9e3779b97f4a7c15ull) >> (64 - bits));
}

static struct kvfs_node **node_slot(struct kvfs *fs, uint64_t ino)
{
	struct kvfs_node **p = &fs->nodes[node_hash(ino, fs->nodes_bits)];

	while (*p && (*p)->ino != ino)
		p = &(*p)->next;
	return p;
}

/* Double the node table once it holds more nodes than chains (the kernel
 * can hold hundreds of thousands); stays as it is without memory. */
static void nodes_grow(struct kvfs *fs)
{
	unsigned bits = fs->nodes_bits + 1;
	size_t old = (size_t)1 << fs->nodes_bits;
	struct kvfs_node **t;

	if (fs->nodes_count <= old || bits > 30)
		return;
	t = calloc((size_t)1 << bits, sizeof(*t));
	if (!t)
		return;
	for (size_t i = 0; i < old; i++) {
		while (fs->nodes[i]) {
			struct kvfs_node *n = fs->nodes[i];
			size_t h = node_hash(n->ino, bits);

			fs->nodes[i] = n->next;
			n->next = t[h];
			t[h] = n;
		}
	}
	free(fs->nodes);
	fs->nodes = t;
	fs->nodes_bits = bits;
}

void kvfs_node_ref(struct kvfs *fs, uint64_t ino, uint64_t lookups, uint64_t opens)
{
	struct kvfs_node **p, *n;

	pthread_mutex_lock(&fs->nodes_lock);
	p = node_slot(fs, ino);
	n = *p;
	if (!n) {
		n = calloc(1, sizeof(*n));
		if (!n)
			abort(); /* the kernel's reference must be counted */
		n->ino = ino;
		*p = n;
		fs->nodes_count++;
		nodes_grow(fs);
	}
	n->nlookup += lookups;
	n->nopen += opens;
	pthread_mutex_unlock(&fs->nodes_lock);
}

bool kvfs_node_busy(struct kvfs *fs, uint64_t ino)
{
	bool busy;

	pthread_mutex_lock(&fs->nodes_lock);
	busy = *node_slot(fs, ino) != NULL;
	pthread_mutex_unlock(&fs->nodes_lock);
	return busy;
}

/* Files with at most this many blocks lose them by point deletes: a range
 * tombstone costs every later read in the memtable a comparison until the
 * memtable is flushed, a point delete costs nothing after. */
#define DROP_POINT_MAX 32

int kvfs_batch_drop_blocks(struct kvfs *fs, struct kv_batch *b, uint64_t ino,
			   const struct kvfs_inode *in, uint64_t from)
{
	uint8_t k1[KVFS_KEY_MAX], k2[KVFS_KEY_MAX];
	uint64_t end;
	int err = 0;

	if (in && !in->nblocks)
		return 0;
	if (in) {
		end = in->size / fs->block_size + (in->size % fs->block_size != 0);
		if (in->nblocks == end && end > from && end - from <= DROP_POINT_MAX) {
			for (uint64_t i = from; i < end && !err; i++)
				err = kv_batch_delete(b, k1, kvfs_key_data(k1, ino, i));
			return err;
		}
	}
	return kv_batch_delete_range(b, k1, kvfs_key_data(k1, ino, from), k2,
				     kvfs_key_prefix(k2, KVFS_K_DATA, ino + 1));
}

int kvfs_batch_drop(struct kvfs *fs, struct kv_batch *b, uint64_t ino, const struct kvfs_inode *in)
{
	uint8_t k1[KVFS_KEY_MAX], k2[KVFS_KEY_MAX];
	int err;

	err = kv_batch_delete(b, k1, kvfs_key_inode(k1, ino));
	if (!err)
		err = kv_batch_delete(b, k1, kvfs_key_orphan(k1, ino));
	if (!err && (!in || S_ISREG(in->mode)))
		err = kvfs_batch_drop_blocks(fs, b, ino, in, 0);
	if (!err && (!in || (in->flags & KVFS_IF_XATTR)))
		err = kv_batch_delete_range(b, k1, kvfs_key_prefix(k1, KVFS_K_XATTR, ino), k2,
					    kvfs_key_prefix(k2, KVFS_K_XATTR, ino + 1));
	return err;
}

int kvfs_batch_drop_inode(struct kv_batch *b, uint64_t ino)
{
	return kvfs_batch_drop(NULL, b, ino, NULL);
}

/* Delete @ino if nothing refers to it any more. */
static void reclaim(struct kvfs *fs, uint64_t ino)
{
	static const struct kv_write_options now = { .durability = KV_DUR_BATCH };
	struct kvfs_inode in;
	struct kv_batch *b;
	int err;

	if (fs->read_only)
		return;
	kvfs_lock1(fs, ino);
	if (kvfs_node_busy(fs, ino) || kvfs_inode_read(fs, ino, &in, NULL, 0, NULL) || in.nlink) {
		kvfs_unlock1(fs, ino);
		return;
	}
	b = kvfs_batch();
	/* Not an acknowledged operation of its own: if a crash loses it, the
	 * orphan record makes the next mount do it again. */
	err = kvfs_batch_drop(fs, b, ino, &in);
	if (!err)
		err = kv_write(fs->db, &now, b);
	if (!err)
		atomic_fetch_sub(&fs->inodes_used, 1);
	kvfs_unlock1(fs, ino);
	if (err)
		kvfs_log(fs, KV_LOG_WARN, "%s: inode %llu: reclaim failed: %s", fs->store,
			 (unsigned long long)ino, strerror(-err));
}

void kvfs_node_unref(struct kvfs *fs, uint64_t ino, uint64_t lookups, uint64_t opens)
{
	struct kvfs_node **p, *n;
	bool gone = false;

	pthread_mutex_lock(&fs->nodes_lock);
	p = node_slot(fs, ino);
	n = *p;
	if (n) {
		n->nlookup -= lookups < n->nlookup ? lookups : n->nlookup;
		n->nopen -= opens < n->nopen ? opens : n->nopen;
		if (!n->nlookup && !n->nopen) {
			*p = n->next;
			free(n);
			fs->nodes_count--;
			gone = true;
		}
	}
	pthread_mutex_unlock(&fs->nodes_lock);
	if (gone)
		reclaim(fs, ino);
}

void kvfs_forget(struct kvfs *fs, uint64_t ino, uint64_t n)
{
	kvfs_node_unref(fs, ino, n, 0);
}

/* ---- open and close --------------------------------------------------- */

static int scan(struct kvfs *fs, unsigned flags, const uint8_t *lo, size_t llen, const uint8_t *hi,
		size_t hlen, int (*fn)(struct kvfs *fs, const void *k, size_t klen, void *arg),
		void *arg)
{
	struct kv_iter *it;
	int err = kv_iter_create_flags(fs->db, flags, NULL, &it);

	if (err)
		return err;
	for (kv_iter_seek(it, lo, llen); !err && kv_iter_valid(it); kv_iter_next(it)) {
		size_t klen;
		const void *k = kv_iter_key(it, &klen);
		size_t m = klen < hlen ? klen : hlen;
		int c = memcmp(k, hi, m);

		if (c > 0 || (c == 0 && klen >= hlen))
			break;
		err = fn(fs, k, klen, arg);
	}
	if (!err)
		err = kv_iter_status(it);
	kv_iter_destroy(it);
	return err;
}

int kvfs_scan(struct kvfs *fs, const uint8_t *lo, size_t llen, const uint8_t *hi, size_t hlen,
	      int (*fn)(struct kvfs *fs, const void *k, size_t klen, void *arg), void *arg)
{
	return scan(fs, 0, lo, llen, hi, hlen, fn, arg);
}

int kvfs_scan_latest(struct kvfs *fs, const uint8_t *lo, size_t llen, const uint8_t *hi,
		     size_t hlen, int (*fn)(struct kvfs *fs, const void *k, size_t klen, void *arg),
		     void *arg)
{
	return scan(fs, KV_READ_LATEST, lo, llen, hi, hlen, fn, arg);
}

static int count_inode(struct kvfs *fs, const void *k, size_t klen, void *arg)
{
	(*(uint64_t *)arg)++;
	return 0;
}

static int collect_orphan(struct kvfs *fs, const void *k, size_t klen, void *arg)
{
	struct kvfs_key key;
	struct kv_batch *b = arg;

	if (kvfs_key_parse(k, klen, &key))
		return 0; /* fsck's business */
	kvfs_log(fs, KV_LOG_INFO, "%s: reclaiming orphan inode %llu", fs->store,
		 (unsigned long long)key.ino);
	atomic_fetch_sub(&fs->inodes_used, 1);
	return kvfs_batch_drop_inode(b, key.ino);
}

/* Count the inodes (statfs) and reclaim the orphans a crash left. */
static int mount_scan(struct kvfs *fs)
{
	uint8_t lo[KVFS_KEY_MAX], hi[KVFS_KEY_MAX];
	size_t llen, hlen;
	uint64_t n = 0;
	struct kv_batch *b;
	int err;

	llen = kvfs_key_prefix(lo, KVFS_K_INODE, 0);
	hlen = kvfs_key_prefix(hi, KVFS_K_ENTRY, 0);
	err = kvfs_scan(fs, lo, llen, hi, hlen, count_inode, &n);
	if (err)
		return err;
	atomic_store(&fs->inodes_used, (int64_t)n);
	if (fs->read_only)
		return 0;
	err = kv_batch_create(&b);
	if (err)
		return err;
	llen = kvfs_key_prefix(lo, KVFS_K_ORPHAN, 0);
	hi[0] = KVFS_K_ORPHAN + 1;
	err = kvfs_scan(fs, lo, llen, hi, 1, collect_orphan, b);
	if (!err && kv_batch_count(b))
		err = kv_write(fs->db, NULL, b);
	kv_batch_destroy(b);
	return err;
}

/* kv_open's errors in words. */
static int open_store(const char *store, struct kv_options *ko, struct kv_db **db, char *err,
		      size_t errlen)
{
	int e = kv_open(store, ko, db);

	switch (e) {
	case 0:
		break;
	case -ENOENT:
		kvfs_errf(err, errlen, "%s: no kvfs store here (make one with mkfs.kvfs)", store);
		break;
	case -ENOTDIR:
		kvfs_errf(err, errlen, "%s: not a directory", store);
		break;
	case -EMEDIUMTYPE:
		kvfs_errf(err, errlen, "%s: not a kvfs store (the directory holds something else)",
			  store);
		break;
	case -EBUSY:
		kvfs_errf(err, errlen, "%s: the store is in use (already mounted, or open in fsck)",
			  store);
		break;
	case -EPROTONOSUPPORT:
		kvfs_errf(err, errlen, "%s: the store has a newer format than this kvfs supports",
			  store);
		break;
	case -EUCLEAN:
	case -EBADMSG:
		kvfs_errf(err, errlen, "%s: the store is corrupt (run fsck.kvfs)", store);
		break;
	default:
		kvfs_errf(err, errlen, "%s: cannot open the store: %s", store, strerror(-e));
	}
	return e;
}

static int read_super(struct kvfs *fs, char *err, size_t errlen)
{
	uint8_t key[KVFS_KEY_MAX], val[KVFS_SUPER_SIZE + 1];
	ssize_t n = kv_get(fs->db, 0, key, kvfs_key_super(key), val, sizeof(val));
	int e;

	if (n == -ENOENT) {
		kvfs_errf(err, errlen,
			  "%s: a libkv store without a kvfs superblock: not a kvfs store",
			  fs->store);
		return -EMEDIUMTYPE;
	}
	if (n < 0) {
		kvfs_errf(err, errlen, "%s: cannot read the superblock: %s", fs->store,
			  strerror((int)-n));
		return (int)n;
	}
	e = kvfs_super_decode(val, (size_t)n, &fs->sb);
	if (e == -EMEDIUMTYPE)
		kvfs_errf(err, errlen, "%s: the superblock has no kvfs magic: not a kvfs store",
			  fs->store);
	else if (e == -EPROTONOSUPPORT)
		kvfs_errf(err, errlen,
			  "%s: kvfs format version %u (features %#llx) is newer than this kvfs "
			  "(version %u)",
			  fs->store, fs->sb.version, (unsigned long long)fs->sb.features,
			  KVFS_FORMAT_VERSION);
	else if (e)
		kvfs_errf(err, errlen, "%s: the superblock is corrupt (%zd bytes; run fsck.kvfs)",
			  fs->store, n);
	return e;
}

static void fs_free(struct kvfs *fs)
{
	for (size_t i = 0; fs->nodes && i < (size_t)1 << fs->nodes_bits; i++) {
		while (fs->nodes[i]) {
			struct kvfs_node *n = fs->nodes[i];

			fs->nodes[i] = n->next;
			free(n);
		}
	}
	free(fs->nodes);
	for (unsigned i = 0; i < KVFS_LOCK_STRIPES; i++)
		pthread_mutex_destroy(&fs->stripes[i]);
	pthread_mutex_destroy(&fs->alloc_lock);
	pthread_mutex_destroy(&fs->nodes_lock);
	pthread_mutex_destroy(&fs->rename_lock);
	free(fs->store);
	free(fs);
}

int kvfs_open(const char *store, const struct kvfs_options *o, struct kvfs **out, char *err,
	      size_t errlen)
{
	struct kvfs_options defaults;
	struct kv_options ko;
	struct kvfs_inode root;
	struct kvfs *fs;
	int e;

	if (!o) {
		kvfs_options_init(&defaults);
		o = &defaults;
	}
	fs = calloc(1, sizeof(*fs));
	if (fs) {
		fs->nodes_bits = KVFS_NODE_BITS;
		fs->nodes = calloc((size_t)1 << KVFS_NODE_BITS, sizeof(*fs->nodes));
	}
	if (!fs || !fs->nodes || !(fs->store = strdup(store))) {
		if (fs)
			free(fs->nodes);
		free(fs);
		kvfs_errf(err, errlen, "%s: out of memory", store);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < KVFS_LOCK_STRIPES; i++)
		pthread_mutex_init(&fs->stripes[i], NULL);
	pthread_mutex_init(&fs->alloc_lock, NULL);
	pthread_mutex_init(&fs->nodes_lock, NULL);
	pthread_mutex_init(&fs->rename_lock, NULL);
	fs->durability = o->durability;
	fs->read_only = o->read_only;
	fs->log = o->log;
	fs->log_ctx = o->log_ctx;

	kv_options_init(&ko);
	ko.durability = o->durability == KVFS_DUR_SYNC ? KV_DUR_SYNC : KV_DUR_BATCH;
	if (o->block_cache_size)
		ko.block_cache_size = o->block_cache_size;
	if (o->log_buffer_size)
		ko.log_buffer_size = o->log_buffer_size;
	ko.log = engine_log;
	ko.log_ctx = fs;
	ko.env = o->env;
	e = open_store(store, &ko, &fs->db, err, errlen);
	if (e) {
		fs_free(fs);
		return e;
	}
	e = read_super(fs, err, errlen);
	if (!e) {
		fs->block_size = fs->sb.block_size;
		fs->inline_max = fs->sb.inline_max;
		fs->ino_next = fs->ino_reserved = fs->sb.ino_next;
		e = kvfs_inode_read(fs, KVFS_ROOT_INO, &root, NULL, 0, NULL);
		if (e == -ENOENT || (!e && !S_ISDIR(root.mode))) {
			kvfs_errf(err, errlen, "%s: the root directory is missing (run fsck.kvfs)",
				  store);
			e = -EUCLEAN;
		} else if (e) {
			kvfs_errf(err, errlen, "%s: cannot read the root directory: %s", store,
				  strerror(-e));
		}
	}
	if (!e) {
		e = mount_scan(fs);
		if (e)
			kvfs_errf(err, errlen, "%s: cannot scan inodes and orphans: %s", store,
				  strerror(-e));
	}
	if (e) {
		kv_close(fs->db);
		fs_free(fs);
		return e;
	}
	*out = fs;
	return 0;
}

int kvfs_sync(struct kvfs *fs)
{
	return kv_sync(fs->db);
}

int kvfs_close(struct kvfs *fs)
{
	int err = kv_sync(fs->db), e2 = kv_close(fs->db);

	fs_free(fs);
	return err ? err : e2;
}

void kvfs_info(struct kvfs *fs, struct kvfs_info *out)
{
	memset(out, 0, sizeof(*out));
	out->block_size = fs->block_size;
	out->inline_max = fs->inline_max;
	out->format_version = fs->sb.version;
	memcpy(out->label, fs->sb.label, sizeof(out->label));
	memcpy(out->uuid, fs->sb.uuid, sizeof(out->uuid));
}
