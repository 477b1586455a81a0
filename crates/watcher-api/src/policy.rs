//! Policy: upstream's rule names and defaults, overridable by a policy file
//! in oslo.policy's syntax (`role:X`, `rule:Y`, `and`, `or`, `not`,
//! parentheses, `@` always, `!` never, empty = always), and generic checks
//! of the caller's credentials (`project_id:%(project_id)s`,
//! `user_id:abc`, `is_admin:True`).
//!
//! The target of a generic check is, as upstream's for its collection
//! routes, the caller's own `project_id` and `user_id`: Watcher's resources
//! belong to no project, so `project_id:%(project_id)s` passes for any
//! caller with a project-scoped token. `http:` checks never pass.
//!
//! The file is the usual flat YAML mapping of rule name to expression, one
//! per line (`"action_plan:update": "rule:admin_api"`); that subset is parsed
//! here, so no YAML library is needed.

use super::caller::Caller;
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq)]
enum Rule {
    Always(bool),
    Role(String),
    Ref(String),
    /// `kind:value`: the credential `kind` equals `value`, or the target's
    /// field when `value` is `%(field)s`.
    Generic {
        kind: String,
        value: String,
    },
    And(Vec<Rule>),
    Or(Vec<Rule>),
    Not(Box<Rule>),
}

#[derive(Debug, thiserror::Error)]
#[error("policy: {0}")]
pub struct PolicyError(pub String);

/// Words split at whitespace, with parentheses peeled off their ends only
/// (as oslo.policy does), so `%(project_id)s` stays whole.
fn tokenize(expr: &str) -> Vec<String> {
    let mut out = vec![];
    for word in expr.split_whitespace() {
        let inner = word.trim_start_matches('(');
        out.extend(std::iter::repeat_n(
            "(".to_string(),
            word.len() - inner.len(),
        ));
        let core = inner.trim_end_matches(')');
        if !core.is_empty() {
            out.push(core.to_string());
        }
        out.extend(std::iter::repeat_n(
            ")".to_string(),
            inner.len() - core.len(),
        ));
    }
    out
}

struct Parser {
    tokens: Vec<String>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }
    fn next(&mut self) -> Option<String> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }
    fn or(&mut self) -> Result<Rule, PolicyError> {
        let mut parts = vec![self.and()?];
        while self.peek() == Some("or") {
            self.next();
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Rule::Or(parts)
        })
    }
    fn and(&mut self) -> Result<Rule, PolicyError> {
        let mut parts = vec![self.not()?];
        while self.peek() == Some("and") {
            self.next();
            parts.push(self.not()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Rule::And(parts)
        })
    }
    fn not(&mut self) -> Result<Rule, PolicyError> {
        if self.peek() == Some("not") {
            self.next();
            return Ok(Rule::Not(Box::new(self.not()?)));
        }
        self.atom()
    }
    fn atom(&mut self) -> Result<Rule, PolicyError> {
        match self.next().as_deref() {
            Some("(") => {
                let r = self.or()?;
                match self.next().as_deref() {
                    Some(")") => Ok(r),
                    _ => Err(PolicyError("missing ')'".into())),
                }
            }
            Some("@") => Ok(Rule::Always(true)),
            Some("!") => Ok(Rule::Always(false)),
            Some(check) => match check.split_once(':') {
                Some(("role", r)) => Ok(Rule::Role(r.to_string())),
                Some(("rule", r)) => Ok(Rule::Ref(r.to_string())),
                // Remote HTTP checks are not made: they never pass.
                Some(("http" | "https", _)) => Ok(Rule::Always(false)),
                Some((kind, value)) => Ok(Rule::Generic {
                    kind: kind.to_string(),
                    value: unquote(value).to_string(),
                }),
                None => Err(PolicyError(format!(
                    "'{check}' is not a check (expected kind:value)"
                ))),
            },
            None => Err(PolicyError("expression ends too early".into())),
        }
    }
}

