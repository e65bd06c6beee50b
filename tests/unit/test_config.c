/*
 * test_config.c - the Mosquitto-syntax configuration parser, the TLS
 * priority string, log escaping (password files: test_passwd.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/runner.h"
#include "transport/config.h"
#include "transport/log.h"
#include "transport/tls.h"

static char tmp_path[64];
static int warnings;
static char last_warning[640];

static void on_warn(void *user, const char *text)
{
	(void)user;
	warnings++;
	snprintf(last_warning, sizeof(last_warning), "%s", text);
}

/* Writes text to a temporary file and loads it into c. */
static int load_text(struct conf *c, const char *text, char *err, size_t errlen)
{
	snprintf(tmp_path, sizeof(tmp_path), "/tmp/midge-test-conf-XXXXXX");
	int fd = mkstemp(tmp_path);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	warnings = 0;
	last_warning[0] = '\0';
	int rc = conf_load(c, tmp_path, on_warn, NULL, err, errlen);
	unlink(tmp_path);
	return rc;
}

/* conf_init() and load_text() that must succeed: the parser's message is
 * printed before the test stops, so a failure says which line it hated. */
static void load_ok(struct conf *c, const char *text)
{
	char err[256];
	conf_init(c);
	if (load_text(c, text, err, sizeof(err)) != 0) {
		fprintf(stderr, "conf_load: %s\n", err);
		CU_FAIL_FATAL("configuration text refused");
	}
}

static void test_defaults(void)
{
	struct conf c;
	conf_init(&c);
	CU_ASSERT_EQUAL(c.n_listeners, 0);
	CU_ASSERT_EQUAL(c.sys_interval, 10);
	CU_ASSERT_EQUAL(c.max_connections, -1);
	CU_ASSERT_TRUE(c.engine.allow_anonymous);
	CU_ASSERT_FALSE(c.hooks_off);
	conf_clear(&c);
}

static void test_listener_blocks(void)
{
	struct conf c;
	char err[256];
	conf_init(&c);
	int rc = load_text(&c,
			   "# comment\n"
			   "\n"
			   "listener 1883 127.0.0.1\n"
			   "max_connections 10\n"
			   "listener 8883\n"
			   "  certfile /etc/c.pem  \n"
			   "keyfile /etc/k.pem\n"
			   "cafile /etc/ca.pem\n"
			   "require_certificate true\n"
			   "use_identity_as_username true\n"
			   "tls_version tlsv1.3\n"
			   "allow_anonymous true\n",
			   err, sizeof(err));
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	CU_ASSERT_EQUAL_FATAL(c.n_listeners, 2);
	CU_ASSERT_STRING_EQUAL(c.listeners[0].host, "127.0.0.1");
	CU_ASSERT_EQUAL(c.listeners[0].port, 1883);
	CU_ASSERT_EQUAL(c.listeners[0].max_connections, 10);
	CU_ASSERT_PTR_NULL(c.listeners[0].certfile);
	CU_ASSERT_PTR_NULL(c.listeners[1].host);
	CU_ASSERT_EQUAL(c.listeners[1].port, 8883);
	CU_ASSERT_STRING_EQUAL(c.listeners[1].certfile, "/etc/c.pem");
	CU_ASSERT_STRING_EQUAL(c.listeners[1].keyfile, "/etc/k.pem");
	CU_ASSERT_STRING_EQUAL(c.listeners[1].cafile, "/etc/ca.pem");
	CU_ASSERT_TRUE(c.listeners[1].require_certificate);
	CU_ASSERT_TRUE(c.listeners[1].use_identity_as_username);
	CU_ASSERT_TRUE(c.allow_anonymous_set);
	CU_ASSERT_EQUAL(c.max_connections, -1);
	conf_clear(&c);
}

