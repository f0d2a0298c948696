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
//! are decided. Each packet is verified (`super::verify`) before the next is read, so that
//! one that fails closes the connection with nothing behind it worked out; everything after
//! — duplicate check, permits, the pipeline, the audit — is the UDP path's
//! (`super::dispatch`), each request on a task of its own.
//!
//! Bounds, since any host in a client's address range can connect and a TLS connection
//! costs memory for as long as it stays open: at most `radsec.max_connections` at once, and
//! `max_connections_per_address` from one address (handshakes included; more are closed on
//! arrival, unless a connection still in its handshake gives its slot up:
//! `radsec_slots.rs`), a handshake gets
//! [`HANDSHAKE_TIMEOUT`], a connection that sends nothing for `radsec.idle_timeout_secs`
//! is closed, and so is one whose peer stops reading its replies. A request never waits
//! for its reply to be written: that would hold its in-flight permit, and a peer that does
//! not read would soon hold them all, starving UDP too.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::WriteHalf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::cert_dates::RadsecDates;
use super::drop_log::DropKind;
use super::metrics::Metrics;
use super::radsec_reload;
use super::radsec_slots::{Slot, Slots};
use super::{dispatch, verify, warn_drop, Arrival, ReplyTo};
use crate::app::AppState;
use crate::config::{ClientConfig, RadsecConfig};
use crate::file_stamp::{self, FileStamp};
use crate::radius::MAX_PACKET;

/// RFC 6614 §2.3: the shared secret of RADIUS over TLS.
pub const RADSEC_SECRET: &str = "radsec";
/// A client that does not finish its TLS handshake within this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Replies queued for one connection's writer. A peer that leaves this many unread (its
/// TCP window and our socket buffer full as well) is not reading: its connection is closed.
const WRITE_QUEUE: usize = 256;

/// Requests one connection may have in flight: as many as its write queue holds replies
/// (and as a peer that keeps to RFC 6613 can have, with 256 Identifiers), and at most half
/// of `max_in_flight`, so that one connection leaves room for the rest.
fn per_connection(max_in_flight: usize) -> usize {
    (max_in_flight / 2).clamp(1, WRITE_QUEUE)
}
/// How often a connection waiting for a request slot looks for one.
const SLOT_POLL: Duration = Duration::from_millis(5);
/// Replies already queued when a connection is closed still go out, for this long at most:
/// on a proxy's connection they belong to other users' logins than the one that closed it.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);
/// A reply that cannot be written for this long means the same.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a RadSec connection's replies go: its writer's queue, never waited on.
#[derive(Clone)]
pub(crate) struct TlsReplies {
    tx: mpsc::Sender<Arc<[u8]>>,
    pub(super) conn: Arc<Closer>,
}

impl TlsReplies {
    /// Queues `bytes`. If the queue is full the peer is not reading: the connection is
    /// closed, and its requests' replies are dropped (the NAS sends them again on a new
    /// connection) rather than waited for.
    pub(crate) fn send(&self, bytes: &Arc<[u8]>) {
        match self.tx.try_send(bytes.clone()) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.conn.not_reading(),
        }
    }
}

/// Closes one connection, and says why.
pub(super) struct Closer {
    /// Cancelled to close the connection: its reader and writer stop.
    pub(super) close: CancellationToken,
    /// The server's: cancelled when radmfa stops (the connection's requests in flight still
    /// finish and their replies go out; no new one starts).
    shutdown: CancellationToken,
    pub(super) app: Arc<AppState>,
    pub(super) peer: SocketAddr,
    /// The name of the connection's `[[client]]` entry, as the latest reload has it.
    nas: std::sync::Mutex<Arc<str>>,
    /// Set by the first caller of [`Closer::close_counted`]: checking the token and then
    /// cancelling it would let two callers racing each count and log the same close.
    counted: std::sync::atomic::AtomicBool,
    /// This connection's requests in flight: a peer reusing Identifiers with fresh
    /// authenticators could otherwise take every request slot (UDP's too), and have more
    /// replies due at once than its write queue holds.
    own: Arc<Semaphore>,
}

impl Closer {
    /// The connection's client name now.
    pub(super) fn nas(&self) -> Arc<str> {
        self.nas.lock().expect("radsec name lock").clone()
    }

    /// A reload kept the connection under the entry `name`: logs a rename once (the reader
    /// and the reload watcher both call this) and names the connection so from now on.
    pub(super) fn follow_name(&self, name: &str) {
        let mut nas = self.nas.lock().expect("radsec name lock");
        if &**nas != name {
            let peer = self.peer;
            info!(%peer, "radsec: connection of client {:?} now serves as {name:?} (reload)", &**nas);
            *nas = Arc::from(name);
        }
    }

    /// A reload left the connection without a client entry (`radsec_reload`).
    pub(super) fn dropped_by_reload(&self, why: &str) {
        if self.close_counted(&self.app.metrics.radsec_reload_closed) {
            let (peer, nas) = (self.peer, self.nas());
            warn!(%peer, nas = &*nas, "radsec: closing the connection after a reload: {why}");
        }
    }

    /// The periodic check ([`RECHECK`]) found the certificate expired, or no longer trusted
    /// (a CRL past its nextUpdate): counted apart from the reloads' closes, which an alert
    /// may expect only after a reload.
    pub(super) fn dropped_by_recheck(&self, why: &str) {
        if self.close_counted(&self.app.metrics.radsec_recheck_closed) {
            let (peer, nas) = (self.peer, self.nas());
            warn!(%peer, nas = &*nas, "radsec: closing the connection: {why}");
        }
    }

    /// RFC 6613 §2.6.4: over TCP, "silently discard" means discard and close: a packet that
    /// fails verification leaves the stream suspect (a wrong secret, a broken peer), and the
    /// NAS, which never retransmits on the same connection, learns of it only this way.
    pub(super) fn discarded(&self, why: &str) {
        if self.close_counted(&self.app.metrics.radsec_discard_closed) {
            let (peer, nas) = (self.peer, self.nas());
            warn!(%peer, nas = &*nas, "radsec: closing the connection after a packet that failed verification ({why})");
        }
    }

