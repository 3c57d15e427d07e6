//! RP-Initiated Logout 1.0 §2-3: where the browser may go after signing out, decided
//! without I/O.

use super::authorize::{Params, MAX_STATE_LEN};
use super::clients::Clients;

/// The post-logout redirect (with `state`) for a request naming its client by `client_id`
/// or by the `aud` of a verified `id_token_hint`, or `None` when it asks for none. A URI
/// not registered for that client (or with no client named) is refused: the description of
/// the page to show instead (never an open redirect).
pub fn destination(
    clients: &Clients,
    params: &Params,
    hint_aud: Option<&str>,
) -> Result<Option<String>, String> {
    if let Some(name) = params.first_repeated() {
        return Err(format!("parameter {name} given more than once"));
    }
    let client_id = match (params.get("client_id"), hint_aud) {
        (Some(c), Some(aud)) if c != aud => {
            return Err("client_id does not match the id_token_hint".into());
        }
        (c, aud) => c.or(aud),
    };
    let Some(uri) = params.get("post_logout_redirect_uri") else {
        return Ok(None);
    };
    let registered = client_id
        .and_then(|c| clients.get(c))
        .is_some_and(|c| c.allows_post_logout(uri));
    if !registered {
        return Err("post_logout_redirect_uri is not registered for this client".into());
    }
    let state = params.get("state").filter(|s| s.len() <= MAX_STATE_LEN);
    Ok(Some(match state {
        Some(s) => {
            let mut u = url::Url::parse(uri).map_err(|e| e.to_string())?;
            u.query_pairs_mut().append_pair("state", s);
            u.into()
        }
        None => uri.to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::clients::parse_spec;

    fn clients() -> Clients {
        Clients::build(
            &[
                parse_spec("a=https://a.example/cb").unwrap(),
                parse_spec("b=https://b.example/cb").unwrap(),
            ],
            &[parse_spec("a=https://a.example/bye").unwrap()],
            "https://op.example",
        )
        .unwrap()
    }

    fn params(p: &[(&str, &str)]) -> Params {
        Params::new(p.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn only_registered_uris_of_the_named_client() {
        let c = clients();
        let bye = "https://a.example/bye";
        assert_eq!(destination(&c, &params(&[]), None), Ok(None));
        assert_eq!(
            destination(
                &c,
                &params(&[("post_logout_redirect_uri", bye), ("state", "s 1")]),
                Some("a")
            ),
            Ok(Some("https://a.example/bye?state=s+1".into()))
        );
        assert_eq!(
            destination(
                &c,
                &params(&[("post_logout_redirect_uri", bye), ("client_id", "a")]),
                None
            ),
            Ok(Some(bye.into()))
        );
        for (p, aud) in [
            (vec![("post_logout_redirect_uri", bye)], None),
            (vec![("post_logout_redirect_uri", bye)], Some("b")),
            (
                vec![("post_logout_redirect_uri", "https://a.example/cb")],
                Some("a"),
            ),
            (
                vec![("post_logout_redirect_uri", "https://a.example/bye/")],
                Some("a"),
            ),
            (
                vec![("post_logout_redirect_uri", bye), ("client_id", "b")],
                Some("a"),
            ),
            (
                vec![
                    ("post_logout_redirect_uri", bye),
                    ("client_id", "a"),
                    ("client_id", "a"),
                ],
                None,
            ),
        ] {
            assert!(destination(&c, &params(&p), aud).is_err(), "{p:?} {aud:?}");
        }
    }
}
