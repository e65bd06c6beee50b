/*
 * metrics.c - /metrics in the Prometheus text format (version 0.0.4):
 * everything $SYS publishes, plus what the events tell (connections,
 * CONNECTs and refusals by reason) and the engine counts without events
 * (messages and bytes by QoS, drops by reason), listeners, hooks and SSE, the HTTP server itself, latency
 * histograms (delivery, authentication), and the process (CPU, memory,
 * descriptors). Names follow Prometheus conventions: midge_..._total for
 * counters, _seconds and _bytes units; `promtool check metrics` passes.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "engine/engine.h"
#include "engine/query.h"
#include "hooks/hooks.h"
#include "http/internal.h"
#include "transport/broker.h"
#include "transport/latency.h"

/* ---- counters fed by events (engine thread) ---- */

void http_counters_event(struct http_counters *c, const struct midge_event *ev)
{
	uint8_t proto = ev->client && ev->client->protocol < 6 ? ev->client->protocol : 0;
	switch (ev->type) {
	case MIDGE_EV_CONNECT:
		c->connected_by_protocol[proto]++;
		c->connects_by_protocol[proto]++;
		break;
	case MIDGE_EV_DISCONNECT:
		if (c->connected_by_protocol[proto])
			c->connected_by_protocol[proto]--;
		c->disconnects_by_rc[ev->u.disconnect.rc]++;
		break;
	case MIDGE_EV_CONNECT_REFUSED:
		c->refused_by_rc[ev->u.connect.rc]++;
		break;
	case MIDGE_EV_PROTOCOL_ERROR:
		c->protocol_errors++;
		break;
	default:
		break;
	}
}

/* ---- the text ---- */

struct sb {
	char *p;
	size_t len, cap;
	bool failed;
};

static void sb_printf(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(struct sb *b, const char *fmt, ...)
{
	for (int attempt = 0; attempt < 2 && !b->failed; attempt++) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->failed = true;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap * 2;
		while (cap - b->len <= (size_t)n)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->failed = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

static void family(struct sb *b, const char *name, const char *type, const char *help)
{
	sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(struct sb *b, const char *name, const char *type, const char *help, double v)
{
	family(b, name, type, help);
	sb_printf(b, "%s %.17g\n", name, v);
}

/* A label value with '\\', '"' and newlines escaped. */
static void label_value(struct sb *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			sb_printf(b, "\\%c", *s);
		else if (*s == '\n')
			sb_printf(b, "\\n");
		else
			sb_printf(b, "%c", *s);
	}
}

static const char *protocol_name(int p)
{
	return p == 3 ? "3.1" : p == 4 ? "3.1.1" : p == 5 ? "5" : "unknown";
}

static void histogram(struct sb *b, const char *name, const char *help,
		      const struct latency_hist *hist)
{
	uint64_t cum = 0;
	family(b, name, "histogram", help);
	for (int i = 0; i < LATENCY_BUCKETS; i++) {
		cum += hist->bucket[i];
		sb_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, latency_bounds_us[i] / 1e6,
			  (unsigned long long)cum);
	}
	sb_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)hist->count);
	sb_printf(b, "%s_sum %.9f\n%s_count %llu\n", name, hist->sum_us / 1e6, name,
		  (unsigned long long)hist->count);
}

