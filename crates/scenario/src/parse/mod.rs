//! Parsing: TOML → raw structs (serde, spans from toml) → a checked [`Scenario`], with every
//! error located at its file, line, column and key.

use std::{io::Read as _, path::Path, sync::Arc, time::Duration};

use client::ClientSecret;
use mock::Latency;
use toml::de::{DeTable, DeValue};

mod raw;

use raw::{
    DistributionName, EventKindName, FlowName, RawBackend, RawIdp, RawScenario, RawTraffic,
    RawUsers, ScopeName, SharedCache, TrafficKind,
};

use crate::{
    builtin::{builtin, builtin_names, builtin_trace},
    comparison::Comparison,
    error::{Location, ScenarioError},
    limits::MAX_SCENARIO_BYTES,
    model::{
        Api, BackendSpec, CacheScope, EmbeddedIdp, Event, EventKind, ExternalCredentials,
        ExternalIdp, Flow, Gateway, IdpSpec, KeyPassword, ProviderTrust, Scenario, SignerSpec,
        UserDistribution, Users, DEFAULT_DURATION, DEFAULT_KEY_BITS, DEFAULT_SEED,
    },
    trace::{Trace, TraceFormat},
    traffic::{replay_duration, RateStep, Traffic},
    values::Human,
};

impl Scenario {
    /// Reads and checks the scenario file at `path`; a replayed trace is found relative to it.
    pub fn load(path: impl AsRef<Path>) -> Result<Scenario, ScenarioError> {
        let path = path.as_ref();
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_SCENARIO_BYTES + 1).read_to_string(&mut text))
            .and_then(|read| match read as u64 {
                n if n > MAX_SCENARIO_BYTES => Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("larger than {MAX_SCENARIO_BYTES} bytes: not a scenario file"),
                )),
                _ => Ok(()),
            })
            .map_err(|source| ScenarioError::Read {
                origin: path.display().to_string(),
                source,
            })?;
        Scenario::from_toml_str(&text, path)
    }

    /// Parses and checks a scenario; `origin` is its path, which names it in errors and
    /// locates a replayed trace (relative to its folder).
    pub fn from_toml_str(text: &str, origin: impl AsRef<Path>) -> Result<Scenario, ScenarioError> {
        let origin = origin.as_ref();
        let dir = origin.parent().unwrap_or(Path::new(""));
        let name = origin
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default();
        parse(
            text,
            &origin.display().to_string(),
            &name,
            &TraceSource::Dir(dir),
        )
    }

    /// The shipped scenario `name` (see [`builtin_names`]), with its shipped trace.
    pub fn from_builtin(name: &str) -> Result<Scenario, ScenarioError> {
        let name = name.strip_suffix(".toml").unwrap_or(name);
        let text = builtin(name).ok_or_else(|| not_found(name))?;
        parse(
            text,
            &format!("builtin:{name}.toml"),
            name,
            &TraceSource::Builtin,
        )
    }

    /// A scenario file if `name_or_path` is one, else the shipped scenario of that name.
    pub fn find(name_or_path: &str) -> Result<Scenario, ScenarioError> {
        let path = Path::new(name_or_path);
        if path.is_file() {
            Scenario::load(path)
        } else if builtin(name_or_path).is_some() {
            Scenario::from_builtin(name_or_path)
        } else {
            Err(not_found(name_or_path))
        }
    }
}

fn not_found(name: &str) -> ScenarioError {
    ScenarioError::NotFound {
        name: name.to_owned(),
        available: builtin_names().collect::<Vec<_>>().join(", "),
    }
}

/// Where a replayed trace is read from.
enum TraceSource<'a> {
    /// Files, relative to this folder.
    Dir(&'a Path),
    /// The shipped traces.
    Builtin,
}

impl TraceSource<'_> {
    /// The folder other files the scenario names (keys, CA certificates) are relative to.
    fn dir(&self) -> &Path {
        match self {
            TraceSource::Dir(dir) => dir,
            TraceSource::Builtin => Path::new(""),
        }
    }
}

/// A parsed document, to turn spans and keys into locations.
struct Doc<'a> {
    text: &'a str,
    origin: &'a str,
    table: DeTable<'a>,
}

/// The line and column of byte `offset` of `text`.
fn location(text: &str, origin: &str, offset: usize) -> Location {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Location {
        origin: origin.to_owned(),
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    }
}

