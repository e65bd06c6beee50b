/*
 * engine.c - the engine as a whole: configuration, engine_new/free,
 * broker-originated publishes, statistics. The map of the other rooms is
 * in engine/internal.h.
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

/* The defaults documented in docs/configuration.md; what is not named is
 * 0 / false. */
static const struct engine_config config_defaults = {
	.max_packet_size = ENGINE_PROTOCOL_MAX_PACKET,
	.max_packet_before_connect = 65536,
	.max_inflight = ENGINE_DEFAULT_INFLIGHT,
	.max_inflight_bytes = ENGINE_DEFAULT_INFLIGHT_BYTES,
	.receive_max = ENGINE_DEFAULT_INFLIGHT,
	.max_queued_messages = 1000,
	.max_keepalive = 65535,
	.max_client_id_len = 65535,
	.allow_zero_length_clientid = true,
	.allow_anonymous = true,
	.max_topic_levels = 128,
	.max_qos = 2,
	.retain_available = true,
	.max_sessions = ENGINE_DEFAULT_MAX_SESSIONS,
	.max_subscriptions = ENGINE_DEFAULT_MAX_SUBSCRIPTIONS,
	.max_retained_messages = ENGINE_DEFAULT_MAX_RETAINED,
	.max_retained_bytes = ENGINE_DEFAULT_MAX_RETAINED_BYTES,
	.max_acks_held = ENGINE_DEFAULT_MAX_ACKS_HELD,
	.check_payload_format = true,
	.check_retain_source = true, /* Mosquitto's default */
	.wildcard_sub_available = true,
	.sub_id_available = true,
	.shared_sub_available = true,
	.topic_alias_max = 10,
	.retry_interval_ms = 20000,
	.auth_max_rounds = 8,
	.auth_max_data = 8192,
	.auth_exchange_ms = 30000,
};

void engine_config_default(struct engine_config *cfg)
{
	*cfg = config_defaults;
}

/* Copies cfg, turning Mosquitto's "0 = unlimited" queue length into the
 * hard bound so that session_enqueue() needs no special case. */
static void engine_config_apply(struct engine *e, const struct engine_config *cfg)
{
	e->cfg = *cfg;
	if (!e->cfg.max_queued_messages)
		e->cfg.max_queued_messages = ENGINE_MAX_QUEUED;
}

struct engine *engine_new(const struct engine_config *cfg, const struct engine_io *io,
			  const struct engine_auth *auth)
{
	struct engine *e = calloc(1, sizeof *e);
	if (!e)
		return NULL;
	engine_config_apply(e, cfg);
	e->io = *io;
	e->event_mask = ~0u;
	e->sample_left = 1;
	if (auth) {
		e->auth = *auth;
		e->has_auth = true;
		e->acl_on = auth->acl != NULL;
	}
	e->store = engine_store_none;
	e->tree = topic_tree_new();
	e->retained = retain_store_new(emsg_unref_cb);
	if (!e->tree || !e->retained) {
		engine_free(e);
		return NULL;
	}
	retain_store_set_size(e->retained, emsg_size_cb);
	return e;
}

void engine_free(struct engine *e)
{
	if (!e)
		return;
	/* the sessions end with the process, not for the store: it keeps them */
	e->store = engine_store_none;
	while (e->conns) {
		struct engine_conn *c = e->conns;
		if (c->s)
			c->s->conn = NULL;
		client_teardown(e, c);
	}
	for (uint32_t i = 0; i < e->table_size; i++)
		while (e->session_table[i])
			session_destroy(e, e->session_table[i]);
	journal_free(e);
	engine_restore_abort(e);
	topic_tree_free(e->tree);
	history_free_all(e);
	bridge_free_all(e);
	retain_store_free(e->retained);
	free(e->session_table);
	free(e->ck_dirty);
	free(e->ck_buf.p);
	free(e->sub_table);
	free(e->heap);
	free(e->hits);
	free(e->retained_matches);
	free(e->scratch);
	free(e->mount_buf);
	free(e);
}

void engine_set_memory_full(struct engine *e, bool full)
{
	e->memory_full = full;
}

void engine_set_acl(struct engine *e, bool on)
{
	e->acl_on = on && e->has_auth && e->auth.acl;
}

void engine_set_acl_ask(struct engine *e, bool on)
{
	e->acl_ask = on;
}

bool engine_acl_may_wait(const struct engine *e)
{
	return e->acl_may_hold;
}

bool engine_acl_offline(const struct engine *e)
{
	return e->acl_may_hold && e->acl_offline;
}

void engine_conn_receive_ready(struct engine *e, struct engine_conn *c)
{
	struct session *s = c->s;
	if (s && s->recv_held && s->conn == c)
		session_drain(e, s);
}

void engine_reconfigure(struct engine *e, const struct engine_config *cfg)
{
	engine_config_apply(e, cfg);
}

int engine_publish(struct engine *e, const uint8_t *topic, size_t topic_len, const void *payload,
		   size_t payload_len, uint8_t qos, bool retain, uint64_t now_ms)
{
	e->now = now_ms;
	if (qos > 2 || !codec_topic_name_valid(topic, topic_len) || payload_len > CODEC_MAX_REMAINING)
		return -1;
	struct emsg *m = emsg_new(e, topic, topic_len, payload, payload_len, NULL, 0, qos, retain, 0,
				  NULL, 0, false);
	if (!m)
		return -1;
	publish_accept(e, m, NULL, 0, false);
	emsg_unref(m);
	return 0;
}

void engine_stats(const struct engine *e, struct engine_stats *out)
{
	*out = e->st;
	out->clients_total = e->table_count;
	out->retained_count = retain_store_count(e->retained);
	out->retained_bytes = retain_store_bytes(e->retained);
	out->subscriptions_count = topic_tree_count(e->tree) - e->n_histories;
}
