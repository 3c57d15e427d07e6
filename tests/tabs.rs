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
//!   rotations are at least that window apart;
//! - a sign-in (`handleRedirect`: the code exchanged under the lock, the new session handed
//!   over) loses no rotation and is lost by none: every tab ends with the newest session's
//!   current token (the server starts a family per sign-in; a logout revokes the family of the
//!   token it spends), and a tab that takes the new session in from another tab tells its
//!   listeners `signin`, never `refresh`.
#![cfg(not(target_arch = "wasm32"))]

use proptest::prelude::*;
use rotafetch::event::{AuthEvent, Source};
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

/// The token endpoint: a family of refresh tokens per sign-in, one valid token per family at
/// a time; presenting a spent one is reuse and revokes its family.
#[derive(Default)]
struct Server {
    /// Each family's valid refresh token (`None`: revoked); the last one is the newest session.
    families: Vec<Option<String>>,
    issued: u32,
    reused: Vec<String>,
    /// A `logout()` began somewhere.
    logging_out: bool,
    /// When each rotation happened: (family, time).
    rotations: Vec<(usize, f64)>,
    /// When each session began.
    began: Vec<f64>,
}

impl Server {
    /// A token response for family `f`, whose valid refresh token it makes.
    fn issue(&mut self, f: usize) -> String {
        self.issued += 1;
        let n = self.issued;
        self.families[f] = Some(format!("rt{n}.{f}"));
        json!({"access_token": format!("at{n}"), "refresh_token": format!("rt{n}.{f}"), "expires_in": LIFETIME_S})
            .to_string()
    }

    /// A sign-in's code exchanged (at `now`): a new family.
    fn sign_in(&mut self, now: f64) -> String {
        self.began.push(now);
        self.families.push(None);
        self.issue(self.families.len() - 1)
    }

    /// The family a refresh token belongs to (`rt<n>.<family>`).
    fn family(rt: &str) -> usize {
        rt.rsplit('.').next().unwrap().parse().unwrap()
    }

    fn refresh(&mut self, rt: &str, now: f64) -> (u16, String) {
        let f = Self::family(rt);
        if self.families[f].as_deref() == Some(rt) {
            self.rotations.push((f, now));
            return (200, self.issue(f));
        }
        if !self.logging_out {
            self.reused.push(rt.into());
        }
        self.families[f] = None;
        (400, json!({"error": "invalid_grant"}).to_string())
    }