static void engine_metrics(struct sb *b, const struct midge *m)
{
	struct engine_stats st;
	engine_stats(m->engine, &st);
	one(b, "midge_clients_connected", "gauge", "Clients connected now.",
	    (double)st.clients_connected);
	one(b, "midge_sessions", "gauge", "Sessions held, connected or not.",
	    (double)st.clients_total);
	one(b, "midge_clients_maximum", "gauge", "Most clients connected at once.",
	    (double)st.clients_maximum);
	one(b, "midge_sessions_expired_total", "counter", "Sessions ended by their expiry.",
	    (double)st.clients_expired);
	one(b, "midge_messages_received_total", "counter", "Messages received (all packet types).",
	    (double)st.msgs_received);
	one(b, "midge_messages_sent_total", "counter", "Messages sent (all packet types).",
	    (double)st.msgs_sent);
	one(b, "midge_messages_dropped_total", "counter", "Messages not delivered, every reason.",
	    (double)st.msgs_dropped);
	one(b, "midge_publish_received_total", "counter", "PUBLISH messages accepted.",
	    (double)st.publish_received);
	one(b, "midge_publish_sent_total", "counter", "PUBLISH messages sent to subscribers.",
	    (double)st.publish_sent);
	one(b, "midge_received_bytes_total", "counter", "Bytes received from clients.",
	    (double)st.bytes_received);
	one(b, "midge_sent_bytes_total", "counter", "Bytes sent to clients.",
	    (double)st.bytes_sent);
	one(b, "midge_retained_messages", "gauge", "Retained messages held.",
	    (double)st.retained_count);
	one(b, "midge_retained_bytes", "gauge", "Bytes of the retained messages.",
	    (double)st.retained_bytes);
	one(b, "midge_subscriptions", "gauge", "Subscriptions held.",
	    (double)st.subscriptions_count);
	one(b, "midge_inflight_messages", "gauge",
	    "Outgoing QoS 1/2 messages awaiting acknowledgement.", (double)st.inflight_count);
	one(b, "midge_queued_messages", "gauge", "Messages queued for sessions.",
	    (double)st.stored_count);
	one(b, "midge_queued_bytes", "gauge", "Bytes of the messages queued for sessions.",
	    (double)st.stored_bytes);
}

/* One sample per QoS level of a counter family. */
static void by_qos(struct sb *b, const char *name, const char *help, const uint64_t v[3])
{
	family(b, name, "counter", help);
	for (int q = 0; q < 3; q++)
		sb_printf(b, "%s{qos=\"%d\"} %llu\n", name, q, (unsigned long long)v[q]);
}

/* One sample per reason code seen, named as events name it. */
static void by_code(struct sb *b, const char *name, const char *help, enum midge_event_type type,
		    const uint64_t v[256])
{
	family(b, name, "counter", help);
	for (int rc = 0; rc < 256; rc++) {
		if (!v[rc])
			continue;
		sb_printf(b, "%s{code=\"%d\",reason=\"", name, rc);
		label_value(b, hooks_rc_name(type, 5, (uint8_t)rc));
		sb_printf(b, "\"} %llu\n", (unsigned long long)v[rc]);
	}
}

static void event_metrics(struct sb *b, const struct http_counters *c,
			  const struct engine_stats *st)
{
	family(b, "midge_clients_connected_by_protocol", "gauge",
	       "Clients connected now, by protocol version.");
	for (int p = 3; p <= 5; p++)
		sb_printf(b, "midge_clients_connected_by_protocol{protocol=\"%s\"} %llu\n",
			  protocol_name(p), (unsigned long long)c->connected_by_protocol[p]);
	family(b, "midge_connects_total", "counter", "CONNECTs accepted, by protocol version.");
	for (int p = 3; p <= 5; p++)
		sb_printf(b, "midge_connects_total{protocol=\"%s\"} %llu\n", protocol_name(p),
			  (unsigned long long)c->connects_by_protocol[p]);
	by_code(b, "midge_connect_refusals_total", "CONNECTs refused, by CONNACK reason code.",
		MIDGE_EV_CONNECT_REFUSED, c->refused_by_rc);
	by_code(b, "midge_disconnects_total", "Connections ended, by reason code.",
		MIDGE_EV_DISCONNECT, c->disconnects_by_rc);
	one(b, "midge_protocol_errors_total", "counter", "Connections closed for bad input.",
	    (double)c->protocol_errors);
	by_qos(b, "midge_publish_received_by_qos_total",
	       "PUBLISH messages accepted from clients, by QoS.", st->publish_received_qos);
	by_qos(b, "midge_publish_received_payload_bytes_total",
	       "Payload bytes of the PUBLISH messages accepted from clients, by QoS.",
	       st->publish_bytes_received_qos);
	by_qos(b, "midge_publish_delivered_by_qos_total",
	       "Deliveries to subscribers, by delivery QoS.", st->publish_sent_qos);
	by_qos(b, "midge_publish_delivered_payload_bytes_total",
	       "Payload bytes delivered to subscribers, by delivery QoS.", st->publish_bytes_sent_qos);
	family(b, "midge_drops_total", "counter", "Messages dropped, by reason.");
	for (int r = 1; r < 16; r++) {
		const char *name = hooks_drop_reason_name((enum midge_drop_reason)r);
		if (name)
			sb_printf(b, "midge_drops_total{reason=\"%s\"} %llu\n", name,
				  (unsigned long long)st->drops_by_reason[r]);
	}
}