impl Doc<'_> {
    fn location(&self, offset: usize) -> Location {
        location(self.text, self.origin, offset)
    }

    /// The location of a dotted key (or of its nearest ancestor present in the file).
    fn locate(&self, key: &str) -> Location {
        let mut offset = 0;
        let mut table = Some(&self.table);
        for segment in key.split('.') {
            let (name, indexes) = match segment.find('[') {
                Some(i) => (&segment[..i], &segment[i..]),
                None => (segment, ""),
            };
            let Some(found) = table.and_then(|t| t.iter().find(|(k, _)| k.get_ref() == name))
            else {
                break;
            };
            offset = found.0.span().start;
            let mut value = found.1;
            for index in indexes
                .split(['[', ']'])
                .filter(|s| !s.is_empty())
                .filter_map(|s| s.parse::<usize>().ok())
            {
                match value.get_ref() {
                    DeValue::Array(array) if index < array.len() => {
                        offset = array[index].span().start;
                        value = &array[index];
                    }
                    _ => break,
                }
            }
            table = match value.get_ref() {
                DeValue::Table(t) => Some(t),
                _ => None,
            };
        }
        self.location(offset)
    }

    fn invalid(&self, key: impl Into<String>, message: impl Into<String>) -> ScenarioError {
        let key = key.into();
        ScenarioError::Invalid {
            at: self.locate(&key),
            key,
            message: message.into(),
        }
    }

    /// A deserialisation error: its span gives the line, the key found at that span.
    fn toml_error(&self, error: &toml::de::Error) -> ScenarioError {
        let span = error.span().unwrap_or(0..0);
        let mut key = String::new();
        if !span.is_empty() {
            search_table(&self.table, span.start, &mut key);
        }
        let message = error.message().trim().to_owned();
        // "missing field `x`": name the field itself.
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.strip_suffix('`'))
        {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(field);
        }
        ScenarioError::Invalid {
            at: self.location(span.start),
            key: if key.is_empty() {
                "(top level)".to_owned()
            } else {
                key
            },
            message,
        }
    }
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while index > 0 && !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

fn contains(span: std::ops::Range<usize>, offset: usize) -> bool {
    span.contains(&offset) || (span.is_empty() && span.start == offset)
}

/// Appends to `path` the dotted key at `offset`, deepest first; false if none is there.
fn search_table(table: &DeTable<'_>, offset: usize, path: &mut String) -> bool {
    for (key, value) in table.iter() {
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key.get_ref());
        if contains(key.span(), offset) || search_value(value, offset, path) {
            return true;
        }
        path.truncate(len);
    }
    false
}

fn search_value(value: &toml::Spanned<DeValue<'_>>, offset: usize, path: &mut String) -> bool {
    match value.get_ref() {
        DeValue::Table(table) if search_table(table, offset, path) => return true,
        DeValue::Array(array) => {
            for (i, element) in array.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                if search_value(element, offset, path) {
                    return true;
                }
                path.truncate(len);
            }
        }
        _ => {}
    }
    contains(value.span(), offset)
}

fn parse(
    text: &str,
    origin: &str,
    default_name: &str,
    traces: &TraceSource<'_>,
) -> Result<Scenario, ScenarioError> {
    let table = DeTable::parse(text).map_err(|e| ScenarioError::Syntax {
        at: location(text, origin, e.span().map_or(0, |s| s.start)),
        message: e.message().trim().to_owned(),
    })?;
    let doc = Doc {
        text,
        origin,
        table: table.into_inner(),
    };
    let raw: RawScenario = toml::from_str(text).map_err(|e| doc.toml_error(&e))?;
    let scenario = convert(raw, &doc, default_name, traces)?;
    if let Some(problem) = scenario.problems().into_iter().next() {
        return Err(doc.invalid(problem.key, problem.message));
    }
    let mut scenario = scenario;
    scenario.events.sort_by_key(|event| event.at); // stable
    Ok(scenario)
}

