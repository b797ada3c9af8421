//! The mock backend's bearer-token check (`validate-jwt`): the `Authorization` header, the
//! token's JWS, its signature under the provider's keys, and its claims.
//!
//! Input: a mode byte, then the mode's data.
//! - Even mode byte (seeds use `r`): the `Authorization` header value as sent.
//! - Odd mode byte (seeds use `s`): the token's claims; the target has the provider sign them
//!   ([`mock::IdentityProvider::sign_access_token`]) so that mutated claims reach the checks
//!   behind the signature.
//!
//! Promise checked: a token is judged the same when checked again (the second check takes
//! the backend's cache of verified tokens).

use crate::{
    targets::{no_extra_seeds, provider::provider},
    Outcome, Target,
};

pub(crate) const TARGET: Target = Target {
    name: "backend_bearer",
    about: "the mock backend's bearer-token check (header, JWS, signature, claims)",
    run,
    seeds: no_extra_seeds,
};

fn run(data: &[u8]) -> Outcome {
    let Some((&mode, rest)) = data.split_first() else {
        return Outcome::Refused;
    };
    let provider = provider();
    let header = if mode % 2 == 1 {
        let token = provider
            .idp
            .sign_access_token(rest)
            .expect("the provider's key signs");
        format!("Bearer {token}").into_bytes()
    } else {
        rest.to_vec()
    };
    let first = provider.backend.check(Some(&header));
    let again = provider.backend.check(Some(&header));
    assert_eq!(first, again, "one token judged two ways");
    Outcome::of(&first)
}
