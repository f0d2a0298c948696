//! One connection to a directory server: opened with TCP keepalive, and able to say how it
//! ended when an operation's answer never came.
//!
//! ldap3 opens its own socket, with no keepalive, unless it is handed one
//! (`LdapConnSettings::set_std_stream`): so the socket is opened here, as ldap3 would (the
//! URL's host and port, 389 or 636 by default), keepalive set, and ldap3 does the rest (TLS,
//! StartTLS, LDAP) on it. Keepalive matters for pooled connections that sit idle: its probes
//! are traffic, which keeps a firewall's idle timer from dropping the connection's state,
//! and a peer that lost it answers them with a reset, which closes the connection here
//! before a login finds it dead (or, silently dropped, waits out `timeout_ms` on it).

use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, StdStream};
use tokio::task::JoinHandle;

use super::ldap_pool::PoolConn;

/// Keepalive probes start after this long without traffic: below the idle timeouts of the
/// firewalls and NAT gateways a branch office's directory traffic crosses (AWS NAT 350 s,
/// Azure's load balancer 4 min, most stateful firewalls an hour).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
/// Between unanswered probes; after [`KEEPALIVE_PROBES`] of them the kernel closes the
/// connection: a peer gone without a word is noticed in about a minute of idleness.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_PROBES: u32 = 3;

/// How long to wait for the driver's last word once an operation's answer was lost: it
/// ends at the same moment, on another task.
const END_REASON_WAIT: Duration = Duration::from_millis(200);

/// An open connection: ldap3's handle, and the task that drives it.
pub(super) struct LdapConn {
    pub(super) ldap: Ldap,
    /// Ends with the connection, saying how (see [`ended_by`]).
    driver: JoinHandle<String>,
}

impl PoolConn for LdapConn {
    fn is_closed(&mut self) -> bool {
        self.ldap.is_closed()
    }
}

impl LdapConn {
    /// Connects to `url` (its TCP socket with keepalive), with `settings` for the rest. No
    /// timeout of its own: the caller bounds the whole of it with `connect_timeout`.
    pub(super) async fn open(url: &str, settings: &LdapConnSettings) -> Result<Self, LdapError> {
        let stream = keepalive_socket(url).await?;
        let settings = settings.clone().set_std_stream(StdStream::Tcp(stream));
        let (conn, ldap) = LdapConnAsync::with_settings(settings, url).await?;
        let url = url.to_string();
        let driver = tokio::spawn(async move {
            let ended = ended_by(conn.drive().await);
            tracing::debug!(%url, how = %ended, "LDAP connection ended");
            ended
        });
        Ok(LdapConn { ldap, driver })
    }

    /// Why an operation's answer was lost with `e` (ldap3's "result recv error: channel
    /// closed" when the connection ended under it): how the connection ended, "connection
    /// reset", "connection closed by the server" or the socket's error; `e` itself when the
    /// connection did not end.
    pub(super) async fn end_reason(&mut self, e: &LdapError) -> String {
        match tokio::time::timeout(END_REASON_WAIT, &mut self.driver).await {
            Ok(Ok(ended)) => ended,
            _ => e.to_string(),
        }
    }
}

/// What `LdapConnAsync::drive` returning says: it returns `Ok` when the stream ended (the
/// server's FIN, or this side closing), an I/O error for a reset or a failed write.
fn ended_by(driven: Result<(), LdapError>) -> String {
    match driven {
        Ok(()) => "connection closed by the server".into(),
        Err(LdapError::Io { source }) if source.kind() == std::io::ErrorKind::ConnectionReset => {
            "connection reset".into()
        }
        Err(e) => format!("connection failed: {e}"),
    }
}

/// The TCP connection ldap3 would open for `url`, with keepalive on. `ldapi://` is not
/// accepted by the configuration, so only TCP is met here.
async fn keepalive_socket(url: &str) -> Result<std::net::TcpStream, LdapError> {
    let parsed = url::Url::parse(url)?;
    let default_port = if parsed.scheme().eq_ignore_ascii_case("ldaps") {
        636
    } else {
        389
    };
    let port = parsed.port().unwrap_or(default_port);
    // As ldap3 does: host_str keeps an IPv6 address's brackets, which "host:port" needs.
    let host = match parsed.host_str() {
        Some("") | None => "localhost",
        Some(h) => h,
    };
    let stream = tokio::net::TcpStream::connect(format!("{host}:{port}")).await?;
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive)?;
    Ok(stream.into_std()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_and_a_close_are_told_apart() {
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(
            ended_by(Err(LdapError::Io { source: reset })),
            "connection reset"
        );
        assert_eq!(ended_by(Ok(())), "connection closed by the server");
    }

    #[tokio::test]
    async fn the_socket_has_keepalive_on() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("ldap://{}", listener.local_addr().unwrap());
        let stream = keepalive_socket(&url).await.unwrap();
        let sock = socket2::SockRef::from(&stream);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.keepalive_time().unwrap(), KEEPALIVE_IDLE);
        assert_eq!(sock.keepalive_interval().unwrap(), KEEPALIVE_INTERVAL);
    }
}
