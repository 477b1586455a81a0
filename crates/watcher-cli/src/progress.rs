//! Following an action plan until it ends: on a terminal one line
//! rewritten in place, cut to the terminal's width; otherwise a line per
//! change, whole, for logs.

use crate::client::Client;
use crate::states::{action_state, plan_state};
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};
use unicode_width::UnicodeWidthChar;
use watcher_core::{ActionPlanState, ActionState};

/// What an action works on, for people: "live migration db-1 compute-1 ->
/// compute-2", "sleep 30 s".
pub fn describe(action: &Value) -> String {
    let p = &action["input_parameters"];
    let s = |k: &str| p[k].as_str().map(str::to_string);
    let who = s("resource_name")
        .or_else(|| s("resource_id").map(|id| id.chars().take(8).collect()))
        .unwrap_or_default();
    let hosts = match (s("source_node"), s("destination_node")) {
        (Some(a), Some(b)) => format!(" {a} -> {b}"),
        (Some(a), None) => format!(" from {a}"),
        _ => String::new(),
    };
    let kind = match (
        action["action_type"].as_str().unwrap_or("?"),
        s("migration_type"),
    ) {
        ("migrate", Some(t)) => format!("{t} migration"),
        ("sleep", _) => format!("sleep {} s", p["duration"]),
        (t, _) => t.to_string(),
    };
    [kind, who]
        .into_iter()
        .filter(|x| !x.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        + &hosts
}

/// `line` cut to `width` terminal columns, with "…" where it was cut.
pub fn fit(line: &str, width: usize) -> String {
    let mut used = 0;
    let mut out = String::new();
    for c in line.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > width.saturating_sub(1) {
            let rest: usize = line.chars().map(|c| c.width().unwrap_or(0)).sum();
            if rest <= width {
                return line.to_string();
            }
            out.push('…');
            return out;
        }
        used += w;
        out.push(c);
    }
    out
}

/// The terminal's width (stderr's), else $COLUMNS, else 80.
fn terminal_width() -> usize {
    // SAFETY: TIOCGWINSZ fills a winsize we own; a failure leaves it zeroed.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    if unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_col > 0
    {
        return ws.ws_col as usize;
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(80)
}

/// Follows a plan until it finishes. Returns the final plan.
pub fn wait_for_plan(client: &Client, plan: &str) -> anyhow::Result<Value> {
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last_key = String::new();
    loop {
        let p = client.get(&format!("/v1/action_plans/{plan}"))?;
        let actions = client.get(&format!("/v1/actions/detail?action_plan_uuid={plan}"))?;
        let actions = actions["actions"].as_array().cloned().unwrap_or_default();
        let state = p["state"].as_str().unwrap_or("?").to_string();
        let done = actions
            .iter()
            .filter(|a| {
                action_state(a).is_some_and(|s| s != ActionState::Deleted && s.is_finished())
            })
            .count();
        let current: Vec<String> = actions
            .iter()
            .filter(|a| {
                matches!(
                    action_state(a),
                    Some(ActionState::Ongoing | ActionState::Cancelling)
                )
            })
            .map(|a| {
                let st = a["state"].as_str().unwrap_or("?");
                let what = describe(a);
                match a["status_message"].as_str() {
                    Some(m) if !m.is_empty() => format!("{what} ({st}: {m})"),
                    _ => format!("{what} ({st})"),
                }
            })
            .collect();
        let total = actions.len().max(1);
        let secs = started.elapsed().as_secs();
        let bar_width = 20;
        let filled = done * bar_width / total;
        let line = format!(
            "[{}{}] {done}/{} | {state} | {:02}:{:02}{}",
            "#".repeat(filled),
            "-".repeat(bar_width - filled),
            actions.len(),
            secs / 60,
            secs % 60,
            if current.is_empty() {
                String::new()
            } else {
                format!(" | {}", current.join("; "))
            },
        );
        if tty {
            eprint!("\r\x1b[2K{}", fit(&line, terminal_width()));
            let _ = std::io::stderr().flush();
        } else {
            let key = format!("{done} {state} {}", current.join(","));
            if key != last_key {
                eprintln!("{line}");
                last_key = key;
            }
        }
        if plan_state(&p).is_some_and(ActionPlanState::is_finished) {
            if tty {
                eprintln!();
            }
            return Ok(p);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn actions_name_their_instance_and_hosts() {
        let a = json!({"action_type": "migrate", "input_parameters": {"migration_type": "live",
            "resource_id": "6a1e2b6c-8d1f-4a52-9a51-2c4f7f0a0001", "resource_name": "db-1",
            "source_node": "compute-1", "destination_node": "compute-2"}});
        assert_eq!(describe(&a), "live migration db-1 compute-1 -> compute-2");
        let unnamed = json!({"action_type": "migrate", "input_parameters": {"migration_type": "live",
            "resource_id": "6a1e2b6c-8d1f-4a52-9a51-2c4f7f0a0001", "source_node": "compute-1"}});
        assert_eq!(describe(&unnamed), "live migration 6a1e2b6c from compute-1");
        let sleep = json!({"action_type": "sleep", "input_parameters": {"duration": 30}});
        assert_eq!(describe(&sleep), "sleep 30 s");
    }

    #[test]
    fn lines_fit_the_terminal_counting_wide_characters() {
        assert_eq!(fit("short", 80), "short");
        assert_eq!(fit("abcdefghij", 6), "abcde…");
        assert_eq!(fit("abcdef", 6), "abcdef");
        // Each of these takes two columns.
        assert_eq!(fit("迁移迁移迁移", 7), "迁移迁…");
    }
}
