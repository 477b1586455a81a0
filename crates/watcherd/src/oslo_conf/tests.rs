use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oslo-conf-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The shape of the `watcher.conf` DevStack, Kolla and OpenStack-Ansible
/// render (the one ../shared/upstream-watcher renders, abridged).
const DEPLOYED: &str = r#"
[DEFAULT]
# keystone auth ON
enable_authentication = true
transport_url = rabbit://guest:guest@127.0.0.1:5672/watcher
debug = True
log_dir = /var/log/watcher
host = ctl-1

[database]
connection = mysql+pymysql://watcher:dbpass@db.example:3306/watcher?charset=utf8

[api]
host = 0.0.0.0
port = 9322
workers = 4

[keystone_authtoken]
www_authenticate_uri = http://keystone:5000/v3
auth_url = http://keystone:5000/v3
auth_type = password
username = watcher
password = "svc pass"
project_name = service
user_domain_name = Default
project_domain_name = Default
memcached_servers = 127.0.0.1:11211

[watcher_clients_auth]
auth_type = password
auth_url = http://keystone:5000/v3
username = watcher
password = svcpass
project_name = service

[nova]
region_name = RegionTwo
valid_interfaces = internal,public
migration_interval = 5.0

[oslo_messaging_notifications]
driver = messagingv2

[oslo_messaging_rabbit]
ssl = true
ssl_ca_file = /etc/ssl/rabbit-ca.pem

[watcher_applier]
workers = 2

[watcher_planners.weight]
weights = migrate:30,
  nop:70
parallelization = migrate:2

[oslo_policy]
policy_file = /etc/watcher/policy.yaml

[some_plugin]
frobnicate = yes
"#;

#[test]
fn a_deployed_watcher_conf_maps_onto_watcherds_settings() {
    let d = temp("deployed");
    let f = write(&d, "watcher.conf", DEPLOYED);
    let conf = OsloConf::read(&[OsloSource::File(f)]).unwrap();
    let (table, accounts) = conf.to_table().unwrap();
    let config: crate::config::Config = toml::Value::Table(table).try_into().unwrap();
    assert_eq!(config.listen.to_string(), "0.0.0.0:9322");
    assert_eq!(config.host, "ctl-1");
    assert_eq!(
        config.database,
        "mysql://watcher:dbpass@db.example:3306/watcher?charset=utf8"
    );
    assert_eq!(config.auth_strategy, crate::config::AuthStrategy::Keystone);
    assert_eq!(config.keystone.auth_url, "http://keystone:5000/v3");
    assert_eq!(config.keystone.password.expose(), "svc pass");
    assert_eq!(config.cloud, crate::config::CloudKind::OpenStack);
    assert_eq!(config.watcher_clients_auth.region_name, "RegionTwo");
    assert_eq!(config.watcher_clients_auth.interface, "internal");
    assert_eq!(
        config.notifications.transport_url,
        "rabbit://guest:guest@127.0.0.1:5672/watcher"
    );
    assert!(config.notifications.ssl);
    assert_eq!(config.applier.max_concurrent_plans, 2);
    assert_eq!(config.decision_engine.planner.weights["migrate"], 30);
    assert_eq!(config.decision_engine.planner.weights["nop"], 70);
    assert_eq!(config.decision_engine.planner.parallelization["migrate"], 2);
    assert_eq!(
        config.policy_file.as_deref(),
        Some(Path::new("/etc/watcher/policy.yaml"))
    );
    assert!(conf.debug());
    assert_eq!(
        conf.log_file().unwrap(),
        PathBuf::from("/var/log/watcher/watcherd.log")
    );
    let fate = |s: &str, o: &str| {
        accounts
            .iter()
            .find(|a| a.section == s && a.option == o)
            .unwrap_or_else(|| panic!("no account of [{s}] {o}"))
            .fate
            .clone()
    };
    assert_eq!(fate("database", "connection"), Fate::Mapped("database"));
    assert_eq!(fate("api", "port"), Fate::Mapped("listen"));
    assert!(matches!(fate("api", "workers"), Fate::Unused(_)));
    assert!(matches!(
        fate("nova", "migration_interval"),
        Fate::Unused(_)
    ));
    assert_eq!(fate("some_plugin", "frobnicate"), Fate::Unknown);
    let unknown = accounts
        .iter()
        .find(|a| a.fate == Fate::Unknown)
        .unwrap()
        .to_string();
    assert!(
        unknown.starts_with("[some_plugin] frobnicate (") && unknown.contains("watcher.conf:"),
        "{unknown}"
    );
    // No value, so no secret, is in what is printed of an option.
    for a in &accounts {
        assert!(!a.to_string().contains("svc"), "{a}");
    }
}

