/*
 * api.c - the /api/v1 handlers and /metrics (docs/http.md is the
 * contract; openapi.json describes the same). Each runs on the engine
 * thread, reads the engine through engine/query.h, and answers JSON
 * built with jansson; errors are {"error": "...", "code": "..."}.
 *
 * Lists have EMQX's shape: {"data": [...], "meta": {"count", "limit",
 * "cursor", "hasnext"}}; "cursor" is given back as ?cursor= for the next
 * page.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "codec/codec.h"
#include "engine/engine.h"
#include "engine/query.h"
#include "hooks/hooks.h"
#include "http/internal.h"
#include "transport/broker.h"
#include "transport/latency.h"
#include "transport/log.h"

#define API_DEFAULT_LIMIT 100
#define API_MAX_LIMIT 1000
#define API_CLIENT_BUCKETS_PER_PAGE 4096 /* buckets a page of clients visits at most */
#define API_SUB_SLOTS_PER_PAGE 16384     /* subscription-table slots a page visits at most */
#define API_RETAINED_PAYLOAD_PREVIEW 1024

/* ---- helpers ---- */

static json_t *str_json(struct midge_str s)
{
	return json_stringn_nocheck(s.p ? s.p : "", s.len);
}

/* A view as JSON text: jansson needs UTF-8, and client ids, usernames
 * and topics are (the codec checked), but say so rather than trust it. */
static json_t *utf8_json(struct midge_str s)
{
	if (!s.p)
		return json_null();
	if (!codec_utf8_valid((const uint8_t *)s.p, s.len)) {
		struct hooks_buf b = {0};
		if (hooks_json_string(&b, s.p, s.len) < 0)
			return json_null();
		json_t *j = json_loadb(b.p, b.len, JSON_DECODE_ANY, NULL);
		hooks_buf_release(&b);
		return j ? j : json_null();
	}
	return str_json(s);
}

static json_t *base64_json(const void *p, size_t n)
{
	struct hooks_buf b = {0};
	if (hooks_base64(&b, p, n) < 0)
		return json_null();
	json_t *j = json_stringn(b.p ? b.p : "", b.len);
	hooks_buf_release(&b);
	return j;
}

/* A paging argument: limit (1..API_MAX_LIMIT) and cursor. Replies 400
 * and returns -1 when either is malformed. */
static int api_paging(struct http_req *r, uint32_t *limit, uint64_t *cursor)
{
	const char *l = http_arg(r, "limit"), *c = http_arg(r, "cursor");
	*limit = API_DEFAULT_LIMIT;
	*cursor = 0;
	if (l && http_param_u32(l, 1, API_MAX_LIMIT, limit) < 0)
		return -1;
	if (c && *c && http_cursor_decode(c, cursor) < 0)
		return -1;
	return 0;
}

static json_t *api_page(json_t *data, uint32_t limit, uint64_t next)
{
	char cur[17];
	http_cursor_encode(next, cur);
	return json_pack("{s:o, s:{s:I, s:I, s:o, s:b}}", "data", data, "meta", "count",
			 (json_int_t)json_array_size(data), "limit", (json_int_t)limit, "cursor",
			 next ? json_string(cur) : json_null(), "hasnext", next != 0);
}

static const char *protocol_text(uint8_t p)
{
	return p == 3 ? "3.1" : p == 4 ? "3.1.1" : p == 5 ? "5" : NULL;
}

/* ---- metrics, stats, broker ---- */

