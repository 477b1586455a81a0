//! What a production deployment needs, end to end with real parts: the
//! API over HTTPS; Keystone and Nova reached through a TLS-terminating
//! proxy (stunnel) with a CA the test makes, and a wrong CA refused with a
//! message naming the host; PostgreSQL in `verify-full`; notifications to
//! two TLS brokers, the first stopped mid-run; secrets that appear in no
//! log, body, metric or printed configuration; a log line per request;
//! configuration errors that name the setting.

use watcher_testkit as common;

use crate::keystone::{delete_endpoints, keystone, ks_call, login};
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use watcher_tls::TlsOptions;

/// An HTTP client that trusts `ca`.
fn client(ca: &TestCa) -> ureq::Agent {
    watcher_keystone::http::agent(
        &TlsOptions {
            cafile: Some(ca.ca_cert.clone()),
            ..Default::default()
        },
        "test",
        Duration::from_secs(10),
    )
    .unwrap()
}

/// `watcherd` with `args` that must fail to start: its stderr.
fn fails_to_start(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(watcherd_binary())
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env_remove("OS_CLOUD")
        .current_dir(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "watcherd {args:?} started: {stderr}");
    assert!(
        !stderr.contains("stack backtrace") && !stderr.contains("panicked"),
        "a startup error is one clear line, not a backtrace: {stderr}"
    );
    stderr
}

#[test]
fn the_api_serves_https_and_its_links_follow_the_scheme_and_a_trusted_proxy() {
    let dir = temp_dir("https-api");
    let ca = TestCa::new(&dir, "api");
    let top = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"",
        ca.server_cert.display(),
        ca.server_key.display()
    );
    let config = write_config_with(&dir, &top, "", "");
    let d = Daemon::start_with_config(&dir, config, None);
    assert!(d.url.starts_with("https://127.0.0.1:"), "{}", d.url);
    let agent = client(&ca);
    let resp = agent.get(&format!("{}/v1/goals", d.url)).call().unwrap();
    let request_id = resp.header("x-openstack-request-id").unwrap().to_string();
    assert!(request_id.starts_with("req-"), "{request_id}");
    let body: Value = resp.into_json().unwrap();
    let href = body["goals"][0]["links"][0]["href"].as_str().unwrap();
    assert!(href.starts_with("https://127.0.0.1:"), "{href}");
    // Plain HTTP on the TLS port gets no API.
    assert!(ureq::get(&d.url.replace("https", "http")).call().is_err());
    // The request's log line: method, path, status, its id.
    wait_for(Duration::from_secs(5), || {
        d.log()
            .lines()
            .any(|l| l.contains("GET /v1/goals 200") && l.contains(&request_id))
            .then_some(())
    });

    // Behind a proxy, and only when told to trust it, links use the
    // address the caller used.
    let dir = temp_dir("proxied-api");
    let config = write_config_with(&dir, "enable_proxy_headers_parsing = true", "", "");
    let d = Daemon::start_with_config(&dir, config, None);
    let body: Value = ureq::get(&format!("{}/v1/goals", d.url))
        .set("X-Forwarded-Proto", "https")
        .set("X-Forwarded-Host", "watcher.example.com")
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(
        body["goals"][0]["links"][0]["href"]
            .as_str()
            .unwrap()
            .split("/v1/")
            .next(),
        Some("https://watcher.example.com")
    );
    let body: Value = ureq::get(&format!(
        "{}/v1/goals",
        d.url.replace("127.0.0.1", "localhost")
    ))
    .call()
    .unwrap()
    .into_json()
    .unwrap();
    assert!(body["goals"][0]["links"][0]["href"]
        .as_str()
        .unwrap()
        .starts_with("http://localhost:"));
}

