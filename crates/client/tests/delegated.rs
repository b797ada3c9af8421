//! Users' tokens against the project's mock identity provider over loopback HTTP: one cache
//! entry per user under every policy, the entry limit with least-recently-used eviction,
//! on-behalf-of and refresh-token acquisition; and on tokio's paused clock, which credential
//! a refresh sends.

mod common;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use bytes::Bytes;
use client::{
    CacheKey, CachePolicy, ClientAuth, ClientSecret, DelegatedTokenClient, Error, RefreshTokenSlot,
    TokenClientConfig, TokenObserver, UserGrant,
};
use common::{until, Fake};
use http::{Method, Request, StatusCode};
use mock::{server::MockServer, BackendConfig, ClientRegistration, MockConfig};
use serde_json::Value;

const CLIENT: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
const SECRET: &str = "gateway-secret";

async fn server() -> MockServer {
    let config = MockConfig {
        clients: vec![ClientRegistration::with_certificates(CLIENT, vec![]).with_secret(SECRET)],
        backend: BackendConfig {
            required_role: None,
            required_scope: Some(mock::DEFAULT_DELEGATED_SCOPE.to_owned()),
            ..BackendConfig::default()
        },
        ..MockConfig::default()
    };
    MockServer::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// The evicted keys an observer was told of.
#[derive(Default)]
struct Evictions(Mutex<Vec<CacheKey>>);

impl TokenObserver for Evictions {
    fn evicted(&self, key: &CacheKey) {
        self.0.lock().unwrap().push(key.clone());
    }
}

fn users_client(
    server: &MockServer,
    policy: CachePolicy,
    max_entries: usize,
    observer: Arc<dyn TokenObserver>,
) -> DelegatedTokenClient {
    let urls = server.urls();
    let mut config = TokenClientConfig::new(
        urls.token_url.clone(),
        CLIENT,
        format!("{}/.default", mock::DEFAULT_RESOURCE),
    );
    config.policy = policy;
    DelegatedTokenClient::builder(config, ClientAuth::Secret(ClientSecret::new(SECRET)))
        .max_entries(max_entries)
        .observer(observer)
        .seed(7)
        .build()
        .unwrap()
}

/// POSTs a form to the mock in-process; the answer's JSON.
async fn post(server: &MockServer, path: &str, fields: &[(&str, &str)]) -> (StatusCode, Value) {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .body(Bytes::from(body))
        .unwrap();
    let response = server.mock().handle(request).await.unwrap();
    (
        response.status(),
        serde_json::from_slice(response.body()).unwrap(),
    )
}

/// The user's incoming token: for the gateway, as the user's browser app would send it.
async fn user_token(server: &MockServer, user: &str) -> String {
    let (status, body) = post(
        server,
        "/admin/user-token",
        &[
            ("user", user),
            ("audience", CLIENT),
            ("scope", "access_as_user"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// A refresh-ahead client of users' tokens (1 s jitter) over `fake`, on the paused clock.
fn refresh_ahead_over(fake: &Arc<Fake>) -> DelegatedTokenClient {
    let mut config = TokenClientConfig::new(
        "https://idp.test/tenant/oauth2/v2.0/token",
        CLIENT,
        "api://backend/Data.Read",
    );
    config.policy = CachePolicy::RefreshAhead;
    config.refresh_jitter = Duration::from_secs(1);
    DelegatedTokenClient::builder(config, ClientAuth::Secret(ClientSecret::new(SECRET)))
        .transport(fake.clone())
        .seed(3)
        .build()
        .unwrap()
}

/// The refresh token of `user` signed in to the gateway: a code from `/admin/authorize`,
/// redeemed by the gateway.
async fn signed_in(server: &MockServer, user: &str) -> String {
    let (_, code) = post(
        server,
        "/admin/authorize",
        &[
            ("user", user),
            ("client_id", CLIENT),
            ("redirect_uri", mock::DEFAULT_REDIRECT_URI),
        ],
    )
    .await;
    let (status, redeemed) = post(
        server,
        "/tokenbench/oauth2/v2.0/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", code["code"].as_str().unwrap()),
            ("redirect_uri", mock::DEFAULT_REDIRECT_URI),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{redeemed}");
    redeemed["refresh_token"].as_str().unwrap().to_owned()
}

fn token_requests(server: &MockServer) -> u64 {
    server.mock().stats.snapshot().token_requests.total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_gets_and_keeps_their_own_token_under_every_policy() {
    let server = server().await;
    let users = ["alice", "bob", "carol"];
    let mut incoming = Vec::new();
    for user in users {
        incoming.push(user_token(&server, user).await);
    }
    for policy in CachePolicy::ALL {
        let before = token_requests(&server);
        let client = users_client(&server, policy, 100, Arc::new(Evictions::default()));
        for round in 0..3 {
            for (user, assertion) in users.iter().zip(&incoming) {
                let token = client
                    .get_token(user, UserGrant::on_behalf_of(assertion))
                    .await
                    .unwrap_or_else(|e| panic!("{policy} {user}: {e}"));
                let claims = claims(token.access_token());
                assert_eq!(
                    claims["preferred_username"], *user,
                    "{policy} round {round}"
                );
                assert_eq!(claims["oid"], mock::user_oid(mock::DEFAULT_TENANT, user));
                assert_eq!(claims["azp"], CLIENT);
                let header = format!("Bearer {}", token.access_token());
                assert_eq!(server.mock().backend.check(Some(header.as_bytes())), Ok(()));
            }
        }
        assert_eq!(
            token_requests(&server) - before,
            3,
            "{policy}: one on-behalf-of request per user, then hits"
        );
        assert_eq!((client.entries(), client.evictions()), (3, 0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_least_recently_used_user_is_evicted_at_the_entry_limit() {
    let server = server().await;
    let observer = Arc::new(Evictions::default());
    let client = users_client(&server, CachePolicy::SingleFlight, 2, observer.clone());
    let mut incoming = std::collections::HashMap::new();
    for user in ["a", "b", "c"] {
        incoming.insert(user, user_token(&server, user).await);
    }
    let before = token_requests(&server);
    // a, b cached; a used again (most recent); c evicts b, the least recently used.
    for user in ["a", "b", "a", "c"] {
        client
            .get_token(user, UserGrant::on_behalf_of(&incoming[user]))
            .await
            .unwrap();
    }
    assert_eq!(token_requests(&server) - before, 3);
    assert_eq!((client.entries(), client.evictions()), (2, 1));
    // a is still cached (a hit), b must be fetched again (and evicts c's elder, a).
    client
        .get_token("a", UserGrant::on_behalf_of(&incoming["a"]))
        .await
        .unwrap();
    assert_eq!(token_requests(&server) - before, 3);
    client
        .get_token("b", UserGrant::on_behalf_of(&incoming["b"]))
        .await
        .unwrap();
    assert_eq!(token_requests(&server) - before, 4);
    assert_eq!(
        (client.entries(), client.max_entries(), client.evictions()),
        (2, 2, 2)
    );
    let evicted: Vec<Option<String>> = observer
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|key| key.user().map(str::to_owned))
        .collect();
    assert_eq!(evicted, [Some("b".to_owned()), Some("c".to_owned())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_is_redeemed_and_its_rotation_kept_in_the_slot() {
    let server = server().await;
    let first = signed_in(&server, "dave").await;
    let slot = RefreshTokenSlot::new(first.clone());
    assert_eq!(format!("{slot:?}"), "RefreshTokenSlot(<redacted>)");

    let client = users_client(
        &server,
        CachePolicy::SingleFlight,
        10,
        Arc::new(Evictions::default()),
    );
    let token = client
        .get_token("dave", UserGrant::refresh_token(&slot))
        .await
        .unwrap();
    assert_eq!(claims(token.access_token())["preferred_username"], "dave");
    // The token is dropped (a 401), and the next miss redeems the rotated refresh token:
    // had the slot kept the first, the provider would refuse it as reused.
    assert!(client.report_rejected("dave", &token, StatusCode::UNAUTHORIZED));
    let again = client
        .get_token("dave", UserGrant::refresh_token(&slot))
        .await
        .unwrap();
    assert_ne!(again.access_token(), token.access_token());
    let (status, reused) = post(
        &server,
        "/tokenbench/oauth2/v2.0/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &first),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
        ],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the first was used: {reused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_assertion_is_an_endpoint_error_that_names_no_secret() {
    let server = server().await;
    let client = users_client(
        &server,
        CachePolicy::Apim,
        10,
        Arc::new(Evictions::default()),
    );
    // A user token for another app: refused, AADSTS50013.
    let (_, foreign) = post(
        &server,
        "/admin/user-token",
        &[
            ("user", "eve"),
            ("audience", "api://someone-else"),
            ("scope", "x"),
        ],
    )
    .await;
    let foreign = foreign["access_token"].as_str().unwrap();
    let error = client
        .get_token("eve", UserGrant::on_behalf_of(foreign))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::Endpoint { status: 400, error: Some(e), .. } if e == "invalid_grant"),
        "{error:?}"
    );
    let shown = format!("{error} {error:?}");
    assert!(
        !shown.contains(foreign) && !shown.contains(SECRET),
        "{shown}"
    );
    assert_eq!(
        format!("{:?}", UserGrant::on_behalf_of(foreign)),
        "UserGrant::OnBehalfOf(<redacted>)"
    );

    let urls = server.urls();
    let config = TokenClientConfig::new(urls.token_url.clone(), CLIENT, urls.scope.clone());
    let refused =
        DelegatedTokenClient::builder(config, ClientAuth::Secret(ClientSecret::new(SECRET)))
            .max_entries(0)
            .build()
            .unwrap_err();
    assert!(refused.to_string().contains("max_entries"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_redemptions_of_one_refresh_token_take_turns() {
    let server = server().await;
    let slot = RefreshTokenSlot::new(signed_in(&server, "erin").await);
    // Two caches of the user's access token (say, before and after an eviction) with one
    // session: both miss and both redeem. Had they sent the same refresh token, the provider
    // would take the second for a theft and refuse it (revoking the first's too).
    let before = users_client(
        &server,
        CachePolicy::Apim,
        10,
        Arc::new(Evictions::default()),
    );
    let after = users_client(
        &server,
        CachePolicy::Apim,
        10,
        Arc::new(Evictions::default()),
    );
    let (first, second) = tokio::join!(
        before.get_token("erin", UserGrant::refresh_token(&slot)),
        after.get_token("erin", UserGrant::refresh_token(&slot)),
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_ne!(first.access_token(), second.access_token());
    let counts = server.mock().stats.snapshot().token_requests;
    assert_eq!((counts.ok, counts.invalid_grant), (3, 0));
}

#[tokio::test(start_paused = true)]
async fn a_refresh_coming_due_sends_the_users_current_token_and_a_plain_hit_asks_for_none() {
    let fake = Fake::tokens(100);
    let users = refresh_ahead_over(&fake);
    users
        .get_token("alice", UserGrant::on_behalf_of("first-user-token"))
        .await
        .unwrap();
    let no_grant = || -> Result<UserGrant, Error> { panic!("a plain hit needs no grant") };
    users.get_token_with("alice", no_grant).await.unwrap();
    // In the refresh window (95 s to 96 s): the hit hands over the user's current token.
    tokio::time::advance(Duration::from_secs(97)).await;
    users
        .get_token_with("alice", || Ok(UserGrant::on_behalf_of("second-user-token")))
        .await
        .unwrap();
    until("the refresh", || fake.calls() == 2).await;
    let field = |form: &[(String, String)], name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let forms = fake.forms();
    assert_eq!(
        field(&forms[0], "assertion").as_deref(),
        Some("first-user-token")
    );
    assert_eq!(
        field(&forms[1], "assertion").as_deref(),
        Some("second-user-token")
    );
    for form in &forms {
        assert_eq!(
            field(form, "grant_type").as_deref(),
            Some(client::JWT_BEARER_GRANT)
        );
        assert_eq!(
            field(form, "requested_token_use").as_deref(),
            Some("on_behalf_of")
        );
    }
    // Once the refresh is claimed, lookups ask for nothing until the next window.
    users.get_token_with("alice", no_grant).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn after_a_failed_refresh_the_next_lookup_hands_over_a_current_token() {
    let fake = Fake::new(
        vec![
            common::Reply::Token { expires_in: 100 },
            common::Reply::status(500, r#"{"error":"server_error"}"#),
        ],
        common::Reply::Token { expires_in: 100 },
    );
    let users = refresh_ahead_over(&fake);
    let grant = |token: &'static str| move || Ok(UserGrant::on_behalf_of(token));
    users.get_token_with("bob", grant("first")).await.unwrap();
    tokio::time::advance(Duration::from_secs(97)).await;
    let old = users.get_token_with("bob", grant("second")).await.unwrap();
    until("the failed refresh", || fake.calls() == 2).await;
    // The refresh waits half the remaining lifetime (1.5 s), then leaves the claim to the
    // next lookup, which brings the user's current token.
    tokio::time::advance(Duration::from_millis(1600)).await;
    tokio::task::yield_now().await;
    let still = users.get_token_with("bob", grant("third")).await.unwrap();
    assert_eq!(
        still.generation(),
        old.generation(),
        "served until it expires"
    );
    until("the second refresh", || fake.calls() == 3).await;
    let assertions: Vec<String> = fake
        .forms()
        .iter()
        .filter_map(|form| {
            form.iter()
                .find(|(key, _)| key == "assertion")
                .map(|(_, value)| value.clone())
        })
        .collect();
    assert_eq!(assertions, ["first", "second", "third"]);
}
