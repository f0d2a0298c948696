//! One connection to a directory server, able to say how it ended when an operation's
//! answer never came: ldap3's own error for that is "result recv error: channel closed",
//! whatever happened to the connection.

use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError};
use tokio::task::JoinHandle;

use super::ldap_pool::PoolConn;

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
    /// Connects to `url` with `settings`. No timeout of its own: the caller bounds the whole
    /// of it with `connect_timeout`.
    pub(super) async fn open(url: &str, settings: &LdapConnSettings) -> Result<Self, LdapError> {
        let (conn, ldap) = LdapConnAsync::with_settings(settings.clone(), url).await?;
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
}