#[test]
fn json_logs_carry_the_request_id_and_text_logs_to_a_file_have_no_colours() {
    let dir = temp_dir("json-logs");
    let config = write_config(&dir, "");
    let d = Daemon::start_with_args(&dir, config, None, None, &["--log-format", "json"]);
    let resp = ureq::get(&format!("{}/v1/audits/nope", d.url)).call();
    let Err(ureq::Error::Status(404, resp)) = resp else {
        panic!("{resp:?}")
    };
    let id = resp.header("x-openstack-request-id").unwrap().to_string();
    let line: Value = wait_for(Duration::from_secs(5), || {
        d.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["span"]["request_id"] == id.as_str())
    });
    assert_eq!(line["status"], 404, "{line}");
    assert_eq!(line["method"], "GET", "{line}");
    assert_eq!(line["path"], "/v1/audits/nope", "{line}");
    assert_eq!(line["level"], "INFO", "{line}");
    for l in d.log().lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            serde_json::from_str::<Value>(l).is_ok(),
            "not one JSON object per line: {l}"
        );
    }
    // The other daemons of this suite log text to a file: no ANSI codes.
    let text = Daemon::start("plain-logs");
    let _ = ureq::get(&format!("{}/v1/goals", text.url)).call();
    wait_for(Duration::from_secs(5), || {
        text.log().contains("GET /v1/goals 200").then_some(())
    });
    assert!(!text.log().contains('\u{1b}'), "{}", text.log());
}

#[test]
fn configuration_errors_name_the_setting_and_change_nothing() {
    let dir = temp_dir("config-errors");
    let e = fails_to_start(&dir, &["--database", "oracle://root:pw-1234@db/watcher"]);
    assert!(e.contains("'oracle' is not supported"), "{e}");
    assert!(!e.contains("pw-1234"), "{e}");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "nothing created"
    );

    let bad = dir.join("bad.toml");
    for (text, expect) in [
        (
            "[notifications]\ntransport_url = \"rabbit://u:mq-secret@h:notaport/\"",
            "notifications.transport_url",
        ),
        (
            "[notifications]\ntransport_url = \"rabbit://u:p@h/\"\nssl = true\nssl_ca_file = \"/nonexistent/ca.pem\"",
            "cannot read /nonexistent/ca.pem",
        ),
        (
            "tls_cert = \"/nonexistent/cert.pem\"\ntls_key = \"/nonexistent/key.pem\"",
            "tls_cert/tls_key: cannot read /nonexistent/cert.pem",
        ),
        (
            "[watcher_clients_auth]\nauth_url = \"https://ks:5000\"\nusername = \"w\"",
            "watcher_clients_auth: password is not set",
        ),
        (
            "auth_strategy = \"keystone\"\n[keystone]\nauth_url = \"https://ks:5000\"\nusername = \"w\"\npassword = \"p\"\ncafile = \"/nonexistent/ks.pem\"",
            "cannot read /nonexistent/ks.pem",
        ),
    ] {
        std::fs::write(&bad, text).unwrap();
        let e = fails_to_start(&dir, &["--config", bad.to_str().unwrap(), "--database", "sqlite::memory:"]);
        assert!(e.contains(expect), "{text}: {e}");
        assert!(!e.contains("mq-secret"), "{e}");
    }
    // A certificate and a key that do not go together.
    let a = TestCa::new(&dir, "a");
    let b = TestCa::new(&dir, "b");
    let e = fails_to_start(
        &dir,
        &[
            "--database",
            "sqlite::memory:",
            "--tls-cert",
            a.server_cert.to_str().unwrap(),
            "--tls-key",
            b.server_key.to_str().unwrap(),
        ],
    );
    assert!(e.contains("do not go together"), "{e}");
}

