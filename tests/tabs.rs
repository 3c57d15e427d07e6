//! Property tests of the session state machine (`rotafetch::session`, native): the tabs of
//! one browser, each a `Session` driven the way js/driver.js drives the core, sharing a
//! simulated hand-over store (IndexedDB), persistent store (localStorage, whose writes reach
//! the other tabs late, as `storage` events) and cross-tab lock, against a simulated server
//! whose refresh tokens are single use. Whatever the interleaving of the tabs' steps, of the
//! events' delivery and of the clock:
//! - no refresh token is presented twice (the server would revoke the session) while no tab
//!   is logging out (a tab that signs out while its refresh is at the server drops the answer,
//!   and another tab may then present the spent token: the server revokes the session, which
//!   the logout does anyway);
//! - none is lost: once everything has settled, every tab holds the server's current one (or,
//!   after a `logout()` anywhere, every tab is signed out and nothing is stored);
//! - never twice for one expiry: a session is due a refresh window after it arrived, and
//!   rotations are at least that window apart.
#![cfg(not(target_arch = "wasm32"))]

use proptest::prelude::*;
use rotafetch::policy::AllowList;
use rotafetch::seam::Start;
use rotafetch::session::{Outcome, Session, Settings};
use rotafetch::token;
use serde_json::{json, Value};
use std::collections::VecDeque;

type J = Value;
const API: &str = "https://api.example/me";
/// Tokens live 10 s; with a 5 s leeway a session is due 5 s after it arrived.
const LIFETIME_S: f64 = 10.0;
const WINDOW_MS: f64 = 5_000.0;

fn settings() -> Settings {
    Settings {
        allow: AllowList::new(["https://api.example".into()]),
        leeway_ms: WINDOW_MS,
        min_interval_ms: 1_000.0,
        strict_redirects: false,
        dpop: false,
    }
}

/// The refresh endpoint: one valid refresh token at a time; presenting another one is reuse.
#[derive(Default)]
struct Server {
    valid: Option<String>,
    issued: u32,
    reused: Vec<String>,
    /// A `logout()` began somewhere.
    logging_out: bool,
    /// When each rotation happened.
    rotations: Vec<f64>,
    logged_out: bool,
}

impl Server {
    fn issue(&mut self) -> String {
        self.issued += 1;
        let n = self.issued;
        self.valid = Some(format!("rt{n}"));
        json!({"access_token": format!("at{n}"), "refresh_token": format!("rt{n}"), "expires_in": LIFETIME_S})
            .to_string()
    }

    fn refresh(&mut self, rt: &str, now: f64) -> (u16, String) {
        if self.valid.as_deref() == Some(rt) {
            self.rotations.push(now);
            return (200, self.issue());
        }
        if !self.logging_out {
            self.reused.push(rt.into());
        }
        self.valid = None;
        (400, json!({"error": "invalid_grant"}).to_string())
    }
}

/// A refresh (`runRefresh_`) at the await it waits at, and the token it is to replace.
#[derive(Debug)]
enum Refresh {
    /// Reading the hand-over store for `adoptBeforeLock` (`generation` asked).
    Fast(u32),
    /// Queued for the lock.
    Queued(u32),
    /// Holding the lock, reading the hand-over store for `sync`.
    Reading(u32),
    /// The POST is out.
    Posted(String),
    /// The answer is in.
    Answered(u16, String),
    /// The hand-over store write (`None`: a delete) is in flight.
    Sharing(Option<String>),
}

