//! Results printed as the OpenStack clients print them (their `cliff`
//! formatters): a table by default; `-f json|yaml|value|csv` for scripts,
//! each row or object keyed by the table's column titles, with the API's
//! values as they are; `-c TITLE` keeps only some columns.

use crate::table;
use clap::{Args, ValueEnum};
use serde_json::{Map, Value};

#[derive(Clone, Copy, ValueEnum, PartialEq, Debug)]
pub enum Format {
    Table,
    Json,
    Yaml,
    Value,
    Csv,
}

#[derive(Args, Debug)]
#[command(next_help_heading = "Output")]
pub struct OutputArgs {
    /// Output format.
    #[arg(short = 'f', long = "format", global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Only this column, by its title (repeat for several).
    #[arg(short = 'c', long = "column", global = true, value_name = "COLUMN")]
    pub columns: Vec<String>,
    /// JSON on one line (-f json).
    #[arg(long, global = true)]
    pub noindent: bool,
}

/// (title, field of the API's object) of each column.
pub type Columns<'a> = &'a [(&'a str, &'a str)];

#[derive(Debug, thiserror::Error)]
#[error("no column named {asked}; the columns are: {known}")]
pub struct UnknownColumns {
    asked: String,
    known: String,
}

pub struct Out {
    pub args: OutputArgs,
}

impl Out {
    /// The columns `-c` keeps, in the command's order.
    fn pick<'a>(&self, columns: Columns<'a>) -> Result<Vec<(&'a str, &'a str)>, UnknownColumns> {
        if self.args.columns.is_empty() {
            return Ok(columns.to_vec());
        }
        let kept: Vec<_> = columns
            .iter()
            .filter(|(title, _)| self.args.columns.iter().any(|c| c == title))
            .copied()
            .collect();
        if kept.is_empty() {
            return Err(UnknownColumns {
                asked: self.args.columns.join(", "),
                known: columns
                    .iter()
                    .map(|(t, _)| *t)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(kept)
    }

    pub fn list(&self, items: &[Value], columns: Columns) -> Result<(), UnknownColumns> {
        let columns = self.pick(columns)?;
        let rows: Vec<Vec<&Value>> = items
            .iter()
            .map(|item| columns.iter().map(|(_, f)| field(item, f)).collect())
            .collect();
        let text = match self.args.format {
            Format::Table => table::list(items, &columns),
            Format::Json => {
                let objects: Vec<String> = rows
                    .iter()
                    .map(|r| self.json_object(&columns, r, 1))
                    .collect();
                if objects.is_empty() {
                    "[]\n".into()
                } else if self.args.noindent {
                    format!("[{}]\n", objects.join(", "))
                } else {
                    format!("[\n  {}\n]\n", objects.join(",\n  "))
                }
            }
            Format::Yaml => {
                let objects: Vec<Value> = rows.iter().map(|r| keyed(&columns, r)).collect();
                yaml(&Value::Array(objects))
            }
            Format::Value => rows
                .iter()
                .map(|r| r.iter().map(|v| py_str(v)).collect::<Vec<_>>().join(" ") + "\n")
                .collect(),
            Format::Csv => {
                let mut out = csv_row(columns.iter().map(|(t, _)| Value::String(t.to_string())));
                for r in &rows {
                    out += &csv_row(r.iter().map(|v| (*v).clone()));
                }
                out
            }
        };
        print!("{text}");
        Ok(())
    }

    pub fn show(&self, item: &Value, columns: Columns) -> Result<(), UnknownColumns> {
        let columns = self.pick(columns)?;
        let values: Vec<&Value> = columns.iter().map(|(_, f)| field(item, f)).collect();
        let text = match self.args.format {
            Format::Table => table::show(item, &columns),
            Format::Json => self.json_object(&columns, &values, 0) + "\n",
            Format::Yaml => yaml(&keyed(&columns, &values)),
            Format::Value => values.iter().map(|v| py_str(v) + "\n").collect(),
            Format::Csv => {
                csv_row(columns.iter().map(|(t, _)| Value::String(t.to_string())))
                    + &csv_row(values.iter().map(|v| (*v).clone()))
            }
        };
        print!("{text}");
        Ok(())
    }

    /// A line for people (a table's companion, e.g. "Deleted ..."):
    /// printed with the table format only, so scripts read clean output.
    pub fn note(&self, line: &str) {
        if self.args.format == Format::Table {
            println!("{line}");
        }
    }

    /// An object in the columns' order (as the OpenStack clients print
    /// it), indented by 2 per `level` as Python's json module does.
    fn json_object(&self, columns: &[(&str, &str)], values: &[&Value], level: usize) -> String {
        let indent = (!self.args.noindent).then_some(2);
        let pairs: Vec<(String, &Value)> = columns
            .iter()
            .zip(values)
            .map(|((title, _), v)| (Value::String(title.to_string()).to_string(), *v))
            .collect();
        write_object(&pairs, indent, level)
    }
}

/// The item's field, or "" as the OpenStack clients show a missing one.
fn field<'a>(item: &'a Value, name: &str) -> &'a Value {
    static EMPTY: Value = Value::String(String::new());
    item.get(name).unwrap_or(&EMPTY)
}

