//! watcherd: OpenStack Watcher's action plans, with cancellation that really
//! stops them.
//!
//! The crate is laid out by what each module holds:
//!
//! - [`core`]: states, transition tables and records. No I/O.
//! - [`store`]: the database (SQLite), compare-and-set transitions with
//!   history, the side-effect journal, and wake-up events.
//! - [`cloud`]: the `Cloud` trait, the simulated cloud and the OpenStack driver.
//! - [`keystone`]: Keystone v3 login, token renewal, catalog lookup.
//! - [`applier`]: runs a plan's DAG with concurrency limits, cancels it
//!   through a tree of tokens, reconciles after a restart.
//! - [`decision`]: cluster model, metrics, goals, strategies, planners, audits.
//! - [`notifications`]: upstream's notifications on RabbitMQ, from the history.
//! - [`api`]: the Watcher v1 REST API.
//! - [`config`] and [`service`]: configuration and wiring of the daemon.
//! - [`cli`]: the `watcher` command line client.
//!
//! `docs/architecture.md` is the map with the invariants.

pub mod api;
pub mod applier;
pub mod cli;
pub mod cloud;
pub mod config;
pub mod core;
pub mod decision;
pub mod keystone;
pub mod notifications;
pub mod service;
pub mod store;
