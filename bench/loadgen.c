/*
 * midge-loadgen - an MQTT load generator for comparing brokers.
 *
 * One thread, one libuv loop, non-blocking TCP sockets with TCP_NODELAY.
 * Every packet is encoded and decoded with midge's own codec (the bench is
 * a client: it encodes CONNECT/SUBSCRIBE/PUBLISH/acks and decodes what a
 * broker sends back). Output is appended to a per-connection buffer and
 * written once per loop pass; input is read in large chunks into a
 * per-connection buffer. Nothing is allocated per message: buffers grow
 * only when a packet larger than any before arrives.
 *
 * Workloads (see bench/README.md):
 *   fanin   P publishers, each on its own topic -> 1 subscriber on a wildcard
 *   fanout  1 publisher -> S subscribers on the same topic
 *   p2p     N publisher -> subscriber pairs, one topic per pair
 *   conn    C idle connections held with keepalive
 *
 * Every payload starts with a 16-byte header: publisher index (u32),
 * sequence number (u32) and the CLOCK_MONOTONIC send time in ns (u64).
 * Subscribers check sequences per publisher (lost, duplicated) and record
 * the end-to-end latency in a log-linear histogram.
 *
 * With --tls every connection runs TLS (GnuTLS) over the same socket: the
 * session reads and writes memory buffers (push/pull callbacks), so the
 * libuv I/O and the batching stay as they are, and the packet buffer
 * out[cur] simply holds ciphertext. Plaintext waits in `plain` until the
 * handshake is done and is encrypted when the connection is flushed.
 *
 * With --ws every connection is MQTT over WebSocket (RFC 6455): an HTTP
 * upgrade first, then each packet in a masked binary frame of its own (as
 * a browser's MQTT.js sends them), written into the same buffers; the
 * broker's frames are unwrapped in place as they are read, before the
 * MQTT framer sees the bytes. Works over --tls too (wss).
 *
 * Loopback only, and bounded in count and time: a hard deadline stops the
 * run whatever the broker does.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <uv.h>

#include "codec/codec.h"

#define LG_HDR 16                 /* payload header: pub u32, seq u32, ts u64 */
#define LG_IN_MIN (64 * 1024)     /* initial receive buffer per message connection */
#define LG_IN_IDLE 256            /* receive buffer of an idle (conn) connection */
#define LG_OUT_HIGH (256 * 1024)  /* stop publishing on a connection above this */
#define LG_MAX_CLIENTS 10000      /* publishers/subscribers/pairs */
#define LG_MAX_CONNS 100000       /* idle connections */
#define LG_MAX_PAYLOAD (16u << 20)
#define LG_PUMP_BATCH 256         /* publishes per publisher per loop pass */

enum lg_workload { LG_FANIN, LG_FANOUT, LG_P2P, LG_CONN };
enum lg_role { LG_PUB, LG_SUB, LG_IDLE };
enum lg_state { LG_ST_NEW, LG_ST_CONNECTING, LG_ST_UPGRADE, LG_ST_CONNACK, LG_ST_SUBACK, LG_ST_READY,
		LG_ST_CLOSED };
enum lg_phase { LG_PH_SETUP, LG_PH_WARMUP, LG_PH_MEASURE, LG_PH_DRAIN, LG_PH_DONE };

/* A growable byte buffer; grows by doubling, never shrinks. */
struct lg_buf {
	uint8_t *p;
	size_t len;
	size_t cap;
};

/* Log-linear latency histogram: 32 sub-buckets per power of two (about 3%
 * resolution), values in ns; no allocation per sample. */
#define LG_HIST_SUB 32
#define LG_HIST_N (60 * LG_HIST_SUB)
struct lg_hist {
	uint64_t count;
	uint64_t max;
	uint64_t sum;
	uint64_t b[LG_HIST_N];
};

struct lg;

struct lg_conn {
	uv_tcp_t tcp;
	uv_connect_t creq;
	uv_write_t wreq;
	struct lg *lg;
	uint8_t role;
	uint8_t state;
	bool writing;      /* a uv_write of out[cur ^ 1] is pending */
	bool dirty;        /* on the flush list */
	bool closing;
	uint8_t cur;       /* out[cur] takes new bytes */
	uint32_t idx;      /* publisher, subscriber or idle index */
	struct lg_buf in;
	struct lg_buf out[2];
	uint64_t last_send_ms;

	/* publisher */
	uint32_t seq;          /* next sequence number == messages sent */
	uint32_t pkt_inflight; /* QoS 1/2 not yet PUBACK/PUBCOMP */
	uint32_t pkt_window;   /* min(--window, the broker's v5 Receive Maximum) */
	uint16_t next_pid;
	uint64_t delivered;    /* first receipts by subscribers */
	uint64_t forgiven;     /* deliveries written off after a stall */
	uint64_t last_progress_ms;
	uint64_t stalls;
	uint64_t *ack_ts;      /* send times of PUBLISHes awaiting PUBACK/PUBCOMP, a FIFO: */
	uint32_t ack_head, ack_n, ack_cap; /* a broker acknowledges in order [4.6] */

	/* subscriber */
	uint32_t pub_base;     /* first publisher this subscriber hears */
	uint32_t npubs;        /* how many it hears */
	uint32_t *expect;      /* next expected sequence per heard publisher */

	/* TLS (--tls): NULL without */
	gnutls_session_t tls;
	bool tls_done;         /* handshake complete: plain may be encrypted */
	struct lg_buf plain;   /* packets not yet encrypted */
	struct lg_buf tin;     /* ciphertext read, not yet taken by the session */
	size_t tin_off;

	/* WebSocket (--ws): the frame being read */
	uint64_t ws_left;      /* its payload bytes still to come */
	uint8_t ws_hdr[14];    /* its header while incomplete */
	uint8_t ws_hlen;
	bool ws_skip;          /* a control frame: its payload is dropped */
};

struct lg_opts {
	const char *host;
	int port;
	int sub_port;         /* 0: subscribers use port too */
	int workload;
	int qos;
	uint32_t size;
	uint32_t clients;
	double rate;          /* per publisher, msg/s; 0 = closed loop */
	uint32_t window;
	double duration;
	double warmup;
	double drain;
	double setup_timeout;
	double stall;
	uint8_t version;
	int broker_pid;
	uint16_t keepalive;
	uint32_t concurrency;
	uint32_t sources;     /* IPv4 loopback source addresses to spread over; 1 = the kernel's choice */
	const char *label;
	bool quiet;
	bool syscall_cost;
	bool tls;
	const char *cafile;   /* --cafile: verify the chain (not the name) against it */
	bool insecure;        /* --insecure: no verification at all */
	bool ws;              /* --ws: MQTT over WebSocket */
	const char *ws_path;  /* --ws-path (/mqtt) */
	bool persistent;      /* --persistent: subscribers keep their session (clean 0 / expiry) */
};

struct lg {
	struct lg_opts o;
	uv_loop_t *loop;
	uv_prepare_t prepare;
	uv_check_t check;
	uv_timer_t tick;       /* 1 ms: pacing, phases, stalls, keepalive */
	uv_timer_t deadline;
	struct sockaddr_storage addr;
	struct sockaddr_storage sub_addr; /* --sub-port: another node of a cluster */
	char prefix[64];       /* topic and client-id prefix, unique per run */

	struct lg_conn *pubs;
	struct lg_conn *subs;
	struct lg_conn *idle;
	uint32_t npub, nsub, nidle;
	uint32_t fan;          /* subscribers hearing each publisher */
	struct lg_conn **flush;
	uint32_t nflush, flush_cap;

	int phase;
	uint32_t next_connect; /* setup: next connection to start */
	uint32_t connecting;   /* setup: connects in progress */
	uint32_t ready;
	uint32_t total;        /* connections to set up */
	uint64_t t0_ns, t_setup_done_ns, t_meas_ns, t_end_ns, t_drain_ns;
	uint64_t first_connect_ns, last_connack_ns;
	double setup_bcpu0, setup_bcpu1; /* broker CPU at the first connect and when all are ready */
	double setup_cpu0, setup_cpu1;   /* our own CPU at the same moments */
	uint64_t phase_start_ms;
	uint64_t last_keepalive_ms;
	uint64_t pace_start_ns; /* fixed-rate: start of pacing */

	/* payload template */
	uint8_t *payload;
	uint64_t ws_mask_state; /* xorshift state for frame masks */

	/* TLS: one credential set shared by every session */
	gnutls_certificate_credentials_t tls_cred;
	gnutls_priority_t tls_prio;

	/* counters */
	uint64_t sent_meas, recv_meas, recv_total, sent_total;
	uint64_t lost_gap, dup, unexpected, errors, closed_by_peer, connect_fail;
	struct lg_hist hist;
	struct lg_hist ack_hist; /* publish -> PUBACK/PUBCOMP, QoS 1/2, measured phase */
	int exit_code;
	const char *fail;

	/* resources */
	double broker_cpu0, broker_cpu1;
	long rss_before_kb, rss_after_kb, rss_peak_kb;
	struct rusage ru0, ru1;
	uint64_t ru_t0, ru_t1;
};

static uint64_t lg_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void lg_die(const char *msg)
{
	fprintf(stderr, "midge-loadgen: %s\n", msg);
	exit(2);
}

/* Makes room for n more bytes. Exits on allocation failure: a generator
 * that cannot hold its buffers has no result to report. */
static uint8_t *lg_buf_reserve(struct lg_buf *b, size_t n)
{
	if (b->cap - b->len < n) {
		size_t cap = b->cap ? b->cap : 256; /* idle connections stay small */
		while (cap - b->len < n)
			cap *= 2;
		uint8_t *p = realloc(b->p, cap);
		if (!p)
			lg_die("out of memory");
		b->p = p;
		b->cap = cap;
	}
	return b->p + b->len;
}

/* ---- histogram ---- */

static unsigned lg_hist_index(uint64_t v)
{
	if (v < LG_HIST_SUB)
		return (unsigned)v;
	unsigned msb = 63u - (unsigned)__builtin_clzll(v);
	unsigned i = (msb - 4) * LG_HIST_SUB + (unsigned)((v >> (msb - 5)) & (LG_HIST_SUB - 1));
	return i < LG_HIST_N ? i : LG_HIST_N - 1;
}

