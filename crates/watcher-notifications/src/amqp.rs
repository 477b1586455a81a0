//! Just enough AMQP 0-9-1 to publish notifications as oslo.messaging's
//! rabbit driver does, with publisher confirms: connect (PLAIN), declare
//! the topic exchange and the default queue of each routing key, publish,
//! wait for the broker's acks. Blocking, with a timeout on every read, so a
//! broker that stops answering is an error after `timeout`, never a hang
//! (upstream waits on a confirm forever). `get` (basic.get) exists for the
//! tests, which read what was published.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    #[error("cannot reach the broker at {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("broker connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("broker closed the {what}: {code} {text}")]
    Closed {
        what: &'static str,
        code: u16,
        text: String,
    },
    #[error("broker refused {0} message(s) (basic.nack)")]
    Nacked(u64),
    #[error("unexpected AMQP frame: {0}")]
    Protocol(String),
    #[error("invalid transport_url {0:?}: expected rabbit://user:password@host:port/[vhost]")]
    Url(String),
}

/// Where and as whom to connect, from an oslo.messaging transport URL
/// (`rabbit://user:pass@host:port/vhost`; the first host only).
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerUrl {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub vhost: String,
}

impl BrokerUrl {
    pub fn parse(url: &str) -> Result<BrokerUrl, AmqpError> {
        let bad = || AmqpError::Url(url.to_string());
        let rest = url.strip_prefix("rabbit://").ok_or_else(bad)?;
        let (hosts, vhost) = rest.split_once('/').unwrap_or((rest, ""));
        let first = hosts.split(',').next().ok_or_else(bad)?;
        let (creds, hostport) = first.rsplit_once('@').unwrap_or(("guest:guest", first));
        let (user, password) = creds.split_once(':').unwrap_or((creds, ""));
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| bad())?),
            None => (hostport, 5672),
        };
        if host.is_empty() {
            return Err(bad());
        }
        let decode = |s: &str| {
            s.replace("%2F", "/")
                .replace("%2f", "/")
                .replace("%40", "@")
        };
        Ok(BrokerUrl {
            host: host.to_string(),
            port,
            user: decode(user),
            password: decode(password),
            vhost: if vhost.is_empty() {
                "/".into()
            } else {
                decode(vhost)
            },
        })
    }
}

const FRAME_METHOD: u8 = 1;
const FRAME_HEADER: u8 = 2;
const FRAME_BODY: u8 = 3;
const FRAME_HEARTBEAT: u8 = 8;
const FRAME_END: u8 = 0xCE;
const CHANNEL: u16 = 1;

/// Method arguments, written in AMQP's encodings.
#[derive(Default)]
struct Args(Vec<u8>);

impl Args {
    fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn short(mut self, s: &str) -> Self {
        let b = &s.as_bytes()[..s.len().min(255)];
        self.0.push(b.len() as u8);
        self.0.extend_from_slice(b);
        self
    }
    fn long(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(&(b.len() as u32).to_be_bytes());
        self.0.extend_from_slice(b);
        self
    }
    fn empty_table(self) -> Self {
        self.u32(0)
    }
}

/// A method frame as read: class, method, and its arguments.
struct Method {
    class: u16,
    method: u16,
    args: Vec<u8>,
}

