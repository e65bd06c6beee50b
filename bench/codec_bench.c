/*
 * codec_bench.c - throughput of the codec on one core: packets/s and MB/s
 * for scan + decode and for encode, per packet shape and for a realistic
 * mix. Every workload runs for a bounded time (default 0.5 s, or the
 * seconds given as argv[1]) over a buffer of packets that stays in cache,
 * as a broker's receive buffer does. Rates are per second of CPU time of
 * the benchmark thread (one core). Not a test: it prints figures, and
 * exits 1 only if a packet fails to decode (which would make the figures
 * meaningless).
 *
 *   bench/codec-bench [seconds]      (or: make bench-codec)
 */
#include "codec/codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define COPIES 1024

/* CPU time of this thread: on a shared machine the wall clock also counts
 * the time other processes held the core, which says nothing about the
 * codec. The wall-clock share is printed too, so a loaded run shows. */
static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall_start;
static double cpu_start;

#define BUF(s) ((struct codec_buf){(const uint8_t *)(s), sizeof(s) - 1})

static const uint8_t payload42[42] = "{\"t\":21.5,\"h\":40.1,\"ts\":1700000000,\"id\":7}";

/* The packet shapes of the mix. */
static struct codec_packet shape_publish(uint8_t qos, uint8_t version)
{
	struct codec_packet p;

	memset(&p, 0, sizeof(p));
	p.type = CODEC_PUBLISH;
	p.version = version;
	p.flags = (uint8_t)(qos << 1);
	p.u.publish.qos = qos;
	p.u.publish.packet_id = qos ? 1234 : 0;
	/* 64 bytes in all for QoS 0 in 3.1.1: 2 header + 2 + 18 topic + 42. */
	p.u.publish.topic = BUF("sensors/room1/temp");
	p.u.publish.payload.p = payload42;
	p.u.publish.payload.len = sizeof(payload42);
	return p;
}

static struct codec_packet shape_subscribe(void)
{
	static const struct codec_sub_entry e[] = {
		{BUF("sensors/+/temp"), 0, 1, false, false, 0},
		{BUF("alerts/#"), 0, 2, true, false, 1},
	};
	struct codec_packet p;

	memset(&p, 0, sizeof(p));
	p.type = CODEC_SUBSCRIBE;
	p.version = CODEC_V5;
	p.flags = 2;
	p.u.subscribe.packet_id = 7;
	p.u.subscribe.entries = e;
	p.u.subscribe.count = 2;
	p.u.subscribe.props.present = CODEC_PROP_BIT(CODEC_PROP_SUBSCRIPTION_ID);
	p.u.subscribe.props.sub_id = 42;
	return p;
}

static const uint8_t users[] = {0x26, 0x00, 0x03, 'a', 'p', 'p', 0x00, 0x04, 'd', 'e', 'm', 'o'};

static struct codec_packet shape_connect(void)
{
	struct codec_packet p;
	struct codec_connect *c = &p.u.connect;

	memset(&p, 0, sizeof(p));
	p.type = CODEC_CONNECT;
	p.version = CODEC_V5;
	c->clean_start = true;
	c->keep_alive = 60;
	c->props.present = CODEC_PROP_BIT(CODEC_PROP_SESSION_EXPIRY) |
			   CODEC_PROP_BIT(CODEC_PROP_RECEIVE_MAX) |
			   CODEC_PROP_BIT(CODEC_PROP_MAX_PACKET_SIZE) |
			   CODEC_PROP_BIT(CODEC_PROP_TOPIC_ALIAS_MAX) |
			   CODEC_PROP_BIT(CODEC_PROP_USER_PROPERTY);
	c->props.session_expiry = 3600;
	c->props.receive_max = 100;
	c->props.max_packet_size = 1 << 20;
	c->props.topic_alias_max = 10;
	c->props.raw.p = users;
	c->props.raw.len = sizeof(users);
	c->props.user_count = 1;
	c->client_id = BUF("sensor-gateway-0001");
	c->has_username = c->has_password = true;
	c->username = BUF("gateway");
	c->password = BUF("s3cr3t-passw0rd");
	c->will = true;
	c->will_qos = 1;
	c->will_topic = BUF("status/sensor-gateway-0001");
	c->will_payload = BUF("offline");
	c->will_props.present = CODEC_PROP_BIT(CODEC_PROP_WILL_DELAY);
	c->will_props.will_delay = 5;
	return p;
}

struct stream {
	uint8_t *buf;
	size_t len;
	size_t packets;
	uint8_t version;
};

/* A buffer holding `n` packets drawn from shapes[] in the pattern given
 * by pick[] (indices into shapes, repeated). */
static struct stream build(const struct codec_packet *shapes, const int *pick, size_t npick,
			   size_t n, uint8_t version)
{
	struct stream s = {NULL, 0, n, version};
	size_t cap = 0;

	for (size_t i = 0; i < n; i++)
		cap += codec_encode_size(&shapes[pick[i % npick]]);
	s.buf = malloc(cap);
	if (!s.buf)
		exit(2);
	for (size_t i = 0; i < n; i++)
		s.len += codec_encode(&shapes[pick[i % npick]], s.buf + s.len, cap - s.len);
	if (s.len != cap)
		exit(2);
	return s;
}

/* Scans and decodes the whole stream once; returns a checksum (so the
 * work cannot be optimised away), or -1 on a decode error. */