/// Fails with the first key of `present` that `allowed` lacks.
fn only(
    doc: &Doc<'_>,
    section: &str,
    present: &[(&'static str, bool)],
    allowed: &[&str],
    why: &str,
) -> Result<(), ScenarioError> {
    match present
        .iter()
        .find(|(key, set)| *set && !allowed.contains(key))
    {
        Some((key, _)) => Err(doc.invalid(
            format!("{section}.{key}"),
            format!("`{key}` does not apply to {why}"),
        )),
        None => Ok(()),
    }
}

fn require<T>(doc: &Doc<'_>, key: &str, value: Option<T>, why: &str) -> Result<T, ScenarioError> {
    value.ok_or_else(|| doc.invalid(key, format!("missing: {why}")))
}

/// `[backend]`: an external backend (`url`), or the embedded one, trusting the embedded
/// identity provider or the external one `issuer` names.
fn convert_backend(
    b: RawBackend,
    doc: &Doc<'_>,
    traces: &TraceSource<'_>,
) -> Result<BackendSpec, ScenarioError> {
    let trust_keys = [
        ("issuer", b.issuer.is_some()),
        ("jwks_url", b.jwks_url.is_some()),
        ("audience", b.audience.is_some()),
        ("role", b.role.is_some()),
    ];
    if let Some(url) = b.url {
        only(
            doc,
            "backend",
            &[
                [
                    ("latency", b.latency.is_some()),
                    ("clock_skew", b.clock_skew.is_some()),
                    ("require_azpacr", b.require_azpacr.is_some()),
                ]
                .as_slice(),
                &trust_keys,
            ]
            .concat(),
            &[],
            "an external backend (only the embedded one has latency, skew and token \
             validation settings)",
        )?;
        check_url(doc, "backend.url", &url)?;
        return Ok(BackendSpec::External {
            url,
            ca_file: b.ca_file.map(|file| traces.dir().join(file)),
        });
    }
    only(
        doc,
        "backend",
        &[("ca_file", b.ca_file.is_some())],
        &[],
        "the embedded backend (with tls = true the gateway trusts its CA; an external \
         identity provider's CA goes in [idp] ca_file; ca_file here is for an external backend)",
    )?;
    let trust = match b.issuer {
        Some(issuer) => {
            check_url(doc, "backend.issuer", &issuer)?;
            if let Some(url) = &b.jwks_url {
                check_url(doc, "backend.jwks_url", url)?;
            }
            for (key, value) in [("audience", &b.audience), ("role", &b.role)] {
                if value.as_deref().is_some_and(str::is_empty) {
                    return Err(doc.invalid(format!("backend.{key}"), "must not be empty"));
                }
            }
            Some(ProviderTrust {
                issuer,
                jwks_url: b.jwks_url,
                audience: require(
                    doc,
                    "backend.audience",
                    b.audience,
                    "the aud the identity provider's tokens carry, e.g. api://backend",
                )?,
                role: b.role,
            })
        }
        None => {
            only(
                doc,
                "backend",
                &trust_keys,
                &["issuer"],
                "the embedded backend without an issuer: it then trusts the embedded \
                 identity provider (set issuer to validate an external one's tokens)",
            )?;
            None
        }
    };
    if let Some(value) = &b.require_azpacr {
        if !matches!(value.as_str(), "0" | "1" | "2") {
            return Err(doc.invalid(
                "backend.require_azpacr",
                format!(
                    "{value:?} is not an azpacr: \"2\" (certificate), \"1\" (secret) or \"0\" \
                     (public client)"
                ),
            ));
        }
    }
    Ok(BackendSpec::Embedded {
        latency: b.latency.map_or(Latency::None, |l| l.0),
        clock_skew: b.clock_skew.map_or(Duration::ZERO, |s| s.0),
        trust,
        require_azpacr: b.require_azpacr,
    })
}

fn convert(
    raw: RawScenario,
    doc: &Doc<'_>,
    default_name: &str,
    traces: &TraceSource<'_>,
) -> Result<Scenario, ScenarioError> {
    let mut raw_traffic = raw.traffic;
    let users = raw_traffic
        .users
        .take()
        .map(|users| convert_users(users, doc))
        .transpose()?;
    let traffic = convert_traffic(raw_traffic, doc, traces)?;
    let (duration, duration_from_trace) = match (raw.duration, &traffic) {
        (Some(Human(duration)), _) => (duration, false),
        (None, Traffic::Replay { trace, speed }) if speed.is_finite() && *speed > 0.0 => {
            (replay_duration(trace, *speed), true)
        }
        (None, _) => (DEFAULT_DURATION, false),
    };
    let gateway = {
        let g = raw.gateway;
        let defaults = Gateway::default();
        Gateway {
            instances: g.instances.unwrap_or(defaults.instances),
            regions: g.regions.unwrap_or(defaults.regions),
            cache: match g.shared_cache {
                None => defaults.cache,
                Some(SharedCache::All(false)) => CacheScope::Instance,
                Some(SharedCache::All(true)) => CacheScope::Fleet,
                Some(SharedCache::Scope(ScopeName::Region)) => CacheScope::Region,
            },
            policy: g.policy.map_or(defaults.policy, |p| p.0),
            cache_fraction: g.cache_fraction.unwrap_or(defaults.cache_fraction),
            max_in_flight: g.max_in_flight.unwrap_or(defaults.max_in_flight),
            retry_on_401: g.retry_on_401.unwrap_or(defaults.retry_on_401),
            flow: match g.flow {
                None => defaults.flow,
                Some(FlowName::ClientCredentials) => Flow::ClientCredentials,
                Some(FlowName::OnBehalfOf) => Flow::OnBehalfOf,
            },
            user_cache_entries: g.user_cache_entries.unwrap_or(defaults.user_cache_entries),
            lookup_latency: g.lookup_latency.map_or(defaults.lookup_latency, |l| l.0),
        }
    };
    let signer = {
        let s = raw.signer;
        match s.client_secret {
            Some(secret) => {
                only(
                    doc,
                    "signer",
                    &[
                        ("backend", s.backend.is_some()),
                        ("alg", s.alg.is_some()),
                        ("key_bits", s.key_bits.is_some()),
                        ("signing_cost", s.signing_cost.is_some()),
                    ],
                    &[],
                    "a client secret (it signs nothing)",
                )?;
                SignerSpec::Secret(ClientSecret::new(secret))
            }
            None => SignerSpec::Assertion {
                backend: s
                    .backend
                    .map_or_else(signer::backend::default_backend, |b| b.0),
                alg: s.alg.map(|a| a.0),
                key_bits: s.key_bits.unwrap_or(DEFAULT_KEY_BITS),
                signing_cost: s.signing_cost.map(|c| c.0),
            },
        }
    };
    let idp = convert_idp(raw.idp, doc, traces)?;
    let apis = if raw.apis.is_empty() {
        vec![Api::default()]
    } else {
        raw.apis
            .into_iter()
            .map(|api| Api {
                name: api.name,
                weight: api.weight.unwrap_or(1.0),
            })
            .collect()
    };
    let backend = convert_backend(raw.backend, doc, traces)?;
    let tls = raw.tls.unwrap_or(false);
    if tls && matches!(idp, IdpSpec::External(_)) && matches!(backend, BackendSpec::External { .. })
    {
        return Err(doc.invalid(
            "tls",
            "applies to the embedded identity provider and backend, and this scenario has \
             neither (an external server is reached over https when its URL says so)",
        ));
    }
    let mut events = Vec::with_capacity(raw.events.len());
    for (i, event) in raw.events.into_iter().enumerate() {
        let present = [
            ("duration", event.duration.is_some()),
            ("rate", event.rate.is_some()),
        ];
        let key = |k: &str| format!("events[{i}].{k}");
        let kind = match event.kind {
            EventKindName::RevokeTokens | EventKindName::RotateIdpKeys => {
                let revoke = event.kind == EventKindName::RevokeTokens;
                let name = if revoke {
                    "revoke-tokens"
                } else {
                    "rotate-idp-keys"
                };
                only(doc, &format!("events[{i}]"), &present, &[], name)?;
                if revoke {
                    EventKind::RevokeTokens
                } else {
                    EventKind::RotateIdpKeys
                }
            }
            EventKindName::IdpOutage => {
                only(
                    doc,
                    &format!("events[{i}]"),
                    &present,
                    &["duration"],
                    "idp-outage",
                )?;
                EventKind::IdpOutage {
                    duration: require(
                        doc,
                        &key("duration"),
                        event.duration,
                        "how long the outage lasts",
                    )?
                    .0,
                }
            }
            EventKindName::IdpThrottle => EventKind::IdpThrottle {
                rate: require(
                    doc,
                    &key("rate"),
                    event.rate,
                    "token requests per second allowed",
                )?,
                duration: require(
                    doc,
                    &key("duration"),
                    event.duration,
                    "how long the throttling lasts",
                )?
                .0,
            },
        };
        events.push(Event {
            at: event.at.0,
            kind,
        });
    }
    let compare = match raw.compare {
        None => None,
        Some(c) => {
            let given: Vec<(&'static str, Vec<String>)> = [
                ("policy", c.policy),
                ("backend", c.backend),
                ("alg", c.alg),
                (
                    "instances",
                    c.instances.map(|v| v.iter().map(u32::to_string).collect()),
                ),
            ]
            .into_iter()
            .filter_map(|(key, values)| values.map(|v| (key, v)))
            .collect();
            match given.as_slice() {
                [(key, values)] => Some(
                    Comparison::new(key, values.clone())
                        .map_err(|m| doc.invalid(format!("compare.{key}"), m))?,
                ),
                [] => return Err(doc.invalid("compare", "name one setting to compare")),
                [..] => {
                    let keys: Vec<&str> = given.iter().map(|(key, _)| *key).collect();
                    return Err(doc.invalid(
                        "compare",
                        format!(
                            "a comparison varies one setting only, not {}",
                            keys.join(" and ")
                        ),
                    ));
                }
            }
        }
    };
    Ok(Scenario {
        name: raw.name.unwrap_or_else(|| default_name.to_owned()),
        origin: doc.origin.to_owned(),
        duration,
        seed: raw.seed.unwrap_or(DEFAULT_SEED),
        traffic,
        users,
        gateway,
        signer,
        idp,
        backend,
        apis,
        events,
        compare,
        tls,
        duration_from_trace,
    })
}

fn convert_users(u: RawUsers, doc: &Doc<'_>) -> Result<Users, ScenarioError> {
    let distribution = match (u.distribution, u.exponent) {
        (None | Some(DistributionName::Uniform), None) => UserDistribution::Uniform,
        (None | Some(DistributionName::Uniform), Some(_)) => {
            return Err(doc.invalid(
                "traffic.users.exponent",
                "an exponent belongs to distribution = \"zipf\"",
            ))
        }
        (Some(DistributionName::Zipf), exponent) => UserDistribution::Zipf {
            exponent: exponent.unwrap_or(1.0),
        },
    };
    Ok(Users {
        count: u.count,
        distribution,
    })
}

fn convert_traffic(
    t: RawTraffic,
    doc: &Doc<'_>,
    traces: &TraceSource<'_>,
) -> Result<Traffic, ScenarioError> {
    let present = [
        ("rate", t.rate.is_some()),
        ("from", t.from.is_some()),
        ("to", t.to.is_some()),
        ("steps", t.steps.is_some()),
        ("every", t.every.is_some()),
        ("size", t.size.is_some()),
        ("trace", t.trace.is_some()),
        ("speed", t.speed.is_some()),
        ("rates", t.rates.is_some()),
        ("poisson", t.poisson.is_some()),
    ];
    let (allowed, what): (&[&str], &str) = match t.kind {
        TrafficKind::Constant => (&["rate"], "constant traffic"),
        TrafficKind::Poisson => (&["rate"], "poisson traffic"),
        TrafficKind::Ramp => (&["from", "to"], "ramp traffic"),
        TrafficKind::Step => (&["steps"], "step traffic"),
        TrafficKind::Burst => (&["every", "size", "rate"], "burst traffic"),
        TrafficKind::Daily => (&["rates", "poisson"], "daily traffic"),
        TrafficKind::Replay => (&["trace", "speed"], "replay traffic"),
    };
    only(doc, "traffic", &present, allowed, what)?;
    Ok(match t.kind {
        TrafficKind::Constant => Traffic::Constant {
            rate: require(doc, "traffic.rate", t.rate, "requests per second")?,
        },
        TrafficKind::Poisson => Traffic::Poisson {
            rate: require(doc, "traffic.rate", t.rate, "mean requests per second")?,
        },
        TrafficKind::Ramp => Traffic::Ramp {
            from: require(doc, "traffic.from", t.from, "the rate at the start")?,
            to: require(doc, "traffic.to", t.to, "the rate at the end")?,
        },
        TrafficKind::Step => Traffic::Step {
            steps: require(doc, "traffic.steps", t.steps, "a list of { at, rate }")?
                .into_iter()
                .map(|s| RateStep {
                    at: s.at.0,
                    rate: s.rate,
                })
                .collect(),
        },
        TrafficKind::Burst => Traffic::Burst {
            every: require(doc, "traffic.every", t.every, "the time between bursts")?.0,
            size: require(doc, "traffic.size", t.size, "the arrivals per burst")?,
            rate: t.rate.unwrap_or(0.0),
        },
        TrafficKind::Daily => Traffic::Daily {
            rates: require(
                doc,
                "traffic.rates",
                t.rates,
                "24 rates, one per hour of the day from midnight",
            )?,
            poisson: t.poisson.unwrap_or(true),
        },
        TrafficKind::Replay => {
            let name = require(doc, "traffic.trace", t.trace, "the trace file to replay")?;
            let loaded = match traces {
                TraceSource::Dir(dir) => Trace::load(dir.join(&name)),
                TraceSource::Builtin => match builtin_trace(&name) {
                    Some(text) => Trace::from_reader(
                        text.as_bytes(),
                        format!("builtin:{name}"),
                        TraceFormat::from_path(Path::new(&name)),
                    ),
                    None => {
                        return Err(
                            doc.invalid("traffic.trace", format!("no shipped trace {name:?}"))
                        )
                    }
                },
            };
            let trace = loaded.map_err(|error| ScenarioError::Trace {
                at: doc.locate("traffic.trace"),
                key: "traffic.trace".to_owned(),
                error,
            })?;
            Traffic::Replay {
                trace: Arc::new(trace),
                speed: t.speed.unwrap_or(1.0),
            }
        }
    })
}

fn convert_idp(
    i: RawIdp,
    doc: &Doc<'_>,
    traces: &TraceSource<'_>,
) -> Result<IdpSpec, ScenarioError> {
    let embedded_keys = [
        ("token_lifetime", i.token_lifetime.is_some()),
        ("latency", i.latency.is_some()),
        ("error_rate", i.error_rate.is_some()),
        ("throttle_rps", i.throttle_rps.is_some()),
    ];
    let external_keys = [
        ("client_id", i.client_id.is_some()),
        ("scope", i.scope.is_some()),
        ("audience", i.audience.is_some()),
        ("key", i.key.is_some()),
        ("cert", i.cert.is_some()),
        ("password", i.password.is_some()),
        ("client_secret", i.client_secret.is_some()),
        ("ca_file", i.ca_file.is_some()),
    ];
    let Some(token_url) = i.token_url else {
        only(
            doc,
            "idp",
            &external_keys,
            &[],
            "the embedded identity provider (set token_url for an external one)",
        )?;
        let defaults = EmbeddedIdp::default();
        return Ok(IdpSpec::Embedded(EmbeddedIdp {
            token_lifetime: i
                .token_lifetime
                .as_ref()
                .map_or(defaults.token_lifetime, |l| l.min),
            token_lifetime_max: i.token_lifetime.and_then(|l| l.max),
            latency: i.latency.map_or(defaults.latency, |l| l.0),
            error_rate: i.error_rate.unwrap_or(defaults.error_rate),
            throttle_rps: i.throttle_rps,
        }));
    };
    only(
        doc,
        "idp",
        &embedded_keys,
        &[],
        "an external identity provider (token_url is set)",
    )?;
    check_url(doc, "idp.token_url", &token_url)?;
    let dir = traces.dir();
    let credentials = match (i.key, i.client_secret) {
        (Some(key), None) => ExternalCredentials::Certificate {
            key: dir.join(key),
            cert: i.cert.map(|cert| dir.join(cert)),
            password: i.password.map(KeyPassword::new),
        },
        (None, Some(secret)) => {
            only(
                doc,
                "idp",
                &[
                    ("cert", i.cert.is_some()),
                    ("password", i.password.is_some()),
                ],
                &[],
                "a client secret",
            )?;
            ExternalCredentials::Secret(ClientSecret::new(secret))
        }
        (Some(_), Some(_)) => {
            return Err(doc.invalid(
                "idp.client_secret",
                "give either key (and cert) or client_secret, not both",
            ))
        }
        (None, None) => {
            return Err(doc.invalid(
                "idp.key",
                "missing: an external identity provider needs key (and cert) or client_secret",
            ))
        }
    };
    Ok(IdpSpec::External(ExternalIdp {
        token_url,
        client_id: require(doc, "idp.client_id", i.client_id, "the client id")?,
        scope: require(
            doc,
            "idp.scope",
            i.scope,
            "the scope, e.g. api://backend/.default",
        )?,
        audience: i.audience,
        credentials,
        ca_file: i.ca_file.map(|file| dir.join(file)),
    }))
}

/// An absolute http:// or https:// URL with a host, as the driver's HTTP client parses it
/// (so a URL it would refuse mid-run, such as `http://[::1`, is refused here).
fn check_url(doc: &Doc<'_>, key: &str, url: &str) -> Result<(), ScenarioError> {
    let invalid = |why: String| Err(doc.invalid(key, format!("{url:?} {why}")));
    let uri = match url.parse::<http::Uri>() {
        Ok(uri) => uri,
        Err(e) => return invalid(format!("is not a URL: {e}")),
    };
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return invalid("is not an http:// or https:// URL".to_owned());
    }
    if uri.host().is_none_or(str::is_empty) {
        return invalid("has no host".to_owned());
    }
    Ok(())
}
