// SPDX-License-Identifier: MIT
/*
 * fsbench [OPTIONS] [LABEL=]DIR...: the same filesystem workloads on each
 * directory in turn (kvfs, ext4, a passthrough FUSE mount, anything), one
 * table on stdout with a column per directory, and every parameter and
 * number in JSON (--json FILE).
 *
 * This file: the command line (a usage error exits 2 with a message naming
 * the option and what is wrong), the machine and mount facts recorded with
 * the results, the table and the JSON. The phases themselves, and what
 * exactly each one measures, are in fsbench_phases.c.
 */
#include "fsbench.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define EXIT_USAGE 2

const char *const fsb_phase_names[FSB_NPHASES] = {
	"create",    "stat",  "readdir", "rename", "unlink", "seqwrite", "seqread", "randread",
	"randwrite", "untar", "sync",	 "find",   "grep",   "tarc",	 "rm",
};

void fsb_err(const char *fmt, ...)
{
	va_list ap;

	fputs("fsbench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: fsbench [OPTIONS] [LABEL=]DIR...\n"
		"\n"
		"Runs the same workloads in each DIR in turn (in a subdirectory fsbench.PID,\n"
		"removed afterwards) and prints a table with one column per DIR (LABEL, or\n"
		"DIR). Rates are per second of wall time (CLOCK_MONOTONIC); latencies are of\n"
		"each operation alone.\n"
		"\n"
		"Phases (--phases, comma-separated; groups: meta, data, tree, all):\n"
		"  meta: create stat readdir rename unlink   N empty files with T threads, each\n"
		"        thread in its own directory, and for T > 1 also all in one directory\n"
		"  data: seqwrite seqread                    SIZE bytes in BLOCK writes + fsync,\n"
		"        read back after posix_fadvise(DONTNEED) [+ drop_caches] [+ O_DIRECT]\n"
		"        randread randwrite                  4 KiB pread, 4 KiB pwrite + fsync,\n"
		"        at random offsets of a file of RSIZE bytes\n"
		"  tree: untar sync find grep tarc rm        tar -xf TAR, syncfs+fsync, find,\n"
		"        grep -r -F STRING, tar -cf - (read by fsbench), rm -rf\n"
		"\n"
		"Options:\n"
		"  -n, --files N         files per metadata variant, split among the threads\n"
		"                        (default 100000)\n"
		"  -t, --threads LIST    thread counts for the metadata phases (default 1,4)\n"
		"      --no-shared       no shared-directory variant\n"
		"  -s, --size SIZE       sequential file size (default 1G)\n"
		"  -b, --block SIZE      sequential write/read size, a multiple of 4K (default 1M)\n"
		"      --rand-size SIZE  random I/O file size, a multiple of 4K (default 256M)\n"
		"      --rand-reads N    random reads (default 20000)\n"
		"      --rand-writes N   random writes, each with fsync (default 2000)\n"
		"      --tar FILE        uncompressed tarball for the tree phases (without it\n"
		"                        they are skipped unless asked for by name)\n"
		"      --grep STRING     what grep -r looks for (default fsbench-needle-x)\n"
		"  -p, --phases LIST     phases to run (default all)\n"
		"      --drop-caches     sync and write 3 to /proc/sys/vm/drop_caches before\n"
		"                        every reading phase (root only; slows the machine)\n"
		"      --odirect         read back the sequential file with O_DIRECT where the\n"
		"                        target accepts it\n"
		"      --seed N          seed of the random offsets and data (default 1)\n"
		"      --disks LIST      count the writes of these devices of /proc/diskstats\n"
		"                        (comma-separated: vda, nvme0n1p2, loop3...) instead\n"
		"                        of the machine's whole disks\n"
		"  -q, --quick           small sizes for a smoke test: 2000 files, threads 1,2,\n"
		"                        16M sequential, 8M random file, 500 reads, 50 writes\n"
		"                        (options given explicitly still win)\n"
		"  -j, --json FILE       write the results as JSON to FILE ('-': stdout)\n"
		"  -h, --help            this text\n"
		"\n"
		"Disk writes: for every phase also the bytes the machine's disks wrote\n"
		"(\"disk MiB written\"; JSON disk_bytes_written), from /proc/diskstats just\n"
		"before and just after it: sectors written, summed over the whole disks (the\n"
		"devices with a /sys/block/NAME/device link: no partitions, loop, ram, zram,\n"
		"dm or md devices, so no byte counts twice). seqwrite and randwrite end with\n"
		"fsync, so their writes are in; for them also disk bytes per byte written\n"
		"(JSON disk_write_amplification). The other phases end without a sync\n"
		"(adding one would change what they measure): what the kernel or a FUSE\n"
		"daemon writes back after the phase's end is counted in a later phase or\n"
		"not at all. The counters are machine-wide: other programs' writes count\n"
		"too (--disks with a device only the targets use keeps them out). Not\n"
		"reported when /proc/diskstats cannot be read (environment\n"
		"FSBENCH_DISKSTATS: read that file instead, for tests).\n"
		"\n"
		"SIZE takes K, M, G, T suffixes (powers of 1024, optional iB/B). Exit status:\n"
		"0 all ran, 1 a phase failed (message on stderr), 2 bad command line.\n");
}

