/*
 * session.c - the MQTT session of a bridge link on its connected socket
 * (bridge/link.h): CONNECT and CONNACK, the remote subscriptions, PUBLISH
 * both ways with topic remapping, the acknowledgements of each QoS flow,
 * notifications, the output buffer and the framed input. Failures go to
 * link_fail() (link.c), which ends the connection.
 */
#include "bridge/link.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "engine/bridge.h"
#include "engine/engine.h"
#include "transport/log.h"

/* ---- topics ------------------------------------------------------------ */

/* Whether topic matches filter (MQTT's rules, $ topics not matched by a
 * leading wildcard). */
static bool link_topic_match(const char *filter, const uint8_t *t, size_t tl)
{
	const char *f = filter;
	size_t i = 0;
	if (tl && t[0] == '$' && (*f == '+' || *f == '#'))
		return false;
	for (;;) {
		if (*f == '#')
			return true;
		if (*f == '+') {
			while (i < tl && t[i] != '/')
				i++;
			f++;
		} else {
			while (*f && *f != '/' && i < tl && t[i] != '/') {
				if (*f != (char)t[i])
					return false;
				f++;
				i++;
			}
			if (*f && *f != '/')
				return false;
			if (i < tl && t[i] != '/')
				return false;
		}
		if (!*f)
			return i == tl;
		/* *f == '/' */
		if (i == tl)
			return f[1] == '#' && !f[2]; /* "a/#" matches "a" */
		f++;
		i++;
	}
}

/*
 * Maps a topic across the bridge: the first topic line of direction dir
 * whose filter on this side (from_local: the local one) matches, its
 * prefix on this side taken off and the other side's put on, into buf.
 * Returns the length, or -1 when no line matches or it does not fit.
 */
static int link_map(const struct bridge_conf *cf, uint8_t dir, bool from_local, const uint8_t *t,
		    size_t tl, uint8_t *buf, size_t cap)
{
	for (int i = 0; i < cf->n_topics; i++) {
		const struct bridge_topic *bt = &cf->topics[i];
		if (!(bt->dir & dir))
			continue;
		if (!link_topic_match(from_local ? bt->local_filter : bt->remote_filter, t, tl))
			continue;
		const char *strip = from_local ? bt->local_prefix : bt->remote_prefix;
		const char *add = from_local ? bt->remote_prefix : bt->local_prefix;
		size_t sl = strip ? strlen(strip) : 0, al = add ? strlen(add) : 0;
		if (sl > tl || tl - sl + al > cap || tl - sl + al > UINT16_MAX)
			return -1;
		if (al)
			memcpy(buf, add, al);
		memcpy(buf + al, t + sl, tl - sl);
		return (int)(tl - sl + al);
	}
	return -1;
}

/* ---- output ------------------------------------------------------------ */

/* Room for n more bytes in the output buffer. 0 or -1 on OOM. */
static int link_out_reserve(struct link *l, size_t n)
{
	if (l->out_off && l->out_off == l->out_len)
		l->out_off = l->out_len = 0;
	if (l->out_len + n <= l->out_cap)
		return 0;
	if (l->out_off) {
		memmove(l->out, l->out + l->out_off, l->out_len - l->out_off);
		l->out_len -= l->out_off;
		l->out_off = 0;
		if (l->out_len + n <= l->out_cap)
			return 0;
	}
	size_t cap = l->out_cap ? l->out_cap : 4096;
	while (cap < l->out_len + n)
		cap *= 2;
	uint8_t *p = realloc(l->out, cap);
	if (!p)
		return -1;
	l->out = p;
	l->out_cap = cap;
	return 0;
}

/* Encodes pkt at the end of the output. Returns 0, or -1 when it cannot
 * be encoded or on OOM. */