static void test_default_listener_port(void)
{
	struct conf c;
	load_ok(&c, "port 1884\nmax_connections 5\nlistener 9000\n");
	CU_ASSERT_EQUAL_FATAL(c.n_listeners, 2);
	CU_ASSERT_EQUAL(c.listeners[c.default_listener].port, 1884);
	CU_ASSERT_EQUAL(c.listeners[c.default_listener].max_connections, 5);
	CU_ASSERT_EQUAL(c.max_connections, 5);
	conf_clear(&c);
}

static void test_message_size_and_queue_zero(void)
{
	struct conf c;
	load_ok(&c, "max_packet_size 49152\nmessage_size_limit 32768\nmax_queued_messages 0\n");
	/* a payload bound, not a packet bound: max_packet_size stays */
	CU_ASSERT_EQUAL(c.engine.max_packet_size, 49152);
	CU_ASSERT_EQUAL(c.engine.message_size_limit, 32768);
	/* 0 ("unlimited") is accepted with a word on the bound it means */
	CU_ASSERT_EQUAL(c.engine.max_queued_messages, 0);
	CU_ASSERT_EQUAL(warnings, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(last_warning, "1048576"));
	conf_clear(&c);
}

static void test_engine_limits(void)
{
	struct conf c;
	load_ok(&c,
		"max_inflight_messages 7\n"
		"max_queued_messages 123\n"
		"max_queued_bytes 4096\n"
		"max_inflight_bytes 65536\n"
		"max_packet_size 2000\n"
		"max_keepalive 300\n"
		"queue_qos0_messages true\n"
		"retain_available false\n"
		"allow_zero_length_clientid false\n"
		"persistent_client_expiration 2d\n"
		"sys_interval 0\n");
	CU_ASSERT_EQUAL(c.engine.max_inflight, 7);
	CU_ASSERT_EQUAL(c.engine.max_queued_messages, 123);
	CU_ASSERT_EQUAL(c.engine.max_queued_bytes, 4096);
	CU_ASSERT_EQUAL(c.engine.max_inflight_bytes, 65536);
	CU_ASSERT_EQUAL(c.engine.max_packet_size, 2000);
	CU_ASSERT_EQUAL(c.engine.max_keepalive, 300);
	CU_ASSERT_TRUE(c.engine.queue_qos0_messages);
	CU_ASSERT_FALSE(c.engine.retain_available);
	CU_ASSERT_FALSE(c.engine.allow_zero_length_clientid);
	CU_ASSERT_EQUAL(c.engine.persistent_client_expiration, 2 * 86400);
	CU_ASSERT_EQUAL(c.sys_interval, 0);
	conf_clear(&c);
}

static void test_unknown_key_names_file_and_line(void)
{
	struct conf c;
	char err[256];
	conf_init(&c);
	CU_ASSERT_EQUAL(load_text(&c, "port 1883\n\nfrobnicate 3\n", err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, ":3: "));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "frobnicate"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, tmp_path));
	conf_clear(&c);
}

static void test_malformed_values(void)
{
	static const char *const bad[] = {
		"allow_anonymous yes\n", "port 70000\n",       "max_inflight_messages -3\n",
		"listener\n",            "listener abc\n",     "persistent_client_expiration 3x\n",
		"log_type loud\n",       "log_dest file\n",    "tls_version tlsv1\n",
		"max_qos 3\n",           "protocol http\n",      "require_certificate 1\n",
		NULL,
	};
	for (int i = 0; bad[i]; i++) {
		struct conf c;
		char err[256];
		conf_init(&c);
		int rc = load_text(&c, bad[i], err, sizeof(err));
		CU_ASSERT_EQUAL(rc, -1);
		if (rc != -1)
			fprintf(stderr, "accepted: %s", bad[i]);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, ":1: "));
		conf_clear(&c);
	}
}

static void test_mosquitto_only_keys_warn(void)
{
	struct conf c;
	load_ok(&c, "acl_file /etc/acl\npersistence false\nauto_id_prefix a-\n");
	CU_ASSERT_EQUAL(warnings, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(last_warning, ":3: "));
	CU_ASSERT_PTR_NOT_NULL(strstr(last_warning, "auto_id_prefix"));
	CU_ASSERT_STRING_EQUAL(c.acl_file, "/etc/acl");
	conf_clear(&c);
}