    /// A request slot for this connection's next request, waited for until `until` (the
    /// NAS does not retransmit on a TCP connection, so a request is not dropped at once as
    /// over UDP; meanwhile this connection is not read, and TCP holds the NAS back).
    ///
    /// Polled, not queued on the semaphore: tokio's semaphore is fair, and a queued waiter
    /// takes every permit given back before UDP's `try_acquire` sees one, so a few waiting
    /// connections would starve UDP entirely. `None` when the time is up (the connection is
    /// closed as overloaded), or when it is closed or radmfa stops meanwhile.
    pub(super) async fn wait_for_slot(
        &self,
        permits: &Arc<Semaphore>,
        until: tokio::time::Instant,
    ) -> Option<OwnedSemaphorePermit> {
        match poll_for_permit(permits, until, [&self.close, &self.shutdown]).await {
            Waited::Permit(permit) => Some(permit),
            Waited::TimedOut => {
                Metrics::inc(&self.app.metrics.overloaded);
                self.overloaded(DropKind::TlsOverloaded);
                None
            }
            // Closed, or radmfa stopping: not a request dropped for want of a slot.
            Waited::Stopped => None,
        }
    }

    /// One of this connection's own request slots ([`per_connection`]), waited for until
    /// `until` (then the connection is closed as overloaded, as for the shared slots);
    /// `None` then, or if it is closed or radmfa stops meanwhile. While it waits the
    /// connection is not read, and TCP holds the peer back.
    pub(super) async fn own_slot(
        &self,
        until: tokio::time::Instant,
    ) -> Option<OwnedSemaphorePermit> {
        tokio::select! {
            biased;
            _ = self.close.cancelled() => None,
            _ = self.shutdown.cancelled() => None,
            p = self.own.clone().acquire_owned() => p.ok(),
            _ = tokio::time::sleep_until(until) => {
                Metrics::inc(&self.app.metrics.overloaded);
                self.overloaded(DropKind::TlsConnectionShare);
                None
            }
        }
    }

    /// No request slot (the server's, or this connection's own share: `kind`) came free
    /// within half the request deadline: closed, so that the NAS sends again on a new
    /// connection (or to another server) rather than wait for ever.
    pub(super) fn overloaded(&self, kind: DropKind) {
        if self.close_counted(&self.app.metrics.radsec_overload_closed) {
            warn_drop(&self.app, kind, self.peer, Some(&self.nas()));
        }
    }

    fn not_reading(&self) {
        if self.close_counted(&self.app.metrics.radsec_not_reading) {
            warn_drop(
                &self.app,
                DropKind::TlsNotReading,
                self.peer,
                Some(&self.nas()),
            );
        }
    }

    /// Closes the connection and counts why, unless it is closed already: true when this
    /// call closed it (and its caller says why in the log).
    fn close_counted(&self, why: &std::sync::atomic::AtomicU64) -> bool {
        use std::sync::atomic::Ordering;
        if self.close.is_cancelled() || self.counted.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.close.cancel();
        Metrics::inc(why);
        true
    }
}

enum Waited {
    Permit(OwnedSemaphorePermit),
    TimedOut,
    Stopped,
}

/// Tries for a permit every [`SLOT_POLL`] until `until`, or until one of `stop` is
/// cancelled. Never queued on the semaphore (see [`Closer::wait_for_slot`]).
async fn poll_for_permit(
    permits: &Arc<Semaphore>,
    until: tokio::time::Instant,
    stop: [&CancellationToken; 2],
) -> Waited {
    loop {
        if let Ok(permit) = permits.clone().try_acquire_owned() {
            return Waited::Permit(permit);
        }
        if tokio::time::Instant::now() >= until {
            return Waited::TimedOut;
        }
        tokio::select! {
            biased;
            _ = stop[0].cancelled() => return Waited::Stopped,
            _ = stop[1].cancelled() => return Waited::Stopped,
            _ = tokio::time::sleep(SLOT_POLL) => {}
        }
    }
}

/// The TLS configuration, built again when one of its files changes on disk: a renewed
/// certificate or a new CRL takes effect for the next connection, without a restart.
/// Connections already open keep their session, and at a reload (SIGHUP) their client
/// certificate is checked again against the CA and CRL files as they are then
/// ([`Acceptors::still_trusted`]): revoking a NAS's certificate and reloading cuts it off.
pub struct Acceptors {
    cfg: RadsecConfig,
    current: std::sync::Mutex<Built>,
    /// Told when a changed file was found (used or not), so `cert_dates::watch_dates` sets
    /// the gauges then: `radmfa_radsec_files_unusable` lagged up to a minute behind the log.
    pub(super) changed: tokio::sync::Notify,
}

/// The TLS configuration in use, and what it was built from.
struct Built {
    stamps: Vec<FileStamp>,
    tls: Tls,
    /// The dates of the files the configuration was built from: what is served.
    dates: RadsecDates,
    /// Why the files on disk, changed since, could not be used (the previous ones still
    /// served), until a change that can.
    unusable: Option<String>,
}

/// One build of the TLS configuration: the acceptor, and its client-certificate verifier.
#[derive(Clone)]
struct Tls {
    acceptor: TlsAcceptor,
    verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
}

impl Acceptors {
    /// Builds the configuration; errors name the key and file.
    pub fn new(cfg: &RadsecConfig) -> anyhow::Result<Self> {
        let stamps = stamps(cfg);
        let tls = build(cfg)?;
        Ok(Acceptors {
            cfg: cfg.clone(),
            current: std::sync::Mutex::new(Built {
                stamps,
                tls,
                dates: RadsecDates::read(cfg),
                unusable: None,
            }),
            changed: tokio::sync::Notify::new(),
        })
    }

    /// The dates of the files being served, and why changed files on disk are not, if they
    /// are not (read after looking for changes, as a new connection would).
    pub fn served(&self) -> (RadsecDates, Option<String>) {
        self.refreshed();
        let cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        (cur.dates.clone(), cur.unusable.clone())
    }

