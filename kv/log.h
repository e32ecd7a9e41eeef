/* SPDX-License-Identifier: MIT */
/*
 * log.h - the engine's diagnostics go to the options' log callback (db.c).
 * Modules below the db (tables, manifest, check) log through this, with
 * the file and offset of what they found.
 */
#ifndef KV_LOG_H
#define KV_LOG_H

#include "kv.h"

void kv_log_opt(const struct kv_options *opt, enum kv_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif /* KV_LOG_H */
