use std::{fmt, str::FromStr};

use crate::Error;

/// A JWS signature algorithm (RFC 7518 names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt: Entra's default.
    Ps256,
    /// RSASSA-PKCS1-v1_5 with SHA-256: Entra's legacy profile.
    Rs256,
    /// ECDSA on P-256 with SHA-256, signature as fixed-width `r || s`.
    Es256,
    /// Ed25519.
    EdDsa,
}

impl Algorithm {
    /// Every algorithm, in the order reports list them.
    pub const ALL: [Algorithm; 4] = [
        Algorithm::Ps256,
        Algorithm::Rs256,
        Algorithm::Es256,
        Algorithm::EdDsa,
    ];

    /// The JWS `alg` header value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::Ps256 => "PS256",
            Algorithm::Rs256 => "RS256",
            Algorithm::Es256 => "ES256",
            Algorithm::EdDsa => "EdDSA",
        }
    }

    /// Whether this is one of the two RSA algorithms.
    pub const fn is_rsa(self) -> bool {
        matches!(self, Algorithm::Ps256 | Algorithm::Rs256)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = Error;

    /// Parses a JWS name, case-insensitively (`ps256`, `EdDSA`, ...).
    fn from_str(name: &str) -> Result<Self, Error> {
        Algorithm::ALL
            .into_iter()
            .find(|alg| alg.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| Error::UnknownAlgorithm {
                name: name.to_owned(),
            })
    }
}

/// Serialises as the JWS name (`PS256`, `EdDSA`, ...).
impl serde::Serialize for Algorithm {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Deserialises a JWS name as [`FromStr`] parses it; the error of an unknown one names it.
impl<'de> serde::Deserialize<'de> for Algorithm {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}
