//! `tokenbench mock`: the mock identity provider and backend as a loopback server.

use std::{collections::BTreeMap, io::Write as _, net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::Args;
use mock::{server::MockServer, ClientRegistration, Latency, MockConfig, TokenFaults};
use signer::{keygen, Certificate, KeySpec};

use crate::{parse_duration, runtime, usage};

#[derive(Args)]
pub struct MockArgs {
    /// Address to listen on (port 0: an ephemeral port).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// Tenant served (the {tenant} path segment and the tokens' tid).
    #[arg(long, default_value = mock::DEFAULT_TENANT)]
    tenant: String,
    /// A registered client id; pair each with a --client-cert (repeat an id for several certificates).
    #[arg(long = "client-id")]
    client_ids: Vec<String>,
    /// The certificate (PEM or DER) of the --client-id in the same position.
    #[arg(long = "client-cert")]
    client_certs: Vec<PathBuf>,
    /// A client secret every client may also authenticate with.
    #[arg(long, env = "TOKENBENCH_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// Lifetime of issued tokens (expires_in).
    #[arg(long, default_value = "3599s", value_parser = parse_duration)]
    token_lifetime: Duration,
    /// Draw each token's lifetime from --token-lifetime to this (Entra: 60m to 90m).
    #[arg(long, value_parser = parse_duration)]
    token_lifetime_max: Option<Duration>,
    /// Fixed latency added to every token response.
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    token_latency: Duration,
    /// Share of token requests answered with an injected 500 or 503 (0.0 to 1.0).
    #[arg(long, default_value_t = 0.0)]
    token_error_rate: f64,
    /// Per-client token requests per second before 429 (token bucket).
    #[arg(long)]
    throttle: Option<f64>,
    /// Fixed latency added to every backend response.
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    backend_latency: Duration,
    /// How long past a token's exp the backend still accepts it (APIM's validate-jwt
    /// clock-skew; 0 by default, as there).
    #[arg(long, default_value = "0s", value_parser = parse_backend_skew)]
    backend_clock_skew: Duration,
    /// The azpacr the backend requires of a token (403 otherwise), as APIM's validate-jwt
    /// with a required claim: 2 admits clients that authenticated with a certificate only,
    /// 1 with a secret
    #[arg(long, value_parser = ["0", "1", "2"])]
    require_azpacr: Option<String>,
    /// The delegated permission the backend requires in a token's scp (403 otherwise), in
    /// place of the app role: tokens obtained for users (on-behalf-of, authorization code)
    /// carry scp, not roles
    #[arg(long, value_name = "PERMISSION", value_parser = parse_permission)]
    require_scope: Option<String>,
    /// Serve HTTPS (TLS 1.3 and 1.2) with a CA generated at start; the JSON line's URLs are
    /// https:// and its ca_file names the CA certificate (PEM) clients must trust
    #[arg(long)]
    tls: bool,
}

fn parse_permission(text: &str) -> Result<String, String> {
    if text.is_empty() || text.contains(char::is_whitespace) {
        return Err("must be one permission name, such as Data.Read".to_owned());
    }
    Ok(text.to_owned())
}

fn parse_backend_skew(text: &str) -> Result<Duration, String> {
    let skew = parse_duration(text)?;
    let most = scenario::MAX_BACKEND_CLOCK_SKEW;
    if skew > most || skew.subsec_nanos() != 0 {
        return Err(format!(
            "must be whole seconds up to {}",
            humantime::format_duration(most)
        ));
    }
    Ok(skew)
}

fn fixed(latency: Duration) -> Latency {
    if latency.is_zero() {
        Latency::None
    } else {
        Latency::Fixed {
            ms: latency.as_secs_f64() * 1000.0,
        }
    }
}

pub fn run(args: MockArgs) -> anyhow::Result<()> {
    let generated_dir = tempfile::Builder::new()
        .prefix("tokenbench-mock-client-")
        .tempdir()
        .context("cannot create a folder for the generated client")?;
    let (clients, generated) = clients(&args, generated_dir.path())?;
    let backend = mock::BackendConfig {
        tenant: args.tenant.clone(),
        latency: fixed(args.backend_latency),
        clock_skew: args.backend_clock_skew,
        required_azpacr: args.require_azpacr.clone(),
        required_role: match args.require_scope {
            Some(_) => None,
            None => mock::BackendConfig::default().required_role,
        },
        required_scope: args.require_scope.clone(),
        ..mock::BackendConfig::default()
    };
    let config = MockConfig {
        tenants: vec![args.tenant.clone()],
        clients,
        token_lifetime: args.token_lifetime,
        token_lifetime_max: args.token_lifetime_max,
        token_faults: TokenFaults {
            latency: fixed(args.token_latency),
            error_rate: args.token_error_rate,
            throttle_rps: args.throttle,
            ..TokenFaults::default()
        },
        backend,
        tls: args.tls,
        ..MockConfig::default()
    };
    // A bad value is a usage error (exit 2); the message names the setting.
    config.validate().map_err(usage)?;

    runtime()?.block_on(async {
        // The signal handlers first: a SIGTERM or SIGINT sent as soon as the JSON line is
        // read must find them installed, so the stop is graceful and the generated key removed.
        let signals = Signals::install()?;
        let server = MockServer::start(config, args.addr).await?;
        let mut line = serde_json::to_value(server.urls())?;
        for (key, value) in generated {
            line[key] = value.into();
        }
        if let Some(ca_pem) = server.ca_pem() {
            let ca_file = generated_dir.path().join("ca.pem");
            std::fs::write(&ca_file, ca_pem)
                .with_context(|| format!("cannot write {}", ca_file.display()))?;
            line["ca_file"] = ca_file.display().to_string().into();
        }
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}")?;
        stdout.flush()?;
        drop(stdout);
        eprintln!("serving on {}; stop with Ctrl-C or SIGTERM", server.addr());
        signals.wait().await;
        eprintln!("shutting down");
        server.shutdown().await;
        anyhow::Ok(())
    })?;
    // The generated key and CA certificate are deleted with their folder here.
    drop(generated_dir);
    Ok(())
}