/// Reads AMQP encodings from a method's arguments.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], AmqpError> {
        if self.0.len() < n {
            return Err(AmqpError::Protocol("truncated method arguments".into()));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u16(&mut self) -> Result<u16, AmqpError> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32, AmqpError> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, AmqpError> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn short(&mut self) -> Result<String, AmqpError> {
        let n = self.take(1)?[0] as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
}

pub struct Connection {
    stream: TcpStream,
    frame_max: u32,
    /// Delivery tag of the last message published on the channel.
    published: u64,
    /// Highest delivery tag the broker has acknowledged.
    acked: u64,
}

impl Connection {
    /// Connects, logs in, opens a channel in confirm mode.
    pub fn open(url: &BrokerUrl, timeout: Duration) -> Result<Connection, AmqpError> {
        let addr = format!("{}:{}", url.host, url.port);
        let connect_err = |source| AmqpError::Connect {
            addr: addr.clone(),
            source,
        };
        let sockaddr = std::net::ToSocketAddrs::to_socket_addrs(&addr)
            .map_err(connect_err)?
            .next()
            .ok_or_else(|| connect_err(std::io::Error::other("no address")))?;
        let stream = TcpStream::connect_timeout(&sockaddr, timeout).map_err(connect_err)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        let mut c = Connection {
            stream,
            frame_max: 131_072,
            published: 0,
            acked: 0,
        };
        c.stream.write_all(b"AMQP\x00\x00\x09\x01")?;
        c.expect(0, 10, 10)?; // connection.start
        let mut response = vec![0];
        response.extend_from_slice(url.user.as_bytes());
        response.push(0);
        response.extend_from_slice(url.password.as_bytes());
        c.send_method(
            0,
            10,
            11,
            Args::default()
                .empty_table()
                .short("PLAIN")
                .long(&response)
                .short("en_US"),
        )?;
        let tune = c.expect(0, 10, 30)?;
        let mut t = Cursor(&tune.args);
        let channel_max = t.u16()?;
        let frame_max = t.u32()?;
        if frame_max != 0 {
            c.frame_max = c.frame_max.min(frame_max);
        }
        // No heartbeats: every read has a timeout instead.
        c.send_method(
            0,
            10,
            31,
            Args::default()
                .u16(channel_max.clamp(1, 2))
                .u32(c.frame_max)
                .u16(0),
        )?;
        c.send_method(0, 10, 40, Args::default().short(&url.vhost).short("").u8(0))?;
        c.expect(0, 10, 41)?;
        c.send_method(CHANNEL, 20, 10, Args::default().short(""))?;
        c.expect(CHANNEL, 20, 11)?;
        c.send_method(CHANNEL, 85, 10, Args::default().u8(0))?; // confirm.select
        c.expect(CHANNEL, 85, 11)?;
        Ok(c)
    }

    /// Declares the topic exchange, and a queue named after the routing key
    /// bound to it (as oslo.messaging's notifier does, so that nothing is
    /// lost before a consumer comes): neither durable nor auto-deleted,
    /// oslo's defaults, which must match for a listener to declare them too.
    pub fn declare(&mut self, exchange: &str, routing_key: &str) -> Result<(), AmqpError> {
        self.send_method(
            CHANNEL,
            40,
            10,
            Args::default()
                .u16(0)
                .short(exchange)
                .short("topic")
                .u8(0)
                .empty_table(),
        )?;
        self.expect(CHANNEL, 40, 11)?;
        self.send_method(
            CHANNEL,
            50,
            10,
            Args::default()
                .u16(0)
                .short(routing_key)
                .u8(0)
                .empty_table(),
        )?;
        self.expect(CHANNEL, 50, 11)?;
        self.send_method(
            CHANNEL,
            50,
            20,
            Args::default()
                .u16(0)
                .short(routing_key)
                .short(exchange)
                .short(routing_key)
                .u8(0)
                .empty_table(),
        )?;
        self.expect(CHANNEL, 50, 21)?;
        Ok(())
    }

    /// Publishes one message (JSON, persistent); `wait_confirms` says when
    /// the broker has it.
    pub fn publish(
        &mut self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
    ) -> Result<(), AmqpError> {
        self.send_method(
            CHANNEL,
            60,
            40,
            Args::default()
                .u16(0)
                .short(exchange)
                .short(routing_key)
                .u8(0),
        )?;
        // Content header: class 60, weight 0, body size, then properties:
        // content-type (bit 15), content-encoding (14), delivery-mode (12).
        let header = Args::default()
            .u16(60)
            .u16(0)
            .u32((body.len() as u64 >> 32) as u32)
            .u32(body.len() as u32)
            .u16((1 << 15) | (1 << 14) | (1 << 12))
            .short("application/json")
            .short("utf-8")
            .u8(2);
        self.send_frame(FRAME_HEADER, CHANNEL, &header.0)?;
        let chunk = (self.frame_max as usize).saturating_sub(8).max(1024);
        for part in body.chunks(chunk) {
            self.send_frame(FRAME_BODY, CHANNEL, part)?;
        }
        self.published += 1;
        Ok(())
    }

    /// Waits until the broker has acknowledged everything published.
    pub fn wait_confirms(&mut self) -> Result<(), AmqpError> {
        while self.acked < self.published {
            let m = self.read_method()?;
            let mut a = Cursor(&m.args);
            match (m.class, m.method) {
                (60, 80) => {
                    let tag = a.u64()?;
                    let multiple = a.take(1)?[0] & 1 == 1;
                    self.acked = if multiple { tag } else { self.acked.max(tag) };
                }
                (60, 120) => return Err(AmqpError::Nacked(a.u64()?)),
                (c, m) => {
                    return Err(AmqpError::Protocol(format!(
                        "{c}.{m} while waiting for acks"
                    )))
                }
            }
        }
        Ok(())
    }

    /// Takes one message off `queue` (basic.get with auto-ack); None when empty.
    pub fn get(&mut self, queue: &str) -> Result<Option<Vec<u8>>, AmqpError> {
        self.send_method(CHANNEL, 60, 70, Args::default().u16(0).short(queue).u8(1))?;
        let m = self.read_method()?;
        match (m.class, m.method) {
            (60, 72) => Ok(None), // get-empty
            (60, 71) => {
                let (kind, _, header) = self.read_frame()?;
                if kind != FRAME_HEADER {
                    return Err(AmqpError::Protocol("expected a content header".into()));
                }
                let mut h = Cursor(&header);
                h.u16()?;
                h.u16()?;
                let size = h.u64()? as usize;
                let mut body = Vec::with_capacity(size);
                while body.len() < size {
                    let (kind, _, part) = self.read_frame()?;
                    if kind != FRAME_BODY {
                        return Err(AmqpError::Protocol("expected a body frame".into()));
                    }
                    body.extend_from_slice(&part);
                }
                Ok(Some(body))
            }
            (c, m) => Err(AmqpError::Protocol(format!(
                "{c}.{m} in answer to basic.get"
            ))),
        }
    }

    /// Deletes a queue (tests clean up after themselves).
    pub fn delete_queue(&mut self, queue: &str) -> Result<(), AmqpError> {
        self.send_method(CHANNEL, 50, 40, Args::default().u16(0).short(queue).u8(0))?;
        self.expect(CHANNEL, 50, 41)?;
        Ok(())
    }

    fn send_frame(&mut self, kind: u8, channel: u16, payload: &[u8]) -> Result<(), AmqpError> {
        let mut f = Vec::with_capacity(payload.len() + 8);
        f.push(kind);
        f.extend_from_slice(&channel.to_be_bytes());
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        f.push(FRAME_END);
        self.stream.write_all(&f)?;
        Ok(())
    }

    fn send_method(
        &mut self,
        channel: u16,
        class: u16,
        method: u16,
        args: Args,
    ) -> Result<(), AmqpError> {
        let mut p = Vec::with_capacity(args.0.len() + 4);
        p.extend_from_slice(&class.to_be_bytes());
        p.extend_from_slice(&method.to_be_bytes());
        p.extend_from_slice(&args.0);
        self.send_frame(FRAME_METHOD, channel, &p)
    }

    fn read_frame(&mut self) -> Result<(u8, u16, Vec<u8>), AmqpError> {
        loop {
            let mut head = [0u8; 7];
            self.stream.read_exact(&mut head)?;
            let size = u32::from_be_bytes(head[3..7].try_into().expect("4 bytes")) as usize;
            let mut payload = vec![0u8; size + 1];
            self.stream.read_exact(&mut payload)?;
            if payload.pop() != Some(FRAME_END) {
                return Err(AmqpError::Protocol("frame without its end marker".into()));
            }
            if head[0] == FRAME_HEARTBEAT {
                continue;
            }
            return Ok((head[0], u16::from_be_bytes([head[1], head[2]]), payload));
        }
    }

    /// The next method frame; a close from the broker becomes an error
    /// carrying its reply code and text.
    fn read_method(&mut self) -> Result<Method, AmqpError> {
        let (kind, _, payload) = self.read_frame()?;
        if kind != FRAME_METHOD || payload.len() < 4 {
            return Err(AmqpError::Protocol(format!(
                "frame type {kind} where a method was due"
            )));
        }
        let m = Method {
            class: u16::from_be_bytes([payload[0], payload[1]]),
            method: u16::from_be_bytes([payload[2], payload[3]]),
            args: payload[4..].to_vec(),
        };
        if let (10, 50) | (20, 40) = (m.class, m.method) {
            let mut a = Cursor(&m.args);
            let code = a.u16()?;
            let text = a.short()?;
            return Err(AmqpError::Closed {
                what: if m.class == 10 {
                    "connection"
                } else {
                    "channel"
                },
                code,
                text,
            });
        }
        Ok(m)
    }

    fn expect(&mut self, _channel: u16, class: u16, method: u16) -> Result<Method, AmqpError> {
        let m = self.read_method()?;
        if (m.class, m.method) != (class, method) {
            return Err(AmqpError::Protocol(format!(
                "got {}.{} where {class}.{method} was due",
                m.class, m.method
            )));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_urls_read_as_oslo_writes_them() {
        let u = BrokerUrl::parse("rabbit://stack:s%40cret@mq1:5673,mq2:5672/openstack").unwrap();
        assert_eq!(
            u,
            BrokerUrl {
                host: "mq1".into(),
                port: 5673,
                user: "stack".into(),
                password: "s@cret".into(),
                vhost: "openstack".into()
            }
        );
        let u = BrokerUrl::parse("rabbit://guest:guest@127.0.0.1//").unwrap();
        assert_eq!((u.port, u.vhost.as_str()), (5672, "/"));
        assert!(BrokerUrl::parse("amqp://x").is_err());
        assert!(BrokerUrl::parse("rabbit://u:p@:1/").is_err());
    }
}
