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
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{header, Request, Response, Uri};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::{TokioExecutor, TokioTimer},
};
use rustls::ClientConfig;
use zeroize::Zeroizing;

use crate::{Error, TlsTrust};

const USER_AGENT: &str = concat!("tokenbench/", env!("CARGO_PKG_VERSION"));

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

/// Told of every new connection a transport opens (its pool reuses them between requests).
pub trait ConnectionObserver: Send + Sync {
    /// A connection was opened in `took`: the TCP connect and, if `tls`, the TLS handshake.
    fn opened(&self, took: Duration, tls: bool);
    /// A connection could not be opened (refused, unreachable, a certificate not trusted),
    /// or the attempt was given up (a request timeout dropped it).
    fn failed(&self);
}

/// One connection attempt, told to an observer once: [`opened`](Self::opened) when it
/// succeeds, else `failed`, also when it is dropped unfinished (a timeout cancelled it).
pub struct ConnectionAttempt {
    observer: Option<Arc<dyn ConnectionObserver>>,
    started: Instant,
    tls: bool,
}

impl ConnectionAttempt {
    /// An attempt starting now, `tls` if it ends with a TLS handshake.
    pub fn start(observer: Option<Arc<dyn ConnectionObserver>>, tls: bool) -> Self {
        ConnectionAttempt {
            observer,
            started: Instant::now(),
            tls,
        }
    }

    /// The attempt gave a connection.
    pub fn opened(mut self) {
        if let Some(observer) = self.observer.take() {
            observer.opened(self.started.elapsed(), self.tls);
        }
    }
}

impl Drop for ConnectionAttempt {
    fn drop(&mut self) {
        if let Some(observer) = self.observer.take() {
            observer.failed();
        }
    }
}

/// The real transport: hyper-util's pooled client over rustls (https) or plain TCP (http).
#[derive(Clone)]
pub struct HyperTransport {
    client: Client<Observed<HttpsConnector<HttpConnector>>, Full<Bytes>>,
}

impl HyperTransport {
    /// A pooled HTTP/1.1 client with rustls on aws-lc-rs, trusting Mozilla's root
    /// certificates (bundled) and the operating system's.
    pub fn new() -> Result<Self, Error> {
        Self::with_trust(&TlsTrust::new())
    }

    /// [`HyperTransport::new`] with `trust`'s certificate authorities.
    pub fn with_trust(trust: &TlsTrust) -> Result<Self, Error> {
        Ok(Self::with_tls(trust.client_config()?))
    }

    /// [`HyperTransport::new`] with this rustls configuration (one shared by many clients).
    pub fn with_tls(tls: Arc<ClientConfig>) -> Self {
        Self::observed(tls, None)
    }

    /// [`HyperTransport::with_tls`] telling `observer` of each new connection.
    pub fn observed(tls: Arc<ClientConfig>, observer: Option<Arc<dyn ConnectionObserver>>) -> Self {
        let inner = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(Arc::unwrap_or_clone(tls))
            .https_or_http()
            .enable_http1()
            .build();
        let connector = Observed { inner, observer };
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .build(connector);
        HyperTransport { client }
    }
}

/// A connector that times each connection it opens and tells an observer.
#[derive(Clone)]
struct Observed<C> {
    inner: C,
    observer: Option<Arc<dyn ConnectionObserver>>,
}

impl<C> tower_service::Service<Uri> for Observed<C>
where
    C: tower_service::Service<Uri>,
    C::Future: Send + 'static,
{
    type Response = C::Response;
    type Error = C::Error;
    type Future = BoxFuture<'static, Result<C::Response, C::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let attempt = ConnectionAttempt::start(self.observer.clone(), tls);
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            let result = connecting.await;
            if result.is_ok() {
                attempt.opened();
            }
            result
        })
    }
}

impl fmt::Debug for HyperTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HyperTransport").finish_non_exhaustive()
    }
}

impl HyperTransport {
    /// GETs `url` (a JSON document: discovery, JWKS) and returns the answer with its whole
    /// body, of at most `max_body` bytes.
    pub async fn get(&self, url: &Uri, max_body: usize) -> Result<Response<Bytes>, TransportError> {
        let request = Request::get(url.clone())
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, USER_AGENT)
            .body(Full::new(Bytes::new()))
            .map_err(|e| TransportError::request(&e))?;
        self.send(request, max_body).await
    }

    async fn send(
        &self,
        request: Request<Full<Bytes>>,
        max_body: usize,
    ) -> Result<Response<Bytes>, TransportError> {
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
                .header(header::USER_AGENT, USER_AGENT)
                .body(Full::new(body))
                .map_err(|e| TransportError::request(&e))?;
            self.send(request, max_body).await
        })
    }
}
