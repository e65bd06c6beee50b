/*
 * proxy.h - the PROXY protocol layer (see xport.h) at the bottom of a
 * listener's stack, over the socket: it reads the header a load balancer
 * sends first (codec/proxy.h), refuses the connection when it is missing
 * or malformed, and reports the client's real address up through a
 * callback given at creation. After the header it passes everything
 * through. Self-contained: it touches no broker state.
 */
#ifndef MIDGE_TRANSPORT_PROXY_H
#define MIDGE_TRANSPORT_PROXY_H

#include <stdbool.h>
#include <stdint.h>

#include "codec/proxy.h"

/* What the listener asks of the header. */
struct proxy_opts {
	int version;       /* enable_proxy_protocol: 1 or 2 */
	bool require_tls;  /* proxy_protocol_v2_require_tls */
	bool require_cert; /* require_certificate on a listener without TLS of its own */
	bool identity;     /* use_identity_as_username likewise: the certificate's CN is the user */
	bool cert;         /* the auth workers hear a verified certificate's CN */
};

/* The header arrived: pi is the client as the proxy saw it; cn is its
 * certificate's common name (NUL-terminated) when opts.identity asked
 * for it, else NULL; cert_cn the same when opts.cert asked for it and
 * the proxy verified the certificate, else NULL. Return 0 to go on, -1
 * to refuse the connection. */
typedef int (*proxy_peer_cb)(void *owner, const struct proxy_info *pi, const char *cn,
			     const char *cert_cn);

/* NULL on OOM. */
struct xport;
struct rbuf_pool;
struct xport *proxy_xport_new(const struct proxy_opts *opts, struct xport *below,
			      struct rbuf_pool *pool, proxy_peer_cb peer, void *owner);

#endif