int http_api_metrics(struct http *h, struct http_req *r, const char *arg)
{
	(void)arg;
	size_t len = 0;
	char *text = http_metrics_render(h, &len);
	if (!text)
		return http_reply_error(r, 500, "internal", "out of memory");
	return http_reply_buffer(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}

int http_api_summary(struct http *h, struct http_req *r, const char *arg)
{
	(void)arg;
	struct engine_stats st;
	struct http_sse_stats ss;
	struct midge *m = h->m;
	double cpu = 0, rss = 0;
	engine_stats(m->engine, &st);
	http_sse_stats(h->sse, &ss);
	http_process_usage(&cpu, &rss);
	const struct latency_hist *lat = &m->lat.delivery;
	json_t *o = json_pack(
	    "{s:I, s:I, s:{s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I},"
	    " s:{s:I, s:I, s:I, s:I}, s:{s:I, s:f, s:f, s:f}, s:{s:f, s:f}, s:{s:I, s:I}}",
	    "time_ms", (json_int_t)broker_now_ms(), "uptime_ms",
	    (json_int_t)(broker_now_ms() - m->started_ms), "clients", "connected",
	    (json_int_t)st.clients_connected, "sessions", (json_int_t)st.clients_total, "maximum",
	    (json_int_t)st.clients_maximum, "messages", "received", (json_int_t)st.msgs_received,
	    "sent", (json_int_t)st.msgs_sent, "publish_received", (json_int_t)st.publish_received,
	    "publish_sent", (json_int_t)st.publish_sent, "dropped", (json_int_t)st.msgs_dropped,
	    "bytes_received", (json_int_t)st.bytes_received, "bytes_sent",
	    (json_int_t)st.bytes_sent, "state", "retained", (json_int_t)st.retained_count,
	    "subscriptions", (json_int_t)st.subscriptions_count, "inflight",
	    (json_int_t)st.inflight_count, "queued", (json_int_t)st.stored_count,
	    "delivery_latency", "count", (json_int_t)lat->count, "p50_ms",
	    latency_quantile_us(lat, 0.5) / 1000.0, "p90_ms", latency_quantile_us(lat, 0.9) / 1000.0,
	    "p99_ms", latency_quantile_us(lat, 0.99) / 1000.0, "process", "cpu_seconds", cpu,
	    "resident_bytes", rss, "events", "streams", (json_int_t)ss.clients, "dropped",
	    (json_int_t)(ss.dropped + hooks_dropped(m->hooks)));
	return http_reply_json(r, 200, o);
}

/* The effective configuration, with what is secret left out. */
static json_t *api_config(const struct conf *c)
{
	const struct engine_config *e = &c->engine;
	json_t *o = json_pack(
	    "{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:b, s:b, s:b,"
	    " s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I}",
	    "allow_anonymous", e->allow_anonymous, "max_packet_size", (json_int_t)e->max_packet_size,
	    "message_size_limit", (json_int_t)e->message_size_limit, "max_inflight_messages",
	    (json_int_t)e->max_inflight, "max_inflight_bytes", (json_int_t)e->max_inflight_bytes,
	    "max_queued_messages", (json_int_t)e->max_queued_messages, "max_queued_bytes",
	    (json_int_t)e->max_queued_bytes, "max_keepalive", (json_int_t)e->max_keepalive,
	    "max_qos", (json_int_t)e->max_qos, "max_topic_alias", (json_int_t)e->topic_alias_max,
	    "midge_max_subscriptions", (json_int_t)e->max_subscriptions, "midge_max_sessions",
	    (json_int_t)e->max_sessions, "midge_max_retained_messages",
	    (json_int_t)e->max_retained_messages, "retain_available", e->retain_available,
	    "queue_qos0_messages", e->queue_qos0_messages, "allow_zero_length_clientid",
	    e->allow_zero_length_clientid, "midge_wildcard_subscriptions", e->wildcard_sub_available,
	    "midge_shared_subscriptions", e->shared_sub_available, "midge_subscription_identifiers",
	    e->sub_id_available, "persistent_client_expiration",
	    (json_int_t)e->persistent_client_expiration, "midge_max_session_expiry",
	    (json_int_t)e->max_session_expiry, "max_connections", (json_int_t)c->max_connections,
	    "sys_interval", (json_int_t)c->sys_interval, "midge_connect_timeout",
	    (json_int_t)c->connect_timeout, "midge_max_output_bytes",
	    (json_int_t)c->max_output_bytes);
	if (!o)
		return NULL;
	/* paths are not secrets; keys and tokens never leave the files */
	json_object_set_new(o, "password_file",
			    c->password_file ? json_string(c->password_file) : json_null());
	json_object_set_new(o, "midge_node_name",
			    c->node_name ? json_string(c->node_name) : json_null());
	json_object_set_new(o, "midge_hooks_curve_secret_key",
			    c->hooks_curve_secret ? json_string("(redacted)") : json_null());
	json_object_set_new(o, "midge_http_password_file",
			    c->http.password_file ? json_string(c->http.password_file) : json_null());
	json_object_set_new(o, "midge_http_token_file",
			    c->http.token_file ? json_string(c->http.token_file) : json_null());
	return o;
}

int http_api_broker(struct http *h, struct http_req *r, const char *arg)
{
	(void)arg;
	struct midge *m = h->m;
	json_t *ls = json_array();
	for (const struct listener *l = m->listeners; l; l = l->next)
		json_array_append_new(
		    ls, json_pack("{s:s, s:i, s:b, s:i, s:i}", "address", l->addr, "port", l->port,
				  "tls", l->creds != NULL, "connections", l->count, "max_connections",
				  l->max_connections));
	json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:o, s:{s:s, s:i, s:b}, s:o, s:o}", "name",
			      "midge", "version", midge_version(), "started_ms",
			      (json_int_t)m->started_ms, "uptime_seconds",
			      (json_int_t)((broker_now_ms() - m->started_ms) / 1000), "node",
			      json_string(h->node), "http", "address", h->addr, "port", h->port,
			      "tls", h->tls, "listeners", ls, "config", api_config(&m->conf));
	if (o && m->conf_path)
		json_object_set_new(o, "config_file", json_string(m->conf_path));
	return http_reply_json(r, 200, o);
}

