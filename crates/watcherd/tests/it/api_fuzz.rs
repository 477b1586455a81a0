//! A bounded, seeded fuzz of the API: random methods, paths, queries,
//! headers and bodies (valid shapes, broken shapes, hostile strings). Any 5xx,
//! a non-Watcher error body, or a dead server fails the test; the seed in the
//! failure message replays the run.

use watcher_testkit as common;

use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use watcher_cloud::rng::SplitMix64;

const REQUESTS: usize = 3_000;
const BUDGET: Duration = Duration::from_secs(60);

struct Gen(SplitMix64);

impl Gen {
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.0.next_u64() % items.len() as u64) as usize]
    }
    fn chance(&mut self, p: f64) -> bool {
        self.0.chance(p)
    }
    fn text(&mut self) -> String {
        self.pick(&[
            "dummy",
            "",
            " ",
            "ONGOING",
            "CANCELLING",
            "CANCELLED",
            "PENDING",
            "x'; DROP TABLE actions; --",
            "$(reboot)",
            "../../etc/passwd",
            "%00",
            "nuit-été-夜",
            "\u{0007}",
            "00000000-0000-0000-0000-000000000000",
            "-1",
            "1e309",
            "null",
            "[]",
            "{}",
            "🙂",
            "a/b",
            "?",
            "#",
            "CONTINUOUS",
            "*/5 * * * *",
            "60",
            "0 0 31 2 *",
            "2030-01-01T00:00:00",
            "*",
        ])
        .to_string()
    }
    fn value(&mut self, depth: u32) -> Value {
        match self.0.next_u64() % if depth > 3 { 5 } else { 7 } {
            0 => Value::Null,
            1 => json!(self.chance(0.5)),
            2 => json!((self.0.next_u64() as i64) >> (self.0.next_u64() % 64)),
            3 => json!(self.0.next_f64() * 1e6 - 5e5),
            4 => json!(self.text()),
            5 => Value::Array(
                (0..self.0.next_u64() % 4)
                    .map(|_| self.value(depth + 1))
                    .collect(),
            ),
            _ => {
                let mut m = serde_json::Map::new();
                for _ in 0..self.0.next_u64() % 5 {
                    let k = self
                        .pick(&[
                            "op",
                            "path",
                            "value",
                            "audit_type",
                            "goal",
                            "strategy",
                            "parameters",
                            "name",
                            "state",
                            "para1",
                            "actions",
                            "limit",
                            "interval",
                            "start_time",
                            "end_time",
                            "scope",
                            "compute",
                            "availability_zones",
                            "exclude",
                        ])
                        .to_string();
                    let v = self.value(depth + 1);
                    m.insert(k, v);
                }
                Value::Object(m)
            }
        }
    }
}

#[test]
fn random_requests_never_get_a_5xx_and_errors_always_have_watchers_body() {
    let seed = std::env::var("WATCHER_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0xF022);
    let d = Daemon::start("fuzz");
    let plan = d.recommend("dummy", "dummy", json!({}));
    let action = d.actions(&plan)[0]["uuid"].as_str().unwrap().to_string();
    let audit = d.plan(&plan)["audit_uuid"].as_str().unwrap().to_string();
    let mut g = Gen(SplitMix64::new(seed));
    let started = Instant::now();
    let mut sent = 0;
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    while sent < REQUESTS && started.elapsed() < BUDGET {
        let resource = g
            .pick(&[
                "goals",
                "strategies",
                "audits",
                "audit_templates",
                "action_plans",
                "actions",
                "services",
                "scoring_engines",
                "webhooks",
                "data_model",
                "nowhere",
            ])
            .to_string();
        let id = g
            .pick(&[
                plan.as_str(),
                action.as_str(),
                audit.as_str(),
                "dummy",
                "detail",
                "not-a-uuid",
                "00000000-0000-0000-0000-000000000000",
                "1",
            ])
            .to_string();
        let path = match g.0.next_u64() % 5 {
            0 => format!("/v1/{resource}"),
            1 => format!("/v1/{resource}/{id}"),
            2 => format!(
                "/v1/{resource}/{id}/{}",
                g.pick(&["start", "history", "state", "x"])
            ),
            3 => format!("/{resource}/{id}"),
            _ => format!("/v1/{resource}/"),
        };
        let mut query = vec![];
        for _ in 0..g.0.next_u64() % 3 {
            let k = g
                .pick(&[
                    "limit",
                    "marker",
                    "sort_key",
                    "sort_dir",
                    "goal",
                    "strategy",
                    "audit_uuid",
                    "action_plan_uuid",
                ])
                .to_string();
            let v = g.text();
            query.push(format!("{k}={}", urlencode(&v)));
        }
        let url = format!("{}{path}?{}", d.url, query.join("&"));
        let method = g
            .pick(&["GET", "POST", "PATCH", "DELETE", "PUT"])
            .to_string();
        let mut req = ureq::request(&method, &url).set("Content-Type", "application/json");
        if g.chance(0.5) {
            let v = g
                .pick(&[
                    "infra-optim 1.0",
                    "infra-optim 1.5",
                    "infra-optim 1.7",
                    "infra-optim latest",
                    "infra-optim 9.9",
                    "infra-optim x.y",
                    "compute 2.1",
                ])
                .to_string();
            req = req.set("OpenStack-API-Version", &v);
        }
        let body = if g.chance(0.2) {
            g.pick(&[
                "[",
                "{\"op\":",
                "\u{0}",
                "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
                "",
            ])
            .to_string()
        } else if g.chance(0.5) {
            // A JSON patch with random values.
            json!([{"op": g.pick(&["replace", "add", "remove", "move", "test"]), "path": format!("/{}", g.pick(&["state", "name", "status_message", "uuid", "goal", "description", "a/b"])), "value": g.value(0)}]).to_string()
        } else {
            g.value(0).to_string()
        };
        let resp = if method == "GET" || method == "DELETE" {
            req.call()
        } else {
            req.send_string(&body)
        };
        let (status, text) = match resp {
            Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
            Err(e) => panic!(
                "seed {seed}: {method} {url}: transport error {e}; log:\n{}",
                d.log()
            ),
        };
        assert!(
            status < 500,
            "seed {seed}: {method} {url} body {body:?} -> {status} {text}"
        );
        if status >= 400 {
            let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| {
                panic!("seed {seed}: {method} {url} -> {status} non-JSON {text:?}")
            });
            let inner = v["error_message"]
                .as_str()
                .unwrap_or_else(|| panic!("seed {seed}: {method} {url} -> {status} {text}"));
            let inner: Value = serde_json::from_str(inner).unwrap();
            assert!(inner["faultstring"].is_string(), "seed {seed}: {text}");
        }
        *by_status.entry(status).or_default() += 1;
        sent += 1;
    }
    assert!(sent >= 500, "only {sent} requests in the time budget");
    // The fuzz must reach handlers, not just the router's 404.
    for code in [200, 400, 404] {
        assert!(
            by_status.get(&code).copied().unwrap_or(0) > 20,
            "too few {code}s: {by_status:?}"
        );
    }
    // Still alive and consistent afterwards.
    assert!(!d.get("/v1/goals")["goals"].as_array().unwrap().is_empty());
    eprintln!("fuzz: {sent} requests, seed {seed}, statuses {by_status:?}");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