static void test_websockets_proxy_unix(void)
{
	struct conf c;
	load_ok(&c, "listener 1883\n"
		    "listener 8080 127.0.0.1\n"
		    "protocol websockets\n"
		    "http_dir /srv/www\n"
		    "midge_websockets_path /mqtt\n"
		    "enable_proxy_protocol 2\n"
		    "proxy_protocol_v2_require_tls true\n"
		    "listener 0 /run/midge.sock\n"
		    "enable_proxy_protocol 1\n"
		    "listener 0 127.0.0.1\n"
		    "websockets_headers_size 8192\n");
	CU_ASSERT_EQUAL_FATAL(c.n_listeners, 4);
	CU_ASSERT_FALSE(c.listeners[0].websockets);
	CU_ASSERT_TRUE(c.listeners[1].websockets);
	CU_ASSERT_STRING_EQUAL(c.listeners[1].http_dir, "/srv/www");
	CU_ASSERT_STRING_EQUAL(c.listeners[1].ws_path, "/mqtt");
	CU_ASSERT_EQUAL(c.listeners[1].proxy_protocol, 2);
	CU_ASSERT_TRUE(c.listeners[1].proxy_require_tls);
	CU_ASSERT_STRING_EQUAL(c.listeners[2].unix_path, "/run/midge.sock");
	CU_ASSERT_PTR_NULL(c.listeners[2].host);
	CU_ASSERT_EQUAL(c.listeners[2].proxy_protocol, 1);
	/* Port 0 with an address is a TCP port the kernel picks. */
	CU_ASSERT_PTR_NULL(c.listeners[3].unix_path);
	CU_ASSERT_STRING_EQUAL(c.listeners[3].host, "127.0.0.1");
	CU_ASSERT_EQUAL(c.ws_headers_size, 8192);
	conf_clear(&c);
}

/* Settings that cannot be honoured together fail with the listener's line. */
static void test_listener_conflicts(void)
{
	static const char *const bad[] = {
		"listener 1\nhttp_dir /srv\n",
		"listener 1\nmidge_websockets_path /mqtt\n",
		"listener 1\nprotocol websockets\nmidge_websockets_path mqtt\n",
		"listener 1\nenable_proxy_protocol 1\nproxy_protocol_v2_require_tls true\n",
		"listener 1\nrequire_certificate true\n",
		"listener 1\nenable_proxy_protocol 1\nuse_identity_as_username true\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct conf c;
		char err[512];
		conf_init(&c);
		CU_ASSERT_EQUAL(load_text(&c, bad[i], err, sizeof(err)), -1);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, ":1: listener on port 1: "));
		conf_clear(&c);
	}
	struct conf c;
	char err[512];
	conf_init(&c);
	CU_ASSERT_EQUAL(load_text(&c, "listener 1\nprotocol http\n", err, sizeof(err)), -1);
	CU_ASSERT_EQUAL(load_text(&c, "listener 1\nenable_proxy_protocol 3\n", err, sizeof(err)), -1);
	conf_clear(&c);
	/* Behind a proxy that terminates TLS, version 2 vouches for the
	 * certificate. */
	load_ok(&c, "listener 1\nenable_proxy_protocol 2\nrequire_certificate true\n"
		    "use_identity_as_username true\n");
	conf_clear(&c);
}

/* Fail closed: what midge cannot honour stops start-up at its line, and
 * the message says what midge offers instead. */
