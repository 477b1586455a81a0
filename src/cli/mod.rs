//! Pieces of the `watcher` command line client: an HTTP client of the v1
//! API and table rendering. The commands themselves are in `src/bin/watcher.rs`.

pub mod client;
pub mod table;
