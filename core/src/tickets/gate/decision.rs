//! What a gate decides about one code: accept (with what the display shows) or refuse with
//! exactly one reason. Reasons have stable codes (tap log, server upload, ffi) and a short
//! message in Vietnamese first, English second, for the gate's screen.

use super::Direction;

/// Why a gate refuses a code. One reason per decision, checked in a fixed order (structure,
/// operator key, operator signature, device proof, revocation, validity, freshness, product
/// rules, pass-back) so the same code always gets the same reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// Not a ticket code at all, truncated, or fields that make no sense.
    Malformed,
    /// The ticket names an operator key this gate does not trust (or not at this time).
    UnknownKey,
    /// The operator's signature over the ticket does not verify, yet the code is consistent
    /// with itself (its proof verifies with the device key the ticket claims): a ticket made
    /// by someone other than the operator.
    Forged,
    /// Bytes of a code were changed: the operator's signature fails and the proof no longer
    /// matches the ticket, or the proof's signature is not one any key could have made.
    Tampered,
    /// The ticket is genuine but its proof is a well-formed signature by a key other than the
    /// device key the operator bound into the ticket: the ticket was copied to another phone.
    WrongDevice,
    /// The operator revoked this ticket (refund, cloned device key).
    Revoked,
    /// Past the ticket's validity.
    Expired,
    /// Before the ticket's validity.
    NotYetValid,
    /// The proof's time slot is over (plus tolerance): a screenshot or a replay.
    StaleCode,
    /// The phone's (or this gate's) clock is off by more than the configured window.
    ClockSkew,
    /// A second entry without an exit (or a second exit without an entry) inside the pass-back
    /// window at this station group, this gate's own taps and its peers' alike.
    PassBack,
    /// A single journey shown at a station outside its paid trip.
    WrongStation,
    /// A single journey's paid fare does not cover the trip from its origin to this exit.
    FareTooLow,
    /// A single journey already consumed at an exit.
    AlreadyUsed,
}

impl RefusalReason {
    pub const ALL: [RefusalReason; 14] = [
        RefusalReason::Malformed,
        RefusalReason::UnknownKey,
        RefusalReason::Forged,
        RefusalReason::Tampered,
        RefusalReason::WrongDevice,
        RefusalReason::Revoked,
        RefusalReason::Expired,
        RefusalReason::NotYetValid,
        RefusalReason::StaleCode,
        RefusalReason::ClockSkew,
        RefusalReason::PassBack,
        RefusalReason::WrongStation,
        RefusalReason::FareTooLow,
        RefusalReason::AlreadyUsed,
    ];

    /// The stable code written to the tap log and sent to the server.
    pub fn code(self) -> &'static str {
        match self {
            RefusalReason::Malformed => "malformed",
            RefusalReason::UnknownKey => "unknown_key",
            RefusalReason::Forged => "forged",
            RefusalReason::Tampered => "tampered",
            RefusalReason::WrongDevice => "wrong_device",
            RefusalReason::Revoked => "revoked",
            RefusalReason::Expired => "expired",
            RefusalReason::NotYetValid => "not_yet_valid",
            RefusalReason::StaleCode => "stale_code",
            RefusalReason::ClockSkew => "clock_skew",
            RefusalReason::PassBack => "pass_back",
            RefusalReason::WrongStation => "wrong_station",
            RefusalReason::FareTooLow => "fare_too_low",
            RefusalReason::AlreadyUsed => "already_used",
        }
    }

    pub fn from_code(code: &str) -> Option<RefusalReason> {
        RefusalReason::ALL.into_iter().find(|r| r.code() == code)
    }

    /// What the gate's screen says, Vietnamese then English.
    pub fn message(self) -> (&'static str, &'static str) {
        match self {
            RefusalReason::Malformed => ("Mã không đọc được", "Code cannot be read"),
            RefusalReason::UnknownKey => ("Vé không do nhà vận hành phát hành", "Ticket not issued by the operator"),
            RefusalReason::Forged => ("Vé giả", "Forged ticket"),
            RefusalReason::Tampered => ("Mã đã bị sửa", "Code has been altered"),
            RefusalReason::WrongDevice => ("Vé thuộc điện thoại khác", "Ticket belongs to another phone"),
            RefusalReason::Revoked => ("Vé đã bị thu hồi", "Ticket revoked"),
            RefusalReason::Expired => ("Vé đã hết hạn", "Ticket expired"),
            RefusalReason::NotYetValid => ("Vé chưa đến ngày sử dụng", "Ticket not valid yet"),
            RefusalReason::StaleCode => ("Mã cũ, hãy mở lại vé trên điện thoại", "Old code: open the ticket again on the phone"),
            RefusalReason::ClockSkew => ("Đồng hồ điện thoại hoặc cổng bị lệch", "Phone or gate clock is off"),
            RefusalReason::PassBack => ("Vé vừa được dùng để vào ga", "Ticket was just used at this station"),
            RefusalReason::WrongStation => ("Vé không dùng cho ga này", "Ticket not valid at this station"),
            RefusalReason::FareTooLow => ("Vé không đủ tiền cho chặng này, vui lòng bù tiền", "Fare too low for this trip: please pay the difference"),
            RefusalReason::AlreadyUsed => ("Vé lượt đã được sử dụng", "Single ticket already used"),
        }
    }
}

