// MQTT.js from Node over ws or wss (tests/integration/test_ws_js.py):
//   node node_client.js URL PREFIX VERSION
// connects, subscribes PREFIX/in (QoS 1), publishes PREFIX/out, prints
// READY, then prints the first message received as JSON and exits 0;
// exits 1 on an error or after 15 s. For wss the test sets
// NODE_EXTRA_CA_CERTS to its CA.
"use strict";
const mqtt = require("mqtt");
const [url, prefix, version] = process.argv.slice(2);
const client = mqtt.connect(url, {
  clientId: "node-" + prefix.replace(/\W/g, "-"),
  protocolVersion: Number(version || 4),
  reconnectPeriod: 0,
});
const timer = setTimeout(() => {
  console.error("timeout");
  process.exit(1);
}, 15000);
client.on("connect", () => {
  client.subscribe(prefix + "/in", { qos: 1 }, (err) => {
    if (err) {
      console.error("subscribe", err.message);
      process.exit(1);
    }
    client.publish(prefix + "/out", "from-node", { qos: 1 }, (err2) => {
      if (err2) {
        console.error("publish", err2.message);
        process.exit(1);
      }
      console.log("READY");
    });
  });
});
client.on("message", (topic, payload, packet) => {
  console.log(JSON.stringify({ topic, payload: payload.toString(), qos: packet.qos }));
  clearTimeout(timer);
  client.end(false, () => process.exit(0));
});
client.on("error", (e) => {
  console.error("error", e.message);
  process.exit(1);
});
