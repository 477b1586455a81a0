//! Keystone for tests: the real one of ../shared/openstack, which `.ci/run`
//! starts and names in `WATCHER_KEYSTONE_URL`.

use crate::required_env;
use serde_json::{json, Value};

pub fn keystone() -> String {
    required_env("WATCHER_KEYSTONE_URL", "Keystone")
}

pub fn login(ks: &str, user: &str, password: &str, project: &str) -> String {
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {"name": user, "domain": {"name": "Default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"name": "Default"}}}
    }});
    let r = ureq::post(&format!("{ks}/auth/tokens"))
        .send_json(body)
        .expect("keystone login");
    r.header("X-Subject-Token").unwrap().to_string()
}

pub fn ks_call(ks: &str, admin: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let r = ureq::request(method, &format!("{ks}{path}")).set("X-Auth-Token", admin);
    let r = match body {
        Some(b) => r.send_json(b),
        None => r.call(),
    };
    match r {
        Ok(resp) => resp.into_json().unwrap_or(Value::Null),
        Err(ureq::Error::Status(409, _)) => Value::Null,
        Err(e) => panic!("{method} {path}: {e}"),
    }
}

/// Deletes the catalogue's endpoints that `filter` selects (`region_id=X`).
pub fn delete_endpoints(ks: &str, admin: &str, filter: &str) {
    let listed = ks_call(ks, admin, "GET", &format!("/endpoints?{filter}"), None);
    for e in listed["endpoints"].as_array().cloned().unwrap_or_default() {
        let _ = ureq::delete(&format!("{ks}/endpoints/{}", e["id"].as_str().unwrap()))
            .set("X-Auth-Token", admin)
            .call();
    }
}

/// Registers `url` as the `infra-optim` endpoint of `region` (created if
/// needed), so that clients find watcherd in the catalog; a region per
/// test keeps tests that run at once apart. `delete_endpoints(ks, admin,
/// &format!("region_id={region}"))` removes it.
pub fn register_watcher(ks: &str, admin: &str, region: &str, url: &str) {
    ks_call(
        ks,
        admin,
        "POST",
        "/regions",
        Some(json!({"region": {"id": region}})),
    );
    let listed = ks_call(ks, admin, "GET", "/services?type=infra-optim", None);
    let service = match listed["services"].as_array().and_then(|s| s.first()) {
        Some(s) => s["id"].as_str().unwrap().to_string(),
        None => ks_call(
            ks,
            admin,
            "POST",
            "/services",
            Some(json!({"service": {"type": "infra-optim", "name": "watcher"}})),
        )["service"]["id"]
            .as_str()
            .unwrap()
            .to_string(),
    };
    delete_endpoints(
        ks,
        admin,
        &format!("region_id={region}&service_id={service}"),
    );
    ks_call(
        ks,
        admin,
        "POST",
        "/endpoints",
        Some(
            json!({"endpoint": {"service_id": service, "interface": "public",
            "region_id": region, "url": url}}),
        ),
    );
}
