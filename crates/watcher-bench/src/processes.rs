//! watcherd as real processes: starting them, HTTP to them, their CPU
//! and memory, polling until something holds.

use anyhow::Context;
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};

pub(crate) fn http(method: &str, url: &str, body: Option<&Value>) -> anyhow::Result<Value> {
    let req = ureq::request(method, url).set("Content-Type", "application/json");
    let resp = match body {
        Some(b) => req.send_string(&b.to_string()),
        None => req.call(),
    }
    .with_context(|| format!("{method} {url}"))?;
    Ok(serde_json::from_str(&resp.into_string()?).unwrap_or(Value::Null))
}

/// The real watcherd (embedded mode) with its data in `dir`, and its URL.
pub(crate) fn spawn_watcherd(dir: &Path) -> anyhow::Result<(Proc, String)> {
    spawn_watcherd_binary(&std::env::current_exe()?.with_file_name("watcherd"), dir)
}

/// [`spawn_watcherd`] of the given binary (another build, for an A/B).
pub(crate) fn spawn_watcherd_binary(exe: &Path, dir: &Path) -> anyhow::Result<(Proc, String)> {
    let dir = dir.to_str().context("data directory path")?;
    let (proc_, line) = spawn_binary(
        exe,
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir,
            "--log",
            "warn",
        ],
    )?;
    let url = line
        .strip_prefix("watcherd listening on ")
        .context("watcherd did not start")?
        .to_string();
    Ok((proc_, url))
}

/// A child process killed when dropped.
pub(crate) struct Proc(pub(crate) std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `watcherd ARGS...` and returns it with the first line it prints.
pub(crate) fn spawn_part(args: &[&str]) -> anyhow::Result<(Proc, String)> {
    spawn_binary(&std::env::current_exe()?.with_file_name("watcherd"), args)
}

/// [`spawn_part`] of the given binary.
fn spawn_binary(exe: &Path, args: &[&str]) -> anyhow::Result<(Proc, String)> {
    // WATCHER_BENCH_LOG=<filter> (e.g. "info"): each part logs at that
    // level to a file of its own under the temporary directory, to find
    // where a latency goes; otherwise the parts' logs are dropped.
    let (args, stderr) = match std::env::var("WATCHER_BENCH_LOG") {
        Ok(filter) => {
            let mut args: Vec<&str> = args.to_vec();
            match args.iter().position(|a| *a == "--log") {
                Some(i) => args[i + 1] = filter.leak(),
                None => args.extend(["--log", filter.leak()]),
            }
            let name = args
                .iter()
                .position(|a| *a == "--host")
                .map_or(args[0], |i| args[i + 1]);
            let path = std::env::temp_dir()
                .join(format!("watcher-bench-{name}-{}.log", std::process::id()));
            eprintln!("{} logs to {}", args[0], path.display());
            (
                args,
                std::process::Stdio::from(std::fs::File::create(path)?),
            )
        }
        Err(_) => (args.to_vec(), std::process::Stdio::null()),
    };
    let mut child = std::process::Command::new(exe)
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .with_context(|| {
            format!(
                "cannot start {}; build it first (cargo build --release)",
                exe.display()
            )
        })?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    Ok((Proc(child), line.trim().to_string()))
}

/// The real watcherd on the data directory `dir`, limited to 1,024 file
/// descriptors (`ulimit -n 1024`, as a modest systemd unit would be).
pub(crate) fn spawn_limited(dir: &Path) -> anyhow::Result<(Proc, String)> {
    let exe = std::env::current_exe()?.with_file_name("watcherd");
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 1024 && exec {} --listen 127.0.0.1:0 --data-dir {} --log warn",
            exe.display(),
            dir.display()
        ))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let watcherd = Proc(child);
    let url = line
        .trim()
        .strip_prefix("watcherd listening on ")
        .context("watcherd did not start")?
        .to_string();
    Ok((watcherd, url))
}

/// CPU time of process `pid` so far, in clock ticks (1/100 s on Linux).
pub(crate) fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}

/// Polls `f` every millisecond until it answers Some (30 s at most).
pub(crate) fn poll_until<T>(mut f: impl FnMut() -> anyhow::Result<Option<T>>) -> anyhow::Result<T> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        anyhow::ensure!(Instant::now() < deadline, "not reached within 30 s");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The plan the decision engine makes of an actuator audit of `actions`,
/// created through the API (forced: other plans may be running).
pub(crate) fn actuator_plan(url: &str, actions: Value) -> anyhow::Result<String> {
    let audit = http(
        "POST",
        &format!("{url}/v1/audits"),
        Some(
            &json!({"audit_type": "ONESHOT", "goal": "unclassified", "strategy": "actuator",
            "force": true, "parameters": {"actions": actions}}),
        ),
    )?;
    let audit = audit["uuid"].as_str().context("no audit uuid")?.to_string();
    poll_until(|| {
        let p = http(
            "GET",
            &format!("{url}/v1/action_plans?audit_uuid={audit}"),
            None,
        )?;
        Ok(p["action_plans"][0]["uuid"].as_str().map(str::to_string))
    })
}

/// PATCHes `plan` CANCELLING through the API and waits until it has ended
/// (CANCELLED, or FAILED when an abort failed); that state.
pub(crate) fn cancel_and_settle(url: &str, plan: &str) -> anyhow::Result<String> {
    http(
        "PATCH",
        &format!("{url}/v1/action_plans/{plan}"),
        Some(&json!([{"op": "replace", "path": "/state", "value": "CANCELLING"}])),
    )?;
    poll_until(|| {
        let p = http("GET", &format!("{url}/v1/action_plans/{plan}"), None)?;
        Ok(match p["state"].as_str() {
            Some(s @ ("CANCELLED" | "FAILED")) => Some(s.to_string()),
            _ => None,
        })
    })
}

pub(crate) fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("VmRSS value")?
        .parse()?)
}
