//! The vocabulary of the seam between the Rust core (`src/web/core.rs`) and the JS driver
//! (`js/driver.js`): the names of the core's questions and the named answers they exchange.
//!
//! The driver asks through one export, `Core.ask(name, args)` (each export costs the `.wasm`
//! a shim and the glue a method); `js/core.d.ts` declares one method per question, so
//! `tsc --checkJs` (`make lint`) refuses a misspelt one, and the core throws for it at run
//! time. Every numeric answer is an enum here (or beside its decision, `policy::On401`) with
//! explicit discriminants, and the same name with the same values in `js/driver.js`
//! (`export const Start = Object.freeze({ … })`, which the package build inlines as
//! constants). The tests below read the JS files and the core's dispatch: a question or a
//! value that one side names and the other does not fails `make test-native`.
//!
//! Adding a question: its arm in the match of `Core::answer` (`src/web/core.rs`) and its
//! method in `js/core.d.ts` (the test below insists on both), then the driver calls it.

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

answer! {
    /// `fail`: the errors the driver itself meets, made by the core (code and message).
    pub enum DriverError {
        /// Another tab's refresh held the lock past `refreshTimeoutMs`.
        LockTimeout = 0,
        /// The caller's `AbortSignal` fired while it waited for the refresh.
        Aborted = 1,
        /// A replay is needed, but the request's body is a stream.
        NotReplayable = 2,
        /// `refresh()` while signed out.
        NotSignedIn = 3,
        /// `login(url, credentials)` with credentials `JSON.stringify` refuses.
        BadCredentials = 4,
        /// `dpopProof` with DPoP off.
        DpopOff = 5,
        /// No DPoP key could be read or made.
        NoKey = 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::On401;
    use alloc::{string::String, vec::Vec};

    const DRIVER: &str = include_str!("../js/driver.js");
    const CORE_D_TS: &str = include_str!("../js/core.d.ts");
    const CORE_RS: &str = include_str!("web/core.rs");

    /// `export const NAME = Object.freeze({ A: 0, B: 1 });` in js/driver.js, as pairs.
    fn js_answer(name: &str) -> Vec<(String, u8)> {
        let head = ["export const ", name, " = Object.freeze({"].concat();
        let start = DRIVER
            .find(&head)
            .unwrap_or_else(|| panic!("js/driver.js has no `{head}`"));
        let body = &DRIVER[start + head.len()..];
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
        agree("DriverError", DriverError::ALL);
        // And nothing else is named that way in the driver.
        assert_eq!(DRIVER.matches(" = Object.freeze({").count(), 4);
    }

    #[test]
    fn answers_read_back_by_number() {
        assert_eq!(DriverError::of(3), Some(DriverError::NotSignedIn));
        assert_eq!(DriverError::of(7), None);
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

    /// The method names of `interface Core { … }` in js/core.d.ts.
    fn declared_questions() -> Vec<&'static str> {
        section(CORE_D_TS, "export interface Core {", "\n}")
            .lines()
            .skip(1)
            .map(str::trim)
            .filter(|l| !l.starts_with("//") && !l.starts_with('*') && !l.starts_with("/*"))
            .filter_map(|l| l.split_once('(').map(|(name, _)| name))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric()))
            .collect()
    }

    /// The names the core answers: the `"name" =>` arms of the match in `Core::answer`.
    fn answered_questions() -> Vec<&'static str> {
        section(CORE_RS, "fn answer(", "\n    }\n")
            .lines()
            .map(str::trim)
            .filter_map(|l| {
                l.strip_prefix('"')?
                    .split_once("\" =>")
                    .map(|(name, _)| name)
            })
            .collect()
    }

    #[test]
    fn the_core_answers_exactly_the_questions_core_d_ts_declares() {
        let mut declared = declared_questions();
        let mut answered = answered_questions();
        assert!(answered.len() > 15, "{answered:?}");
        declared.sort_unstable();
        answered.sort_unstable();
        assert_eq!(declared, answered);
    }
}
