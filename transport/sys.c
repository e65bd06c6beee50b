/*
 * sys.c - the $SYS/broker/... topics, Mosquitto's names: counters from
 * the engine and the hooks, load averages over 1, 5 and 15 minutes
 * (messages, bytes, publish received/sent/dropped, sockets, connections),
 * published as retained messages when their value changed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "hooks/hooks.h"
#include "midge.h"
#include "transport/broker.h"

static void sys_put(struct midge *m, int slot, const char *topic, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void sys_put(struct midge *m, int slot, const char *topic, const char *fmt, ...)
{
	char val[64];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	/* Like Mosquitto, only changed values are published again. */
	if (slot >= 0 && m->sys_last[slot] && strcmp(m->sys_last[slot], val) == 0)
		return;
	if (slot >= 0) {
		free(m->sys_last[slot]);
		m->sys_last[slot] = strdup(val);
	}
	engine_publish(m->engine, (const uint8_t *)topic, strlen(topic), val, strlen(val), 0, true,
		       broker_now_ms());
}

static void sys_load(struct midge *m, int idx, const char *name, uint64_t total, double secs,
		     int slot)
{
	static const int mins[3] = {1, 5, 15};
	struct sys_cache *s = &m->sys_load[idx];
	double rate = secs > 0 ? (double)(total - s->last) * 60.0 / secs : 0;
	s->last = total;
	for (int k = 0; k < 3; k++) {
		double a = secs / (mins[k] * 60.0);
		if (a > 1)
			a = 1;
		s->load[k] += (rate - s->load[k]) * a;
		char topic[96];
		snprintf(topic, sizeof(topic), "$SYS/broker/load/%s/%dmin", name, mins[k]);
		sys_put(m, slot + k, topic, "%.2f", s->load[k]);
	}
}

void sys_publish(struct midge *m, uint64_t now)
{
	struct engine_stats st;
	engine_stats(m->engine, &st);
	double secs = m->last_sys_ms ? (double)(now - m->last_sys_ms) / 1000.0 : 0;
	m->last_sys_ms = now;
	sys_put(m, 0, "$SYS/broker/version", "midge version %s", midge_version());
	sys_put(m, -1, "$SYS/broker/uptime", "%llu seconds",
		(unsigned long long)((now - m->started_ms) / 1000));
	sys_put(m, 1, "$SYS/broker/clients/connected", "%llu", (unsigned long long)st.clients_connected);
	sys_put(m, 2, "$SYS/broker/clients/active", "%llu", (unsigned long long)st.clients_connected);
	sys_put(m, 3, "$SYS/broker/clients/total", "%llu", (unsigned long long)st.clients_total);
	sys_put(m, 4, "$SYS/broker/clients/disconnected", "%llu",
		(unsigned long long)(st.clients_total - st.clients_connected));
	sys_put(m, 5, "$SYS/broker/clients/maximum", "%llu", (unsigned long long)st.clients_maximum);
	sys_put(m, 6, "$SYS/broker/clients/expired", "%llu", (unsigned long long)st.clients_expired);
	sys_put(m, 7, "$SYS/broker/messages/received", "%llu", (unsigned long long)st.msgs_received);
	sys_put(m, 8, "$SYS/broker/messages/sent", "%llu", (unsigned long long)st.msgs_sent);
	sys_put(m, 9, "$SYS/broker/messages/stored", "%llu", (unsigned long long)st.stored_count);
	sys_put(m, 10, "$SYS/broker/publish/messages/received", "%llu",
		(unsigned long long)st.publish_received);
	sys_put(m, 11, "$SYS/broker/publish/messages/sent", "%llu", (unsigned long long)st.publish_sent);
	sys_put(m, 12, "$SYS/broker/publish/messages/dropped", "%llu",
		(unsigned long long)st.msgs_dropped);
	sys_put(m, 13, "$SYS/broker/bytes/received", "%llu", (unsigned long long)st.bytes_received);
	sys_put(m, 14, "$SYS/broker/bytes/sent", "%llu", (unsigned long long)st.bytes_sent);
	sys_put(m, 15, "$SYS/broker/subscriptions/count", "%llu",
		(unsigned long long)st.subscriptions_count);
	sys_put(m, 16, "$SYS/broker/retained messages/count", "%llu",
		(unsigned long long)st.retained_count);
	sys_put(m, 17, "$SYS/broker/store/messages/count", "%llu", (unsigned long long)st.stored_count);
	sys_put(m, 18, "$SYS/broker/store/messages/bytes", "%llu", (unsigned long long)st.stored_bytes);
	sys_put(m, 19, "$SYS/broker/midge/hooks/dropped", "%llu",
		(unsigned long long)hooks_dropped(m->hooks));
	sys_put(m, 20, "$SYS/broker/midge/hooks/sent", "%llu", (unsigned long long)hooks_sent(m->hooks));
	sys_put(m, 21, "$SYS/broker/midge/connections", "%d", m->n_conns);
	/* slots 22..48: the load rates below (9 rates, 3 periods each) */
	sys_put(m, 49, "$SYS/broker/midge/acl/denied", "%llu", (unsigned long long)st.acl_denied);
	sys_put(m, 50, "$SYS/broker/midge/acks held", "%llu", (unsigned long long)st.acks_held);
	sys_put(m, SYS_SLOT_PAUSES, "$SYS/broker/midge/acks held/pauses", "%llu",
		(unsigned long long)st.acks_held_pauses);
	sys_put(m, 51, "$SYS/broker/midge/history/messages", "%llu",
		(unsigned long long)st.history_count);
	persist_sys(m, now, sys_put, SYS_SLOT_STORE);
	cluster_link_sys(m, sys_put, SYS_SLOT_CLUSTER);
	if (secs > 0) {
		sys_load(m, 0, "messages/received", st.msgs_received, secs, 22);
		sys_load(m, 1, "messages/sent", st.msgs_sent, secs, 25);
		sys_load(m, 2, "bytes/received", st.bytes_received, secs, 28);
		sys_load(m, 3, "bytes/sent", st.bytes_sent, secs, 31);
		sys_load(m, 4, "publish/received", st.publish_received, secs, 34);
		sys_load(m, 5, "publish/sent", st.publish_sent, secs, 37);
		/* Mosquitto's other rates, per minute like the rest */
		sys_load(m, 6, "publish/dropped", st.msgs_dropped, secs, 40);
		sys_load(m, 7, "sockets", m->sockets_accepted, secs, 43);
		sys_load(m, 8, "connections", m->connects, secs, 46);
	} else {
		for (int i = 0; i < 9; i++)
			m->sys_load[i].last = 0;
		m->sys_load[0].last = st.msgs_received;
		m->sys_load[1].last = st.msgs_sent;
		m->sys_load[2].last = st.bytes_received;
		m->sys_load[3].last = st.bytes_sent;
		m->sys_load[4].last = st.publish_received;
		m->sys_load[5].last = st.publish_sent;
		m->sys_load[6].last = st.msgs_dropped;
		m->sys_load[7].last = m->sockets_accepted;
		m->sys_load[8].last = m->connects;
	}
}

void sys_clear(struct midge *m)
{
	for (size_t i = 0; i < sizeof(m->sys_last) / sizeof(m->sys_last[0]); i++) {
		free(m->sys_last[i]);
		m->sys_last[i] = NULL;
	}
}