static void __attribute__((noreturn, format(printf, 1, 2))) bad(const char *fmt, ...)
{
	va_list ap;

	fputs("fsbench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see fsbench --help)\n", stderr);
	exit(EXIT_USAGE);
}

static uint64_t parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max)
{
	unsigned long long v;
	char *end;

	errno = 0;
	if (!*s || *s == '-' || *s == '+')
		bad("%s '%s': not a number", opt, s);
	v = strtoull(s, &end, 10);
	if (*end || end == s)
		bad("%s '%s': not a number", opt, s);
	if (errno == ERANGE || v < min || v > max)
		bad("%s '%s': out of range %" PRIu64 "..%" PRIu64, opt, s, min, max);
	return v;
}

static uint64_t parse_size(const char *opt, const char *s, uint64_t min, uint64_t max)
{
	static const char units[] = "kmgt";
	unsigned long long v;
	const char *u;
	char *end;
	int shift = 0;

	errno = 0;
	if (!*s || *s == '-' || *s == '+' || *s == ' ')
		bad("%s '%s': not a size", opt, s);
	v = strtoull(s, &end, 10);
	if (end == s || errno == ERANGE)
		bad("%s '%s': not a size", opt, s);
	if (*end) {
		u = strchr(units, end[0] | 0x20);
		if (!u)
			bad("%s '%s': unknown unit '%s' (K, M, G or T)", opt, s, end);
		shift = 10 * (int)(u - units + 1);
		end++;
		if (*end && strcmp(end, "iB") && strcmp(end, "B") && strcmp(end, "ib"))
			bad("%s '%s': unknown unit '%s' (K, M, G or T)", opt, s, end - 1);
	}
	if (v > (UINT64_MAX >> shift))
		bad("%s '%s': too large", opt, s);
	v <<= shift;
	if (v < min || v > max)
		bad("%s '%s': out of range %" PRIu64 "..%" PRIu64 " bytes", opt, s, min, max);
	return v;
}

static void parse_threads(struct fsb_opts *o, const char *s)
{
	char buf[256], *save = NULL, *tok;

	if (strlen(s) >= sizeof(buf))
		bad("--threads '%s': too long", s);
	strcpy(buf, s);
	o->nthreads = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (o->nthreads == FSB_MAX_TLIST)
			bad("--threads '%s': at most %d thread counts", s, FSB_MAX_TLIST);
		o->threads[o->nthreads++] =
			(unsigned)parse_u64("--threads", tok, 1, FSB_MAX_THREADS);
	}
	if (!o->nthreads)
		bad("--threads '%s': no thread count", s);
}

static unsigned parse_phases(const char *s)
{
	char buf[512], *save = NULL, *tok;
	unsigned m = 0;

	if (strlen(s) >= sizeof(buf))
		bad("--phases '%s': too long", s);
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int p;

		if (!strcmp(tok, "all")) {
			m |= FSB_META_MASK | FSB_DATA_MASK | FSB_TREE_MASK;
			continue;
		}
		if (!strcmp(tok, "meta") || !strcmp(tok, "data") || !strcmp(tok, "tree")) {
			m |= tok[0] == 'm' ? FSB_META_MASK :
			     tok[0] == 'd' ? FSB_DATA_MASK :
					     FSB_TREE_MASK;
			continue;
		}
		for (p = 0; p < FSB_NPHASES; p++)
			if (!strcmp(tok, fsb_phase_names[p]))
				break;
		if (p == FSB_NPHASES)
			bad("--phases: unknown phase '%s'", tok);
		m |= 1u << p;
	}
	if (!m)
		bad("--phases '%s': no phase", s);
	return m;
}

