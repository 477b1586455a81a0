//! Scoring engines: upstream's two samples, `dummy_scorer` (a rule-based
//! workload classifier) and `dummy_avg_scorer` (an average), served at
//! `/v1/scoring_engines` and used by the `dummy_with_scorer` strategy.
//! They are code, not data: the catalogue is fixed per build, with stable
//! UUIDs so that links stay valid across restarts.

use serde_json::{json, Value};

pub struct ScoringEngine {
    pub id: i64,
    pub uuid: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub metainfo: &'static str,
    /// Features (a JSON list) to the result (a JSON list), or why not.
    pub calculate: fn(&Value) -> Result<Value, String>,
}

pub const SCORING_ENGINES: &[ScoringEngine] = &[
    ScoringEngine {
        id: 1,
        uuid: "5a1c0a6e-3c2b-4d5e-9f1a-000000000001",
        name: "dummy_scorer",
        description: "Dummy workload classifier",
        // Served as upstream's plugin returns it, whitespace included: a
        // client comparing the text sees the same.
        metainfo: DUMMY_SCORER_METAINFO,
        calculate: classify_workload,
    },
    ScoringEngine {
        id: 2,
        uuid: "5a1c0a6e-3c2b-4d5e-9f1a-000000000002",
        name: "dummy_avg_scorer",
        description: "Dummy Scorer calculating the average value",
        metainfo: "",
        calculate: average,
    },
    ScoringEngine {
        id: 3,
        uuid: "5a1c0a6e-3c2b-4d5e-9f1a-000000000003",
        name: "dummy_min_scorer",
        description: "Dummy Scorer calculating the minimum value",
        metainfo: "",
        calculate: minimum,
    },
    ScoringEngine {
        id: 4,
        uuid: "5a1c0a6e-3c2b-4d5e-9f1a-000000000004",
        name: "dummy_max_scorer",
        description: "Dummy Scorer calculating the maximum value",
        metainfo: "",
        calculate: maximum,
    },
];

const DUMMY_SCORER_METAINFO: &str = "{
            \"feature_columns\": [
                \"proc-processor-time-%\",
                \"mem-total-bytes\",
                \"mem-avail-bytes\",
                \"mem-page-reads/sec\",
                \"mem-page-writes/sec\",
                \"disk-read-bytes/sec\",
                \"disk-write-bytes/sec\",
                \"net-bytes-received/sec\",
                \"net-bytes-sent/sec\"],
            \"result_columns\": [
                \"workload\",
                \"idle-probability\",
                \"cpu-probability\",
                \"memory-probability\",
                \"disk-probability\"],
            \"workloads\": [
                \"idle\",
                \"cpu-intensive\",
                \"memory-intensive\",
                \"disk-intensive\"]
            }";

/// An engine by UUID or by name, the name compared without regard to ASCII
/// case as upstream finds names on MySQL.
pub fn find(ident: &str) -> Option<&'static ScoringEngine> {
    SCORING_ENGINES
        .iter()
        .find(|e| e.uuid == ident || e.name.eq_ignore_ascii_case(ident))
}

fn numbers(features: &Value) -> Result<Vec<f64>, String> {
    features
        .as_array()
        .ok_or("JSON list expected in feature argument")?
        .iter()
        .map(|v| {
            v.as_f64()
                .ok_or_else(|| format!("feature {v} is not a number"))
        })
        .collect()
}

/// Upstream's rules: CPU at 80 % or more is cpu-intensive, 1,000 page reads
/// and writes a second memory-intensive, 50 MiB/s read and written
/// disk-intensive, otherwise idle. Result: [workload, four probabilities].
fn classify_workload(features: &Value) -> Result<Value, String> {
    let f = numbers(features)?;
    if f.len() != 9 {
        return Err("Invalid number of features, expected 9".into());
    }
    const MIB: f64 = 1024.0 * 1024.0;
    let (workload, probabilities) = if f[0] >= 80.0 {
        (1, [0.0, 100.0, 0.0, 0.0])
    } else if f[3] >= 1000.0 && f[4] >= 1000.0 {
        (2, [0.0, 0.0, 100.0, 0.0])
    } else if f[5] >= 50.0 * MIB && f[6] >= 50.0 * MIB {
        (3, [0.0, 0.0, 0.0, 100.0])
    } else {
        (0, [100.0, 0.0, 0.0, 0.0])
    };
    let mut out = vec![json!(workload)];
    out.extend(probabilities.iter().map(|p| json!(p)));
    Ok(Value::Array(out))
}

/// The numbers of `features`, at least one (upstream's simple scorers).
fn some_numbers(features: &Value) -> Result<Vec<f64>, String> {
    let f = numbers(features)?;
    if f.is_empty() {
        return Err("At least one feature is required".into());
    }
    Ok(f)
}

fn average(features: &Value) -> Result<Value, String> {
    let f = some_numbers(features)?;
    Ok(json!([f.iter().sum::<f64>() / f.len() as f64]))
}

fn minimum(features: &Value) -> Result<Value, String> {
    Ok(json!([some_numbers(features)?
        .into_iter()
        .fold(f64::INFINITY, f64::min)]))
}

fn maximum(features: &Value) -> Result<Value, String> {
    Ok(json!([some_numbers(features)?
        .into_iter()
        .fold(f64::NEG_INFINITY, f64::max)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_engines_classify_and_average_as_upstreams() {
        let c = find("dummy_scorer").unwrap();
        let gib = 1024.0 * 1024.0 * 1024.0;
        let busy = json!([85, 4.0 * gib, gib, 0, 0, 0, 0, 0, 0]);
        assert_eq!((c.calculate)(&busy).unwrap()[0], 1);
        let idle = json!([5, 4.0 * gib, gib, 0, 0, 0, 0, 0, 0]);
        assert_eq!((c.calculate)(&idle).unwrap()[0], 0);
        assert!((c.calculate)(&json!([1, 2]))
            .unwrap_err()
            .contains("expected 9"));
        let a = find(SCORING_ENGINES[1].uuid).unwrap();
        assert_eq!((a.calculate)(&json!([1, 2, 3, 6])).unwrap(), json!([3.0]));
        let min = find("dummy_min_scorer").unwrap();
        assert_eq!(
            (min.calculate)(&json!([4, -2.5, 3])).unwrap(),
            json!([-2.5])
        );
        let max = find("DUMMY_MAX_SCORER").unwrap();
        assert_eq!((max.calculate)(&json!([4, -2.5, 3])).unwrap(), json!([4.0]));
        assert_eq!(
            (max.calculate)(&json!([])).unwrap_err(),
            "At least one feature is required"
        );
        // The text upstream's plugin gives, whitespace and all.
        assert!(c
            .metainfo
            .starts_with("{\n            \"feature_columns\": [\n"));
        let meta: Value = serde_json::from_str(c.metainfo).unwrap();
        assert_eq!(meta["workloads"][3], "disk-intensive");
    }
}
