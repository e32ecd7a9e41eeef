// SPDX-License-Identifier: MIT
/*
 * mkfs.kvfs STORE [-b BLOCK_SIZE] [-L LABEL] [-f]: make a kvfs filesystem.
 *
 * kvfs_mkfs does the work and all the checking (an existing store or a
 * non-empty directory is refused without -f, a mounted store always); this
 * file parses the command line, then opens the new filesystem through the
 * library, as the daemon would, to print what was made. Exit status: 0 made,
 * 1 anything else (bad usage included), as mkfs(8) tools do.
 */
#include "kvfs.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *progname = "mkfs.kvfs";

static void usage(FILE *out)
{
	fprintf(out,
		"usage: %s [-b BLOCK_SIZE] [-L LABEL] [-f] [-q] STORE\n"
		"\n"
		"Make an empty kvfs filesystem in directory STORE (created if missing):\n"
		"a libkv store holding the superblock, the root directory and lost+found,\n"
		"both owned by the caller. Then mount it with: kvfs STORE MOUNTPOINT\n"
		"\n"
		"  -b BLOCK_SIZE  file data block size: a power of two from 1024 to 65536,\n"
		"                 in bytes or with a K suffix (default 4096)\n"
		"  -L LABEL       a label of at most 63 bytes\n"
		"  -f             wipe STORE if it holds a store or other files\n"
		"                 (never a store that is mounted)\n"
		"  -q             print nothing but errors\n"
		"  -h, --help     this text\n",
		progname);
}

/* "4096" or "4k"/"4K"/"4KiB"; 0 if not a number of that shape. */
static unsigned long parse_block_size(const char *s)
{
	char *end;
	unsigned long v;

	if (!isdigit((unsigned char)*s))
		return 0;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || v > 1ul << 20)
		return 0;
	if (*end == 'k' || *end == 'K') {
		v <<= 10;
		end++;
		if (!strcmp(end, "iB") || !strcmp(end, "B"))
			end += strlen(end);
	}
	return *end ? 0 : v;
}

static void print_made(const char *store, int quiet)
{
	char err[512] = "", uuid[40], mode[11];
	static const char perms[] = "rwxrwxrwx";
	struct kvfs_info info;
	struct kvfs_entry lf;
	struct stat root;
	struct kvfs *fs;
	int e, lf_ok, n;

	if (quiet)
		return;
	e = kvfs_open(store, NULL, &fs, err, sizeof(err));
	if (e) {
		/* Made, but it does not open: say so, it is not what we want. */
		fprintf(stderr, "%s: made %s, but it does not open: %s\n", progname, store,
			err[0] ? err : strerror(-e));
		exit(1);
	}
	kvfs_info(fs, &info);
	e = kvfs_getattr(fs, KVFS_ROOT_INO, &root);
	lf_ok = !kvfs_lookup(fs, KVFS_ROOT_INO, "lost+found", &lf);
	n = 0;
	for (int i = 0; i < 16; i++) {
		n += snprintf(uuid + n, sizeof(uuid) - (size_t)n, "%02x", info.uuid[i]);
		if (i == 3 || i == 5 || i == 7 || i == 9)
			uuid[n++] = '-';
	}
	printf("%s: made a kvfs filesystem in %s\n", progname, store);
	printf("  format version  %u\n", info.format_version);
	printf("  block size      %u bytes (files up to %u bytes are kept inline)\n",
	       info.block_size, info.inline_max);
	printf("  label           %s\n", info.label[0] ? info.label : "(none)");
	printf("  uuid            %s\n", uuid);
	if (!e) {
		mode[0] = 'd';
		for (int i = 0; i < 9; i++)
			mode[i + 1] = root.st_mode & (0400 >> i) ? perms[i] : '-';
		mode[10] = '\0';
		printf("  root            inode %llu, %s, owner %u:%u\n",
		       (unsigned long long)KVFS_ROOT_INO, mode, (unsigned)root.st_uid,
		       (unsigned)root.st_gid);
	}
	if (lf_ok) {
		printf("  lost+found      inode %llu, mode %04o\n", (unsigned long long)lf.ino,
		       (unsigned)(lf.attr.st_mode & 07777));
		kvfs_forget(fs, lf.ino, 1);
	}
	e = kvfs_close(fs);
	if (e) {
		fprintf(stderr, "%s: %s: closing the new filesystem: %s\n", progname, store,
			strerror(-e));
		exit(1);
	}
	printf("Mount it with: kvfs %s MOUNTPOINT\n", store);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct kvfs_mkfs_options o = { 0 };
	char err[512] = "";
	unsigned long bs;
	int c, e, quiet = 0;

	o.root_uid = getuid();
	o.root_gid = getgid();
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":b:L:fqh", longopts, NULL)) != -1) {
		switch (c) {
		case 'b':
			bs = parse_block_size(optarg);
			if (!bs || bs > 65536) {
				fprintf(stderr,
					"%s: -b %s: the block size must be a power of two from "
					"1024 to 65536 (bytes, or with a K suffix)\n",
					progname, optarg);
				return 1;
			}
			o.block_size = (uint32_t)bs;
			break;
		case 'L':
			o.label = optarg;
			break;
		case 'f':
			o.force = 1;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case ':':
			fprintf(stderr, "%s: -%c needs an argument (see %s --help)\n", progname,
				optopt, progname);
			return 1;
		default:
			if (optopt)
				fprintf(stderr, "%s: unknown option -%c (see %s --help)\n",
					progname, optopt, progname);
			else
				fprintf(stderr, "%s: unknown option %s (see %s --help)\n", progname,
					argv[optind - 1], progname);
			return 1;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "%s: %s (see %s --help)\n", progname,
			optind == argc ? "missing STORE" : "more than one STORE given", progname);
		return 1;
	}
	e = kvfs_mkfs(argv[optind], &o, err, sizeof(err));
	if (e) {
		fprintf(stderr, "%s: %s\n", progname, err[0] ? err : strerror(-e));
		return 1;
	}
	print_made(argv[optind], quiet);
	return 0;
}
