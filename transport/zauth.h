/*
 * zauth.h - auth workers as the broker uses them (engine thread): a
 * CONNECT becomes a `connect` request (auth/zproto.c) handed to the worker
 * thread (auth/zworker.c) while the engine holds it; the answer comes
 * back through a uv_async and becomes the engine's decision, with the
 * user name, session expiry cap and ACL rules the worker gave. Decisions
 * may be remembered (midge_auth_cache_ttl); rules are kept per client id
 * while its session lives and checked locally (auth/rules.c).
 */
#ifndef MIDGE_TRANSPORT_ZAUTH_H
#define MIDGE_TRANSPORT_ZAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "midge.h"

struct midge;
struct conn;
struct auth_check;

/* With midge_auth_endpoint: binds and starts the worker thread. Returns
 * 0 (also when not configured) or -1 after logging why. */
int zauth_start(struct midge *m);
/* Stops the thread; pending CONNECTs are not answered (their connections
 * go with the broker). Safe when not started. */
void zauth_stop(struct midge *m);
/* Whether auth workers decide CONNECTs. */
bool zauth_on(const struct midge *m);

/* zauth_connect(): the workers (or the cache) deferred, now. */
#define ZAUTH_DEFERRED 0x200

/*
 * The zmq link of a CONNECT's chain: 0, a reason code, ZAUTH_DEFERRED
 * (a cached defer: the caller goes on with walk, still its own), or
 * ENGINE_AUTH_PENDING: walk (NULL or not) is held with the request; the
 * answer is given to the engine (conn_auth_done()) with walk dropped, or,
 * when the worker defers, handed to auth_check_resume(). A timeout is
 * decided by midge_auth_on_timeout, never deferred. c may be NULL (the
 * embedding API).
 */
int zauth_connect(struct midge *m, const struct midge_client *cl, const struct midge_str *user,
		  const struct midge_str *pass, struct conn *c, struct auth_check *walk);
/* A CONNECT another source of the chain let in: the rules a worker gave
 * its session before are not its any more (acl_file decides, or the
 * token's). */
void zauth_forget_rules(struct midge *m, struct engine_conn *ec, struct conn *c);
/* engine_auth.enhanced for workers (an `auth` request): a reason code
 * (0x8C without workers), or ENGINE_AUTH_PENDING; the answer goes to
 * conn_auth_step(). */
int zauth_enhanced(struct midge *m, const struct midge_client *cl, enum engine_auth_step step,
		   const struct midge_str *method, const struct midge_str *data);
/* engine_auth.connect_cancel: forgets the request of cl, if any. */
void zauth_cancel(struct midge *m, const struct midge_client *cl);

/* engine_auth.acl: when the client has rules from a worker (or is
 * asked about, "acl": "ask"), *rc is the decision about access to topic
 * at qos, retained or not, and true is returned; false: not ours
 * (acl_file decides). */
bool zauth_acl(struct midge *m, const struct midge_client *cl, const uint8_t *topic, size_t len,
	       enum engine_access access, uint8_t qos, bool retain, int *rc);
/* The connection of ec goes: its `acl` requests and fresh answers are
 * forgotten (call before engine_conn_closed). */
void zauth_acl_cancel(struct midge *m, struct engine_conn *ec);
/* ec's input was handled past the packet that waited for its answers:
 * those answers are cached now, or dropped (zauth_acl.c). */
void zauth_acl_settle(struct midge *m, struct engine_conn *ec);
/* Whether any client has rules (the engine must ask for every topic). */
bool zauth_wants_acl(const struct midge *m);

/* A reload's new keys: refused (-1 with err) when they would put a
 * password_file beside the workers. */
struct zauth_conf;
struct security_set;
int zauth_reload_check(const struct midge *m, const struct zauth_conf *nz,
		       const struct security_set *sec, char *err, size_t errlen);
/* Applies them: the endpoint, its keys, the timeout and the queue bound
 * are the thread's and stay as bound (a change is logged: restart);
 * midge_auth_on_timeout and the cache keys apply from now on. */
void zauth_reload(struct midge *m, struct zauth_conf *nz);

/* Events: a client that went may have taken its session with it. */
void zauth_event(struct midge *m, const struct midge_event *ev);
/* Once a second: rules of sessions that are gone are dropped. */
void zauth_tick(struct midge *m);

#endif
