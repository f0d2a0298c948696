//! RadSec: RADIUS over TLS (RFC 6614) on TCP, beside the UDP listeners.
//!
//! Both sides authenticate with certificates: the server presents `cert_file`, and a client
//! must present a certificate signed by `ca_file` (mutual TLS; RFC 6614 §2.3). On top of
//! that, the connection's source address must match a `[[client]]` entry, which names the
//! NAS and carries its policy, as for UDP. Over TLS the shared secret is the fixed string
//! "radsec" (§2.3): the TLS session protects the packets, so the entry's `secret` is not
//! used on these connections.
//!
//! Framing: RADIUS packets back to back on the stream, each sized by its Length field. A
//! Length outside 20..=4096 loses the framing, so the connection is closed (counted as
//! malformed). Replies go out on the connection the request came in on, in the order they
//! are decided. Everything after framing — duplicate check, permits, the pipeline, the
//! audit — is the UDP path's (`super::dispatch`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::drop_log::DropKind;
use super::metrics::Metrics;
use super::{dispatch, warn_drop, Arrival, ReplyTo};
use crate::app::AppState;
use crate::config::{ClientConfig, RadsecConfig};
use crate::radius::MAX_PACKET;
use crate::secret::Secret;

/// RFC 6614 §2.3: the shared secret of RADIUS over TLS.
pub const RADSEC_SECRET: &str = "radsec";
/// A client that does not finish its TLS handshake within this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Replies queued for one connection's writer.
const WRITE_QUEUE: usize = 256;

/// The TLS server configuration from `[radsec]`; errors name the key and file.
pub fn acceptor(cfg: &RadsecConfig) -> anyhow::Result<TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = pem_certs(&cfg.cert_file).context("radsec.cert_file")?;
    let key = rustls_pemfile::private_key(&mut read(&cfg.key_file).context("radsec.key_file")?)
        .with_context(|| format!("radsec.key_file: reading {}", cfg.key_file.display()))?
        .with_context(|| {
            format!(
                "radsec.key_file: no private key in {}",
                cfg.key_file.display()
            )
        })?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in pem_certs(&cfg.ca_file).context("radsec.ca_file")? {
        roots
            .add(ca)
            .with_context(|| format!("radsec.ca_file: {}", cfg.ca_file.display()))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .context("radsec.ca_file: client certificate verifier")?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .context("radsec.cert_file and radsec.key_file do not form a usable pair")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn read(path: &std::path::Path) -> anyhow::Result<std::io::BufReader<std::fs::File>> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(std::io::BufReader::new(f))
}

fn pem_certs(
    path: &std::path::Path,
) -> anyhow::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    let certs = rustls_pemfile::certs(&mut read(path)?)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("reading certificates from {}", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in {}", path.display());
    Ok(certs)
}

/// Is `cert` (already verified against `ca_file`) issued to the DNS name `name`?
fn issued_to(cert: &rustls::pki_types::CertificateDer<'_>, name: &str) -> bool {
    let Ok(dns) = rustls::pki_types::ServerName::try_from(name) else {
        return false;
    };
    webpki::EndEntityCert::try_from(cert)
        .is_ok_and(|c| c.verify_is_valid_for_subject_name(&dns).is_ok())
}

/// Accepts RadSec connections on `listener` until `shutdown`.
pub(super) async fn accept_loop(
    app: Arc<AppState>,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    permits: Arc<Semaphore>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    let local = listener.local_addr().ok();
    if let Some(addr) = local {
        info!(%addr, "radmfa listening on radsec (tcp) {addr}");
    }
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    // Out of descriptors, say: pause instead of spinning.
                    warn!(error = %e, "radsec accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(client) = app.clients.lookup(peer.ip()).cloned() else {
            Metrics::inc(&app.metrics.unknown_client);
            warn_drop(&app, DropKind::UnknownClient, peer, None);
            continue;
        };
        let client = Arc::new(ClientConfig {
            secret: Secret::from(RADSEC_SECRET),
            ..(*client).clone()
        });
        let conn = Connection {
            app: app.clone(),
            peer,
            local,
            client,
            permits: permits.clone(),
            tracker: tracker.clone(),
            shutdown: shutdown.clone(),
        };
        tracker.spawn(conn.serve(tcp, acceptor.clone()));
    }
}

struct Connection {
    app: Arc<AppState>,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    client: Arc<ClientConfig>,
    permits: Arc<Semaphore>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Connection {
    async fn serve(self, tcp: TcpStream, acceptor: TlsAcceptor) {
        let (peer, nas) = (self.peer, &self.client.name);
        let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
        let tls = match handshake {
            Ok(Ok(tls)) => tls,
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_string(),
                };
                Metrics::inc(&self.app.metrics.radsec_handshake_failures);
                // Rate-limited like other drops: any host in a client's network can try.
                let now = std::time::Instant::now();
                if let Some(w) =
                    self.app
                        .drops
                        .record(DropKind::TlsHandshake, peer.ip(), Some(nas), now)
                {
                    warn!(target: "radmfa::drops", "{w} [{why}]");
                }
                return;
            }
        };
        if let Some(name) = &self.client.radsec_name {
            let leaf = tls.get_ref().1.peer_certificates().and_then(|c| c.first());
            if !leaf.is_some_and(|cert| issued_to(cert, name)) {
                Metrics::inc(&self.app.metrics.radsec_handshake_failures);
                let now = std::time::Instant::now();
                let kind = DropKind::TlsCertificateName;
                if let Some(w) = self.app.drops.record(kind, peer.ip(), Some(nas), now) {
                    warn!(target: "radmfa::drops", "{w} [radsec_name = {name:?}]");
                }
                return;
            }
        }
        info!(%peer, nas = %nas, "radsec: connection up");
        let (mut rd, mut wr) = tokio::io::split(tls);
        let (tx, mut rx) = mpsc::channel::<Arc<[u8]>>(WRITE_QUEUE);
        // The writer ends when the reader and every request of this connection are done.
        self.tracker.spawn(async move {
            while let Some(bytes) = rx.recv().await {
                if wr.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            let _ = wr.shutdown().await;
        });
        let reply_to = ReplyTo::Tls(tx);
        let mut buf = vec![0u8; MAX_PACKET];
        loop {
            let header = tokio::select! {
                _ = self.shutdown.cancelled() => break,
                r = rd.read_exact(&mut buf[..4]) => r,
            };
            if header.is_err() {
                break; // closed by the client, or broken
            }
            let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
            if !(20..=MAX_PACKET).contains(&len) {
                Metrics::inc(&self.app.metrics.received);
                Metrics::inc(&self.app.metrics.malformed);
                warn_drop(&self.app, DropKind::Malformed, peer, Some(nas));
                break; // the framing is lost
            }
            if rd.read_exact(&mut buf[4..len]).await.is_err() {
                break;
            }
            Metrics::inc(&self.app.metrics.received);
            let at = Arrival {
                client: self.client.clone(),
                src: peer,
                local: self.local,
                reply_to: &reply_to,
            };
            dispatch(&self.app, &self.permits, &self.tracker, at, &buf[..len]).await;
        }
        info!(%peer, nas = %nas, "radsec: connection closed");
    }
}
