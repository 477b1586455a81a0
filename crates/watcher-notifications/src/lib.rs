//! Notifications on RabbitMQ, as upstream Watcher sends them through
//! oslo.messaging (`messagingv2` driver): exchange `watcher`, routing keys
//! `<topic>.info` / `<topic>.error`, event types such as
//! `action_plan.cancel.start`, versioned `watcher_object` payloads.
//!
//! Nothing is lost and nothing blocks: every state change already writes a
//! `state_history` row in its own transaction, and that table is the
//! outbox. A relay thread renders the rows after its cursor into
//! notifications, publishes them with publisher confirms, and only then
//! moves the cursor. A broker that is down or stops answering delays the
//! notifications (in order) and never the state change; a crash between
//! publish and cursor update sends them again with the same `message_id`
//! (at least once).

pub mod amqp;
pub mod payload;

use amqp::{AmqpError, Broker, BrokerOptions, BrokerUrl};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use watcher_core::backoff::Backoff;
use watcher_store::Store;

/// `[notifications]` settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationConfig {
    /// oslo.messaging's transport URL, `rabbit://user:password@host:5672/`,
    /// or a cluster's `rabbit://u:p@host1:5672,u:p@host2:5672/` (failover
    /// to the next host when one fails); empty: no notifications.
    pub transport_url: String,
    /// TLS to the broker, as oslo's `[oslo_messaging_rabbit] ssl`.
    pub ssl: bool,
    /// CA bundle trusted besides the system's roots (`ssl_ca_file`).
    pub ssl_ca_file: Option<PathBuf>,
    /// Client certificate and key (`ssl_cert_file`, `ssl_key_file`).
    pub ssl_cert_file: Option<PathBuf>,
    pub ssl_key_file: Option<PathBuf>,
    /// oslo's `heartbeat_timeout_threshold`: seconds without traffic after
    /// which a connection is considered dead; 0 turns heartbeats off.
    pub heartbeat_timeout_threshold: u16,
    /// Routing key prefixes (oslo's `[oslo_messaging_notifications] topics`).
    pub topics: Vec<String>,
    /// `info` (everything), `error` (errors only) or empty (none): upstream's
    /// `notification_level`.
    pub level: String,
    /// How long the broker may take to answer (connect, confirm).
    pub timeout_secs: f64,
    /// Processes sharing a database elect one relay; this long without a
    /// renewal and another takes over.
    pub lease_secs: f64,
}

impl Default for NotificationConfig {
    fn default() -> Self {
        NotificationConfig {
            transport_url: String::new(),
            ssl: false,
            ssl_ca_file: None,
            ssl_cert_file: None,
            ssl_key_file: None,
            heartbeat_timeout_threshold: 60,
            topics: vec!["notifications".into()],
            level: "info".into(),
            timeout_secs: 10.0,
            lease_secs: 10.0,
        }
    }
}

impl NotificationConfig {
    /// The TLS settings, when `ssl` is on.
    pub fn tls(&self) -> Option<watcher_tls::TlsOptions> {
        self.ssl.then(|| watcher_tls::TlsOptions {
            cafile: self.ssl_ca_file.clone(),
            certfile: self.ssl_cert_file.clone(),
            keyfile: self.ssl_key_file.clone(),
            insecure: false,
        })
    }

