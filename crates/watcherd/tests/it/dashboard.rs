//! The dashboard under `/dashboard`: its pages over HTTP, its guard (CSRF,
//! loopback only without Keystone), its event stream, and an operator's
//! session in a real headless Chromium driven over WebDriver (Debian's
//! chromium and chromium-driver; `WATCHER_TEST_CHROMEDRIVER`).

use watcher_testkit as common;

use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn pages_show_the_plans_and_changes_need_the_pages_csrf_token() {
    let d = Daemon::start("dashboard-http");
    let plan = d.recommend("dummy", "dummy", json!({"para1": 1}));
    // A browser asking for / is sent to the dashboard; API clients still get JSON.
    let r = ureq::AgentBuilder::new()
        .redirects(0)
        .build()
        .get(&format!("{}/", d.url))
        .set("Accept", "text/html")
        .call()
        .unwrap();
    assert_eq!(
        (r.status(), r.header("location")),
        (303, Some("/dashboard"))
    );
    assert_eq!(d.get("/")["default_version"]["id"], "v1");

    let r = ureq::get(&format!("{}/dashboard", d.url)).call().unwrap();
    let cookie = r.header("set-cookie").unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(r
        .header("content-security-policy")
        .unwrap()
        .contains("script-src 'self'"));
    let html = r.into_string().unwrap();
    assert!(
        html.contains("Recommended") && html.contains(&plan[..8]),
        "{html}"
    );
    let token = cookie_value(&cookie);
    assert!(html.contains(&format!("content=\"{token}\"")));

    let html = ureq::get(&format!("{}/dashboard/action_plans/{plan}", d.url))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    for expected in [
        "RECOMMENDED",
        "Start",
        "Cancel plan",
        "<svg",
        "History",
        "nop",
    ] {
        assert!(html.contains(expected), "{expected}: {html}");
    }
    assert_eq!(
        ureq::get(&format!(
            "{}/dashboard/action_plans/{}",
            d.url,
            uuid::Uuid::new_v4()
        ))
        .call()
        .unwrap_err()
        .into_response()
        .unwrap()
        .status(),
        404
    );

    // Without the token (or with another), nothing changes.
    let start = format!("{}/dashboard/v1/action_plans/{plan}/start", d.url);
    for (header, cookie) in [
        (None, None),
        (Some("x"), Some(token.as_str())),
        (Some(token.as_str()), None),
    ] {
        let mut req = ureq::post(&start);
        if let Some(h) = header {
            req = req.set("X-CSRF-Token", h);
        }
        if let Some(c) = cookie {
            req = req.set("Cookie", &format!("watcher_csrf={c}"));
        }
        let err = req.call().unwrap_err().into_response().unwrap();
        assert_eq!(err.status(), 403);
        assert!(err.into_string().unwrap().contains("CSRF"));
    }
    // From another site, even with the token: refused.
    let err = ureq::post(&start)
        .set("X-CSRF-Token", &token)
        .set("Cookie", &format!("watcher_csrf={token}"))
        .set("Sec-Fetch-Site", "cross-site")
        .call()
        .unwrap_err()
        .into_response()
        .unwrap();
    assert_eq!(err.status(), 403);
    assert_eq!(d.plan(&plan)["state"], "RECOMMENDED");
    // With it: the API's own handler, transition tables and history.
    let r = ureq::post(&start)
        .set("X-CSRF-Token", &token)
        .set("Cookie", &format!("watcher_csrf={token}"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    d.wait_state(&plan, &["SUCCEEDED"]);
    let history = d.get(&format!("/v1/action_plans/{plan}/history"))["history"].clone();
    assert!(
        history
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["to_state"] == "PENDING" && h["reason"] == "started by operator"),
        "{history}"
    );
}

#[test]
fn the_event_stream_follows_a_plans_history_and_resumes_after_the_last_event() {
    let d = Daemon::start("dashboard-events");
    let plan = d.recommend("dummy", "dummy", json!({"para1": 1}));
    let other = d.recommend("dummy", "dummy", json!({"para1": 1}));
    let url = format!("{}/dashboard/events?plan={plan}", d.url);
    let resp = ureq::get(&url).call().unwrap();
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    let mut lines = BufReader::new(resp.into_reader()).lines();
    d.start_plan(&other);
    d.start_plan(&plan);
    // Read events until the plan's SUCCEEDED: only this plan's rows, in order.
    let mut seen: Vec<Value> = vec![];
    let mut last_id = 0i64;
    while !seen
        .iter()
        .any(|e| e["uuid"] == plan.as_str() && e["to_state"] == "SUCCEEDED")
    {
        let line = lines.next().unwrap().unwrap();
        if let Some(id) = line.strip_prefix("id: ") {
            let id: i64 = id.parse().unwrap();
            assert!(id > last_id);
            last_id = id;
        }
        if let Some(data) = line.strip_prefix("data: ") {
            seen.push(serde_json::from_str(data).unwrap());
        }
    }
    assert!(seen.iter().all(|e| e["uuid"] != other.as_str()), "{seen:?}");
    assert_eq!(seen[0]["to_state"], "PENDING", "{seen:?}");
    // A browser that comes back with Last-Event-ID gets what came after it.
    let first = seen[0]["seq"].as_i64().unwrap();
    let resp = ureq::get(&url)
        .set("Last-Event-ID", &first.to_string())
        .call()
        .unwrap();
    let mut lines = BufReader::new(resp.into_reader()).lines();
    let again = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(data) = line.strip_prefix("data: ") {
            break serde_json::from_str::<Value>(data).unwrap();
        }
    };
    assert_eq!(again["seq"], seen[1]["seq"]);
}

