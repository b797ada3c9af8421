//! The shipped scenarios and traces, built into the binary so that `tokenbench run stampede`
//! works from any folder.

/// The default scenario (`scenarios/default.toml`), run when no scenario is named.
pub const DEFAULT_SCENARIO: &str = include_str!("../../../scenarios/default.toml");

/// The shipped scenarios, by name.
const BUILTINS: [(&str, &str); 11] = [
    ("default", DEFAULT_SCENARIO),
    ("stampede", include_str!("../../../scenarios/stampede.toml")),
    (
        "revocation",
        include_str!("../../../scenarios/revocation.toml"),
    ),
    (
        "throttled-idp",
        include_str!("../../../scenarios/throttled-idp.toml"),
    ),
    (
        "key-rotation",
        include_str!("../../../scenarios/key-rotation.toml"),
    ),
    ("replay", include_str!("../../../scenarios/replay.toml")),
    ("backends", include_str!("../../../scenarios/backends.toml")),
    (
        "fleet-day",
        include_str!("../../../scenarios/fleet-day.toml"),
    ),
    (
        "require-certificate",
        include_str!("../../../scenarios/require-certificate.toml"),
    ),
    (
        "obo-users",
        include_str!("../../../scenarios/obo-users.toml"),
    ),
    (
        "credential-manager",
        include_str!("../../../scenarios/credential-manager.toml"),
    ),
];

/// The shipped traces, by their path relative to `scenarios/`.
const BUILTIN_TRACES: [(&str, &str); 1] = [(
    "traces/apim-gateway-logs.csv",
    include_str!("../../../scenarios/traces/apim-gateway-logs.csv"),
)];

/// The names of the shipped scenarios.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|(name, _)| *name)
}

/// The TOML of the shipped scenario `name` (`stampede` or `stampede.toml`).
pub fn builtin(name: &str) -> Option<&'static str> {
    lookup(&BUILTINS, name.strip_suffix(".toml").unwrap_or(name))
}

/// The content of a shipped trace, by its path relative to `scenarios/`
/// (`traces/apim-gateway-logs.csv`, as the shipped `replay` scenario names it).
pub fn builtin_trace(path: &str) -> Option<&'static str> {
    lookup(&BUILTIN_TRACES, path.strip_prefix("./").unwrap_or(path))
}

fn lookup(table: &[(&str, &'static str)], key: &str) -> Option<&'static str> {
    table
        .iter()
        .find(|(name, _)| *name == key)
        .map(|(_, text)| *text)
}
