//! Client-assertion signing for tokenbench.
//!
//! The crate turns a private key and its X.509 certificate into signed JWT client
//! assertions of the Microsoft Entra ID profile (RFC 7523 `private_key_jwt`), through
//! one of several crypto backends picked at run time by name, and verifies compact JWS.
//!
//! The backends follow the provider pattern of rustls: a [`CryptoBackend`] parses a key
//! once into a `Send + Sync` [`SigningKey`]; signing never parses again. Each backend is a
//! cargo feature (`rsa`, `ring`, `aws-lc-rs`), all on by default.
//!
//! ```
//! use signer::{backend, keygen, AssertionBuilder, Certificate, Credential, KeySpec, PrivateKey};
//!
//! // A throwaway key and self-signed certificate (use your own files in practice).
//! let generated = keygen::generate(KeySpec::Rsa2048, "example", 1)?;
//! let key = PrivateKey::from_bytes(generated.key_pem.as_bytes(), "key.pem", None)?;
//! let cert = Certificate::from_bytes(generated.cert_pem.as_bytes(), "cert.pem")?;
//!
//! let backend = backend::default_backend(); // or backend::by_name("ring")?
//! let credential = Credential::new(backend, &key, cert, None)?; // PS256: the RSA default
//! let builder = AssertionBuilder::new(
//!     &credential,
//!     "11111111-2222-3333-4444-555555555555",
//!     "https://login.microsoftonline.com/contoso/oauth2/v2.0/token",
//! );
//! let jws = builder.build()?;
//! assert_eq!(jws.split('.').count(), 3);
//! # Ok::<(), signer::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod alg;
mod assertion;
pub mod backend;
pub mod bench;
mod cert;
mod credential;
mod encoding;
mod error;
pub mod jws;
mod key;
pub mod keygen;
mod pkcs12;
mod public_key;
mod source;

pub use alg::Algorithm;
pub use assertion::{AssertionBuilder, AssertionClaims, CLIENT_ASSERTION_TYPE, DEFAULT_LIFETIME};
pub use backend::{CryptoBackend, SigningKey, VerifyingKey};
pub use cert::{Certificate, Thumbprint};
pub use credential::Credential;
pub use error::Error;
pub use key::PrivateKey;
pub use keygen::KeySpec;
pub use public_key::{KeyKind, PublicKey};