impl std::fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (vi, en) = self.message();
        write!(f, "{vi} / {en}")
    }
}

/// An accepted code: what the gate shows and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub ticket_id: [u8; 16],
    /// Product number (1 single journey, 2 day pass, 3 three-day pass, 4 monthly pass).
    pub product: u64,
    /// Concession number, absent for full fare.
    pub concession: Option<u64>,
    pub direction: Direction,
    /// Seconds of validity left at the tap (0 for an exit after the validity ended).
    pub remaining_s: u64,
    /// A single journey consumed by this exit: it stays used until this time (its validity
    /// plus the exit grace).
    pub consumed_until: Option<u64>,
    /// The proof's time slot start (the code's identity together with the ticket id).
    pub slot_start: u64,
    /// How far ahead of this gate's clock the phone's code was, when beyond the slot tolerance
    /// but inside the clock window: tolerated, and reported.
    pub clock_skew_s: Option<i64>,
}

/// A refused code. `ticket_id` is known once the operator's signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: RefusalReason,
    pub ticket_id: Option<[u8; 16]>,
    /// For clock skew: by how many seconds the code's slot was off this gate's clock.
    pub clock_skew_s: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Accept(Accepted),
    Refuse(Refusal),
}

impl Accepted {
    /// The tap this accept stands for, at `at` (gate clock), as peers and the log keep it.
    pub fn tap(&self, at: u64) -> crate::tickets::gate::Tap {
        crate::tickets::gate::Tap {
            ticket_id: self.ticket_id,
            direction: self.direction,
            at,
            slot_start: self.slot_start,
            consumed_until: self.consumed_until,
        }
    }
}

impl Decision {
    pub(crate) fn refuse(reason: RefusalReason, ticket_id: Option<[u8; 16]>) -> Decision {
        Decision::Refuse(Refusal { reason, ticket_id, clock_skew_s: None })
    }

    pub fn is_accept(&self) -> bool {
        matches!(self, Decision::Accept(_))
    }

    /// The refusal reason, `None` for an accept.
    pub fn reason(&self) -> Option<RefusalReason> {
        match self {
            Decision::Accept(_) => None,
            Decision::Refuse(r) => Some(r.reason),
        }
    }

    pub fn ticket_id(&self) -> Option<[u8; 16]> {
        match self {
            Decision::Accept(a) => Some(a.ticket_id),
            Decision::Refuse(r) => r.ticket_id,
        }
    }

    /// `accept` or the reason's code.
    pub fn code(&self) -> &'static str {
        match self {
            Decision::Accept(_) => "accept",
            Decision::Refuse(r) => r.reason.code(),
        }
    }
}
