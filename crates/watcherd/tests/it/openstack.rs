//! watcherd against a real OpenStack: the Keystone, Placement and Nova (fake
//! virt driver, hosts compute1 and compute2) that ../shared/openstack starts.
//! `.ci/run` starts it and exports the admin's OS_* variables; outside CI,
//! without OS_AUTH_URL, these tests are built ignored (CI includes them).
//!
//! Each test checks our action states against Nova's own view afterwards
//! (server host, flavor, migration status). They share two compute hosts,
//! so they run one at a time.

use watcher_testkit as common;

use common::*;
use serde_json::{json, Value};
use std::sync::Mutex;
use std::time::Duration;

pub(crate) static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const IMAGE: &str = "c0ffee00-0000-4000-8000-000000000001";

struct Nova {
    url: String,
    placement: String,
    /// Cinder's endpoint, when the catalogue has one.
    volume: Option<String>,
    token: String,
}

fn openstack() -> Nova {
    let auth = required_env("OS_AUTH_URL", "an OpenStack (the admin's OS_* variables)");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": var("OS_USERNAME"), "domain": {"name": "Default"}, "password": var("OS_PASSWORD")}}},
        "scope": {"project": {"name": var("OS_PROJECT_NAME"), "domain": {"name": "Default"}}}
    }});
    let r = ureq::post(&format!("{auth}/auth/tokens"))
        .send_json(body)
        .expect("keystone login");
    let token = r.header("X-Subject-Token").unwrap().to_string();
    let catalog: Value = r.into_json().unwrap();
    let find = |kind: &str| {
        catalog["token"]["catalog"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["type"] == kind)
            .and_then(|s| {
                s["endpoints"]
                    .as_array()?
                    .iter()
                    .find(|e| e["interface"] == "public")
            })
            .and_then(|e| e["url"].as_str())
            .map(|u| u.trim_end_matches('/').to_string())
    };
    let endpoint =
        |kind: &str| find(kind).unwrap_or_else(|| panic!("no {kind} endpoint in the catalog"));
    Nova {
        url: endpoint("compute"),
        placement: endpoint("placement"),
        volume: find("block-storage").or_else(|| find("volumev3")),
        token,
    }
}

impl Nova {
    fn call(&self, method: &str, path: &str, mv: &str, body: Option<Value>) -> (u16, Value) {
        self.send(&self.url, &format!("compute {mv}"), method, path, body)
    }

