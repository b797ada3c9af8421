//! Outstanding authorization codes and refresh tokens: each bound to the client (and tenant)
//! it was issued to, single-use, expiring. Only their SHA-256 digests are kept.

use std::sync::Mutex;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use rand::Rng;
use sha2::{Digest, Sha256};

use super::delegated::Delegation;
use crate::{
    expiring::{digest, ExpiringMap},
    http_util::OAuthRejection,
};

/// How long an authorization code may be redeemed: 10 minutes, as Entra's.
pub(super) const CODE_LIFETIME_SECS: u64 = 600;
/// How long a refresh token may be redeemed, renewed by each rotation: 24 hours (Entra's
/// for single-page apps; its others last 90 days, more than any run).
pub(super) const REFRESH_TOKEN_LIFETIME_SECS: u64 = 24 * 3600;
/// Most codes remembered (redeemed ones too, to refuse replays, until their expiry).
const MAX_CODES: usize = 100_000;
/// Most refresh tokens remembered (rotated-out ones too, to detect reuse).
const MAX_REFRESH_TOKENS: usize = 1_000_000;

/// A PKCE code challenge (RFC 7636).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum CodeChallenge {
    /// The verifier itself.
    Plain(String),
    /// base64url(SHA-256(verifier)).
    S256(String),
}

impl CodeChallenge {
    fn admits(&self, verifier: &str) -> bool {
        match self {
            CodeChallenge::Plain(challenge) => challenge == verifier,
            CodeChallenge::S256(challenge) => {
                *challenge == URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
            }
        }
    }
}

/// Whether `value` is a valid PKCE code verifier or challenge: 43 to 128 characters of
/// `[A-Za-z0-9-._~]` (RFC 7636 §4.1).
pub(super) fn is_pkce_value(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Who a code or refresh token was issued to.
#[derive(Clone, Copy)]
pub(super) struct Holder<'a> {
    pub(super) client_id: &'a str,
    pub(super) tenant: &'a str,
}

struct CodeGrant {
    client_id: String,
    tenant: String,
    redirect_uri: String,
    challenge: Option<CodeChallenge>,
    delegation: Delegation,
    expires_at: u64,
    redeemed: bool,
    /// The refresh token its redemption issued: revoked if the code is replayed.
    refresh_issued: Option<[u8; 32]>,
}

struct RefreshGrant {
    client_id: String,
    tenant: String,
    delegation: Delegation,
    /// The token it was rotated into: set once it has been redeemed.
    successor: Option<[u8; 32]>,
}

/// The outstanding codes and refresh tokens.
#[derive(Default)]
pub(super) struct Grants {
    codes: Mutex<ExpiringMap<CodeGrant>>,
    refresh_tokens: Mutex<ExpiringMap<RefreshGrant>>,
}

/// 32 random bytes, base64url: a code or refresh token.
fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn code_key(code: &str) -> [u8; 32] {
    digest(&["code", code])
}

fn refresh_key(token: &str) -> [u8; 32] {
    digest(&["refresh_token", token])
}

impl Grants {
    /// Issues a code for `delegation` to `holder`, redeemable with `redirect_uri` (and the
    /// verifier of `challenge`, if any) for [`CODE_LIFETIME_SECS`].
    pub(super) fn issue_code(
        &self,
        holder: Holder<'_>,
        redirect_uri: &str,
        challenge: Option<CodeChallenge>,
        delegation: Delegation,
        now: u64,
    ) -> Result<String, OAuthRejection> {
        let mut codes = self.codes.lock().unwrap_or_else(|p| p.into_inner());
        codes.drop_expired(now);
        if codes.len() >= MAX_CODES {
            return Err(OAuthRejection::store_full("authorization codes"));
        }
        let code = new_secret();
        let expires_at = now + CODE_LIFETIME_SECS;
        let grant = CodeGrant {
            client_id: holder.client_id.to_owned(),
            tenant: holder.tenant.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            challenge,
            delegation,
            expires_at,
            redeemed: false,
            refresh_issued: None,
        };
        // Remembered as long again after it expires, so that a late redemption is told it
        // expired and a replay that it was redeemed, rather than that the code is unknown.
        codes.insert(code_key(&code), expires_at + CODE_LIFETIME_SECS, grant);
        Ok(code)
    }