static void test_refused_keys(void)
{
	static const struct {
		const char *text;
		const char *says;
	} refused[] = {
		{"plugin /usr/lib/mosquitto_dynamic_security.so\n", "password_file and topics with acl_file"},
		{"auth_plugin /x.so\n", "does not load Mosquitto plugins"},
		{"auth_opt_backend mysql\n", "use password_file and acl_file"},
		{"plugin_opt_db x\n", "use password_file and acl_file"},
		{"connection b1\n", "connection b1 has no address"},
		{"address 10.0.0.1:1883\n", "put it after a connection line"},
		{"topic # both 0\n", "put it after a connection line"},
		{"connection b1\naddress h\ntopic #\nlocal_username u\n", "publishes locally as the broker"},
		{"connection b1\naddress h\ntopic #\nbridge_cafile /x\nbridge_insecure maybe\n",
		 "bridge_insecure needs true or false"},
		{"mount_point a/+/\n", "without + or #"},
		{"ciphers_tls1.3 TLS_AES_128_GCM_SHA256\n", "midge_tls_priority"},
		{"password_file /p\nper_listener_settings true\n", "must be set before"},
		{"per_listener_settings true\nacl_file /a\n", "put it after the `listener`"},
		{"per_listener_settings true\nlistener 1883\nallow_zero_length_clientid false\n",
		 "applies to every listener"},
		{"accept_protocol_versions 4,6\n", "needs a list of 3, 4 and 5"},
		{"include_dir /nonexistent-midge-dir\n", "cannot open"},
		{NULL, NULL},
	};
	for (int i = 0; refused[i].text; i++) {
		struct conf c;
		char err[512];
		conf_init(&c);
		int rc = load_text(&c, refused[i].text, err, sizeof(err));
		CU_ASSERT_EQUAL(rc, -1);
		if (rc != -1 || !strstr(err, refused[i].says))
			fprintf(stderr, "%s -> %s\n", refused[i].text, rc ? err : "accepted");
		CU_ASSERT_PTR_NOT_NULL(strstr(err, refused[i].says));
		CU_ASSERT_PTR_NOT_NULL(strstr(err, tmp_path));
		conf_clear(&c);
	}
}

/* Mosquitto's persistence keys with their meaning, midge's own, and the
 * path they make. */
static void test_persistence_keys(void)
{
	struct conf c;
	char path[256], err[256];
	load_ok(&c, "persistence true\npersistence_location /var/lib/midge\n"
		    "persistence_file store.db\nautosave_interval 60\nautosave_on_changes true\n"
		    "midge_persist_sync periodic 5\nmidge_persist_commit_delay_ms 2\n"
		    "midge_persist_damaged move\nmidge_history a/# 100 3600\nmidge_history b 1\n"
		    "midge_persist_max_acks_held 7\n");
	CU_ASSERT_TRUE(c.persistence);
	CU_ASSERT_EQUAL(c.autosave_interval, 60);
	CU_ASSERT_TRUE(c.autosave_on_changes);
	CU_ASSERT_EQUAL(c.persist_sync, CONF_PERSIST_PERIODIC);
	CU_ASSERT_TRUE(c.persist_period_set);
	CU_ASSERT_EQUAL(c.persist_period, 5);
	CU_ASSERT_EQUAL(c.persist_commit_delay_ms, 2);
	CU_ASSERT_EQUAL(c.engine.max_acks_held, 7);
	CU_ASSERT_TRUE(c.persist_move_damaged);
	CU_ASSERT_EQUAL(c.n_history, 2);
	CU_ASSERT_STRING_EQUAL(c.history[0].filter, "a/#");
	CU_ASSERT_EQUAL(c.history[0].max_messages, 100);
	CU_ASSERT_EQUAL(c.history[0].max_age_s, 3600);
	CU_ASSERT_EQUAL(c.history[1].max_age_s, 0);
	CU_ASSERT_EQUAL(conf_persist_path(&c, path, sizeof path), 0);
	CU_ASSERT_STRING_EQUAL(path, "/var/lib/midge/store.db");
	CU_ASSERT_EQUAL(warnings, 0);
	conf_clear(&c);
	load_ok(&c, "persistence_location /tmp/x/\n");
	CU_ASSERT_FALSE(c.persistence);
	CU_ASSERT_EQUAL(c.persist_sync, CONF_PERSIST_ACK);
	CU_ASSERT_EQUAL(c.autosave_interval, 1800);
	CU_ASSERT_EQUAL(c.engine.max_acks_held, ENGINE_DEFAULT_MAX_ACKS_HELD);
	CU_ASSERT_EQUAL(conf_persist_path(&c, path, sizeof path), 0);
	CU_ASSERT_STRING_EQUAL(path, "/tmp/x/midge.db");
	conf_clear(&c);
	static const char *const bad[] = {
		"midge_persist_sync sometimes\n", "midge_persist_sync periodic x\n",
		"midge_persist_sync ack 5\n", "midge_persist_damaged maybe\n",
		"midge_history a/#\n", "midge_history a/# 0\n", "midge_history a/+b 5\n",
		"midge_history $share/g/a 5\n", "midge_history $replay/all/a 5\n",
		"midge_history a 5\nmidge_history a 6\n", "midge_persist_commit_delay_ms 5000\n",
		"autosave_interval -1\n", "persistence yes\n", "midge_persist_max_acks_held -1\n",
		"midge_persist_max_acks_held 4294967296\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		conf_init(&c);
		CU_ASSERT_EQUAL(load_text(&c, bad[i], err, sizeof err), -1);
		CU_ASSERT(strstr(err, ":1:") != NULL || strstr(err, ":2:") != NULL);
		conf_clear(&c);
	}
}

