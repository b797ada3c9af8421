//! The targets, one per parser of untrusted input.

pub(crate) mod backend_bearer;
pub(crate) mod documents;
pub(crate) mod keys;
pub(crate) mod provider;
pub(crate) mod scenario_toml;
pub(crate) mod token_endpoint;
pub(crate) mod token_response;
pub(crate) mod trace;

/// For targets whose seeds are all in the committed corpus.
pub(crate) fn no_extra_seeds() -> Vec<(String, Vec<u8>)> {
    Vec::new()
}

/// `data` with every `placeholder` replaced by `value`.
pub(crate) fn replace(data: &[u8], placeholder: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    while let Some(at) = rest
        .windows(placeholder.len())
        .position(|window| window == placeholder)
    {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(value);
        rest = &rest[at + placeholder.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// The repository's top folder (the seeds it holds are read from there).
pub(crate) fn repository() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