    /// Whether the client certificate `chain` (leaf first) still verifies against the CA and
    /// CRL files as they are now: an open connection is checked at each reload, since its
    /// handshake saw the files as they were then. `Err` says why not.
    pub(super) fn still_trusted(&self, chain: &[CertificateDer<'static>]) -> Result<(), String> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err("it presented no client certificate".into());
        };
        let now = rustls::pki_types::UnixTime::now();
        self.refreshed()
            .verifier
            .verify_client_cert(leaf, intermediates, now)
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "its client certificate no longer verifies ({e}; {})",
                    described(leaf)
                )
            })
    }

    /// The `[radsec]` settings it was built from.
    pub fn config(&self) -> &RadsecConfig {
        &self.cfg
    }

    /// The configuration for a new connection. A few `stat` calls per connection (RadSec
    /// connections last): cheap next to the handshake.
    fn current(&self) -> TlsAcceptor {
        self.refreshed().acceptor
    }

    /// The configuration as the files on disk have it now (rebuilt if one changed).
    fn refreshed(&self) -> Tls {
        let stamps = stamps(&self.cfg);
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if stamps != cur.stamps {
            cur.stamps = stamps;
            self.changed.notify_one();
            match build(&self.cfg) {
                Ok(a) => {
                    cur.tls = a;
                    cur.dates = RadsecDates::read(&self.cfg);
                    cur.unusable = None;
                    info!("radsec: certificate, key, CA or CRL file changed; reloaded");
                }
                // A file caught half-written, say: keep serving with what worked; the next
                // change is tried again. Said again daily while it lasts (`watch_dates`),
                // and the date gauges keep showing what is served, not the file.
                Err(e) => {
                    warn!(
                        "radsec: a file changed but cannot be used, keeping the previous TLS \
                         configuration: {e:#}"
                    );
                    cur.unusable = Some(format!("{e:#}"));
                }
            }
        }
        cur.tls.clone()
    }
}

fn stamps(cfg: &RadsecConfig) -> Vec<FileStamp> {
    [
        Some(&cfg.cert_file),
        Some(&cfg.key_file),
        Some(&cfg.ca_file),
        cfg.crl_file.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|p| file_stamp::stamp(p))
    .collect()
}

/// The size of `cert`'s public key when it is an RSA key.
/// The key of `cert` said as a reason, when it is one ring cannot sign or verify with: an RSA key
/// under 2048 bits, or an ECDSA key on a curve other than P-256 and P-384 (P-521 is the
/// one people make). ring says only that it could not parse the key, or nothing at all
/// ("do not form a usable pair"), and the admin looked for a damaged file or a mismatch.
pub(crate) fn key_ring_cannot_use(cert: &CertificateDer<'_>, use_: KeyUse) -> Option<String> {
    // ring signs with RSA keys of 2048 to 4096 bits and verifies with 2048 to 8192.
    let most_rsa_bits = match use_ {
        KeyUse::Sign => 4096,
        KeyUse::Verify => 8192,
    };
    use x509_parser::public_key::PublicKey;
    let (_, x) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let spki = x.public_key();
    match spki.parsed().ok()? {
        PublicKey::RSA(rsa) if !(2048..=most_rsa_bits).contains(&rsa.key_size()) => {
            Some(format!("a {}-bit RSA key", rsa.key_size()))
        }
        PublicKey::EC(_) => {
            let curve = spki.algorithm.parameters.as_ref()?.as_oid().ok()?;
            match curve.to_id_string().as_str() {
                // P-256, P-384.
                "1.2.840.10045.3.1.7" | "1.3.132.0.34" => None,
                "1.3.132.0.35" => Some("an ECDSA P-521 key".into()),
                other => Some(format!("an ECDSA key on the curve {other}")),
            }
        }
        _ => None,
    }
}

/// What a key is for, in [`key_ring_cannot_use`]: ring takes larger RSA keys to verify
/// with than to sign with.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KeyUse {
    Sign,
    Verify,
}

/// The CAs of `ca_file` whose keys ring cannot verify with, each said as "SUBJECT has
/// REASON": every NAS certificate one of them signed is refused at its handshake
/// (BadSignature), so `config check` says it before the first NAS is turned away.
pub(crate) fn cas_ring_cannot_verify_with(ca_file: &std::path::Path) -> Vec<String> {
    let Ok(cas) = pem_certs(ca_file) else {
        return Vec::new();
    };
    cas.iter()
        .filter_map(|ca| {
            let what = key_ring_cannot_use(ca, KeyUse::Verify)?;
            let (_, x) = x509_parser::parse_x509_certificate(ca.as_ref()).ok()?;
            Some(format!("{:?} has {what}", x.subject().to_string()))
        })
        .collect()
}

/// What to make instead, after [`key_ring_cannot_use`]'s reason.
pub(crate) const KEYS_RING_SIGNS_WITH: &str = "radmfa's TLS signs with RSA keys of 2048 to \
     4096 bits, ECDSA P-256 or P-384, and Ed25519: make a new key (ECDSA P-256, or RSA 3072) \
     and have its certificate issued again";

/// What a CA's key must be, after [`cas_ring_cannot_verify_with`]'s reason.
pub(crate) const CAS_RING_VERIFIES: &str = "radmfa's TLS verifies with RSA keys of 2048 to \
     8192 bits, ECDSA P-256 or P-384, and Ed25519: the NAS certificates need a CA with such a \
     key";

