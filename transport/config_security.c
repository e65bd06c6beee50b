/*
 * config_security.c - the security keys, where Mosquitto puts them
 * (allow_anonymous, password_file, acl_file: global, or per listener with
 * per_listener_settings true), and the Mosquitto keys midge refuses
 * because ignoring them would weaken security or lose messages. The
 * authentication sources beyond password_file are config_auth.c's.
 */
#include <stdio.h>
#include <string.h>

#include "transport/config_internal.h"

/* Mosquitto keys midge refuses (fail closed): ignoring them would weaken
 * security or lose messages. Each names what midge offers instead. */
static const struct {
	const char *key; /* a trailing '_' makes a prefix */
	const char *why;
} conf_refused[] = {
	{"plugin", "midge does not load Mosquitto plugins: it checks passwords with password_file "
		   "and topics with acl_file (docs/security.md)"},
	{"auth_plugin", "midge does not load Mosquitto plugins: it checks passwords with "
			"password_file and topics with acl_file (docs/security.md)"},
	{"global_plugin", "midge does not load Mosquitto plugins (docs/security.md)"},
	{"auth_opt_", "is an option of a Mosquitto plugin, which midge does not load: use "
		      "password_file and acl_file (docs/security.md)"},
	{"plugin_opt_", "is an option of a Mosquitto plugin, which midge does not load: use "
			"password_file and acl_file (docs/security.md)"},
	{"auth_plugin_deny_special_chars", "is an option of Mosquitto plugins, which midge does "
					   "not load (docs/security.md)"},
	{"ciphers_tls1.3", "is not read by midge: restrict TLS 1.3 suites with "
			   "midge_tls_priority (a GnuTLS priority string)"},
	{NULL, NULL},
};

/*
 * The security keys, where Mosquitto puts them: allow_anonymous,
 * password_file and acl_file are global, or with per_listener_settings
 * true the open listener's (the default listener's before any `listener`
 * line). per_listener_settings must come before them, as Mosquitto
 * requires. *handled says whether key was one of them.
 */
static int conf_set_access(struct conf *c, const char *key, const char *v, char *msg,
			     size_t msglen, int *handled)
{
	bool anon = strcmp(key, "allow_anonymous") == 0;
	bool pw = strcmp(key, "password_file") == 0, acl = strcmp(key, "acl_file") == 0;
	*handled = 1;
	if (strcmp(key, "per_listener_settings") == 0) {
		bool b;
		if (conf_parse_bool(v, &b) < 0)
			return conf_fail(msg, msglen, "per_listener_settings needs true or false, not '%s'", v);
		if (b && c->security_seen)
			return conf_fail(msg, msglen,
					 "per_listener_settings must be set before any other security "
					 "setting (allow_anonymous, password_file, acl_file), as in Mosquitto");
		c->per_listener_settings = b;
		return 0;
	}
	if (strcmp(key, "allow_zero_length_clientid") == 0) {
		c->security_seen = true;
		if (c->per_listener_settings)
			return conf_fail(msg, msglen,
					 "allow_zero_length_clientid applies to every listener in midge, not "
					 "to one: with per_listener_settings true, leave it out");
		*handled = 0; /* an engine flag: conf_set_bool() */
		return 0;
	}
	if (!anon && !pw && !acl) {
		*handled = 0;
		return 0;
	}
	c->security_seen = true;
	if ((pw || acl) && !*v)
		return conf_fail(msg, msglen, "%s needs a path", key);
	if (!c->per_listener_settings) {
		if (anon) {
			c->allow_anonymous_set = true;
			if (conf_parse_bool(v, &c->engine.allow_anonymous) < 0)
				return conf_fail(msg, msglen, "allow_anonymous needs true or false, not '%s'", v);
			return 0;
		}
		return conf_set_str(pw ? &c->password_file : &c->acl_file, v);
	}
	struct conf_listener *l = c->listener_open	  ? &c->listeners[c->n_listeners - 1]
				  : c->default_listener >= 0 ? &c->listeners[c->default_listener]
							     : NULL;
	if (!l)
		return conf_fail(msg, msglen,
				 "with per_listener_settings true, %s belongs to a listener: put it "
				 "after the `listener` line it is for",
				 key);
	if (anon) {
		bool b;
		if (conf_parse_bool(v, &b) < 0)
			return conf_fail(msg, msglen, "allow_anonymous needs true or false, not '%s'", v);
		l->allow_anonymous = b;
		return 0;
	}
	return conf_set_str(pw ? &l->password_file : &l->acl_file, v);
}

/* A key midge refuses (fail closed): -1 with the reason, or 0 when key is
 * not one. */
static int conf_set_refused(struct conf *c, const char *key, char *msg, size_t msglen)
{
	const char *why = NULL;
	for (int i = 0; conf_refused[i].key; i++) {
		const char *k = conf_refused[i].key;
		size_t n = strlen(k);
		bool prefix = k[n - 1] == '_';
		if (conf_refused[i].why)
			why = conf_refused[i].why; /* a NULL reason repeats the one above */
		if (prefix ? strncmp(key, k, n) == 0 : strcmp(key, k) == 0) {
			if (strstr(k, "plugin") || strncmp(k, "auth_", 5) == 0)
				c->security_seen = true;
			return conf_fail(msg, msglen, "'%s' %s%s", key,
					 why[0] == 'i' && why[1] == 's' ? "" : "refused: ", why);
		}
	}
	return 0;
}

int conf_set_security(struct conf *c, const char *key, const char *v, char *msg, size_t msglen,
		      int *handled)
{
	int rc = conf_set_access(c, key, v, msg, msglen, handled);
	if (*handled)
		return rc;
	if (conf_set_refused(c, key, msg, msglen) < 0) {
		*handled = 1;
		return -1;
	}
	return 0;
}