#[test]
fn without_keystone_the_dashboard_answers_only_on_loopback() {
    // The machine's own non-loopback address, when it has one.
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    socket
        .connect("192.0.2.1:9")
        .expect("a route for a non-loopback address");
    let ip = socket.local_addr().unwrap().ip();
    assert!(!ip.is_loopback());
    let dir = temp_dir("dashboard-loopback");
    // Listening on every address without authentication must be asked for.
    let config = write_config_with(&dir, "insecure_listen = true", "", "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("listen = \"127.0.0.1:0\"", "listen = \"0.0.0.0:0\"");
    std::fs::write(&config, text).unwrap();
    let d = Daemon::start_with_config(&dir, config, None);
    let port = d.url.rsplit(':').next().unwrap().to_string();
    let err = ureq::get(&format!("http://{ip}:{port}/dashboard"))
        .call()
        .unwrap_err()
        .into_response()
        .unwrap();
    assert_eq!(err.status(), 403);
    assert!(err.into_string().unwrap().contains("loopback"));
    // The API itself is not the dashboard's business.
    assert_eq!(
        ureq::get(&format!("http://{ip}:{port}/v1/goals"))
            .call()
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        ureq::get(&format!("http://127.0.0.1:{port}/dashboard"))
            .call()
            .unwrap()
            .status(),
        200
    );
}

#[test]
fn the_overview_shows_each_running_plans_progress() {
    let d = Daemon::start("dashboard-progress");
    let plan = d.recommend("dummy", "dummy", json!({"para1": 30}));
    d.start_plan(&plan);
    wait_for(Duration::from_secs(10), || {
        d.actions(&plan)
            .iter()
            .any(|a| a["action_type"] == "sleep" && a["state"] == "ONGOING")
            .then_some(())
    });
    let page = ureq::get(&format!("{}/dashboard", d.url))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    // Two nops done, the sleep running: counted for every running plan at once.
    assert!(page.contains("2 of 3 finished, 1 running"), "{page}");
    d.patch_state(&plan, "CANCELLING");
}

/// A headless Chromium behind chromedriver, spoken to over WebDriver.
pub(crate) struct Browser {
    driver: Child,
    base: String,
    session: String,
}