fn keyed(columns: &[(&str, &str)], values: &[&Value]) -> Value {
    let mut m = Map::new();
    for ((title, _), v) in columns.iter().zip(values) {
        m.insert(title.to_string(), (*v).clone());
    }
    Value::Object(m)
}

/// `v` as Python's `json.dumps(v, indent=indent)` writes it (upstream's
/// client shows some fields as such text).
pub fn python_json(v: &Value, indent: usize) -> String {
    write_json(v, Some(indent), 0)
}

/// JSON as Python's `json.dump` lays it out: `", "` and `": "` on one
/// line, or `indent` spaces per level.
fn write_json(v: &Value, indent: Option<usize>, level: usize) -> String {
    match v {
        Value::Array(items) if !items.is_empty() => {
            let parts: Vec<String> = items
                .iter()
                .map(|i| write_json(i, indent, level + 1))
                .collect();
            wrap('[', ']', &parts, indent, level)
        }
        Value::Object(m) if !m.is_empty() => {
            let pairs: Vec<(String, &Value)> = m
                .iter()
                .map(|(k, v)| (Value::String(k.clone()).to_string(), v))
                .collect();
            write_object(&pairs, indent, level)
        }
        other => other.to_string(),
    }
}

fn write_object(pairs: &[(String, &Value)], indent: Option<usize>, level: usize) -> String {
    if pairs.is_empty() {
        return "{}".into();
    }
    let parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}: {}", write_json(v, indent, level + 1)))
        .collect();
    wrap('{', '}', &parts, indent, level)
}

fn wrap(open: char, close: char, parts: &[String], indent: Option<usize>, level: usize) -> String {
    match indent {
        None => format!("{open}{}{close}", parts.join(", ")),
        Some(n) => {
            let inner = " ".repeat(n * (level + 1));
            let outer = " ".repeat(n * level);
            format!(
                "{open}\n{inner}{}\n{outer}{close}",
                parts.join(&format!(",\n{inner}"))
            )
        }
    }
}