#[test]
fn later_files_and_a_directorys_files_in_name_order_win() {
    let d = temp("order");
    let main = write(
        &d,
        "watcher.conf",
        "[DEFAULT]\nhost = a\n[api]\nport = 1000\n",
    );
    let dir = d.join("watcher.conf.d");
    std::fs::create_dir_all(&dir).unwrap();
    write(&dir, "20-late.conf", "[DEFAULT]\nhost = c\n");
    write(
        &dir,
        "10-early.conf",
        "[default]\nhost = b\n[api]\nport = 2000\n",
    );
    write(
        &dir,
        "99-ignored.txt",
        "[DEFAULT]\nhost = not-a-conf-file\n",
    );
    let conf =
        OsloConf::read(&[OsloSource::File(main.clone()), OsloSource::Dir(dir.clone())]).unwrap();
    let (t, _) = conf.to_table().unwrap();
    assert_eq!(t["host"].as_str(), Some("c"));
    assert_eq!(t["listen"].as_str(), Some("127.0.0.1:2000"));
    // The directory first, the file after it: the file wins.
    let conf = OsloConf::read(&[OsloSource::Dir(dir), OsloSource::File(main)]).unwrap();
    assert_eq!(conf.to_table().unwrap().0["host"].as_str(), Some("a"));
}

#[test]
fn wrong_types_and_malformed_lines_name_the_file_line_section_and_option() {
    let d = temp("bad");
    let cases = [
        (
            "[api]\nport = ninety\n",
            "watcher.conf:2: [api] port = \"ninety\": not an integer",
        ),
        (
            "[DEFAULT]\nenable_authentication = maybe\n",
            "[DEFAULT] enable_authentication = \"maybe\": not a boolean",
        ),
        (
            "[watcher_planners.weight]\nweights = migrate\n",
            "not a dictionary",
        ),
        (
            "host = x\n",
            "watcher.conf:1: an option before any [section] header",
        ),
        (
            "[DEFAULT]\njust words\n",
            "watcher.conf:2: \"just words\" has no '=' or ':'",
        ),
        ("[DEFAULT\nhost = x\n", "is not a section header"),
        (
            "[DEFAULT]\n\n   stray\n",
            "an indented line continues no option",
        ),
        (
            "[api]\nenable_ssl_api = true\n",
            "HTTPS needs [ssl] cert_file",
        ),
    ];
    for (text, says) in cases {
        let f = write(&d, "watcher.conf", text);
        let err = OsloConf::read(&[OsloSource::File(f)])
            .and_then(|c| c.to_table())
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{text:?}: {err}");
    }
    let missing = OsloConf::read(&[OsloSource::File(d.join("nope.conf"))]).unwrap_err();
    assert!(missing.to_string().contains("nope.conf"), "{missing}");
}

#[test]
fn notifications_follow_oslo_messagings_driver_and_transport_url() {
    let d = temp("notify");
    let text =
        "[DEFAULT]\ntransport_url = rabbit://a\n[oslo_messaging_notifications]\ndriver = noop\n";
    let f = write(&d, "watcher.conf", text);
    let (t, accounts) = OsloConf::read(&[OsloSource::File(f)])
        .unwrap()
        .to_table()
        .unwrap();
    assert!(t.get("notifications").is_none(), "{t:?}");
    assert!(
        accounts.iter().all(|a| matches!(a.fate, Fate::Unused(_))),
        "{accounts:?}"
    );
    let text = "[DEFAULT]\ntransport_url = rabbit://a\n[oslo_messaging_notifications]\ndriver = messaging\ntransport_url = rabbit://b\n";
    let f = write(&d, "watcher.conf", text);
    let (t, _) = OsloConf::read(&[OsloSource::File(f)])
        .unwrap()
        .to_table()
        .unwrap();
    assert_eq!(
        t["notifications"]["transport_url"].as_str(),
        Some("rabbit://b")
    );
}

#[test]
fn keystoneauth_plugin_names_and_a_policy_file_beside_the_conf() {
    let d = temp("plugins");
    write(&d, "policy.yaml", "\"admin_api\": \"role:admin\"\n");
    let f = write(
        &d,
        "watcher.conf",
        "[watcher_clients_auth]\nauth_type = v3password\n[oslo_policy]\npolicy_file = policy.yaml\n",
    );
    let (t, _) = OsloConf::read(&[OsloSource::File(f)])
        .unwrap()
        .to_table()
        .unwrap();
    assert_eq!(
        t["watcher_clients_auth"]["auth_type"].as_str(),
        Some("password")
    );
    assert_eq!(
        t["policy_file"].as_str(),
        Some(d.join("policy.yaml").to_str().unwrap())
    );
    // Not beside the file: left as given (relative to where watcherd runs).
    let f = write(
        &d,
        "watcher.conf",
        "[oslo_policy]\npolicy_file = elsewhere.yaml\n",
    );
    let (t, _) = OsloConf::read(&[OsloSource::File(f)])
        .unwrap()
        .to_table()
        .unwrap();
    assert_eq!(t["policy_file"].as_str(), Some("elsewhere.yaml"));
}

#[test]
fn sqlalchemy_urls_lose_their_driver() {
    assert_eq!(
        sqlalchemy_url("mysql+pymysql://u:p@h/w?charset=utf8"),
        "mysql://u:p@h/w?charset=utf8"
    );
    assert_eq!(
        sqlalchemy_url("postgresql+psycopg2://u@h/w"),
        "postgres://u@h/w"
    );
    assert_eq!(
        sqlalchemy_url("sqlite:////var/lib/watcher.db"),
        "sqlite:///var/lib/watcher.db"
    );
    assert_eq!(sqlalchemy_url("sqlite:///watcher.db"), "sqlite:watcher.db");
    assert_eq!(sqlalchemy_url("sqlite://"), "sqlite::memory:");
}
