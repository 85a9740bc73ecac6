//! Finding and starting the external programs tests and benchmarks compare against.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Finds `name` on `PATH`, or in the sbin directories Debian puts nginx in.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

/// Starts nginx (`bin`) in the foreground with `conf`, written to `dir/nginx.conf`, and
/// prefix `dir`; its stderr is passed through. `conf` should say `daemon off;`.
pub fn spawn_nginx(bin: &Path, dir: &Path, conf: &str) -> std::io::Result<Child> {
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    Command::new(bin)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
}
