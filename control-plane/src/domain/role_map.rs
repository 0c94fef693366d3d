//! [`RoleMap`]: which identity-provider group grants which [`Role`]
//! (`serve --oidc-role-map GROUP=ROLE`, repeatable).

use super::Role;

/// Provider groups and the role each grants, in the order given. Group names
/// are compared exactly (case-sensitively), as providers send them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleMap {
    entries: Vec<(String, Role)>,
}

impl RoleMap {
    /// Parses `GROUP=ROLE` entries (split at the last `=`, so a group may
    /// contain `=`). Errors name the entry and what to fix.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let mut parsed: Vec<(String, Role)> = Vec::new();
        for entry in entries {
            let entry = entry.as_ref();
            let Some((group, role)) = entry.rsplit_once('=') else {
                return Err(format!(
                    "--oidc-role-map {entry:?}: expected GROUP=ROLE, e.g. corsair-admins=admin"
                ));
            };
            let group = group.trim();
            if group.is_empty() {
                return Err(format!("--oidc-role-map {entry:?}: the group is empty"));
            }
            let Some(role) = Role::parse(role.trim()) else {
                return Err(format!(
                    "--oidc-role-map {entry:?}: unknown role {:?}; use viewer, requester, approver or admin",
                    role.trim()
                ));
            };
            if let Some((_, earlier)) = parsed.iter().find(|(g, _)| g == group) {
                return Err(format!(
                    "--oidc-role-map {entry:?}: group {group:?} is already mapped to {}; map each group once",
                    earlier.as_str()
                ));
            }
            parsed.push((group.to_owned(), role));
        }
        Ok(Self { entries: parsed })
    }

    /// Whether no group is mapped (then nobody can sign in via the provider).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The highest role any of `groups` is mapped to; `None` when none is.
    pub fn highest_role<S: AsRef<str>>(&self, groups: &[S]) -> Option<Role> {
        self.entries
            .iter()
            .filter(|(group, _)| groups.iter().any(|g| g.as_ref() == group))
            .map(|(_, role)| *role)
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_mapped_twice_is_refused() {
        let err = RoleMap::parse(&["ops=admin", "ops=viewer"]).err();
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("\"ops\" is already mapped to admin")),
            "{err:?}"
        );
    }

    #[test]
    fn highest_mapped_role_wins_and_unmapped_groups_give_none() {
        let map = RoleMap::parse(&[
            "corsair-viewers=viewer",
            "corsair-admins=admin",
            "team=ops=approver",
        ])
        .unwrap();
        assert_eq!(
            map.highest_role(&["corsair-viewers", "corsair-admins"]),
            Some(Role::Admin)
        );
        assert_eq!(map.highest_role(&["team=ops"]), Some(Role::Approver));
        assert_eq!(map.highest_role(&["marketing"]), None);
        assert_eq!(map.highest_role::<&str>(&[]), None);
        assert_eq!(map.highest_role(&["Corsair-Admins"]), None);
    }

    #[test]
    fn bad_entries_are_refused_with_what_to_fix() {
        assert!(
            RoleMap::parse(&["admins"])
                .unwrap_err()
                .contains("GROUP=ROLE")
        );
        assert!(
            RoleMap::parse(&["admins=root"])
                .unwrap_err()
                .contains("unknown role")
        );
        assert!(
            RoleMap::parse(&["=admin"])
                .unwrap_err()
                .contains("group is empty")
        );
    }
}
