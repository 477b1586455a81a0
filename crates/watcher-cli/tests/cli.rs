//! The `watcher` command line client against the real watcherd.

use watcher_testkit as common;

use common::*;
use serde_json::Value;
use std::process::{Command, Output};

/// `watcher` against a watcherd without authentication (CI's environment
/// has an admin's OS_* variables, which would make it log in).
fn watcher(d: &Daemon, args: &[&str]) -> Output {
    watcher_at(&d.url, args)
}

fn watcher_at(url: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_watcher"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("OS_")) {
        cmd.env_remove(k);
    }
    cmd.args(args)
        .env("WATCHER_URL", url)
        .output()
        .expect("run watcher")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn lists_are_tables_by_default_and_json_on_request() {
    let d = Daemon::start("cli-format");
    let o = watcher(&d, &["goal", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.starts_with("+---") && text.contains("| dummy "),
        "{text}"
    );
    let o = watcher(&d, &["goal", "list", "-f", "json"]);
    let goals: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(goals
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["Name"] == "dummy"));
}

#[test]
fn start_wait_exits_0_on_success_and_4_when_cancelled() {
    let d = Daemon::start("cli-wait");
    let o = watcher(&d, &["audit", "create", "-g", "dummy", "-p", "para1=1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plan = wait_for(std::time::Duration::from_secs(10), || {
        let o = watcher(&d, &["actionplan", "list", "-f", "json"]);
        let v: Value = serde_json::from_slice(&o.stdout).ok()?;
        v.get(0).map(|p| p["UUID"].as_str().unwrap().to_string())
    });
    let o = watcher(&d, &["actionplan", "start", &plan, "--wait"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("SUCCEEDED"));
    assert!(
        stderr(&o).contains("3/3 | SUCCEEDED"),
        "progress is reported: {}",
        stderr(&o)
    );

    let plan = d.recommend("dummy", "dummy", serde_json::json!({"para1": 60}));
    let url = d.url.clone();
    let p2 = plan.clone();
    let waiter =
        std::thread::spawn(move || watcher_at(&url, &["actionplan", "start", &p2, "--wait"]));
    d.wait_action_state(&plan, "sleep", "ONGOING");
    let o = watcher(&d, &["actionplan", "cancel", &plan]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = waiter.join().unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("ended CANCELLED"), "{}", stderr(&o));
    let o = watcher(&d, &["actionplan", "history", &plan]);
    assert!(
        stdout(&o).contains("cancelled by operator"),
        "{}",
        stdout(&o)
    );
    // Cancelling it again: said plainly, with its own exit code.
    let o = watcher(&d, &["actionplan", "cancel", &plan]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("had already ended CANCELLED; there is nothing to cancel"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("CANCELLED"), "the plan is shown");
}

#[test]
fn pause_and_resume_steer_a_running_plan() {
    let d = Daemon::start("cli-pause");
    let plan = d.actuator(serde_json::json!([
        {"action_type": "sleep", "input_parameters": {"duration": 1.0}},
        {"action_type": "sleep", "input_parameters": {"duration": 0.2}},
    ]));
    d.start_plan(&plan);
    d.wait_action_state(&plan, "sleep", "ONGOING");
    let o = watcher(
        &d,
        &[
            "actionplan",
            "pause",
            &plan,
            "--reason",
            "traffic is back",
            "-f",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let shown: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(shown["State"], "PAUSED");
    assert!(
        stderr(&o).contains("watcher actionplan resume"),
        "{}",
        stderr(&o)
    );
    // A second pause: the server's reason, and a failing exit code.
    let o = watcher(&d, &["actionplan", "pause", &plan]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("only an ONGOING action plan can be paused"),
        "{}",
        stderr(&o)
    );
    let o = watcher(&d, &["actionplan", "resume", &plan, "--wait"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("SUCCEEDED"));
    let o = watcher(&d, &["actionplan", "history", &plan]);
    let text = stdout(&o);
    assert!(
        text.contains("paused by operator: traffic is back"),
        "{text}"
    );
    assert!(text.contains("resumed by operator"), "{text}");
}

#[test]
fn errors_say_what_went_wrong_and_what_to_do() {
    let d = Daemon::start("cli-errors");
    let o = watcher(&d, &["actionplan", "show", "not-a-uuid"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("not a valid actionplan UUID"),
        "{}",
        stderr(&o)
    );
    let o = watcher(
        &d,
        &["actionplan", "show", "00000000-0000-0000-0000-000000000000"],
    );
    assert!(
        stderr(&o).contains("could not be found (HTTP 404)"),
        "{}",
        stderr(&o)
    );
    let o = Command::new(env!("CARGO_BIN_EXE_watcher"))
        .args(["--endpoint", "http://127.0.0.1:1", "goal", "list"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("Is watcherd running?"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn watcherd_refuses_a_broken_policy_file_and_says_where() {
    let dir = temp_dir("bad-policy");
    std::fs::write(
        dir.join("policy.yaml"),
        "\"action_plan:update\": \"role:admin or\"\n",
    )
    .unwrap();
    let top = format!("policy_file = \"{}\"", dir.join("policy.yaml").display());
    let config = write_config_with(&dir, &top, "", "");
    let o = Command::new(watcher_testkit::watcherd_binary())
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("policy") && err.contains("line 1"), "{err}");
}

#[test]
fn continuous_audits_are_created_with_their_schedule_and_bad_ones_are_explained() {
    let d = Daemon::start("cli-continuous");
    let o = watcher(
        &d,
        &[
            "audit",
            "create",
            "-g",
            "dummy",
            "-t",
            "continuous",
            "-i",
            "0 3 * * *",
            "-f",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let a: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(a["Audit Type"], "CONTINUOUS");
    assert_eq!(a["Interval"], "0 3 * * *");
    let o = watcher(
        &d,
        &[
            "audit",
            "create",
            "-g",
            "dummy",
            "-t",
            "CONTINUOUS",
            "-i",
            "hourly",
        ],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("cron expression"), "{}", stderr(&o));
}

/// watcherd under the Keystone of ../shared/openstack.
fn start_under_keystone(ks: &str) -> Daemon {
    let dir = temp_dir("cli-keystone");
    let tables = format!(
        "[keystone]\nauth_url = \"{ks}\"\nusername = \"admin\"\npassword = \"admin\"\nproject_name = \"admin\"\n"
    );
    let config = write_config_with(&dir, "auth_strategy = \"keystone\"", "", &tables);
    Daemon::start_with_config(&dir, config, None)
}

/// The admin's openrc for `region`, with the token cache under `cache`.
fn admin_openrc<'a>(ks: &'a str, region: &'a str, cache: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("OS_AUTH_URL", ks),
        ("OS_USERNAME", "admin"),
        ("OS_PASSWORD", "admin"),
        ("OS_PROJECT_NAME", "admin"),
        ("OS_USER_DOMAIN_NAME", "Default"),
        ("OS_PROJECT_DOMAIN_NAME", "Default"),
        ("OS_REGION_NAME", region),
        ("XDG_CACHE_HOME", cache),
    ]
}

/// `watcher` with a clean environment: only the variables given.
fn watcher_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_watcher"));
    cmd.args(args).env_clear().env("PATH", "/usr/bin:/bin");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run watcher")
}

#[cfg_attr(
    not(test_keystone),
    ignore = "needs Keystone: set WATCHER_KEYSTONE_URL (.ci/run does)"
)]
#[test]
fn keystone_logins_find_watcherd_in_the_catalog_and_keep_the_token() {
    use common::keystone::{delete_endpoints, keystone, login, register_watcher};
    let ks = keystone();
    let d = start_under_keystone(&ks);
    let admin = login(&ks, "admin", "admin", "admin");
    let region = format!("WatcherCli{}", std::process::id());
    register_watcher(&ks, &admin, &region, &d.url);
    let cache = d.dir.join("cache");
    let cache_s = cache.to_str().unwrap().to_string();
    let openrc = admin_openrc(&ks, &region, &cache_s);

    // Without credentials: watcherd's 401 says how to log in.
    let o = watcher_env(&["goal", "list"], &[("WATCHER_URL", &d.url)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--os-cloud"), "{}", stderr(&o));

    // An openrc's variables: watcherd comes from the catalog.
    let o = watcher_env(&["goal", "list", "-f", "json"], &openrc);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("\"dummy\""), "{}", stdout(&o));
    let files: Vec<_> = std::fs::read_dir(cache.join("watcher"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "one cached token: {files:?}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let first = std::fs::read_to_string(&files[0]).unwrap();

    // The next commands reuse it: no new login.
    for _ in 0..3 {
        let o = watcher_env(&["audit", "list"], &openrc);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(std::fs::read_to_string(&files[0]).unwrap(), first);

    // A cached token Keystone no longer honours: logged in again, once.
    let mut record: Value = serde_json::from_str(&first).unwrap();
    record["id"] = "gAAAAAB-revoked".into();
    std::fs::write(&files[0], record.to_string()).unwrap();
    let o = watcher_env(&["goal", "list"], &openrc);
    assert!(o.status.success(), "{}", stderr(&o));
    let renewed = std::fs::read_to_string(&files[0]).unwrap();
    assert!(!renewed.contains("gAAAAAB-revoked"));

    // clouds.yaml with --os-cloud.
    let clouds = d.dir.join("clouds.yaml");
    std::fs::write(
        &clouds,
        format!(
            "clouds:\n  lab:\n    region_name: {region}\n    auth:\n      auth_url: {ks}\n      username: admin\n      password: admin\n      project_name: admin\n"
        ),
    )
    .unwrap();
    let o = watcher_env(
        &[
            "--os-cloud",
            "lab",
            "--no-token-cache",
            "goal",
            "show",
            "dummy",
        ],
        &[("OS_CLIENT_CONFIG_FILE", clouds.to_str().unwrap())],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("dummy"));
    let o = watcher_env(
        &["--os-cloud", "nope", "goal", "list"],
        &[("OS_CLIENT_CONFIG_FILE", clouds.to_str().unwrap())],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no cloud named 'nope'"),
        "{}",
        stderr(&o)
    );

    // A token and an endpoint, as upstream's client takes them: no Keystone.
    let o = watcher_env(
        &[
            "--os-token",
            &admin,
            "--os-endpoint-override",
            &d.url,
            "goal",
            "list",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // A token exchanged at Keystone for a project-scoped one (token auth).
    let o = watcher_env(
        &[
            "--os-auth-url",
            &ks,
            "--os-token",
            &admin,
            "--os-project-name",
            "admin",
            "--os-region-name",
            &region,
            "--no-token-cache",
            "goal",
            "list",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // A wrong password is Keystone's refusal, said plainly.
    let o = watcher_env(
        &["--os-password", "wrong", "--no-token-cache", "goal", "list"],
        &openrc,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("Keystone refused the credentials of admin"),
        "{}",
        stderr(&o)
    );
    assert!(
        !stderr(&o).contains("wrong"),
        "the password is never printed"
    );

    // An application credential in clouds.yaml.
    let user = common::keystone::ks_call(&ks, &admin, "GET", "/users?name=admin", None)["users"][0]
        ["id"]
        .as_str()
        .unwrap()
        .to_string();
    let cred = common::keystone::ks_call(
        &ks,
        &admin,
        "POST",
        &format!("/users/{user}/application_credentials"),
        Some(
            serde_json::json!({"application_credential": {"name": format!("watcher-cli-{region}")}}),
        ),
    );
    let (id, secret) = (
        cred["application_credential"]["id"].as_str().unwrap(),
        cred["application_credential"]["secret"].as_str().unwrap(),
    );
    std::fs::write(
        &clouds,
        format!(
            "clouds:\n  robot:\n    auth_type: v3applicationcredential\n    region_name: {region}\n    auth:\n      auth_url: {ks}\n      application_credential_id: {id}\n      application_credential_secret: {secret}\n"
        ),
    )
    .unwrap();
    let o = watcher_env(
        &["--os-cloud", "robot", "--no-token-cache", "audit", "list"],
        &[("OS_CLIENT_CONFIG_FILE", clouds.to_str().unwrap())],
    );
    assert!(o.status.success(), "{}", stderr(&o));

    delete_endpoints(&ks, &admin, &format!("region_id={region}"));
}

#[test]
fn the_api_version_is_negotiated_unless_one_is_asked_for() {
    let d = Daemon::start("cli-version");
    // The highest both know (1.7 today) works without asking.
    let o = watcher(&d, &["goal", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // One watcherd does not offer is refused with the range it does.
    let o = watcher(&d, &["--os-infra-optim-api-version", "1.9", "goal", "list"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("supports API versions 1.0 to 1.7, not 1.9"),
        "{}",
        stderr(&o)
    );
    // Features are refused below the version that brought them.
    let o = watcher(
        &d,
        &[
            "--os-infra-optim-api-version",
            "1.4",
            "action",
            "update",
            "00000000-0000-4000-8000-000000000000",
            "--state",
            "SKIPPED",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("needs API version 1.5"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn every_format_and_column_choice_reads_as_upstreams_client_prints_it() {
    let d = Daemon::start("cli-formats");
    let run = |args: &[&str]| {
        let o = watcher(&d, args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        stdout(&o)
    };
    let one_line = run(&["goal", "show", "dummy", "-f", "json", "--noindent"]);
    assert!(
        one_line.starts_with("{\"UUID\": \"") || one_line.starts_with("{\"UUID\":\""),
        "{one_line}"
    );
    assert_eq!(one_line.lines().count(), 1);
    assert_eq!(
        run(&["goal", "show", "dummy", "-f", "value", "-c", "Name"]),
        "dummy\n"
    );
    let csv = run(&[
        "goal",
        "list",
        "-f",
        "csv",
        "-c",
        "Name",
        "-c",
        "Display name",
    ]);
    assert!(csv.starts_with("\"Name\",\"Display name\"\n"), "{csv}");
    assert!(csv.contains("\"dummy\",\"Dummy goal\"\n"), "{csv}");
    let yaml = run(&["strategy", "list", "--goal", "dummy", "-f", "yaml"]);
    assert!(yaml.contains("- Display name: "), "{yaml}");
    assert!(yaml.contains("  Name: dummy\n"), "{yaml}");
    // An unknown column is named with the known ones.
    let o = watcher(&d, &["goal", "list", "-c", "Nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no column named Nope; the columns are: UUID, Name, Display name"),
        "{}",
        stderr(&o)
    );
    // --sort-key takes a title or a field; a wrong one lists both.
    let names = run(&[
        "goal",
        "list",
        "--sort-key",
        "Name",
        "--sort-dir",
        "desc",
        "-f",
        "value",
        "-c",
        "Name",
    ]);
    let names: Vec<&str> = names.lines().collect();
    let mut sorted = names.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(names, sorted);
    let o = watcher(&d, &["goal", "list", "--sort-key", "colour"]);
    assert!(
        stderr(&o).contains("colour is an invalid field for sorting"),
        "{}",
        stderr(&o)
    );
    // --limit 0 follows every page.
    let all = run(&[
        "strategy", "list", "--limit", "0", "-f", "value", "-c", "UUID",
    ])
    .lines()
    .count();
    let first = run(&[
        "strategy", "list", "--limit", "2", "-f", "value", "-c", "UUID",
    ])
    .lines()
    .count();
    assert_eq!(first, 2);
    assert!(all > 2, "{all}");
}

#[test]
fn templates_audits_plans_services_and_the_model_have_their_commands() {
    let d = Daemon::start("cli-commands");
    let json = |args: &[&str]| -> Value {
        let mut a = args.to_vec();
        a.extend(["-f", "json"]);
        let o = watcher(&d, &a);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let t = json(&[
        "audittemplate",
        "create",
        "nightly",
        "dummy",
        "-s",
        "dummy",
        "-d",
        "for the night",
    ]);
    assert_eq!(t["Name"], "nightly");
    assert_eq!(t["Strategy"], "dummy");
    let t = json(&[
        "audittemplate",
        "update",
        "nightly",
        "replace",
        "description=for the weekend",
    ]);
    assert_eq!(t["Description"], "for the weekend");
    assert_eq!(json(&["audittemplate", "list"])[0]["Goal"], "dummy");

    // audit create --wait prints the plan; --start runs it to its end.
    let o = watcher(
        &d,
        &[
            "audit", "create", "-a", "nightly", "-p", "para1=1", "--wait", "-f", "json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(plan["State"], "RECOMMENDED");
    assert!(
        stderr(&o).contains("watcher actionplan start"),
        "{}",
        stderr(&o)
    );
    let o = watcher(
        &d,
        &["audit", "create", "-g", "dummy", "-p", "para1=1", "--start"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("SUCCEEDED"), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("sleep 1 s"),
        "the progress names the actions: {}",
        stderr(&o)
    );

    let audits = json(&["audit", "list"]);
    let audit = audits[0]["UUID"].as_str().unwrap().to_string();
    let a = json(&["audit", "update", &audit, "replace", "name=renamed"]);
    assert_eq!(a["Name"], "renamed");
    let o = watcher(&d, &["audit", "delete", &audit]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&format!("Deleted audit {audit}")));

    let plan = plan["UUID"].as_str().unwrap().to_string();
    let o = watcher(
        &d,
        &["actionplan", "update", &plan, "replace", "state=CANCELLED"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json(&["actionplan", "show", &plan])["State"], "CANCELLED");

    assert!(json(&["service", "list"])
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["Name"] == "watcher-applier"));
    let engines = json(&["scoringengine", "list"]);
    let name = engines[0]["Name"].as_str().unwrap().to_string();
    assert_eq!(json(&["scoringengine", "show", &name])["Name"], name);
    let model = json(&["datamodel", "list", "--detail"]);
    assert!(
        model
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["Node Host Name"] == "compute-1"),
        "{model}"
    );
    let o = watcher(&d, &["audittemplate", "delete", "nightly"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn shells_get_completion_scripts() {
    for shell in ["bash", "zsh", "fish"] {
        let o = watcher_at("http://127.0.0.1:1", &["completion", shell]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains("actionplan"), "{shell}");
    }
}

#[test]
fn an_https_watcherd_is_trusted_through_the_operators_ca() {
    let dir = temp_dir("cli-https");
    let ca = watcher_testkit::servers::TestCa::new(&dir, "api");
    let top = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"",
        ca.server_cert.display(),
        ca.server_key.display()
    );
    let d = Daemon::start_with_config(&dir, write_config_with(&dir, &top, "", ""), None);
    assert!(d.url.starts_with("https://"), "{}", d.url);
    let o = watcher(&d, &["goal", "list"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("TLS certificate is not trusted") && stderr(&o).contains("--os-cacert"),
        "{}",
        stderr(&o)
    );
    let o = watcher(
        &d,
        &["--os-cacert", ca.ca_cert.to_str().unwrap(), "goal", "list"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("dummy"));
    let o = watcher(&d, &["--insecure", "goal", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[cfg_attr(
    not(test_keystone),
    ignore = "needs Keystone: set WATCHER_KEYSTONE_URL (.ci/run does)"
)]
#[test]
fn a_cached_catalog_older_than_watchers_endpoint_is_read_again() {
    use common::keystone::{delete_endpoints, keystone, login, register_watcher};
    let ks = keystone();
    let first = start_under_keystone(&ks);
    let admin = login(&ks, "admin", "admin", "admin");
    let region = format!("WatcherCliMoved{}", std::process::id());
    // The region exists; Watcher has no endpoint in it yet.
    register_watcher(&ks, &admin, &region, &first.url);
    delete_endpoints(&ks, &admin, &format!("region_id={region}"));
    let cache = first.dir.join("cache");
    let cache_s = cache.to_str().unwrap().to_string();
    let openrc = admin_openrc(&ks, &region, &cache_s);
    // A command that names watcherd itself keeps a token whose catalog
    // has no Watcher.
    let o = watcher_env(
        &["--os-endpoint-override", &first.url, "goal", "list"],
        &openrc,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(cache.join("watcher").exists());

    // Registered since: found with a fresh catalog, not refused.
    register_watcher(&ks, &admin, &region, &first.url);
    let o = watcher_env(&["goal", "list"], &openrc);
    assert!(
        o.status.success(),
        "registered after the token was cached: {}",
        stderr(&o)
    );

    // Moved to another watcherd, the first one gone: the cached catalog
    // points where nothing answers, so the command logs in again.
    let second = start_under_keystone(&ks);
    register_watcher(&ks, &admin, &region, &second.url);
    drop(first);
    let o = watcher_env(&["goal", "list", "-f", "json"], &openrc);
    assert!(
        o.status.success(),
        "moved after the token was cached: {}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("\"dummy\""), "{}", stdout(&o));

    // --no-cache neither reads nor writes the cache.
    let kept = std::fs::read_dir(cache.join("watcher"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect::<Vec<_>>();
    let o = watcher_env(&["--no-cache", "goal", "list"], &openrc);
    assert!(o.status.success(), "{}", stderr(&o));
    let after = std::fs::read_dir(cache.join("watcher"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect::<Vec<_>>();
    assert_eq!(kept, after);
    delete_endpoints(&ks, &admin, &format!("region_id={region}"));
}