impl Browser {
    pub(crate) fn start() -> Browser {
        let chromedriver = required_env("WATCHER_TEST_CHROMEDRIVER", "chromedriver");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        wait_for(Duration::from_secs(20), || {
            ureq::get(&format!("{base}/status")).call().ok().map(|_| ())
        });
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"]},
            "goog:loggingPrefs": {"browser": "ALL"}
        }}});
        let r: Value = ureq::post(&format!("{base}/session"))
            .send_json(caps)
            .unwrap()
            .into_json()
            .unwrap();
        let session = r["value"]["sessionId"].as_str().unwrap().to_string();
        Browser {
            driver,
            base,
            session,
        }
    }

    pub(crate) fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let req = ureq::request(method, &url);
        let r = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match r {
            Ok(r) => r.into_json::<Value>().unwrap()["value"].clone(),
            Err(ureq::Error::Status(code, r)) => {
                panic!(
                    "WebDriver {method} {path}: {code} {}",
                    r.into_string().unwrap()
                )
            }
            Err(e) => panic!("WebDriver {method} {path}: {e}"),
        }
    }

    pub(crate) fn open(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url})));
    }

    pub(crate) fn script(&self, js: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": js, "args": []})),
        )
    }

    pub(crate) fn element(&self, css: &str) -> String {
        let e = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        e.as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Clicks the element; found again if the page re-rendered it between
    /// the lookup and the click (a live update replaces the main part).
    pub(crate) fn click(&self, css: &str) {
        for _ in 0..10 {
            let id = self.element(css);
            let url = format!("{}/session/{}/element/{id}/click", self.base, self.session);
            match ureq::post(&url).send_json(json!({})) {
                Ok(_) => return,
                Err(ureq::Error::Status(404, r)) => {
                    let body = r.into_string().unwrap_or_default();
                    assert!(body.contains("stale element"), "click {css}: {body}");
                }
                Err(e) => panic!("click {css}: {e}"),
            }
        }
        panic!("click {css}: the element kept being replaced");
    }

    pub(crate) fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.call("POST", &format!("/element/{id}/clear"), Some(json!({})));
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        );
    }

    pub(crate) fn path(&self) -> String {
        self.script("return location.pathname")
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Accepts the confirmation the click opened, returning its text.
    pub(crate) fn confirm(&self) -> String {
        let text = wait_for(Duration::from_secs(5), || {
            let url = format!("{}/session/{}/alert/text", self.base, self.session);
            ureq::get(&url)
                .call()
                .ok()
                .and_then(|r| r.into_json::<Value>().ok())
                .and_then(|v| v["value"].as_str().map(str::to_string))
        });
        self.call("POST", "/alert/accept", Some(json!({})));
        text
    }

    pub(crate) fn screenshot(&self, name: &str) {
        use base64::Engine as _;
        let png = self.call("GET", "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        let dir = screenshots();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), bytes).unwrap();
    }

    /// The browser console's errors since the last call.
    pub(crate) fn console_errors(&self) -> Vec<String> {
        self.call("POST", "/se/log", Some(json!({"type": "browser"})))
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = ureq::delete(&format!("{}/session/{}", self.base, self.session)).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Where the browser tests leave their screenshots: the build directory.
fn screenshots() -> PathBuf {
    workspace_root().join("build/screenshots")
}

#[cfg_attr(
    not(test_chromium),
    ignore = "needs Chromium: set WATCHER_TEST_CHROMEDRIVER=/usr/bin/chromedriver (.ci/run installs Debian's chromium and chromium-driver)"
)]
#[test]
fn an_operator_starts_and_cancels_a_plan_in_a_browser_and_sees_it_live() {
    let d = Daemon::start("dashboard-browser");
    let b = Browser::start();
    b.open(&format!("{}/dashboard", d.url));
    b.screenshot("overview-1280");
    // A dummy audit from the form the strategy's parameters make; a bad
    // value first gets the API's own message.
    b.open(&format!("{}/dashboard/audits/new?strategy=dummy", d.url));
    b.type_into("input[data-param=para1]", "99999");
    b.click("#new-audit button[type=submit]");
    let said = wait_for(Duration::from_secs(5), || {
        let e = b.script("return document.getElementById('error').textContent");
        e.as_str().filter(|t| !t.is_empty()).map(str::to_string)
    });
    assert!(said.contains("para1"), "{said}");
    // The browser logs that refused request; nothing else may be there.
    let errors = b.console_errors();
    assert!(
        errors.len() == 1
            && errors[0].contains("/dashboard/v1/audits")
            && errors[0].contains("400"),
        "{errors:?}"
    );
    b.screenshot("audit-form-1280");
    b.type_into("input[data-param=para1]", "60");
    b.click("#new-audit button[type=submit]");
    wait_for(Duration::from_secs(5), || {
        let path = b.path();
        (path.starts_with("/dashboard/audits/") && path != "/dashboard/audits/new").then_some(())
    });
    let audit = b.path().rsplit('/').next().unwrap().to_string();
    // The audit's page shows its plan as soon as the engine made it.
    let plan = wait_for(Duration::from_secs(10), || {
        let href = b.script(
            "const a = document.querySelector('main li a'); return a && a.getAttribute('href')",
        );
        href.as_str()
            .map(|h| h.rsplit('/').next().unwrap().to_string())
    });
    assert_eq!(d.plan(&plan)["audit_uuid"], audit.as_str());
    b.screenshot("audit-1280");
    b.click("main li a");
    wait_for(Duration::from_secs(5), || {
        (b.path() == format!("/dashboard/action_plans/{plan}")).then_some(())
    });
    wait_for(Duration::from_secs(5), || {
        (b.script("return document.getElementById('live').textContent") == "live").then_some(())
    });
    b.screenshot("plan-recommended-1280");
    let state = || b.script("return document.getElementById('plan-state').dataset.state");

    b.click("button[data-url$='/start']");
    assert!(b.confirm().contains("Start this plan"));
    // The page follows without a reload: the running sleep shows up.
    let marker = b.script("window.__same_page = true; return true");
    assert_eq!(marker, true);
    // The dummy's sleep (60 s, para1) is the action to catch running.
    wait_for(Duration::from_secs(10), || {
        let sleeping = b.script(
            "return [...document.querySelectorAll('#actions tr[data-state=ONGOING]')].some(r => r.cells[1].textContent === 'sleep')",
        );
        (state() == "ONGOING" && sleeping == true).then_some(())
    });
    b.screenshot("plan-ongoing-1280");

    b.click("button[data-confirm^='Cancel this plan']");
    let text = b.confirm();
    assert!(text.contains("running ones are aborted"), "{text}");
    let clicked = Instant::now();
    wait_for(Duration::from_secs(5), || {
        let done = b.script(
            "return [...document.querySelectorAll('#actions tr')].slice(1).every(r => ['CANCELLED','SUCCEEDED','FAILED'].includes(r.dataset.state))",
        );
        (state() == "CANCELLED" && done == true).then_some(())
    });
    let took = clicked.elapsed();
    eprintln!("dashboard: final states shown {took:?} after the cancel was confirmed");
    assert!(
        took < Duration::from_secs(1),
        "final states shown after {took:?}"
    );
    assert_eq!(
        b.script("return window.__same_page === true"),
        true,
        "the page was reloaded"
    );
    let sleep = b.script(
        "return [...document.querySelectorAll('#actions tr')].slice(1).find(r => r.cells[1].textContent === 'sleep').dataset.state",
    );
    assert_eq!(sleep, "CANCELLED");
    b.screenshot("plan-cancelled-1280");
    // Our record agrees with the page.
    assert_eq!(d.plan(&plan)["state"], "CANCELLED");

    // Readable at 390 px: nothing wider than the window but the scrolling tables.
    b.call(
        "POST",
        "/window/rect",
        Some(json!({"width": 390, "height": 844})),
    );
    b.open(&format!("{}/dashboard/action_plans/{plan}", d.url));
    let overflow = b.script("return document.documentElement.scrollWidth - window.innerWidth");
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "page {overflow} px wider than the window"
    );
    b.screenshot("plan-cancelled-390");
    b.open(&format!("{}/dashboard", d.url));
    b.screenshot("overview-390");
    let errors = b.console_errors();
    assert!(errors.is_empty(), "{errors:?}");
    // The buttons are buttons: reachable with the keyboard.
    let focusable = b.script(
        "return [...document.querySelectorAll('main a, main button')].every(e => e.tabIndex >= 0)",
    );
    assert_eq!(focusable, true);
    for page in ["audits", "audit_templates", "goals", "cluster", "services"] {
        b.open(&format!("{}/dashboard/{page}", d.url));
        b.screenshot(&format!("{page}-390"));
        let overflow = b.script("return document.documentElement.scrollWidth - window.innerWidth");
        assert!(
            overflow.as_i64().unwrap() <= 0,
            "{page}: {overflow} px too wide"
        );
    }
    let errors = b.console_errors();
    assert!(errors.is_empty(), "{errors:?}");
    for shot in [
        "overview-1280",
        "audit-form-1280",
        "audit-1280",
        "plan-ongoing-1280",
        "plan-cancelled-1280",
        "plan-cancelled-390",
        "overview-390",
        "cluster-390",
    ] {
        let png = std::fs::read(screenshots().join(format!("{shot}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{shot}");
    }
}

#[cfg_attr(
    not(test_chromium),
    ignore = "needs Chromium: set WATCHER_TEST_CHROMEDRIVER=/usr/bin/chromedriver (.ci/run installs Debian's chromium and chromium-driver)"
)]
#[test]
fn an_open_page_reconnects_after_watcherd_restarts_and_catches_up() {
    // A fixed port, so that the restarted watcherd is where the page was.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = temp_dir("dashboard-restart");
    let config = write_config_with(&dir, "", "", "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    std::fs::write(&config, text).unwrap();
    let mut d = Daemon::start_with_config(&dir, config.clone(), None);
    let plan = d.recommend("dummy", "dummy", json!({"para1": 1}));
    let b = Browser::start();
    b.open(&format!("{}/dashboard/action_plans/{plan}", d.url));
    let live = || b.script("return document.getElementById('live').textContent");
    wait_for(Duration::from_secs(5), || (live() == "live").then_some(()));
    d.kill9();
    wait_for(Duration::from_secs(10), || {
        (live() == "reconnecting...").then_some(())
    });
    let d = Daemon::start_with_config(&dir, config, None);
    // Changed while the page is away: it shows once it is back, unreloaded.
    b.script("window.__same_page = true");
    assert_eq!(d.patch_state(&plan, "CANCELLED").0, 200);
    wait_for(Duration::from_secs(15), || {
        let state = b.script("return document.getElementById('plan-state').dataset.state");
        (state == "CANCELLED" && live() == "live").then_some(())
    });
    assert_eq!(b.script("return window.__same_page === true"), true);
    b.screenshot("plan-after-restart-1280");
}

#[test]
fn a_running_live_migration_shows_its_progress_in_the_plans_graph() {
    let dir = temp_dir("dashboard-progress");
    let scenario = scenario_file(&dir, "live_migration_secs = 20.0\nabort_secs = 0.2", "");
    let d = Daemon::start_in(&dir, "", Some(&scenario));
    let plan = d.actuator(json!([
        {"action_type": "migrate", "input_parameters": {"migration_type": "live", "resource_name": "web-1",
            "resource_id": "6a1e2b6c-8d1f-4a52-9a51-2c4f7f0a0001", "source_node": "compute-1", "destination_node": "compute-2"}}
    ]));
    d.start_plan(&plan);
    let page = wait_for(Duration::from_secs(10), || {
        let html = ureq::get(&format!(
            "{}/dashboard/action_plans/{plan}?part=main",
            d.url
        ))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
        // The node's second line: the cloud's progress, not just ONGOING.
        let svg = &html[html.find("<svg").unwrap()..html.find("</svg>").unwrap()];
        let line = svg.split("class=\"sub\"").nth(1)?;
        let line = &line[line.find('>')? + 1..line.find("</text>")?];
        (line.contains("compute-1 -&gt; compute-2") && line.contains('%')).then(|| html.clone())
    });
    assert!(
        page.contains("web-1 compute-1 -&gt; compute-2"),
        "the action's subject: {page}"
    );
    assert_eq!(d.patch_state(&plan, "CANCELLING").0, 200);
    d.wait_state(&plan, &["CANCELLED"]);
}
