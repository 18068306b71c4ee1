//! Polite mode, for targets in shared environments: the run's [`RunLimits`]
//! (`--scale`, `--max-rate`, `--max-clients`) turn each workload scenario into a
//! smaller one, in this one place, before it is planned and played ([`apply`]).
//!
//! Every count is scaled with a floor, so the scenario still does what it sets out to
//! do: each client group keeps at least one client, a scenario that publishes keeps at
//! least [`EVENTS_FLOOR`] writes (or all it had), a backlog at least
//! [`BACKLOG_FLOOR`]. When the limits cannot leave it that much (fewer allowed clients
//! than it has client groups) the scenario is not played and comes back Inconclusive
//! ([`Shortfall::LimitsTooTight`]), never a vacuous pass. A scenario that no longer
//! reaches what it claims at its smaller size (a backlog too small for backpressure,
//! publishing too slow for its deadline) is caught by the usual evidence checks.
//! Probes keep their own small fixed counts; their few publishes are not rate-capped.

use harness_model::{RunLimits, Shortfall};

use crate::scenario::Scenario;

/// The fewest live writes a scaled scenario that publishes keeps (or all it had).
pub const EVENTS_FLOOR: u64 = 50;
/// The fewest backlog writes a scaled scenario with a backlog keeps (or all it had).
pub const BACKLOG_FLOOR: u64 = 50;

/// `n` scaled by `scale`, rounded, at least `floor` (but never more than `n`).
pub fn scaled(n: u64, scale: f64, floor: u64) -> u64 {
    let s = (n as f64 * scale).round() as u64;
    s.max(floor.min(n)).min(n)
}

/// The scenario as the run's limits allow it, or why they leave it too little to play.
pub fn apply(sc: &Scenario, limits: &RunLimits) -> Result<Scenario, Shortfall> {
    if limits.is_default() || sc.probe.is_some() {
        return Ok(sc.clone());
    }
    let mut out = sc.clone();
    let t = &mut out.traffic;
    t.events = scaled(t.events, limits.scale, EVENTS_FLOOR);
    t.backlog = scaled(t.backlog, limits.scale, BACKLOG_FLOOR);
    t.publishers = scaled(u64::from(t.publishers), limits.scale, 1) as u32;
    if let Some(max) = limits.max_rate {
        t.rate = if t.rate == 0 { max } else { t.rate.min(max) };
        t.backlog_rate = max;
    }
    let wanted: Vec<u64> = sc
        .clients
        .iter()
        .map(|g| scaled(u64::from(g.count), limits.scale, 1))
        .collect();
    let counts = cap_clients(wanted, limits.max_clients.map(u64::from))?;
    for (g, n) in out.clients.iter_mut().zip(counts) {
        g.count = n as u32;
    }
    Ok(out)
}

