//! Property tests of sign-in's pure decisions (native only, `src/signin/`): whatever the
//! input, the callback, discovery, ID-token and transaction readers return a value or a typed
//! refusal and never panic; a callback reads back what a provider wrote into it; the cleaned
//! address keeps every other parameter and the fragment byte for byte; a discovery document
//! is used only for its exact issuer; an ID token passes only with every claim right.
//!
//! About 40 000 cases; a few seconds in a debug build.
#![cfg(not(target_arch = "wasm32"))]

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use proptest::prelude::*;
use rotafetch::signin::callback::{self, Next, Refused, RESPONSE_PARAMS};
use rotafetch::signin::id_token::{self, Expected, IdTokenError};
use rotafetch::signin::transaction::Transaction;
use rotafetch::signin::{b64url, discovery};
use serde_json::{json, Map, Value};

fn cfg(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        max_shrink_iters: 2_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// `application/x-www-form-urlencoded` as a provider writes it (the URL standard's set).
fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A state as the SDK makes them.
fn state() -> impl Strategy<Value = String> {
    prop::array::uniform16(any::<u8>()).prop_map(|b| b64url(&b))
}

/// Query pieces that are not part of an authorization response (names and values as written,
/// percent escapes and `+` included), some bare, some with an empty value.
fn other_piece() -> impl Strategy<Value = String> {
    let name = "[a-z_][a-z0-9_.%+]{0,8}".prop_filter("not a response parameter", |n| {
        !RESPONSE_PARAMS.contains(&n.as_str())
    });
    (name, prop::option::of("[A-Za-z0-9%+=~!$'()*,;:@/?-]{0,12}")).prop_map(|(n, v)| match v {
        Some(v) => format!("{n}={v}"),
        None => n,
    })
}

proptest! {
    #![proptest_config(cfg(10_000))]

    #[test]
    fn callback_arbitrary_urls_never_panic(s in "\\PC{0,200}") {
        let _ = callback::parse(&s);
        let _ = callback::cleaned(&s);
    }

    #[test]
    fn a_callback_reads_back_what_the_provider_wrote(
        state in state(),
        code in "\\PC{1,40}",
        iss in prop::option::of("\\PC{1,40}"),
        others in prop::collection::vec(other_piece(), 0..4),
        hash in prop::option::of("#[^#]{0,20}"),
    ) {
        let mut pieces: Vec<String> = others.clone();
        pieces.push(format!("code={}", form_encode(&code)));
        pieces.insert(pieces.len() / 2, format!("state={state}"));
        if let Some(i) = &iss {
            pieces.push(format!("iss={}", form_encode(i)));
        }
        let hash = hash.unwrap_or_default();
        let href = format!("https://app.example/cb?{}{hash}", pieces.join("&"));
        let c = callback::parse(&href).unwrap().unwrap();
        prop_assert_eq!(&c.state, &state);
        prop_assert_eq!(c.code.as_deref(), Some(code.as_str()));
        prop_assert_eq!(c.iss, iss);
        prop_assert_eq!(c.error, None);
        // The address bar keeps every other piece, in order, as written, and the fragment.
        let clean = callback::cleaned(&href);
        let query = if others.is_empty() { String::new() } else { format!("?{}", others.join("&")) };
        prop_assert_eq!(&clean, &format!("https://app.example/cb{query}{hash}"));
        prop_assert_eq!(callback::parse(&clean), Ok(None));
    }

    #[test]
    fn a_parameter_twice_is_refused(state in state(), name in prop_oneof![Just("code"), Just("state"), Just("iss"), Just("error")]) {
        let href = format!("https://a.example/?code=c&state={state}&error=e&iss=i&{name}=y");
        prop_assert_eq!(callback::parse(&href), Err(Refused::Malformed));
    }

    #[test]
    fn only_the_issuer_passes_rfc9207(
        state in state(),
        iss in prop::option::of(prop_oneof![Just("https://id.example.com".to_string()), "\\PC{0,30}"]),
        required in any::<bool>(),
    ) {
        let mut href = format!("https://a.example/?code=C&state={state}");
        if let Some(i) = &iss {
            href.push_str(&format!("&iss={}", form_encode(i)));
        }
        let c = callback::parse(&href).unwrap().unwrap();
        let tx = Transaction {
            created: 1000, popup: false, done: false, verifier: "v".into(), nonce: None,
            redirect_uri: "https://a.example/".into(), return_to: "/".into(),
        };
        let got = callback::check(&c, Some(&tx), "https://id.example.com", required, 1000);
        let ok = match iss.as_deref() {
            Some(i) => i == "https://id.example.com",
            None => !required,
        };
        prop_assert_eq!(got, if ok { Ok(Next::Exchange("C")) } else { Err(Refused::IssMismatch) });
    }
}

proptest! {
    #![proptest_config(cfg(3_000))]

    #[test]
    fn b64url_is_rfc4648_url_safe_without_padding(bytes in prop::collection::vec(any::<u8>(), 0..100)) {
        let s = b64url(&bytes);
        prop_assert_eq!(&s, &URL_SAFE_NO_PAD.encode(&bytes));
        let standard = STANDARD.encode(&bytes).replace('+', "-").replace('/', "_");
        prop_assert_eq!(s.as_str(), standard.trim_end_matches('='));
    }

    #[test]
    fn transaction_records_round_trip(
        created in any::<u32>(), popup in any::<bool>(), done in any::<bool>(),
        verifier in "[A-Za-z0-9_-]{1,64}", nonce in prop::option::of("[A-Za-z0-9_-]{1,30}"),
        redirect_uri in "[^\n]{0,40}", return_to in "[^\n]{0,40}",
    ) {
        let t = Transaction { created, popup, done, verifier, nonce, redirect_uri, return_to };
        prop_assert_eq!(Transaction::parse(&t.record()), Some(t));
    }

    #[test]
    fn transaction_arbitrary_text_never_panics(s in "\\PC{0,120}", lines in prop::collection::vec("[^\n]{0,12}", 0..9)) {
        let _ = Transaction::parse(&s);
        let _ = Transaction::parse(&lines.join("\n"));
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
        let _ = discovery::cached::<Value>(&s, "https://id.example.com", 5);
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
            Some(Value::Array(a)) if a.iter().all(Value::is_string) => a.contains(&json!("S256")),
            Some(_) => true, // not a list of strings: not read
        };
        let ok = d["issuer"] == json!(issuer) && all_secure && required && s256;
        prop_assert_eq!(got.is_ok(), ok, "{}: {:?}", d, got);
        if let Ok(m) = got {
            prop_assert_eq!(m.iss_parameter, d.get("authorization_response_iss_parameter_supported") == Some(&json!(true)));
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
