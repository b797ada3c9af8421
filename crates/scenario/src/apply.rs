//! Changing a loaded scenario (overrides, shortening) and checking it as a whole again.

use std::time::Duration;

use client::CachePolicy;

use crate::{
    error::ScenarioError,
    limits::{
        check_instances, MAX_APIS, MAX_BACKEND_CLOCK_SKEW, MAX_CLIENTS, MAX_SIGNING_COST,
        MAX_USERS, MAX_ZIPF_EXPONENT,
    },
    model::{
        BackendSpec, CacheScope, EventKind, Flow, IdpSpec, Scenario, SignerSpec, UserDistribution,
        DEFAULT_API,
    },
    overrides::Overrides,
    traffic::{replay_duration, Traffic},
    values::human,
};

/// A problem found by [`Scenario::problems`]: a dotted key and a message.
pub(crate) struct Problem {
    pub(crate) key: String,
    pub(crate) message: String,
}

impl Problem {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl Scenario {
    /// The scenario with `overrides` applied, checked again.
    pub fn with_overrides(mut self, overrides: &Overrides) -> Result<Scenario, ScenarioError> {
        if let Some(duration) = overrides.duration {
            self.duration = duration;
            self.duration_from_trace = false;
        }
        if let Some(rate) = overrides.rate {
            let mean = self.traffic.mean_rate(self.duration);
            if mean <= 0.0 {
                return Err(self.setting(Problem::new(
                    "traffic",
                    "has no arrivals within the run, so it cannot be scaled to a rate",
                )));
            }
            self.traffic = self.traffic.scaled(rate / mean);
            if self.duration_from_trace {
                if let Traffic::Replay { trace, speed } = &self.traffic {
                    self.duration = replay_duration(trace, *speed);
                }
            }
        }
        if let Some(policy) = overrides.policy {
            self.gateway.policy = policy;
        }
        if let Some(instances) = overrides.instances {
            self.gateway.instances = instances;
        }
        if overrides.backend.is_some() || overrides.alg.is_some() {
            let SignerSpec::Assertion { backend, alg, .. } = &mut self.signer else {
                let key = if overrides.backend.is_some() {
                    "backend"
                } else {
                    "alg"
                };
                return Err(self.setting(Problem::new(
                    format!("signer.{key}"),
                    "the scenario authenticates with a client secret, not a signed assertion",
                )));
            };
            if let Some(new) = overrides.backend {
                *backend = new;
            }
            if let Some(new) = overrides.alg {
                *alg = Some(new);
            }
        }
        self.validate()?;
        Ok(self)
    }

    /// The scenario run for `duration` instead (at the mean `rate` if given), its events
    /// moved in proportion: a revocation at 10 s of 30 s happens at 1 s of 3 s, and an
    /// outage's length shrinks with it. The CI suite shortens the shipped scenarios so.
    pub fn shortened(
        mut self,
        duration: Duration,
        rate: Option<f64>,
    ) -> Result<Scenario, ScenarioError> {
        let factor = duration.as_secs_f64() / self.duration.as_secs_f64();
        for event in &mut self.events {
            event.at = event.at.mul_f64(factor);
            if let EventKind::IdpOutage { duration } | EventKind::IdpThrottle { duration, .. } =
                &mut event.kind
            {
                *duration = duration.mul_f64(factor);
            }
        }
        // Checks the moved events against the new length too.
        self.with_overrides(&Overrides {
            duration: Some(duration),
            rate,
            ..Overrides::default()
        })
    }

    /// Checks the scenario as a whole (after its public fields were changed).
    pub fn validate(&self) -> Result<(), ScenarioError> {
        match self.problems().into_iter().next() {
            Some(problem) => Err(self.setting(problem)),
            None => Ok(()),
        }
    }

    fn setting(&self, problem: Problem) -> ScenarioError {
        ScenarioError::Setting {
            scenario: self.name.clone(),
            origin: self.origin.clone(),
            key: problem.key,
            message: problem.message,
        }
    }