#[test]
fn printed_configuration_hides_secrets_unless_asked() {
    let dir = temp_dir("print-config");
    let config = dir.join("w.toml");
    std::fs::write(
        &config,
        "database = \"postgres://w:db-secret-1@db/w\"\n\
         [keystone]\npassword = \"ks-secret-2\"\n\
         [watcher_clients_auth]\npassword = \"cloud-secret-3\"\napplication_credential_secret = \"app-secret-4\"\n\
         [notifications]\ntransport_url = \"rabbit://u:mq-secret-5@h1:5671,u:mq-secret-6@h2:5671/\"\n",
    )
    .unwrap();
    let print = |extra: &[&str]| {
        let out = Command::new(watcherd_binary())
            .args(["--config", config.to_str().unwrap(), "--print-config"])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let secrets = [
        "db-secret-1",
        "ks-secret-2",
        "cloud-secret-3",
        "app-secret-4",
        "mq-secret-5",
        "mq-secret-6",
    ];
    let shown = print(&[]);
    for s in secrets {
        assert!(!shown.contains(s), "{s} printed: {shown}");
    }
    assert!(shown.contains("password = \"***\""), "{shown}");
    let revealed = print(&["--show-secrets"]);
    for s in secrets {
        assert!(revealed.contains(s), "{s} not printed with --show-secrets");
    }
}

/// The secrets of a watcherd under Keystone, on PostgreSQL, with a broker
/// that cannot be reached: none in its logs, error bodies or metrics.
#[cfg_attr(
    not(all(test_keystone, test_postgres)),
    ignore = "needs Keystone and PostgreSQL: set WATCHER_KEYSTONE_URL and WATCHER_TEST_POSTGRES (.ci/run does)"
)]
#[test]
fn no_secret_reaches_a_log_an_error_body_or_the_metrics() {
    let ks = keystone();
    let dir = temp_dir("secrets");
    // PostgreSQL trusts this machine, so the URL's password is not checked
    // but travels everywhere the URL does.
    let database = postgres_database(&dir.join("watcher.db"))
        .replace("postgres@", "postgres:pg-secret-7@")
        + "?sslmode=disable&password=pg-secret-8";
    let mq_port = free_port();
    let tables = format!(
        "[keystone]\nauth_url = \"{ks}\"\nusername = \"admin\"\npassword = \"admin\"\nproject_name = \"admin\"\n\
         [notifications]\ntransport_url = \"rabbit://guest:mq-secret-9@127.0.0.1:{mq_port}/\"\ntimeout_secs = 0.5\n"
    );
    let config = write_config_on(&dir, &database, "auth_strategy = \"keystone\"", "", &tables);
    let d = Daemon::start_with_config(&dir, config.clone(), None);
    let token = login(&ks, "admin", "admin", "admin");
    let mut bodies = vec![];
    for (path, token) in [
        ("/v1/goals", Some(token.as_str())),
        ("/v1/goals", None),
        ("/v1/goals", Some("not-a-token")),
        ("/v1/audits/nope", Some(token.as_str())),
        ("/metrics", None),
        ("/healthz", None),
    ] {
        let mut r = ureq::get(&format!("{}{path}", d.url));
        if let Some(t) = token {
            r = r.set("X-Auth-Token", t);
        }
        let text = match r.call() {
            Ok(r) => r.into_string().unwrap(),
            Err(ureq::Error::Status(_, r)) => r.into_string().unwrap(),
            Err(e) => panic!("{e}"),
        };
        bodies.push(text);
    }
    // A state change for the relay to send: it tries the broker and logs
    // why it cannot.
    let created = ureq::post(&format!("{}/v1/audits", d.url))
        .set("X-Auth-Token", &token)
        .send_json(json!({"goal": "dummy", "audit_type": "ONESHOT"}));
    assert!(created.is_ok(), "{created:?}");
    wait_for(Duration::from_secs(10), || {
        d.log().contains("broker unavailable").then_some(())
    });
    let printed = Command::new(watcherd_binary())
        .args(["--config", config.to_str().unwrap(), "--print-config"])
        .output()
        .unwrap();
    let everything = format!(
        "{}\n{}\n{}",
        d.log(),
        bodies.join("\n"),
        String::from_utf8_lossy(&printed.stdout)
    );
    for secret in ["pg-secret-7", "pg-secret-8", "mq-secret-9", &token] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked: {everything}"
        );
    }
    assert!(d.log().contains("guest:***@127.0.0.1"), "{}", d.log());
}