/* The middle of bucket i. */
static uint64_t lg_hist_value(unsigned i)
{
	if (i < LG_HIST_SUB)
		return i;
	unsigned msb = i / LG_HIST_SUB + 4;
	uint64_t low = i % LG_HIST_SUB;
	uint64_t base = (LG_HIST_SUB + low) << (msb - 5);
	return base + ((UINT64_C(1) << (msb - 5)) >> 1);
}

static void lg_hist_add(struct lg_hist *h, uint64_t v)
{
	h->b[lg_hist_index(v)]++;
	h->count++;
	h->sum += v;
	if (v > h->max)
		h->max = v;
}

/* The smallest recorded value with at least fraction p of the samples at
 * or below it; 0 with no samples. */
static uint64_t lg_hist_pct(const struct lg_hist *h, double p)
{
	if (h->count == 0)
		return 0;
	uint64_t want = (uint64_t)ceil(p * (double)h->count);
	if (want == 0)
		want = 1;
	uint64_t acc = 0;
	for (unsigned i = 0; i < LG_HIST_N; i++) {
		acc += h->b[i];
		if (acc >= want) {
			uint64_t v = lg_hist_value(i);
			return v > h->max ? h->max : v;
		}
	}
	return h->max;
}

/* ---- /proc readers (Linux) ---- */

static double lg_tv(const struct timeval *tv)
{
	return (double)tv->tv_sec + (double)tv->tv_usec * 1e-6;
}

/* This process's user + system CPU seconds. */
static double lg_self_cpu(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return -1;
	return lg_tv(&ru.ru_utime) + lg_tv(&ru.ru_stime);
}

/* /proc/PID/NAME for reading, or NULL (also for no pid). */
static FILE *lg_proc_open(int pid, const char *name)
{
	char path[64];
	if (pid <= 0)
		return NULL;
	snprintf(path, sizeof path, "/proc/%d/%s", pid, name);
	return fopen(path, "r");
}

/* utime + stime of pid in seconds, or -1. */
static double lg_proc_cpu(int pid)
{
	char buf[1024];
	FILE *f = lg_proc_open(pid, "stat");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (!p)
		return -1;
	/* after ") " come fields 3..: utime is field 14, stime 15 */
	unsigned long long ut = 0, st = 0;
	int field = 2;
	for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " ")) {
		field++;
		if (field == 14)
			ut = strtoull(tok, NULL, 10);
		if (field == 15) {
			st = strtoull(tok, NULL, 10);
			break;
		}
	}
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* VmRSS (or VmHWM) of pid in kB, or -1. */
static long lg_proc_status_kb(int pid, const char *key)
{
	char line[256];
	FILE *f = lg_proc_open(pid, "status");
	if (!f)
		return -1;
	long kb = -1;
	size_t kl = strlen(key);
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			kb = strtol(line + kl + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kb;
}

/* ---- output ---- */

static void lg_mark_dirty(struct lg_conn *c)
{
	struct lg *lg = c->lg;
	if (c->dirty || c->closing)
		return;
	if (lg->nflush == lg->flush_cap) {
		lg->flush_cap = lg->flush_cap ? lg->flush_cap * 2 : 256;
		lg->flush = realloc(lg->flush, lg->flush_cap * sizeof *lg->flush);
		if (!lg->flush)
			lg_die("out of memory");
	}
	lg->flush[lg->nflush++] = c;
	c->dirty = true;
}

/* --ws: room for a frame header before a packet is appended to b; the
 * offset to give lg_ws_end(). */
#define LG_WS_HDR 14
static size_t lg_ws_begin(struct lg_conn *c, struct lg_buf *b)
{
	if (!c->lg->o.ws)
		return SIZE_MAX;
	lg_buf_reserve(b, LG_WS_HDR);
	size_t at = b->len;
	b->len += LG_WS_HDR;
	return at;
}

/* The packet appended behind `at` becomes a masked binary frame: the
 * header is written, the packet moved up against it and masked. */
static void lg_ws_end(struct lg_conn *c, struct lg_buf *b, size_t at)
{
	if (at == SIZE_MAX)
		return;
	uint8_t *p = b->p + at;
	uint64_t n = b->len - at - LG_WS_HDR;
	uint8_t h[LG_WS_HDR];
	size_t hl;
	h[0] = 0x82;
	if (n < 126) {
		h[1] = (uint8_t)(0x80 | n);
		hl = 2;
	} else if (n < 65536) {
		h[1] = 0x80 | 126;
		h[2] = (uint8_t)(n >> 8);
		h[3] = (uint8_t)n;
		hl = 4;
	} else {
		h[1] = 0x80 | 127;
		for (int i = 0; i < 8; i++)
			h[2 + i] = (uint8_t)(n >> (56 - 8 * i));
		hl = 10;
	}
	uint64_t *st = &c->lg->ws_mask_state;
	*st ^= *st << 13;
	*st ^= *st >> 7;
	*st ^= *st << 17;
	uint32_t key = (uint32_t)*st;
	memcpy(h + hl, &key, 4);
	hl += 4;
	memmove(p + hl, p + LG_WS_HDR, n);
	memcpy(p, h, hl);
	uint8_t *q = p + hl, *k = h + hl - 4;
	uint64_t i = 0;
	uint64_t k8 = (uint64_t)key | (uint64_t)key << 32;
	for (; i + 8 <= n; i += 8) {
		uint64_t v;
		memcpy(&v, q + i, 8);
		v ^= k8;
		memcpy(q + i, &v, 8);
	}
	for (; i < n; i++)
		q[i] ^= k[i % 4];
	b->len -= LG_WS_HDR - hl;
}

/* Appends one encoded packet to the connection's output buffer. */
static void lg_send_packet(struct lg_conn *c, const struct codec_packet *pkt)
{
	struct lg_buf *b = c->tls ? &c->plain : &c->out[c->cur];
	size_t n = codec_encode_size(pkt);
	if (n == 0)
		lg_die("codec_encode_size failed (packet cannot be encoded)");
	size_t at = lg_ws_begin(c, b);
	uint8_t *p = lg_buf_reserve(b, n);
	if (codec_encode(pkt, p, n) != n)
		lg_die("codec_encode failed");
	b->len += n;
	lg_ws_end(c, b, at);
	lg_mark_dirty(c);
}

static void lg_send_ack(struct lg_conn *c, uint8_t type, uint16_t pid)
{
	struct codec_packet pkt;
	memset(&pkt, 0, sizeof pkt);
	pkt.type = type;
	pkt.flags = type == CODEC_PUBREL ? 2 : 0;
	pkt.version = c->lg->o.version;
	pkt.u.ack.packet_id = pid;
	lg_send_packet(c, &pkt);
}

static void lg_on_close(uv_handle_t *h)
{
	(void)h;
}

static void lg_close(struct lg_conn *c)
{
	if (c->closing || c->state == LG_ST_NEW)
		return;
	c->closing = true;
	c->state = LG_ST_CLOSED;
	if (c->tls) {
		gnutls_deinit(c->tls);
		c->tls = NULL;
	}
	/* RST instead of FIN: no TIME_WAIT left behind for the next run */
	uv_os_fd_t fd;
	if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) {
		struct linger lin = { 1, 0 };
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin, sizeof lin);
	}
	uv_close((uv_handle_t *)&c->tcp, lg_on_close);
}

static void lg_flush_one(struct lg_conn *c);
static int lg_tls_encrypt(struct lg_conn *c);

static void lg_on_write(uv_write_t *req, int status)
{
	struct lg_conn *c = req->data;
	c->writing = false;
	c->out[c->cur ^ 1].len = 0;
	if (status < 0) {
		if (!c->closing && c->lg->phase < LG_PH_DONE) {
			c->lg->errors++;
			lg_close(c);
		}
		return;
	}
	if (c->out[c->cur].len || c->plain.len)
		lg_flush_one(c);
}

/* Writes what is buffered: a direct write first; whatever the socket does
 * not take goes to one uv_write, and new bytes collect in the other buffer
 * until it completes. */
static void lg_flush_one(struct lg_conn *c)
{
	struct lg_buf *b = &c->out[c->cur];
	if (c->tls && c->tls_done && c->plain.len > 0 && !c->closing && lg_tls_encrypt(c) < 0)
		return;
	if (c->writing || c->closing || b->len == 0)
		return;
	uv_buf_t ub = uv_buf_init((char *)b->p, (unsigned)b->len);
	int n = uv_try_write((uv_stream_t *)&c->tcp, &ub, 1);
	if (n == (int)b->len) {
		b->len = 0;
		return;
	}
	if (n < 0 && n != UV_EAGAIN) {
		if (c->lg->phase < LG_PH_DONE)
			c->lg->errors++;
		lg_close(c);
		return;
	}
	if (n < 0)
		n = 0;
	ub = uv_buf_init((char *)b->p + n, (unsigned)(b->len - (size_t)n));
	c->wreq.data = c;
	if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &ub, 1, lg_on_write) != 0) {
		c->lg->errors++;
		lg_close(c);
		return;
	}
	c->writing = true;
	c->cur ^= 1;
}

static void lg_flush_all(struct lg *lg)
{
	uint64_t ms = uv_now(lg->loop);
	for (uint32_t i = 0; i < lg->nflush; i++) {
		struct lg_conn *c = lg->flush[i];
		c->dirty = false;
		c->last_send_ms = ms;
		lg_flush_one(c);
	}
	lg->nflush = 0;
}

static size_t lg_out_pending(const struct lg_conn *c)
{
	return c->out[0].len + c->out[1].len + c->plain.len;
}

/* ---- publishing ---- */

/* Deliveries of this publisher's messages still expected by subscribers.
 * Late arrivals after a write-off can push the sum past seq * fan. */
static uint64_t lg_outstanding(const struct lg_conn *p, uint32_t fan)
{
	uint64_t want = (uint64_t)p->seq * fan, got = p->delivered + p->forgiven;
	return want > got ? want - got : 0;
}

static bool lg_phase_publishing(const struct lg *lg)
{
	return lg->phase == LG_PH_WARMUP || lg->phase == LG_PH_MEASURE;
}