fn parse(expr: &str) -> Result<Rule, PolicyError> {
    let tokens = tokenize(expr);
    if tokens.is_empty() {
        return Ok(Rule::Always(true));
    }
    let mut p = Parser { tokens, at: 0 };
    let r = p.or()?;
    match p.peek() {
        None => Ok(r),
        Some(t) => Err(PolicyError(format!("unexpected '{t}' in '{expr}'"))),
    }
}

/// The rules in force.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: HashMap<String, Rule>,
}

const READS: &[&str] = &["get_all", "detail", "get"];
const RESOURCES: &[(&str, &[&str])] = &[
    ("goal", &[]),
    ("strategy", &["state"]),
    ("audit", &["create", "update", "delete"]),
    ("audit_template", &["create", "update", "delete"]),
    // `pause` and `resume`: watcherd's own (`/v1/x-watcherd/...`).
    (
        "action_plan",
        &["update", "start", "delete", "pause", "resume"],
    ),
    ("action", &["update"]),
    ("service", &[]),
    ("scoring_engine", &[]),
];

impl Default for Policy {
    /// Upstream's names; reads also allowed to `reader` (`rule:reader_api`).
    fn default() -> Self {
        let mut text = vec![
            ("admin_api", "role:admin or role:administrator".to_string()),
            (
                "admin_or_service_api",
                "rule:admin_api or role:service".to_string(),
            ),
            ("reader_api", "rule:admin_api or role:reader".to_string()),
            ("data_model:get_all", "rule:reader_api".to_string()),
            ("webhook:trigger", "rule:admin_or_service_api".to_string()),
        ];
        let mut owned = vec![];
        for (res, extra) in RESOURCES {
            for r in READS {
                owned.push((format!("{res}:{r}"), "rule:reader_api"));
            }
            for e in *extra {
                let rule = if *e == "state" {
                    "rule:reader_api"
                } else {
                    "rule:admin_api"
                };
                owned.push((format!("{res}:{e}"), rule));
            }
        }
        let mut rules = HashMap::new();
        for (k, v) in text.drain(..) {
            rules.insert(k.to_string(), parse(&v).expect("default rules parse"));
        }
        for (k, v) in owned {
            rules.insert(k, parse(v).expect("default rules parse"));
        }
        Policy { rules }
    }
}

