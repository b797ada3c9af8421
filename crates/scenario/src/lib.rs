//! Scenario files: what a run does (traffic, gateway, signer, identity provider, backend and
//! events), read from TOML.
//!
//! ```toml
//! name = "stampede"          # default: the file name without .toml
//! duration = "40s"           # default: 30s (a replay: the trace's length)
//! seed = 7                   # default: 1; the same seed gives the same arrivals
//! tls = false                # true: the embedded identity provider and backend serve
//!                            # HTTPS with a CA made for the run, which the gateway trusts
//!
//! [traffic]                  # the arrival process (required), one of:
//! kind = "constant"          #   constant, poisson:  rate (req/s)
//! rate = 500                 #   ramp:               from, to (req/s, linear over the run)
//!                            #   step:               steps = [{ at = "0s", rate = 100 }, …]
//!                            #   burst:              every, size, and an optional base rate
//!                            #   daily:              rates = [24 req/s, one per hour from
//!                            #     midnight, linear in between, repeating], poisson (true)
//!                            #   replay:             trace (path from this file), speed (1.0)
//!
//! [gateway]
//! instances = 2              # default 1; each has its own token cache …
//! shared_cache = false       # … unless true (one cache for all) or "region" (one per region)
//! regions = 1                # instances spread over regions in contiguous blocks
//! policy = "apim"            # apim (default) | single-flight | refresh-ahead
//! cache_fraction = 0.95      # share of expires_in a token is cached for, in (0, 1]
//! max_in_flight = 1000       # per instance; arrivals beyond are dropped
//! retry_on_401 = false       # retry once after a 401/403 (the reference policy does not)
//!
//! [signer]                   # a generated key and certificate …
//! backend = "aws-lc-rs"      # rsa | ring | aws-lc-rs (default: aws-lc-rs)
//! alg = "PS256"              # PS256 | RS256 | ES256 | EdDSA (default: PS256 for RSA keys)
//! key_bits = 2048            # RSA: 2048 | 3072 | 4096
//! signing_cost = "300us"     # simulations: virtual time per signature (default: measured)
//! # client_secret = "…"      # … or a client secret instead
//!
//! [idp]                      # the embedded mock identity provider …
//! token_lifetime = "10s"     # expires_in of its tokens (whole seconds, default 3599s), or
//!                            # a range drawn per token: { min = "60m", max = "90m" }
//! latency = "200ms"          # or { kind = "uniform", min_ms = 5, max_ms = 50 }
//!                            # or { kind = "log-normal", median_ms = 20, p99_ms = 200 }
//! error_rate = 0.0           # share of token requests answered 500/503
//! throttle_rps = 50          # per-client token bucket (429 with Retry-After)
//! # … or an external one: token_url, client_id, scope, audience (optional), and
//! # key + cert (+ password) or client_secret; ca_file (PEM, a private CA to trust
//! # besides Mozilla's and the operating system's roots)
//!
//! [backend]
//! latency = "2ms"            # the embedded mock backend … or url = "https://…" (external,
//!                            # with ca_file as for [idp])
//! clock_skew = "0s"          # its tolerance past a token's exp (default 0, as APIM's
//!                            # validate-jwt; whole seconds, at most 1h)
//!
//! [[apis]]                   # optional: the APIs each instance calls, each with its own
//! name = "orders"            #   scope, token client and tokens (embedded identity provider)
//! weight = 2                 #   share of the traffic (default 1); a replayed trace's
//!                            #   `api`/`ApiId` column names each request's API instead
//!
//! [[events]]                 # at a time of the run:
//! at = "15s"                 # revoke-tokens | rotate-idp-keys
//! kind = "idp-outage"        # | idp-outage (duration) | idp-throttle (rate, duration)
//! duration = "3s"
//!
//! [compare]                  # optional: run once per value (as `--compare backend=…`)
//! backend = ["rsa", "ring", "aws-lc-rs"]
//! ```
//!
//! Durations are human (`30s`, `2m`, `250ms`, `1m 30s`). Every error — TOML syntax, an
//! unknown key, a wrong type, an impossible value — is a [`ScenarioError`] naming the file,
//! the line and column, and the key.
//!
//! The shipped scenarios are built into the binary ([`builtin`], [`Scenario::find`]), so
//! `tokenbench run stampede` works from any folder.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod apply;
pub mod arrivals;
mod builtin;
mod comparison;
mod error;
mod limits;
mod model;
pub mod overrides;
mod parse;
mod shard;
pub mod trace;
mod traffic;
mod values;

pub use builtin::{builtin, builtin_names, builtin_trace, DEFAULT_SCENARIO};
pub use comparison::Comparison;
pub use error::{Location, ScenarioError};
pub use limits::{
    MAX_APIS, MAX_BACKEND_CLOCK_SKEW, MAX_CLIENTS, MAX_INSTANCES, MAX_RATE, MAX_SCENARIO_BYTES,
    MAX_SIGNING_COST, MAX_USERS, MAX_ZIPF_EXPONENT,
};
pub use model::{
    Api, BackendSpec, CacheScope, EmbeddedIdp, Event, EventKind, ExternalCredentials, ExternalIdp,
    Flow, Gateway, IdpSpec, KeyPassword, ProviderTrust, Scenario, SignerSpec, UserDistribution,
    Users, DEFAULT_API, DEFAULT_DURATION, DEFAULT_KEY_BITS, DEFAULT_MAX_IN_FLIGHT, DEFAULT_SEED,
    DEFAULT_TOKEN_LIFETIME,
};
pub use overrides::Overrides;
pub use shard::{Shard, MAX_SHARDS};
pub use traffic::{RateStep, Traffic, TrafficError};