/* ---- cluster ---- */

int http_api_cluster(struct http *h, struct http_req *r, const char *arg)
{
	(void)arg;
	struct midge *m = h->m;
	if (!m->cluster)
		return http_reply_error(r, 404, "not_found", "this node is not in a cluster (midge_cluster)");
	struct cluster_stats st;
	cluster_stats(m->cluster, &st);
	struct cluster_node_info *v = malloc(CLUSTER_NODES_MAX * sizeof *v);
	json_t *nodes = json_array();
	if (!v || !nodes) {
		free(v);
		json_decref(nodes);
		return http_reply_error(r, 503, "out_of_memory", "out of memory");
	}
	int n = cluster_nodes(m->cluster, v, CLUSTER_NODES_MAX);
	json_int_t clients = 0;
	for (int i = 0; i < n; i++) {
		clients += v[i].clients > 0 ? v[i].clients : 0;
		json_array_append_new(
		    nodes, json_pack("{s:s, s:o, s:I, s:b}", "name", v[i].name, "clients",
				     v[i].clients >= 0 ? json_integer(v[i].clients) : json_null(),
				     "seen_ms", (json_int_t)v[i].seen_ms, "self", v[i].self));
	}
	free(v);
	const char *name = m->conf.cluster_name ? m->conf.cluster_name : "midge";
	json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:I, s:o}", "cluster", name, "node",
			      cluster_node(m->cluster), "state",
			      st.connected ? "connected" : "disconnected", "nodes_count", n,
			      "clients", clients, "nodes", nodes);
	return http_reply_json(r, 200, o);
}

/* ---- clients ---- */

static json_t *api_client_json(const struct engine_client_info *ci)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	const char *proto = protocol_text(ci->protocol);
	json_object_set_new(o, "clientid", utf8_json(ci->client_id));
	json_object_set_new(o, "username", ci->username.len ? utf8_json(ci->username) : json_null());
	json_object_set_new(o, "connected", json_boolean(ci->connected));
	json_object_set_new(o, "protocol", proto ? json_string(proto) : json_null());
	json_object_set_new(o, "peer_addr", ci->peer_addr ? json_string(ci->peer_addr) : json_null());
	json_object_set_new(o, "peer_port", ci->peer_addr ? json_integer(ci->peer_port) : json_null());
	json_object_set_new(o, "tls", json_boolean(ci->tls));
	json_object_set_new(o, "keepalive", json_integer(ci->keep_alive));
	json_object_set_new(o, "session_expiry", ci->session_expiry == UINT32_MAX
						     ? json_null()
						     : json_integer(ci->session_expiry));
	json_object_set_new(o, "subscriptions", json_integer(ci->subscriptions));
	json_object_set_new(o, "inflight", json_integer(ci->inflight));
	json_object_set_new(o, "queued", json_integer(ci->queued));
	json_object_set_new(o, "queued_bytes", json_integer((json_int_t)ci->queued_bytes));
	json_object_set_new(o, "receive_maximum", json_integer(ci->receive_max));
	json_object_set_new(o, "maximum_packet_size", json_integer(ci->max_packet));
	json_object_set_new(o, "will", ci->will ? json_pack("{s:o, s:I}", "topic",
							    utf8_json(ci->will_topic), "delay",
							    (json_int_t)ci->will_delay)
						: json_null());
	return o;
}

