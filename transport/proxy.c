/*
 * proxy.c - the PROXY protocol layer: reads the header (versions 1 and 2,
 * parsed by codec/proxy.c) before anything else, applies the listener's
 * demands on it, hands the real peer up through the callback, then
 * passes every call through. Bytes read behind the header (the client's
 * own first bytes) are served before the layer below is read again.
 */
#include "transport/proxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/rbuf.h"
#include "transport/xport.h"

struct proxy_xport {
	struct xport base; /* first: the layer is its xport */
	struct proxy_opts opts;
	struct rbuf_pool *pool;
	struct rbuf *buf; /* the header, then what followed it */
	uint32_t off;     /* once done: how much of buf was served */
	proxy_peer_cb peer;
	void *owner;
	bool done;
	char why[160];
};

static ssize_t proxy_refuse(struct proxy_xport *p, const char *what, const char **why)
{
	snprintf(p->why, sizeof(p->why), "%s", what);
	*why = p->why;
	return XPORT_REFUSED;
}

/* The complete header (hl bytes of buf): the listener's demands, then
 * the callback. */
static ssize_t proxy_accept(struct proxy_xport *p, const struct proxy_info *pi, int hl,
			    const char **why)
{
	char cn[256];
	const char *name = NULL, *cert = NULL;
	bool have_cn = pi->cn_len > 0 && pi->cn_len < sizeof(cn) &&
		       !memchr(p->buf->data + pi->cn_off, 0, pi->cn_len);
	if (have_cn) {
		memcpy(cn, p->buf->data + pi->cn_off, pi->cn_len);
		cn[pi->cn_len] = '\0';
	}
	if (p->opts.require_tls && !pi->tls)
		return proxy_refuse(p, "PROXY header: the client did not use TLS "
				       "(proxy_protocol_v2_require_tls)", why);
	if (p->opts.require_cert && !pi->cert_verified)
		return proxy_refuse(p, "PROXY header: no verified client certificate "
				       "(require_certificate)", why);
	if (p->opts.identity) {
		if (!have_cn)
			return proxy_refuse(p, "PROXY header: no certificate common name "
					       "(use_identity_as_username)", why);
		name = cn;
	}
	if (p->opts.cert && pi->cert_verified && have_cn)
		cert = cn;
	if (p->peer(p->owner, pi, name, cert) < 0)
		return proxy_refuse(p, "PROXY header refused", why);
	p->done = true;
	p->off = (uint32_t)hl;
	return 1;
}

/* Reads until the header is complete. 1 then, else what read returns. */
static ssize_t proxy_header(struct proxy_xport *p, int fd, const char **why)
{
	struct xport *below = p->base.below;
	uint32_t max = p->opts.version == 1 ? PROXY_V1_MAX : PROXY_V2_MAX;
	for (;;) {
		if (rbuf_reserve(p->pool, &p->buf, max) < 0) {
			*why = "out of memory";
			return XPORT_FAIL;
		}
		struct rbuf *b = p->buf;
		ssize_t n = below->ops->read(below, fd, b->data + b->len, b->cap - b->len, why);
		if (n <= 0)
			return n;
		b->len += (uint32_t)n;
		struct proxy_info pi;
		int hl = proxy_parse(b->data, b->len, p->opts.version, &pi);
		if (hl > 0)
			return proxy_accept(p, &pi, hl, why);
		if (hl < 0) {
			snprintf(p->why, sizeof(p->why), "%s (enable_proxy_protocol %d)", pi.why,
				 p->opts.version);
			*why = p->why;
			return XPORT_REFUSED;
		}
	}
}

static ssize_t proxy_read(struct xport *x, int fd, uint8_t *buf, size_t len, const char **why)
{
	struct proxy_xport *p = (struct proxy_xport *)x;
	if (!p->done) {
		ssize_t r = proxy_header(p, fd, why);
		if (r != 1)
			return r;
	}
	if (p->buf) {
		size_t avail = p->buf->len - p->off;
		if (avail > 0) {
			if (len > avail)
				len = avail;
			memcpy(buf, p->buf->data + p->off, len);
			p->off += (uint32_t)len;
		}
		if (p->off == p->buf->len) {
			rbuf_put(p->pool, p->buf);
			p->buf = NULL;
		}
		if (avail > 0)
			return (ssize_t)len;
	}
	return x->below->ops->read(x->below, fd, buf, len, why);
}

static ssize_t proxy_writev(struct xport *x, int fd, const struct iovec *iov, int cnt,
			    const char **why)
{
	return x->below->ops->writev(x->below, fd, iov, cnt, why);
}

static bool proxy_pending(const struct xport *x)
{
	const struct proxy_xport *p = (const struct proxy_xport *)x;
	return (p->done && p->buf) || x->below->ops->pending(x->below);
}

static size_t proxy_queued(const struct xport *x)
{
	return x->below->ops->queued(x->below);
}

static int proxy_flush(struct xport *x, int fd, const char **why)
{
	return x->below->ops->flush(x->below, fd, why);
}

static int proxy_shutdown(struct xport *x, int fd, const char **why)
{
	return x->below->ops->shutdown(x->below, fd, why);
}

static void proxy_free(struct xport *x)
{
	struct proxy_xport *p = (struct proxy_xport *)x;
	rbuf_put(p->pool, p->buf);
	free(p);
}

static const struct xport_ops proxy_ops = {
	.name = "proxy",
	.read = proxy_read,
	.writev = proxy_writev,
	.pending = proxy_pending,
	.queued = proxy_queued,
	.flush = proxy_flush,
	.shutdown = proxy_shutdown,
	.free = proxy_free,
};

struct xport *proxy_xport_new(const struct proxy_opts *opts, struct xport *below,
			      struct rbuf_pool *pool, proxy_peer_cb peer, void *owner)
{
	struct proxy_xport *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->base.ops = &proxy_ops;
	p->base.below = below;
	p->opts = *opts;
	p->pool = pool;
	p->peer = peer;
	p->owner = owner;
	return &p->base;
}
