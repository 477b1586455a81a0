//! Who is calling: what authentication found (a Keystone token's user,
//! project and roles; an admin in noauth mode), what policy decides on.

/// Who is calling, from the token.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    pub user_id: Option<String>,
    pub project_id: Option<String>,
    pub roles: Vec<String>,
}
