//! Upstream Watcher 17's options as watcherd reads them: the ones that set
//! a setting of the same meaning ([`MAPPING`]), with oslo.config's type of
//! each, and the ones known but not used, with the reason ([`UNUSED`]).

use super::OsloValue;
use crate::config::ConfigError;

/// The types of oslo.config's options, converted as oslo.config does.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Str,
    Bool,
    Int,
    Float,
    /// `a, b, c`.
    List,
    /// `key:value, key:value` with integer values.
    IntDict,
}

impl Kind {
    pub(super) fn convert(
        self,
        v: &OsloValue,
        section: &str,
        option: &str,
    ) -> Result<toml::Value, ConfigError> {
        let s = v.value.trim();
        Ok(match self {
            Kind::Str => toml::Value::String(s.to_string()),
            Kind::Bool => toml::Value::Boolean(match s.to_ascii_lowercase().as_str() {
                "true" | "1" | "on" | "yes" => true,
                "false" | "0" | "off" | "no" => false,
                _ => return Err(v.invalid(section, option, "not a boolean (true or false)")),
            }),
            Kind::Int => toml::Value::Integer(
                s.parse()
                    .map_err(|_| v.invalid(section, option, "not an integer"))?,
            ),
            Kind::Float => toml::Value::Float(
                s.parse()
                    .map_err(|_| v.invalid(section, option, "not a number"))?,
            ),
            Kind::List => toml::Value::Array(
                s.split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(|x| toml::Value::String(x.into()))
                    .collect(),
            ),
            Kind::IntDict => {
                let mut t = toml::Table::new();
                for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let (k, n) = pair.split_once(':').ok_or_else(|| {
                        v.invalid(section, option, "not a dictionary (key:value, key:value)")
                    })?;
                    let n: i64 = n.trim().parse().map_err(|_| {
                        v.invalid(
                            section,
                            option,
                            &format!("the value of {} is not an integer", k.trim()),
                        )
                    })?;
                    t.insert(k.trim().to_string(), toml::Value::Integer(n));
                }
                toml::Value::Table(t)
            }
        })
    }
}

/// An option that sets one of watcherd's settings as it is.
pub(super) struct Mapped {
    pub section: &'static str,
    pub option: &'static str,
    pub to: &'static str,
    pub kind: Kind,
}

const fn m(section: &'static str, option: &'static str, to: &'static str, kind: Kind) -> Mapped {
    Mapped {
        section,
        option,
        to,
        kind,
    }
}

/// Upstream Watcher 17's options with a watcherd setting of the same meaning.
pub(super) const MAPPING: &[Mapped] = &[
    m("DEFAULT", "host", "host", Kind::Str),
    m(
        "DEFAULT",
        "notification_level",
        "notifications.level",
        Kind::Str,
    ),
    m(
        "api",
        "enable_webhooks_auth",
        "keystone.enable_webhooks_auth",
        Kind::Bool,
    ),
    m(
        "keystone_authtoken",
        "auth_url",
        "keystone.auth_url",
        Kind::Str,
    ),
    m(
        "keystone_authtoken",
        "username",
        "keystone.username",
        Kind::Str,
    ),
    m(
        "keystone_authtoken",
        "password",
        "keystone.password",
        Kind::Str,
    ),
    m(
        "keystone_authtoken",
        "project_name",
        "keystone.project_name",
        Kind::Str,
    ),
    m(
        "keystone_authtoken",
        "user_domain_name",
        "keystone.user_domain_name",
        Kind::Str,
    ),
    m(
        "keystone_authtoken",
        "project_domain_name",
        "keystone.project_domain_name",
        Kind::Str,
    ),
    m("keystone_authtoken", "cafile", "keystone.cafile", Kind::Str),
    m(
        "keystone_authtoken",
        "certfile",
        "keystone.certfile",
        Kind::Str,
    ),
    m(
        "keystone_authtoken",
        "keyfile",
        "keystone.keyfile",
        Kind::Str,
    ),
    m(
        "keystone_authtoken",
        "insecure",
        "keystone.insecure",
        Kind::Bool,
    ),
    m(
        "watcher_clients_auth",
        "auth_url",
        "watcher_clients_auth.auth_url",
        Kind::Str,
    ),
    m(
        "watcher_clients_auth",
        "username",
        "watcher_clients_auth.username",
        Kind::Str,
    ),
    m(
        "watcher_clients_auth",
        "password",
        "watcher_clients_auth.password",
        Kind::Str,
    ),
    m(
        "watcher_clients_auth",
        "project_name",
        "watcher_clients_auth.project_name",
        Kind::Str,
    ),
    m(
        "watcher_clients_auth",
        "user_domain_name",
        "watcher_clients_auth.user_domain_name",
        Kind::Str,
    ),
    m(
        "watcher_clients_auth",
        "project_domain_name",
        "watcher_clients_auth.project_domain_name",
        Kind::Str,
    ),
    m(
        "watcher_clients_auth",
        "application_credential_id",
        "watcher_clients_auth.application_credential_id",
        Kind::Str,
    ),
    m(
        "watcher_clients_auth",
        "application_credential_name",
        "watcher_clients_auth.application_credential_name",
        Kind::Str,
    ),
    m(
        "watcher_clients_auth",
        "application_credential_secret",
        "watcher_clients_auth.application_credential_secret",
        Kind::Str,
    ),
    m(
        "watcher_clients_auth",
        "cafile",
        "watcher_clients_auth.cafile",
        Kind::Str,
    ),
    m(
        "watcher_clients_auth",
        "certfile",
        "watcher_clients_auth.certfile",
        Kind::Str,
    ),
    m(
        "watcher_clients_auth",
        "keyfile",
        "watcher_clients_auth.keyfile",
        Kind::Str,
    ),
    m(
        "watcher_clients_auth",
        "insecure",
        "watcher_clients_auth.insecure",
        Kind::Bool,
    ),
    m(
        "oslo_messaging_notifications",
        "topics",
        "notifications.topics",
        Kind::List,
    ),
    m(
        "oslo_messaging_rabbit",
        "ssl",
        "notifications.ssl",
        Kind::Bool,
    ),
    m(
        "oslo_messaging_rabbit",
        "ssl_ca_file",
        "notifications.ssl_ca_file",
        Kind::Str,
    ),
    m(
        "oslo_messaging_rabbit",
        "ssl_cert_file",
        "notifications.ssl_cert_file",
        Kind::Str,
    ),
    m(
        "oslo_messaging_rabbit",
        "ssl_key_file",
        "notifications.ssl_key_file",
        Kind::Str,
    ),
    m(
        "oslo_messaging_rabbit",
        "heartbeat_timeout_threshold",
        "notifications.heartbeat_timeout_threshold",
        Kind::Int,
    ),
    m(
        "watcher_applier",
        "workers",
        "applier.max_concurrent_plans",
        Kind::Int,
    ),
    m(
        "watcher_workflow_engines.taskflow",
        "max_workers",
        "applier.limits.per_plan",
        Kind::Int,
    ),
    m(
        "watcher_decision_engine",
        "action_plan_expiry",
        "decision_engine.action_plan_expiry_hours",
        Kind::Float,
    ),
    m(
        "watcher_planners.weight",
        "weights",
        "decision_engine.planner.weights",
        Kind::IntDict,
    ),
    m(
        "watcher_planners.weight",
        "parallelization",
        "decision_engine.planner.parallelization",
        Kind::IntDict,
    ),
    m(
        "prometheus_client",
        "cafile",
        "decision_engine.prometheus_tls.cafile",
        Kind::Str,
    ),
    m(
        "prometheus_client",
        "client_cert",
        "decision_engine.prometheus_tls.certfile",
        Kind::Str,
    ),
    m(
        "prometheus_client",
        "client_key",
        "decision_engine.prometheus_tls.keyfile",
        Kind::Str,
    ),
];

