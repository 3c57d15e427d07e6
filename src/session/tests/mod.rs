//! Unit tests of the session state machine (natively; tests/tabs.rs runs it as tabs).

use super::*;
use crate::event::{AuthEvent, SignoutReason, Source};
use serde_json::{json, Value};

/// Sign-in's answers (login, the code exchange, another tab's new session) and DPoP's.
mod signin;

type J = Value;
const NOW: f64 = 1_000_000.0;
const API: &str = "https://api.example/me";

fn settings() -> Settings {
    Settings {
        allow: AllowList::new(["https://api.example".into()]),
        leeway_ms: 5_000.0,
        min_interval_ms: 1_000.0,
        strict_redirects: false,
        dpop: false,
    }
}

/// A token response: `access`, `refresh` (rotated) and a 10 s lifetime.
fn tokens(access: &str, refresh: Option<&str>) -> String {
    let mut t = json!({"access_token": access, "expires_in": 10, "token_type": "Bearer"});
    if let Some(r) = refresh {
        t["refresh_token"] = json!(r);
    }
    t.to_string()
}

fn signed_in(access: &str, refresh: &str) -> Session {
    let (mut s, corrupt) = Session::load::<J>(settings(), None);
    assert!(!corrupt);
    let t = token::parse::<J>(&tokens(access, Some(refresh))).unwrap();
    s.sign_in::<J>(t, NOW).unwrap();
    s
}

/// Runs a whole refresh in one tab: `begin_refresh` … `flush`.
fn refresh(
    s: &mut Session,
    status: u16,
    body: &str,
    now: f64,
) -> Result<Option<String>, AuthError> {
    let failed = s.access().map(String::from);
    let Some(_) = s.begin_refresh(failed.as_deref(), now)? else {
        return Ok(None);
    };
    let record = s.answer::<J>(status, Some(body), now)?.map(String::from);
    match s.commit() {
        Some(Outcome::Rejected(e)) => Err(e),
        _ => Ok(record),
    }
}

#[test]
fn a_stored_record_loads_and_corrupt_data_reads_as_signed_out() {
    let s = signed_in("at1", "rt1");
    let record = J::record(s.current().unwrap());
    let (loaded, corrupt) = Session::load::<J>(settings(), Some(&record));
    assert!(!corrupt);
    assert_eq!(loaded.current(), s.current());
    for junk in ["", "{", "null", "{\"v\":2}", "another app's value"] {
        let (s, corrupt) = Session::load::<J>(settings(), Some(junk));
        assert!(corrupt && s.current().is_none(), "{junk}");
    }
}

#[test]
fn start_sends_ours_with_the_token_and_refreshes_first_when_due() {
    let mut s = signed_in("at1", "rt1");
    let strict = Start::Strict as u8;
    assert_eq!(s.start(API, false, true, NOW), Start::Send as u8);
    assert_eq!(
        s.start(API, false, true, NOW + 5_000.0),
        Start::RefreshFirst as u8
    );
    assert_eq!(
        s.start("https://other.example/", false, true, NOW),
        Start::Pass as u8
    );
    assert_eq!(s.start(API, true, true, NOW), Start::Pass as u8);
    s.settings.strict_redirects = true;
    assert_eq!(s.start(API, false, true, NOW), Start::Send as u8 | strict);
    assert_eq!(
        s.start(API, false, false, NOW),
        Start::Send as u8,
        "a call's own mode stays"
    );
    let (signed_out, _) = Session::load::<J>(settings(), None);
    assert_eq!(signed_out.start(API, false, true, NOW), Start::Send as u8);
}

