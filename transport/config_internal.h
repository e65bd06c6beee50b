/*
 * config_internal.h - what the configuration's rooms share; not part of
 * config.h's contract. config.c reads files and hands each key to the
 * room that owns it:
 *
 *   config.c           the file reader, include_dir, the dispatcher, the
 *                      value parsers below, conf_init/conf_clear, conf_check
 *   config_listener.c  `listener` blocks, port, bind_address, TLS and
 *                      WebSocket keys of a listener
 *   config_security.c  allow_anonymous, password_file, acl_file,
 *                      per_listener_settings; the keys refused fail closed
 *   config_auth.c      midge_jwt_* and midge_auth_chain
 *   config_limits.c    numeric bounds and on/off switches (engine, sockets,
 *                      hooks, persistence), durations, threads
 *   config_log.c       log_dest, log_type, the hooks' endpoints and format
 *   config_persist.c   midge_persist_*, midge_history, the database path
 *   config_http.c      midge_http_* (the HTTP server)
 *
 * Every room setter has the same shape: it returns 0, 1 (accepted with a
 * warning in msg) or -1 (the reason in msg), and *handled says whether
 * key was one of its keys (0: the next room is asked).
 */
#ifndef MIDGE_TRANSPORT_CONFIG_INTERNAL_H
#define MIDGE_TRANSPORT_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transport/config.h"

/* Writes the reason into msg[0..msglen) and returns -1. */
int conf_fail(char *msg, size_t msglen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A decimal number 0..max (no sign, no blanks): 0, or -1 leaving *out. */
int conf_parse_u64(const char *v, uint64_t max, uint64_t *out);
/* "true" or "false": 0, or -1 leaving *out. */
int conf_parse_bool(const char *v, bool *out);
/* Replaces *dst with a copy of v (NULL: ""). Returns 0, or -1 on OOM
 * leaving *dst. */
int conf_set_str(char **dst, const char *v);

/* A key stored at an offset in a struct (struct conf or conf_listener). */
struct conf_field {
	const char *key;
	size_t off;
};

/* The field of base that key names in fields[0..n), or NULL. */
void *conf_field_find(void *base, const struct conf_field *fields, size_t n, const char *key);

typedef int (*conf_room_set_fn)(struct conf *c, const char *key, const char *v, char *msg,
				size_t msglen, int *handled);

/* config_listener.c */
int conf_set_listener(struct conf *c, const char *key, const char *v, char *msg, size_t msglen,
		      int *handled);
/* Frees l's strings; leaves it as conf_init() made it. */
void conf_listener_clear(struct conf_listener *l);
/* Every slot of listeners[] as conf_init() made it (nothing freed). */
void conf_listeners_reset(struct conf *c);

/* config_security.c */
int conf_set_security(struct conf *c, const char *key, const char *v, char *msg, size_t msglen,
		      int *handled);

/* config_limits.c */
int conf_set_limits(struct conf *c, const char *key, const char *v, char *msg, size_t msglen,
		    int *handled);

/* config_log.c */
int conf_set_log(struct conf *c, const char *key, const char *v, char *msg, size_t msglen,
		 int *handled);

/* config_persist.c */
int conf_set_persist(struct conf *c, const char *key, const char *v, char *msg, size_t msglen,
		     int *handled);

/* config_http.c */
int conf_set_http(struct conf *c, const char *key, const char *v, char *msg, size_t msglen,
		  int *handled);
/* Frees h's strings; leaves it with conf_init()'s defaults. */
void conf_http_clear(struct conf_http *h);

#endif
