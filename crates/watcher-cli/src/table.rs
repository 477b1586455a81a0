//! Tables in the style of the OpenStack clients.

use serde_json::Value;

/// Efficacy indicators (`[{name, value, unit, ...}]`) as `name: value unit`
/// lines; None for anything else.
fn indicators(v: &Value) -> Option<Vec<String>> {
    let items = v.as_array().filter(|a| !a.is_empty())?;
    items
        .iter()
        .map(|i| {
            let name = i.get("name")?.as_str()?;
            let value = i.get("value")?.as_f64()?;
            let value = if value.fract() == 0.0 && value.abs() < 1e15 {
                format!("{value:.0}")
            } else {
                format!("{value:.2}")
            };
            Some(match i.get("unit").and_then(Value::as_str) {
                Some(unit) => format!("{name}: {value} {unit}"),
                None => format!("{name}: {value}"),
            })
        })
        .collect()
}

/// How a JSON value reads in a table cell.
pub fn cell(v: &Value) -> String {
    if let Some(lines) = indicators(v) {
        return lines.join("; ");
    }
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            items.iter().map(cell).collect::<Vec<_>>().join(", ")
        }
        other => other.to_string(),
    }
}

/// Columns `s` takes on a terminal: two for wide (e.g. CJK) characters.
fn width(s: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(s)
}

/// Renders rows under headers with +---+ borders.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for row in rows {
        for (i, c) in row.iter().enumerate() {
            for line in c.lines() {
                widths[i] = widths[i].max(width(line));
            }
        }
    }
    let sep = format!(
        "+{}+\n",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("+")
    );
    let line = |cells: Vec<&str>| -> String {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!(" {}{} ", c, " ".repeat(w - width(c))))
            .collect();
        format!("|{}|\n", parts.join("|"))
    };
    let mut out = sep.clone();
    out += &line(headers.to_vec());
    out += &sep;
    for row in rows {
        let split: Vec<Vec<&str>> = row.iter().map(|c| c.lines().collect::<Vec<_>>()).collect();
        let height = split.iter().map(|l| l.len()).max().unwrap_or(1).max(1);
        for h in 0..height {
            out += &line(
                split
                    .iter()
                    .map(|l| l.get(h).copied().unwrap_or(""))
                    .collect(),
            );
        }
    }
    out += &sep;
    out
}

/// A list of objects as a table of the given (header, field) columns.
pub fn list(items: &[Value], columns: &[(&str, &str)]) -> String {
    let headers: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| columns.iter().map(|(_, f)| cell(&item[*f])).collect())
        .collect();
    render(&headers, &rows)
}

/// One object as a Field | Value table, in the given field order.
pub fn show(item: &Value, fields: &[(&str, &str)]) -> String {
    let rows: Vec<Vec<String>> = fields
        .iter()
        .map(|(label, f)| {
            let v = &item[*f];
            let text = if let Some(lines) = indicators(v) {
                lines.join("\n")
            } else if v.is_object() || v.as_array().is_some_and(|a| a.iter().any(Value::is_object))
            {
                serde_json::to_string_pretty(v).unwrap_or_default()
            } else {
                cell(v)
            };
            vec![label.to_string(), text]
        })
        .collect();
    render(&["Field", "Value"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn efficacy_indicators_read_as_name_value_unit() {
        let v = json!([{"name": "released_nodes_ratio", "description": "...", "unit": "%", "value": 66.666},
                       {"name": "instance_migrations_count", "description": "...", "unit": null, "value": 3.0}]);
        assert_eq!(
            cell(&v),
            "released_nodes_ratio: 66.67 %; instance_migrations_count: 3"
        );
        let table = show(&json!({"e": v}), &[("E", "e")]);
        assert!(
            table.contains("| E     | released_nodes_ratio: 66.67 %"),
            "{table}"
        );
        assert!(
            table.contains("|       | instance_migrations_count: 3 "),
            "{table}"
        );
    }

    #[test]
    fn wide_characters_take_two_columns() {
        let t = list(&[json!({"a": "迁移"}), json!({"a": "ab"})], &[("A", "a")]);
        assert_eq!(
            t,
            "+------+\n| A    |\n+------+\n| 迁移 |\n| ab   |\n+------+\n"
        );
    }

    #[test]
    fn tables_align_columns() {
        let t = list(
            &[
                json!({"a": "x", "b": 10}),
                json!({"a": "longer", "b": null}),
            ],
            &[("A", "a"), ("B", "b")],
        );
        assert_eq!(
            t,
            "+--------+----+\n| A      | B  |\n+--------+----+\n| x      | 10 |\n| longer |    |\n+--------+----+\n"
        );
    }
}