    fn placement_call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.send(&self.placement, "placement 1.26", method, path, body)
    }

    fn send(
        &self,
        base: &str,
        version: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let r = ureq::request(method, &format!("{base}{path}"))
            .set("X-Auth-Token", &self.token)
            .set("OpenStack-API-Version", version);
        let res = match body {
            Some(b) => r.send_json(b),
            None => r.call(),
        };
        match res {
            Ok(resp) => (resp.status(), resp.into_json().unwrap_or(Value::Null)),
            Err(ureq::Error::Status(c, resp)) => (c, resp.into_json().unwrap_or(Value::Null)),
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }

    fn cinder_call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let base = self
            .volume
            .as_deref()
            .expect("Cinder in the catalogue (WITH_CINDER=1)");
        self.send(base, "volume 3.60", method, path, body)
    }

    fn volume(&self, id: &str) -> Value {
        let (status, v) = self.cinder_call("GET", &format!("/volumes/{id}"), None);
        assert_eq!(status, 200, "{v}");
        v["volume"].clone()
    }

    /// Creates a volume (of `volume_type`, or from the image when
    /// `bootable`) and waits until it is available.
    fn create_volume(&self, name: &str, size: u64, volume_type: &str, bootable: bool) -> String {
        let mut body = json!({"volume": {"name": name, "size": size, "volume_type": volume_type}});
        if bootable {
            body["volume"]["imageRef"] = json!(IMAGE);
        }
        let (status, v) = self.cinder_call("POST", "/volumes", Some(body));
        assert_eq!(status, 202, "{v}");
        let id = v["volume"]["id"].as_str().unwrap().to_string();
        wait_for(Duration::from_secs(60), || {
            let v = self.volume(&id);
            assert_ne!(v["status"], "error", "{v}");
            (v["status"] == "available").then_some(())
        });
        id
    }

    /// A pool's used share, once Cinder's stats (refreshed every 10 s) say
    /// `used_gb` is used.
    fn wait_pool_used(&self, pool: &str, used_gb: f64) {
        wait_for(Duration::from_secs(60), || {
            let (_, pools) =
                self.cinder_call("GET", "/scheduler-stats/get_pools?detail=true", None);
            let p = pools["pools"]
                .as_array()?
                .iter()
                .find(|p| p["name"] == pool)?
                .clone();
            let caps = &p["capabilities"];
            let used = caps["total_capacity_gb"].as_f64()? - caps["free_capacity_gb"].as_f64()?;
            ((used - used_gb).abs() < 0.5).then_some(())
        });
    }

    /// Boots a server from a new bootable volume on `host`.
    fn boot_from_volume(&self, name: &str, host: &str) -> String {
        let volume = self.create_volume(&format!("{name}-root"), 1, "__DEFAULT__", true);
        let (status, body) = self.call(
            "POST",
            "/servers",
            "2.74",
            Some(json!({"server": {"name": name, "flavorRef": "1", "networks": "none", "host": host,
                "block_device_mapping_v2": [{"boot_index": 0, "uuid": volume, "source_type": "volume",
                    "destination_type": "volume", "delete_on_termination": true}]}})),
        );
        assert_eq!(status, 202, "{body}");
        let id = body["server"]["id"].as_str().unwrap().to_string();
        wait_for(Duration::from_secs(60), || {
            let s = self.server(&id);
            assert_ne!(s["status"], "ERROR", "{s}");
            (s["status"] == "ACTIVE").then_some(())
        });
        id
    }

    /// No test volume left (after [`Nova::reset`] removed the servers).
    fn reset_volumes(&self) {
        if self.volume.is_none() {
            return;
        }
        let (_, list) = self.cinder_call("GET", "/volumes/detail?all_tenants=1", None);
        let ours = test_objects(&list["volumes"]);
        for id in &ours {
            // A volume still migrating cannot be deleted yet.
            wait_for(Duration::from_secs(60), || {
                let v = self.volume(id);
                let busy = ["migrating", "starting"]
                    .contains(&v["migration_status"].as_str().unwrap_or(""))
                    || ["retyping", "attaching", "detaching", "deleting"]
                        .contains(&v["status"].as_str().unwrap_or(""));
                (!busy).then_some(())
            });
            self.cinder_call("POST", &format!("/volumes/{id}/action"), Some(json!({"os-reset_status": {"status": "available", "attach_status": "detached", "migration_status": null}})));
            self.cinder_call("DELETE", &format!("/volumes/{id}"), None);
        }
        wait_for(Duration::from_secs(60), || {
            ours.iter()
                .all(|id| self.cinder_call("GET", &format!("/volumes/{id}"), None).0 == 404)
                .then_some(())
        });
    }

    /// The resource provider of a compute host and its inventories (with
    /// the provider's generation).
    fn inventories(&self, host: &str) -> (String, Value) {
        let (_, found) =
            self.placement_call("GET", &format!("/resource_providers?name={host}"), None);
        let rp = found["resource_providers"][0]["uuid"]
            .as_str()
            .unwrap()
            .to_string();
        let (status, inv) = self.placement_call(
            "GET",
            &format!("/resource_providers/{rp}/inventories"),
            None,
        );
        assert_eq!(status, 200, "{inv}");
        (rp, inv)
    }

    /// Sets a host's VCPU reserved amount and allocation ratio in Placement.
    fn set_vcpu_inventory(&self, host: &str, reserved: u64, ratio: f64) {
        let (rp, inv) = self.inventories(host);
        let mut vcpu = inv["inventories"]["VCPU"].clone();
        vcpu["reserved"] = json!(reserved);
        vcpu["allocation_ratio"] = json!(ratio);
        vcpu["resource_provider_generation"] = inv["resource_provider_generation"].clone();
        let (status, body) = self.placement_call(
            "PUT",
            &format!("/resource_providers/{rp}/inventories/VCPU"),
            Some(vcpu),
        );
        assert_eq!(status, 200, "{body}");
    }

    fn server(&self, id: &str) -> Value {
        self.call("GET", &format!("/servers/{id}"), "2.80", None).1["server"].clone()
    }

    /// Boots a server on `host` and waits for it to be ACTIVE.
    fn boot(&self, name: &str, host: &str) -> String {
        let (status, body) = self.call(
            "POST",
            "/servers",
            "2.74",
            Some(
                json!({"server": {"name": name, "imageRef": IMAGE, "flavorRef": "1",
                                   "networks": "none", "host": host}}),
            ),
        );
        assert_eq!(status, 202, "{body}");
        let id = body["server"]["id"].as_str().unwrap().to_string();
        wait_for(Duration::from_secs(60), || {
            let s = self.server(&id);
            assert_ne!(s["status"], "ERROR", "{s}");
            (s["status"] == "ACTIVE").then_some(())
        });
        id
    }

    fn host_of(&self, id: &str) -> String {
        self.server(id)["OS-EXT-SRV-ATTR:host"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn migrations(&self, id: &str) -> Vec<Value> {
        self.call(
            "GET",
            &format!("/os-migrations?instance_uuid={id}"),
            "2.80",
            None,
        )
        .1["migrations"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn service_enabled(&self, host: &str) -> bool {
        self.call(
            "GET",
            &format!("/os-services?binary=nova-compute&host={host}"),
            "2.53",
            None,
        )
        .1["services"][0]["status"]
            == "enabled"
    }

    /// A clean slate: both hosts enabled, no test server left over.
    fn reset(&self) {
        let (_, services) = self.call("GET", "/os-services?binary=nova-compute", "2.53", None);
        for s in services["services"].as_array().unwrap() {
            if s["status"] != "enabled" {
                self.call(
                    "PUT",
                    &format!("/os-services/{}", s["id"].as_str().unwrap()),
                    "2.53",
                    Some(json!({"status": "enabled"})),
                );
            }
        }
        let (_, servers) = self.call("GET", "/servers?all_tenants=1", "2.80", None);
        let ours = test_objects(&servers["servers"]);
        for id in &ours {
            self.call("DELETE", &format!("/servers/{id}"), "2.80", None);
        }
        wait_for(Duration::from_secs(60), || {
            ours.iter()
                .all(|id| self.call("GET", &format!("/servers/{id}"), "2.80", None).0 == 404)
                .then_some(())
        });
        // Nova marks a disabled compute in Placement with the trait
        // COMPUTE_STATUS_DISABLED, which keeps the scheduler away. When the
        // update that removes it on enable races with another change of the
        // provider (the deletions above), Nova leaves it to its periodic
        // task (up to a minute): wait for it, or the next boot finds no host.
        for host in ["compute1", "compute2"] {
            let (rp, _) = self.inventories(host);
            wait_for(Duration::from_secs(120), || {
                let (_, t) =
                    self.placement_call("GET", &format!("/resource_providers/{rp}/traits"), None);
                let traits = t["traits"].as_array()?;
                (!traits.iter().any(|x| x == "COMPUTE_STATUS_DISABLED")).then_some(())
            });
        }
    }
}

/// The cloud, for this test alone, with no test server or volume left.
fn clean_cloud_with_cinder() -> (Nova, std::sync::MutexGuard<'static, ()>) {
    let nova = openstack();
    let one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    nova.reset();
    nova.reset_volumes();
    (nova, one)
}

/// The ids of the objects in `list` that tests made (named `wtest-...`).
fn test_objects(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .filter(|o| o["name"].as_str().unwrap_or("").starts_with("wtest-"))
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect()
}

/// watcherd on the real cloud; it polls Nova every 250 ms, not at the
/// simulated cloud's test pace.
fn start(name: &str, applier_extra: &str) -> Daemon {
    let dir = temp_dir(name);
    let config = dir.join("watcherd.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nhost = \"test-host\"\ncloud = \"openstack\"\n\n\
             [applier]\nsweep_interval_secs = 0.5\npoll_interval_ms = 250\nshutdown_grace_secs = 0.5\n{applier_extra}\n",
            dir.display()
        ),
    )
    .unwrap();
    Daemon::start_with_config(&dir, config, None)
}

fn wait_plan(d: &Daemon, plan: &str, states: &[&str]) -> Value {
    wait_for(Duration::from_secs(120), || {
        let p = d.plan(plan);
        states.contains(&p["state"].as_str().unwrap()).then_some(p)
    })
}

fn action_states(d: &Daemon, plan: &str) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = d
        .actions(plan)
        .iter()
        .map(|a| {
            (
                a["action_type"].as_str().unwrap().to_string(),
                a["input_parameters"]["resource_name"]
                    .as_str()
                    .or(a["input_parameters"]["resource_id"].as_str())
                    .unwrap_or("")
                    .to_string(),
                a["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[cfg_attr(
    not(test_openstack),
    ignore = "needs an OpenStack: set the admin's OS_* variables (.ci/run does)"
)]
#[test]
fn the_data_model_comes_from_nova() {
    let nova = openstack();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    nova.reset();
    let vm = nova.boot("wtest-model", "compute1");
    let d = start("os-model", "");
    let model = d.get("/v1/data_model");
    let ctx = model["context"].as_array().unwrap();
    let entry = ctx
        .iter()
        .find(|e| e["server_uuid"] == vm.as_str())
        .unwrap_or_else(|| panic!("{model}"));
    assert_eq!(entry["node_hostname"], "compute1");
    assert_eq!(entry["server_flavor"], "m1.tiny");
    assert_eq!(entry["server_vcpus"], 1);
    assert!(ctx.iter().any(|e| e["node_hostname"] == "compute2"));
    nova.reset();
}

#[cfg_attr(
    not(test_openstack),
    ignore = "needs an OpenStack: set the admin's OS_* variables (.ci/run does)"
)]
#[test]
fn cancelling_host_maintenance_aborts_novas_live_migrations_and_restores_the_host() {
    let nova = openstack();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    nova.reset();
    let vms = [
        nova.boot("wtest-a", "compute1"),
        nova.boot("wtest-b", "compute1"),
    ];
    let d = start("os-cancel", "rollback_on_cancel = true");
    let plan = d.recommend(
        "cluster_maintaining",
        "host_maintenance",
        json!({"maintenance_node": "compute1", "backup_node": "compute2"}),
    );
    d.start_plan(&plan);
    // Cancel once Nova really runs one of the live migrations.
    wait_for(Duration::from_secs(60), || {
        vms.iter()
            .flat_map(|v| nova.migrations(v))
            .any(|m| m["migration_type"] == "live-migration" && m["status"] == "running")
            .then_some(())
    });
    let (status, body) = d.patch_state(&plan, "CANCELLING");
    assert_eq!(status, 200, "{body}");
    let p = wait_plan(&d, &plan, &["CANCELLED", "FAILED", "SUCCEEDED"]);
    assert_eq!(p["state"], "CANCELLED", "{p} {:?}", d.actions(&plan));

    // Our record and Nova's agree: every migration cancelled, the servers
    // back on compute1, and compute1's service re-enabled by the rollback.
    let states = action_states(&d, &plan);
    assert!(
        states.iter().all(|(_, _, s)| s == "CANCELLED"),
        "{states:?}"
    );
    for vm in &vms {
        let s = wait_for(Duration::from_secs(30), || {
            let s = nova.server(vm);
            s["OS-EXT-STS:task_state"].is_null().then_some(s)
        });
        assert_eq!(s["OS-EXT-SRV-ATTR:host"], "compute1", "{s}");
        assert_eq!(s["status"], "ACTIVE");
        let live: Vec<Value> = nova
            .migrations(vm)
            .into_iter()
            .filter(|m| m["migration_type"] == "live-migration")
            .collect();
        assert!(live.iter().all(|m| m["status"] == "cancelled"), "{live:?}");
    }
    assert!(nova.service_enabled("compute1"));
    let migrate = d
        .actions(&plan)
        .into_iter()
        .find(|a| {
            a["action_type"] == "migrate"
                && a["status_message"]
                    .as_str()
                    .is_some_and(|m| m.contains("aborted"))
        })
        .expect("a migration says it was aborted");
    assert!(
        migrate["status_message"]
            .as_str()
            .unwrap()
            .contains("back on compute1"),
        "{migrate}"
    );
    nova.reset();
}

#[cfg_attr(
    not(test_openstack),
    ignore = "needs an OpenStack: set the admin's OS_* variables (.ci/run does)"
)]
#[test]
fn live_migration_resize_and_a_cancelled_cold_migration_end_as_nova_says() {
    let nova = openstack();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    nova.reset();
    let vm = nova.boot("wtest-moves", "compute1");
    let d = start("os-moves", "");

    // A live migration that completes.
    let plan = d.actuator(json!([{"action_type": "migrate", "input_parameters": {
        "migration_type": "live", "resource_id": vm, "source_node": "compute1", "destination_node": "compute2"}}]));
    d.start_plan(&plan);
    let p = wait_plan(&d, &plan, &["SUCCEEDED", "FAILED", "CANCELLED"]);
    assert_eq!(p["state"], "SUCCEEDED", "{p} {:?}", d.actions(&plan));
    assert_eq!(nova.host_of(&vm), "compute2");
    assert!(nova
        .migrations(&vm)
        .iter()
        .any(|m| m["migration_type"] == "live-migration" && m["status"] == "completed"));

    // A resize: VERIFY_RESIZE, then confirmed.
    let plan = d.actuator(json!([{"action_type": "resize", "input_parameters": {
        "resource_id": vm, "flavor": "m1.small"}}]));
    d.start_plan(&plan);
    let p = wait_plan(&d, &plan, &["SUCCEEDED", "FAILED", "CANCELLED"]);
    assert_eq!(p["state"], "SUCCEEDED", "{p} {:?}", d.actions(&plan));
    let s = wait_for(Duration::from_secs(30), || {
        let s = nova.server(&vm);
        (s["status"] == "ACTIVE" && s["OS-EXT-STS:task_state"].is_null()).then_some(s)
    });
    assert_eq!(s["flavor"]["original_name"], "m1.small", "{s}");

    // A cold migration cancelled while it runs: Nova has no abort, so it is
    // reverted once it reaches VERIFY_RESIZE, and the server stays put.
    // (Nova resizes to another host unless allow_resize_to_same_host is set.)
    let here = nova.host_of(&vm);
    let there = if here == "compute1" {
        "compute2"
    } else {
        "compute1"
    };
    let plan = d.actuator(json!([{"action_type": "migrate", "input_parameters": {
        "migration_type": "cold", "resource_id": vm, "source_node": here, "destination_node": there}}]));
    d.start_plan(&plan);
    d.wait_action_state(&plan, "migrate", "ONGOING");
    let (status, body) = d.patch_state(&plan, "CANCELLING");
    assert_eq!(status, 200, "{body}");
    let p = wait_plan(&d, &plan, &["CANCELLED", "FAILED", "SUCCEEDED"]);
    assert_eq!(p["state"], "CANCELLED", "{p} {:?}", d.actions(&plan));
    let s = wait_for(Duration::from_secs(60), || {
        let s = nova.server(&vm);
        (s["status"] == "ACTIVE" && s["OS-EXT-STS:task_state"].is_null()).then_some(s)
    });
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], here.as_str(), "{s}");
    let cold = nova
        .migrations(&vm)
        .into_iter()
        .filter(|m| m["migration_type"] == "migration")
        .max_by_key(|m| m["id"].as_i64())
        .unwrap();
    assert_eq!(cold["status"], "reverted", "{cold}");
    nova.reset();
}

