"""A real oslo.messaging notification listener (PyPI) reads what watcherd
publishes on RabbitMQ: the proof that existing consumers of Watcher's
notifications can read ours.

usage: oslo_notifications.py WATCHERD   (run with the venv's python, which
has oslo.messaging; RabbitMQ at 127.0.0.1:5672, guest/guest)
"""

import json
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

import oslo_messaging
from oslo_config import cfg

watcherd = sys.argv[1]
topic = f"watcher-oslo-{uuid.uuid4()}"
url = "rabbit://guest:guest@127.0.0.1:5672/"
received = []
done = threading.Event()


class Endpoint:
    """oslo dispatches by priority: info() and error() get the notifications."""

    def _record(self, ctxt, publisher_id, event_type, payload, metadata):
        received.append({"publisher_id": publisher_id, "event_type": event_type,
                         "payload": payload, "message_id": metadata.get("message_id")})
        if event_type == "action_plan.cancel.end":
            done.set()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self._record(ctxt, publisher_id, event_type, payload, metadata)

    def error(self, ctxt, publisher_id, event_type, payload, metadata):
        self._record(ctxt, publisher_id, event_type, payload, metadata)


conf = cfg.ConfigOpts()
conf([])
transport = oslo_messaging.get_notification_transport(conf, url=url)
listener = oslo_messaging.get_notification_listener(
    transport, [oslo_messaging.Target(topic=topic, exchange="watcher")], [Endpoint()],
    executor="threading")
listener.start()


def call(base, method, path, body=None):
    req = urllib.request.Request(base + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json",
                                          "OpenStack-API-Version": "infra-optim 1.5"})
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read()
        return json.loads(text) if text else None


failures = []
with tempfile.TemporaryDirectory() as tmp:
    with open(f"{tmp}/watcherd.toml", "w") as f:
        f.write(f'listen = "127.0.0.1:0"\ndata_dir = "{tmp}"\nhost = "oslo-check"\n'
                f'[applier]\nsweep_interval_secs = 0.5\n'
                f'[notifications]\ntransport_url = "{url}"\ntopics = ["{topic}"]\n')
    daemon = subprocess.Popen([watcherd, "--config", f"{tmp}/watcherd.toml"],
                              stdout=subprocess.PIPE, stderr=open(f"{tmp}/log", "w"), text=True)
    try:
        base = daemon.stdout.readline().strip().removeprefix("watcherd listening on ")
        audit = call(base, "POST", "/v1/audits", {"audit_type": "ONESHOT", "goal": "dummy",
                                                  "parameters": {"para1": 600}})
        plan = None
        for _ in range(200):
            plans = call(base, "GET", f"/v1/action_plans?audit_uuid={audit['uuid']}")["action_plans"]
            if plans:
                plan = plans[0]["uuid"]
                break
            time.sleep(0.05)
        call(base, "POST", f"/v1/action_plans/{plan}/start", {})
        for _ in range(200):
            if call(base, "GET", f"/v1/action_plans/{plan}")["state"] == "ONGOING":
                break
            time.sleep(0.05)
        time.sleep(0.5)
        call(base, "PATCH", f"/v1/action_plans/{plan}",
             [{"op": "replace", "path": "/state", "value": "CANCELLING"}])
        if not done.wait(30):
            failures.append("no action_plan.cancel.end within 30 s")
    finally:
        daemon.terminate()
        daemon.wait()
        listener.stop()
        listener.wait()

events = [m["event_type"] for m in received]
for e in ["action_plan.create", "action_plan.execution.start", "action_plan.cancel.start",
          "action.cancel.end", "action_plan.cancel.end"]:
    if e not in events:
        failures.append(f"{e} not received")
if all(e in events for e in ["action_plan.cancel.start", "action_plan.cancel.end"]) and \
        events.index("action_plan.cancel.start") > events.index("action_plan.cancel.end"):
    failures.append("cancel.end before cancel.start")
end = next((m for m in received if m["event_type"] == "action_plan.cancel.end"), None)
if end:
    if end["publisher_id"] != "infra-optim:oslo-check":
        failures.append(f"publisher_id {end['publisher_id']}")
    data = end["payload"].get("watcher_object.data", {})
    if data.get("uuid") != plan or data.get("state") != "CANCELLED":
        failures.append(f"payload {end['payload']}")
if len({m["message_id"] for m in received}) != len(received):
    failures.append("repeated message ids")

# The listener declared the queues on our exchange; remove them.
try:
    import kombu
    with kombu.Connection(url.replace("rabbit://", "amqp://")) as c:
        for q in ("info", "error"):
            kombu.Queue(f"{topic}.{q}", channel=c.channel()).delete()
except Exception as e:  # cleanup only
    print(f"note: could not delete the test queues: {e}")

print(f"oslo.messaging listener: {len(received)} notifications, events: {sorted(set(events))}")
for f in failures:
    print(f"FAIL {f}")
sys.exit(1 if failures else 0)