static void listener_metrics(struct sb *b, const struct midge *m)
{
	family(b, "midge_listener_connections", "gauge",
	       "Connections open now, by MQTT listener (with those waiting for CONNECT).");
	for (const struct listener *l = m->listeners; l; l = l->next) {
		sb_printf(b, "midge_listener_connections{listener=\"");
		label_value(b, l->addr);
		sb_printf(b, ":%u\",tls=\"%s\"} %d\n", l->port, l->creds ? "true" : "false",
			  l->count);
	}
	one(b, "midge_connections", "gauge", "MQTT connections open now (every phase).",
	    (double)m->n_conns);
	one(b, "midge_sockets_accepted_total", "counter", "MQTT sockets accepted.",
	    (double)m->sockets_accepted);
	one(b, "midge_connections_waiting_connect", "gauge", "Sockets accepted, CONNECT not yet.",
	    (double)m->pre.n);
}

static void http_own_metrics(struct sb *b, struct http *h)
{
	struct http_sse_stats ss;
	http_sse_stats(h->sse, &ss);
	one(b, "midge_hooks_sent_total", "counter", "Events sent on the ZeroMQ publisher.",
	    (double)hooks_sent(h->m->hooks));
	one(b, "midge_hooks_dropped_total", "counter",
	    "Events the ZeroMQ publisher dropped (a subscriber did not keep up).",
	    (double)hooks_dropped(h->m->hooks));
	one(b, "midge_http_sse_streams", "gauge", "Open event streams (/api/v1/events).",
	    (double)ss.clients);
	one(b, "midge_http_sse_events_total", "counter", "Events written to event streams.",
	    (double)ss.events);
	one(b, "midge_http_sse_dropped_total", "counter",
	    "Events an event stream had no room for (its reader was slow).", (double)ss.dropped);
	one(b, "midge_http_sse_slow_closed_total", "counter",
	    "Event streams closed because their reader stayed behind.", (double)ss.slow_closed);
	one(b, "midge_http_sse_refused_total", "counter",
	    "Event streams refused (midge_http_sse_clients reached).", (double)ss.refused);
	family(b, "midge_http_responses_total", "counter", "HTTP responses, by status class.");
	for (int c = 1; c < 6; c++)
		sb_printf(b, "midge_http_responses_total{class=\"%dxx\"} %llu\n", c,
			  (unsigned long long)h->requests_by_class[c]);
	struct http_auth_stats as;
	http_auth_stats(h->auth, &as);
	one(b, "midge_http_auth_failures_total", "counter", "Failed HTTP logins.",
	    (double)as.failures);
	one(b, "midge_http_auth_throttled_total", "counter",
	    "HTTP logins refused unchecked (429) after too many failures.", (double)as.throttled);
	one(b, "midge_http_auth_checks_total", "counter",
	    "HTTP Basic passwords checked on the hashing pool.", (double)as.checks);
	one(b, "midge_http_auth_busy_total", "counter",
	    "HTTP logins refused (503) with midge_http_auth_pending checks pending.",
	    (double)as.busy);
	one(b, "midge_http_auth_pending", "gauge",
	    "HTTP Basic password checks running or waiting.", (double)as.pending);
}

