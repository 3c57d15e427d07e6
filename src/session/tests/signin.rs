//! The session's sign-in answers: a login or code exchange starting a session, its ID token, another
//! tab's new session, and DPoP's rules on token responses.

use super::*;

#[test]
fn a_login_answer_starts_a_session_or_fails_with_login_failed() {
    let (mut s, _) = Session::load::<J>(settings(), None);
    let generation = s.generation();
    let record = s
        .logged_in::<J>(200, Some(&tokens("at1", Some("rt1"))), false, NOW)
        .unwrap();
    assert_eq!(token::parse_stored::<J>(&record).as_ref(), s.current());
    assert_eq!(
        s.current().unwrap().refreshed_at,
        None,
        "handed over, not refreshed"
    );
    assert_ne!(s.generation(), generation);
    let told = AuthEvent::Signin {
        expires_at: Some(NOW + 10_000.0),
        source: Source::ThisTab,
    };
    assert_eq!(s.flush(), Some(told), "told once the lock is released");
    for (status, body, message) in [
        (401, "{\"error\":\"invalid_grant\"}", "refused (HTTP 401)"),
        (0, "", "the request failed (network error or timeout)"),
        (
            200,
            &*tokens("at", None),
            "the token response has no refresh_token",
        ),
    ] {
        let e = s
            .logged_in::<J>(status, Some(body), false, NOW)
            .unwrap_err();
        assert_eq!((e.code(), e.message()), (ErrorCode::LoginFailed, message));
        assert_eq!(e.error(), None, "a login names no OAuth error");
    }
}

#[test]
fn a_sign_ins_exchange_tells_a_transient_failure_from_a_refusal() {
    let (mut s, _) = Session::load::<J>(settings(), None);
    let exchange = |s: &mut Session, status, body: &str| {
        s.logged_in::<J>(status, Some(body), true, NOW).unwrap_err()
    };
    let refused = r#"{"error":"invalid_grant","error_description":"code spent"}"#;
    for (status, body, code, error) in [
        (
            400,
            refused,
            ErrorCode::SigninRejected,
            Some("invalid_grant"),
        ),
        (400, "{\"error\":\"a b\"}", ErrorCode::SigninRejected, None),
        (503, refused, ErrorCode::SigninFailed, Some("invalid_grant")),
        (0, "", ErrorCode::SigninFailed, None),
        (200, "<html>", ErrorCode::SigninRejected, None),
        (200, &*tokens("at", None), ErrorCode::SigninRejected, None),
    ] {
        let e = exchange(&mut s, status, body);
        assert_eq!((e.code(), e.error()), (code, error), "{status} {body}");
    }
    assert!(s.current().is_none() && s.flush().is_none());
}

#[test]
fn a_sign_ins_id_token_is_kept_through_refreshes_unless_a_new_one_comes() {
    let (mut s, _) = Session::load::<J>(settings(), None);
    let mut t: Value = serde_json::from_str(&tokens("at1", Some("rt1"))).unwrap();
    t["id_token"] = json!("id1");
    let record = s
        .logged_in::<J>(200, Some(&t.to_string()), true, NOW)
        .unwrap();
    assert_eq!(s.id_token(), Some("id1"));
    assert_eq!(
        token::parse_stored::<J>(&record)
            .unwrap()
            .id_token
            .as_deref(),
        Some("id1")
    );
    refresh(&mut s, 200, &tokens("at2", Some("rt2")), NOW).unwrap();
    assert_eq!(s.id_token(), Some("id1"));
    t["access_token"] = json!("at3");
    t["id_token"] = json!("id2");
    refresh(&mut s, 200, &t.to_string(), NOW).unwrap();
    assert_eq!(s.id_token(), Some("id2"));
    s.sign_out();
    assert_eq!(s.id_token(), None);
}

#[test]
fn another_tabs_new_session_is_a_sign_in_here() {
    // Another tab's sign-in, a second later; then its rotation.
    let mut fresh = signed_in("at2", "rt2").current.unwrap();
    fresh.signed_in_at = Some(NOW + 1_000.0);
    let mut rotated = fresh.clone();
    (rotated.access_token, rotated.refresh_token) = ("at3".into(), "rt3".into());
    rotated.refreshed_at = Some(NOW + 2_000.0);
    let (fresh, rotated) = (J::record(&fresh), J::record(&rotated));
    let signin = |e: Option<AuthEvent>| {
        matches!(
            e,
            Some(AuthEvent::Signin {
                source: Source::OtherTab,
                ..
            })
        )
    };
    // Signed in here already: a session no refresh made is another tab's sign-in.
    let mut s = signed_in("at1", "rt1");
    assert!(signin(s.adopt::<J>(Some(&fresh))));
    // Its rotation, next, is a refresh.
    assert!(matches!(
        s.adopt::<J>(Some(&rotated)),
        Some(AuthEvent::Refresh { .. })
    ));
    // Signed out here, or signed in to an older session: a sign-in, rotated already or not.
    let (mut s, _) = Session::load::<J>(settings(), None);
    assert!(signin(s.adopt::<J>(Some(&rotated))));
    let mut s = signed_in("at1", "rt1");
    assert!(signin(s.adopt::<J>(Some(&rotated))));
    // Under the lock, from the hand-over store: the same, told at flush.
    let mut s = signed_in("at1", "rt1");
    let generation = s.generation();
    s.sync::<J>(Some(Some(&fresh)), generation).unwrap();
    assert!(signin(s.flush()));
}

#[test]
fn with_dpop_a_bearer_answer_is_refused_and_nonces_are_kept_per_origin() {
    let mut s = signed_in("at1", "rt1");
    s.settings.dpop = true;
    let e = refresh(&mut s, 200, &tokens("at2", Some("rt2")), NOW).unwrap_err();
    assert!(
        e.message().starts_with("refresh response unusable"),
        "{}",
        e.message()
    );
    assert_eq!(s.current().unwrap().refresh_token, "rt1");
    #[cfg(feature = "dpop")]
    {
        s.took("https://api.example/a?x", Some("n1"));
        s.took("https://other.example/", Some("n2"));
        assert_eq!(
            s.proof_for("https://api.example/b?q#f"),
            ("https://api.example/b", Some("n1"))
        );
        assert_eq!(
            s.proof_for("https://third.example/"),
            ("https://third.example/", None)
        );
    }
}