/* TLS keys on a listener with no certificate would leave it plain TCP. */
static void test_tls_keys_need_certificate(void)
{
	static const char *const bad[] = {
		"listener 8883\ncafile /ca.pem\n",
		"listener 8883\nrequire_certificate true\n",
		"listener 8883\nuse_identity_as_username true\n",
		"listener 8883\nciphers HIGH\n",
		"listener 8883\ntls_version tlsv1.3\n",
		"listener 8883\ncertfile /c.pem\n",
		"cafile /ca.pem\nlistener 1884\n",
		NULL,
	};
	for (int i = 0; bad[i]; i++) {
		struct conf c;
		char err[512];
		conf_init(&c);
		CU_ASSERT_EQUAL(load_text(&c, bad[i], err, sizeof(err)), -1);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "certfile"));
		conf_clear(&c);
	}
	struct conf c;
	char err[512];
	conf_init(&c);
	CU_ASSERT_EQUAL(load_text(&c, "listener 8883\ncafile /ca.pem\n", err, sizeof err), -1);
	/* the line of the offending key, not the end of the file */
	CU_ASSERT_PTR_NOT_NULL(strstr(err, ":2: cafile needs TLS"));
	conf_clear(&c);
	load_ok(&c, "listener 8883\nrequire_certificate false\nuse_identity_as_username false\n"
		    "listener 8884\ncertfile /c\nkeyfile /k\ncafile /ca\nrequire_certificate true\n");
	conf_clear(&c);
}