#[cfg_attr(
    not(test_openstack),
    ignore = "needs an OpenStack: set the admin's OS_* variables (.ci/run does)"
)]
#[test]
fn a_live_migration_survives_a_kill_9_of_watcherd_and_is_not_started_twice() {
    let nova = openstack();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    nova.reset();
    let vm = nova.boot("wtest-crash", "compute1");
    let mut d = start("os-crash", "");
    let dir = d.dir.clone();
    let plan = d.actuator(json!([{"action_type": "migrate", "input_parameters": {
        "migration_type": "live", "resource_id": vm, "source_node": "compute1", "destination_node": "compute2"}}]));
    d.start_plan(&plan);
    wait_for(Duration::from_secs(60), || {
        nova.migrations(&vm)
            .iter()
            .any(|m| m["status"] == "running")
            .then_some(())
    });
    d.kill9();

    // The migration goes on in Nova; the restarted watcherd finds it through
    // its journal and records how it really ended.
    let config = dir.join("watcherd.toml");
    let d = Daemon::start_with_config(&dir, config, None);
    let p = wait_plan(&d, &plan, &["SUCCEEDED", "FAILED", "CANCELLED"]);
    assert_eq!(p["state"], "SUCCEEDED", "{p} {:?}", d.actions(&plan));
    assert_eq!(nova.host_of(&vm), "compute2");
    let live: Vec<Value> = nova
        .migrations(&vm)
        .into_iter()
        .filter(|m| m["migration_type"] == "live-migration")
        .collect();
    assert_eq!(live.len(), 1, "started once: {live:?}");
    assert_eq!(live[0]["status"], "completed");
    nova.reset();
}