static void api_client_add(void *ctx, const struct engine_client_info *ci)
{
	json_array_append_new(ctx, api_client_json(ci));
}

int http_api_clients(struct http *h, struct http_req *r, const char *arg)
{
	(void)arg;
	uint32_t limit;
	uint64_t cursor;
	struct engine_client_filter f = {.connected = -1};
	const char *cid = http_arg(r, "clientid"), *user = http_arg(r, "username"),
		   *conn = http_arg(r, "connected");
	if (api_paging(r, &limit, &cursor) < 0)
		return http_reply_error(r, 400, "bad_request",
					"limit must be 1..1000 and cursor a value given before");
	if (conn) {
		bool b;
		if (http_param_bool(conn, &b) < 0)
			return http_reply_error(r, 400, "bad_request", "connected must be true or false");
		f.connected = b;
	}
	if (cid)
		f.client_id_prefix = (struct midge_str){cid, strlen(cid)};
	if (user)
		f.username_prefix = (struct midge_str){user, strlen(user)};
	json_t *data = json_array();
	if (!data)
		return http_reply_error(r, 500, "internal", "out of memory");
	uint64_t next = engine_query_clients(h->m->engine, cursor, &f, limit,
					     API_CLIENT_BUCKETS_PER_PAGE, api_client_add, data);
	json_t *page = api_page(data, limit, next);
	if (page)
		json_object_set_new(json_object_get(page, "meta"), "total",
				    json_integer((json_int_t)engine_query_client_count(h->m->engine)));
	return http_reply_json(r, 200, page);
}

int http_api_client(struct http *h, struct http_req *r, const char *arg)
{
	struct engine_client_info ci;
	if (engine_query_client(h->m->engine, arg, strlen(arg), &ci) < 0)
		return http_reply_error(r, 404, "not_found", "no such client");
	return http_reply_json(r, 200, api_client_json(&ci));
}

int http_api_kick(struct http *h, struct http_req *r, const char *arg)
{
	const char *session = http_arg(r, "session");
	char esc[160];
	if (session && strcmp(session, "discard") != 0 && strcmp(session, "keep") != 0)
		return http_reply_error(r, 400, "bad_request", "session must be discard or keep");
	bool discard = session && strcmp(session, "discard") == 0;
	enum engine_kick_result res =
	    engine_client_kick(h->m->engine, arg, strlen(arg), discard, broker_now_ms());
	switch (res) {
	case ENGINE_KICK_NOT_FOUND:
		return http_reply_error(r, 404, "not_found", "no such client");
	case ENGINE_KICK_OFFLINE:
		return http_reply_error(r, 409, "not_connected",
					"the client is not connected (?session=discard removes "
					"its session)");
	default:
		break;
	}
	log_notice("http: %s (%s) %s client %s", r->user[0] ? r->user : "anonymous", r->peer,
		   res == ENGINE_KICK_DISCONNECTED ? "disconnected" : "discarded the session of",
		   http_log_str(arg, strlen(arg), esc, sizeof esc));
	return http_reply_json(r, 200,
			       json_pack("{s:s, s:b}", "result",
					 res == ENGINE_KICK_DISCONNECTED ? "disconnected"
									 : "session_discarded",
					 "session_discarded", discard));
}

/* ---- subscriptions and topics ---- */

static void api_sub_add(void *ctx, const struct engine_sub_info *si)
{
	json_t *o = json_pack("{s:o, s:o, s:i, s:b, s:b, s:i}", "clientid", utf8_json(si->client_id),
			      "filter", utf8_json(si->filter), "qos", si->qos, "no_local",
			      si->no_local, "retain_as_published", si->retain_as_published,
			      "retain_handling", si->retain_handling);
	if (o)
		json_object_set_new(o, "subscription_id",
				    si->sub_id ? json_integer(si->sub_id) : json_null());
	json_array_append_new(ctx, o);
}