/// Upstream options watcherd reads but does not use, and why.
pub(super) const UNUSED: &[(&str, &str, &str)] = &[
    (
        "api",
        "workers",
        "one watcherd process serves every request (asynchronous I/O)",
    ),
    (
        "api",
        "max_limit",
        "watcherd's page size cap is upstream's default, 1000",
    ),
    (
        "keystone_authtoken",
        "www_authenticate_uri",
        "watcherd validates tokens at auth_url",
    ),
    (
        "keystone_authtoken",
        "auth_type",
        "watcherd's service user logs in with a password",
    ),
    (
        "keystone_authtoken",
        "memcached_servers",
        "validated tokens are cached in watcherd's memory",
    ),
    (
        "keystone_authtoken",
        "region_name",
        "tokens are validated at auth_url, in no region",
    ),
    (
        "watcher_applier",
        "conductor_topic",
        "watcherd needs no RPC: processes share the database",
    ),
    (
        "watcher_applier",
        "publisher_id",
        "watcherd needs no RPC: processes share the database",
    ),
    (
        "watcher_applier",
        "workflow_engine",
        "watcherd's applier is its own engine",
    ),
    (
        "watcher_applier",
        "rollback_when_actionplan_failed",
        "deprecated upstream as non-working; see applier.rollback_on_cancel",
    ),
    (
        "watcher_decision_engine",
        "conductor_topic",
        "watcherd needs no RPC: processes share the database",
    ),
    (
        "watcher_decision_engine",
        "max_audit_workers",
        "audits run as asynchronous tasks, not worker threads",
    ),
    (
        "watcher_decision_engine",
        "max_general_workers",
        "audits run as asynchronous tasks, not worker threads",
    ),
    (
        "watcher_decision_engine",
        "continuous_audit_interval",
        "CONTINUOUS audits are woken at their next run time",
    ),
    (
        "watcher_decision_engine",
        "check_periodic_interval",
        "expiry runs every decision_engine.sweep_interval_secs",
    ),
    (
        "watcher_planner",
        "planner",
        "watcherd plans with the weight planner",
    ),
    (
        "nova",
        "migration_interval",
        "watcherd polls a migration every applier.poll_interval_ms",
    ),
    (
        "nova",
        "migration_max_retries",
        "watcherd bounds an action by applier.abort_deadline_secs",
    ),
    (
        "oslo_messaging_rabbit",
        "rabbit_ha_queues",
        "notifications are published, never consumed: no queue is declared",
    ),
    (
        "prometheus_client",
        "username",
        "watcherd sends no basic authentication to Prometheus; use client_cert and client_key",
    ),
    (
        "prometheus_client",
        "password",
        "watcherd sends no basic authentication to Prometheus; use client_cert and client_key",
    ),
    (
        "prometheus_client",
        "fqdn_label",
        "watcherd's queries use upstream's default labels, fqdn and resource",
    ),
    (
        "prometheus_client",
        "instance_uuid_label",
        "watcherd's queries use upstream's default labels, fqdn and resource",
    ),
    (
        "collector",
        "collector_plugins",
        "watcherd reads compute and storage from the cloud on every audit",
    ),
    (
        "watcher_cluster_data_model_collectors.compute",
        "period",
        "watcherd reads the cloud on every audit: no model to refresh",
    ),
    (
        "watcher_cluster_data_model_collectors.storage",
        "period",
        "watcherd reads the cloud on every audit: no model to refresh",
    ),
];
