//! The kubeconfig for the simulator: plain `http://` server, no credentials, one context.

/// Name used for the cluster, user and context entries.
pub const CONTEXT_NAME: &str = "origin-discovery-sim";

/// A kubeconfig pointing at `server` (`http://127.0.0.1:PORT`), default namespace
/// `default`.
pub fn yaml(server: &str) -> String {
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: {CONTEXT_NAME}\n  \
           cluster:\n    \
             server: {server}\n\
         users:\n\
         - name: {CONTEXT_NAME}\n  \
           user: {{}}\n\
         contexts:\n\
         - name: {CONTEXT_NAME}\n  \
           context:\n    \
             cluster: {CONTEXT_NAME}\n    \
             user: {CONTEXT_NAME}\n    \
             namespace: default\n\
         current-context: {CONTEXT_NAME}\n"
    )
}
