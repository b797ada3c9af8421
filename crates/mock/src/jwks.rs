//! The keys a backend verifies tokens with: a JSON Web Key Set parsed into verifiers, and
//! where a backend in front of another OpenID provider fetches that set.

use std::{collections::HashMap, fmt, future::Future, pin::Pin};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use der::Encode;
use serde_json::Value;
use signer::{Algorithm, KeyKind, PublicKey, VerifyingKey};

/// A boxed, `Send` future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a backend that trusts another OpenID provider gets that provider's JWKS (over
/// HTTP(S) in a run; the driver implements it with its token client's transport).
pub trait JwksSource: Send + Sync + fmt::Debug {
    /// Fetches the JWKS document, parsed as JSON.
    fn fetch(&self) -> BoxFuture<'_, Result<Value, JwksError>>;

    /// Where the keys come from (a URL), for messages.
    fn location(&self) -> &str;
}

/// A JWKS could not be fetched or holds no usable key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("JWKS from {location}: {reason}")]
pub struct JwksError {
    /// Where it was fetched from.
    pub location: String,
    /// What went wrong.
    pub reason: String,
}

/// The verifiers of a JWKS, by `kid`: one per algorithm the key may verify (its JWK's `alg`
/// if it names one, else every algorithm of its kind).
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    keys: HashMap<String, Vec<Box<dyn VerifyingKey>>>,
}

impl KeySet {
    /// Parses every usable key of `jwks` (RSA, EC P-256 and Ed25519 signature keys with a
    /// `kid`); keys of other kinds or uses, and malformed ones, are skipped as a
    /// `validate-jwt` policy skips them.
    pub(crate) fn from_jwks(jwks: &Value) -> Self {
        let backend = signer::backend::default_backend();
        let mut keys = HashMap::new();
        for jwk in jwks["keys"].as_array().into_iter().flatten() {
            if jwk.get("use").is_some_and(|u| u != "sig") {
                continue;
            }
            let (Some(kid), Some(public_key)) = (jwk["kid"].as_str(), public_key(jwk)) else {
                continue;
            };
            let named = jwk.get("alg").and_then(Value::as_str);
            let verifiers: Vec<_> = public_key
                .kind()
                .algorithms()
                .iter()
                .filter(|alg| named.is_none_or(|name| name == alg.as_str()))
                .filter_map(|&alg| backend.load_verifying_key(&public_key, alg).ok())
                .collect();
            if !verifiers.is_empty() {
                // Two keys under one kid (a provider mid-rollover): either verifies.
                keys.entry(kid.to_owned())
                    .or_insert_with(Vec::new)
                    .extend(verifiers);
            }
        }
        KeySet { keys }
    }

    /// Whether a key with this `kid` is in the set.
    pub(crate) fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// The verifiers of key `kid` for `alg` (one, or more when several keys share the kid).
    pub(crate) fn verifiers(
        &self,
        kid: &str,
        alg: Algorithm,
    ) -> impl Iterator<Item = &dyn VerifyingKey> {
        self.keys
            .get(kid)
            .into_iter()
            .flatten()
            .filter(move |v| v.algorithm() == alg)
            .map(AsRef::as_ref)
    }

    /// How many keys it holds.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

/// The public key of an RSA (`n`, `e`), EC P-256 (`x`, `y`) or Ed25519 (`x`) JWK.
fn public_key(jwk: &Value) -> Option<PublicKey> {
    let bytes = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str()?).ok();
    match jwk["kty"].as_str()? {
        "RSA" => {
            let (n, e) = (bytes("n")?, bytes("e")?);
            let der = pkcs1::RsaPublicKey {
                modulus: pkcs1::UintRef::new(&n).ok()?,
                public_exponent: pkcs1::UintRef::new(&e).ok()?,
            }
            .to_der()
            .ok()?;
            let bits = n
                .iter()
                .position(|b| *b != 0)
                .map_or(0, |i| (n.len() - i) * 8 - n[i].leading_zeros() as usize);
            Some(PublicKey::from_raw(KeyKind::Rsa { bits }, der))
        }
        "EC" if jwk["crv"] == "P-256" => {
            let (x, y) = (bytes("x")?, bytes("y")?);
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            // The uncompressed point, as a SubjectPublicKeyInfo carries it.
            let point = [&[0x04][..], &x, &y].concat();
            Some(PublicKey::from_raw(KeyKind::EcP256, point))
        }
        "OKP" if jwk["crv"] == "Ed25519" => {
            let x = bytes("x")?;
            (x.len() == 32).then(|| PublicKey::from_raw(KeyKind::Ed25519, x))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keys_of_other_uses_kinds_and_malformed_ones_are_skipped() {
        let jwks = json!({"keys": [
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "EC", "kid": "short", "crv": "P-256", "x": "AQ", "y": "AQ"},
            {"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AQ", "y": "AQ"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
            "not an object",
        ]});
        assert_eq!(KeySet::from_jwks(&jwks).len(), 0);
        assert_eq!(KeySet::from_jwks(&json!({"keys": 3})).len(), 0);
        assert_eq!(KeySet::from_jwks(&json!([])).len(), 0);
    }
}
