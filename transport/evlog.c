/*
 * evlog.c - the log lines for events: which events a human reads at which
 * log type, and their text. Logging is an event consumer (the engine
 * never logs), so what the log says and what hooks publish cannot drift
 * apart.
 */
#include <stdio.h>

#include "codec/codec.h"
#include "midge.h"
#include "transport/broker.h"
#include "transport/config.h"
#include "transport/log.h"

static void evlog_client(const struct midge_client *cl, char *buf, size_t len)
{
	if (!cl) {
		snprintf(buf, len, "broker");
		return;
	}
	if (cl->client_id.len == 0)
		snprintf(buf, len, "[%s:%u] (no client id yet)", cl->peer_addr ? cl->peer_addr : "?",
			 cl->peer_port);
	else
		snprintf(buf, len, "'%.*s' [%s:%u]",
			 (int)(cl->client_id.len > 128 ? 128 : cl->client_id.len), cl->client_id.p,
			 cl->peer_addr ? cl->peer_addr : "?", cl->peer_port);
}

/* The log type evlog_event() writes ev under (0: never written). */
static unsigned evlog_type(const struct midge_event *ev)
{
	switch (ev->type) {
	case MIDGE_EV_CONNECT:
	case MIDGE_EV_CONNECT_REFUSED:
	case MIDGE_EV_DISCONNECT:
	case MIDGE_EV_PROTOCOL_ERROR:
		return CONF_LOG_NOTICE;
	case MIDGE_EV_SUBSCRIBE:
		return CONF_LOG_SUBSCRIBE;
	case MIDGE_EV_UNSUBSCRIBE:
		return CONF_LOG_UNSUBSCRIBE;
	case MIDGE_EV_SESSION_TAKEOVER:
	case MIDGE_EV_SESSION_EXPIRED:
		return CONF_LOG_INFO;
	case MIDGE_EV_DROP:
		return ev->u.message.drop == MIDGE_DROP_NO_SUBSCRIBERS ? 0 : CONF_LOG_DEBUG;
	default:
		return CONF_LOG_DEBUG;
	}
}

/* One log line for what a human wants to see; the rest at debug level. */
void evlog_event(const struct conf *conf, const struct midge_event *ev)
{
	char who[256];
	const struct midge_client *cl = ev->client;
	if (!conf->connection_messages && (ev->type == MIDGE_EV_CONNECT || ev->type == MIDGE_EV_DISCONNECT))
		return;
	/* Every event passes here: decide before formatting anything. */
	if (!log_enabled(evlog_type(ev)))
		return;
	evlog_client(cl, who, sizeof(who));
	switch (ev->type) {
	case MIDGE_EV_CONNECT:
		log_notice("client %s connected (protocol %u, clean %d, keepalive %u%s%.*s%s%s)", who,
			   cl ? cl->protocol : 0, ev->u.connect.clean_start, ev->u.connect.keep_alive,
			   cl && cl->username.len ? ", user '" : "",
			   cl && cl->username.len ? (int)cl->username.len : 0,
			   cl && cl->username.p ? cl->username.p : "", cl && cl->username.len ? "'" : "",
			   cl && cl->tls ? ", TLS" : "");
		break;
	case MIDGE_EV_CONNECT_REFUSED:
		log_notice("client %s refused: %s (code %u)", who,
			   ev->u.connect.why ? ev->u.connect.why : "refused", ev->u.connect.rc);
		break;
	case MIDGE_EV_DISCONNECT:
		log_notice("client %s disconnected: %s%s", who,
			   ev->u.disconnect.why ? ev->u.disconnect.why : (ev->u.disconnect.by_client ? "by client" : "closed"),
			   ev->u.disconnect.will ? " (will published)" : "");
		break;
	case MIDGE_EV_PROTOCOL_ERROR:
		log_notice("protocol error from client %s: %s (reason 0x%02x %s)", who,
			   ev->u.disconnect.why ? ev->u.disconnect.why : "", ev->u.disconnect.rc,
			   codec_rc_name(ev->u.disconnect.rc));
		break;
	case MIDGE_EV_SUBSCRIBE:
		log_msg(CONF_LOG_SUBSCRIBE, "client %s subscribed to '%.*s' (QoS %u, rc 0x%02x)", who,
			(int)ev->u.subscribe.filter.len, ev->u.subscribe.filter.p, ev->u.subscribe.qos,
			ev->u.subscribe.rc);
		break;
	case MIDGE_EV_UNSUBSCRIBE:
		log_msg(CONF_LOG_UNSUBSCRIBE, "client %s unsubscribed from '%.*s'", who,
			(int)ev->u.subscribe.filter.len, ev->u.subscribe.filter.p);
		break;
	case MIDGE_EV_SESSION_TAKEOVER:
		log_info("client %s took over an existing session", who);
		break;
	case MIDGE_EV_SESSION_EXPIRED:
		log_info("session of %s expired", who);
		break;
	case MIDGE_EV_DROP: {
		/* "to" is the receiver, empty when nobody matched: name the
		 * topic so the line says which message it was. */
		const struct midge_message *dm = ev->u.message.msg;
		bool to = ev->u.message.to.len > 0;
		/* $SYS updates nobody subscribed to are not worth a line each. */
		if (ev->u.message.drop == MIDGE_DROP_NO_SUBSCRIBERS && dm && dm->origin.len == 0)
			break;
		log_debug("message on '%.*s' from %s dropped%s%.*s%s: %s",
			  dm ? (int)dm->topic.len : 0, dm && dm->topic.p ? dm->topic.p : "", who,
			  to ? " for '" : "", to ? (int)ev->u.message.to.len : 0,
			  to ? ev->u.message.to.p : "", to ? "'" : "",
			  ev->u.message.why ? ev->u.message.why : "");
		break;
	}
	case MIDGE_EV_ACL_DENIED: {
		static const char *const access[] = {"?", "publish on", "subscribe to", "receive"};
		unsigned a = ev->u.acl.access < 4 ? ev->u.acl.access : 0;
		log_debug("client %s%s%.*s%s denied: %s '%.*s' (%s)", who,
			  cl && cl->username.p ? " user '" : "",
			  cl && cl->username.p ? (int)(cl->username.len > 128 ? 128 : cl->username.len) : 0,
			  cl && cl->username.p ? cl->username.p : "", cl && cl->username.p ? "'" : "",
			  access[a], (int)(ev->u.acl.topic.len > 512 ? 512 : ev->u.acl.topic.len),
			  ev->u.acl.topic.p, ev->u.acl.why ? ev->u.acl.why : "");
		break;
	}
	default:
		log_debug("event %s from %s", midge_event_name(ev->type) ? midge_event_name(ev->type) : "?", who);
		break;
	}
}

