//! What a token request asks with: the client's own grant (client credentials), or a user's
//! (on-behalf-of, refresh token).

use std::{
    fmt,
    sync::{Arc, Mutex, PoisonError},
};

use zeroize::Zeroizing;

use crate::Error;

/// `grant_type` of the on-behalf-of flow (RFC 7523 jwt-bearer).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A user's refresh token, held by the caller (a session store, outside the token cache)
/// and rotated by the client: every redemption sends the token held and stores the one the
/// provider answers with. Held outside the cache, it survives the eviction of the user's
/// cached access token. `Debug` shows nothing of it.
pub struct RefreshTokenSlot(Mutex<Zeroizing<String>>);

impl RefreshTokenSlot {
    /// A slot holding `token`.
    pub fn new(token: impl Into<String>) -> Arc<Self> {
        Arc::new(RefreshTokenSlot(Mutex::new(Zeroizing::new(token.into()))))
    }

    fn current(&self) -> Zeroizing<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn replace(&self, token: Zeroizing<String>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = token;
    }
}

impl fmt::Debug for RefreshTokenSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshTokenSlot(<redacted>)")
    }
}

/// How a user's token is obtained when it is not cached.
#[derive(Clone, Copy)]
pub enum UserGrant<'a> {
    /// On behalf of the user whose access token (for this client) this is: the token the
    /// gateway received with the user's request.
    OnBehalfOf(&'a str),
    /// With the user's refresh token, rotated in its slot on every use.
    RefreshToken(&'a Arc<RefreshTokenSlot>),
}

impl fmt::Debug for UserGrant<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UserGrant::OnBehalfOf(_) => "OnBehalfOf(<redacted>)",
            UserGrant::RefreshToken(_) => "RefreshToken(<redacted>)",
        })
    }
}

/// The grant a client's token requests carry.
pub(crate) enum Grant {
    /// The client's own tokens.
    ClientCredentials,
    /// A user's tokens, with the credential the last lookup that missed brought.
    User(Mutex<Option<UserCredential>>),
}

/// What a user's token request carries.
pub(crate) enum UserCredential {
    Assertion(Zeroizing<String>),
    Refresh(Arc<RefreshTokenSlot>),
}

impl Grant {
    /// A user's grant, with no credential yet.
    pub(crate) fn user() -> Self {
        Grant::User(Mutex::new(None))
    }

    /// Keeps `grant`'s credential for the next token requests.
    pub(crate) fn set(&self, grant: UserGrant<'_>) {
        if let Grant::User(credential) = self {
            let new = match grant {
                UserGrant::OnBehalfOf(assertion) => {
                    UserCredential::Assertion(Zeroizing::new(assertion.to_owned()))
                }
                UserGrant::RefreshToken(slot) => UserCredential::Refresh(Arc::clone(slot)),
            };
            *credential.lock().unwrap_or_else(PoisonError::into_inner) = Some(new);
        }
    }

    /// Appends `grant_type` and the grant's own fields to a token request's form.
    pub(crate) fn append_to(
        &self,
        form: &mut form_urlencoded::Serializer<'_, String>,
        client_id: &str,
    ) -> Result<(), Error> {
        let credential = match self {
            Grant::ClientCredentials => {
                form.append_pair("grant_type", "client_credentials");
                return Ok(());
            }
            Grant::User(credential) => credential.lock().unwrap_or_else(PoisonError::into_inner),
        };
        match credential.as_ref() {
            Some(UserCredential::Assertion(assertion)) => {
                form.append_pair("grant_type", JWT_BEARER_GRANT)
                    .append_pair("requested_token_use", "on_behalf_of")
                    .append_pair("assertion", assertion);
            }
            Some(UserCredential::Refresh(slot)) => {
                form.append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", &slot.current());
            }
            None => {
                return Err(Error::Config {
                    field: "grant",
                    reason: format!(
                        "a user's token for {client_id} was requested without the user's assertion or refresh token"
                    ),
                })
            }
        }
        Ok(())
    }

    /// Stores the refresh token an answer rotated into, when the grant redeems one.
    pub(crate) fn rotated(&self, refresh_token: Option<Zeroizing<String>>) {
        let (Grant::User(credential), Some(token)) = (self, refresh_token) else {
            return;
        };
        if let Some(UserCredential::Refresh(slot)) = credential
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            slot.replace(token);
        }
    }
}
