/* SPDX-License-Identifier: MIT */
/*
 * env_fault.c - a fault-injecting env for tests: wraps a base env, fails
 * calls by rule, and remembers everything not yet durable so that
 * kv_fault_env_power_cut() can put the files back the way a power cut
 * would leave them (LevelDB's FaultInjectionTestEnv, made path-aware).
 *
 * Rules (struct kv_fault_rules; every kv_fault_env_set_rules() restarts their
 * counters, and a power cut turns them all off: it is a reboot, the process
 * that "crashed" is gone):
 *   crash_after_ops     every entry point counts one call, write_durable
 *                       counts as the pwrites and the sync it is made of;
 *                       the first call after N fails with -EIO and so does
 *                       every later one ("the process died here"). close
 *                       still closes, so a test can abandon the db.
 *   fail_sync_after     sync, sync_dir and write_durable's sync count; the
 *                       Nth fails with -EIO without reaching the base env,
 *                       and so does every later one.
 *   enospc_after_bytes  a budget of written bytes: the write that crosses it
 *                       writes what fits and returns that count; with the
 *                       budget spent, writes return -ENOSPC.
 *   short_writes        each pwrite writes at most half (at least 1 byte).
 *
 * The model of durability (what a power cut keeps):
 *   - a file's bytes and size as of its last sync (fsync or fdatasync);
 *   - a directory's entries as of its last sync_dir: creates, renames and
 *     unlinks are durable once the parent of the (new) name is synced. A
 *     rename across directories is durable when the target's directory is.
 * Unsynced state is kept in two kinds of records:
 *
 *   struct fault_undo   per file (struct fault_node, found by path), newest
 *                       first: one per pwrite or truncate, holding (offset,
 *                       bytes written, old bytes of the range, old size),
 *                       captured through the base env before the change.
 *                       A sync of the file frees the node's list.
 *   struct fault_ns     per env, newest first: one per create, unlink or
 *                       rename, holding paths and, for unlink and for a
 *                       rename over an existing file, that file's durable
 *                       bytes (current bytes with its undo list applied in
 *                       memory). sync_dir(D) frees the records whose dir is D.
 *
 * Nodes follow renames (their undo list belongs to the inode, not the
 * name); an unlinked or replaced file's node is detached (path NULL, list
 * freed: its durable bytes now live in the fault_ns record) and lives on
 * only while open.
 *
 * Power cut, in this order:
 *   1. each node with an undo list: open it through the base env and apply
 *      the list newest first (write the old bytes back, truncate to the old
 *      size). With a torn seed, first read a seeded random half of the
 *      512-byte sectors the list wrote, and write those back afterwards: a
 *      later sector can survive while an earlier one is lost;
 *   2. the fault_ns records, newest first: remove a created file, recreate
 *      an unlinked one from its durable bytes, rename a renamed one back and
 *      recreate the file it replaced.
 * Undoing content before names is right because nodes live at their current
 * names; undoing names newest first replays history backwards, so every
 * record meets the namespace it was made in.
 *
 * kv_fault_env_freeze is the same restore with files still open, for a live
 * process that then exits at once (the kvfs daemon's power-cut test hook):
 * it first marks the env frozen, and every later call fails with -EIO, so
 * nothing the process does after the instant of the cut can become durable.
 *
 * Paths are compared lexically after normalization ("a//b/./c/" is "a/b/c");
 * symlinks and ".." are not resolved, so the engine must name a directory
 * the same way in sync_dir as in the paths of the files in it.
 *
 * Not modelled: mkdir is never undone (the env has no rmdir); an unlinked
 * file that comes back gets mode 0644; writes to a file after it was
 * unlinked are lost even if synced.
 *
 * Locking: one mutex, fe->mu, guards every field marked [mu] or [fe->mu]
 * and every record reachable from them. It is held
 * across the base call of every op that changes state (open, close, pwrite,
 * truncate, sync, rename, unlink, sync_dir), so a capture and its change are
 * atomic with respect to a sync or a power cut. This breaks house rule 5 (no
 * lock across I/O) on purpose: the env is test-only and serializing is the
 * simple way to be right. Ops without bookkeeping (pread, size, lock, mkdir,
 * list_dir, exists) take it only to apply the rules, never across the call;
 * list_dir's callback may therefore call back into the env.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"

#define SECTOR 512u

struct fault_undo {
	struct fault_undo *older;
	uint64_t off;	   /* first byte changed */
	uint64_t new_len;  /* bytes written at off; 0 for a truncate */
	uint64_t old_size; /* file size before the change */
	size_t old_len;	   /* old bytes of [off, ...) that existed */
	unsigned char old[];
};

