/* SPDX-License-Identifier: MIT */
/*
 * kvdump.c - look inside a libkv store: its levels, tables, key ranges and
 * statistics; dump keys in a range, the entries of one table file; check it.
 *
 * The store must not be open in another process. Three ways in, chosen
 * per command:
 *
 *   files    levels, tables: nothing is opened through kv_open. The identity
 *            file is verified, LOCK is opened read-only and flock'ed (so a
 *            store in use is refused; a missing LOCK means nobody has it
 *            open, and is not created), the live manifest is replayed into
 *            the shape (kv_manifest_read), and tables and WAL segment headers
 *            are read directly. Nothing in the directory is written. table
 *            reads the one file it is given (kv_table_open, kv_table_iter).
 *   engine   keys, stats: kv_open with manual_background, so no flush or
 *            compaction runs; open still recovers the WAL, writes a fresh
 *            manifest and removes files no version names (the engine's
 *            ordinary open), which these commands accept.
 *   check    kv_check, which only reads (but creates LOCK if it is missing,
 *            so kvdump first makes sure the directory is a store).
 *
 * Keys are byte strings (the kvfs schema puts big-endian integers in them):
 * printable bytes are shown as they are, a backslash as "\\", anything else
 * as \xNN; --hex shows whole keys as hex digits. Key arguments (--from, --to)
 * are read in the same notation, so a printed key can be pasted back.
 *
 * Exit status: 0 done (check: clean), 1 the store is missing, foreign, in
 * use, unreadable or (check) has problems, 2 bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h" /* kv_ident_check, KV_IDENT_NAME, KV_LOCK_NAME */
#include "ikey.h"
#include "kv.h"
#include "manifest.h"
#include "rangedel.h"
#include "table.h"
#include "wal.h"

#define VALUE_SHOWN 64 /* value bytes printed by keys --values */

struct args {
	const char *cmd;
	const char *path; /* DIR or FILE */
	const char *from, *to;
	uint64_t limit;
	int hex, values, versions;
};

static struct kv_options g_log; /* only its log callback is used */
static int g_hex;

/* ---- output --------------------------------------------------------------- */

static void log_stderr(void *ctx, enum kv_log_level level, const char *msg)
{
	(void)ctx;
	if (level <= KV_LOG_WARN)
		fprintf(stderr, "kvdump: %s%s\n", level == KV_LOG_WARN ? "warning: " : "", msg);
}

static __attribute__((format(printf, 1, 2))) int fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("kvdump: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return 1;
}

static void put_bytes(const uint8_t *b, size_t n, int hex)
{
	for (size_t i = 0; i < n; i++) {
		if (hex)
			printf("%02x", b[i]);
		else if (b[i] == '\\')
			fputs("\\\\", stdout);
		else if (b[i] >= 0x20 && b[i] < 0x7f)
			putchar(b[i]);
		else
			printf("\\x%02x", b[i]);
	}
}

static void put_key(const uint8_t *b, size_t n)
{
	if (!n)
		fputs("\"\"", stdout);
	put_bytes(b, n, g_hex);
}

/* The user key of internal key @ik (which may be a range tombstone's end). */
static void put_ukey(const uint8_t *ik, size_t iklen)
{
	if (!ik || iklen < KV_IKEY_TRAILER)
		fputs("-", stdout);
	else
		put_key(ik, kv_ikey_ulen(iklen));
}

/* "smallest .. largest" of internal keys (absent for an empty table). */
static void put_range(const uint8_t *lo, size_t llen, const uint8_t *hi, size_t hlen)
{
	put_ukey(lo, llen);
	fputs(" .. ", stdout);
	put_ukey(hi, hlen);
}

/* Internal key order, with an absent key (an empty table's) first. */
static int ikey_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	if (alen < KV_IKEY_TRAILER || blen < KV_IKEY_TRAILER)
		return (alen >= KV_IKEY_TRAILER) - (blen >= KV_IKEY_TRAILER);
	return kv_ikey_cmp(a, alen, b, blen);
}

