//! The driver against recorded Nova, Placement and Cinder answers.

#[test]
fn a_migration_started_after_the_intent_is_found_by_its_nova_record() {
    let since = chrono::DateTime::parse_from_rfc3339("2026-11-25T11:17:20Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let records = [
        json!({"id": 7, "created_at": "2026-11-25T11:14:23.000000"}),
        json!({"id": 8, "created_at": "2026-11-25T11:17:18.000000"}),
    ];
    // Two seconds before the intent: within the five allowed for clocks apart.
    assert_eq!(
        newest_migration_since(&records, "srv", "live-migration", since).as_deref(),
        Some("live-migration/srv/8")
    );
    let later = since + chrono::Duration::minutes(1);
    assert_eq!(
        newest_migration_since(&records, "srv", "live-migration", later),
        None
    );
}

use super::cinder::{pool_from, volume_from};
use super::nova::newest_migration_since;
use super::operation::*;
use super::*;
use std::sync::Mutex;

fn recorded(key: &str) -> Value {
    let all: Value =
        serde_json::from_str(include_str!("../../testdata/nova-recorded.json")).unwrap();
    all[key].clone()
}

/// Nova's answers, replayed: each (method, path prefix) has a queue;
/// the last answer of a queue repeats.
/// Method, path prefix, answers.
type Route = (String, String, Vec<(u16, Value)>);

#[derive(Default)]
struct Replay {
    routes: Mutex<Vec<Route>>,
    sent: Mutex<Vec<String>>,
}

impl Replay {
    fn on(self, method: &str, path: &str, answers: Vec<(u16, Value)>) -> Self {
        self.routes
            .lock()
            .unwrap()
            .push((method.into(), path.into(), answers));
        self
    }
}

impl Transport for Arc<Replay> {
    fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        _body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let path = url.trim_start_matches("http://nova");
        let version = headers
            .iter()
            .find(|(k, _)| *k == "OpenStack-API-Version")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        self.sent
            .lock()
            .unwrap()
            .push(format!("{method} {path} {version}").trim().to_string());
        let mut routes = self.routes.lock().unwrap();
        let route = routes
            .iter_mut()
            .filter(|(m, p, _)| m == method && path.starts_with(p.as_str()))
            .max_by_key(|(_, p, _)| p.len())
            .ok_or_else(|| format!("connection refused ({method} {path})"))?;
        Ok(if route.2.len() > 1 {
            route.2.remove(0)
        } else {
            route.2[0].clone()
        })
    }
}

struct Fixed(Mutex<u32>);

impl TokenSource for Fixed {
    fn token(&self, fresh: bool) -> Result<String, CloudError> {
        let mut n = self.0.lock().unwrap();
        if fresh {
            *n += 1;
        }
        Ok(format!("token-{n}"))
    }
}

const SERVER: &str = "eafb688f-8078-44a9-a164-0a6181dc5870";

fn nova(max: &str, replay: Replay) -> (Endpoints, Arc<Replay>) {
    let replay = Arc::new(replay.on(
        "GET",
        "/",
        vec![(
            200,
            json!({"version": {"version": max, "min_version": "2.1"}}),
        )],
    ));
    let nova = Endpoints::new(
        Box::new(Fixed(Mutex::new(0))),
        Box::new(replay.clone()),
        "http://nova".into(),
        None,
        Some("http://nova/placement".into()),
    )
    .unwrap();
    (nova, replay)
}

fn migrations_at(key: &str) -> (u16, Value) {
    (200, recorded(key))
}

#[test]
fn live_migration_states_follow_novas_record_and_the_server() {
    let running = &recorded("os_migrations_running")["migrations"][0];
    let migrating = &recorded("server_migrating")["server"];
    assert!(matches!(
        live_state(running, migrating, Some(recorded("server_migration_running")["migration"].clone())),
        OperationState::Running { progress, ref detail } if progress == 0.0 && detail.contains("no progress figures")
    ));
    let figures = json!({"memory_processed_bytes": 1073741824u64, "memory_total_bytes": 2147483648u64,
                         "disk_processed_bytes": 1, "disk_total_bytes": 4});
    assert_eq!(
        live_state(running, migrating, Some(figures)),
        OperationState::Running {
            progress: 0.5,
            detail: "memory 1024 of 2048 MiB copied, disk 25%".into()
        }
    );
    let completed = &recorded("os_migrations_completed")["migrations"][0];
    assert_eq!(
        live_state(completed, &recorded("server_after_live")["server"], None),
        OperationState::Completed
    );
    // Nova marks the record completed before the server's task clears.
    assert!(matches!(
        live_state(completed, migrating, None),
        OperationState::Running { progress, .. } if progress == 1.0
    ));
    let cancelled = &recorded("os_migrations_cancelled")["migrations"][0];
    assert_eq!(
        live_state(cancelled, &recorded("server_after_abort")["server"], None),
        OperationState::Aborted
    );
    assert_eq!(
        live_state(cancelled, migrating, None),
        OperationState::Aborting
    );
    let mut error = cancelled.clone();
    error["status"] = json!("error");
    let mut broken = recorded("server_after_abort")["server"].clone();
    broken["status"] = json!("ERROR");
    broken["fault"] = json!({"message": "libvirt said no"});
    assert_eq!(
        live_state(&error, &broken, None),
        OperationState::Failed("the instance is in ERROR on compute1: libvirt said no".into())
    );
}