/// A `logout()` at the await it waits at, with the logout body's refresh token so far.
#[derive(Debug)]
enum Logout {
    Queued(Option<String>),
    /// The logout request is out (with the token it spends).
    Posting(#[allow(dead_code)] Option<String>),
}

struct Tab {
    session: Session,
    refresh: Option<(Refresh, Option<String>)>,
    logout: Option<Logout>,
    /// `storage` events not delivered yet (the new value, `None` removed).
    events: VecDeque<Option<String>>,
}

struct Browser {
    tabs: Vec<Tab>,
    handover: Option<String>,
    local: Option<String>,
    /// Who holds the lock, and who waits (tab, for its logout).
    lock: Option<(usize, bool)>,
    queue: VecDeque<(usize, bool)>,
    server: Server,
    now: f64,
}

#[derive(Clone, Copy, Debug)]
enum Action {
    /// A call in this tab (`fetch`): `start`, and a refresh first when it says so.
    Call(usize),
    /// This tab's refresh (`false`) or logout (`true`) moves past one await (the other one
    /// when it has only that).
    Step(usize, bool),
    /// This tab gets its oldest `storage` event.
    Deliver(usize),
    /// Time passes.
    Wait(f64),
    /// `logout()` in this tab.
    Logout(usize),
}

impl Browser {
    fn new(tabs: usize) -> Browser {
        let mut server = Server::default();
        let response = server.issue();
        let (mut first, _) = Session::load::<J>(settings(), None);
        let record = first
            .sign_in::<J>(token::parse::<J>(&response).unwrap(), 0.0)
            .unwrap();
        let mut all = vec![first];
        for _ in 1..tabs {
            all.push(Session::load::<J>(settings(), Some(&record)).0);
        }
        let tabs = all.into_iter().map(|session| Tab {
            session,
            refresh: None,
            logout: None,
            events: VecDeque::new(),
        });
        Browser {
            tabs: tabs.collect(),
            handover: Some(record.clone()),
            local: Some(record),
            lock: None,
            queue: VecDeque::new(),
            server,
            now: 0.0,
        }
    }

    /// The persistent store written by `tab`: the other tabs get a `storage` event.
    fn write_local(&mut self, tab: usize, value: Option<String>) {
        if self.local == value {
            return;
        }
        self.local = value.clone();
        for (i, t) in self.tabs.iter_mut().enumerate() {
            if i != tab {
                t.events.push_back(value.clone());
            }
        }
    }

    /// The driver's `shared_()`: the hand-over record, else the persistent store's.
    fn shared(&self) -> Option<String> {
        self.handover.clone().or_else(|| self.local.clone())
    }

    fn release(&mut self) {
        self.lock = None;
    }

    /// Takes the lock for `who` when it is next in line and the lock is free.
    fn take_lock(&mut self, who: (usize, bool)) -> bool {
        if self.lock.is_none() && self.queue.front() == Some(&who) {
            self.queue.pop_front();
            self.lock = Some(who);
            return true;
        }
        false
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Wait(ms) => self.now += ms,
            Action::Call(t) => {
                let tab = &mut self.tabs[t];
                let how = tab.session.start(API, false, true, self.now);
                if how & Start::RefreshFirst as u8 != 0 && tab.refresh.is_none() {
                    let failed = tab.session.access().map(String::from);
                    tab.refresh = Some((Refresh::Fast(tab.session.generation()), failed));
                }
            }
            Action::Deliver(t) => {
                // The driver adopts what the store holds when the event arrives, not the
                // event's (maybe stale) `newValue`.
                if self.tabs[t].events.pop_front().is_some() {
                    let now = self.local.clone();
                    self.tabs[t].session.adopt::<J>(now.as_deref());
                }
            }
            Action::Logout(t) => {
                if self.tabs[t].logout.is_none() && self.tabs[t].session.current().is_some() {
                    self.server.logging_out = true;
                    let rt = self.tabs[t].session.sign_out();
                    self.write_local(t, None);
                    self.queue.push_back((t, true));
                    self.tabs[t].logout = Some(Logout::Queued(rt));
                }
            }
            Action::Step(t, logout) => {
                if logout && self.tabs[t].logout.is_some() || self.tabs[t].refresh.is_none() {
                    self.step_logout(t);
                } else {
                    self.step_refresh(t);
                }
            }
        }
    }