static const char *kind_name(unsigned kind)
{
	return kind == KV_IK_PUT ? "PUT" : kind == KV_IK_DEL ? "DEL" : "???";
}

/* ---- command line --------------------------------------------------------- */

static void usage(FILE *f)
{
	fputs("usage: kvdump COMMAND [options] DIR|FILE\n"
	      "\n"
	      "commands (DIR is a store no process has open):\n"
	      "  levels DIR    per level: tables, bytes, key range; WAL segments not yet flushed\n"
	      "  tables DIR    one line per table: level, number, size, entries, range\n"
	      "                tombstones, lsn range, smallest and largest user key\n"
	      "  keys DIR      the live keys in [--from, --to), in order\n"
	      "  table FILE    the entries and range tombstones of one table file\n"
	      "  stats DIR     the engine's statistics after opening the store\n"
	      "  check DIR     verify every file; each problem as FILE: offset N: problem\n"
	      "\n"
	      "options (the commands each applies to in brackets):\n"
	      "  --from K        [keys] first key (default: the first)\n"
	      "  --to K          [keys] end of the range, not included (default: none)\n"
	      "  --limit N       [keys] at most N keys\n"
	      "  --values        [keys] values too, the first 64 bytes, after their length\n"
	      "  --versions      [table] every version of every key (default: the newest)\n"
	      "  --hex           [levels, tables, keys, table] keys (and K) as hex digits\n"
	      "  -h, --help      this text\n"
	      "\n"
	      "Keys print printable bytes as is, '\\' as \\\\ and other bytes as \\xNN; K is\n"
	      "read the same way. keys and stats open the store through libkv, which\n"
	      "recovers the WAL, writes a fresh manifest and removes files the store no\n"
	      "longer names (no flush, no compaction); the other commands only read.\n"
	      "Exit status: 0 ok, 1 error or problems found, 2 usage.\n",
	      f);
}

