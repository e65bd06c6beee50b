/*
 * fuzz_engine.c - packet sequences from up to eight fake clients into one
 * engine, with a fake clock. The input is a script of operations:
 *
 *   0x0k            open connection k (k = 0..7)
 *   0x1k LL LL ...  bytes for connection k: a 16-bit length, then that many
 *                   bytes, fed to engine_conn_input() like the transport
 *   0x2k            the socket of connection k is gone
 *   0x3_ NN         advance the clock by NN x 250 ms and tick
 *   0x4_ NN ...     the broker publishes: QoS/retain from NN, topic "t/NN"
 *   0x5_            graceful shutdown
 *   0x6k NN         the pending authentication of connection k completes:
 *                   allowed when NN is even, else refused with NN | 0x80
 *   0x7k NN         the pending enhanced authentication step of connection
 *                   k (MQTT 5 AUTH) completes: NN % 3 = 0 continues, 1
 *                   accepts, 2 refuses with 0x87; with data when NN & 4
 *
 * The first byte selects a configuration variant (bits: QoS 0 queueing
 * off, window 1, retain off, wildcards off, shared off, max QoS 1, upgrade
 * QoS, an ACL that denies topics starting with 'd' (and QoS 2 or retained
 * publishes on ones starting with 'q') and an authentication
 * that refuses user "x" and answers later for user "p", and serves every
 * Authentication Method but "x", later).
 *
 * The fake io checks the contract (no send after the socket is gone,
 * close asked at most once per connection) and the engine is freed at the
 * end, so leaks show up under LeakSanitizer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "engine/engine.h"

#define FZ_CONNS 8

struct fz_conn {
	struct engine_conn *c;
	bool closing; /* io->close was called or the engine returned -1 */
	bool held;    /* the engine holds its CONNECT for the authentication */
	bool step;    /* an enhanced authentication step is pending */
	uint8_t buf[4096];
	size_t n;
};

struct fz {
	struct fz_conn conn[FZ_CONNS];
	uint64_t sent;
	uint64_t events;
};

static int fz_send(void *ctx, void *handle, const uint8_t *head, size_t head_len,
		   struct frame *tail, bool droppable)
{
	struct fz *z = ctx;
	struct fz_conn *k = handle;
	if (!k->c)
		abort();
	z->sent += head_len + (tail ? tail->len : 0);
	if (tail && tail->refs == 0)
		abort();
	return 0;
}

static void fz_close(void *ctx, void *handle)
{
	struct fz_conn *k = handle;
	if (!k->c)
		abort();
	k->closing = true;
}

static void fz_event(void *ctx, const struct midge_event *ev)
{
	struct fz *z = ctx;
	if (ev->type <= 0 || ev->type >= MIDGE_EV__COUNT)
		abort();
	z->events++;
}

static void fz_gone(struct engine *e, struct fz_conn *k, uint64_t now)
{
	if (!k->c)
		return;
	engine_conn_closed(e, k->c, "fuzz", now);
	k->c = NULL;
	k->closing = false;
	k->held = false;
	k->step = false;
	k->n = 0;
}

/* Feeds k's receive buffer to the engine's framing loop and keeps what it
 * did not use, as the transport does. */
static void fz_input(struct engine *e, struct fz_conn *k, uint64_t now)
{
	struct codec_feed fo;
	int rc = engine_conn_input(e, k->c, k->buf, k->n, now, &fo);
	if (rc < 0)
		k->closing = true;
	k->held = rc == ENGINE_CONN_HELD;
	if (fo.used > k->n)
		abort();
	memmove(k->buf, k->buf + fo.used, k->n - fo.used);
	k->n -= fo.used;
	if (!k->held && !k->closing && k->n == sizeof k->buf) /* larger than the buffer: drop it */
		k->closing = true;
}

