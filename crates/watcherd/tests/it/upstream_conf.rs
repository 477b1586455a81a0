//! watcherd started with upstream's `watcher.conf` (`--config-file`,
//! `--config-dir`) and nothing else: the options it maps, the ones it
//! reports, the log where upstream's `log_dir` puts it, and the refusal of a
//! file with a value of the wrong type.

use watcher_testkit as common;

use common::*;
use std::path::Path;
use std::process::Command;

/// A watcher.conf as a deployment renders it, for a loopback watcherd
/// without Keystone (upstream's `enable_authentication = false`).
fn watcher_conf(dir: &Path) -> String {
    format!(
        "[DEFAULT]\n\
         # rendered by the deployment tool\n\
         enable_authentication = false\n\
         debug = false\n\
         log_dir = {dir}\n\
         host = conf-host\n\
         \n\
         [database]\n\
         connection = sqlite:///{dir}/watcher.db\n\
         \n\
         [api]\n\
         host = 127.0.0.1\n\
         port = 0\n\
         workers = 4\n\
         \n\
         [watcher_applier]\n\
         workers = 3\n\
         \n\
         [vendor_plugin]\n\
         frobnicate = yes\n",
        dir = dir.display()
    )
}

#[test]
fn watcherd_runs_on_upstreams_watcher_conf_alone() {
    let dir = temp_dir("upstream-conf");
    let conf = dir.join("watcher.conf");
    std::fs::write(&conf, watcher_conf(&dir)).unwrap();
    // A directory's file wins over the file before it, as with oslo.config.
    let d = dir.join("watcher.conf.d");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("50-host.conf"), "[DEFAULT]\nhost = dir-host\n").unwrap();

    let printed = Command::new(watcherd_binary())
        .args(["--config-file"])
        .arg(&conf)
        .arg("--config-dir")
        .arg(&d)
        .arg("--print-config")
        .output()
        .unwrap();
    assert!(printed.status.success(), "{printed:?}");
    let text = String::from_utf8_lossy(&printed.stdout);
    assert!(text.contains("host = \"dir-host\""), "{text}");
    assert!(text.contains("max_concurrent_plans = 3"), "{text}");
    assert!(text.contains("auth_strategy = \"noauth\""), "{text}");
    assert!(
        text.contains("# [database] connection (") && text.contains(") -> database"),
        "{text}"
    );
    assert!(
        text.contains("# [api] workers (") && text.contains("not used:"),
        "{text}"
    );
    assert!(
        text.contains("# [vendor_plugin] frobnicate (") && text.contains("unknown to watcherd"),
        "{text}"
    );

    let daemon = Daemon::start_bare(
        &dir,
        &[
            "--config-file".as_ref(),
            conf.as_os_str(),
            "--config-dir".as_ref(),
            d.as_os_str(),
        ],
    );
    assert!(daemon.get("/v1/goals")["goals"].as_array().is_some());
    let plan = daemon.recommend("dummy", "dummy", serde_json::json!({}));
    let audit = daemon.plan(&plan)["audit_uuid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        daemon.get(&format!("/v1/audits/{audit}"))["hostname"],
        "dir-host"
    );
    assert!(
        dir.join("watcher.db").exists(),
        "the database of [database]"
    );
    // The log went where upstream's log_dir says, and it names the option
    // it does not know, once.
    let log = std::fs::read_to_string(dir.join("watcherd.log")).unwrap();
    assert_eq!(
        log.matches("an option watcherd does not know").count(),
        1,
        "{log}"
    );
    assert!(
        log.contains("vendor_plugin") && log.contains("frobnicate"),
        "{log}"
    );
    assert!(log.contains("watcherd started"), "{log}");
}

#[test]
fn a_value_of_the_wrong_type_stops_watcherd_naming_file_line_and_option() {
    let dir = temp_dir("upstream-conf-bad");
    let conf = dir.join("watcher.conf");
    std::fs::write(
        &conf,
        format!(
            "[DEFAULT]\nenable_authentication = false\n[database]\nconnection = sqlite:///{}/w.db\n[api]\nport = ninety-three-twenty-two\n",
            dir.display()
        ),
    )
    .unwrap();
    let out = Command::new(watcherd_binary())
        .arg("--config-file")
        .arg(&conf)
        .env_remove("WATCHER_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:6: [api] port = \"ninety-three-twenty-two\": not an integer",
            conf.display()
        )),
        "{err}"
    );
    assert!(!dir.join("w.db").exists(), "nothing was created");
}
