/*
 * api.c - the embedding API of include/midge.h: creating and freeing a
 * broker, configuring it, listeners, event callbacks, publishing from the
 * application, stopping from any thread. midge_run is loop.c's.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "hooks/hooks.h"
#include "http/http.h"
#include "midge.h"
#include "transport/broker.h"
#include "transport/config.h"
#include "transport/conn.h"
#include "transport/iothr.h"
#include "transport/log.h"
#include "transport/security.h"

struct midge *midge_new(void)
{
	struct midge *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	conf_init(&m->conf);
	m->hooks = hooks_new();
	if (!m->hooks) {
		free(m);
		return NULL;
	}
	return m;
}

void midge_free(struct midge *m)
{
	if (!m)
		return;
	engine_free(m->engine);
	hooks_free(m->hooks);
	http_free(m); /* after hooks: its event callbacks are gone with them */
	auth_stop(m);
	security_free(m->sec);
	rbuf_pool_clear(&m->rbufs);
	outbox_pool_clear(&m->outboxes);
	sys_clear(m);
	conf_clear(&m->conf);
	free(m->conf_path);
	free(m);
}

int midge_config_set(struct midge *m, const char *key, const char *value)
{
	char msg[512];
	int rc = conf_set(&m->conf, key, value, msg, sizeof(msg));
	if (rc < 0)
		log_err("%s", msg);
	else if (rc > 0)
		log_warn("%s", msg);
	if (rc >= 0 && m->engine) {
		struct engine_config cfg;
		glue_engine_config(&m->conf, &cfg);
		engine_reconfigure(m->engine, &cfg);
	}
	/* running: allow_anonymous, password_file, acl_file take effect now */
	if (rc >= 0 && m->running && broker_security_start(m) < 0)
		return -1;
	return rc < 0 ? -1 : 0;
}

static void api_conf_warn(void *user, const char *text)
{
	(void)user;
	log_warn("%s", text);
}

int midge_config_load(struct midge *m, const char *path)
{
	char err[600];
	if (conf_load(&m->conf, path, api_conf_warn, m, err, sizeof(err)) < 0) {
		log_err("%s", err);
		return -1;
	}
	if (m->conf.n_listeners > 0 && !m->conf.allow_anonymous_set) {
		/* Mosquitto 2: a file with listeners and no allow_anonymous
		 * refuses clients without credentials. */
		m->conf.engine.allow_anonymous = false;
		log_notice("%s: allow_anonymous not set: clients must authenticate (as in "
			   "Mosquitto 2); add 'allow_anonymous true' to allow anonymous clients",
			   path);
	}
	free(m->conf_path);
	m->conf_path = realpath(path, NULL);
	if (!m->conf_path)
		m->conf_path = strdup(path);
	if (m->engine) {
		struct engine_config cfg;
		glue_engine_config(&m->conf, &cfg);
		engine_reconfigure(m->engine, &cfg);
	}
	return 0;
}

int midge_listen(struct midge *m, const char *host, uint16_t port, const char *certfile,
		 const char *keyfile)
{
	if (m->running)
		return -1;
	int i = conf_add_listener(&m->conf, host, port);
	if (i < 0)
		return -1;
	struct conf_listener *l = &m->conf.listeners[i];
	if ((certfile && !(l->certfile = strdup(certfile))) || (keyfile && !(l->keyfile = strdup(keyfile))))
		return -1;
	return 0;
}

int midge_on(struct midge *m, enum midge_event_type type, midge_event_cb cb, void *user)
{
	return hooks_on(m->hooks, type, cb, user);
}

/* The midge_on_<event> shorthands: one event type each. */
#define API_ON(name, type)                                                   \
	int midge_on_##name(struct midge *m, midge_event_cb cb, void *user) \
	{                                                                     \
		return midge_on(m, type, cb, user);                           \
	}
API_ON(connect, MIDGE_EV_CONNECT)
API_ON(disconnect, MIDGE_EV_DISCONNECT)
API_ON(publish, MIDGE_EV_PUBLISH)
API_ON(subscribe, MIDGE_EV_SUBSCRIBE)
API_ON(unsubscribe, MIDGE_EV_UNSUBSCRIBE)
API_ON(ping, MIDGE_EV_PING)
API_ON(will, MIDGE_EV_WILL)
#undef API_ON

int midge_publish(struct midge *m, const char *topic, const void *payload, size_t len, int qos,
		  bool retain)
{
	if (qos < 0 || qos > 2 || !topic || glue_engine_start(m) < 0)
		return -1;
	int rc = engine_publish(m->engine, (const uint8_t *)topic, strlen(topic), payload, len,
				(uint8_t)qos, retain, broker_now_ms());
	/* May be called from an event callback, inside the engine: the
	 * engine hears of no end from this flush. */
	if (m->running) {
		conn_flush_dirty(m, false);
		iothr_kick_all(m);
		broker_keep_busy(m);
	}
	return rc < 0 ? -1 : 0;
}

const char *midge_version(void)
{
	return PACKAGE_VERSION;
}

void midge_stop(struct midge *m)
{
	atomic_store(&m->stop_requested, 1);
	if (m->loop_ready)
		uv_async_send(&m->stop_async);
}

int broker_listener_count(const struct midge *m)
{
	return m->conf.n_listeners;
}

bool broker_allow_anonymous_set(const struct midge *m)
{
	return m->conf.allow_anonymous_set;
}

void broker_set_verbose(struct midge *m, bool on)
{
	m->verbose = on;
	log_set_verbose(on);
}

