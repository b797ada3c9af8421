//! The hyper shell on a real loopback socket: routing, the body limit, injected resets,
//! graceful shutdown, and HTTPS.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use mock::{
    server::MockServer, BackendConfig, ClientRegistration, FaultsDocument, Latency, MockConfig,
    OutageMode, TokenFaults,
};

/// Sends raw bytes, returns whatever came back before the server closed the connection.
fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

/// Asserts the server closed `stream` (end of stream or a reset, not a read timeout).
fn assert_closed(stream: &TcpStream) {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut rest = Vec::new();
    match (&*stream).read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest)),
        Err(e) => assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "still open: {e}"
        ),
    }
}

fn post(path: &str, body: &str) -> Vec<u8> {
    format!("POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

fn config() -> MockConfig {
    MockConfig {
        clients: vec![ClientRegistration::with_certificates("app", vec![]).with_secret("pw")],
        ..MockConfig::default()
    }
}

const SECRET_FORM: &str = "grant_type=client_credentials&client_id=app&scope=api%3A%2F%2Ftokenbench-backend%2F.default&client_secret=pw";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_tokens_and_refuses_oversized_bodies_over_loopback() {
    let server = MockServer::start(config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = server.addr();
    assert!(addr.ip().is_loopback());
    assert_eq!(
        server.urls().token_url,
        format!("http://{addr}/tokenbench/oauth2/v2.0/token")
    );

    let response = tokio::task::spawn_blocking(move || {
        exchange(addr, &post("/tokenbench/oauth2/v2.0/token", SECRET_FORM))
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"access_token\""));

    let huge = "a=".to_owned() + &"b".repeat(mock::MAX_BODY + 10);
    let response = tokio::task::spawn_blocking(move || {
        exchange(addr, &post("/tokenbench/oauth2/v2.0/token", &huge))
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 413"), "{response:.200}");

    let response = tokio::task::spawn_blocking(move || {
        exchange(
            addr,
            b"GET /api/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("www-authenticate: bearer error=\"invalid_token\""),
        "{response}"
    );

    server.shutdown().await;
    assert!(
        TcpStream::connect(addr).is_err(),
        "the listener is closed after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_are_cut_off_and_valid_clients_are_served_meanwhile() {
    let server = MockServer::start(
        MockConfig {
            body_read_timeout: Duration::from_millis(300),
            ..config()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let addr = server.addr();
    let head = |extra: &str| {
        format!(
            "POST /tokenbench/oauth2/v2.0/token HTTP/1.1\r\nHost: x\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n{extra}\r\n"
        )
    };
    // What a black-box attack held connections open with for 150 s and more.
    let stalls = [
        (
            "a Content-Length never met",
            head("Content-Length: 100\r\n") + "abc",
        ),
        (
            "Expect: 100-continue and no body",
            head("Content-Length: 40\r\nExpect: 100-continue\r\n"),
        ),
        (
            "a chunked body cut mid-chunk",
            head("Transfer-Encoding: chunked\r\n") + "10\r\nabc",
        ),
    ];
    let stalled: Vec<_> = stalls
        .iter()
        .map(|(what, bytes)| {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream.write_all(bytes.as_bytes()).unwrap();
            (*what, stream)
        })
        .collect();
    // A trickle: a byte every 100 ms, faster than any single timeout but never done.
    let trickle = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .write_all(head("Content-Length: 100\r\n").as_bytes())
            .unwrap();
        for _ in 0..30 {
            if stream.write_all(b"a").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        String::from_utf8_lossy(&response).into_owned()
    });
    // A valid client meanwhile.
    let valid = tokio::task::spawn_blocking(move || {
        exchange(addr, &post("/tokenbench/oauth2/v2.0/token", SECRET_FORM))
    })
    .await
    .unwrap();
    assert!(valid.starts_with("HTTP/1.1 200"), "{valid}");

    for (what, mut stream) in stalled {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let response = String::from_utf8_lossy(&response);
        assert!(response.contains("HTTP/1.1 408"), "{what}: {response}");
        assert_closed(&stream);
    }
    let trickled = tokio::task::spawn_blocking(move || trickle.join().unwrap())
        .await
        .unwrap();
    assert!(trickled.starts_with("HTTP/1.1 408"), "trickle: {trickled}");
    assert_eq!(server.mock().stats.snapshot().slow_bodies_cut, 4);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_a_new_connection_waits_for_one_to_close() {
    let server = MockServer::start(
        MockConfig {
            max_connections: Some(2),
            ..config()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let addr = server.addr();
    let answered = tokio::task::spawn_blocking(move || {
        // Two connections that send nothing hold both slots.
        let idle: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(200));
        // The third connects (the kernel's backlog) but is not served while both are held…
        let mut third = TcpStream::connect(addr).unwrap();
        third
            .write_all(&post("/tokenbench/oauth2/v2.0/token", SECRET_FORM))
            .unwrap();
        third
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut early = [0u8; 1];
        let held = matches!(
            third.read(&mut early),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
        );
        // … and is once one of them closes.
        drop(idle);
        third
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut response = Vec::new();
        let _ = third.read_to_end(&mut response);
        (held, String::from_utf8_lossy(&response).into_owned())
    })
    .await
    .unwrap();
    let (held, response) = answered;
    assert!(held, "served past the cap");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(server.mock().stats.snapshot().connection_cap_waits >= 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_outage_closes_the_connection_without_an_answer() {
    let server = MockServer::start(config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = server.addr();
    server
        .mock()
        .set_faults(FaultsDocument {
            token: TokenFaults {
                outage_ms: Some(60_000),
                outage_mode: OutageMode::Reset,
                ..TokenFaults::default()
            },
            ..FaultsDocument::default()
        })
        .unwrap();
    let response = tokio::task::spawn_blocking(move || {
        exchange(addr, &post("/tokenbench/oauth2/v2.0/token", SECRET_FORM))
    })
    .await
    .unwrap();
    assert_eq!(response, "", "no answer at all");
    // The backend is not part of the outage.
    let response = tokio::task::spawn_blocking(move || {
        exchange(
            addr,
            b"GET /api/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    assert_eq!(server.mock().stats.snapshot().token_requests.outage, 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_request_in_flight_finish() {
    let server = MockServer::start(
        MockConfig {
            backend: BackendConfig {
                latency: Latency::Fixed { ms: 400.0 },
                ..BackendConfig::default()
            },
            ..config()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let addr = server.addr();
    // A keep-alive request: the server must answer it, then close the connection itself.
    let in_flight = tokio::task::spawn_blocking(move || {
        exchange(addr, b"GET /api/x HTTP/1.1\r\nHost: x\r\n\r\n")
    });
    // An idle keep-alive connection is closed at once.
    let idle = TcpStream::connect(addr).unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = Instant::now();
    server.shutdown().await;
    let waited = started.elapsed();
    let response = in_flight.await.unwrap();
    assert!(
        response.starts_with("HTTP/1.1 401"),
        "answered during shutdown: {response:?}"
    );
    assert!(
        waited >= Duration::from_millis(100) && waited < Duration::from_secs(4),
        "shutdown waited for the answer, not for the drain timeout: {waited:?}"
    );
    assert_closed(&idle);
    assert!(
        TcpStream::connect(addr).is_err(),
        "the listener is closed after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_aborts_requests_still_running_after_the_drain_timeout() {
    let server = MockServer::start(
        MockConfig {
            backend: BackendConfig {
                latency: Latency::Fixed { ms: 9_000.0 },
                ..BackendConfig::default()
            },
            ..config()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let addr = server.addr();
    let stuck = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let response = exchange(
            addr,
            b"GET /api/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        (response, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = Instant::now();
    server.shutdown().await;
    let waited = started.elapsed();
    assert!(
        (Duration::from_secs(4)..Duration::from_secs(8)).contains(&waited),
        "shutdown waits the 5 s drain timeout, then aborts: {waited:?}"
    );
    let (response, elapsed) = stuck.await.unwrap();
    assert_eq!(response, "", "aborted without an answer");
    assert!(elapsed < Duration::from_secs(8), "{elapsed:?}");
}

/// A TLS client of `version` trusting `ca_pem` only, for 127.0.0.1.
async fn tls_exchange(
    addr: SocketAddr,
    ca_pem: &str,
    version: &'static rustls::SupportedProtocolVersion,
    request: &[u8],
) -> Result<String, std::io::Error> {
    use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[version])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await?;
    tls.write_all(request).await?;
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

async fn start_tls() -> MockServer {
    let config = MockConfig {
        tls: true,
        ..config()
    };
    MockServer::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tls_it_serves_https_over_tls_1_3_and_1_2_and_counts_handshakes() {
    let server = start_tls().await;
    let addr = server.addr();
    for url in [&server.urls().token_url, &server.urls().issuer] {
        assert!(url.starts_with(&format!("https://{addr}/")), "{url}");
    }
    let ca = server.ca_pem().expect("a CA when serving TLS").to_owned();
    let token_request = post("/tokenbench/oauth2/v2.0/token", SECRET_FORM);
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let answer = tls_exchange(addr, &ca, version, &token_request)
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    // A client trusting another CA refuses the server; plain HTTP gets no answer.
    let other = start_tls().await;
    let refused = tls_exchange(addr, other.ca_pem().unwrap(), &rustls::version::TLS13, b"")
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("UnknownIssuer"), "{refused}");
    let plain = tokio::task::spawn_blocking(move || exchange(addr, &token_request))
        .await
        .unwrap();
    assert!(!plain.contains("HTTP/1.1 200"), "{plain}");

    // The server counts a failed handshake after the client has seen it fail.
    let mut stats = server.mock().stats.snapshot();
    for _ in 0..100 {
        if stats.tls_handshake_failures == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        stats = server.mock().stats.snapshot();
    }
    assert_eq!(stats.tls_handshakes, 2);
    assert_eq!(stats.tls_handshake_failures, 2);
    assert!(stats.tls_handshake_micros > 0);
    assert_eq!(stats.token_requests.ok, 2);
    assert!(MockServer::start(config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .ca_pem()
        .is_none());
    other.shutdown().await;
    server.shutdown().await;
}