    pub fn broker_options(&self) -> BrokerOptions {
        BrokerOptions {
            tls: self.tls(),
            heartbeat_secs: self.heartbeat_timeout_threshold,
            timeout: Duration::from_secs_f64(self.timeout_secs),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.transport_url.is_empty() && !self.level.is_empty() && !self.topics.is_empty()
    }

    pub fn check(&self) -> Result<(), String> {
        if !self.transport_url.is_empty() {
            BrokerUrl::parse(&self.transport_url)
                .map_err(|e| format!("notifications.transport_url: {e}"))?;
        }
        if let Some(tls) = self.tls() {
            tls.check("notifications.ssl_ca_file/ssl_cert_file/ssl_key_file")
                .map_err(|e| e.to_string())?;
        } else if self.ssl_ca_file.is_some() || self.ssl_cert_file.is_some() {
            return Err(
                "notifications.ssl_ca_file / ssl_cert_file are set but notifications.ssl is false"
                    .into(),
            );
        }
        match self.level.as_str() {
            "" | "info" | "error" => {}
            other => {
                return Err(format!(
                    "notifications.level '{other}' is unknown; use 'info', 'error' or '' (off)"
                ))
            }
        }
        if !(self.timeout_secs > 0.0 && self.timeout_secs.is_finite()) {
            return Err("notifications.timeout_secs must be a positive number of seconds".into());
        }
        if !(self.lease_secs > 0.0 && self.lease_secs.is_finite()) {
            return Err("notifications.lease_secs must be a positive number of seconds".into());
        }
        Ok(())
    }
}

/// The relay: history rows after the cursor, to the broker.
pub struct Relay {
    store: Store,
    config: NotificationConfig,
    url: BrokerUrl,
    options: BrokerOptions,
    host: String,
    publisher_id: String,
    shutdown: CancellationToken,
    /// This database's message-id prefix, kept with the cursor when the
    /// cursor is created.
    nonce: i64,
}

/// How many history rows one round publishes.
const BATCH: usize = 500;
/// A round ends after the row that brings it to this many messages: a
/// plan's creation row gives one per action (10,000 for a big plan), and
/// a round's messages are held in memory until the broker confirms them.
const ROUND_MESSAGES: usize = 2_000;

impl Relay {
    pub fn new(
        store: Store,
        config: NotificationConfig,
        host: &str,
        shutdown: CancellationToken,
    ) -> Result<Relay, AmqpError> {
        Ok(Relay {
            url: BrokerUrl::parse(&config.transport_url)?,
            options: config.broker_options(),
            store,
            config,
            host: host.to_string(),
            publisher_id: format!("infra-optim:{host}"),
            shutdown,
            nonce: uuid::Uuid::new_v4().as_u64_pair().0 as i64,
        })
    }

    /// Creates the cursor now if it does not exist yet, at the newest
    /// history row: called before the API takes its first request, so that
    /// every change made after watcherd started is notified (created by
    /// the relay's task instead, a change made in the first milliseconds
    /// could fall before it). History from before notifications were
    /// enabled is not sent.
    pub async fn start_cursor(&self) -> Result<(), watcher_store::StoreError> {
        self.store.notification_cursor(self.nonce).await.map(drop)
    }

    /// Runs until shutdown: wakes on every store event and at least once a
    /// second; on a broker error, backs off (up to 30 s) and retries.
    // Long because the relay's loop keeps its connection, cursor and backoff as locals
    // across the select's arms; split, they would travel as a struct of their own for no
    // reader's gain.
    pub async fn run(self) {
        let mut events = self.store.subscribe();
        info!(
            transport_url = %watcher_core::secret::redact_url(&self.config.transport_url),
            ssl = self.config.ssl,
            "notifications go to the broker"
        );
        let nonce = self.nonce;
        let mut connection: Option<Broker> = None;
        // The host to try first: after a failure, the next one (failover).
        let mut next_host = 0;
        // Failures of the database or the broker: the relay waits longer
        // after each (0.5 s doubling to 30 s), and says the same once a minute.
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let now = || tokio::time::Instant::now().into_std();
        // Where publishing stands (position, message-id nonce): kept here
        // while this relay leads; the lease is renewed every third of its
        // length, and the position re-read whenever leadership is (re)taken.
        let mut cursor: Option<(i64, i64)> = None;
        let mut renewed: Option<std::time::Instant> = None;
        let lease = Duration::from_secs_f64(self.config.lease_secs);
        loop {
            if cursor.is_none() {
                match self.store.notification_cursor(nonce).await {
                    Ok(c) => cursor = Some(c),
                    Err(e) => {
                        if let Some(held_back) = backoff.failed(&e.to_string(), now()).log {
                            warn!(error = %e, not_logged = held_back, "notifications: cannot read the cursor");
                        }
                    }
                }
            }
            if renewed.is_none_or(|t| t.elapsed() >= lease / 3) {
                let until =
                    chrono::Utc::now() + chrono::Duration::from_std(lease).unwrap_or_default();
                match self
                    .store
                    .lead_notifications(self.host.clone(), until.timestamp_micros())
                    .await
                {
                    Ok(Some(position)) => {
                        if renewed.is_none() {
                            info!("this process now relays the notifications");
                        }
                        renewed = Some(std::time::Instant::now());
                        if let Some(c) = cursor.as_mut() {
                            c.0 = position;
                        }
                    }
                    Ok(None) => {
                        // Another process relays them.
                        renewed = None;
                        tokio::select! {
                            _ = tokio::time::sleep(lease / 3) => continue,
                            _ = self.shutdown.cancelled() => break,
                        }
                    }
                    Err(e) => {
                        if let Some(held_back) = backoff.failed(&e.to_string(), now()).log {
                            warn!(error = %e, not_logged = held_back, "notifications: cannot take the relay lease");
                        }
                    }
                }
            }
            let (Some(position), Some(_)) = (cursor.as_mut(), renewed) else {
                let wait = backoff.remaining(now()).max(Duration::from_millis(100));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => continue,
                    _ = self.shutdown.cancelled() => break,
                }
            };
            match self.round(&mut connection, next_host, position).await {
                Ok(more) => {
                    if let Some(n) = backoff.succeeded() {
                        info!(failures = n, "notifications: publishing again");
                    }
                    if more {
                        continue;
                    }
                }
                Err(e) => {
                    let r = backoff.failed(&e.to_string(), now());
                    if let Some(held_back) = r.log {
                        warn!(error = %e, not_logged = held_back, retry_in = ?r.wait, "notifications: broker unavailable; state changes go on and their notifications wait");
                    }
                    if let Some(broken) = connection.take() {
                        next_host = broken.index() + 1;
                        tokio::spawn(broken.close());
                    }
                    // Check the lease again before the next round.
                    renewed = None;
                    tokio::select! {
                        _ = tokio::time::sleep(r.wait) => {}
                        _ = self.shutdown.cancelled() => break,
                    }
                    continue;
                }
            }
            tokio::select! {
                ev = events.recv() => if let Err(tokio::sync::broadcast::error::RecvError::Closed) = ev { break },
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = self.shutdown.cancelled() => break,
            }
            // A burst of events makes one round.
            while events.try_recv().is_ok() {}
        }
        info!("notification relay stopped");
    }

