/*
 * tls.h - GnuTLS credentials for a TLS listener and server sessions over
 * the transport's own buffers (custom push/pull: GnuTLS never touches the
 * socket). Only transport/ includes <gnutls/gnutls.h>.
 */
#ifndef MIDGE_TRANSPORT_TLS_H
#define MIDGE_TRANSPORT_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <gnutls/gnutls.h>

#include "transport/config.h"

/* Certificates, trust and priorities of one listener. Refcounted: a
 * SIGHUP reload replaces a listener's creds while sessions made with the
 * old ones keep them alive. */
struct tls_creds {
	unsigned refs;
	gnutls_certificate_credentials_t cert;
	gnutls_priority_t prio;
	bool require_certificate;
	bool use_identity_as_username;
};

/* Loads the listener's files. Returns NULL with a reason in err. */
struct tls_creds *tls_creds_new(const struct conf_listener *l, char *err, size_t errlen);
struct tls_creds *tls_creds_ref(struct tls_creds *c);
/* tls_creds_unref(NULL) does nothing. */
void tls_creds_unref(struct tls_creds *c);

/*
 * A non-blocking server session reading through pull and writing through
 * push, both given ptr. Returns 0 or -1.
 */
int tls_session_new(struct tls_creds *creds, gnutls_session_t *out, void *ptr,
		    gnutls_push_func push, gnutls_pull_func pull);

/* The common name of the verified peer certificate into buf. Returns 0,
 * or -1 when there is none. */
int tls_peer_common_name(gnutls_session_t s, char *buf, size_t len);

/* The priority string a listener uses (exposed for the tests). */
int tls_priority_string(const struct conf_listener *l, char *buf, size_t len);

#endif
