//! TLS to the directory: the rustls client configuration for `ldaps://` and StartTLS, from
//! the system trust store, a CA file, or (tests only) no verification at all.

use std::fmt;
use std::sync::Arc;

use super::ldap::LdapSettings;
use super::AuthError;

fn tls_error(msg: impl fmt::Display) -> AuthError {
    AuthError::Tls(msg.to_string())
}

/// The rustls client configuration (the CA file's certificates, or the system's), or `None`
/// when no URL uses TLS.
pub(super) fn tls_config(
    settings: &LdapSettings,
) -> Result<Option<Arc<rustls::ClientConfig>>, AuthError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?;
    if settings.tls_insecure_skip_verify {
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(danger::NoServerVerification(provider)))
            .with_no_client_auth();
        return Ok(Some(Arc::new(config)));
    }
    let Some(path) = &settings.ca_file else {
        let tls = settings.starttls
            || settings
                .urls
                .iter()
                .any(|u| u.to_ascii_lowercase().starts_with("ldaps://"));
        if !tls {
            return Ok(None);
        }
        return Ok(Some(Arc::new(
            builder
                .with_root_certificates(system_roots()?)
                .with_no_client_auth(),
        )));
    };
    let pem = std::fs::read(path)
        .map_err(|e| tls_error(format_args!("reading CA file {}: {e}", path.display())))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| tls_error(format_args!("CA file {}: {e}", path.display())))?;
        roots
            .add(cert)
            .map_err(|e| tls_error(format_args!("CA file {}: {e}", path.display())))?;
    }
    if roots.is_empty() {
        return Err(tls_error(format_args!(
            "CA file {} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(Some(Arc::new(
        builder.with_root_certificates(roots).with_no_client_auth(),
    )))
}

/// The system's trusted CA certificates (rustls-native-certs: `SSL_CERT_FILE` /
/// `SSL_CERT_DIR`, else OpenSSL's locations). Loaded here, not left to ldap3, which throws
/// the whole store away when any one file in it fails to load (a damaged or
/// unreadable file in /etc/ssl/certs), after which every directory certificate is "unknown issuer" with
/// nothing to say why. A certificate that cannot be read is left out with a warning; none
/// at all is an error at start, naming the fix.
fn system_roots() -> Result<rustls::RootCertStore, AuthError> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "ldap: a system CA certificate could not be read; left out");
    }
    let mut roots = rustls::RootCertStore::empty();
    let (_, unusable) = roots.add_parsable_certificates(found.certs);
    if unusable > 0 {
        tracing::warn!(
            unusable,
            "ldap: system CA certificates that rustls cannot use were left out"
        );
    }
    if roots.is_empty() {
        return Err(tls_error(
            "no trusted CA certificate in the system store (install ca-certificates), and \
             [ldap] ca_file is not set: set ca_file to the PEM file of the directory's CA",
        ));
    }
    Ok(roots)
}

mod danger {
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    /// `tls_insecure_skip_verify`: any certificate is accepted (the handshake signatures are
    /// still checked, so the peer holds the key of the certificate it sent).
    #[derive(Debug)]
    pub(super) struct NoServerVerification(pub(super) Arc<CryptoProvider>);

    impl ServerCertVerifier for NoServerVerification {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}
