//! Percentiles and the printing of rows.

use std::time::Duration;

pub(crate) fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    if v.is_empty() {
        return Duration::ZERO;
    }
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// The multi-threaded runtime the in-process benchmarks run on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Prints rows of (measure, result, target) as a Markdown table, the
/// columns as wide as their widest cell.
pub fn print_rows(rows: &[(String, String, &str)]) {
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    println!("| {:w0$} | {:w1$} | target |", "measure", "result");
    println!("|{}|{}|--------|", "-".repeat(w0 + 2), "-".repeat(w1 + 2));
    for (m, r, t) in rows {
        println!("| {m:w0$} | {r:w1$} | {t} |");
    }
}
