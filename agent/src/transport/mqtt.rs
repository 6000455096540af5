//! MQTT connection settings shared by the agent and the control-plane CLI: broker URL, mutual
//! TLS with rustls (ring provider: builds for static musl on aarch64 without a C toolchain for
//! aws-lc), topics, reconnect backoff.
//!
//! Why rumqttc with a fresh session per connection: the agent's spool, not the MQTT client, is
//! the source of truth for what was delivered. Every connection starts clean; what was sent but
//! not acknowledged is rewound in the spool and sent again (same sequence numbers), and the
//! subscriptions are made again, so a broker that lost its state loses nothing of ours.
//! The connection itself, MQTT 5 or 3.1.1, is [`crate::transport::link`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use crate::transport::link::ProtocolChoice;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a connection cannot be configured.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("broker URL {0:?}: expected mqtts://HOST[:PORT] or mqtt://HOST[:PORT]")]
    Url(String),
    #[error(
        "broker URL {0:?} is plain TCP: alerts and bundles would travel unencrypted and \
         unauthenticated; use mqtts:// with --mqtt-ca/--mqtt-cert/--mqtt-key, or pass the \
         explicit plain-TCP flag for a test broker"
    )]
    PlainRefused(String),
    #[error("TLS needs a CA file (the pinned broker CA)")]
    NoCa,
    #[error("{path}: {detail}")]
    Pem { path: PathBuf, detail: String },
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("client certificate and key go together: pass both or neither")]
    HalfIdentity,
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub host: String,
    pub port: u16,
    /// None: plain TCP (only with the explicit flag).
    pub tls: Option<TlsFiles>,
    pub client_id: String,
    /// Which MQTT version to speak ([`crate::transport::link::Negotiator`]).
    pub protocol: ProtocolChoice,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The only CA trusted for the broker's certificate (pinned; no system roots).
    pub ca: PathBuf,
    /// Client certificate chain and key (mutual TLS; the broker maps the certificate's CN to
    /// the client identity).
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl BrokerConfig {
    /// Parse the URL and check the TLS options.
    pub fn new(
        url: &str,
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
        insecure_plain: bool,
        client_id: String,
    ) -> Result<Self, MqttError> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err(MqttError::Url(url.to_owned()));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| MqttError::Url(url.to_owned()))?),
            None => (rest, if tls { 8883 } else { 1883 }),
        };
        if host.is_empty() || host.contains('/') {
            return Err(MqttError::Url(url.to_owned()));
        }
        let tls = if tls {
            let identity = match (cert, key) {
                (Some(c), Some(k)) => Some((c.to_owned(), k.to_owned())),
                (None, None) => None,
                _ => return Err(MqttError::HalfIdentity),
            };
            Some(TlsFiles {
                ca: ca.ok_or(MqttError::NoCa)?.to_owned(),
                identity,
            })
        } else {
            if !insecure_plain {
                return Err(MqttError::PlainRefused(url.to_owned()));
            }
            None
        };
        Ok(BrokerConfig {
            host: host.to_owned(),
            port,
            tls,
            client_id,
            protocol: ProtocolChoice::Auto,
        })
    }
}

fn pem_err(path: &Path) -> impl Fn(String) -> MqttError + '_ {
    move |detail| MqttError::Pem {
        path: path.to_owned(),
        detail,
    }
}

