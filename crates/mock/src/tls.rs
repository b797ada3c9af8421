//! HTTPS for the loopback server: a certificate authority and a server certificate for the
//! loopback names, generated at start, and the rustls configuration that presents them.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    RsaKeySize, PKCS_RSA_SHA256,
};
use rustls::{
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    ServerConfig,
};

use crate::MockError;

/// The names the server certificate covers: the server listens on loopback only.
const SERVER_NAMES: [&str; 3] = ["127.0.0.1", "::1", "localhost"];

/// A freshly generated CA, the server certificate it signed, and the server's TLS settings.
pub struct TlsIdentity {
    ca_pem: String,
    config: Arc<ServerConfig>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity").finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// A new CA and a server certificate for 127.0.0.1, ::1 and localhost signed by it, both
    /// RSA-2048 with SHA-256 as Entra's endpoints present; TLS 1.3 and 1.2, HTTP/1.1 by ALPN.
    pub fn generate() -> Result<Self, MockError> {
        let failed =
            |what: &str, e: &dyn std::fmt::Display| MockError::Setup(format!("TLS {what}: {e}"));
        let rsa = || {
            KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)
                .map_err(|e| failed("key generation", &e))
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new())
            .map_err(|e| failed("CA parameters", &e))?;
        // A name of its own: a client trusting another mock's CA then reports an unknown
        // issuer, not a bad signature from a namesake.
        let ca_name = format!("tokenbench mock CA {}", uuid::Uuid::new_v4().simple());
        ca_params
            .distinguished_name
            .push(DnType::CommonName, ca_name);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = rsa()?;
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .map_err(|e| failed("CA certificate", &e))?;
        let issuer = Issuer::new(ca_params, ca_key);

        let mut server_params = CertificateParams::new(SERVER_NAMES.map(str::to_owned).to_vec())
            .map_err(|e| failed("server certificate parameters", &e))?;
        server_params
            .distinguished_name
            .push(DnType::CommonName, "tokenbench mock");
        let server_key = rsa()?;
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .map_err(|e| failed("server certificate", &e))?;

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| failed("protocol versions", &e))?
            .with_no_client_auth()
            .with_single_cert(
                vec![
                    CertificateDer::from(server_cert.der().to_vec()),
                    ca_cert.der().clone(),
                ],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
            )
            .map_err(|e| failed("server configuration", &e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsIdentity {
            ca_pem: ca_cert.pem(),
            config: Arc::new(config),
        })
    }

    /// The CA certificate (PEM) clients must trust to reach the server.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The server's rustls configuration.
    pub(crate) fn server_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.config)
    }
}