int http_api_subscriptions(struct http *h, struct http_req *r, const char *arg)
{
	(void)arg;
	uint32_t limit;
	uint64_t cursor;
	const char *cid = http_arg(r, "clientid"), *filter = http_arg(r, "filter");
	if (api_paging(r, &limit, &cursor) < 0)
		return http_reply_error(r, 400, "bad_request",
					"limit must be 1..1000 and cursor a value given before");
	json_t *data = json_array();
	if (!data)
		return http_reply_error(r, 500, "internal", "out of memory");
	int64_t next = engine_query_subscriptions(h->m->engine, cid ? cid : "", cid ? strlen(cid) : 0,
						  filter ? filter : "", filter ? strlen(filter) : 0,
						  cursor, limit, API_SUB_SLOTS_PER_PAGE, api_sub_add,
						  data);
	if (next < 0) {
		json_decref(data);
		return http_reply_error(r, 404, "not_found", "no such client");
	}
	return http_reply_json(r, 200, api_page(data, limit, (uint64_t)next));
}

int http_api_topics(struct http *h, struct http_req *r, const char *arg)
{
	(void)arg;
	uint32_t limit = 20;
	const char *l = http_arg(r, "limit");
	if (l && http_param_u32(l, 1, HTTP_TOPK, &limit) < 0)
		return http_reply_error(r, 400, "bad_request", "limit must be 1..64");
	json_t *data = http_topk_json(h->topk, limit);
	return http_reply_json(r, 200,
			       json_pack("{s:o, s:{s:i, s:s}}", "data", data, "meta", "tracked",
					 HTTP_TOPK, "method",
					 "sampled Space-Saving: rates and counts are estimates"));
}

/* ---- publish ---- */

static unsigned api_publish_status(int rc)
{
	switch (rc) {
	case MQTT_RC_NOT_AUTHORIZED: return 403;
	case MQTT_RC_MALFORMED:
	case MQTT_RC_PROTOCOL_ERROR:
	case MQTT_RC_TOPIC_NAME_INVALID:
	case MQTT_RC_TOPIC_ALIAS_INVALID: return 400;
	case MQTT_RC_PACKET_TOO_LARGE: return 413;
	case MQTT_RC_IMPLEMENTATION_SPECIFIC: return 500;
	default: return 422;
	}
}

int http_api_publish(struct http *h, struct http_req *r, const char *arg)
{
	(void)arg;
	struct http_publish p;
	char err[256];
	if (http_publish_parse(r->body ? r->body : "", r->len, &p, err, sizeof err) < 0) {
		http_publish_clear(&p);
		return http_reply_error(r, 400, "bad_request", err);
	}
	/* who publishes, for the events and the publish ACL */
	struct midge_client from = {0};
	from.client_id.p = "";
	from.username.p = r->user;
	from.username.len = strlen(r->user);
	from.peer_addr = r->peer;
	from.protocol = 5;
	from.tls = h->tls;
	uint32_t receivers = 0;
	const char *why = NULL;
	int rc = engine_admin_publish(h->m->engine, &from, p.topic, p.topic_len, p.payload,
				      p.payload_len, p.props, p.props_len, p.qos, p.retain,
				      broker_now_ms(), &receivers, &why);
	http_publish_clear(&p);
	if (rc) {
		json_t *o = json_pack("{s:s, s:s, s:i, s:s}", "error", why ? why : "refused", "code",
				      "refused", "reason_code", rc, "reason",
				      codec_rc_name((uint8_t)rc));
		return http_reply_json(r, api_publish_status(rc), o);
	}
	return http_reply_json(r, 200, json_pack("{s:I}", "receivers", (json_int_t)receivers));
}

/* ---- retained ---- */

struct api_retained {
	json_t *data;
	size_t preview; /* payload bytes shown, SIZE_MAX all */
};

