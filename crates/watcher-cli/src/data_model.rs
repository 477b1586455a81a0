//! `watcher datamodel list`: the cluster model the decision engine sees.

use crate::client::Client;
use crate::columns;
use crate::output::Out;
use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum DataModelCmd {
    /// List the servers of the model with their hosts.
    List {
        /// compute (the only model served).
        #[arg(long = "type", default_value = "compute", value_parser = ["compute", "storage", "baremetal"])]
        model_type: String,
        /// Only what this audit's scope covers.
        #[arg(long)]
        audit: Option<String>,
        /// Every field.
        #[arg(long)]
        detail: bool,
    },
}

/// `watcher datamodel list`
pub(crate) fn data_model(client: &Client, out: &Out, cmd: DataModelCmd) -> anyhow::Result<i32> {
    let DataModelCmd::List {
        model_type,
        audit,
        detail,
    } = cmd;
    let mut path = format!("/v1/data_model/?data_model_type={model_type}");
    if let Some(a) = audit {
        path += &format!("&audit_uuid={a}");
    }
    let model = client.get(&path)?;
    let cols = if detail {
        columns::COMPUTE_MODEL
    } else {
        columns::COMPUTE_MODEL_LIST
    };
    out.list(
        model["context"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]),
        cols,
    )?;
    Ok(0)
}
