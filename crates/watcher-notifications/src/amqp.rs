//! The broker side of notifications, on the `amqprs` client: an
//! oslo.messaging transport URL with one or more hosts, TLS as oslo's
//! `[oslo_messaging_rabbit] ssl*` options configure it, heartbeats, and
//! publisher confirms.
//!
//! [`Broker::connect`] tries the hosts of the URL in turn, starting with
//! the one after the host that failed last (oslo's round-robin failover),
//! so a cluster that loses a node keeps receiving notifications. Every
//! step has a timeout: a broker that stops answering is an error after
//! `timeout`, never a hang (upstream waits on a confirm forever).

use amqprs::callbacks::{ChannelCallback, DefaultConnectionCallback};
use amqprs::channel::{
    BasicGetArguments, BasicPublishArguments, Channel, ConfirmSelectArguments,
    ExchangeDeclareArguments, QueueBindArguments, QueueDeclareArguments, QueueDeleteArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::tls::TlsAdaptor;
use amqprs::{Ack, BasicProperties, Cancel, CloseChannel, Nack, Return};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use watcher_core::secret::percent_decode;
use watcher_core::Secret;
use watcher_tls::TlsOptions;

#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    #[error("cannot reach the broker at {addr}: {message}")]
    Connect { addr: String, message: String },
    #[error("no broker of transport_url answered: {0}")]
    NoBroker(String),
    #[error("broker {addr}: {message}")]
    Broker { addr: String, message: String },
    #[error("broker {addr} did not answer {what} within {timeout:?}")]
    Timeout {
        addr: String,
        what: &'static str,
        timeout: Duration,
    },
    #[error("broker {addr} refused {count} message(s) (basic.nack)")]
    Nacked { addr: String, count: u64 },
    #[error("invalid transport_url {0}: expected rabbit://USER:PASSWORD@HOST:PORT[,USER:PASSWORD@HOST2:PORT]/[VHOST]")]
    Url(String),
    #[error("notifications TLS: {0}")]
    Tls(String),
}

/// One host of a transport URL.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerHost {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Secret,
}

impl BrokerHost {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// An oslo.messaging transport URL:
/// `rabbit://user:pass@host1:5672,user:pass@host2:5672/vhost`.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerUrl {
    pub hosts: Vec<BrokerHost>,
    pub vhost: String,
}

impl BrokerUrl {
    pub fn parse(url: &str) -> Result<BrokerUrl, AmqpError> {
        let bad = || AmqpError::Url(watcher_core::secret::redact_url(url));
        let rest = url.strip_prefix("rabbit://").ok_or_else(bad)?;
        let rest = rest.split_once('?').map_or(rest, |(r, _)| r);
        let (hosts, vhost) = rest.split_once('/').unwrap_or((rest, ""));
        let mut parsed = vec![];
        for entry in hosts.split(',') {
            let (creds, hostport) = entry.rsplit_once('@').unwrap_or(("guest:guest", entry));
            let (user, password) = creds.split_once(':').unwrap_or((creds, ""));
            let (host, port) = match hostport.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().map_err(|_| bad())?),
                None => (hostport, 5672),
            };
            if host.is_empty() {
                return Err(bad());
            }
            parsed.push(BrokerHost {
                host: host.trim_matches(['[', ']']).to_string(),
                port,
                user: percent_decode(user),
                password: percent_decode(password).into(),
            });
        }
        Ok(BrokerUrl {
            hosts: parsed,
            vhost: if vhost.is_empty() {
                "/".into()
            } else {
                percent_decode(vhost)
            },
        })
    }
}

/// How to reach the broker besides its URL.
#[derive(Debug, Clone, Default)]
pub struct BrokerOptions {
    /// TLS settings when `ssl` is on.
    pub tls: Option<TlsOptions>,
    /// Seconds without traffic after which either side considers the
    /// connection dead (oslo's `heartbeat_timeout_threshold`); 0: none.
    pub heartbeat_secs: u16,
    /// Longest wait of any step (connect, declare, confirm).
    pub timeout: Duration,
}

/// A confirm the broker sent: the delivery tag, whether it covers every
/// tag up to it, and whether it is an ack (or a nack).
type Confirm = (u64, bool, bool);

/// Forwards the channel's confirms to the publisher.
struct Confirms(mpsc::UnboundedSender<Confirm>);

