//! Tokens, assertions and client secrets never appear in `Debug`, `Display`, errors or logs.

mod common;

use std::{
    fmt::{self, Write as _},
    sync::{Arc, Mutex},
};

use client::{CachePolicy, ClientAuth, ClientSecret, TokenClient, TokenClientConfig};
use common::{credential, secret, Fake, Recorder, Reply};
use http::StatusCode;
use signer::KeySpec;
use tracing::{
    field::{Field, Visit},
    span, Event, Metadata, Subscriber,
};

/// Collects every event and span field of every level, formatted.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &span::Attributes<'_>) -> span::Id {
        let mut line = Line(String::new());
        span.record(&mut line);
        self.0.lock().unwrap().push(line.0);
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, values: &span::Record<'_>) {
        let mut line = Line(String::new());
        values.record(&mut line);
        self.0.lock().unwrap().push(line.0);
    }
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = Line(format!("{} ", event.metadata().level()));
        event.record(&mut line);
        self.0.lock().unwrap().push(line.0);
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

fn settings(policy: CachePolicy) -> TokenClientConfig {
    let mut config = TokenClientConfig::new(
        "https://idp.test/token",
        "client-1",
        "api://backend/.default",
    );
    config.policy = policy;
    config
}

#[tokio::test(start_paused = true)]
async fn nothing_secret_in_logs_debug_display_or_errors() {
    let capture = Capture::default();
    let _default = tracing::subscriber::set_default(capture.clone());

    let fake = Fake::new(
        vec![
            Reply::Status {
                status: 429,
                retry_after: Some("1"),
                body: r#"{"error":"throttled"}"#,
            },
            Reply::Token { expires_in: 3600 },
            Reply::status(
                400,
                r#"{"error":"invalid_client","error_description":"bad"}"#,
            ),
            Reply::Token { expires_in: 3600 },
        ],
        Reply::Token { expires_in: 3600 },
    );
    let recorder = Recorder::new();
    let mut texts = Vec::new();

    // A client secret: a retried fetch, a failed one, a rejection.
    let client = TokenClient::builder(settings(CachePolicy::SingleFlight), secret())
        .transport(fake.clone())
        .observer(recorder.clone())
        .build()
        .unwrap();
    let token = client.get_token().await.unwrap();
    assert!(client.report_rejected(&token, StatusCode::UNAUTHORIZED));
    let error = client.get_token().await.unwrap_err();
    texts.push(format!("{error} {error:?}"));
    texts.push(format!("{token} {token:?} {client:?}"));
    texts.push(format!(
        "{:?}",
        TokenClient::builder(settings(CachePolicy::Apim), secret())
    ));
    texts.push(format!(
        "{:?}",
        ClientSecret::new("client-secret-value-do-not-log")
    ));

    // A certificate: every fetch signs an assertion.
    let credential = credential(KeySpec::P256, "aws-lc-rs", None);
    texts.push(format!("{:?}", ClientAuth::Certificate(credential.clone())));
    let client = TokenClient::builder(
        settings(CachePolicy::Apim),
        ClientAuth::Certificate(credential),
    )
    .transport(fake.clone())
    .observer(recorder.clone())
    .build()
    .unwrap();
    let token = client.get_token().await.unwrap();
    texts.push(format!("{token} {token:?} {client:?}"));
    for event in recorder.events() {
        texts.push(format!("{event:?}"));
    }

    let logs = capture.0.lock().unwrap().clone();
    assert!(
        logs.iter().any(|l| l.contains("retrying")) && logs.iter().any(|l| l.contains("rejected")),
        "the client logs its fetches: {logs:?}"
    );
    texts.extend(logs);

    let mut secrets: Vec<String> = (1..=fake.calls()).map(|n| format!("token-{n}")).collect();
    secrets.push("client-secret-value-do-not-log".to_owned());
    let forms = fake.forms();
    let assertions: Vec<String> = forms
        .iter()
        .flatten()
        .filter(|(k, _)| k == "client_assertion")
        .map(|(_, v)| v.clone())
        .collect();
    assert_eq!(assertions.len(), 1);
    for assertion in &assertions {
        // The whole assertion, and its signature alone.
        secrets.push(assertion.clone());
        secrets.push(assertion.rsplit('.').next().unwrap().to_owned());
    }
    for text in &texts {
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{secret:?} leaked in {text:?}"
            );
        }
    }
    // What is shown instead: a fingerprint.
    assert!(
        token.to_string().starts_with("<redacted sha256:"),
        "{token}"
    );
    assert_eq!(token.fingerprint().len(), "sha256:".len() + 8);
    assert!(format!("{token:?}").contains(&token.fingerprint()));
}

#[tokio::test(start_paused = true)]
async fn form_bodies_do_not_debug_print() {
    // The transport sees the body; its Debug shows only the length.
    struct Peek(Mutex<Vec<String>>);
    impl client::Transport for Peek {
        fn post_form<'a>(
            &'a self,
            _url: &'a http::Uri,
            form: client::transport::FormBody,
            _max_body: usize,
        ) -> client::transport::BoxFuture<
            'a,
            Result<http::Response<bytes::Bytes>, client::transport::TransportError>,
        > {
            self.0.lock().unwrap().push(format!("{form:?}"));
            assert!(form
                .as_str()
                .contains("client_secret=client-secret-value-do-not-log"));
            Box::pin(async {
                Ok(http::Response::new(bytes::Bytes::from_static(
                    br#"{"access_token":"t","expires_in":60}"#,
                )))
            })
        }
    }
    let peek = Arc::new(Peek(Mutex::new(Vec::new())));
    let client = TokenClient::builder(settings(CachePolicy::Apim), secret())
        .transport(peek.clone())
        .build()
        .unwrap();
    client.get_token().await.unwrap();
    let seen = peek.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].starts_with("FormBody(<") && !seen[0].contains("secret-value"),
        "{seen:?}"
    );
}
