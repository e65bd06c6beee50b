/*
 * tls.h - GnuTLS credentials for a TLS listener, and the TLS connection
 * layer over the layer below it (custom push/pull: GnuTLS never touches
 * the socket). Only transport/ includes <gnutls/gnutls.h>.
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

/* Called once the handshake is done when the listener has
 * use_identity_as_username: cn is the verified certificate's common name,
 * NULL when there is none. Return 0 to go on, -1 to refuse the peer. */
typedef int (*tls_identity_cb)(void *owner, const char *cn);

/*
 * The TLS connection layer (see xport.h) over `below`: a non-blocking
 * server session whose GnuTLS pull and push go through the layer below,
 * never to the socket directly. Ciphertext read ahead sits in a buffer
 * from pool while it lasts; output is encrypted as one corked record
 * batch per write and what the layer below refuses is held (queued).
 * identity (may be NULL) is called as tls_identity_cb says. Returns NULL
 * on OOM or a GnuTLS failure.
 */
struct xport;
struct rbuf_pool;
struct xport *tls_xport_new(struct tls_creds *creds, struct xport *below, struct rbuf_pool *pool,
			    tls_identity_cb identity, void *owner);

/* Whether the stack under top has a TLS layer whose peer identity (a
 * certificate's, or a PSK identity) became the connection's user name: the
 * identity is then the authentication. */
bool tls_xport_identity(const struct xport *top);

/* The priority string a listener uses (exposed for the tests). */
int tls_priority_string(const struct conf_listener *l, char *buf, size_t len);

#endif
