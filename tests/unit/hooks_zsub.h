/*
 * hooks_zsub.h - what the hooks unit tests share: a ZeroMQ subscriber on
 * the publisher's endpoint and the reading of what it gets.
 */
#ifndef MIDGE_TEST_HOOKS_ZSUB_H
#define MIDGE_TEST_HOOKS_ZSUB_H

#include <stdbool.h>
#include <stddef.h>

#include "hooks/hooks.h"
#include "midge.h"

/* The tests' ZeroMQ context (made by main). */
extern void *zctx;

void sleep_ms(long ms);
struct midge_str S(const char *s);

/* One message's frames (the first four), malloc'd and NUL-terminated
 * ("" past the last one received); recv_msg() frees what the struct held
 * before. Start zeroed. */
struct frames {
	int n;
	size_t len[4];
	char *data[4];
};

/* Receives one whole message within timeout_ms (< 0: only if one is
 * there now). Returns its frame count, 0 when none came. */
int recv_msg(void *sock, struct frames *f, int timeout_ms);
void frames_free(struct frames *f);
/* The integer after "key": in a JSON text, or -1. */
long long json_int(const char *json, size_t n, const char *key);
/* A SUB socket on endpoint, subscribed to prefix (NULL: none), with no
 * receive high-water mark. */
void *sub_open(const char *endpoint, const char *prefix);
/* Waits until the publisher knows n prefixes on socket i (2 s at most). */
bool wait_prefixes(struct hooks *h, int i, size_t n);

#endif