static __attribute__((noreturn, format(printf, 1, 2))) void bad_usage(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("kvdump: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs("\nTry 'kvdump --help'.\n", stderr);
	va_end(ap);
	exit(2);
}

enum { OPT_FROM = 256, OPT_TO, OPT_LIMIT, OPT_HEX, OPT_VALUES, OPT_VERSIONS };

static const struct option long_opts[] = {
	{ "from", required_argument, NULL, OPT_FROM },
	{ "to", required_argument, NULL, OPT_TO },
	{ "limit", required_argument, NULL, OPT_LIMIT },
	{ "hex", no_argument, NULL, OPT_HEX },
	{ "values", no_argument, NULL, OPT_VALUES },
	{ "versions", no_argument, NULL, OPT_VERSIONS },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* Which commands take option @id (a space-separated list). */
static const char *opt_cmds(int id)
{
	switch (id) {
	case OPT_FROM:
	case OPT_TO:
	case OPT_LIMIT:
	case OPT_VALUES:
		return " keys ";
	case OPT_VERSIONS:
		return " table ";
	default:
		return " levels tables keys table ";
	}
}

static const char *opt_name(int id)
{
	const struct option *o = long_opts;

	while (o->name && o->val != id)
		o++;
	return o->name ? o->name : "?";
}

static uint64_t parse_u64(const char *opt, const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || *s == '-')
		bad_usage("%s: '%s' is not a number", opt, s);
	return v;
}

static void parse_args(int argc, char **argv, struct args *a)
{
	static const char cmds[] = " levels tables keys table stats check ";
	char word[32];
	int id;

	memset(a, 0, sizeof(*a));
	a->limit = UINT64_MAX;
	if (argc < 2)
		bad_usage("no command given");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		exit(0);
	}
	a->cmd = argv[1];
	snprintf(word, sizeof(word), " %s ", a->cmd);
	if (strlen(a->cmd) > 16 || !strstr(cmds, word))
		bad_usage("unknown command '%s'", a->cmd);
	opterr = 0;
	while ((id = getopt_long(argc - 1, argv + 1, ":h", long_opts, NULL)) != -1) {
		if (id == 'h') {
			usage(stdout);
			exit(0);
		}
		if (id == '?')
			bad_usage("unknown option '%s'", argv[optind]);
		if (id == ':')
			bad_usage("option '%s' needs a value", argv[optind]);
		if (!strstr(opt_cmds(id), word))
			bad_usage("--%s does not apply to '%s'", opt_name(id), a->cmd);
		switch (id) {
		case OPT_FROM:
			a->from = optarg;
			break;
		case OPT_TO:
			a->to = optarg;
			break;
		case OPT_LIMIT:
			a->limit = parse_u64("--limit", optarg);
			break;
		case OPT_HEX:
			a->hex = 1;
			break;
		case OPT_VALUES:
			a->values = 1;
			break;
		case OPT_VERSIONS:
			a->versions = 1;
			break;
		}
	}
	if (optind >= argc - 1)
		bad_usage("'%s' needs a %s", a->cmd, strcmp(a->cmd, "table") ? "DIR" : "FILE");
	a->path = argv[optind + 1];
	if (optind + 2 < argc)
		bad_usage("unexpected argument '%s'", argv[optind + 2]);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode key argument @s (escaped, or hex digits with --hex) into @out. */
static size_t parse_key(const char *opt, const char *s, uint8_t *out)
{
	size_t n = 0, len = strlen(s);

	for (size_t i = 0; i < len; n++) {
		int hi, lo;

		if (n == KV_MAX_KEY)
			bad_usage("%s: longer than %u bytes", opt, KV_MAX_KEY);
		if (g_hex || (s[i] == '\\' && s[i + 1] == 'x')) {
			i += g_hex ? 0 : 2;
			hi = hexval(s[i]);
			lo = hi < 0 ? -1 : hexval(s[i + 1]);
			if (lo < 0)
				bad_usage("%s: '%s': expected two hex digits at byte %zu", opt, s,
					  i);
			out[n] = (uint8_t)(hi << 4 | lo);
			i += 2;
		} else if (s[i] == '\\' && s[i + 1] == '\\') {
			out[n] = '\\';
			i += 2;
		} else if (s[i] == '\\') {
			bad_usage("%s: '%s': only \\xNN and \\\\ are escapes", opt, s);
		} else {
			out[n] = (uint8_t)s[i++];
		}
	}
	if (!n)
		bad_usage("%s: empty key", opt);
	return n;
}

/* ---- the store's files ---------------------------------------------------- */

static char *join(const char *dir, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, name) < 0) {
		fail("out of memory");
		exit(1);
	}
	return p;
}

/*
 * 0 if @dir is a directory holding a valid identity file (@lenient: holding
 * one at all, so that kv_check may report what is wrong with it); otherwise
 * say why and return 1. Nothing is created in a directory that fails.
 */
static int probe_store(const char *dir, int lenient)
{
	struct kv_env *env = kv_env_default();
	char *path = join(dir, KV_IDENT_NAME);
	void *buf = NULL;
	size_t len = 0;
	int err, is_dir = 0, ret = 1;

	err = env->ops->exists(env, dir, &is_dir);
	if (err)
		fail("%s: %s", dir, strerror(-err));
	else if (!is_dir)
		fail("%s: not a directory", dir);
	else if ((err = kv_env_read_file(env, path, 4096, &buf, &len)) == -ENOENT)
		fail("%s: not a libkv store (there is no %s)", dir, path);
	else if (err && !lenient)
		fail("%s: cannot read: %s", path, strerror(-err));
	else if (!err && !lenient && kv_ident_check(&g_log, path, buf, len))
		fail("%s: not a usable libkv store", dir);
	else
		ret = 0;
	free(buf);
	free(path);
	return ret;
}

