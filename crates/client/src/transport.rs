//! How a token request reaches the token endpoint.
//!
//! [`HyperTransport`] is the real one: hyper with hyper-util's pooled client, https through
//! rustls (aws-lc-rs; Mozilla's roots, the operating system's, and given CA files) and plain
//! http. Other implementations can answer in process (a mock identity provider, a test
//! double).

use std::{
    error::Error as StdError,
    fmt,
    future::Future,
    path::{Path, PathBuf},
    pin::Pin,
    sync::{Arc, OnceLock},
};

use bytes::Bytes;
use http::{header, Request, Response, Uri};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::{TokioExecutor, TokioTimer},
};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{pem::PemObject as _, CertificateDer};
use zeroize::Zeroizing;

use crate::Error;

/// Largest token endpoint answer body read: 64 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A boxed, `Send` future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Sends token requests.
pub trait Transport: Send + Sync {
    /// POSTs `form` as `application/x-www-form-urlencoded` to `url` and returns the answer
    /// with its whole body, of at most `max_body` bytes.
    fn post_form<'a>(
        &'a self,
        url: &'a Uri,
        form: FormBody,
        max_body: usize,
    ) -> BoxFuture<'a, Result<Response<Bytes>, TransportError>>;
}

impl<T: Transport + ?Sized> Transport for Arc<T> {
    fn post_form<'a>(
        &'a self,
        url: &'a Uri,
        form: FormBody,
        max_body: usize,
    ) -> BoxFuture<'a, Result<Response<Bytes>, TransportError>> {
        (**self).post_form(url, form, max_body)
    }
}

/// A form-encoded token request body. It holds an assertion or a client secret: zeroed on
/// drop, and `Debug` shows only its length.
pub struct FormBody(Zeroizing<String>);

impl FormBody {
    pub(crate) fn new(body: String) -> Self {
        FormBody(Zeroizing::new(body))
    }

    /// The encoded body.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The decoded `name=value` pairs.
    pub fn pairs(
        &self,
    ) -> impl Iterator<Item = (std::borrow::Cow<'_, str>, std::borrow::Cow<'_, str>)> {
        form_urlencoded::parse(self.0.as_bytes())
    }
}

impl fmt::Debug for FormBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FormBody(<{} bytes redacted>)", self.0.len())
    }
}

/// Why a request got no complete answer.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// Connecting, TLS, sending or receiving failed.
    #[error("{0}")]
    Request(String),
    /// The answer's body exceeded the limit.
    #[error("response body larger than {limit} bytes")]
    BodyTooLarge {
        /// The HTTP status of the answer.
        status: u16,
        /// The limit in bytes.
        limit: usize,
    },
}

impl TransportError {
    /// A [`TransportError::Request`] whose message is `error` and its causes, joined by `: `.
    pub fn request(error: &(dyn StdError + 'static)) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            // hyper and hyper-util often repeat the cause in the outer message.
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = cause.source();
        }
        TransportError::Request(message)
    }
}

/// The real transport: hyper-util's pooled client over rustls (https) or plain TCP (http).
#[derive(Clone)]
pub struct HyperTransport {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl HyperTransport {
    /// A pooled HTTP/1.1 client with rustls on aws-lc-rs, trusting Mozilla's root
    /// certificates (bundled) and the operating system's.
    pub fn new() -> Result<Self, Error> {
        Self::trusting(&[])
    }

    /// [`HyperTransport::new`] that also trusts the CA certificates in the PEM files
    /// `ca_files` (a staging identity provider's private CA, `tokenbench mock --tls`'s).
    pub fn trusting(ca_files: &[PathBuf]) -> Result<Self, Error> {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        roots.add_parsable_certificates(os_roots().iter().cloned());
        for file in ca_files {
            add_ca_file(&mut roots, file)?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config {
                field: "tls",
                reason: format!("cannot set up rustls: {e}"),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .build(connector);
        Ok(HyperTransport { client })
    }
}

/// The operating system's trusted certificates, read once per process (none where it has no
/// store; certificates it cannot parse are passed over, as browsers do).
fn os_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

/// Adds every certificate of the PEM file `path` to `roots`; a file without one is an error.
fn add_ca_file(roots: &mut RootCertStore, path: &Path) -> Result<(), Error> {
    let invalid = |reason: String| Error::Config {
        field: "ca_file",
        reason: format!("{}: {reason}", path.display()),
    };
    let mut added = 0;
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| invalid(e.to_string()))?;
    for cert in certs {
        let cert = cert.map_err(|e| invalid(format!("not a PEM certificate: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| invalid(format!("not a usable CA certificate: {e}")))?;
        added += 1;
    }
    if added == 0 {
        return Err(invalid("no CERTIFICATE in it".to_owned()));
    }
    Ok(())
}

impl fmt::Debug for HyperTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HyperTransport").finish_non_exhaustive()
    }
}

impl Transport for HyperTransport {
    fn post_form<'a>(
        &'a self,
        url: &'a Uri,
        form: FormBody,
        max_body: usize,
    ) -> BoxFuture<'a, Result<Response<Bytes>, TransportError>> {
        Box::pin(async move {
            // The body is copied once into `Bytes`; `form` (zeroed on drop) goes out of scope
            // here, and hyper drops its copy once sent.
            let body = Bytes::copy_from_slice(form.as_str().as_bytes());
            drop(form);
            let request = Request::post(url.clone())
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::ACCEPT, "application/json")
                .header(
                    header::USER_AGENT,
                    concat!("tokenbench/", env!("CARGO_PKG_VERSION")),
                )
                .body(Full::new(body))
                .map_err(|e| TransportError::request(&e))?;
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| TransportError::request(&e))?;
            let (parts, body) = response.into_parts();
            let status = parts.status.as_u16();
            let bytes = match Limited::new(body, max_body).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    return Err(TransportError::BodyTooLarge {
                        status,
                        limit: max_body,
                    })
                }
                Err(e) => return Err(TransportError::request(e.as_ref())),
            };
            Ok(Response::from_parts(parts, bytes))
        })
    }
}
