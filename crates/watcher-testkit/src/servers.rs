//! Real servers a test starts for itself, on free ports, stopped when
//! dropped: PostgreSQL and RabbitMQ (plain or with TLS), a certificate
//! authority made with openssl, and stunnel as a TLS-terminating proxy.

use crate::free_port;
use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} cannot start: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"))
}

/// Waits until something listens on `port` of 127.0.0.1.
pub fn wait_for_port(port: u16, timeout: Duration) {
    crate::wait_for(timeout, || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .map(|_| ())
    });
}

/// A certificate authority of the test's own (EC P-256, valid two days),
/// with a server certificate for `localhost` and 127.0.0.1 and a client
/// certificate, all PEM.
pub struct TestCa {
    pub dir: PathBuf,
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TestCa {
    pub fn new(root: &Path, name: &str) -> TestCa {
        let dir = root.join(format!("ca-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let p = |f: &str| dir.join(f);
        let key = |path: PathBuf| {
            run(Command::new("openssl")
                .args([
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-out",
                ])
                .arg(path));
        };
        key(p("ca.key"));
        run(Command::new("openssl")
            .args(["req", "-x509", "-new", "-days", "2", "-subj"])
            .arg(format!("/CN=watcherd test CA {name}"))
            .args([
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-key",
            ])
            .arg(p("ca.key"))
            .arg("-out")
            .arg(p("ca.pem")));
        for (who, usage) in [("server", "serverAuth"), ("client", "clientAuth")] {
            key(p(&format!("{who}.key")));
            std::fs::write(
                p(&format!("{who}.ext")),
                format!(
                    "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
                     extendedKeyUsage={usage}\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n"
                ),
            )
            .unwrap();
            run(Command::new("openssl")
                .args(["req", "-new", "-subj"])
                .arg(format!(
                    "/CN={}",
                    if who == "server" {
                        "localhost"
                    } else {
                        "watcher"
                    }
                ))
                .arg("-key")
                .arg(p(&format!("{who}.key")))
                .arg("-out")
                .arg(p(&format!("{who}.csr"))));
            run(Command::new("openssl")
                .args(["x509", "-req", "-days", "2", "-CAcreateserial", "-in"])
                .arg(p(&format!("{who}.csr")))
                .arg("-CA")
                .arg(p("ca.pem"))
                .arg("-CAkey")
                .arg(p("ca.key"))
                .arg("-extfile")
                .arg(p(&format!("{who}.ext")))
                .arg("-out")
                .arg(p(&format!("{who}.pem"))));
        }
        TestCa {
            ca_cert: p("ca.pem"),
            server_cert: p("server.pem"),
            server_key: p("server.key"),
            client_cert: p("client.pem"),
            client_key: p("client.key"),
            dir,
        }
    }
}

/// stunnel terminating TLS (the CA's server certificate) in front of
/// plain services: one accept port per target port.
pub struct Stunnel {
    child: Child,
    /// target port -> TLS port.
    pub ports: Vec<(u16, u16)>,
}

impl Stunnel {
    pub fn start(dir: &Path, ca: &TestCa, targets: &[u16]) -> Stunnel {
        Stunnel::start_with(dir, ca, targets, false)
    }

    /// With `client_certs`: only clients presenting a certificate the CA
    /// signed get through (mutual TLS).
    pub fn start_with(dir: &Path, ca: &TestCa, targets: &[u16], client_certs: bool) -> Stunnel {
        let ports: Vec<(u16, u16)> = targets.iter().map(|&t| (t, free_port())).collect();
        let mut conf = format!(
            "foreground = yes\npid =\ncert = {}\nkey = {}\ndebug = 5\n",
            ca.server_cert.display(),
            ca.server_key.display()
        );
        if client_certs {
            conf.push_str(&format!(
                "CAfile = {}\nverifyChain = yes\nrequireCert = yes\n",
                ca.ca_cert.display()
            ));
        }
        for (target, accept) in &ports {
            conf.push_str(&format!(
                "[to{target}]\naccept = 127.0.0.1:{accept}\nconnect = 127.0.0.1:{target}\n"
            ));
        }
        let path = dir.join(format!("stunnel-{}.conf", ports[0].1));
        std::fs::write(&path, conf).unwrap();
        let log = std::fs::File::create(dir.join("stunnel.log")).unwrap();
        let program = std::env::var("WATCHER_TEST_STUNNEL").unwrap_or_else(|_| "stunnel4".into());
        let child = Command::new(&program)
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{program} (Debian's stunnel4 package, WATCHER_TEST_STUNNEL): {e}")
            });
        for (_, accept) in &ports {
            wait_for_port(*accept, Duration::from_secs(20));
        }
        Stunnel { child, ports }
    }

    /// The TLS port in front of `target`.
    pub fn port(&self, target: u16) -> u16 {
        self.ports
            .iter()
            .find(|(t, _)| *t == target)
            .map(|(_, a)| *a)
            .expect("a proxied port")
    }
}

impl Drop for Stunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PostgreSQL server of the test's own (initdb in its directory, its
/// own port), so that stopping it leaves the machine's alone.
pub struct PrivatePostgres {
    pub(crate) dir: PathBuf,
    pub(crate) bin: PathBuf,
    pub port: u16,
    pub(crate) ssl: bool,
    /// More `-c name=value` settings of the server (a primary's
    /// `synchronous_standby_names`).
    pub(crate) settings: String,
}

impl PrivatePostgres {
    pub fn start(root: &Path) -> PrivatePostgres {
        PrivatePostgres::start_with(root, None)
    }

    /// With `ca`: `ssl = on` with the CA's server certificate.
    pub fn start_with(root: &Path, ca: Option<&TestCa>) -> PrivatePostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's server programs in /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").exists())
            .max()
            .expect("an initdb under /usr/lib/postgresql/*/bin");
        let dir = root.join("pg");
        std::fs::create_dir_all(&dir).unwrap();
        if let Some(ca) = ca {
            // The server reads its key only if no one else can.
            std::fs::copy(&ca.server_cert, dir.join("server.crt")).unwrap();
            std::fs::copy(&ca.server_key, dir.join("server.key")).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                dir.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
        }
        let pg = PrivatePostgres {
            dir,
            bin,
            port: free_port(),
            ssl: ca.is_some(),
            settings: String::new(),
        };
        // The server refuses to run as root: it runs as the postgres user.
        let _ = Command::new("chown")
            .args(["-R", "postgres"])
            .arg(&pg.dir)
            .status();
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        pg.pg_ctl_start();
        pg
    }

    pub(crate) fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    pub(crate) fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        run(cmd.args(args));
    }