static void test_per_listener_settings(void)
{
	struct conf c;
	load_ok(&c, "per_listener_settings true\n"
		    "listener 1883\nallow_anonymous true\nacl_file /a1\n"
		    "listener 1884\npassword_file /p2\nacl_file /a2\nuse_username_as_clientid true\n"
		    "accept_protocol_versions 4, 5\nbind_interface lo\n");
	CU_ASSERT_TRUE(c.per_listener_settings);
	CU_ASSERT_EQUAL(c.listeners[0].allow_anonymous, 1);
	CU_ASSERT_STRING_EQUAL(c.listeners[0].acl_file, "/a1");
	CU_ASSERT_PTR_NULL(c.listeners[0].password_file);
	CU_ASSERT_EQUAL(c.listeners[1].allow_anonymous, -1);
	CU_ASSERT_STRING_EQUAL(c.listeners[1].password_file, "/p2");
	CU_ASSERT_TRUE(c.listeners[1].use_username_as_clientid);
	CU_ASSERT_EQUAL(c.listeners[1].protocol_versions, (1 << 4) | (1 << 5));
	CU_ASSERT_STRING_EQUAL(c.listeners[1].bind_interface, "lo");
	CU_ASSERT_PTR_NULL(c.acl_file);
	CU_ASSERT_PTR_NULL(c.password_file);
	conf_clear(&c);
	/* without it the same keys are global, the last one wins */
	load_ok(&c, "listener 1883\nacl_file /a1\nlistener 1884\nacl_file /a2\nallow_anonymous true\n");
	CU_ASSERT_STRING_EQUAL(c.acl_file, "/a2");
	CU_ASSERT_TRUE(c.engine.allow_anonymous);
	CU_ASSERT_EQUAL(c.listeners[0].allow_anonymous, -1);
	conf_clear(&c);
	/* the default listener (port) takes them before any listener line */
	load_ok(&c, "per_listener_settings true\nport 1885\npassword_file /p\nlistener 1886\n");
	CU_ASSERT_STRING_EQUAL(c.listeners[c.default_listener].password_file, "/p");
	conf_clear(&c);
}