void http_process_usage(double *cpu_seconds, double *resident_bytes)
{
	struct rusage ru;
	unsigned long long vsz = 0, rss = 0;
	getrusage(RUSAGE_SELF, &ru);
	*cpu_seconds = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
		       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	*resident_bytes = (double)ru.ru_maxrss * 1024.0; /* the peak, where /proc is missing */
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%llu %llu", &vsz, &rss) == 2)
			*resident_bytes = (double)rss * (double)sysconf(_SC_PAGESIZE);
		fclose(f);
	}
}

/* How many descriptors are open, or -1. Linux 6.2 and later give the
 * count as the size of /proc/self/fd, at no cost; before that only
 * reading the directory counts them, which takes time in proportion to
 * the connections (100 000 at a large broker), on the engine thread: so
 * that count is taken at most once every HTTP_FDS_EVERY_MS and kept. */
#define HTTP_FDS_EVERY_MS 15000
static double http_open_fds(uint64_t now)
{
	static double kept = -1;
	static uint64_t kept_at;
	struct stat st;
	if (stat("/proc/self/fd", &st) == 0 && st.st_size > 0)
		return (double)st.st_size;
	if (kept >= 0 && now - kept_at < HTTP_FDS_EVERY_MS)
		return kept;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	int n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	/* ".", ".." and the directory's own descriptor */
	kept = (double)(n - 3);
	kept_at = now;
	return kept;
}

/* The node's name (the events' "node": midge_node_name, or the host
 * name; a scrape of several brokers tells them apart by it), and in a
 * cluster its link to NATS and the summary every node keeps: the live
 * nodes and their connected clients. */
static void cluster_metrics(struct sb *b, const struct midge *m, const char *node)
{
	const struct conf *c = &m->conf;
	family(b, "midge_node_info", "gauge",
	       "Always 1; the node name and the name of its cluster (empty outside a "
	       "cluster) are labels.");
	sb_printf(b, "midge_node_info{node=\"");
	label_value(b, node);
	sb_printf(b, "\",cluster=\"");
	label_value(b, m->cluster ? (c->cluster_name ? c->cluster_name : "midge") : "");
	sb_printf(b, "\"} 1\n");
	if (!m->cluster)
		return;
	struct cluster_stats s;
	cluster_stats(m->cluster, &s);
	one(b, "midge_cluster_connected", "gauge", "1 while the node is connected to NATS.",
	    s.connected);
	one(b, "midge_cluster_forwarded_messages_total", "counter",
	    "Messages handed to NATS for other nodes.", (double)s.forwarded);
	one(b, "midge_cluster_received_messages_total", "counter",
	    "Messages received from other nodes.", (double)s.received);
	family(b, "midge_cluster_dropped_messages_total", "counter",
	       "Messages dropped for a full buffer (out: to NATS; in: from it, or invalid).");
	sb_printf(b, "midge_cluster_dropped_messages_total{direction=\"out\"} %llu\n",
		  (unsigned long long)s.dropped_out);
	sb_printf(b, "midge_cluster_dropped_messages_total{direction=\"in\"} %llu\n",
		  (unsigned long long)s.dropped_in);
	one(b, "midge_cluster_buffered_bytes", "gauge", "Bytes waiting to be sent to NATS.",
	    (double)s.buffered);
	one(b, "midge_cluster_subjects", "gauge", "NATS subscriptions for this node's filters.",
	    (double)s.subjects);
	one(b, "midge_cluster_disconnects_total", "counter", "Times the link to NATS was lost.",
	    (double)s.disconnects);
	one(b, "midge_cluster_checkpoints_total", "counter",
	    "Persistent sessions' checkpoints handed to JetStream.", (double)s.checkpoints);
	one(b, "midge_cluster_checkpoint_failures_total", "counter",
	    "Checkpoints JetStream refused (offered again at the session's next change).",
	    (double)s.checkpoint_failures);
	family(b, "midge_cluster_dead_sessions_total", "counter",
	       "Sessions of nodes that died taken over here (resumed: on a claim; adopted: "
	       "as a survivor).");
	sb_printf(b, "midge_cluster_dead_sessions_total{how=\"resumed\"} %llu\n",
		  (unsigned long long)s.sessions_resumed);
	sb_printf(b, "midge_cluster_dead_sessions_total{how=\"adopted\"} %llu\n",
		  (unsigned long long)s.sessions_adopted);
	one(b, "midge_cluster_journal_replays_total", "counter",
	    "Journal replays asked for sessions resumed here from a dead node's checkpoint.",
	    (double)s.replays);
	one(b, "midge_cluster_journal_replayed_messages_total", "counter",
	    "Messages read back from the journal for those replays.", (double)s.replayed);
	struct cluster_node_info *nodes = malloc(CLUSTER_NODES_MAX * sizeof *nodes);
	if (!nodes) {
		b->failed = true;
		return;
	}
	int n = cluster_nodes(m->cluster, nodes, CLUSTER_NODES_MAX);
	one(b, "midge_cluster_nodes", "gauge", "Live nodes in the cluster, this one included.", n);
	family(b, "midge_cluster_node_clients", "gauge",
	       "Clients connected to each live node (as of its last heartbeat).");
	for (int i = 0; i < n; i++) {
		if (nodes[i].clients < 0)
			continue;
		sb_printf(b, "midge_cluster_node_clients{node=\"");
		label_value(b, nodes[i].name);
		sb_printf(b, "\"} %lld\n", (long long)nodes[i].clients);
	}
	free(nodes);
}

