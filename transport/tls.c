/*
 * tls.c - GnuTLS for TLS listeners: the credentials of a listener
 * (certificates, client-certificate verification and CRLs, TLS-PSK keys),
 * and the TLS connection layer (xport.h) that runs a server session over
 * the layer below it. Owns every TLS record: handshake, decryption of
 * input, encryption of output in corked batches, close_notify; and the
 * identity the handshake proves (use_identity_as_username,
 * use_subject_as_username), handed up through the identity callback.
 */
#include "transport/tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/x509.h>

#include "auth/psk.h"
#include "auth/pwfile.h"
#include "codec/codec.h"
#include "transport/outq.h"
#include "transport/rbuf.h"
#include "transport/tls_name.h"
#include "transport/xport.h"

#define TLS_IOV 64

struct tls_xport {
	struct xport base; /* first: the layer is its xport */
	gnutls_session_t s;
	struct tls_creds *creds;
	struct rbuf_pool *pool;
	struct rbuf *cipher_in; /* read from below; GnuTLS has taken in_off of it */
	uint32_t in_off;
	int fd;                 /* the socket of the call in progress, for pull and push */
	struct outq cipher_out; /* records the layer below has not taken yet */
	struct outq_pos out_pos;
	tls_identity_cb identity;
	tls_cert_cb cert;
	void *owner;
	const char *below_why; /* the layer below failed inside pull or push */
	bool handshaken, bye_sent, eof;
	char why[128];
};

/* TLS 1.2 and 1.3 only unless midge_tls_priority says otherwise;
 * tls_version is Mosquitto's minimum version; ciphers are appended as
 * GnuTLS priority items; a PSK listener (psk_hint) adds the PSK key
 * exchanges, which NORMAL leaves out. */
int tls_priority_string(const struct conf_listener *l, char *buf, size_t len)
{
	int n;
	const char *psk = l->psk_hint ? ":+ECDHE-PSK:+DHE-PSK:+PSK" : "";
	if (l->priority && *l->priority)
		n = snprintf(buf, len, "%s", l->priority);
	else if (l->tls_version && strcmp(l->tls_version, "tlsv1.3") == 0)
		n = snprintf(buf, len, "NORMAL:-VERS-ALL:+VERS-TLS1.3%s%s%s", psk,
			     l->ciphers ? ":" : "", l->ciphers ? l->ciphers : "");
	else
		n = snprintf(buf, len, "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2%s%s%s", psk,
			     l->ciphers ? ":" : "", l->ciphers ? l->ciphers : "");
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* psk_file's key for the identity a client names in its handshake. The
 * session's pointer is its TLS layer. -1: unknown identity (GnuTLS
 * answers as it would to a wrong key, so identities are not revealed). */
static int tls_psk_key(gnutls_session_t s, const gnutls_datum_t *identity, gnutls_datum_t *key)
{
	const struct tls_xport *t = gnutls_session_get_ptr(s);
	uint8_t k[PSK_MAX_KEY];
	long n = t && t->creds->psk_db
			 ? psk_lookup(t->creds->psk_db, (const char *)identity->data, identity->size, k)
			 : -1;
	if (n <= 0)
		return -1;
	key->data = gnutls_malloc((size_t)n);
	if (key->data) {
		memcpy(key->data, k, (size_t)n);
		key->size = (unsigned)n;
	}
	pwfile_wipe(k, sizeof(k));
	return key->data ? 0 : -1;
}

