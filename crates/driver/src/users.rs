//! The users of an on-behalf-of run: who each arrival comes from, the token each user brings
//! along to the gateway (minted by the embedded identity provider, as the user's sign-in to
//! a browser app would get it), and which users were served.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};

use lru::LruCache;
use mock::Mock;
use rand::{rngs::SmallRng, Rng as _, SeedableRng as _};
use rand_distr::{Distribution as _, Zipf};
use scenario::{Flow, Scenario, UserDistribution};
use serde_json::Value;
use tokio::time::Instant;

use crate::{credentials::EMBEDDED_CLIENT_ID, error::RunError};

/// Mixed into the seed of the user draws, apart from the arrivals' and the APIs' own.
const USER_DRAWS: u64 = 0x2545_f491_4f6c_dd1d;
/// The permission the users' own tokens carry (for the gateway's app).
const USER_TOKEN_SCOPE: &str = "access_as_user";

/// The name of user number `user`: what the gateway's cache keys and the identity provider
/// signs in as.
pub(crate) fn user_name(user: u32) -> String {
    format!("user-{user}")
}

/// Picks each arrival's user (a number below the population): the one its trace names, or
/// one drawn.
pub(crate) struct UserPicker {
    rng: SmallRng,
    draw: Draw,
}

enum Draw {
    /// Every user alike: of `[traffic] users`, or of a trace's users for its entries that
    /// name none.
    Uniform(u32),
    /// Samples 1 to the population (as floats).
    Zipf(Zipf<f64>),
}

impl UserPicker {
    /// The picker of the scenario's users; `None` when its requests come from no users.
    pub(crate) fn new(scenario: &Scenario) -> Result<Option<Self>, RunError> {
        if scenario.gateway.flow != Flow::OnBehalfOf {
            return Ok(None);
        }
        let draw = match (scenario.users, scenario.user_population()) {
            (Some(users), _) => match users.distribution {
                UserDistribution::Uniform => Draw::Uniform(users.count),
                UserDistribution::Zipf { exponent } => Draw::Zipf(
                    Zipf::new(f64::from(users.count), exponent)
                        .map_err(|e| RunError::Setup(format!("Zipf user distribution: {e}")))?,
                ),
            },
            (None, Some(trace_users)) => Draw::Uniform(trace_users),
            (None, None) => return Ok(None),
        };
        Ok(Some(UserPicker {
            rng: SmallRng::seed_from_u64(scenario.seed ^ USER_DRAWS),
            draw,
        }))
    }

    /// The user of an arrival whose trace entry names user `named`: that one, else one drawn.
    pub(crate) fn pick(&mut self, named: Option<u32>) -> u32 {
        if let Some(user) = named {
            return user;
        }
        match &self.draw {
            Draw::Uniform(count) => self.rng.random_range(0..*count),
            // Rank 1 (the most frequent) is user 0.
            Draw::Zipf(zipf) => (zipf.sample(&mut self.rng) as u32).saturating_sub(1),
        }
    }
}

/// The users' side of an on-behalf-of run: each user's own token for the gateway, and the
/// users served.
pub(crate) struct Users {
    mock: Arc<Mock>,
    /// Held tokens, at most as many as an instance's cache holds users: the harness's own
    /// memory stays bounded like the gateway's, and a user whose token was dropped gets a
    /// new one when next needed (only on a miss of the gateway's cache).
    tokens: Mutex<LruCache<u32, Held>>,
    capacity: usize,
    /// One bit per user of the population: served or not.
    seen: Vec<AtomicU64>,
}

struct Held {
    token: Arc<str>,
    renew_at: Instant,
}

impl Users {
    /// The users of `scenario` (which has some), their tokens minted by `mock`.
    pub(crate) fn new(scenario: &Scenario, mock: &Arc<Mock>) -> Option<Arc<Self>> {
        if scenario.gateway.flow != Flow::OnBehalfOf {
            return None;
        }
        let population = scenario.user_population()?;
        let capacity = scenario.gateway.user_cache_entries.max(1) as usize;
        Some(Arc::new(Users {
            mock: Arc::clone(mock),
            tokens: Mutex::new(LruCache::unbounded()),
            capacity,
            seen: (0..population.div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
        }))
    }

    /// Marks `user` as served.
    pub(crate) fn see(&self, user: u32) {
        if let Some(word) = self.seen.get(user as usize / 64) {
            word.fetch_or(1 << (user % 64), Ordering::Relaxed);
        }
    }

    /// Distinct users served so far.
    pub(crate) fn distinct(&self) -> u64 {
        self.seen
            .iter()
            .map(|word| u64::from(word.load(Ordering::Relaxed).count_ones()))
            .sum()
    }

    /// `user`'s own token for the gateway's app: the one held while it is in the first
    /// three quarters of its life, else a new one. `Err` names why the identity provider
    /// would not mint one.
    pub(crate) fn own_token(&self, user: u32) -> Result<Arc<str>, String> {
        let now = Instant::now();
        {
            let mut tokens = self.lock();
            if let Some(held) = tokens.get(&user).filter(|held| now < held.renew_at) {
                return Ok(Arc::clone(&held.token));
            }
        }
        let (token, lifetime) = self.mint(user)?;
        let token: Arc<str> = Arc::from(token);
        let mut tokens = self.lock();
        if tokens.len() >= self.capacity && !tokens.contains(&user) {
            tokens.pop_lru();
        }
        tokens.put(
            user,
            Held {
                token: Arc::clone(&token),
                renew_at: now + lifetime.mul_f64(0.75),
            },
        );
        Ok(token)
    }

    /// A new token of `user`'s from the identity provider's admin endpoint, with its lifetime.
    fn mint(&self, user: u32) -> Result<(String, Duration), String> {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("user", &user_name(user))
            .append_pair("audience", EMBEDDED_CLIENT_ID)
            .append_pair("scope", USER_TOKEN_SCOPE)
            .finish();
        let response = self.mock.idp.admin_user_token(body.as_bytes());
        let answer: Value = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
        match (
            answer["access_token"].as_str(),
            answer["expires_in"].as_u64(),
        ) {
            (Some(token), Some(lifetime)) if response.status().is_success() => {
                Ok((token.to_owned(), Duration::from_secs(lifetime)))
            }
            _ => Err(format!(
                "the identity provider minted no token for {}: {}",
                user_name(user),
                answer["error_description"]
                    .as_str()
                    .unwrap_or("no description")
            )),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<u32, Held>> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
