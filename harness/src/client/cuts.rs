//! Cut kinds: where a connection is closed on purpose. A [`Cut`] is planned per
//! connection from the seed; [`CutState`] carries it through one connection: how much
//! the next read may take so the cut lands exactly (one byte at a time while scanning
//! the framing for an aim, up to byte k for a byte cut), and whether it is due.

use harness_model::{ConnEnd, CutAim};

/// One planned disconnect.
#[derive(Clone, Debug, PartialEq)]
pub enum Cut {
    /// Close after this many body bytes of the connection.
    AtByte(u64),
    /// Close at a place in the framing.
    Aim(CutAim),
    /// Close after this many data events of the connection.
    AfterEvents(u64),
    /// Close right after the connection's first data event: a short connection that
    /// still carries data (the plan's cut gap spreads the cycles over the publishing).
    Rapid,
    /// Close when the group's burst signal fires.
    Burst,
}

impl Cut {
    /// The name reports give this kind of cut.
    pub fn name(&self) -> String {
        match self {
            Cut::AtByte(_) => "random-byte".into(),
            Cut::Aim(a) => a.name().into(),
            Cut::AfterEvents(_) => "after-events".into(),
            Cut::Rapid => "rapid-cycle".into(),
            Cut::Burst => "burst".into(),
        }
    }
}

/// How many data events an aimed cut waits for its place in the framing: an aim that
/// has not matched after this many (a target that never writes a CR, an event name or a
/// multi-byte character) gives way to the next planned cut on the same connection, and
/// the cut it could not make is counted as planned but not executed (the evidence
/// reports executed/planned). Every aim that a target's framing allows matches within
/// the first event that carries an id, so 32 events is far beyond a correct match.
pub const AIM_PATIENCE_EVENTS: u64 = 32;

/// One connection's planned cut, as it runs.
pub(crate) struct CutState {
    cut: Option<Cut>,
    aim: Option<AimScanner>,
    /// Data events and body bytes of the connection when this cut took over (0 for the
    /// connection's own cut; more after an aim gave way): counts are relative to them.
    base_events: u64,
    base_bytes: u64,
}

impl CutState {
    pub(crate) fn new(cut: Option<Cut>) -> CutState {
        CutState::from(cut, 0, 0)
    }

    /// `cut`, taking over a connection that has read `events` data events and
    /// `bytes` body bytes.
    fn from(cut: Option<Cut>, events: u64, bytes: u64) -> CutState {
        let aim = match &cut {
            Some(Cut::Aim(a)) => Some(AimScanner::new(*a)),
            _ => None,
        };
        CutState {
            cut,
            aim,
            base_events: events,
            base_bytes: bytes,
        }
    }

    /// The aim of a cut that has waited [`AIM_PATIENCE_EVENTS`] data events in vain.
    pub(crate) fn aim_missed(&self, data_events: u64) -> Option<CutAim> {
        self.aim
            .as_ref()
            .filter(|_| data_events >= self.base_events + AIM_PATIENCE_EVENTS)
            .map(|a| a.aim)
    }

    /// Gives the connection's cut over to `next` (the next planned cut), after
    /// `data_events` data events and `body_bytes` body bytes.
    pub(crate) fn give_way(&mut self, next: Option<Cut>, data_events: u64, body_bytes: u64) {
        *self = CutState::from(next, data_events, body_bytes);
    }

    /// Before a read, `body_bytes` in: the cut that is due now, else the most bytes the
    /// read may take (None: no limit).
    pub(crate) fn before_read(&self, body_bytes: u64) -> Result<Option<usize>, ConnEnd> {
        match &self.cut {
            _ if self.aim.is_some() => Ok(Some(1)),
            Some(Cut::AtByte(k)) => match (self.base_bytes + k).saturating_sub(body_bytes) {
                0 => Err(self.end(body_bytes)),
                left => Ok(Some(usize::try_from(left).unwrap_or(usize::MAX))),
            },
            _ => Ok(None),
        }
    }