    /// Publishes the next batch; true when there may be more right away.
    // Long because one batch's read, render, publish and cursor update must happen in
    // that order for at-least-once delivery.
    async fn round(
        &self,
        connection: &mut Option<Broker>,
        first_host: usize,
        cursor: &mut (i64, i64),
    ) -> Result<bool, String> {
        let (last, nonce) = *cursor;
        let rows = self
            .store
            .history_after(last, BATCH)
            .await
            .map_err(|e| e.to_string())?;
        if rows.is_empty() {
            return Ok(false);
        }
        let (mut messages, mut newest, mut cut_short) = (vec![], last, false);
        for row in &rows {
            if messages.len() >= ROUND_MESSAGES {
                cut_short = true;
                break;
            }
            newest = row.seq;
            let rendered = payload::render(&self.store, row, nonce, &self.publisher_id)
                .await
                .map_err(|e| e.to_string())?;
            for n in rendered {
                if self.config.level == "error" && n.priority != "ERROR" {
                    continue;
                }
                messages.push(n);
            }
        }
        // A new connection declares the exchange and queues first, as
        // oslo's notifier does (a broker restarted has lost them).
        let broker = match connection {
            Some(b) => b,
            None => {
                // Kept even if declaring fails: the error path closes it and
                // moves on to the next host.
                let b = connection.insert(
                    Broker::connect(&self.url, &self.options, first_host)
                        .await
                        .map_err(|e| e.to_string())?,
                );
                for topic in &self.config.topics {
                    for priority in ["info", "error"] {
                        b.declare("watcher", &format!("{topic}.{priority}"))
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                }
                info!(broker = b.addr(), "notifications: connected to the broker");
                b
            }
        };
        for m in &messages {
            let body = m.envelope();
            for topic in &self.config.topics {
                broker
                    .publish(
                        "watcher",
                        &format!("{topic}.{}", m.priority.to_lowercase()),
                        body.as_bytes(),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        broker.wait_confirms().await.map_err(|e| e.to_string())?;
        let sent = messages.len();
        let still_leading = self
            .store
            .advance_notification_cursor(self.host.clone(), newest)
            .await
            .map_err(|e| e.to_string())?;
        if !still_leading {
            return Err("the relay lease was taken over by another process".into());
        }
        cursor.0 = newest;
        debug!(sent, up_to = newest, "notifications published");
        Ok(cut_short || rows.len() == BATCH)
    }
}
