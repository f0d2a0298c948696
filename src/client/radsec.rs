//! RadSec (RFC 6614) for `radmfa client login` and `status`: the request over a TLS
//! connection with a client certificate instead of a UDP datagram, so an admin can check a
//! RadSec deployment from the command line. The shared secret is "radsec" unless given.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;
use tokio_rustls::TlsConnector;

/// `--radsec-cert`, `--radsec-key`, `--radsec-ca`: given together, the client speaks RadSec.
#[derive(Debug, Clone, Args)]
pub struct RadsecArgs {
    /// RadSec: this client's certificate (PEM); with --radsec-key and --radsec-ca, the
    /// request goes over TLS to --server (default 127.0.0.1:2083) instead of UDP.
    #[arg(long, requires_all = ["radsec_key", "radsec_ca"])]
    pub radsec_cert: Option<PathBuf>,
    /// RadSec: the private key of --radsec-cert (PEM).
    #[arg(long, requires = "radsec_cert")]
    pub radsec_key: Option<PathBuf>,
    /// RadSec: the CA that signed the server's certificate (PEM).
    #[arg(long, requires = "radsec_cert")]
    pub radsec_ca: Option<PathBuf>,
    /// RadSec: the DNS name the server's certificate is issued to. Default: --server's IP
    /// address, which the certificate must then list (an IP subjectAltName).
    #[arg(long, requires = "radsec_cert")]
    pub radsec_server_name: Option<String>,
}

/// What a RadSec connection needs, read once for many connections: the TLS client
/// configuration, and the name the server's certificate must carry (`None`: its IP).
#[derive(Clone, Debug)]
pub struct Tls {
    pub config: Arc<rustls::ClientConfig>,
    pub server_name: Option<rustls::pki_types::ServerName<'static>>,
}

/// [`client_config`] and the checked `--radsec-server-name`.
pub fn tls(a: &RadsecArgs) -> anyhow::Result<Tls> {
    let server_name = match &a.radsec_server_name {
        Some(name) => Some(
            rustls::pki_types::ServerName::try_from(name.clone()).map_err(|_| {
                anyhow::anyhow!("--radsec-server-name {name:?} is not a DNS name or IP address")
            })?,
        ),
        None => None,
    };
    Ok(Tls {
        config: client_config(a)?,
        server_name,
    })
}

impl RadsecArgs {
    pub fn enabled(&self) -> bool {
        self.radsec_cert.is_some()
    }
}

pub type Link = TlsStream<TcpStream>;

/// A TLS connection to `server`, which must present a certificate signed by
/// `--radsec-ca` for `--radsec-server-name`, or else for its IP address.
pub async fn connect(
    server: SocketAddr,
    a: &RadsecArgs,
    timeout: Duration,
) -> anyhow::Result<Link> {
    connect_with(server, None, &tls(a)?, timeout).await
}

/// The TLS client configuration from the files of `a` (read once, for many connections).
pub fn client_config(a: &RadsecArgs) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let (Some(cert), Some(key), Some(ca)) = (&a.radsec_cert, &a.radsec_key, &a.radsec_ca) else {
        anyhow::bail!("RadSec needs --radsec-cert, --radsec-key and --radsec-ca");
    };
    let read = |p: &PathBuf| -> anyhow::Result<std::io::BufReader<std::fs::File>> {
        let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
        Ok(std::io::BufReader::new(f))
    };
    let certs = rustls_pemfile::certs(&mut read(cert)?)
        .collect::<Result<Vec<_>, _>>()
        .context("--radsec-cert")?;
    // A key file or a CRL given for a certificate: said here, not later as "peer sent no
    // certificates" or the server's "UnknownIssuer".
    anyhow::ensure!(
        !certs.is_empty(),
        "--radsec-cert: no certificate in {}",
        cert.display()
    );
    let key_path = key;
    let key = rustls_pemfile::private_key(&mut read(key)?)
        .context("--radsec-key")?
        .context("--radsec-key: no private key in the file")?;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut read(ca)?) {
        roots
            .add(c.context("--radsec-ca")?)
            .context("--radsec-ca")?;
    }
    anyhow::ensure!(
        !roots.is_empty(),
        "--radsec-ca: no certificate in {}",
        ca.display()
    );
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs.clone(), key)
        .map_err(|e| {
            match certs.first().and_then(|c| {
                crate::server::radsec::key_ring_cannot_use(c, crate::server::radsec::KeyUse::Sign)
            }) {
                Some(what) => anyhow::anyhow!(
                    "--radsec-key: {} is {what}, and {}",
                    key_path.display(),
                    crate::server::radsec::KEYS_RING_SIGNS_WITH
                ),
                None => anyhow::Error::new(e)
                    .context("--radsec-cert and --radsec-key do not form a usable pair"),
            }
        })?;
    Ok(Arc::new(config))
}

