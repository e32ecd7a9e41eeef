/* SPDX-License-Identifier: MIT */
/*
 * check.c - kv_check: verify a closed store, reporting every problem with
 * the file and offset.
 *
 * The walk: take the LOCK (a store in use is not checked: -EBUSY), the
 * identity file, CURRENT and every manifest record (manifest.c), the shape
 * the manifest describes (each table present with its recorded size, each
 * level past 0 sorted and disjoint), every table byte by byte (table_check.c)
 * and every WAL segment not yet flushed (header, and every record up to the
 * end of the log: a torn tail is what a crash leaves, not a problem; a bad
 * record a later epoch proves durable is). Nothing is modified.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"

struct check {
	struct kv_env *env;
	const char *dir;
	kv_check_fn report;
	void *arg;
	int problems;
	const char *cur_file; /* for messages that arrive through the log */
	int quiet;	      /* while re-reading what was already checked */
	struct kv_file_meta *files;
	size_t n, cap;
	uint64_t log_min_seg;
};

static void problem(struct check *c, const char *file, uint64_t off, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void problem(struct check *c, const char *file, uint64_t off, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->problems++;
	if (c->report)
		c->report(c->arg, file, off, msg);
}

static void count_report(void *arg, const char *file, uint64_t off, const char *msg)
{
	struct check *c = arg;

	c->problems++;
	if (c->report)
		c->report(c->arg, file, off, msg);
}

/* Errors logged by the readers become problems of the current file. */
static void log_to_report(void *ctx, enum kv_log_level level, const char *msg)
{
	struct check *c = ctx;

	if (level <= KV_LOG_ERROR && !c->quiet)
		problem(c, c->cur_file, 0, "%s", msg);
}

static char *join(const char *dir, const char *name)
{
	char *p;

	return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

static void check_ident(struct check *c, const struct kv_options *o)
{
	char *path = join(c->dir, KV_IDENT_NAME);
	void *buf = NULL;
	size_t len = 0;
	int err;

	if (!path)
		return;
	c->cur_file = path;
	err = kv_env_read_file(c->env, path, 4096, &buf, &len);
	if (err)
		problem(c, path, 0, "cannot read: %s", strerror(-err));
	else
		kv_ident_check(o, path, buf, len); /* logs = problems */
	free(buf);
	free(path);
}

static int collect_edit(void *arg, const struct kv_vedit *e)
{
	struct check *c = arg;
	size_t out = 0;

	if (e->has_log)
		c->log_min_seg = e->log_min_seg;
	for (size_t i = 0; i < c->n; i++) {
		int gone = 0;

		for (size_t k = 0; k < e->ndel; k++)
			gone |= e->del[k].file_no == c->files[i].file_no;
		if (gone) {
			free(c->files[i].smallest);
			free(c->files[i].largest);
		} else {
			c->files[out++] = c->files[i];
		}
	}
	c->n = out;
	for (size_t i = 0; i < e->nadd; i++) {
		struct kv_file_meta *m;

		if (c->n == c->cap) {
			size_t cap = c->cap ? 2 * c->cap : 64;
			struct kv_file_meta *f = realloc(c->files, cap * sizeof(*f));

			if (!f)
				return -ENOMEM;
			c->files = f;
			c->cap = cap;
		}
		m = &c->files[c->n];
		*m = e->add[i];
		m->smallest = malloc(m->slen ? m->slen : 1);
		m->largest = malloc(m->llen ? m->llen : 1);
		if (!m->smallest || !m->largest) {
			free(m->smallest);
			free(m->largest);
			return -ENOMEM;
		}
		memcpy(m->smallest, e->add[i].smallest, m->slen);
		memcpy(m->largest, e->add[i].largest, m->llen);
		c->n++;
	}
	return 0;
}

static int meta_cmp(const void *a, const void *b)
{
	const struct kv_file_meta *x = a, *y = b;

	if (x->level != y->level)
		return x->level < y->level ? -1 : 1;
	return kv_ikey_cmp(x->smallest, x->slen, y->smallest, y->slen);
}

static void check_tables(struct check *c)
{
	if (c->n)
		qsort(c->files, c->n, sizeof(*c->files), meta_cmp);
	for (size_t i = 0; i < c->n; i++) {
		struct kv_file_meta *m = &c->files[i];
		char name[64], *path;
		struct kv_file *f;
		uint64_t size = 0;
		int err;

		snprintf(name, sizeof(name), KV_TABLE_NAME_FMT, (unsigned long long)m->file_no);
		path = join(c->dir, name);
		if (!path)
			return;
		err = c->env->ops->open(c->env, path, O_RDONLY, 0, &f);
		if (err) {
			problem(c, path, 0, "table of level %u named by the manifest: %s", m->level,
				strerror(-err));
			free(path);
			continue;
		}
		f->env->ops->size(f, &size);
		f->env->ops->close(f);
		if (size != m->size)
			problem(c, path, size, "size %llu, the manifest says %llu",
				(unsigned long long)size, (unsigned long long)m->size);
		err = kv_table_check(c->env, path, m->file_no, count_report, c);
		if (err < 0)
			problem(c, path, 0, "cannot check: %s", strerror(-err));
		if (i && m->level > 0 && c->files[i - 1].level == m->level &&
		    kv_ikey_cmp(c->files[i - 1].largest, c->files[i - 1].llen, m->smallest,
				m->slen) >= 0)
			problem(c, path, 0, "overlaps the previous table of level %u", m->level);
		free(path);
	}
}

static int no_rec(void *arg, uint64_t off, const struct kv_rec_header *h, const uint8_t *rec)
{
	(void)arg;
	(void)off;
	(void)h;
	(void)rec;
	return 0;
}

static void check_segment(struct check *c, uint64_t id)
{
	char name[64], *path;
	struct kv_seg_header h;
	struct kv_file *f;
	uint64_t size = 0, end, bad = 0;
	uint8_t *img = NULL;
	int err;

	snprintf(name, sizeof(name), KV_WAL_NAME_FMT, (unsigned long long)id);
	path = join(c->dir, name);
	if (!path)
		return;
	err = c->env->ops->open(c->env, path, O_RDONLY, 0, &f);
	if (!err) {
		f->env->ops->size(f, &size);
		img = size >= KV_SEG_HEADER_SIZE && size <= KV_LOGBUF_MAX ? malloc(size) : NULL;
		err = img ? kv_env_read_all(f, img, size, 0) : 0;
		f->env->ops->close(f);
	}
	if (err) {
		problem(c, path, 0, "cannot read: %s", strerror(-err));
	} else if (!img) {
		/* Short and all zero: an unfinished preallocation (open removes it). */
	} else {
		err = kv_seg_header_decode(img, &h);
		if (err && err != -ENODATA)
			problem(c, path, 0, "bad segment header: %s", strerror(-err));
		else if (!err &&
			 kv_wal_scan(img, size, id, 0, no_rec, NULL, &end, &bad) == -EUCLEAN)
			problem(c, path, bad,
				"corrupt WAL record (a later epoch follows: not a torn tail)");
	}
	free(img);
	free(path);
}

static void check_segments(struct check *c)
{
	uint64_t *ids = NULL;
	size_t n = 0;
	int err = kv_store_list_segments(c->env, c->dir, c->log_min_seg, &ids, &n);

	if (err)
		problem(c, c->dir, 0, "cannot list the WAL segments: %s", strerror(-err));
	for (size_t i = 0; i < n; i++)
		check_segment(c, ids[i]);
	free(ids);
}

int kv_check(const char *dir, struct kv_env *env, kv_check_fn report, void *arg)
{
	struct check c = { .env = env ? env : kv_env_default(),
			   .dir = dir,
			   .report = report,
			   .arg = arg };
	struct kv_options o;
	struct kv_file *lock = NULL;
	uint64_t number;
	char *lock_path;
	int err, is_dir = 0;

	if (!dir || c.env->ops->exists(c.env, dir, &is_dir) || !is_dir)
		return -ENOENT;
	kv_options_init(&o);
	o.log = log_to_report;
	o.log_ctx = &c;
	/* Not a store at all: say so, and write nothing into it. */
	lock_path = join(dir, KV_IDENT_NAME);
	if (!lock_path)
		return -ENOMEM;
	err = c.env->ops->exists(c.env, lock_path, NULL);
	free(lock_path);
	if (err)
		return err == -ENOENT ? -EMEDIUMTYPE : err;
	/* A missing LOCK is held by no one (open creates it). */
	lock_path = join(dir, KV_LOCK_NAME);
	if (!lock_path)
		return -ENOMEM;
	err = c.env->ops->open(c.env, lock_path, O_RDWR, 0, &lock);
	if (!err)
		err = lock->env->ops->lock(lock);
	free(lock_path);
	if (err == -ENOENT) {
		lock = NULL;
		err = 0;
	}
	if (err) {
		if (lock)
			lock->env->ops->close(lock);
		return err;
	}
	check_ident(&c, &o);
	err = kv_manifest_check(c.env, dir, count_report, &c);
	if (err < 0)
		problem(&c, dir, 0, "cannot check the manifest: %s", strerror(-err));
	/* The shape, as far as it reads (its problems are reported above). */
	c.quiet = 1;
	err = kv_manifest_read(c.env, &o, dir, collect_edit, &c, &number);
	c.quiet = 0;
	if (!err)
		check_tables(&c);
	check_segments(&c);
	for (size_t i = 0; i < c.n; i++) {
		free(c.files[i].smallest);
		free(c.files[i].largest);
	}
	free(c.files);
	if (lock)
		lock->env->ops->close(lock);
	return c.problems;
}
