/*
 * hooks_zsub.c - the hooks unit tests' shared subscriber (hooks_zsub.h).
 */
#include "tests/unit/hooks_zsub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "hooks/hooks_info.h"

void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

struct midge_str S(const char *s)
{
	struct midge_str r = {s, s ? strlen(s) : 0};
	return r;
}

/* Frames not received read as "" (a failed check, not a crash). */
static char no_frame[1];

void frames_free(struct frames *f)
{
	for (int i = 0; i < f->n && i < 4; i++)
		free(f->data[i]);
	f->n = 0;
	for (int i = 0; i < 4; i++) {
		f->data[i] = no_frame;
		f->len[i] = 0;
	}
}

int recv_msg(void *sock, struct frames *f, int timeout_ms)
{
	frames_free(f);
	zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
	if (timeout_ms >= 0 && zmq_poll(&it, 1, timeout_ms) <= 0)
		return 0;
	int more = 1;
	while (more) {
		zmq_msg_t m;
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, sock, timeout_ms < 0 && f->n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
			zmq_msg_close(&m);
			return f->n;
		}
		if (f->n < 4) {
			size_t n = zmq_msg_size(&m);
			f->data[f->n] = malloc(n + 1);
			memcpy(f->data[f->n], zmq_msg_data(&m), n);
			f->data[f->n][n] = '\0';
			f->len[f->n] = n;
		}
		f->n++;
		more = zmq_msg_more(&m);
		zmq_msg_close(&m);
	}
	return f->n;
}

long long json_int(const char *json, size_t n, const char *key)
{
	char pat[64];
	snprintf(pat, sizeof pat, "\"%s\":", key);
	size_t pl = strlen(pat);
	for (size_t i = 0; i + pl < n; i++)
		if (!memcmp(json + i, pat, pl))
			return strtoll(json + i + pl, NULL, 10);
	return -1;
}

void *sub_open(const char *endpoint, const char *prefix)
{
	void *s = zmq_socket(zctx, ZMQ_SUB);
	int zero = 0;
	zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
	zmq_setsockopt(s, ZMQ_RCVHWM, &zero, sizeof zero);
	if (prefix)
		zmq_setsockopt(s, ZMQ_SUBSCRIBE, prefix, strlen(prefix));
	zmq_connect(s, endpoint);
	return s;
}

bool wait_prefixes(struct hooks *h, int i, size_t n)
{
	for (int k = 0; k < 2000; k++) {
		if (hooks_prefix_count(h, i) == n)
			return true;
		sleep_ms(1);
	}
	return false;
}
