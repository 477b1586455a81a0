#!/usr/bin/env python3
"""Our watcher CLI against python-watcherclient, command by command.

Usage: cli_parity.py WATCHERD OUR_CLI THEIR_CLI [KEYSTONE_URL]

Starts watcherd on a free port, makes some state (an audit template, a
finished plan, a recommended plan) and runs the same commands with both
clients, `-f json`, at API versions 1.5 and 1.7, comparing the outputs
field by field. Commands that create something run once with each client
on objects of their own and are compared without the fields that differ
by nature (uuids, times, names made from the time). With KEYSTONE_URL the
session is run a second time against a watcherd in Keystone mode, both
clients logging in as the admin and finding watcherd in the catalog.

Differences are allowed only where DOCUMENTED says so (and
docs/api-compatibility.md explains them). Prints 'N passed, M failed' and
exits non-zero if anything failed.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from common import Registered, Tally, free_port_daemon, keystone_section

watcherd, ours, theirs = sys.argv[1:4]
keystone = sys.argv[4] if len(sys.argv) > 4 else None
tally = Tally()
check = tally.check

# (command words, column title) -> why the two clients differ there.
DOCUMENTED = {}
# Fields that differ between two objects created one after the other.
VOLATILE = {"UUID", "Created At", "Updated At", "Next Run Time", "Name", "Audit", "Action Plan",
            "Last seen up"}



def differences(a, b, words, ignore=frozenset(), path=""):
    """Where the JSON values a (ours) and b (theirs) differ."""
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items, theirs {len(b)}"]
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += differences(x, y, words, ignore, f"{path}[{i}]")
        return out
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k in ignore or (words, k) in DOCUMENTED:
                continue
            if k not in a:
                out.append(f"{path}.{k}: missing in ours")
            elif k not in b:
                out.append(f"{path}.{k}: only in ours")
            elif a[k] != b[k]:
                out.append(f"{path}.{k}: ours {a[k]!r}, theirs {b[k]!r}")
        return out
    return [] if a == b else [f"{path}: ours {a!r}, theirs {b!r}"]


def session(label, url, env, prefix):
    """Runs the comparisons against watcherd at url."""

    def run(cli, args, version):
        cmd = [cli] + prefix(cli) + ["--os-infra-optim-api-version", version] + list(args) + ["-f", "json"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
        out = None
        if p.stdout.strip():
            try:
                out = json.loads(p.stdout)
            except ValueError:
                out = p.stdout
        return p.returncode, out, p.stderr.strip()

    def both(args, version, ignore=frozenset()):
        words = " ".join(a for a in args if not a.startswith("-") and len(a) < 30)
        rc_o, ours_out, err_o = run(ours, args, version)
        rc_t, theirs_out, err_t = run(theirs, args, version)
        name = f"{label} {version} {' '.join(args)}"
        if rc_o != 0 or rc_t != 0:
            check(name, rc_o == rc_t, f"exit ours {rc_o} ({err_o}), theirs {rc_t} ({err_t})")
            return ours_out, theirs_out
        diff = differences(ours_out, theirs_out, words, ignore)
        check(name, not diff, "; ".join(diff[:5]))
        return ours_out, theirs_out

    def theirs_json(*args):
        return run(theirs, args, "1.5")[1]

    def wait_plan(audit):
        for _ in range(200):
            plans = theirs_json("actionplan", "list", "--audit", audit)
            if plans:
                return plans[0]["UUID"]
            time.sleep(0.05)
        raise SystemExit(f"no plan for audit {audit}")

    def wait_state(plan, states):
        for _ in range(300):
            shown = theirs_json("actionplan", "show", plan)
            if shown["State"] in states:
                return shown
            time.sleep(0.1)
        raise SystemExit(f"plan {plan} never reached {states}")

    # State for the reads.
    tag = f"{label}-{os.getpid()}"
    theirs_json("audittemplate", "create", f"t-{tag}", "dummy", "-s", "dummy", "-d", "parity")
    done_audit = theirs_json("audit", "create", "-g", "dummy", "-p", "para1=1")["UUID"]
    done_plan = wait_plan(done_audit)
    theirs_json("actionplan", "start", done_plan)
    wait_state(done_plan, ("SUCCEEDED",))
    open_audit = theirs_json("audit", "create", "-g", "dummy", "-s", "dummy")["UUID"]
    open_plan = wait_plan(open_audit)
    action = theirs_json("action", "list", "--action-plan", open_plan)[0]["UUID"]
    engine = theirs_json("scoringengine", "list")[0]["Name"]

    for version in ("1.5", "1.7"):
        for args in (
            ["goal", "list"], ["goal", "list", "--detail"], ["goal", "show", "dummy"],
            ["goal", "list", "--sort-key", "Name", "--sort-dir", "desc"],
            ["strategy", "list"], ["strategy", "list", "--goal", "dummy"],
            ["strategy", "list", "--detail"], ["strategy", "show", "dummy"],
            ["strategy", "state", "dummy"],
            ["audittemplate", "list"], ["audittemplate", "list", "--detail"],
            ["audittemplate", "show", f"t-{tag}"],
            ["audit", "list"], ["audit", "list", "--detail"], ["audit", "show", done_audit],
            ["audit", "list", "--limit", "1", "--sort-key", "created_at"],
            ["actionplan", "list"], ["actionplan", "list", "--detail"],
            ["actionplan", "list", "--audit", open_audit], ["actionplan", "show", done_plan],
            ["action", "list", "--action-plan", done_plan],
            ["action", "list", "--action-plan", done_plan, "--detail"],
            ["action", "show", action],
            ["scoringengine", "list"], ["scoringengine", "list", "--detail"],
            ["scoringengine", "show", engine],
            ["service", "list"], ["service", "list", "--detail"],
            ["datamodel", "list"], ["datamodel", "list", "--detail"],
        ):
            both(args, version, ignore=frozenset({"Last seen up"}))

    # Commands that change something: each client on objects of its own.
    def pair(make):
        return make(ours), make(theirs)

    for version in ("1.5", "1.7"):
        made = pair(lambda cli: run(cli, ["audit", "create", "-g", "dummy", "-p", "para1=1"], version))
        diff = differences(made[0][1], made[1][1], "audit create", VOLATILE)
        check(f"{label} {version} audit create", made[0][0] == made[1][0] == 0 and not diff,
              "; ".join(diff[:5]) or (made[0][2], made[1][2]))
        plans = [wait_plan(m[1]["UUID"]) for m in made]
        actions = [theirs_json("action", "list", "--action-plan", p)[0]["UUID"] for p in plans]
        upd = [run(cli, ["action", "update", a, "--state", "SKIPPED", "--reason", "parity"], version)
               for cli, a in ((ours, actions[0]), (theirs, actions[1]))]
        diff = differences(upd[0][1], upd[1][1], "action update", VOLATILE)
        check(f"{label} {version} action update --state SKIPPED", not diff, "; ".join(diff[:5]) or upd)
        started = [run(cli, ["actionplan", "start", p], version) for cli, p in ((ours, plans[0]), (theirs, plans[1]))]
        diff = differences(started[0][1], started[1][1], "actionplan start", VOLATILE | {"State"})
        check(f"{label} {version} actionplan start", not diff, "; ".join(diff[:5]) or started)
        for p in plans:
            wait_state(p, ("SUCCEEDED", "FAILED", "CANCELLED"))
        tmpl = [run(cli, ["audittemplate", "create", f"p-{tag}-{version}-{i}", "dummy", "-s", "dummy"], version)
                for i, cli in enumerate((ours, theirs))]
        diff = differences(tmpl[0][1], tmpl[1][1], "audittemplate create", VOLATILE)
        check(f"{label} {version} audittemplate create", not diff, "; ".join(diff[:5]) or tmpl)


base_env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
with tempfile.TemporaryDirectory() as tmp:
    daemon, url = free_port_daemon(watcherd, tmp)
    try:
        session("noauth", url, base_env, lambda cli: ["--os-auth-token", "x", "--os-endpoint-override", url])
    finally:
        daemon.terminate()
        daemon.wait()

if keystone:
    with tempfile.TemporaryDirectory() as tmp:
        daemon, url = free_port_daemon(watcherd, tmp, keystone_section(keystone))
        region = f"WatcherParity{os.getpid()}"
        env = dict(base_env, OS_AUTH_URL=keystone, OS_USERNAME="admin", OS_PASSWORD="admin",
                   OS_PROJECT_NAME="admin", OS_USER_DOMAIN_NAME="Default", OS_PROJECT_DOMAIN_NAME="Default",
                   OS_REGION_NAME=region, XDG_CACHE_HOME=f"{tmp}/cache")
        try:
            with Registered(keystone, region, url):
                session("keystone", url, env, lambda cli: [])
        finally:
            daemon.terminate()
            daemon.wait()

tally.finish("")
