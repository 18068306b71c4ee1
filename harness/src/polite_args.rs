//! The polite-mode flags of `sse-harness run` (`--scale`, `--max-rate`,
//! `--max-clients`), for targets in shared environments; `sse_harness::polite` applies them.

use clap::Args;
use harness_model::RunLimits;

/// How hard a run may push a shared target.
#[derive(Args, Clone, Debug, Default)]
pub struct PoliteArgs {
    /// Scale every workload scenario's counts (clients, events, publishers) by F,
    /// 0 < F ≤ 1, keeping the floors each needs (a scenario the limits leave too little
    /// comes back inconclusive) [default: 1].
    #[arg(long, value_name = "F", value_parser = parse_scale, env = "SSE_HARNESS_SCALE")]
    pub scale: Option<f64>,
    /// Publish at most N writes per second in any scenario.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), env = "SSE_HARNESS_MAX_RATE")]
    pub max_rate: Option<u64>,
    /// At most N concurrent clients in any scenario.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), env = "SSE_HARNESS_MAX_CLIENTS")]
    pub max_clients: Option<u32>,
}

impl PoliteArgs {
    /// The limits these flags ask for.
    pub fn limits(&self) -> RunLimits {
        RunLimits {
            scale: self.scale.unwrap_or(1.0),
            max_rate: self.max_rate,
            max_clients: self.max_clients,
        }
    }
}

impl PoliteArgs {
    /// The same bounds as the flags' parsers, for values that came from a config file.
    pub fn check(&self) -> Result<(), String> {
        if let Some(f) = self.scale {
            parse_scale(&f.to_string()).map_err(|e| format!("scale: {e}"))?;
        }
        if self.max_rate == Some(0) {
            return Err("max-rate: 0 is not in 1..".into());
        }
        if self.max_clients == Some(0) {
            return Err("max-clients: 0 is not in 1..".into());
        }
        Ok(())
    }
}

/// A scale factor in (0, 1].
fn parse_scale(s: &str) -> Result<f64, String> {
    let f: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if f > 0.0 && f <= 1.0 {
        Ok(f)
    } else {
        Err(format!("{s} is not in (0, 1]"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_is_in_zero_to_one() {
        assert_eq!(parse_scale("0.25"), Ok(0.25));
        assert_eq!(parse_scale("1"), Ok(1.0));
        for bad in ["0", "1.5", "-0.1", "NaN", "x"] {
            assert!(parse_scale(bad).is_err(), "{bad}");
        }
        assert!(PoliteArgs::default().limits().is_default());
    }
}