fn unquote(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .or_else(|| s.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
        .unwrap_or(s)
}

impl Policy {
    /// The defaults with `text`'s rules over them.
    pub fn with_overrides(text: &str) -> Result<Policy, PolicyError> {
        let mut policy = Policy::default();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line == "---" {
                continue;
            }
            let (key, value) = if let Some(rest) = line.strip_prefix('"') {
                let end = rest
                    .find('"')
                    .ok_or_else(|| PolicyError(format!("line {}: unclosed quote", n + 1)))?;
                let after = rest[end + 1..].trim_start();
                let value = after.strip_prefix(':').ok_or_else(|| {
                    PolicyError(format!("line {}: expected ':' after the rule name", n + 1))
                })?;
                (&rest[..end], value)
            } else {
                line.split_once(": ").ok_or_else(|| {
                    PolicyError(format!("line {}: expected \"name\": \"expression\"", n + 1))
                })?
            };
            let rule = parse(unquote(value))
                .map_err(|e| PolicyError(format!("line {}: {}", n + 1, e.0)))?;
            policy.rules.insert(unquote(key).to_string(), rule);
        }
        Ok(policy)
    }

    pub fn allowed(&self, rule: &str, caller: &Caller) -> bool {
        match self.rules.get(rule) {
            Some(r) => self.eval(r, caller, 0),
            None => false,
        }
    }

    fn eval(&self, rule: &Rule, caller: &Caller, depth: u32) -> bool {
        if depth > 32 {
            return false; // a rule that refers to itself
        }
        match rule {
            Rule::Always(b) => *b,
            Rule::Role(r) => caller.roles.iter().any(|x| x.eq_ignore_ascii_case(r)),
            Rule::Generic { kind, value } => {
                let credential = |name: &str| -> Option<String> {
                    match name {
                        "project_id" | "tenant" | "tenant_id" => caller.project_id.clone(),
                        "user_id" | "user" => caller.user_id.clone(),
                        "is_admin" => Some(
                            if self.allowed("admin_api", caller) {
                                "True"
                            } else {
                                "False"
                            }
                            .into(),
                        ),
                        _ => None,
                    }
                };
                let expected = match value.strip_prefix("%(").and_then(|v| v.strip_suffix(")s")) {
                    // The target is the caller's own project and user.
                    Some(field) => credential(field),
                    None => Some(value.clone()),
                };
                match (credential(kind), expected) {
                    (Some(have), Some(want)) => have.eq_ignore_ascii_case(&want),
                    _ => false,
                }
            }
            Rule::Ref(name) => self
                .rules
                .get(name)
                .is_some_and(|r| self.eval(r, caller, depth + 1)),
            Rule::And(parts) => parts.iter().all(|p| self.eval(p, caller, depth + 1)),
            Rule::Or(parts) => parts.iter().any(|p| self.eval(p, caller, depth + 1)),
            Rule::Not(r) => !self.eval(r, caller, depth + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(roles: &[&str]) -> Caller {
        Caller {
            user_id: Some("u1".into()),
            project_id: Some("p1".into()),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn defaults_let_readers_read_and_admins_change() {
        let p = Policy::default();
        assert!(p.allowed("action_plan:get", &who(&["reader"])));
        assert!(p.allowed("strategy:state", &who(&["reader"])));
        assert!(!p.allowed("action_plan:update", &who(&["reader"])));
        assert!(p.allowed("action_plan:update", &who(&["admin"])));
        assert!(p.allowed("webhook:trigger", &who(&["service"])));
        assert!(!p.allowed("action_plan:get", &who(&["member"])));
        assert!(!p.allowed("no:such:rule", &who(&["admin"])));
    }

    #[test]
    fn a_policy_file_overrides_rules_with_oslo_syntax() {
        let text = "# ours\n\"action_plan:update\": \"role:operator and not role:intern\"\n'audit:create': '@'\naction:get_all: \"(role:a or role:b) and rule:reader_api\"\n";
        let p = Policy::with_overrides(text).unwrap();
        assert!(p.allowed("action_plan:update", &who(&["operator"])));
        assert!(!p.allowed("action_plan:update", &who(&["operator", "intern"])));
        assert!(!p.allowed("action_plan:update", &who(&["admin"])));
        assert!(p.allowed("audit:create", &who(&[])));
        assert!(p.allowed("action:get_all", &who(&["a", "reader"])));
        assert!(!p.allowed("action:get_all", &who(&["a"])));
    }

    #[test]
    fn generic_checks_compare_the_callers_credentials() {
        let text = "a: \"project_id:%(project_id)s\"\nb: \"user_id:u1\"\nc: \"user_id:'u2'\"\nd: \"is_admin:True\"\ne: \"http://example.com/check\"\nf: \"domain_id:%(domain_id)s\"\ng: \"(role:x or project_id:%(project_id)s) and not role:intern\"\n";
        let p = Policy::with_overrides(text).unwrap();
        let member = who(&["member"]);
        assert!(p.allowed("a", &member));
        let unscoped = Caller {
            project_id: None,
            ..member.clone()
        };
        assert!(!p.allowed("a", &unscoped));
        assert!(p.allowed("b", &member));
        assert!(!p.allowed("c", &member));
        assert!(!p.allowed("d", &member));
        assert!(p.allowed("d", &who(&["admin"])));
        assert!(!p.allowed("e", &who(&["admin"])));
        assert!(!p.allowed("f", &who(&["admin"])));
        assert!(p.allowed("g", &member));
        assert!(!p.allowed("g", &who(&["intern"])));
    }

    #[test]
    fn a_broken_policy_file_names_the_line() {
        let err = Policy::with_overrides("\"a:b\": \"role:x or\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1"), "{err}");
        let err = Policy::with_overrides("ok: \"@\"\nbroken\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
    }
}
