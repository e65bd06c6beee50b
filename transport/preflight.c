/*
 * preflight.c - what start-up checks before it binds anything, for `midge
 * --test-config` (nginx -t): the configuration file was read by
 * midge_config_load() (file:line on error); here the files it names are
 * loaded as start-up would load them (TLS certificates and keys, CRLs,
 * psk_file, every password_file and acl_file of every realm, http_dir),
 * and the user to switch to must exist. Also what `midge --version` says
 * about the libraries.
 */
#include <pwd.h>
#include <stdio.h>

#include <gnutls/gnutls.h>
#include <jansson.h>
#include <microhttpd.h>
#include <sqlite3.h>
#include <uv.h>

#include "hooks/hooks_info.h"
#include "midge.h"
#include "transport/broker.h"
#include "transport/log.h"
#include "transport/security.h"
#include "transport/tls.h"
#include "transport/ws.h"

/* Each listener's TLS credentials (certificates, keys, CAs, CRL, PSK
 * keys) and WebSocket settings (http_dir), loaded and let go. */
static int preflight_listeners(const struct midge *m)
{
	int rc = 0;
	for (int i = 0; i < m->conf.n_listeners; i++) {
		const struct conf_listener *cl = &m->conf.listeners[i];
		char err[400];
		if (conf_listener_check(cl, err, sizeof(err)) < 0) {
			log_err("%s", err);
			rc = -1;
			continue;
		}
		if (cl->certfile || cl->keyfile || cl->psk_hint) {
			struct tls_creds *c = tls_creds_new(cl, m->conf.psk_file, err, sizeof(err));
			if (!c) {
				log_err("listener on port %u: %s", cl->port, err);
				rc = -1;
			}
			tls_creds_unref(c);
		}
		if (cl->websockets) {
			struct ws_conf *w = ws_conf_new(cl, m->conf.ws_headers_size, err, sizeof(err));
			if (!w) {
				log_err("listener on port %u: %s", cl->port, err);
				rc = -1;
			}
			ws_conf_unref(w);
		}
	}
	return rc;
}

int broker_preflight(struct midge *m)
{
	char err[600];
	int rc = preflight_listeners(m);
	/* every realm's password_file and acl_file, as start-up builds them */
	const struct conf_listener *order[CONF_MAX_LISTENERS];
	for (int i = 0; i < m->conf.n_listeners; i++)
		order[i] = &m->conf.listeners[i];
	struct security_set *sec = security_load(&m->conf, order, m->conf.n_listeners, err, sizeof err);
	if (!sec) {
		log_err("%s", err);
		rc = -1;
	}
	security_free(sec);
	if (m->conf.user && !getpwnam(m->conf.user)) {
		log_err("user %s does not exist", m->conf.user);
		rc = -1;
	}
	return rc;
}

void broker_print_versions(FILE *out)
{
	int zmaj = 0, zmin = 0, zpat = 0;
	hooks_zmq_version(&zmaj, &zmin, &zpat);
	/* Read from the libraries loaded now, not from the headers: a
	 * package's users want to know what actually runs. */
	fprintf(out, "midge %s\n", midge_version());
	fprintf(out, "libuv %s\n", uv_version_string());
	fprintf(out, "GnuTLS %s\n", gnutls_check_version(NULL));
	fprintf(out, "ZeroMQ %d.%d.%d\n", zmaj, zmin, zpat);
	fprintf(out, "SQLite %s\n", sqlite3_libversion());
	fprintf(out, "libmicrohttpd %s\n", MHD_get_version());
	fprintf(out, "jansson %s\n", jansson_version_str());
	/* wslay and libargon2 have no call that says their version */
#ifdef HAVE_LIBSYSTEMD
	/* libsystemd has no call that says its version: the build's. */
	fprintf(out, "libsystemd %s (sd_notify; version built against)\n", MIDGE_LIBSYSTEMD_VERSION);
#else
	fprintf(out, "libsystemd no (built without: no sd_notify)\n");
#endif
}
