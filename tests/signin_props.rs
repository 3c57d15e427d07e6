//! Property tests of sign-in's pure decisions (native only, `src/signin/`): whatever the
//! input, the callback, discovery and ID-token readers return a value or a typed refusal and
//! never panic; a callback is read only when every rule holds, and decided in RFC 9207's order;
//! a return path never leaves the page's origin; a discovery document is used only for its
//! exact issuer and secure endpoints; an ID token passes only with every claim right.
//!
//! About 60 000 cases; a few seconds in a debug build.
#![cfg(not(target_arch = "wasm32"))]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use proptest::prelude::*;
use rotafetch::signin::callback::{self, Next, Param, Refused, Stored};
use rotafetch::signin::discovery;
use rotafetch::signin::id_token::{self, Expected, IdTokenError};
use rotafetch::signin::transaction::{expired, return_path};
use serde_json::{json, Map, Value};

fn cfg(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        max_shrink_iters: 2_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A response parameter: absent, twice, or once with a value that is sometimes a valid state.
/// (`None`: absent; `Some(None)`: twice.)
fn param() -> impl Strategy<Value = Option<Option<String>>> {
    prop_oneof![
        2 => Just(None),
        1 => Just(Some(None)),
        2 => "\\PC{0,30}".prop_map(|s| Some(Some(s))),
        2 => "[A-Za-z0-9_-]{22}".prop_map(|s| Some(Some(s))),
        1 => Just(Some(Some("https://id.example.com".into()))),
    ]
}

fn as_param(p: &Option<Option<String>>) -> Param<'_> {
    match p {
        None => Param::Absent,
        Some(None) => Param::Twice,
        Some(Some(v)) => Param::Once(v),
    }
}

const ISSUER: &str = "https://id.example.com";

proptest! {
    #![proptest_config(cfg(20_000))]

    #[test]
    fn a_callback_is_read_only_when_every_rule_holds(s in param(), c in param(), i in param(), e in param()) {
        let got = callback::read(as_param(&s), as_param(&c), as_param(&i), as_param(&e));
        let once = |p: &Option<Option<String>>| p.clone().flatten();
        let twice = [&s, &c, &i, &e].iter().any(|p| **p == Some(None));
        let none = [&s, &c, &e].iter().all(|p| p.is_none());
        match got {
            Err(Refused::Malformed) => prop_assert!(twice || !none),
            Err(other) => prop_assert!(false, "read refuses only as malformed: {:?}", other),
            Ok(None) => prop_assert!(none && !twice),
            Ok(Some(cb)) => {
                prop_assert!(!twice);
                prop_assert_eq!(Some(cb.state.to_string()), once(&s));
                prop_assert!(cb.state.len() == 22);
                prop_assert_eq!(cb.code.map(String::from), once(&c));
                prop_assert_eq!(cb.iss.map(String::from), once(&i));
                prop_assert!(cb.error.is_some() || once(&c).is_some());
            }
        }
    }

    #[test]
    fn only_the_issuer_passes_rfc9207(
        iss in prop::option::of(prop_oneof![Just(ISSUER.to_string()), "\\PC{0,30}"]),
        required in any::<bool>(),
        error in any::<bool>(),
        created in 0u32..3000, now in 0u32..3000, done in any::<bool>(), known in any::<bool>(),
    ) {
        let p = |v: Option<&'static str>| v.map_or(Param::Absent, Param::Once);
        let iss_owned = iss.clone();
        let pi = iss_owned.as_deref().map_or(Param::Absent, Param::Once);
        let cb = callback::read(p(Some("AAAAAAAAAAAAAAAAAAAAAA")), p((!error).then_some("C")),
            pi, p(error.then_some("access_denied"))).unwrap().unwrap();
        let tx = known.then_some(Stored { created, done });
        let got = callback::check(&cb, tx, ISSUER, required, now);
        let iss_ok = match iss.as_deref() { Some(i) => i == ISSUER, None => !required };
        let want = if !known { Err(Refused::NoTransaction) }
            else if done { Ok(Next::Done) }
            else if expired(created, now) { Err(Refused::Expired) }
            else if !iss_ok { Err(Refused::IssMismatch) }
            else if error { Err(Refused::Provider) }
            else { Ok(Next::Exchange("C")) };
        prop_assert_eq!(got, want);
    }

    #[test]
    fn a_return_path_never_leaves_the_origin(path in "[/?#a-z0-9.@:%-]{0,20}", host in "[a-z.@:0-9]{1,20}") {
        let href = format!("https://{host}{path}");
        if let Some(p) = return_path(&href, "https://app.example") {
            prop_assert!(p.starts_with('/'));
            prop_assert_eq!(format!("https://app.example{p}"), href);
        }
    }
}