/* The send time of a QoS 1/2 PUBLISH, until its acknowledgement. */
static void lg_ack_push(struct lg_conn *c, uint64_t now)
{
	if (c->ack_n == c->ack_cap) {
		uint32_t cap = c->ack_cap ? c->ack_cap * 2 : 64;
		uint64_t *v = malloc(cap * sizeof *v);
		if (!v)
			lg_die("out of memory");
		for (uint32_t i = 0; i < c->ack_n; i++)
			v[i] = c->ack_ts[(c->ack_head + i) % c->ack_cap];
		free(c->ack_ts);
		c->ack_ts = v;
		c->ack_cap = cap;
		c->ack_head = 0;
	}
	c->ack_ts[(c->ack_head + c->ack_n++) % c->ack_cap] = now;
}

/* The oldest PUBLISH is acknowledged: publish -> PUBACK latency. */
static void lg_ack_pop(struct lg_conn *c, uint64_t now)
{
	if (!c->ack_n)
		return;
	uint64_t ts = c->ack_ts[c->ack_head];
	c->ack_head = (c->ack_head + 1) % c->ack_cap;
	c->ack_n--;
	if (c->lg->phase == LG_PH_MEASURE)
		lg_hist_add(&c->lg->ack_hist, now > ts ? now - ts : 0);
}

/* Appends one PUBLISH with the next sequence number. */
static void lg_publish_one(struct lg_conn *c, uint64_t now)
{
	struct lg *lg = c->lg;
	char topic[96];
	int tl;
	if (lg->o.workload == LG_FANOUT)
		tl = snprintf(topic, sizeof topic, "%s/out", lg->prefix);
	else
		tl = snprintf(topic, sizeof topic, "%s/t/%" PRIu32, lg->prefix, c->idx);

	struct codec_packet pkt;
	memset(&pkt, 0, sizeof pkt);
	pkt.type = CODEC_PUBLISH;
	pkt.flags = (uint8_t)(lg->o.qos << 1);
	pkt.version = lg->o.version;
	pkt.u.publish.qos = (uint8_t)lg->o.qos;
	pkt.u.publish.topic.p = (const uint8_t *)topic;
	pkt.u.publish.topic.len = (uint32_t)tl;
	if (lg->o.qos > 0) {
		if (++c->next_pid == 0)
			c->next_pid = 1;
		pkt.u.publish.packet_id = c->next_pid;
		c->pkt_inflight++;
		lg_ack_push(c, now);
	}
	pkt.u.publish.payload.p = lg->payload;
	pkt.u.publish.payload.len = lg->o.size;

	struct lg_buf *b = c->tls ? &c->plain : &c->out[c->cur];
	size_t cap = CODEC_MAX_FIXED_HEADER + 2 + (size_t)tl + 2 + 16 + lg->o.size;
	size_t at = lg_ws_begin(c, b);
	uint8_t *p = lg_buf_reserve(b, cap);
	size_t h = codec_encode_publish_head(&pkt, p, cap);
	if (h == 0)
		lg_die("codec_encode_publish_head failed");
	uint8_t *pl = p + h;
	memcpy(pl, lg->payload, lg->o.size);
	uint32_t pub = c->idx, seq = c->seq;
	memcpy(pl, &pub, 4);
	memcpy(pl + 4, &seq, 4);
	memcpy(pl + 8, &now, 8);
	b->len += h + lg->o.size;
	lg_ws_end(c, b, at);
	c->seq++;
	lg->sent_total++;
	if (lg->phase == LG_PH_MEASURE)
		lg->sent_meas++;
	lg_mark_dirty(c);
}

/* Publishes as much as the window, the rate and the output bound allow. */
static void lg_pump(struct lg_conn *c, uint64_t now)
{
	struct lg *lg = c->lg;
	if (c->state != LG_ST_READY || c->closing)
		return;
	uint64_t allowed_by_rate = UINT64_MAX;
	if (lg->o.rate > 0) {
		double due = (double)(now - lg->pace_start_ns) * 1e-9 * lg->o.rate + 1;
		allowed_by_rate = due > (double)c->seq ? (uint64_t)(due - (double)c->seq) : 0;
	}
	uint64_t win_deliveries = (uint64_t)lg->o.window * lg->fan;
	for (unsigned k = 0; k < LG_PUMP_BATCH && k < allowed_by_rate; k++) {
		if (lg->o.qos > 0 && c->pkt_inflight >= c->pkt_window)
			break;
		if (lg_outstanding(c, lg->fan) + lg->fan > win_deliveries)
			break;
		if (lg_out_pending(c) > LG_OUT_HIGH)
			break;
		lg_publish_one(c, now);
	}
}

static void lg_pump_all(struct lg *lg)
{
	if (!lg_phase_publishing(lg))
		return;
	uint64_t now = lg_now_ns();
	for (uint32_t i = 0; i < lg->npub; i++)
		lg_pump(&lg->pubs[i], now);
}

/* ---- receiving ---- */

static void lg_fail(struct lg *lg, const char *why)
{
	if (!lg->fail)
		lg->fail = why;
	lg->exit_code = 2;
	lg->phase = LG_PH_DONE;
}

static void lg_sub_publish(struct lg_conn *c, const struct codec_publish *pb, uint64_t now)
{
	struct lg *lg = c->lg;
	if (pb->payload.len < LG_HDR) {
		lg->unexpected++;
		return;
	}
	uint32_t pub, seq;
	uint64_t ts;
	memcpy(&pub, pb->payload.p, 4);
	memcpy(&seq, pb->payload.p + 4, 4);
	memcpy(&ts, pb->payload.p + 8, 8);
	uint32_t slot = pub - c->pub_base;
	if (pub >= lg->npub || slot >= c->npubs) {
		lg->unexpected++;
		return;
	}
	uint32_t *ex = &c->expect[slot];
	if (seq < *ex) {
		lg->dup++;
		return;
	}
	if (seq > *ex)
		lg->lost_gap += seq - *ex;
	*ex = seq + 1;
	struct lg_conn *p = &lg->pubs[pub];
	p->delivered++;
	p->last_progress_ms = uv_now(lg->loop);
	lg->recv_total++;
	if (lg->phase == LG_PH_MEASURE) {
		lg->recv_meas++;
		lg_hist_add(&lg->hist, now > ts ? now - ts : 0);
	}
}

static void lg_start_subscribe(struct lg_conn *c)
{
	struct lg *lg = c->lg;
	char filter[96];
	int fl;
	if (lg->o.workload == LG_FANIN)
		fl = snprintf(filter, sizeof filter, "%s/t/+", lg->prefix);
	else if (lg->o.workload == LG_FANOUT)
		fl = snprintf(filter, sizeof filter, "%s/out", lg->prefix);
	else
		fl = snprintf(filter, sizeof filter, "%s/t/%" PRIu32, lg->prefix, c->idx);
	struct codec_sub_entry e;
	memset(&e, 0, sizeof e);
	e.filter.p = (const uint8_t *)filter;
	e.filter.len = (uint32_t)fl;
	e.qos = (uint8_t)lg->o.qos;
	e.options = (uint8_t)lg->o.qos;
	struct codec_packet pkt;
	memset(&pkt, 0, sizeof pkt);
	pkt.type = CODEC_SUBSCRIBE;
	pkt.flags = 2;
	pkt.version = lg->o.version;
	pkt.u.subscribe.packet_id = 1;
	pkt.u.subscribe.entries = &e;
	pkt.u.subscribe.count = 1;
	lg_send_packet(c, &pkt);
	c->state = LG_ST_SUBACK;
}

static void lg_connect_next(struct lg *lg);

static void lg_conn_ready(struct lg_conn *c)
{
	struct lg *lg = c->lg;
	c->state = LG_ST_READY;
	lg->ready++;
	uint64_t now = lg_now_ns();
	if (now > lg->last_connack_ns)
		lg->last_connack_ns = now;
	if (lg->ready == lg->total) {
		lg->setup_bcpu1 = lg_proc_cpu(lg->o.broker_pid);
		lg->setup_cpu1 = lg_self_cpu();
	}
	lg_connect_next(lg);
}

/* Handles one decoded packet from the broker. Returns 0, or -1 when the
 * connection must be closed. */
static int lg_handle(struct lg_conn *c, const struct codec_packet *pkt, uint64_t now)
{
	struct lg *lg = c->lg;
	switch (pkt->type) {
	case CODEC_CONNACK:
		if (c->state != LG_ST_CONNACK || pkt->u.connack.rc != 0) {
			lg->connect_fail++;
			return -1;
		}
		c->pkt_window = lg->o.window;
		/* a v5 client must not have more unacknowledged QoS 1/2
		 * PUBLISHes than the server's Receive Maximum [MQTT-3.3.4-7] */
		if (CODEC_HAS_PROP(&pkt->u.connack.props, CODEC_PROP_RECEIVE_MAX) &&
		    pkt->u.connack.props.receive_max < c->pkt_window)
			c->pkt_window = pkt->u.connack.props.receive_max;
		if (c->role == LG_SUB)
			lg_start_subscribe(c);
		else
			lg_conn_ready(c);
		return 0;
	case CODEC_SUBACK:
		if (c->state != LG_ST_SUBACK || pkt->u.suback.count < 1 || pkt->u.suback.codes[0] >= 0x80) {
			lg->connect_fail++;
			return -1;
		}
		lg_conn_ready(c);
		return 0;
	case CODEC_PUBLISH:
		if (c->role != LG_SUB) {
			lg->unexpected++;
			return 0;
		}
		lg_sub_publish(c, &pkt->u.publish, now);
		if (pkt->u.publish.qos == 1)
			lg_send_ack(c, CODEC_PUBACK, pkt->u.publish.packet_id);
		else if (pkt->u.publish.qos == 2)
			lg_send_ack(c, CODEC_PUBREC, pkt->u.publish.packet_id);
		return 0;
	case CODEC_PUBREL:
		lg_send_ack(c, CODEC_PUBCOMP, pkt->u.ack.packet_id);
		return 0;
	case CODEC_PUBACK:
	case CODEC_PUBCOMP:
		if (c->role == LG_PUB && c->pkt_inflight > 0) {
			c->pkt_inflight--;
			lg_ack_pop(c, now);
		}
		return 0;
	case CODEC_PUBREC:
		lg_send_ack(c, CODEC_PUBREL, pkt->u.ack.packet_id);
		return 0;
	case CODEC_PINGRESP:
		return 0;
	case CODEC_DISCONNECT:
		return -1;
	default:
		lg->unexpected++;
		return 0;
	}
}