    /// Redeems a code: its delegation, and a refresh token when `offline_access` was granted;
    /// `accept` judges the delegation last (a request may narrow what it asks for).
    /// Only the client (and tenant) it was issued to may redeem it: another's try changes
    /// nothing. Its client's first redemption spends it, whether that succeeds or not; a
    /// replay also revokes the refresh tokens its first redemption led to (RFC 6749 §4.1.2).
    pub(super) fn redeem_code(
        &self,
        code: &str,
        holder: Holder<'_>,
        redirect_uri: &str,
        verifier: Option<&str>,
        accept: impl FnOnce(&Delegation) -> Result<(), OAuthRejection>,
        now: u64,
    ) -> Result<(Delegation, Option<String>), OAuthRejection> {
        let key = code_key(code);
        let mut codes = self.codes.lock().unwrap_or_else(|p| p.into_inner());
        codes.drop_expired(now);
        let grant = codes.get_mut(&key).ok_or_else(|| {
            OAuthRejection::invalid_grant(
                Some(70000),
                "The provided authorization code is invalid.",
            )
        })?;
        // Before anything that changes the code: another client must not spend it, nor
        // revoke what its redemption issued.
        if grant.client_id != holder.client_id || grant.tenant != holder.tenant {
            return Err(OAuthRejection::invalid_grant(
                Some(70000),
                "The provided authorization code was issued to another client.",
            ));
        }
        if grant.redeemed {
            let issued = grant.refresh_issued.take();
            self.revoke_chain(issued);
            return Err(OAuthRejection::invalid_grant(
                Some(54005),
                "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
            ));
        }
        grant.redeemed = true;
        if now >= grant.expires_at {
            return Err(OAuthRejection::invalid_grant(
                Some(70008),
                "The provided authorization code or refresh token has expired.",
            ));
        }
        if grant.redirect_uri != redirect_uri {
            return Err(OAuthRejection::invalid_grant(
                Some(500112),
                "The reply address does not match the reply address provided when requesting the authorization code.",
            ));
        }
        match (&grant.challenge, verifier) {
            (None, None) | (Some(_), Some(_)) => {}
            (Some(_), None) => {
                return Err(OAuthRejection::invalid_grant(
                    Some(50148),
                    "The code_verifier is missing: the authorization request carried a code_challenge.",
                ))
            }
            // A verifier for a code issued without a challenge: a PKCE downgrade (RFC 9700
            // §2.1.1), refused.
            (None, Some(_)) => {
                return Err(OAuthRejection::invalid_grant(
                    Some(50148),
                    "A code_verifier was sent for an authorization code issued without a code_challenge.",
                ))
            }
        }
        if let (Some(challenge), Some(v)) = (&grant.challenge, verifier) {
            if !is_pkce_value(v) || !challenge.admits(v) {
                return Err(OAuthRejection::invalid_grant(
                    Some(50148),
                    "The code_verifier does not match the code_challenge supplied in the authorization request for PKCE.",
                ));
            }
        }
        accept(&grant.delegation)?;
        let delegation = grant.delegation.clone();
        let refresh_token = if delegation.offline() {
            let (token, refresh) = self.issue_refresh_token(holder, delegation.clone(), now)?;
            grant.refresh_issued = Some(refresh);
            Some(token)
        } else {
            None
        };
        Ok((delegation, refresh_token))
    }

