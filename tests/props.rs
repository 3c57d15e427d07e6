//! Property tests of the pure modules (native only): whatever the input, the JWT claim
//! decoder, the token-response parser and the stored-record reader return a value or a
//! typed error and never panic, and the refresh/401 policy keeps its invariants (refresh
//! before expiry, never a refresh for a replay, at most one refresh per minimum interval).
//!
//! The case counts below add up to more than 100 000; the whole file runs in a few seconds
//! in a debug build (dependencies are optimised in dev, see the root Cargo.toml).
#![cfg(not(target_arch = "wasm32"))]

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use proptest::prelude::*;
use rotafetch::jwt::{decode_claims, JwtError};
use rotafetch::policy::{self, On401, Seen401};
use rotafetch::token::{self, TokenError, MAX_RESPONSE_BYTES};
use serde_json::{json, Map, Value};

fn cfg(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Shrinking is only needed on failure; keep it bounded so a failure reports quickly.
        max_shrink_iters: 2_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---- Generators ----

/// Any JSON value, a few levels deep, with awkward numbers and strings.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        prop_oneof![
            Just(-1.0f64),
            Just(0.0),
            Just(1e308),
            Just(-1e308),
            Just(5e-324),
            Just(1.5)
        ]
        .prop_map(|f| json!(f)),
        ".{0,24}".prop_map(Value::String),
        token_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((".{0,8}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A string that is a valid bearer token (visible ASCII without `"` or `\`).
fn token_string() -> impl Strategy<Value = String> {
    "[!#-\\[\\]-~]{1,64}"
}

/// The field names the parsers look at, plus a few near misses.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("access_token"),
        Just("accessToken"),
        Just("refresh_token"),
        Just("refreshToken"),
        Just("expires_in"),
        Just("expiresIn"),
        Just("token_type"),
        Just("tokenType"),
        Just("exp"),
        Just("iat"),
        Just("v"),
        Just("rt"),
        Just("at"),
        Just("rat"),
        Just("Access_Token"),
        Just("access_token "),
        Just("__proto__"),
        Just(""),
    ]
    .prop_map(str::to_owned)
}

/// A value of the kind the token fields hold (right type or wrong type).
fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => token_string().prop_map(Value::String),
        1 => Just(json!("Bearer")),
        1 => Just(json!("bearer")),
        1 => Just(json!("DPoP")),
        1 => Just(json!("")),
        1 => Just(json!("has space")),
        1 => Just(json!("quo\"te")),
        1 => Just(json!("line\nbreak")),
        1 => Just(json!("ünïcode")),
        1 => Just(json!("3600")),
        1 => Just(json!(" 60 ")),
        1 => Just(json!("-5")),
        1 => Just(json!("NaN")),
        1 => Just(json!("inf")),
        2 => (0u32..100_000).prop_map(|n| json!(n)),
        1 => any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        1 => Just(Value::Null),
        1 => Just(json!(true)),
        1 => Just(json!([1])),
        1 => Just(json!({"a": 1})),
    ]
}

/// A JSON object made of the parsers' field names with random values.
fn token_object() -> impl Strategy<Value = Value> {
    prop::collection::vec((field_name(), field_value()), 0..8)
        .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>()))
}

/// Text that looks like a JWT: header.payload.signature, the payload being base64url of a
/// random JSON value (mostly objects with `exp`/`iat`), padded or not, sometimes damaged.
fn jwt_like() -> impl Strategy<Value = String> {
    let payload = prop_oneof![
        4 => token_object(),
        2 => any_json(),
        1 => (any::<f64>(), any::<f64>()).prop_map(|(e, i)| {
            let n = |f: f64| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null);
            json!({"exp": n(e), "iat": n(i)})
        }),
    ]
    .prop_map(|v| v.to_string().into_bytes());
    let raw_bytes = prop::collection::vec(any::<u8>(), 0..64);
    let body = prop_oneof![4 => payload, 1 => raw_bytes];
    (body, any::<bool>(), 0u8..6, ".{0,4}").prop_map(|(bytes, padded, damage, junk)| {
        let mut p = if padded {
            URL_SAFE.encode(&bytes)
        } else {
            URL_SAFE_NO_PAD.encode(&bytes)
        };
        match damage {
            0 => p.push_str(&junk),
            1 => p = p.replace('-', "+").replace('_', "/"),
            2 => p.truncate(p.len() / 2),
            _ => {}
        }
        let dots = if damage == 5 { ".x." } else { "." };
        format!("eyJhbGciOiJFZERTQSJ9.{p}{dots}c2ln")
    })
}

/// A stored record: valid, or with a field of the wrong type.
fn stored_like() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            Just(json!(1)),
            Just(json!(1.0)),
            Just(json!(2)),
            Just(json!("1")),
            Just(Value::Null)
        ],
        field_value(),
        field_value(),
        prop::option::of(field_value()),
        prop::option::of(field_value()),
    )
        .prop_map(|(v, rt, at, exp, rat)| {
            let mut m = Map::new();
            m.insert("v".into(), v);
            m.insert("rt".into(), rt);
            m.insert("at".into(), at);
            if let Some(e) = exp {
                m.insert("exp".into(), e);
            }
            if let Some(r) = rat {
                m.insert("rat".into(), r);
            }
            Value::Object(m)
        })
}

// ---- Invariants of a successful parse ----

fn check_token_response(r: &token::TokenResponse) {
    assert!(token::is_token_string(&r.access_token));
    if let Some(rt) = &r.refresh_token {
        assert!(token::is_token_string(rt));
    }
    if let Some(e) = r.expires_in {
        assert!(e.is_finite() && e >= 0.0, "{e}");
    }
}

fn check_stored(s: &token::Stored) {
    assert!(token::is_token_string(&s.refresh_token));
    assert!(token::is_token_string(&s.access_token));
    assert!(s.expires_at.map_or(true, f64::is_finite));
    assert!(s.refresh_at.map_or(true, f64::is_finite));
}

// ---- JWT claims: 40 000 cases ----

proptest! {
    #![proptest_config(cfg(15_000))]

    #[test]
    fn jwt_arbitrary_text_never_panics(s in "\\PC{0,200}") {
        if let Ok(c) = decode_claims::<Value>(&s) {
            prop_assert!(c.exp.map_or(true, f64::is_finite));
            prop_assert!(c.iat.map_or(true, f64::is_finite));
        }
    }

    #[test]
    fn jwt_like_text_is_a_value_or_a_typed_error(t in jwt_like()) {
        match decode_claims::<Value>(&t) {
            Ok(c) => {
                prop_assert!(c.exp.map_or(true, f64::is_finite));
                prop_assert!(c.iat.map_or(true, f64::is_finite));
                if let Some(l) = c.lifetime_secs() {
                    prop_assert!(l > 0.0);
                }
            }
            Err(JwtError::NotAJwt | JwtError::BadEncoding | JwtError::NotJson) => {}
        }
    }
}

proptest! {
    #![proptest_config(cfg(10_000))]

    #[test]
    fn jwt_claims_round_trip(exp in prop::option::of(-1_000_000_000_000i64..1_000_000_000_000),
                             iat in prop::option::of(-1_000_000_000_000i64..1_000_000_000_000),
                             extra in token_object(), padded in any::<bool>()) {
        let mut payload = match extra { Value::Object(m) => m, _ => Map::new() };
        payload.remove("exp");
        payload.remove("iat");
        if let Some(e) = exp { payload.insert("exp".into(), json!(e)); }
        if let Some(i) = iat { payload.insert("iat".into(), json!(i)); }
        let bytes = Value::Object(payload).to_string();
        let p = if padded { URL_SAFE.encode(&bytes) } else { URL_SAFE_NO_PAD.encode(&bytes) };
        let c = decode_claims::<Value>(&format!("h.{p}.s")).unwrap();
        prop_assert_eq!(c.exp, exp.map(|n| n as f64));
        prop_assert_eq!(c.iat, iat.map(|n| n as f64));
    }
}

// ---- Token responses: 40 000 cases ----

proptest! {
    #![proptest_config(cfg(12_000))]

    #[test]
    fn token_parse_arbitrary_text_never_panics(s in "\\PC{0,200}") {
        if let Ok(r) = token::parse::<Value>(&s) {
            check_token_response(&r);
        }
    }

    #[test]
    fn token_parse_random_objects(j in prop_oneof![4 => token_object(), 1 => any_json()]) {
        let text = j.to_string();
        match token::parse::<Value>(&text) {
            Ok(r) => {
                check_token_response(&r);
                // What it read is what the object holds, in one naming style or the other.
                let a = j.get("access_token").and_then(Value::as_str)
                    .or_else(|| j.get("accessToken").and_then(Value::as_str));
                prop_assert_eq!(Some(r.access_token.as_str()), a);
            }
            Err(e) => {
                prop_assert!(!e.message().is_empty());
                prop_assert!(e != TokenError::TooLarge);
                if !j.is_object() {
                    prop_assert_eq!(e, TokenError::NotObject);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(cfg(10_000))]

    #[test]
    fn token_parse_accepts_every_well_formed_response(
        at in token_string(), rt in prop::option::of(token_string()),
        exp in prop::option::of(0u32..10_000_000), camel in any::<bool>(),
        tt in prop::option::of(prop_oneof![Just("Bearer"), Just("bearer"), Just("BEARER")]),
    ) {
        let k = |snake: &'static str, camel_name: &'static str| if camel { camel_name } else { snake };
        let mut m = Map::new();
        m.insert(k("access_token", "accessToken").into(), json!(at));
        if let Some(rt) = &rt { m.insert(k("refresh_token", "refreshToken").into(), json!(rt)); }
        if let Some(e) = exp { m.insert(k("expires_in", "expiresIn").into(), json!(e)); }
        if let Some(t) = tt { m.insert(k("token_type", "tokenType").into(), json!(t)); }
        let r = token::parse::<Value>(&Value::Object(m).to_string()).unwrap();
        prop_assert!(token::check_type(&r, false).is_ok());
        prop_assert!(token::check_type(&r, true).is_err(), "a bearer answer with DPoP on");
        prop_assert_eq!(r.access_token, at);
        prop_assert_eq!(r.refresh_token, rt);
        prop_assert_eq!(r.expires_in, exp.map(f64::from));
    }
}

#[test]
fn token_parse_refuses_oversized_bodies_without_parsing() {
    // The server's 10 MB fault body, and one byte over the limit of an otherwise valid body.
    let huge = format!(r#"{{"access_token":"{}"}}"#, "a".repeat(10 * 1024 * 1024));
    assert_eq!(
        token::parse::<Value>(&huge).unwrap_err(),
        TokenError::TooLarge
    );
    let pad = MAX_RESPONSE_BYTES - r#"{"access_token":"x","p":""}"#.len();
    let exact = format!(r#"{{"access_token":"x","p":"{}"}}"#, " ".repeat(pad));
    assert_eq!(exact.len(), MAX_RESPONSE_BYTES);
    assert!(token::parse::<Value>(&exact).is_ok());
    let over = format!(r#"{{"access_token":"x","p":"{}"}}"#, " ".repeat(pad + 1));
    assert_eq!(
        token::parse::<Value>(&over).unwrap_err(),
        TokenError::TooLarge
    );
}

// ---- Stored records: 10 000 cases ----

proptest! {
    #![proptest_config(cfg(5_000))]

    #[test]
    fn stored_arbitrary_text_never_panics(s in "\\PC{0,120}") {
        if let Some(st) = token::parse_stored::<Value>(&s) {
            check_stored(&st);
        }
    }

    #[test]
    fn stored_records_are_complete_or_nothing(j in prop_oneof![4 => stored_like(), 1 => any_json()]) {
        match token::parse_stored::<Value>(&j.to_string()) {
            Some(s) => {
                check_stored(&s);
                prop_assert_eq!(j["v"].as_f64(), Some(1.0));
                prop_assert_eq!(j["rt"].as_str(), Some(s.refresh_token.as_str()));
                prop_assert_eq!(j["at"].as_str(), Some(s.access_token.as_str()));
            }
            None => {
                let complete = j.is_object()
                    && j["v"].as_f64() == Some(1.0)
                    && j["rt"].as_str().is_some_and(token::is_token_string)
                    && j["at"].as_str().is_some_and(token::is_token_string);
                prop_assert!(!complete, "a complete record was refused: {}", j);
            }
        }
    }
}

// ---- Policy: 22 000 cases ----

fn claims() -> impl Strategy<Value = Option<rotafetch::jwt::Claims>> {
    let t = prop_oneof![
        4 => (0.0f64..4e9).prop_map(Some),
        1 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Some),
        2 => Just(None),
    ];
    prop::option::of((t.clone(), t).prop_map(|(exp, iat)| rotafetch::jwt::Claims { exp, iat }))
}

proptest! {
    #![proptest_config(cfg(8_000))]

    #[test]
    fn schedule_refreshes_before_expiry(now in 0.0f64..1e13, c in claims(),
                                        expires_in in prop::option::of(prop_oneof![0.0f64..1e6, Just(0.0), Just(2.0)]),
                                        leeway in prop_oneof![0.0f64..1e6, Just(10_000.0), Just(0.0)]) {
        let s = policy::schedule(now, c, expires_in, leeway);
        prop_assert_eq!(s.expires_at.is_some(), s.refresh_at.is_some());
        if let (Some(e), Some(r)) = (s.expires_at, s.refresh_at) {
            prop_assert!(r <= e, "refresh_at {} > expires_at {}", r, e);
            prop_assert!(!r.is_nan() && !e.is_nan());
            let lifetime = c.and_then(|c| c.lifetime_secs());
            if (lifetime.is_some() || expires_in.is_some()) && e.is_finite() {
                // Counted from arrival, and the leeway is at most half the lifetime.
                prop_assert!(e >= now - 1.0);
                prop_assert!(r >= now - 1.0, "refresh_at {} before now {}", r, now);
                prop_assert!(e - r <= (e - now) / 2.0 + 1.0);
                if let Some(ei) = expires_in {
                    prop_assert!(e <= now + ei * 1000.0 + 1.0);
                }
            }
        } else {
            prop_assert!(c.map_or(true, |c| c.exp.is_none()) && expires_in.is_none());
        }
    }

    #[test]
    fn refresh_before_send_respects_the_minimum_interval(now in 0.0f64..1e13, refresh_at in prop::option::of(0.0f64..1e13),
                                                         since in prop::option::of(0.0f64..5_000.0), min in 0u32..5_000) {
        let last = since.map(|s| now - s);
        let yes = policy::refresh_before_send(now, refresh_at, last, f64::from(min));
        if yes {
            prop_assert!(refresh_at.is_some_and(|at| now >= at));
            prop_assert!(since.map_or(true, |s| s >= f64::from(min)));
        } else {
            prop_assert!(refresh_at.map_or(true, |at| now < at) || since.is_some_and(|s| s < f64::from(min)));
        }
    }
}

fn seen() -> impl Strategy<Value = Seen401> {
    (
        any::<[bool; 6]>(),
        0.0f64..1e13,
        prop::option::of(0.0f64..5_000.0),
        0u32..5_000,
        prop::option::weighted(0.2, any::<bool>()),
    )
        .prop_map(|(b, now, since, min, challenge)| Seen401 {
            nonce_challenge: challenge,
            was_replay: b[0],
            carried_token: b[1],
            carried_is_current: b[2],
            have_access: b[3],
            have_refresh: b[4],
            refresh_in_flight: b[5],
            now,
            refreshed_at: since.map(|s| now - s),
            min_interval_ms: f64::from(min),
        })
}

proptest! {
    #![proptest_config(cfg(5_000))]

    #[test]
    fn a_replay_or_an_anonymous_request_never_refreshes(s in seen()) {
        let d = policy::on_401(s);
        // A DPoP nonce challenge is answered once, a second one returned: never a refresh.
        match s.nonce_challenge {
            Some(answer) => prop_assert_eq!(d, if answer { On401::ReplayWithNonce } else { On401::Return }),
            None => prop_assert!(d != On401::ReplayWithNonce),
        }
        if s.nonce_challenge.is_none() && (s.was_replay || !s.carried_token || !s.have_access) {
            prop_assert_eq!(d, On401::Return);
        }
        if d == On401::RefreshThenReplay && !s.refresh_in_flight {
            // A new refresh: only with a refresh token and not within the minimum interval.
            prop_assert!(s.have_refresh && s.carried_is_current);
            let since = s.refreshed_at.map(|t| s.now - t);
            prop_assert!(since.map_or(true, |d| d >= s.min_interval_ms));
        }
    }
}

proptest! {
    #![proptest_config(cfg(1_000))]

    /// A server that 401s every call, even with a fresh token: each call makes at most one
    /// refresh and one replay, and refreshes are at least `min` ms apart.
    #[test]
    fn a_server_that_always_401s_cannot_cause_a_refresh_storm(
        gaps in prop::collection::vec(0.0f64..400.0, 1..200), min in 1u32..3_000, refresh_ms in 0.0f64..300.0,
    ) {
        let min = f64::from(min);
        let mut now = 1e12;
        let start = now;
        let mut last_refresh: Option<f64> = None;
        let mut refreshes = 0u32;
        for gap in gaps {
            now += gap;
            let mut sends = 1;
            let mut replay = false;
            loop {
                let d = policy::on_401(Seen401 {
                    nonce_challenge: None, was_replay: replay, carried_token: true, carried_is_current: true,
                    have_access: true, have_refresh: true, refresh_in_flight: false,
                    now, refreshed_at: last_refresh, min_interval_ms: min,
                });
                match d {
                    On401::Return => break,
                    On401::ReplayWithNonce => prop_assert!(false, "no nonce challenge here"),
                    On401::ReplayWithCurrent => { replay = true; sends += 1; }
                    On401::RefreshThenReplay => {
                        refreshes += 1;
                        now += refresh_ms;
                        last_refresh = Some(now);
                        replay = true;
                        sends += 1;
                    }
                }
                prop_assert!(sends <= 2, "more than one replay");
            }
        }
        let bound = 1 + ((now - start) / min) as u32;
        prop_assert!(refreshes <= bound, "{} refreshes in {} ms (min {})", refreshes, now - start, min);
    }

    /// A 2 s token with the default leeway: used for 1 s, then one refresh; never a loop.
    #[test]
    fn a_two_second_token_with_the_default_leeway_does_not_loop(now in 1e12f64..2e12, calls in 1usize..400) {
        let jwt_claims = rotafetch::jwt::Claims { iat: Some(1000.0), exp: Some(1002.0) };
        let s = policy::schedule(now, Some(jwt_claims), Some(2.0), policy::DEFAULT_LEEWAY_MS);
        prop_assert_eq!(s.refresh_at, Some(now + 1000.0));
        let mut t = now;
        let mut refresh_at = s.refresh_at;
        let mut last = None;
        let mut refreshes = 0;
        for _ in 0..calls {
            t += 10.0;
            if policy::refresh_before_send(t, refresh_at, last, policy::DEFAULT_MIN_REFRESH_INTERVAL_MS) {
                refreshes += 1;
                last = Some(t);
                refresh_at = policy::schedule(t, Some(jwt_claims), Some(2.0), policy::DEFAULT_LEEWAY_MS).refresh_at;
            }
        }
        // One refresh per second of simulated time at most (10 ms per call).
        prop_assert!(refreshes <= 1 + (calls as u32 * 10) / 1000, "{} refreshes", refreshes);
    }
}

// ---- Allow-list: 3 000 cases ----

proptest! {
    #![proptest_config(cfg(3_000))]

    #[test]
    fn other_ports_schemes_and_subdomains_are_other_origins(host in "[a-z][a-z0-9]{0,10}(\\.[a-z]{2,5}){0,2}",
                                                            port in prop::option::of(1u16..65535),
                                                            https in any::<bool>(), sub in "[a-z]{1,6}") {
        let scheme = if https { "https" } else { "http" };
        let hp = match port { Some(p) => format!("{host}:{p}"), None => host.clone() };
        let origin = format!("{scheme}://{hp}");
        let list = policy::AllowList::new([origin.clone()]);
        prop_assert!(list.allows(&origin));
        let other_scheme = if https { "http" } else { "https" };
        let other_port = format!("{scheme}://{host}:{}", port.map_or(1, |p| if p == 65534 { 1 } else { p + 1 }));
        for other in [
            format!("{other_scheme}://{hp}"),
            other_port,
            format!("{scheme}://{sub}.{hp}"),
            format!("{scheme}://{hp}.{sub}"),
            format!("{origin}/"),
            format!("{scheme}://user@{hp}"),
            origin.to_uppercase(),
            "null".to_string(),
            String::new(),
        ] {
            prop_assert!(!list.allows(&other), "{} allowed for {}", other, origin);
        }
    }
}

proptest! {
    #![proptest_config(cfg(20_000))]

    /// The `WWW-Authenticate` reader behind the DPoP nonce challenge takes any header value
    /// (any Unicode, quotes and commas anywhere) without panicking; and after any other
    /// well-formed challenge, whatever its quoted parameter holds, a DPoP one is found, and
    /// only when it is there.
    #[test]
    fn dpop_www_authenticate_never_panics(s in "\\PC{0,120}", scheme in "(Bearer|Basic|Foo)",
                                          value in "[A-Za-z ,=]{0,30}") {
        let _ = rotafetch::dpop::resource_wants_nonce(401, Some(&s));
        let other = format!("{scheme} realm=\"{value}\", error=\"use_dpop_nonce\"");
        prop_assert!(!rotafetch::dpop::resource_wants_nonce(401, Some(&other)));
        let both = format!("{other}, DPoP algs=\"ES256\", error=\"use_dpop_nonce\"");
        prop_assert!(rotafetch::dpop::resource_wants_nonce(401, Some(&both)));
    }
}
