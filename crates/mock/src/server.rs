//! The thin hyper shell that serves a [`Mock`] on a loopback socket.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use serde_json::json;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{oneshot, Semaphore},
    task::{JoinHandle, JoinSet},
};
use tokio_rustls::TlsAcceptor;

use crate::{
    http_util::json_response, tls::TlsIdentity, Mock, MockConfig, MockError, MockUrls, MAX_BODY,
};

/// How long shutdown waits for open connections to finish their requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection may take to send a request's headers; hyper starts this timer when
/// it waits for a request, so it is also how long an idle keep-alive connection stays open.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause after a failed accept (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// A running mock server: identity provider, backend and admin on one listener.
#[derive(Debug)]
pub struct MockServer {
    mock: Arc<Mock>,
    addr: SocketAddr,
    tls: Option<TlsIdentity>,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl MockServer {
    /// Binds `addr` (port 0 for an ephemeral one) and serves until [`shutdown`](Self::shutdown);
    /// over HTTPS with a freshly generated CA when [`MockConfig::tls`] is set.
    pub async fn start(config: MockConfig, addr: SocketAddr) -> Result<Self, MockError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| MockError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| MockError::Bind { addr, source })?;
        // Two RSA keys take a while to generate: not on the runtime's thread.
        let tls = if config.tls {
            let generated = tokio::task::spawn_blocking(TlsIdentity::generate).await;
            Some(generated.map_err(|e| MockError::Setup(format!("TLS setup task: {e}")))??)
        } else {
            None
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mock = Arc::new(Mock::new(&config, &format!("{scheme}://{addr}"))?);
        let acceptor = tls
            .as_ref()
            .map(|identity| TlsAcceptor::from(identity.server_config()));
        let (shutdown, stop) = oneshot::channel();
        let limits = Limits {
            body_read_timeout: config.body_read_timeout,
            max_connections: config
                .max_connections
                .unwrap_or_else(default_max_connections)
                .max(1),
        };
        let task = tokio::spawn(serve(listener, Arc::clone(&mock), limits, acceptor, stop));
        Ok(MockServer {
            mock,
            addr,
            tls,
            shutdown,
            task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where things are.
    pub fn urls(&self) -> &MockUrls {
        self.mock.urls()
    }

    /// The CA certificate (PEM) that signed the server's certificate, when serving HTTPS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(TlsIdentity::ca_pem)
    }

    /// The in-process side: provider, backend, counters.
    pub fn mock(&self) -> &Arc<Mock> {
        &self.mock
    }

    /// Stops accepting and closes idle connections; requests in flight get up to 5 s to
    /// finish and be answered, then their connections are aborted. Returns when every
    /// connection is closed.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(());
        let _ = self.task.await;
    }
}

/// What a slow or greedy client may hold of the server.
#[derive(Clone, Copy)]
struct Limits {
    body_read_timeout: Duration,
    max_connections: usize,
}

/// Half the process's file-descriptor limit (the other half for the clients of a run in the
/// same process), within 64 and 65,536.
fn default_max_connections() -> usize {
    #[cfg(unix)]
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    #[cfg(not(unix))]
    let limit = 8_192u64;
    usize::try_from(limit / 2)
        .unwrap_or(usize::MAX)
        .saturating_sub(32)
        .clamp(64, 65_536)
}

async fn serve(
    listener: TcpListener,
    mock: Arc<Mock>,
    limits: Limits,
    acceptor: Option<TlsAcceptor>,
    mut stop: oneshot::Receiver<()>,
) {
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    // A slot per open connection: at the cap, new connections wait in the listen backlog
    // instead of taking the process's last file descriptors.
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut waiting = false;
    loop {
        if slots.available_permits() == 0 && !waiting {
            waiting = true;
            mock.stats.connection_cap_wait();
        }
        tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => {
                // The semaphore is never closed.
                let Ok(slot) = slot else { break };
                waiting = false;
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = &mut stop => break,
                };
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let connection = Connection {
                    mock: Arc::clone(&mock),
                    builder: builder.clone(),
                    watcher: graceful.watcher(),
                    body_read_timeout: limits.body_read_timeout,
                };
                let acceptor = acceptor.clone();
                connections.spawn(async move {
                    connection.serve(stream, acceptor).await;
                    drop(slot);
                });
            }
            // Reap finished connection tasks so the set holds open connections only.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = &mut stop => break,
        }
    }
    drop(listener);
    // Idle connections close at once, busy ones after their current answer; past the
    // drain timeout, whatever is left is aborted.
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
    connections.shutdown().await;
}

/// What one accepted connection is served with.
struct Connection {
    mock: Arc<Mock>,
    builder: http1::Builder,
    watcher: hyper_util::server::graceful::Watcher,
    body_read_timeout: Duration,
}

impl Connection {
    /// Serves HTTP/1.1 on `stream`, after a TLS handshake (counted and timed) with `acceptor`.
    async fn serve(self, stream: TcpStream, acceptor: Option<TlsAcceptor>) {
        let Some(acceptor) = acceptor else {
            return self.serve_http(TokioIo::new(stream)).await;
        };
        let started = Instant::now();
        // A client that never finishes its handshake is cut off like one that never sends
        // its headers.
        match tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                self.mock.stats.tls_handshake(started.elapsed());
                self.serve_http(TokioIo::new(tls)).await;
            }
            Ok(Err(_)) | Err(_) => self.mock.stats.tls_handshake_failed(),
        }
    }

    async fn serve_http<I>(self, io: TokioIo<I>)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            mock,
            builder,
            watcher,
            body_read_timeout,
        } = self;
        let service =
            service_fn(move |request| answer(Arc::clone(&mock), body_read_timeout, request));
        let _ = watcher.watch(builder.serve_connection(io, service)).await;
    }
}

/// Reads the body (bounded in size and time), answers through the [`Mock`]; an injected reset
/// closes the connection.
async fn answer(
    mock: Arc<Mock>,
    body_read_timeout: Duration,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, crate::ConnectionReset> {
    let (parts, body) = request.into_parts();
    let read = tokio::time::timeout(body_read_timeout, Limited::new(body, MAX_BODY).collect());
    let body = match read.await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Err(_) => {
            // A slow client holds a connection and a task: cut it off.
            mock.stats.slow_body_cut();
            let mut response = json_response(
                StatusCode::REQUEST_TIMEOUT,
                &json!({ "error": "invalid_request", "error_description": format!("The request body did not arrive within {} s.", body_read_timeout.as_secs_f64()) }),
            );
            response.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
            return Ok(response.map(Full::new));
        }
        Ok(Err(_)) => {
            let response = json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                &json!({ "error": "invalid_request", "error_description": format!("The request body exceeds {MAX_BODY} bytes or could not be read.") }),
            );
            return Ok(response.map(Full::new));
        }
    };
    let response = mock.handle(Request::from_parts(parts, body)).await?;
    Ok(response.map(Full::new))
}
