//! The gateway's credentials with the embedded identity provider: a key and certificate
//! generated for the run (or a client secret), and, in a simulation, the signing cost it
//! charges.
//!
//! A simulation's clock cannot see how long a signature takes, so each signature is charged
//! the scenario's `[signer] signing_cost`, or the median cost of the scenario's own key and
//! backend measured at start. The signatures it really makes then only need to be valid, not
//! of the scenario's kind: it signs with an Ed25519 stand-in key (about 9 µs a signature on
//! aws-lc-rs, against 270 µs for RSA-2048), so that a fleet's thousands of token fetches do
//! not cost minutes of wall-clock time. The identity provider validates those assertions in
//! full; the report names the scenario's backend and algorithm, whose cost was charged.

use std::time::Duration;

use client::ClientAuth;
use mock::ClientRegistration;
use scenario::{Scenario, SignerSpec};
use signer::{keygen, Algorithm, Credential, CryptoBackend, KeySpec};

use crate::{error::RunError, mode::Mode};

/// The client id the embedded identity provider registers for the gateway.
pub(crate) const EMBEDDED_CLIENT_ID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";

/// Assertions signed to measure the signing cost a simulation charges (its median): about
/// 50 ms for RSA-2048 on the slowest backend.
const CALIBRATION_SAMPLES: u32 = 31;

/// What the gateway authenticates with, as the identity provider registers it.
pub(crate) struct GatewayCredentials {
    pub(crate) auth: ClientAuth,
    pub(crate) registration: ClientRegistration,
    /// The backend and algorithm the report names (`client-secret` and `none` for a secret).
    pub(crate) label: (String, String),
    /// In a simulation with a certificate: the virtual time charged per signature.
    pub(crate) signing_cost: Option<Duration>,
}

/// Generates the gateway's credentials for a run of `scenario` in `mode` (off the runtime:
/// RSA key generation takes up to a second).
pub(crate) async fn generate(
    scenario: &Scenario,
    mode: Mode,
) -> Result<GatewayCredentials, RunError> {
    let signer = scenario.signer.clone();
    tokio::task::spawn_blocking(move || generate_blocking(&signer, mode))
        .await
        .map_err(|e| RunError::Setup(format!("key generation task: {e}")))?
}

fn generate_blocking(signer: &SignerSpec, mode: Mode) -> Result<GatewayCredentials, RunError> {
    let (backend, alg, charged) = match signer {
        SignerSpec::Secret(secret) => {
            return Ok(GatewayCredentials {
                auth: ClientAuth::Secret(secret.clone()),
                registration: ClientRegistration::with_certificates(EMBEDDED_CLIENT_ID, vec![])
                    .with_secret(secret.expose()),
                label: ("client-secret".to_owned(), "none".to_owned()),
                signing_cost: None,
            })
        }
        SignerSpec::Assertion {
            backend,
            alg,
            signing_cost,
            ..
        } => (*backend, *alg, *signing_cost),
    };
    let spec = signer.key_spec().unwrap_or(KeySpec::Rsa2048);
    let label = |alg: Algorithm| (backend.name().to_owned(), alg.as_str().to_owned());
    let stand_in = match mode {
        Mode::RealTime => None,
        Mode::Simulated { .. } => stand_in_backend(),
    };
    let Some(stand_in) = stand_in else {
        // Real time, or no backend built for a stand-in: the scenario's own key signs.
        let own = credential(backend, spec, alg)?;
        let signing_cost = match (mode, charged) {
            (Mode::RealTime, _) => None,
            (Mode::Simulated { .. }, Some(cost)) => Some(cost),
            (Mode::Simulated { .. }, None) => Some(measured_cost(&own)?),
        };
        let label = label(own.algorithm());
        return Ok(certificate(own, label, signing_cost));
    };
    let (alg, cost) = match charged {
        Some(cost) => (alg.unwrap_or_else(|| spec.kind().default_algorithm()), cost),
        None => {
            let own = credential(backend, spec, alg)?;
            (own.algorithm(), measured_cost(&own)?)
        }
    };
    let signing = credential(stand_in, KeySpec::Ed25519, Some(Algorithm::EdDsa))?;
    Ok(certificate(signing, label(alg), Some(cost)))
}

/// The median cost of an assertion signed with `credential`.
fn measured_cost(credential: &Credential) -> Result<Duration, RunError> {
    Ok(signer::bench::assertion_cost(
        credential,
        CALIBRATION_SAMPLES,
    )?)
}

/// Credentials that sign with `signing`, registered with its certificate.
fn certificate(
    signing: Credential,
    label: (String, String),
    signing_cost: Option<Duration>,
) -> GatewayCredentials {
    GatewayCredentials {
        registration: ClientRegistration::with_certificates(
            EMBEDDED_CLIENT_ID,
            vec![signing.certificate().clone()],
        ),
        auth: ClientAuth::Certificate(signing),
        label,
        signing_cost,
    }
}

/// A generated key of `spec` and its certificate, on `backend` with `alg`.
fn credential(
    backend: &'static dyn CryptoBackend,
    spec: KeySpec,
    alg: Option<Algorithm>,
) -> Result<Credential, RunError> {
    let material = keygen::generate(spec, "tokenbench gateway", 1)?;
    let key = material.private_key("generated gateway key")?;
    let cert = material.certificate("generated gateway certificate")?;
    Ok(Credential::new(backend, &key, cert, alg)?)
}

/// The backend a simulation's stand-in key signs with: of those built that do EdDSA, the
/// last in report order (aws-lc-rs, 2.5× faster than ring at Ed25519, when built).
fn stand_in_backend() -> Option<&'static dyn CryptoBackend> {
    signer::backend::all()
        .iter()
        .rev()
        .copied()
        .find(|backend| backend.supports(Algorithm::EdDsa))
}
