/*
 * preflight.c - what start-up checks before it binds anything, for `midge
 * --test-config` (nginx -t): the configuration file was read by
 * midge_config_load() (file:line on error); here the files it names are
 * loaded as start-up would load them, and the user to switch to must
 * exist. Also what `midge --version` says about the libraries.
 */
#include <pwd.h>
#include <stdio.h>

#include <gnutls/gnutls.h>
#include <uv.h>

#include "hooks/hooks_info.h"
#include "midge.h"
#include "transport/broker.h"
#include "transport/log.h"
#include "transport/passwd.h"
#include "transport/tls.h"

/* Each TLS listener's certificates, keys and CAs, loaded and let go. */
static int preflight_tls(const struct midge *m)
{
	int rc = 0;
	for (int i = 0; i < m->conf.n_listeners; i++) {
		const struct conf_listener *cl = &m->conf.listeners[i];
		char err[400];
		if (!cl->certfile && !cl->keyfile)
			continue;
		struct tls_creds *c = tls_creds_new(cl, err, sizeof(err));
		if (!c) {
			log_err("listener on port %u: %s", cl->port, err);
			rc = -1;
		}
		tls_creds_unref(c);
	}
	return rc;
}

int broker_preflight(struct midge *m)
{
	char err[512];
	int rc = preflight_tls(m);
	if (m->conf.password_file) {
		struct passwd_db *db = passwd_load(m->conf.password_file, err, sizeof(err));
		if (!db) {
			log_err("%s", err);
			rc = -1;
		}
		passwd_free(db);
	}
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
#ifdef HAVE_LIBSYSTEMD
	/* libsystemd has no call that says its version: the build's. */
	fprintf(out, "libsystemd %s (sd_notify; version built against)\n", MIDGE_LIBSYSTEMD_VERSION);
#else
	fprintf(out, "libsystemd no (built without: no sd_notify)\n");
#endif
}
