//! The OpenID provider's rules, without I/O: registered clients ([`clients`]), the
//! authorization request ([`authorize`]), pushed requests ([`par`]), codes and PKCE
//! ([`code`]), the provider session and its cookies ([`session`]), the sign-in form's CSRF
//! and sealing ([`form`]), ID tokens ([`id_token`]), the post-logout redirect ([`logout`]), the metadata document ([`discovery`])
//! and the HTML pages ([`pages`]). The HTTP handlers are in `routes::provider`; the store
//! keeps codes, pushed requests and provider sessions.

pub mod authorize;
pub mod clients;
pub mod code;
pub mod discovery;
pub mod form;
pub mod id_token;
pub mod logout;
pub mod pages;
pub mod par;
pub mod session;