static void lg_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
	(void)suggested;
	struct lg_conn *c = h->data;
	size_t want = c->role == LG_IDLE ? LG_IN_IDLE : LG_IN_MIN;
	struct lg_buf *b = c->tls ? &c->tin : &c->in;
	if (c->tls && want < 4096)
		want = 4096; /* a handshake message in few reads */
	if (b->cap - b->len < want / 2)
		lg_buf_reserve(b, want);
	*out = uv_buf_init((char *)b->p + b->len, (unsigned)(b->cap - b->len));
}

/* What stopped a read's framing loop early; the callback cannot close the
 * connection itself while codec_frames() still reads its buffer. */
enum lg_stop { LG_STOP_UNDECODABLE = 1, LG_STOP_CLOSED };

struct lg_read {
	struct lg_conn *c;
	uint64_t now;
};

/* codec_frames()'s callback: decode one packet from the broker, handle it. */
static int lg_on_packet(void *ctx, const struct codec_frame *fr, const uint8_t *body)
{
	struct lg_read *r = ctx;
	struct codec_packet pkt;

	if (codec_decode(fr->first, body, fr->remaining, r->c->lg->o.version, &pkt) < 0)
		return LG_STOP_UNDECODABLE;
	return lg_handle(r->c, &pkt, r->now) < 0 ? LG_STOP_CLOSED : 0;
}

/* ---- TLS ---- */

/* The session's output: ciphertext appended to the buffer that takes new
 * bytes. Never marks the connection dirty itself (this runs inside
 * lg_flush_one too); the callers do. */
static ssize_t lg_tls_push(gnutls_transport_ptr_t p, const void *data, size_t n)
{
	struct lg_conn *c = p;
	struct lg_buf *b = &c->out[c->cur];
	memcpy(lg_buf_reserve(b, n), data, n);
	b->len += n;
	return (ssize_t)n;
}

/* The session's input: what the socket has delivered so far, then EAGAIN. */
static ssize_t lg_tls_pull(gnutls_transport_ptr_t p, void *data, size_t n)
{
	struct lg_conn *c = p;
	size_t avail = c->tin.len - c->tin_off;
	if (avail == 0) {
		gnutls_transport_set_errno(c->tls, EAGAIN);
		return -1;
	}
	if (n > avail)
		n = avail;
	memcpy(data, c->tin.p + c->tin_off, n);
	c->tin_off += n;
	if (c->tin_off == c->tin.len)
		c->tin.len = c->tin_off = 0;
	return (ssize_t)n;
}

static void lg_tls_setup(struct lg *lg)
{
	const struct lg_opts *o = &lg->o;
	int rc = gnutls_certificate_allocate_credentials(&lg->tls_cred);
	if (rc < 0)
		lg_die("gnutls_certificate_allocate_credentials failed");
	if (o->cafile) {
		rc = gnutls_certificate_set_x509_trust_file(lg->tls_cred, o->cafile,
							    GNUTLS_X509_FMT_PEM);
		if (rc <= 0) {
			fprintf(stderr, "midge-loadgen: --cafile %s: %s\n", o->cafile,
				rc == 0 ? "no certificate in it" : gnutls_strerror(rc));
			exit(1);
		}
	}
	if (gnutls_priority_init(&lg->tls_prio, "NORMAL", NULL) < 0)
		lg_die("gnutls_priority_init failed");
}

/* Starts a connection's handshake (the ClientHello goes out with the next
 * flush). The chain is checked against --cafile; the name is not (every
 * broker here listens on 127.0.0.1 with the same test certificate). */
static int lg_tls_start(struct lg_conn *c)
{
	struct lg *lg = c->lg;
	if (gnutls_init(&c->tls, GNUTLS_CLIENT | GNUTLS_NONBLOCK) < 0) {
		c->tls = NULL;
		return -1;
	}
	if (gnutls_priority_set(c->tls, lg->tls_prio) < 0 ||
	    gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, lg->tls_cred) < 0) {
		gnutls_deinit(c->tls);
		c->tls = NULL;
		return -1;
	}
	if (!lg->o.insecure)
		gnutls_session_set_verify_cert(c->tls, NULL, 0);
	gnutls_transport_set_ptr(c->tls, c);
	gnutls_transport_set_push_function(c->tls, lg_tls_push);
	gnutls_transport_set_pull_function(c->tls, lg_tls_pull);
	c->tls_done = false;
	c->tin.len = c->tin_off = 0;
	int rc = gnutls_handshake(c->tls);
	if (rc != GNUTLS_E_AGAIN && rc != 0)
		return -1;
	c->tls_done = rc == 0;
	lg_mark_dirty(c);
	return 0;
}

/* Encrypts what is waiting in plain into out[cur]. */
static int lg_tls_encrypt(struct lg_conn *c)
{
	size_t off = 0;
	while (off < c->plain.len) {
		size_t n = c->plain.len - off;
		if (n > 16384)
			n = 16384;
		/* The push callback always takes everything: no AGAIN to retry. */
		ssize_t r = gnutls_record_send(c->tls, c->plain.p + off, n);
		if (r < 0) {
			fprintf(stderr, "midge-loadgen: TLS send: %s\n", gnutls_strerror((int)r));
			if (c->lg->phase < LG_PH_DONE)
				c->lg->errors++;
			lg_close(c);
			return -1;
		}
		off += (size_t)r;
	}
	c->plain.len = 0;
	return 0;
}

/* Feeds the ciphertext read to the session: the handshake while it lasts,
 * then decrypted records appended to c->in. 0 to go on, -1 the peer closed,
 * 1 a TLS error (counted). */
static int lg_tls_input(struct lg_conn *c)
{
	struct lg *lg = c->lg;
	if (!c->tls_done) {
		int rc = gnutls_handshake(c->tls);
		if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
			lg_mark_dirty(c);
			return 0;
		}
		if (rc < 0) {
			fprintf(stderr, "midge-loadgen: TLS handshake: %s\n", gnutls_strerror(rc));
			lg->errors++;
			if (lg->phase == LG_PH_SETUP)
				lg_fail(lg, "TLS handshake failed");
			return 1;
		}
		c->tls_done = true;
		lg_mark_dirty(c); /* the CONNECT waiting in plain */
	}
	unsigned spins = 0;
	for (;;) {
		size_t want = c->role == LG_IDLE ? 1024 : 16384 + 256;
		lg_buf_reserve(&c->in, want);
		ssize_t r = gnutls_record_recv(c->tls, c->in.p + c->in.len, c->in.cap - c->in.len);
		if (r > 0) {
			c->in.len += (size_t)r;
			continue;
		}
		if (r == 0)
			return -1;
		/* A post-handshake message (TLS 1.3 session tickets) also returns
		 * AGAIN, with records still unread behind it: stop only when
		 * the input is used up. */
		if (r == GNUTLS_E_AGAIN && c->tin.len == c->tin_off &&
		    gnutls_record_check_pending(c->tls) == 0)
			break;
		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED ||
		    !gnutls_error_is_fatal((int)r)) {
			if (++spins > 1000) /* no progress: a bug, not a broker's fault */
				lg_die("TLS: the session takes no input");
			continue;
		}
		fprintf(stderr, "midge-loadgen: TLS receive: %s\n", gnutls_strerror((int)r));
		lg->errors++;
		return 1;
	}
	if (lg_out_pending(c))
		lg_mark_dirty(c); /* e.g. a TLS 1.3 key update answered */
	return 0;
}

static void lg_send_connect(struct lg_conn *c);

/* --ws: the frames appended to c->in from `from` on are unwrapped in
 * place: binary and continuation payloads join the MQTT bytes, control
 * frames are dropped (a Close too: the broker's FIN follows it).
 * Returns -1 on a masked or malformed frame. */
static int lg_ws_unwrap(struct lg_conn *c, size_t from)
{
	uint8_t *in = c->in.p;
	size_t w = from, i = from, len = c->in.len;
	while (i < len) {
		if (c->ws_left > 0) {
			size_t take = len - i < c->ws_left ? len - i : (size_t)c->ws_left;
			if (!c->ws_skip) {
				memmove(in + w, in + i, take);
				w += take;
			}
			i += take;
			c->ws_left -= take;
			continue;
		}
		c->ws_hdr[c->ws_hlen++] = in[i++];
		if (c->ws_hlen < 2)
			continue;
		if (c->ws_hdr[1] & 0x80)
			return -1; /* a server never masks */
		uint8_t code = c->ws_hdr[1] & 0x7F;
		size_t need = code == 126 ? 4 : code == 127 ? 10 : 2;
		if (c->ws_hlen < need)
			continue;
		uint64_t n = code;
		if (code >= 126) {
			n = 0;
			for (size_t k = 2; k < need; k++)
				n = n << 8 | c->ws_hdr[k];
		}
		uint8_t op = c->ws_hdr[0] & 0x0F;
		c->ws_skip = op != 0x0 && op != 0x2;
		c->ws_left = n;
		c->ws_hlen = 0;
	}
	c->in.len = w;
	return 0;
}

/* --ws: the broker's answer to the upgrade, once complete in c->in: 101
 * sends the CONNECT; anything else fails the connection. 1 when the
 * answer is still incomplete, 0 upgraded, -1 refused. */
static int lg_ws_upgraded(struct lg_conn *c)
{
	uint8_t *in = c->in.p;
	size_t len = c->in.len, end = 0;
	for (size_t i = 3; i < len; i++)
		if (in[i - 3] == '\r' && in[i - 2] == '\n' && in[i - 1] == '\r' && in[i] == '\n') {
			end = i + 1;
			break;
		}
	if (!end)
		return len > 4096 ? -1 : 1;
	if (len < 12 || memcmp(in, "HTTP/1.1 101", 12) != 0)
		return -1;
	memmove(in, in + end, len - end);
	c->in.len = len - end;
	if (lg_ws_unwrap(c, 0) < 0)
		return -1;
	lg_send_connect(c);
	return 0;
}

