//! Credentials from clouds.yaml and OS_* variables, version discovery
//! and catalog lookup.

use super::credentials::*;
use super::session::*;
use serde_json::json;
use std::path::Path;

#[test]
fn clouds_yaml_entries_are_read_with_defaults() {
    let text = r#"
# my clouds
clouds:
  other:
    auth:
      auth_url: http://elsewhere:5000/v3
  mini:
    region_name: RegionOne
    interface: internal   # not public
    auth:
      auth_url: "http://127.0.0.1:5000/v3"
      username: admin
      password: 'se:cret'
      project_name: admin
"#;
    let c = Credentials::from_clouds_yaml(text, "mini").unwrap();
    assert_eq!(c.auth_url, "http://127.0.0.1:5000/v3");
    assert_eq!(c.password.expose(), "se:cret");
    assert_eq!(c.user_domain_name, "Default");
    assert_eq!(c.region_name.as_deref(), Some("RegionOne"));
    assert_eq!(c.interface, "internal");
    let err = Credentials::from_clouds_yaml(text, "other").unwrap_err();
    assert!(err.contains("auth.username"), "{err}");
    let err = Credentials::from_clouds_yaml(text, "nope").unwrap_err();
    assert!(err.contains("no cloud named 'nope'"), "{err}");
}

#[test]
fn clouds_yaml_application_credentials_and_tls_are_read() {
    let text = r#"
clouds:
  prod:
    auth_type: v3applicationcredential
    cacert: ca.pem
    cert: /etc/watcher/client.pem
    key: /etc/watcher/client.key
    auth:
      auth_url: https://keystone.example:5000
      application_credential_id: 21dced0fd20347869b93710d2b98aae0
      application_credential_secret: s3cr3t
  lab:
    verify: false
    auth:
      auth_url: https://lab:5000/v3
      username: u
      password: p
      project_name: x
"#;
    let c = Credentials::from_clouds_yaml(text, "prod").unwrap();
    assert!(c.uses_application_credential());
    assert_eq!(c.application_credential_secret.expose(), "s3cr3t");
    assert_eq!(c.tls.cafile.as_deref(), Some(Path::new("ca.pem")));
    assert_eq!(
        c.tls.keyfile.as_deref(),
        Some(Path::new("/etc/watcher/client.key"))
    );
    assert!(!c.tls.insecure);
    let lab = Credentials::from_clouds_yaml(text, "lab").unwrap();
    assert!(lab.tls.insecure);
    assert!(!format!("{lab:?}").contains("password: \"p\""));
}

#[test]
fn token_auth_and_ids_scope_the_login_as_asked() {
    let text = r#"
clouds:
  tok:
    auth_type: token
    auth:
      auth_url: http://ks:5000/v3
      token: gAAAA-given
      project_id: 0123abcd
"#;
    let c = Credentials::from_clouds_yaml(text, "tok").unwrap();
    assert_eq!(c.token.expose(), "gAAAA-given");
    c.check().unwrap();
    let body = Session::new(c).unwrap().login_body();
    assert_eq!(body["auth"]["identity"]["methods"], json!(["token"]));
    assert_eq!(body["auth"]["identity"]["token"]["id"], "gAAAA-given");
    assert_eq!(
        body["auth"]["scope"],
        json!({"project": {"id": "0123abcd"}})
    );

    let c = Credentials {
        auth_url: "http://ks:5000/v3".into(),
        username: "u".into(),
        password: "p".into(),
        project_name: "demo".into(),
        user_domain_id: "default".into(),
        project_domain_id: "default".into(),
        source: "test".into(),
        ..Default::default()
    };
    let body = Session::new(c).unwrap().login_body();
    assert_eq!(
        body["auth"]["identity"]["password"]["user"]["domain"],
        json!({"id": "default"})
    );
    assert_eq!(
        body["auth"]["scope"]["project"],
        json!({"name": "demo", "domain": {"id": "default"}})
    );
    let missing = Credentials {
        token: "t".into(),
        auth_url: "http://ks:5000/v3".into(),
        source: "test".into(),
        ..Default::default()
    };
    let e = missing.check().unwrap_err().to_string();
    assert!(e.contains("project_name (or project_id)"), "{e}");
}

#[test]
fn the_v3_url_is_found_in_keystones_version_documents() {
    let root = json!({"versions": {"values": [
        {"id": "v2.0", "status": "deprecated", "links": [{"rel": "self", "href": "https://ks/v2.0/"}]},
        {"id": "v3.14", "status": "stable", "links": [{"rel": "self", "href": "https://ks/v3/"}]}
    ]}});
    assert_eq!(v3_from_versions(&root).as_deref(), Some("https://ks/v3"));
    let single = json!({"version": {"id": "v3.14", "status": "stable",
        "links": [{"rel": "self", "href": "https://ks/identity/v3/"}]}});
    assert_eq!(
        v3_from_versions(&single).as_deref(),
        Some("https://ks/identity/v3")
    );
    assert_eq!(v3_from_versions(&json!({"error": "x"})), None);
    assert_eq!(
        on_origin_of("https://keystone.example:5001", "http://10.0.0.3:5000/v3"),
        "https://keystone.example:5001/v3"
    );
    assert_eq!(
        on_origin_of("https://cloud/identity/", "http://internal/identity/v3"),
        "https://cloud/identity/v3"
    );
}

#[test]
fn missing_credentials_are_named_with_their_source() {
    let section = ClientsAuth {
        auth_url: "https://ks:5000".into(),
        username: "watcher".into(),
        ..Default::default()
    };
    let e = section.credentials().unwrap_err().to_string();
    assert_eq!(e, "watcher_clients_auth: password is not set");
    let e = ClientsAuth {
        auth_url: "keystone:5000".into(),
        ..section.clone()
    }
    .credentials()
    .unwrap_err()
    .to_string();
    assert!(e.contains("not an http:// or https:// URL"), "{e}");
    let ok = ClientsAuth {
        auth_type: "v3applicationcredential".into(),
        application_credential_id: "abc".into(),
        application_credential_secret: "s".into(),
        ..section
    };
    assert!(ok.credentials().unwrap().uses_application_credential());
}

#[test]
fn endpoints_are_found_by_type_interface_and_region() {
    let catalog = json!([
        {"type": "compute", "endpoints": [
            {"interface": "admin", "region": "RegionOne", "url": "http://admin:8774/v2.1"},
            {"interface": "public", "region": "RegionTwo", "url": "http://two:8774/v2.1"},
            {"interface": "public", "region": "RegionOne", "url": "http://one:8774/v2.1/"}]},
        {"type": "identity", "endpoints": []}
    ]);
    assert_eq!(
        find_endpoint(&catalog, "compute", "public", Some("RegionOne")).unwrap(),
        "http://one:8774/v2.1"
    );
    let err = find_endpoint(&catalog, "block-storage", "public", None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the catalog has no public endpoint of type block-storage"
    );
}
