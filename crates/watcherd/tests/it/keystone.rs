//! Keystone authentication and policy against the real Keystone that
//! ../shared/openstack starts (`.ci/run` starts it and sets
//! WATCHER_KEYSTONE_URL). Without that variable the tests are built ignored;
//! CI runs them with `--include-ignored`, so a missing Keystone fails there.

use watcher_testkit as common;

use common::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

pub(crate) use common::keystone::{delete_endpoints, keystone, ks_call, login};

/// A user with one role on project `admin`; returns a token of theirs.
fn user_with_role(ks: &str, admin: &str, name: &str, role: &str) -> String {
    let users = ks_call(ks, admin, "GET", &format!("/users?name={name}"), None);
    let id = match users["users"].as_array().and_then(|u| u.first()) {
        Some(u) => u["id"].as_str().unwrap().to_string(),
        None => ks_call(
            ks,
            admin,
            "POST",
            "/users",
            Some(json!({"user": {"name": name, "password": "pw", "domain_id": "default"}})),
        )["user"]["id"]
            .as_str()
            .unwrap()
            .to_string(),
    };
    let project = ks_call(ks, admin, "GET", "/projects?name=admin", None)["projects"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let role_id = ks_call(ks, admin, "GET", &format!("/roles?name={role}"), None)["roles"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    ks_call(
        ks,
        admin,
        "PUT",
        &format!("/projects/{project}/users/{id}/roles/{role_id}"),
        None,
    );
    login(ks, name, "pw", "admin")
}

/// A dummy audit's plan (its sleep `para1` seconds), made with `token`.
fn dummy_plan(d: &Daemon, token: &str, para1: u64) -> String {
    let audit: Value = ureq::post(&format!("{}/v1/audits", d.url))
        .set("X-Auth-Token", token)
        .send_json(
            json!({"audit_type": "ONESHOT", "goal": "dummy", "parameters": {"para1": para1}}),
        )
        .unwrap()
        .into_json()
        .unwrap();
    let audit = audit["uuid"].as_str().unwrap().to_string();
    wait_for(Duration::from_secs(10), || {
        let (_, v, _) = get(
            d,
            &format!("/v1/action_plans?audit_uuid={audit}"),
            Some(token),
        );
        v["action_plans"][0]["uuid"].as_str().map(str::to_string)
    })
}

fn start(ks: &str) -> Daemon {
    start_with_policy(ks, None)
}

fn start_with_policy(ks: &str, policy: Option<&str>) -> Daemon {
    start_with(ks, policy, "")
}

/// watcherd under Keystone, with a policy file and more `[keystone]` lines.
fn start_with(ks: &str, policy: Option<&str>, keystone_extra: &str) -> Daemon {
    let dir = temp_dir("keystone");
    let top = match policy {
        Some(text) => {
            let path = dir.join("policy.yaml");
            std::fs::write(&path, text).unwrap();
            format!(
                "auth_strategy = \"keystone\"\npolicy_file = \"{}\"",
                path.display()
            )
        }
        None => "auth_strategy = \"keystone\"".to_string(),
    };
    let top = top.as_str();
    let tables = format!(
        "[keystone]\nauth_url = \"{ks}\"\nusername = \"admin\"\npassword = \"admin\"\nproject_name = \"admin\"\ncache_ttl_secs = 1.0\n{keystone_extra}\n"
    );
    let config = write_config_with(&dir, top, "", &tables);
    Daemon::start_with_config(&dir, config, None)
}

fn get(d: &Daemon, path: &str, token: Option<&str>) -> (u16, Value, Option<String>) {
    let mut r = ureq::get(&format!("{}{path}", d.url));
    if let Some(t) = token {
        r = r.set("X-Auth-Token", t);
    }
    let resp = match r.call() {
        Ok(x) => x,
        Err(ureq::Error::Status(_, x)) => x,
        Err(e) => panic!("{e}"),
    };
    let status = resp.status();
    let auth = resp.header("WWW-Authenticate").map(str::to_string);
    (
        status,
        serde_json::from_str(&resp.into_string().unwrap_or_default()).unwrap_or(Value::Null),
        auth,
    )
}

#[cfg_attr(
    not(test_keystone),
    ignore = "needs Keystone: set WATCHER_KEYSTONE_URL (.ci/run does)"
)]
#[test]
fn tokens_are_validated_with_keystone_and_roles_decide_what_a_caller_may_do() {
    let ks = keystone();
    let admin = login(&ks, "admin", "admin", "admin");
    let d = start(&ks);

    let (status, _, www) = get(&d, "/v1/goals", None);
    assert_eq!(status, 401);
    assert!(www.unwrap_or_default().contains(&ks));
    assert_eq!(get(&d, "/v1/goals", Some("not-a-token")).0, 401);
    assert_eq!(get(&d, "/", None).0, 200, "the root document is public");
    assert_eq!(get(&d, "/v1/goals", Some(&admin)).0, 200);

    let create = |token: &str| match ureq::post(&format!("{}/v1/audits", d.url))
        .set("X-Auth-Token", token)
        .send_json(json!({"audit_type": "ONESHOT", "goal": "dummy"}))
    {
        Ok(r) => (r.status(), Value::Null),
        Err(ureq::Error::Status(c, r)) => (c, r.into_json().unwrap_or(Value::Null)),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(create(&admin).0, 201);

    let reader = user_with_role(&ks, &admin, "watcher-test-reader", "reader");
    assert_eq!(
        get(&d, "/v1/audits", Some(&reader)).0,
        200,
        "a reader lists"
    );
    let (status, body) = create(&reader);
    assert_eq!(status, 403);
    assert_eq!(
        faultstring(&body),
        "Policy doesn't allow audit:create to be performed."
    );

    // Keystone's `member` implies `reader`, so a role outside that chain.
    ks_call(
        &ks,
        &admin,
        "POST",
        "/roles",
        Some(json!({"role": {"name": "watcher-test-other"}})),
    );
    let other = user_with_role(&ks, &admin, "watcher-test-other", "watcher-test-other");
    let (status, body, _) = get(&d, "/v1/action_plans", Some(&other));
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        faultstring(&body),
        "Policy doesn't allow action_plan:get_all to be performed."
    );

    // A policy file can grant that role what the defaults refuse.
    let relaxed = start_with_policy(
        &ks,
        Some("\"action_plan:get_all\": \"rule:reader_api or role:watcher-test-other\"\n"),
    );
    assert_eq!(get(&relaxed, "/v1/action_plans", Some(&other)).0, 200);
    assert_eq!(
        get(&relaxed, "/v1/audits", Some(&other)).0,
        403,
        "other rules keep their defaults"
    );
}