    pub fn pg_ctl_start(&self) {
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        options.push_str(&self.settings);
        if self.ssl {
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={0}/server.crt -c ssl_key_file={0}/server.key",
                self.dir.display()
            ));
        }
        let log = self.dir.join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    /// A fast shutdown: every connection is closed at once, as in a restart.
    pub fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`; `host` replaces the
    /// address (`localhost`, for verify-full against the certificate).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn url_on(&self, host: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres?{query}", self.port)
    }

    /// What the server says about the connection of `application_name`s
    /// (`ssl` column of pg_stat_ssl), as the test sees it.
    pub fn ssl_connections(&self, application_name: &str) -> Vec<bool> {
        let mut c = postgres::Client::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=disable",
                self.port
            ),
            postgres::NoTls,
        )
        .unwrap();
        c.query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = $1",
            &[&application_name],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
    }
}

/// A RabbitMQ node of the test's own (its own node name, ports and data),
/// so that it can be stopped for real without touching the machine's
/// broker, which the OpenStack control plane of other tests uses.
pub struct PrivateRabbit {
    dir: PathBuf,
    node: String,
    pub port: u16,
    /// The TLS listener's port, when started with a CA.
    pub tls_port: Option<u16>,
    dist_port: u16,
    server: RefCell<Option<Child>>,
}

static RABBITS: AtomicU32 = AtomicU32::new(0);

impl PrivateRabbit {
    pub fn start(root: &Path) -> PrivateRabbit {
        PrivateRabbit::start_with(root, None)
    }

    /// With `ca`: a TLS listener too, with the CA's server certificate.
    pub fn start_with(root: &Path, ca: Option<&TestCa>) -> PrivateRabbit {
        let n = RABBITS.fetch_add(1, Ordering::SeqCst);
        let dir = root.join(format!("rabbit{n}"));
        std::fs::create_dir_all(dir.join("mnesia")).unwrap();
        std::fs::create_dir_all(dir.join("log")).unwrap();
        let rabbit = PrivateRabbit {
            node: format!("wt{}x{n}@localhost", std::process::id()),
            port: free_port(),
            tls_port: ca.map(|_| free_port()),
            dist_port: free_port(),
            dir,
            server: Default::default(),
        };
        std::fs::write(rabbit.dir.join("enabled_plugins"), "[].\n").unwrap();
        let mut conf = format!("listeners.tcp.local = 127.0.0.1:{}\n", rabbit.port);
        if let (Some(ca), Some(tls_port)) = (ca, rabbit.tls_port) {
            for (from, to) in [
                (&ca.ca_cert, "ca.pem"),
                (&ca.server_cert, "server.pem"),
                (&ca.server_key, "server.key"),
            ] {
                std::fs::copy(from, rabbit.dir.join(to)).unwrap();
            }
            conf.push_str(&format!(
                "listeners.ssl.default = 127.0.0.1:{tls_port}\n\
                 ssl_options.cacertfile = {0}/ca.pem\n\
                 ssl_options.certfile = {0}/server.pem\n\
                 ssl_options.keyfile = {0}/server.key\n\
                 ssl_options.verify = verify_none\n\
                 ssl_options.fail_if_no_peer_cert = false\n",
                rabbit.dir.display()
            ));
        }
        std::fs::write(rabbit.dir.join("rabbitmq.conf"), conf).unwrap();
        // The server drops to the rabbitmq user, which must own its data.
        let _ = Command::new("chown")
            .args(["-R", "rabbitmq"])
            .arg(&rabbit.dir)
            .status();
        rabbit.run();
        rabbit
    }

    pub fn run(&self) {
        let d = |p: &str| self.dir.join(p).display().to_string();
        let server = Command::new("rabbitmq-server")
            .current_dir(&self.dir)
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", d("rabbitmq.conf"))
            .env("RABBITMQ_MNESIA_BASE", d("mnesia"))
            .env("RABBITMQ_LOG_BASE", d("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d("enabled_plugins"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rabbitmq-server");
        *self.server.borrow_mut() = Some(server);
        crate::wait_for(Duration::from_secs(60), || self.connect().ok().map(|_| ()));
        if let Some(p) = self.tls_port {
            wait_for_port(p, Duration::from_secs(30));
        }
    }

    pub fn stop(&self) {
        let status = Command::new("rabbitmqctl")
            .args(["-n", &self.node, "stop"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "rabbitmqctl stop");
        if let Some(mut server) = self.server.borrow_mut().take() {
            let _ = server.wait();
        }
    }

    /// `rabbit://guest:guest@127.0.0.1:PORT/` (plain AMQP).
    pub fn url(&self) -> String {
        format!("rabbit://guest:guest@127.0.0.1:{}/", self.port)
    }

    pub fn connect(&self) -> Result<crate::TestBroker, watcher_notifications::amqp::AmqpError> {
        crate::TestBroker::connect(&self.url(), None)
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["-n", &self.node, "stop"])
            .output();
        if let Some(mut server) = self.server.borrow_mut().take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

