//! /v1/openapi.json must describe exactly what the router serves.

use watcher_testkit as common;

use common::*;
use std::collections::BTreeSet;
use watcher_api::openapi::ROUTES;

#[test]
fn the_document_names_exactly_the_paths_the_router_registers() {
    let src =
        std::fs::read_to_string(common::workspace_root().join("crates/watcher-api/src/lib.rs"))
            .unwrap();
    let start = src.find("let v1 = Router::new()").unwrap();
    let end = src[start..].find(".layer(").unwrap() + start;
    let mut registered = BTreeSet::new();
    let mut rest = &src[start..end];
    while let Some(i) = rest.find(".route(") {
        rest = &rest[i + 7..];
        let q1 = rest.find('"').unwrap();
        let q2 = rest[q1 + 1..].find('"').unwrap() + q1 + 1;
        registered.insert(rest[q1 + 1..q2].to_string());
    }
    let documented: BTreeSet<String> = ROUTES.iter().map(|r| r.path.to_string()).collect();
    assert_eq!(documented, registered);
}

#[test]
fn every_documented_operation_is_served() {
    let d = Daemon::start("openapi");
    let doc = d.get("/v1/openapi.json");
    assert_eq!(doc["openapi"], "3.0.3");
    for r in ROUTES {
        let path = r
            .path
            .replace("{uuid}", "00000000-0000-0000-0000-000000000000")
            .replace("{ident}", "00000000-0000-0000-0000-000000000000");
        let url = format!("{}/v1{}", d.url, if path == "/" { "" } else { &path });
        let req = ureq::request(&r.method.to_uppercase(), &url)
            .set("OpenStack-API-Version", "infra-optim 1.7");
        let resp = if matches!(r.method, "post" | "patch") {
            req.set("Content-Type", "application/json")
                .send_string("[]")
        } else {
            req.call()
        };
        let (status, text) = match resp {
            Ok(x) => (x.status(), x.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(c, x)) => (c, x.into_string().unwrap_or_default()),
            Err(e) => panic!("{e}"),
        };
        assert_ne!(
            status, 405,
            "{} {path} is documented but not served",
            r.method
        );
        assert!(
            !text.contains("The resource /"),
            "{} {path} is documented but not routed: {text}",
            r.method
        );
    }
    // And no method is served that the document leaves out.
    let paths: BTreeSet<&str> = ROUTES.iter().map(|r| r.path).collect();
    for p in paths {
        for m in ["get", "post", "patch", "delete", "put"] {
            if ROUTES.iter().any(|r| r.path == p && r.method == m) {
                continue;
            }
            let path = p
                .replace("{uuid}", "00000000-0000-0000-0000-000000000000")
                .replace("{ident}", "x");
            let url = format!("{}/v1{}", d.url, if path == "/" { "" } else { &path });
            let status = match ureq::request(&m.to_uppercase(), &url).send_string("{}") {
                Ok(x) => x.status(),
                Err(ureq::Error::Status(c, _)) => c,
                Err(e) => panic!("{e}"),
            };
            assert_eq!(status, 405, "{m} {p} is served but not documented");
        }
    }
}
