//! `tokenbench mock` as users run it: start, read the JSON line, get a token with a
//! `tokenbench assertion`, call the backend, stop with SIGTERM.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    time::Duration,
};

use serde_json::Value;

/// A running `tokenbench mock`, killed on drop (so a failed assertion leaves no server behind).
struct Server(Child);

impl Server {
    /// Starts `tokenbench mock` with `args`; returns it and its first stdout line, parsed.
    fn start(args: &[&str]) -> (Server, Value) {
        let child = Command::new(env!("CARGO_BIN_EXE_tokenbench"))
            .arg("mock")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = Server(child);
        let mut first_line = String::new();
        BufReader::new(server.0.stdout.as_mut().unwrap())
            .read_line(&mut first_line)
            .unwrap();
        let line =
            serde_json::from_str(&first_line).unwrap_or_else(|e| panic!("{e}: {first_line:?}"));
        (server, line)
    }

    /// Sends SIGTERM and waits for the exit.
    fn terminate(&mut self) -> ExitStatus {
        let killed = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        self.0.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Already reaped after `terminate`: then both are no-ops.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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
    let (mut server, urls) = Server::start(&["--token-lifetime", "600s"]);
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
        assert!(urls[key].is_string(), "{key} missing from {urls}");
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
    assert!(server.terminate().success());
    assert!(!Path::new(urls["client_key"].as_str().unwrap()).exists());
}

#[test]
fn mock_stops_gracefully_on_a_sigterm_right_after_its_line() {
    // The signal handlers are installed before the line is printed: a SIGTERM sent the
    // moment it is read still stops the server gracefully and removes the generated client.
    // A shell sends it with its `kill` builtin, microseconds after `read` returns.
    const SCRIPT: &str = r#"
        fifo="$(mktemp -u)" && mkfifo "$fifo" || exit 90
        "$0" mock >"$fifo" 2>/dev/null &
        pid=$!
        exec 3<"$fifo"
        rm -f "$fifo"
        IFS= read -r line <&3 || exit 91
        kill -TERM "$pid"
        wait "$pid"
        status=$?
        printf '%s\n%s\n' "$status" "$line"
    "#;
    for round in 0..10 {
        let output = Command::new("sh")
            .args(["-c", SCRIPT, env!("CARGO_BIN_EXE_tokenbench")])
            .output()
            .unwrap();
        assert!(output.status.success(), "round {round}: {output:?}");
        let stdout = String::from_utf8(output.stdout).unwrap();
        let (status, line) = stdout.split_once('\n').unwrap();
        assert_eq!(status, "0", "round {round}: exit status of tokenbench mock");
        let urls: Value = serde_json::from_str(line.trim()).unwrap();
        let folder = Path::new(urls["client_key"].as_str().unwrap())
            .parent()
            .unwrap()
            .to_owned();
        assert!(
            !folder.exists(),
            "round {round}: {} left behind",
            folder.display()
        );
    }
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
    let bad_values: [(&[&str], &str); 3] = [
        (&["--token-error-rate", "2"], "error_rate"),
        (&["--token-lifetime", "2d"], "token_lifetime"),
        (&["--throttle=0"], "throttle_rps"),
    ];
    for (args, field) in bad_values {
        let output = Command::new(env!("CARGO_BIN_EXE_tokenbench"))
            .arg("mock")
            .args(args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(field), "{args:?}: {stderr}");
    }
}

#[test]
fn mock_with_tls_serves_https_that_token_trusts_through_its_ca_file() {
    let (mut server, urls) = Server::start(&["--tls", "--client-secret", "tls-secret"]);
    let token_url = urls["token_url"].as_str().unwrap();
    assert!(token_url.starts_with("https://127.0.0.1:"), "{token_url}");
    let ca_file = urls["ca_file"].as_str().unwrap().to_owned();
    assert!(std::fs::read_to_string(&ca_file)
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    let token = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tokenbench"))
            .args(["token", "--token-url", token_url])
            .args(["--client-id", urls["client_id"].as_str().unwrap()])
            .args(["--scope", urls["scope"].as_str().unwrap()])
            .args(["--client-secret", "tls-secret"])
            .args(extra)
            .output()
            .unwrap()
    };
    let untrusted = token(&[]);
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert_eq!(untrusted.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("invalid peer certificate"), "{stderr}");
    let trusted = token(&["--ca-file", &ca_file]);
    assert!(trusted.status.success(), "{trusted:?}");
    let answer: Value = serde_json::from_slice(&trusted.stdout).unwrap();
    assert_eq!(answer["token_type"], "Bearer");
    let unreadable = token(&["--ca-file", "/nonexistent/ca.pem"]);
    let stderr = String::from_utf8_lossy(&unreadable.stderr);
    assert_eq!(unreadable.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/nonexistent/ca.pem"), "{stderr}");
    // Its CA certificate goes with the generated client at exit.
    assert!(server.terminate().success());
    assert!(!Path::new(&ca_file).exists());
}

#[test]
fn mock_requiring_azpacr_2_refuses_a_token_got_with_a_secret() {
    let (mut server, urls) = Server::start(&["--client-secret", "s3cret", "--require-azpacr", "2"]);
    let token_url = urls["token_url"].as_str().unwrap();
    let body = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", urls["client_id"].as_str().unwrap()),
        ("scope", urls["scope"].as_str().unwrap()),
        ("client_secret", "s3cret"),
    ]);
    let (status, answer) = http(
        token_url,
        "POST",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &body,
    );
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    let token = answer["access_token"].as_str().unwrap();
    let api = format!("{}/api/orders", urls["backend_url"].as_str().unwrap());
    let (status, body) = http(
        &api,
        "GET",
        &[("Authorization", &format!("Bearer {token}"))],
        "",
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("azpacr"), "{body}");
    assert!(server.terminate().success());