    /// Whether the group's burst signal cuts this connection.
    pub(crate) fn on_burst(&self) -> bool {
        matches!(self.cut, Some(Cut::Burst))
    }

    /// Feeds the bytes just read; true when an aimed cut is due right after them.
    pub(crate) fn scan(&mut self, chunk: &[u8]) -> bool {
        self.aim
            .as_mut()
            .is_some_and(|a| chunk.iter().any(|&b| a.hit(b)))
    }

    /// Whether the cut counts data events (so it lands exactly after the k-th).
    pub(crate) fn counts_events(&self) -> bool {
        matches!(self.cut, Some(Cut::AfterEvents(_) | Cut::Rapid))
    }

    /// Whether a cut after `data_events` data events is due.
    pub(crate) fn after_events(&self, data_events: u64) -> bool {
        match self.cut {
            Some(Cut::AfterEvents(k)) => data_events >= self.base_events + k,
            Some(Cut::Rapid) => data_events > self.base_events,
            _ => false,
        }
    }

    /// How the connection ends when the cut happens after `after` body bytes.
    pub(crate) fn end(&self, after: u64) -> ConnEnd {
        ConnEnd::Cut {
            after_byte: after,
            aim: self.cut.as_ref().map(Cut::name).unwrap_or_default(),
        }
    }
}

/// Scans raw bytes for the place a framing-aimed cut targets.
struct AimScanner {
    aim: CutAim,
    /// The current line's first bytes (enough to see its field name).
    line: Vec<u8>,
    /// The current event has had an `id:` line (so it is a data event, not lifecycle).
    event_has_id: bool,
    /// The previous byte was a CR (a following LF belongs to the same line ending).
    prev_cr: bool,
    /// The line that ended last was a `data:` line.
    last_ended_data: bool,
}

impl AimScanner {
    fn new(aim: CutAim) -> AimScanner {
        AimScanner {
            aim,
            line: Vec::new(),
            event_has_id: false,
            prev_cr: false,
            last_ended_data: false,
        }
    }

