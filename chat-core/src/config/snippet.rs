//! The embed snippet (M5, M6) and the origin check against the authorised domains (M5, V3).
//!
//! Both are pure so that the admin UI, the service and the tests produce and check exactly the
//! same thing. The snippet escapes every value it embeds, so page data can never break out of the
//! script it is written into.

use super::common::{ConfigRejection, check_count, check_text, check_url, is_dns_label};
use super::module::Module;
use crate::{FIELD_TEXT_BYTES_MAX, PAGE_VAR_NAME_BYTES_MAX, PAGE_VARS_MAX, PageData};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt::{self, Write as _};

/// A web scheme an authorised domain may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scheme {
    /// `http`, default port 80.
    Http,
    /// `https`, default port 443.
    Https,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }

    fn split(text: &str) -> (Option<Self>, &str) {
        if let Some(rest) = text.strip_prefix("https://") {
            (Some(Self::Https), rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (Some(Self::Http), rest)
        } else {
            (None, text)
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// An authorised domain (account security settings, M5): `example.com`, `*.example.com`,
/// `https://shop.example.com`, `http://localhost:8080`.
///
/// Without a scheme both http and https match; without a port only the scheme's default port
/// matches. `*.example.com` matches every subdomain at any depth but not `example.com` itself
/// (authorise both when both are wanted). Hosts compare case-insensitively (stored lowercase).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DomainPattern {
    scheme: Option<Scheme>,
    wildcard: bool,
    host: String,
    port: Option<u16>,
}

impl DomainPattern {
    /// Parses a pattern; the refusal names the `authorised domain` field.
    pub fn parse(text: &str) -> Result<Self, ConfigRejection> {
        let invalid = |reason| ConfigRejection::Invalid {
            field: "authorised domain".to_owned(),
            value: text.to_owned(),
            reason,
        };
        check_text("authorised domain", text, DOMAIN_PATTERN_CHARS_MAX)?;
        let (scheme, rest) = Scheme::split(text.trim());
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = split_port(rest).ok_or_else(|| invalid("bad port"))?;
        let host = host.to_ascii_lowercase();
        let (wildcard, host) = match host.strip_prefix("*.") {
            Some(base) => (true, base.to_owned()),
            None => (false, host),
        };
        if !is_host(&host) {
            return Err(invalid("expected [scheme://][*.]host[:port]"));
        }
        Ok(Self {
            scheme,
            wildcard,
            host,
            port,
        })
    }

    /// Whether a browser origin is covered by this pattern.
    pub fn matches(&self, origin: &Origin) -> bool {
        let scheme_ok = self.scheme.is_none_or(|s| s == origin.scheme);
        let port = self.port.unwrap_or(origin.scheme.default_port());
        let host_ok = if self.wildcard {
            origin
                .host
                .strip_suffix(self.host.as_str())
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.'))
        } else {
            origin.host == self.host
        };
        scheme_ok && port == origin.port && host_ok
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(scheme) = self.scheme {
            write!(f, "{}://", scheme.as_str())?;
        }
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

impl TryFrom<String> for DomainPattern {
    type Error = ConfigRejection;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<DomainPattern> for String {
    fn from(pattern: DomainPattern) -> Self {
        pattern.to_string()
    }
}

/// A browser `Origin`: scheme, lowercase host and port (the scheme's default when absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// http or https.
    pub scheme: Scheme,
    /// The host, lowercase.
    pub host: String,
    /// The port.
    pub port: u16,
}

impl Origin {
    /// Parses an `Origin` header value (`https://shop.example.com`, `http://localhost:8080`).
    /// `null`, paths, user info and other schemes are refused.
    pub fn parse(text: &str) -> Result<Self, OriginRefused> {
        let malformed = || OriginRefused::Malformed {
            origin: text.to_owned(),
        };
        let (scheme, rest) = Scheme::split(text);
        let scheme = scheme.ok_or_else(malformed)?;
        let (host, port) = split_port(rest).ok_or_else(malformed)?;
        let host = host.to_ascii_lowercase();
        if !is_host(&host) {
            return Err(malformed());
        }
        Ok(Self {
            scheme,
            host,
            port: port.unwrap_or(scheme.default_port()),
        })
    }
}

/// Why a request's origin was refused (M5).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OriginRefused {
    /// Not a `scheme://host[:port]` origin (including `null`).
    #[error("origin {origin:?} is not a web origin")]
    Malformed {
        /// What was sent.
        origin: String,
    },
    /// A well-formed origin that no authorised domain covers.
    #[error("origin {origin:?} is not an authorised domain")]
    NotAuthorised {
        /// What was sent.
        origin: String,
    },
}

/// M5: accepts a request only from an origin that an authorised domain covers.
pub fn check_origin(
    origin: &str,
    authorised: &BTreeSet<DomainPattern>,
) -> Result<(), OriginRefused> {
    let parsed = Origin::parse(origin)?;
    if authorised.iter().any(|pattern| pattern.matches(&parsed)) {
        Ok(())
    } else {
        Err(OriginRefused::NotAuthorised {
            origin: origin.to_owned(),
        })
    }
}

fn split_port(text: &str) -> Option<(&str, Option<u16>)> {
    match text.rsplit_once(':') {
        None => Some((text, None)),
        Some((host, port)) => {
            // Digits only: `u16::from_str` would also take a leading `+`.
            if port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
            Some((host, Some(port)))
        }
    }
}

/// Longest authorised-domain pattern an admin may type, in characters (checked before parsing, so
/// that parsing never walks an unbounded text).
const DOMAIN_PATTERN_CHARS_MAX: usize = 255;
/// Longest host name an authorised domain or an origin may have, in bytes (RFC 1035).
const HOST_BYTES_MAX: usize = 253;

/// Dot-separated labels of ASCII letters, digits and inner `-` (also covers `localhost` and
/// dotted IPv4 addresses). IPv6 literals are not supported.
fn is_host(host: &str) -> bool {
    !host.is_empty() && host.len() <= HOST_BYTES_MAX && host.split('.').all(is_dns_label)
}

/// Checks page data against its limits (M6): at most [`PAGE_VARS_MAX`] vars, names of at most
/// [`PAGE_VAR_NAME_BYTES_MAX`] bytes, values of at most [`FIELD_TEXT_BYTES_MAX`] bytes.
pub fn check_page_data(data: &PageData) -> Result<(), ConfigRejection> {
    let too_long = |field: &str, bytes_max| ConfigRejection::TooManyBytes {
        field: field.to_owned(),
        bytes_max,
    };
    for (field, value) in [
        ("firstname", &data.firstname),
        ("lastname", &data.lastname),
        ("message", &data.message),
    ] {
        if value
            .as_ref()
            .is_some_and(|v| v.len() > FIELD_TEXT_BYTES_MAX)
        {
            return Err(too_long(field, FIELD_TEXT_BYTES_MAX));
        }
    }
    check_count("vars", data.vars.len(), PAGE_VARS_MAX)?;
    for (name, value) in &data.vars {
        if name.is_empty() {
            return Err(ConfigRejection::Empty {
                field: "vars name".to_owned(),
            });
        }
        if name.len() > PAGE_VAR_NAME_BYTES_MAX {
            return Err(too_long("vars name", PAGE_VAR_NAME_BYTES_MAX));
        }
        if value.len() > FIELD_TEXT_BYTES_MAX {
            return Err(too_long(name, FIELD_TEXT_BYTES_MAX));
        }
    }
    Ok(())
}

/// M5, M6: the HTML to paste before `</body>`: a configuration object (module id, reference,
/// base URL and the optional page data) and the widget script. Every embedded value is escaped
/// for a `<script>` block or an HTML attribute.
pub fn render_snippet(
    module: &Module,
    base_url: &str,
    data: &PageData,
) -> Result<String, ConfigRejection> {
    check_url("base_url", base_url)?;
    check_page_data(data)?;
    let base = base_url.trim_end_matches('/');
    let mut config = String::from("{");
    let _ = write!(
        config,
        "\"module\":{},\"reference\":{},\"baseUrl\":{}",
        js_string(&module.id.to_string()),
        js_string(&module.reference),
        js_string(base)
    );
    let mut fields = Vec::new();
    for (name, value) in [
        ("firstname", &data.firstname),
        ("lastname", &data.lastname),
        ("message", &data.message),
    ] {
        if let Some(value) = value {
            fields.push(format!("\"{name}\":{}", js_string(value)));
        }
    }
    if !data.vars.is_empty() {
        let vars: Vec<String> = data
            .vars
            .iter()
            .map(|(n, v)| format!("{{\"name\":{},\"value\":{}}}", js_string(n), js_string(v)))
            .collect();
        fields.push(format!("\"vars\":[{}]", vars.join(",")));
    }
    if !fields.is_empty() {
        let _ = write!(config, ",\"data\":{{{}}}", fields.join(","));
    }
    config.push('}');
    Ok(format!(
        "<!-- Live chat widget: paste before </body> -->\n\
         <script>window.ChatEngine = {config};</script>\n\
         <script async src=\"{}\" data-module=\"{}\"></script>\n",
        html_attribute(&format!("{base}/widget.js")),
        module.id
    ))
}

/// A JSON string literal that is also safe inside an HTML `<script>` block.
fn js_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\'' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn html_attribute(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn m5_domain_patterns_and_host_names_are_bounded() {
        let label = "a".repeat(63);
        let host = |last: usize| format!("{label}.{label}.{label}.{}", "b".repeat(last));
        assert_eq!(host(61).len(), HOST_BYTES_MAX);
        assert!(DomainPattern::parse(&host(61)).is_ok());
        assert!(matches!(
            DomainPattern::parse(&host(62)),
            Err(ConfigRejection::Invalid { field, .. }) if field == "authorised domain"
        ));
        assert_eq!(
            DomainPattern::parse(&"a".repeat(DOMAIN_PATTERN_CHARS_MAX + 1)),
            Err(ConfigRejection::TooLong {
                field: "authorised domain".to_owned(),
                chars_max: DOMAIN_PATTERN_CHARS_MAX,
            })
        );
    }

    #[test]
    fn js_strings_cannot_close_the_script() {
        assert_eq!(js_string("</script>"), "\"\\u003c/script\\u003e\"");
        assert_eq!(js_string("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
        assert_eq!(js_string("\u{2028}"), "\"\\u2028\"");
    }
}