/* The certificate side: key pair, trust, revocation. 0 or -1 with err. */
static int tls_creds_cert(struct tls_creds *c, const struct conf_listener *l, char *err,
			  size_t errlen)
{
	int rc;
	if (!l->certfile || !l->keyfile) {
		snprintf(err, errlen, "TLS listener on port %u needs both certfile and keyfile",
			 l->port);
		return -1;
	}
	if (gnutls_certificate_allocate_credentials(&c->cert) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rc = gnutls_certificate_set_x509_key_file(c->cert, l->certfile, l->keyfile,
						  GNUTLS_X509_FMT_PEM);
	if (rc < 0) {
		snprintf(err, errlen, "certfile %s / keyfile %s: %s", l->certfile, l->keyfile,
			 gnutls_strerror(rc));
		return -1;
	}
	if (l->cafile) {
		rc = gnutls_certificate_set_x509_trust_file(c->cert, l->cafile, GNUTLS_X509_FMT_PEM);
		if (rc <= 0) {
			snprintf(err, errlen, "cafile %s: %s", l->cafile,
				 rc == 0 ? "no certificate in it" : gnutls_strerror(rc));
			return -1;
		}
	}
	if (l->capath) {
		rc = gnutls_certificate_set_x509_trust_dir(c->cert, l->capath, GNUTLS_X509_FMT_PEM);
		if (rc < 0) {
			snprintf(err, errlen, "capath %s: %s", l->capath, gnutls_strerror(rc));
			return -1;
		}
	}
	const char *needs = l->require_certificate	  ? "require_certificate"
			    : l->use_identity_as_username ? "use_identity_as_username"
			    : l->use_subject_as_username  ? "use_subject_as_username"
							  : NULL;
	if (needs && !l->cafile && !l->capath) {
		snprintf(err, errlen, "%s needs cafile or capath to verify client certificates with",
			 needs);
		return -1;
	}
	if (l->crlfile) {
		if (!c->verify_peer) {
			/* without a client certificate there is nothing to
			 * check: clients the file revokes would get in */
			snprintf(err, errlen,
				 "crlfile %s: client certificates are not requested on this "
				 "listener; add require_certificate true",
				 l->crlfile);
			return -1;
		}
		/* after the CAs: GnuTLS checks each CRL's signature against them */
		rc = gnutls_certificate_set_x509_crl_file(c->cert, l->crlfile, GNUTLS_X509_FMT_PEM);
		if (rc <= 0) {
			snprintf(err, errlen, "crlfile %s: %s", l->crlfile,
				 rc == 0 ? "no CRL signed by cafile's CAs in it" : gnutls_strerror(rc));
			return -1;
		}
	}
	gnutls_certificate_set_known_dh_params(c->cert, GNUTLS_SEC_PARAM_MEDIUM);
	return 0;
}

/* The PSK side: psk_file's keys and the hint. 0 or -1 with err. */
static int tls_creds_psk(struct tls_creds *c, const struct conf_listener *l, const char *psk_file,
			 char *err, size_t errlen)
{
	if (!psk_file) {
		snprintf(err, errlen, "psk_hint on port %u needs psk_file (the identities and keys)",
			 l->port);
		return -1;
	}
	if (!(c->psk_db = psk_load(psk_file, err, errlen)))
		return -1;
	if (gnutls_psk_allocate_server_credentials(&c->psk) < 0 ||
	    gnutls_psk_set_server_credentials_hint(c->psk, l->psk_hint) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	gnutls_psk_set_server_credentials_function2(c->psk, tls_psk_key);
	return 0;
}

struct tls_creds *tls_creds_new(const struct conf_listener *l, const char *psk_file, char *err,
				size_t errlen)
{
	struct tls_creds *c = calloc(1, sizeof(*c));
	char prio[1024];
	const char *errpos = NULL;
	bool cert = l->certfile || l->keyfile || !l->psk_hint;
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	atomic_init(&c->refs, 1);
	/* use_identity_as_username wins over use_subject_as_username, as in
	 * Mosquitto */
	c->identity = l->use_identity_as_username  ? TLS_IDENTITY_CN
		      : l->use_subject_as_username ? TLS_IDENTITY_SUBJECT
						   : TLS_IDENTITY_NONE;
	/* An identity from a certificate needs one, verified. */
	c->verify_peer = cert && (l->require_certificate || c->identity != TLS_IDENTITY_NONE);
	if (!cert && (l->require_certificate || l->cafile || l->capath || l->crlfile ||
		      c->identity == TLS_IDENTITY_SUBJECT)) {
		snprintf(err, errlen,
			 "listener on port %u has psk_hint and no certfile/keyfile: "
			 "require_certificate, cafile, capath, crlfile and use_subject_as_username "
			 "need certificates (use_identity_as_username takes the PSK identity)",
			 l->port);
		goto fail;
	}
	if (cert && tls_creds_cert(c, l, err, errlen) < 0)
		goto fail;
	if (l->psk_hint && tls_creds_psk(c, l, psk_file, err, errlen) < 0)
		goto fail;
	if (tls_priority_string(l, prio, sizeof(prio)) < 0) {
		snprintf(err, errlen, "TLS priority string too long");
		goto fail;
	}
	int rc = gnutls_priority_init(&c->prio, prio, &errpos);
	if (rc < 0) {
		snprintf(err, errlen, "TLS priority '%s' invalid near '%s': %s", prio,
			 errpos ? errpos : "", gnutls_strerror(rc));
		goto fail;
	}
	return c;
fail:
	tls_creds_unref(c);
	return NULL;
}

struct tls_creds *tls_creds_ref(struct tls_creds *c)
{
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	return c;
}

void tls_creds_unref(struct tls_creds *c)
{
	if (!c || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) > 1)
		return;
	if (c->cert)
		gnutls_certificate_free_credentials(c->cert);
	if (c->psk)
		gnutls_psk_free_server_credentials(c->psk);
	psk_unref(c->psk_db);
	if (c->prio)
		gnutls_priority_deinit(c->prio);
	free(c);
}

static int tls_session_new(struct tls_creds *creds, gnutls_session_t *out, void *ptr,
			   gnutls_push_func push, gnutls_pull_func pull)
{
	gnutls_session_t s;
	if (gnutls_init(&s, GNUTLS_SERVER | GNUTLS_NONBLOCK) < 0)
		return -1;
	if (gnutls_priority_set(s, creds->prio) < 0 ||
	    (creds->cert && gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, creds->cert) < 0) ||
	    (creds->psk && gnutls_credentials_set(s, GNUTLS_CRD_PSK, creds->psk) < 0)) {
		gnutls_deinit(s);
		return -1;
	}
	if (creds->verify_peer) {
		gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
		/* The handshake fails unless the chain verifies against cafile
		 * (and no crlfile revokes it). */
		gnutls_session_set_verify_cert(s, NULL, 0);
	} else {
		gnutls_certificate_server_set_request(s, GNUTLS_CERT_IGNORE);
	}
	gnutls_session_set_ptr(s, ptr);
	gnutls_transport_set_ptr(s, ptr);
	gnutls_transport_set_push_function(s, push);
	gnutls_transport_set_pull_function(s, pull);
	*out = s;
	return 0;
}

