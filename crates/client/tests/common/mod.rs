//! Test doubles shared by the client's integration tests: a recording observer, a scripted
//! in-process transport, a gate that holds requests back, and credentials.
#![allow(dead_code)]

use std::{
    collections::VecDeque,
    future::Future,
    pin::pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll, Waker},
    time::Duration,
};

use bytes::Bytes;
use client::{
    observer::{
        EpisodeEnded, FetchFinished, FetchOutcome, FetchReason, FetchStarted, Rejected, Retrying,
        Signed,
    },
    transport::{BoxFuture, FormBody, TransportError},
    CacheKey, ClientAuth, ClientSecret, TokenObserver, Transport,
};
use signer::{
    backend, keygen, Algorithm, Certificate, Credential, CryptoBackend, KeySpec, PrivateKey,
    PublicKey, SigningKey, VerifyingKey,
};
use tokio::{sync::Semaphore, time::Instant};

/// Everything an observer was told.
#[derive(Clone, Debug)]
pub enum Event {
    EpisodeStarted(u64),
    FetchStarted(FetchStarted),
    Signed(Signed),
    Retrying(Retrying),
    FetchFinished(FetchFinished),
    EpisodeEnded(EpisodeEnded),
    Rejected(Rejected),
}

/// An event payload that [`Recorder::all`] picks out of the recorded events.
pub trait Recorded: Sized {
    fn pick(event: Event) -> Option<Self>;
}

macro_rules! recorded {
    ($($variant:ident),*) => {$(
        impl Recorded for $variant {
            fn pick(event: Event) -> Option<Self> {
                match event {
                    Event::$variant(e) => Some(e),
                    _ => None,
                }
            }
        }
    )*};
}

recorded!(
    FetchStarted,
    Signed,
    Retrying,
    FetchFinished,
    EpisodeEnded,
    Rejected
);

/// Counts hits and misses; records every other event.
#[derive(Default)]
pub struct Recorder {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    pub fn new() -> Arc<Self> {
        Arc::new(Recorder::default())
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::SeqCst)
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// Every recorded event of type `T`, in order.
    pub fn all<T: Recorded>(&self) -> Vec<T> {
        self.events().into_iter().filter_map(T::pick).collect()
    }

    /// Finished fetches of `reason` that failed.
    pub fn failed(&self, reason: FetchReason) -> usize {
        self.all::<FetchFinished>()
            .iter()
            .filter(|f| f.reason == reason && matches!(f.outcome, FetchOutcome::Failed(_)))
            .count()
    }

    fn push(&self, event: Event) {
        self.events.lock().unwrap().push(event);
    }
}

impl TokenObserver for Recorder {
    fn hit(&self, _key: &CacheKey) {
        self.hits.fetch_add(1, Ordering::SeqCst);
    }
    fn miss(&self, _key: &CacheKey) {
        self.misses.fetch_add(1, Ordering::SeqCst);
    }
    fn episode_started(&self, _key: &CacheKey, episode: u64) {
        self.push(Event::EpisodeStarted(episode));
    }
    fn fetch_started(&self, _key: &CacheKey, event: &FetchStarted) {
        self.push(Event::FetchStarted(event.clone()));
    }
    fn signed(&self, _key: &CacheKey, event: &Signed) {
        self.push(Event::Signed(event.clone()));
    }
    fn retrying(&self, _key: &CacheKey, event: &Retrying) {
        self.push(Event::Retrying(event.clone()));
    }
    fn fetch_finished(&self, _key: &CacheKey, event: &FetchFinished) {
        self.push(Event::FetchFinished(event.clone()));
    }
    fn episode_ended(&self, _key: &CacheKey, event: &EpisodeEnded) {
        self.push(Event::EpisodeEnded(event.clone()));
    }
    fn rejected(&self, _key: &CacheKey, event: &Rejected) {
        self.push(Event::Rejected(event.clone()));
    }
}

/// One scripted answer.
#[derive(Clone)]
pub enum Reply {
    /// 200 with a token `token-{call}` and this `expires_in`.
    Token { expires_in: u64 },
    /// A status with an optional `Retry-After` and a body.
    Status {
        status: u16,
        retry_after: Option<&'static str>,
        body: &'static str,
    },
    /// Waits for a permit of the semaphore, then answers a token with this `expires_in`.
    Gated {
        gate: Arc<Semaphore>,
        expires_in: u64,
    },
    /// Never answers.
    Hang,
}

impl Reply {
    pub fn status(status: u16, body: &'static str) -> Self {
        Reply::Status {
            status,
            retry_after: None,
            body,
        }
    }
}

/// An in-process token endpoint that answers from a script (then `fallback`), and records
/// when each request arrived (tokio time, so the paused clock applies) and its form.
pub struct Fake {
    script: Mutex<VecDeque<Reply>>,
    fallback: Reply,
    calls: Mutex<Vec<Instant>>,
    forms: Mutex<Vec<Vec<(String, String)>>>,
}

impl Fake {
    pub fn new(script: Vec<Reply>, fallback: Reply) -> Arc<Self> {
        Arc::new(Fake {
            script: Mutex::new(script.into()),
            fallback,
            calls: Mutex::new(Vec::new()),
            forms: Mutex::new(Vec::new()),
        })
    }

    /// Always a token with this `expires_in`.
    pub fn tokens(expires_in: u64) -> Arc<Self> {
        Self::new(Vec::new(), Reply::Token { expires_in })
    }

    pub fn calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    pub fn call_times(&self) -> Vec<Instant> {
        self.calls.lock().unwrap().clone()
    }