/// The TLS server configuration from `[radsec]`; errors name the key and file.
fn build(cfg: &RadsecConfig) -> anyhow::Result<Tls> {
    // As at start (config::validate): files replaced since may not be open to everyone.
    use crate::config::validate::{not_for_everyone, not_writable_by_everyone};
    not_for_everyone("radsec.key_file", &cfg.key_file)?;
    not_writable_by_everyone("radsec.ca_file", &cfg.ca_file)?;
    if let Some(crl) = &cfg.crl_file {
        not_writable_by_everyone("radsec.crl_file", crl)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = pem_certs(&cfg.cert_file).context("radsec.cert_file")?;
    let key = rustls_pemfile::private_key(&mut read(&cfg.key_file).context("radsec.key_file")?)
        .with_context(|| format!("radsec.key_file: reading {}", cfg.key_file.display()))?
        .with_context(|| {
            // rustls_pemfile skips a PEM block it cannot use, so a key protected by a
            // passphrase read as no key at all.
            let encrypted = std::fs::read_to_string(&cfg.key_file)
                .is_ok_and(|t| t.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
            if encrypted {
                format!(
                    "radsec.key_file: {} holds a passphrase-protected key, which radmfa \
                     cannot read: store it unencrypted (`openssl pkey -in FILE -out NEW`), \
                     mode 0640 root:radmfa",
                    cfg.key_file.display()
                )
            } else {
                format!(
                    "radsec.key_file: no private key in {}",
                    cfg.key_file.display()
                )
            }
        })?;
    // The CAs another in the file issued go beside the NAS's chain, not among the anchors
    // (see `radsec_anchors`): the path then runs to the root, and the CRLs are asked about
    // every CA on it.
    let (anchors, intermediates) =
        super::radsec_anchors::split(pem_certs(&cfg.ca_file).context("radsec.ca_file")?);
    let mut roots = rustls::RootCertStore::empty();
    for ca in anchors.iter().cloned() {
        roots
            .add(ca)
            .with_context(|| format!("radsec.ca_file: {}", cfg.ca_file.display()))?;
    }
    let mut verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    );
    if let Some(path) = &cfg.crl_file {
        let crls = rustls_pemfile::crls(&mut read(path).context("radsec.crl_file")?)
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("radsec.crl_file: reading CRLs from {}", path.display()))?;
        anyhow::ensure!(
            !crls.is_empty(),
            "radsec.crl_file: no CRL in {}",
            path.display()
        );
        // Fail closed, as OpenSSL's CRL check does: a certificate whose CA has no CRL in
        // the file, or a CRL past its nextUpdate, gets no session.
        // Every certificate of the chain, intermediates included: a revoked intermediate CA
        // revokes what it issued (its CRL comes from a CA in ca_file, whose CRL the file
        // holds already), and a NAS certificate an intermediate CA issued needs that CA's
        // CRL in the file too, though that CA is in no ca_file (`cert_dates` says so).
        verifier = verifier.with_crls(crls).enforce_revocation_expiration();
    }
    let verifier = verifier
        .build()
        .context("radsec.ca_file / radsec.crl_file: client certificate verifier")?;
    let verifier: Arc<dyn rustls::server::danger::ClientCertVerifier> = Arc::new(
        super::radsec_anchors::WithIntermediates::new(verifier, &anchors, intermediates),
    );
    let unusable_key = certs
        .first()
        .and_then(|c| key_ring_cannot_use(c, KeyUse::Sign));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(certs, key)
        .map_err(|e| match unusable_key {
            Some(what) => anyhow::anyhow!(
                "radsec.key_file: {} is {what}, and {KEYS_RING_SIGNS_WITH}",
                cfg.key_file.display()
            ),
            None => anyhow::Error::new(e)
                .context("radsec.cert_file and radsec.key_file do not form a usable pair"),
        })?;
    // No session resumption: a resumed handshake asks for no certificate, so the client's
    // expiry and its CRL's nextUpdate would go unchecked for as long as it kept resuming
    // (rustls restores the chain it verified then). RadSec connections last; a full
    // handshake on each costs nothing that matters.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Tls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        verifier,
    })
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

/// Is `cert` (already verified against `ca_file`) issued to the DNS name `name`? That very
/// name among its subjectAltNames: a wildcard (`*.example.org`), which webpki's check for
/// servers accepts, does not pin one NAS (any host with such a certificate from an
/// enterprise CA would pass).
pub(super) fn issued_to(cert: &rustls::pki_types::CertificateDer<'_>, name: &str) -> bool {
    let Ok(dns) = rustls::pki_types::ServerName::try_from(name) else {
        return false;
    };
    webpki::EndEntityCert::try_from(cert).is_ok_and(|c| {
        c.verify_is_valid_for_subject_name(&dns).is_ok()
            && c.valid_dns_names()
                .any(|san| !san.contains('*') && san.eq_ignore_ascii_case(name))
    })
}

/// What a client certificate carries that its refusal turns on, for the log: its serial (in
/// hex, as `openssl x509 -serial` and a CRL print it), and its DNS subjectAltNames, the only
/// names `radsec_name` is matched against; without any, its subject CN, which an admin
/// reads as its name but which is not matched.
pub(super) fn described(cert: &CertificateDer<'_>) -> String {
    let Some(id) = Identity::of(cert) else {
        return "a certificate that cannot be parsed".into();
    };
    let serial = &id.serial;
    if !id.dns.is_empty() {
        return format!(
            "certificate serial {serial}, DNS names {}",
            id.dns.join(", ")
        );
    }
    match id.cn {
        Some(cn) => format!(
            "certificate serial {serial}, no DNS subjectAltName (its subject CN {cn:?} is not \
             matched: radsec_name must be one of its DNS subjectAltNames)"
        ),
        None => format!("certificate serial {serial}, no DNS subjectAltName"),
    }
}

/// A client certificate as the "connection up" line names it: its serial and its DNS
/// subjectAltNames, or its subject CN where it has none.
fn identified(cert: &CertificateDer<'_>) -> String {
    let Some(id) = Identity::of(cert) else {
        return "a certificate that cannot be parsed".into();
    };
    match (id.dns.is_empty(), id.cn) {
        (false, _) => format!("serial {}, DNS names {}", id.serial, id.dns.join(", ")),
        (true, Some(cn)) => format!("serial {}, subject CN {cn:?}", id.serial),
        (true, None) => format!("serial {}", id.serial),
    }
}

/// What a certificate is known by.
struct Identity {
    serial: String,
    /// Its DNS subjectAltNames, quoted.
    dns: Vec<String>,
    cn: Option<String>,
}

impl Identity {
    fn of(cert: &CertificateDer<'_>) -> Option<Identity> {
        use x509_parser::extensions::GeneralName;
        let (_, x) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
        let dns = match x.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(format!("{d:?}")),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let cn = x
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string);
        Some(Identity {
            serial: serial_hex(x.raw_serial()),
            dns,
            cn,
        })
    }
}

/// A serial number's DER bytes in upper-case hex, without the leading zero byte DER adds
/// to keep it positive: as OpenSSL prints it, for a search of the CA's index or a CRL.
fn serial_hex(raw: &[u8]) -> String {
    let raw = match raw {
        [0, rest @ ..] if !rest.is_empty() => rest,
        _ => raw,
    };
    raw.iter().map(|b| format!("{b:02X}")).collect()
}