/*
 * The user name the handshake gives (creds->identity) into buf: the PSK
 * identity when the session used a PSK, else the verified certificate's
 * common name (the first, as Mosquitto takes it) or subject. UTF-8 without
 * NUL, as an MQTT user name must be. 0, or -1 when there is none.
 */
static int tls_peer_identity(gnutls_session_t s, enum tls_identity how, char *buf, size_t len)
{
	size_t n = 0;
	int rc = -1;
	if (gnutls_auth_get_type(s) == GNUTLS_CRD_PSK) {
		gnutls_datum_t id;
		if (how != TLS_IDENTITY_CN || gnutls_psk_server_get_username2(s, &id) < 0 ||
		    id.size >= len)
			return -1;
		memcpy(buf, id.data, id.size);
		buf[id.size] = '\0';
		n = id.size;
		rc = 0;
	} else {
		unsigned count = 0;
		const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &count);
		gnutls_x509_crt_t crt;
		if (!certs || count == 0 || gnutls_x509_crt_init(&crt) < 0)
			return -1;
		if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) >= 0) {
			if (how == TLS_IDENTITY_SUBJECT) {
				long got = tls_name_subject(crt, buf, len);
				rc = got > 0 ? 0 : -1;
				n = got > 0 ? (size_t)got : 0;
			} else {
				n = len;
				rc = gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0,
								   buf, &n) < 0 ? -1 : 0;
			}
		}
		gnutls_x509_crt_deinit(crt);
	}
	/* a NUL inside would make the name another one */
	if (rc < 0 || n == 0 || strlen(buf) != n || !codec_utf8_valid((const uint8_t *)buf, n))
		return -1;
	return 0;
}

/*
 * Reports the verified client certificate of s through t->cert: its
 * subject and SHA-256 fingerprint (the auth workers' tls_subject and
 * tls_fingerprint). A session without one (PSK, no certificate asked)
 * reports nothing. 0, or -1 when the callback refuses or memory ran out.
 */
static int tls_report_cert(struct tls_xport *t)
{
	unsigned count = 0;
	const gnutls_datum_t *certs = gnutls_certificate_get_peers(t->s, &count);
	if (gnutls_auth_get_type(t->s) != GNUTLS_CRD_CERTIFICATE || !certs || count == 0)
		return 0;
	uint8_t digest[32];
	size_t dlen = sizeof digest;
	char hex[65], subject[4096];
	if (gnutls_fingerprint(GNUTLS_DIG_SHA256, &certs[0], digest, &dlen) < 0 || dlen != 32)
		return -1;
	for (size_t i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
	gnutls_x509_crt_t crt;
	bool have = false;
	if (gnutls_x509_crt_init(&crt) < 0)
		return -1;
	if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) >= 0) {
		long n = tls_name_subject(crt, subject, sizeof subject);
		/* the workers get UTF-8 text without NUL, or null */
		have = n > 0 && strlen(subject) == (size_t)n &&
		       codec_utf8_valid((const uint8_t *)subject, (size_t)n);
	}
	gnutls_x509_crt_deinit(crt);
	return t->cert(t->owner, have ? subject : NULL, hex);
}