/*
 * The shape the live manifest describes, as one edit holding every table
 * ever added; a deleted one gets level DEAD (its keys are freed with the
 * rest by kv_vedit_free).
 */
#define DEAD UINT32_MAX

struct shape {
	struct kv_vedit all;
	size_t n; /* live tables; first in all.add once sorted */
	uint64_t manifest_no, log_min_seg, log_min_lsn, next_file;
	struct kv_file *lock;
};

static int shape_edit(void *arg, const struct kv_vedit *e)
{
	struct shape *s = arg;

	if (e->has_log) {
		s->log_min_seg = e->log_min_seg;
		s->log_min_lsn = e->log_min_lsn;
	}
	if (e->has_next_file)
		s->next_file = e->next_file;
	for (size_t i = 0; i < s->all.nadd; i++)
		for (size_t k = 0; k < e->ndel; k++)
			if (e->del[k].level == s->all.add[i].level &&
			    e->del[k].file_no == s->all.add[i].file_no)
				s->all.add[i].level = DEAD;
	for (size_t i = 0; i < e->nadd; i++) {
		if (e->add[i].level >= KV_MAX_LEVELS)
			return -EUCLEAN;
		if (kv_vedit_add(&s->all, &e->add[i]))
			return -ENOMEM;
	}
	return 0;
}

/* Level order; level 0 newest first, the others by smallest key. */
static int meta_cmp(const void *a, const void *b)
{
	const struct kv_file_meta *x = a, *y = b;

	if (x->level != y->level) /* DEAD last */
		return x->level < y->level ? -1 : 1;
	if (x->level == 0)
		return x->file_no > y->file_no ? -1 : x->file_no < y->file_no;
	return ikey_cmp(x->smallest, x->slen, y->smallest, y->slen);
}

static void shape_free(struct shape *s)
{
	kv_vedit_free(&s->all);
	if (s->lock)
		s->lock->env->ops->close(s->lock);
	memset(s, 0, sizeof(*s));
}

/* Refuse a store in use: flock LOCK through a read-only descriptor. */
static int lock_store(const char *dir, struct shape *s)
{
	struct kv_env *env = kv_env_default();
	char *path = join(dir, KV_LOCK_NAME);
	int err = env->ops->open(env, path, O_RDONLY, 0, &s->lock);

	if (err == -ENOENT) {
		err = 0; /* every kv_open creates it: nobody has the store open */
	} else if (!err) {
		err = s->lock->env->ops->lock(s->lock);
		if (err == -EBUSY)
			fail("%s: the store is in use (%s is locked by a process)", dir, path);
		else if (err)
			fail("%s: cannot lock: %s", path, strerror(-err));
	} else {
		fail("%s: cannot open: %s", path, strerror(-err));
	}
	free(path);
	return err ? 1 : 0;
}

/* Read @dir's shape without opening the store. 0, or 1 with the reason said. */
static int shape_read(const char *dir, struct shape *s)
{
	uint64_t no = 0;
	int err;

	memset(s, 0, sizeof(*s));
	kv_vedit_init(&s->all);
	if (probe_store(dir, 0) || lock_store(dir, s))
		return 1;
	err = kv_manifest_read(kv_env_default(), &g_log, dir, shape_edit, s, &no);
	if (err == -ENOENT) {
		fprintf(stderr, "kvdump: %s: no %s: a store without tables\n", dir,
			KV_CURRENT_NAME);
		return 0;
	}
	if (err)
		return fail("%s: cannot read the manifest: %s", dir, strerror(-err));
	s->manifest_no = no;
	qsort(s->all.add, s->all.nadd, sizeof(*s->all.add), meta_cmp);
	while (s->n < s->all.nadd && s->all.add[s->n].level != DEAD)
		s->n++;
	return 0;
}