#[cfg_attr(
    not(test_openstack),
    ignore = "needs an OpenStack: set the admin's OS_* variables (.ci/run does)"
)]
#[test]
fn force_complete_above_makes_nova_finish_a_cancelled_live_migration() {
    let nova = openstack();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    nova.reset();
    let vm = nova.boot("wtest-force", "compute1");
    let d = start("os-force", "");
    // The fake driver reports no progress figures, so only a threshold of 0
    // can apply: every cancelled migration is finished rather than rolled back.
    let plan = d.actuator(json!([{"action_type": "migrate", "input_parameters": {
        "migration_type": "live", "resource_id": vm, "source_node": "compute1",
        "destination_node": "compute2", "force_complete_above": 0.0}}]));
    d.start_plan(&plan);
    wait_for(Duration::from_secs(60), || {
        nova.migrations(&vm)
            .iter()
            .any(|m| m["status"] == "running")
            .then_some(())
    });
    assert_eq!(d.patch_state(&plan, "CANCELLING").0, 200);
    let p = wait_plan(&d, &plan, &["CANCELLED", "FAILED", "SUCCEEDED"]);
    // Nothing was undone, but the operator's cancel is what ended the plan.
    assert_eq!(p["state"], "CANCELLED", "{p}");
    let a = &d.actions(&plan)[0];
    assert_eq!(a["state"], "SUCCEEDED", "{a}");
    assert!(
        a["status_message"]
            .as_str()
            .unwrap()
            .contains("forced to complete on compute2"),
        "{a}"
    );
    assert_eq!(nova.host_of(&vm), "compute2");
    let live = nova
        .migrations(&vm)
        .into_iter()
        .find(|m| m["migration_type"] == "live-migration")
        .unwrap();
    assert_eq!(live["status"], "completed", "{live}");
    nova.reset();
}