    // A value that is no azpacr is refused before the server starts.
    let refused = Command::new(env!("CARGO_BIN_EXE_tokenbench"))
        .args(["mock", "--require-azpacr", "certificate"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
}

#[test]
fn mock_requiring_a_scope_admits_an_on_behalf_of_token_and_refuses_an_app_token() {
    let (mut server, urls) =
        Server::start(&["--client-secret", "s3cret", "--require-scope", "Data.Read"]);
    let token_url = urls["token_url"].as_str().unwrap();
    let client_id = urls["client_id"].as_str().unwrap();
    let form_header = [("Content-Type", "application/x-www-form-urlencoded")];
    let token = |fields: &[(&str, &str)]| {
        let (status, answer) = http(token_url, "POST", &form_header, &form(fields));
        assert_eq!(status, 200, "{answer}");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        answer["access_token"].as_str().unwrap().to_owned()
    };
    let (status, user) = http(
        &format!("{}/user-token", urls["admin_url"].as_str().unwrap()),
        "POST",
        &form_header,
        &form(&[
            ("user", "alice"),
            ("audience", client_id),
            ("scope", "access_as_user"),
        ]),
    );
    assert_eq!(status, 200, "{user}");
    let user: Value = serde_json::from_str(&user).unwrap();
    let scope = urls["scope"].as_str().unwrap();
    let on_behalf_of = token(&[
        ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
        ("assertion", user["access_token"].as_str().unwrap()),
        ("requested_token_use", "on_behalf_of"),
        ("client_id", client_id),
        ("scope", scope),
        ("client_secret", "s3cret"),
    ]);
    let app = token(&[
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("scope", scope),
        ("client_secret", "s3cret"),
    ]);
    let api = format!("{}/api/orders", urls["backend_url"].as_str().unwrap());
    let call = |token: &str| {
        http(
            &api,
            "GET",
            &[("Authorization", &format!("Bearer {token}"))],
            "",
        )
    };
    let (status, body) = call(&on_behalf_of);
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(&app);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("scp"), "{body}");
    assert!(server.terminate().success());

    let refused = Command::new(env!("CARGO_BIN_EXE_tokenbench"))
        .args(["mock", "--require-scope", "Data.Read Data.Write"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
}