/* An uncompressed tar archive: "ustar" at offset 257 of the first header. */
static void check_tar(const char *path)
{
	char hdr[512];
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		bad("--tar %s: %s", path, strerror(errno));
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		bad("--tar %s: not a regular file", path);
	}
	n = read(fd, hdr, sizeof(hdr));
	close(fd);
	if (n != (ssize_t)sizeof(hdr) || memcmp(hdr + 257, "ustar", 5))
		bad("--tar %s: not an uncompressed tar archive (decompress it first, e.g. "
		    "xz -dk)",
		    path);
}

/* Is @name in comma-separated @list? */
static int in_list(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; p; p = strchr(p, ',')) {
		p += *p == ',';
		if (!strncmp(p, name, n) && (p[n] == ',' || !p[n]))
			return 1;
	}
	return 0;
}

/* Every device of --disks is in /proc/diskstats (or $FSBENCH_DISKSTATS). */
static void check_disks(const char *list)
{
	char buf[512], *save = NULL, *tok;
	uint64_t b;
	int n = 0;

	if (strlen(list) >= sizeof(buf))
		bad("--disks '%s': too long", list);
	strcpy(buf, list);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save), n++)
		if (fsb_disk_written(tok, &b, NULL, 0))
			bad("--disks: no device '%s' in /proc/diskstats", tok);
	if (!n)
		bad("--disks '%s': no device", list);
}

enum {
	OPT_NO_SHARED = 256,
	OPT_RAND_SIZE,
	OPT_RAND_READS,
	OPT_RAND_WRITES,
	OPT_TAR,
	OPT_GREP,
	OPT_DROP,
	OPT_ODIRECT,
	OPT_SEED,
	OPT_DISKS,
};

