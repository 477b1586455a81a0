//! The embedded SQLite file as an operator meets it: checked when watcherd
//! starts (a damaged file stops it with the file's name, before anything is
//! served), and left without a WAL after a clean stop.

use watcher_testkit as common;

use common::*;
use serde_json::json;
use std::io::{Seek, SeekFrom, Write};
use std::process::Command;

#[test]
fn a_clean_stop_leaves_no_wal_and_a_damaged_file_stops_watcherd_by_name() {
    let dir = temp_dir("database-file");
    let config = write_config_on(
        &dir,
        &format!("sqlite://{}", dir.join("watcher.db").display()),
        "",
        "",
        "",
    );
    let mut d = Daemon::start_with_config(&dir, config.clone(), None);
    // Enough rows to fill many pages.
    for _ in 0..20 {
        let plan = d.actuator(json!((0..20)
            .map(
                |i| json!({"action_type": "nop", "input_parameters": {"message": format!("m{i}")}})
            )
            .collect::<Vec<_>>()));
        d.start_plan(&plan);
        d.wait_state(&plan, &["SUCCEEDED"]);
    }
    assert!(d.terminate().success());
    let db = dir.join("watcher.db");
    let wal = dir.join("watcher.db-wal");
    assert_eq!(
        std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0),
        0,
        "a WAL was left behind"
    );

    // Damage pages in the second half of the file, as a failing disk would.
    // (One page alone may be on the free list, which no check reads.)
    let size = std::fs::metadata(&db).unwrap().len();
    assert!(size > 64 * 1024, "{size}");
    let mut f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    let mut at = (size / 2 / 4096) * 4096;
    while at + 4096 < size {
        f.seek(SeekFrom::Start(at + 100)).unwrap();
        f.write_all(&[0xA5; 2000]).unwrap();
        at += 3 * 4096;
    }
    drop(f);
    // Bounded: a watcherd that starts anyway must fail the test, not hang it.
    let out = Command::new("timeout")
        .arg("30")
        .arg(watcherd_binary())
        .args(["--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started on a damaged file: {stderr}");
    assert!(stderr.contains("is damaged"), "{stderr}");
    assert!(stderr.contains(&db.display().to_string()), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
