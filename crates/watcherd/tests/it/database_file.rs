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

/// A tmpfs of its own, for the database file alone; unmounted when dropped.
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(path: &std::path::Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "this test mounts a tmpfs and needs root for it: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk {
            path: path.to_path_buf(),
        }
    }

    /// Fills what is left with a file, in ever smaller blocks down to one
    /// byte, until the file system refuses.
    fn fill(&self) -> std::path::PathBuf {
        let filler = self.path.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        for block in [65536, 4096, 512, 1] {
            let bytes = vec![0u8; block];
            while f.write_all(&bytes).and_then(|()| f.flush()).is_ok() {}
        }
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

#[test]
fn a_full_disk_under_the_sqlite_file_answers_503_and_writes_resume_once_space_is_freed() {
    let dir = temp_dir("full-disk");
    let disk = SmallDisk::mount(&dir.join("disk"), "8m");
    let db = disk.path.join("watcher.db");
    // Only the database on the small disk: the log and config are outside.
    let config = write_config_on(&dir, &format!("sqlite://{}", db.display()), "", "", "");
    let d = Daemon::start_with_config(&dir, config, None);
    let sleeps: Vec<_> = (0..3)
        .map(|_| json!({"action_type": "sleep", "input_parameters": {"duration": 1.0}}))
        .collect();
    let plan = d.actuator(json!(sleeps));
    d.start_plan(&plan);
    assert_eq!(d.raw("GET", "/healthz", "").0, 200);

    let filler = disk.fill();
    // New objects need new pages: refused with Watcher's body saying why
    // and what to do, never a 500.
    let template = |i: usize| json!({"name": format!("t{i}"), "goal": "dummy", "description": "x".repeat(4000)});
    let mut refused = None;
    for i in 0..400 {
        let (status, body) = d.req("POST", "/v1/audit_templates", Some(&template(i)));
        assert!(status == 201 || status == 503, "{status}: {body}");
        if status == 503 {
            refused = Some(body);
            break;
        }
    }
    let body = refused.expect("a write refused on the full disk");
    let why = faultstring(&body);
    assert!(why.contains("full") && why.contains("free space"), "{body}");
    let health = wait_for(std::time::Duration::from_secs(5), || {
        let (status, body) = d.raw("GET", "/healthz", "");
        (status == 503).then_some(body)
    });
    assert!(health.contains("free space"), "{health}");
    // Nothing damaged: SQLite rolled each refused transaction back whole.
    let check: String =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap()
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .unwrap();
    assert_eq!(check, "ok");

    std::fs::remove_file(&filler).unwrap();
    let (status, body) = d.req("POST", "/v1/audit_templates", Some(&template(1000)));
    assert_eq!(status, 201, "{body}");
    wait_for(std::time::Duration::from_secs(20), || {
        (d.raw("GET", "/healthz", "").0 == 200).then_some(())
    });
    let p = d.wait_state(&plan, &["SUCCEEDED", "FAILED", "CANCELLED"]);
    assert_eq!(p["state"], "SUCCEEDED", "{p}; log: {}", d.log());
    assert_history_unbroken(&d, &plan);
}
