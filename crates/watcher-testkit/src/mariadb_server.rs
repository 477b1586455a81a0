//! A MariaDB server of the test's own (Debian's mariadbd, a data directory
//! made by mariadb-install-db, a free port), so that a test can stop it,
//! restart it or give it TLS without touching the machine's server, which
//! the OpenStack control plane of other tests uses.

use crate::free_port;
use crate::servers::{wait_for_port, TestCa};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The password of the server's `watcher` user (in a URL: `w%40t-pass`).
pub const PASSWORD: &str = "w@t-pass";

pub struct PrivateMariadb {
    dir: PathBuf,
    pub port: u16,
    ssl: bool,
    server: RefCell<Option<Child>>,
}

impl PrivateMariadb {
    pub fn start(root: &Path) -> PrivateMariadb {
        PrivateMariadb::start_with(root, None)
    }

    /// With `ca`: TLS with the CA's server certificate, and only TLS
    /// connections taken (`require_secure_transport`).
    pub fn start_with(root: &Path, ca: Option<&TestCa>) -> PrivateMariadb {
        let dir = root.join("mariadb");
        // Its own temporary directory: servers bootstrapping at once in
        // /tmp collide on their temporary tables' names.
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        if let Some(ca) = ca {
            for (from, to) in [
                (&ca.ca_cert, "ca.pem"),
                (&ca.server_cert, "server.pem"),
                (&ca.server_key, "server.key"),
            ] {
                std::fs::copy(from, dir.join(to)).unwrap();
            }
        }
        let out = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .args(["--user=root", "--auth-root-authentication-method=normal"])
            .args(["--skip-test-db"])
            .arg(format!("--tmpdir={}", dir.join("tmp").display()))
            .output()
            .expect("mariadb-install-db (Debian's mariadb-server)");
        assert!(
            out.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let server = PrivateMariadb {
            dir,
            port: free_port(),
            ssl: ca.is_some(),
            server: RefCell::new(None),
        };
        server.run();
        // What a deployment gives watcherd: a user of its own, with a
        // password, on the network.
        server.sql(&format!(
            "CREATE USER 'watcher'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'; \
             GRANT ALL ON *.* TO 'watcher'@'127.0.0.1'"
        ));
        server
    }

    /// Starts the server (again) and waits until it takes connections.
    pub fn run(&self) {
        let d = |p: &str| self.dir.join(p).display().to_string();
        let mut cmd = Command::new("mariadbd");
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", d("data")))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", d("sock")))
            .arg(format!("--pid-file={}", d("pid")))
            .arg(format!("--log-error={}", d("error.log")))
            .arg(format!("--tmpdir={}", d("tmp")))
            .args(["--user=root", "--skip-name-resolve"])
            .arg("--innodb-flush-log-at-trx-commit=2")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.ssl {
            cmd.arg(format!("--ssl-ca={}", d("ca.pem")))
                .arg(format!("--ssl-cert={}", d("server.pem")))
                .arg(format!("--ssl-key={}", d("server.key")))
                .arg("--require-secure-transport=ON");
        }
        *self.server.borrow_mut() = Some(cmd.spawn().expect("mariadbd"));
        wait_for_port(self.port, Duration::from_secs(60));
    }

    /// Stops the server at once (SIGKILL): every connection breaks, as
    /// when the database host dies.
    pub fn kill(&self) {
        if let Some(mut server) = self.server.borrow_mut().take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }

    /// `mysql://watcher:PASSWORD@127.0.0.1:PORT/DATABASE`, the database
    /// made if new; `query` is appended after a `?` when not empty.
    pub fn url(&self, database: &str, query: &str) -> String {
        self.sql(&format!("CREATE DATABASE IF NOT EXISTS {database}"));
        let url = format!(
            "mysql://watcher:w%40t-pass@127.0.0.1:{}/{database}",
            self.port
        );
        if query.is_empty() {
            url
        } else {
            format!("{url}?{query}")
        }
    }

    /// Runs `sql` with the server's own client (through its socket).
    pub fn sql(&self, sql: &str) -> String {
        let out = Command::new("mariadb")
            .arg(format!("--socket={}", self.dir.join("sock").display()))
            .args(["-u", "root", "-N", "-B", "-e", sql])
            .output()
            .expect("the mariadb client");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for PrivateMariadb {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Galera cluster of MariaDB nodes on loopback (Debian's galera-4), each
/// with its own data directory and ports, joined by rsync state transfers.
/// The nodes run as the `mysql` user (the rsync daemon of a state transfer
/// started by root would drop to `nobody` and could not write).
pub struct GaleraCluster {
    dir: PathBuf,
    /// Per node: the SQL port and the ports of Galera's group
    /// communication, incremental and full state transfers.
    ports: Vec<[u16; 4]>,
    nodes: RefCell<Vec<Option<Child>>>,
}

impl GaleraCluster {
    pub fn start(root: &Path, size: usize) -> GaleraCluster {
        let dir = root.join("galera");
        let ports: Vec<[u16; 4]> = (0..size)
            .map(|_| [free_port(), free_port(), free_port(), free_port()])
            .collect();
        for n in 0..size {
            let node = dir.join(format!("n{n}"));
            std::fs::create_dir_all(node.join("tmp")).unwrap();
            let _ = Command::new("chown")
                .args(["-R", "mysql:mysql"])
                .arg(&node)
                .status();
            let out = Command::new("mariadb-install-db")
                .arg("--no-defaults")
                .arg(format!("--datadir={}", node.join("data").display()))
                .args(["--user=mysql", "--auth-root-authentication-method=normal"])
                .arg("--skip-test-db")
                .arg(format!("--tmpdir={}", node.join("tmp").display()))
                .output()
                .expect("mariadb-install-db");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let cluster = GaleraCluster {
            dir,
            ports,
            nodes: RefCell::new((0..size).map(|_| None).collect()),
        };
        cluster.run(0, true);
        cluster.sql(
            0,
            &format!(
                "CREATE USER 'watcher'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'; \
                 GRANT ALL ON *.* TO 'watcher'@'127.0.0.1'"
            ),
        );
        for n in 1..size {
            cluster.run(n, false);
        }
        cluster
    }

    fn node_dir(&self, n: usize) -> PathBuf {
        self.dir.join(format!("n{n}"))
    }

    /// Starts node `n` (the first of a new cluster with `bootstrap`) and
    /// waits until it is synced with the others.
    pub fn run(&self, n: usize, bootstrap: bool) {
        let d = |p: &str| self.node_dir(n).join(p).display().to_string();
        let [sql, gcomm, ist, sst] = self.ports[n];
        let members: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{}", p[1]))
            .collect();
        let mut cmd = Command::new("mariadbd");
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", d("data")))
            .arg(format!("--port={sql}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", d("sock")))
            .arg(format!("--pid-file={}", d("pid")))
            .arg(format!("--log-error={}", d("error.log")))
            .arg(format!("--tmpdir={}", d("tmp")))
            .args(["--user=mysql", "--skip-name-resolve"])
            .args(["--innodb-buffer-pool-size=32M", "--innodb-log-file-size=8M"])
            .args(["--binlog-format=ROW", "--innodb-autoinc-lock-mode=2"])
            .args(["--wsrep-on=ON", "--wsrep-provider=/usr/lib/galera/libgalera_smm.so"])
            .arg("--wsrep-cluster-name=watcherd-test")
            .arg(format!("--wsrep-cluster-address=gcomm://{}", members.join(",")))
            .arg(format!("--wsrep-node-address=127.0.0.1:{gcomm}"))
            .arg(format!("--wsrep-node-incoming-address=127.0.0.1:{sql}"))
            .arg(format!(
                "--wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.1:{gcomm};ist.recv_addr=127.0.0.1:{ist};base_port={gcomm}"
            ))
            .arg(format!("--wsrep-sst-receive-address=127.0.0.1:{sst}"))
            .arg("--wsrep-sst-method=rsync")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if bootstrap {
            cmd.arg("--wsrep-new-cluster");
        }
        self.nodes.borrow_mut()[n] = Some(cmd.spawn().expect("mariadbd"));
        crate::wait_for(Duration::from_secs(90), || {
            let out = Command::new("mariadb")
                .arg(format!("--socket={}", d("sock")))
                .args(["-u", "root", "-N", "-B", "-e"])
                .arg("SHOW STATUS LIKE 'wsrep_local_state_comment'")
                .output()
                .ok()?;
            String::from_utf8_lossy(&out.stdout)
                .contains("Synced")
                .then_some(())
        });
    }

    /// Kills node `n` with SIGKILL, as when its host dies.
    pub fn kill(&self, n: usize) {
        if let Some(mut node) = self.nodes.borrow_mut()[n].take() {
            let _ = node.kill();
            let _ = node.wait();
        }
    }

    /// `mysql://watcher:PASSWORD@` the nodes `nodes`, in that order,
    /// `/database` (made if new).
    pub fn url(&self, nodes: &[usize], database: &str) -> String {
        self.sql(
            nodes[0],
            &format!("CREATE DATABASE IF NOT EXISTS {database}"),
        );
        let hosts: Vec<String> = nodes
            .iter()
            .map(|&n| format!("127.0.0.1:{}", self.ports[n][0]))
            .collect();
        format!("mysql://watcher:w%40t-pass@{}/{database}", hosts.join(","))
    }

    /// Runs `sql` on node `n` with the server's own client.
    pub fn sql(&self, n: usize, sql: &str) -> String {
        let out = Command::new("mariadb")
            .arg(format!(
                "--socket={}",
                self.node_dir(n).join("sock").display()
            ))
            .args(["-u", "root", "-N", "-B", "-e", sql])
            .output()
            .expect("the mariadb client");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for GaleraCluster {
    fn drop(&mut self) {
        for n in 0..self.ports.len() {
            self.kill(n);
        }
    }
}