static void lg_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *ub)
{
	(void)ub;
	struct lg_conn *c = s->data;
	struct lg *lg = c->lg;
	if (nread == 0)
		return;
	if (nread < 0) {
		if (lg->phase < LG_PH_DONE) {
			lg->closed_by_peer++;
			if (lg->phase == LG_PH_SETUP)
				lg_fail(lg, "broker closed a connection during setup");
		}
		lg_close(c);
		return;
	}
	size_t from = c->in.len;
	if (c->tls) {
		c->tin.len += (size_t)nread;
		int t = lg_tls_input(c);
		if (t != 0) {
			if (t < 0 && lg->phase < LG_PH_DONE) {
				lg->closed_by_peer++;
				if (lg->phase == LG_PH_SETUP)
					lg_fail(lg, "broker closed a TLS connection during setup");
			}
			lg_close(c);
			return;
		}
		if (c->in.len == 0)
			return;
	} else {
		c->in.len += (size_t)nread;
	}
	if (lg->o.ws) {
		int u = c->state == LG_ST_UPGRADE ? lg_ws_upgraded(c) : lg_ws_unwrap(c, from);
		if (u > 0)
			return;
		if (u < 0) {
			lg->errors++;
			lg_fail(lg, c->state == LG_ST_UPGRADE ? "WebSocket upgrade refused"
							      : "bad WebSocket frame from the broker");
			lg_close(c);
			return;
		}
		if (c->in.len == 0)
			return;
	}
	struct lg_read r = { c, lg_now_ns() };
	struct codec_feed feed;
	int rc = codec_frames(c->in.p, c->in.len, NULL, lg_on_packet, &r, &feed);
	if (rc != 0) {
		if (rc < 0 || rc == LG_STOP_UNDECODABLE) {
			lg->errors++;
			lg_fail(lg, rc < 0 ? "malformed packet from the broker" :
					     "undecodable packet from the broker");
		} else if (lg->phase < LG_PH_DONE) {
			lg->closed_by_peer++;
			if (lg->phase == LG_PH_SETUP)
				lg_fail(lg, "broker refused a connection or subscription");
		}
		lg_close(c);
		return;
	}
	if (feed.used > 0) {
		memmove(c->in.p, c->in.p + feed.used, c->in.len - feed.used);
		c->in.len -= feed.used;
	}
	/* a packet larger than the buffer: grow once, to its size */
	if (feed.need > c->in.cap)
		lg_buf_reserve(&c->in, feed.need - c->in.len);
}

/* ---- connecting ---- */

static void lg_send_connect(struct lg_conn *c)
{
	struct lg *lg = c->lg;
	static const char *role_tag = "psc";
	char id[64];
	int il = snprintf(id, sizeof id, "%s-%c%" PRIu32, lg->prefix + 3, role_tag[c->role], c->idx);
	struct codec_packet pkt = { .type = CODEC_CONNECT, .version = lg->o.version };
	struct codec_connect *cn = &pkt.u.connect;
	cn->protocol_name.p = (const uint8_t *)"MQTT";
	cn->protocol_name.len = 4;
	cn->level = lg->o.version;
	/* --persistent: a subscriber's session outlives its connection, so a
	 * broker with persistence stores what it is sent */
	bool keep = lg->o.persistent && c->role == LG_SUB;
	cn->clean_start = !keep;
	cn->flags = keep ? 0x00 : 0x02;
	cn->keep_alive = lg->o.keepalive;
	cn->client_id.p = (const uint8_t *)id;
	cn->client_id.len = (uint32_t)il;
	if (lg->o.version == CODEC_V5) {
		/* let the broker send as much as its own inflight setting allows */
		cn->props.present = CODEC_PROP_BIT(CODEC_PROP_RECEIVE_MAX);
		cn->props.receive_max = 65535;
		if (keep) {
			cn->props.present |= CODEC_PROP_BIT(CODEC_PROP_SESSION_EXPIRY);
			cn->props.session_expiry = 300;
		}
	}
	lg_send_packet(c, &pkt);
	c->state = LG_ST_CONNACK;
}

/* --ws: the upgrade request, plain bytes ahead of any frame; the CONNECT
 * follows the 101. */
static void lg_ws_request(struct lg_conn *c)
{
	struct lg *lg = c->lg;
	struct lg_buf *b = c->tls ? &c->plain : &c->out[c->cur];
	char req[512];
	uint8_t key[16];
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char k64[25];
	for (int i = 0; i < 16; i++)
		key[i] = (uint8_t)(lg->ws_mask_state >> (i * 4));
	for (int i = 0, o = 0; i < 16; i += 3) {
		uint32_t v = (uint32_t)key[i] << 16 | (i + 1 < 16 ? (uint32_t)key[i + 1] << 8 : 0) |
			     (i + 2 < 16 ? key[i + 2] : 0);
		k64[o++] = b64[v >> 18 & 63];
		k64[o++] = b64[v >> 12 & 63];
		k64[o++] = i + 1 < 16 ? b64[v >> 6 & 63] : '=';
		k64[o++] = i + 2 < 16 ? b64[v & 63] : '=';
	}
	k64[24] = '\0';
	int n = snprintf(req, sizeof req,
			 "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
			 "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
			 "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
			 lg->o.ws_path, lg->o.host, lg->o.port, k64);
	memcpy(lg_buf_reserve(b, (size_t)n), req, (size_t)n);
	b->len += (size_t)n;
	c->state = LG_ST_UPGRADE;
	lg_mark_dirty(c);
}

static void lg_on_connect(uv_connect_t *req, int status)
{
	struct lg_conn *c = req->data;
	struct lg *lg = c->lg;
	lg->connecting--;
	if (status < 0 || c->closing) {
		if (lg->phase < LG_PH_DONE)
			lg->connect_fail++;
		if (lg->phase == LG_PH_SETUP)
			lg_fail(lg, "TCP connect failed");
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	if (lg->o.tls && lg_tls_start(c) < 0) {
		lg->errors++;
		if (lg->phase == LG_PH_SETUP)
			lg_fail(lg, "cannot start a TLS session");
		return;
	}
	uv_read_start((uv_stream_t *)&c->tcp, lg_on_alloc, lg_on_read);
	if (lg->o.ws)
		lg_ws_request(c);
	else
		lg_send_connect(c);
	lg_connect_next(lg);
}

/* The order connections are made: subscribers first (so nothing is
 * published before they listen), then publishers, then idle ones. */
static struct lg_conn *lg_conn_at(struct lg *lg, uint32_t i)
{
	if (i < lg->nsub)
		return &lg->subs[i];
	i -= lg->nsub;
	if (i < lg->npub)
		return &lg->pubs[i];
	i -= lg->npub;
	return &lg->idle[i];
}

/* Opens connection i's socket. Towards an IPv4 loopback broker the sockets
 * are spread over 127.0.0.1..127.0.0.N as source addresses: with one source
 * the kernel's search for a free ephemeral port grows with every connection
 * held (about 28 000 ports, odd ones tried first), and past ~12 000
 * connections connect() itself, not the broker, became the bottleneck
 * (4.6 s of generator system time for 19 000 connects). With
 * IP_BIND_ADDRESS_NO_PORT the port is still chosen at connect() time, per
 * 4-tuple, so every source has its own port range. */
static int lg_tcp_open(struct lg *lg, struct lg_conn *c, uint32_t i)
{
	if (lg->addr.ss_family != AF_INET || lg->o.sources <= 1)
		return uv_tcp_init(lg->loop, &c->tcp);
	int rc = uv_tcp_init_ex(lg->loop, &c->tcp, AF_INET);
	if (rc != 0)
		return rc;
	uv_os_fd_t fd;
	if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) {
		int one = 1;
		(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
	}
	struct sockaddr_in src;
	memset(&src, 0, sizeof src);
	src.sin_family = AF_INET;
	src.sin_addr.s_addr = htonl(0x7f000001u + i % lg->o.sources);
	rc = uv_tcp_bind(&c->tcp, (const struct sockaddr *)&src, 0);
	if (rc != 0) {
		uv_close((uv_handle_t *)&c->tcp, NULL);
		return rc;
	}
	return 0;
}

/* Starts connects up to the concurrency bound. Publishers wait until every
 * subscriber is subscribed. */
static void lg_connect_next(struct lg *lg)
{
	while (lg->phase == LG_PH_SETUP && lg->next_connect < lg->total &&
	       lg->connecting < lg->o.concurrency) {
		if (lg->next_connect >= lg->nsub && lg->ready < lg->nsub)
			return;
		/* bound the handshakes in flight too, not only the TCP connects */
		if (lg->next_connect - lg->ready >= lg->o.concurrency)
			return;
		struct lg_conn *c = lg_conn_at(lg, lg->next_connect++);
		if (lg->first_connect_ns == 0) {
			lg->first_connect_ns = lg_now_ns();
			lg->setup_bcpu0 = lg_proc_cpu(lg->o.broker_pid);
			lg->setup_cpu0 = lg_self_cpu();
		}
		if (lg_tcp_open(lg, c, lg->next_connect - 1) != 0) {
			lg_fail(lg, "cannot open a socket (file descriptor limit?)");
			return;
		}
		c->tcp.data = c;
		c->state = LG_ST_CONNECTING;
		c->creq.data = c;
		const struct sockaddr_storage *to =
			c->role == LG_SUB && lg->o.sub_port ? &lg->sub_addr : &lg->addr;
		int rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)to, lg_on_connect);
		if (rc != 0) {
			fprintf(stderr, "midge-loadgen: connect: %s\n", uv_strerror(rc));
			lg->connect_fail++;
			lg_fail(lg, "cannot start a connection (file descriptor limit?)");
			return;
		}
		lg->connecting++;
	}
}

/* ---- phases ---- */

static void lg_snapshot_start(struct lg *lg)
{
	lg->broker_cpu0 = lg_proc_cpu(lg->o.broker_pid);
	getrusage(RUSAGE_SELF, &lg->ru0);
	lg->ru_t0 = lg_now_ns();
}

static void lg_snapshot_end(struct lg *lg)
{
	lg->broker_cpu1 = lg_proc_cpu(lg->o.broker_pid);
	getrusage(RUSAGE_SELF, &lg->ru1);
	lg->ru_t1 = lg_now_ns();
	lg->rss_after_kb = lg_proc_status_kb(lg->o.broker_pid, "VmRSS");
	lg->rss_peak_kb = lg_proc_status_kb(lg->o.broker_pid, "VmHWM");
}

/* True when every message sent has reached every subscriber meant to get
 * it. Written-off messages count as missing here: they may still arrive,
 * and the drain waits for them (bounded by --drain) so that a late message
 * is not reported lost. */