    /// Feeds one byte; true when the cut should happen right after it.
    fn hit(&mut self, b: u8) -> bool {
        let term = b == b'\n' || b == b'\r';
        let l = &self.line;
        let hit = match self.aim {
            CutAim::InsideId => !term && l.starts_with(b"id:") && l.len() >= 4,
            CutAim::InsideData => {
                !term && self.event_has_id && l.starts_with(b"data:") && l.len() >= 9
            }
            CutAim::InsideEventName => {
                !term && self.event_has_id && l.starts_with(b"event:") && l.len() >= 8
            }
            CutAim::InsideUtf8 => self.event_has_id && b >= 0xC0,
            // After the first byte of an `id:` line's terminator: between CR and LF on CRLF servers.
            CutAim::CrLf => term && l.starts_with(b"id:"),
            // After a data line's full terminator, before the blank line that dispatches it.
            CutAim::BetweenNewlines => {
                b == b'\n'
                    && self.event_has_id
                    && (l.starts_with(b"data:")
                        || (self.prev_cr && l.is_empty() && self.last_ended_data))
            }
        };
        if term {
            if b == b'\n' && self.prev_cr && self.line.is_empty() {
                // The LF of a CRLF pair: the same line ending.
            } else if self.line.is_empty() {
                self.event_has_id = false;
                self.last_ended_data = false;
            } else {
                if self.line.starts_with(b"id:") {
                    self.event_has_id = true;
                }
                self.last_ended_data = self.line.starts_with(b"data:");
                self.line.clear();
            }
            self.prev_cr = b == b'\r';
        } else {
            if self.line.len() < 64 {
                self.line.push(b);
            }
            self.prev_cr = false;
        }
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The offsets (1-based: the cut happens right after that many bytes) where a
    /// scanner for `aim` fires over `wire`.
    fn hits(aim: CutAim, wire: &[u8]) -> Vec<usize> {
        let mut s = AimScanner::new(aim);
        wire.iter()
            .enumerate()
            .filter(|(_, b)| s.hit(**b))
            .map(|(i, _)| i + 1)
            .collect()
    }

    const LF: &[u8] = b"event: task_event\nid: 12\ndata: {\"a\":\"\xc3\xa9\"}\n\n";

    #[test]
    fn each_aim_fires_where_it_says() {
        // Inside the id's value (after `id: 1`), not in the name line.
        assert_eq!(hits(CutAim::InsideId, LF).first(), Some(&23));
        // Inside the data of an event that has an id: right after `data: {"a"`, inside
        // the JSON (the line starts at byte 26).
        assert_eq!(hits(CutAim::InsideData, LF).first(), Some(&35));
        // Inside a multi-byte character (its lead byte), only after an id.
        let lead = LF.iter().position(|&b| b == 0xc3).unwrap() + 1;
        assert_eq!(hits(CutAim::InsideUtf8, LF), [lead]);
        // Between the data line's LF and the blank line.
        let data_end = LF.len() - 1;
        assert_eq!(hits(CutAim::BetweenNewlines, LF), [data_end]);
    }

    #[test]
    fn cr_lf_cuts_between_the_cr_and_the_lf_of_the_id_line() {
        let crlf = b"id: 7\r\ndata: x\r\n\r\n";
        assert_eq!(hits(CutAim::CrLf, crlf), [6]);
        assert_eq!(crlf[5], b'\r');
    }

    #[test]
    fn lifecycle_frames_without_an_id_are_not_aimed_at() {
        let open = b"event: connection_open\ndata: {\"heartbeat_ms\":500}\n\n";
        assert!(hits(CutAim::InsideData, open).is_empty());
        assert!(hits(CutAim::InsideEventName, open).is_empty());
    }

    #[test]
    fn a_byte_cut_reads_up_to_its_byte_then_is_due() {
        let c = CutState::new(Some(Cut::AtByte(100)));
        assert_eq!(c.before_read(0), Ok(Some(100)));
        assert_eq!(c.before_read(60), Ok(Some(40)));
        assert_eq!(
            c.before_read(100),
            Err(ConnEnd::Cut {
                after_byte: 100,
                aim: "random-byte".into()
            })
        );
        let rapid = CutState::new(Some(Cut::Rapid));
        assert_eq!(rapid.before_read(1000), Ok(None));
        assert!(!rapid.after_events(0));
        assert!(rapid.after_events(1));
        assert_eq!(
            CutState::new(Some(Cut::Aim(CutAim::InsideId))).before_read(5),
            Ok(Some(1))
        );
        assert!(CutState::new(Some(Cut::AfterEvents(3))).after_events(3));
        assert!(!CutState::new(None).after_events(u64::MAX));
    }

    #[test]
    fn an_aim_that_never_matches_gives_way_to_the_next_cut() {
        let mut c = CutState::new(Some(Cut::Aim(CutAim::InsideUtf8)));
        // An ASCII-only stream: the aim never matches.
        assert!(!c.scan(b"id: 1\ndata: {\"a\":1}\n\n"));
        assert_eq!(c.aim_missed(AIM_PATIENCE_EVENTS - 1), None);
        assert_eq!(c.aim_missed(AIM_PATIENCE_EVENTS), Some(CutAim::InsideUtf8));
        // The next cut counts from where it took over.
        c.give_way(Some(Cut::AfterEvents(2)), 40, 900);
        assert_eq!(c.aim_missed(1000), None);
        assert!(!c.after_events(41));
        assert!(c.after_events(42));
        c.give_way(Some(Cut::AtByte(10)), 42, 900);
        assert_eq!(c.before_read(905), Ok(Some(5)));
        assert!(c.before_read(910).is_err());
    }
}