static void api_retained_add(void *ctx, const struct midge_message *msg, uint32_t expiry_left)
{
	struct api_retained *a = ctx;
	struct codec_props pr;
	memset(&pr, 0, sizeof pr);
	bool ok = msg->props_len &&
		  codec_props_decode(msg->props, (uint32_t)msg->props_len, CODEC_PUBLISH, &pr) == 0;
	size_t shown = msg->payload_len < a->preview ? msg->payload_len : a->preview;
	json_t *o = json_pack("{s:o, s:i, s:I, s:o, s:b}", "topic", utf8_json(msg->topic), "qos",
			      msg->qos, "payload_len", (json_int_t)msg->payload_len, "payload",
			      base64_json(msg->payload, shown), "truncated", shown < msg->payload_len);
	if (!o)
		return;
	if (codec_utf8_valid(msg->payload, shown))
		json_object_set_new(o, "payload_utf8", json_stringn(msg->payload, shown));
	json_object_set_new(o, "message_expiry",
			    expiry_left == UINT32_MAX ? json_null() : json_integer(expiry_left));
	json_object_set_new(o, "content_type",
			    ok && CODEC_HAS_PROP(&pr, CODEC_PROP_CONTENT_TYPE)
				? json_stringn((const char *)pr.content_type.p, pr.content_type.len)
				: json_null());
	json_object_set_new(o, "origin", msg->origin.len ? utf8_json(msg->origin) : json_null());
	json_array_append_new(a->data, o);
}

int http_api_retained_list(struct http *h, struct http_req *r, const char *arg)
{
	(void)arg;
	uint32_t limit = API_DEFAULT_LIMIT;
	const char *filter = http_arg(r, "filter"), *l = http_arg(r, "limit");
	if (!filter || !*filter)
		filter = "#";
	if (l && http_param_u32(l, 1, API_MAX_LIMIT, &limit) < 0)
		return http_reply_error(r, 400, "bad_request", "limit must be 1..1000");
	struct api_retained a = {json_array(), API_RETAINED_PAYLOAD_PREVIEW};
	if (!a.data)
		return http_reply_error(r, 500, "internal", "out of memory");
	int64_t matched = engine_query_retained(h->m->engine, filter, strlen(filter), limit,
						api_retained_add, &a);
	if (matched < 0) {
		json_decref(a.data);
		return http_reply_error(r, 400, "bad_request", "filter is not a valid topic filter");
	}
	return http_reply_json(r, 200,
			       json_pack("{s:o, s:{s:I, s:I, s:i}}", "data", a.data, "meta", "count",
					 (json_int_t)json_array_size(a.data), "matched",
					 (json_int_t)matched, "limit", (int)limit));
}

int http_api_retained_get(struct http *h, struct http_req *r, const char *arg)
{
	struct api_retained a = {json_array(), SIZE_MAX};
	if (!a.data)
		return http_reply_error(r, 500, "internal", "out of memory");
	int rc = engine_query_retained_get(h->m->engine, arg, strlen(arg), api_retained_add, &a);
	if (rc <= 0) {
		json_decref(a.data);
		return rc < 0 ? http_reply_error(r, 400, "bad_request", "not a valid topic name")
			      : http_reply_error(r, 404, "not_found", "no retained message");
	}
	json_t *one = json_incref(json_array_get(a.data, 0));
	json_decref(a.data);
	return http_reply_json(r, 200, one);
}

int http_api_retained_delete(struct http *h, struct http_req *r, const char *arg)
{
	int rc = engine_retained_delete(h->m->engine, arg, strlen(arg), broker_now_ms());
	if (rc < 0)
		return http_reply_error(r, 400, "bad_request", "not a valid topic name");
	if (rc == 0)
		return http_reply_error(r, 404, "not_found", "no retained message");
	return http_reply_json(r, 200, json_pack("{s:b}", "deleted", 1));
}

/* ---- reload and events ---- */

int http_api_reload(struct http *h, struct http_req *r, const char *arg)
{
	(void)arg;
	char err[512] = "";
	struct midge *m = h->m;
	if (!m->conf_path)
		return http_reply_error(r, 409, "no_config_file",
					"midge runs without a configuration file (-c)");
	log_notice("http: %s (%s) asked for a reload", r->user[0] ? r->user : "anonymous", r->peer);
	if (broker_reload(m, err, sizeof err) < 0)
		return http_reply_error(r, 422, "invalid_configuration", err);
	return http_reply_json(r, 200,
			       json_pack("{s:b, s:s, s:s}", "reloaded", 1, "config_file",
					 m->conf_path, "note", "listener changes need a restart"));
}

int http_api_events(struct http *h, struct http_req *r, const char *arg)
{
	(void)h;
	(void)arg;
	const char *prefix = http_arg(r, "prefix");
	return http_sse_open(r, prefix ? prefix : "", prefix ? strlen(prefix) : 0);
}