static const struct option longopts[] = {
	{ "files", required_argument, NULL, 'n' },
	{ "threads", required_argument, NULL, 't' },
	{ "no-shared", no_argument, NULL, OPT_NO_SHARED },
	{ "size", required_argument, NULL, 's' },
	{ "block", required_argument, NULL, 'b' },
	{ "rand-size", required_argument, NULL, OPT_RAND_SIZE },
	{ "rand-reads", required_argument, NULL, OPT_RAND_READS },
	{ "rand-writes", required_argument, NULL, OPT_RAND_WRITES },
	{ "tar", required_argument, NULL, OPT_TAR },
	{ "grep", required_argument, NULL, OPT_GREP },
	{ "phases", required_argument, NULL, 'p' },
	{ "drop-caches", no_argument, NULL, OPT_DROP },
	{ "odirect", no_argument, NULL, OPT_ODIRECT },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "disks", required_argument, NULL, OPT_DISKS },
	{ "quick", no_argument, NULL, 'q' },
	{ "json", required_argument, NULL, 'j' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* Which options were given, so that --quick changes only the others. */
enum { SET_FILES = 1, SET_THREADS = 2, SET_SIZE = 4, SET_RSIZE = 8, SET_RR = 16, SET_RW = 32 };

static const char *json_path;

static void parse_args(int argc, char **argv, struct fsb_opts *o, struct fsb_target *t, int *nt)
{
	unsigned set = 0, phases_set = 0;
	int c;

	*o = (struct fsb_opts){ .files = 100000,
				.threads = { 1, 4 },
				.nthreads = 2,
				.shared = 1,
				.seq_size = 1ull << 30,
				.block = 1 << 20,
				.rand_size = 256ull << 20,
				.rand_reads = 20000,
				.rand_writes = 2000,
				.grep = "fsbench-needle-x",
				.phases = FSB_META_MASK | FSB_DATA_MASK | FSB_TREE_MASK,
				.seed = 1 };
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":n:t:s:b:p:qj:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			o->files = parse_u64("--files", optarg, 1, 1000000000);
			set |= SET_FILES;
			break;
		case 't':
			parse_threads(o, optarg);
			set |= SET_THREADS;
			break;
		case OPT_NO_SHARED:
			o->shared = 0;
			break;
		case 's':
			o->seq_size = parse_size("--size", optarg, 1, 1ull << 42);
			set |= SET_SIZE;
			break;
		case 'b':
			o->block = parse_size("--block", optarg, 4096, 256u << 20);
			if (o->block % 4096)
				bad("--block '%s': not a multiple of 4K", optarg);
			break;
		case OPT_RAND_SIZE:
			o->rand_size = parse_size("--rand-size", optarg, 4096, 1ull << 42);
			if (o->rand_size % 4096)
				bad("--rand-size '%s': not a multiple of 4K", optarg);
			set |= SET_RSIZE;
			break;
		case OPT_RAND_READS:
			o->rand_reads = parse_u64("--rand-reads", optarg, 1, 1000000000);
			set |= SET_RR;
			break;
		case OPT_RAND_WRITES:
			o->rand_writes = parse_u64("--rand-writes", optarg, 1, 1000000000);
			set |= SET_RW;
			break;
		case OPT_TAR:
			check_tar(optarg);
			o->tar = optarg;
			break;
		case OPT_GREP:
			if (!*optarg)
				bad("--grep: empty string");
			o->grep = optarg;
			break;
		case 'p':
			o->phases = parse_phases(optarg);
			phases_set = 1;
			break;
		case OPT_DROP:
			if (access("/proc/sys/vm/drop_caches", W_OK))
				bad("--drop-caches: cannot write /proc/sys/vm/drop_caches (%s; root only)",
				    strerror(errno));
			o->drop_caches = 1;
			break;
		case OPT_ODIRECT:
			o->odirect = 1;
			break;
		case OPT_DISKS:
			check_disks(optarg);
			o->disks = optarg;
			break;
		case OPT_SEED:
			o->seed = parse_u64("--seed", optarg, 0, UINT64_MAX);
			break;
		case 'q':
			o->quick = 1;
			break;
		case 'j':
			if (!*optarg)
				bad("--json: empty file name");
			json_path = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case ':':
			bad("option '%s' needs a value", argv[optind - 1]);
		default:
			if (optopt)
				bad("unknown option '-%c'", optopt);
			bad("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (o->quick) {
		if (!(set & SET_FILES))
			o->files = 2000;
		if (!(set & SET_THREADS)) {
			o->threads[0] = 1;
			o->threads[1] = 2;
			o->nthreads = 2;
		}
		if (!(set & SET_SIZE))
			o->seq_size = 16 << 20;
		if (!(set & SET_RSIZE))
			o->rand_size = 8 << 20;
		if (!(set & SET_RR))
			o->rand_reads = 500;
		if (!(set & SET_RW))
			o->rand_writes = 50;
	}
	for (int i = 0; i < o->nthreads; i++)
		if (o->threads[i] > o->files)
			bad("--threads %u: more threads than files (%" PRIu64 ")", o->threads[i],
			    o->files);
	if ((o->phases & FSB_TREE_MASK) && !o->tar) {
		if (phases_set)
			bad("--phases: the tree phases need --tar FILE");
		o->phases &= ~FSB_TREE_MASK;
	}
	if (optind == argc)
		bad("no target directory");
	for (; optind < argc; optind++) {
		char *a = argv[optind], *eq = strchr(a, '=');
		struct fsb_target *x;
		struct stat st;

		if (*nt == FSB_MAX_TARGETS)
			bad("at most %d target directories", FSB_MAX_TARGETS);
		x = &t[(*nt)++];
		x->label = x->dir = a;
		if (eq && eq != a && !memchr(a, '/', (size_t)(eq - a))) {
			*eq = '\0';
			x->dir = eq + 1;
		}
		if (!*x->dir)
			bad("target '%s': empty directory", a);
		if (stat(x->dir, &st))
			bad("target %s: %s", x->dir, strerror(errno));
		if (!S_ISDIR(st.st_mode))
			bad("target %s: not a directory", x->dir);
		if (access(x->dir, W_OK | X_OK))
			bad("target %s: not writable (%s)", x->dir, strerror(errno));
		for (int i = 0; i + 1 < *nt; i++)
			if (!strcmp(t[i].label, x->label))
				bad("target label '%s' given twice", x->label);
		if (snprintf(x->work, sizeof(x->work), "%s/fsbench.%ld", x->dir, (long)getpid()) >=
		    (int)sizeof(x->work))
			bad("target %s: path too long", x->dir);
	}
}

/* ---- machine and mount facts ------------------------------------------- */

/* Undoes mountinfo's octal escapes (\040 for a space) in place. */
static void unescape(char *s)
{
	char *d = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] && s[3]) {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*d++ = *s;
		}
	}
	*d = '\0';
}