    /// One await of js/driver.js's `runRefresh_`.
    fn step_refresh(&mut self, t: usize) {
        let Some((step, failed)) = self.tabs[t].refresh.take() else {
            return;
        };
        let now = self.now;
        let next = match step {
            Refresh::Fast(generation) => {
                let shared = self.shared();
                let session = &mut self.tabs[t].session;
                if session
                    .adopt_before_lock::<J>(shared.as_deref(), failed.as_deref(), now)
                    .is_some()
                {
                    return;
                }
                self.queue.push_back((t, false));
                Refresh::Queued(generation)
            }
            Refresh::Queued(generation) if self.take_lock((t, false)) => {
                Refresh::Reading(generation)
            }
            Refresh::Queued(generation) => Refresh::Queued(generation),
            Refresh::Reading(generation) => {
                let shared = self.shared();
                let session = &mut self.tabs[t].session;
                let begun = session
                    .sync::<J>(Some(shared.as_deref()), generation)
                    .and_then(|()| {
                        session
                            .begin_refresh(failed.as_deref(), now)
                            .map(|rt| rt.map(String::from))
                    });
                match begun {
                    Ok(Some(rt)) => Refresh::Posted(rt),
                    Ok(None) | Err(_) => return self.end_refresh(t),
                }
            }
            Refresh::Posted(rt) => {
                let (status, body) = self.server.refresh(&rt, now);
                Refresh::Answered(status, body)
            }
            Refresh::Answered(status, body) => {
                match self.tabs[t].session.answer::<J>(status, Some(&body), now) {
                    Ok(record) => Refresh::Sharing(record.map(String::from)),
                    Err(_) => return self.end_refresh(t),
                }
            }
            Refresh::Sharing(record) => {
                self.handover = record;
                match self.tabs[t].session.commit() {
                    Some(Outcome::Rotated(record)) => self.write_local(t, Some(record)),
                    Some(Outcome::Rejected(_)) => self.write_local(t, None),
                    None => {}
                }
                return self.end_refresh(t);
            }
        };
        self.tabs[t].refresh = Some((next, failed));
    }

    /// The `finally` of `runRefresh_`: the lock released, then the listeners told.
    fn end_refresh(&mut self, t: usize) {
        if self.lock == Some((t, false)) {
            self.release();
        }
        self.queue.retain(|&w| w != (t, false));
        self.tabs[t].session.flush();
    }

    /// One await of js/driver.js's `logout`.
    fn step_logout(&mut self, t: usize) {
        match self.tabs[t].logout.take() {
            Some(Logout::Queued(rt)) if self.take_lock((t, true)) => {
                // `handOver`: the latest refresh token, this tab signed out again, the
                // persistent store cleared again.
                let shared = self.handover.clone();
                let latest = self.tabs[t].session.hand_over::<J>(shared.as_deref());
                self.write_local(t, None);
                self.handover = None;
                self.release();
                self.tabs[t].logout = Some(Logout::Posting(latest.or(rt)));
            }
            Some(Logout::Posting(_)) => {
                // The logout endpoint revokes the session whichever of its tokens it gets.
                self.server.logged_out = true;
                self.server.valid = None;
                self.tabs[t].session.flush();
            }
            other => self.tabs[t].logout = other,
        }
    }

    fn busy(&self) -> bool {
        self.tabs
            .iter()
            .any(|t| t.refresh.is_some() || t.logout.is_some() || !t.events.is_empty())
    }

    /// Runs every task to its end and delivers every event.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            if !self.busy() {
                return;
            }
            for t in 0..self.tabs.len() {
                self.act(Action::Step(t, false));
                self.act(Action::Step(t, true));
                self.act(Action::Deliver(t));
            }
        }
        panic!("the tabs never settled");
    }
}

fn action(tabs: usize) -> impl Strategy<Value = Action> {
    let tab = 0..tabs;
    prop_oneof![
        4 => tab.clone().prop_map(Action::Call),
        8 => (tab.clone(), any::<bool>()).prop_map(|(t, logout)| Action::Step(t, logout)),
        3 => tab.clone().prop_map(Action::Deliver),
        3 => (0.0f64..4_000.0).prop_map(Action::Wait),
        1 => (0.0f64..2.0).prop_map(|_| Action::Wait(WINDOW_MS)),
        1 => tab.prop_map(Action::Logout),
    ]
}

