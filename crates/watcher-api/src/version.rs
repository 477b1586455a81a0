//! Microversions: `OpenStack-API-Version: infra-optim X.Y`, parsed as
//! upstream does (missing or non-numeric -> 1.0, `latest` -> 1.7, other
//! shapes or out-of-range -> 406).

pub const MIN: Version = Version(1, 0);
pub const MAX: Version = Version(1, 7);
pub const HEADER: &str = "openstack-api-version";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32);

impl Version {
    pub fn at_least(self, major: u32, minor: u32) -> bool {
        self >= Version(major, minor)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// Parses the header's value. `Err` carries the 406 message.
pub fn parse(header: Option<&str>) -> Result<Version, String> {
    let Some(header) = header else { return Ok(MIN) };
    // The header may name several services: "infra-optim 1.5, compute 2.1".
    let Some(value) = header.split(',').map(str::trim).find_map(|part| {
        let mut it = part.split_whitespace();
        (it.next()?.eq_ignore_ascii_case("infra-optim"))
            .then(|| it.next().unwrap_or("").to_string())
    }) else {
        return Ok(MIN);
    };
    if value.eq_ignore_ascii_case("latest") {
        return Ok(MAX);
    }
    if value.is_empty() || !value.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        return Ok(MIN);
    }
    let (major, minor) = match value.split_once('.') {
        Some((a, b)) => (a.parse::<u32>(), b.parse::<u32>()),
        None => (value.parse::<u32>(), Ok(0)),
    };
    let (Ok(major), Ok(minor)) = (major, minor) else {
        return Err(format!("Invalid API version format: '{value}'."));
    };
    let v = Version(major, minor);
    if major != 1 || v > MAX {
        return Err(format!(
            "Version {v} was requested but the minor version is not supported by this service. \
             The supported version range is: [{MIN}, {MAX}]."
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_upstream() {
        assert_eq!(parse(None), Ok(MIN));
        assert_eq!(parse(Some("infra-optim 1.5")), Ok(Version(1, 5)));
        assert_eq!(parse(Some("infra-optim latest")), Ok(MAX));
        assert_eq!(parse(Some("infra-optim 1")), Ok(Version(1, 0)));
        assert_eq!(parse(Some("compute 2.1")), Ok(MIN));
        assert!(parse(Some("infra-optim 1.99"))
            .unwrap_err()
            .contains("[1.0, 1.7]"));
        assert!(parse(Some("infra-optim 2.0")).is_err());
    }
}