/* The filesystem type and source of the mount holding @t->dir. */
static void mount_of(struct fsb_target *t)
{
	char real[PATH_MAX], line[8192];
	size_t best = 0;
	FILE *f;

	snprintf(t->fstype, sizeof(t->fstype), "?");
	if (!realpath(t->dir, real) || !(f = fopen("/proc/self/mountinfo", "re")))
		return;
	while (fgets(line, sizeof(line), f)) {
		char mp[4096], fstype[64], source[256], *dash = strstr(line, " - ");
		size_t n;

		if (!dash || sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1 ||
		    sscanf(dash + 3, "%63s %255s", fstype, source) != 2)
			continue;
		unescape(mp);
		n = strlen(mp);
		if (strncmp(real, mp, n) || (real[n] && real[n] != '/' && n > 1))
			continue;
		if (n >= best) {
			best = n;
			snprintf(t->fstype, sizeof(t->fstype), "%s", fstype);
			unescape(source);
			snprintf(t->source, sizeof(t->source), "%s", source);
		}
	}
	fclose(f);
}

static void cpu_model(char *out, size_t len)
{
	char line[512];
	FILE *f = fopen("/proc/cpuinfo", "re");

	snprintf(out, len, "?");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *c = strchr(line, ':');

		if (!strncmp(line, "model name", 10) && c) {
			snprintf(out, len, "%s", c + 2);
			out[strcspn(out, "\n")] = '\0';
			break;
		}
	}
	fclose(f);
}

/*
 * Disk writes. /proc/diskstats has a line per block device, partitions and
 * virtual devices included; its 10th field counts the sectors written, in
 * 512-byte units whatever the device's own sector size. A device counts when
 * /sys/block/NAME/device exists: /sys/block lists no partitions, and the
 * devices made by the kernel itself (loop, ram, zram, dm-*, md*, nbd) have no
 * device link, while a disk (SCSI/SATA, NVMe, virtio, Xen, MMC) has one. So
 * every byte is counted once, where it reaches hardware (or the hypervisor),
 * whatever stack of partitions, LVM, dm-crypt or loop files it went through;
 * an md mirror counts each copy, as its disks do write it. A name with '/'
 * in diskstats has '!' in sysfs (cciss/c0d0). With --disks, exactly the
 * devices named count, whatever they are: on a shared machine, a device of
 * its own (a loop device holding the targets) keeps others' writes out.
 */
int fsb_disk_written(const char *disks, uint64_t *bytes, char *names, size_t len)
{
	const char *path = getenv("FSBENCH_DISKSTATS");
	char line[512], name[128], sys[192];
	unsigned long long sect, sum = 0;
	size_t used = 0;
	int found = 0;
	FILE *f = fopen(path && *path ? path : "/proc/diskstats", "re");

	if (names && len)
		names[0] = '\0';
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		/* major minor name, then reads, reads merged, sectors read, ms
		 * reading, writes, writes merged, sectors written */
		if (sscanf(line, "%*u %*u %127s %*u %*u %*u %*u %*u %*u %llu", name, &sect) != 2)
			continue;
		if (disks && !in_list(disks, name))
			continue;
		for (char *c = name; *c; c++)
			if (*c == '/')
				*c = '!';
		snprintf(sys, sizeof(sys), "/sys/block/%s/device", name);
		if (!disks && access(sys, F_OK))
			continue;
		sum += sect;
		found = 1;
		/* a name that does not fit is left out whole */
		if (names && used + strlen(name) + 1 < len)
			used += (size_t)snprintf(names + used, len - used, "%s%s", used ? " " : "",
						 name);
	}
	fclose(f);
	if (!found)
		return -1;
	*bytes = (uint64_t)sum * 512;
	return 0;
}

/* ---- output ------------------------------------------------------------ */

static int is_meta(enum fsb_phase p)
{
	return (FSB_META_MASK >> p) & 1;
}

static const char *unit_of(enum fsb_phase p)
{
	if (p == FSB_SEQWRITE || p == FSB_SEQREAD)
		return "MiB/s";
	if (p == FSB_RANDREAD || p == FSB_RANDWRITE)
		return "IOPS";
	if ((FSB_TREE_MASK >> p) & 1)
		return "s";
	return "ops/s";
}

/* The number of the table: a rate, or seconds for the tree phases. */
static double value_of(const struct fsb_result *r)
{
	if ((FSB_TREE_MASK >> r->phase) & 1)
		return r->secs;
	if (r->secs <= 0)
		return 0;
	if (r->phase == FSB_SEQWRITE || r->phase == FSB_SEQREAD)
		return (double)r->bytes / 1048576.0 / r->secs;
	return (double)r->ops / r->secs;
}

static void row_name(const struct fsb_result *r, char *out, size_t len)
{
	if (is_meta(r->phase))
		snprintf(out, len, "%s t%u%s", fsb_phase_names[r->phase], r->threads,
			 r->shared ? " shared" : "");
	else
		snprintf(out, len, "%s", fsb_phase_names[r->phase]);
}

