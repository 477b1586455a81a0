//! Taking over an upstream Watcher's database, and the way back, at size:
//! upstream Watcher 17's tables filled with PLANS plans of ACTIONS actions
//! each (one audit per plan, an efficacy indicator each, most plans
//! finished, a tenth cancelled, a tenth recommended), then `watcherd db
//! upgrade` and `watcherd db export-upstream` timed as an operator runs them.

use crate::report::print_rows;
use anyhow::{bail, Context};
use mysql::prelude::Queryable;
use std::process::Command;
use std::time::Instant;

/// Upstream Watcher 17.0's schema, as its migrations make it.
const UPSTREAM_SCHEMA: &str =
    include_str!("../../watcher-testkit/fixtures/upstream-watcher-17-schema.sql");

/// The database the bench makes (dropped and made again on `server`).
const DATABASE: &str = "watcher_bench_takeover";

pub fn print_takeover(server: &str, plans: usize, actions: usize) -> anyhow::Result<()> {
    let server = server.trim_end_matches('/');
    let mut admin = mysql::Conn::new(
        mysql::Opts::from_url(server).with_context(|| format!("not a MariaDB URL: {server}"))?,
    )
    .with_context(|| format!("cannot reach MariaDB at {server}"))?;
    let url = format!("{server}/{DATABASE}");
    let fill = Instant::now();
    admin.query_drop(format!(
        "DROP DATABASE IF EXISTS {DATABASE}; CREATE DATABASE {DATABASE} CHARACTER SET utf8"
    ))?;
    let mut db = mysql::Conn::new(mysql::Opts::from_url(&url)?)?;
    db.query_drop(UPSTREAM_SCHEMA)?;
    fill_upstream(&mut db, plans, actions)?;
    let filled = fill.elapsed().as_secs_f64();
    println!(
        "upstream Watcher 17's tables: {plans} plans, {} actions, {plans} audits, filled in {filled:.1} s",
        plans * actions
    );

    let watcherd = std::env::current_exe()?.with_file_name("watcherd");
    let run = |args: &[&str]| -> anyhow::Result<f64> {
        let started = Instant::now();
        let out = Command::new(&watcherd)
            .args(args)
            .args(["--database", &url])
            .env_remove("WATCHER_CONFIG")
            .output()
            .with_context(|| format!("cannot run {}", watcherd.display()))?;
        let took = started.elapsed().as_secs_f64();
        if !out.status.success() {
            bail!(
                "watcherd {args:?} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(took)
    };
    let import = run(&["db", "upgrade"])?;
    let export = run(&["db", "export-upstream", "--force"])?;
    let again = run(&["db", "upgrade"])?;
    let objects = plans * (actions + 2);
    let rate = |secs: f64| format!("{secs:.1} s ({:.0} objects/s)", objects as f64 / secs);
    print_rows(&[
        (
            format!(
                "db upgrade: takeover of {plans} plans, {} actions",
                plans * actions
            ),
            rate(import),
            "minutes, not hours",
        ),
        (
            "db export-upstream: the way back, every row updated".into(),
            rate(export),
            "-",
        ),
        (
            "db upgrade again after the way back (nothing changed)".into(),
            rate(again),
            "-",
        ),
    ]);
    Ok(())
}

/// Upstream's rows, as its services write them, made by the server from
/// sequences (MariaDB's `seq_1_to_N` tables) rather than sent row by row.
fn fill_upstream(db: &mut mysql::Conn, plans: usize, actions: usize) -> anyhow::Result<()> {
    let uuid = |kind: &str, n: &str| {
        format!("CONCAT(LPAD(HEX({n}), 8, '0'), '-0000-4000-8000-{kind}00000000')")
    };
    let audit_uuid = uuid("aaaa", "seq");
    let plan_uuid = uuid("bbbb", "seq");
    // Action k of plan p: p in the first group, k in the second.
    let action_uuid = |p: &str, k: &str| {
        format!("CONCAT(LPAD(HEX({p}), 8, '0'), '-', LPAD(HEX({k}), 4, '0'), '-4000-8000-cccc00000000')")
    };
    db.query_drop(format!(
        "INSERT INTO goals (created_at, deleted, uuid, name, display_name, efficacy_specification) \
         VALUES (UTC_TIMESTAMP(), 0, UUID(), 'dummy', 'Dummy goal', '[]'); \
         INSERT INTO strategies (created_at, deleted, uuid, name, display_name, goal_id, parameters_spec) \
         VALUES (UTC_TIMESTAMP(), 0, UUID(), 'dummy', 'Dummy strategy', 1, '{{}}'); \
         INSERT INTO audits (created_at, updated_at, deleted, uuid, audit_type, state, parameters, goal_id, \
         strategy_id, scope, auto_trigger, name, hostname, `force`) \
         SELECT UTC_TIMESTAMP() - INTERVAL seq MINUTE, UTC_TIMESTAMP(), 0, {audit_uuid}, 'ONESHOT', \
         'SUCCEEDED', '{{}}', 1, 1, '[]', 0, CONCAT('audit-', seq), 'upstream-controller', 0 \
         FROM seq_1_to_{plans}; \
         INSERT INTO action_plans (created_at, updated_at, deleted, uuid, audit_id, strategy_id, state, \
         global_efficacy, hostname) \
         SELECT UTC_TIMESTAMP() - INTERVAL seq MINUTE, UTC_TIMESTAMP(), 0, {plan_uuid}, seq, 1, \
         CASE WHEN seq % 10 = 0 THEN 'CANCELLED' WHEN seq % 10 = 1 THEN 'RECOMMENDED' ELSE 'SUCCEEDED' END, \
         '[{{\"name\": \"number_of_actions\", \"description\": \"Actions\", \"unit\": null, \"value\": {actions}}}]', \
         'upstream-controller' FROM seq_1_to_{plans}; \
         INSERT INTO efficacy_indicators (created_at, deleted, uuid, name, description, value, data, action_plan_id) \
         SELECT UTC_TIMESTAMP(), 0, {}, 'migrations', 'Instance migrations', 4, 4.5, seq FROM seq_1_to_{plans}",
        uuid("dddd", "seq")
    ))?;
    // Each plan a chain: action k waits for action k - 1.
    db.query_drop(format!(
        "INSERT INTO actions (created_at, updated_at, deleted, uuid, action_plan_id, action_type, \
         input_parameters, state, parents) \
         SELECT UTC_TIMESTAMP(), UTC_TIMESTAMP(), 0, {}, p.seq, 'nop', '{{\"message\": \"bench\"}}', \
         CASE WHEN p.seq % 10 = 1 THEN 'PENDING' WHEN p.seq % 10 = 0 AND k.seq > 1 THEN 'CANCELLED' \
         ELSE 'SUCCEEDED' END, \
         IF(k.seq = 1, '[]', CONCAT('[\"', {}, '\"]')) \
         FROM seq_1_to_{plans} p JOIN seq_1_to_{actions} k",
        action_uuid("p.seq", "k.seq"),
        action_uuid("p.seq", "k.seq - 1")
    ))?;
    Ok(())
}