static int link_put(struct link *l, struct codec_packet *pkt)
{
	pkt->version = l->cf->protocol;
	size_t n = codec_encode_size(pkt);
	if (!n || link_out_reserve(l, n) < 0)
		return -1;
	if (codec_encode(pkt, l->out + l->out_len, n) != n)
		return -1;
	l->out_len += n;
	l->last_out = link_now();
	return 0;
}

int link_send_bare(struct link *l, uint8_t type)
{
	struct codec_packet p;
	memset(&p, 0, sizeof p);
	p.type = type;
	if (link_put(l, &p) < 0)
		return -1;
	return link_flush(l);
}

static int link_put_ack(struct link *l, uint8_t type, uint16_t pid, uint8_t rc)
{
	struct codec_packet p;
	memset(&p, 0, sizeof p);
	p.type = type;
	p.flags = type == CODEC_PUBREL ? 2 : 0;
	p.u.ack.packet_id = pid;
	p.u.ack.rc = l->cf->protocol == 5 ? rc : 0;
	return link_put(l, &p);
}

int link_flush(struct link *l)
{
	while (l->out_off < l->out_len) {
		size_t n = l->out_len - l->out_off;
		ssize_t w;
		if (l->tls) {
			w = gnutls_record_send(l->tls, l->out + l->out_off, n);
			if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED)
				break;
			if (w < 0) {
				link_fail(l, "TLS send: %s", gnutls_strerror((int)w));
				return -1;
			}
		} else {
			w = send(l->fd, l->out + l->out_off, n, MSG_NOSIGNAL);
			if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
				break;
			if (w < 0) {
				link_fail(l, "send: %s", strerror(errno));
				return -1;
			}
		}
		l->out_off += (size_t)w;
	}
	if (l->out_off == l->out_len)
		l->out_off = l->out_len = 0;
	link_poll_update(l);
	return 0;
}

/* ---- connecting ------------------------------------------------------- */

void link_notify_local(struct link *l, bool up)
{
	if (!l->cf->notifications)
		return;
	const char *v = up ? "1" : "0";
	engine_publish(l->bs->e, (const uint8_t *)l->note_topic, strlen(l->note_topic), v, 1, 1, true,
		       link_now());
}

int link_send_connect(struct link *l)
{
	const struct bridge_conf *cf = l->cf;
	struct codec_packet p;
	memset(&p, 0, sizeof p);
	p.type = CODEC_CONNECT;
	struct codec_connect *c = &p.u.connect;
	c->level = cf->protocol;
	c->clean_start = cf->cleansession;
	c->keep_alive = cf->keepalive;
	c->client_id.p = (const uint8_t *)l->remote_id;
	c->client_id.len = (uint32_t)strlen(l->remote_id);
	if (cf->notifications && !cf->notifications_local_only) {
		c->will = true;
		c->will_qos = 1;
		c->will_retain = true;
		c->will_topic.p = (const uint8_t *)l->note_topic;
		c->will_topic.len = (uint32_t)strlen(l->note_topic);
		c->will_payload.p = (const uint8_t *)"0";
		c->will_payload.len = 1;
	}
	if (cf->remote_username) {
		c->has_username = true;
		c->username.p = (const uint8_t *)cf->remote_username;
		c->username.len = (uint32_t)strlen(cf->remote_username);
	}
	if (cf->remote_password) {
		c->has_password = true;
		c->password.p = (const uint8_t *)cf->remote_password;
		c->password.len = (uint32_t)strlen(cf->remote_password);
	}
	if (cf->protocol == 5 && !cf->cleansession) { /* a session that outlives the link */
		c->props.present |= CODEC_PROP_BIT(CODEC_PROP_SESSION_EXPIRY);
		c->props.session_expiry = UINT32_MAX;
	}
	/* Mosquitto's bridge bit: the protocol level with 0x80, so a Mosquitto
	 * (or midge) remote treats us as a bridge (no echo, retain as
	 * published) */
	c->bridge = cf->try_private && cf->protocol != 5;
	if (link_put(l, &p) < 0)
		return -1;
	l->state = LINK_CONNACK;
	l->state_since = link_now();
	return link_flush(l);
}