/// Keystone and Nova behind stunnel: the API validates tokens and the
/// OpenStack driver, logged in with an application credential, reads Nova
/// through TLS only, with `auth_url` given without `/v3` (version
/// discovery) and the catalogue's https endpoints of a region of the
/// test's own. A CA that did not sign the proxy's
/// certificate stops watcherd at start with a message naming the host.
#[cfg_attr(
    not(all(test_openstack, test_stunnel)),
    ignore = "needs OpenStack and stunnel: the admin's openrc (OS_AUTH_URL) and WATCHER_TEST_STUNNEL=stunnel4 (.ci/run does)"
)]
#[test]
fn keystone_and_nova_through_a_tls_proxy_with_the_operators_ca() {
    let _one = crate::openstack::ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let ks = std::env::var("OS_AUTH_URL").unwrap();
    let dir = temp_dir("tls-proxy");
    let ca = TestCa::new(&dir, "proxy");
    let proxy = Stunnel::start(&dir, &ca, &[5000, 8774]);
    let (ks_tls, nova_tls) = (proxy.port(5000), proxy.port(8774));
    let admin = login(&ks, "admin", "admin", "admin");
    // A region whose compute endpoint is the proxy's.
    const REGION: &str = "WatcherTlsTest";
    ks_call(
        &ks,
        &admin,
        "POST",
        "/regions",
        Some(json!({"region": {"id": REGION}})),
    );
    let compute = ks_call(&ks, &admin, "GET", "/services?type=compute", None)["services"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    delete_endpoints(&ks, &admin, &format!("region_id={REGION}"));
    ks_call(
        &ks,
        &admin,
        "POST",
        "/endpoints",
        Some(
            json!({"endpoint": {"service_id": compute, "interface": "internal", "region_id": REGION,
            "url": format!("https://localhost:{nova_tls}/v2.1")}}),
        ),
    );
    let auth = format!("https://localhost:{ks_tls}");
    // The cloud is managed with an application credential of the admin's,
    // as a careful operator would give watcherd (a revocable secret).
    let user = ks_call(&ks, &admin, "GET", "/users?name=admin", None)["users"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let credential = ks_call(
        &ks,
        &admin,
        "POST",
        &format!("/users/{user}/application_credentials"),
        Some(
            json!({"application_credential": {"name": format!("watcher-tls-{}", uuid::Uuid::new_v4())}}),
        ),
    );
    let (cred_id, cred_secret) = (
        credential["application_credential"]["id"]
            .as_str()
            .unwrap()
            .to_string(),
        credential["application_credential"]["secret"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    // A URL carrying a password must never show it (the 503 below).
    let auth_with_userinfo = format!("https://watcher:url-secret-10@localhost:{ks_tls}");
    let settings = |cafile: &Path| {
        format!(
            "[keystone]\nauth_url = \"{auth_with_userinfo}\"\nusername = \"admin\"\npassword = \"admin\"\nproject_name = \"admin\"\ncafile = \"{0}\"\nstartup_wait_secs = 0\n\
             [watcher_clients_auth]\nauth_type = \"v3applicationcredential\"\nauth_url = \"{auth}\"\n\
             application_credential_id = \"{cred_id}\"\napplication_credential_secret = \"{cred_secret}\"\n\
             region_name = \"{REGION}\"\ninterface = \"internal\"\ncafile = \"{0}\"\n",
            cafile.display()
        )
    };
    let top = "auth_strategy = \"keystone\"\ncloud = \"openstack\"";
    let config = write_config_with(&dir, top, "", &settings(&ca.ca_cert));
    let d = Daemon::start_with_config(&dir, config, None);
    let token = login(&ks, "admin", "admin", "admin");
    let agent = ureq::AgentBuilder::new().build();
    let model: Value = agent
        .get(&format!("{}/v1/data_model", d.url))
        .set("X-Auth-Token", &token)
        .set("OpenStack-API-Version", "infra-optim 1.5")
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    let nodes: Vec<&str> = model["context"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["node_hostname"].as_str())
        .collect();
    assert!(nodes.contains(&"compute1"), "{model}");
    // Every call went through the proxy: it logged the connections.
    let log = std::fs::read_to_string(dir.join("stunnel.log")).unwrap();
    assert!(
        log.contains(&format!("to{}", 8774)) || log.contains("accepted"),
        "{log}"
    );

    // Keystone gone (the proxy stopped): a new token cannot be checked, and
    // the 503 says so without the URL's password.
    drop(proxy);
    let fresh = login(&ks, "admin", "admin", "admin");
    let resp = agent
        .get(&format!("{}/v1/goals", d.url))
        .set("X-Auth-Token", &fresh)
        .call();
    let Err(ureq::Error::Status(503, resp)) = resp else {
        panic!("{resp:?}")
    };
    let body = resp.into_string().unwrap();
    assert!(body.contains("Keystone"), "{body}");
    assert!(!body.contains("url-secret-10"), "{body}");
    assert!(!d.log().contains("url-secret-10"), "{}", d.log());
    assert!(!d.log().contains(&cred_secret), "{}", d.log());
    let proxy = Stunnel::start(&dir, &ca, &[5000, 8774]);
    let ks_tls = proxy.port(5000);
    let auth_with_userinfo = format!("https://localhost:{ks_tls}");
    let settings = |cafile: &Path| {
        format!(
            "[keystone]\nauth_url = \"{auth_with_userinfo}\"\nusername = \"admin\"\npassword = \"admin\"\nproject_name = \"admin\"\ncafile = \"{0}\"\nstartup_wait_secs = 0\n",
            cafile.display()
        )
    };

    // The wrong CA: a clear refusal at start, naming the host.
    let other = TestCa::new(&dir, "other");
    let wrong = temp_dir("tls-proxy-wrong-ca");
    let config = write_config_with(&wrong, top, "", &settings(&other.ca_cert));
    let e = fails_to_start(&wrong, &["--config", config.to_str().unwrap()]);
    assert!(e.contains(&format!("localhost:{ks_tls}")), "{e}");
    assert!(e.contains("not trusted"), "{e}");
    // Refused credentials: at start, not as 503s later.
    let refused = temp_dir("tls-proxy-refused");
    let text = settings(&ca.ca_cert).replace("password = \"admin\"", "password = \"wrong\"");
    let config = write_config_with(&refused, "auth_strategy = \"keystone\"", "", &text);
    let e = fails_to_start(&refused, &["--config", config.to_str().unwrap()]);
    assert!(
        e.contains("Keystone refused the credentials of admin"),
        "{e}"
    );
    drop(proxy);
}

/// PostgreSQL with `ssl = on`, reached in `verify-full` with the CA that
/// signed its certificate; the server itself reports the connections as
/// TLS. The wrong CA is refused at start.
#[cfg_attr(
    not(test_postgres),
    ignore = "needs PostgreSQL's server programs: set WATCHER_TEST_POSTGRES (.ci/run does)"
)]
#[test]
fn postgresql_in_verify_full_with_the_test_ca() {
    let root = temp_dir("pg-tls");
    let ca = TestCa::new(&root, "pg");
    let pg = PrivatePostgres::start_with(&root, Some(&ca));
    let url = pg.url_on(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", ca.ca_cert.display()),
    );
    let dir = root.join("watcherd");
    std::fs::create_dir_all(&dir).unwrap();
    let d = Daemon::start_with_config(&dir, write_config_on(&dir, &url, "", "", ""), None);
    let plan = d.actuator(json!([{"action_type": "nop", "input_parameters": {"message": "tls"}}]));
    d.start_plan(&plan);
    assert_eq!(
        d.wait_state(&plan, &["SUCCEEDED", "FAILED"])["state"],
        "SUCCEEDED"
    );
    let seen = pg.ssl_connections("watcherd");
    assert!(!seen.is_empty() && seen.iter().all(|&ssl| ssl), "{seen:?}");

    let other = TestCa::new(&root, "not-pg");
    let wrong = pg.url_on(
        "localhost",
        &format!(
            "sslmode=verify-full&sslrootcert={}",
            other.ca_cert.display()
        ),
    );
    let e = fails_to_start(&dir, &["--database", &wrong]);
    assert!(e.contains("certificate"), "{e}");
    assert!(e.contains(&format!("localhost:{}", pg.port)), "{e}");
    // verify-ca checks the chain, not the name: 127.0.0.1 is fine either way.
    let by_ip = format!(
        "postgres://postgres@127.0.0.1:{}/postgres?sslmode=verify-ca&sslrootcert={}",
        pg.port,
        ca.ca_cert.display()
    );
    let dir2 = root.join("watcherd2");
    std::fs::create_dir_all(&dir2).unwrap();
    let d2 = Daemon::start_with_config(&dir2, write_config_on(&dir2, &by_ip, "", "", ""), None);
    let goals = d2.get("/v1/goals")["goals"].as_array().map(Vec::len);
    assert!(goals.unwrap_or(0) > 0, "{goals:?}");
}

/// Two brokers with TLS listeners in one `transport_url`: the first is
/// stopped mid-run, the relay fails over to the second, and every
/// notification of both plans arrives (at least once).
#[cfg_attr(
    not(test_rabbitmq),
    ignore = "needs RabbitMQ: set WATCHER_TEST_RABBITMQ (.ci/run does)"
)]
#[test]
fn notifications_fail_over_between_tls_brokers_and_none_is_lost() {
    let root = temp_dir("mq-failover");
    let ca = TestCa::new(&root, "mq");
    let first = PrivateRabbit::start_with(&root, Some(&ca));
    let second = PrivateRabbit::start_with(&root, Some(&ca));
    let url = format!(
        "rabbit://guest:guest@localhost:{},guest:guest@localhost:{}/",
        first.tls_port.unwrap(),
        second.tls_port.unwrap()
    );
    let topic = "failover";
    let tables = format!(
        "[notifications]\ntransport_url = \"{url}\"\ntopics = [\"{topic}\"]\nssl = true\nssl_ca_file = \"{}\"\ntimeout_secs = 2.0\n",
        ca.ca_cert.display()
    );
    let dir = root.join("watcherd");
    std::fs::create_dir_all(&dir).unwrap();
    let d = Daemon::start_with_config(&dir, write_config_with(&dir, "", "", &tables), None);
    let queue = format!("{topic}.info");
    let tls = || {
        Some(TlsOptions {
            cafile: Some(ca.ca_cert.clone()),
            ..Default::default()
        })
    };
    let mut on_first = connect_tls(&first, tls());
    on_first.declare("watcher", &queue).unwrap();
    let plan1 = d.actuator(json!([{"action_type": "nop", "input_parameters": {"message": "1"}}]));
    d.start_plan(&plan1);
    d.wait_state(&plan1, &["SUCCEEDED"]);
    let mut messages = vec![];
    wait_for(Duration::from_secs(20), || {
        messages.extend(drain(&mut on_first, &queue));
        has_event(&messages, &plan1, "action_plan.execution.end").then_some(())
    });
    drop(on_first);
    first.stop();
    let plan2 = d.actuator(json!([{"action_type": "nop", "input_parameters": {"message": "2"}}]));
    d.start_plan(&plan2);
    d.wait_state(&plan2, &["SUCCEEDED"]);
    let mut on_second = connect_tls(&second, tls());
    wait_for(Duration::from_secs(60), || {
        // Declared by the relay when it connected; declared here too in
        // case this looks first.
        on_second.declare("watcher", &queue).unwrap();
        messages.extend(drain(&mut on_second, &queue));
        has_event(&messages, &plan2, "action_plan.execution.end").then_some(())
    });
    for plan in [&plan1, &plan2] {
        for event in [
            "action_plan.create",
            "action_plan.execution.start",
            "action_plan.execution.end",
        ] {
            assert!(
                has_event(&messages, plan, event),
                "{event} of {plan} missing"
            );
        }
    }
    assert!(d.log().contains("connected to the broker"), "{}", d.log());
}