static const struct fsb_result *find_res(const struct fsb_target *t, const struct fsb_result *k)
{
	for (int i = 0; i < t->nres; i++)
		if (t->res[i].phase == k->phase && t->res[i].threads == k->threads &&
		    t->res[i].shared == k->shared)
			return &t->res[i];
	return NULL;
}

/* Rows in the order they first appear in any target. */
static int rows(const struct fsb_target *t, int nt, const struct fsb_result **out)
{
	int n = 0;

	for (int i = 0; i < nt; i++)
		for (int j = 0; j < t[i].nres; j++) {
			int k;

			for (k = 0; k < n; k++)
				if (out[k]->phase == t[i].res[j].phase &&
				    out[k]->threads == t[i].res[j].threads &&
				    out[k]->shared == t[i].res[j].shared)
					break;
			if (k == n && n < FSB_MAX_RESULTS * FSB_MAX_TARGETS)
				out[n++] = &t[i].res[j];
		}
	return n;
}

/* seqwrite and randwrite: the bytes they wrote, for the amplification. */
static int writes_data(enum fsb_phase p)
{
	return p == FSB_SEQWRITE || p == FSB_RANDWRITE;
}

static double amplification(const struct fsb_result *r)
{
	return (double)r->disk_written / (double)r->bytes;
}

/* The disk writes of each phase, and what they are per byte written. */
static void print_disk(FILE *out, const struct fsb_opts *o, const struct fsb_target *t, int nt,
		       const struct fsb_result *const *row, int n)
{
	char names[256], name[64];
	uint64_t now;
	int any = 0, amp = 0;

	for (int i = 0; i < nt; i++)
		for (int j = 0; j < t[i].nres; j++) {
			any |= t[i].res[j].has_disk;
			amp |= t[i].res[j].has_disk && writes_data(t[i].res[j].phase) &&
			       t[i].res[j].bytes;
		}
	if (!any)
		return;
	if (fsb_disk_written(o->disks, &now, names, sizeof(names)))
		snprintf(names, sizeof(names), "?");
	fprintf(out, "\ndisk MiB written (%s: %s)\n%-20s",
		o->disks ? "--disks" : "whole disks, machine-wide", names, "phase");
	for (int i = 0; i < nt; i++)
		fprintf(out, " %12.12s", t[i].label);
	fprintf(out, "\n");
	for (int k = 0; k < n; k++) {
		row_name(row[k], name, sizeof(name));
		fprintf(out, "%-20s", name);
		for (int i = 0; i < nt; i++) {
			const struct fsb_result *r = find_res(&t[i], row[k]);

			if (r && r->has_disk)
				fprintf(out, " %12.1f", (double)r->disk_written / 1048576.0);
			else
				fprintf(out, " %12s", "-");
		}
		fprintf(out, "\n");
	}
	if (!amp)
		return;
	fprintf(out, "\ndisk bytes / bytes written\n%-20s", "phase");
	for (int i = 0; i < nt; i++)
		fprintf(out, " %12.12s", t[i].label);
	fprintf(out, "\n");
	for (int k = 0; k < n; k++) {
		if (!writes_data(row[k]->phase))
			continue;
		row_name(row[k], name, sizeof(name));
		fprintf(out, "%-20s", name);
		for (int i = 0; i < nt; i++) {
			const struct fsb_result *r = find_res(&t[i], row[k]);

			if (r && r->has_disk && r->bytes)
				fprintf(out, " %12.2f", amplification(r));
			else
				fprintf(out, " %12s", "-");
		}
		fprintf(out, "\n");
	}
}

