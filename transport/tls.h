/*
 * tls.h - GnuTLS credentials for a TLS listener, and the TLS connection
 * layer over the layer below it (custom push/pull: GnuTLS never touches
 * the socket). Only transport/ includes <gnutls/gnutls.h>.
 */
#ifndef MIDGE_TRANSPORT_TLS_H
#define MIDGE_TRANSPORT_TLS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <gnutls/gnutls.h>

#include "transport/config.h"

/* Where a connection's user name comes from on a listener. */
enum tls_identity {
	TLS_IDENTITY_NONE,    /* the CONNECT's */
	TLS_IDENTITY_CN,      /* use_identity_as_username: certificate CN, or the PSK identity */
	TLS_IDENTITY_SUBJECT, /* use_subject_as_username: the certificate's subject DN */
};

struct psk_db;

/* Certificates, trust, PSK keys and priorities of one listener.
 * Refcounted: a SIGHUP reload replaces a listener's creds while sessions
 * made with the old ones keep them alive. */
struct tls_creds {
	atomic_uint refs; /* sessions free theirs on I/O threads */
	gnutls_certificate_credentials_t cert; /* NULL on a PSK-only listener */
	gnutls_psk_server_credentials_t psk;   /* NULL without psk_hint */
	struct psk_db *psk_db;                 /* psk_file's identities and keys */
	gnutls_priority_t prio;
	bool verify_peer; /* a client certificate is required and verified */
	enum tls_identity identity;
};

/* Loads the listener's files (certificates, cafile/capath, crlfile, and
 * psk_file when it has psk_hint). Returns NULL with a reason in err:
 * a setting that cannot be honoured (an identity or a CRL without a CA
 * to verify client certificates with, psk_hint without psk_file, ...)
 * is an error, never a weaker listener. */
struct tls_creds *tls_creds_new(const struct conf_listener *l, const char *psk_file, char *err,
				size_t errlen);
struct tls_creds *tls_creds_ref(struct tls_creds *c);
/* tls_creds_unref(NULL) does nothing. */
void tls_creds_unref(struct tls_creds *c);

/* Called once the handshake is done when the listener takes user names
 * from TLS (enum tls_identity): name is the verified certificate's common
 * name or subject, or the PSK identity, UTF-8 without NUL. Return 0 to go
 * on, -1 to refuse the peer. */
typedef int (*tls_identity_cb)(void *owner, const char *name);

/* Called once the handshake is done when the client presented a
 * certificate the listener verified (require_certificate, or an identity
 * from certificates): subject is its subject DN as use_subject_as_username
 * writes it (NULL when it cannot be written), fingerprint the SHA-256 of
 * its DER as 64 lowercase hex digits. Return 0 to go on, -1 to refuse. */
typedef int (*tls_cert_cb)(void *owner, const char *subject, const char *fingerprint);

/*
 * The TLS connection layer (see xport.h) over `below`: a non-blocking
 * server session whose GnuTLS pull and push go through the layer below,
 * never to the socket directly. Ciphertext read ahead sits in a buffer
 * from pool while it lasts; output is encrypted as one corked record
 * batch per write and what the layer below refuses is held (queued).
 * identity and cert (either may be NULL) are called as tls_identity_cb
 * and tls_cert_cb say. Returns NULL on OOM or a GnuTLS failure.
 */
struct xport;
struct rbuf_pool;
struct xport *tls_xport_new(struct tls_creds *creds, struct xport *below, struct rbuf_pool *pool,
			    tls_identity_cb identity, tls_cert_cb cert, void *owner);

/* The priority string a listener uses (exposed for the tests). */
int tls_priority_string(const struct conf_listener *l, char *buf, size_t len);

#endif