/// A test client on `rabbit`'s TLS listener.
fn connect_tls(rabbit: &PrivateRabbit, tls: Option<TlsOptions>) -> TestBroker {
    let url = format!(
        "rabbit://guest:guest@localhost:{}/",
        rabbit.tls_port.unwrap()
    );
    TestBroker::connect(&url, tls).unwrap_or_else(|e| panic!("{url}: {e}"))
}

fn has_event(messages: &[Value], plan: &str, event: &str) -> bool {
    messages.iter().any(|m| {
        m["event_type"] == event
            && m["payload"]["watcher_object.data"]["uuid"].as_str() == Some(plan)
    })
}

/// Prometheus over HTTPS (stunnel in front of a stand-in, asking for a
/// client certificate), trusted through `decision_engine.prometheus_tls`:
/// the audit reads its metrics with the certificate, and fails without.
#[cfg_attr(
    not(test_stunnel),
    ignore = "needs stunnel: set WATCHER_TEST_STUNNEL=stunnel4 (Debian's stunnel4; .ci/run does)"
)]
#[test]
fn prometheus_over_https_with_the_operators_ca() {
    use crate::strategies::{audit_outcome, fake_prometheus, golden};
    static CPU: &[(&str, f64)] = &[
        ("node-1", 55.0),
        ("node-2", 38.0),
        ("node-3", 3.0),
        ("node-4", 0.5),
        ("node-5", 0.0),
    ];
    let dir = temp_dir("prometheus-tls");
    let ca = TestCa::new(&dir, "prometheus");
    let (url, queries) = fake_prometheus(CPU);
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    let proxy = Stunnel::start_with(&dir, &ca, &[port], true);
    let with = |dir: &Path, client_cert: &str| {
        let config = write_config_with(
            dir,
            "",
            "",
            &format!(
                "[decision_engine]\ndatasource = \"prometheus\"\nprometheus_url = \"https://localhost:{}\"\n\
                 [decision_engine.prometheus_tls]\ncafile = \"{}\"\n{client_cert}",
                proxy.port(port),
                ca.ca_cert.display()
            ),
        );
        Daemon::start_with_config(dir, config, Some(&golden("consolidation")))
    };
    let without = with(&dir, "");
    let audit = audit_outcome(&without, "server_consolidation", "basic");
    assert_eq!(audit["state"], "FAILED", "{audit}");
    assert_eq!(queries.load(std::sync::atomic::Ordering::SeqCst), 0);
    let dir = temp_dir("prometheus-mtls");
    let d = with(
        &dir,
        &format!(
            "certfile = \"{}\"\nkeyfile = \"{}\"\n",
            ca.client_cert.display(),
            ca.client_key.display()
        ),
    );
    let audit = audit_outcome(&d, "server_consolidation", "basic");
    assert_eq!(audit["state"], "SUCCEEDED", "{audit}");
    assert!(queries.load(std::sync::atomic::Ordering::SeqCst) >= 1);
}

#[test]
fn the_start_says_where_the_dashboard_is_and_a_busy_address_is_said_once() {
    use std::io::BufRead;
    let dir = temp_dir("start-lines");
    let mut first = Command::new(watcherd_binary())
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("first"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(first.stdout.take().unwrap()).lines();
    let url = lines
        .next()
        .unwrap()
        .unwrap()
        .strip_prefix("watcherd listening on ")
        .expect("the first line says where the API is")
        .to_string();
    assert_eq!(
        lines.next().unwrap().unwrap(),
        format!("dashboard: {url}/dashboard")
    );
    let addr = url.trim_start_matches("http://").to_string();
    let second = dir.join("second");
    std::fs::create_dir_all(&second).unwrap();
    let stderr = fails_to_start(&second, &["--listen", &addr, "--data-dir", "."]);
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(
        stderr.matches("Address already in use").count(),
        1,
        "the reason once, in one line: {stderr}"
    );
    assert_eq!(stderr.matches("cannot listen").count(), 1, "{stderr}");
    assert!(stderr.contains("--listen"), "{stderr}");
}
