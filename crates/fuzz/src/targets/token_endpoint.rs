//! The mock identity provider's token endpoint: form parsing, client authentication, and the
//! client assertion's JWS parsing and validation (header, signature, claims, times, `jti`).
//!
//! Input: a mode byte, then the mode's data.
//! - Even mode byte (seeds use `r`): the form body as sent.
//! - Odd mode byte (seeds use `s`): `HEADER \n CLAIMS \n FORM`. The target signs the assertion
//!   `base64url(HEADER).base64url(CLAIMS)` with the registered client's key (`$X5T` in HEADER
//!   becomes its certificate's `x5t#S256`, `$JTI` in CLAIMS a `jti` unique in the process), so
//!   that mutated headers and claims reach the checks behind the signature.
//!
//! Promises checked: the provider answers 200, 400 or 401 (503 only when its replay store is
//! full), never a 5xx of its own making; a client-credentials token it issues passes its own
//! backend (a delegated token carries `scp`, not the role the backend requires).

use std::sync::atomic::{AtomicU64, Ordering};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use serde_json::Value;
use signer::CLIENT_ASSERTION_TYPE;

use crate::{
    runtime::block_on,
    targets::{no_extra_seeds, provider::provider, replace},
    Outcome, Target,
};

pub(crate) const TARGET: Target = Target {
    name: "token_endpoint",
    about: "the mock identity provider's token endpoint (form, client assertion JWS, claims)",
    run,
    seeds: no_extra_seeds,
};

fn run(data: &[u8]) -> Outcome {
    let Some((&mode, rest)) = data.split_first() else {
        return Outcome::Refused;
    };
    let body = if mode % 2 == 1 {
        signed_request(rest)
    } else {
        rest.to_vec()
    };
    let provider = provider();
    let response = block_on(provider.idp.token(mock::DEFAULT_TENANT, &body))
        .expect("no outage is configured: the provider always answers");
    let text = String::from_utf8_lossy(response.body());
    match response.status().as_u16() {
        200 => {}
        400 | 401 => return Outcome::Refused,
        503 if text.contains("temporarily_unavailable") => return Outcome::Refused,
        status => panic!("the token endpoint answered {status}: {text}"),
    }
    let json: Value = serde_json::from_slice(response.body()).expect("a 200 answer is JSON");
    let token = json["access_token"]
        .as_str()
        .expect("a 200 answer carries an access token");
    // A delegated grant's answer names its scopes; only app tokens carry the backend's role.
    let delegated = json.get("scope").is_some();
    let verdict = provider
        .backend
        .check(Some(format!("Bearer {token}").as_bytes()));
    if let (Err(refusal), false) = (verdict, delegated) {
        panic!("the backend refused a token its provider just issued: {refusal}");
    }
    Outcome::Accepted
}

/// The form body of the odd mode: the assertion signed here, then the rest of the form.
fn signed_request(data: &[u8]) -> Vec<u8> {
    static JTI: AtomicU64 = AtomicU64::new(0);
    let provider = provider();
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let header = replace(
        parts.next().unwrap_or_default(),
        b"$X5T",
        provider.client_x5t_s256.as_bytes(),
    );
    let jti = format!("fuzz-{}", JTI.fetch_add(1, Ordering::Relaxed));
    let claims = replace(parts.next().unwrap_or_default(), b"$JTI", jti.as_bytes());
    let form = parts.next().unwrap_or_default();
    let mut assertion = URL_SAFE_NO_PAD.encode(header);
    assertion.push('.');
    URL_SAFE_NO_PAD.encode_string(claims, &mut assertion);
    let signature = provider
        .client_key
        .sign(assertion.as_bytes())
        .expect("the client's P-256 key signs");
    assertion.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut assertion);
    let mut body = form_pair("client_assertion_type", CLIENT_ASSERTION_TYPE);
    body.push(b'&');
    body.extend(form_pair("client_assertion", &assertion));
    body.push(b'&');
    body.extend_from_slice(form);
    body
}

fn form_pair(name: &str, value: &str) -> Vec<u8> {
    form_urlencoded::Serializer::new(String::new())
        .append_pair(name, value)
        .finish()
        .into_bytes()
}