#[test]
fn a_refresh_rotates_commits_and_tells_once_the_lock_is_released() {
    let mut s = signed_in("at1", "rt1");
    let later = NOW + 6_000.0;
    assert_eq!(s.begin_refresh(Some("at1"), later).unwrap(), Some("rt1"));
    let record = s
        .answer::<J>(200, Some(&tokens("at2", Some("rt2"))), later)
        .unwrap();
    let record = record.unwrap().to_owned();
    assert_eq!(s.access(), Some("at1"), "switched only at commit");
    match s.commit() {
        Some(Outcome::Rotated(r)) => assert_eq!(r, record),
        other => panic!("{other:?}"),
    }
    let now = s.current().unwrap();
    assert_eq!(
        (now.access_token.as_str(), now.refresh_token.as_str()),
        ("at2", "rt2")
    );
    assert_eq!(now.refreshed_at, Some(later));
    assert_eq!(token::parse_stored::<J>(&record).as_ref(), Some(now));
    let expires_at = Some(later + 10_000.0);
    let told = AuthEvent::Refresh {
        expires_at,
        source: Source::ThisTab,
    };
    assert_eq!(s.flush(), Some(told));
    assert_eq!(s.flush(), None);
}

#[test]
fn a_server_that_does_not_rotate_keeps_the_refresh_token() {
    let mut s = signed_in("at1", "rt1");
    refresh(&mut s, 200, &tokens("at2", None), NOW).unwrap();
    assert_eq!(s.current().unwrap().refresh_token, "rt1");
    assert_eq!(s.access(), Some("at2"));
}

#[test]
fn a_rejection_signs_out_and_names_the_servers_error() {
    let mut s = signed_in("at1", "rt1");
    let generation = s.generation();
    let body = r#"{"error":"invalid_grant","error_description":"rt1 was reused"}"#;
    let e = refresh(&mut s, 400, body, NOW).unwrap_err();
    assert_eq!(e.code(), ErrorCode::RefreshRejected);
    assert_eq!(
        e.message(),
        "the refresh token was rejected (invalid_grant)"
    );
    assert!(s.current().is_none());
    assert_ne!(s.generation(), generation);
    let told = AuthEvent::Signout {
        reason: SignoutReason::Rejected,
        error: Some("invalid_grant".into()),
    };
    assert_eq!(s.flush(), Some(told));
}

#[test]
fn a_transient_failure_keeps_the_session_and_ends_the_refresh() {
    for (status, message) in [
        (503, "refresh endpoint answered HTTP 503"),
        (0, "refresh request failed (network error or timeout)"),
    ] {
        let mut s = signed_in("at1", "rt1");
        let e = refresh(&mut s, status, "", NOW).unwrap_err();
        assert_eq!((e.code(), e.message()), (ErrorCode::RefreshFailed, message));
        assert_eq!(s.current().unwrap().refresh_token, "rt1");
        // The refresh is over: a late answer belongs to nobody.
        let late = s.answer::<J>(200, Some(&tokens("at2", Some("rt2"))), NOW);
        assert_eq!(late.unwrap_err().code(), ErrorCode::NotAuthenticated);
        assert_eq!(s.flush(), None);
    }
    let mut s = signed_in("at1", "rt1");
    let e = refresh(&mut s, 200, "<html>", NOW).unwrap_err();
    assert_eq!(
        e.message(),
        "refresh response unusable: token response is not JSON"
    );
}

#[test]
fn a_refresh_that_outlives_its_session_changes_nothing() {
    let mut s = signed_in("at1", "rt1");
    s.begin_refresh(Some("at1"), NOW).unwrap();
    assert_eq!(s.sign_out().as_deref(), Some("rt1"));
    let late = s.answer::<J>(200, Some(&tokens("at2", Some("rt2"))), NOW);
    assert_eq!(late.unwrap_err().code(), ErrorCode::NotAuthenticated);
    assert!(s.current().is_none() && s.commit().is_none());
    let told = AuthEvent::Signout {
        reason: SignoutReason::Logout,
        error: None,
    };
    assert_eq!(s.flush(), Some(told));
    // A new sign-in meanwhile is not clobbered either.
    let mut s = signed_in("at1", "rt1");
    s.begin_refresh(Some("at1"), NOW).unwrap();
    let t = token::parse::<J>(&tokens("new", Some("rt-new"))).unwrap();
    s.sign_in::<J>(t, NOW).unwrap();
    assert!(s
        .answer::<J>(200, Some(&tokens("at2", Some("rt2"))), NOW)
        .is_err());
    assert_eq!(s.current().unwrap().refresh_token, "rt-new");
}

