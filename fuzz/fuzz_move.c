/*
 * fuzz_move.c - the encoding of a session moving between cluster nodes
 * (engine/move.c): the input is what another node wrote to the sessions
 * bucket. A v5 client connects with session expiry; its CONNECT waits for
 * the (fake) cluster's claim, which answers with the input. Then a message
 * is published on a topic the moved subscriptions may match, the clock
 * ticks past every expiry, the session is released again (the encoder runs
 * over whatever was decoded, and its output must decode again), a journal
 * replay runs for the checkpoint adopted, and the engine is freed, so leaks show up under LeakSanitizer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "engine/engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fm {
	struct engine_conn *c;
	bool closing;
	uint64_t claim;
	int claims;
};

static int fm_send(void *ctx, void *handle, const uint8_t *head, size_t hl, struct frame *tail,
		   bool droppable)
{
	(void)ctx, (void)head, (void)hl, (void)droppable;
	struct fm *k = handle;
	if (!k->c || (tail && tail->refs == 0))
		abort();
	return 0;
}

static void fm_close(void *ctx, void *handle)
{
	(void)ctx;
	((struct fm *)handle)->closing = true;
}

static void fm_event(void *ctx, const struct midge_event *ev)
{
	(void)ctx;
	if (ev->type <= 0 || ev->type >= MIDGE_EV__COUNT)
		abort();
}

static void fm_resume(void *ctx, void *handle)
{
	(void)ctx, (void)handle;
}

static void fm_interest(void *ctx, const uint8_t *f, size_t len, bool on)
{
	(void)ctx, (void)f, (void)len, (void)on;
}

static int fm_publish(void *ctx, const struct engine_cluster_msg *m, uint64_t *ticket)
{
	(void)ctx, (void)m;
	*ticket = 0;
	return 0;
}

static bool fm_room(void *ctx)
{
	(void)ctx;
	return true;
}

/* engine_cluster.replay: every session resumed from a checkpoint waits
 * for job 7 (ended below, after messages were held and replayed). */
static uint64_t fm_replay(void *ctx, uint64_t from_ms)
{
	(void)ctx, (void)from_ms;
	return 7;
}

static int fm_claim(void *ctx, uint64_t claim, const uint8_t *cid, size_t len)
{
	struct fm *k = ctx;
	if (len != 1 || cid[0] != 'm')
		abort();
	k->claim = claim;
	k->claims++;
	return 0;
}

/* CONNECT v5, clean start 0, keepalive 60, session expiry 300, id "m". */
static const uint8_t connect_v5[] = {0x10, 0x13, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x00, 0x00,
				     0x3c, 0x05, 0x11, 0x00, 0x00, 0x01, 0x2c, 0x00, 0x01, 'm'};

/* Connects "m" and answers its claim with session[0..len). */
static void fm_connect(struct engine *e, struct fm *k, const uint8_t *session, size_t len,
		       uint64_t now)
{
	k->c = engine_conn_open(e, k, "127.0.0.1", 1, false, now);
	if (!k->c)
		abort();
	struct codec_feed fo;
	int before = k->claims;
	if (engine_conn_input(e, k->c, connect_v5, sizeof connect_v5, now, &fo) != ENGINE_CONN_HELD ||
	    k->claims != before + 1)
		abort(); /* the CONNECT waits for the claim */
	engine_cluster_claimed(e, k->claim, session, len, now);
}

/* engine_cluster.checkpoint: a copy is a valid encoding of its session. */
static int fm_checkpoint(void *ctx, const uint8_t *cid, size_t len, const uint8_t *st, size_t sl)
{
	(void)ctx, (void)cid, (void)len;
	if (st && (sl < 3 || memcmp(st, "MS\3", 3) != 0))
		abort();
	return 0;
}

static void fm_gone(struct engine *e, struct fm *k, uint64_t now)
{
	engine_conn_closed(e, k->c, "fuzz", now);
	k->c = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct engine_io io = {NULL, fm_send, fm_close, fm_event, fm_resume, NULL};
	struct engine_config cfg;
	engine_config_default(&cfg);
	cfg.max_queued_messages = 64;
	struct engine *e = engine_new(&cfg, &io, NULL);
	if (!e)
		return 0;
	struct fm k;
	memset(&k, 0, sizeof k);
	struct engine_cluster cl = {&k, fm_interest, fm_publish, fm_room, NULL, fm_claim, NULL,
				    fm_checkpoint, NULL, fm_replay, 42};
	engine_cluster_attach(e, &cl);
	uint64_t now = 1000000;
	fm_connect(e, &k, data, size, now);
	engine_publish(e, (const uint8_t *)"a/b", 3, "p", 1, 1, false, now);
	fm_gone(e, &k, now);
	uint8_t *enc = NULL;
	size_t el = 0;
	engine_cluster_release(e, (const uint8_t *)"m", 1, 1 << 20, &enc, &el, now);
	if (enc) {
		/* what was decoded encodes, and that decodes again */
		memset(&k, 0, sizeof k);
		fm_connect(e, &k, enc, el, now);
		free(enc);
		fm_gone(e, &k, now);
	}
	/* the same bytes as a dead node's checkpoint, adopted offline */
	engine_cluster_adopt(e, (const uint8_t *)"d", 1, data, size, now);
	engine_publish(e, (const uint8_t *)"a/b", 3, "q", 1, 2, false, now);
	/* a replayed message, then the replay's end lets the held ones go */
	struct engine_cluster_msg rm = {(const uint8_t *)"a/b", 3, (const uint8_t *)"r", 1, NULL, 0,
					(const uint8_t *)"x", 1, 0, 9, 1, 1, false};
	engine_cluster_replay(e, 7, &rm, now);
	engine_cluster_checkpoint(e, 1 << 20, SIZE_MAX, now);
	engine_cluster_replay_end(e, 7, now);
	engine_tick(e, now + 400 * 1000);
	engine_cluster_checkpoint(e, 1 << 20, SIZE_MAX, now + 400 * 1000);
	engine_free(e);
	return 0;
}
