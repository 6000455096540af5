//! One MQTT connection, in MQTT 5 or 3.1.1, behind one small interface for the agent and the
//! control-plane CLI.
//!
//! Why a wrapper: rumqttc has two separate clients (`rumqttc` for 3.1.1, `rumqttc::v5`), with
//! different packet types. armlet uses the few things both have (QoS 1 publish and subscribe,
//! PUBACK by packet id, a retained will) and, in MQTT 5, three more that matter on metered
//! links: a topic alias for the alerts topic (each batch then carries 2 bytes instead of the
//! topic name), message expiry on pushed bundles (a push its pusher gave up on is not delivered
//! later), and session expiry for persistent consumer sessions (`alerts tail --session`).
//!
//! Negotiation ([`Negotiator`], `--mqtt-protocol auto`, the default): MQTT 5 first. A 3.1.1
//! broker answers an MQTT 5 CONNECT with "unacceptable protocol level" and closes, which
//! rumqttc reports as an error before any CONNACK; the next attempt, immediately, is 3.1.1.
//! Whichever version first connects is kept for the life of the process; until then every
//! backoff period tries both (a broker that is down looks the same as one that refuses v5 until
//! it answers). A refusal that only an MQTT 5 broker can send (not authorized, bad client id)
//! settles on 5 at once.

use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5;
use rumqttc::v5::mqttbytes::v5 as p5;
use rumqttc::{Outgoing, Transport};

use crate::transport::mqtt::{BrokerConfig, MqttError};

/// An MQTT protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    V5,
    V311,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::V5 => "5",
            Protocol::V311 => "3.1.1",
        }
    }
}

/// `--mqtt-protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ProtocolChoice {
    /// MQTT 5 where the broker offers it, 3.1.1 otherwise.
    #[default]
    Auto,
    /// MQTT 5 only.
    #[value(name = "5")]
    V5,
    /// MQTT 3.1.1 only.
    #[value(name = "3.1.1")]
    V311,
}

/// Session handling of one client.
#[derive(Debug, Clone, Copy)]
pub struct SessionMode {
    /// Start a fresh session (the agent: its spool is the source of truth).
    pub clean: bool,
    /// MQTT 5: how long the broker keeps a non-clean session after a disconnect (3.1.1 keeps
    /// it until the broker forgets it).
    pub expiry: Duration,
}

impl SessionMode {
    pub const CLEAN: SessionMode = SessionMode {
        clean: true,
        expiry: Duration::ZERO,
    };
}

/// A retained will (the agent's "offline" status).
#[derive(Debug, Clone)]
pub struct Will {
    pub topic: String,
    pub payload: Vec<u8>,
}

/// MQTT 5 options of one publish (ignored in 3.1.1).
#[derive(Debug, Clone, Copy, Default)]
pub struct PubOpts {
    /// A topic alias: with `topic` given, sets it; with an empty topic, uses it.
    pub alias: Option<u16>,
    /// Message expiry.
    pub expiry: Option<Duration>,
}

/// What the connection reports, whichever the version.
#[derive(Debug)]
pub enum Ev {
    /// Connected. `topic_alias_max` is 0 in 3.1.1 or when the broker allows none.
    ConnAck {
        session_present: bool,
        topic_alias_max: u16,
    },
    Publish {
        topic: String,
        payload: Bytes,
    },
    /// A publish was written with this packet id.
    SentPublish(u16),
    PubAck(u16),
    SentDisconnect,
    Other,
}

/// Why the connection ended or could not be made.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{text}")]
pub struct LinkError {
    pub text: String,
    /// Nothing answered at the network or TLS level: says nothing about the MQTT version.
    pub unreachable: bool,
    /// Only an MQTT 5 broker answers this way (a v5 CONNACK refusal other than "unsupported
    /// protocol version").
    pub speaks_v5: bool,
}

fn io_unreachable(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionRefused
            | K::NetworkUnreachable
            | K::HostUnreachable
            | K::AddrNotAvailable
            | K::NotFound
    )
}

impl From<rumqttc::ConnectionError> for LinkError {
    fn from(e: rumqttc::ConnectionError) -> Self {
        use rumqttc::ConnectionError as C;
        let unreachable = match &e {
            C::Io(io) => io_unreachable(io),
            C::Tls(_) => true,
            _ => false,
        };
        LinkError {
            text: e.to_string(),
            unreachable,
            speaks_v5: false,
        }
    }
}