/// A rustls client configuration: the pinned CA only, and the client identity if given.
pub fn client_config(tls: &TlsFiles) -> Result<Arc<rustls::ClientConfig>, MqttError> {
    let mut roots = rustls::RootCertStore::empty();
    let cas: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.ca)
        .map_err(|e| pem_err(&tls.ca)(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem_err(&tls.ca)(e.to_string()))?;
    if cas.is_empty() {
        return Err(pem_err(&tls.ca)("no certificate in the CA file".into()));
    }
    for ca in cas {
        roots.add(ca).map_err(|e| pem_err(&tls.ca)(e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MqttError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let config = match &tls.identity {
        Some((cert, key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .map_err(|e| pem_err(cert)(e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| pem_err(cert)(e.to_string()))?;
            if chain.is_empty() {
                return Err(pem_err(cert)("no certificate in the file".into()));
            }
            let key_der =
                PrivateKeyDer::from_pem_file(key).map_err(|e| pem_err(key)(e.to_string()))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| MqttError::Tls(e.to_string()))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The topics of one node (DESIGN §6).
#[derive(Debug, Clone)]
pub struct Topics {
    pub fleet: String,
    pub node: String,
}

impl Topics {
    pub fn prefix(fleet: &str, node: &str) -> String {
        format!("armlet/v1/{fleet}/{node}")
    }
    pub fn alerts(&self) -> String {
        format!("{}/alerts", Self::prefix(&self.fleet, &self.node))
    }
    pub fn status(&self) -> String {
        format!("{}/status", Self::prefix(&self.fleet, &self.node))
    }
    pub fn bundle(&self) -> String {
        format!("{}/bundle", Self::prefix(&self.fleet, &self.node))
    }
    /// The fleet-wide push topic of a group.
    pub fn group_bundle(fleet: &str, group: &str) -> String {
        format!("armlet/v1/{fleet}/group/{group}/bundle")
    }
}

/// A topic level must not contain MQTT wildcards or separators.
pub fn valid_level(s: &str) -> bool {
    !s.is_empty() && !s.contains(['/', '+', '#', '\0'])
}

/// Reconnect delays: exponential from `min` to `max`, each with up to 50 % random jitter so a
/// fleet that lost its broker does not come back in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            next: min,
            min,
            max,
        }
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        let mut b = [0u8; 4];
        let r = if getrandom::fill(&mut b).is_ok() {
            u32::from_le_bytes(b)
        } else {
            0
        };
        let jitter = base.mul_f64(f64::from(r) / f64::from(u32::MAX) * 0.5);
        base + jitter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_plain_tcp_refusal() {
        let b = BrokerConfig::new(
            "mqtts://broker.example:1884",
            Some(Path::new("ca.pem")),
            None,
            None,
            false,
            "n".into(),
        )
        .unwrap();
        assert_eq!((b.host.as_str(), b.port), ("broker.example", 1884));
        let b = BrokerConfig::new(
            "mqtts://h",
            Some(Path::new("ca")),
            None,
            None,
            false,
            "n".into(),
        )
        .unwrap();
        assert_eq!(b.port, 8883);
        assert!(matches!(
            BrokerConfig::new("mqtt://h", None, None, None, false, "n".into()),
            Err(MqttError::PlainRefused(_))
        ));
        let b = BrokerConfig::new("mqtt://h:1", None, None, None, true, "n".into()).unwrap();
        assert!(b.tls.is_none());
        assert!(matches!(
            BrokerConfig::new("mqtts://h", None, None, None, false, "n".into()),
            Err(MqttError::NoCa)
        ));
        assert!(matches!(
            BrokerConfig::new("tcp://h", None, None, None, true, "n".into()),
            Err(MqttError::Url(_))
        ));
        assert!(matches!(
            BrokerConfig::new(
                "mqtts://h",
                Some(Path::new("ca")),
                Some(Path::new("c")),
                None,
                false,
                "n".into()
            ),
            Err(MqttError::HalfIdentity)
        ));
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let d: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        assert!(d[0] >= Duration::from_millis(100) && d[0] <= Duration::from_millis(150));
        assert!(d[7] >= Duration::from_secs(1) && d[7] <= Duration::from_millis(1500));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(150));
    }

    #[test]
    fn topic_levels() {
        assert!(valid_level("node-1"));
        for bad in ["", "a/b", "+", "a#"] {
            assert!(!valid_level(bad));
        }
    }
}
