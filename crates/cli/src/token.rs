//! `tokenbench token`: one access token from a token endpoint, by certificate or secret.

use std::{path::PathBuf, sync::Arc, time::Duration};

use clap::Args;
use client::{
    CachePolicy, ClientAuth, ClientSecret, HyperTransport, TlsTrust, TokenClient, TokenClientConfig,
};
use signer::{backend, Algorithm, Credential};

use crate::{parse_lifetime, runtime, usage};

/// Where a client secret may come from instead of the command line (read here, not by clap,
/// so that it is used only when neither --key nor --client-secret is given).
const SECRET_ENV: &str = "TOKENBENCH_CLIENT_SECRET";

#[derive(Args)]
pub struct TokenArgs {
    /// Token endpoint URL (http:// or https://).
    #[arg(long)]
    token_url: String,
    /// Client id.
    #[arg(long)]
    client_id: String,
    /// Scope to request, e.g. api://backend/.default.
    #[arg(long)]
    scope: String,
    /// Private key for a certificate-signed assertion: PEM or DER, or a .pfx with --password.
    #[arg(long)]
    key: Option<PathBuf>,
    /// Certificate, PEM or DER (optional when --key is a .pfx).
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Password of an encrypted key or .pfx.
    #[arg(long, env = "TOKENBENCH_KEY_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Client secret (sent as client_secret), instead of --key and --cert. Without either,
    /// the secret is read from TOKENBENCH_CLIENT_SECRET.
    // Not `conflicts_with = "key"`: clap would then stop enforcing `requires = "key"` of the
    // assertion options next to --client-secret. Both together are refused in `run`.
    #[arg(long)]
    client_secret: Option<String>,
    /// PS256, RS256, ES256 or EdDSA [default: PS256 for RSA keys, else the key's one algorithm].
    #[arg(long, requires = "key")]
    alg: Option<Algorithm>,
    /// Crypto backend: rsa, ring or aws-lc-rs [default: aws-lc-rs].
    #[arg(long, requires = "key")]
    backend: Option<String>,
    /// Assertion audience [default: the token URL]; some providers want their issuer.
    #[arg(long, requires = "key")]
    audience: Option<String>,
    /// Assertion lifetime (exp - nbf), e.g. 600s or 10m [default: 600s].
    #[arg(long, requires = "key", value_parser = parse_lifetime)]
    lifetime: Option<Duration>,
    /// Timeout of the token request, e.g. 20s.
    #[arg(long, default_value = "20s", value_parser = parse_timeout)]
    timeout: Duration,
    /// Print the access token itself instead of its fingerprint.
    #[arg(long)]
    show_token: bool,
    /// Also trust the CA certificates in this PEM file for an https token URL (a private
    /// CA; `tokenbench mock --tls` prints its ca_file); repeatable. Mozilla's roots and the
    /// operating system's are always trusted.
    #[arg(long = "ca-file", value_name = "PEM")]
    ca_files: Vec<PathBuf>,
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let timeout = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if timeout.is_zero() {
        return Err("must be above zero".to_owned());
    }
    Ok(timeout)
}

/// Gets one token and prints `{"token_type","expires_in","scope","access_token"}`.
pub fn run(args: TokenArgs) -> anyhow::Result<()> {
    // A secret from the environment (as `tokenbench mock` also reads it) yields to --key;
    // an explicit --client-secret never does.
    let secret = match (&args.key, args.client_secret) {
        (None, None) => std::env::var(SECRET_ENV).ok().filter(|s| !s.is_empty()),
        (_, given) => given,
    };
    let auth = match (&args.key, secret) {
        (Some(key), None) => ClientAuth::Certificate(Credential::load(
            match &args.backend {
                Some(name) => backend::by_name(name)?,
                None => backend::default_backend(),
            },
            key,
            args.cert.as_deref(),
            args.password.as_deref(),
            args.alg,
        )?),
        (None, Some(secret)) => ClientAuth::Secret(ClientSecret::new(secret)),
        (None, None) => {
            return Err(usage(format!(
                "give --key (with --cert) or --client-secret, or set {SECRET_ENV}"
            )));
        }
        (Some(_), Some(_)) => {
            return Err(usage("give either --key or --client-secret, not both"));
        }
    };
    let mut config = TokenClientConfig::new(args.token_url, args.client_id, args.scope);
    config.policy = CachePolicy::SingleFlight;
    config.assertion_audience = args.audience;
    config.assertion_lifetime = args.lifetime.unwrap_or(signer::DEFAULT_LIFETIME);
    config.timeout = args.timeout;
    let setting_error = |error: client::Error| match error {
        client::Error::Config { .. } => usage(error),
        other => other.into(),
    };
    let mut trust = TlsTrust::new();
    for file in &args.ca_files {
        trust.add_pem_file(file).map_err(setting_error)?;
    }
    let transport = HyperTransport::with_trust(&trust).map_err(setting_error)?;
    let client = TokenClient::builder(config, auth)
        .transport(Arc::new(transport))
        .build()
        .map_err(setting_error)?;
    let token = runtime()?.block_on(client.get_token())?;
    let access_token = if args.show_token {
        token.access_token().to_owned()
    } else {
        token.to_string()
    };
    let summary = serde_json::json!({
        "token_type": token.token_type(),
        "expires_in": token.expires_in().as_secs(),
        "scope": token.scope(),
        "access_token": access_token,
    });
    println!("{summary}");
    Ok(())
}