static long decode_stream(const struct stream *s)
{
	const uint8_t *p = s->buf, *end = s->buf + s->len;
	struct codec_frame fr;
	struct codec_packet pkt;
	long sum = 0;

	while (p < end) {
		if (codec_frame_scan(p, (size_t)(end - p), 0, &fr) != 0)
			return -1;
		if (codec_decode(fr.first, p + fr.header_len, fr.remaining, s->version, &pkt) != 0)
			return -1;
		sum += pkt.type + (pkt.type == CODEC_PUBLISH ? (long)pkt.u.publish.payload.len : 0);
		p += fr.header_len + fr.remaining;
	}
	return sum;
}

static void report(const char *what, double secs, double packets, double bytes)
{
	double w = wall() - wall_start;
	double c = now() - cpu_start;

	printf("%-44s %8.2f Mpkt/s %9.1f MB/s %6.1f ns/pkt  cpu/wall %3.0f%%\n", what,
	       packets / secs / 1e6, bytes / secs / 1e6, secs / packets * 1e9,
	       w > 0 ? 100.0 * c / w : 0.0);
}

static int bench_decode(const char *what, const struct stream *s, double seconds)
{
	double t0, t;
	double rounds = 0;

	wall_start = wall();
	cpu_start = t0 = now();
	long sum = 0;

	do {
		long r = decode_stream(s);
		if (r < 0) {
			printf("%s: decode failed\n", what);
			return 1;
		}
		sum += r;
		rounds++;
	} while ((t = now()) - t0 < seconds);
	report(what, t - t0, rounds * (double)s->packets, rounds * (double)s->len);
	return sum == 0;
}

static void bench_encode(const char *what, const struct codec_packet *shapes, const int *pick,
			 size_t npick, double seconds)
{
	static uint8_t out[COPIES * 256];
	double t0, t, packets = 0, bytes = 0;
	size_t sum = 0;

	wall_start = wall();
	cpu_start = t0 = now();
	do {
		size_t off = 0;
		for (size_t i = 0; i < COPIES; i++) {
			size_t n = codec_encode(&shapes[pick[i % npick]], out + off, sizeof(out) - off);
			off += n;
		}
		sum += out[off / 2];
		packets += COPIES;
		bytes += (double)off;
	} while ((t = now()) - t0 < seconds);
	report(what, t - t0, packets, bytes);
	if (sum == 1)
		printf(" ");
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 0.5;
	int fail = 0;

	if (seconds <= 0 || seconds > 60)
		seconds = 0.5;
	struct codec_packet shapes[] = {
		shape_publish(0, CODEC_V311), /* 0: 64 bytes */
		shape_publish(1, CODEC_V311), /* 1 */
		shape_publish(0, CODEC_V5),   /* 2 */
		shape_publish(1, CODEC_V5),   /* 3 */
		shape_subscribe(),            /* 4 */
		shape_connect(),              /* 5 */
	};
	static const int q0[] = {0}, q1[] = {1}, q0v5[] = {2}, q1v5[] = {3}, sub[] = {4},
			 conn[] = {5};
	/* The mix: per 20 packets, 12 PUBLISH QoS 0 and 6 QoS 1 (v5), one
	 * SUBSCRIBE and one CONNECT with properties. */
	static const int mix[] = {2, 2, 3, 2, 2, 3, 2, 4, 2, 3, 2, 2, 3, 2, 5, 2, 3, 2, 2, 3};
	static const struct {
		const char *what;
		const int *pick;
		size_t npick;
		uint8_t version;
	} decodes[] = {
		{"scan+decode PUBLISH QoS 0, 64 B, 3.1.1", q0, 1, CODEC_V311},
		{"scan+decode PUBLISH QoS 1, 3.1.1", q1, 1, CODEC_V311},
		{"scan+decode PUBLISH QoS 0, MQTT 5", q0v5, 1, CODEC_V5},
		{"scan+decode PUBLISH QoS 1, MQTT 5", q1v5, 1, CODEC_V5},
		{"scan+decode SUBSCRIBE, MQTT 5", sub, 1, CODEC_V5},
		{"scan+decode CONNECT with properties, MQTT 5", conn, 1, CODEC_V5},
		{"scan+decode mix (MQTT 5)", mix, sizeof(mix) / sizeof(mix[0]), CODEC_V5},
	};

	printf("codec bench: %.2f s per line, %d packets per buffer, packet sizes:"
	       " publish q0 %zu, q1 %zu, v5 q0 %zu, v5 q1 %zu, subscribe %zu, connect %zu bytes\n",
	       seconds, COPIES, codec_encode_size(&shapes[0]), codec_encode_size(&shapes[1]),
	       codec_encode_size(&shapes[2]), codec_encode_size(&shapes[3]),
	       codec_encode_size(&shapes[4]), codec_encode_size(&shapes[5]));

	for (size_t i = 0; i < sizeof(decodes) / sizeof(decodes[0]); i++) {
		struct stream s = build(shapes, decodes[i].pick, decodes[i].npick, COPIES, decodes[i].version);
		fail |= bench_decode(decodes[i].what, &s, seconds);
		free(s.buf);
	}

	bench_encode("encode PUBLISH QoS 0, 64 B, 3.1.1", shapes, q0, 1, seconds);
	bench_encode("encode PUBLISH QoS 1, MQTT 5", shapes, q1v5, 1, seconds);
	bench_encode("encode SUBSCRIBE, MQTT 5", shapes, sub, 1, seconds);
	bench_encode("encode CONNECT with properties, MQTT 5", shapes, conn, 1, seconds);
	bench_encode("encode mix (MQTT 5)", shapes, mix, sizeof(mix) / sizeof(mix[0]), seconds);
	return fail ? 1 : 0;
}