/* CPU, memory and descriptors of this process (Prometheus's process_
 * names). */
static void process_metrics(struct sb *b, const struct midge *m)
{
	double cpu, rss;
	http_process_usage(&cpu, &rss);
	one(b, "process_cpu_seconds_total", "counter", "User and system CPU time spent.", cpu);
	one(b, "process_resident_memory_bytes", "gauge", "Resident memory size.", rss);
	double fds = http_open_fds(broker_now_ms());
	if (fds >= 0)
		one(b, "process_open_fds", "gauge", "Open file descriptors.", fds);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		one(b, "process_max_fds", "gauge", "Maximum open file descriptors.",
		    (double)rl.rlim_cur);
	one(b, "process_start_time_seconds", "gauge", "Start time since the Unix epoch.",
	    (double)m->started_ms / 1000.0);
}

char *http_metrics_render(struct http *h, size_t *len)
{
	struct midge *m = h->m;
	struct sb b = {malloc(16384), 0, 16384, false};
	if (!b.p)
		return NULL;
	b.p[0] = '\0';
	family(&b, "midge_build_info", "gauge", "Always 1; the version is a label.");
	sb_printf(&b, "midge_build_info{version=\"%s\"} 1\n", midge_version());
	one(&b, "midge_uptime_seconds", "gauge", "Seconds since the broker started.",
	    (double)(broker_now_ms() - m->started_ms) / 1000.0);
	engine_metrics(&b, m);
	struct engine_stats st;
	engine_stats(m->engine, &st);
	event_metrics(&b, &h->counters, &st);
	listener_metrics(&b, m);
	http_own_metrics(&b, h);
	cluster_metrics(&b, m, h->node);
	histogram(&b, "midge_delivery_latency_seconds",
		  "In-broker delivery latency: PUBLISH read to delivery written to the subscriber's "
		  "socket.",
		  &m->lat.delivery);
	histogram(&b, "midge_auth_latency_seconds",
		  "Time to check a CONNECT's password against password_file.", &m->lat.auth);
	process_metrics(&b, m);
	if (b.failed) {
		free(b.p);
		return NULL;
	}
	*len = b.len;
	return b.p;
}
