// SPDX-License-Identifier: MIT
/*
 * fsck.kvfs's main(): the streams, the terminal and SIGINT; the work is
 * fsck_main() (tools/fsck.c).
 */
#include "fsck.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

static void on_sigint(int sig)
{
	fsck_cancel = 1;
}

int main(int argc, char **argv)
{
	struct fsck_io io = { stdin, stdout, stderr, isatty(0) && isatty(1), NULL };
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	return fsck_main(argc, argv, &io);
}
