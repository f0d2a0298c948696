//! TLS to the directory: the rustls client configuration for `ldaps://` and StartTLS, from
//! the system trust store, a CA file, or (tests only) no verification at all.

use std::fmt;
use std::sync::Arc;

use super::ldap::LdapSettings;
use super::AuthError;

fn tls_error(msg: impl fmt::Display) -> AuthError {
    AuthError::Tls(msg.to_string())
}

/// The rustls client configuration, or `None` to let ldap3 use the system trust store.
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
        return Ok(None);
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
