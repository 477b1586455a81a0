//! MariaDB servers of the test's own (Debian's mariadbd, data directories
//! made by mariadb-install-db, free ports), so that a test can kill them,
//! restart them, give them TLS or join them into a Galera cluster without
//! touching the machine's server, which the OpenStack control plane of
//! other tests uses.

use crate::free_port;
use crate::servers::{wait_for_port, TestCa};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The password of the servers' `watcher` user (in a URL: `w%40t-pass`).
pub const PASSWORD: &str = "w@t-pass";

/// What a deployment gives watcherd: a user of its own, with a password,
/// on the network.
fn create_user() -> String {
    format!(
        "CREATE USER 'watcher'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'; \
         GRANT ALL ON *.* TO 'watcher'@'127.0.0.1'"
    )
}

/// `mysql://watcher:PASSWORD@` the `ports` of 127.0.0.1, in order, `/database`.
fn watcher_url(ports: &[u16], database: &str) -> String {
    let hosts: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    format!("mysql://watcher:w%40t-pass@{}/{database}", hosts.join(","))
}

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
        install(&dir, "root");
        let server = PrivateMariadb {
            dir,
            port: free_port(),
            ssl: ca.is_some(),
            server: RefCell::new(None),
        };
        server.run();
        server.sql(&create_user());
        server
    }

    /// Starts the server (again) and waits until it takes connections.
    pub fn run(&self) {
        let d = |p: &str| self.dir.join(p).display().to_string();
        let mut cmd = server_command(&self.dir, self.port, "root");
        cmd.arg("--innodb-flush-log-at-trx-commit=2");
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
        let url = watcher_url(&[self.port], database);
        if query.is_empty() {
            url
        } else {
            format!("{url}?{query}")
        }
    }

    /// Runs `sql` with the server's own client (through its socket).
    pub fn sql(&self, sql: &str) -> String {
        client(&self.dir, sql)
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
            install(&node, "mysql");
        }
        let cluster = GaleraCluster {
            dir,
            ports,
            nodes: RefCell::new((0..size).map(|_| None).collect()),
        };
        cluster.run(0, true);
        // Made before the others join: they receive it with the data.
        cluster.sql(0, &create_user());
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
        let [sql, gcomm, ist, sst] = self.ports[n];
        let members: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{}", p[1]))
            .collect();
        let mut cmd = server_command(&self.node_dir(n), sql, "mysql");
        cmd.args(["--innodb-buffer-pool-size=32M", "--innodb-log-file-size=8M"])
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
            .arg("--wsrep-sst-method=rsync");
        if bootstrap {
            cmd.arg("--wsrep-new-cluster");
        }
        self.nodes.borrow_mut()[n] = Some(cmd.spawn().expect("mariadbd"));
        crate::wait_for(Duration::from_secs(90), || {
            try_client(
                &self.node_dir(n),
                "SHOW STATUS LIKE 'wsrep_local_state_comment'",
            )
            .filter(|out| out.contains("Synced"))
            .map(|_| ())
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
        let ports: Vec<u16> = nodes.iter().map(|&n| self.ports[n][0]).collect();
        watcher_url(&ports, database)
    }

    /// Runs `sql` on node `n` with the server's own client.
    pub fn sql(&self, n: usize, sql: &str) -> String {
        client(&self.node_dir(n), sql)
    }
}

impl Drop for GaleraCluster {
    fn drop(&mut self) {
        for n in 0..self.ports.len() {
            self.kill(n);
        }
    }
}

/// A data directory made by mariadb-install-db in `dir/data`, for a server
/// run as `user`. Its own temporary directory, `dir/tmp`: servers
/// bootstrapping at once in /tmp collide on their temporary tables' names.
fn install(dir: &Path, user: &str) {
    let out = Command::new("mariadb-install-db")
        .arg("--no-defaults")
        .arg(format!("--datadir={}", dir.join("data").display()))
        .arg(format!("--user={user}"))
        .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
        .arg(format!("--tmpdir={}", dir.join("tmp").display()))
        .output()
        .expect("mariadb-install-db (Debian's mariadb-server)");
    assert!(
        out.status.success(),
        "mariadb-install-db: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `mariadbd` on the data directory in `dir`, listening on
/// 127.0.0.1:`port` and on its socket, its log and pid file in `dir`, run
/// as `user`.
fn server_command(dir: &Path, port: u16, user: &str) -> Command {
    let d = |p: &str| dir.join(p).display().to_string();
    let mut cmd = Command::new("mariadbd");
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", d("data")))
        .arg(format!("--port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--socket={}", d("sock")))
        .arg(format!("--pid-file={}", d("pid")))
        .arg(format!("--log-error={}", d("error.log")))
        .arg(format!("--tmpdir={}", d("tmp")))
        .arg(format!("--user={user}"))
        .arg("--skip-name-resolve")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// What the server's own client prints for `sql`, run as root through the
/// socket in `dir`; `None` when it fails.
fn try_client(dir: &Path, sql: &str) -> Option<String> {
    let out = Command::new("mariadb")
        .arg(format!("--socket={}", dir.join("sock").display()))
        .args(["-u", "root", "-N", "-B", "-e", sql])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// [`try_client`], which must succeed.
fn client(dir: &Path, sql: &str) -> String {
    try_client(dir, sql).unwrap_or_else(|| panic!("the mariadb client failed on: {sql}"))
}