impl From<v5::ConnectionError> for LinkError {
    fn from(e: v5::ConnectionError) -> Self {
        use v5::ConnectionError as C;
        let unreachable = match &e {
            C::Io(io) => io_unreachable(io),
            C::Tls(_) => true,
            _ => false,
        };
        let speaks_v5 = matches!(&e, C::ConnectionRefused(code)
            if *code != p5::ConnectReturnCode::UnsupportedProtocolVersion);
        LinkError {
            text: e.to_string(),
            unreachable,
            speaks_v5,
        }
    }
}

fn client_err(e: impl std::fmt::Display) -> LinkError {
    LinkError {
        text: format!("client request: {e}"),
        unreachable: false,
        speaks_v5: false,
    }
}

/// The sending half (cheap to clone; requests are queued for the event loop).
#[derive(Clone)]
pub enum Client {
    V311(rumqttc::AsyncClient),
    V5(v5::AsyncClient),
}

fn qos4() -> rumqttc::QoS {
    rumqttc::QoS::AtLeastOnce
}
fn qos5() -> v5::mqttbytes::QoS {
    v5::mqttbytes::QoS::AtLeastOnce
}

fn props(o: PubOpts) -> Option<p5::PublishProperties> {
    if o.alias.is_none() && o.expiry.is_none() {
        return None;
    }
    Some(p5::PublishProperties {
        topic_alias: o.alias,
        message_expiry_interval: o
            .expiry
            .map(|d| u32::try_from(d.as_secs().max(1)).unwrap_or(u32::MAX)),
        ..Default::default()
    })
}

impl Client {
    /// Queue a QoS 1 publish without waiting (fails when the request queue is full).
    pub fn try_publish(
        &self,
        topic: &str,
        retain: bool,
        payload: Vec<u8>,
        o: PubOpts,
    ) -> Result<(), LinkError> {
        match self {
            Client::V311(c) => c
                .try_publish(topic, qos4(), retain, payload)
                .map_err(client_err),
            Client::V5(c) => match props(o) {
                Some(p) => c.try_publish_with_properties(topic, qos5(), retain, payload, p),
                None => c.try_publish(topic, qos5(), retain, payload),
            }
            .map_err(client_err),
        }
    }

    pub fn try_subscribe(&self, topic: &str) -> Result<(), LinkError> {
        match self {
            Client::V311(c) => c.try_subscribe(topic, qos4()).map_err(client_err),
            Client::V5(c) => c.try_subscribe(topic, qos5()).map_err(client_err),
        }
    }

    pub fn try_disconnect(&self) -> Result<(), LinkError> {
        match self {
            Client::V311(c) => c.try_disconnect().map_err(client_err),
            Client::V5(c) => c.try_disconnect().map_err(client_err),
        }
    }
}

enum Loop {
    V311(Box<rumqttc::EventLoop>),
    V5(Box<v5::EventLoop>),
}

/// One connection attempt: the client and its event loop (which connects on the first poll).
pub struct Link {
    pub client: Client,
    pub protocol: Protocol,
    el: Loop,
}

