/*
 * tls.c - GnuTLS credentials and sessions for TLS listeners.
 */
#include "transport/tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/x509.h>

/* TLS 1.2 and 1.3 only unless midge_tls_priority says otherwise;
 * tls_version is Mosquitto's minimum version; ciphers are appended as
 * GnuTLS priority items. */
int tls_priority_string(const struct conf_listener *l, char *buf, size_t len)
{
	int n;
	if (l->priority && *l->priority)
		n = snprintf(buf, len, "%s", l->priority);
	else if (l->tls_version && strcmp(l->tls_version, "tlsv1.3") == 0)
		n = snprintf(buf, len, "NORMAL:-VERS-ALL:+VERS-TLS1.3%s%s",
			     l->ciphers ? ":" : "", l->ciphers ? l->ciphers : "");
	else
		n = snprintf(buf, len, "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2%s%s",
			     l->ciphers ? ":" : "", l->ciphers ? l->ciphers : "");
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

struct tls_creds *tls_creds_new(const struct conf_listener *l, char *err, size_t errlen)
{
	struct tls_creds *c = calloc(1, sizeof(*c));
	char prio[1024];
	const char *errpos = NULL;
	int rc;
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->refs = 1;
	c->require_certificate = l->require_certificate;
	c->use_identity_as_username = l->use_identity_as_username;
	if (!l->certfile || !l->keyfile) {
		snprintf(err, errlen, "TLS listener on port %u needs both certfile and keyfile",
			 l->port);
		goto fail;
	}
	if (gnutls_certificate_allocate_credentials(&c->cert) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	rc = gnutls_certificate_set_x509_key_file(c->cert, l->certfile, l->keyfile,
						  GNUTLS_X509_FMT_PEM);
	if (rc < 0) {
		snprintf(err, errlen, "certfile %s / keyfile %s: %s", l->certfile, l->keyfile,
			 gnutls_strerror(rc));
		goto fail;
	}
	if (l->cafile) {
		rc = gnutls_certificate_set_x509_trust_file(c->cert, l->cafile, GNUTLS_X509_FMT_PEM);
		if (rc <= 0) {
			snprintf(err, errlen, "cafile %s: %s", l->cafile,
				 rc == 0 ? "no certificate in it" : gnutls_strerror(rc));
			goto fail;
		}
	}
	if (l->capath) {
		rc = gnutls_certificate_set_x509_trust_dir(c->cert, l->capath, GNUTLS_X509_FMT_PEM);
		if (rc < 0) {
			snprintf(err, errlen, "capath %s: %s", l->capath, gnutls_strerror(rc));
			goto fail;
		}
	}
	if (l->require_certificate && !l->cafile && !l->capath) {
		snprintf(err, errlen, "require_certificate needs cafile or capath to verify with");
		goto fail;
	}
	gnutls_certificate_set_known_dh_params(c->cert, GNUTLS_SEC_PARAM_MEDIUM);
	if (tls_priority_string(l, prio, sizeof(prio)) < 0) {
		snprintf(err, errlen, "TLS priority string too long");
		goto fail;
	}
	rc = gnutls_priority_init(&c->prio, prio, &errpos);
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
	c->refs++;
	return c;
}

void tls_creds_unref(struct tls_creds *c)
{
	if (!c || --c->refs > 0)
		return;
	if (c->cert)
		gnutls_certificate_free_credentials(c->cert);
	if (c->prio)
		gnutls_priority_deinit(c->prio);
	free(c);
}

int tls_session_new(struct tls_creds *creds, gnutls_session_t *out, void *ptr,
		    gnutls_push_func push, gnutls_pull_func pull)
{
	gnutls_session_t s;
	if (gnutls_init(&s, GNUTLS_SERVER | GNUTLS_NONBLOCK) < 0)
		return -1;
	if (gnutls_priority_set(s, creds->prio) < 0 ||
	    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, creds->cert) < 0) {
		gnutls_deinit(s);
		return -1;
	}
	if (creds->require_certificate) {
		gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
		/* The handshake fails unless the chain verifies against cafile. */
		gnutls_session_set_verify_cert(s, NULL, 0);
	} else {
		gnutls_certificate_server_set_request(s, GNUTLS_CERT_IGNORE);
	}
	gnutls_transport_set_ptr(s, ptr);
	gnutls_transport_set_push_function(s, push);
	gnutls_transport_set_pull_function(s, pull);
	*out = s;
	return 0;
}

int tls_peer_common_name(gnutls_session_t s, char *buf, size_t len)
{
	unsigned n = 0;
	const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);
	gnutls_x509_crt_t crt;
	size_t size = len;
	int rc = -1;
	if (!certs || n == 0 || len == 0)
		return -1;
	if (gnutls_x509_crt_init(&crt) < 0)
		return -1;
	if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) >= 0 &&
	    gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, buf, &size) >= 0)
		rc = 0;
	gnutls_x509_crt_deinit(crt);
	return rc;
}
