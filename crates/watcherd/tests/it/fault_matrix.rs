//! kill -9 of each part of a split deployment at seeded random moments
//! during a plan of live migrations, with or without a cancel, with or
//! without restarting what was killed. After each run: the plan and every
//! action are final, each action's history is a legal path, the cloud
//! agrees with every recorded outcome, and every state change's
//! notification reached RabbitMQ (at least once, one id per message).

use watcher_testkit as common;

use common::{
    assert_history_unbroken, broker, drain, rabbit_url, rabbitmq_configured, scenario_file,
    shared_config, temp_dir, wait_for, Daemon, Part, SimCloud,
};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use watcher_cloud::rng::SplitMix64;

fn config(dir: &Path, host: &str, db: &Path, sim: &SimCloud, topic: Option<&str>) -> PathBuf {
    let notifications = topic.map_or(String::new(), |t| {
        format!(
            "\n\n[notifications]\ntransport_url = \"{}\"\ntopics = [\"{t}\"]\ntimeout_secs = 2\nlease_secs = 1.5",
            rabbit_url()
        )
    });
    shared_config(
        dir,
        host,
        db,
        &sim.cloud_config(),
        &format!(
            "[applier]\nsweep_interval_secs = 0.3\npoll_interval_ms = 20\nshutdown_grace_secs = 0.3\nlease_secs = 1.5\n\n\
             [decision_engine]\nsweep_interval_secs = 0.5{notifications}"
        ),
    )
}

/// One process of the deployment, restartable under the same name.
enum Process {
    Api(Daemon),
    Other(Part),
}

struct Deployment {
    root: PathBuf,
    db: PathBuf,
    /// The notification topic, when RabbitMQ is there to check them.
    topic: Option<String>,
    parts: Vec<(String, &'static str, Option<Process>)>,
}

impl Deployment {
    fn start_part(&self, host: &str, role: &'static str, sim: &SimCloud) -> Process {
        let dir = self.root.join(host);
        let cfg = config(&dir, host, &self.db, sim, self.topic.as_deref());
        if role == "api" {
            return Process::Api(Daemon::start_command(&dir, cfg, None, Some("api")));
        }
        Process::Other(Part::start(role, &cfg))
    }

    fn api(&self) -> &Daemon {
        match &self.parts[0].2 {
            Some(Process::Api(d)) => d,
            _ => panic!("the API is down"),
        }
    }

    fn kill(&mut self, i: usize) {
        match self.parts[i].2.take() {
            Some(Process::Api(mut d)) => d.kill9(),
            Some(Process::Other(mut p)) => p.kill9(),
            None => {}
        }
    }

    fn restart(&mut self, i: usize, sim: &SimCloud) {
        if self.parts[i].2.is_none() {
            let (host, role) = (self.parts[i].0.clone(), self.parts[i].1);
            self.parts[i].2 = Some(self.start_part(&host, role, sim));
        }
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for i in 0..self.parts.len() {
            self.kill(i);
        }
    }
}

/// Waits until every state change of `plan` that upstream notifies has
/// been received on `topic`; checks that a message sent twice was the same
/// message both times.
fn check_notifications(api: &Daemon, plan: &str, topic: &str, what: &str) {
    let history = api.get(&format!("/v1/action_plans/{plan}/history"))["history"].clone();
    let expected: std::collections::BTreeSet<u64> = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| {
            use watcher_core::{Entity, EntityState};
            let entity = Entity::parse(h["resource"].as_str().unwrap()).unwrap();
            let state = |s: &str| EntityState::parse(entity, s).unwrap();
            let from = h["from_state"].as_str().map(state);
            !watcher_notifications::payload::events(from, state(h["to_state"].as_str().unwrap()))
                .is_empty()
        })
        .map(|h| h["seq"].as_u64().unwrap())
        .collect();
    let mut c = broker();
    let mut received: std::collections::HashMap<String, Value> = Default::default();
    let seq_of = |id: &str| uuid::Uuid::parse_str(id).unwrap().as_u64_pair().1 >> 3;
    wait_for(Duration::from_secs(40), || {
        for q in ["info", "error"] {
            for m in drain(&mut c, &format!("{topic}.{q}")) {
                let id = m["message_id"].as_str().unwrap().to_string();
                if let Some(seen) = received.get(&id) {
                    assert_eq!(
                        (&seen["event_type"], &seen["payload"]),
                        (&m["event_type"], &m["payload"]),
                        "{what}: one id, two messages"
                    );
                }
                received.insert(id, m);
            }
        }
        let got: std::collections::BTreeSet<u64> = received.keys().map(|id| seq_of(id)).collect();
        expected.is_subset(&got).then_some(())
    });
    for q in ["info", "error"] {
        let _ = c.delete_queue(&format!("{topic}.{q}"));
    }
}

