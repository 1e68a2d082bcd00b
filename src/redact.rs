//! Redaction at the boundary: text that came from outside (a gateway's response body, a
//! child's stderr, a transport error) passes through here before it reaches a log line, a
//! row or an output. It removes the secrets the process knows (hook tokens, the database
//! password) and anything that looks like a credential (`Bearer ...`, an `Authorization`
//! value, a URL's password, `password=...`), then bounds the size.

/// What replaces a secret.
pub const MASK: &str = "***";

/// Known secrets, shortest first removed last (so a secret containing another is masked
/// whole).
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    /// A redactor for these secrets (values shorter than 4 characters are ignored: masking
    /// them would mangle ordinary text, and no real token is that short).
    pub fn new<I, S>(secrets: I) -> Redactor
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .map(|s| s.as_ref().trim().to_string())
            .filter(|s| s.chars().count() >= 4)
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    /// A redactor for the values this process's environment holds under `names` (the
    /// variables passed through to a command: what it may print is masked).
    pub fn for_env_vars(names: &[String]) -> Redactor {
        Redactor::new(names.iter().filter_map(|k| std::env::var(k).ok()))
    }

    /// `text` without secrets or credential-looking values, lines kept (a log file).
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        credentials_masked(&out)
    }

    /// `text` without secrets or credential-looking values, on one line, at most
    /// `max_chars` characters (an ellipsis marks a cut).
    pub fn clean(&self, text: &str, extra: &[&str], max_chars: usize) -> String {
        let mut out = text.to_string();
        let extra: Vec<&str> = extra
            .iter()
            .copied()
            .filter(|s| s.chars().count() >= 4)
            .collect();
        for secret in extra
            .iter()
            .copied()
            .chain(self.secrets.iter().map(String::as_str))
        {
            if out.contains(secret) {
                out = out.replace(secret, MASK);
            }
        }
        let out = credentials_masked(&out);
        bounded(&out, max_chars)
    }
}

/// One line (whitespace runs become one space), at most `max_chars` characters.
pub fn bounded(text: &str, max_chars: usize) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max_chars {
        return one_line;
    }
    let mut out: String = one_line.chars().take(max_chars).collect();
    out.push('…');
    out
}

/// `url` with any password in it replaced by `***` (`http://user:***@host/...`).
pub fn url_without_credentials(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let masked = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:{MASK}"),
        None => MASK.to_string(),
    };
    format!("{}{masked}{}", &url[..scheme_end], &url[scheme_end + at..])
}

/// `scheme://host[:port]` of an http(s) URL, lower-cased, without credentials or a
/// default port: what a token is bound to. `None` for anything else.
pub fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.is_empty() {
        return None;
    }
    let host_port = host_port.to_ascii_lowercase();
    let default_port = if scheme == "http" { ":80" } else { ":443" };
    let host_port = host_port.strip_suffix(default_port).unwrap_or(&host_port);
    Some(format!("{scheme}://{host_port}"))
}

/// Masks the value after each (case-insensitive) marker: `bearer `, `authorization`,
/// `password`, `token`, and the password of every URL.
fn credentials_masked(text: &str) -> String {
    let mut out = mask_urls(text);
    for marker in ["bearer ", "basic "] {
        out = mask_after(&out, marker, false);
    }
    for marker in [
        "authorization",
        "password",
        "passwd",
        "token",
        "secret",
        "api_key",
        "apikey",
    ] {
        out = mask_after(&out, marker, true);
    }
    out
}