static char *table_path(const char *dir, uint64_t file_no)
{
	char name[64];

	snprintf(name, sizeof(name), KV_TABLE_NAME_FMT, (unsigned long long)file_no);
	return join(dir, name);
}

/* ---- levels --------------------------------------------------------------- */

/* One line for segment @id: its size and what its header says. */
static int print_segment(const char *dir, uint64_t id)
{
	char name[64], *path;
	uint8_t hdr[KV_SEG_HEADER_SIZE];
	struct kv_seg_header h;
	struct kv_env *env = kv_env_default();
	struct kv_file *f;
	uint64_t size = 0;
	int err;

	snprintf(name, sizeof(name), KV_WAL_NAME_FMT, (unsigned long long)id);
	path = join(dir, name);
	err = env->ops->open(env, path, O_RDONLY, 0, &f);
	if (!err) {
		err = f->env->ops->size(f, &size);
		if (!err)
			err = kv_env_read_all(f, hdr, sizeof(hdr), 0);
		f->env->ops->close(f);
	}
	printf("  %s  id %" PRIu64 "  size %" PRIu64, name, id, size);
	if (!err)
		err = kv_seg_header_decode(hdr, &h);
	if (!err)
		printf("  base_lsn %" PRIu64 "\n", h.base_lsn);
	else if (err == -ENODATA)
		printf("  (header not written yet)\n");
	else
		printf("  (unreadable header: %s)\n", strerror(-err));
	free(path);
	return err && err != -ENODATA;
}

static int cmd_levels(const struct args *a)
{
	struct shape s;
	uint64_t *ids = NULL;
	size_t nseg = 0;
	int ret, bad = 0;

	ret = shape_read(a->path, &s);
	if (ret)
		goto out;
	printf("store %s: manifest %" PRIu64 ", next file %" PRIu64 "\n", a->path, s.manifest_no,
	       s.next_file);
	for (uint32_t l = 0; l < KV_MAX_LEVELS; l++) {
		const struct kv_file_meta *lo = NULL, *hi = NULL;
		uint64_t count = 0, bytes = 0;

		for (size_t i = 0; i < s.n; i++) {
			const struct kv_file_meta *m = &s.all.add[i];

			if (m->level != l)
				continue;
			count++;
			bytes += m->size;
			if (!lo || ikey_cmp(m->smallest, m->slen, lo->smallest, lo->slen) < 0)
				lo = m;
			if (!hi || ikey_cmp(m->largest, m->llen, hi->largest, hi->llen) > 0)
				hi = m;
		}
		if (!count)
			continue;
		printf("level %u: %" PRIu64 " tables, %" PRIu64 " bytes, keys ", l, count, bytes);
		put_range(lo->smallest, lo->slen, hi->largest, hi->llen);
		putchar('\n');
		for (size_t i = 0; i < s.n; i++)
			if (s.all.add[i].level == l)
				printf("  " KV_TABLE_NAME_FMT "  %" PRIu64 " bytes\n",
				       (unsigned long long)s.all.add[i].file_no, s.all.add[i].size);
	}
	if (!s.n)
		printf("no tables\n");
	ret = kv_store_list_segments(kv_env_default(), a->path, s.log_min_seg, &ids, &nseg);
	if (ret) {
		ret = fail("%s: cannot list: %s", a->path, strerror(-ret));
		goto out;
	}
	printf("log_min: segment %" PRIu64 ", lsn %" PRIu64 "\n", s.log_min_seg, s.log_min_lsn);
	printf("wal segments not yet flushed: %zu\n", nseg);
	for (size_t i = 0; i < nseg; i++)
		bad |= print_segment(a->path, ids[i]);
	ret = bad;
out:
	free(ids);
	shape_free(&s);
	return ret;
}

/* ---- tables --------------------------------------------------------------- */