/// Client group sizes with at most `max` clients in all: the largest group gives one up
/// at a time, every group keeps one; too few allowed for one per group is a shortfall.
fn cap_clients(mut counts: Vec<u64>, max: Option<u64>) -> Result<Vec<u64>, Shortfall> {
    let Some(max) = max else {
        return Ok(counts);
    };
    let groups = counts.len() as u64;
    if groups > max {
        return Err(Shortfall::LimitsTooTight {
            what: "concurrent clients".into(),
            needed: groups,
            allowed: max,
        });
    }
    while counts.iter().sum::<u64>() > max {
        // The first of the largest groups, so the result does not depend on ties.
        let big = (0..counts.len())
            .max_by_key(|&i| (counts[i], std::cmp::Reverse(i)))
            .expect("at least one group");
        counts[big] -= 1;
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(extra: &str) -> Scenario {
        let text = format!(
            "group = \"T\"\nname = \"n\"\ntitle = \"t\"\nfamilies = [\"resume\"]\n\
             deadline_s = 30\n{extra}"
        );
        Scenario::parse(&text, "t.toml").unwrap()
    }

    const BIG: &str = "[traffic]\nevents = 1000\nbacklog = 400\npublishers = 4\nrate = 500\n\
        [[clients]]\nname = \"a\"\ncount = 10\n[[clients]]\nname = \"b\"\ncount = 3\n";

    fn limits(scale: f64, max_rate: Option<u64>, max_clients: Option<u32>) -> RunLimits {
        RunLimits {
            scale,
            max_rate,
            max_clients,
        }
    }

    #[test]
    fn scaling_rounds_and_keeps_its_floor() {
        assert_eq!(scaled(1000, 0.5, 50), 500);
        assert_eq!(scaled(1000, 0.01, 50), 50);
        assert_eq!(scaled(20, 0.1, 50), 20, "never more than it had");
        assert_eq!(scaled(0, 0.5, 50), 0, "nothing stays nothing");
        assert_eq!(scaled(3, 0.5, 1), 2);
        assert_eq!(scaled(1, 0.01, 1), 1);
    }

    #[test]
    fn full_scale_without_caps_changes_nothing() {
        let sc = scenario(BIG);
        let out = apply(&sc, &RunLimits::default()).unwrap();
        assert_eq!(out.traffic.events, 1000);
        assert_eq!(out.clients[0].count, 10);
        assert_eq!(out.traffic.backlog_rate, 0);
    }

    #[test]
    fn scale_shrinks_clients_events_and_publishers_with_floors() {
        let out = apply(&scenario(BIG), &limits(0.1, None, None)).unwrap();
        assert_eq!(
            (
                out.traffic.events,
                out.traffic.backlog,
                out.traffic.publishers
            ),
            (100, 50, 1)
        );
        let counts: Vec<u32> = out.clients.iter().map(|g| g.count).collect();
        assert_eq!(counts, [1, 1], "every group keeps a client");
        assert_eq!(out.traffic.rate, 500, "scale leaves the rate alone");
    }

    #[test]
    fn max_rate_caps_live_and_backlog_publishing() {
        let out = apply(&scenario(BIG), &limits(1.0, Some(100), None)).unwrap();
        assert_eq!((out.traffic.rate, out.traffic.backlog_rate), (100, 100));
        let unpaced = scenario("[traffic]\nevents = 10\n[[clients]]\nname = \"a\"\n");
        let out = apply(&unpaced, &limits(1.0, Some(100), None)).unwrap();
        assert_eq!(
            out.traffic.rate, 100,
            "as fast as acks come becomes the cap"
        );
        let slow = apply(&scenario(BIG), &limits(1.0, Some(1000), None)).unwrap();
        assert_eq!(slow.traffic.rate, 500, "a slower rate stays");
    }

    #[test]
    fn max_clients_takes_from_the_largest_group_first() {
        let out = apply(&scenario(BIG), &limits(1.0, None, Some(5))).unwrap();
        let counts: Vec<u32> = out.clients.iter().map(|g| g.count).collect();
        assert_eq!(counts, [2, 3]);
        assert_eq!(cap_clients(vec![2, 2, 2], Some(4)).unwrap(), [1, 1, 2]);
        assert_eq!(cap_clients(vec![2, 2], Some(9)).unwrap(), [2, 2]);
    }

    #[test]
    fn fewer_allowed_clients_than_groups_is_a_shortfall_not_a_pass() {
        let err = apply(&scenario(BIG), &limits(1.0, None, Some(1))).unwrap_err();
        assert_eq!(
            err,
            Shortfall::LimitsTooTight {
                what: "concurrent clients".into(),
                needed: 2,
                allowed: 1,
            }
        );
        assert_eq!(
            err.to_string(),
            "the run's limits allow 1 concurrent clients, the scenario needs at least 2"
        );
    }

    #[test]
    fn probes_keep_their_counts() {
        let sc = scenario("[probe]\nkind = \"cursor-ahead\"\n");
        let out = apply(&sc, &limits(0.1, Some(1), Some(1))).unwrap();
        assert!(out.probe.is_some());
    }

    #[test]
    fn every_built_in_scenario_scales_to_a_tenth_with_two_clients() {
        for sc in crate::scenario::builtin().unwrap() {
            match apply(&sc, &limits(0.1, Some(200), Some(2))) {
                Ok(out) => {
                    let clients: u32 = out.clients.iter().map(|g| g.count).sum();
                    assert!(clients <= 2, "{}: {clients} clients", sc.id());
                    assert!(out.clients.iter().all(|g| g.count >= 1), "{}", sc.id());
                }
                Err(Shortfall::LimitsTooTight { needed, .. }) => {
                    assert_eq!(needed, sc.clients.len() as u64, "{}", sc.id())
                }
                Err(e) => panic!("{}: {e}", sc.id()),
            }
        }
    }
}
