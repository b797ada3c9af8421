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
//! In either mode, `$USER_TOKEN` in the form becomes a user's access token for the registered
//! client (minted by the provider's `/admin/user-token`) and `$CODE` a fresh authorization
//! code for it (`/admin/authorize`, redirect URI [`mock::DEFAULT_REDIRECT_URI`], the S256
//! challenge of [`CODE_VERIFIER`]), so that the delegated grants reach the checks behind a
//! valid user assertion or code.
//!
//! Promises checked: the provider answers 200, 400 or 401 (503 only when one of its stores
//! is full), never a 5xx of its own making; a token it issues passes its own backend (a
//! user's token the backend of a delegated API, which requires `scp` instead of the role).

use std::sync::atomic::{AtomicU64, Ordering};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use serde_json::Value;
use sha2::{Digest, Sha256};
use signer::CLIENT_ASSERTION_TYPE;

use crate::{
    runtime::block_on,
    targets::{
        no_extra_seeds,
        provider::{provider, CLIENT_ID},
        replace,
    },
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
    let body = with_grants(if mode % 2 == 1 {
        signed_request(rest)
    } else {
        rest.to_vec()
    });
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
    // A delegated grant's answer names its scopes: its token is a user's, for a backend that
    // requires the users' permission instead of the app role.
    let backend = if json.get("scope").is_some() {
        &provider.users_backend
    } else {
        &provider.backend
    };
    if let Err(refusal) = backend.check(Some(format!("Bearer {token}").as_bytes())) {
        panic!("the backend refused a token its provider just issued: {refusal}");
    }
    Outcome::Accepted
}

/// The PKCE verifier of the codes `$CODE` stands for (RFC 7636 appendix B).
pub(crate) const CODE_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// `body` with `$USER_TOKEN` and `$CODE` filled in; left as they are if the provider will
/// not issue them (a full store).
fn with_grants(mut body: Vec<u8>) -> Vec<u8> {
    let contains =
        |body: &[u8], placeholder: &[u8]| body.windows(placeholder.len()).any(|w| w == placeholder);
    let idp = &provider().idp;
    let minted = |response: http::Response<bytes::Bytes>, field: &str| {
        let json: Value = serde_json::from_slice(response.body()).ok()?;
        json[field].as_str().map(str::to_owned)
    };
    if contains(&body, b"$USER_TOKEN") {
        let form = form_pairs(&[
            ("user", "fuzz-user"),
            ("audience", CLIENT_ID),
            ("scope", "access_as_user"),
        ]);
        if let Some(token) = minted(idp.admin_user_token(&form), "access_token") {
            body = replace(&body, b"$USER_TOKEN", token.as_bytes());
        }
    }
    if contains(&body, b"$CODE") {
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(CODE_VERIFIER));
        let form = form_pairs(&[
            ("user", "fuzz-user"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", mock::DEFAULT_REDIRECT_URI),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]);
        if let Some(code) = minted(idp.admin_authorize(&form), "code") {
            body = replace(&body, b"$CODE", code.as_bytes());
        }
    }
    body
}

fn form_pairs(pairs: &[(&str, &str)]) -> Vec<u8> {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
        .into_bytes()
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
    let mut body = form_pairs(&[
        ("client_assertion_type", CLIENT_ASSERTION_TYPE),
        ("client_assertion", &assertion),
    ]);
    body.push(b'&');
    body.extend_from_slice(form);
    body
}
