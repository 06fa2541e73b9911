//! Properties of the small matchers written by hand instead of pulling in crates (chat-core's
//! dependency allow-list): glob matching against a dynamic-programming oracle, colour
//! normalisation, the e-mail check, wildcard domains and file type specifiers.

mod config_support;

use chat_core::AttachmentMeta;
use chat_core::config::{
    DomainPattern, FileType, Origin, glob_matches, is_valid_email, normalise_colour,
};
use config_support::cases;
use proptest::prelude::*;

/// The textbook O(n·m) table: the oracle the linear-time matcher must agree with.
fn glob_oracle(pattern: &[char], text: &[char]) -> bool {
    let mut dp = vec![vec![false; text.len() + 1]; pattern.len() + 1];
    dp[0][0] = true;
    for p in 1..=pattern.len() {
        dp[p][0] = dp[p - 1][0] && pattern[p - 1] == '*';
        for t in 1..=text.len() {
            dp[p][t] = match pattern[p - 1] {
                '*' => dp[p - 1][t] || dp[p][t - 1],
                '?' => dp[p - 1][t - 1],
                c => dp[p - 1][t - 1] && c == text[t - 1],
            };
        }
    }
    dp[pattern.len()][text.len()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn t2_glob_agrees_with_the_oracle(pattern in "[ab*?/]{0,8}", text in "[ab/]{0,10}") {
        let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
        prop_assert_eq!(glob_matches(&pattern, &text), glob_oracle(&p, &t));
    }

    #[test]
    fn t2_glob_without_wildcards_is_equality_and_stars_mean_contains(
        needle in "[a-z/.]{0,6}",
        text in "[a-z/.]{0,12}",
    ) {
        prop_assert_eq!(glob_matches(&needle, &text), needle == text);
        prop_assert_eq!(glob_matches(&format!("*{needle}*"), &text), text.contains(&needle));
        prop_assert_eq!(glob_matches(&format!("{needle}*"), &text), text.starts_with(&needle));
    }

    #[test]
    fn m4_colours_normalise_to_lowercase_six_digits(r in any::<u8>(), g in any::<u8>(), b in any::<u8>(), short in 0u8..16) {
        let upper = format!("#{r:02X}{g:02X}{b:02X}");
        prop_assert_eq!(normalise_colour("c", &upper).unwrap(), format!("#{r:02x}{g:02x}{b:02x}"));
        let three = format!("#{short:X}{short:x}{short:X}");
        let digit = format!("{short:x}");
        prop_assert_eq!(normalise_colour("c", &three).unwrap(), format!("#{}", digit.repeat(6)));
        let without_hash = normalise_colour("c", &upper[1..]).is_err();
        prop_assert!(without_hash, "a colour needs its #");
        let seven_digits = normalise_colour("c", &format!("{upper}0")).is_err();
        prop_assert!(seven_digits);
    }

    #[test]
    fn f1_emails_of_the_ordinary_shape_pass_and_a_space_or_missing_at_fails(
        local in "[a-z0-9]{1,8}(\\.[a-z0-9+_-]{1,5})?",
        domain in "[a-z0-9]{1,8}(-[a-z0-9]{1,4})?",
        tld in "[a-z]{2,6}",
        cut in any::<prop::sample::Index>(),
    ) {
        let address = format!("{local}@{domain}.{tld}");
        prop_assert!(is_valid_email(&address), "{}", address);
        let at = cut.index(address.len() + 1);
        let mut spaced = address.clone();
        spaced.insert(at, ' ');
        prop_assert!(!is_valid_email(&spaced), "{}", spaced);
        let without_at = is_valid_email(&address.replace('@', ""));
        prop_assert!(!without_at);
        let bare_host = is_valid_email(&format!("{local}@{domain}"));
        prop_assert!(!bare_host, "a bare host is no mail domain");
    }

    #[test]
    fn m5_wildcard_domains_cover_subdomains_only(
        sub in "[a-z0-9]{1,6}(\\.[a-z0-9]{1,6})?",
        base in "[a-z]{1,8}\\.(com|org|fr)",
        https in any::<bool>(),
    ) {
        let scheme = if https { "https" } else { "http" };
        let pattern = DomainPattern::parse(&format!("*.{base}")).unwrap();
        let origin = |host: &str| Origin::parse(&format!("{scheme}://{host}")).unwrap();
        let subdomain = pattern.matches(&origin(&format!("{sub}.{base}")));
        let upper_case = pattern.matches(&origin(&format!("{}.{base}", sub.to_uppercase())));
        let bare = pattern.matches(&origin(&base));
        let glued = pattern.matches(&origin(&format!("{sub}{base}")));
        let suffixed = pattern.matches(&origin(&format!("{sub}.{base}.evil.net")));
        let other_port = pattern.matches(&Origin::parse(&format!("{scheme}://{sub}.{base}:8443")).unwrap());
        prop_assert!(subdomain && upper_case);
        prop_assert!(!bare && !glued && !suffixed);
        prop_assert!(!other_port, "only the default port without an explicit one");
        // The stored form reads back as the same pattern.
        prop_assert_eq!(DomainPattern::parse(&pattern.to_string()).unwrap(), pattern);
    }

    #[test]
    fn f1_extension_specifiers_ignore_case(stem in "[a-zA-Z0-9_]{1,8}", ext in "[a-z]{1,4}", upper in any::<bool>()) {
        let accept = FileType::parse_accept(&format!(".{}", ext.to_uppercase())).unwrap();
        let ext_in_name = if upper { ext.to_uppercase() } else { ext.clone() };
        let file = |name: String| AttachmentMeta {
            file_name: name,
            content_type: "application/octet-stream".into(),
            size_bytes: 1,
            storage_key: "k".into(),
        };
        let plain = accept[0].accepts(&file(format!("{stem}.{ext_in_name}")));
        let doubled = accept[0].accepts(&file(format!("{stem}.{ext_in_name}.zzzzz")));
        prop_assert!(plain && !doubled);
    }
}
