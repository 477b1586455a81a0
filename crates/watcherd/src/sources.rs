//! Where the configuration comes from: watcherd's TOML file, upstream's
//! `watcher.conf` files, or both (the TOML laid over the INI's result).

use crate::config::{Config, ConfigError};
use crate::oslo_conf::{merge, Account, OsloConf, OsloSource};
use std::path::{Path, PathBuf};

/// The configuration as read, and what the files say beyond it.
#[derive(Debug, Default)]
pub struct Loaded {
    pub config: Config,
    /// What became of each option of upstream's files (none without them).
    pub accounts: Vec<Account>,
    /// Upstream's `[DEFAULT] debug`: the log's default level is `debug`.
    pub debug: bool,
    /// Upstream's `[DEFAULT] log_dir` / `log_file`: the log's default place.
    pub log_file: Option<PathBuf>,
}

/// The settings of upstream's `watcher.conf` files (oslo.config's
/// `--config-file` and `--config-dir`, in that order), with a TOML file
/// laid over them when both are given; and what became of each option.
pub fn load(toml_file: Option<&Path>, oslo: &[OsloSource]) -> Result<Loaded, ConfigError> {
    if oslo.is_empty() {
        let config = match toml_file {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        return Ok(Loaded {
            config,
            ..Default::default()
        });
    }
    let files = OsloConf::read(oslo)?;
    let (mut table, accounts) = files.to_table()?;
    let mut origin = "the watcher.conf files".to_string();
    if let Some(path) = toml_file {
        // Checked whole first, so that its errors name their line.
        Config::load(path)?;
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let over: toml::Table = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.display().to_string(),
            source,
        })?;
        merge(&mut table, over);
        origin = format!("{origin} with {} over them", path.display());
    }
    let config = toml::Value::Table(table)
        .try_into()
        .map_err(|e| ConfigError::Invalid(format!("{origin}: {e}")))?;
    Ok(Loaded {
        config,
        accounts,
        debug: files.debug(),
        log_file: files.log_file(),
    })
}