/* Appends bytes to k's receive buffer and feeds it. */
static void fz_feed(struct engine *e, struct fz_conn *k, const uint8_t *p, size_t len,
		    uint64_t now)
{
	if (!k->c || k->closing)
		return;
	if (len > sizeof k->buf - k->n)
		len = sizeof k->buf - k->n;
	memcpy(k->buf + k->n, p, len);
	k->n += len;
	if (!k->held)
		fz_input(e, k, now);
}

/* The authentication decision for k arrives; what k kept is fed again. */
static void fz_auth_done(struct engine *e, struct fz_conn *k, uint8_t verdict, uint64_t now)
{
	if (!k->c)
		return;
	int rc = engine_conn_auth_done(e, k->c, verdict & 1 ? verdict | 0x80 : 0, now);
	if (!k->held) {
		if (rc != -1) /* nothing was pending */
			abort();
		return;
	}
	k->held = false;
	if (rc < 0)
		k->closing = true;
	else
		fz_input(e, k, now);
}

/* The pending enhanced authentication step of k is answered; what k
 * kept is fed again when its CONNECT was held. */
static void fz_auth_step(struct engine *e, struct fz_conn *k, uint8_t nn, uint64_t now)
{
	if (!k->c)
		return;
	struct midge_str d = {"d", 1};
	int verdict = nn % 3 == 0 ? MQTT_RC_CONTINUE_AUTH : nn % 3 == 1 ? 0 : MQTT_RC_NOT_AUTHORIZED;
	int rc = engine_conn_auth_step(e, k->c, verdict, nn & 4 ? &d : NULL, now);
	if (!k->step) {
		if (rc != -1) /* nothing was pending */
			abort();
		return;
	}
	k->step = false;
	if (rc < 0) {
		k->closing = true;
	} else if (k->held) {
		k->held = false;
		fz_input(e, k, now);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* what a delivery on a topic starting with 'h' is answered (op 8 sets it) */
static int fz_receive_answer;
static struct engine *fz_engine;

static int fz_acl(void *ctx, const struct midge_client *client, const uint8_t *topic, size_t len,
		  enum engine_access access, uint8_t qos, bool retain)
{
	/* 'h...' deliveries wait for op 8's answer */
	if (len && topic[0] == 'h' && access == ENGINE_ACCESS_RECEIVE) {
		if (fz_receive_answer == ENGINE_AUTH_PENDING && !engine_acl_may_wait(fz_engine))
			abort(); /* a delivery may always wait once acl_ask is on */
		return fz_receive_answer;
	}
	/* 'd...' refused; 'q...' refused to QoS 2 and retained publishes */
	if (len && topic[0] == 'q' && access == ENGINE_ACCESS_PUBLISH && (qos == 2 || retain))
		return MQTT_RC_NOT_AUTHORIZED;
	return len && topic[0] == 'd' ? MQTT_RC_NOT_AUTHORIZED : 0;
}

static int fz_connect(void *ctx, const struct midge_client *client, const struct midge_str *user,
		      const struct midge_str *pass)
{
	if (user->len == 1 && user->p[0] == 'p')
		return ENGINE_AUTH_PENDING;
	return user->len == 1 && user->p[0] == 'x' ? MQTT_RC_BAD_USERNAME_OR_PASSWORD : 0;
}

static int fz_enhanced(void *ctx, const struct midge_client *client, enum engine_auth_step step,
		       const struct midge_str *method, const struct midge_str *data)
{
	struct fz_conn *k = engine_conn_handle(engine_conn_of(client));
	if (!method->p || (data->p == NULL && data->len))
		abort();
	if (method->len == 1 && method->p[0] == 'x')
		return MQTT_RC_BAD_AUTH_METHOD;
	k->step = true;
	return ENGINE_AUTH_PENDING;
}

static void fz_cancel(void *ctx, const struct midge_client *client)
{
	struct fz_conn *k = engine_conn_handle(engine_conn_of(client));
	k->step = false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fz z;
	struct engine_config cfg;
	struct engine_io io = {&z, fz_send, fz_close, fz_event, NULL, NULL};
	uint64_t now = 1700000000000ull;
	memset(&z, 0, sizeof z);
	engine_config_default(&cfg);
	cfg.max_inflight = 4;
	cfg.receive_max = 4;
	cfg.max_queued_messages = 8;
	cfg.max_queued_bytes = 4096;
	cfg.max_subscriptions = 16;
	cfg.topic_alias_max = 4;
	cfg.max_packet_size = 4096;
	cfg.max_packet_before_connect = 1024;
	struct engine_auth auth = {.connect = fz_connect, .acl = fz_acl, .connect_cancel = fz_cancel,
				   .enhanced = fz_enhanced};
	uint8_t variant = size ? data[0] : 0;
	cfg.queue_qos0_messages = !(variant & 0x01);
	if (variant & 0x02)
		cfg.max_inflight = 1;
	cfg.retain_available = !(variant & 0x04);
	cfg.wildcard_sub_available = !(variant & 0x08);
	cfg.shared_sub_available = !(variant & 0x10);
	if (variant & 0x20)
		cfg.max_qos = 1;
	cfg.upgrade_outgoing_qos = (variant & 0x40) != 0;
	fz_receive_answer = ENGINE_AUTH_PENDING;
	struct engine *e = engine_new(&cfg, &io, (variant & 0x80) ? &auth : NULL);
	if (!e)
		return 0;
	fz_engine = e;
	engine_set_acl_ask(e, (variant & 0x80) != 0);
	size_t i = size ? 1 : 0;
	while (i < size) {
		uint8_t op = data[i++];
		struct fz_conn *k = &z.conn[op & 7];
		switch (op >> 4) {
		case 0:
			if (!k->c) {
				k->c = engine_conn_open(e, k, "127.0.0.1", 1883, false, now);
				k->closing = false;
				k->held = false;
				k->step = false;
				k->n = 0;
			}
			break;
		case 1: {
			if (size - i < 2)
				goto out;
			size_t len = (size_t)data[i] << 8 | data[i + 1];
			i += 2;
			if (len > size - i)
				len = size - i;
			fz_feed(e, k, data + i, len, now);
			i += len;
			break;
		}
		case 2:
			fz_gone(e, k, now);
			break;
		case 3:
			if (i >= size)
				goto out;
			now += (uint64_t)data[i++] * 250;
			engine_tick(e, now);
			break;
		case 4: {
			if (i >= size)
				goto out;
			uint8_t b = data[i++];
			char topic[8];
			int n = snprintf(topic, sizeof topic, b & 0x08 ? "h/%u" : "t/%u", b & 0x07);
			engine_publish(e, (const uint8_t *)topic, (size_t)n, "x", 1, (b >> 4) % 3,
				       (b & 0x80) != 0, now);
			break;
		}
		case 5:
			engine_shutdown(e, now);
			break;
		case 6:
			if (i >= size)
				goto out;
			fz_auth_done(e, k, data[i++], now);
			break;
		case 7:
			if (i >= size)
				goto out;
			fz_auth_step(e, k, data[i++], now);
			break;
		case 8: /* the answer about 'h' deliveries, then k's queue drains */
			if (i >= size)
				goto out;
			fz_receive_answer = data[i] % 3 == 0   ? ENGINE_AUTH_PENDING
					    : data[i] % 3 == 1 ? 0
							       : MQTT_RC_NOT_AUTHORIZED;
			i++;
			if (k->c)
				engine_conn_receive_ready(e, k->c);
			break;
		default:
			break;
		}
	}
out:
	for (int j = 0; j < FZ_CONNS; j++)
		fz_gone(e, &z.conn[j], now);
	now += 3600ull * 1000 * 24;
	engine_tick(e, now);
	struct engine_stats st;
	engine_stats(e, &st);
	if (st.clients_connected != 0)
		abort();
	engine_free(e);
	return 0;
}