static void test_include_dir(void)
{
	char dir[] = "/tmp/midge-test-incl-XXXXXX";
	CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
	char path[128];
	const char *files[][2] = {{"b.conf", "max_qos 1\n"}, {"a.conf", "max_qos 2\nsys_interval 7\n"},
				  {"c.txt", "frobnicate 1\n"}};
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, files[i][0]);
		FILE *f = fopen(path, "w");
		CU_ASSERT_FATAL(f != NULL);
		fputs(files[i][1], f);
		fclose(f);
	}
	struct conf c;
	char text[200];
	snprintf(text, sizeof text, "sys_interval 3\ninclude_dir %s\n", dir);
	load_ok(&c, text);
	/* a.conf then b.conf; c.txt is not read */
	CU_ASSERT_EQUAL(c.engine.max_qos, 1);
	CU_ASSERT_EQUAL(c.sys_interval, 7);
	conf_clear(&c);
	/* an error inside names the included file and line */
	snprintf(path, sizeof path, "%s/d.conf", dir);
	FILE *f = fopen(path, "w");
	fputs("\nplugin /x.so\n", f);
	fclose(f);
	char err[512];
	conf_init(&c);
	CU_ASSERT_EQUAL(load_text(&c, text, err, sizeof err), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "d.conf:2: 'plugin'"));
	conf_clear(&c);
	const char *names[] = {"a.conf", "b.conf", "c.txt", "d.conf"};
	for (int i = 0; i < 4; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

/* Log lines: control characters, DEL, backslashes and bytes that are not
 * UTF-8 come out as escapes; valid UTF-8 stays; the output is bounded. */
static void test_log_escape(void)
{
	char out[64];
	CU_ASSERT_EQUAL(log_escape(out, sizeof out, "a\nb\r\x1b[31m\\", 10), 20);
	CU_ASSERT_STRING_EQUAL(out, "a\\x0ab\\x0d\\x1b[31m\\\\");
	log_escape(out, sizeof out, "\x7f\xff\xc3\xa9\xed\xa0\x80", 7);
	CU_ASSERT_STRING_EQUAL(out, "\\x7f\\xff\xc3\xa9\\xed\\xa0\\x80");
	log_escape(out, sizeof out, "x\0y", 3);
	CU_ASSERT_STRING_EQUAL(out, "x\\x00y");
	/* full: never half an escape */
	CU_ASSERT_EQUAL(log_escape(out, 6, "ab\n", 3), 2);
	CU_ASSERT_STRING_EQUAL(out, "ab");
	for (int c = 0; c < 256; c++) {
		char in[1] = {(char)c};
		log_escape(out, sizeof out, in, 1);
		for (const char *p = out; *p; p++)
			CU_ASSERT((unsigned char)*p >= 0x20 && (unsigned char)*p != 0x7f);
	}
}

static void test_logging_and_hooks(void)
{
	struct conf c;
	load_ok(&c,
		"log_type error\n"
		"log_type subscribe\n"
		"log_dest file /var/log/midge.log\n"
		"log_dest syslog\n"
		"midge_hooks_endpoint tcp://127.0.0.1:7000\n"
		"midge_hooks_endpoint ipc:///tmp/x\n"
		"midge_hooks_hwm 50\n"
		"midge_node_name n1\n");
	CU_ASSERT_EQUAL(c.log_types & CONF_LOG_ALL, CONF_LOG_ERR | CONF_LOG_SUBSCRIBE);
	CU_ASSERT_TRUE(c.log_dests & CONF_DEST_FILE);
	CU_ASSERT_TRUE(c.log_dests & CONF_DEST_SYSLOG);
	CU_ASSERT_STRING_EQUAL(c.log_file, "/var/log/midge.log");
	CU_ASSERT_EQUAL(c.n_hooks_endpoints, 2);
	CU_ASSERT_STRING_EQUAL(c.hooks_endpoints[1], "ipc:///tmp/x");
	CU_ASSERT_EQUAL(c.hooks_hwm, 50);
	CU_ASSERT_STRING_EQUAL(c.node_name, "n1");
	CU_ASSERT_FALSE(c.hooks_off);
	conf_clear(&c);
	load_ok(&c, "midge_hooks_endpoint none\n");
	CU_ASSERT_TRUE(c.hooks_off);
	conf_clear(&c);
}

static void test_http_keys(void)
{
	struct conf c, old;
	char err[512];
	load_ok(&c,
		"midge_http_listener 8080 ::1\n"
		"midge_http_certfile /c.pem\n"
		"midge_http_keyfile /k.pem\n"
		"midge_http_password_file /p\n"
		"midge_http_admin alice bob\n"
		"midge_http_admin carol\n"
		"midge_http_sse_clients 3\n"
		"midge_http_sse_buffer 8192\n"
		"midge_http_max_body 2048\n");
	CU_ASSERT_TRUE(c.http.on);
	CU_ASSERT_EQUAL(c.http.port, 8080);
	CU_ASSERT_STRING_EQUAL(c.http.host, "::1");
	CU_ASSERT_EQUAL(c.http.n_admins, 3);
	CU_ASSERT_STRING_EQUAL(c.http.admins[2], "carol");
	CU_ASSERT_EQUAL(c.http.sse_clients, 3);
	CU_ASSERT_EQUAL(c.http.sse_buffer, 8192);
	CU_ASSERT_EQUAL(c.http.max_body, 2048);
	CU_ASSERT_PTR_NOT_NULL(strstr(c.http.where, ":1"));
	/* a reload keeps the running listener, takes the new credentials */
	old = c;
	conf_init(&c);
	load_ok(&c, "midge_http_listener 9090\nmidge_http_token_file /t\n");
	conf_take_http_listener(&c, &old);
	CU_ASSERT_EQUAL(c.http.port, 8080);
	CU_ASSERT_STRING_EQUAL(c.http.host, "::1");
	CU_ASSERT_STRING_EQUAL(c.http.token_file, "/t");
	CU_ASSERT_PTR_NULL(c.http.password_file);
	conf_clear(&old);
	conf_clear(&c);
	const char *bad[] = {"midge_http_listener x\n", "midge_http_listener 70000\n",
			     "midge_http_sse_buffer 10\n", "midge_http_admin\n",
			     "midge_http_certfile\n", "midge_http_nonsense 1\n"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		conf_init(&c);
		CU_ASSERT_EQUAL(load_text(&c, bad[i], err, sizeof(err)), -1);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, ":1:"));
		conf_clear(&c);
	}
}

