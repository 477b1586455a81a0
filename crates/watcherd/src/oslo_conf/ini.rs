//! oslo.config's INI syntax.

use crate::config::ConfigError;
use std::path::Path;

/// oslo.config's INI syntax: `(section, option, value, line)` in order.
pub(super) fn parse(
    text: &str,
    path: &Path,
) -> Result<Vec<(String, String, String, usize)>, ConfigError> {
    let bad =
        |line: usize, why: &str| ConfigError::Invalid(format!("{}:{line}: {why}", path.display()));
    let mut out: Vec<(String, String, String, usize)> = Vec::new();
    let mut section: Option<String> = None;
    // The option a continuation line would extend.
    let mut open = false;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim_end();
        if line.is_empty() {
            open = false;
            continue;
        }
        let first = line.chars().next().expect("not empty");
        if first.is_whitespace() {
            let last = out.last_mut().filter(|_| open).ok_or_else(|| {
                bad(
                    n,
                    "an indented line continues no option (remove its indentation?)",
                )
            })?;
            let more = unquote(line.trim());
            if last.2.is_empty() {
                last.2 = more.to_string();
            } else {
                last.2.push('\n');
                last.2.push_str(more);
            }
            continue;
        }
        open = false;
        if first == '#' || first == ';' {
            continue;
        }
        if first == '[' {
            let name = line
                .strip_prefix('[')
                .and_then(|l| l.strip_suffix(']'))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| bad(n, &format!("{line:?} is not a section header ([name])")))?;
            section = Some(if name.eq_ignore_ascii_case("default") {
                "DEFAULT".to_string()
            } else {
                name.to_string()
            });
            continue;
        }
        let split = line
            .find(['=', ':'])
            .ok_or_else(|| bad(n, &format!("{line:?} has no '=' or ':' (option = value)")))?;
        let option = line[..split].trim();
        if option.is_empty() {
            return Err(bad(n, "a value without an option name"));
        }
        let section = section
            .clone()
            .ok_or_else(|| bad(n, "an option before any [section] header"))?;
        let value = unquote(line[split + 1..].trim()).to_string();
        out.push((section, option.replace('-', "_"), value, n));
        open = true;
    }
    Ok(out)
}

/// oslo.config drops quotes that open and close a value alike.
fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}
