//! The `credential-manager` policy on tokio's paused clock: a managed store that refreshes
//! each token itself in its refresh window, so that lookups never miss after the first, even
//! when nobody looked for a whole lifetime; where `refresh-ahead` lets such a token expire.

mod common;

use std::{sync::Arc, time::Duration};

use client::{CachePolicy, TokenClient, TokenClientConfig};
use common::{secret, until, Fake, Recorder};
use tokio::time::Instant;

fn client(policy: CachePolicy, fake: &Arc<Fake>, recorder: &Arc<Recorder>) -> TokenClient {
    let mut config = TokenClientConfig::new(
        "https://idp.test/tenant/oauth2/v2.0/token",
        "client-1",
        "api://backend/.default",
    );
    config.policy = policy;
    config.refresh_jitter = Duration::from_secs(2);
    TokenClient::builder(config, secret())
        .transport(fake.clone())
        .observer(recorder.clone())
        .seed(5)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_store_refreshes_tokens_nobody_asks_for_and_lookups_never_miss_again() {
    let fake = Fake::tokens(100);
    let recorder = Recorder::new();
    let store = client(CachePolicy::CredentialManager, &fake, &recorder);
    let first = store.get_token().await.unwrap();
    let start = Instant::now();
    // Ten lifetimes without a single lookup: one refresh in each, by the store itself, in
    // the window (95 s to 97 s into each token's life).
    for lifetime in 1..=10 {
        tokio::time::advance(Duration::from_secs(98)).await;
        until("the store's own refresh", || fake.calls() == lifetime + 1).await;
        let at = *fake.call_times().last().unwrap();
        let since = at - start;
        assert!(
            since <= Duration::from_secs(98 * lifetime as u64),
            "{since:?}"
        );
    }
    let later = store.get_token().await.unwrap();
    assert_ne!(later.generation(), first.generation());
    assert!(Instant::now() < later.expires_at());
    assert_eq!(fake.calls(), 11);
    assert_eq!(
        (recorder.misses(), recorder.hits()),
        (1, 1),
        "only the very first lookup missed"
    );
    assert_eq!(store.policy().as_str(), "credential-manager");
    assert_eq!(
        "credential-manager".parse::<CachePolicy>().unwrap(),
        CachePolicy::CredentialManager
    );
}

#[tokio::test(start_paused = true)]
async fn refresh_ahead_lets_a_token_nobody_asks_for_expire() {
    let fake = Fake::tokens(100);
    let recorder = Recorder::new();
    let cache = client(CachePolicy::RefreshAhead, &fake, &recorder);
    cache.get_token().await.unwrap();
    tokio::time::advance(Duration::from_secs(150)).await;
    tokio::task::yield_now().await;
    assert_eq!(fake.calls(), 1, "no lookup, no refresh");
    cache.get_token().await.unwrap();
    assert_eq!((fake.calls(), recorder.misses()), (2, 2));
}

#[tokio::test(start_paused = true)]
async fn a_dropped_store_stops_refreshing() {
    let fake = Fake::tokens(100);
    let recorder = Recorder::new();
    let store = client(CachePolicy::CredentialManager, &fake, &recorder);
    store.get_token().await.unwrap();
    drop(store);
    tokio::time::advance(Duration::from_secs(500)).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(fake.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn users_tokens_are_refreshed_when_a_lookup_hands_over_the_users_credential() {
    // The store has no credential of a user's to refresh with: a user's token is refreshed
    // as under refresh-ahead, by the lookup that brings one.
    let fake = Fake::tokens(100);
    let mut config = TokenClientConfig::new(
        "https://idp.test/tenant/oauth2/v2.0/token",
        "client-1",
        "api://backend/Data.Read",
    );
    config.policy = CachePolicy::CredentialManager;
    config.refresh_jitter = Duration::from_secs(2);
    let users = client::DelegatedTokenClient::builder(config, secret())
        .transport(fake.clone())
        .seed(5)
        .build()
        .unwrap();
    let grant = || Ok(client::UserGrant::on_behalf_of("user-token"));
    users.get_token_with("carol", grant).await.unwrap();
    tokio::time::advance(Duration::from_secs(98)).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(fake.calls(), 1, "no refresh without a lookup");
    users.get_token_with("carol", grant).await.unwrap();
    until("the refresh the lookup started", || fake.calls() == 2).await;
}
