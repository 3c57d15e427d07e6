//! The vocabulary of the seam between the Rust core (`src/web/core.rs`) and the JS driver
//! (`js/driver.js`): the core's questions and the named answers they exchange, each a number
//! with a name on both sides.
//!
//! The driver asks through one export, `Core.ask(question, args)` (each export costs the `.wasm`
//! a shim and the glue a method), by number: [`Question`] here, the frozen object `Question` in
//! `js/driver.js` (which the package build inlines as constants, so no question's name ships),
//! and `js/core.d.ts` declares each question's arguments and answer, so `tsc --checkJs`
//! (`make lint`) refuses a misspelt question or a wrong argument; the core throws for a number
//! that is no question. Every numeric answer is an enum here (or beside its decision,
//! `policy::On401`) with explicit discriminants, and the same name with the same values in
//! `js/driver.js`. The tests below read the JS files and the core's dispatch: a question or a
//! value that one side names and the other does not fails `make test-native`.
//!
//! Adding a question: a variant of [`Question`] (and in `js/driver.js`'s `Question`), its arm
//! in the match of `Core::answer` (`src/web/core.rs`) and its entry in `js/core.d.ts`'s
//! `Questions` (the tests below insist on all four), then the driver asks it.

/// A numeric answer: an enum with explicit discriminants, `of` to read one back, and `ALL`
/// (its names and values, as `js/driver.js` must spell them; the agreement test reads it).
macro_rules! answer {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $v:ident = $n:literal,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u8)]
        pub enum $name { $($(#[$vm])* $v = $n,)* }
        impl $name {
            /// Every value and its name.
            pub const ALL: &'static [(&'static str, u8)] = &[$((stringify!($v), $n),)*];
            /// The value numbered `n`, if any.
            pub fn of(n: u8) -> Option<Self> {
                match n {
                    $($n => Some(Self::$v),)*
                    _ => None,
                }
            }
        }
    };
}
pub(crate) use answer;

answer! {
    /// The core's questions (`Core.ask(question, args)`; src/web/core.rs's table says what each
    /// asks and when): queries answer from the session as it is (0-9), inputs take in what the
    /// driver saw (10-16), commands move the session on (17-21).
    pub enum Question {
        /// Query: how to send a request ([`Start`]).
        Start = 0,
        /// Query: the access token to send.
        Access = 1,
        /// Query: what a 401 calls for (`policy::On401`).
        On401 = 2,
        /// Query: after a failed refresh before sending, send with the old token anyway?
        SendAnyway = 3,
        /// Query: the session's generation, read as a refresh starts.
        Generation = 4,
        /// Query: leave a token endpoint's response unread (its `Content-Length`)?
        TooBig = 5,
        /// Query: the session's ID token (the end-session hint).
        IdToken = 6,
        /// Query: the access token's expiry.
        ExpiresAt = 7,
        /// Query (DPoP): what a proof for a request names.
        ProofFor = 8,
        /// Query (DPoP): is a token endpoint's answer a nonce challenge?
        TokenChallenge = 9,
        /// Input: another tab wrote or cleared the session.
        Adopt = 10,
        /// Input: before the lock, another tab's rotation, adopted if that ends the refresh.
        AdoptBeforeLock = 11,
        /// Input: under the lock, what the last lock holder left.
        Sync = 12,
        /// Input: the refresh endpoint's answer.
        Answer = 13,
        /// Input: the login endpoint's, or a sign-in's token endpoint's, answer.
        LoggedIn = 14,
        /// Input: `setTokens(tokens)`.
        SetTokens = 15,
        /// Input (DPoP): a response's `DPoP-Nonce`.
        Took = 16,
        /// Command: begins the refresh.
        BeginRefresh = 17,
        /// Command: the hand-over store holds the refresh's record.
        Commit = 18,
        /// Command: the lock is released; tell the listeners.
        Flush = 19,
        /// Command: `logout()` begins.
        SignOut = 20,
        /// Command: `logout()`, under the lock.
        HandOver = 21,
    }
}

answer! {
    /// `start`: how to send a request. One of `Pass`, `Send`, `RefreshFirst`, plus the flag
    /// `Strict`.
    pub enum Start {
        /// Not ours to authenticate (another origin, or its own `Authorization`): as it is.
        Pass = 0,
        /// With the access token.
        Send = 1,
        /// Refresh the access token first (see `policy::refresh_before_send`), then send.
        RefreshFirst = 2,
        /// A flag: the request (and its replay) is made `redirect: "error"` before it carries
        /// the token (option `redirect: "error"`; a call's own mode is kept).
        Strict = 4,
    }
}