struct fault_node {
	struct fault_node *next; /* [fe->mu] fe->nodes, if attached */
	char *path;		 /* [fe->mu] normalized name; NULL: detached */
	struct fault_undo *undo; /* [fe->mu] newest first */
	int nopen;		 /* [fe->mu] open fault_files */
};

enum fault_ns_kind { FAULT_NS_CREATE, FAULT_NS_UNLINK, FAULT_NS_RENAME };
enum fault_saved { SAVED_NONE, SAVED_FILE, SAVED_DIR };

struct fault_ns {
	struct fault_ns *older;
	enum fault_ns_kind kind;
	char *path;		     /* created, unlinked or renamed-to name */
	char *from;		     /* rename source */
	char *dir;		     /* sync_dir(dir) makes this durable */
	enum fault_saved saved_kind; /* what was at path before */
	void *saved;		     /* its durable bytes (SAVED_FILE) */
	size_t saved_len;
};

struct fault_file {
	struct kv_file base;	 /* base.env = &fe->env */
	struct kv_file *inner;	 /* [immutable] the base env's file */
	struct fault_node *node; /* [immutable] */
};

struct kv_fault_env {
	struct kv_env env;	     /* [immutable] */
	struct kv_env *base;	     /* [immutable] */
	pthread_mutex_t mu;	     /* the only lock; never held by a caller */
	struct kv_fault_rules rules; /* [mu] */
	int64_t syncs_left;	     /* [mu] fail_sync_after countdown */
	int64_t bytes_left;	     /* [mu] enospc budget */
	int64_t ops_left;	     /* [mu] crash_after_ops countdown */
	int sync_failed;	     /* [mu] every sync fails from now on */
	int crashed;		     /* [mu] every call fails from now on */
	int frozen;		     /* [mu] kv_fault_env_freeze: likewise, until
				      * the next kv_fault_env_power_cut */
	int open_files;		     /* [mu] fault_files not yet closed */
	struct fault_node *nodes;    /* [mu] attached nodes */
	struct fault_ns *ns;	     /* [mu] newest first */
};

static struct kv_fault_env *fault_env_of(struct kv_env *env)
{
	return (struct kv_fault_env *)((char *)env - offsetof(struct kv_fault_env, env));
}

static struct fault_file *fault_file_of(struct kv_file *f)
{
	return (struct fault_file *)f; /* base is the first member */
}

/* ---- paths ------------------------------------------------------------- */

/* @path without "//", "/./" or a trailing "/"; "." if nothing is left. */
static char *path_norm(const char *path)
{
	size_t n = 0, seg;
	char *out = malloc(strlen(path) + 2);
	const char *p = path;

	if (!out)
		return NULL;
	if (*p == '/')
		out[n++] = '/';
	while (*p) {
		while (*p == '/')
			p++;
		seg = strcspn(p, "/");
		if (seg == 0 || (seg == 1 && p[0] == '.')) {
			p += seg;
			continue;
		}
		if (n > 0 && out[n - 1] != '/')
			out[n++] = '/';
		memcpy(out + n, p, seg);
		n += seg;
		p += seg;
	}
	if (n == 0)
		out[n++] = '.';
	out[n] = '\0';
	return out;
}

/* The parent of a normalized path. */
static char *path_parent(const char *norm)
{
	const char *slash = strrchr(norm, '/');

	if (!slash)
		return strdup(".");
	if (slash == norm)
		return strdup("/");
	return strndup(norm, (size_t)(slash - norm));
}

/* @path is @dir or below it. */
static int path_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return !strncmp(path, dir, n) && (path[n] == '\0' || path[n] == '/');
}

/* ---- rules (fe->mu held) ---------------------------------------------- */

static int rule_call(struct kv_fault_env *fe)
{
	if (fe->crashed || fe->frozen)
		return -EIO;
	if (fe->rules.crash_after_ops > 0) {
		if (fe->ops_left == 0) {
			fe->crashed = 1;
			return -EIO;
		}
		fe->ops_left--;
	}
	return 0;
}

static int rule_sync(struct kv_fault_env *fe)
{
	int ret = rule_call(fe);

	if (ret)
		return ret;
	if (fe->sync_failed)
		return -EIO;
	if (fe->rules.fail_sync_after > 0 && --fe->syncs_left == 0) {
		fe->sync_failed = 1;
		return -EIO;
	}
	return 0;
}