static void print_table(FILE *out, const struct fsb_opts *o, const struct fsb_target *t, int nt)
{
	static const struct fsb_result *row[FSB_MAX_RESULTS * FSB_MAX_TARGETS];
	int n = rows(t, nt, row);
	char name[64];

	fprintf(out, "fsbench: %" PRIu64 " files/variant, threads", o->files);
	for (int i = 0; i < o->nthreads; i++)
		fprintf(out, "%c%u", i ? ',' : ' ', o->threads[i]);
	fprintf(out,
		"%s; seq %" PRIu64 " MiB in %" PRIu64 " KiB; rand 4 KiB x %" PRIu64 "/%" PRIu64
		" over %" PRIu64 " MiB%s%s\n",
		o->shared ? " (+shared)" : "", o->seq_size >> 20, o->block >> 10, o->rand_reads,
		o->rand_writes, o->rand_size >> 20, o->drop_caches ? "; drop_caches" : "",
		o->odirect ? "; O_DIRECT read" : "");
	for (int i = 0; i < nt; i++)
		fprintf(out, "  %-12s %s (%s %s)%s\n", t[i].label, t[i].dir, t[i].fstype,
			t[i].source, t[i].failed ? " FAILED" : "");
	fprintf(out, "\n%-20s %-6s", "phase", "unit");
	for (int i = 0; i < nt; i++)
		fprintf(out, " %12.12s", t[i].label);
	fprintf(out, "\n");
	for (int k = 0; k < n; k++) {
		row_name(row[k], name, sizeof(name));
		fprintf(out, "%-20s %-6s", name, unit_of(row[k]->phase));
		for (int i = 0; i < nt; i++) {
			const struct fsb_result *r = find_res(&t[i], row[k]);

			if (!r)
				fprintf(out, " %12s", "-");
			else if ((FSB_TREE_MASK >> r->phase) & 1)
				fprintf(out, " %12.2f", value_of(r));
			else
				fprintf(out, " %12.0f", value_of(r));
		}
		fprintf(out, "\n");
	}
	fprintf(out, "\nlatency p50 / p99, us\n%-20s", "phase");
	for (int i = 0; i < nt; i++)
		fprintf(out, " %17.17s", t[i].label);
	fprintf(out, "\n");
	for (int k = 0; k < n; k++) {
		if (!row[k]->nlat)
			continue;
		row_name(row[k], name, sizeof(name));
		fprintf(out, "%-20s", name);
		for (int i = 0; i < nt; i++) {
			const struct fsb_result *r = find_res(&t[i], row[k]);
			char cell[64];

			if (r && r->nlat)
				snprintf(cell, sizeof(cell), "%.1f / %.1f", r->lat_us[1],
					 r->lat_us[3]);
			else
				snprintf(cell, sizeof(cell), "-");
			fprintf(out, " %17s", cell);
		}
		fprintf(out, "\n");
	}
	print_disk(out, o, t, nt, row, n);
	fflush(out);
}

