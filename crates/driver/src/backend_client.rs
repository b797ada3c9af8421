//! The gateway instances' HTTP/1.1 client to the protected backend.
//!
//! A pool of keep-alive connections over hyper's `client::conn::http1`. It replaces
//! hyper-util's general-purpose pool on the driver's hot path: no pool key to hash and clone
//! per request; each connection keeps its own copies of the `Host` header and the request
//! target, so threads never share their reference counts; and the request's own task drives
//! the connection while it holds it, instead of a task per connection that every request
//! would have to wake (all three showed in profiles at 100,000 requests per second).
//!
//! An `https://` backend is reached over rustls (TLS 1.3 or 1.2, HTTP/1.1 by ALPN), one
//! handshake per new connection.

use std::{
    future::{poll_fn, Future},
    io,
    pin::{pin, Pin},
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
};

use bytes::Bytes;
use client::transport::{ConnectionAttempt, ConnectionObserver};
use http::{header, uri::Scheme, HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::{pki_types::ServerName, ClientConfig};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use tokio_rustls::{client::TlsStream, TlsConnector};

use crate::error::RunError;

/// The path requests use when the traffic does not name one.
const DEFAULT_PATH: &str = "/api/orders";
/// How long opening a connection (TCP connect and TLS handshake) may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a connection could not be opened.
enum OpenError {
    Connect(io::Error),
    Tls(io::Error),
    TimedOut,
}

/// Keep-alive connections to one backend, shared by the requests of a gateway instance.
pub(crate) struct BackendClient {
    /// `host:port` to connect to.
    authority: String,
    /// The `Host` header every request carries.
    host: HeaderValue,
    /// The base URL's path (`""` or `/prefix`), put before every request's path.
    base_path: String,
    /// Whether the backend is the embedded mock, which protects `/api/…` only.
    embedded: bool,
    /// The origin-form target of [`DEFAULT_PATH`].
    default_target: Uri,
    /// Boxed: a connection is some 3 KB, which every checkout and checkin would move, and
    /// which would make each request's future as big (measured: 2-3 % of throughput).
    #[allow(clippy::vec_box)]
    idle: Mutex<Vec<Box<Connection>>>,
    /// More idle connections than this are closed.
    max_idle: usize,
    /// For an `https://` backend: the TLS client and the name its certificate must carry.
    tls: Option<(TlsConnector, ServerName<'static>)>,
    /// Told of each new connection.
    observer: Option<Arc<dyn ConnectionObserver>>,
}

/// hyper's half of a connection: it reads and writes the socket when polled.
type ConnectionDriver = http1::Connection<TokioIo<Stream>, Empty<Bytes>>;

/// The socket under a connection: plain TCP, or TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(tcp) => tcp.is_write_vectored(),
            Stream::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

/// One connection, with its own copies of what every request on it sends.
struct Connection {
    sender: SendRequest<Empty<Bytes>>,
    driver: ConnectionDriver,
    /// The driver has finished (the connection is closed): it must not be polled again.
    ended: bool,
    host: HeaderValue,
    default_target: Uri,
}

impl BackendClient {
    /// A client for the backend at `base_url` (`http[s]://host[:port][/prefix]`) keeping at
    /// most `max_idle` idle connections; `tls` is what an https backend is reached with.
    /// `embedded` moves paths outside `/api/` under it.
    pub(crate) fn new(
        base_url: &str,
        embedded: bool,
        max_idle: usize,
        tls: &Arc<ClientConfig>,
    ) -> Result<Self, RunError> {
        let invalid = |reason: &str| RunError::BackendUrl {
            url: base_url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = base_url
            .parse()
            .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
        let https = match uri.scheme() {
            Some(scheme) if *scheme == Scheme::HTTP => false,
            Some(scheme) if *scheme == Scheme::HTTPS => true,
            _ => {
                return Err(invalid(
                    "the driver calls http:// and https:// backends only",
                ))
            }
        };
        let host = uri.host().ok_or_else(|| invalid("it has no host"))?;
        let default_port = if https { 443 } else { 80 };
        let authority = format!("{host}:{}", uri.port_u16().unwrap_or(default_port));
        let tls = if https {
            // `[::1]` in a URL is the name `::1` to TLS.
            let name = host.trim_start_matches('[').trim_end_matches(']');
            let name = ServerName::try_from(name.to_owned())
                .map_err(|_| invalid("its host is not a name or address TLS can check"))?;
            let mut config = ClientConfig::clone(tls);
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some((TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        let host = HeaderValue::from_str(uri.authority().map_or(host, |a| a.as_str()))
            .map_err(|_| invalid("its host cannot be sent in a Host header"))?;
        if uri.query().is_some() {
            return Err(invalid("a base URL with a query is not supported"));
        }
        let mut client = BackendClient {
            authority,
            host,
            base_path: uri.path().trim_end_matches('/').to_owned(),
            embedded,
            default_target: Uri::default(),
            idle: Mutex::new(Vec::new()),
            max_idle,
            tls,
            observer: None,
        };
        client.default_target = client
            .target(DEFAULT_PATH)
            .ok_or_else(|| invalid("its path cannot start a request target"))?;
        Ok(client)
    }

    /// Tells `observer` of each new connection (its open time; a failed one).
    pub(crate) fn observed(mut self, observer: Arc<dyn ConnectionObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The origin-form request target for `path` (a trace's path, or the default).
    fn target(&self, path: &str) -> Option<Uri> {
        let slash = if path.starts_with('/') { "" } else { "/" };
        let under_api = path.starts_with("/api/") || path == "/api";
        let api = if self.embedded && !under_api {
            "/api"
        } else {
            ""
        };
        format!("{}{api}{slash}{path}", self.base_path).parse().ok()
    }

    /// `GET path` with `authorization`; the response's status once its body is read, or
    /// `None` when the connection or the exchange failed.
    pub(crate) async fn get(
        &self,
        path: Option<&str>,
        authorization: &HeaderValue,
    ) -> Option<StatusCode> {
        loop {
            let (mut connection, reused) = match self.checkout() {
                Some(connection) => (connection, true),
                None => (self.connect().await?, false),
            };
            let Connection {
                sender,
                driver,
                ended,
                ..
            } = &mut *connection;
            match drive(driver, ended, sender.ready()).await {
                Some(Ok(())) if !*ended => {}
                // Closed by the server while idle, before anything was sent: try the next.
                _ if reused => continue,
                _ => return None,
            }
            let target = match path {
                None => connection.default_target.clone(),
                Some(path) => self.target(path)?,
            };
            let request = Request::get(target)
                .header(header::HOST, connection.host.clone())
                .header(header::AUTHORIZATION, authorization.clone())
                .body(Empty::new())
                .ok()?;
            let Connection {
                sender,
                driver,
                ended,
                ..
            } = &mut *connection;
            let exchange = async {
                let response = sender.send_request(request).await?;
                let status = response.status();
                // Read the body so the connection can carry the next request.
                response.into_body().collect().await?;
                Ok::<_, hyper::Error>(status)
            };
            match drive(driver, ended, exchange).await {
                Some(Ok(status)) => {
                    self.checkin(connection);
                    return Some(status);
                }
                // Never sent: the server closed a pooled connection just before.
                Some(Err(e)) if e.is_canceled() && reused => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    fn checkout(&self) -> Option<Box<Connection>> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    fn checkin(&self, connection: Box<Connection>) {
        if connection.ended || connection.sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.max_idle {
            idle.push(connection);
        }
    }

    async fn connect(&self) -> Option<Box<Connection>> {
        let attempt = ConnectionAttempt::start(self.observer.clone(), self.tls.is_some());
        let stream = self.open().await.ok()?;
        attempt.opened();
        let (sender, driver) = http1::handshake(TokioIo::new(stream)).await.ok()?;
        Some(Box::new(Connection {
            sender,
            driver,
            ended: false,
            host: self.host.clone(),
            default_target: self.default_target.clone(),
        }))
    }
}

impl BackendClient {
    /// A new connection's socket, after its TLS handshake for an https backend, within
    /// [`CONNECT_TIMEOUT`].
    async fn open(&self) -> Result<Stream, OpenError> {
        let open = async {
            let tcp = TcpStream::connect(&self.authority)
                .await
                .map_err(OpenError::Connect)?;
            tcp.set_nodelay(true).map_err(OpenError::Connect)?;
            Ok(match &self.tls {
                None => Stream::Plain(tcp),
                Some((connector, name)) => Stream::Tls(Box::new(
                    connector
                        .connect(name.clone(), tcp)
                        .await
                        .map_err(OpenError::Tls)?,
                )),
            })
        };
        tokio::time::timeout(CONNECT_TIMEOUT, open)
            .await
            .unwrap_or(Err(OpenError::TimedOut))
    }

    /// Opens one connection to an https backend and closes it: a backend whose certificate
    /// the run does not trust is an error saying so before the run starts, not a run of
    /// failed requests.
    pub(crate) async fn check_reachable(&self, url: &str) -> Result<(), RunError> {
        if self.tls.is_none() {
            return Ok(());
        }
        let reason = match self.open().await {
            Ok(_) => return Ok(()),
            Err(OpenError::Connect(e)) => format!("cannot connect: {e}"),
            Err(OpenError::Tls(e)) => format!(
                "the TLS handshake failed: {e} (a private CA: give its certificate as \
                 [backend] ca_file)"
            ),
            Err(OpenError::TimedOut) => {
                format!("no connection within {} s", CONNECT_TIMEOUT.as_secs())
            }
        };
        Err(RunError::BackendUrl {
            url: url.to_owned(),
            reason,
        })
    }
}

/// Runs `work` while polling `driver`, which does the connection's reads and writes, and
/// sets `ended` when the driver finishes; `None` when it finished before `work` did.
async fn drive<F: Future>(
    driver: &mut ConnectionDriver,
    ended: &mut bool,
    work: F,
) -> Option<F::Output> {
    let mut work = pin!(work);
    poll_fn(|cx| {
        // The driver first: what it reads this time, `work` can take at once.
        if !*ended {
            *ended = driver.poll_without_shutdown(cx).is_ready();
        }
        match work.as_mut().poll(cx) {
            Poll::Ready(output) => Poll::Ready(Some(output)),
            Poll::Pending if *ended => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls() -> Arc<ClientConfig> {
        client::TlsTrust::new().client_config().unwrap()
    }

    fn target(base: &str, embedded: bool, path: &str) -> String {
        BackendClient::new(base, embedded, 1, &tls())
            .unwrap()
            .target(path)
            .unwrap()
            .to_string()
    }

    #[test]
    fn the_embedded_backend_gets_every_path_under_api() {
        let base = "http://127.0.0.1:8080";
        assert_eq!(target(base, true, "/api/orders/7"), "/api/orders/7");
        assert_eq!(target(base, true, "/orders/7?x=1"), "/api/orders/7?x=1");
        assert_eq!(target(base, true, "orders"), "/api/orders");
        assert_eq!(target(base, false, "/orders"), "/orders");
        assert_eq!(
            target("http://backend.test/prefix/", false, "/orders"),
            "/prefix/orders"
        );
    }

    #[test]
    fn a_base_url_it_cannot_call_is_refused_with_the_reason() {
        for (url, reason) in [
            ("ftp://backend.test", "http:// and https:// backends only"),
            ("not a url", "invalid"),
            ("http://backend.test/?q=1", "query"),
        ] {
            let error = BackendClient::new(url, false, 1, &tls())
                .err()
                .unwrap_or_else(|| panic!("{url} was accepted"))
                .to_string();
            assert!(error.contains(url), "{error}");
            assert!(error.contains(reason), "{url}: {error}");
        }
    }

    /// A backend on loopback that answers one request per connection with `status` and
    /// closes the connection when told on the returned sender; it then reports the number of
    /// connections closed so far.
    async fn one_answer_per_connection(
        status: u16,
    ) -> (
        String,
        tokio::sync::mpsc::UnboundedSender<()>,
        tokio::sync::mpsc::UnboundedReceiver<usize>,
    ) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (close, mut close_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let (closed, closed_rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            for n in 1.. {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.ends_with(b"\r\n\r\n") {
                    let read = socket.read(&mut buf).await.unwrap();
                    assert!(read > 0, "request cut short");
                    request.extend_from_slice(&buf[..read]);
                }
                let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\nok");
                socket.write_all(answer.as_bytes()).await.unwrap();
                if close_rx.recv().await.is_none() {
                    return;
                }
                socket.shutdown().await.unwrap();
                drop(socket);
                closed.send(n).unwrap();
            }
        });
        (url, close, closed_rx)
    }

    #[tokio::test]
    async fn a_pooled_connection_the_server_closed_is_replaced_without_an_error() {
        let (url, close, mut closed) = one_answer_per_connection(200).await;
        let client = BackendClient::new(&url, false, 4, &tls()).unwrap();
        let authorization = HeaderValue::from_static("Bearer t");
        for n in 1..=3 {
            assert_eq!(client.get(None, &authorization).await, Some(StatusCode::OK));
            // The connection is back in the pool; now the server closes it.
            close.send(()).unwrap();
            assert_eq!(closed.recv().await, Some(n));
        }
    }

    #[tokio::test]
    async fn statuses_pass_through_and_a_dead_backend_is_none() {
        let (url, _close, _closed) = one_answer_per_connection(401).await;
        let client = BackendClient::new(&url, false, 4, &tls()).unwrap();
        let authorization = HeaderValue::from_static("Bearer t");
        assert_eq!(
            client.get(Some("/x"), &authorization).await,
            Some(StatusCode::UNAUTHORIZED)
        );
        // Nothing listens on this port any more.
        let unused = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", unused.local_addr().unwrap());
        drop(unused);
        let client = BackendClient::new(&url, false, 4, &tls()).unwrap();
        assert_eq!(client.get(None, &authorization).await, None);
    }

    #[test]
    fn host_and_port_come_from_the_base_url() {
        let client = BackendClient::new("http://backend.test:8081/x", false, 1, &tls()).unwrap();
        assert_eq!(client.authority, "backend.test:8081");
        assert_eq!(client.host, "backend.test:8081");
        let client = BackendClient::new("http://backend.test", false, 1, &tls()).unwrap();
        assert_eq!(client.authority, "backend.test:80");
        assert_eq!(client.host, "backend.test");
    }
}