#[test]
fn cold_migrations_wait_for_confirmation_and_reverts_are_aborts() {
    let finished = &recorded("os_migrations_finished")["migrations"][0];
    assert_eq!(
        resize_state(finished, &recorded("server_verify_resize")["server"]),
        OperationState::AwaitingConfirmation
    );
    let reverted = &recorded("os_migrations_reverted")["migrations"][0];
    assert_eq!(
        resize_state(reverted, &recorded("server_after_revert")["server"]),
        OperationState::Aborted
    );
}

#[test]
fn pools_know_their_zone_and_the_volume_types_of_their_backend() {
    let replay = Arc::new(
        Replay::default()
            .on(
                "GET",
                "/",
                vec![(
                    200,
                    json!({"version": {"version": "2.96", "min_version": "2.1"}}),
                )],
            )
            .on(
                "GET",
                "/volume/scheduler-stats/get_pools",
                vec![(
                    200,
                    json!({"pools": [
                {"name": "cinder@fake1#pool1", "capabilities": {"volume_backend_name": "fake1",
                 "total_capacity_gb": 100, "free_capacity_gb": 40}},
                {"name": "cinder@fake2#pool2", "capabilities": {"volume_backend_name": "fake2",
                 "total_capacity_gb": 100, "free_capacity_gb": 90}}]}),
                )],
            )
            .on(
                "GET",
                "/volume/os-services",
                vec![(
                    200,
                    json!({"services": [
                {"binary": "cinder-volume", "host": "cinder@fake1", "zone": "az-a"},
                {"binary": "cinder-volume", "host": "cinder@fake2", "zone": "az-b"}]}),
                )],
            )
            .on(
                "GET",
                "/volume/types",
                vec![(
                    200,
                    json!({"volume_types": [
                {"name": "fake1", "extra_specs": {"volume_backend_name": "fake1"}},
                {"name": "gold", "extra_specs": {"volume_backend_name": "fake1", "qos": "x"}},
                {"name": "fake2", "extra_specs": {"volume_backend_name": "fake2"}},
                {"name": "anywhere", "extra_specs": {}}]}),
                )],
            ),
    );
    let n = Endpoints::new(
        Box::new(Fixed(Mutex::new(0))),
        Box::new(replay),
        "http://nova".into(),
        Some("http://nova/volume".into()),
        None,
    )
    .unwrap();
    let pools = n.storage_pools().unwrap();
    let summary: Vec<(&str, &str, Vec<String>)> = pools
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.availability_zone.as_str(),
                p.volume_types.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "cinder@fake1#pool1",
                "az-a",
                vec!["fake1".to_string(), "gold".to_string()]
            ),
            ("cinder@fake2#pool2", "az-b", vec!["fake2".to_string()]),
        ]
    );
}

#[test]
fn hosts_take_placements_inventories_and_novas_service_state() {
    const RP: &str = "5d3c2f3e-8a8b-4f56-9c43-0a6e2d1b7e11";
    let hypervisors = json!({"hypervisors": [
        {"id": RP, "hypervisor_hostname": "compute1", "state": "up", "status": "enabled",
         "vcpus": 16, "memory_mb": 32768, "local_gb": 500, "service": {"host": "compute1"}},
        {"id": "6e4d3f4f-9b9c-4a67-8d54-1b7f3e2c8f22", "hypervisor_hostname": "compute2", "state": "down",
         "status": "disabled", "vcpus": 8, "memory_mb": 8192, "local_gb": 100,
         "service": {"host": "compute2", "disabled_reason": "broken"}}]});
    let inventories = json!({"resource_provider_generation": 3, "inventories": {
        "VCPU": {"total": 16, "reserved": 2, "allocation_ratio": 4.0},
        "MEMORY_MB": {"total": 32768, "reserved": 512, "allocation_ratio": 1.5},
        "DISK_GB": {"total": 500, "reserved": 10, "allocation_ratio": 1.0}}});
    let (n, _) = nova(
        "2.96",
        Replay::default()
            .on("GET", "/os-hypervisors/detail", vec![(200, hypervisors)])
            .on("GET", "/os-services", vec![(200, json!({"services": []}))])
            .on(
                "GET",
                "/os-aggregates",
                vec![(200, json!({"aggregates": []}))],
            )
            .on(
                "GET",
                &format!("/placement/resource_providers/{RP}/inventories"),
                vec![(200, inventories)],
            )
            // compute2's provider is not in Placement: its hypervisor's figures stand.
            .on(
                "GET",
                "/placement/resource_providers/",
                vec![(404, json!({}))],
            ),
    );
    let hosts = n.compute_nodes().unwrap();
    let c1 = &hosts[0];
    assert_eq!(
        (
            c1.vcpus.capacity(),
            c1.ram_mb.capacity(),
            c1.disk_gb.capacity()
        ),
        (56, 48384, 490)
    );
    assert!(c1.available());
    let c2 = &hosts[1];
    assert_eq!(c2.vcpus, Inventory::whole(8));
    assert_eq!(c2.ram_mb, Inventory::whole(8192));
    assert!(!c2.service_up && !c2.service_enabled && !c2.available());
}