/* How many of @len bytes this pwrite may write: > 0, or -ENOSPC. */
static ssize_t rule_write_len(struct kv_fault_env *fe, size_t len)
{
	size_t n = len;

	if (fe->rules.short_writes && n > 1)
		n /= 2;
	if (fe->rules.enospc_after_bytes > 0) {
		if (fe->bytes_left <= 0)
			return -ENOSPC;
		if (n > (uint64_t)fe->bytes_left)
			n = (size_t)fe->bytes_left;
	}
	return (ssize_t)n;
}

static int rule_call_unlocked(struct kv_fault_env *fe)
{
	int ret;

	pthread_mutex_lock(&fe->mu);
	ret = rule_call(fe);
	pthread_mutex_unlock(&fe->mu);
	return ret;
}

/* ---- nodes and records (fe->mu held) ------------------------------------ */

static void undo_free(struct fault_undo *u)
{
	struct fault_undo *older;

	for (; u; u = older) {
		older = u->older;
		free(u);
	}
}

static void ns_free(struct fault_ns *e)
{
	if (!e)
		return;
	free(e->path);
	free(e->from);
	free(e->dir);
	free(e->saved);
	free(e);
}

static struct fault_node *node_find(struct kv_fault_env *fe, const char *norm)
{
	struct fault_node *n;

	for (n = fe->nodes; n; n = n->next)
		if (!strcmp(n->path, norm))
			return n;
	return NULL;
}

static void node_unlink(struct kv_fault_env *fe, struct fault_node *node)
{
	struct fault_node **pp;

	for (pp = &fe->nodes; *pp; pp = &(*pp)->next) {
		if (*pp == node) {
			*pp = node->next;
			return;
		}
	}
}

static void node_free(struct fault_node *node)
{
	undo_free(node->undo);
	free(node->path);
	free(node);
}

/* Free @node if nothing needs it any more: not open and nothing to undo. */
static void node_release(struct kv_fault_env *fe, struct fault_node *node)
{
	if (node->nopen > 0 || (node->path && node->undo))
		return;
	if (node->path)
		node_unlink(fe, node);
	node_free(node);
}

/* The file at @norm is gone (unlinked or replaced): its records go too. */
static void node_detach(struct kv_fault_env *fe, const char *norm)
{
	struct fault_node *node = node_find(fe, norm);

	if (!node)
		return;
	node_unlink(fe, node);
	free(node->path);
	node->path = NULL;
	undo_free(node->undo);
	node->undo = NULL;
	node_release(fe, node);
}

/* Apply an undo list (newest first) to an in-memory file image. */
static int undo_apply_mem(const struct fault_undo *u, unsigned char **buf, size_t *len)
{
	unsigned char *p;
	size_t need;

	for (; u; u = u->older) {
		need = (size_t)u->old_size;
		if (need > *len) {
			p = realloc(*buf, need ? need : 1);
			if (!p)
				return -ENOMEM;
			memset(p + *len, 0, need - *len);
			*buf = p;
		}
		if (u->old_len)
			memcpy(*buf + u->off, u->old, u->old_len);
		*len = need;
	}
	return 0;
}

/* What a power cut would leave of the file at @norm, read through the base. */
static int durable_image(struct kv_fault_env *fe, const char *norm, void **buf, size_t *len)
{
	struct fault_node *node = node_find(fe, norm);
	int ret;

	ret = kv_env_read_file(fe->base, norm, SIZE_MAX, buf, len);
	if (ret || !node)
		return ret;
	ret = undo_apply_mem(node->undo, (unsigned char **)buf, len);
	if (ret) {
		free(*buf);
		*buf = NULL;
	}
	return ret;
}

/* A namespace record with its paths, before the change is made. */
static struct fault_ns *ns_new(enum fault_ns_kind kind, const char *path, const char *from)
{
	struct fault_ns *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->kind = kind;
	e->path = path_norm(path);
	e->dir = e->path ? path_parent(e->path) : NULL;
	e->from = from ? path_norm(from) : NULL;
	if (!e->path || !e->dir || (from && !e->from)) {
		ns_free(e);
		return NULL;
	}
	return e;
}

static void ns_push(struct kv_fault_env *fe, struct fault_ns *e)
{
	e->older = fe->ns;
	fe->ns = e;
}

/* ---- file ops ---------------------------------------------------------- */

