/*
 * engine_bench.c - routing rate of the engine without I/O.
 *
 * N subscribers (half MQTT 3.1.1, half MQTT 5) subscribe to one topic;
 * one publisher sends M messages through engine_conn_input(), the framing
 * loop the transport uses. The io counts bytes and does nothing else, so the
 * figure is the engine's own cost per delivery: decode once, match once,
 * per receiver a window check and a head handed to io->send with the
 * shared payload frame.
 *
 *   bench/engine-bench [subscribers [messages]]
 *
 * Prints one line per scenario: deliveries per second of CPU time (per
 * core: the engine is single-threaded).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/codec.h"
#include "engine/engine.h"

struct bench_io {
	uint64_t bytes;
	uint64_t sends;
	uint64_t events;
};

static int bench_send(void *ctx, void *handle, const uint8_t *head, size_t head_len,
		      struct frame *tail, bool droppable)
{
	struct bench_io *b = ctx;
	b->bytes += head_len + (tail ? tail->len : 0);
	b->sends++;
	return 0;
}

static void bench_close(void *ctx, void *handle)
{
}

static void bench_event(void *ctx, const struct midge_event *ev)
{
	struct bench_io *b = ctx;
	b->events++;
}

static double now_s(void)
{
	struct timespec ts;
	/* CPU time of this thread: the machine may be shared, and time spent
	 * descheduled is not the engine's cost */
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Feeds complete packets given as bytes. */
static int feed(struct engine *e, struct engine_conn *c, const uint8_t *p, size_t n, uint64_t now)
{
	struct codec_feed fo;
	return engine_conn_input(e, c, p, n, now, &fo);
}

/* Appends an MQTT string (16-bit length, bytes) at b + n; returns the new n. */
static size_t put_string(uint8_t *b, size_t n, const char *str)
{
	size_t len = strlen(str);
	b[n++] = (uint8_t)(len >> 8);
	b[n++] = (uint8_t)len;
	memcpy(b + n, str, len);
	return n + len;
}

static size_t build_connect(uint8_t *b, uint8_t level, const char *cid)
{
	size_t n = put_string(b, 2, "MQTT");
	b[0] = 0x10;
	b[n++] = level;
	b[n++] = 0x02; /* clean */
	b[n++] = 0;    /* no keepalive */
	b[n++] = 0;
	if (level == 5)
		b[n++] = 0; /* no properties */
	n = put_string(b, n, cid);
	b[1] = (uint8_t)(n - 2);
	return n;
}

static size_t build_subscribe(uint8_t *b, uint8_t level, const char *filter, uint8_t qos)
{
	size_t n = 2;
	b[0] = 0x82;
	b[n++] = 0; /* packet id 1 */
	b[n++] = 1;
	if (level == 5)
		b[n++] = 0;
	n = put_string(b, n, filter);
	b[n++] = qos;
	b[1] = (uint8_t)(n - 2);
	return n;
}

static void run(unsigned subs, unsigned msgs, uint8_t qos, bool events, size_t payload_len)
{
	struct bench_io b = {0};
	struct engine_config cfg;
	struct engine_io io = {&b, bench_send, bench_close, events ? bench_event : NULL, NULL, NULL};
	engine_config_default(&cfg);
	cfg.max_inflight = 65535;
	cfg.receive_max = 65535;
	struct engine *e = engine_new(&cfg, &io, NULL);
	struct engine_conn **c = calloc(subs + 1, sizeof *c);
	int *handles = calloc(subs + 1, sizeof *handles);
	uint8_t buf[256];
	uint64_t now = 1;
	if (!e || !c || !handles) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	for (unsigned i = 0; i <= subs; i++) {
		char cid[32];
		uint8_t level = (i % 2) ? 5 : 4;
		snprintf(cid, sizeof cid, "c%u", i);
		c[i] = engine_conn_open(e, &handles[i], "127.0.0.1", 1, false, now);
		feed(e, c[i], buf, build_connect(buf, level, cid), now);
		if (i > 0)
			feed(e, c[i], buf, build_subscribe(buf, level, "bench/topic", qos), now);
	}
	/* the publisher is c[0], MQTT 3.1.1 */
	uint8_t *pub = malloc(16 + payload_len);
	size_t tl = strlen("bench/topic"), n = 0;
	size_t rem = 2 + tl + (qos ? 2 : 0) + payload_len;
	pub[n++] = (uint8_t)(0x30 | (qos << 1));
	do {
		uint8_t d = rem % 128;
		rem /= 128;
		pub[n++] = (uint8_t)(d | (rem ? 0x80 : 0));
	} while (rem);
	pub[n++] = 0;
	pub[n++] = (uint8_t)tl;
	memcpy(pub + n, "bench/topic", tl);
	n += tl;
	size_t pid_at = n;
	if (qos)
		n += 2;
	memset(pub + n, 'x', payload_len);
	n += payload_len;

	uint8_t ack[4] = {0x40, 0x02, 0, 0};
	b.sends = 0;
	double t0 = now_s();
	for (unsigned m = 0; m < msgs; m++) {
		if (qos) {
			uint16_t pid = (uint16_t)(m % 60000 + 1);
			pub[pid_at] = (uint8_t)(pid >> 8);
			pub[pid_at + 1] = (uint8_t)pid;
		}
		feed(e, c[0], pub, n, now);
		if (qos == 1) {
			/* every subscriber acknowledges its copy: the window stays open */
			uint16_t spid = (uint16_t)(m % 65535 + 1);
			ack[2] = (uint8_t)(spid >> 8);
			ack[3] = (uint8_t)spid;
			for (unsigned i = 1; i <= subs; i++)
				feed(e, c[i], ack, sizeof ack, now);
		}
	}
	double dt = now_s() - t0;
	uint64_t deliveries = (uint64_t)subs * msgs;
	printf("engine fan-out QoS %u, %u subscribers x %u messages, %zu-byte payload%s: "
	       "%.1f M deliveries/s (%.1f ns each), %.2f GB/s of output\n",
	       qos, subs, msgs, payload_len, events ? ", events on" : "", deliveries / dt / 1e6,
	       dt * 1e9 / (double)deliveries, (double)b.bytes / dt / 1e9);
	for (unsigned i = 0; i <= subs; i++)
		engine_conn_closed(e, c[i], NULL, now);
	engine_free(e);
	free(pub);
	free(handles);
	free(c);
}

int main(int argc, char **argv)
{
	unsigned subs = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 1000;
	unsigned msgs = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 20000;
	run(subs, msgs, 0, false, 64);
	run(subs, msgs, 0, true, 64);
	run(subs, msgs / 4, 1, false, 64);
	return 0;
}