#[cfg_attr(
    not(test_openstack),
    ignore = "needs an OpenStack: set the admin's OS_* variables (.ci/run does)"
)]
#[test]
fn placement_inventories_and_novas_service_state_shape_the_model_and_the_plans() {
    let nova = openstack();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    nova.reset();
    // Nova's own starting point (no vCPU reserved, initial_cpu_allocation_ratio
    // 4.0), set again when the test ends, even by a failed assertion.
    let restore = |host: &str| nova.set_vcpu_inventory(host, 0, 4.0);
    struct Restore<'a>(&'a dyn Fn(&str));
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            for host in ["compute1", "compute2"] {
                (self.0)(host);
            }
        }
    }
    let _restore = Restore(&restore);
    restore("compute1");
    restore("compute2");
    let a = nova.boot("wtest-placement-a", "compute1");
    let b = nova.boot("wtest-placement-b", "compute2");
    let d = start("os-placement", "");

    // nova-compute rewrites `reserved` from its configuration when its
    // periodic task runs (the ratio it keeps): a try counts only if the
    // provider's generation did not move while it ran.
    fn settled<T>(nova: &Nova, host: &str, mut check: impl FnMut() -> T) -> T {
        wait_for(Duration::from_secs(180), || {
            nova.set_vcpu_inventory(host, 8, 0.125);
            let generation = nova.inventories(host).1["resource_provider_generation"].clone();
            let out = check();
            let after = nova.inventories(host).1["resource_provider_generation"].clone();
            (generation == after).then_some(out)
        })
    }

    // The data model shows each host's inventories as Placement has them,
    // and Nova's service status and state.
    let seen = settled(&nova, "compute1", || {
        let model = d.get("/v1/data_model");
        let ctx = model["context"].as_array().unwrap().clone();
        for host in ["compute1", "compute2"] {
            let inv = nova.inventories(host).1["inventories"].clone();
            let node = ctx.iter().find(|e| e["node_hostname"] == host).unwrap();
            for (class, field, reserved) in [
                ("VCPU", "node_vcpus", "node_vcpu_reserved"),
                ("MEMORY_MB", "node_memory", "node_memory_mb_reserved"),
                ("DISK_GB", "node_disk", "node_disk_gb_reserved"),
            ] {
                assert_eq!(node[field], inv[class]["total"], "{host} {class}: {node}");
                if node[reserved] != inv[class]["reserved"] {
                    return false;
                }
            }
            assert_eq!(
                node["node_vcpu_ratio"], inv["VCPU"]["allocation_ratio"],
                "{node}"
            );
            assert_eq!(
                node["node_memory_ratio"],
                inv["MEMORY_MB"]["allocation_ratio"]
            );
            assert_eq!(node["node_disk_ratio"], inv["DISK_GB"]["allocation_ratio"]);
            assert_eq!(
                (node["node_state"].as_str(), node["node_status"].as_str()),
                (Some("up"), Some("enabled"))
            );
        }
        let c1 = ctx
            .iter()
            .find(|e| e["node_hostname"] == "compute1")
            .unwrap();
        assert_eq!(
            (
                c1["node_vcpu_reserved"].as_u64(),
                c1["node_vcpu_ratio"].as_f64()
            ),
            (Some(8), Some(0.125))
        );
        true
    });
    assert!(seen);
    restore("compute1");

    // (16 - 8) x 0.125 = 1 vCPU usable on the restricted host, which its
    // own server fills: the only consolidation Placement allows empties it
    // onto the other host. Either way round.
    for (restricted, stays, moves) in [("compute1", &b, &a), ("compute2", &a, &b)] {
        let migrations = settled(&nova, restricted, || {
            let plan = d.recommend(
                "server_consolidation",
                "node_resource_consolidation",
                json!({"host_choice": "specify"}),
            );
            d.actions(&plan)
                .into_iter()
                .filter(|x| x["action_type"] == "migrate")
                .map(|x| {
                    let p = &x["input_parameters"];
                    (
                        p["resource_id"].as_str().unwrap().to_string(),
                        p["destination_node"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect::<Vec<_>>()
        });
        let other = if restricted == "compute1" {
            "compute2"
        } else {
            "compute1"
        };
        assert_eq!(
            migrations,
            vec![(moves.to_string(), other.to_string())],
            "{restricted} restricted; {stays} stays"
        );
        restore(restricted);
    }
    nova.reset();
}

#[cfg_attr(
    not(test_cinder),
    ignore = "needs an OpenStack with Cinder: WITH_CINDER=1 for ../shared/openstack and WATCHER_TEST_CINDER=1 (.ci/run does)"
)]
#[test]
fn storage_capacity_balance_retypes_pinned_volumes_on_cinder_and_a_cancel_waits_for_cinder() {
    let (nova, _one) = clean_cloud_with_cinder();
    // Three volumes of type fake1 (pinned to backend fake1): pool1 at 90 %.
    let volumes: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|n| nova.create_volume(&format!("wtest-fill-{n}"), 30, "fake1", false))
        .collect();
    nova.wait_pool_used("cinder@fake1#pool1", 90.0);
    nova.wait_pool_used("cinder@fake2#pool2", 0.0);
    let d = start("os-cinder", "limits.per_type.volume_migrate = 1");

    // The model has the pools with their zone and types, the volumes with theirs.
    let plan = d.recommend(
        "workload_balancing",
        "storage_capacity_balance",
        json!({"volume_threshold": 80}),
    );
    let actions = d.actions(&plan);
    assert_eq!(actions.len(), 1, "{actions:?}");
    let p = &actions[0]["input_parameters"];
    assert_eq!(
        (p["migration_type"].as_str(), p["destination_type"].as_str()),
        (Some("retype"), Some("fake2")),
        "{p}"
    );
    let moved = p["resource_id"].as_str().unwrap().to_string();
    assert!(volumes.contains(&moved));

    d.start_plan(&plan);
    let done = wait_plan(&d, &plan, &["SUCCEEDED", "FAILED", "CANCELLED"]);
    assert_eq!(done["state"], "SUCCEEDED", "{done} {:?}", d.actions(&plan));
    // Cinder agrees: the volume is of type fake2, on pool2, its migration a success.
    let v = nova.volume(&moved);
    assert_eq!(
        (
            v["volume_type"].as_str(),
            v["os-vol-host-attr:host"].as_str(),
            v["status"].as_str()
        ),
        (Some("fake2"), Some("cinder@fake2#pool2"), Some("available")),
        "{v}"
    );
    nova.wait_pool_used("cinder@fake1#pool1", 60.0);
    // Under the threshold now: nothing more to do.
    let again = d.recommend(
        "workload_balancing",
        "storage_capacity_balance",
        json!({"volume_threshold": 80}),
    );
    assert!(d.actions(&again).is_empty());

    // A migrate that the type forbids fails before Cinder sees it: the
    // volume stays available, with no migration error.
    let stay = volumes.iter().find(|v| **v != moved).unwrap();
    let plan = d.actuator(json!([{"action_type": "volume_migrate", "input_parameters": {
        "resource_id": stay, "migration_type": "migrate", "destination_node": "cinder@fake2#pool2"}}]));
    d.start_plan(&plan);
    assert_eq!(
        wait_plan(&d, &plan, &["SUCCEEDED", "FAILED"])["state"],
        "FAILED"
    );
    assert!(d.actions(&plan)[0]["status_message"]
        .as_str()
        .unwrap()
        .contains("retype it"));
    let v = nova.volume(stay);
    assert_eq!(
        (v["status"].as_str(), v["migration_status"].as_str()),
        (Some("available"), None),
        "{v}"
    );

    // Cancelled during a retype: Cinder cannot abort, so the action waits
    // and ends SUCCEEDED saying so; the plan is CANCELLED and the action
    // after it never starts.
    let last = volumes.iter().find(|v| **v != moved && *v != stay).unwrap();
    let plan = d.actuator(json!([
        {"action_type": "volume_migrate", "input_parameters": {"resource_id": stay, "migration_type": "retype", "destination_type": "fake2"}},
        {"action_type": "volume_migrate", "input_parameters": {"resource_id": last, "migration_type": "retype", "destination_type": "fake2"}}
    ]));
    d.start_plan(&plan);
    // One volume action at a time (this daemon's limit): cancel while the
    // first one Cinder runs is migrating.
    let (first, second) = wait_for(Duration::from_secs(30), || {
        let migrating = |v: &String| nova.volume(v)["migration_status"] == "migrating";
        match (migrating(stay), migrating(last)) {
            (true, _) => Some((stay, last)),
            (_, true) => Some((last, stay)),
            _ => None,
        }
    });
    assert_eq!(d.patch_state(&plan, "CANCELLING").0, 200);
    let p = wait_plan(&d, &plan, &["CANCELLED", "FAILED", "SUCCEEDED"]);
    assert_eq!(p["state"], "CANCELLED", "{p}");
    let states = d.actions(&plan);
    let of = |id: &str| {
        states
            .iter()
            .find(|a| a["input_parameters"]["resource_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(of(first)["state"], "SUCCEEDED", "{:?}", of(first));
    assert!(of(first)["status_message"]
        .as_str()
        .unwrap()
        .contains("cannot be aborted"));
    assert_eq!(of(second)["state"], "CANCELLED", "{:?}", of(second));
    assert_eq!(nova.volume(first)["volume_type"], "fake2");
    assert_eq!(nova.volume(second)["volume_type"], "fake1");
    nova.reset_volumes();
}

#[cfg_attr(
    not(test_cinder),
    ignore = "needs an OpenStack with Cinder: WITH_CINDER=1 for ../shared/openstack and WATCHER_TEST_CINDER=1 (.ci/run does)"
)]
#[test]
fn a_volume_retype_survives_a_kill_9_of_watcherd_and_is_not_started_twice() {
    let (nova, _one) = clean_cloud_with_cinder();
    let vol = nova.create_volume("wtest-crash", 1, "fake1", false);
    let mut d = start("os-cinder-crash", "");
    let dir = d.dir.clone();
    let plan = d.actuator(
        json!([{"action_type": "volume_migrate", "input_parameters": {
        "resource_id": vol, "migration_type": "retype", "destination_type": "fake2"}}]),
    );
    d.start_plan(&plan);
    wait_for(Duration::from_secs(30), || {
        (nova.volume(&vol)["migration_status"] == "migrating").then_some(())
    });
    d.kill9();
    let d = Daemon::start_with_config(&dir, dir.join("watcherd.toml"), None);
    let p = wait_plan(&d, &plan, &["SUCCEEDED", "FAILED", "CANCELLED"]);
    assert_eq!(p["state"], "SUCCEEDED", "{p} {:?}", d.actions(&plan));
    let v = nova.volume(&vol);
    assert_eq!(
        (
            v["volume_type"].as_str(),
            v["os-vol-host-attr:host"].as_str()
        ),
        (Some("fake2"), Some("cinder@fake2#pool2")),
        "{v}"
    );
    // Started once: asked again, Cinder would have refused a volume that
    // is retyping (400) and the action would have failed.
    nova.reset_volumes();
}

#[cfg_attr(
    not(test_cinder),
    ignore = "needs an OpenStack with Cinder: WITH_CINDER=1 for ../shared/openstack and WATCHER_TEST_CINDER=1 (.ci/run does)"
)]
#[test]
fn a_server_booted_from_a_volume_uses_no_local_disk_and_host_maintenance_moves_it() {
    let (nova, _one) = clean_cloud_with_cinder();
    let vm = nova.boot_from_volume("wtest-bfv", "compute1");
    let d = start("os-bfv", "");
    let model = d.get("/v1/data_model");
    let entry = model["context"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["server_uuid"] == vm.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{model}"));
    assert_eq!(entry["server_disk"], 0, "{entry}");
    let plan = d.recommend(
        "cluster_maintaining",
        "host_maintenance",
        json!({"maintenance_node": "compute1"}),
    );
    d.start_plan(&plan);
    let p = wait_plan(&d, &plan, &["SUCCEEDED", "FAILED", "CANCELLED"]);
    assert_eq!(p["state"], "SUCCEEDED", "{p} {:?}", d.actions(&plan));
    assert_eq!(nova.host_of(&vm), "compute2");
    nova.reset();
    nova.reset_volumes();
}

#[cfg_attr(
    not(test_cinder),
    ignore = "needs an OpenStack with Cinder: WITH_CINDER=1 for ../shared/openstack and WATCHER_TEST_CINDER=1 (.ci/run does)"
)]
#[test]
fn zone_migration_empties_a_cinder_pool_by_migrate_or_retype_and_cinders_refusals_are_clear() {
    let (nova, _one) = clean_cloud_with_cinder();
    // On pool1: one volume whose type no backend claims, one pinned to fake1.
    let free = nova.create_volume("wtest-zone-free", 1, "fake1", false);
    let (status, body) = nova.cinder_call(
        "POST",
        &format!("/volumes/{free}/action"),
        Some(json!({"os-retype": {"new_type": "__DEFAULT__", "migration_policy": "never"}})),
    );
    assert_eq!(status, 202, "{body}");
    wait_for(Duration::from_secs(30), || {
        let v = nova.volume(&free);
        (v["volume_type"] == "__DEFAULT__" && v["status"] == "available").then_some(())
    });
    let pinned = nova.create_volume("wtest-zone-pinned", 1, "fake1", false);
    let d = start("os-cinder-zone", "");
    let plan = d.recommend(
        "hardware_maintenance",
        "zone_migration",
        json!({"storage_pools": [{"src_pool": "cinder@fake1#pool1", "dst_pool": "cinder@fake2#pool2"}]}),
    );
    let mut kinds: Vec<(String, String)> = d
        .actions(&plan)
        .iter()
        .map(|a| {
            let p = &a["input_parameters"];
            (
                p["resource_id"].as_str().unwrap().to_string(),
                p["migration_type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    kinds.sort();
    let mut expected = vec![
        (free.clone(), "migrate".to_string()),
        (pinned.clone(), "retype".to_string()),
    ];
    expected.sort();
    assert_eq!(kinds, expected);
    d.start_plan(&plan);
    let p = wait_plan(&d, &plan, &["SUCCEEDED", "FAILED", "CANCELLED"]);
    assert_eq!(p["state"], "SUCCEEDED", "{p} {:?}", d.actions(&plan));
    for (id, volume_type) in [(&free, "__DEFAULT__"), (&pinned, "fake2")] {
        let v = nova.volume(id);
        assert_eq!(
            (
                v["os-vol-host-attr:host"].as_str(),
                v["volume_type"].as_str()
            ),
            (Some("cinder@fake2#pool2"), Some(volume_type)),
            "{v}"
        );
    }

    // A volume Cinder will not move (in error): the action fails with
    // Cinder's reason, at once.
    let (status, body) = nova.cinder_call(
        "POST",
        &format!("/volumes/{free}/action"),
        Some(json!({"os-reset_status": {"status": "error"}})),
    );
    assert_eq!(status, 202, "{body}");
    let plan = d.actuator(json!([{"action_type": "volume_migrate", "input_parameters": {
        "resource_id": free, "migration_type": "migrate", "destination_node": "cinder@fake1#pool1"}}]));
    d.start_plan(&plan);
    assert_eq!(
        wait_plan(&d, &plan, &["SUCCEEDED", "FAILED"])["state"],
        "FAILED"
    );
    let message = d.actions(&plan)[0]["status_message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("could not start") && message.contains("available or in-use"),
        "{message}"
    );
    nova.reset_volumes();
}

#[cfg_attr(
    not(test_cinder),
    ignore = "needs an OpenStack with Cinder: WITH_CINDER=1 for ../shared/openstack and WATCHER_TEST_CINDER=1 (.ci/run does)"
)]
#[test]
fn an_attached_volume_is_moved_through_cinder_and_nova_swaps_it() {
    let (nova, _one) = clean_cloud_with_cinder();
    let vm = nova.boot("wtest-attached", "compute1");
    let vol = nova.create_volume("wtest-attached-data", 1, "__DEFAULT__", false);
    let (status, body) = nova.call(
        "POST",
        &format!("/servers/{vm}/os-volume_attachments"),
        "2.79",
        Some(json!({"volumeAttachment": {"volumeId": vol}})),
    );
    assert_eq!(status, 200, "{body}");
    wait_for(Duration::from_secs(60), || {
        (nova.volume(&vol)["status"] == "in-use").then_some(())
    });
    let from = nova.volume(&vol)["os-vol-host-attr:host"]
        .as_str()
        .unwrap()
        .to_string();
    let to = if from == "cinder@fake1#pool1" {
        "cinder@fake2#pool2"
    } else {
        "cinder@fake1#pool1"
    };
    let d = start("os-cinder-attached", "");
    let plan = d.actuator(
        json!([{"action_type": "volume_migrate", "input_parameters": {
        "resource_id": vol, "migration_type": "migrate", "destination_node": to}}]),
    );
    d.start_plan(&plan);
    let p = wait_plan(&d, &plan, &["SUCCEEDED", "FAILED", "CANCELLED"]);
    assert_eq!(p["state"], "SUCCEEDED", "{p} {:?}", d.actions(&plan));
    // Cinder shows the volume in-use on its new pool a moment before
    // Nova's swap has written the attachment back: wait for it.
    let v = wait_for(Duration::from_secs(30), || {
        let v = nova.volume(&vol);
        (v["attachments"][0]["server_id"] == vm.as_str()).then_some(v)
    });
    assert_eq!(v["os-vol-host-attr:host"], to, "{v}");
    assert_eq!(v["status"], "in-use", "{v}");
    nova.reset();
    nova.reset_volumes();
}

#[cfg_attr(
    not(test_openstack),
    ignore = "needs an OpenStack: set the admin's OS_* variables (.ci/run does)"
)]
#[test]
fn stop_powers_a_server_off_through_nova_and_skips_it_once_it_is_off() {
    let nova = openstack();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    nova.reset();
    let vm = nova.boot("wtest-stop", "compute1");
    let d = start("os-stop", "");
    let stop = json!([{"action_type": "stop", "input_parameters": {"resource_id": vm}}]);
    let plan = d.actuator(stop.clone());
    d.start_plan(&plan);
    assert_eq!(
        d.wait_state(&plan, &["SUCCEEDED", "FAILED"])["state"],
        "SUCCEEDED",
        "{:?}",
        d.actions(&plan)
    );
    assert_eq!(d.actions(&plan)[0]["state"], "SUCCEEDED");
    assert_eq!(nova.server(&vm)["status"], "SHUTOFF");
    // Upstream's rule: a server already off, or gone, is skipped.
    let gone = "00000000-0000-4000-8000-00000000dead";
    let plan = d.actuator(json!([
        {"action_type": "stop", "input_parameters": {"resource_id": vm}},
        {"action_type": "stop", "input_parameters": {"resource_id": gone}},
    ]));
    d.start_plan(&plan);
    assert_eq!(
        d.wait_state(&plan, &["SUCCEEDED", "FAILED"])["state"],
        "SUCCEEDED"
    );
    let reasons: Vec<String> = d
        .actions(&plan)
        .iter()
        .map(|a| {
            assert_eq!(a["state"], "SKIPPED", "{a}");
            a["status_message"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("already stopped")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("not found")),
        "{reasons:?}"
    );
    // Its history is the usual path.
    let history = d.get(&format!("/v1/action_plans/{plan}/history"));
    assert!(history["history"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["to_state"] == "SKIPPED"));
    nova.reset();
}

#[cfg_attr(
    not(test_cinder),
    ignore = "needs an OpenStack with Cinder: WITH_CINDER=1 for ../shared/openstack and WATCHER_TEST_CINDER=1 (.ci/run does)"
)]
#[test]
fn zone_migration_retypes_to_a_type_no_backend_is_bound_to_and_cinder_places_it() {
    let (nova, _one) = clean_cloud_with_cinder();
    // __DEFAULT__ carries no volume_backend_name: any pool may serve it.
    let volume = nova.create_volume("wtest-zone-unbound", 1, "fake1", false);
    let d = start("os-cinder-unbound", "");
    let plan = d.recommend(
        "hardware_maintenance",
        "zone_migration",
        json!({"storage_pools": [{"src_pool": "cinder@fake1#pool1", "dst_type": "__DEFAULT__"}]}),
    );
    let actions = d.actions(&plan);
    assert_eq!(actions.len(), 1, "{actions:?}");
    let p = &actions[0]["input_parameters"];
    assert_eq!(
        (
            p["resource_id"].as_str(),
            p["migration_type"].as_str(),
            p["destination_type"].as_str()
        ),
        (Some(volume.as_str()), Some("retype"), Some("__DEFAULT__")),
        "{p}"
    );
    d.start_plan(&plan);
    let p = wait_plan(&d, &plan, &["SUCCEEDED", "FAILED", "CANCELLED"]);
    assert_eq!(p["state"], "SUCCEEDED", "{p} {:?}", d.actions(&plan));
    // Cinder's scheduler chose where it lives: a pool that serves it.
    let v = nova.volume(&volume);
    assert_eq!(v["volume_type"], "__DEFAULT__", "{v}");
    assert_eq!(v["status"], "available", "{v}");
}
