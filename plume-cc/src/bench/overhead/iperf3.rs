//! Reading iperf3's `-J` report of the client: bytes received and test
//! seconds, or why there is no transfer. Its own file because it parses
//! another program's output, apart from running it.

/// Why an iperf3 `-J` report gave no transfer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Iperf3ReportError {
    /// The output is not JSON (iperf3 died before writing it).
    #[error("report is not JSON: {0}")]
    NotJson(String),
    /// iperf3's own `error` field.
    #[error("{0}")]
    Reported(String),
    /// A field the transfer needs is missing (or, for seconds, not positive).
    #[error("no {0} in the report")]
    Missing(&'static str),
}

/// Bytes received and test seconds from iperf3's `-J` report of the client.
pub fn parse_iperf3(json: &str) -> Result<(u64, f64), Iperf3ReportError> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| Iperf3ReportError::NotJson(e.to_string()))?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        return Err(Iperf3ReportError::Reported(e.to_string()));
    }
    let recv = &v["end"]["sum_received"];
    let bytes = recv["bytes"]
        .as_u64()
        .ok_or(Iperf3ReportError::Missing("end.sum_received.bytes"))?;
    let secs = recv["seconds"]
        .as_f64()
        .filter(|s| *s > 0.0)
        .ok_or(Iperf3ReportError::Missing("end.sum_received.seconds"))?;
    Ok((bytes, secs))
}

/// Test seconds of a client report (the configured time if unreadable).
pub(super) fn seconds_of(out: &std::process::Output) -> f64 {
    parse_iperf3(&String::from_utf8_lossy(&out.stdout)).map_or(f64::NAN, |(_, s)| s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iperf3_reports_are_read_or_refused() {
        let ok = r#"{"end":{"sum_received":{"bytes":1250000000,"seconds":10.0}}}"#;
        assert_eq!(parse_iperf3(ok).unwrap(), (1_250_000_000, 10.0));
        let err = r#"{"error":"unable to connect to server"}"#;
        assert_eq!(
            parse_iperf3(err),
            Err(Iperf3ReportError::Reported(
                "unable to connect to server".into()
            ))
        );
        assert_eq!(
            parse_iperf3("{}"),
            Err(Iperf3ReportError::Missing("end.sum_received.bytes"))
        );
        let zero = r#"{"end":{"sum_received":{"bytes":5,"seconds":0}}}"#;
        assert_eq!(
            parse_iperf3(zero),
            Err(Iperf3ReportError::Missing("end.sum_received.seconds"))
        );
        assert!(matches!(
            parse_iperf3("not json"),
            Err(Iperf3ReportError::NotJson(_))
        ));
    }
}