/// What every RadSec listener shares: the TLS configuration, the request permits, and the
/// connection slots (for all listeners together).
#[derive(Clone)]
pub(super) struct Shared {
    pub acceptors: Arc<Acceptors>,
    pub permits: Arc<Semaphore>,
    pub slots: Arc<Slots>,
    /// `radsec.idle_timeout_secs`.
    pub idle: Duration,
}

/// Accepts RadSec connections on `listener` until `shutdown`.
pub(super) async fn accept_loop(
    app: Arc<AppState>,
    listener: TcpListener,
    shared: Shared,
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
        // Subscribed before the lookup: a reload in between shows as a change to follow.
        let reloads = app.clients_reloaded.subscribe();
        let Some(client) = app.client_for(peer.ip(), true) else {
            Metrics::inc(&app.metrics.unknown_client);
            warn_drop(&app, DropKind::UnknownClient, peer, None);
            continue;
        };
        // An entry for UDP only is no RadSec client: closed before the handshake.
        if !client.transport.radsec() {
            Metrics::inc(&app.metrics.unknown_client);
            warn_drop(&app, DropKind::WrongTransport, peer, Some(&client.name));
            continue;
        }
        // Replies are small and independent: without this, one written while the previous
        // is unacknowledged waits for the peer's delayed ACK (Nagle), up to 40 ms, as soon as
        // a proxy has several requests in flight on the connection.
        let _ = tcp.set_nodelay(true);
        let slot = match shared.slots.take(peer.ip(), &app).await {
            Ok(slot) => slot,
            Err(limit) => {
                warn_drop(&app, limit, peer, Some(&client.name));
                continue; // dropping `tcp` closes it
            }
        };
        let conn = Connection {
            app: app.clone(),
            peer,
            // The address this connection came in on (what the audit record names), not the
            // listener's, which is a wildcard by default.
            local: tcp.local_addr().ok().or(local),
            client: radsec_reload::as_radsec(&client),
            reloads,
            permits: shared.permits.clone(),
            idle: shared.idle,
            tracker: tracker.clone(),
            shutdown: shutdown.clone(),
            acceptors: shared.acceptors.clone(),
            checked: std::time::Instant::now(),
        };
        let handshake = Handshake::started(&shared.slots, peer.ip());
        tracker.spawn(conn.serve(tcp, shared.acceptors.current(), slot, handshake));
    }
}

/// Why a connection did not get through its TLS handshake.
enum Unshaken {
    /// The peer's fault, or a timeout: for the log and the metric, with rustls's words.
    Failed((HandshakeCause, String)),
    /// Cut short to give its slot to a newcomer (`radsec_slots`).
    Cut,
    /// radmfa is stopping.
    Stopping,
}

/// A connection's place among those in their TLS handshake (see `radsec_slots`).
struct Handshake {
    slots: Arc<Slots>,
    id: u64,
    cut: CancellationToken,
}

impl Handshake {
    fn started(slots: &Arc<Slots>, ip: std::net::IpAddr) -> Handshake {
        let (id, cut) = slots.handshake_started(ip);
        Handshake {
            slots: slots.clone(),
            id,
            cut,
        }
    }
}

/// Over however it ended (a task dropped at shutdown included): no stale entry is cut later.
impl Drop for Handshake {
    fn drop(&mut self) {
        self.slots.handshake_done(self.id);
    }
}

struct Connection {
    app: Arc<AppState>,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    /// The entry this connection runs with: looked up again after each reload.
    client: Arc<ClientConfig>,
    reloads: watch::Receiver<u64>,
    permits: Arc<Semaphore>,
    idle: Duration,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    /// The TLS files as they are now: a reload checks the connection's certificate again.
    acceptors: Arc<Acceptors>,
    /// When its entry and certificate were last checked (see [`RECHECK`]).
    checked: std::time::Instant,
}

/// How often a connection in use has its entry and certificate checked again without a
/// reload: a client certificate that expires, or a CRL past its nextUpdate, must end the
/// session too (fail closed), not only new handshakes. A busy proxy's connection may never
/// be idle long enough to close, and nobody reloads for an expiry.
const RECHECK: Duration = Duration::from_secs(60);