static bool lg_all_delivered(const struct lg *lg)
{
	for (uint32_t i = 0; i < lg->npub; i++) {
		const struct lg_conn *p = &lg->pubs[i];
		if (p->delivered < (uint64_t)p->seq * lg->fan)
			return false;
		if (lg->o.qos > 0 && p->pkt_inflight > 0)
			return false;
	}
	return true;
}

static void lg_keepalive(struct lg *lg, uint64_t ms)
{
	if (lg->o.keepalive == 0)
		return;
	uint64_t due = (uint64_t)lg->o.keepalive * 500; /* half the interval, in ms */
	struct codec_packet pkt = { .type = CODEC_PINGREQ, .version = lg->o.version };
	for (uint32_t i = 0; i < lg->total; i++) {
		struct lg_conn *c = lg_conn_at(lg, i);
		if (c->state == LG_ST_READY && !c->closing && ms - c->last_send_ms >= due) {
			lg_send_packet(c, &pkt);
			c->last_send_ms = ms;
		}
	}
}

static void lg_stalls(struct lg *lg, uint64_t ms)
{
	uint64_t stall_ms = (uint64_t)(lg->o.stall * 1000);
	for (uint32_t i = 0; i < lg->npub; i++) {
		struct lg_conn *p = &lg->pubs[i];
		uint64_t outstanding = lg_outstanding(p, lg->fan);
		if (outstanding == 0) {
			p->last_progress_ms = ms;
			continue;
		}
		if (ms - p->last_progress_ms >= stall_ms) {
			/* the broker dropped or holds these: write them off so the
			 * window reopens; the sequence check counts them lost */
			p->forgiven += outstanding;
			p->stalls++;
			p->last_progress_ms = ms;
		}
	}
}

static void lg_finish(struct lg *lg)
{
	lg->phase = LG_PH_DONE;
	uv_timer_stop(&lg->tick);
	uv_timer_stop(&lg->deadline);
	uv_prepare_stop(&lg->prepare);
	uv_check_stop(&lg->check);
	/* polite DISCONNECT, then close with RST */
	struct codec_packet pkt = { .type = CODEC_DISCONNECT, .version = lg->o.version };
	for (uint32_t i = 0; i < lg->total; i++) {
		struct lg_conn *c = lg_conn_at(lg, i);
		if (c->state == LG_ST_NEW)
			continue;
		if (c->state == LG_ST_READY && !c->closing && !c->writing && !c->tls) {
			uv_buf_t ub;
			uint8_t d[8];
			size_t n = codec_encode(&pkt, d, sizeof d);
			ub = uv_buf_init((char *)d, (unsigned)n);
			uv_try_write((uv_stream_t *)&c->tcp, &ub, 1);
		}
		if (c->state == LG_ST_CONNECTING)
			c->closing = true, uv_close((uv_handle_t *)&c->tcp, lg_on_close);
		else
			lg_close(c);
	}
	uv_close((uv_handle_t *)&lg->tick, NULL);
	uv_close((uv_handle_t *)&lg->deadline, NULL);
	uv_close((uv_handle_t *)&lg->prepare, NULL);
	uv_close((uv_handle_t *)&lg->check, NULL);
}

static void lg_on_tick(uv_timer_t *t)
{
	struct lg *lg = t->data;
	uint64_t ms = uv_now(lg->loop);
	uint64_t now = lg_now_ns();
	double in_phase = (double)(ms - lg->phase_start_ms) / 1000.0;

	switch (lg->phase) {
	case LG_PH_SETUP:
		if (lg->ready == lg->total) {
			lg->t_setup_done_ns = now;
			if (lg->o.workload == LG_CONN) {
				/* let the broker settle, then hold for the duration */
				lg->phase = LG_PH_MEASURE;
				lg->t_meas_ns = now;
				lg_snapshot_start(lg);
			} else {
				lg->phase = lg->o.warmup > 0 ? LG_PH_WARMUP : LG_PH_MEASURE;
				lg->pace_start_ns = now;
				if (lg->phase == LG_PH_MEASURE) {
					lg->t_meas_ns = now;
					lg_snapshot_start(lg);
				}
				for (uint32_t i = 0; i < lg->npub; i++)
					lg->pubs[i].last_progress_ms = ms;
			}
			lg->phase_start_ms = ms;
		} else if (in_phase > lg->o.setup_timeout) {
			lg_fail(lg, "setup timed out (connections or subscriptions not acknowledged)");
		}
		break;
	case LG_PH_WARMUP:
		if (in_phase >= lg->o.warmup) {
			lg->phase = LG_PH_MEASURE;
			lg->phase_start_ms = ms;
			lg->t_meas_ns = now;
			lg_snapshot_start(lg);
		}
		break;
	case LG_PH_MEASURE:
		if (in_phase >= lg->o.duration) {
			lg->t_end_ns = now;
			lg_snapshot_end(lg);
			lg->phase = lg->o.workload == LG_CONN ? LG_PH_DONE : LG_PH_DRAIN;
			lg->phase_start_ms = ms;
		}
		break;
	case LG_PH_DRAIN:
		if (lg_all_delivered(lg) || in_phase >= lg->o.drain) {
			lg->t_drain_ns = now;
			lg->phase = LG_PH_DONE;
		}
		break;
	default:
		break;
	}
	if (lg_phase_publishing(lg))
		lg_stalls(lg, ms);
	if (lg->phase == LG_PH_SETUP)
		lg_connect_next(lg);
	if (lg->phase != LG_PH_DONE && ms - lg->last_keepalive_ms >= 1000) {
		lg->last_keepalive_ms = ms;
		lg_keepalive(lg, ms);
	}
	if (lg->phase == LG_PH_DONE)
		lg_finish(lg);
}

static void lg_on_deadline(uv_timer_t *t)
{
	struct lg *lg = t->data;
	lg_fail(lg, "hard deadline reached");
	lg_finish(lg);
}

static void lg_on_prepare(uv_prepare_t *h)
{
	struct lg *lg = h->data;
	lg_pump_all(lg);
	lg_flush_all(lg);
}

static void lg_on_check(uv_check_t *h)
{
	struct lg *lg = h->data;
	lg_pump_all(lg);
	lg_flush_all(lg);
}

/* ---- report ---- */

static const char *lg_workload_name(int w)
{
	static const char *names[] = { "fanin", "fanout", "p2p", "conn" };
	return names[w];
}