    /// The newest session's valid refresh token (`None`: revoked).
    fn valid(&self) -> Option<String> {
        self.families.last().cloned().flatten()
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

/// A sign-in's completion (`exchange_`) at the await it waits at.
#[derive(Debug)]
enum SignIn {
    /// Queued for the lock.
    Queued,
    /// Holding the lock, the code exchange out.
    Posted,
    /// The session made (`loggedIn`, the persistent store written); the hand-over store write
    /// in flight.
    Sharing(String),
}

/// A `logout()` at the await it waits at, with the logout body's refresh token so far.
#[derive(Debug)]
enum Logout {
    Queued(Option<String>),
    /// The logout request is out (with the token it spends).
    Posting(Option<String>),
}

struct Tab {
    session: Session,
    refresh: Option<(Refresh, Option<String>)>,
    logout: Option<Logout>,
    signin: Option<SignIn>,
    /// The session (its family) the listeners were last told of: a `signin` names a new one,
    /// a `refresh` keeps it, a `signout` ends it.
    heard: Option<usize>,
    /// `storage` events not delivered yet (the new value, `None` removed).
    events: VecDeque<Option<String>>,
}

struct Browser {
    tabs: Vec<Tab>,
    handover: Option<String>,
    local: Option<String>,
    /// Who holds the lock, and who waits.
    lock: Option<(usize, Task)>,
    queue: VecDeque<(usize, Task)>,
    server: Server,
    now: f64,
}

/// What a tab takes the lock for.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Task {
    Refresh,
    Logout,
    SignIn,
}

#[derive(Clone, Copy, Debug)]
enum Action {
    /// A call in this tab (`fetch`): `start`, and a refresh first when it says so.
    Call(usize),
    /// This tab's refresh, logout or sign-in moves past one await (another one of its tasks
    /// when it has not that one).
    Step(usize, Task),
    /// This tab gets its oldest `storage` event.
    Deliver(usize),
    /// Time passes.
    Wait(f64),
    /// `logout()` in this tab.
    Logout(usize),
    /// `handleRedirect()` in this tab: a sign-in completes.
    SignIn(usize),
}

impl Browser {
    fn new(tabs: usize) -> Browser {
        let mut server = Server::default();
        let response = server.sign_in(0.0);
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
            signin: None,
            heard: Some(0),
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
    fn take_lock(&mut self, who: (usize, Task)) -> bool {
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
                    let told = self.tabs[t].session.adopt::<J>(now.as_deref());
                    self.tell(t, told);
                }
            }
            Action::Logout(t) => {
                if self.tabs[t].logout.is_none() && self.tabs[t].session.current().is_some() {
                    self.server.logging_out = true;
                    let rt = self.tabs[t].session.sign_out();
                    self.write_local(t, None);
                    self.queue.push_back((t, Task::Logout));
                    self.tabs[t].logout = Some(Logout::Queued(rt));
                }
            }
            Action::SignIn(t) => {
                if self.tabs[t].signin.is_none() {
                    self.queue.push_back((t, Task::SignIn));
                    self.tabs[t].signin = Some(SignIn::Queued);
                }
            }
            Action::Step(t, task) => {
                let tab = &self.tabs[t];
                let has = [
                    (Task::Refresh, tab.refresh.is_some()),
                    (Task::Logout, tab.logout.is_some()),
                    (Task::SignIn, tab.signin.is_some()),
                ];
                let task = has
                    .iter()
                    .find(|&&(k, on)| k == task && on)
                    .or_else(|| has.iter().find(|&&(_, on)| on))
                    .map(|&(k, _)| k);
                match task {
                    Some(Task::Refresh) => self.step_refresh(t),
                    Some(Task::Logout) => self.step_logout(t),
                    Some(Task::SignIn) => self.step_signin(t),
                    None => {}
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
                let told =
                    session.adopt_before_lock::<J>(shared.as_deref(), failed.as_deref(), now);
                if told.is_some() {
                    return self.tell(t, told);
                }
                self.queue.push_back((t, Task::Refresh));
                Refresh::Queued(generation)
            }
            Refresh::Queued(generation) if self.take_lock((t, Task::Refresh)) => {
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
        if self.lock == Some((t, Task::Refresh)) {
            self.release();
        }
        self.queue.retain(|&w| w != (t, Task::Refresh));
        let told = self.tabs[t].session.flush();
        self.tell(t, told);
    }

    /// What the listeners of tab `t` are told (`told`), checked against the session it holds:
    /// a new session (another family) is a `signin`, a `refresh` is one of the session they
    /// know, a `signout` leaves none.
    fn tell(&mut self, t: usize, told: Option<AuthEvent>) {
        let Some(event) = told else { return };
        let tab = &mut self.tabs[t];
        let family = tab
            .session
            .current()
            .map(|s| Server::family(&s.refresh_token));
        match event {
            AuthEvent::Signin { .. } => {
                assert!(family.is_some(), "tab {t}: signin, signed out");
                tab.heard = family;
            }
            AuthEvent::Refresh { .. } => {
                assert_eq!(tab.heard, family, "tab {t}: refresh of another session");
            }
            AuthEvent::Signout { .. } => {
                assert_eq!(family, None, "tab {t}: signout, signed in");
                tab.heard = None;
            }
        }
    }

    /// One await of js/driver.js's `exchange_` (the sign-in's transaction and checks are
    /// js/signin.test.mjs's and the e2e suites' business; here, its session).
    fn step_signin(&mut self, t: usize) {
        match self.tabs[t].signin.take() {
            Some(SignIn::Queued) if self.take_lock((t, Task::SignIn)) => {
                self.tabs[t].signin = Some(SignIn::Posted);
            }
            Some(SignIn::Posted) => {
                // The exchange takes a round trip: sessions of one browser (serialised by the
                // lock) never begin in the same millisecond.
                self.now += 1.0;
                let response = self.server.sign_in(self.now);
                let session = &mut self.tabs[t].session;
                let record = session
                    .logged_in::<J>(200, Some(&response), true, self.now)
                    .unwrap();
                self.write_local(t, Some(record.clone()));
                self.tabs[t].signin = Some(SignIn::Sharing(record));
            }
            Some(SignIn::Sharing(record)) => {
                self.handover = Some(record);
                self.release();
                // A `signin` from here (unless a `logout()` here came in between: `signout`).
                let told = self.tabs[t].session.flush();
                let other_tab = matches!(
                    told,
                    Some(AuthEvent::Signin {
                        source: Source::OtherTab,
                        ..
                    })
                );
                assert!(!other_tab, "{told:?}");
                self.tell(t, told);
            }
            other => self.tabs[t].signin = other,
        }
    }

    /// One await of js/driver.js's `logout`.
    fn step_logout(&mut self, t: usize) {
        match self.tabs[t].logout.take() {
            Some(Logout::Queued(rt)) if self.take_lock((t, Task::Logout)) => {
                // `handOver`: the latest refresh token, this tab signed out again, the
                // persistent store cleared again.
                let shared = self.handover.clone();
                let latest = self.tabs[t].session.hand_over::<J>(shared.as_deref());
                self.write_local(t, None);
                self.handover = None;
                self.release();
                self.tabs[t].logout = Some(Logout::Posting(latest.or(rt)));
            }
            Some(Logout::Posting(rt)) => {
                // The logout endpoint revokes the family of the token it gets.
                let rt = rt.expect("a logout starts signed in");
                self.server.families[Server::family(&rt)] = None;
                let told = self.tabs[t].session.flush();
                self.tell(t, told);
            }
            other => self.tabs[t].logout = other,
        }
    }

    fn busy(&self) -> bool {
        self.tabs.iter().any(|t| {
            t.refresh.is_some() || t.logout.is_some() || t.signin.is_some() || !t.events.is_empty()
        })
    }

    /// Runs every task to its end and delivers every event.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            if !self.busy() {
                return;
            }
            for t in 0..self.tabs.len() {
                for task in [Task::Refresh, Task::Logout, Task::SignIn] {
                    self.act(Action::Step(t, task));
                }
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
        8 => (tab.clone(), prop_oneof![Just(Task::Refresh), Just(Task::Logout), Just(Task::SignIn)])
            .prop_map(|(t, task)| Action::Step(t, task)),
        3 => tab.clone().prop_map(Action::Deliver),
        // Whole milliseconds, as `Date.now()` gives (and as the stored records' JSON keeps
        // exactly).
        3 => (0u32..4_000).prop_map(|ms| Action::Wait(ms.into())),
        1 => Just(Action::Wait(WINDOW_MS)),
        1 => tab.clone().prop_map(Action::Logout),
        1 => tab.prop_map(Action::SignIn),
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
    let families = b.server.families.len();
    for f in 0..families {
        let rotations = b.server.rotations.iter().filter(|r| r.0 == f).map(|r| r.1);
        let times: Vec<f64> = [b.server.began[f]].into_iter().chain(rotations).collect();
        for pair in times.windows(2) {
            prop_assert!(
                pair[1] - pair[0] >= WINDOW_MS,
                "two rotations of session {} within one window: {:?}",
                f,
                pair
            );
        }
    }
    let valid = b.server.valid();
    if valid.is_none() {
        // The newest session was logged out (or revoked).
        prop_assert!(
            b.local.is_none() && b.handover.is_none(),
            "a session stored after logout"
        );
    }
    for (i, t) in b.tabs.iter().enumerate() {
        let held = t.session.current().map(|s| s.refresh_token.clone());
        prop_assert_eq!(&held, &valid, "tab {} lost the newest token", i);
        let family = held.as_deref().map(Server::family);
        prop_assert_eq!(
            t.heard,
            family,
            "tab {}'s listeners were not told of its session",
            i
        );
    }
    let stored = b
        .local
        .as_deref()
        .and_then(token::parse_stored::<J>)
        .map(|s| s.refresh_token);
    prop_assert_eq!(stored, valid);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn two_tabs_never_lose_a_rotated_token_nor_refresh_twice_for_one_expiry_with_sign_ins(
        actions in prop::collection::vec(action(2), 1..200),
    ) {
        run(2, &actions)?;
    }

    #[test]
    fn three_tabs_never_lose_a_rotated_token_nor_refresh_twice_for_one_expiry_with_sign_ins(
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
        assert_eq!(t.session.current().unwrap().refresh_token, "rt2.0");
    }
}

/// `logout()` while this tab's own refresh waits for the lock: the refresh ends (its
/// generation is the one it started in), nothing is refreshed, the tab stays signed out.
#[test]
fn a_logout_while_this_tabs_refresh_waits_for_the_lock_ends_the_refresh() {
    let mut b = Browser::new(2);
    b.act(Action::Wait(WINDOW_MS));
    b.act(Action::Call(0));
    b.act(Action::Step(0, Task::Refresh)); // queued for the lock
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
        b.act(Action::Step(1, Task::Refresh)); // fast path, lock, sync + POST
    }
    b.act(Action::Logout(0));
    for _ in 0..3 {
        b.act(Action::Step(1, Task::Refresh)); // answer, hand-over, commit
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

/// A sign-in completes in one tab while another tab's refresh is at the server: the sign-in
/// waits for the lock, the rotation is committed and handed over first, then the new session
/// replaces it in every tab (told there as `signin`); no token is presented twice.
#[test]
fn a_sign_in_waits_for_the_rotation_in_flight_and_every_tab_takes_it() {
    let mut b = Browser::new(3);
    b.act(Action::Wait(WINDOW_MS));
    b.act(Action::Call(1));
    for _ in 0..3 {
        b.act(Action::Step(1, Task::Refresh)); // fast path, lock, POST
    }
    b.act(Action::SignIn(0));
    b.act(Action::Step(0, Task::SignIn));
    assert!(matches!(b.tabs[0].signin, Some(SignIn::Queued)));
    b.settle();
    assert_eq!(b.server.rotations.len(), 1);
    assert!(b.server.reused.is_empty());
    let newest = b.server.valid().unwrap();
    assert_eq!(Server::family(&newest), 1);
    for t in &b.tabs {
        assert_eq!(t.session.current().unwrap().refresh_token, newest);
        assert_eq!(t.heard, Some(1), "told of the new session");
    }
}

/// An account switch heard late: a background tab's `storage` events wait while another tab
/// signs in anew and that session is rotated; the late tab's first read finds the rotated
/// record, and its listeners still hear `signin` (the session began elsewhere), not `refresh`.
#[test]
fn a_tab_that_hears_of_a_sign_in_late_still_tells_signin() {
    let mut b = Browser::new(3);
    b.act(Action::SignIn(0));
    for _ in 0..3 {
        b.act(Action::Step(0, Task::SignIn));
    }
    b.act(Action::Deliver(1));
    b.act(Action::Wait(WINDOW_MS));
    b.act(Action::Call(0));
    while b.tabs[0].refresh.is_some() {
        b.act(Action::Step(0, Task::Refresh));
    }
    assert_eq!(b.server.rotations.len(), 1);
    assert_eq!(b.tabs[2].heard, Some(0));
    b.act(Action::Deliver(2));
    assert_eq!(
        b.tabs[2].session.current().unwrap().refreshed_at,
        Some(WINDOW_MS + 1.0)
    );
    assert_eq!(b.tabs[2].heard, Some(1));
    b.settle();
}