impl Connection {
    /// Serves one connection; `slot` is held until its last reply is written and its reader
    /// has stopped: a reader still blocked on the socket holds the session and the socket,
    /// so it must count against the caps as long as it does.
    async fn serve(
        mut self,
        tcp: TcpStream,
        acceptor: TlsAcceptor,
        slot: Slot,
        handshake: Handshake,
    ) {
        let slot = Arc::new(slot);
        let peer = self.peer;
        let nas: Arc<str> = Arc::from(self.client.name.as_str());
        let shaken = tokio::select! {
            r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => match r {
                Ok(Ok(tls)) => Ok(tls),
                Ok(Err(e)) => Err(Unshaken::Failed(handshake_failure(&e))),
                Err(_) => Err(Unshaken::Failed((HandshakeCause::TimedOut, "timed out".into()))),
            },
            // Cut to make room for a newcomer: counted as a connection_limit close where it
            // was cut, and logged as that, not as a certificate problem.
            _ = handshake.cut.cancelled() => Err(Unshaken::Cut),
            // A host that opened a connection and sent nothing must not hold a stop for the
            // whole grace period (nor have it logged as requests abandoned).
            _ = self.shutdown.cancelled() => Err(Unshaken::Stopping),
        };
        drop(handshake);
        let tls = match shaken {
            Ok(tls) => tls,
            Err(Unshaken::Stopping) => return,
            Err(unshaken) => {
                let (kind, why) = match unshaken {
                    Unshaken::Failed((cause, why)) => {
                        Metrics::inc(cause.counter(&self.app.metrics));
                        (DropKind::TlsHandshake(cause), why)
                    }
                    Unshaken::Cut | Unshaken::Stopping => (
                        DropKind::TlsConnectionLimit,
                        "cut short: every connection slot was taken, and this one had \
                         been in its handshake longest"
                            .to_string(),
                    ),
                };
                // Rate-limited like other drops: any host in a client's network can try.
                let now = std::time::Instant::now();
                if let Some(w) = self.app.drops.record(kind, peer.ip(), Some(&nas), now) {
                    w.log(Some(&why));
                }
                return;
            }
        };
        // The client's chain, leaf first, kept to be checked again at each reload.
        let chain: Arc<[CertificateDer<'static>]> = tls
            .get_ref()
            .1
            .peer_certificates()
            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default();
        let leaf = chain.first();
        if !radsec_reload::certificate_fits(&self.client, leaf) {
            Metrics::inc(&self.app.metrics.radsec_handshake_radsec_name);
            let now = std::time::Instant::now();
            let kind = DropKind::TlsCertificateName;
            if let Some(w) = self.app.drops.record(kind, peer.ip(), Some(&nas), now) {
                let name = self.client.radsec_name.as_deref().unwrap_or_default();
                // What the certificate does carry: the admin compares it with the name.
                let cert = leaf.map_or_else(|| "no certificate".into(), described);
                w.log(Some(&format_args!("radsec_name = {name:?}; {cert}")));
            }
            return;
        }
        // Which certificate it is, and over what: on an entry without radsec_name any
        // certificate from ca_file gets in, and nothing else would tell afterwards which
        // one (a stolen NAS certificate used from that entry's addresses, say).
        let version = tls
            .get_ref()
            .1
            .protocol_version()
            .map_or_else(|| "TLS".to_string(), |v| format!("{v:?}"));
        let cert = leaf.map_or_else(|| "no certificate".into(), identified);
        info!(%peer, nas = &*nas, tls = %version, %cert, "radsec: connection up");
        let (mut rd, wr) = tokio::io::split(tls);
        let (tx, rx) = mpsc::channel::<Arc<[u8]>>(WRITE_QUEUE);
        let closer = Arc::new(Closer {
            close: CancellationToken::new(),
            shutdown: self.shutdown.clone(),
            app: self.app.clone(),
            peer,
            nas: std::sync::Mutex::new(nas.clone()),
            counted: Default::default(),
            own: Arc::new(Semaphore::new(per_connection(
                self.app.config().server.max_in_flight,
            ))),
        });
        self.tracker
            .spawn(write_loop(wr, rx, closer.clone(), slot.clone()));
        let reader_done = CancellationToken::new();
        let _reader_done = reader_done.clone().drop_guard();
        self.tracker.spawn(radsec_reload::close_when_dropped(
            closer.clone(),
            self.reloads.clone(),
            chain.clone(),
            self.acceptors.clone(),
            reader_done,
        ));
        let close = closer.close.clone();
        let reply_to = ReplyTo::Tls(TlsReplies {
            tx,
            conn: closer.clone(),
        });
        let idle = self.idle;
        let mut buf = vec![0u8; MAX_PACKET];
        loop {
            // Biased: once the connection is closed (or radmfa stops), a packet already
            // buffered behind the one that closed it is not read and served.
            let header = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => break,
                _ = close.cancelled() => break,
                r = tokio::time::timeout(idle, rd.read_exact(&mut buf[..4])) => r,
            };
            let Ok(header) = header else {
                idle_close(&closer, idle, "");
                break;
            };
            if header.is_err() {
                break; // closed by the client, or broken
            }
            let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
            if !(20..=MAX_PACKET).contains(&len) {
                Metrics::inc(&self.app.metrics.received);
                Metrics::inc(&self.app.metrics.malformed);
                // Closed like any packet that fails verification (and counted so).
                closer.discarded(&format!(
                    "a Length of {len}, outside 20..{MAX_PACKET}: the framing is lost"
                ));
                break;
            }
            // The rest of the packet gets no longer than a silent connection would, and
            // none at all once the connection is closed (the packet before it may have
            // closed it, with this header already read).
            let body = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => break,
                _ = close.cancelled() => break,
                r = tokio::time::timeout(idle, rd.read_exact(&mut buf[4..len])) => r,
            };
            match body {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => break, // closed by the client, or broken
                // A peer that stalls mid-packet is as idle as one that sends nothing.
                Err(_) => {
                    idle_close(&closer, idle, ", in the middle of a packet");
                    break;
                }
            }
            Metrics::inc(&self.app.metrics.received);
            if !self.follow_reload(&chain, &closer) {
                break; // this request too is not served
            }
            // Verified here, before the next packet is read: one that fails may close the
            // connection, and then nothing the peer sent behind it (in the same write, say)
            // may be worked out. Only the checks wait; valid requests still run side by side.
            let Some(req) = verify(&self.app, &reply_to, &self.client, peer, &buf[..len]) else {
                continue; // the top of the loop stops if this closed the connection
            };
            let at = Arrival {
                client: self.client.clone(),
                src: peer,
                local: self.local,
                reply_to: &reply_to,
                verified: Some(req),
            };
            dispatch(&self.app, &self.permits, &self.tracker, at, &buf[..len]).await;
        }
        info!(%peer, nas = &*closer.nas(), "radsec: connection closed");
        drop(slot); // the writer may hold it a little longer, flushing
    }
}

/// The connection sent nothing for `idle` (`where_` says more): counted and logged, and
/// its reader stops.
fn idle_close(closer: &Closer, idle: Duration, where_: &str) {
    Metrics::inc(&closer.app.metrics.radsec_idle_closed);
    let (peer, nas) = (closer.peer, closer.nas());
    info!(%peer, nas = &*nas, "radsec: closing the connection, idle for {} s{where_}", idle.as_secs());
}

