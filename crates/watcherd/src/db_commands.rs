//! `watcherd db ...`: the database commands an operator runs by hand or a
//! deployment tool runs where it ran upstream's `watcher-db-manage`.

use crate::config::Config;
use anyhow::bail;
use std::time::Instant;
use watcher_store::{DatabaseLocation, Store, TakeoverCounts};

/// How recent a report of an upstream service must be to count as running:
/// upstream's own `service_down_time` (90 s).
pub const UPSTREAM_SEEN_WITHIN_SECS: i64 = 90;

/// `watcherd db upgrade`: watcherd's schema brought up to date, then, when
/// the database also holds an upstream Watcher's tables not taken over yet,
/// every object of theirs copied into watcherd's (see
/// `docs/operations.md`, "Replacing an upstream Watcher").
pub async fn upgrade(config: &Config, force: bool) -> anyhow::Result<()> {
    let location = DatabaseLocation::parse(&config.database_url())?;
    // Opening the store applies watcherd's own migrations.
    let store = Store::open(&location, config.durability)?;
    println!("watcherd's tables are up to date.");
    let Some(upstream) = store.upstream_database(UPSTREAM_SEEN_WITHIN_SECS).await? else {
        println!("This database holds no upstream Watcher tables: nothing to take over.");
        return Ok(());
    };
    let Some(release) = upstream.release else {
        bail!(
            "upstream Watcher's tables are at alembic revision {}, which watcherd does not know \
             (it knows {}); bring them to Watcher 17 with upstream's `watcher-db-manage upgrade` \
             first. Nothing was copied.",
            upstream.revision,
            watcher_store::KNOWN_REVISIONS
                .iter()
                .map(|(r, n)| format!("{r}, {n}"))
                .collect::<Vec<_>>()
                .join("; ")
        );
    };
    if let Some(last) = &upstream.last_sync {
        if last.direction == "import" && !force {
            println!(
                "Upstream Watcher's objects were taken over on {} already; nothing copied. \
                 (--force copies them again, putting upstream's state over watcherd's.)",
                last.at.format("%Y-%m-%d %H:%M:%S UTC")
            );
            return Ok(());
        }
    }
    if !upstream.live_services.is_empty() && !force {
        let seen: Vec<String> = upstream
            .live_services
            .iter()
            .map(|(name, host, ago)| format!("{name} on {host} ({ago} s ago)"))
            .collect();
        bail!(
            "upstream Watcher still runs: its services reported within the last {UPSTREAM_SEEN_WITHIN_SECS} s: {}. \
             Stop upstream's API, decision engine and applier first (two appliers on one plan \
             would run its actions twice), then run this again; add --force if they are \
             stopped and their last report is simply recent. Nothing was copied.",
            seen.join(", ")
        );
    }
    println!(
        "Taking over upstream Watcher's objects ({release}, alembic revision {})...",
        upstream.revision
    );
    let started = Instant::now();
    let counts = store.take_over_upstream().await?;
    print_takeover(&counts, started.elapsed().as_secs_f64());
    store.truncate_wal().await?;
    Ok(())
}

fn print_takeover(c: &TakeoverCounts, secs: f64) {
    println!("Taken over in {secs:.1} s, in one transaction:");
    for (what, n) in [
        ("goals", c.goals),
        ("strategies", c.strategies),
        ("audit templates", c.audit_templates),
        ("audits", c.audits),
        ("action plans", c.action_plans),
        ("actions", c.actions),
        ("services", c.services),
        ("scoring engines", c.scoring_engines),
    ] {
        println!("  {what:<16}{n:>10}");
    }
    if c.deleted > 0 {
        println!("  ({} of them soft-deleted, and kept so)", c.deleted);
    }
    if !c.to_reconcile.is_empty() {
        println!(
            "{} plans upstream left ONGOING or CANCELLING; the first watcherd applier to start \
             takes them over and reconciles their actions with the cloud:",
            c.to_reconcile.len()
        );
        for p in &c.to_reconcile {
            println!("  {p}");
        }
    }
    println!("Upstream's tables are unchanged; upstream Watcher can still be started on them.");
}

/// `watcherd db export-upstream`: the way back to upstream Watcher. Every
/// object of watcherd's written into upstream's tables in the same database
/// (see `docs/operations.md`, "Replacing an upstream Watcher").
pub async fn export_upstream(config: &Config, force: bool) -> anyhow::Result<()> {
    let location = DatabaseLocation::parse(&config.database_url())?;
    let store = Store::open(&location, config.durability)?;
    let Some(upstream) = store.upstream_database(UPSTREAM_SEEN_WITHIN_SECS).await? else {
        bail!(
            "this database holds no upstream Watcher tables to export to: upstream's \
             `watcher-db-manage upgrade` makes them (Watcher 17), on the database its \
             watcher.conf names. Nothing was written."
        );
    };
    if upstream.release.is_none() {
        bail!(
            "upstream Watcher's tables are at alembic revision {}, which watcherd does not know; \
             nothing was written",
            upstream.revision
        );
    }
    let now = chrono::Utc::now();
    let running: Vec<String> = store
        .list_services(10_000, None, false)
        .await?
        .into_iter()
        .filter(|s| {
            s.last_seen_up
                .is_some_and(|t| (now - t).num_seconds() < UPSTREAM_SEEN_WITHIN_SECS)
        })
        .map(|s| format!("{} on {}", s.name, s.host))
        .collect();
    if !running.is_empty() && !force {
        bail!(
            "watcherd still runs: its services reported within the last {UPSTREAM_SEEN_WITHIN_SECS} s: {}. \
             Stop every watcherd process on this database first, then run this again; add \
             --force if they are stopped and their last report is simply recent. Nothing was written.",
            running.join(", ")
        );
    }
    let started = Instant::now();
    let counts = store.export_to_upstream().await?;
    println!(
        "Written into upstream Watcher's tables in {:.1} s, in one transaction:",
        started.elapsed().as_secs_f64()
    );
    for (what, n) in [
        ("audit templates", counts.audit_templates),
        ("audits", counts.audits),
        ("action plans", counts.action_plans),
        ("actions", counts.actions),
    ] {
        println!("  {what:<16}{n:>10}");
    }
    if counts.deleted > 0 {
        println!("  ({} of them soft-deleted, and kept so)", counts.deleted);
    }
    if counts.catalogue_added > 0 {
        println!(
            "{} goals or strategies upstream did not have were added; upstream's sync retires \
             those its plugins do not know, with the audits on them.",
            counts.catalogue_added
        );
    }
    if !counts.notes.is_empty() {
        println!("Changed to fit upstream's columns:");
        for n in &counts.notes {
            println!("  {n}");
        }
    }
    println!(
        "Upstream Watcher can be started on this database now. watcherd's history, action \
         journal and leases stay in its own tables; `watcherd db upgrade` brings upstream's \
         objects back over later."
    );
    Ok(())
}
