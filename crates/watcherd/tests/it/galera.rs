//! A three-node Galera cluster under watcherd, as Kolla and OpenStack-Ansible
//! deploy MariaDB: two watcherd processes writing through two nodes at once
//! (their transactions conflict at certification, are run again, and
//! nothing is lost or applied twice), and a node killed with -9 mid-plan
//! (the plan goes on through the others, a cancel sent meanwhile is
//! honoured). The test kit makes the cluster on loopback (`GaleraCluster`).

use watcher_testkit as common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

fn nops(n: usize) -> Value {
    json!((0..n)
        .map(|i| json!({"action_type": "nop", "input_parameters": {"message": format!("m{i}")}}))
        .collect::<Vec<_>>())
}

#[cfg_attr(
    not(test_mariadb),
    ignore = "needs MariaDB's server programs and galera-4: set WATCHER_TEST_MARIADB=mysql://root@127.0.0.1:3306 (.ci/run does)"
)]
#[test]
fn two_watcherds_writing_through_two_nodes_conflict_are_run_again_and_lose_nothing() {
    let root = temp_dir("galera-two-writers");
    let cluster = GaleraCluster::start(&root, 3);
    let daemons: Vec<Daemon> = [0, 1]
        .iter()
        .map(|&n| {
            let dir = root.join(format!("watcherd{n}"));
            std::fs::create_dir_all(&dir).unwrap();
            let url = cluster.url(&[n], "watcher");
            // Two controllers: each its own host name, as its own applier.
            let config = shared_config_on(
                &dir,
                &format!("controller-{n}"),
                &url,
                "",
                "[applier]\nsweep_interval_secs = 0.5\npoll_interval_ms = 20",
            );
            Daemon::start_with_config(&dir, config, None)
        })
        .collect();
    // Both create plans at once, each through its own node (an audit is
    // cancelled while another plan is ONGOING, as upstream's: all plans
    // first), then start them all at once.
    let plans: Vec<(usize, String)> = std::thread::scope(|s| {
        let workers: Vec<_> = daemons
            .iter()
            .enumerate()
            .map(|(i, d)| {
                s.spawn(move || {
                    (0..12)
                        .map(|_| (i, d.actuator(nops(5))))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    std::thread::scope(|s| {
        for (i, d) in daemons.iter().enumerate() {
            let mine: Vec<&String> = plans
                .iter()
                .filter(|(o, _)| *o == i)
                .map(|(_, p)| p)
                .collect();
            s.spawn(move || {
                for plan in mine {
                    d.start_plan(plan);
                }
            });
        }
    });
    for (i, plan) in &plans {
        let d = &daemons[*i];
        let p = d.wait_state(plan, &["SUCCEEDED", "FAILED", "CANCELLED"]);
        assert_eq!(p["state"], "SUCCEEDED", "{p}; log: {}", d.log());
        assert_history_unbroken(d, plan);
        // The other process, through the other node, sees the same.
        assert_eq!(daemons[1 - i].plan(plan)["state"], "SUCCEEDED");
    }
    let logs: String = daemons.iter().map(|d| d.log()).collect();
    assert!(
        logs.contains("the server rolled the group back; running it again"),
        "no certification conflict was met (nothing proven): {logs}"
    );
    assert!(!logs.contains(" 500 "), "{logs}");
    // Each plan ran on one applier, start to end: named locks are each
    // node's own, so neither applier may read the other's as free and
    // take its plans (a race that once took a plan from a living one).
    assert!(
        logs.matches("no applier presence: the database is a Galera cluster")
            .count()
            == 2,
        "{logs}"
    );
    assert!(!logs.contains("whose applier is gone"), "{logs}");
    assert!(!logs.contains("expected ONGOING"), "{logs}");
    assert!(!logs.contains("plan run failed"), "{logs}");
}

#[cfg_attr(
    not(test_mariadb),
    ignore = "needs MariaDB's server programs and galera-4: set WATCHER_TEST_MARIADB=mysql://root@127.0.0.1:3306 (.ci/run does)"
)]
#[test]
fn a_node_killed_mid_plan_the_plan_goes_on_through_the_others_and_a_cancel_is_honoured() {
    let root = temp_dir("galera-node-killed");
    let cluster = GaleraCluster::start(&root, 3);
    let dir = root.join("watcherd");
    std::fs::create_dir_all(&dir).unwrap();
    // The URL names the three nodes; the first answers until it dies.
    let url = cluster.url(&[0, 1, 2], "watcher");
    let d = Daemon::start_with_config(
        &dir,
        write_config_on(&dir, &url, "", "max_concurrent_plans = 4", ""),
        None,
    );
    let sleeps = |n: usize, secs: f64| {
        json!((0..n)
            .map(|_| json!({"action_type": "sleep", "input_parameters": {"duration": secs}}))
            .collect::<Vec<_>>())
    };
    let runs_on = d.actuator(sleeps(4, 1.0));
    let cancelled = d.actuator(sleeps(1, 60.0));
    d.start_plan(&runs_on);
    d.start_plan(&cancelled);
    d.wait_action_state(&cancelled, "sleep", "ONGOING");

    cluster.kill(0);
    // The cancel goes through as soon as a node serves watcherd again.
    let started = std::time::Instant::now();
    wait_for(Duration::from_secs(20), || {
        let (status, body) = d.patch_state(&cancelled, "CANCELLING");
        assert!(status == 200 || status == 503, "{status}: {body}");
        (status == 200).then_some(())
    });
    eprintln!("cancel accepted {:?} after the kill", started.elapsed());
    let p = d.wait_state(&cancelled, &["SUCCEEDED", "FAILED", "CANCELLED"]);
    assert_eq!(p["state"], "CANCELLED", "{p}; log: {}", d.log());
    let p = d.wait_state(&runs_on, &["SUCCEEDED", "FAILED", "CANCELLED"]);
    assert_eq!(p["state"], "SUCCEEDED", "{p}; log: {}", d.log());
    assert_history_unbroken(&d, &runs_on);
    assert_history_unbroken(&d, &cancelled);
    assert_eq!(d.raw("GET", "/healthz", "").0, 200);
}
