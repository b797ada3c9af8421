//! Scenarios whose requests come from users, through the on-behalf-of flow: `[gateway] flow`,
//! `user_cache_entries` and `[traffic] users`, and every inconsistency named at its line.

use scenario::{Flow, Scenario, ScenarioError, UserDistribution, Users};

const OBO: &str = "[traffic]\nkind = \"constant\"\nrate = 10\nusers = { count = 5000, distribution = \"zipf\", exponent = 1.1 }\n[gateway]\nflow = \"on-behalf-of\"\nuser_cache_entries = 300\n";

/// The error of `text`: at `line`, naming `key`; its message.
fn fails_at(text: &str, line: usize, key: &str) -> String {
    let err = Scenario::from_toml_str(text, "conf/bad.toml").expect_err("must fail");
    let message = err.to_string();
    match &err {
        ScenarioError::Invalid { at, key: k, .. } => {
            assert_eq!((at.line, k.as_str()), (line, key), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
    message
}

#[test]
fn users_and_the_on_behalf_of_flow_parse() {
    let s = Scenario::from_toml_str(OBO, "conf/ok.toml").unwrap();
    assert_eq!(s.gateway.flow, Flow::OnBehalfOf);
    assert_eq!(s.gateway.user_cache_entries, 300);
    assert_eq!(
        s.users,
        Some(Users {
            count: 5000,
            distribution: UserDistribution::Zipf { exponent: 1.1 }
        })
    );
    let uniform = OBO.replace(", distribution = \"zipf\", exponent = 1.1", "");
    let s = Scenario::from_toml_str(&uniform, "conf/ok.toml").unwrap();
    assert_eq!(s.users.unwrap().distribution, UserDistribution::Uniform);
    let zipf_default = OBO.replace(", exponent = 1.1", "");
    let s = Scenario::from_toml_str(&zipf_default, "conf/ok.toml").unwrap();
    assert_eq!(
        s.users.unwrap().distribution,
        UserDistribution::Zipf { exponent: 1.0 }
    );
    // Without them: client credentials, no users, the default entry limit.
    let plain =
        Scenario::from_toml_str("[traffic]\nkind = \"constant\"\nrate = 1\n", "a.toml").unwrap();
    assert_eq!(plain.gateway.flow, Flow::ClientCredentials);
    assert_eq!(plain.users, None);
    assert_eq!(
        plain.gateway.user_cache_entries as usize,
        client::DEFAULT_MAX_ENTRIES
    );
    // The digest of a sharded run covers the users.
    let other = Scenario::from_toml_str(&OBO.replace("5000", "5001"), "conf/ok.toml").unwrap();
    let same = Scenario::from_toml_str(OBO, "conf/ok.toml").unwrap();
    assert_ne!(same.digest(), other.digest());
}

#[test]
fn users_and_the_flow_need_each_other() {
    let m = fails_at(
        &OBO.replace("flow = \"on-behalf-of\"\n", ""),
        4,
        "traffic.users",
    );
    assert!(m.contains("only with [gateway] flow"), "{m}");
    let m = fails_at(
        &OBO.replace(
            "users = { count = 5000, distribution = \"zipf\", exponent = 1.1 }\n",
            "",
        ),
        1,
        "traffic.users",
    );
    assert!(m.contains("needs the users"), "{m}");
}

#[test]
fn impossible_users_name_their_line_and_key() {
    fails_at(
        &OBO.replace("count = 5000", "count = 0"),
        4,
        "traffic.users.count",
    );
    let m = fails_at(&OBO.replace("1.1", "0"), 4, "traffic.users.exponent");
    assert!(m.contains("above 0"), "{m}");
    fails_at(&OBO.replace("1.1", "11"), 4, "traffic.users.exponent");
    let m = fails_at(
        &OBO.replace("distribution = \"zipf\"", "distribution = \"uniform\""),
        4,
        "traffic.users.exponent",
    );
    assert!(m.contains("zipf"), "{m}");
    let m = fails_at(
        &OBO.replace("\"zipf\"", "\"pareto\""),
        4,
        "traffic.users.distribution",
    );
    assert!(m.contains("pareto"), "{m}");
    fails_at(
        &OBO.replace("user_cache_entries = 300", "user_cache_entries = 0"),
        7,
        "gateway.user_cache_entries",
    );
    let m = fails_at(
        &OBO.replace("\"on-behalf-of\"", "\"implicit\""),
        6,
        "gateway.flow",
    );
    assert!(m.contains("implicit"), "{m}");
}

#[test]
fn the_on_behalf_of_flow_refuses_what_it_cannot_run_on() {
    let m = fails_at(
        &format!("{OBO}shared_cache = true\n"),
        8,
        "gateway.shared_cache",
    );
    assert!(m.contains("not supported"), "{m}");
    let external = "[idp]\ntoken_url = \"https://idp/token\"\nclient_id = \"c\"\nscope = \"s\"\nclient_secret = \"x\"\n[backend]\nurl = \"https://b\"\n";
    let err = Scenario::from_toml_str(&format!("{OBO}{external}"), "conf/bad.toml")
        .expect_err("must fail")
        .to_string();
    assert!(err.contains("embedded identity provider"), "{err}");
    let m = fails_at(
        &format!("{OBO}[[events]]\nat = \"1s\"\nkind = \"rotate-idp-keys\"\n"),
        10,
        "events[0].kind",
    );
    assert!(m.contains("not supported"), "{m}");
    // A revocation is fine: the backend refuses the users' tokens issued before it.
    Scenario::from_toml_str(
        &format!("{OBO}[[events]]\nat = \"1s\"\nkind = \"revoke-tokens\"\n"),
        "conf/ok.toml",
    )
    .unwrap();
}

/// A replay scenario of `trace` (CSV) in a temporary folder, with `extra` after `[traffic]`.
fn replay(trace: &str, traffic_extra: &str, flow: &str) -> Result<Scenario, ScenarioError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.csv"), trace).unwrap();
    let path = dir.path().join("s.toml");
    std::fs::write(
        &path,
        format!(
            "[traffic]\nkind = \"replay\"\ntrace = \"t.csv\"\n{traffic_extra}[gateway]\nflow = \"{flow}\"\n"
        ),
    )
    .unwrap();
    Scenario::load(&path)
}

const TRACE_WITH_USERS: &str = "offset,user\n0,alice\n0.1,bob\n0.2,alice\n0.3,\n0.4,carol\n";

#[test]
fn a_replayed_traces_user_column_names_each_requests_user() {
    let s = replay(TRACE_WITH_USERS, "", "on-behalf-of").unwrap();
    assert_eq!(s.user_population(), Some(3));
    let users: Vec<Option<u32>> = s.arrivals().unwrap().map(|a| a.user).collect();
    assert_eq!(users, [Some(0), Some(1), Some(0), None, Some(2)]);
    let scenario::Traffic::Replay { trace, .. } = &s.traffic else {
        panic!("replay")
    };
    let names: Vec<&str> = trace.user_names().iter().map(|n| &**n).collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    // The column's other name in gateway logs.
    let s = replay(
        &TRACE_WITH_USERS.replace("user", "UserId"),
        "",
        "on-behalf-of",
    )
    .unwrap();
    assert_eq!(s.user_population(), Some(3));
    // Users drawn and users named do not mix; a trace without users needs them drawn.
    let err = replay(TRACE_WITH_USERS, "users = { count = 10 }\n", "on-behalf-of")
        .unwrap_err()
        .to_string();
    assert!(err.contains("user column"), "{err}");
    let err = replay("offset\n0\n1\n", "", "on-behalf-of")
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs the users"), "{err}");
    let drawn = replay("offset\n0\n1\n", "users = { count = 10 }\n", "on-behalf-of").unwrap();
    assert_eq!(drawn.user_population(), Some(10));
    // With client credentials the column is read and not used.
    let plain = replay(TRACE_WITH_USERS, "", "client-credentials").unwrap();
    assert_eq!(plain.gateway.flow, Flow::ClientCredentials);
}