#[test]
fn an_abort_is_sent_at_2_65_and_a_lost_race_is_understood() {
    let path = format!("/os-migrations?instance_uuid={SERVER}");
    let abort = format!("/servers/{SERVER}/migrations/1");
    // Accepted.
    let (n, sent) = nova(
        "2.104",
        Replay::default()
            .on("GET", &path, vec![migrations_at("os_migrations_running")])
            .on("DELETE", &abort, vec![(202, Value::Null)]),
    );
    n.abort(&format!("live-migration/{SERVER}/1")).unwrap();
    assert!(sent
        .sent
        .lock()
        .unwrap()
        .contains(&format!("DELETE {abort} compute 2.65")));

    // Nova's 409 after the migration had ended: it finished first.
    let mut completed = recorded("os_migrations_completed");
    completed["migrations"][0]["id"] = json!(1);
    completed["migrations"][0]["instance_uuid"] = json!(SERVER);
    let (n, _) = nova(
        "2.104",
        Replay::default()
            .on(
                "GET",
                &path,
                vec![migrations_at("os_migrations_running"), (200, completed)],
            )
            .on("DELETE", &abort, vec![(409, recorded("abort_again"))]),
    );
    assert!(matches!(
        n.abort(&format!("live-migration/{SERVER}/1")),
        Err(CloudError::AlreadyFinished(_))
    ));

    // A 409 while it still runs is a real refusal, with Nova's words.
    let (n, _) = nova(
        "2.104",
        Replay::default()
            .on("GET", &path, vec![migrations_at("os_migrations_running")])
            .on("DELETE", &abort, vec![(409, recorded("abort_again"))]),
    );
    let err = n.abort(&format!("live-migration/{SERVER}/1")).unwrap_err();
    assert!(
        matches!(&err, CloudError::Conflict(m) if m.contains("409") && m.contains("invalid state")),
        "{err}"
    );
}

#[test]
fn aborts_nova_cannot_do_are_refused_before_asking() {
    assert!(matches!(
        abort_precheck("post-migrating", Microversion(2, 104)),
        Some(CloudError::PastPointOfNoReturn(_))
    ));
    assert!(matches!(
        abort_precheck("queued", Microversion(2, 60)),
        Some(CloudError::Conflict(m)) if m.contains("2.65")
    ));
    assert_eq!(abort_precheck("queued", Microversion(2, 65)), None);
    assert!(matches!(
        abort_precheck("completed", Microversion(2, 104)),
        Some(CloudError::AlreadyFinished(_))
    ));
}

#[test]
fn a_live_migration_is_identified_by_the_migration_record_it_creates() {
    let path = format!("/os-migrations?instance_uuid={SERVER}");
    let mut newer = recorded("os_migrations_cancelled");
    let mut second = newer["migrations"][0].clone();
    second["id"] = json!(7);
    second["status"] = json!("accepted");
    newer["migrations"]
        .as_array_mut()
        .unwrap()
        .insert(0, second);
    let (n, replay) = nova(
        "2.104",
        Replay::default()
            .on(
                "GET",
                &path,
                vec![migrations_at("os_migrations_cancelled"), (200, newer)],
            )
            .on(
                "POST",
                &format!("/servers/{SERVER}/action"),
                vec![(202, Value::Null)],
            ),
    );
    assert_eq!(
        n.live_migrate(SERVER, Some("compute2")).unwrap(),
        format!("live-migration/{SERVER}/7")
    );
    assert!(replay
        .sent
        .lock()
        .unwrap()
        .contains(&format!("POST /servers/{SERVER}/action compute 2.25")));
}

