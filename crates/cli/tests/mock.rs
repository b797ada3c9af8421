//! `tokenbench mock` as users run it: start, read the JSON line, get a token with a
//! `tokenbench assertion`, call the backend, stop with SIGTERM.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;

/// One HTTP/1.1 exchange over a fresh loopback connection; returns status and body.
fn http(url: &str, method: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = TcpStream::connect(authority).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                v.bytes()
                    .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    })
                    .collect::<String>()
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[test]
fn mock_serves_a_token_for_a_tokenbench_assertion_and_the_backend_accepts_it() {
    let mut server = Command::new(env!("CARGO_BIN_EXE_tokenbench"))
        .args(["mock", "--token-lifetime", "600s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first_line = String::new();
    BufReader::new(server.stdout.as_mut().unwrap())
        .read_line(&mut first_line)
        .unwrap();
    let urls: Value = serde_json::from_str(&first_line).unwrap();
    for key in [
        "issuer",
        "token_url",
        "jwks_url",
        "backend_url",
        "admin_url",
        "scope",
        "client_id",
        "client_key",
        "client_cert",
    ] {
        assert!(urls[key].is_string(), "{key} missing from {first_line}");
    }
    let token_url = urls["token_url"].as_str().unwrap();
    assert!(token_url.starts_with("http://127.0.0.1:"), "{token_url}");

    let assertion = Command::new(env!("CARGO_BIN_EXE_tokenbench"))
        .args([
            "assertion",
            "--key",
            urls["client_key"].as_str().unwrap(),
            "--cert",
            urls["client_cert"].as_str().unwrap(),
        ])
        .args([
            "--client-id",
            urls["client_id"].as_str().unwrap(),
            "--audience",
            token_url,
        ])
        .output()
        .unwrap();
    assert!(assertion.status.success());
    let assertion = String::from_utf8(assertion.stdout).unwrap();

    let body = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", urls["client_id"].as_str().unwrap()),
        ("scope", urls["scope"].as_str().unwrap()),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion.trim()),
    ]);
    let (status, answer) = http(
        token_url,
        "POST",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &body,
    );
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["expires_in"], 600);
    let token = answer["access_token"].as_str().unwrap();

    let api = format!("{}/api/orders", urls["backend_url"].as_str().unwrap());
    let (status, _) = http(
        &api,
        "GET",
        &[("Authorization", &format!("Bearer {token}"))],
        "",
    );
    assert_eq!(status, 200);
    let (status, _) = http(&api, "GET", &[], "");
    assert_eq!(status, 401);
    let (status, stats) = http(
        &format!("{}/stats", urls["admin_url"].as_str().unwrap()),
        "GET",
        &[],
        "",
    );
    assert_eq!(status, 200);
    let stats: Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["token_requests"]["ok"], 1);
    assert_eq!(stats["backend_requests"]["ok"], 1);

    // `tokenbench token` against it: every backend, PS256 and RS256.
    for backend in ["rsa", "ring", "aws-lc-rs"] {
        for alg in ["PS256", "RS256"] {
            let output = Command::new(env!("CARGO_BIN_EXE_tokenbench"))
                .args([
                    "token",
                    "--token-url",
                    token_url,
                    "--scope",
                    urls["scope"].as_str().unwrap(),
                ])
                .args(["--client-id", urls["client_id"].as_str().unwrap()])
                .args([
                    "--key",
                    urls["client_key"].as_str().unwrap(),
                    "--cert",
                    urls["client_cert"].as_str().unwrap(),
                ])
                .args(["--backend", backend, "--alg", alg])
                .env_remove("TOKENBENCH_CLIENT_SECRET")
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(output.status.success(), "{backend} {alg}: {stderr}");
            let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
            assert_eq!(printed["expires_in"], 600, "{backend} {alg}");
            assert_eq!(printed["token_type"], "Bearer");
        }
    }

    // SIGTERM: a graceful stop, exit 0, the generated key removed.
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(server.wait().unwrap().success());
    assert!(!Path::new(urls["client_key"].as_str().unwrap()).exists());
}

#[test]
fn mock_refuses_unpaired_client_options() {
    let output = Command::new(env!("CARGO_BIN_EXE_tokenbench"))
        .args([
            "mock",
            "--client-id",
            "a",
            "--client-id",
            "b",
            "--client-cert",
            "/nonexistent.pem",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("one --client-cert per --client-id"));
    let output = Command::new(env!("CARGO_BIN_EXE_tokenbench"))
        .args([
            "mock",
            "--client-id",
            "a",
            "--client-cert",
            "/nonexistent.pem",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent.pem"));
    let output = Command::new(env!("CARGO_BIN_EXE_tokenbench"))
        .args(["mock", "--token-error-rate", "2"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("error_rate"));
}
