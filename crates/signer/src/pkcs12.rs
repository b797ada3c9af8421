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

/// Decrypts a PKCS#12 bundle with `password`; it must hold exactly one private key.
pub(crate) fn open(der: &[u8], origin: &str, password: Option<&str>) -> Result<Contents, Error> {
    let password = password.ok_or_else(|| Error::PasswordRequired {
        origin: origin.to_owned(),
    })?;
    let archive = p12_keystore::Pkcs12Archive::from_pkcs12(der, password).map_err(|e| {
        use p12_keystore::error::Error as P12;
        match e {
            P12::MacError(_) | P12::UnpadError => Error::Decrypt {
                origin: origin.to_owned(),
                reason: "wrong password for the PKCS#12 file".to_owned(),
            },
            other => invalid_key(origin, format!("malformed PKCS#12: {other}")),
        }
    })?;
    let [key_bag] = archive.keys.as_slice() else {
        return Err(invalid_key(
            origin,
            format!(
                "a PKCS#12 file must hold exactly one private key, this one holds {}",
                archive.keys.len()
            ),
        ));
    };
    let key_id = key_bag.local_key_id.as_ref().map(|id| id.0.as_slice());
    let mut bags: Vec<_> = archive.certs.iter().collect();
    bags.sort_by_key(|bag| key_id.is_none() || bag.local_key_id.as_deref() != key_id);
    Ok(Contents {
        key: Zeroizing::new(key_bag.key.as_der().to_vec()),
        certificates: bags
            .into_iter()
            .map(|bag| bag.cert.as_der().to_vec())
            .collect(),
    })
}
