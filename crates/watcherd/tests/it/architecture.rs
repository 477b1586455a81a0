//! The crates' dependencies are the arrows docs/architecture.md allows:
//! a new arrow between layers is a decision written there first.

use std::collections::{BTreeMap, BTreeSet};
use watcher_testkit::workspace_root;

type Arrows = BTreeMap<String, BTreeSet<String>>;

/// The table between `<!-- crate-arrows -->` and `<!-- end -->`.
fn documented() -> Arrows {
    let doc = std::fs::read_to_string(workspace_root().join("docs/architecture.md")).unwrap();
    let start = doc
        .find("<!-- crate-arrows -->")
        .expect("the crate-arrows table");
    let rest = &doc[start..];
    let end = rest.find("<!-- end -->").expect("the table's end marker");
    rest[..end]
        .lines()
        .filter(|l| l.starts_with("| watcher"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            let deps = cells[1]
                .split(',')
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(String::from)
                .collect();
            (cells[0].to_string(), deps)
        })
        .collect()
}

/// Every crate's `[dependencies]` on crates of the workspace (dev-dependencies
/// such as the test kit are not arrows of the product).
fn declared() -> Arrows {
    let mut out = Arrows::new();
    for entry in std::fs::read_dir(workspace_root().join("crates")).unwrap() {
        let dir = entry.unwrap().path();
        let manifest: toml::Table = std::fs::read_to_string(dir.join("Cargo.toml"))
            .unwrap()
            .parse()
            .unwrap();
        let name = manifest["package"]["name"].as_str().unwrap().to_string();
        let deps = manifest
            .get("dependencies")
            .and_then(|d| d.as_table())
            .map(|d| {
                d.keys()
                    .filter(|k| k.starts_with("watcher"))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        out.insert(name, deps);
    }
    out
}

#[test]
fn every_crate_depends_only_on_the_layers_the_architecture_allows() {
    assert_eq!(declared(), documented());
}
