//! The approval links' key of a local state. A process that serves links (`braid
//! dev`) makes one when none is set (`BRAID_SECRET_APPROVAL_LINKS`, or
//! `approval-links` in `secrets.toml`), so links work with no setup; it is kept in the
//! state folder, readable by its owner only, so links stay valid across restarts.

use braid_handlers::links::LINK_KEY_SECRET;
use braid_ports::env_secrets::key_file;
use braid_ports::{PortError, PortResult, SecretStore};
use std::io::Write;
use std::path::Path;

/// Random bytes in a generated key.
const KEY_BYTES: usize = 32;

/// Makes the key file in `state_dir` unless `secrets` already resolve the key.
pub async fn ensure(secrets: &dyn SecretStore, state_dir: &Path) -> PortResult<()> {
    if secrets.secret(LINK_KEY_SECRET).await?.is_some() {
        return Ok(());
    }
    let file = key_file(state_dir, LINK_KEY_SECRET).expect("a plain name");
    let mut bytes = [0u8; KEY_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| PortError::backend_msg(format!("no randomness for a key: {e}")))?;
    let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = match options.open(&file) {
        Ok(mut f) => f.write_all(key.as_bytes()),
        // Made meanwhile by another process: that one is the key.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    };
    written.map_err(|e| PortError::backend_in(file.display(), e))
}