impl Connection {
    /// After a reload, takes the entry the new table has for this connection: true to go
    /// on, false if the connection was closed instead (`radsec_reload`).
    fn follow_reload(&mut self, chain: &[CertificateDer<'static>], closer: &Closer) -> bool {
        let reloaded = self.reloads.has_changed().unwrap_or(false);
        if !reloaded && self.checked.elapsed() < RECHECK {
            return true;
        }
        if reloaded {
            self.reloads.mark_unchanged();
        }
        self.checked = std::time::Instant::now();
        match radsec_reload::entry_for(&self.app, self.peer, chain, &self.acceptors) {
            Ok(client) => {
                closer.follow_name(&client.name);
                self.client = client;
                true
            }
            Err(why) => {
                if reloaded {
                    closer.dropped_by_reload(&why);
                } else {
                    closer.dropped_by_recheck(&why);
                }
                false
            }
        }
    }
}

/// Writes the queued replies until the reader and every request of the connection are done
/// (they hold the queue's senders) or the connection is closed, then ends the TLS session.
/// Holds the connection's slot.
async fn write_loop(
    mut wr: WriteHalf<TlsStream<TcpStream>>,
    mut rx: mpsc::Receiver<Arc<[u8]>>,
    conn: Arc<Closer>,
    _slot: Arc<Slot>,
) {
    let close = conn.close.clone();
    loop {
        let bytes = tokio::select! {
            _ = close.cancelled() => {
                // Closed for what one request did (or a reload, or overload): the replies
                // other requests already have still go out, briefly. A peer that does not
                // read gets them no faster; the timeout ends that.
                let _ = tokio::time::timeout(FLUSH_TIMEOUT, async {
                    while let Ok(bytes) = rx.try_recv() {
                        if wr.write_all(&bytes).await.is_err() {
                            return;
                        }
                    }
                    let _ = wr.shutdown().await;
                })
                .await;
                return;
            }
            b = rx.recv() => match b {
                Some(b) => b,
                None => break,
            },
        };
        // The replies queued meanwhile go with it, then a flush: tokio-rustls may keep the
        // encrypted records it could not write yet (the socket full), and without a flush
        // they waited for the next reply, which on a quiet connection may never come.
        let written = tokio::time::timeout(WRITE_TIMEOUT, async {
            wr.write_all(&bytes).await?;
            while let Ok(more) = rx.try_recv() {
                wr.write_all(&more).await?;
            }
            wr.flush().await
        });
        match written.await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                close.cancel(); // broken: the reader stops too
                return;
            }
            Err(_) => {
                conn.not_reading();
                return;
            }
        }
    }
    let _ = tokio::time::timeout(WRITE_TIMEOUT, wr.shutdown()).await;
}

/// Why a RadSec handshake failed, as the log line and its rate limit tell causes apart. Each
/// cause from one source gets a line of its own: with one line a minute for all of them, a
/// revoked certificate after a port probe was logged only as a count under the probe's
/// "timed out". TLS peers cannot spoof their address, and the set is small, so this stays
/// bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HandshakeCause {
    TimedOut,
    /// The connection closed or broke before the handshake was done (a port probe).
    Closed,
    /// Not TLS, or none that both sides speak.
    Protocol,
    NoCertificate,
    UnknownIssuer,
    /// Expired or not yet valid.
    Dates,
    Revoked,
    /// No CRL for its CA in crl_file, or one past its nextUpdate (fails closed).
    RevocationUnknown,
    /// A certificate refused for anything else (its key usage, encoding, algorithm).
    OtherCertificate,
    /// The NAS sent a fatal alert: it refused radmfa's certificate, or the handshake.
    PeerRefused,
    Other,
}

impl HandshakeCause {
    /// What it means and what to do about it, for the admin reading the log. Every one
    /// starts alike, for a search of the log that finds them all.
    pub fn explain(self) -> &'static str {
        use HandshakeCause::*;
        match self {
            TimedOut => {
                "its RadSec (TLS) handshake failed: not done within 10 s (a port scan or \
                 health check that sends nothing, or a NAS that is stuck)"
            }
            Closed => {
                "its RadSec (TLS) handshake failed: the connection closed before it was done \
                 (a port scan or health check, or a NAS that gave up: its log says why)"
            }
            Protocol => {
                "its RadSec (TLS) handshake failed: not TLS at all, or no TLS version (1.2, \
                 1.3) or cipher suite in common with the NAS"
            }
            NoCertificate => {
                "its RadSec (TLS) handshake failed: the NAS presented no client certificate, \
                 which RadSec requires (mutual TLS); give the NAS its certificate and key, \
                 with a key radmfa's TLS takes (ECDSA P-256 or P-384, Ed25519, or RSA of 2048 \
                 bits or more): a NAS whose key is none of these (P-521, say) sends none"
            }
            UnknownIssuer => {
                "its RadSec (TLS) handshake failed: its client certificate is not signed by a \
                 CA in radsec.ca_file (or the NAS does not send the intermediate CA between)"
            }
            Dates => {
                "its RadSec (TLS) handshake failed: its client certificate is expired or not \
                 yet valid; renew it, or check both hosts' clocks"
            }
            Revoked => {
                "its RadSec (TLS) handshake failed: its client certificate is revoked by a CRL \
                 in radsec.crl_file"
            }
            RevocationUnknown => {
                "its RadSec (TLS) handshake failed: its client certificate's revocation \
                 cannot be checked against radsec.crl_file, and the check fails closed"
            }
            OtherCertificate => {
                "its RadSec (TLS) handshake failed: its client certificate cannot serve a TLS \
                 client (its key usage, encoding or signature algorithm: see the brackets)"
            }
            PeerRefused => {
                "its RadSec (TLS) handshake failed: the NAS refused radmfa's side of it with a \
                 fatal alert, most often radmfa's server certificate (radsec.cert_file \
                 expired, missing its intermediate CA, or not from a CA the NAS trusts), else \
                 for the NAS's TLS settings (versions, ciphers)"
            }
            Other => "its RadSec (TLS) handshake failed",
        }
    }

    /// Its reason's counter in `radmfa_radsec_handshake_failures_total`: coarser than the
    /// log, for an alert to tell the NAS's certificate trouble from probes and from a NAS
    /// refusing radmfa's own certificate.
    fn counter(self, m: &Metrics) -> &std::sync::atomic::AtomicU64 {
        use HandshakeCause::*;
        match self {
            TimedOut => &m.radsec_handshake_timeout,
            Closed => &m.radsec_handshake_closed,
            Protocol => &m.radsec_handshake_protocol,
            NoCertificate | UnknownIssuer | Dates | Revoked | RevocationUnknown
            | OtherCertificate => &m.radsec_handshake_client_certificate,
            PeerRefused => &m.radsec_handshake_peer_refused,
            Other => &m.radsec_handshake_other,
        }
    }
}