    pub fn forms(&self) -> Vec<Vec<(String, String)>> {
        self.forms.lock().unwrap().clone()
    }
}

impl Transport for Fake {
    fn post_form<'a>(
        &'a self,
        _url: &'a http::Uri,
        form: FormBody,
        _max_body: usize,
    ) -> BoxFuture<'a, Result<http::Response<Bytes>, TransportError>> {
        let call = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(Instant::now());
            calls.len()
        };
        self.forms.lock().unwrap().push(
            form.pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        );
        let reply = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| self.fallback.clone());
        Box::pin(async move {
            let token = |expires_in: u64| {
                http::Response::new(Bytes::from(format!(
                    r#"{{"token_type":"Bearer","expires_in":{expires_in},"access_token":"token-{call}"}}"#
                )))
            };
            match reply {
                Reply::Token { expires_in } => Ok(token(expires_in)),
                Reply::Status {
                    status,
                    retry_after,
                    body,
                } => {
                    let mut response = http::Response::builder().status(status);
                    if let Some(value) = retry_after {
                        response = response.header(http::header::RETRY_AFTER, value);
                    }
                    Ok(response.body(Bytes::from_static(body.as_bytes())).unwrap())
                }
                Reply::Gated { gate, expires_in } => {
                    gate.acquire().await.unwrap().forget();
                    Ok(token(expires_in))
                }
                Reply::Hang => std::future::pending().await,
            }
        })
    }
}

/// Wraps a transport; every request waits for a permit first.
pub struct Gate<T> {
    pub inner: T,
    pub permits: Arc<Semaphore>,
}

impl<T: Transport> Transport for Gate<T> {
    fn post_form<'a>(
        &'a self,
        url: &'a http::Uri,
        form: FormBody,
        max_body: usize,
    ) -> BoxFuture<'a, Result<http::Response<Bytes>, TransportError>> {
        Box::pin(async move {
            self.permits.acquire().await.unwrap().forget();
            self.inner.post_form(url, form, max_body).await
        })
    }
}

/// Polls `future` once; `Some` if it completed at once.
pub fn poll_once<F: Future>(future: F) -> Option<F::Output> {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

/// Waits (yielding, and sleeping 1 ms between checks) until `condition` holds; panics after
/// 30 s of tokio time. A bound, not a timing assertion.
pub async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::task::yield_now().await;
        if !condition() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// A client secret.
pub fn secret() -> ClientAuth {
    ClientAuth::Secret(ClientSecret::new("client-secret-value-do-not-log"))
}

/// A fresh key of `spec`, its self-signed certificate, and a credential through `backend`.
pub fn credential(spec: KeySpec, backend: &str, alg: Option<signer::Algorithm>) -> Credential {
    let generated = keygen::generate(spec, "client-test", 1).unwrap();
    credential_from(&generated, backend, alg)
}

/// A credential of generated key material through `backend`.
pub fn credential_from(
    generated: &keygen::Generated,
    backend: &str,
    alg: Option<signer::Algorithm>,
) -> Credential {
    let key = PrivateKey::from_bytes(generated.key_pem.as_bytes(), "key.pem", None).unwrap();
    let cert = Certificate::from_bytes(generated.cert_pem.as_bytes(), "cert.pem").unwrap();
    Credential::new(backend::by_name(backend).unwrap(), &key, cert, alg).unwrap()
}

/// A credential (aws-lc-rs, P-256) whose signatures fail while the returned switch is on.
pub fn failing_credential() -> (Credential, Arc<AtomicBool>) {
    let fail = Arc::new(AtomicBool::new(false));
    let backend = Switchable {
        inner: backend::by_name("aws-lc-rs").unwrap(),
        fail: fail.clone(),
    };
    let generated = keygen::generate(KeySpec::P256, "client-test", 1).unwrap();
    let key = PrivateKey::from_bytes(generated.key_pem.as_bytes(), "key.pem", None).unwrap();
    let cert = Certificate::from_bytes(generated.cert_pem.as_bytes(), "cert.pem").unwrap();
    (Credential::new(&backend, &key, cert, None).unwrap(), fail)
}

/// A backend whose signing keys fail while `fail` is on.
#[derive(Debug)]
struct Switchable {
    inner: &'static dyn CryptoBackend,
    fail: Arc<AtomicBool>,
}

#[derive(Debug)]
struct SwitchableKey {
    inner: Box<dyn SigningKey>,
    fail: Arc<AtomicBool>,
}

impl CryptoBackend for Switchable {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn supports(&self, alg: Algorithm) -> bool {
        self.inner.supports(alg)
    }
    fn load_signing_key(
        &self,
        key: &PrivateKey,
        alg: Algorithm,
    ) -> Result<Box<dyn SigningKey>, signer::Error> {
        Ok(Box::new(SwitchableKey {
            inner: self.inner.load_signing_key(key, alg)?,
            fail: self.fail.clone(),
        }))
    }
    fn load_verifying_key(
        &self,
        key: &PublicKey,
        alg: Algorithm,
    ) -> Result<Box<dyn VerifyingKey>, signer::Error> {
        self.inner.load_verifying_key(key, alg)
    }
}

impl SigningKey for SwitchableKey {
    fn algorithm(&self) -> Algorithm {
        self.inner.algorithm()
    }
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    fn public_key(&self) -> PublicKey {
        self.inner.public_key()
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, signer::Error> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(signer::Error::Signing {
                backend: self.backend(),
                alg: self.algorithm(),
            });
        }
        self.inner.sign(message)
    }
}