/// A discovery document: mostly well-formed, with random issuers and endpoint values.
fn discovery_doc() -> impl Strategy<Value = Value> {
    let url = prop_oneof![
        3 => Just(json!("https://id.example.com/x")),
        1 => Just(json!("http://id.example.com/x")),
        1 => Just(json!("http://127.0.0.1:9/x")),
        1 => Just(json!(7)),
        1 => Just(Value::Null),
    ];
    let names = [
        "authorization_endpoint",
        "token_endpoint",
        "pushed_authorization_request_endpoint",
        "revocation_endpoint",
        "end_session_endpoint",
    ];
    (
        prop_oneof![3 => Just(json!("https://id.example.com")), 1 => "\\PC{0,20}".prop_map(Value::String), 1 => Just(json!(1))],
        prop::collection::vec(prop::option::of(url), 5),
        prop::option::of(prop_oneof![Just(json!(true)), Just(json!(false)), Just(json!("true"))]),
        prop::option::of(prop_oneof![Just(json!(["S256"])), Just(json!(["plain"])), Just(json!("S256")), Just(json!([1]))]),
    )
        .prop_map(move |(issuer, urls, iss_param, methods)| {
            let mut m = Map::new();
            m.insert("issuer".into(), issuer);
            for (name, u) in names.iter().zip(urls) {
                if let Some(u) = u {
                    m.insert((*name).into(), u);
                }
            }
            if let Some(v) = iss_param {
                m.insert("authorization_response_iss_parameter_supported".into(), v);
            }
            if let Some(v) = methods {
                m.insert("code_challenge_methods_supported".into(), v);
            }
            Value::Object(m)
        })
}

proptest! {
    #![proptest_config(cfg(5_000))]

    #[test]
    fn discovery_arbitrary_text_never_panics(s in "\\PC{0,200}") {
        let _ = discovery::parse::<Value>(&s, "https://id.example.com");
    }

    #[test]
    fn a_document_is_used_only_for_its_exact_issuer_and_secure_endpoints(d in discovery_doc()) {
        let issuer = "https://id.example.com";
        let got = discovery::parse::<Value>(&d.to_string(), issuer);
        let secure = |name: &str| match d.get(name).and_then(Value::as_str) {
            Some(u) => u.starts_with("https://") || u.starts_with("http://127.0.0.1:"),
            None => true,
        };
        let all_secure = d.as_object().unwrap().iter()
            .filter(|(k, _)| k.ends_with("_endpoint"))
            .all(|(k, _)| secure(k));
        let required = ["authorization_endpoint", "token_endpoint"]
            .iter().all(|n| d.get(*n).and_then(Value::as_str).is_some());
        let s256 = match d.get("code_challenge_methods_supported") {
            None => true,
            Some(Value::String(s)) => s == "S256",
            Some(Value::Array(a)) => a.contains(&json!("S256")),
            Some(_) => true, // not a list: not read
        };
        let ok = d["issuer"] == json!(issuer) && all_secure && required && s256;
        prop_assert_eq!(got.is_ok(), ok, "{}: {:?}", d, got);
        if let Ok(m) = got {
            prop_assert_eq!(&m, &d);
        }
    }
}

/// ID-token claims: each right, wrong, of the wrong type or missing.
fn id_claims() -> impl Strategy<Value = Value> {
    let pick = |right: Value, wrong: Value| prop_oneof![4 => Just(Some(right)), 1 => Just(Some(wrong)), 1 => Just(Some(json!(12))), 1 => Just(None)];
    (
        pick(json!("https://id.example.com"), json!("https://evil.example")),
        pick(json!("user"), json!("")),
        prop_oneof![3 => Just(Some(json!("spa"))), 1 => Just(Some(json!(["spa", "api"]))), 1 => Just(Some(json!(["api"]))), 1 => Just(None)],
        prop_oneof![3 => Just(None), 1 => Just(Some(json!("spa"))), 1 => Just(Some(json!("api")))],
        pick(json!("n"), json!("m")),
        pick(json!(2000.0), json!(1000.0)),
        pick(json!(1400.0), json!(1900.0)),
    )
        .prop_map(|(iss, sub, aud, azp, nonce, exp, iat)| {
            let mut m = Map::new();
            for (k, v) in [("iss", iss), ("sub", sub), ("aud", aud), ("azp", azp), ("nonce", nonce), ("exp", exp), ("iat", iat)] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            Value::Object(m)
        })
}

proptest! {
    #![proptest_config(cfg(5_000))]

    #[test]
    fn id_token_arbitrary_text_never_panics(s in "\\PC{0,200}") {
        let want = Expected { issuer: "i", client_id: "c", nonce: Some("n"), now_secs: 0.0 };
        let _ = id_token::check::<Value>(&s, &want);
    }

    #[test]
    fn an_id_token_passes_only_with_every_claim_right(c in id_claims()) {
        let t = format!("eyJhbGciOiJSUzI1NiJ9.{}.c2ln", URL_SAFE_NO_PAD.encode(c.to_string()));
        let want = Expected { issuer: "https://id.example.com", client_id: "spa", nonce: Some("n"), now_secs: 1500.0 };
        let got = id_token::check::<Value>(&t, &want);
        let is = |k: &str, v: Value| c.get(k) == Some(&v);
        let aud_ok = is("aud", json!("spa")) || is("aud", json!(["spa", "api"]));
        let azp_ok = match c.get("azp") {
            Some(a) => a == "spa",
            None => !is("aud", json!(["spa", "api"])),
        };
        let sub_ok = c.get("sub").and_then(Value::as_str).is_some_and(|s| !s.is_empty());
        let num = |k: &str| c.get(k).and_then(Value::as_f64);
        let exp_ok = num("exp").is_some_and(|e| 1500.0 < e + 300.0);
        let iat_ok = num("iat").is_some_and(|i| i <= 1800.0);
        let ok = is("iss", json!("https://id.example.com")) && sub_ok && aud_ok && azp_ok
            && is("nonce", json!("n")) && exp_ok && iat_ok;
        prop_assert_eq!(got.is_ok(), ok, "{}: {:?}", c, got);
        if !ok {
            prop_assert!(got.unwrap_err() != IdTokenError::Unreadable);
        }
    }
}
