/*
 * embed.c - a whole MQTT broker inside a C program, with libmidge.
 *
 *   embed [PORT]     listen on 127.0.0.1:PORT (default 1883)
 *
 * Prints one line per connect, publish and disconnect, answers every
 * message on "ping/#" with one on "pong/<rest>", and stops on SIGINT /
 * SIGTERM or when a client publishes to "embed/stop".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <midge.h>

static void on_connect(const struct midge_event *ev, void *user)
{
	(void)user;
	printf("connect %.*s from %s\n", (int)ev->client->client_id.len, ev->client->client_id.p,
	       ev->client->peer_addr);
	fflush(stdout);
}

static void on_disconnect(const struct midge_event *ev, void *user)
{
	(void)user;
	printf("disconnect %.*s\n", (int)ev->client->client_id.len, ev->client->client_id.p);
	fflush(stdout);
}

static void on_publish(const struct midge_event *ev, void *user)
{
	struct midge *m = user;
	const struct midge_message *msg = ev->u.message.msg;
	printf("publish %.*s %.*s\n", (int)msg->topic.len, msg->topic.p, (int)msg->payload_len,
	       (const char *)msg->payload);
	fflush(stdout);
	if (msg->topic.len > 5 && memcmp(msg->topic.p, "ping/", 5) == 0) {
		char topic[256];
		snprintf(topic, sizeof(topic), "pong/%.*s", (int)(msg->topic.len - 5), msg->topic.p + 5);
		/* Callbacks run on the loop thread, where midge_publish is allowed. */
		midge_publish(m, topic, msg->payload, msg->payload_len, 0, false);
	}
	if (msg->topic.len == 10 && memcmp(msg->topic.p, "embed/stop", 10) == 0)
		midge_stop(m);
}

int main(int argc, char **argv)
{
	int port = argc > 1 ? atoi(argv[1]) : 1883;
	struct midge *m = midge_new();
	if (!m)
		return 1;
	if (midge_config_set(m, "allow_anonymous", "true") < 0 ||
	    midge_config_set(m, "midge_hooks_endpoint", "none") < 0 ||
	    midge_listen(m, "127.0.0.1", (uint16_t)port, NULL, NULL) < 0) {
		midge_free(m);
		return 1;
	}
	midge_on_connect(m, on_connect, m);
	midge_on_disconnect(m, on_disconnect, m);
	midge_on_publish(m, on_publish, m);
	midge_publish(m, "embed/hello", "retained at start", 17, 0, true);
	printf("midge %s embedded, port %d\n", midge_version(), port);
	fflush(stdout);
	int rc = midge_run(m);
	printf("stopped: %d\n", rc);
	midge_free(m);
	return rc == 0 ? 0 : 1;
}