#[test]
fn errors_are_classified_and_old_clouds_are_told_what_they_lack() {
    // 409 on start (another task in progress) is worth retrying.
    let path = format!("/os-migrations?instance_uuid={SERVER}");
    let (n, _) = nova(
        "2.104",
        Replay::default()
            .on("GET", &path, vec![migrations_at("os_migrations_cancelled")])
            .on(
                "POST",
                &format!("/servers/{SERVER}/action"),
                vec![(409, recorded("live_to_unknown_host"))],
            ),
    );
    let err = n.live_migrate(SERVER, Some("nowhere")).unwrap_err();
    assert!(
        matches!(&err, CloudError::Transient(m) if m.contains("task_state migrating")),
        "{err}"
    );
    // 404 is NotFound, 5xx transient, 401 logs in again once.
    let (n, replay) = nova(
        "2.104",
        Replay::default().on(
            "GET",
            "/servers/",
            vec![
                (401, Value::Null),
                (404, recorded("server_404")),
                (503, json!({"computeFault": {"message": "busy"}})),
            ],
        ),
    );
    assert_eq!(
        n.instance("00000000-0000-0000-0000-000000000000").unwrap(),
        None
    );
    assert!(replay.sent.lock().unwrap().len() >= 3);
    assert!(matches!(
        n.instance("00000000-0000-0000-0000-000000000000"),
        Err(CloudError::Transient(m)) if m.contains("503 busy")
    ));
    // A cloud at 2.20 cannot live-migrate the way we ask.
    let (old, _) = nova("2.20", Replay::default());
    let err = old.live_migrate(SERVER, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "live migration needs compute API 2.25; this cloud offers up to 2.20"
    );
    // Cold migrations and resizes have no abort in Nova.
    assert!(matches!(
        old.abort(&format!("migration/{SERVER}/3")),
        Err(CloudError::NotAbortable(_))
    ));
}

#[test]
fn cinder_volume_migrations_are_followed_by_migration_status_and_host() {
    let pool = "node2@lvm#pool";
    let v = |status: Value, host: &str| json!({"migration_status": status, "os-vol-host-attr:host": host});
    assert!(matches!(
        volume_state(&v(json!("migrating"), "node1@lvm#pool"), pool),
        OperationState::Running { .. }
    ));
    assert_eq!(
        volume_state(&v(json!("success"), pool), pool),
        OperationState::Completed
    );
    assert!(matches!(
        volume_state(&v(json!("error"), "node1@lvm#pool"), pool),
        OperationState::Failed(m) if m.contains("failed")
    ));
    // Without Cinder in the catalog, volume actions say what is missing.
    let (n, _) = nova("2.104", Replay::default());
    let err = n.migrate_volume("v1", pool).unwrap_err();
    assert!(
        err.to_string().contains("no block-storage endpoint"),
        "{err}"
    );
}

#[test]
fn cinder_pools_and_volumes_read_as_cinder_writes_them() {
    let p = pool_from(&json!({"name": "node1@lvm#lvm", "capabilities": {
        "total_capacity_gb": "100.5", "free_capacity_gb": 40, "allocated_capacity_gb": 70,
        "max_over_subscription_ratio": "20.0"}}));
    assert_eq!(p.name, "node1@lvm#lvm");
    assert_eq!((p.total_capacity_gb, p.free_capacity_gb), (100.5, 40.0));
    assert_eq!(
        (p.allocated_capacity_gb, p.max_over_subscription_ratio),
        (70.0, 20.0)
    );
    let thin = pool_from(
        &json!({"name": "ceph", "capabilities": {"total_capacity_gb": "infinite", "free_capacity_gb": "unknown"}}),
    );
    assert!(thin.total_capacity_gb.is_infinite() && thin.free_capacity_gb.is_infinite());
    let v = volume_from(
        &json!({"id": "v1", "name": "data", "size": 10, "status": "in-use",
        "os-vol-host-attr:host": "node1@lvm#lvm", "os-vol-tenant-attr:tenant_id": "p1",
        "attachments": [{"server_id": "s1"}]}),
    );
    assert_eq!(
        (v.attached_to.as_deref(), v.project_id.as_str()),
        (Some("s1"), "p1")
    );
    // Without Cinder in the catalog there is simply no storage.
    let (n, _) = nova("2.104", Replay::default());
    assert_eq!(n.storage_pools().unwrap(), vec![]);
    assert_eq!(n.volumes().unwrap(), vec![]);
}

#[test]
fn operation_ids_round_trip_and_nonsense_is_not_found() {
    assert_eq!(
        Op::parse("live-migration/abc/12").unwrap(),
        Op::Live {
            server: "abc".into(),
            migration: 12
        }
    );
    assert_eq!(
        Op::parse("volume-migration/v1/host@lvm#pool").unwrap(),
        Op::Volume {
            volume: "v1".into(),
            pool: "host@lvm#pool".into()
        }
    );
    assert!(matches!(
        Op::parse("live-migration/abc/x"),
        Err(CloudError::NotFound { .. })
    ));
    assert!(matches!(
        Op::parse("sim-42"),
        Err(CloudError::NotFound { .. })
    ));
}