/// A failed handshake's cause, and the text for the log's brackets: rustls's words, with
/// what to do where they say little.
fn handshake_failure(e: &std::io::Error) -> (HandshakeCause, String) {
    use rustls::CertificateError as C;
    use HandshakeCause::*;
    let text = e.to_string();
    let Some(tls) = e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) else {
        // Not rustls's: the socket closed or broke (EOF, reset) in the middle.
        return (Closed, text);
    };
    let cause = match tls {
        rustls::Error::AlertReceived(alert) => return (PeerRefused, alert_hint(*alert, text)),
        rustls::Error::NoCertificatesPresented => NoCertificate,
        rustls::Error::InvalidMessage(_)
        | rustls::Error::InappropriateMessage { .. }
        | rustls::Error::InappropriateHandshakeMessage { .. }
        | rustls::Error::PeerIncompatible(_)
        | rustls::Error::PeerMisbehaved(_) => Protocol,
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => UnknownIssuer,
            // Its CA may well be in ca_file: the signature over it could not be checked,
            // most often a key radmfa's TLS does not take (RSA under 2048 bits, P-521)
            // in the certificate's CA.
            C::BadSignature => return (OtherCertificate, weak_key(text)),
            C::Expired | C::ExpiredContext { .. } => Dates,
            C::NotValidYet | C::NotValidYetContext { .. } => Dates,
            C::Revoked => Revoked,
            C::UnknownRevocationStatus => return (RevocationUnknown, no_crl(text)),
            C::ExpiredRevocationList | C::ExpiredRevocationListContext { .. } => RevocationUnknown,
            _ => OtherCertificate,
        },
        _ => Other,
    };
    (cause, text)
}

/// webpki's `BadSignature`: the chain's signature did not verify. Said as the CA not being
/// in ca_file, it sent the admin to a file that held the CA.
fn weak_key(text: String) -> String {
    format!(
        "{text}: the signature on the NAS's certificate could not be checked against its CA; \
         most often the CA's key (or the certificate's) is one radmfa's TLS does not take: \
         RSA under 2048 bits, or ECDSA P-521 (P-256, P-384, Ed25519 and RSA of 2048 bits or \
         more are taken)"
    )
}

/// webpki's `UnknownRevocationStatus`, said so that the admin looking at a refused NAS can
/// act on it: a CA in ca_file without a CRL in crl_file fails closed.
fn no_crl(text: String) -> String {
    format!(
        "{text}: radsec.crl_file holds no CRL from the CA that issued this certificate \
         (in ca_file, or an intermediate CA the NAS sends), or from a CA above it in its \
         chain; add that CA's CRL to the file"
    )
}

/// The alert the NAS sent, with where to look for the common ones: the NAS's log has the
/// details, but the admin reading radmfa's needs to know which side to fix.
fn alert_hint(alert: rustls::AlertDescription, text: String) -> String {
    use rustls::AlertDescription as A;
    let hint = match alert {
        A::UnknownCA => "the NAS does not trust the CA that issued radsec.cert_file",
        A::CertificateExpired => {
            "radsec.cert_file is expired or not yet valid, as the NAS's clock has it"
        }
        A::BadCertificate | A::CertificateUnknown | A::UnsupportedCertificate => {
            "the NAS does not accept radsec.cert_file (its name, key usage or chain)"
        }
        A::CertificateRevoked => "the NAS holds radsec.cert_file as revoked",
        A::ProtocolVersion | A::HandshakeFailure | A::InsufficientSecurity => {
            "no TLS version or cipher suite in common with the NAS"
        }
        _ => return text,
    };
    format!("{text}: {hint}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    /// A RadSec connection waiting for a slot must not get ahead of UDP, which only ever
    /// tries once: a permit given back is there for the next `try_acquire`, not handed to
    /// the waiter (as a queued `acquire` on tokio's fair semaphore would have it).
    #[tokio::test]
    async fn a_waiting_connection_does_not_take_a_freed_slot_ahead_of_udp() {
        let permits = Arc::new(Semaphore::new(1));
        let held = permits.clone().try_acquire_owned().unwrap();
        let (close, shutdown) = (CancellationToken::new(), CancellationToken::new());
        let waiter = {
            let (permits, close, shutdown) = (permits.clone(), close.clone(), shutdown.clone());
            tokio::spawn(async move {
                let until = Instant::now() + Duration::from_secs(5);
                matches!(
                    poll_for_permit(&permits, until, [&close, &shutdown]).await,
                    Waited::Permit(_)
                )
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        let udp = permits.clone().try_acquire_owned();
        assert!(udp.is_ok(), "the freed slot went to the waiting connection");
        drop(udp);
        assert!(
            waiter.await.unwrap(),
            "the waiter gets the slot once it is free"
        );
    }

    #[tokio::test]
    async fn a_wait_ends_when_the_connection_closes_or_time_is_up() {
        let permits = Arc::new(Semaphore::new(0));
        let (close, shutdown) = (CancellationToken::new(), CancellationToken::new());
        let soon = Instant::now() + Duration::from_millis(30);
        assert!(matches!(
            poll_for_permit(&permits, soon, [&close, &shutdown]).await,
            Waited::TimedOut
        ));
        shutdown.cancel();
        let later = Instant::now() + Duration::from_secs(60);
        let started = Instant::now();
        assert!(matches!(
            poll_for_permit(&permits, later, [&close, &shutdown]).await,
            Waited::Stopped
        ));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    /// A chain whose signature does not verify (an RSA-1024 CA listed in ca_file) is not
    /// said to be from a CA missing from ca_file: the log named a file that held the CA.
    #[test]
    fn a_bad_signature_is_not_called_an_unknown_ca() {
        let tls = |c| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::InvalidCertificate(c),
            )
        };
        let (cause, text) = handshake_failure(&tls(rustls::CertificateError::BadSignature));
        assert_eq!(cause, HandshakeCause::OtherCertificate);
        assert!(text.contains("RSA under 2048 bits"), "{text}");
        let (cause, _) = handshake_failure(&tls(rustls::CertificateError::UnknownIssuer));
        assert_eq!(cause, HandshakeCause::UnknownIssuer);
    }
}
