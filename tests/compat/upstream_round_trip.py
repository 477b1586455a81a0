#!/usr/bin/env python3
"""Switching a running upstream Watcher 17 to watcherd in place, and back.

Usage: upstream_round_trip.py WATCHERD UPSTREAM_DIR KEYSTONE_URL WORKDIR

UPSTREAM_DIR is ../shared/upstream-watcher: its setup.sh installs
python-watcher 17.0.0 from PyPI (into WORKDIR/venv) and runs its API,
decision engine and applier on MariaDB with Keystone and the OpenStack of
../shared/openstack, from the realistic watcher.conf it renders. Then:

1. upstream makes objects of each kind through its own API: templates (one
   deleted), a CONTINUOUS audit, a plan it executed, one it cancelled, and a
   RECOMMENDED host-maintenance plan whose live migration is real Nova's;
2. upstream is stopped; `watcherd db upgrade` on the same watcher.conf is
   refused while upstream's services reported recently, then (--force)
   takes every object over;
3. watcherd starts on the same watcher.conf (Keystone, the real cloud) and
   serves every object with the fields and values upstream served
   (compared field by field; the differences allowed are listed below and
   in docs/api-compatibility.md); it starts the host-maintenance plan and
   cancels it while Nova live-migrates: the migration is aborted, the
   instance stays where it was;
4. the way back: watcherd stopped, `watcherd db export-upstream`, upstream
   started again on the same database serves what watcherd served and runs
   a RECOMMENDED plan watcherd made.

Prints a check per line and 'N passed, M failed'; exits non-zero on a failure.
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from common import Tally, admin_token

watcherd, upstream_dir, keystone, workdir = sys.argv[1:5]
watcherd, upstream_dir, workdir = (os.path.abspath(p) for p in (watcherd, upstream_dir, workdir))
os.makedirs(workdir, exist_ok=True)
DBNAME = "watcher_round_trip"
PORT = int(os.environ.get("ROUND_TRIP_PORT", "9393"))
API = f"http://127.0.0.1:{PORT}"
NOVA = "http://127.0.0.1:8774/v2.1"
RUNDIR = f"{workdir}/run"
CONF = f"{RUNDIR}/watcher.conf"
ENV = {**os.environ, "VENV": f"{workdir}/venv", "RUNDIR": RUNDIR, "DBNAME": DBNAME,
       "VHOST": DBNAME, "PORT": str(PORT), "WATCHER_HOST": "upstream-controller",
       "PYTHONWARNINGS": "ignore"}
tally = Tally()


def setup(step):
    r = subprocess.run(["bash", f"{upstream_dir}/setup.sh", step], env=ENV, capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout[-3000:], r.stderr[-3000:])
        sys.exit(f"FATAL: upstream-watcher setup.sh {step} failed")


token = admin_token(keystone)


def call(method, url, body=None, version="1.7", ok=(200, 201, 202, 204)):
    headers = {"X-Auth-Token": token, "Content-Type": "application/json",
               "OpenStack-API-Version": f"infra-optim {version}" if "8774" not in url else f"compute {version}"}
    req = urllib.request.Request(url, method=method, headers=headers,
                                 data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            text = r.read()
            return r.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        text = e.read().decode(errors="replace")
        if e.code in ok:
            return e.code, None
        raise RuntimeError(f"{method} {url} -> {e.code}: {text}") from None


def api(method, path, body=None):
    return call(method, f"{API}{path}", body)[1]


def wait(what, f, timeout=180):
    end = time.time() + timeout
    while time.time() < end:
        v = f()
        if v:
            return v
        time.sleep(0.5)
    sys.exit(f"FATAL: timed out waiting for {what}")


def wait_api():
    def up():
        try:
            urllib.request.urlopen(f"{API}/", timeout=2)
            return True
        except Exception:
            return False
    wait("the API", up, 60)


def audit_plan(audit_uuid):
    """The plan of a finished audit (None when it made none)."""
    audit = wait(f"audit {audit_uuid}", lambda: (lambda a: a if a["state"] in ("SUCCEEDED", "FAILED", "ONGOING")
                                                  and (a["state"] != "ONGOING" or a["audit_type"] == "CONTINUOUS")
                                                  else None)(api("GET", f"/v1/audits/{audit_uuid}")))
    if audit["state"] == "FAILED":
        sys.exit(f"FATAL: audit {audit_uuid} failed: {audit.get('status_message')}")
    plans = wait(f"the plan of {audit_uuid}",
                 lambda: api("GET", f"/v1/action_plans?audit_uuid={audit_uuid}")["action_plans"])
    return plans[0]["uuid"]


def plan_state(plan, states, timeout=180):
    return wait(f"plan {plan} in {states}",
                lambda: (lambda p: p if p["state"] in states else None)(api("GET", f"/v1/action_plans/{plan}")),
                timeout)


def snapshot():
    """Every object the API serves, by kind and key."""
    out = {}
    for kind, key in (("goals", "uuid"), ("strategies", "uuid"), ("audit_templates", "uuid"),
                      ("audits", "uuid"), ("action_plans", "uuid"), ("actions", "uuid")):
        out[kind] = {o[key]: o for o in api("GET", f"/v1/{kind}/detail?limit=1000")[kind]}
    out["services"] = {f"{s['name']}@{s['host']}": s for s in api("GET", "/v1/services/detail")["services"]}
    out["scoring_engines"] = {e["name"]: e for e in api("GET", "/v1/scoring_engines/detail")["scoring_engines"]}
    return out


# Differences allowed between the two services' answers for the same
# objects, and why (docs/api-compatibility.md, "Taking over an upstream
# Watcher"): times are shown with a UTC offset by watcherd; a service's id is
# its own database's, and its status is seen from now; the catalogue keeps
# upstream's UUIDs and names, but a goal's efficacy specification and a
# strategy's parameter schema describe the decision engine that serves them;
# a CONTINUOUS audit is run (and rescheduled) by the decision engine that
# has it, upstream's before, watcherd's after.
ALLOWED = {
    "services": {"id", "links", "status", "last_seen_up", "updated_at"},
    "goals": {"efficacy_specification"},
    "strategies": {"parameters_spec"},
}


def same_time(a, b):
    """Upstream's naive ISO times and watcherd's with +00:00 name one instant."""
    if not isinstance(a, str) or not isinstance(b, str):
        return False
    norm = lambda s: s.replace("+00:00", "").split(".")[0].rstrip("Z")
    return norm(a) == norm(b)


def compare(label, before, after, moving=()):
    """Every object of `before` served by `after` with equal fields."""
    for kind, objects in before.items():
        missing = [k for k in objects if k not in after[kind]]
        tally.check(f"{label}: every object of {kind} served", not missing, f"missing {missing}")
        diffs = []
        for key, obj in objects.items():
            other = after[kind].get(key)
            if other is None:
                continue
            for field, value in obj.items():
                if field in ALLOWED.get(kind, set()) or (kind, key, field) in moving or (kind, key) in moving:
                    continue
                theirs = other.get(field, "<absent>")
                # Upstream describes an action type only once its applier
                # has filled `action_descriptions`; watcherd always does.
                if kind == "actions" and field == "description" and "" in (value, theirs):
                    continue
                if value != theirs and not same_time(value, theirs):
                    diffs.append(f"{kind} {key} {field}: {value!r} != {theirs!r}")
        tally.check(f"{label}: {kind} field by field", not diffs, "; ".join(diffs[:8]))


def watcherd_command(*args):
    return subprocess.run([watcherd, *args, "--config-file", CONF], capture_output=True, text=True)


def server_host(server):
    return call("GET", f"{NOVA}/servers/{server}", version="2.80")[1]["server"]["OS-EXT-SRV-ATTR:host"]


# ----- 1. upstream Watcher makes its objects -------------------------------
t0 = time.time()
for step in ("install", "keystone", "db", "start"):
    setup(step)
wait_api()
print(f"upstream Watcher 17 up on {API} in {time.time() - t0:.0f} s")

# What an earlier run that failed left behind.
for old in call("GET", f"{NOVA}/servers?name=round-trip-vm", version="2.80")[1]["servers"]:
    call("DELETE", f"{NOVA}/servers/{old['id']}", version="2.80")
for svc in call("GET", f"{NOVA}/os-services?binary=nova-compute", version="2.80")[1]["services"]:
    if svc["status"] == "disabled":
        call("PUT", f"{NOVA}/os-services/{svc['id']}", {"status": "enabled"}, version="2.80")
server = call("POST", f"{NOVA}/servers", {"server": {
    "name": "round-trip-vm", "flavorRef": "1", "imageRef": "c0ffee00-0000-4000-8000-000000000001",
    "networks": "none", "host": "compute1"}}, version="2.74")[1]["server"]["id"]
wait("the server ACTIVE", lambda: call("GET", f"{NOVA}/servers/{server}", version="2.80")[1]["server"]["status"] == "ACTIVE")

template = api("POST", "/v1/audit_templates", {"name": "rt-dummy", "goal": "dummy", "strategy": "dummy"})["uuid"]
gone = api("POST", "/v1/audit_templates", {"name": "rt-gone", "goal": "dummy"})["uuid"]
api("DELETE", f"/v1/audit_templates/{gone}")
continuous = api("POST", "/v1/audits", {"audit_template_uuid": template, "audit_type": "CONTINUOUS",
                                        "interval": "3600", "name": "rt-continuous"})["uuid"]
continuous_plan = audit_plan(continuous)
executed = audit_plan(api("POST", "/v1/audits", {"audit_template_uuid": template, "name": "rt-executed", "audit_type": "ONESHOT"})["uuid"])
api("PATCH", f"/v1/action_plans/{executed}", [{"op": "replace", "path": "/state", "value": "PENDING"}])
plan_state(executed, ("SUCCEEDED", "FAILED"))
cancelled = audit_plan(api("POST", "/v1/audits", {"audit_template_uuid": template, "name": "rt-cancelled", "audit_type": "ONESHOT"})["uuid"])
api("PATCH", f"/v1/action_plans/{cancelled}", [{"op": "replace", "path": "/state", "value": "CANCELLED"}])
maintenance = audit_plan(api("POST", "/v1/audits", {
    "goal": "cluster_maintaining", "strategy": "host_maintenance", "name": "rt-maintenance",
    "audit_type": "ONESHOT",
    "parameters": {"maintenance_node": "compute1"}})["uuid"])
kinds = {a["action_type"] for a in api("GET", f"/v1/actions?action_plan_uuid={maintenance}")["actions"]}
tally.check("upstream planned a live migration off compute1", "migrate" in kinds, f"{kinds}")
upstream_served = snapshot()
tally.check("upstream executed one plan and cancelled another",
            upstream_served["action_plans"][executed]["state"] == "SUCCEEDED"
            and upstream_served["action_plans"][cancelled]["state"] == "CANCELLED",
            f"{upstream_served['action_plans'][executed]['state']} {upstream_served['action_plans'][cancelled]['state']}")
setup("stop")

# ----- 2. the takeover -------------------------------------------------------
r = watcherd_command("db", "upgrade")
tally.check("db upgrade refused while upstream's services reported recently",
            r.returncode != 0 and "upstream Watcher still runs" in r.stderr, r.stderr + r.stdout)
r = watcherd_command("db", "upgrade", "--force")
tally.check("db upgrade --force took upstream's objects over", r.returncode == 0 and "Taken over" in r.stdout,
            r.stderr + r.stdout)
print(r.stdout)

# ----- 3. watcherd serves them, and runs the maintenance plan on Nova -------
log = open(f"{workdir}/watcherd.log", "w")
daemon = subprocess.Popen([watcherd, "--config-file", CONF, "--log-file", f"{workdir}/watcherd.log"],
                          stdout=subprocess.PIPE, stderr=log, text=True)
line = daemon.stdout.readline().strip()
tally.check("watcherd runs on upstream's watcher.conf", line == f"watcherd listening on {API}", line)
wait_api()
served = snapshot()
# The CONTINUOUS audit is watcherd's decision engine's now: it may have run
# it (a new plan, which supersedes the last one's) and rescheduled it.
moving = {("audits", continuous, "hostname"), ("audits", continuous, "next_run_time"),
          ("audits", continuous, "updated_at"), ("action_plans", continuous_plan, "state"),
          ("action_plans", continuous_plan, "updated_at")}
compare("watcherd after the takeover", upstream_served, served, moving)

api("PATCH", f"/v1/action_plans/{maintenance}", [{"op": "replace", "path": "/state", "value": "PENDING"}])
wait("the live migration under way", lambda: any(
    a["action_type"] == "migrate" and a["state"] == "ONGOING"
    for a in api("GET", f"/v1/actions?action_plan_uuid={maintenance}")["actions"]), 120)
# Nova's migration is running: cancel, as an operator would.
wait("Nova's migration running", lambda: any(
    m.get("status") in ("running", "preparing", "queued")
    for m in call("GET", f"{NOVA}/servers/{server}/migrations", version="2.80")[1]["migrations"]), 60)
api("PATCH", f"/v1/action_plans/{maintenance}", [{"op": "replace", "path": "/state", "value": "CANCELLED"}])
final = plan_state(maintenance, ("CANCELLED", "FAILED", "SUCCEEDED"), 120)
tally.check("watcherd cancelled the taken-over plan mid-migration", final["state"] == "CANCELLED", final["state"])
tally.check("Nova's live migration was aborted: the instance stays on compute1",
            wait("the server settled", lambda: call("GET", f"{NOVA}/servers/{server}", version="2.80")[1]["server"]["status"] == "ACTIVE")
            and server_host(server) == "compute1", server_host(server))
# A RECOMMENDED plan made by watcherd, for upstream to run after the way back.
ours = api("POST", "/v1/audits", {"audit_template_uuid": template, "name": "rt-by-watcherd", "audit_type": "ONESHOT"})["uuid"]
ours_plan = audit_plan(ours)
api("PATCH", f"/v1/audit_templates/{template}", [{"op": "replace", "path": "/description", "value": "edited by watcherd"}])
watcherd_served = snapshot()
daemon.send_signal(signal.SIGTERM)
daemon.wait(60)

# ----- 4. the way back -------------------------------------------------------
r = watcherd_command("db", "export-upstream", "--force")
tally.check("db export-upstream wrote watcherd's objects", r.returncode == 0, r.stderr + r.stdout)
print(r.stdout)
setup("start")
wait_api()
back = snapshot()
# Upstream's decision engine reschedules its CONTINUOUS audit on start.
moving = {("audits", continuous, "hostname"), ("audits", continuous, "next_run_time"),
          ("audits", continuous, "updated_at")}
# watcherd's own services are not upstream's: they stay behind.
watcherd_served["services"] = {k: v for k, v in watcherd_served["services"].items() if k in upstream_served["services"]}
compare("upstream after the way back", watcherd_served, back, moving)
api("PATCH", f"/v1/action_plans/{ours_plan}", [{"op": "replace", "path": "/state", "value": "PENDING"}])
tally.check("upstream runs a RECOMMENDED plan watcherd made",
            plan_state(ours_plan, ("SUCCEEDED", "FAILED"))["state"] == "SUCCEEDED")
setup("stop")

# Leave the cloud as it was found: compute1 enabled, the server gone.
for svc in call("GET", f"{NOVA}/os-services?binary=nova-compute", version="2.80")[1]["services"]:
    if svc["status"] == "disabled":
        call("PUT", f"{NOVA}/os-services/{svc['id']}", {"status": "enabled"}, version="2.80")
call("DELETE", f"{NOVA}/servers/{server}", version="2.80")
tally.finish()