fn run_seed(seed: u64) {
    let mut rng = SplitMix64::new(seed);
    let root = temp_dir(&format!("faults-{seed}"));
    let sim = SimCloud::start(&scenario_file(
        &root,
        "live_migration_secs = 1.5\nabort_secs = 0.2",
        "",
    ));
    let topic = rabbitmq_configured().then(|| format!("faults-{seed}-{}", uuid::Uuid::new_v4()));
    if let Some(t) = &topic {
        // Queues first, so that nothing the relay sends is routed nowhere.
        let mut c = broker();
        for q in ["info", "error"] {
            c.declare("watcher", &format!("{t}.{q}")).unwrap();
        }
    }
    let mut dep = Deployment {
        db: root.join("watcher.db"),
        topic: topic.clone(),
        root: root.clone(),
        parts: vec![],
    };
    for (host, role) in [
        ("api-1", "api"),
        ("de-1", "decision-engine"),
        ("applier-a", "applier"),
        ("applier-b", "applier"),
    ] {
        let part = dep.start_part(host, role, &sim);
        dep.parts.push((host.to_string(), role, Some(part)));
    }
    let plan = dep.api().recommend(
        "cluster_maintaining",
        "host_maintenance",
        json!({"maintenance_node": "compute-1"}),
    );
    dep.api().start_plan(&plan);

    // The fault: a random part, at a random moment, restarted or not (the
    // API always comes back, the test needs it).
    let victim = (rng.next_u64() % 4) as usize;
    let cancel = rng.chance(0.5);
    let restart = victim == 0 || rng.chance(0.5);
    std::thread::sleep(Duration::from_millis(200 + rng.next_u64() % 2000));
    dep.kill(victim);
    std::thread::sleep(Duration::from_millis(rng.next_u64() % 1500));
    if restart {
        dep.restart(victim, &sim);
    }
    if cancel {
        let (status, body) = dep.api().patch_state(&plan, "CANCELLING");
        // It may have finished already: then the cancel is refused or a no-op.
        assert!(matches!(status, 200 | 400 | 409), "{status} {body}");
    }
    let what = format!(
        "seed {seed}: killed {} (restart {restart}), cancel {cancel}",
        dep.parts[victim].0
    );
    eprintln!("{what}");
    let p = wait_for(Duration::from_secs(40), || {
        let p = dep.api().plan(&plan);
        ["SUCCEEDED", "FAILED", "CANCELLED"]
            .contains(&p["state"].as_str().unwrap())
            .then_some(p)
    });
    let actions = dep.api().actions(&plan);
    for a in &actions {
        let state = a["state"].as_str().unwrap();
        assert!(
            ["SUCCEEDED", "FAILED", "CANCELLED", "SKIPPED"].contains(&state),
            "{what}: {a}"
        );
        if a["action_type"] == "migrate" {
            let p = &a["input_parameters"];
            let host = sim.call("instance", json!({"uuid": p["resource_id"]}))["ok"]["host"]
                .as_str()
                .unwrap()
                .to_string();
            let expected = match state {
                "SUCCEEDED" => p["destination_node"].as_str().unwrap(),
                _ => p["source_node"].as_str().unwrap(),
            };
            if state != "FAILED" {
                assert_eq!(host, expected, "{what}: {a}");
            }
        }
    }
    assert_ne!(
        p["state"], "FAILED",
        "{what}: no fault here should fail a plan: {actions:?}"
    );
    if !cancel {
        assert_eq!(p["state"], "SUCCEEDED", "{what}: {actions:?}");
    }
    assert_history_unbroken(dep.api(), &plan);
    if let Some(t) = &topic {
        check_notifications(dep.api(), &plan, t, &what);
    }
    // Nothing ran twice: one live migration per instance at most.
    let mut per_instance: std::collections::HashMap<String, usize> = Default::default();
    for o in sim.operations() {
        *per_instance
            .entry(o["resource"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    for a in actions.iter().filter(|a| a["action_type"] == "migrate") {
        let id = a["input_parameters"]["resource_id"].as_str().unwrap();
        let n = per_instance.get(id).copied().unwrap_or(0);
        assert!(n <= 1, "{what}: {id} was migrated {n} times");
    }
}

/// In CI, seeds that kill each part (the decision engine; an applier,
/// restarted or not; the API, with a cancel; the other applier, with a
/// cancel); `WATCHER_FAULT_SEEDS=N` runs seeds 1 to N instead (16 pass).
#[test]
fn kill_9_of_any_part_at_any_moment_leaves_every_plan_final_and_consistent() {
    let seeds: Vec<u64> = match std::env::var("WATCHER_FAULT_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(n) => (1..=n).collect(),
        None => vec![1, 2, 5, 6, 7],
    };
    for seed in seeds {
        run_seed(seed);
    }
}