/// Every `scheme://user:pass@` in `text` with the password masked.
fn mask_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>'))
            .unwrap_or(tail.len());
        let url = format!("x://{}", &tail[..end]);
        out.push_str(&url_without_credentials(&url)[4..]);
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Masks what follows `marker` (ASCII, case-insensitive). With `separated`, the value
/// starts after the next `:` or `=` (and quotes or spaces), as in a header or a JSON field;
/// otherwise right after the marker.
fn mask_after(text: &str, marker: &str, separated: bool) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find(marker) {
        let start = search + found + marker.len();
        let mut i = start;
        let bytes = text.as_bytes();
        if separated {
            // Up to a few quote characters and spaces, then the separator.
            while i < bytes.len()
                && matches!(bytes[i], b'"' | b'\'' | b' ' | b'_' | b'-')
                && i - start < 4
            {
                i += 1;
            }
            if i >= bytes.len() || !matches!(bytes[i], b':' | b'=') {
                search = start;
                continue;
            }
            i += 1;
            while i < bytes.len() && matches!(bytes[i], b'"' | b'\'' | b' ') {
                i += 1;
            }
            // "Authorization: Bearer x": keep the scheme, mask the credential.
            for scheme in ["bearer ", "basic "] {
                if lower[i..].starts_with(scheme) {
                    i += scheme.len();
                }
            }
        }
        let value_end = text[i..]
            .find(|c: char| {
                c.is_whitespace() || matches!(c, '"' | '\'' | ',' | ';' | '}' | '&' | '<')
            })
            .map_or(text.len(), |n| i + n);
        if value_end > i && &text[i..value_end] != MASK {
            out.push_str(&text[copied..i]);
            out.push_str(MASK);
            copied = value_end;
        }
        search = value_end.max(start);
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_secrets_and_credential_shapes_are_masked() {
        let r = Redactor::new(["hook-0123456789abcdef", "pg-pass-42"]);
        let body = r#"{"error":"unauthorized","headers":{"authorization":"Bearer hook-0123456789abcdef","x":"1"}} password=pg-pass-42 token: abc123xyz url http://u:sekret@h:1/p"#;
        let clean = r.clean(body, &[], 1000);
        for leaked in ["hook-0123456789abcdef", "pg-pass-42", "abc123xyz", "sekret"] {
            assert!(!clean.contains(leaked), "{leaked} in {clean}");
        }
        assert!(clean.contains("unauthorized"), "{clean}");
        assert!(clean.contains("http://u:***@h:1/p"), "{clean}");
    }

    #[test]
    fn unknown_bearer_values_and_extra_secrets_are_masked_too() {
        let r = Redactor::default();
        let clean = r.clean(
            "Authorization: Bearer zz-unknown-token-1\nnext",
            &["other-secret"],
            1000,
        );
        assert_eq!(clean, "Authorization: Bearer *** next");
        assert_eq!(
            r.clean("x other-secret y", &["other-secret"], 100),
            "x *** y"
        );
        assert_eq!(r.clean("no secrets here", &[], 100), "no secrets here");
    }

    #[test]
    fn output_is_bounded() {
        let r = Redactor::default();
        let long = "a".repeat(500);
        let clean = r.clean(&long, &[], 300);
        assert_eq!(clean.chars().count(), 301);
        assert!(clean.ends_with('…'));
    }

    #[test]
    fn origins_compare_equal_when_they_are_the_same_place() {
        assert_eq!(
            origin("http://127.0.0.1:18789/hooks/agent").as_deref(),
            Some("http://127.0.0.1:18789")
        );
        assert_eq!(
            origin("HTTPS://GW.example:443/x").as_deref(),
            Some("https://gw.example")
        );
        assert_eq!(origin("http://u:p@h:80").as_deref(), Some("http://h"));
        assert_eq!(origin("ftp://h/x"), None);
        assert_eq!(origin("http:///x"), None);
    }

    #[test]
    fn url_credentials_are_hidden() {
        assert_eq!(
            url_without_credentials("http://user:pw@h:8/x?y"),
            "http://user:***@h:8/x?y"
        );
        assert_eq!(
            url_without_credentials("http://token@h/x"),
            "http://***@h/x"
        );
        assert_eq!(url_without_credentials("http://h/x@y"), "http://h/x@y");
        assert_eq!(url_without_credentials("not a url"), "not a url");
    }
}
