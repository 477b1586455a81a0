//! The default run: the applier's throughput, the four cancel cases, the
//! process's idle figures, then the decision engine's table.

use crate::applier::throughput;
use crate::cancel::{abort_during_slow_poll, cancel_latency};
use crate::fixtures::Opts;
use crate::idle::process_figures;
use crate::report::{ms, pct, print_rows, runtime};
use crate::split::cross_process_cancel;

/// Every row of the main table, measured now; `pending` overrides the
/// PENDING actions of cancel case (a).
// Long because it is the benchmark's main table: one row per measure, in the order
// docs/benchmarks.md shows them.
pub fn print_table(quick: bool, pending: Option<usize>) -> anyhow::Result<()> {
    let mut opts = if quick {
        Opts {
            actions: 1_000,
            pending: 1_000,
            runs: 20,
            requests: 400,
        }
    } else {
        Opts {
            actions: 10_000,
            pending: 1_000,
            runs: 200,
            requests: 4_000,
        }
    };
    if let Some(n) = pending {
        opts.pending = n;
    }
    let rt = runtime()?;
    println!(
        "watcher-bench{} on {} cores",
        if quick { " --quick" } else { "" },
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );

    let (seq, seq_hist) = rt.block_on(throughput(opts.actions, true, None))?;
    let (par, par_hist) = rt.block_on(throughput(opts.actions, false, None))?;
    let mut lat = rt.block_on(cancel_latency(&opts))?;
    let (rss, rate, g50, g99) = process_figures(&opts)?;
    let mut cross = cross_process_cancel(if quick { 10 } else { 100 }, None)?;
    const SLOW_POLL: f64 = 5.0;
    let mut slow = rt.block_on(abort_during_slow_poll(
        if quick { 2 } else { 10 },
        SLOW_POLL,
    ))?;

    let n = opts.actions;
    print_rows(&[
        (
            format!("applier: {n} nops, one sequential chain"),
            format!("{seq:.0} actions/s ({seq_hist} history rows)"),
            ">= 5,000 actions/s",
        ),
        (
            format!("applier: {n} nops, no parents (512 at once)"),
            format!("{par:.0} actions/s ({par_hist} history rows)"),
            ">= 20,000 actions/s",
        ),
        (
            format!(
                "cancel (a): 1 sleep + {} PENDING, PATCH response -> CANCELLED, p50 ({} runs)",
                opts.pending,
                lat.response_to_cancelled.len()
            ),
            ms(pct(&mut lat.response_to_cancelled, 0.5)),
            "",
        ),
        (
            "cancel (a): PATCH response -> CANCELLED, p99".into(),
            ms(pct(&mut lat.response_to_cancelled, 0.99)),
            "p99 < 10 ms",
        ),
        (
            "cancel (a): PATCH sent -> CANCELLED, p99".into(),
            ms(pct(&mut lat.sent_to_cancelled, 0.99)),
            "",
        ),
        (
            format!(
                "cancel (b): live migration, PATCH response -> abort at the cloud, p50 ({} runs)",
                lat.response_to_abort.len()
            ),
            ms(pct(&mut lat.response_to_abort, 0.5)),
            "",
        ),
        (
            "cancel (b): PATCH response -> abort at the cloud, p99".into(),
            ms(pct(&mut lat.response_to_abort, 0.99)),
            "p99 < 10 ms",
        ),
        (
            "cancel (b): PATCH sent -> abort at the cloud, p99".into(),
            ms(pct(&mut lat.sent_to_abort, 0.99)),
            "",
        ),
        (
            format!(
                "cancel (c): split processes (api, applier, sim-cloud), PATCH response -> abort at the cloud, p50 ({} runs)",
                cross.len()
            ),
            ms(pct(&mut cross, 0.5)),
            "",
        ),
        (
            "cancel (c): split processes, PATCH response -> abort at the cloud, p99".into(),
            ms(pct(&mut cross, 0.99)),
            "p99 < 100 ms",
        ),
        (
            format!(
                "cancel (d): live migration, status polls taking {SLOW_POLL:.0} s, PATCH response -> abort at the cloud, p50 ({} runs)",
                slow.len()
            ),
            ms(pct(&mut slow, 0.5)),
            "",
        ),
        (
            "cancel (d): same, max".into(),
            ms(pct(&mut slow, 1.0)),
            "< 10 ms",
        ),
        (
            "watcherd idle RSS (embedded: API + decision engine + applier)".into(),
            format!("{:.1} MiB", rss as f64 / 1024.0),
            "",
        ),
        (
            format!(
                "GET /v1/action_plans/{{uuid}}, 2 client threads, {} requests",
                opts.requests
            ),
            format!("{rate:.0} req/s, p50 {}, p99 {}", ms(g50), ms(g99)),
            "",
        ),
    ]);
    crate::strategies::print_table(quick)
}
