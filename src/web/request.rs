//! The request path: `fetch` with the access token, the refresh before sending when the
//! token is due, and the replay after a 401.

use super::client::{AuthClient, Inner};
use super::glue::{self, now};
use super::types::*;
use crate::error::{AuthError, ErrorCode};
use crate::policy::{self, On401, Seen401};
use alloc::rc::Rc;
use alloc::string::String;
use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Request, Response};

impl AuthClient {
    /// `fetch(input, init)` with authentication: the JS `fetch` signature.
    pub async fn fetch_with(
        &self,
        input: &JsValue,
        init: &JsValue,
    ) -> Result<Response, FetchError> {
        Inner::finish(&self.inner, self.start(input, init)?).await
    }

    /// Sends `request` with authentication (see the crate docs for the rules).
    pub async fn fetch(&self, request: Request) -> Result<Response, FetchError> {
        Inner::finish(&self.inner, self.inner.start(request, Body::OfRequest)?).await
    }

    /// `fetch(input, init)` started synchronously: the JS façade returns the request's own
    /// promise unless the token must be refreshed first or a 401 comes back (measured: the
    /// futures machinery was most of a call's overhead over plain `fetch`).
    pub(crate) fn start(&self, input: &JsValue, init: &JsValue) -> Result<Started, FetchError> {
        let body = match glue::init_body(init) {
            None => Body::OfRequest,
            Some(true) => Body::Stream,
            Some(false) => Body::Init(input.clone(), init.clone()),
        };
        let request = glue::make_request(input, init).map_err(FetchError::Js)?;
        self.inner.start(request, body)
    }

    /// Carries a started call to its response (see [`Inner::finish`]).
    #[cfg(feature = "js")]
    pub(crate) async fn finish(&self, started: Started) -> Result<Response, FetchError> {
        Inner::finish(&self.inner, started).await
    }

    /// What follows a 401 to a request [`AuthClient::start`] sent with the access token.
    #[cfg(feature = "js")]
    pub(crate) async fn after_401(
        &self,
        response: Response,
        armed: Armed,
    ) -> Result<Response, FetchError> {
        Inner::after_401(&self.inner, response, armed).await
    }
}

/// Where a call's body comes from, which decides how it is sent again after a 401.
pub(crate) enum Body {
    /// `init.body`, not a stream: a replay builds the request anew from `input` and `init`.
    /// Such a body (string, Blob, ArrayBuffer, FormData, URLSearchParams) can be read again
    /// in every engine; a clone of it cannot always (WebKit fails to send a cloned FormData
    /// that holds a Blob).
    Init(JsValue, JsValue),
    /// `init.body` is a `ReadableStream`: it cannot be sent twice.
    Stream,
    /// Whatever the `Request` itself holds: cloned before the first send if it may have a body.
    OfRequest,
}

/// How a replay gets its request.
enum Replay {
    /// No body: send the same request again.
    Again,
    /// The clone made before the first send.
    Copy(Request),
    /// `new Request(input, init)` again.
    Rebuild(JsValue, JsValue),
    /// A stream body: refuse (`body_not_replayable`), never send it empty.
    Refuse,
}

/// What an authenticated request carried, and what its replay needs.
pub(crate) struct Armed {
    carried: String,
    /// The request as sent: where the token went and its signal.
    sent: Request,
    replay: Replay,
}

/// The synchronous start of a call (see [`AuthClient::start`]).
pub(crate) enum Started {
    /// Sent: `fetch`'s promise, and what a 401 needs when the access token went with it
    /// (`None`: sent as is, not ours to authenticate or signed out).
    Sent(Promise, Option<Armed>),
    /// The token must be refreshed first.
    RefreshFirst(Request, Body),
}

async fn send(fetching: Promise) -> Result<Response, FetchError> {
    JsFuture::from(fetching)
        .await
        .map(JsCast::unchecked_into)
        .map_err(FetchError::Js)
}

impl Inner {
    /// Is `request` one to authenticate: an allowed origin, no `Authorization` of its own?
    pub(super) fn ours(&self, request: &Request) -> bool {
        policy::origin_of_href(&request.url()).is_some_and(|o| self.cfg.allow.allows(o))
            && !request.headers().has("authorization").unwrap_or(false)
    }

    /// When the access token must be refreshed before sending: its expiry and the token.
    pub(super) fn due(&self) -> Option<(Option<f64>, String)> {
        let state = self.state.borrow();
        let s = state.as_ref()?;
        let min = self.cfg.min_interval_ms;
        policy::refresh_before_send(now(), s.refresh_at, s.refreshed_at, min)
            .then(|| (s.expires_at, s.access_token.clone()))
    }

    /// Readies `request` for the access token: the configured redirect mode where the request
    /// has the default one (`new Request(request, {redirect})` then takes its place), and
    /// `Authorization`.
    pub(super) fn authorize(&self, request: Request, access: &str) -> Result<Request, FetchError> {
        let strict =
            self.cfg.redirects == Redirects::Error && glue::get(&request, "redirect") == "follow";
        glue::authorize(&request, access, strict).map_err(FetchError::Js)
    }

