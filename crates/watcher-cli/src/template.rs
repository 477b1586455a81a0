//! `watcher audittemplate create|list|show|update|delete`.

use crate::arguments::*;
use crate::client::Client;
use crate::columns;
use crate::output::Out;
use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

#[derive(Subcommand)]
pub(crate) enum TemplateCmd {
    /// List audit templates.
    List {
        #[command(flatten)]
        by: GoalStrategy,
        #[command(flatten)]
        opts: ListOpts,
    },
    /// Show an audit template (UUID or name).
    Show { template: String },
    /// Create an audit template.
    Create {
        name: String,
        /// Goal (UUID or name).
        goal: String,
        /// Strategy (UUID or name).
        #[arg(short, long)]
        strategy: Option<String>,
        #[arg(short, long)]
        description: Option<String>,
        /// The audit scope: a file with the scope's list (JSON, or YAML
        /// written in flow style).
        #[arg(long, value_name = "FILE")]
        scope: Option<std::path::PathBuf>,
        /// Default strategy parameter for audits made from it (API 1.7).
        #[arg(short = 'p', long = "default-parameter", value_name = "KEY=VALUE")]
        default_parameters: Vec<String>,
    },
    /// Change an audit template: add, replace or remove PATH=VALUE.
    Update {
        template: String,
        #[command(flatten)]
        change: PatchArgs,
    },
    /// Delete audit templates.
    Delete {
        #[arg(required = true)]
        templates: Vec<String>,
    },
}

/// `watcher audittemplate ...`
pub(crate) fn audit_template(client: &Client, out: &Out, cmd: TemplateCmd) -> anyhow::Result<i32> {
    match cmd {
        TemplateCmd::List { by, opts } => {
            let cols = if opts.detail {
                columns::AUDIT_TEMPLATE
            } else {
                columns::AUDIT_TEMPLATE_LIST
            };
            let extra = by.query();
            out.list(
                &list_items(client, "audit_templates", &opts, cols, &extra)?,
                cols,
            )?
        }
        TemplateCmd::Show { template } => out.show(
            &client.get(&format!("/v1/audit_templates/{template}"))?,
            columns::AUDIT_TEMPLATE,
        )?,
        TemplateCmd::Create {
            name,
            goal,
            strategy,
            description,
            scope,
            default_parameters,
        } => {
            let mut body = json!({"name": name, "goal": goal});
            if let Some(s) = strategy {
                body["strategy"] = json!(s);
            }
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            if let Some(file) = scope {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read the scope file {}", file.display()))?;
                body["scope"] = serde_json::from_str(&text).with_context(|| {
                    format!(
                        "{}: write the scope as JSON (YAML's flow style), e.g. \
                         [{{\"compute\": [{{\"host_aggregates\": [{{\"id\": 1}}]}}]}}]",
                        file.display()
                    )
                })?;
            }
            if !default_parameters.is_empty() {
                client.require_version((1, 7), "--default-parameter")?;
                body["default_parameters"] = parse_parameters(&default_parameters)?;
            }
            out.show(
                &client.post("/v1/audit_templates", &body)?,
                columns::AUDIT_TEMPLATE,
            )?
        }
        TemplateCmd::Update { template, change } => out.show(
            &client.patch(
                &format!("/v1/audit_templates/{template}"),
                &patch(&change, &[])?,
            )?,
            columns::AUDIT_TEMPLATE,
        )?,
        TemplateCmd::Delete { templates } => {
            for t in templates {
                client.delete(&format!("/v1/audit_templates/{t}"))?;
                out.note(&format!("Deleted audit template {t}"));
            }
        }
    }
    Ok(0)
}