/// A TCP proxy to `target` (host:port) that can be cut: while down it
/// closes every connection it carries and drops new ones, as a network cut
/// seen by both ends (or a dead server) would.
pub struct CutProxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    /// Bytes are held, not forwarded, and no connection closes: a network
    /// that silently drops packets, as both ends see it ([`CutProxy::freeze`]).
    frozen: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<TcpStream>>>,
}

impl CutProxy {
    /// Started down: [`CutProxy::set_up`] opens it.
    pub fn start(target: &str) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(false));
        let frozen = Arc::new(AtomicBool::new(false));
        let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (up2, live2, target) = (up.clone(), live.clone(), target.to_string());
        let frozen2 = frozen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused mid-handshake
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let mut l = live2.lock().unwrap();
                l.push(client.try_clone().unwrap());
                l.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let frozen = frozen2.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        let hold = || {
                            while frozen.load(Ordering::SeqCst) {
                                std::thread::sleep(std::time::Duration::from_millis(5));
                            }
                        };
                        while let Ok(n) = from.read(&mut buf) {
                            // What arrives while frozen is held, not lost:
                            // TCP delivers it once the network is back.
                            hold();
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        CutProxy {
            port,
            up,
            frozen,
            live,
        }
    }

    /// Freezes (or thaws) every connection, open and to come: nothing gets
    /// through and nothing closes, so neither end notices (a blackhole, a
    /// proxy that hangs); once thawed, what was held goes through.
    pub fn freeze(&self, frozen: bool) {
        self.frozen.store(frozen, Ordering::SeqCst);
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            for s in self.live.lock().unwrap().drain(..) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}