fn run(tabs: usize, actions: &[Action]) -> Result<(), TestCaseError> {
    let mut b = Browser::new(tabs);
    for &a in actions {
        b.act(a);
    }
    b.settle();
    prop_assert!(
        b.server.reused.is_empty(),
        "refresh tokens presented twice: {:?}",
        b.server.reused
    );
    // (Times are sums of floats: a window's end may come out a rounding error early.)
    for pair in b.server.rotations.windows(2) {
        prop_assert!(
            pair[1] - pair[0] >= WINDOW_MS - 1e-6,
            "two rotations within one window: {pair:?}"
        );
    }
    if b.server.logged_out {
        prop_assert!(
            b.local.is_none() && b.handover.is_none(),
            "a session stored after logout"
        );
        for (i, t) in b.tabs.iter().enumerate() {
            prop_assert!(
                t.session.current().is_none(),
                "tab {i} still signed in after logout"
            );
        }
    } else {
        let valid = b.server.valid.clone();
        prop_assert!(valid.is_some());
        for (i, t) in b.tabs.iter().enumerate() {
            let held = t.session.current().map(|s| s.refresh_token.clone());
            prop_assert_eq!(&held, &valid, "tab {} lost the rotated token", i);
        }
        let stored = b
            .local
            .as_deref()
            .and_then(token::parse_stored::<J>)
            .map(|s| s.refresh_token);
        prop_assert_eq!(stored, valid);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn two_tabs_never_lose_a_rotated_token_nor_refresh_twice_for_one_expiry(
        actions in prop::collection::vec(action(2), 1..200),
    ) {
        run(2, &actions)?;
    }

    #[test]
    fn three_tabs_never_lose_a_rotated_token_nor_refresh_twice_for_one_expiry(
        actions in prop::collection::vec(action(3), 1..300),
    ) {
        run(3, &actions)?;
    }
}

/// The storm the e2e suites run in browsers, here step by step: every tab due at once, each
/// step of each tab in turn. One rotation, and every tab ends with it.
#[test]
fn every_tab_due_at_once_refreshes_once() {
    let mut b = Browser::new(3);
    b.act(Action::Wait(WINDOW_MS));
    for t in 0..3 {
        b.act(Action::Call(t));
    }
    b.settle();
    assert_eq!(b.server.rotations.len(), 1);
    for t in &b.tabs {
        assert_eq!(t.session.current().unwrap().refresh_token, "rt2");
    }
}

/// `logout()` while this tab's own refresh waits for the lock: the refresh ends (its
/// generation is the one it started in), nothing is refreshed, the tab stays signed out.
#[test]
fn a_logout_while_this_tabs_refresh_waits_for_the_lock_ends_the_refresh() {
    let mut b = Browser::new(2);
    b.act(Action::Wait(WINDOW_MS));
    b.act(Action::Call(0));
    b.act(Action::Step(0, false)); // queued for the lock
    b.act(Action::Logout(0));
    b.settle();
    assert!(b.server.rotations.is_empty(), "refreshed after logout");
    assert!(b.tabs.iter().all(|t| t.session.current().is_none()));
}

/// `logout()` while another tab's refresh commits: this tab adopts the rotation through its
/// `storage` event before its logout gets the lock; the logout spends that latest token and
/// signs this tab out again.
#[test]
fn a_rotation_adopted_while_logging_out_does_not_outlive_the_logout() {
    let mut b = Browser::new(2);
    b.act(Action::Wait(WINDOW_MS));
    b.act(Action::Call(1));
    for _ in 0..3 {
        b.act(Action::Step(1, false)); // fast path, lock, sync + POST
    }
    b.act(Action::Logout(0));
    for _ in 0..3 {
        b.act(Action::Step(1, false)); // answer, hand-over, commit
    }
    assert_eq!(
        b.tabs[1].refresh.as_ref().map(|r| format!("{:?}", r.0)),
        None
    );
    b.act(Action::Deliver(0)); // the rotation, adopted
    assert_eq!(b.tabs[0].session.access(), Some("at2"));
    b.settle();
    assert!(b.tabs.iter().all(|t| t.session.current().is_none()));
    assert!(b.local.is_none() && b.handover.is_none());
}
