//! watcherd, the service: its configuration ([`config`]), composed of each
//! layer's own settings, and the wiring of the daemon's parts
//! ([`service`]). The layers are crates of their own: `watcher-core`,
//! `watcher-store`, `watcher-cloud`, `watcher-decision`, `watcher-applier`,
//! `watcher-notifications` and `watcher-api`; `docs/architecture.md` is the
//! map with the invariants.

pub mod config;
pub mod db_commands;
pub mod oslo_conf;
pub mod service;
pub mod sim_cloud_state;
pub mod sources;