/* ---- input ------------------------------------------------------------- */

void link_answer(void *ctx, uint8_t type, uint16_t packet_id, uint8_t rc)
{
	struct link *l = ctx;
	if (l->state != LINK_UP)
		return; /* the connection it answers is gone */
	if (link_put_ack(l, type, packet_id, rc) < 0) {
		/* never sent: the remote sends the message again */
		log_warn("bridge %s: out of memory: an acknowledgement was not sent", l->cf->name);
		return;
	}
	link_kick(l); /* flushed on the loop's next pass */
}

static bool link_qos2_has(struct link *l, uint16_t id)
{
	return l->qos2_in[id >> 3] & (1u << (id & 7));
}

static void link_qos2_set(struct link *l, uint16_t id, bool on)
{
	if (on)
		l->qos2_in[id >> 3] |= (uint8_t)(1u << (id & 7));
	else
		l->qos2_in[id >> 3] &= (uint8_t) ~(1u << (id & 7));
}

/* A PUBLISH from the remote: mapped to its local topic and published
 * locally (the engine keeps it from going back: no loops). */
static int link_in_publish(struct link *l, const struct codec_publish *p)
{
	uint8_t topic[65536];
	const uint8_t *props = NULL;
	size_t props_len = 0;
	uint8_t rc = 0;
	l->last_msg = link_now();
	if (p->qos == 2 && link_qos2_has(l, p->packet_id)) /* a resend: published already */
		return engine_bridge_answer(l->eb, CODEC_PUBREC, p->packet_id, 0);
	int tl = link_map(l->cf, BRIDGE_IN, false, p->topic.p, p->topic.len, topic, sizeof topic);
	if (tl < 0) {
		log_debug("bridge %s: %.*s matches no 'in' topic line: dropped", l->cf->name,
			  (int)(p->topic.len > 200 ? 200 : p->topic.len), (const char *)p->topic.p);
		rc = MQTT_RC_NOT_AUTHORIZED;
	} else {
		/* v5 properties go on, unless they hold what only this hop means */
		if (l->cf->protocol == 5 && p->props.raw.len &&
		    !CODEC_HAS_PROP(&p->props, CODEC_PROP_TOPIC_ALIAS) &&
		    !CODEC_HAS_PROP(&p->props, CODEC_PROP_SUBSCRIPTION_ID)) {
			props = p->props.raw.p;
			props_len = p->props.raw.len;
		}
		rc = engine_bridge_publish(l->eb, topic, (size_t)tl, p->payload.p, p->payload.len, props,
					   props_len, p->qos, p->retain, l->last_msg);
		if (rc)
			log_warn("bridge %s: a message on %.*s was not published locally: %s", l->cf->name,
				 tl > 200 ? 200 : tl, (const char *)topic, codec_rc_name(rc));
	}
	/* the acknowledgement waits until the store committed the message
	 * (engine_bridge_answer): nothing acknowledged is lost */
	if (p->qos == 1)
		return engine_bridge_answer(l->eb, CODEC_PUBACK, p->packet_id, rc ? MQTT_RC_UNSPECIFIED : 0);
	if (p->qos == 2) {
		if (!rc)
			link_qos2_set(l, p->packet_id, true);
		return engine_bridge_answer(l->eb, CODEC_PUBREC, p->packet_id, rc ? MQTT_RC_UNSPECIFIED : 0);
	}
	return 0;
}