static void lg_report(struct lg *lg)
{
	const struct lg_opts *o = &lg->o;
	uint64_t lost_tail = 0;
	for (uint32_t s = 0; s < lg->nsub; s++) {
		struct lg_conn *c = &lg->subs[s];
		for (uint32_t k = 0; k < c->npubs; k++) {
			uint32_t sent = lg->pubs[c->pub_base + k].seq;
			if (sent > c->expect[k])
				lost_tail += sent - c->expect[k];
		}
	}
	uint64_t lost = lg->lost_gap + lost_tail;
	uint64_t stalls = 0;
	for (uint32_t i = 0; i < lg->npub; i++)
		stalls += lg->pubs[i].stalls;

	double secs = lg->t_end_ns > lg->t_meas_ns ? (double)(lg->t_end_ns - lg->t_meas_ns) * 1e-9 : 0;
	double wall = lg->ru_t1 > lg->ru_t0 ? (double)(lg->ru_t1 - lg->ru_t0) * 1e-9 : 0;
	double recv_rate = secs > 0 ? (double)lg->recv_meas / secs : 0;
	double sent_rate = secs > 0 ? (double)lg->sent_meas / secs : 0;
	double bcpu = (lg->broker_cpu0 >= 0 && lg->broker_cpu1 >= 0) ? lg->broker_cpu1 - lg->broker_cpu0 : -1;
	double bcpu_pct = bcpu >= 0 && wall > 0 ? 100.0 * bcpu / wall : -1;
	double bcpu_per_m = bcpu >= 0 && lg->recv_meas > 0 ? bcpu / ((double)lg->recv_meas / 1e6) : -1;
	double own = lg_tv(&lg->ru1.ru_utime) + lg_tv(&lg->ru1.ru_stime) - lg_tv(&lg->ru0.ru_utime) -
		     lg_tv(&lg->ru0.ru_stime);
	double own_pct = wall > 0 ? 100.0 * own / wall : 0;
	double setup_s = lg->last_connack_ns > lg->first_connect_ns
				 ? (double)(lg->last_connack_ns - lg->first_connect_ns) * 1e-9
				 : 0;
	double conn_rate = setup_s > 0 ? (double)lg->ready / setup_s : 0;
	/* CPU per connection while connecting: where the connect rate's
	 * limit is (the broker, or the generator's side of the handshakes) */
	bool setup_done = lg->ready == lg->total && lg->ready > 0;
	double conn_bus = setup_done && lg->setup_bcpu0 >= 0 && lg->setup_bcpu1 >= 0
				  ? (lg->setup_bcpu1 - lg->setup_bcpu0) * 1e6 / lg->ready
				  : -1;
	double conn_gus = setup_done && lg->setup_cpu0 >= 0 && lg->setup_cpu1 >= 0
				  ? (lg->setup_cpu1 - lg->setup_cpu0) * 1e6 / lg->ready
				  : -1;
	double per_conn = -1;
	if (o->workload == LG_CONN && lg->rss_before_kb >= 0 && lg->rss_after_kb >= 0 && lg->ready > 0)
		per_conn = (double)(lg->rss_after_kb - lg->rss_before_kb) * 1024.0 / lg->ready;
	double p50 = (double)lg_hist_pct(&lg->hist, 0.50) / 1000.0;
	double p99 = (double)lg_hist_pct(&lg->hist, 0.99) / 1000.0;
	double p999 = (double)lg_hist_pct(&lg->hist, 0.999) / 1000.0;
	double pmax = (double)lg->hist.max / 1000.0;
	double pmean = lg->hist.count ? (double)lg->hist.sum / (double)lg->hist.count / 1000.0 : 0;
	double a50 = (double)lg_hist_pct(&lg->ack_hist, 0.50) / 1000.0;
	double a99 = (double)lg_hist_pct(&lg->ack_hist, 0.99) / 1000.0;
	double a999 = (double)lg_hist_pct(&lg->ack_hist, 0.999) / 1000.0;
	const char *ver = o->version == CODEC_V5 ? "5" : o->version == CODEC_V311 ? "3.1.1" : "3.1";

	if (!o->quiet) {
		printf("midge-loadgen %s%s%s: %s qos=%d mqtt=%s payload=%" PRIu32 "B clients=%" PRIu32
		       " %s window=%" PRIu32 " broker=%s:%d\n",
		       o->label ? "[" : "", o->label ? o->label : "", o->label ? "] " : "",
		       lg_workload_name(o->workload), o->qos, ver, o->size, o->clients,
		       o->rate > 0 ? "fixed-rate" : "closed-loop", o->window, o->host, o->port);
		if (o->workload != LG_CONN) {
			printf("  measured          %.2f s (after %.1f s warm-up)\n", secs, o->warmup);
			printf("  received          %" PRIu64 " msgs, %.0f msg/s\n", lg->recv_meas, recv_rate);
			printf("  sent              %" PRIu64 " msgs, %.0f msg/s\n", lg->sent_meas, sent_rate);
			printf("  latency (us)      p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f\n", p50,
			       p99, p999, pmax, pmean);
			if (o->qos > 0)
				printf("  ack latency (us)  p50 %.1f  p99 %.1f  p99.9 %.1f  (publish -> %s)\n",
				       a50, a99, a999, o->qos == 1 ? "PUBACK" : "PUBCOMP");
			printf("  lost / duplicated %" PRIu64 " / %" PRIu64 " (whole run, %" PRIu64
			       " sent)%s\n",
			       lost, lg->dup, lg->sent_total, stalls ? " [window stalls]" : "");
		} else {
			printf("  connections       %" PRIu32 " held %.1f s\n", lg->ready, secs);
			printf("  broker RSS        %ld kB before, %ld kB after, %.0f B per connection\n",
			       lg->rss_before_kb, lg->rss_after_kb, per_conn);
		}
		printf("  connect rate      %.0f conn/s (%" PRIu32 " in %.3f s)\n", conn_rate, lg->ready, setup_s);
		if (conn_bus >= 0)
			printf("  connect CPU       broker %.1f us, generator %.1f us per connection\n",
			       conn_bus, conn_gus);
		else if (conn_gus >= 0)
			printf("  connect CPU       generator %.1f us per connection\n", conn_gus);
		if (bcpu >= 0)
			printf("  broker CPU        %.2f s (%.0f%% of a core)%s%.2f s per million msgs\n", bcpu,
			       bcpu_pct, o->workload == LG_CONN ? "" : ", ",
			       o->workload == LG_CONN ? 0.0 : bcpu_per_m);
		printf("  generator CPU     %.2f s (%.0f%% of a core)\n", own, own_pct);
		if (lg->fail)
			printf("  FAILED: %s\n", lg->fail);
	}
	printf("RESULT tool=midge-loadgen label=%s workload=%s qos=%d mqtt=%s tls=%d ws=%d payload=%" PRIu32
	       " clients=%" PRIu32 " rate=%.0f window=%" PRIu32 " duration=%.3f sent=%" PRIu64
	       " received=%" PRIu64 " sent_total=%" PRIu64 " received_total=%" PRIu64
	       " msg_per_s=%.1f sent_per_s=%.1f lat_p50_us=%.1f lat_p99_us=%.1f lat_p999_us=%.1f"
	       " lat_max_us=%.1f lat_mean_us=%.1f ack_p50_us=%.1f ack_p99_us=%.1f ack_p999_us=%.1f"
	       " lost=%" PRIu64 " dup=%" PRIu64
	       " unexpected=%" PRIu64 " stalls=%" PRIu64 " errors=%" PRIu64 " conns=%" PRIu32
	       " connect_per_s=%.1f connect_broker_us=%.1f connect_gen_us=%.1f"
	       " broker_cpu_s=%.3f broker_cpu_pct=%.1f"
	       " broker_cpu_s_per_M=%.3f broker_rss_before_kb=%ld broker_rss_after_kb=%ld"
	       " broker_rss_peak_kb=%ld rss_per_conn_B=%.0f gen_cpu_s=%.3f gen_cpu_pct=%.1f ok=%d\n",
	       o->label ? o->label : "-", lg_workload_name(o->workload), o->qos, ver, (int)o->tls, (int)o->ws,
	       o->size, o->clients,
	       o->rate, o->window, secs, lg->sent_meas, lg->recv_meas, lg->sent_total, lg->recv_total,
	       recv_rate, sent_rate, p50, p99, p999, pmax, pmean, a50, a99, a999, lost, lg->dup, lg->unexpected, stalls,
	       lg->errors + lg->closed_by_peer + lg->connect_fail, lg->ready, conn_rate, conn_bus, conn_gus,
	       bcpu, bcpu_pct, bcpu_per_m, lg->rss_before_kb, lg->rss_after_kb, lg->rss_peak_kb, per_conn, own, own_pct,
	       lg->fail ? 0 : 1);
	fflush(stdout);
}

/* ---- setup ---- */

static void lg_usage(FILE *f)
{
	fputs("usage: midge-loadgen [options]\n"
	      "  -H, --host ADDR          broker address, loopback only (127.0.0.1)\n"
	      "  -p, --port PORT          broker port (1883)\n"
	      "  -w, --workload W         fanin | fanout | p2p | conn (fanin)\n"
	      "  -q, --qos N              0, 1 or 2 (0)\n"
	      "  -s, --size BYTES         payload size, >= 16 (64)\n"
	      "  -c, --clients N          publishers (fanin), subscribers (fanout), pairs (p2p),\n"
	      "                           connections (conn); defaults 50, 100, 50, 1000\n"
	      "  -r, --rate R             messages/s per publisher; 0 = closed loop (0)\n"
	      "  -W, --window N           in-flight messages per publisher (64)\n"
	      "  -d, --duration S         measured seconds (10)\n"
	      "  -u, --warmup S           warm-up seconds, not measured (2)\n"
	      "      --drain S            seconds to wait for stragglers after the run (3)\n"
	      "      --setup-timeout S    seconds allowed to connect and subscribe (30)\n"
	      "      --stall S            write off a publisher's in-flight messages after S\n"
	      "                           seconds without a delivery (2)\n"
	      "  -V, --mqtt V             3.1.1 or 5 (3.1.1)\n"
	      "  -b, --broker-pid PID     read the broker's CPU and RSS from /proc/PID\n"
	      "  -k, --keepalive S        keepalive sent in CONNECT; PINGREQ at S/2 (60)\n"
	      "      --concurrency N      connects and handshakes in flight (32); keep it\n"
	      "                           below the broker's listen backlog\n"
	      "      --sources N          spread connections over source addresses\n"
	      "                           127.0.0.1..127.0.0.N (IPv4 loopback only; 16;\n"
	      "                           1 = let the kernel choose)\n"
	      "      --tls                every connection over TLS (GnuTLS)\n"
	      "      --cafile FILE        with --tls: verify the broker's chain against FILE\n"
	      "                           (PEM; the host name is not checked)\n"
	      "      --insecure           with --tls: do not verify the broker's certificate\n"
	      "      --ws                 MQTT over WebSocket (with --tls: wss); one masked\n"
	      "                           binary frame per packet\n"
	      "      --ws-path PATH       the upgrade request's path (/mqtt)\n"
	      "      --sub-port PORT      subscribers connect to PORT (another node of a\n"
	      "                           midge cluster: cross-node traffic); publishers to -p\n"
	      "      --persistent         subscribers keep their session (3.1.1 clean 0, v5\n"
	      "                           session expiry 300 s): a broker with persistence\n"
	      "                           stores what they are sent\n"
	      "  -l, --label TEXT         label copied into the RESULT line (no spaces)\n"
	      "      --quiet              only the RESULT line\n"
	      "      --syscall-cost       print this machine's cost of a trivial system call\n"
	      "                           (syscall_ns=...) and exit\n"
	      "  -h, --help\n",
	      f);
}

static double lg_parse_num(const char *s, double lo, double hi, const char *what)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi)) {
		fprintf(stderr, "midge-loadgen: bad %s '%s' (allowed %g..%g)\n", what, s, lo, hi);
		exit(1);
	}
	return v;
}

