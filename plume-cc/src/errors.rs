//! The one-line form of an error and its chain of causes.

/// An error and its causes on one line, as the binary prints it and the
/// datapath matches it (aya keeps the errno in the source chain): each
/// cause once. Why not anyhow's `{:#}`: many errors already show their
/// source in their own message (`"{path}: {source}"`), which `{:#}` then
/// repeats; a cause whose text is already in the line is left out.
pub fn one_line(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let cause = s.to_string();
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chain_names_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("reading {path}: {source}")]
        struct Read {
            path: &'static str,
            source: std::io::Error,
        }
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = anyhow::Error::new(Read {
            path: "/x",
            source: io,
        })
        .context("loading the policy");
        assert_eq!(
            one_line(e.as_ref()),
            "loading the policy: reading /x: no such file"
        );
        // anyhow's own chain repeats the cause.
        assert_eq!(format!("{e:#}").matches("no such file").count(), 2);
    }
}