    fn api_problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.apis.len() > MAX_APIS {
            problems.push(Problem::new(
                "apis",
                format!("at most {MAX_APIS} APIs, not {}", self.apis.len()),
            ));
        }
        let clients = u64::from(self.gateway.instances) * self.apis.len() as u64;
        if clients > MAX_CLIENTS {
            problems.push(Problem::new(
                "apis",
                format!(
                    "{} instances × {} APIs is {clients} token clients, more than {MAX_CLIENTS}",
                    self.gateway.instances,
                    self.apis.len()
                ),
            ));
        }
        for (i, api) in self.apis.iter().enumerate() {
            let name_ok = !api.name.is_empty()
                && api.name.len() <= 64
                && api
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !name_ok {
                problems.push(Problem::new(
                    format!("apis[{i}].name"),
                    format!("{:?}: 1 to 64 letters, digits, '-', '_' or '.'", api.name),
                ));
            }
            if self.apis[..i].iter().any(|other| other.name == api.name) {
                problems.push(Problem::new(
                    format!("apis[{i}].name"),
                    format!("{:?} is named twice", api.name),
                ));
            }
            if !(api.weight.is_finite() && api.weight > 0.0) {
                problems.push(Problem::new(
                    format!("apis[{i}].weight"),
                    format!("must be a number above 0, not {}", api.weight),
                ));
            }
        }
        // A replayed trace's API names must be the scenario's APIs, unless it has none of
        // its own (then every request goes to its one API).
        let own_apis = !(self.apis.len() == 1 && self.apis[0].name == DEFAULT_API);
        if let Traffic::Replay { trace, .. } = &self.traffic {
            if own_apis {
                if let Some(unknown) = trace
                    .api_names()
                    .iter()
                    .find(|name| !self.apis.iter().any(|api| api.name == ***name))
                {
                    problems.push(Problem::new(
                        "traffic.trace",
                        format!(
                            "the trace names API {unknown:?}, which is not one of [[apis]] ({})",
                            self.apis
                                .iter()
                                .map(|api| api.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
        }
        if self.apis.len() > 1 && matches!(self.idp, IdpSpec::External(_)) {
            problems.push(Problem::new(
                "apis",
                "several APIs need the embedded identity provider (an external one is \
                 configured with one scope, [idp] scope)",
            ));
        }
        problems
    }

    /// The on-behalf-of flow's needs: users, and what it runs on (the embedded identity
    /// provider mints the users' own tokens, and its backend checks their delegated scope).
    fn flow_problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let gateway = &self.gateway;
        let on_behalf_of = gateway.flow == Flow::OnBehalfOf;
        let trace_names_users = matches!(
            &self.traffic,
            Traffic::Replay { trace, .. } if !trace.user_names().is_empty()
        );
        match (&self.users, on_behalf_of) {
            (None, true) if !trace_names_users => problems.push(Problem::new(
                "traffic.users",
                "flow = \"on-behalf-of\" needs the users requests come from, e.g. \
                 users = { count = 10000, distribution = \"zipf\", exponent = 1.1 }, or a \
                 replayed trace with a user column",
            )),
            (None, true) => {}
            (Some(_), true) if trace_names_users => problems.push(Problem::new(
                "traffic.users",
                "the replayed trace names its users (its user column): leave users out",
            )),
            (Some(_), false) => problems.push(Problem::new(
                "traffic.users",
                "users matter only with [gateway] flow = \"on-behalf-of\" (with client \
                 credentials every user gets the gateway's one token)",
            )),
            (Some(users), true) => {
                if !(1..=MAX_USERS).contains(&users.count) {
                    problems.push(Problem::new(
                        "traffic.users.count",
                        format!("must be 1 to {MAX_USERS}, not {}", users.count),
                    ));
                }
                if let UserDistribution::Zipf { exponent } = users.distribution {
                    if !(exponent > 0.0 && exponent <= MAX_ZIPF_EXPONENT) {
                        problems.push(Problem::new(
                            "traffic.users.exponent",
                            format!(
                                "must be above 0 and at most {MAX_ZIPF_EXPONENT}, not {exponent}"
                            ),
                        ));
                    }
                }
            }
            (None, false) => {}
        }
        let limit = client::MAX_ENTRIES_LIMIT;
        if gateway.user_cache_entries == 0 || gateway.user_cache_entries as usize > limit {
            problems.push(Problem::new(
                "gateway.user_cache_entries",
                format!("must be 1 to {limit}, not {}", gateway.user_cache_entries),
            ));
        }
        if let Err(message) = gateway.lookup_latency.validate() {
            problems.push(Problem::new("gateway.lookup_latency", message));
        }
        if !on_behalf_of {
            return problems;
        }
        if gateway.policy == CachePolicy::CredentialManager {
            problems.push(Problem::new(
                "gateway.policy",
                "users' tokens in a managed store (credential-manager with flow = \
                 \"on-behalf-of\") are not supported yet",
            ));
        }
        if gateway.cache != CacheScope::Instance {
            problems.push(Problem::new(
                "gateway.shared_cache",
                "users' tokens are cached per instance: a cache shared by instances is not \
                 supported with flow = \"on-behalf-of\" yet",
            ));
        }
        if matches!(self.idp, IdpSpec::External(_)) {
            problems.push(Problem::new(
                "idp",
                "flow = \"on-behalf-of\" needs the embedded identity provider, which mints \
                 the users' own tokens",
            ));
        }
        if !matches!(self.backend, BackendSpec::Embedded { trust: None, .. }) {
            problems.push(Problem::new(
                "backend",
                "flow = \"on-behalf-of\" needs the embedded backend trusting the embedded \
                 identity provider",
            ));
        }
        for (i, event) in self.events.iter().enumerate() {
            if event.kind == EventKind::RotateIdpKeys {
                problems.push(Problem::new(
                    format!("events[{i}].kind"),
                    "rotate-idp-keys with flow = \"on-behalf-of\" is not supported: the \
                     users' own tokens would need minting again under the new key",
                ));
            }
        }
        problems
    }

    /// Every inconsistency, each with its dotted key (events by their index in `events`).
    pub(crate) fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let duration = self.duration;
        if duration.is_zero() {
            problems.push(Problem::new("duration", "must be above 0"));
        }
        if let Err(e) = self.traffic.validate(duration) {
            problems.push(Problem::new(format!("traffic.{}", e.key), e.message));
        }
        let gateway = &self.gateway;
        if let Err(message) = check_instances(gateway.instances) {
            problems.push(Problem::new("gateway.instances", message));
        }
        if gateway.regions == 0 || gateway.regions > gateway.instances {
            problems.push(Problem::new(
                "gateway.regions",
                format!(
                    "must be 1 to the number of instances ({}), not {}",
                    gateway.instances, gateway.regions
                ),
            ));
        }
        problems.extend(self.api_problems());
        problems.extend(self.flow_problems());
        let fraction = gateway.cache_fraction;
        if !(fraction > 0.0 && fraction <= 1.0) {
            problems.push(Problem::new(
                "gateway.cache_fraction",
                format!("must be above 0 and at most 1, not {fraction}"),
            ));
        }
        if gateway.max_in_flight == 0 {
            problems.push(Problem::new("gateway.max_in_flight", "must be at least 1"));
        }
        if let SignerSpec::Assertion {
            backend,
            alg,
            key_bits,
            signing_cost,
        } = &self.signer
        {
            if signing_cost.is_some_and(|cost| cost.is_zero() || cost > MAX_SIGNING_COST) {
                problems.push(Problem::new(
                    "signer.signing_cost",
                    format!(
                        "must be above 0 and at most {}, not {}",
                        human(MAX_SIGNING_COST),
                        human(signing_cost.unwrap_or_default())
                    ),
                ));
            }
            if ![2048, 3072, 4096].contains(key_bits) {
                problems.push(Problem::new(
                    "signer.key_bits",
                    format!("must be 2048, 3072 or 4096, not {key_bits}"),
                ));
            }
            if let Some(alg) = alg {
                if !backend.supports(*alg) {
                    problems.push(Problem::new(
                        "signer.alg",
                        format!("the {} backend does not implement {alg}", backend.name()),
                    ));
                }
            }
        }
        match &self.idp {
            IdpSpec::Embedded(idp) => {
                if let BackendSpec::Embedded {
                    trust: Some(trust), ..
                } = &self.backend
                {
                    problems.push(Problem::new(
                        "backend.issuer",
                        format!(
                            "{:?} is an external identity provider, and this scenario runs the \
                             embedded one (whose tokens the embedded backend validates without \
                             settings): give [idp] token_url and credentials, or remove \
                             issuer",
                            trust.issuer
                        ),
                    ));
                }
                for lifetime in std::iter::once(idp.token_lifetime).chain(idp.token_lifetime_max) {
                    if lifetime < Duration::from_secs(1)
                        || lifetime > mock::MAX_TOKEN_LIFETIME
                        || lifetime.subsec_nanos() != 0
                    {
                        problems.push(Problem::new(
                            "idp.token_lifetime",
                            format!(
                                "must be whole seconds from 1s to {} (expires_in is an \
                                 integer), not {}",
                                human(mock::MAX_TOKEN_LIFETIME),
                                human(lifetime)
                            ),
                        ));
                    }
                }
                if idp
                    .token_lifetime_max
                    .is_some_and(|max| max < idp.token_lifetime)
                {
                    problems.push(Problem::new(
                        "idp.token_lifetime.max",
                        format!("must not be below min ({})", human(idp.token_lifetime)),
                    ));
                }
                if let Err(message) = idp.latency.validate() {
                    problems.push(Problem::new("idp.latency", message));
                }
                if !(0.0..=1.0).contains(&idp.error_rate) {
                    problems.push(Problem::new(
                        "idp.error_rate",
                        format!("must be within 0 and 1, not {}", idp.error_rate),
                    ));
                }
                if let Some(rps) = idp.throttle_rps {
                    if !(rps.is_finite() && rps > 0.0) {
                        problems.push(Problem::new(
                            "idp.throttle_rps",
                            format!("must be a number above 0, not {rps}"),
                        ));
                    }
                }
            }
            IdpSpec::External(_) => {
                if matches!(self.backend, BackendSpec::Embedded { trust: None, .. }) {
                    problems.push(Problem::new(
                        "idp.token_url",
                        "an external identity provider needs an external backend ([backend] \
                         url) or the embedded one validating its tokens ([backend] issuer and \
                         audience)",
                    ));
                }
                if let SignerSpec::Secret(_) = self.signer {
                    problems.push(Problem::new(
                        "signer.client_secret",
                        "with an external identity provider, give its client_secret in [idp]",
                    ));
                }
                if !self.events.is_empty() {
                    problems.push(Problem::new(
                        "events",
                        "events act on the embedded identity provider; this one is external",
                    ));
                }
            }
        }
        if let BackendSpec::Embedded {
            latency,
            clock_skew,
            ..
        } = &self.backend
        {
            if let Err(message) = latency.validate() {
                problems.push(Problem::new("backend.latency", message));
            }
            if *clock_skew > MAX_BACKEND_CLOCK_SKEW || clock_skew.subsec_nanos() != 0 {
                problems.push(Problem::new(
                    "backend.clock_skew",
                    format!(
                        "must be whole seconds up to {} (token times are whole seconds), not {}",
                        human(MAX_BACKEND_CLOCK_SKEW),
                        human(*clock_skew)
                    ),
                ));
            }
        }
        for (i, event) in self.events.iter().enumerate() {
            if event.at >= duration {
                problems.push(Problem::new(
                    format!("events[{i}].at"),
                    format!(
                        "{} at {} is not before the end of the run ({})",
                        event.kind.name(),
                        human(event.at),
                        human(duration)
                    ),
                ));
            }
            match &event.kind {
                EventKind::IdpOutage { duration } | EventKind::IdpThrottle { duration, .. }
                    if duration.is_zero() =>
                {
                    problems.push(Problem::new(
                        format!("events[{i}].duration"),
                        "must be above 0",
                    ));
                }
                _ => {}
            }
            if let EventKind::IdpThrottle { rate, .. } = event.kind {
                if !(rate.is_finite() && rate > 0.0) {
                    problems.push(Problem::new(
                        format!("events[{i}].rate"),
                        format!("must be a number above 0, not {rate}"),
                    ));
                }
            }
        }
        if let Some(compare) = &self.compare {
            match compare.runs() {
                Ok(runs) => {
                    for (value, overrides) in runs {
                        // Each run must be valid too (e.g. every backend has the algorithm).
                        let mut run = self.clone();
                        run.compare = None;
                        if let Err(e) = run.with_overrides(&overrides) {
                            problems.push(Problem::new(
                                format!("compare.{}", compare.key),
                                format!("with {} = {value:?}: {e}", compare.key),
                            ));
                        }
                    }
                }
                Err(e) => problems.push(Problem::new(
                    format!("compare.{}", compare.key),
                    e.to_string(),
                )),
            }
        }
        problems
    }
}
