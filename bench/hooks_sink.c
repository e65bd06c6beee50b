/*
 * midge-hooks-sink - a consumer of midge's ZeroMQ events for bench/compare.
 *
 * Connects a SUB socket to midge's event publisher, subscribes to the
 * prefixes given (default "message."), and counts what arrives until
 * SIGTERM/SIGINT or the time limit. On the signal it keeps reading until the
 * socket has been quiet for --linger seconds, so events still in flight
 * when the load generator finished are counted, then prints one line:
 *
 *   SINK events=N published=N delivered=N acked=N dropped_ev=N other=N
 *        midge_dropped=N seq_first=N seq_last=N bytes=N cpu_s=S ok=1
 *
 * midge_dropped is the largest "dropped" field seen: how many events midge
 * itself could not hand to this socket (the subscriber's queue was at the
 * high-water mark). It must keep up, or it measures itself: one thread,
 * zmq_msg_recv into reused messages, the JSON is only looked at for its
 * head (seq, dropped), never parsed.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <zmq.h>

static volatile sig_atomic_t stop_asked;

static void on_signal(int sig)
{
	(void)sig;
	stop_asked = 1;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* The number after `"key":` in the first bytes of the JSON head, or -1. */
static int64_t head_num(const char *p, size_t n, const char *key)
{
	size_t kl = strlen(key);
	if (n > 96)
		n = 96; /* the fixed head: {"schema":1,"seq":N,"dropped":N,... */
	for (size_t i = 0; i + kl < n; i++) {
		if (p[i] == '"' && memcmp(p + i + 1, key, kl) == 0 && p[i + 1 + kl] == '"' &&
		    i + kl + 2 < n && p[i + kl + 2] == ':') {
			int64_t v = 0;
			size_t j = i + kl + 3;
			while (j < n && p[j] == ' ')
				j++;
			if (j >= n || p[j] < '0' || p[j] > '9')
				return -1;
			while (j < n && p[j] >= '0' && p[j] <= '9')
				v = v * 10 + (p[j++] - '0');
			return v;
		}
	}
	return -1;
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

struct counts {
	uint64_t events, published, delivered, acked, dropped_ev, other, malformed;
	int64_t midge_dropped, seq_first, seq_last;
};

/* One compact body (docs/events.md): type, seq and dropped. */
static void count_body(struct counts *c, const uint8_t *b, size_t n)
{
	if (n < 40 || b[0] != 1) {
		c->malformed++;
		return;
	}
	switch (b[1]) {
	case 7: c->published++; break;
	case 8: c->delivered++; break;
	case 9: c->acked++; break;
	case 10: c->dropped_ev++; break;
	default: c->other++; break;
	}
	c->events++;
	int64_t seq = (int64_t)le64(b + 4), d = (int64_t)le64(b + 12);
	if (c->seq_first < 0)
		c->seq_first = seq;
	c->seq_last = seq;
	if (d > c->midge_dropped)
		c->midge_dropped = d;
}

/* A compact frame: "<key>\0<body>", or "<name>/\0" and a batch. Returns
 * false if it is not one. */
static bool count_compact(struct counts *c, const uint8_t *p, size_t n)
{
	const uint8_t *z = memchr(p, 0, n);
	if (!z)
		return false;
	size_t klen = (size_t)(z - p), at = klen + 1;
	if (klen && p[klen - 1] == '/') {
		if (n - at < 4)
			return false;
		uint32_t count = le32(p + at);
		at += 4;
		for (uint32_t i = 0; i < count; i++) {
			if (n - at < 4 || n - at - 4 < le32(p + at)) {
				c->malformed++;
				return true;
			}
			uint32_t len = le32(p + at);
			count_body(c, p + at + 4, len);
			at += 4 + (size_t)len;
		}
		return true;
	}
	count_body(c, p + at, n - at);
	return true;
}

static bool starts(const char *p, size_t n, const char *pre)
{
	size_t l = strlen(pre);
	return n >= l && memcmp(p, pre, l) == 0;
}

static void usage(FILE *f)
{
	fputs("usage: midge-hooks-sink [options] ENDPOINT [PREFIX...]\n"
	      "  ENDPOINT        midge's midge_hooks_endpoint, e.g. tcp://127.0.0.1:5883\n"
	      "  PREFIX          event prefixes to subscribe to (default: message.)\n"
	      "  -t SECONDS      stop after this long whatever happens (600)\n"
	      "  -l SECONDS      after SIGTERM, stop once nothing arrived for this long (0.5)\n",
	      f);
}

int main(int argc, char **argv)
{
	double limit = 600, linger = 0.5;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-t") && i + 1 < argc)
			limit = atof(argv[++i]);
		else if (!strcmp(argv[i], "-l") && i + 1 < argc)
			linger = atof(argv[++i]);
		else if (!strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 1;
		}
	}
	if (i >= argc || limit <= 0 || linger < 0) {
		usage(stderr);
		return 1;
	}
	const char *endpoint = argv[i++];

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	void *ctx = zmq_ctx_new();
	void *sock = ctx ? zmq_socket(ctx, ZMQ_SUB) : NULL;
	if (!sock) {
		fprintf(stderr, "midge-hooks-sink: zmq: %s\n", zmq_strerror(zmq_errno()));
		return 2;
	}
	/* No limit on our side: what we measure is whether midge's own queue
	 * (midge_hooks_hwm) overflows, not ours. */
	int hwm = 0, zero = 0;
	zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
	zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
	if (i == argc) {
		zmq_setsockopt(sock, ZMQ_SUBSCRIBE, "message.", 8);
	} else {
		for (; i < argc; i++)
			zmq_setsockopt(sock, ZMQ_SUBSCRIBE, argv[i], strlen(argv[i]));
	}
	if (zmq_connect(sock, endpoint) != 0) {
		fprintf(stderr, "midge-hooks-sink: connect %s: %s\n", endpoint,
			zmq_strerror(zmq_errno()));
		return 2;
	}

	struct counts c = {.seq_first = -1, .seq_last = -1};
	uint64_t bytes = 0;
	double t0 = now_s(), last_rx = t0;
	zmq_msg_t m;
	zmq_msg_init(&m);
	while (!(stop_asked && now_s() - last_rx >= linger) && now_s() - t0 < limit) {
		zmq_pollitem_t pi = { sock, 0, ZMQ_POLLIN, 0 };
		if (zmq_poll(&pi, 1, 50) <= 0)
			continue;
		/* everything queued, without polling between messages */
		for (;;) {
			int n = zmq_msg_recv(&m, sock, ZMQ_DONTWAIT);
			if (n < 0)
				break;
			const char *p = zmq_msg_data(&m);
			size_t len = zmq_msg_size(&m);
			bytes += len;
			last_rx = now_s();
			if (!zmq_msg_more(&m) && count_compact(&c, (const uint8_t *)p, len))
				continue;
			if (starts(p, len, "message.published"))
				c.published++;
			else if (starts(p, len, "message.delivered"))
				c.delivered++;
			else if (starts(p, len, "message.acked"))
				c.acked++;
			else if (starts(p, len, "message.dropped"))
				c.dropped_ev++;
			else
				c.other++;
			c.events++;
			int frame = 1;
			while (zmq_msg_more(&m)) {
				if (zmq_msg_recv(&m, sock, 0) < 0)
					break;
				frame++;
				bytes += zmq_msg_size(&m);
				if (frame == 2) {
					const char *j = zmq_msg_data(&m);
					size_t jl = zmq_msg_size(&m);
					int64_t seq = head_num(j, jl, "seq");
					int64_t d = head_num(j, jl, "dropped");
					if (seq < 0 || d < 0)
						c.malformed++;
					if (c.seq_first < 0)
						c.seq_first = seq;
					c.seq_last = seq;
					if (d > c.midge_dropped)
						c.midge_dropped = d;
				}
			}
			last_rx = now_s();
		}
	}
	zmq_msg_close(&m);
	zmq_close(sock);
	zmq_ctx_term(ctx);
	printf("SINK events=%" PRIu64 " published=%" PRIu64 " delivered=%" PRIu64 " acked=%" PRIu64
	       " dropped_ev=%" PRIu64 " other=%" PRIu64 " midge_dropped=%" PRId64
	       " seq_first=%" PRId64 " seq_last=%" PRId64 " malformed=%" PRIu64 " bytes=%" PRIu64
	       " cpu_s=%.3f ok=%d\n",
	       c.events, c.published, c.delivered, c.acked, c.dropped_ev, c.other, c.midge_dropped,
	       c.seq_first, c.seq_last, c.malformed, bytes, cpu_s(), stop_asked ? 1 : 0);
	return 0;
}
