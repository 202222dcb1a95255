//! rustls client configuration for StartTLS and LDAPS: trust exactly the certificates in the
//! configured CA file (or, without one, the system's roots, which ldap3 loads itself).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

use crate::error::Error;

/// A client configuration that verifies the server against the CA certificates in `ca_file`.
pub fn client_config(ca_file: &Path) -> Result<Arc<ClientConfig>, Error> {
    let pem = std::fs::read(ca_file).map_err(|source| Error::ReadFile {
        what: "CA certificates",
        file: ca_file.to_owned(),
        source,
    })?;
    let mut roots = RootCertStore::empty();
    for (i, cert) in CertificateDer::pem_slice_iter(&pem).enumerate() {
        let cert =
            cert.map_err(|e| Error::Tls(format!("{}: certificate {i}: {e}", ca_file.display())))?;
        roots
            .add(cert)
            .map_err(|e| Error::Tls(format!("{}: certificate {i}: {e}", ca_file.display())))?;
    }
    if roots.is_empty() {
        return Err(Error::Tls(format!(
            "{}: no PEM certificates found",
            ca_file.display()
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