answer! {
    /// `on401`'s `replayed`: what a call already did, a bit set (each at most once).
    pub enum Replayed {
        /// Replayed after a token 401.
        Token = 1,
        /// Answered a DPoP nonce challenge.
        Nonce = 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::policy::On401;
    use alloc::{string::String, vec::Vec};

    const DRIVER: &str = include_str!("../js/driver.js");
    const CORE_D_TS: &str = include_str!("../js/core.d.ts");
    const PLUMBING: &str = include_str!("../js/plumbing.js");
    const CORE_RS: &str = include_str!("web/core.rs");

    /// `export const NAME = Object.freeze({ A: 0, B: 1 });` in js/driver.js or js/plumbing.js,
    /// as pairs.
    fn js_answer(name: &str) -> Vec<(String, u8)> {
        let head = ["export const ", name, " = Object.freeze({"].concat();
        let (file, start) = [DRIVER, PLUMBING]
            .into_iter()
            .find_map(|f| f.find(&head).map(|at| (f, at)))
            .unwrap_or_else(|| panic!("no `{head}` in js/driver.js or js/plumbing.js"));
        let body = &file[start + head.len()..];
        let body = &body[..body.find("});").expect("the object ends with `});`")];
        body.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once(':').expect("`Name: value`");
                (k.trim().into(), v.trim().parse().expect("a number"))
            })
            .collect()
    }

    fn agree(name: &str, rust: &[(&str, u8)]) {
        let rust: Vec<(String, u8)> = rust.iter().map(|&(k, v)| (k.into(), v)).collect();
        assert_eq!(
            js_answer(name),
            rust,
            "js/driver.js's {name} differs from Rust's"
        );
    }

    #[test]
    fn the_driver_names_every_answer_as_rust_does() {
        agree("Start", Start::ALL);
        agree("On401", On401::ALL);
        agree("Replayed", Replayed::ALL);
        agree("Question", Question::ALL);
        let codes: Vec<(String, u8)> = ErrorCode::ALL
            .iter()
            .map(|&c| (alloc::format!("{c:?}"), c as u8))
            .collect();
        assert_eq!(js_answer("ErrorCode"), codes, "js/plumbing.js's ErrorCode");
        // And nothing else is named that way.
        assert_eq!(DRIVER.matches(" = Object.freeze({").count(), 4);
        assert_eq!(PLUMBING.matches(" = Object.freeze({").count(), 1);
    }

    /// js/plumbing.js's `CODES` spells each `ErrorCode` as `ErrorCode::as_str` does, in the
    /// order of their numbers.
    #[test]
    fn the_plumbing_spells_every_error_code_as_rust_does() {
        let list = section(PLUMBING, "const CODES = [", "];");
        let js: Vec<&str> = list["const CODES = [".len()..]
            .split(',')
            .map(|c| c.trim().trim_matches('"'))
            .collect();
        let rust: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(js, rust);
        for (i, c) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{c:?} is numbered in declaration order");
        }
    }

    /// `readOptions`' defaults (js/plumbing.js's `DEFAULTS`) are Rust's `Options::new`'s.
    #[test]
    fn the_options_default_alike_in_js_and_rust() {
        use crate::policy::*;
        let line = section(PLUMBING, "export const DEFAULTS = {", "};");
        let expected = [
            alloc::format!("storageKey: \"{DEFAULT_STORAGE_KEY}\""),
            alloc::format!("leewaySeconds: {}", DEFAULT_LEEWAY_MS / 1000.0),
            alloc::format!("refreshTimeoutMs: {DEFAULT_REFRESH_TIMEOUT_MS}"),
            alloc::format!("minRefreshIntervalMs: {DEFAULT_MIN_REFRESH_INTERVAL_MS}"),
            alloc::format!("scope: \"{DEFAULT_SCOPE}\""),
        ];
        for e in &expected {
            assert!(
                line.contains(e.as_str()),
                "js/plumbing.js's DEFAULTS lack {e}: {line}"
            );
        }
        assert_eq!(line.matches(':').count(), expected.len(), "{line}");
    }

    #[test]
    fn answers_read_back_by_number() {
        assert_eq!(Question::of(21), Some(Question::HandOver));
        assert_eq!(Question::of(22), None);
        assert_eq!(Start::of(4), Some(Start::Strict));
        assert_eq!(Start::of(3), None);
    }

    /// The text of `file` from the line that holds `start` to the first `end` after it.
    fn section(file: &'static str, start: &str, end: &str) -> &'static str {
        let from = file.find(start).unwrap_or_else(|| panic!("no {start:?}"));
        let rest = &file[from..];
        &rest[..rest
            .find(end)
            .unwrap_or_else(|| panic!("no {end:?} after {start:?}"))]
    }

    /// The questions `interface Questions { … }` in js/core.d.ts declares: `[Question.Name](…)`.
    fn declared_questions() -> Vec<&'static str> {
        section(CORE_D_TS, "export interface Questions {", "\n}")
            .lines()
            .filter_map(|l| l.trim().strip_prefix("[Question."))
            .filter_map(|l| l.split_once(']').map(|(name, _)| name))
            .collect()
    }

    /// The questions the core answers: the `Question::Name =>` arms of the match in
    /// `Core::answer`.
    fn answered_questions() -> Vec<&'static str> {
        section(CORE_RS, "fn answer(", "\n    }\n")
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Question::"))
            .filter_map(|l| l.split_once(" =>").map(|(name, _)| name))
            .collect()
    }

    #[test]
    fn the_core_answers_exactly_the_questions_core_d_ts_declares() {
        let mut declared = declared_questions();
        let mut answered = answered_questions();
        let mut all: Vec<&str> = Question::ALL.iter().map(|&(name, _)| name).collect();
        assert!(answered.len() > 15, "{answered:?}");
        declared.sort_unstable();
        answered.sort_unstable();
        all.sort_unstable();
        assert_eq!(declared, all, "js/core.d.ts's Questions");
        assert_eq!(answered, all, "the arms of Core::answer");
    }
}