impl Link {
    /// A client for `cfg` in `protocol`; `cap` requests may wait in its queue.
    pub fn new(
        cfg: &BrokerConfig,
        protocol: Protocol,
        session: SessionMode,
        will: Option<Will>,
        cap: usize,
    ) -> Result<Link, MqttError> {
        let keep_alive = Duration::from_secs(30);
        // Room for the largest bundle plus framing; larger bundles are refused by the verifier
        // (`oversize`) rather than by a dropped connection.
        let max = armlet_bundle::envelope::MAX_BUNDLE_LEN + 64 * 1024;
        let transport = match &cfg.tls {
            Some(tls) => Some(Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(crate::transport::mqtt::client_config(tls)?),
            )),
            None => None,
        };
        Ok(match protocol {
            Protocol::V311 => {
                let mut o =
                    rumqttc::MqttOptions::new(cfg.client_id.clone(), cfg.host.clone(), cfg.port);
                o.set_keep_alive(keep_alive);
                o.set_clean_session(session.clean);
                o.set_max_packet_size(max, max);
                if let Some(t) = transport {
                    o.set_transport(t);
                }
                if let Some(w) = will {
                    o.set_last_will(rumqttc::LastWill::new(w.topic, w.payload, qos4(), true));
                }
                let (c, el) = rumqttc::AsyncClient::new(o, cap);
                Link {
                    client: Client::V311(c),
                    protocol,
                    el: Loop::V311(Box::new(el)),
                }
            }
            Protocol::V5 => {
                let mut o = v5::MqttOptions::new(cfg.client_id.clone(), cfg.host.clone(), cfg.port);
                o.set_keep_alive(keep_alive);
                o.set_clean_start(session.clean);
                if !session.clean {
                    let secs = u32::try_from(session.expiry.as_secs()).unwrap_or(u32::MAX);
                    o.set_session_expiry_interval(Some(secs));
                }
                o.set_max_packet_size(Some(u32::try_from(max).unwrap_or(u32::MAX)));
                if let Some(t) = transport {
                    o.set_transport(t);
                }
                if let Some(w) = will {
                    o.set_last_will(p5::LastWill::new(w.topic, w.payload, qos5(), true, None));
                }
                let (c, el) = v5::AsyncClient::new(o, cap);
                Link {
                    client: Client::V5(c),
                    protocol,
                    el: Loop::V5(Box::new(el)),
                }
            }
        })
    }

    /// The next event (connects first when not connected).
    pub async fn poll(&mut self) -> Result<Ev, LinkError> {
        match &mut self.el {
            Loop::V311(el) => {
                use rumqttc::{Event, Packet};
                Ok(match el.poll().await? {
                    Event::Incoming(Packet::ConnAck(c)) => Ev::ConnAck {
                        session_present: c.session_present,
                        topic_alias_max: 0,
                    },
                    Event::Incoming(Packet::Publish(p)) => Ev::Publish {
                        topic: p.topic,
                        payload: p.payload,
                    },
                    Event::Incoming(Packet::PubAck(a)) => Ev::PubAck(a.pkid),
                    Event::Outgoing(Outgoing::Publish(id)) => Ev::SentPublish(id),
                    Event::Outgoing(Outgoing::Disconnect) => Ev::SentDisconnect,
                    _ => Ev::Other,
                })
            }
            Loop::V5(el) => {
                use v5::Event;
                Ok(match el.poll().await? {
                    Event::Incoming(p5::Packet::ConnAck(c)) => Ev::ConnAck {
                        session_present: c.session_present,
                        topic_alias_max: c
                            .properties
                            .as_ref()
                            .and_then(|p| p.topic_alias_max)
                            .unwrap_or(0),
                    },
                    Event::Incoming(p5::Packet::Publish(p)) => Ev::Publish {
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        payload: p.payload,
                    },
                    Event::Incoming(p5::Packet::PubAck(a)) => Ev::PubAck(a.pkid),
                    Event::Outgoing(Outgoing::Publish(id)) => Ev::SentPublish(id),
                    Event::Outgoing(Outgoing::Disconnect) => Ev::SentDisconnect,
                    _ => Ev::Other,
                })
            }
        }
    }
}

/// The size of one QoS 1 PUBLISH packet carrying `payload`, as rumqttc encodes it: in MQTT 5
/// with `alias` set, the topic is sent only when `with_topic` (the first batch of a
/// connection) and the alias otherwise. For the benchmark's bytes-on-the-wire figures.
pub fn publish_packet_len(
    protocol: Protocol,
    topic: &str,
    alias: Option<u16>,
    with_topic: bool,
    payload: &[u8],
) -> usize {
    let mut buf = bytes::BytesMut::new();
    let payload = Bytes::copy_from_slice(payload);
    let written = match protocol {
        Protocol::V311 => {
            let mut p = rumqttc::Publish::new(topic, qos4(), payload);
            p.pkid = 1;
            p.write(&mut buf).map_err(|e| e.to_string())
        }
        Protocol::V5 => {
            let t = if alias.is_none() || with_topic {
                topic
            } else {
                ""
            };
            let o = PubOpts {
                alias,
                expiry: None,
            };
            let mut p = p5::Publish::new(t, qos5(), payload, props(o));
            p.pkid = 1;
            p.write(&mut buf).map_err(|e| e.to_string())
        }
    };
    written.map_or(0, |_| buf.len())
}

/// Which version to try next (see the module docs).
#[derive(Debug, Clone)]
pub struct Negotiator {
    choice: ProtocolChoice,
    next: Protocol,
    settled: bool,
    /// Why MQTT 5 was given up, for the log line of the first 3.1.1 connection.
    v5_failure: Option<String>,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Try again at once in the other version.
    Now,
    /// Wait for the backoff.
    Backoff,
}

impl Negotiator {
    pub fn new(choice: ProtocolChoice) -> Self {
        Negotiator {
            choice,
            next: match choice {
                ProtocolChoice::V311 => Protocol::V311,
                _ => Protocol::V5,
            },
            settled: choice != ProtocolChoice::Auto,
            v5_failure: None,
        }
    }

    /// The version of the next attempt.
    pub fn protocol(&self) -> Protocol {
        self.next
    }

