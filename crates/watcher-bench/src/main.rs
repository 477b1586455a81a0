//! watcher-bench: the numbers in docs/benchmarks.md.
//!
//! Run with `cargo run --release --bin watcher-bench` (add `-- --quick` for a
//! short smoke run, `-- strategies` for the decision engine's table only,
//! `-- postgres URL` for the split deployment's figures on PostgreSQL or MariaDB;
//! `--help` lists them).
//! Prints its tables; every figure is measured here, now.

//!
//! One module per benchmark, each with the `print_*` function that prints
//! its rows; `main` only dispatches. `fixtures`, `processes` and `report`
//! hold what they share (plans made in the store, watcherd processes and
//! HTTP, percentiles).

mod api_chain;
mod api_load;
mod applier;
mod cancel;
mod dashboard;
mod fixtures;
mod idle;
mod pause;
mod processes;
mod report;
mod split;
mod store;
mod strategies;
mod table;
mod takeover;

/// The benchmarks of docs/benchmarks.md: every figure measured here, now,
/// and printed as a table.
#[derive(clap::Parser)]
#[command(name = "watcher-bench", version, about, long_about = None)]
struct Cli {
    /// A short smoke run (smaller plans, fewer runs), as CI does.
    #[arg(long)]
    quick: bool,
    /// PENDING actions behind the running sleep in cancel case (a).
    #[arg(long, value_name = "N")]
    pending: Option<usize>,
    #[command(subcommand)]
    only: Option<Only>,
}