/// [`connect`] with a configuration already built, from `source` if given (the server's
/// client table is keyed by source address).
pub async fn connect_with(
    server: SocketAddr,
    source: Option<std::net::IpAddr>,
    tls: &Tls,
    timeout: Duration,
) -> anyhow::Result<Link> {
    // A certificate is usually issued to a DNS name; without --radsec-server-name the
    // address has to be in it, and the error below says how to give the name.
    let name = tls
        .server_name
        .clone()
        .unwrap_or_else(|| rustls::pki_types::ServerName::IpAddress(server.ip().into()));
    let config = tls.config.clone();
    let connect = async {
        let tcp: TcpStream = match source {
            None => TcpStream::connect(server).await?,
            Some(ip) => {
                let sock = if ip.is_ipv6() {
                    tokio::net::TcpSocket::new_v6()?
                } else {
                    tokio::net::TcpSocket::new_v4()?
                };
                sock.bind(SocketAddr::new(ip, 0))?;
                sock.connect(server).await?
            }
        };
        // Requests are small and independent (see the server's accept loop).
        tcp.set_nodelay(true)?;
        TlsConnector::from(config).connect(name, tcp).await
    };
    let by_address = tls.server_name.is_none();
    tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| anyhow::anyhow!("RadSec connection to {server} timed out"))?
        .map_err(|e| {
            let said = e.to_string();
            let hint = if by_address && said.contains("not valid for name") {
                " (give the name the certificate is issued to with --radsec-server-name)"
            } else {
                closed_hint(&e)
            };
            anyhow::Error::new(e).context(format!("RadSec connection to {server}{hint}"))
        })
}

/// What a connection closed without a word most often means: radmfa refuses a client
/// whose certificate matches no RadSec entry by closing it (TLS 1.3 finishes the
/// handshake before the server has judged the certificate), and says why only in its log.
const CLOSED_HINT: &str = " (radmfa closes a connection whose certificate matches no \
     [[client]] radsec_name, or from an address with no RadSec entry: its log says which)";

/// What the server's end of the connection means for the admin: a TLS alert it sent names
/// what it found wrong with this client's certificate (with TLS 1.3 it comes at the first
/// read, after the handshake); a close without one is [`CLOSED_HINT`]. Every alert was
/// given that hint, which sent the admin to `radsec_name` for a revoked or expired
/// certificate (red team).
fn closed_hint(e: &std::io::Error) -> &'static str {
    use rustls::AlertDescription as A;
    let alert = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .and_then(|tls| match tls {
            rustls::Error::AlertReceived(a) => Some(*a),
            _ => None,
        });
    match alert {
        None if matches!(
            e.kind(),
            std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
        ) || e.to_string().contains("eof") =>
        {
            CLOSED_HINT
        }
        None => "",
        Some(A::CertificateRevoked) => {
            " (the server refused this client certificate as revoked: its [radsec] crl_file \
             lists it, or a CA above it)"
        }
        Some(A::CertificateExpired) => {
            " (the server refused this client certificate as expired or not yet valid: check \
             its dates and both clocks)"
        }
        Some(A::UnknownCA) => {
            " (the server does not trust this client certificate's issuer: it is not signed \
             by a CA in the server's [radsec] ca_file, the chain to one is incomplete, or \
             the server has no current CRL for that CA: its log says which)"
        }
        Some(A::UnsupportedCertificate) => {
            " (the server refused this client certificate for its use: its extended key usage \
             does not allow TLS client authentication)"
        }
        Some(A::CertificateRequired | A::HandshakeFailure) => {
            " (the server wants a client certificate it can use: give --radsec-cert and \
             --radsec-key)"
        }
        Some(A::BadCertificate) => {
            " (the server could not use this client certificate: its log says why)"
        }
        Some(_) => " (the server ended the connection with this TLS alert: its log says why)",
    }
}

/// Writes one packet and reads the next one back (framed by its Length field).
pub async fn exchange(link: &mut Link, raw: &[u8]) -> anyhow::Result<Vec<u8>> {
    link.write_all(raw).await.context("sending over RadSec")?;
    read_packet(link).await
}

/// Reads the next packet from the stream (framed by its Length field).
pub async fn read_packet(link: &mut Link) -> anyhow::Result<Vec<u8>> {
    let mut reply = vec![0u8; 4];
    if let Err(e) = link.read_exact(&mut reply).await {
        let hint = closed_hint(&e);
        return Err(
            anyhow::Error::new(e).context(format!("the server closed the RadSec connection{hint}"))
        );
    }
    let len = usize::from(u16::from_be_bytes([reply[2], reply[3]]));
    anyhow::ensure!(
        (20..=4096).contains(&len),
        "reply Length {len} is outside 20..=4096"
    );
    reply.resize(len, 0);
    link.read_exact(&mut reply[4..])
        .await
        .context("reading the reply")?;
    Ok(reply)
}
