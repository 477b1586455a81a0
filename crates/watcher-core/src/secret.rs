//! Secrets that stay secret: one type for every password, token and key,
//! and the redaction of URLs that carry one.
//!
//! A [`Secret`] prints as `***` in `Debug`, `Display` and when serialized,
//! so a secret in a struct that is logged, shown in an error or written by
//! `--print-config` never leaks by accident. Its value is read with
//! [`Secret::expose`], which is easy to find in a review. Serialization
//! writes the value only inside [`revealing`] (`--print-config
//! --show-secrets`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cell::Cell;
use std::fmt;

/// What a secret looks like wherever it is shown.
pub const MASK: &str = "***";

/// A password, token or key.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, to send where it is needed (a login, a header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.to_string())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

thread_local! {
    static REVEAL: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with secrets (and the passwords of URLs passed through
/// [`redact_url_unless_revealing`]) serialized in clear: only for
/// `--print-config --show-secrets`.
pub fn revealing<T>(f: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            REVEAL.with(|r| r.set(self.0));
        }
    }
    let _reset = Reset(REVEAL.with(|r| r.replace(true)));
    f()
}

fn is_revealing() -> bool {
    REVEAL.with(Cell::get)
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if is_revealing() || self.0.is_empty() {
            s.serialize_str(&self.0)
        } else {
            s.serialize_str(MASK)
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// The URL with its secrets hidden, for logs, messages and error bodies:
/// the password of every `user:password@` (a `transport_url` may list
/// several hosts, each with its own), and the value of any query parameter
/// named like a secret (`?password=`, `sslpassword=`, `token=`).
pub fn redact_url(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let mut out = String::with_capacity(url.len());
    match head.split_once("://") {
        Some((scheme, rest)) => {
            out.push_str(scheme);
            out.push_str("://");
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let hosts: Vec<String> = authority
                .split(',')
                .map(|h| match h.rsplit_once('@') {
                    Some((userinfo, host)) => match userinfo.split_once(':') {
                        Some((user, _)) => format!("{user}:{MASK}@{host}"),
                        None => h.to_string(),
                    },
                    None => h.to_string(),
                })
                .collect();
            out.push_str(&hosts.join(","));
            out.push_str(path);
        }
        None => out.push_str(head),
    }
    if let Some(q) = query {
        out.push('?');
        let params: Vec<String> = q
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if is_secret_name(k) => format!("{k}={MASK}"),
                _ => p.to_string(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
}

/// Decodes the `%XX` escapes of a URL's part (a password may hold `@`).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// [`redact_url`], except inside [`revealing`].
pub fn redact_url_unless_revealing(url: &str) -> String {
    if is_revealing() {
        url.to_string()
    } else {
        redact_url(url)
    }
}

fn is_secret_name(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "secret", "token", "passwd", "sslpassword"]
        .iter()
        .any(|s| k.contains(s))
}

/// Replaces every URL-looking word of `text` by its redacted form: for
/// messages that quote a URL inside other words (errors of libraries).
pub fn redact_urls_in(text: &str) -> String {
    if !text.contains("://") {
        return text.to_string();
    }
    text.split_inclusive(|c: char| c.is_whitespace() || c == '"' || c == '\'')
        .map(|word| {
            if word.contains("://") {
                redact_url(word)
            } else {
                word.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_print_as_a_mask_everywhere_but_expose() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
        assert_eq!(
            revealing(|| serde_json::to_string(&s).unwrap()),
            "\"hunter2\""
        );
        // Revealing ends with its closure.
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
        assert_eq!(s.expose(), "hunter2");
        let back: Secret = serde_json::from_str("\"x\"").unwrap();
        assert_eq!(back.expose(), "x");
        // An unset secret shows as unset, not as a masked value.
        assert_eq!(serde_json::to_string(&Secret::default()).unwrap(), "\"\"");
    }

    #[test]
    fn urls_lose_passwords_in_userinfo_and_query() {
        for (url, want) in [
            (
                "postgres://watcher:secret@db1:5432/watcher",
                "postgres://watcher:***@db1:5432/watcher",
            ),
            ("postgres://watcher@db1/w", "postgres://watcher@db1/w"),
            (
                "postgres://db1/w?user=w&password=secret&sslmode=verify-full",
                "postgres://db1/w?user=w&password=***&sslmode=verify-full",
            ),
            (
                "rabbit://a:s1@h1:5671,b:s2@h2:5671/vhost?ssl=1",
                "rabbit://a:***@h1:5671,b:***@h2:5671/vhost?ssl=1",
            ),
            (
                "http://admin:p@ss@keystone:5000/v3",
                "http://admin:***@keystone:5000/v3",
            ),
            ("sqlite:///var/lib/w.db", "sqlite:///var/lib/w.db"),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
        }
        assert_eq!(
            redact_urls_in("cannot reach \"rabbit://u:pw@h:1/\": refused"),
            "cannot reach \"rabbit://u:***@h:1/\": refused"
        );
    }
}