#[test]
fn a_refresh_whose_session_ended_before_commit_switches_to_nothing() {
    // Another tab's `logout()` is adopted while the hand-over store is written: the
    // rotation stays there for that logout to spend; this tab stays signed out.
    let mut s = signed_in("at1", "rt1");
    s.begin_refresh(Some("at1"), NOW).unwrap();
    let record = s.answer::<J>(200, Some(&tokens("at2", Some("rt2"))), NOW);
    assert!(record.unwrap().is_some());
    let told = s.adopt::<J>(None);
    assert!(matches!(told, Some(AuthEvent::Signout { .. })));
    assert!(s.commit().is_none(), "nothing to store");
    assert!(s.current().is_none() && s.flush().is_none());
}

#[test]
fn what_is_told_at_once_supersedes_what_waited_for_flush() {
    // `logout()` here, then another tab's sign-in adopted before the logout's end: the
    // listeners end with `signin`, not a late `signout`.
    let mut s = signed_in("at1", "rt1");
    s.sign_out();
    let mut other = signed_in("at2", "rt2").current.unwrap();
    other.signed_in_at = Some(NOW + 1.0);
    let told = s.adopt::<J>(Some(&J::record(&other)));
    assert!(matches!(told, Some(AuthEvent::Signin { .. })));
    assert_eq!(s.flush(), None);
    // Another tab's sign-in taken over under the lock and rotated at once: still `signin`.
    let mut s = signed_in("at1", "rt1");
    let generation = s.generation();
    other.refresh_at = Some(NOW);
    s.sync::<J>(Some(Some(&J::record(&other))), generation)
        .unwrap();
    refresh(&mut s, 200, &tokens("at3", Some("rt3")), NOW).unwrap();
    let told = s.flush();
    assert!(
        matches!(told, Some(AuthEvent::Signin { source: Source::OtherTab, expires_at }) if expires_at == Some(NOW + 10_000.0)),
        "{told:?}"
    );
}

#[test]
fn another_tabs_writes_are_adopted_and_told_at_once() {
    let mut s = signed_in("at1", "rt1");
    let generation = s.generation();
    let mut other = signed_in("at2", "rt2");
    other.current.as_mut().unwrap().refreshed_at = Some(NOW);
    let record = J::record(other.current().unwrap());
    let told = s.adopt::<J>(Some(&record));
    let expires_at = other.current().unwrap().expires_at;
    assert_eq!(
        told,
        Some(AuthEvent::Refresh {
            expires_at,
            source: Source::OtherTab
        })
    );
    assert_eq!(
        s.adopt::<J>(Some(&record)),
        None,
        "the same record again: nothing new"
    );
    assert_eq!(s.generation(), generation, "a rotation of the same session");
    let told = s.adopt::<J>(None);
    let signout = AuthEvent::Signout {
        reason: SignoutReason::OtherTab,
        error: None,
    };
    assert_eq!(told, Some(signout));
    assert_ne!(s.generation(), generation);
    assert_eq!(s.adopt::<J>(None), None, "signed out already");
}

#[test]
fn an_adopted_rotation_does_not_void_this_tabs_refresh_in_flight() {
    let mut s = signed_in("at1", "rt1");
    s.begin_refresh(Some("at1"), NOW).unwrap();
    let other = signed_in("at2", "rt2");
    s.adopt::<J>(Some(&J::record(other.current().unwrap())));
    let record = s
        .answer::<J>(200, Some(&tokens("at3", Some("rt3"))), NOW)
        .unwrap();
    assert!(record.is_some());
}