#[async_trait::async_trait]
impl ChannelCallback for Confirms {
    async fn close(
        &mut self,
        _: &Channel,
        close: CloseChannel,
    ) -> Result<(), amqprs::error::Error> {
        tracing::warn!(reason = %close, "the broker closed the notification channel");
        Ok(())
    }
    async fn cancel(&mut self, _: &Channel, _: Cancel) -> Result<(), amqprs::error::Error> {
        Ok(())
    }
    async fn flow(&mut self, _: &Channel, active: bool) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _: &Channel, ack: Ack) {
        let _ = self.0.send((ack.delivery_tag(), ack.mutiple(), true));
    }
    async fn publish_nack(&mut self, _: &Channel, nack: Nack) {
        let _ = self.0.send((nack.delivery_tag(), nack.multiple(), false));
    }
    async fn publish_return(&mut self, _: &Channel, _: Return, _: BasicProperties, _: Vec<u8>) {}
}

/// A connection to one broker of the URL, with a channel in confirm mode.
pub struct Broker {
    connection: Connection,
    channel: Channel,
    confirms: mpsc::UnboundedReceiver<Confirm>,
    published: u64,
    acked: u64,
    /// Index in the URL's hosts.
    index: usize,
    addr: String,
    timeout: Duration,
}

impl Broker {
    /// Connects to the first host, from `start` on in the URL's order,
    /// that answers. The error names every host tried.
    pub async fn connect(
        url: &BrokerUrl,
        options: &BrokerOptions,
        start: usize,
    ) -> Result<Broker, AmqpError> {
        let tls = match &options.tls {
            Some(t) => Some(
                t.client_config("notifications.ssl_*")
                    .map_err(|e| AmqpError::Tls(e.to_string()))?,
            ),
            None => None,
        };
        let mut errors = vec![];
        for k in 0..url.hosts.len() {
            let index = (start + k) % url.hosts.len();
            match Broker::connect_one(url, index, options, tls.clone()).await {
                Ok(b) => return Ok(b),
                Err(e) => errors.push(e.to_string()),
            }
        }
        Err(AmqpError::NoBroker(errors.join("; ")))
    }

    async fn connect_one(
        url: &BrokerUrl,
        index: usize,
        options: &BrokerOptions,
        tls: Option<Arc<watcher_tls::rustls::ClientConfig>>,
    ) -> Result<Broker, AmqpError> {
        let h = &url.hosts[index];
        let addr = h.addr();
        let timeout = options.timeout;
        let mut args = OpenConnectionArguments::new(&h.host, h.port, &h.user, h.password.expose());
        args.virtual_host(&url.vhost)
            .heartbeat(options.heartbeat_secs)
            .connection_name("watcherd notifications");
        if let Some(config) = tls {
            args.tls_adaptor(TlsAdaptor::new(
                tokio_rustls::TlsConnector::from(config),
                h.host.clone(),
            ));
        }
        let connect_err = |e: amqprs::error::Error| AmqpError::Connect {
            addr: addr.clone(),
            message: watcher_core::secret::redact_urls_in(&e.to_string()),
        };
        let connection = within(&addr, "the connection", timeout, Connection::open(&args))
            .await?
            .map_err(connect_err)?;
        connection
            .register_callback(DefaultConnectionCallback)
            .await
            .map_err(connect_err)?;
        let channel = within(
            &addr,
            "channel.open",
            timeout,
            connection.open_channel(None),
        )
        .await?
        .map_err(connect_err)?;
        let (tx, confirms) = mpsc::unbounded_channel();
        channel
            .register_callback(Confirms(tx))
            .await
            .map_err(connect_err)?;
        within(
            &addr,
            "confirm.select",
            timeout,
            channel.confirm_select(ConfirmSelectArguments::new(false)),
        )
        .await?
        .map_err(connect_err)?;
        Ok(Broker {
            connection,
            channel,
            confirms,
            published: 0,
            acked: 0,
            index,
            addr,
            timeout,
        })
    }