static void link_up(struct link *l, const struct codec_connack *ca)
{
	uint16_t w = l->bs->window;
	l->remote_max_in = 0;
	l->remote_max_packet = 0;
	if (l->cf->protocol == 5) {
		if (CODEC_HAS_PROP(&ca->props, CODEC_PROP_RECEIVE_MAX) && ca->props.receive_max < w)
			w = ca->props.receive_max;
		if (CODEC_HAS_PROP(&ca->props, CODEC_PROP_MAX_PACKET_SIZE))
			l->remote_max_packet = ca->props.max_packet_size;
	}
	if (!ca->session_present)
		memset(l->qos2_in, 0, sizeof l->qos2_in);
	l->state = LINK_UP;
	l->state_since = l->last_msg = link_now();
	l->failures = 0;
	const struct bridge_addr *a = &l->cf->addrs[l->addr_idx];
	log_notice("bridge %s: connected to %s:%u as %s%s", l->cf->name, a->host, a->port, l->remote_id,
		   ca->session_present ? " (session present)" : "");
	/* the remote subscriptions: every in/both line */
	struct codec_sub_entry ents[BRIDGE_MAX_TOPICS];
	uint32_t n = 0;
	for (int i = 0; i < l->cf->n_topics; i++) {
		const struct bridge_topic *t = &l->cf->topics[i];
		if (!(t->dir & BRIDGE_IN))
			continue;
		struct codec_sub_entry *e = &ents[n++];
		memset(e, 0, sizeof *e);
		e->filter.p = (const uint8_t *)t->remote_filter;
		e->filter.len = (uint32_t)strlen(t->remote_filter);
		e->qos = t->qos;
		/* v5: no echo of our own messages (no loops) and retain as published */
		e->no_local = l->cf->protocol == 5;
		e->retain_as_published = l->cf->protocol == 5;
		e->options = (uint8_t)(t->qos | (e->no_local ? 0x04 : 0) | (e->retain_as_published ? 0x08 : 0));
	}
	if (n) {
		struct codec_packet p;
		memset(&p, 0, sizeof p);
		p.type = CODEC_SUBSCRIBE;
		p.flags = 2;
		/* an id the window never uses (it is at most LINK_MAX_WINDOW) */
		p.u.subscribe.packet_id = LINK_SUBSCRIBE_ID;
		p.u.subscribe.entries = ents;
		p.u.subscribe.count = n;
		if (link_put(l, &p) < 0) {
			link_fail(l, "cannot encode SUBSCRIBE");
			return;
		}
	}
	if (l->cf->notifications) {
		link_notify_local(l, true);
		if (!l->cf->notifications_local_only) {
			struct codec_packet p;
			memset(&p, 0, sizeof p);
			p.type = CODEC_PUBLISH;
			p.flags = 1; /* retained, QoS 0: no packet id taken from the window */
			p.u.publish.retain = true;
			p.u.publish.topic.p = (const uint8_t *)l->note_topic;
			p.u.publish.topic.len = (uint32_t)strlen(l->note_topic);
			p.u.publish.payload.p = (const uint8_t *)"1";
			p.u.publish.payload.len = 1;
			link_put(l, &p);
		}
	}
	engine_bridge_up(l->eb, w ? w : 1);
	link_pump(l);
}

