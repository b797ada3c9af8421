//! What a token request asks with: the client's own grant (client credentials), or a user's
//! (on-behalf-of, refresh token).

use std::{
    fmt,
    sync::{Arc, Mutex, PoisonError},
};

use tokio::sync::OwnedMutexGuard;
use zeroize::Zeroizing;

use crate::Error;

/// `grant_type` of the on-behalf-of flow (RFC 7523 jwt-bearer).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A user's refresh token, held by the caller (a session store, outside the token cache)
/// and rotated by the client: every redemption sends the token held and stores the one the
/// provider answers with. Held outside the cache, it survives the eviction of the user's
/// cached access token. Redemptions of one slot take turns, so that two never send the same
/// token (a provider that rotates refresh tokens takes a second use for a theft and revokes
/// them all). `Debug` shows nothing of it.
pub struct RefreshTokenSlot {
    token: Mutex<Zeroizing<String>>,
    redeeming: Arc<tokio::sync::Mutex<()>>,
}

impl RefreshTokenSlot {
    /// A slot holding `token`.
    pub fn new(token: impl Into<String>) -> Arc<Self> {
        Arc::new(RefreshTokenSlot {
            token: Mutex::new(Zeroizing::new(token.into())),
            redeeming: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    fn current(&self) -> Zeroizing<String> {
        self.token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn replace(&self, token: Zeroizing<String>) {
        *self.token.lock().unwrap_or_else(PoisonError::into_inner) = token;
    }
}

impl fmt::Debug for RefreshTokenSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshTokenSlot(<redacted>)")
    }
}

/// How a user's token is obtained: on behalf of the user, or with the user's refresh token.
/// `Debug` shows nothing of the credential.
pub struct UserGrant(UserCredential);

impl UserGrant {
    /// On behalf of the user whose access token (for this client) `token` is: the token
    /// the gateway received with the user's request.
    pub fn on_behalf_of(token: &str) -> Self {
        UserGrant(UserCredential::Assertion(Zeroizing::new(token.to_owned())))
    }

    /// With the user's refresh token, rotated in `slot` on every use.
    pub fn refresh_token(slot: &Arc<RefreshTokenSlot>) -> Self {
        UserGrant(UserCredential::Refresh(Arc::clone(slot)))
    }
}

impl fmt::Debug for UserGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            UserCredential::Assertion(_) => "UserGrant::OnBehalfOf(<redacted>)",
            UserCredential::Refresh(_) => "UserGrant::RefreshToken(<redacted>)",
        })
    }
}

/// What a user's token request carries.
#[derive(Clone)]
pub(crate) enum UserCredential {
    Assertion(Zeroizing<String>),
    Refresh(Arc<RefreshTokenSlot>),
}

/// The grant a client's token requests carry.
pub(crate) enum Grant {
    /// The client's own tokens.
    ClientCredentials,
    /// A user's tokens, with the credential the caller last handed over: kept from a lookup
    /// that needed one (a miss, or a refresh coming due) until a token is stored. Each
    /// fetch takes its own copy when it starts ([`Grant::for_fetch`]), so that clearing or
    /// replacing it never changes what a fetch in progress sends. The number counts the
    /// credentials handed over, so that a fetch clears only the one it sent.
    User(Mutex<(u64, Option<UserCredential>)>),
}

/// A fetch's credential, taken when the fetch starts: what each of its attempts sends.
pub(crate) enum FetchCredential {
    ClientCredentials,
    /// The credential, and its number among those handed over.
    User(u64, Option<UserCredential>),
}

/// One token request's credential, taken from the grant when the request is prepared. A
/// refresh token's slot stays claimed for its redemption until this is dropped.
pub(crate) enum Prepared {
    ClientCredentials,
    Assertion(Zeroizing<String>),
    Refresh {
        slot: Arc<RefreshTokenSlot>,
        token: Zeroizing<String>,
        _redeeming: OwnedMutexGuard<()>,
    },
}

impl Grant {
    /// A user's grant, with no credential yet.
    pub(crate) fn user() -> Self {
        Grant::User(Mutex::new((0, None)))
    }

    /// Keeps `grant`'s credential for the next token requests.
    pub(crate) fn set(&self, grant: UserGrant) {
        if let Grant::User(credential) = self {
            let mut held = credential.lock().unwrap_or_else(PoisonError::into_inner);
            *held = (held.0 + 1, Some(grant.0));
        }
    }

    /// Forgets the credential `fetch` sent, once its token is stored, unless another was
    /// handed over since: a user's bearer token is not held longer than it is needed.
    pub(crate) fn clear_sent(&self, fetch: &FetchCredential) {
        if let (Grant::User(credential), FetchCredential::User(sent, _)) = (self, fetch) {
            let mut held = credential.lock().unwrap_or_else(PoisonError::into_inner);
            if held.0 == *sent {
                held.1 = None;
            }
        }
    }

    /// Whether tokens are a user's.
    pub(crate) fn is_user(&self) -> bool {
        matches!(self, Grant::User(_))
    }

    /// The credential a fetch starting now sends.
    pub(crate) fn for_fetch(&self) -> FetchCredential {
        match self {
            Grant::ClientCredentials => FetchCredential::ClientCredentials,
            Grant::User(credential) => {
                let held = credential.lock().unwrap_or_else(PoisonError::into_inner);
                FetchCredential::User(held.0, held.1.clone())
            }
        }
    }
}

impl FetchCredential {
    /// The credential of one token request; for a refresh token, once no other redemption
    /// of its slot is in progress (and with the token the last one rotated into).
    pub(crate) async fn prepare(&self, client_id: &str) -> Result<Prepared, Error> {
        let slot = match self {
            FetchCredential::ClientCredentials => return Ok(Prepared::ClientCredentials),
            FetchCredential::User(_, Some(UserCredential::Assertion(assertion))) => {
                return Ok(Prepared::Assertion(assertion.clone()))
            }
            FetchCredential::User(_, Some(UserCredential::Refresh(slot))) => Arc::clone(slot),
            FetchCredential::User(_, None) => {
                return Err(Error::Config {
                    field: "grant",
                    reason: format!(
                        "a user's token for {client_id} was requested without the user's \
                         assertion or refresh token"
                    ),
                })
            }
        };
        let redeeming = Arc::clone(&slot.redeeming).lock_owned().await;
        Ok(Prepared::Refresh {
            token: slot.current(),
            slot,
            _redeeming: redeeming,
        })
    }
}

impl Prepared {
    /// Appends `grant_type` and the grant's own fields to a token request's form.
    pub(crate) fn append_to(&self, form: &mut form_urlencoded::Serializer<'_, String>) {
        match self {
            Prepared::ClientCredentials => {
                form.append_pair("grant_type", "client_credentials");
            }
            Prepared::Assertion(assertion) => {
                form.append_pair("grant_type", JWT_BEARER_GRANT)
                    .append_pair("requested_token_use", "on_behalf_of")
                    .append_pair("assertion", assertion);
            }
            Prepared::Refresh { token, .. } => {
                form.append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", token);
            }
        }
    }

    /// Stores the refresh token an answer rotated into, in the slot this request redeemed.
    pub(crate) fn rotated(&self, refresh_token: Option<Zeroizing<String>>) {
        if let (Prepared::Refresh { slot, .. }, Some(token)) = (self, refresh_token) {
            slot.replace(token);
        }
    }
}