    /// Which host of the URL this is connected to.
    pub fn index(&self) -> usize {
        self.index
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn error(&self, e: amqprs::error::Error) -> AmqpError {
        AmqpError::Broker {
            addr: self.addr.clone(),
            message: e.to_string(),
        }
    }

    /// Declares the topic exchange and the queue of `routing_key` bound to
    /// it, as oslo.messaging's notifier does (neither durable).
    pub async fn declare(&self, exchange: &str, routing_key: &str) -> Result<(), AmqpError> {
        let mut x = ExchangeDeclareArguments::new(exchange, "topic");
        x.durable = false;
        within(
            &self.addr,
            "exchange.declare",
            self.timeout,
            self.channel.exchange_declare(x),
        )
        .await?
        .map_err(|e| self.error(e))?;
        within(
            &self.addr,
            "queue.declare",
            self.timeout,
            self.channel
                .queue_declare(QueueDeclareArguments::new(routing_key)),
        )
        .await?
        .map_err(|e| self.error(e))?;
        within(
            &self.addr,
            "queue.bind",
            self.timeout,
            self.channel
                .queue_bind(QueueBindArguments::new(routing_key, exchange, routing_key)),
        )
        .await?
        .map_err(|e| self.error(e))
    }

    /// Publishes one JSON message (persistent, as oslo sends them).
    pub async fn publish(
        &mut self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
    ) -> Result<(), AmqpError> {
        let properties = BasicProperties::default()
            .with_content_type("application/json")
            .with_content_encoding("utf-8")
            .with_delivery_mode(amqprs::DELIVERY_MODE_PERSISTENT)
            .finish();
        within(
            &self.addr,
            "basic.publish",
            self.timeout,
            self.channel.basic_publish(
                properties,
                body.to_vec(),
                BasicPublishArguments::new(exchange, routing_key),
            ),
        )
        .await?
        .map_err(|e| self.error(e))?;
        self.published += 1;
        Ok(())
    }

    /// Waits until the broker has acknowledged everything published.
    pub async fn wait_confirms(&mut self) -> Result<(), AmqpError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        while self.acked < self.published {
            let confirm = tokio::time::timeout_at(deadline, self.confirms.recv()).await;
            match confirm {
                Ok(Some((tag, multiple, true))) => {
                    self.acked = if multiple { tag } else { self.acked.max(tag) };
                }
                Ok(Some((tag, multiple, false))) => {
                    return Err(AmqpError::Nacked {
                        addr: self.addr.clone(),
                        count: if multiple { tag - self.acked } else { 1 },
                    })
                }
                Ok(None) => {
                    return Err(AmqpError::Broker {
                        addr: self.addr.clone(),
                        message: "the channel closed before the broker confirmed".into(),
                    })
                }
                Err(_) => {
                    return Err(AmqpError::Timeout {
                        addr: self.addr.clone(),
                        what: "the publisher confirms",
                        timeout: self.timeout,
                    })
                }
            }
        }
        Ok(())
    }

    /// Takes one message off `queue` (basic.get, acknowledged); None when
    /// empty. For tests, which read what was published.
    pub async fn get(&self, queue: &str) -> Result<Option<Vec<u8>>, AmqpError> {
        let got = within(
            &self.addr,
            "basic.get",
            self.timeout,
            self.channel
                .basic_get(BasicGetArguments::new(queue).no_ack(true).finish()),
        )
        .await?
        .map_err(|e| self.error(e))?;
        Ok(got.map(|(_, _, body)| body))
    }

    /// Deletes a queue (tests clean up after themselves).
    pub async fn delete_queue(&self, queue: &str) -> Result<(), AmqpError> {
        within(
            &self.addr,
            "queue.delete",
            self.timeout,
            self.channel.queue_delete(QueueDeleteArguments::new(queue)),
        )
        .await?
        .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Closes the connection politely (a crash needs no call: the broker
    /// notices the socket or the missed heartbeats).
    pub async fn close(self) {
        let _ = tokio::time::timeout(self.timeout, self.connection.close()).await;
    }
}

async fn within<T>(
    addr: &str,
    what: &'static str,
    timeout: Duration,
    f: impl Future<Output = T>,
) -> Result<T, AmqpError> {
    tokio::time::timeout(timeout, f)
        .await
        .map_err(|_| AmqpError::Timeout {
            addr: addr.to_string(),
            what,
            timeout,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_urls_are_read_as_oslo_messaging_reads_them() {
        let u = BrokerUrl::parse(
            "rabbit://watcher:s%40cret@10.0.0.1:5671,other:pw@[::1]:5672/openstack?ssl=1",
        )
        .unwrap();
        assert_eq!(u.hosts.len(), 2);
        assert_eq!(u.hosts[0].host, "10.0.0.1");
        assert_eq!(u.hosts[0].port, 5671);
        assert_eq!(u.hosts[0].password.expose(), "s@cret");
        assert_eq!(u.hosts[1].user, "other");
        assert_eq!(u.hosts[1].host, "::1");
        assert_eq!(u.vhost, "openstack");
        let d = BrokerUrl::parse("rabbit://h").unwrap();
        assert_eq!((d.hosts[0].port, d.vhost.as_str()), (5672, "/"));
        assert_eq!(d.hosts[0].user, "guest");
        let e = BrokerUrl::parse("amqp://u:topsecret@h:x/")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("topsecret"), "{e}");
        assert!(BrokerUrl::parse("rabbit://u:p@h:notaport/").is_err());
        assert!(BrokerUrl::parse("rabbit://u:p@:5672/").is_err());
    }
}
