//! Which certificates of `radsec.ca_file` are trust anchors, and which are intermediate CAs
//! that a NAS's chain passes through.
//!
//! Why: every certificate of `ca_file` used to be a trust anchor. Where an admin listed the
//! root and the issuing CA under it (as the "the NAS does not send the intermediate CA"
//! hint leads to), a NAS's chain ended at the issuing CA, and the root's CRL was never
//! asked about it: an issuing CA the root had revoked went on vouching for every NAS
//! certificate it had issued. Now a `ca_file` certificate whose issuer is also in the file
//! is offered as an intermediate, beside those the NAS sends, so the path runs to the root
//! and every CA on it is checked against the CRLs. A certificate whose issuer is not in the
//! file stays an anchor (a `ca_file` holding only the issuing CA trusts it alone, as
//! before).

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

/// `ca_file`'s certificates, split: (anchors, intermediates). A certificate that cannot be
/// parsed stays an anchor (webpki's own parse refuses it, naming the file).
pub(super) fn split(
    certs: Vec<CertificateDer<'static>>,
) -> (Vec<CertificateDer<'static>>, Vec<CertificateDer<'static>>) {
    let names: Vec<Option<(Vec<u8>, Vec<u8>)>> = certs.iter().map(|c| names_of(c)).collect();
    let subjects: Vec<&[u8]> = names
        .iter()
        .flatten()
        .map(|(subject, _)| subject.as_slice())
        .collect();
    let (mut anchors, mut intermediates) = (Vec::new(), Vec::new());
    for (cert, names) in certs.into_iter().zip(&names) {
        let issued_by_another_here = names.as_ref().is_some_and(|(subject, issuer)| {
            issuer != subject && subjects.contains(&issuer.as_slice())
        });
        if issued_by_another_here {
            intermediates.push(cert);
        } else {
            anchors.push(cert);
        }
    }
    (anchors, intermediates)
}

/// The certificate's subject and issuer, as DER.
fn names_of(cert: &CertificateDer<'_>) -> Option<(Vec<u8>, Vec<u8>)> {
    let (_, x) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some((
        x.tbs_certificate.subject.as_raw().to_vec(),
        x.tbs_certificate.issuer.as_raw().to_vec(),
    ))
}

/// The verifier built over the anchors, given `ca_file`'s intermediate CAs beside the ones
/// each NAS sends. The CA names offered to clients are every `ca_file` certificate's, as
/// before: a client picking its certificate by its direct issuer still finds it.
#[derive(Debug)]
pub(super) struct WithIntermediates {
    inner: Arc<dyn ClientCertVerifier>,
    intermediates: Vec<CertificateDer<'static>>,
    hints: Vec<DistinguishedName>,
}

impl WithIntermediates {
    pub(super) fn new(
        inner: Arc<dyn ClientCertVerifier>,
        anchors: &[CertificateDer<'static>],
        intermediates: Vec<CertificateDer<'static>>,
    ) -> Self {
        let hints = anchors
            .iter()
            .chain(&intermediates)
            .filter_map(|c| names_of(c))
            .map(|(subject, _)| DistinguishedName::from(subject))
            .collect();
        WithIntermediates {
            inner,
            intermediates,
            hints,
        }
    }
}

impl ClientCertVerifier for WithIntermediates {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let mut all: Vec<CertificateDer<'_>> = intermediates.to_vec();
        all.extend(self.intermediates.iter().cloned());
        self.inner.verify_client_cert(end_entity, &all, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