#[test]
fn under_the_lock_the_last_holders_rotation_is_taken_over_and_ends_the_refresh() {
    let mut s = signed_in("at1", "rt1");
    let generation = s.generation();
    let mut other = signed_in("at2", "rt2");
    let rotated = other.current.as_mut().unwrap();
    rotated.refresh_at = Some(NOW + 5_000.0);
    rotated.refreshed_at = Some(NOW);
    let shared = J::record(other.current().unwrap());
    // Nothing read: nothing to take over, whatever the generation.
    assert!(s.sync::<J>(None, generation + 1).is_ok());
    // Signed in or out since the refresh was asked for: it fails.
    let stale = s.sync::<J>(Some(Some(&shared)), generation + 1);
    assert_eq!(stale.unwrap_err().code(), ErrorCode::NotAuthenticated);
    s.sync::<J>(Some(Some(&shared)), generation).unwrap();
    assert_eq!(s.access(), Some("at2"));
    // The token this refresh was for (at1) is gone and at2 is not due: nothing to do.
    assert_eq!(s.begin_refresh(Some("at1"), NOW).unwrap(), None);
    assert!(matches!(
        s.flush(),
        Some(AuthEvent::Refresh {
            source: Source::OtherTab,
            ..
        })
    ));
    // A due token is refreshed all the same.
    assert_eq!(
        s.begin_refresh(Some("at1"), NOW + 5_000.0).unwrap(),
        Some("rt2")
    );
    // The last holder signed out.
    s.sync::<J>(Some(None), s.generation()).unwrap();
    assert!(s.current().is_none());
}

#[test]
fn before_the_lock_only_a_newer_rotation_not_due_is_adopted() {
    let mut s = signed_in("at1", "rt1");
    let mut newer = signed_in("at2", "rt2").current.unwrap();
    newer.expires_at = Some(NOW + 20_000.0);
    newer.refresh_at = Some(NOW + 15_000.0);
    let shared = J::record(&newer);
    assert!(
        s.adopt_before_lock::<J>(Some(&shared), Some("at2"), NOW)
            .is_none(),
        "the failed one"
    );
    assert!(
        s.adopt_before_lock::<J>(Some(&shared), Some("at1"), NOW + 15_000.0)
            .is_none(),
        "due"
    );
    assert!(s.adopt_before_lock::<J>(None, Some("at1"), NOW).is_none());
    assert!(s
        .adopt_before_lock::<J>(Some(&shared), Some("at1"), NOW)
        .is_some());
    assert_eq!(s.access(), Some("at2"));
    let older = J::record(&signed_in("at0", "rt0").current.unwrap());
    assert!(
        s.adopt_before_lock::<J>(Some(&older), Some("at2"), NOW)
            .is_none(),
        "older"
    );
}

#[test]
fn what_a_401_calls_for() {
    let s = signed_in("at1", "rt1");
    let on_401 = |carried, replayed| {
        s.on_401(
            carried,
            API,
            API,
            false,
            false,
            None,
            replayed,
            NOW + 2_000.0,
        )
    };
    assert_eq!(on_401("at1", 0), On401::RefreshThenReplay);
    assert_eq!(on_401("at0", 0), On401::ReplayWithCurrent);
    assert_eq!(on_401("at1", Replayed::Token as u8), On401::Return);
    // Redirected to another origin: the token never reached it.
    let elsewhere = s.on_401(
        "at1",
        API,
        "https://other.example/x",
        true,
        false,
        None,
        0,
        NOW,
    );
    assert_eq!(elsewhere, On401::Return);
    // A nonce challenge counts only with DPoP on.
    let www = Some("DPoP error=\"use_dpop_nonce\"");
    let challenged =
        |s: &Session, replayed| s.on_401("at1", API, API, false, false, www, replayed, NOW);
    assert_eq!(challenged(&s, 0), On401::RefreshThenReplay);
    let mut s = s;
    s.settings.dpop = true;
    assert_eq!(challenged(&s, 0), On401::ReplayWithNonce);
    assert_eq!(challenged(&s, Replayed::Nonce as u8), On401::Return);
}

#[test]
fn after_a_failed_refresh_the_old_token_is_sent_only_while_it_lives() {
    let s = signed_in("at1", "rt1");
    assert!(s.send_anyway(true, NOW + 9_999.0));
    assert!(!s.send_anyway(true, NOW + 10_000.0));
    assert!(!s.send_anyway(false, NOW));
}
