//! The mock identity provider and backend the `token_endpoint` and `backend_bearer` targets
//! talk to: built once per process, on a clock that never moves, so that the times in the
//! committed seeds stay valid.

use std::sync::{Arc, OnceLock};

use mock::{
    clock::ManualClock, BackendConfig, ClientRegistration, IdentityProvider, MockConfig,
    ProtectedBackend, Stats,
};
use signer::{keygen, Algorithm, KeySpec, SigningKey, Thumbprint};

/// The provider's base URL, as in the seeds' `aud` and `iss`.
pub(crate) const BASE_URL: &str = "http://127.0.0.1:9";
/// The registered client, as in the seeds.
pub(crate) const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
/// Its client secret, as in the seeds.
pub(crate) const CLIENT_SECRET: &str = "fuzz-secret";
/// The provider's "now": 2027-01-15T08:00:00Z, in milliseconds.
pub(crate) const NOW_MS: u64 = 1_800_000_000_000;

/// The provider, its backend, and the client's P-256 key (registered by its certificate).
pub(crate) struct Provider {
    pub(crate) idp: Arc<IdentityProvider>,
    pub(crate) backend: ProtectedBackend,
    /// A backend of a delegated API: it requires the users' permission in `scp`, not a role.
    pub(crate) users_backend: ProtectedBackend,
    pub(crate) client_key: Box<dyn SigningKey>,
    /// `x5t#S256` of the client's certificate, for the seeds' `$X5T`.
    pub(crate) client_x5t_s256: String,
}

/// The one provider of this process.
pub(crate) fn provider() -> &'static Provider {
    static PROVIDER: OnceLock<Provider> = OnceLock::new();
    PROVIDER.get_or_init(|| {
        let generated = keygen::generate(KeySpec::P256, "fuzz client", 1)
            .expect("the fuzz harness generates the client's key");
        let key = generated
            .private_key("fuzz client key")
            .expect("a fresh key parses");
        let cert = generated
            .certificate("fuzz client certificate")
            .expect("a fresh certificate parses");
        let client_key = signer::backend::default_backend()
            .load_signing_key(&key, Algorithm::Es256)
            .expect("the default backend loads a P-256 key");
        let client_x5t_s256 = cert.thumbprint(Thumbprint::X5tS256).to_owned();
        let config = MockConfig {
            clients: vec![ClientRegistration::with_certificates(CLIENT_ID, vec![cert])
                .with_secret(CLIENT_SECRET)],
            clock: Arc::new(ManualClock::new(NOW_MS)),
            seed: Some(1),
            ..MockConfig::default()
        };
        let stats = Arc::new(Stats::default());
        let idp = Arc::new(
            IdentityProvider::new(&config, BASE_URL, Arc::clone(&stats))
                .expect("the fuzz provider's configuration is valid"),
        );
        let backend = ProtectedBackend::new(Arc::clone(&idp), &config, Arc::clone(&stats));
        let users_config = MockConfig {
            backend: BackendConfig {
                required_role: None,
                required_scope: Some(mock::DEFAULT_DELEGATED_SCOPE.to_owned()),
                ..BackendConfig::default()
            },
            ..config
        };
        let users_backend = ProtectedBackend::new(Arc::clone(&idp), &users_config, stats);
        Provider {
            idp,
            backend,
            users_backend,
            client_key,
            client_x5t_s256,
        }
    })
}
