//! Which certificate authorities an https endpoint may chain to.

use std::{
    fmt,
    path::Path,
    sync::{Arc, OnceLock},
};

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{pem::PemObject as _, CertificateDer};

use crate::Error;

/// The trust of an https client: Mozilla's root certificates (bundled), the operating
/// system's, and any CA certificates added (a staging identity provider's private CA,
/// `tokenbench mock --tls`'s).
///
/// ```
/// # fn demo() -> Result<(), client::Error> {
/// let mut trust = client::TlsTrust::new();
/// trust.add_pem_file(std::path::Path::new("staging-ca.pem"))?;
/// let transport = client::HyperTransport::with_trust(&trust)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TlsTrust {
    roots: RootCertStore,
    added: usize,
}

impl Default for TlsTrust {
    fn default() -> Self {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        roots.add_parsable_certificates(os_roots().iter().cloned());
        TlsTrust { roots, added: 0 }
    }
}

impl fmt::Debug for TlsTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTrust")
            .field("roots", &self.roots.len())
            .field("added", &self.added)
            .finish()
    }
}

impl TlsTrust {
    /// Mozilla's roots and the operating system's.
    pub fn new() -> Self {
        TlsTrust::default()
    }

    /// Also trusts every certificate of the PEM file `path`; a file without one is an error
    /// naming it.
    pub fn add_pem_file(&mut self, path: &Path) -> Result<(), Error> {
        let origin = path.display().to_string();
        let certs = CertificateDer::pem_file_iter(path).map_err(|e| ca_error(&origin, e))?;
        self.add_all(&origin, certs)
    }

    /// Also trusts every certificate of `pem`; `origin` names it in errors.
    pub fn add_pem(&mut self, origin: &str, pem: &[u8]) -> Result<(), Error> {
        self.add_all(origin, CertificateDer::pem_slice_iter(pem))
    }

    fn add_all(
        &mut self,
        origin: &str,
        certs: impl Iterator<Item = Result<CertificateDer<'static>, rustls_pki_types::pem::Error>>,
    ) -> Result<(), Error> {
        let mut added = 0;
        for cert in certs {
            let cert = cert.map_err(|e| ca_error(origin, format!("not a PEM certificate: {e}")))?;
            self.roots
                .add(cert)
                .map_err(|e| ca_error(origin, format!("not a usable CA certificate: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(ca_error(origin, "no CERTIFICATE in it"));
        }
        self.added += added;
        Ok(())
    }

    /// A rustls client configuration (aws-lc-rs; TLS 1.3 and 1.2) with this trust and no
    /// ALPN protocols (hyper-rustls sets its own).
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config {
                field: "tls",
                reason: format!("cannot set up rustls: {e}"),
            })?
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

fn ca_error(origin: &str, reason: impl fmt::Display) -> Error {
    Error::Config {
        field: "ca_file",
        reason: format!("{origin}: {reason}"),
    }
}

/// The operating system's trusted certificates, read once per process (none where it has no
/// store; certificates it cannot parse are passed over, as browsers do).
fn os_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}