static void lg_parse(struct lg_opts *o, int argc, char **argv)
{
	static const struct option longs[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "workload", required_argument, NULL, 'w' },
		{ "qos", required_argument, NULL, 'q' },
		{ "size", required_argument, NULL, 's' },
		{ "clients", required_argument, NULL, 'c' },
		{ "rate", required_argument, NULL, 'r' },
		{ "window", required_argument, NULL, 'W' },
		{ "duration", required_argument, NULL, 'd' },
		{ "warmup", required_argument, NULL, 'u' },
		{ "drain", required_argument, NULL, 1 },
		{ "setup-timeout", required_argument, NULL, 2 },
		{ "stall", required_argument, NULL, 3 },
		{ "mqtt", required_argument, NULL, 'V' },
		{ "broker-pid", required_argument, NULL, 'b' },
		{ "keepalive", required_argument, NULL, 'k' },
		{ "concurrency", required_argument, NULL, 4 },
		{ "sources", required_argument, NULL, 7 },
		{ "label", required_argument, NULL, 'l' },
		{ "quiet", no_argument, NULL, 5 },
		{ "syscall-cost", no_argument, NULL, 6 },
		{ "tls", no_argument, NULL, 8 },
		{ "cafile", required_argument, NULL, 9 },
		{ "insecure", no_argument, NULL, 10 },
		{ "ws", no_argument, NULL, 11 },
		{ "ws-path", required_argument, NULL, 12 },
		{ "persistent", no_argument, NULL, 13 },
		{ "sub-port", required_argument, NULL, 14 },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	*o = (struct lg_opts){
		.host = "127.0.0.1", .port = 1883, .size = 64, .window = 64,
		.duration = 10, .warmup = 2, .drain = 3, .setup_timeout = 30, .stall = 2,
		.version = CODEC_V311, .keepalive = 60, .concurrency = 32, .sources = 16,
		.ws_path = "/mqtt",
	};
	int opt;
	while ((opt = getopt_long(argc, argv, "H:p:w:q:s:c:r:W:d:u:V:b:k:l:h", longs, NULL)) != -1) {
		switch (opt) {
		case 'H': o->host = optarg; break;
		case 'p': o->port = (int)lg_parse_num(optarg, 1, 65535, "port"); break;
		case 'w':
			if (!strcmp(optarg, "fanin"))
				o->workload = LG_FANIN;
			else if (!strcmp(optarg, "fanout"))
				o->workload = LG_FANOUT;
			else if (!strcmp(optarg, "p2p"))
				o->workload = LG_P2P;
			else if (!strcmp(optarg, "conn"))
				o->workload = LG_CONN;
			else {
				fprintf(stderr, "midge-loadgen: unknown workload '%s'\n", optarg);
				exit(1);
			}
			break;
		case 'q': o->qos = (int)lg_parse_num(optarg, 0, 2, "qos"); break;
		case 's': o->size = (uint32_t)lg_parse_num(optarg, LG_HDR, LG_MAX_PAYLOAD, "size"); break;
		case 'c': o->clients = (uint32_t)lg_parse_num(optarg, 1, LG_MAX_CONNS, "clients"); break;
		case 'r': o->rate = lg_parse_num(optarg, 0, 1e7, "rate"); break;
		case 'W': o->window = (uint32_t)lg_parse_num(optarg, 1, 32768, "window"); break;
		case 'd': o->duration = lg_parse_num(optarg, 0.1, 3600, "duration"); break;
		case 'u': o->warmup = lg_parse_num(optarg, 0, 600, "warmup"); break;
		case 1: o->drain = lg_parse_num(optarg, 0, 600, "drain"); break;
		case 2: o->setup_timeout = lg_parse_num(optarg, 1, 600, "setup timeout"); break;
		case 3: o->stall = lg_parse_num(optarg, 0.01, 600, "stall"); break;
		case 'V':
			if (!strcmp(optarg, "3.1.1") || !strcmp(optarg, "4") || !strcmp(optarg, "311"))
				o->version = CODEC_V311;
			else if (!strcmp(optarg, "5"))
				o->version = CODEC_V5;
			else {
				fprintf(stderr, "midge-loadgen: --mqtt takes 3.1.1 or 5\n");
				exit(1);
			}
			break;
		case 'b': o->broker_pid = (int)lg_parse_num(optarg, 1, 1e9, "broker pid"); break;
		case 'k': o->keepalive = (uint16_t)lg_parse_num(optarg, 0, 65535, "keepalive"); break;
		case 4: o->concurrency = (uint32_t)lg_parse_num(optarg, 1, 100000, "concurrency"); break;
		case 7: o->sources = (uint32_t)lg_parse_num(optarg, 1, 254, "sources"); break;
		case 'l': o->label = optarg; break;
		case 5: o->quiet = true; break;
		case 6: o->syscall_cost = true; break;
		case 8: o->tls = true; break;
		case 9: o->cafile = optarg; break;
		case 10: o->insecure = true; break;
		case 11: o->ws = true; break;
		case 12: o->ws_path = optarg; break;
		case 13: o->persistent = true; break;
		case 14: o->sub_port = (int)lg_parse_num(optarg, 1, 65535, "sub-port"); break;
		case 'h': lg_usage(stdout); exit(0);
		default: lg_usage(stderr); exit(1);
		}
	}
	if (optind != argc) {
		lg_usage(stderr);
		exit(1);
	}
	if (o->clients == 0) {
		static const uint32_t defaults[] = { 50, 100, 50, 1000 };
		o->clients = defaults[o->workload];
	}
	if (o->workload != LG_CONN && o->clients > LG_MAX_CLIENTS) {
		fprintf(stderr, "midge-loadgen: at most %d clients for %s\n", LG_MAX_CLIENTS,
			lg_workload_name(o->workload));
		exit(1);
	}
	if (o->tls && !o->cafile && !o->insecure) {
		fprintf(stderr, "midge-loadgen: --tls needs --cafile FILE or --insecure\n");
		exit(1);
	}
	if (o->label && strchr(o->label, ' ')) {
		fprintf(stderr, "midge-loadgen: --label must not contain spaces\n");
		exit(1);
	}
}

/* Resolves the broker address and refuses anything but loopback: this tool
 * floods what it connects to. */
static void lg_resolve(struct lg *lg)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)&lg->addr;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&lg->addr;
	if (uv_ip4_addr(lg->o.host, lg->o.port, a4) == 0) {
		if ((ntohl(a4->sin_addr.s_addr) >> 24) != 127)
			lg_die("refusing a non-loopback address (use 127.0.0.0/8 or ::1)");
	} else if (uv_ip6_addr(lg->o.host, lg->o.port, a6) == 0) {
		if (!IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr))
			lg_die("refusing a non-loopback address (use 127.0.0.0/8 or ::1)");
	} else {
		lg_die("--host takes a numeric loopback address");
	}
	lg->sub_addr = lg->addr;
	if (lg->o.sub_port && lg->addr.ss_family == AF_INET)
		((struct sockaddr_in *)&lg->sub_addr)->sin_port = htons((uint16_t)lg->o.sub_port);
	else if (lg->o.sub_port)
		((struct sockaddr_in6 *)&lg->sub_addr)->sin6_port = htons((uint16_t)lg->o.sub_port);
}

static void lg_raise_nofile(uint32_t need)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)need + 32)
		fprintf(stderr,
			"midge-loadgen: warning: open-file limit %llu is below the %u connections asked for\n",
			(unsigned long long)rl.rlim_cur, need);
}

static struct lg_conn *lg_conns_new(struct lg *lg, uint32_t n, uint8_t role)
{
	if (n == 0)
		return NULL;
	struct lg_conn *v = calloc(n, sizeof *v);
	if (!v)
		lg_die("out of memory");
	for (uint32_t i = 0; i < n; i++) {
		v[i].lg = lg;
		v[i].role = role;
		v[i].idx = i;
	}
	return v;
}

static void lg_setup(struct lg *lg)
{
	const struct lg_opts *o = &lg->o;
	uint32_t n = o->clients;
	switch (o->workload) {
	case LG_FANIN: lg->npub = n; lg->nsub = 1; lg->fan = 1; break;
	case LG_FANOUT: lg->npub = 1; lg->nsub = n; lg->fan = n; break;
	case LG_P2P: lg->npub = n; lg->nsub = n; lg->fan = 1; break;
	default: lg->nidle = n; lg->fan = 1; break;
	}
	lg->total = lg->npub + lg->nsub + lg->nidle;
	lg->pubs = lg_conns_new(lg, lg->npub, LG_PUB);
	lg->subs = lg_conns_new(lg, lg->nsub, LG_SUB);
	lg->idle = lg_conns_new(lg, lg->nidle, LG_IDLE);
	for (uint32_t s = 0; s < lg->nsub; s++) {
		struct lg_conn *c = &lg->subs[s];
		c->pub_base = o->workload == LG_P2P ? s : 0;
		c->npubs = o->workload == LG_FANIN ? lg->npub : 1;
		c->expect = calloc(c->npubs, sizeof *c->expect);
		if (!c->expect)
			lg_die("out of memory");
	}
	lg->ws_mask_state = lg_now_ns() | 1;
	lg->payload = malloc(o->size);
	if (!lg->payload)
		lg_die("out of memory");
	for (uint32_t i = 0; i < o->size; i++)
		lg->payload[i] = (uint8_t)('a' + i % 26);
	snprintf(lg->prefix, sizeof lg->prefix, "lg/%d-%llx", (int)getpid(),
		 (unsigned long long)(lg_now_ns() & 0xffffff));
	lg_raise_nofile(lg->total);
}

/* The cost of the cheapest system call, in ns: on a virtual machine it can
 * be ten times that of bare metal, and a broker making several per message
 * pays it on every one. Best of 100 short rounds, so that time sliced away
 * by other processes does not count. */
static void lg_print_syscall_cost(void)
{
	double best = 1e18;
	for (int round = 0; round < 100; round++) {
		uint64_t t0 = lg_now_ns();
		for (int i = 0; i < 2000; i++)
			syscall(SYS_getppid);
		double ns = (double)(lg_now_ns() - t0) / 2000.0;
		if (ns < best)
			best = ns;
	}
	printf("syscall_ns=%.0f\n", best);
}

int main(int argc, char **argv)
{
	static struct lg lgs;
	struct lg *lg = &lgs;
	lg_parse(&lg->o, argc, argv);
	if (lg->o.syscall_cost) {
		lg_print_syscall_cost();
		return 0;
	}
	lg_resolve(lg);
	lg_setup(lg);
	if (lg->o.tls)
		lg_tls_setup(lg);
	lg->rss_before_kb = lg_proc_status_kb(lg->o.broker_pid, "VmRSS");
	lg->broker_cpu0 = lg->broker_cpu1 = -1;
	lg->loop = uv_default_loop();
	lg->t0_ns = lg_now_ns();

	uv_prepare_init(lg->loop, &lg->prepare);
	lg->prepare.data = lg;
	uv_prepare_start(&lg->prepare, lg_on_prepare);
	uv_check_init(lg->loop, &lg->check);
	lg->check.data = lg;
	uv_check_start(&lg->check, lg_on_check);
	uv_timer_init(lg->loop, &lg->tick);
	lg->tick.data = lg;
	uv_timer_start(&lg->tick, lg_on_tick, 1, 1);
	uv_timer_init(lg->loop, &lg->deadline);
	lg->deadline.data = lg;
	double limit = lg->o.setup_timeout + lg->o.warmup + lg->o.duration + lg->o.drain + 10;
	uv_timer_start(&lg->deadline, lg_on_deadline, (uint64_t)(limit * 1000), 0);

	lg->phase = LG_PH_SETUP;
	lg->phase_start_ms = uv_now(lg->loop);
	lg_connect_next(lg);
	uv_run(lg->loop, UV_RUN_DEFAULT);

	if (lg->t_end_ns == 0) {
		lg->t_end_ns = lg_now_ns();
		if (lg->t_meas_ns == 0)
			lg->t_meas_ns = lg->t_end_ns;
		lg_snapshot_end(lg);
		if (lg->ru_t0 == 0)
			lg->ru_t0 = lg->ru_t1;
	}
	lg_report(lg);
	if (lg->fail)
		fprintf(stderr, "midge-loadgen: %s\n", lg->fail);
	return lg->fail ? lg->exit_code : 0;
}
