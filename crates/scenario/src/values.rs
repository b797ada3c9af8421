//! Values of scenario files and overrides read from text: durations, cache policies, crypto
//! backends, algorithms and latencies, with readable errors.

use std::{fmt, marker::PhantomData, str::FromStr, time::Duration};

use client::CachePolicy;
use mock::Latency;
use serde::{de, Deserialize, Deserializer};
use signer::{Algorithm, CryptoBackend};

/// A duration as humantime writes it (`1m 30s`).
pub(crate) fn human(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

/// A human duration (`30s`, `2m`, `250ms`).
pub(crate) struct Human(pub(crate) Duration);

impl FromStr for Human {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        humantime::parse_duration(text.trim())
            .map(Human)
            .map_err(|e| {
                format!("{text:?} is not a duration such as \"30s\", \"2m\" or \"250ms\": {e}")
            })
    }
}

/// A cache policy by name (case-insensitive).
pub(crate) struct PolicyName(pub(crate) CachePolicy);

impl FromStr for PolicyName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        text.parse().map(PolicyName).map_err(|_| {
            format!(
                "unknown cache policy {text:?}; expected apim, single-flight, refresh-ahead or \
                 credential-manager"
            )
        })
    }
}

/// A compiled-in crypto backend by name.
pub(crate) struct BackendName(pub(crate) &'static dyn CryptoBackend);

impl FromStr for BackendName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        signer::backend::by_name(text.trim())
            .map(BackendName)
            .map_err(|e| e.to_string())
    }
}

/// A signature algorithm by JWS name.
pub(crate) struct AlgName(pub(crate) Algorithm);

impl FromStr for AlgName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        text.trim()
            .parse()
            .map(AlgName)
            .map_err(|e: signer::Error| e.to_string())
    }
}

/// Deserialises a string through `FromStr`, with a readable "expected" for wrong types.
struct FromStrVisitor<T> {
    expecting: &'static str,
    target: PhantomData<T>,
}

impl<T: FromStr<Err = String>> de::Visitor<'_> for FromStrVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        text.parse().map_err(E::custom)
    }
}

macro_rules! deserialize_from_str {
    ($($type:ty => $expecting:literal),* $(,)?) => {$(
        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(FromStrVisitor {
                    expecting: $expecting,
                    target: PhantomData,
                })
            }
        }
    )*};
}

deserialize_from_str! {
    Human => "a duration such as \"30s\", \"2m\" or \"250ms\"",
    PolicyName => "a cache policy: \"apim\", \"single-flight\", \"refresh-ahead\" or \"credential-manager\"",
    BackendName => "a crypto backend name such as \"aws-lc-rs\"",
    AlgName => "an algorithm: \"PS256\", \"RS256\", \"ES256\" or \"EdDSA\"",
}

/// A token lifetime: a human duration, or a range `{ min = "60m", max = "90m" }` drawn from
/// per token.
pub(crate) struct LifetimeValue {
    pub(crate) min: Duration,
    pub(crate) max: Option<Duration>,
}

impl<'de> Deserialize<'de> for LifetimeValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Range {
            min: Human,
            max: Human,
        }

        struct Visitor;

        impl<'de> de::Visitor<'de> for Visitor {
            type Value = LifetimeValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a duration such as \"1h\", or a range such as \
                     { min = \"60m\", max = \"90m\" }",
                )
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<LifetimeValue, E> {
                let Human(min) = text.parse().map_err(E::custom)?;
                Ok(LifetimeValue { min, max: None })
            }

            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<LifetimeValue, A::Error> {
                let range = Range::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(LifetimeValue {
                    min: range.min.0,
                    max: Some(range.max.0),
                })
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

/// A latency: a human duration (fixed), or a table as [`Latency`] reads it
/// (`{ kind = "uniform", min_ms = 5, max_ms = 50 }`).
pub(crate) struct LatencyValue(pub(crate) Latency);

impl<'de> Deserialize<'de> for LatencyValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl<'de> de::Visitor<'de> for Visitor {
            type Value = LatencyValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a duration such as \"20ms\", or a table such as \
                     { kind = \"log-normal\", median_ms = 20, p99_ms = 200 }",
                )
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<LatencyValue, E> {
                let Human(duration) = text.parse().map_err(E::custom)?;
                Ok(LatencyValue(Latency::Fixed {
                    ms: duration.as_secs_f64() * 1000.0,
                }))
            }

            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<LatencyValue, A::Error> {
                Latency::deserialize(de::value::MapAccessDeserializer::new(map)).map(LatencyValue)
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}
