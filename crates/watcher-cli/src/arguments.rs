//! What several commands' arguments share: list options and the list
//! request they make, `KEY=VALUE` parameters, JSON patches, UUID checks.

use crate::client::Client;
use crate::columns;
use crate::output::Columns;
use anyhow::{bail, Context};
use clap::Args;
use serde_json::{json, Value};

#[derive(Args)]
pub(crate) struct ListOpts {
    /// Show all fields.
    #[arg(long)]
    pub(crate) detail: bool,
    /// Maximum number of items; 0 fetches every page.
    #[arg(long)]
    pub(crate) limit: Option<u32>,
    /// Field (or column title) to sort by.
    #[arg(long)]
    pub(crate) sort_key: Option<String>,
    /// asc (default) or desc.
    #[arg(long, value_parser = ["asc", "desc"])]
    pub(crate) sort_dir: Option<String>,
    /// UUID of the last item of the previous page.
    #[arg(long)]
    pub(crate) marker: Option<String>,
}

/// The filters of audit and audit template lists.
#[derive(Args)]
pub(crate) struct GoalStrategy {
    /// Only those of this goal (UUID or name).
    #[arg(long)]
    pub(crate) goal: Option<String>,
    /// Only those of this strategy (UUID or name).
    #[arg(long)]
    pub(crate) strategy: Option<String>,
}

impl GoalStrategy {
    pub(crate) fn query(&self) -> [(&'static str, Option<&String>); 2] {
        [
            ("goal", self.goal.as_ref()),
            ("strategy", self.strategy.as_ref()),
        ]
    }
}

/// `<op> <path=value>...` of the update commands.
#[derive(Args)]
pub(crate) struct PatchArgs {
    #[arg(value_parser = ["add", "replace", "remove"])]
    pub(crate) op: String,
    #[arg(required = true, value_name = "PATH=VALUE")]
    pub(crate) attributes: Vec<String>,
}

/// The query of a list request, in upstream's order.
pub(crate) fn query(
    opts: &ListOpts,
    columns: Columns,
    extra: &[(&str, Option<&String>)],
) -> anyhow::Result<String> {
    let mut q: Vec<String> = Vec::new();
    for (k, v) in extra {
        if let Some(v) = v {
            q.push(format!("{k}={v}"));
        }
    }
    if let Some(l) = opts.limit.filter(|l| *l > 0) {
        q.push(format!("limit={l}"));
    }
    if let Some(key) = &opts.sort_key {
        let Some(field) = columns::sort_field(key, columns) else {
            let valid: Vec<String> = columns
                .iter()
                .flat_map(|(t, f)| [t.to_string(), f.to_string()])
                .collect();
            bail!(
                "{key} is an invalid field for sorting, valid values for --sort-key are: {}",
                valid.join(", ")
            );
        };
        q.push(format!("sort_key={field}"));
    }
    for (k, v) in [("sort_dir", &opts.sort_dir), ("marker", &opts.marker)] {
        if let Some(v) = v {
            q.push(format!("{k}={v}"));
        }
    }
    Ok(if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    })
}

/// The items of a list: one page, or with `--limit 0` every page (the
/// `next` links).
pub(crate) fn list_items(
    client: &Client,
    resource: &str,
    opts: &ListOpts,
    columns: Columns,
    extra: &[(&str, Option<&String>)],
) -> anyhow::Result<Vec<Value>> {
    let detail = if opts.detail { "/detail" } else { "" };
    let mut path = format!("/v1/{resource}{detail}{}", query(opts, columns, extra)?);
    let mut items = vec![];
    loop {
        let page = client.get(&path)?;
        items.extend(page[resource].as_array().cloned().unwrap_or_default());
        let next = page["next"].as_str().filter(|n| !n.is_empty());
        match next.and_then(|n| n.find("/v1/").map(|i| n[i..].to_string())) {
            Some(n) if opts.limit == Some(0) => path = n,
            _ => return Ok(items),
        }
    }
}

/// KEY=VALUE items as a map, each value JSON when it reads as JSON.
pub(crate) fn parse_parameters(items: &[String]) -> anyhow::Result<Value> {
    let mut map = serde_json::Map::new();
    for item in items {
        let (k, v) = item
            .split_once('=')
            .with_context(|| format!("parameter '{item}' must look like key=value"))?;
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        map.insert(k.to_string(), value);
    }
    Ok(Value::Object(map))
}

/// A JSON Patch from `op` and PATH=VALUE items, as upstream builds it:
/// a leading `/` added, values JSON-decoded unless their path is in `raw`.
pub(crate) fn patch(change: &PatchArgs, raw: &[&str]) -> anyhow::Result<Value> {
    let op = change.op.as_str();
    let mut ops = vec![];
    for attr in &change.attributes {
        let attr = if attr.starts_with('/') {
            attr.clone()
        } else {
            format!("/{attr}")
        };
        if op == "remove" {
            ops.push(json!({"op": op, "path": attr}));
            continue;
        }
        let (path, value) = attr
            .split_once('=')
            .with_context(|| format!("attributes must be a list of PATH=VALUE, not \"{attr}\""))?;
        let value = if raw.contains(&path) {
            Value::String(value.to_string())
        } else {
            serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()))
        };
        ops.push(json!({"op": op, "path": path, "value": value}));
    }
    Ok(Value::Array(ops))
}

pub(crate) fn check_uuid(kind: &str, s: &str) -> anyhow::Result<()> {
    if uuid::Uuid::parse_str(s).is_err() {
        bail!("'{s}' is not a valid {kind} UUID; see `watcher {kind} list`");
    }
    Ok(())
}