/// The registered clients; with none given, one generated into `dir` (its id and files are
/// returned to be printed).
fn clients(
    args: &MockArgs,
    dir: &std::path::Path,
) -> anyhow::Result<(Vec<ClientRegistration>, BTreeMap<&'static str, String>)> {
    if args.client_ids.len() != args.client_certs.len() {
        return Err(usage(format!(
            "give one --client-cert per --client-id ({} ids, {} certificates)",
            args.client_ids.len(),
            args.client_certs.len()
        )));
    }
    let mut certificates: BTreeMap<&str, Vec<Certificate>> = BTreeMap::new();
    for (id, path) in args.client_ids.iter().zip(&args.client_certs) {
        certificates
            .entry(id)
            .or_default()
            .push(Certificate::load(path)?);
    }
    let mut generated = BTreeMap::new();
    if certificates.is_empty() {
        let material = keygen::generate(KeySpec::Rsa2048, "tokenbench mock client", 30)?;
        let (key_path, cert_path) = (dir.join("key.pem"), dir.join("cert.pem"));
        std::fs::write(&key_path, material.key_pem.as_bytes())
            .with_context(|| format!("cannot write {}", key_path.display()))?;
        std::fs::write(&cert_path, &material.cert_pem)
            .with_context(|| format!("cannot write {}", cert_path.display()))?;
        let client_id = uuid::Uuid::new_v4().to_string();
        let cert = material.certificate(&cert_path.display().to_string())?;
        generated.insert("client_id", client_id.clone());
        generated.insert("client_key", key_path.display().to_string());
        generated.insert("client_cert", cert_path.display().to_string());
        return Ok((
            vec![with_secret(
                ClientRegistration::with_certificates(client_id, vec![cert]),
                args,
            )],
            generated,
        ));
    }
    let clients = certificates
        .into_iter()
        .map(|(id, certs)| with_secret(ClientRegistration::with_certificates(id, certs), args))
        .collect();
    Ok((clients, generated))
}

fn with_secret(client: ClientRegistration, args: &MockArgs) -> ClientRegistration {
    match &args.client_secret {
        Some(secret) => client.with_secret(secret.clone()),
        None => client,
    }
}

/// The stop signals, listened for from creation on (a signal that arrives before
/// [`wait`](Signals::wait) is kept, not lost to the default action).
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(windows)]
    ctrl_c: tokio::signal::windows::CtrlC,
}

impl Signals {
    /// Installs the handlers (inside the runtime).
    fn install() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                interrupt: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
                terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            })
        }
        #[cfg(windows)]
        {
            Ok(Signals {
                ctrl_c: tokio::signal::windows::ctrl_c().context("cannot listen for Ctrl-C")?,
            })
        }
    }

    /// Until SIGINT or SIGTERM (Ctrl-C on Windows).
    async fn wait(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(windows)]
        self.ctrl_c.recv().await;
    }
}