#[derive(clap::Subcommand)]
enum Only {
    /// Only the cross-process cancel: `watcherd api`, `applier` and
    /// `sim-cloud` as processes, PATCH response -> abort at the cloud.
    CrossProcess,
    /// Only the decision engine's table (strategies on generated clouds).
    Strategies,
    /// Only the API under abusive clients: CONNECTIONS idle or half-sent
    /// connections against a watcherd limited to 1,024 file descriptors,
    /// and the latency of normal requests meanwhile.
    IdleFlood {
        #[arg(long, default_value_t = 2_000)]
        connections: usize,
        #[arg(long, default_value_t = 100)]
        requests: usize,
    },
    /// Only the idle cost: PLANS recommended plans stored, nothing running:
    /// watcherd's CPU and RSS, and list requests' latency.
    IdleCost {
        #[arg(long, default_value_t = 100_000)]
        plans: usize,
        /// History rows stored (the plans' own, then copies of them).
        #[arg(long, default_value_t = 1_000_000)]
        history: i64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Only several appliers on PostgreSQL (or MariaDB) together: APPLIERS `watcherd
    /// applier` processes run PLANS plans of ACTIONS nops started at once
    /// (actions/s), while live migrations are cancelled (PATCH response ->
    /// abort at the cloud).
    ManyAppliers {
        #[arg(long)]
        database: String,
        #[arg(long, default_value_t = 4)]
        appliers: usize,
        #[arg(long, default_value_t = 16)]
        plans: usize,
        #[arg(long, default_value_t = 1_000)]
        actions: usize,
    },
    /// Only requests in flight: CONNECTIONS clients each send a request for
    /// 1,000 actions' details and never read it, against a watcherd limited
    /// to 1,024 file descriptors: its RSS, and normal requests meanwhile.
    InFlight {
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
    },
    /// Only failover on PostgreSQL (or MariaDB): the applier running a live migration is
    /// killed with -9 and the plan cancelled right after; kill -> CANCELLED.
    Failover {
        #[arg(long)]
        database: String,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Only memory around big work: an idle watcherd's RSS, its peak while
    /// PLANS plans of ACTIONS nops run at once, and 10 s after they end.
    Memory {
        #[arg(long, default_value_t = 5)]
        plans: usize,
        #[arg(long, default_value_t = 10_000)]
        actions: usize,
    },
    /// Only the dashboard's pages with PLANS plans of ACTIONS actions each
    /// stored (a tenth of them cancelled): the overview and a plan's page,
    /// time to the whole page on loopback.
    Dashboard {
        #[arg(long, default_value_t = 10_000)]
        plans: usize,
        #[arg(long, default_value_t = 10)]
        actions: usize,
    },
    /// Only the WAL under a write burst: AUDITS audits created by 8
    /// writers while 4 readers list, on an embedded SQLite file.
    WalBurst {
        #[arg(long, default_value_t = 50_000)]
        audits: usize,
    },
    /// Only cancel case (d): a live migration on a cloud whose status polls
    /// take `--poll-delay` seconds, PATCH response -> abort at the cloud.
    SlowPoll {
        #[arg(long, default_value_t = 20.0)]
        poll_delay: f64,
        #[arg(long, default_value_t = 10)]
        runs: usize,
    },
    /// Only the applier's throughput on one plan of nops (embedded SQLite),
    /// e.g. under `valgrind --tool=callgrind` to compare commits by
    /// instruction counts when the machine is too noisy for wall clock.
    Throughput {
        /// Actions in the plan.
        #[arg(long, default_value_t = 10_000)]
        actions: usize,
        /// One sequential chain instead of 512 at once.
        #[arg(long)]
        chain: bool,
    },
    /// Only the creation of big plans: how long a plan of ACTIONS actions
    /// takes to write, and how long a cancel written meanwhile by another
    /// process (its own connection) takes to commit. On DATABASE (a
    /// PostgreSQL URL) or a new SQLite file.
    BigPlan {
        #[arg(long, default_value_t = 10_000)]
        actions: usize,
        #[arg(long, default_value_t = 5)]
        plans: usize,
        #[arg(long)]
        database: Option<String>,
    },
    /// Only a chain of ACTIONS nops through the API (an actuator audit,
    /// POST start), timed from the plan's history; with two `--watcherd`
    /// binaries, PAIRS interleaved pairs: the A/B of a change on the
    /// applier's path against its parent.
    ApiChain {
        #[arg(long, default_value_t = 1_000)]
        actions: usize,
        #[arg(long, default_value_t = 10)]
        pairs: usize,
        /// A watcherd binary (default: the one beside this bench); twice to compare.
        #[arg(long = "watcherd", value_name = "PATH")]
        binaries: Vec<std::path::PathBuf>,
    },
    /// Only pause and resume across processes on PostgreSQL (DATABASE, an
    /// empty database): TRIALS pauses and resumes of a running plan, with
    /// the actions started while paused counted (must be 0) and both timed.
    Pause {
        #[arg(long)]
        database: String,
        #[arg(long, default_value_t = 1_000)]
        trials: usize,
    },
    /// Only the takeover of an upstream Watcher 17 database and the way
    /// back: upstream's tables made in a database `watcher_bench_takeover`
    /// on SERVER (a MariaDB URL without a database, e.g.
    /// mysql://root@127.0.0.1:3306) and filled with PLANS plans of ACTIONS
    /// actions, then `watcherd db upgrade` and `db export-upstream` timed.
    UpstreamTakeover {
        server: String,
        #[arg(long, default_value_t = 10_000)]
        plans: usize,
        #[arg(long, default_value_t = 10)]
        actions: usize,
    },
    /// The split deployment's figures on PostgreSQL or MariaDB (applier throughput,
    /// cross-process cancel).
    Postgres {
        /// An empty database (the bench fills it), e.g.
        /// postgres://postgres@127.0.0.1:5432/watcher_bench
        url: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = <Cli as clap::Parser>::parse();
    let quick = cli.quick;
    match cli.only {
        None => table::print_table(quick, cli.pending),
        Some(Only::Postgres { url }) => split::postgres_table(&url, quick),
        Some(Only::BigPlan {
            actions,
            plans,
            database,
        }) => store::print_big_plan(actions, plans, database.as_deref()),
        Some(Only::CrossProcess) => split::print_cross_process(quick),
        Some(Only::IdleFlood {
            connections,
            requests,
        }) => api_load::print_idle_flood(connections, requests),
        Some(Only::ManyAppliers {
            database,
            appliers,
            plans,
            actions,
        }) => split::print_many_appliers(&database, appliers, plans, actions),
        Some(Only::InFlight { connections }) => api_load::print_in_flight(connections),
        Some(Only::Failover { database, runs }) => split::print_failover(&database, runs),
        Some(Only::Memory { plans, actions }) => idle::print_memory(plans, actions),
        Some(Only::Pause { database, trials }) => pause::print_pause(&database, trials),
        Some(Only::UpstreamTakeover {
            server,
            plans,
            actions,
        }) => takeover::print_takeover(&server, plans, actions),
        Some(Only::Dashboard { plans, actions }) => dashboard::print_pages(plans, actions),
        Some(Only::IdleCost {
            plans,
            history,
            seconds,
        }) => idle::print_idle_cost(plans, history, seconds),
        Some(Only::WalBurst { audits }) => store::print_wal_burst(audits),
        Some(Only::SlowPoll { poll_delay, runs }) => cancel::print_slow_poll(runs, poll_delay),
        Some(Only::Throughput { actions, chain }) => applier::print_throughput(actions, chain),
        Some(Only::Strategies) => strategies::print_table(quick),
        Some(Only::ApiChain {
            actions,
            pairs,
            binaries,
        }) => api_chain::print_api_chain(actions, pairs, &binaries),
    }
}