static int print_table_line(const char *dir, const struct kv_file_meta *m)
{
	char *path = table_path(dir, m->file_no);
	struct kv_table *t = NULL;
	int err =
		kv_table_open(kv_env_default(), &g_log, path, m->file_no, m->size, NULL, NULL, &t);

	printf("%u  " KV_TABLE_NAME_FMT "  %" PRIu64 "  %" PRIu64 "  ", m->level,
	       (unsigned long long)m->file_no, m->size, m->entries);
	if (err)
		printf("?");
	else
		printf("%" PRIu64, kv_table_props(t)->rangedels);
	printf("  %" PRIu64 "  %" PRIu64 "  ", m->min_lsn, m->max_lsn);
	put_range(m->smallest, m->slen, m->largest, m->llen);
	putchar('\n');
	kv_table_close(t);
	free(path);
	return err ? 1 : 0;
}

static int print_orphan(void *arg, const char *name)
{
	const struct shape *s = arg;
	uint64_t no;

	if (kv_table_parse_name(name, &no))
		return 0;
	for (size_t i = 0; i < s->n; i++)
		if (s->all.add[i].file_no == no)
			return 0;
	printf("not in the manifest: %s\n", name);
	return 0;
}

static int cmd_tables(const struct args *a)
{
	struct shape s;
	int ret = shape_read(a->path, &s);

	if (ret)
		goto out;
	printf("# level  file  size  entries  rangedels  min_lsn  max_lsn  smallest .. largest\n");
	for (size_t i = 0; i < s.n; i++)
		ret |= print_table_line(a->path, &s.all.add[i]);
	kv_env_default()->ops->list_dir(kv_env_default(), a->path, print_orphan, &s);
out:
	shape_free(&s);
	return ret;
}

/* ---- table FILE ----------------------------------------------------------- */

static void print_rangedels(const struct kv_rdset *rd)
{
	size_t n = rd ? kv_rdset_fragments(rd) : 0;

	for (size_t i = 0; i < n; i++) {
		struct kv_rtomb b;
		const uint64_t *lsns;
		size_t nl;

		kv_rdset_fragment(rd, i, &b, &lsns, &nl);
		fputs("rangedel [", stdout);
		put_key(b.start, b.slen);
		fputs(", ", stdout);
		put_key(b.end, b.elen);
		fputs(") lsn", stdout);
		for (size_t k = 0; k < nl; k++)
			printf("%s%" PRIu64, k ? "," : " ", lsns[k]);
		putchar('\n');
	}
}

/* Print the entries (without @versions only each user key's newest one).
 * Returns the iterator's error. */
static int print_entries(struct kv_table *t, int versions, uint64_t *shown)
{
	static uint8_t last[KV_MAX_KEY];
	struct kv_iiter *it;
	size_t last_len = SIZE_MAX;
	uint64_t older = 0;
	int err = kv_table_iter(t, &it);

	if (err)
		return err;
	for (it->ops->seek_first(it); it->valid; it->ops->next(it)) {
		size_t ulen = kv_ikey_ulen(it->klen);
		unsigned kind = kv_ikey_kind(it->key, it->klen);

		if (!versions && last_len == ulen && !memcmp(last, it->key, ulen)) {
			older++;
			continue;
		}
		put_key(it->key, ulen);
		printf("  lsn %" PRIu64 "  %s", kv_ikey_lsn(it->key, it->klen), kind_name(kind));
		if (kind == KV_IK_PUT)
			printf("  %zu bytes", it->vlen);
		putchar('\n');
		last_len = ulen <= KV_MAX_KEY ? ulen : SIZE_MAX;
		if (ulen <= KV_MAX_KEY)
			memcpy(last, it->key, ulen);
		(*shown)++;
	}
	if (older)
		printf("(%" PRIu64 " older versions not shown: --versions shows them)\n", older);
	err = it->err;
	it->ops->destroy(it);
	return err;
}