/* ---- the TLS connection layer ------------------------------------------- */

/* GnuTLS wants ciphertext: what was read ahead, else one read of the
 * layer below into a pooled buffer (one system call per buffer, not per
 * record). */
static ssize_t tls_pull(gnutls_transport_ptr_t ptr, void *data, size_t len)
{
	struct tls_xport *t = ptr;
	struct rbuf *b = t->cipher_in;
	if (!b || t->in_off == b->len) {
		if (b)
			b->len = t->in_off = 0;
		if (rbuf_reserve(t->pool, &t->cipher_in, 0) < 0) {
			gnutls_transport_set_errno(t->s, ENOMEM);
			return -1;
		}
		b = t->cipher_in;
		struct xport *below = t->base.below;
		ssize_t n = below->ops->read(below, t->fd, b->data, b->cap, &t->below_why);
		if (n == 0) {
			t->eof = true;
			return 0;
		}
		if (n < 0) {
			gnutls_transport_set_errno(t->s, n == XPORT_AGAIN ? EAGAIN : ECONNRESET);
			return -1;
		}
		b->len = (uint32_t)n;
	}
	size_t avail = b->len - t->in_off;
	if (len > avail)
		len = avail;
	memcpy(data, b->data + t->in_off, len);
	t->in_off += (uint32_t)len;
	return (ssize_t)len;
}

/* GnuTLS has records to send: they queue here and go down on flush, so
 * a corked batch costs one write below. */
static ssize_t tls_push(gnutls_transport_ptr_t ptr, const void *data, size_t len)
{
	struct tls_xport *t = ptr;
	if (outq_copy(&t->cipher_out, data, len) < 0) {
		gnutls_transport_set_errno(t->s, ENOMEM);
		return -1;
	}
	return (ssize_t)len;
}

/* An idle TLS connection holds no input buffer. */
static void tls_input_release(struct tls_xport *t)
{
	if (t->cipher_in && t->in_off == t->cipher_in->len) {
		rbuf_put(t->pool, t->cipher_in);
		t->cipher_in = NULL;
		t->in_off = 0;
	}
}

/*
 * What a GnuTLS failure rc means for the caller: 1 to retry (a warning),
 * 0 for the end of the stream (the peer closed, with or without
 * close_notify), XPORT_AGAIN, or the error with *why.
 */
static ssize_t tls_result(struct tls_xport *t, int rc, const char *what, const char **why)
{
	if (t->eof)
		return 0;
	if (t->below_why) {
		*why = t->below_why;
		return XPORT_FAIL;
	}
	if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED)
		return XPORT_AGAIN;
	if (!gnutls_error_is_fatal(rc))
		return 1;
	snprintf(t->why, sizeof(t->why), "%s: %s", what, gnutls_strerror(rc));
	*why = t->why;
	return XPORT_REFUSED;
}

/* 1 once the handshake is done (and the identity accepted), else what
 * tls_read returns. */
static ssize_t tls_handshake(struct tls_xport *t, const char **why)
{
	int rc = gnutls_handshake(t->s);
	if (rc < 0) {
		ssize_t r = tls_result(t, rc, "TLS handshake failed", why);
		return r == 1 ? XPORT_AGAIN : r; /* a warning: wait for more */
	}
	t->handshaken = true;
	/* only a certificate the handshake verified says who the client is */
	if (t->cert && t->creds->verify_peer && tls_report_cert(t) < 0) {
		*why = "cannot report the client certificate";
		return XPORT_REFUSED;
	}
	if (t->creds->identity != TLS_IDENTITY_NONE && t->identity) {
		char name[4096];
		bool have = tls_peer_identity(t->s, t->creds->identity, name, sizeof(name)) == 0;
		if (!have || t->identity(t->owner, name) < 0) {
			*why = t->creds->identity == TLS_IDENTITY_SUBJECT
				       ? "no usable certificate subject for use_subject_as_username"
				       : "no usable certificate common name or PSK identity for "
					 "use_identity_as_username";
			return XPORT_REFUSED;
		}
	}
	return 1;
}

static ssize_t tls_read(struct xport *x, int fd, uint8_t *buf, size_t len, const char **why)
{
	struct tls_xport *t = (struct tls_xport *)x;
	ssize_t r = 1;
	t->fd = fd;
	t->below_why = NULL;
	if (!t->handshaken)
		r = tls_handshake(t, why);
	while (r == 1) {
		ssize_t n = gnutls_record_recv(t->s, buf, len);
		if (n >= 0) {
			r = n;
			break;
		}
		r = tls_result(t, (int)n, "TLS error", why);
	}
	tls_input_release(t);
	return r;
}

