//! PKCS#12 (.pfx/.p12) bundles, opened down to the DER of their key and certificates.

use der::Decode;
use zeroize::Zeroizing;

use crate::{error::invalid_key, Error};

/// What a PKCS#12 bundle holds, as DER.
pub(crate) struct Contents {
    /// The one private key, PKCS#8.
    pub(crate) key: Zeroizing<Vec<u8>>,
    /// The certificates, the one linked to the key (by local key id) first.
    pub(crate) certificates: Vec<Vec<u8>>,
}

/// Whether `der` looks like a PKCS#12 `PFX`: a SEQUENCE whose first element is INTEGER 3.
pub(crate) fn is_pkcs12(der: &[u8]) -> bool {
    use der::{Header, SliceReader, Tag};
    let Ok(mut reader) = SliceReader::new(der) else {
        return false;
    };
    matches!(Header::decode(&mut reader), Ok(h) if h.tag == Tag::Sequence)
        && u8::decode(&mut reader) == Ok(3)
}

/// Decrypts a PKCS#12 bundle with `password`; it must hold exactly one private key with its
/// certificate (bound to it by local key id, as every PKCS#12 writer does).
pub(crate) fn open(der: &[u8], origin: &str, password: Option<&str>) -> Result<Contents, Error> {
    let password = password.ok_or_else(|| Error::PasswordRequired {
        origin: origin.to_owned(),
    })?;
    let store = p12_keystore::KeyStore::from_pkcs12(der, password).map_err(|e| {
        use p12_keystore::error::Error as P12;
        match e {
            P12::MacError(_) | P12::UnpadError => Error::Decrypt {
                origin: origin.to_owned(),
                reason: "wrong password for the PKCS#12 file".to_owned(),
            },
            other => invalid_key(origin, format!("malformed PKCS#12: {other}")),
        }
    })?;
    let chains: Vec<_> = store
        .entries()
        .filter_map(|(_, entry)| match entry {
            p12_keystore::KeyStoreEntry::PrivateKeyChain(chain) => Some(chain),
            _ => None,
        })
        .collect();
    let [chain] = chains.as_slice() else {
        return Err(invalid_key(
            origin,
            match chains.len() {
                // The reader pairs keys with certificates; a key alone is not read.
                0 => "the PKCS#12 file holds no private key with its certificate (a key-only \
                      .pfx is not read: give the key as PEM or DER, and --cert)"
                    .to_owned(),
                n => format!(
                    "a PKCS#12 file must hold exactly one private key with its certificate, \
                     this one holds {n}"
                ),
            },
        ));
    };
    // The chain starts with the key's own certificate, then its issuers.
    Ok(Contents {
        key: Zeroizing::new(chain.key().to_vec()),
        certificates: chain
            .chain()
            .iter()
            .map(|cert| cert.as_der().to_vec())
            .collect(),
    })
}
