//! The Keystone tests of the CLI are built ignored without
//! `WATCHER_KEYSTONE_URL` (as watcherd's, see crates/watcherd/build.rs);
//! CI sets it and runs ignored tests too, so a missing Keystone fails there.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(test_keystone)");
    println!("cargo::rerun-if-env-changed=WATCHER_KEYSTONE_URL");
    if std::env::var("WATCHER_KEYSTONE_URL").is_ok_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=test_keystone");
    }
    println!("cargo::rerun-if-changed=build.rs");
}