static int tls_flush(struct xport *x, int fd, const char **why)
{
	struct tls_xport *t = (struct tls_xport *)x;
	struct xport *below = x->below;
	struct iovec iov[TLS_IOV];
	while (!outq_done(&t->cipher_out, t->out_pos)) {
		size_t total;
		int cnt = outq_iov(&t->cipher_out, t->out_pos, iov, TLS_IOV, &total);
		ssize_t n = below->ops->writev(below, fd, iov, cnt, why);
		if (n == XPORT_AGAIN)
			return 0;
		if (n < 0)
			return (int)n;
		outq_advance(&t->cipher_out, &t->out_pos, (size_t)n);
		if ((size_t)n < total)
			return 0; /* full: writing again now would only get EAGAIN */
	}
	outq_reset(&t->cipher_out, true);
	t->out_pos.seg = t->out_pos.off = 0;
	return below->ops->flush(below, fd, why);
}

/* Encrypts all of iov as one corked batch (as few records as possible),
 * then writes the records down as far as the layer below takes them. */
static ssize_t tls_writev(struct xport *x, int fd, const struct iovec *iov, int cnt,
			  const char **why)
{
	struct tls_xport *t = (struct tls_xport *)x;
	size_t total = 0;
	int rc = 0;
	if (!t->handshaken) {
		*why = "TLS output before the handshake";
		return XPORT_FAIL;
	}
	t->fd = fd;
	gnutls_record_cork(t->s);
	for (int i = 0; i < cnt && rc >= 0; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t left = iov[i].iov_len;
		while (left > 0) {
			ssize_t n = gnutls_record_send(t->s, p, left);
			if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
				continue;
			if (n < 0) {
				rc = (int)n;
				break;
			}
			p += n;
			left -= (size_t)n;
		}
		total += iov[i].iov_len;
	}
	if (rc >= 0) {
		do
			rc = gnutls_record_uncork(t->s, GNUTLS_RECORD_WAIT);
		while (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED);
	}
	if (rc < 0) {
		snprintf(t->why, sizeof(t->why), "TLS send error: %s", gnutls_strerror(rc));
		*why = t->why;
		return XPORT_FAIL;
	}
	rc = tls_flush(x, fd, why);
	return rc < 0 ? rc : (ssize_t)total;
}

static bool tls_pending(const struct xport *x)
{
	const struct tls_xport *t = (const struct tls_xport *)x;
	return (t->cipher_in && t->in_off < t->cipher_in->len) ||
	       gnutls_record_check_pending(t->s) > 0;
}

static size_t tls_queued(const struct xport *x)
{
	const struct tls_xport *t = (const struct tls_xport *)x;
	return (size_t)t->cipher_out.bytes + x->below->ops->queued(x->below);
}

/* close_notify where it is cheap (the handshake is done; GnuTLS writes it
 * into the queue, so this never waits for the peer), then down. */
static int tls_shutdown(struct xport *x, int fd, const char **why)
{
	struct tls_xport *t = (struct tls_xport *)x;
	t->fd = fd;
	if (t->handshaken && !t->bye_sent) {
		t->bye_sent = true;
		gnutls_bye(t->s, GNUTLS_SHUT_WR);
	}
	int rc = tls_flush(x, fd, why);
	if (rc != 1)
		return rc;
	return x->below->ops->shutdown(x->below, fd, why);
}

static void tls_free(struct xport *x)
{
	struct tls_xport *t = (struct tls_xport *)x;
	if (t->s)
		gnutls_deinit(t->s);
	tls_creds_unref(t->creds);
	rbuf_put(t->pool, t->cipher_in);
	outq_free(&t->cipher_out);
	free(t);
}

static const struct xport_ops tls_ops = {
	.name = "tls",
	.read = tls_read,
	.writev = tls_writev,
	.pending = tls_pending,
	.queued = tls_queued,
	.flush = tls_flush,
	.shutdown = tls_shutdown,
	.free = tls_free,
};

struct xport *tls_xport_new(struct tls_creds *creds, struct xport *below, struct rbuf_pool *pool,
			    tls_identity_cb identity, tls_cert_cb cert, void *owner)
{
	struct tls_xport *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->base.ops = &tls_ops;
	t->base.below = below;
	t->creds = tls_creds_ref(creds);
	t->pool = pool;
	t->identity = identity;
	t->cert = cert;
	t->owner = owner;
	if (tls_session_new(creds, &t->s, t, tls_push, tls_pull) < 0) {
		t->s = NULL;
		tls_free(&t->base);
		return NULL;
	}
	return &t->base;
}