/* The undo record of truncating the file at @path to zero (O_TRUNC). */
static int capture_trunc(struct kv_fault_env *fe, const char *path, struct fault_undo **out)
{
	struct fault_undo *u;
	void *buf;
	size_t len;
	int ret;

	ret = kv_env_read_file(fe->base, path, SIZE_MAX, &buf, &len);
	if (ret)
		return ret;
	u = malloc(sizeof(*u) + len);
	if (u) {
		*u = (struct fault_undo){ .old_size = len, .old_len = len };
		memcpy(u->old, buf, len);
	}
	free(buf);
	*out = u;
	return u ? 0 : -ENOMEM;
}

/* Everything fault_open() needs that can fail, made before the open. */
struct open_prep {
	char *norm;
	struct fault_file *ff;
	struct fault_node *node;  /* spare, if the path has none */
	struct fault_ns *create;  /* if O_CREAT makes a new file */
	struct fault_undo *trunc; /* if O_TRUNC empties a file */
};

static int open_prepare(struct kv_fault_env *fe, const char *path, int flags, struct open_prep *p)
{
	int exists;

	p->norm = path_norm(path);
	p->ff = calloc(1, sizeof(*p->ff));
	p->node = calloc(1, sizeof(*p->node));
	if (!p->norm || !p->ff || !p->node)
		return -ENOMEM;
	exists = fe->base->ops->exists(fe->base, path, NULL) == 0;
	if (!exists && (flags & O_CREAT)) {
		p->create = ns_new(FAULT_NS_CREATE, path, NULL);
		if (!p->create)
			return -ENOMEM;
	}
	if (exists && (flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY)
		return capture_trunc(fe, path, &p->trunc);
	return 0;
}

static int fault_open(struct kv_env *env, const char *path, int flags, mode_t mode,
		      struct kv_file **out)
{
	struct kv_fault_env *fe = fault_env_of(env);
	struct open_prep p = { 0 };
	struct fault_node *node;
	int ret;

	pthread_mutex_lock(&fe->mu);
	ret = rule_call(fe);
	if (!ret)
		ret = open_prepare(fe, path, flags, &p);
	if (!ret)
		ret = fe->base->ops->open(fe->base, path, flags, mode, &p.ff->inner);
	if (ret)
		goto out;
	node = node_find(fe, p.norm);
	if (!node) {
		node = p.node;
		p.node = NULL;
		node->path = p.norm;
		p.norm = NULL;
		node->next = fe->nodes;
		fe->nodes = node;
	}
	if (p.create)
		ns_push(fe, p.create);
	p.create = NULL;
	if (p.trunc) {
		p.trunc->older = node->undo;
		node->undo = p.trunc;
		p.trunc = NULL;
	}
	node->nopen++;
	fe->open_files++;
	p.ff->base.env = env;
	p.ff->node = node;
	*out = &p.ff->base;
	p.ff = NULL;
out:
	pthread_mutex_unlock(&fe->mu);
	free(p.norm);
	free(p.ff);
	free(p.node);
	ns_free(p.create);
	free(p.trunc);
	return ret;
}

static int fault_close(struct kv_file *f)
{
	struct fault_file *ff = fault_file_of(f);
	struct kv_fault_env *fe = fault_env_of(f->env);
	int ret, ret2;

	pthread_mutex_lock(&fe->mu);
	ret = rule_call(fe); /* counted, but the file is closed regardless */
	ret2 = ff->inner->env->ops->close(ff->inner);
	ff->node->nopen--;
	node_release(fe, ff->node);
	fe->open_files--;
	pthread_mutex_unlock(&fe->mu);
	free(ff);
	return ret ? ret : ret2;
}

static ssize_t fault_pread(struct kv_file *f, void *buf, size_t len, uint64_t off)
{
	struct fault_file *ff = fault_file_of(f);
	int ret = rule_call_unlocked(fault_env_of(f->env));

	if (ret)
		return ret;
	return ff->inner->env->ops->pread(ff->inner, buf, len, off);
}

/* The undo record of changing [off, off + len) of @inner. */
static int capture_range(struct kv_file *inner, uint64_t off, uint64_t len, struct fault_undo **out)
{
	struct fault_undo *u;
	uint64_t size, old_len = 0;
	int ret;

	ret = inner->env->ops->size(inner, &size);
	if (ret)
		return ret;
	if (off < size)
		old_len = (len < size - off ? len : size - off);
	u = malloc(sizeof(*u) + old_len);
	if (!u)
		return -ENOMEM;
	*u = (struct fault_undo){ .off = off,
				  .new_len = len,
				  .old_size = size,
				  .old_len = (size_t)old_len };
	ret = kv_env_read_all(inner, u->old, (size_t)old_len, off);
	if (ret) {
		free(u);
		return ret;
	}
	*out = u;
	return 0;
}

static ssize_t fault_pwrite(struct kv_file *f, const void *buf, size_t len, uint64_t off)
{
	struct fault_file *ff = fault_file_of(f);
	struct kv_fault_env *fe = fault_env_of(f->env);
	struct fault_undo *u = NULL;
	ssize_t n;
	int ret;

	if (len == 0)
		return rule_call_unlocked(fe);
	pthread_mutex_lock(&fe->mu);
	n = rule_call(fe);
	if (!n)
		n = rule_write_len(fe, len);
	if (n > 0 && ff->node->path) {
		ret = capture_range(ff->inner, off, (uint64_t)n, &u);
		if (ret)
			n = ret;
	}
	if (n > 0)
		n = ff->inner->env->ops->pwrite(ff->inner, buf, (size_t)n, off);
	if (n > 0) {
		if (fe->rules.enospc_after_bytes > 0)
			fe->bytes_left -= n;
		if (u) {
			u->new_len = (uint64_t)n;
			u->older = ff->node->undo;
			ff->node->undo = u;
			u = NULL;
		}
	}
	pthread_mutex_unlock(&fe->mu);
	free(u);
	return n;
}

static int fault_sync(struct kv_file *f, int datasync)
{
	struct fault_file *ff = fault_file_of(f);
	struct kv_fault_env *fe = fault_env_of(f->env);
	int ret;

	pthread_mutex_lock(&fe->mu);
	ret = rule_sync(fe);
	if (!ret)
		ret = ff->inner->env->ops->sync(ff->inner, datasync);
	if (!ret) {
		undo_free(ff->node->undo);
		ff->node->undo = NULL;
	}
	pthread_mutex_unlock(&fe->mu);
	return ret;
}

/* The pwrites and the sync go through the rules one by one, as the engine's
 * own calls would. */
static int fault_write_durable(struct kv_file *f, const void *buf, size_t len, uint64_t off)
{
	int ret = kv_env_write_all(f, buf, len, off);

	return ret ? ret : fault_sync(f, 1);
}

static int fault_size(struct kv_file *f, uint64_t *size)
{
	struct fault_file *ff = fault_file_of(f);
	int ret = rule_call_unlocked(fault_env_of(f->env));

	return ret ? ret : ff->inner->env->ops->size(ff->inner, size);
}

static int fault_truncate(struct kv_file *f, uint64_t size)
{
	struct fault_file *ff = fault_file_of(f);
	struct kv_fault_env *fe = fault_env_of(f->env);
	struct fault_undo *u = NULL;
	uint64_t cur;
	int ret;

	pthread_mutex_lock(&fe->mu);
	ret = rule_call(fe);
	if (!ret && ff->node->path) {
		ret = ff->inner->env->ops->size(ff->inner, &cur);
		if (!ret)
			ret = capture_range(ff->inner, size, cur > size ? cur - size : 0, &u);
	}
	if (!ret)
		ret = ff->inner->env->ops->truncate(ff->inner, size);
	if (!ret && u) {
		u->new_len = 0;
		u->older = ff->node->undo;
		ff->node->undo = u;
		u = NULL;
	}
	pthread_mutex_unlock(&fe->mu);
	free(u);
	return ret;
}

static int fault_lock(struct kv_file *f)
{
	struct fault_file *ff = fault_file_of(f);
	int ret = rule_call_unlocked(fault_env_of(f->env));

	return ret ? ret : ff->inner->env->ops->lock(ff->inner);
}

/* ---- namespace ops ----------------------------------------------------- */

/* Remember what sits at @e->path before a rename replaces it. */
static int save_target(struct kv_fault_env *fe, struct fault_ns *e)
{
	int is_dir, ret;

	ret = fe->base->ops->exists(fe->base, e->path, &is_dir);
	if (ret == -ENOENT)
		return 0;
	if (ret)
		return ret;
	if (is_dir) {
		e->saved_kind = SAVED_DIR;
		return 0;
	}
	e->saved_kind = SAVED_FILE;
	return durable_image(fe, e->path, &e->saved, &e->saved_len);
}

/* Nodes at or below @from now live at or below @to. */
static int nodes_rename(struct kv_fault_env *fe, const char *from, const char *to)
{
	size_t nf = strlen(from), nt = strlen(to);
	struct fault_node *n;
	char *p;

	for (n = fe->nodes; n; n = n->next) {
		if (!path_under(n->path, from))
			continue;
		p = malloc(nt + strlen(n->path + nf) + 1);
		if (!p)
			return -ENOMEM;
		memcpy(p, to, nt);
		strcpy(p + nt, n->path + nf);
		free(n->path);
		n->path = p;
	}
	return 0;
}

static int fault_rename(struct kv_env *env, const char *from, const char *to)
{
	struct kv_fault_env *fe = fault_env_of(env);
	struct fault_ns *e;
	int ret;

	e = ns_new(FAULT_NS_RENAME, to, from);
	if (!e)
		return -ENOMEM;
	pthread_mutex_lock(&fe->mu);
	ret = rule_call(fe);
	if (ret)
		goto out;
	if (!strcmp(e->from, e->path)) { /* a no-op rename changes nothing */
		ret = fe->base->ops->rename(fe->base, from, to);
		goto out;
	}
	ret = save_target(fe, e);
	if (!ret)
		ret = fe->base->ops->rename(fe->base, from, to);
	if (ret)
		goto out;
	node_detach(fe, e->path);
	ret = nodes_rename(fe, e->from, e->path);
	ns_push(fe, e);
	e = NULL;
out:
	pthread_mutex_unlock(&fe->mu);
	ns_free(e);
	return ret;
}

static int fault_unlink(struct kv_env *env, const char *path)
{
	struct kv_fault_env *fe = fault_env_of(env);
	struct fault_ns *e;
	int is_dir = 0, ret;

	e = ns_new(FAULT_NS_UNLINK, path, NULL);
	if (!e)
		return -ENOMEM;
	pthread_mutex_lock(&fe->mu);
	ret = rule_call(fe);
	if (!ret)
		ret = fe->base->ops->exists(fe->base, path, &is_dir);
	if (!ret && !is_dir) {
		e->saved_kind = SAVED_FILE;
		ret = durable_image(fe, e->path, &e->saved, &e->saved_len);
	}
	if (!ret)
		ret = fe->base->ops->unlink(fe->base, path);
	if (!ret) {
		node_detach(fe, e->path);
		ns_push(fe, e);
		e = NULL;
	}
	pthread_mutex_unlock(&fe->mu);
	ns_free(e);
	return ret;
}

static int fault_mkdir(struct kv_env *env, const char *path, mode_t mode)
{
	struct kv_fault_env *fe = fault_env_of(env);
	int ret = rule_call_unlocked(fe);

	return ret ? ret : fe->base->ops->mkdir(fe->base, path, mode);
}

static int fault_sync_dir(struct kv_env *env, const char *path)
{
	struct kv_fault_env *fe = fault_env_of(env);
	struct fault_ns **pp, *e;
	char *norm = path_norm(path);
	int ret;

	if (!norm)
		return -ENOMEM;
	pthread_mutex_lock(&fe->mu);
	ret = rule_sync(fe);
	if (!ret)
		ret = fe->base->ops->sync_dir(fe->base, path);
	for (pp = &fe->ns; !ret && *pp;) {
		e = *pp;
		if (strcmp(e->dir, norm)) {
			pp = &e->older;
			continue;
		}
		*pp = e->older;
		ns_free(e);
	}
	pthread_mutex_unlock(&fe->mu);
	free(norm);
	return ret;
}

static int fault_list_dir(struct kv_env *env, const char *path,
			  int (*cb)(void *arg, const char *name), void *arg)
{
	struct kv_fault_env *fe = fault_env_of(env);
	int ret = rule_call_unlocked(fe);

	return ret ? ret : fe->base->ops->list_dir(fe->base, path, cb, arg);
}

static int fault_exists(struct kv_env *env, const char *path, int *is_dir)
{
	struct kv_fault_env *fe = fault_env_of(env);
	int ret = rule_call_unlocked(fe);

	return ret ? ret : fe->base->ops->exists(fe->base, path, is_dir);
}

static const struct kv_env_ops fault_ops = {
	.open = fault_open,
	.close = fault_close,
	.pread = fault_pread,
	.pwrite = fault_pwrite,
	.sync = fault_sync,
	.write_durable = fault_write_durable,
	.size = fault_size,
	.truncate = fault_truncate,
	.lock = fault_lock,
	.rename = fault_rename,
	.unlink = fault_unlink,
	.mkdir = fault_mkdir,
	.sync_dir = fault_sync_dir,
	.list_dir = fault_list_dir,
	.exists = fault_exists,
};

/* ---- power cut --------------------------------------------------------- */

/* One sector a torn power cut keeps: its bytes as they were before the cut. */
struct torn_sector {
	uint64_t off;
	size_t len;
	unsigned char data[SECTOR];
};

struct torn_set {
	struct torn_sector *v;
	size_t n, cap;
};

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A per-file random stream: the seed mixed with the path (FNV-1a), so the
 * choice for one file does not depend on which other files were written. */
static uint64_t torn_stream(uint64_t seed, const char *path)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *path; path++)
		h = (h ^ (unsigned char)*path) * 0x100000001b3ull;
	return seed ^ h;
}