/* One packet from the remote. Returns 0 to go on, 1 when the link failed. */
static int link_on_packet(void *ctx, const struct codec_frame *fr, const uint8_t *body)
{
	struct link *l = ctx;
	struct codec_packet p;
	l->last_in = link_now();
	l->ping_out = false;
	int rc = codec_decode(fr->first, body, fr->remaining, l->cf->protocol, &p);
	if (rc < 0) {
		link_fail(l, "the remote sent a bad %s: %s", codec_type_name(fr->type),
			  codec_rc_name((uint8_t)-rc));
		return 1;
	}
	if (l->state == LINK_CONNACK) {
		if (p.type != CODEC_CONNACK) {
			link_fail(l, "the remote sent %s before CONNACK", codec_type_name(p.type));
			return 1;
		}
		if (p.u.connack.rc) {
			link_fail(l, "the remote refused the connection: %s%s",
				  l->cf->protocol == 5 ? codec_rc_name(p.u.connack.rc) : "return code ",
				  l->cf->protocol == 5 ? "" :
				  p.u.connack.rc == 1 ? "1 (protocol version: try_private false?)" :
				  p.u.connack.rc == 2 ? "2 (client id refused)" :
				  p.u.connack.rc == 4 ? "4 (bad user name or password)" :
				  p.u.connack.rc == 5 ? "5 (not authorized)" : "3 (server unavailable)");
			return 1;
		}
		link_up(l, &p.u.connack);
		return l->state == LINK_UP ? 0 : 1;
	}
	int r = 0;
	switch (p.type) {
	case CODEC_PUBLISH:
		r = link_in_publish(l, &p.u.publish);
		break;
	case CODEC_PUBACK:
	case CODEC_PUBCOMP:
		engine_bridge_ack(l->eb, p.type, p.u.ack.packet_id, p.u.ack.rc);
		if (p.u.ack.rc >= 0x80)
			log_warn("bridge %s: the remote refused message %u: %s", l->cf->name,
				 p.u.ack.packet_id, codec_rc_name(p.u.ack.rc));
		break;
	case CODEC_PUBREC:
		if (engine_bridge_ack(l->eb, CODEC_PUBREC, p.u.ack.packet_id, p.u.ack.rc))
			r = link_put_ack(l, CODEC_PUBREL, p.u.ack.packet_id, 0);
		break;
	case CODEC_PUBREL: /* [MQTT-4.3.3-11] the id may be used again */
		link_qos2_set(l, p.u.ack.packet_id, false);
		r = engine_bridge_answer(l->eb, CODEC_PUBCOMP, p.u.ack.packet_id, 0);
		break;
	case CODEC_SUBACK:
		for (uint32_t i = 0; i < p.u.suback.count; i++)
			if (p.u.suback.codes[i] >= 0x80)
				log_warn("bridge %s: the remote refused subscription %u of this bridge: %s",
					 l->cf->name, i + 1, codec_rc_name(p.u.suback.codes[i]));
		break;
	case CODEC_PINGRESP:
		break;
	case CODEC_DISCONNECT:
		link_fail(l, "the remote disconnected: %s", codec_rc_name(p.u.disconnect.rc));
		return 1;
	default:
		link_fail(l, "the remote sent an unexpected %s", codec_type_name(p.type));
		return 1;
	}
	if (r < 0) {
		link_fail(l, "out of memory");
		return 1;
	}
	return 0;
}

/* Reads what the socket has and handles every complete packet. */
void link_read(struct link *l)
{
	for (int rounds = 0; rounds < 32; rounds++) {
		if (l->in_cap - l->in_len < 1024) {
			size_t cap = l->in_cap ? l->in_cap * 2 : LINK_IN_START;
			uint8_t *p = realloc(l->in, cap);
			if (!p) {
				link_fail(l, "out of memory");
				return;
			}
			l->in = p;
			l->in_cap = cap;
		}
		ssize_t r;
		if (l->tls) {
			r = gnutls_record_recv(l->tls, l->in + l->in_len, l->in_cap - l->in_len);
			if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
				return;
			if (r < 0) {
				link_fail(l, "TLS receive: %s", gnutls_strerror((int)r));
				return;
			}
		} else {
			r = recv(l->fd, l->in + l->in_len, l->in_cap - l->in_len, 0);
			if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
				return;
			if (r < 0) {
				link_fail(l, "receive: %s", strerror(errno));
				return;
			}
		}
		if (r == 0) {
			link_fail(l, "the remote closed the connection");
			return;
		}
		l->in_len += (size_t)r;
		struct codec_feed fo;
		uint32_t max = l->bs->max_in;
		int rc = codec_frames(l->in, l->in_len, &max, link_on_packet, l, &fo);
		if (rc > 0)
			return; /* failed: the link was reset */
		if (rc < 0) {
			link_fail(l, "the remote's stream is malformed: %s", codec_rc_name((uint8_t)-rc));
			return;
		}
		memmove(l->in, l->in + fo.used, l->in_len - fo.used);
		l->in_len -= fo.used;
		if (fo.need > l->in_cap) { /* room for the whole packet being read */
			uint8_t *p = realloc(l->in, fo.need);
			if (!p) {
				link_fail(l, "out of memory");
				return;
			}
			l->in = p;
			l->in_cap = fo.need;
		}
		if (l->state == LINK_UP)
			link_pump(l);
		else if (l->state != LINK_CONNACK)
			return;
		if (l->fd < 0)
			return;
	}
	if (l->tls && gnutls_record_check_pending(l->tls))
		link_kick(l); /* more than 32 reads' worth */
}

