//! The crates' dependencies are the arrows docs/architecture.md allows,
//! each of them used, and no crate's modules import each other in a circle:
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

/// The `.rs` files of a crate's `src/`.
fn sources(crate_dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    let mut dirs = vec![crate_dir.join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn crate_dirs() -> Vec<std::path::PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir(workspace_root().join("crates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Cargo.toml").exists())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_declared_arrow_is_used() {
    let mut unused = vec![];
    for dir in crate_dirs() {
        let manifest: toml::Table = std::fs::read_to_string(dir.join("Cargo.toml"))
            .unwrap()
            .parse()
            .unwrap();
        let name = manifest["package"]["name"].as_str().unwrap().to_string();
        let text: String = sources(&dir)
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect();
        let deps = manifest.get("dependencies").and_then(|d| d.as_table());
        for dep in deps.into_iter().flat_map(|d| d.keys()) {
            if dep.starts_with("watcher") && !text.contains(&dep.replace('-', "_")) {
                unused.push(format!("{name} -> {dep}"));
            }
        }
    }
    assert!(
        unused.is_empty(),
        "declared in Cargo.toml but never used (remove the arrow, here and in docs/architecture.md): {unused:?}"
    );
}

/// A module's path inside its crate (`["openstack", "nova"]`), from its file.
fn module_path(src: &std::path::Path, file: &std::path::Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("lib" | "main" | "mod")
    ) {
        parts.pop();
    }
    parts
}

/// Arrows between sibling modules of one crate: module A names a path
/// (`crate::x::..`, `super::x::..`) into module B, drawn between the
/// children of their deepest common ancestor. A module using its parent's
/// items or its own children's is no arrow: that is how Rust nests.
fn sibling_arrows(crate_dir: &std::path::Path) -> BTreeSet<(String, String)> {
    let src = crate_dir.join("src");
    let files = sources(crate_dir);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_path(&src, f)).collect();
    let mut arrows = BTreeSet::new();
    for file in &files {
        let from = module_path(&src, file);
        if from.last().is_some_and(|m| m == "tests") {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        // Unit tests may use anything.
        let text = text.split("#[cfg(test)]\nmod tests {").next().unwrap();
        for (at, _) in text
            .match_indices("crate::")
            .chain(text.match_indices("super::"))
        {
            let before = text[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let path: Vec<&str> = text[at..]
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap()
                .split("::")
                .filter(|s| !s.is_empty())
                .collect();
            let mut target: Vec<String> = if path[0] == "crate" {
                vec![]
            } else {
                from[..from.len().saturating_sub(1)].to_vec()
            };
            for seg in &path[1..] {
                if *seg == "super" {
                    target.pop();
                    continue;
                }
                let mut next = target.clone();
                next.push(seg.to_string());
                if !modules.contains(&next) {
                    break;
                }
                target = next;
            }
            let common = from.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common == from.len() || common == target.len() {
                continue;
            }
            arrows.insert((from[..=common].join("::"), target[..=common].join("::")));
        }
    }
    arrows
}

#[test]
fn no_crate_has_an_import_circle_between_its_modules() {
    let mut circles = vec![];
    for dir in crate_dirs() {
        let arrows = sibling_arrows(&dir);
        for (a, b) in &arrows {
            // Is there a way back from b to a?
            let mut seen = BTreeSet::new();
            let mut stack = vec![vec![b.clone()]];
            while let Some(way) = stack.pop() {
                let last = way.last().unwrap();
                if last == a {
                    circles.push(format!(
                        "{}: {a} -> {}",
                        dir.file_name().unwrap().to_string_lossy(),
                        way.join(" -> ")
                    ));
                    break;
                }
                for (x, y) in &arrows {
                    if x == last && seen.insert(y.clone()) {
                        let mut next = way.clone();
                        next.push(y.clone());
                        stack.push(next);
                    }
                }
            }
        }
    }
    assert!(
        circles.is_empty(),
        "modules that import each other (move what they share to a module of its own): {circles:#?}"
    );
}