static void jstr(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void json_params(FILE *f, const struct fsb_opts *o)
{
	int first = 1;

	fprintf(f, "  \"params\": {\"files\": %" PRIu64 ", \"threads\": [", o->files);
	for (int i = 0; i < o->nthreads; i++)
		fprintf(f, "%s%u", i ? ", " : "", o->threads[i]);
	fprintf(f,
		"], \"shared\": %s, \"seq_size\": %" PRIu64 ", \"block\": %" PRIu64
		", \"rand_size\": %" PRIu64 ", \"rand_io\": 4096, \"rand_reads\": %" PRIu64
		", \"rand_writes\": %" PRIu64 ", \"tar\": ",
		o->shared ? "true" : "false", o->seq_size, o->block, o->rand_size, o->rand_reads,
		o->rand_writes);
	if (o->tar)
		jstr(f, o->tar);
	else
		fputs("null", f);
	fputs(", \"grep\": ", f);
	jstr(f, o->grep);
	fputs(", \"phases\": [", f);
	for (int p = 0; p < FSB_NPHASES; p++)
		if (o->phases & (1u << p)) {
			fprintf(f, "%s\"%s\"", first ? "" : ", ", fsb_phase_names[p]);
			first = 0;
		}
	fprintf(f,
		"], \"drop_caches\": %s, \"odirect\": %s, \"fadvise_dontneed\": true, \"seed\": "
		"%" PRIu64 ", \"quick\": %s, \"clock\": \"CLOCK_MONOTONIC\", \"disks\": ",
		o->drop_caches ? "true" : "false", o->odirect ? "true" : "false", o->seed,
		o->quick ? "true" : "false");
	if (o->disks)
		jstr(f, o->disks);
	else
		fputs("null", f);
	fputs("},\n", f);
}

static void json_result(FILE *f, const struct fsb_result *r, int last)
{
	static const char *const lat[] = { "mean", "p50", "p90", "p99", "p99_9", "max" };

	fprintf(f,
		"        {\"phase\": \"%s\", \"threads\": %u, \"shared\": %s, \"ops\": %" PRIu64
		", \"bytes\": %" PRIu64 ", \"seconds\": %.6f, \"value\": %.3f, \"unit\": \"%s\"",
		fsb_phase_names[r->phase], r->threads, r->shared ? "true" : "false", r->ops,
		r->bytes, r->secs, value_of(r), unit_of(r->phase));
	fprintf(f, ", \"mono_start\": %.6f, \"mono_end\": %.6f", r->mono_start, r->mono_end);
	if (r->phase == FSB_SEQWRITE)
		fprintf(f, ", \"fsync_seconds\": %.6f", r->extra);
	if (r->phase == FSB_FIND)
		fprintf(f, ", \"entries\": %.0f", r->extra);
	if (r->has_disk) {
		fprintf(f, ", \"disk_bytes_written\": %" PRIu64, r->disk_written);
		if (writes_data(r->phase) && r->bytes)
			fprintf(f, ", \"disk_write_amplification\": %.4f", amplification(r));
	}
	if (r->nlat) {
		fprintf(f, ", \"latency_us\": {\"samples\": %d", r->nlat);
		for (int i = 0; i < 6; i++)
			fprintf(f, ", \"%s\": %.3f", lat[i], r->lat_us[i]);
		fputc('}', f);
	}
	fputs(", \"note\": ", f);
	jstr(f, r->note);
	fprintf(f, "}%s\n", last ? "" : ",");
}

/* "disks": the devices disk_bytes_written sums over, null when unknown. */
static void json_disks(FILE *f, const struct fsb_opts *o)
{
	char names[256], *save = NULL, *tok;
	uint64_t now;
	int first = 1;

	if (fsb_disk_written(o->disks, &now, names, sizeof(names))) {
		fputs(", \"disks\": null", f);
		return;
	}
	fputs(", \"disks\": [", f);
	for (tok = strtok_r(names, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		fputs(first ? "" : ", ", f);
		jstr(f, tok);
		first = 0;
	}
	fputc(']', f);
}

static int write_json(const struct fsb_opts *o, struct fsb_target *t, int nt)
{
	FILE *f = strcmp(json_path, "-") ? fopen(json_path, "w") : stdout;
	struct utsname u;
	char host[256] = "?", cpu[256], date[64];
	time_t now = time(NULL);
	int ret;

	if (!f) {
		fsb_err("--json %s: %s", json_path, strerror(errno));
		return -1;
	}
	uname(&u);
	gethostname(host, sizeof(host) - 1);
	cpu_model(cpu, sizeof(cpu));
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	fprintf(f, "{\n  \"tool\": \"fsbench\",\n  \"format\": 1,\n  \"date\": \"%s\",\n", date);
	fputs("  \"machine\": {\"hostname\": ", f);
	jstr(f, host);
	fputs(", \"kernel\": ", f);
	jstr(f, u.release);
	fputs(", \"cpu\": ", f);
	jstr(f, cpu);
	fprintf(f, ", \"cpus\": %ld, \"mem_bytes\": %lld", sysconf(_SC_NPROCESSORS_ONLN),
		(long long)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE));
	json_disks(f, o);
	fputs("},\n", f);
	json_params(f, o);
	fputs("  \"targets\": [\n", f);
	for (int i = 0; i < nt; i++) {
		fputs("    {\"label\": ", f);
		jstr(f, t[i].label);
		fputs(", \"dir\": ", f);
		jstr(f, t[i].dir);
		fputs(", \"fstype\": ", f);
		jstr(f, t[i].fstype);
		fputs(", \"source\": ", f);
		jstr(f, t[i].source);
		fprintf(f, ", \"failed\": %s,\n      \"results\": [\n",
			t[i].failed ? "true" : "false");
		for (int j = 0; j < t[i].nres; j++)
			json_result(f, &t[i].res[j], j + 1 == t[i].nres);
		fprintf(f, "      ]}%s\n", i + 1 == nt ? "" : ",");
	}
	fputs("  ]\n}\n", f);
	ret = ferror(f) ? -1 : 0;
	if (f != stdout ? fclose(f) : fflush(f))
		ret = -1;
	if (ret)
		fsb_err("--json %s: write failed", json_path);
	return ret;
}

int main(int argc, char **argv)
{
	static struct fsb_target t[FSB_MAX_TARGETS];
	struct fsb_opts o;
	int nt = 0, failed = 0;

	parse_args(argc, argv, &o, t, &nt);
	for (int i = 0; i < nt; i++) {
		mount_of(&t[i]);
		fprintf(stderr, "fsbench: %s (%s, %s)...\n", t[i].label, t[i].dir, t[i].fstype);
		if (fsb_run_target(&o, &t[i]))
			failed = 1;
	}
	/* With the JSON on stdout, the table goes to stderr. */
	print_table(json_path && !strcmp(json_path, "-") ? stderr : stdout, &o, t, nt);
	if (json_path && write_json(&o, t, nt))
		failed = 1;
	return failed;
}
