//! The decision engine's table: strategies on generated clouds.

use crate::report::ms;
use serde_json::json;
use std::time::{Duration, Instant};
use watcher_cloud::scenario::Scenario;
use watcher_cloud::simulated::SimulatedCloud;

/// One strategy on one generated cloud.
pub(crate) struct StrategyRow {
    pub(crate) hosts: usize,
    pub(crate) instances: usize,
    pub(crate) strategy: String,
    pub(crate) time: Duration,
    pub(crate) outcome: String,
}

/// Strategies on generated clouds of each size (20 instances per host on
/// average), timed on their own: the model and metrics are built first
/// (their time is reported in the model row), as the decision engine does.
// Long because it times each strategy on each size and the reference loop beside it, one
// block per row kind.
pub(crate) fn strategy_rows(sizes: &[usize]) -> anyhow::Result<Vec<StrategyRow>> {
    use watcher_decision::consolidation::upstream_basic_reference;
    use watcher_decision::metrics::SimulatedMetrics;
    use watcher_decision::model::ClusterModel;
    use watcher_decision::strategies::{apply_parameters, execute, STRATEGIES};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut rows = vec![];
    for &hosts in sizes {
        let scenario = Scenario::generated(hosts, 20, 1, false);
        let started = Instant::now();
        let cloud = SimulatedCloud::new(&scenario);
        let model = rt.block_on(ClusterModel::from_cloud(&cloud))?;
        let metrics = SimulatedMetrics::new(&scenario).values(&model);
        let instances = model.instances.len();
        rows.push(StrategyRow {
            hosts,
            instances,
            strategy: "(cluster model + metrics)".into(),
            time: started.elapsed(),
            outcome: String::new(),
        });
        let value = |s: &watcher_decision::strategies::Solution, n: &str| {
            s.efficacy_indicators
                .iter()
                .find(|i| i.name == n)
                .map_or(0.0, |i| i.value)
        };
        for (name, params) in [
            ("basic", json!({})),
            ("vm_workload_consolidation", json!({})),
            ("workload_balance", json!({"threshold": 35})),
            ("workload_stabilization", json!({})),
            (
                "node_resource_consolidation",
                json!({"host_choice": "specify"}),
            ),
        ] {
            let def = STRATEGIES
                .iter()
                .find(|s| s.name == name)
                .expect("known strategy");
            let params =
                apply_parameters(&(def.parameters_spec)(), &params).map_err(anyhow::Error::msg)?;
            let started = Instant::now();
            let s = execute(name, &params, &model, &metrics)?;
            let time = started.elapsed();
            let outcome = if name == "workload_stabilization" {
                format!(
                    "{} migrations; weighted std dev of CPU load {:.3} -> {:.3}",
                    value(&s, "instance_migrations_count"),
                    value(&s, "standard_deviation_before_audit"),
                    value(&s, "standard_deviation_after_audit"),
                )
            } else if name == "workload_balance" {
                format!(
                    "{} migrations; CPU use std dev {:.1} -> {:.1} points",
                    value(&s, "instance_migrations_count"),
                    value(&s, "standard_deviation_before_audit"),
                    value(&s, "standard_deviation_after_audit"),
                )
            } else {
                format!(
                    "{} nodes released, {} migrations",
                    value(&s, "released_compute_nodes_count"),
                    value(&s, "instance_migrations_count"),
                )
            };
            rows.push(StrategyRow {
                hosts,
                instances,
                strategy: name.into(),
                time,
                outcome,
            });
        }
        let started = Instant::now();
        let (released, migrations) = upstream_basic_reference(&model, &metrics)?;
        rows.push(StrategyRow {
            hosts,
            instances,
            strategy: "upstream's basic algorithm (reference)".into(),
            time: started.elapsed(),
            outcome: format!("{released} nodes released, {migrations} migrations"),
        });
    }
    Ok(rows)
}

pub(crate) fn print_strategy_rows(rows: &[StrategyRow]) {
    println!();
    println!("| hosts | instances | strategy | time | outcome |");
    println!("|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            r.hosts,
            r.instances,
            r.strategy,
            ms(r.time),
            r.outcome
        );
    }
}

/// The decision engine's table, on clouds of the sizes of a quick or a full run.
pub fn print_table(quick: bool) -> anyhow::Result<()> {
    let sizes: &[usize] = if quick {
        &[100, 1000]
    } else {
        &[100, 500, 1000, 2000, 5000]
    };
    print_strategy_rows(&strategy_rows(sizes)?);
    Ok(())
}