/* Read sector @s of @f (as far as the file goes) into @t, if it survives. */
static int torn_keep(struct kv_file *f, uint64_t s, uint64_t size, struct torn_set *t)
{
	struct torn_sector *v;
	uint64_t off = s * SECTOR;
	int ret;

	if (off >= size)
		return 0;
	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 16;
		v = realloc(t->v, t->cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		t->v = v;
	}
	v = &t->v[t->n];
	v->off = off;
	v->len = size - off < SECTOR ? (size_t)(size - off) : SECTOR;
	ret = kv_env_read_all(f, v->data, v->len, off);
	if (!ret)
		t->n++;
	return ret;
}

static int range_cmp(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;

	return x[0] < y[0] ? -1 : x[0] > y[0];
}

/*
 * Choose the surviving sectors among those @undo wrote: each sector written
 * (counted once however often it was written) survives with probability 1/2.
 */
static int torn_choose(struct kv_file *f, const struct fault_node *node, uint64_t seed,
		       struct torn_set *t)
{
	const struct fault_undo *u;
	uint64_t(*r)[2], rng = torn_stream(seed, node->path), size, s = 0;
	size_t n = 0, i;
	int ret;

	for (u = node->undo; u; u = u->older)
		n++;
	r = calloc(n ? n : 1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	n = 0;
	for (u = node->undo; u; u = u->older) {
		if (!u->new_len)
			continue;
		r[n][0] = u->off / SECTOR;
		r[n++][1] = (u->off + u->new_len + SECTOR - 1) / SECTOR;
	}
	qsort(r, n, sizeof(*r), range_cmp);
	ret = f->env->ops->size(f, &size);
	for (i = 0; !ret && i < n; i++) {
		for (s = s > r[i][0] ? s : r[i][0]; !ret && s < r[i][1]; s++)
			if (splitmix64(&rng) & 1)
				ret = torn_keep(f, s, size, t);
	}
	free(r);
	return ret;
}

/* Put one file back to its durable state (plus torn survivors). */
static int node_restore(struct kv_fault_env *fe, struct fault_node *node, uint64_t seed)
{
	struct torn_set t = { 0 };
	struct fault_undo *u;
	struct kv_file *f;
	size_t i;
	int ret;

	ret = fe->base->ops->open(fe->base, node->path, O_RDWR, 0, &f);
	if (ret)
		return ret == -ENOENT ? 0 : ret;
	if (seed)
		ret = torn_choose(f, node, seed, &t);
	for (u = node->undo; !ret && u; u = u->older) {
		ret = kv_env_write_all(f, u->old, u->old_len, u->off);
		if (!ret)
			ret = f->env->ops->truncate(f, u->old_size);
	}
	for (i = 0; !ret && i < t.n; i++)
		ret = kv_env_write_all(f, t.v[i].data, t.v[i].len, t.v[i].off);
	free(t.v);
	f->env->ops->close(f);
	return ret;
}

/* Recreate a file at @path holding @buf. */
static int restore_file(struct kv_fault_env *fe, const char *path, const void *buf, size_t len)
{
	struct kv_file *f;
	int ret, ret2;

	ret = fe->base->ops->open(fe->base, path, O_RDWR | O_CREAT | O_TRUNC, 0644, &f);
	if (ret)
		return ret;
	ret = kv_env_write_all(f, buf, len, 0);
	ret2 = f->env->ops->close(f);
	return ret ? ret : ret2;
}

static int ns_undo(struct kv_fault_env *fe, const struct fault_ns *e)
{
	struct kv_env *b = fe->base;
	int ret = 0;

	switch (e->kind) {
	case FAULT_NS_CREATE:
		ret = b->ops->unlink(b, e->path);
		break;
	case FAULT_NS_UNLINK:
		ret = restore_file(fe, e->path, e->saved, e->saved_len);
		break;
	case FAULT_NS_RENAME:
		ret = b->ops->rename(b, e->path, e->from);
		if (ret)
			break;
		if (e->saved_kind == SAVED_FILE)
			ret = restore_file(fe, e->path, e->saved, e->saved_len);
		else if (e->saved_kind == SAVED_DIR)
			ret = b->ops->mkdir(b, e->path, 0755);
		break;
	}
	return ret == -ENOENT ? 0 : ret;
}

/* Forget every record; keep only nodes of open files (fe->mu held). */
static void forget_all(struct kv_fault_env *fe)
{
	struct fault_node *n, *next;
	struct fault_ns *e, *older;

	for (e = fe->ns; e; e = older) {
		older = e->older;
		ns_free(e);
	}
	fe->ns = NULL;
	for (n = fe->nodes; n; n = next) {
		next = n->next;
		undo_free(n->undo);
		n->undo = NULL;
		node_release(fe, n);
	}
}

/* Put every file back to its durable state and forget the records (fe->mu
 * held). Files still open keep their (now empty) nodes. */
static int restore_durable(struct kv_fault_env *fe, uint64_t torn_seed)
{
	struct fault_node *n;
	struct fault_ns *e;
	int ret = 0, err;

	for (n = fe->nodes; n; n = n->next) {
		err = n->undo ? node_restore(fe, n, torn_seed) : 0;
		ret = ret ? ret : err;
	}
	for (e = fe->ns; e; e = e->older) {
		err = ns_undo(fe, e);
		ret = ret ? ret : err;
	}
	forget_all(fe);
	return ret;
}

int kv_fault_env_power_cut(struct kv_fault_env *fe, uint64_t torn_seed)
{
	int ret = -EBUSY;

	pthread_mutex_lock(&fe->mu);
	if (fe->open_files)
		goto out;
	ret = restore_durable(fe, torn_seed);
	/* A power cut is a reboot: the process that crashed is gone. */
	memset(&fe->rules, 0, sizeof(fe->rules));
	fe->sync_failed = 0;
	fe->crashed = 0;
	fe->frozen = 0;
out:
	pthread_mutex_unlock(&fe->mu);
	return ret;
}

/*
 * The power cut of a live process: the calls that hold fe->mu across their
 * base call (every one that changes a file) have finished or not started
 * when we get it; from then on every call fails, so nothing more can become
 * durable, and the files are put back while the engine still has them open
 * (the restore goes through fresh base files, by path).
 */
int kv_fault_env_freeze(struct kv_fault_env *fe, uint64_t torn_seed)
{
	int ret;

	pthread_mutex_lock(&fe->mu);
	fe->frozen = 1;
	ret = restore_durable(fe, torn_seed);
	pthread_mutex_unlock(&fe->mu);
	return ret;
}

void kv_fault_env_settle(struct kv_fault_env *fe)
{
	pthread_mutex_lock(&fe->mu);
	forget_all(fe);
	pthread_mutex_unlock(&fe->mu);
}

/* ---- lifetime and rules ------------------------------------------------ */

int kv_fault_env_create(struct kv_env *base, struct kv_fault_env **out)
{
	struct kv_fault_env *fe;

	*out = NULL;
	if (!base)
		return -EINVAL;
	fe = calloc(1, sizeof(*fe));
	if (!fe)
		return -ENOMEM;
	if (pthread_mutex_init(&fe->mu, NULL)) {
		free(fe);
		return -ENOMEM;
	}
	fe->env.ops = &fault_ops;
	fe->base = base;
	*out = fe;
	return 0;
}

/* All files must be closed. */
void kv_fault_env_destroy(struct kv_fault_env *fe)
{
	if (!fe)
		return;
	pthread_mutex_lock(&fe->mu);
	forget_all(fe);
	pthread_mutex_unlock(&fe->mu);
	pthread_mutex_destroy(&fe->mu);
	free(fe);
}

struct kv_env *kv_fault_env_env(struct kv_fault_env *fe)
{
	return &fe->env;
}

void kv_fault_env_set_rules(struct kv_fault_env *fe, const struct kv_fault_rules *r)
{
	pthread_mutex_lock(&fe->mu);
	fe->rules = *r;
	fe->syncs_left = r->fail_sync_after;
	fe->bytes_left = r->enospc_after_bytes;
	fe->ops_left = r->crash_after_ops;
	fe->sync_failed = 0;
	fe->crashed = 0;
	pthread_mutex_unlock(&fe->mu);
}