#[cfg_attr(
    not(test_keystone),
    ignore = "needs Keystone: set WATCHER_KEYSTONE_URL (.ci/run does)"
)]
#[test]
fn a_revoked_token_stops_working_within_the_cache_time() {
    let ks = keystone();
    let admin = login(&ks, "admin", "admin", "admin");
    let victim = login(&ks, "admin", "admin", "admin");
    let d = start(&ks);
    assert_eq!(get(&d, "/v1/goals", Some(&victim)).0, 200);
    let r = ureq::delete(&format!("{ks}/auth/tokens"))
        .set("X-Auth-Token", &admin)
        .set("X-Subject-Token", &victim)
        .call()
        .unwrap();
    assert_eq!(r.status(), 204);
    wait_for(Duration::from_secs(10), || {
        (get(&d, "/v1/goals", Some(&victim)).0 == 401).then_some(())
    });
}

/// Registers watcherd in the catalog as `infra-optim`, then drives it with
/// `openstack optimize` and python-watcherclient using Keystone credentials.
#[cfg_attr(
    not(test_keystone),
    ignore = "needs Keystone: set WATCHER_KEYSTONE_URL (.ci/run does)"
)]
#[test]
fn openstack_clients_find_watcherd_through_the_catalog() {
    let ks = keystone();
    let venv = common::workspace_root().join("build/venv/bin");
    let venv = venv.display();
    if !std::path::Path::new(&format!("{venv}/openstack")).exists() {
        assert!(
            std::env::var("CI").is_err(),
            "CI must install the clients in build/venv"
        );
        eprintln!("build/venv has no openstack client: skipped outside CI");
        return;
    }
    let admin = login(&ks, "admin", "admin", "admin");
    let d = start(&ks);
    // Replace any stale registration from an earlier run.
    for s in ks_call(&ks, &admin, "GET", "/services?type=infra-optim", None)["services"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let id = s["id"].as_str().unwrap();
        delete_endpoints(&ks, &admin, &format!("service_id={id}"));
        let _ = ureq::delete(&format!("{ks}/services/{id}"))
            .set("X-Auth-Token", &admin)
            .call();
    }
    let service = ks_call(
        &ks,
        &admin,
        "POST",
        "/services",
        Some(json!({"service": {"type": "infra-optim", "name": "watcher"}})),
    );
    let sid = service["service"]["id"].as_str().unwrap().to_string();
    for interface in ["public", "internal", "admin"] {
        ks_call(
            &ks,
            &admin,
            "POST",
            "/endpoints",
            Some(
                json!({"endpoint": {"service_id": sid, "interface": interface, "url": d.url, "region_id": "RegionOne"}}),
            ),
        );
    }
    let env = [
        ("OS_AUTH_URL", ks.as_str()),
        ("OS_USERNAME", "admin"),
        ("OS_PASSWORD", "admin"),
        ("OS_PROJECT_NAME", "admin"),
        ("OS_USER_DOMAIN_NAME", "Default"),
        ("OS_PROJECT_DOMAIN_NAME", "Default"),
        ("OS_IDENTITY_API_VERSION", "3"),
        ("OS_REGION_NAME", "RegionOne"),
    ];
    let run = |bin: &str, args: &[&str]| {
        let o = Command::new(format!("{venv}/{bin}"))
            .args(args)
            .envs(env)
            .env_remove("OS_AUTH_TYPE")
            .env_remove("OS_ENDPOINT")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{bin} {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(run("openstack", &["optimize", "goal", "list"]).contains("dummy"));
    assert!(run("openstack", &["optimize", "audit", "create", "-g", "dummy"]).contains("PENDING"));
    assert!(run("watcher", &["strategy", "list"]).contains("dummy"));
    let _ = ureq::delete(&format!("{ks}/services/{sid}"))
        .set("X-Auth-Token", &admin)
        .call();
}

#[cfg_attr(
    not(test_keystone),
    ignore = "needs Keystone: set WATCHER_KEYSTONE_URL (.ci/run does)"
)]
#[test]
fn webhooks_can_go_without_a_token_and_generic_policy_checks_use_the_token() {
    let ks = keystone();
    let admin = login(&ks, "admin", "admin", "admin");
    let member = user_with_role(&ks, &admin, "watcher-member", "member");
    let d = start_with(
        &ks,
        Some("\"audit:get_all\": \"project_id:%(project_id)s and not role:intern\"\n"),
        "enable_webhooks_auth = false",
    );
    // A member (project-scoped token) may list audits under that rule, not create them.
    let (status, _, _) = get(&d, "/v1/audits", Some(&member));
    assert_eq!(status, 200);
    let create = |token: &str| match ureq::post(&format!("{}/v1/audits", d.url))
        .set("X-Auth-Token", token)
        .send_json(json!({"audit_type": "EVENT", "goal": "dummy"}))
    {
        Ok(r) => (r.status(), r.into_json::<Value>().unwrap()),
        Err(ureq::Error::Status(c, r)) => (c, r.into_json::<Value>().unwrap_or(Value::Null)),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(create(&member).0, 403);
    let (status, audit) = create(&admin);
    assert_eq!(status, 201, "{audit}");
    let uuid = audit["uuid"].as_str().unwrap();

    // The webhook answers without a token; everything else still needs one.
    let r = ureq::post(&format!("{}/v1/webhooks/{uuid}", d.url)).call();
    assert!(matches!(&r, Ok(resp) if resp.status() == 202), "{r:?}");
    assert_eq!(get(&d, &format!("/v1/audits/{uuid}"), None).0, 401);
    let plans = wait_for(Duration::from_secs(10), || {
        let (_, v, _) = get(
            &d,
            &format!("/v1/action_plans?audit_uuid={uuid}"),
            Some(&admin),
        );
        (!v["action_plans"].as_array()?.is_empty()).then_some(v)
    });
    assert_eq!(plans["action_plans"][0]["state"], "RECOMMENDED");
}

#[cfg_attr(
    not(test_keystone),
    ignore = "needs Keystone: set WATCHER_KEYSTONE_URL (.ci/run does)"
)]
#[test]
fn the_dashboard_needs_a_keystone_login_and_a_reader_gets_no_cancel_button() {
    let ks = keystone();
    let admin = login(&ks, "admin", "admin", "admin");
    user_with_role(&ks, &admin, "watcher-test-reader", "reader");
    let d = start(&ks);
    let plan = dummy_plan(&d, &admin, 1);
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let url = |p: &str| format!("{}{p}", d.url);
    let status_of = |r: Result<ureq::Response, ureq::Error>| match r {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(c, _)) => c,
        Err(e) => panic!("{e}"),
    };

    // Not logged in: a page sends to the login form, the rest answers 401.
    let r = agent
        .get(&url("/dashboard"))
        .set("Accept", "text/html")
        .call()
        .unwrap();
    assert_eq!(
        (r.status(), r.header("location")),
        (303, Some("/dashboard/login"))
    );
    assert_eq!(status_of(agent.get(&url("/dashboard/events")).call()), 401);
    let plan_page = url(&format!("/dashboard/action_plans/{plan}"));
    assert_eq!(status_of(agent.get(&plan_page).call()), 401);

    // The form hands out its CSRF token; a login needs it.
    let form = agent.get(&url("/dashboard/login")).call().unwrap();
    let csrf = cookie_value(form.header("set-cookie").unwrap());
    let csrf_cookie = format!("watcher_csrf={csrf}");
    // Answers, 4xx included.
    let answer = |r: Result<ureq::Response, ureq::Error>| match r {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    let log_in = |user: &str, password: &str| {
        answer(
            agent
                .post(&url("/dashboard/login"))
                .set("Cookie", &csrf_cookie)
                .send_form(&[
                    ("user", user),
                    ("password", password),
                    ("project", "admin"),
                    ("domain", "Default"),
                    ("csrf", &csrf),
                ]),
        )
    };
    let refused = log_in("admin", "wrong");
    assert_eq!(refused.status(), 401);
    let page = refused.into_string().unwrap();
    assert!(
        page.contains("Keystone refused these credentials"),
        "{page}"
    );
    assert!(!page.contains("wrong"), "the password is never shown again");
    let session = |user: &str, password: &str| {
        let r = log_in(user, password);
        assert_eq!(r.status(), 303);
        let c = r.header("set-cookie").unwrap().to_string();
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict"),
            "{c}"
        );
        format!("{}; {csrf_cookie}", c.split(';').next().unwrap())
    };
    let admin_session = session("admin", "admin");
    let reader_session = session("watcher-test-reader", "pw");
    let page_for = |cookies: &str| {
        agent
            .get(&plan_page)
            .set("Cookie", cookies)
            .call()
            .unwrap()
            .into_string()
            .unwrap()
    };
    let admins = page_for(&admin_session);
    assert!(
        admins.contains("Cancel plan") && admins.contains("Log out"),
        "{admins}"
    );
    let readers = page_for(&reader_session);
    assert!(readers.contains("RECOMMENDED"));
    assert!(
        !readers.contains("Cancel plan") && !readers.contains(">Start<"),
        "{readers}"
    );

    // The API behind the buttons holds the reader to the same policy.
    let cancel = |cookies: &str| {
        answer(
            agent
                .request("PATCH", &url(&format!("/dashboard/v1/action_plans/{plan}")))
                .set("Cookie", cookies)
                .set("X-CSRF-Token", &csrf)
                .send_json(json!([{"op": "replace", "path": "/state", "value": "CANCELLING"}])),
        )
    };
    let refused = cancel(&reader_session);
    assert_eq!(refused.status(), 403);
    let body = refused.into_string().unwrap();
    assert!(body.contains("action_plan:update"), "{body}");
    assert_eq!(cancel(&admin_session).status(), 200);
    let (_, p, _) = get(&d, &format!("/v1/action_plans/{plan}"), Some(&admin));
    assert_eq!(p["state"], "CANCELLED");
}

