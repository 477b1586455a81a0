"""What the compatibility sessions share: a watcherd on a free port, calls
to Keystone, and registering watcherd in Keystone's catalogue."""

import json
import sys
import subprocess
import urllib.error
import urllib.request


def free_port_daemon(watcherd, tmp, extra=""):
    """watcherd with its data in `tmp` on a free port: (process, base URL)."""
    with open(f"{tmp}/watcherd.toml", "w") as f:
        f.write(f'listen = "127.0.0.1:0"\ndata_dir = "{tmp}"\n{extra}')
    log = open(f"{tmp}/watcherd.log", "w")
    daemon = subprocess.Popen([watcherd, "--config", f"{tmp}/watcherd.toml"], stdout=subprocess.PIPE,
                              stderr=log, text=True)
    url = daemon.stdout.readline().strip().removeprefix("watcherd listening on ")
    return daemon, url


def keystone_section(keystone):
    """watcherd's configuration for Keystone mode as the admin of ../shared/openstack."""
    return (f'auth_strategy = "keystone"\n[keystone]\nauth_url = "{keystone}"\nusername = "admin"\n'
            f'password = "admin"\nproject_name = "admin"\n')


def keystone_call(keystone, method, path, token=None, body=None):
    """(X-Subject-Token, JSON body); a 409 (already there) is (None, None)."""
    req = urllib.request.Request(f"{keystone}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json", **({"X-Auth-Token": token} if token else {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.headers.get("X-Subject-Token"), json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        if e.code == 409:
            return None, None
        raise


def admin_token(keystone):
    token, _ = keystone_call(keystone, "POST", "/auth/tokens", body={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"name": "Default"}, "password": "admin"}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}})
    return token


class Registered:
    """watcherd at `url` as the `infra-optim` service of a region of its own,
    with public, internal and admin endpoints; removed on exit."""

    def __init__(self, keystone, region, url):
        self.keystone, self.region, self.url = keystone, region, url

    def __enter__(self):
        self.admin = admin_token(self.keystone)
        call = lambda *a: keystone_call(self.keystone, *a)
        call("POST", "/regions", self.admin, {"region": {"id": self.region}})
        services = call("GET", "/services?type=infra-optim", self.admin)[1]["services"]
        service = services[0]["id"] if services else call(
            "POST", "/services", self.admin, {"service": {"type": "infra-optim", "name": "watcher"}})[1]["service"]["id"]
        self.endpoints = [call("POST", "/endpoints", self.admin, {"endpoint": {
            "service_id": service, "interface": interface, "region_id": self.region, "url": self.url}})[1]["endpoint"]["id"]
            for interface in ("public", "internal", "admin")]
        return self

    def __exit__(self, *exc):
        for endpoint in self.endpoints:
            keystone_call(self.keystone, "DELETE", f"/endpoints/{endpoint}", self.admin)
        return False


class Tally:
    """Checks counted and printed as they run; `finish` prints the
    'N passed, M failed' line CI sums and exits non-zero on a failure."""

    def __init__(self):
        self.passed = self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"ok   {name}")
        else:
            self.failed += 1
            print(f"FAIL {name}: {detail}")

    def finish(self, label=""):
        print(f"{label}{self.passed} passed, {self.failed} failed")
        sys.exit(1 if self.failed else 0)
