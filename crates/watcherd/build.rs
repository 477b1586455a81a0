//! Tests that need an outside service are built ignored when the variable
//! that configures it is unset, so `cargo test` reports them as ignored
//! rather than passing in no time; CI sets every variable and also runs with
//! `--include-ignored`, so a missing service fails there.

const SERVICES: &[(&str, &str)] = &[
    ("WATCHER_KEYSTONE_URL", "test_keystone"),
    ("OS_AUTH_URL", "test_openstack"),
    ("WATCHER_TEST_RABBITMQ", "test_rabbitmq"),
    ("WATCHER_TEST_POSTGRES", "test_postgres"),
    ("WATCHER_TEST_MARIADB", "test_mariadb"),
    ("WATCHER_TEST_STUNNEL", "test_stunnel"),
    ("WATCHER_TEST_PROMETHEUS", "test_prometheus"),
    ("WATCHER_TEST_CINDER", "test_cinder"),
    ("WATCHER_TEST_CHROMEDRIVER", "test_chromium"),
];

fn main() {
    for (var, cfg) in SERVICES {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        println!("cargo::rerun-if-env-changed={var}");
        if std::env::var(var).is_ok_and(|v| !v.is_empty()) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
    println!("cargo::rerun-if-changed=build.rs");
}
