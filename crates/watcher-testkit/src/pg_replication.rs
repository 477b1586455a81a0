//! A PostgreSQL primary and its streaming standby, each a server of the
//! test's own, for failover tests: the primary killed -9, the standby
//! promoted as an HA manager (Patroni, Pacemaker) would promote it.

use crate::free_port;
use crate::servers::PrivatePostgres;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A primary whose commits wait for the standby (`synchronous_standby_names
/// = '*'`, `synchronous_commit = on`), so that a promoted standby has every
/// transaction a client saw committed; and that standby, streaming.
pub struct ReplicatedPostgres {
    pub primary: PrivatePostgres,
    pub standby: PrivatePostgres,
}

impl ReplicatedPostgres {
    pub fn start(root: &Path) -> ReplicatedPostgres {
        let mut primary = PrivatePostgres::start(&root.join("primary"));
        // Synchronous from now on: restarted with the setting, before any
        // client writes.
        primary.stop();
        primary.settings = " -c synchronous_standby_names=* -c synchronous_commit=on".into();
        primary.pg_ctl_start();
        let dir = root.join("standby").join("pg");
        std::fs::create_dir_all(&dir).unwrap();
        let _ = Command::new("chown")
            .args(["-R", "postgres"])
            .arg(root.join("standby"))
            .status();
        let standby = PrivatePostgres {
            dir,
            bin: primary.bin.clone(),
            port: free_port(),
            ssl: false,
            settings: String::new(),
        };
        // -R writes standby.signal and the primary's address: the copy
        // starts as a standby streaming from the primary.
        let port = primary.port.to_string();
        standby.run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-D",
                &standby.data(),
                "-R",
                "-X",
                "stream",
                "--no-sync",
            ],
        );
        standby.pg_ctl_start();
        let pair = ReplicatedPostgres { primary, standby };
        pair.wait_until_synchronous();
        pair
    }

    /// Until the primary counts the standby as its synchronous one.
    fn wait_until_synchronous(&self) {
        crate::wait_for(Duration::from_secs(30), || {
            let mut c = postgres::Client::connect(
                &format!(
                    "host=127.0.0.1 port={} user=postgres dbname=postgres",
                    self.primary.port
                ),
                postgres::NoTls,
            )
            .ok()?;
            let rows = c
                .query(
                    "SELECT 1 FROM pg_stat_replication WHERE sync_state = 'sync'",
                    &[],
                )
                .ok()?;
            (!rows.is_empty()).then_some(())
        });
    }

    /// `postgres://...@primary,standby/postgres?target_session_attrs=read-write`:
    /// libpq's multi-host URL, the writable one chosen.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
            self.primary.port, self.standby.port
        )
    }

    /// The primary's postmaster and every backend killed -9, as a machine
    /// that dies takes them.
    pub fn kill_primary(&self) {
        let pid_file = self.primary.dir.join("data").join("postmaster.pid");
        let text = std::fs::read_to_string(&pid_file).unwrap();
        let pid = text.lines().next().unwrap().trim().to_string();
        let _ = Command::new("pkill").args(["-9", "-P", &pid]).status();
        let _ = Command::new("kill").args(["-9", &pid]).status();
    }

    /// The standby made the primary (`pg_ctl promote`, waiting until it
    /// accepts writes).
    pub fn promote_standby(&self) {
        self.standby
            .run("pg_ctl", &["-D", &self.standby.data(), "-w", "promote"]);
    }
}
