//! The static `/` page of a server started without a status page ([`ServerConfig::status`]
//! unset; the daemon always sets one): what it is, which build, where the metrics and
//! health endpoints are, and which tenants it was started with.

use super::settings::ServerConfig;
use crate::status::text::escape;

/// Renders the landing page once; it only depends on the config, which never changes
/// while the server runs.
pub fn render(config: &ServerConfig) -> String {
    let path = escape(&config.telemetry_path);
    let version = escape(&config.version);
    let revision = escape(&config.revision);
    let tenants = tenant_list(&config.tenants);
    format!(
        "<!DOCTYPE html>\n\
         <html lang=\"en\">\n\
         <head><meta charset=\"utf-8\"><title>SailPoint Task Exporter</title></head>\n\
         <body>\n\
         <h1>SailPoint Task Exporter</h1>\n\
         <p>Prometheus exporter for SailPoint Identity Security Cloud task status.</p>\n\
         <p>Version {version}, revision {revision}</p>\n\
         <ul>\n\
         <li><a href=\"{path}\">Metrics</a> ({path})</li>\n\
         <li><a href=\"/-/healthy\">Health</a> (/-/healthy)</li>\n\
         <li><a href=\"/-/ready\">Readiness</a> (/-/ready)</li>\n\
         </ul>\n\
         <h2>Tenants</h2>\n\
         {tenants}\
         </body>\n\
         </html>\n"
    )
}

fn tenant_list(tenants: &[String]) -> String {
    if tenants.is_empty() {
        return "<p>No tenants configured.</p>\n".to_string();
    }
    let items: String = tenants
        .iter()
        .map(|name| format!("<li>{}</li>\n", escape(name)))
        .collect();
    format!("<ul>\n{items}</ul>\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_links_metrics_and_lists_tenants_escaped() {
        let config = ServerConfig::new(
            "/metrics",
            "1.2.3",
            "abc123",
            vec!["acme".into(), "<b>evil</b>".into()],
        );
        let page = render(&config);
        assert!(page.contains("<a href=\"/metrics\">Metrics</a>"));
        assert!(page.contains("Version 1.2.3, revision abc123"));
        assert!(page.contains("<li>acme</li>"));
        assert!(page.contains("<li>&lt;b&gt;evil&lt;/b&gt;</li>"));
        assert!(!page.contains("<b>evil</b>"));
    }

    #[test]
    fn page_says_when_no_tenant_is_configured() {
        let page = render(&ServerConfig::new("/m", "1", "r", vec![]));
        assert!(page.contains("No tenants configured."));
    }
}