    /// The attempt in the current version got its CONNACK: keep this version. Returns a note
    /// for the log when this is a fallback.
    pub fn connected(&mut self) -> Option<String> {
        let first = !self.settled;
        self.settled = true;
        match (&self.v5_failure, self.next, first) {
            (Some(why), Protocol::V311, true) => Some(format!(
                "the broker does not take MQTT 5 ({why}); using 3.1.1"
            )),
            _ => None,
        }
    }

    /// An attempt failed before its CONNACK.
    pub fn failed_before_connack(&mut self, e: &LinkError) -> Retry {
        if self.settled || self.choice != ProtocolChoice::Auto || e.unreachable {
            return Retry::Backoff;
        }
        if e.speaks_v5 && self.next == Protocol::V5 {
            self.settled = true;
            return Retry::Backoff;
        }
        match self.next {
            Protocol::V5 => {
                self.v5_failure = Some(e.text.clone());
                self.next = Protocol::V311;
                Retry::Now
            }
            Protocol::V311 => {
                self.next = Protocol::V5;
                Retry::Backoff
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(unreachable: bool, speaks_v5: bool) -> LinkError {
        LinkError {
            text: "x".into(),
            unreachable,
            speaks_v5,
        }
    }

    #[test]
    fn auto_falls_back_once_and_keeps_what_connected() {
        let mut n = Negotiator::new(ProtocolChoice::Auto);
        assert_eq!(n.protocol(), Protocol::V5);
        assert_eq!(n.failed_before_connack(&err(false, false)), Retry::Now);
        assert_eq!(n.protocol(), Protocol::V311);
        assert!(n.connected().unwrap().contains("using 3.1.1"));
        // Settled: later failures keep 3.1.1 and wait.
        assert_eq!(n.failed_before_connack(&err(false, false)), Retry::Backoff);
        assert_eq!(n.protocol(), Protocol::V311);
        assert!(n.connected().is_none());
    }

    #[test]
    fn auto_tries_both_per_backoff_until_one_answers() {
        let mut n = Negotiator::new(ProtocolChoice::Auto);
        assert_eq!(n.failed_before_connack(&err(false, false)), Retry::Now);
        assert_eq!(n.failed_before_connack(&err(false, false)), Retry::Backoff);
        assert_eq!(n.protocol(), Protocol::V5);
        assert!(n.connected().is_none(), "v5 connected: no fallback note");
    }

    #[test]
    fn unreachable_and_v5_refusals_do_not_switch() {
        let mut n = Negotiator::new(ProtocolChoice::Auto);
        assert_eq!(n.failed_before_connack(&err(true, false)), Retry::Backoff);
        assert_eq!(n.protocol(), Protocol::V5);
        assert_eq!(n.failed_before_connack(&err(false, true)), Retry::Backoff);
        assert_eq!(n.protocol(), Protocol::V5);
        assert_eq!(n.failed_before_connack(&err(false, false)), Retry::Backoff);
        assert_eq!(n.protocol(), Protocol::V5, "settled on 5 by the v5 refusal");
    }

    #[test]
    fn forced_versions_never_switch() {
        for (c, p) in [
            (ProtocolChoice::V5, Protocol::V5),
            (ProtocolChoice::V311, Protocol::V311),
        ] {
            let mut n = Negotiator::new(c);
            assert_eq!(n.protocol(), p);
            assert_eq!(n.failed_before_connack(&err(false, false)), Retry::Backoff);
            assert_eq!(n.protocol(), p);
        }
    }

    /// A broker that speaks only MQTT 3.1.1, as the 3.1.1 standard says one must (§3.1.2.2):
    /// an MQTT 5 CONNECT gets CONNACK 0x01 "unacceptable protocol level" and the connection
    /// is closed. Beside the real-broker tests (agent/tests/mqtt_broker.rs, Mosquitto speaking
    /// 5), since no 3.1.1-only broker is packaged. Returns the protocol levels of the CONNECTs
    /// it saw and the topics of the publishes it acknowledged.
    type Seen = (Vec<u8>, Vec<(String, Vec<u8>)>);

    fn mock_311_broker(connections: usize) -> (u16, std::thread::JoinHandle<Seen>) {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let mut levels = Vec::new();
            let mut published = Vec::new();
            for _ in 0..connections {
                let (mut s, _) = l.accept().unwrap();
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let read_packet = |s: &mut std::net::TcpStream| -> Option<(u8, Vec<u8>)> {
                    let mut h = [0u8; 1];
                    s.read_exact(&mut h).ok()?;
                    let (mut len, mut mul) = (0usize, 1usize);
                    loop {
                        let mut b = [0u8; 1];
                        s.read_exact(&mut b).ok()?;
                        len += usize::from(b[0] & 0x7f) * mul;
                        mul *= 128;
                        if b[0] & 0x80 == 0 {
                            break;
                        }
                    }
                    let mut body = vec![0u8; len];
                    s.read_exact(&mut body).ok()?;
                    Some((h[0], body))
                };
                let Some((0x10, connect)) = read_packet(&mut s) else {
                    panic!("first packet is not CONNECT");
                };
                // Protocol name "MQTT" (2-byte length + 4 bytes), then the level.
                let level = connect[6];
                levels.push(level);
                if level != 4 {
                    s.write_all(&[0x20, 0x02, 0x00, 0x01]).unwrap();
                    continue;
                }
                s.write_all(&[0x20, 0x02, 0x00, 0x00]).unwrap();
                while let Some((h, body)) = read_packet(&mut s) {
                    match h >> 4 {
                        8 => s.write_all(&[0x90, 0x03, body[0], body[1], 0x01]).unwrap(),
                        3 => {
                            let tl = usize::from(u16::from_be_bytes([body[0], body[1]]));
                            let topic = String::from_utf8(body[2..2 + tl].to_vec()).unwrap();
                            let qos = (h >> 1) & 3;
                            let payload = if qos > 0 {
                                let id = &body[2 + tl..4 + tl];
                                s.write_all(&[0x40, 0x02, id[0], id[1]]).unwrap();
                                body[4 + tl..].to_vec()
                            } else {
                                body[2 + tl..].to_vec()
                            };
                            published.push((topic, payload));
                        }
                        12 => s.write_all(&[0xd0, 0x00]).unwrap(),
                        14 => break,
                        _ => {}
                    }
                }
            }
            (levels, published)
        });
        (port, h)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn plain(port: u16, protocol: ProtocolChoice) -> BrokerConfig {
        let mut c = BrokerConfig::new(
            &format!("mqtt://127.0.0.1:{port}"),
            None,
            None,
            None,
            true,
            "n1".into(),
        )
        .unwrap();
        c.protocol = protocol;
        c
    }

    #[test]
    fn a_311_only_broker_gets_311_after_its_refusal() {
        let (port, broker) = mock_311_broker(2);
        let cfg = plain(port, ProtocolChoice::Auto);
        let rt = runtime();
        let mut neg = Negotiator::new(cfg.protocol);
        let (note, acked) = rt.block_on(async {
            let (mut link, note) = loop {
                let mut link =
                    Link::new(&cfg, neg.protocol(), SessionMode::CLEAN, None, 8).unwrap();
                match link.poll().await {
                    Ok(Ev::ConnAck {
                        topic_alias_max, ..
                    }) => {
                        assert_eq!(topic_alias_max, 0);
                        break (link, neg.connected());
                    }
                    Ok(other) => panic!("before CONNACK: {other:?}"),
                    Err(e) => assert_eq!(neg.failed_before_connack(&e), Retry::Now, "{e}"),
                }
            };
            let c = link.client.clone();
            c.try_publish(
                "armlet/v1/f/n1/alerts",
                false,
                b"batch".to_vec(),
                PubOpts::default(),
            )
            .unwrap();
            let acked = loop {
                match tokio::time::timeout(Duration::from_secs(10), link.poll()).await {
                    Ok(Ok(Ev::PubAck(id))) => break id,
                    Ok(Ok(_)) => {}
                    other => panic!("no PUBACK: {other:?}"),
                }
            };
            c.try_disconnect().unwrap();
            while !matches!(link.poll().await, Ok(Ev::SentDisconnect) | Err(_)) {}
            (note, acked)
        });
        assert_eq!(neg.protocol(), Protocol::V311);
        assert!(note.unwrap().contains("does not take MQTT 5"));
        assert!(acked > 0);
        let (levels, published) = broker.join().unwrap();
        assert_eq!(levels, [5, 4], "an MQTT 5 CONNECT first, then 3.1.1");
        assert_eq!(
            published,
            [("armlet/v1/f/n1/alerts".to_string(), b"batch".to_vec())]
        );
    }

    #[test]
    fn forced_v5_does_not_fall_back() {
        let (port, broker) = mock_311_broker(1);
        let cfg = plain(port, ProtocolChoice::V5);
        let rt = runtime();
        let mut neg = Negotiator::new(cfg.protocol);
        let e = rt.block_on(async {
            let mut link = Link::new(&cfg, neg.protocol(), SessionMode::CLEAN, None, 8).unwrap();
            link.poll().await.err().unwrap()
        });
        assert_eq!(neg.failed_before_connack(&e), Retry::Backoff);
        assert_eq!(neg.protocol(), Protocol::V5);
        assert_eq!(broker.join().unwrap().0, [5]);
    }
}
