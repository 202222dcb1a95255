//! The agent's environment variables, and the names they had when the agent was the LDAP bridge
//! (`AUTOID_BRIDGE_*`): still read when the new name is unset, with a warning naming the new one.

/// One environment variable: its name, and the old name still accepted in its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvVar {
    /// The name to set.
    pub name: &'static str,
    /// The name it had before (read only when `name` is unset).
    pub old: &'static str,
}

/// The configuration file (`--config`).
pub const CONFIG: EnvVar = EnvVar {
    name: "AUTOID_AGENT_CONFIG",
    old: "AUTOID_BRIDGE_CONFIG",
};
/// The bearer token, when no token file is configured.
pub const TOKEN: EnvVar = EnvVar {
    name: "AUTOID_AGENT_TOKEN",
    old: "AUTOID_BRIDGE_TOKEN",
};
/// The LDAP service account's password, when no file is configured.
pub const BIND_PASSWORD: EnvVar = EnvVar {
    name: "AUTOID_AGENT_BIND_PASSWORD",
    old: "AUTOID_BRIDGE_BIND_PASSWORD",
};
/// The log filter (tracing `EnvFilter` syntax, default `info`).
pub const LOG: EnvVar = EnvVar {
    name: "AUTOID_AGENT_LOG",
    old: "AUTOID_BRIDGE_LOG",
};
/// The log format (`--log-format`).
pub const LOG_FORMAT: EnvVar = EnvVar {
    name: "AUTOID_AGENT_LOG_FORMAT",
    old: "AUTOID_BRIDGE_LOG_FORMAT",
};

/// Every variable the agent reads.
pub const ALL: [EnvVar; 5] = [CONFIG, TOKEN, BIND_PASSWORD, LOG, LOG_FORMAT];

impl EnvVar {
    /// The value under the new name, else under the old one; `None` when neither is set (or
    /// the value is not Unicode).
    pub fn get(&self) -> Option<String> {
        std::env::var(self.name)
            .or_else(|_| std::env::var(self.old))
            .ok()
    }

    /// The value under the old name only, for settings whose new name a flag parser already
    /// read (`--config`, `--log-format`).
    pub fn get_old(&self) -> Option<String> {
        if std::env::var_os(self.name).is_some() {
            return None;
        }
        std::env::var(self.old).ok()
    }

    /// What to tell the operator about this variable's old name, if it is set: read in place
    /// of the new name, or ignored because the new name is set too.
    pub fn old_name_warning(&self) -> Option<String> {
        std::env::var_os(self.old)?;
        Some(if std::env::var_os(self.name).is_some() {
            format!(
                "{} is ignored: {} is set (the old name is no longer needed)",
                self.old, self.name
            )
        } else {
            format!(
                "{} is the old name of {}: it is still read, but rename it to {}",
                self.old, self.name, self.name
            )
        })
    }
}

/// The warnings for every old name set in the environment, to log once logging is up.
pub fn old_name_warnings() -> Vec<String> {
    ALL.iter().filter_map(EnvVar::old_name_warning).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_new_name_is_the_old_one_with_agent_for_bridge() {
        for var in ALL {
            assert_eq!(var.old.replacen("BRIDGE", "AGENT", 1), var.name);
        }
    }
}