static int cmd_table(const struct args *a)
{
	const char *base = strrchr(a->path, '/') ? strrchr(a->path, '/') + 1 : a->path;
	const struct kv_table_props *p;
	struct kv_table *t;
	uint64_t no, shown = 0;
	int err;

	/* The number in the name is checked against the one inside. */
	if (kv_table_parse_name(base, &no))
		return fail("%s: not a table file name (tbl-<16 hex digits>.sst)", a->path);
	err = kv_table_open(kv_env_default(), &g_log, a->path, no, 0, NULL, NULL, &t);
	if (err)
		return fail("%s: cannot open the table: %s", a->path, strerror(-err));
	p = kv_table_props(t);
	printf("table %s: file %" PRIu64 ", %" PRIu64 " bytes (%" PRIu64 " of data), %" PRIu64
	       " entries, %" PRIu64 " range tombstones, lsn %" PRIu64 " .. %" PRIu64 "\n",
	       a->path, no, p->file_size, p->data_bytes, p->entries, p->rangedels, p->min_lsn,
	       p->max_lsn);
	printf("keys ");
	put_range(p->smallest, p->slen, p->largest, p->llen);
	putchar('\n');
	print_rangedels(kv_table_rangedels(t));
	err = print_entries(t, a->versions, &shown);
	kv_table_close(t);
	if (err)
		return fail("%s: reading the entries stopped after %" PRIu64 ": %s", a->path, shown,
			    strerror(-err));
	return 0;
}

/* ---- keys, stats (through kv_open) ---------------------------------------- */

static int open_db(const char *dir, struct kv_db **db)
{
	struct kv_options o;
	int err;

	if (probe_store(dir, 0))
		return 1;
	kv_options_init(&o);
	o.manual_background = 1;
	o.log = log_stderr;
	err = kv_open(dir, &o, db);
	if (err)
		return fail("%s: cannot open the store: %s", dir, strerror(-err));
	return 0;
}

static void print_value(const uint8_t *v, size_t n)
{
	printf("\t[%zu] ", n);
	put_bytes(v, n < VALUE_SHOWN ? n : VALUE_SHOWN, 0);
	if (n > VALUE_SHOWN)
		fputs("...", stdout);
}

static int cmd_keys(const struct args *a)
{
	static uint8_t from[KV_MAX_KEY], to[KV_MAX_KEY];
	size_t flen = a->from ? parse_key("--from", a->from, from) : 0;
	size_t tlen = a->to ? parse_key("--to", a->to, to) : 0;
	struct kv_db *db;
	struct kv_iter *it;
	uint64_t n = 0;
	int err, ret;

	if (open_db(a->path, &db))
		return 1;
	err = kv_iter_create(db, NULL, &it);
	if (err) {
		kv_close(db);
		return fail("%s: cannot iterate: %s", a->path, strerror(-err));
	}
	if (flen)
		kv_iter_seek(it, from, flen);
	else
		kv_iter_seek_first(it);
	/* A closed pipe (kvdump keys | head) ends the loop; the store is closed. */
	for (; kv_iter_valid(it) && n < a->limit && !ferror(stdout); kv_iter_next(it), n++) {
		size_t klen, vlen;
		const uint8_t *k = kv_iter_key(it, &klen);

		if (tlen && kv_ukey_cmp(k, klen, to, tlen) >= 0)
			break;
		put_key(k, klen);
		if (a->values) {
			const uint8_t *v = kv_iter_value(it, &vlen);

			print_value(v, vlen);
		}
		putchar('\n');
	}
	err = kv_iter_status(it);
	kv_iter_destroy(it);
	ret = 0;
	if (err)
		ret = fail("%s: iteration stopped after %" PRIu64 " keys: %s", a->path, n,
			   strerror(-err));
	err = kv_close(db);
	if (err)
		ret = fail("%s: close: %s", a->path, strerror(-err));
	return ret;
}