/// A value as Python's `str()` prints the decoded JSON (what `-f value`
/// of the OpenStack clients shows): `None`, `True`, `['a', 1]`.
pub fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e16 => format!("{f:.1}"),
            _ => n.to_string(),
        },
        Value::String(s) if s.contains('\'') && !s.contains('"') => format!("\"{s}\""),
        Value::String(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(py_repr).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", py_repr(&Value::String(k.clone())), py_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// One CSV line as Python's csv module writes it with QUOTE_NONNUMERIC
/// (the clients' default): numbers and booleans bare, the rest quoted.
fn csv_row(values: impl Iterator<Item = Value>) -> String {
    let cells: Vec<String> = values
        .map(|v| match &v {
            Value::Number(_) | Value::Bool(_) => py_repr(&v),
            Value::Null => "\"\"".into(),
            other => format!("\"{}\"", py_str(other).replace('"', "\"\"")),
        })
        .collect();
    cells.join(",") + "\n"
}

/// Block-style YAML with sorted keys, as PyYAML's `safe_dump` writes it.
/// Strings that are not plainly safe are written double-quoted in JSON's
/// syntax, which YAML reads as the same string.
pub fn yaml(v: &Value) -> String {
    let mut out = String::new();
    yaml_node(v, 0, &mut out);
    out
}

fn yaml_node(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                out.push_str(&pad);
                out.push('-');
                match item {
                    Value::Object(m) if !m.is_empty() => {
                        // The first key on the dash's line, the rest under it.
                        let mut first = String::new();
                        yaml_node(item, indent + 2, &mut first);
                        out.push(' ');
                        out.push_str(first.trim_start());
                    }
                    Value::Array(a) if !a.is_empty() => {
                        out.push('\n');
                        yaml_node(item, indent + 2, out);
                    }
                    scalar => {
                        out.push(' ');
                        out.push_str(&yaml_scalar(scalar));
                        out.push('\n');
                    }
                }
            }
        }
        Value::Object(m) if !m.is_empty() => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for k in keys {
                let child = &m[k];
                out.push_str(&pad);
                out.push_str(&yaml_scalar(&Value::String(k.clone())));
                out.push(':');
                match child {
                    Value::Object(c) if !c.is_empty() => {
                        out.push('\n');
                        yaml_node(child, indent + 2, out);
                    }
                    Value::Array(a) if !a.is_empty() => {
                        out.push('\n');
                        yaml_node(child, indent, out);
                    }
                    scalar => {
                        out.push(' ');
                        out.push_str(&yaml_scalar(scalar));
                        out.push('\n');
                    }
                }
            }
        }
        scalar => {
            out.push_str(&pad);
            out.push_str(&yaml_scalar(scalar));
            out.push('\n');
        }
    }
}

fn yaml_scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
        Value::String(s) => {
            let plain = !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || " _-./".contains(c))
                && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && !s.ends_with(' ')
                && !matches!(
                    s.to_ascii_lowercase().as_str(),
                    "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
                );
            if plain {
                s.clone()
            } else {
                Value::String(s.clone()).to_string()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_keeps_the_columns_order_and_pythons_layout() {
        let v = json!({"b": [1, {"x": null}], "a": {}});
        assert_eq!(
            write_json(&v, None, 0),
            "{\"a\": {}, \"b\": [1, {\"x\": null}]}"
        );
        assert_eq!(
            write_json(&json!([1, [2]]), Some(2), 0),
            "[\n  1,\n  [\n    2\n  ]\n]"
        );
        let pairs = vec![
            ("\"Z\"".to_string(), &v["b"][0]),
            ("\"A\"".to_string(), &v["a"]),
        ];
        assert_eq!(write_object(&pairs, None, 0), "{\"Z\": 1, \"A\": {}}");
    }

    #[test]
    fn values_read_as_python_prints_them() {
        assert_eq!(py_str(&json!("x")), "x");
        assert_eq!(py_str(&json!(null)), "None");
        assert_eq!(py_str(&json!(true)), "True");
        assert_eq!(py_str(&json!(3.0)), "3.0");
        assert_eq!(py_str(&json!(["a", 1, null])), "['a', 1, None]");
        assert_eq!(py_str(&json!({"k": "it's"})), "{'k': \"it's\"}");
    }

    #[test]
    fn csv_quotes_as_pythons_nonnumeric_mode() {
        let row = csv_row(
            [
                json!("a"),
                json!(null),
                json!(1),
                json!(true),
                json!(["x"]),
                json!("say \"hi\""),
            ]
            .into_iter(),
        );
        assert_eq!(row, "\"a\",\"\",1,True,\"['x']\",\"say \"\"hi\"\"\"\n");
    }

    #[test]
    fn yaml_is_block_style_with_sorted_keys_and_safe_strings() {
        let v = json!([{"UUID": "5f1c", "State": "ONGOING", "Parents": [], "Parameters": {"para1": 30},
                        "Status Message": null, "Name": "true", "Time": "2026-12-02T20:00:00"}]);
        assert_eq!(
            yaml(&v),
            "- Name: \"true\"\n  Parameters:\n    para1: 30\n  Parents: []\n  State: ONGOING\n  \
             Status Message: null\n  Time: \"2026-12-02T20:00:00\"\n  UUID: \"5f1c\"\n"
        );
    }
}
