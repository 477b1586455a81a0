//! Microversions: `OpenStack-API-Version: infra-optim X.Y`, parsed as
//! upstream does (missing, or any part not a number -> 1.0; `latest` ->
//! 1.7; three or more numbers, or out of range -> 406).

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
    // As upstream's parser: a part that is not a number makes the whole
    // value 1.0 (`1.latest`, `1.x`, `garbage`); one number is X.0; more
    // than two numbers, or a version out of range, is 406.
    let parts: Result<Vec<i64>, _> = value.split('.').map(|p| p.trim().parse::<i64>()).collect();
    let Ok(parts) = parts else { return Ok(MIN) };
    let (major, minor) = match parts[..] {
        [major] => (major, 0),
        [major, minor] => (major, minor),
        _ => return Err(format!("Invalid API version format: '{value}'.")),
    };
    let in_range = major == 1 && (0..=i64::from(MAX.1)).contains(&minor);
    if !in_range {
        return Err(format!(
            "Version {major}.{minor} was requested but the minor version is not supported by this service. \
             The supported version range is: [{MIN}, {MAX}]."
        ));
    }
    Ok(Version(1, minor as u32))
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
        // Whatever upstream cannot read as numbers is 1.0, not 406.
        for odd in ["1.latest", "1.x", "1.", ".5", "garbage", "1.5.x", "v1.5"] {
            assert_eq!(parse(Some(&format!("infra-optim {odd}"))), Ok(MIN), "{odd}");
        }
        assert!(parse(Some("infra-optim 1.5.1"))
            .unwrap_err()
            .contains("Invalid API version format"));
        assert!(parse(Some("infra-optim 1.-1")).is_err());
    }
}