/* ---- the queue towards the remote -------------------------------------- */

/* Moves messages from the engine into the output while the link is up
 * and the output holds less than LINK_OUT_HIGH. */
void link_pump(struct link *l)
{
	if (l->state != LINK_UP)
		return;
	const struct bridge_conf *cf = l->cf;
	uint64_t now = link_now();
	struct engine_bridge_out o;
	uint8_t topic[65536];
	while (l->out_len - l->out_off < LINK_OUT_HIGH && engine_bridge_next(l->eb, now, &o)) {
		if (o.type == CODEC_PUBREL) {
			if (link_put_ack(l, CODEC_PUBREL, o.packet_id, 0) < 0)
				break;
			continue;
		}
		l->last_msg = now;
		int tl = link_map(cf, BRIDGE_OUT, true, o.topic, o.topic_len, topic, sizeof topic);
		struct codec_packet p;
		memset(&p, 0, sizeof p);
		p.type = CODEC_PUBLISH;
		p.u.publish.qos = o.qos;
		p.u.publish.dup = o.dup;
		p.u.publish.retain = o.retain && cf->outgoing_retain;
		p.flags = (uint8_t)(o.qos << 1 | (p.u.publish.dup ? 8 : 0) | (p.u.publish.retain ? 1 : 0));
		p.u.publish.packet_id = o.packet_id;
		p.u.publish.topic.p = tl >= 0 ? topic : o.topic;
		p.u.publish.topic.len = tl >= 0 ? (uint32_t)tl : (uint32_t)o.topic_len;
		p.u.publish.payload.p = o.payload;
		p.u.publish.payload.len = (uint32_t)o.payload_len;
		if (cf->protocol == 5) {
			p.u.publish.props = o.props;
			/* what only the local hop means does not cross */
			p.u.publish.props.present &= ~(CODEC_PROP_BIT(CODEC_PROP_TOPIC_ALIAS) |
						       CODEC_PROP_BIT(CODEC_PROP_SUBSCRIPTION_ID));
			p.u.publish.props.sub_id_count = 0;
		}
		p.version = cf->protocol;
		size_t size = codec_encode_size(&p);
		uint32_t limit = cf->max_packet_size;
		if (l->remote_max_packet && (!limit || l->remote_max_packet < limit))
			limit = l->remote_max_packet;
		if (!size || (limit && size > limit)) {
			/* never sendable: it leaves the window as if acknowledged */
			log_warn("bridge %s: a message on %.*s (%zu bytes) exceeds %s: not sent",
				 cf->name, (int)(o.topic_len > 200 ? 200 : o.topic_len),
				 (const char *)o.topic, size,
				 cf->max_packet_size ? "bridge_max_packet_size" : "the remote's maximum");
			if (o.qos == 1)
				engine_bridge_ack(l->eb, CODEC_PUBACK, o.packet_id, 0x95);
			else if (o.qos == 2)
				engine_bridge_ack(l->eb, CODEC_PUBREC, o.packet_id, 0x95);
			continue;
		}
		if (link_put(l, &p) < 0) {
			link_fail(l, "out of memory");
			return;
		}
	}
	link_flush(l);
}