    /// Sets `Authorization` on `request` and keeps what a replay needs; returns the request to
    /// send and, when a token went with it, what a 401 needs.
    pub(super) fn arm(
        &self,
        request: Request,
        body: Body,
    ) -> Result<(Request, Option<Armed>), FetchError> {
        let Some(carried) = self.current_access() else {
            return Ok((request, None));
        };
        let request = self.authorize(request, &carried)?;
        let replay = match body {
            Body::Init(input, init) => Replay::Rebuild(input, init),
            Body::Stream => Replay::Refuse,
            // A body the request holds itself is cloned before the first send, the only way
            // to send it twice; a request without one is simply sent again.
            Body::OfRequest if glue::may_have_body(&request) => {
                Replay::Copy(request.clone().map_err(FetchError::Js)?)
            }
            Body::OfRequest => Replay::Again,
        };
        let armed = Armed {
            carried,
            sent: Clone::clone(&request),
            replay,
        };
        Ok((request, Some(armed)))
    }

    /// Sends `request` now, unless the token must be refreshed first.
    pub(super) fn start(&self, request: Request, body: Body) -> Result<Started, FetchError> {
        if !self.ours(&request) {
            // Not ours to authenticate: sent exactly as `fetch` would.
            return Ok(Started::Sent(glue::fetch_request(&request), None));
        }
        if self.due().is_some() {
            return Ok(Started::RefreshFirst(request, body));
        }
        let (sent, armed) = self.send_armed(request, body)?;
        Ok(Started::Sent(sent, armed))
    }

    /// Sends `request`, with the access token if there is one.
    pub(super) fn send_armed(
        &self,
        request: Request,
        body: Body,
    ) -> Result<(Promise, Option<Armed>), FetchError> {
        let (request, armed) = self.arm(request, body)?;
        Ok((glue::fetch_request(&request), armed))
    }

    /// Carries a started call to its response: the refresh before sending, the 401 handling.
    pub(super) async fn finish(this: &Rc<Inner>, started: Started) -> Result<Response, FetchError> {
        let (sent, armed) = match started {
            Started::Sent(sent, armed) => (sent, armed),
            Started::RefreshFirst(request, body) => {
                // Another call may have refreshed since `start`.
                if let Some((expires_at, access)) = this.due() {
                    let signal = request.signal();
                    match Inner::refresh_shared(this, Some(access), Some(&signal)).await {
                        Ok(()) => {}
                        Err(e) if e.code() == ErrorCode::RefreshFailed => {
                            // Transient: the old token may still be good (we refresh early).
                            let expired = expires_at.is_some_and(|at| now() >= at);
                            if expired || this.state.borrow().is_none() {
                                return Err(e.into());
                            }
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                this.send_armed(request, body)?
            }
        };
        let response = send(sent).await?;
        match armed {
            Some(armed) if response.status() == 401 => {
                Inner::after_401(this, response, armed).await
            }
            _ => Ok(response),
        }
    }

    /// A 401 to an authenticated request: return it, or refresh (once per browser) and replay.
    pub(super) async fn after_401(
        this: &Rc<Inner>,
        response: Response,
        armed: Armed,
    ) -> Result<Response, FetchError> {
        let Armed {
            carried,
            sent,
            replay,
        } = armed;
        let (current, refreshed_at) = match this.state.borrow().as_ref() {
            Some(s) => (Some(s.access_token.clone()), s.refreshed_at),
            None => (None, None),
        };
        let seen = Seen401 {
            was_replay: false,
            carried_token: policy::token_reached(
                &sent.url(),
                &response.url(),
                response.redirected(),
            ),
            carried_is_current: current.as_deref() == Some(&carried),
            have_access: current.is_some(),
            have_refresh: true,
            refresh_in_flight: this.inflight.borrow().is_some(),
            now: now(),
            refreshed_at,
            min_interval_ms: this.cfg.min_interval_ms,
        };
        match policy::on_401(seen) {
            On401::Return => return Ok(response),
            On401::ReplayWithCurrent => {}
            On401::RefreshThenReplay => {
                Inner::refresh_shared(this, Some(carried), Some(&sent.signal())).await?;
            }
        }
        let replay = match replay {
            Replay::Again => sent,
            Replay::Copy(copy) => copy,
            Replay::Rebuild(input, init) => {
                glue::make_request(&input, &init).map_err(FetchError::Js)?
            }
            Replay::Refuse => {
                return Err(AuthError::new(
                    ErrorCode::BodyNotReplayable,
                    "the request needs a replay after a refresh, but its body is a stream",
                )
                .into())
            }
        };
        let Some(current) = this.current_access() else {
            return Ok(response);
        };
        let replay = this.authorize(replay, &current)?;
        send(glue::fetch_request(&replay)).await
    }
}