    /// Redeems a refresh token (if `accept` takes its delegation): the delegation and the
    /// refresh token it rotates into. A
    /// token redeemed a second time revokes every token rotated from it (its family, as
    /// OAuth 2.0 security best practice asks), and is refused.
    pub(super) fn rotate_refresh_token(
        &self,
        token: &str,
        holder: Holder<'_>,
        accept: impl FnOnce(&Delegation) -> Result<(), OAuthRejection>,
        now: u64,
    ) -> Result<(Delegation, String), OAuthRejection> {
        let key = refresh_key(token);
        let mut refresh_tokens = self
            .refresh_tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        refresh_tokens.drop_expired(now);
        let grant = refresh_tokens.get_mut(&key).ok_or_else(|| {
            OAuthRejection::invalid_grant(
                Some(70000),
                "The provided refresh token is invalid: unknown, expired or revoked.",
            )
        })?;
        if grant.client_id != holder.client_id || grant.tenant != holder.tenant {
            return Err(OAuthRejection::invalid_grant(
                Some(70000),
                "The provided refresh token was issued to another client.",
            ));
        }
        if let Some(successor) = grant.successor {
            revoke_chain_in(&mut refresh_tokens, Some(successor));
            return Err(OAuthRejection::invalid_grant(
                Some(70000),
                "The provided refresh token has already been used; the tokens rotated from it are revoked.",
            ));
        }
        // A refused request does not spend the token.
        accept(&grant.delegation)?;
        let delegation = grant.delegation.clone();
        let (new_token, new_key) =
            insert_refresh_token(&mut refresh_tokens, holder, delegation.clone(), now)?;
        if let Some(grant) = refresh_tokens.get_mut(&key) {
            grant.successor = Some(new_key);
        }
        Ok((delegation, new_token))
    }

    /// Issues a refresh token for `delegation` to `holder`; it returns the token and its key.
    pub(super) fn issue_refresh_token(
        &self,
        holder: Holder<'_>,
        delegation: Delegation,
        now: u64,
    ) -> Result<(String, [u8; 32]), OAuthRejection> {
        let mut refresh_tokens = self
            .refresh_tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        refresh_tokens.drop_expired(now);
        insert_refresh_token(&mut refresh_tokens, holder, delegation, now)
    }

    fn revoke_chain(&self, first: Option<[u8; 32]>) {
        let mut refresh_tokens = self
            .refresh_tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        revoke_chain_in(&mut refresh_tokens, first);
    }
}

fn insert_refresh_token(
    refresh_tokens: &mut ExpiringMap<RefreshGrant>,
    holder: Holder<'_>,
    delegation: Delegation,
    now: u64,
) -> Result<(String, [u8; 32]), OAuthRejection> {
    if refresh_tokens.len() >= MAX_REFRESH_TOKENS {
        return Err(OAuthRejection::store_full("refresh tokens"));
    }
    let token = new_secret();
    let key = refresh_key(&token);
    let grant = RefreshGrant {
        client_id: holder.client_id.to_owned(),
        tenant: holder.tenant.to_owned(),
        delegation,
        successor: None,
    };
    refresh_tokens.insert(key, now + REFRESH_TOKEN_LIFETIME_SECS, grant);
    Ok((token, key))
}

/// Forgets `first` and every token rotated from it.
fn revoke_chain_in(refresh_tokens: &mut ExpiringMap<RefreshGrant>, first: Option<[u8; 32]>) {
    let mut next = first;
    while let Some(key) = next {
        next = refresh_tokens
            .remove(&key)
            .and_then(|grant| grant.successor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pkce_challenge_admits_only_its_verifier() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let s256 = CodeChallenge::S256("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned());
        assert!(s256.admits(verifier));
        assert!(!s256.admits(&verifier.replace('d', "e")));
        assert!(CodeChallenge::Plain(verifier.to_owned()).admits(verifier));
        assert!(is_pkce_value(verifier));
        assert!(!is_pkce_value("short"));
        assert!(!is_pkce_value(&"a".repeat(129)));
        assert!(!is_pkce_value(&format!("{}+", &verifier[..43])));
    }
}
