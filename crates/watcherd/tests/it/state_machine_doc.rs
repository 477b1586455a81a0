//! docs/state-machines.md must list exactly the code's transition tables.

use std::collections::BTreeSet;
use watcher_core::*;

type Row = (String, String, BTreeSet<String>);

fn doc_table(doc: &str, entity: &str) -> BTreeSet<Row> {
    let marker = format!("<!-- transitions: {entity} -->");
    let start = doc
        .find(&marker)
        .unwrap_or_else(|| panic!("no {marker} in the doc"));
    let rest = &doc[start + marker.len()..];
    let end = rest.find("<!-- end -->").expect("table end marker");
    rest[..end]
        .lines()
        .filter(|l| l.starts_with('|') && !l.contains("---") && !l.contains("| From |"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 3, "bad row: {l}");
            let by = cells[2].split(',').map(|s| s.trim().to_string()).collect();
            (cells[0].to_string(), cells[1].to_string(), by)
        })
        .collect()
}

fn code_table<S: std::fmt::Display + Copy>(table: &[Transition<S>]) -> BTreeSet<Row> {
    table
        .iter()
        .map(|t| {
            (
                t.from.to_string(),
                t.to.to_string(),
                t.by.iter().map(|a| a.to_string()).collect(),
            )
        })
        .collect()
}

#[test]
fn the_state_machine_doc_matches_the_transition_tables() {
    let doc =
        std::fs::read_to_string(watcher_testkit::workspace_root().join("docs/state-machines.md"))
            .unwrap();
    assert_eq!(
        doc_table(&doc, "action_plan"),
        code_table(PLAN_TRANSITIONS),
        "action plan table"
    );
    assert_eq!(
        doc_table(&doc, "action"),
        code_table(ACTION_TRANSITIONS),
        "action table"
    );
    assert_eq!(
        doc_table(&doc, "audit"),
        code_table(AUDIT_TRANSITIONS),
        "audit table"
    );
    // No duplicate rows hide in the code either.
    assert_eq!(code_table(PLAN_TRANSITIONS).len(), PLAN_TRANSITIONS.len());
    assert_eq!(
        code_table(ACTION_TRANSITIONS).len(),
        ACTION_TRANSITIONS.len()
    );
}
