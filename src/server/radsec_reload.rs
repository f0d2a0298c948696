//! A RadSec connection after a reload (SIGHUP swaps the `[[client]]` table).
//!
//! A UDP request looks its client up as it arrives, so a reload applies to the next one. A
//! RadSec connection is looked up once, when it is accepted, and may stay open for days; so
//! it follows the table too: each request after a reload runs with the entry the new table
//! has for the connection's address, and a connection whose address has lost its entry,
//! whose certificate no longer matches the entry's `radsec_name`, or whose certificate the
//! CA and CRL files no longer accept (revoked, expired), is closed at once — also while it
//! sits idle. Removing a NAS from the file, or revoking its certificate, and reloading cuts
//! it off.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_util::sync::CancellationToken;

use super::radsec::{described, issued_to, Acceptors, Closer, RADSEC_SECRET};
use crate::app::AppState;
use crate::config::ClientConfig;
use crate::secret::Secret;

/// The client entry a connection from `peer` presenting `chain` (leaf first) runs with, as
/// the live table has it; or why the connection may not go on: no entry, a certificate not
/// issued to the entry's `radsec_name`, or one the CA and CRL files no longer accept.
pub(super) fn entry_for(
    app: &AppState,
    peer: SocketAddr,
    chain: &[CertificateDer<'static>],
    acceptors: &Acceptors,
) -> Result<Arc<ClientConfig>, String> {
    let Some(client) = app.client_for(peer.ip(), true) else {
        return Err("no [[client]] entry covers its address any more".into());
    };
    if !client.transport.radsec() {
        return Err(format!(
            "client {:?}'s entry is for UDP only now (transport)",
            client.name
        ));
    }
    acceptors.still_trusted(chain)?;
    if !certificate_fits(&client, chain.first()) {
        return Err(format!(
            "its certificate is not issued to client {:?}'s radsec_name {:?} ({})",
            client.name,
            client.radsec_name.as_deref().unwrap_or_default(),
            chain
                .first()
                .map_or_else(|| "no certificate".into(), described)
        ));
    }
    Ok(as_radsec(&client))
}

/// Does the client certificate `leaf` fit `client`'s `radsec_name` (any does without one)?
pub(super) fn certificate_fits(client: &ClientConfig, leaf: Option<&CertificateDer<'_>>) -> bool {
    match &client.radsec_name {
        Some(name) => leaf.is_some_and(|cert| issued_to(cert, name)),
        None => true,
    }
}

/// `client` as a RadSec connection uses it: over TLS the shared secret is "radsec".
pub(super) fn as_radsec(client: &ClientConfig) -> Arc<ClientConfig> {
    Arc::new(ClientConfig {
        secret: Secret::from(RADSEC_SECRET),
        ..client.clone()
    })
}

/// Closes an idle connection as soon as a reload leaves it without an entry, and names it
/// after its entry when a reload renamed that; ends when the connection does (closed, or
/// `done`: its reader finished).
pub(super) async fn close_when_dropped(
    conn: Arc<Closer>,
    mut reloads: watch::Receiver<u64>,
    chain: Arc<[CertificateDer<'static>]>,
    acceptors: Arc<Acceptors>,
    done: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = conn.close.cancelled() => return,
            _ = done.cancelled() => return,
            r = reloads.changed() => if r.is_err() { return },
        }
        match entry_for(&conn.app, conn.peer, &chain, &acceptors) {
            Ok(client) => conn.follow_name(&client.name),
            Err(why) => {
                conn.dropped_by_reload(&why);
                return;
            }
        }
    }
}