#[cfg_attr(
    not(all(test_keystone, test_chromium)),
    ignore = "needs Keystone and Chromium: WATCHER_KEYSTONE_URL and WATCHER_TEST_CHROMEDRIVER (.ci/run sets both)"
)]
#[test]
fn in_a_browser_an_admin_logs_in_and_cancels_and_a_reader_sees_no_cancel_button() {
    use crate::dashboard::Browser;
    let ks = keystone();
    let admin = login(&ks, "admin", "admin", "admin");
    user_with_role(&ks, &admin, "watcher-test-reader", "reader");
    let d = start(&ks);
    let b = Browser::start();
    let log_in = |user: &str, password: &str| {
        b.open(&format!("{}/dashboard", d.url));
        // Not logged in: the login form.
        wait_for(Duration::from_secs(5), || {
            (b.path() == "/dashboard/login").then_some(())
        });
        b.type_into("input[name=user]", user);
        b.type_into("input[name=password]", password);
        b.click("form button[type=submit]");
        wait_for(Duration::from_secs(10), || {
            (b.path() == "/dashboard").then_some(())
        });
    };
    b.open(&format!("{}/dashboard/login", d.url));
    b.screenshot("login-1280");
    log_in("admin", "admin");
    // A dummy audit from the form, its plan from the audit's page.
    b.open(&format!("{}/dashboard/audits/new?strategy=dummy", d.url));
    b.type_into("input[data-param=para1]", "60");
    b.click("#new-audit button[type=submit]");
    let plan = wait_for(Duration::from_secs(10), || {
        let href = b.script(
            "const a = location.pathname.startsWith('/dashboard/audits/') && document.querySelector('main li a'); return a && a.getAttribute('href')",
        );
        href.as_str()
            .map(|h| h.rsplit('/').next().unwrap().to_string())
    });
    b.open(&format!("{}/dashboard/action_plans/{plan}", d.url));
    b.click("button[data-url$='/start']");
    b.confirm();
    let state = || b.script("return document.getElementById('plan-state').dataset.state");
    wait_for(Duration::from_secs(10), || {
        (state() == "ONGOING").then_some(())
    });
    b.click("button[data-confirm^='Cancel this plan']");
    b.confirm();
    wait_for(Duration::from_secs(5), || {
        (state() == "CANCELLED").then_some(())
    });
    b.screenshot("plan-cancelled-by-admin-1280");
    // Log out, then in as a reader: the plan, and no button to change it.
    b.click("button[data-url='/dashboard/logout']");
    wait_for(Duration::from_secs(5), || {
        (b.path() == "/dashboard/login").then_some(())
    });
    log_in("watcher-test-reader", "pw");
    b.open(&format!("{}/dashboard/action_plans/{plan}", d.url));
    assert_eq!(state(), "CANCELLED");
    let buttons = b.script("return document.querySelectorAll('main button').length");
    assert_eq!(buttons, 0, "a reader gets no button");
    b.screenshot("plan-as-reader-1280");
    let errors = b.console_errors();
    assert!(errors.is_empty(), "{errors:?}");
}
