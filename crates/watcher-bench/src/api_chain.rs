//! A chain of nops through the API, as an operator's plan runs: an
//! actuator audit of N nops (the weight planner chains them), its plan
//! started with `POST /start`, and the server-side time from the plan's
//! history (ONGOING -> SUCCEEDED), which no client's polling can stretch.
//! Given two watcherd binaries it runs them in interleaved pairs (the
//! first of each pair alternating), so a change on the applier's path is
//! measured against its parent on the same machine, at the same moment.

use crate::fixtures::temp_dir;
use crate::processes::{actuator_plan, http, poll_until, spawn_watcherd_binary};
use crate::report::{ms, pct};
use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One run on a fresh watcherd of `binary`: the server-side time of a
/// chain of `actions` nops.
fn chain_once(binary: &Path, actions: usize) -> anyhow::Result<Duration> {
    let dir = temp_dir("api-chain");
    let (_watcherd, url) = spawn_watcherd_binary(binary, &dir)?;
    let nops: Vec<Value> = (0..actions)
        .map(|i| json!({"action_type": "nop", "input_parameters": {"message": format!("nop {i}")}}))
        .collect();
    let plan = actuator_plan(&url, Value::Array(nops))?;
    poll_until(|| {
        let p = http("GET", &format!("{url}/v1/action_plans/{plan}"), None)?;
        Ok((p["state"] == "RECOMMENDED").then_some(()))
    })?;
    http(
        "POST",
        &format!("{url}/v1/action_plans/{plan}/start"),
        Some(&json!({})),
    )?;
    let history = poll_until(|| {
        let p = http("GET", &format!("{url}/v1/action_plans/{plan}"), None)?;
        match p["state"].as_str() {
            Some("SUCCEEDED") => Ok(Some(http(
                "GET",
                &format!("{url}/v1/action_plans/{plan}/history"),
                None,
            )?)),
            Some("FAILED" | "CANCELLED") => bail!("the chain's plan ended {}", p["state"]),
            _ => {
                std::thread::sleep(Duration::from_millis(20));
                Ok(None)
            }
        }
    })?;
    let at = |to: &str| -> anyhow::Result<DateTime<Utc>> {
        let row = history["history"]
            .as_array()
            .context("no history")?
            .iter()
            .find(|h| h["resource"] == "action_plan" && h["to_state"] == to)
            .with_context(|| format!("no plan row to {to}"))?;
        Ok(row["at"].as_str().context("no time")?.parse()?)
    };
    let took = (at("SUCCEEDED")? - at("ONGOING")?).to_std()?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(took)
}

/// `watcher-bench api-chain`: with one binary, `pairs` runs; with two,
/// `pairs` interleaved pairs and how often each was the faster.
pub fn print_api_chain(actions: usize, pairs: usize, binaries: &[PathBuf]) -> anyhow::Result<()> {
    let default = [std::env::current_exe()?.with_file_name("watcherd")];
    let binaries = if binaries.is_empty() {
        &default[..]
    } else {
        binaries
    };
    if binaries.len() > 2 {
        bail!("give one watcherd binary, or two to compare");
    }
    let mut times: Vec<Vec<Duration>> = vec![vec![]; binaries.len()];
    let mut first_faster = 0;
    for pair in 0..pairs {
        let mut order: Vec<usize> = (0..binaries.len()).collect();
        if pair % 2 == 1 {
            order.reverse();
        }
        let mut this_pair = vec![Duration::ZERO; binaries.len()];
        for i in order {
            this_pair[i] = chain_once(&binaries[i], actions)?;
            times[i].push(this_pair[i]);
        }
        if binaries.len() == 2 && this_pair[0] < this_pair[1] {
            first_faster += 1;
        }
    }
    for (binary, mut t) in binaries.iter().zip(times) {
        println!(
            "| {actions}-nop chain through the API, POST start -> SUCCEEDED (server side), {} | median {}, min {}, max {} ({} runs) |",
            binary.display(),
            ms(pct(&mut t, 0.5)),
            ms(pct(&mut t, 0.0)),
            ms(pct(&mut t, 1.0)),
            t.len()
        );
    }
    if binaries.len() == 2 {
        println!(
            "| the first binary was the faster in {first_faster} of {pairs} interleaved pairs |"
        );
    }
    Ok(())
}
