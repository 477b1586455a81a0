#!/usr/bin/env python3
"""Upstream's own API tests (watcher-tempest-plugin) against watcherd.

Usage: tempest_api.py WATCHERD TEMPEST_VENV KEYSTONE_URL WORKDIR

Starts watcherd in Keystone mode on a free port, registers it as the
`infra-optim` service of a region of its own in the Keystone of
../shared/openstack (the plugin finds the API through the catalogue, as on
a real cloud), writes a tempest workspace under WORKDIR and runs
`watcher_tempest_plugin.tests.api` with tempest as the admin. Prints the
tests tempest ran and its totals, then one line
'N passed, M failed, K skipped (tempest)' and exits non-zero on a failure
or when nothing ran.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

from common import Registered, free_port_daemon, keystone_section

watcherd, venv, keystone, workdir = sys.argv[1:5]
watcherd, venv, workdir = (os.path.abspath(p) for p in (watcherd, venv, workdir))
region = f"WatcherTempest{os.getpid()}"

TEMPEST_CONF = f"""[DEFAULT]
log_dir = {workdir}
log_file = tempest.log

[auth]
use_dynamic_credentials = false
admin_username = admin
admin_password = admin
admin_project_name = admin
admin_domain_name = Default

[identity]
uri_v3 = {keystone}
auth_version = v3
region = {region}
disable_ssl_certificate_validation = false

[identity-feature-enabled]
api_v2 = false

[service_available]
watcher = true
nova = false
cinder = false
glance = false
neutron = false
swift = false

[optimize]
datasource =
# watcherd serves 1.0 to 1.7: every test class of the plugin runs.
min_microversion = 1.0
max_microversion = 1.7
"""

shutil.rmtree(workdir, ignore_errors=True)
os.makedirs(workdir)
tempest = f"{venv}/bin/tempest"
# Tempest keeps a workspace registry and an etc/ under ~/.tempest: HOME is
# WORKDIR so nothing is left outside the build directory. No OS_* either:
# tempest reads its credentials from tempest.conf only.
env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
env["HOME"] = workdir
subprocess.run([tempest, "init", "--workspace-path", f"{workdir}/workspace.yaml", f"{workdir}/ws"],
               check=True, capture_output=True, env=env)
with open(f"{workdir}/ws/etc/tempest.conf", "w") as f:
    f.write(TEMPEST_CONF)

with tempfile.TemporaryDirectory() as tmp:
    daemon, url = free_port_daemon(watcherd, tmp, keystone_section(keystone))
    try:
        with Registered(keystone, region, url):
            run = subprocess.run(
                [tempest, "run", "--concurrency", "1", "--regex", r"^watcher_tempest_plugin\.tests\.api"],
                cwd=f"{workdir}/ws", env=env, capture_output=True, text=True)
    finally:
        daemon.terminate()
        daemon.wait()
        shutil.copy(f"{tmp}/watcherd.log", f"{workdir}/watcherd.log")

output = run.stdout + run.stderr
with open(f"{workdir}/tempest-run.log", "w") as f:
    f.write(output)
for line in output.splitlines():
    if re.match(r"^\{\d+\} ", line) or line.startswith((" - ", "Totals", "=")) or "... FAILED" in line:
        print(line)


def total(name):
    m = re.search(rf"^ - {name}: (\d+)", output, re.M)
    return int(m.group(1)) if m else 0


passed, failed, skipped = total("Passed"), total("Failed"), total("Skipped")
if run.returncode != 0 and failed == 0:
    failed = 1
    print(output[-4000:])
print(f"{passed} passed, {failed} failed, {skipped} skipped (tempest)")
sys.exit(1 if failed or passed == 0 else 0)
