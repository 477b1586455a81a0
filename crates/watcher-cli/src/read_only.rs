//! `watcher scoringengine|service list|show`: resources that are only
//! listed and shown.

use crate::arguments::*;
use crate::client::Client;
use crate::output::{Columns, Out};
use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum SimpleCmd {
    /// List them.
    List(ListOpts),
    /// Show one (UUID, id or name).
    Show { name: String },
}

/// `watcher scoringengine|service list|show`
pub(crate) fn simple(
    client: &Client,
    out: &Out,
    cmd: SimpleCmd,
    resource: &str,
    list: Columns,
    detail: Columns,
) -> anyhow::Result<i32> {
    match cmd {
        SimpleCmd::List(o) => {
            let cols = if o.detail { detail } else { list };
            out.list(&list_items(client, resource, &o, cols, &[])?, cols)?
        }
        SimpleCmd::Show { name } => {
            out.show(&client.get(&format!("/v1/{resource}/{name}"))?, detail)?
        }
    }
    Ok(0)
}