/* kv_stats' counters, printed by name. */
/* clang-format off */
#define STATS_U64(X)                                                                              \
	X(appended_lsn) X(durable_lsn) X(records) X(commits) X(commit_bytes) X(versions_replaced) \
	X(versions_superseded) X(log_buffer_bytes) X(log_buffer_live_bytes) X(memtables)          \
	X(wal_segments) X(flushes) X(flush_bytes) X(compactions) X(compact_read_bytes)            \
	X(compact_write_bytes) X(user_bytes) X(stalls) X(stall_ns) X(cache_hits) X(cache_misses)  \
	X(cache_bytes) X(snapshots)
/* clang-format on */

static void print_stats(const struct kv_stats *st)
{
#define PRINT_U64(f) printf("%-22s %" PRIu64 "\n", #f, st->f);
	STATS_U64(PRINT_U64)
#undef PRINT_U64
	for (int l = 0; l < KV_MAX_LEVELS; l++)
		printf("level %d%-14s %" PRIu64 " tables, %" PRIu64 " bytes\n", l, "",
		       st->level_tables[l], st->level_bytes[l]);
	printf("%-22s %.3f\n%-22s %.3f\n", "write_amp", st->write_amp, "space_amp", st->space_amp);
	printf("%-22s %d\n%-22s %d\n", "failed", st->failed, "bg_error", st->bg_error);
}

static int cmd_stats(const struct args *a)
{
	struct kv_db *db;
	struct kv_stats st;
	int err, ret = 0;

	if (open_db(a->path, &db))
		return 1;
	err = kv_stats(db, &st);
	if (err) {
		ret = fail("%s: kv_stats: %s", a->path, strerror(-err));
		goto out;
	}
	print_stats(&st);
out:
	err = kv_close(db);
	if (err)
		ret = fail("%s: close: %s", a->path, strerror(-err));
	return ret;
}

/* ---- check ---------------------------------------------------------------- */

/* The engine's messages often start with the file (and offset) again. */
static void report_problem(void *arg, const char *file, uint64_t off, const char *problem)
{
	size_t flen = strlen(file);
	char pre[48];
	int plen = snprintf(pre, sizeof(pre), "offset %" PRIu64 ": ", off);

	(void)arg;
	if (!strncmp(problem, file, flen) && !strncmp(problem + flen, ": ", 2))
		problem += flen + 2;
	if (!strncmp(problem, pre, (size_t)plen))
		problem += plen;
	printf("%s: offset %" PRIu64 ": %s\n", file, off, problem);
}

static int cmd_check(const struct args *a)
{
	int n;

	if (probe_store(a->path, 1))
		return 1;
	n = kv_check(a->path, NULL, report_problem, NULL);
	if (n == -EBUSY)
		return fail("%s: the store is in use (%s/%s is locked by a process)", a->path,
			    a->path, KV_LOCK_NAME);
	if (n < 0)
		return fail("%s: cannot check: %s", a->path, strerror(-n));
	if (n)
		printf("%s: %d problem%s\n", a->path, n, n == 1 ? "" : "s");
	else
		printf("%s: clean\n", a->path);
	return n ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(const struct args *a);
	} cmds[] = { { "levels", cmd_levels }, { "tables", cmd_tables }, { "keys", cmd_keys },
		     { "table", cmd_table },   { "stats", cmd_stats },	 { "check", cmd_check } };
	struct args a;
	int ret = 1;

	parse_args(argc, argv, &a);
	g_hex = a.hex;
	kv_options_init(&g_log);
	g_log.log = log_stderr;
	signal(SIGPIPE, SIG_IGN); /* a write error instead, so keys closes the store */
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(a.cmd, cmds[i].name))
			ret = cmds[i].fn(&a);
	if ((fflush(stdout) || ferror(stdout)) && errno != EPIPE)
		ret = fail("standard output: %s", strerror(errno));
	else if (ferror(stdout))
		ret = 1;
	return ret;
}