static void test_tls_priority(void)
{
	struct conf_listener l;
	char buf[256];
	memset(&l, 0, sizeof(l));
	CU_ASSERT_EQUAL(tls_priority_string(&l, buf, sizeof(buf)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "-VERS-ALL"));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "+VERS-TLS1.2"));
	CU_ASSERT_PTR_NULL(strstr(buf, "TLS1.1"));
	l.tls_version = (char *)"tlsv1.3";
	CU_ASSERT_EQUAL(tls_priority_string(&l, buf, sizeof(buf)), 0);
	CU_ASSERT_PTR_NULL(strstr(buf, "TLS1.2"));
	l.priority = (char *)"SECURE256";
	CU_ASSERT_EQUAL(tls_priority_string(&l, buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "SECURE256");
}

/* midge_auth_chain with the auth workers (docs/auth.md, "The chain"):
 * zmq in any position; by default after the local sources; a chain
 * leaving configured workers out, or naming them unconfigured, refused
 * with file:line. */
static void test_auth_chain_zmq(void)
{
	struct conf c;
	struct auth_chain ch;
	char err[400];
	load_ok(&c, "password_file /etc/passwd\nmidge_auth_endpoint ipc:///tmp/w\n"
		    "midge_auth_chain zmq,passwd\n");
	conf_auth_chain(&c, &ch);
	CU_ASSERT(ch.n == 2 && ch.src[0] == AUTH_SRC_ZMQ && ch.src[1] == AUTH_SRC_PASSWD);
	conf_clear(&c);
	load_ok(&c, "password_file /etc/passwd\nmidge_auth_endpoint ipc:///tmp/w\n");
	conf_auth_chain(&c, &ch);
	CU_ASSERT(ch.n == 2 && ch.src[0] == AUTH_SRC_PASSWD && ch.src[1] == AUTH_SRC_ZMQ);
	conf_clear(&c);
	conf_init(&c);
	CU_ASSERT_EQUAL(load_text(&c, "password_file /etc/passwd\nmidge_auth_endpoint ipc:///tmp/w\n"
				      "midge_auth_chain passwd\n",
				  err, sizeof err),
			-1);
	CU_ASSERT(strstr(err, ":3: midge_auth_chain does not name zmq") != NULL);
	conf_clear(&c);
	conf_init(&c);
	CU_ASSERT_EQUAL(load_text(&c, "password_file /etc/passwd\nmidge_auth_chain passwd,zmq\n", err,
				  sizeof err),
			-1);
	CU_ASSERT(strstr(err, ":2: midge_auth_chain names zmq, which is not configured (set "
			      "midge_auth_endpoint)") != NULL);
	conf_clear(&c);
}

static const struct test_case cases[] = {
	{"defaults", test_defaults},
	{"listener blocks", test_listener_blocks},
	{"default listener from port", test_default_listener_port},
	{"engine limits", test_engine_limits},
	{"message_size_limit and max_queued_messages 0", test_message_size_and_queue_zero},
	{"unknown key names file and line", test_unknown_key_names_file_and_line},
	{"malformed values", test_malformed_values},
	{"Mosquitto-only keys warn", test_mosquitto_only_keys_warn},
	{"WebSocket, PROXY and Unix socket listeners", test_websockets_proxy_unix},
	{"listener settings that conflict", test_listener_conflicts},
	{"refused keys name what to use instead", test_refused_keys},
	{"TLS keys need a certificate", test_tls_keys_need_certificate},
	{"per_listener_settings", test_per_listener_settings},
	{"include_dir", test_include_dir},
	{"log lines escaped", test_log_escape},
	{"persistence keys and midge_history", test_persistence_keys},
	{"logging and hooks", test_logging_and_hooks},
	{"TLS priority string", test_tls_priority},
	{"HTTP server keys", test_http_keys},
	{"midge_auth_chain with zmq", test_auth_chain_zmq},
	{NULL, NULL},
};

static const struct test_suite config_suites[] = {
	{"config", cases},
	{NULL, NULL},
};

TEST_RUNNER_MAIN(config_suites)
