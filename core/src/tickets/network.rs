//! The metro network and its fares: HCMC Metro Line 1 (Bến Thành – Suối Tiên). One table, used
//! by the server to price a purchase and by the gate to check that a single journey's ticket
//! covers the trip. Prices are in VND.

use super::wire::{Concession, Product, TicketError};

/// A station on the network. Ids are stable: they are signed into tickets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Station {
    pub id: u64,
    pub name_vi: &'static str,
    pub name_en: &'static str,
    /// Distance along the line from Bến Thành, in metres.
    pub position_m: u32,
}

/// Line 1 in order from the city centre; 19.7 km in all.
pub const LINE_1: [Station; 14] = [
    Station { id: 1, name_vi: "Bến Thành", name_en: "Ben Thanh", position_m: 0 },
    Station { id: 2, name_vi: "Nhà hát Thành phố", name_en: "Opera House", position_m: 700 },
    Station { id: 3, name_vi: "Ba Son", name_en: "Ba Son", position_m: 1_900 },
    Station { id: 4, name_vi: "Văn Thánh", name_en: "Van Thanh", position_m: 3_600 },
    Station { id: 5, name_vi: "Tân Cảng", name_en: "Tan Cang", position_m: 4_200 },
    Station { id: 6, name_vi: "Thảo Điền", name_en: "Thao Dien", position_m: 5_500 },
    Station { id: 7, name_vi: "An Phú", name_en: "An Phu", position_m: 6_900 },
    Station { id: 8, name_vi: "Rạch Chiếc", name_en: "Rach Chiec", position_m: 8_600 },
    Station { id: 9, name_vi: "Phước Long", name_en: "Phuoc Long", position_m: 9_900 },
    Station { id: 10, name_vi: "Bình Thái", name_en: "Binh Thai", position_m: 11_400 },
    Station { id: 11, name_vi: "Thủ Đức", name_en: "Thu Duc", position_m: 13_200 },
    Station { id: 12, name_vi: "Khu Công nghệ cao", name_en: "Hi-Tech Park", position_m: 15_700 },
    Station { id: 13, name_vi: "Đại học Quốc gia", name_en: "National University", position_m: 17_700 },
    Station { id: 14, name_vi: "Bến xe Suối Tiên", name_en: "Suoi Tien Bus Station", position_m: 19_700 },
];

pub fn station(id: u64) -> Option<&'static Station> {
    LINE_1.iter().find(|s| s.id == id)
}

/// Cheapest single journey (up to [`BASE_DISTANCE_M`]).
pub const MIN_SINGLE_FARE: u64 = 6_000;
/// Dearest single journey (the whole line).
pub const MAX_SINGLE_FARE: u64 = 20_000;
/// Distance covered by the base fare.
pub const BASE_DISTANCE_M: u32 = 2_000;
/// Each started step of this many metres beyond the base adds [`FARE_STEP_VND`].
pub const FARE_STEP_M: u32 = 1_300;
pub const FARE_STEP_VND: u64 = 1_000;

pub const DAY_PASS: u64 = 40_000;
pub const THREE_DAY_PASS: u64 = 90_000;
pub const MONTHLY_PASS: u64 = 300_000;

/// The full fare of a single journey between two stations, by distance: 6,000 VND up to 2 km,
/// then 1,000 VND per started 1.3 km, at most 20,000 VND (the whole 19.7 km line costs exactly
/// that).
fn full_single_fare(origin: u64, destination: u64) -> Result<u64, TicketError> {
    let from = station(origin).ok_or(TicketError::UnknownStation(origin))?;
    let to = station(destination).ok_or(TicketError::UnknownStation(destination))?;
    if from.id == to.id {
        return Err(TicketError::SameStation);
    }
    let distance = from.position_m.abs_diff(to.position_m);
    let steps = distance.saturating_sub(BASE_DISTANCE_M).div_ceil(FARE_STEP_M) as u64;
    Ok((MIN_SINGLE_FARE + steps * FARE_STEP_VND).min(MAX_SINGLE_FARE))
}

/// What a rider with `concession` pays for a full fare: students half, older people (60+),
/// people with a disability and children under 6 nothing.
pub fn apply_concession(full: u64, concession: Option<Concession>) -> u64 {
    match concession {
        None => full,
        Some(Concession::Student) => full / 2,
        Some(Concession::Elderly | Concession::Disability | Concession::ChildUnder6) => 0,
    }
}

/// The price of a single journey from `origin` to `destination` (station ids) for `concession`.
pub fn single_fare(origin: u64, destination: u64, concession: Option<Concession>) -> Result<u64, TicketError> {
    Ok(apply_concession(full_single_fare(origin, destination)?, concession))
}

/// The price of a pass for `concession`. A single journey has no price without its stations:
/// use [`single_fare`] (or [`price`]).
pub fn product_price(product: Product, concession: Option<Concession>) -> Result<u64, TicketError> {
    let full = match product {
        Product::SingleJourney => return Err(TicketError::StationsRequired),
        Product::DayPass => DAY_PASS,
        Product::ThreeDayPass => THREE_DAY_PASS,
        Product::MonthlyPass => MONTHLY_PASS,
    };
    Ok(apply_concession(full, concession))
}

/// The price of any product: stations are required for a single journey and refused for a pass.
pub fn price(
    product: Product,
    origin: Option<u64>,
    destination: Option<u64>,
    concession: Option<Concession>,
) -> Result<u64, TicketError> {
    match (product, origin, destination) {
        (Product::SingleJourney, Some(o), Some(d)) => single_fare(o, d, concession),
        (Product::SingleJourney, _, _) => Err(TicketError::StationsRequired),
        (_, None, None) => product_price(product, concession),
        _ => Err(TicketError::StationsNotAllowed),
    }
}

/// Whether a single journey ticket from `origin` to `destination` covers a trip between
/// `entry` and `exit`: the trip must lie within the paid stretch (a shorter trip inside it is
/// fine, in either direction).
pub fn covers(origin: u64, destination: u64, entry: u64, exit: u64) -> bool {
    let (Some(o), Some(d), Some(a), Some(b)) = (station(origin), station(destination), station(entry), station(exit))
    else {
        return false;
    };
    let (lo, hi) = (o.position_m.min(d.position_m), o.position_m.max(d.position_m));
    [a, b].iter().all(|s| (lo..=hi).contains(&s.position_m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_1_has_14_stations_in_order_over_19_7_km() {
        assert_eq!(LINE_1.len(), 14);
        for (i, s) in LINE_1.iter().enumerate() {
            assert_eq!(s.id, i as u64 + 1);
        }
        assert!(LINE_1.windows(2).all(|w| w[0].position_m < w[1].position_m));
        assert_eq!(LINE_1[13].position_m, 19_700);
        assert_eq!(station(2).unwrap().name_vi, "Nhà hát Thành phố");
        assert!(station(0).is_none() && station(15).is_none());
    }

    #[test]
    fn single_fares_grow_with_distance_from_6000_to_20000() {
        assert_eq!(single_fare(1, 2, None).unwrap(), 6_000);
        assert_eq!(single_fare(2, 1, None).unwrap(), 6_000);
        assert_eq!(single_fare(1, 14, None).unwrap(), 20_000);
        assert_eq!(single_fare(14, 1, None).unwrap(), 20_000);
        // Ben Thanh to Van Thanh: 3.6 km, two started steps beyond 2 km.
        assert_eq!(single_fare(1, 4, None).unwrap(), 8_000);
        for o in 1..=14 {
            let mut last = 0;
            for d in o + 1..=14 {
                let fare = single_fare(o, d, None).unwrap();
                assert!((MIN_SINGLE_FARE..=MAX_SINGLE_FARE).contains(&fare));
                assert!(fare >= last, "fares never fall with distance");
                assert_eq!(fare % 1_000, 0);
                last = fare;
            }
        }
    }

    #[test]
    fn concessions() {
        assert_eq!(single_fare(1, 14, Some(Concession::Student)).unwrap(), 10_000);
        assert_eq!(single_fare(1, 14, Some(Concession::Elderly)).unwrap(), 0);
        assert_eq!(product_price(Product::MonthlyPass, Some(Concession::Student)).unwrap(), 150_000);
        assert_eq!(product_price(Product::DayPass, Some(Concession::ChildUnder6)).unwrap(), 0);
        assert_eq!(product_price(Product::DayPass, Some(Concession::Disability)).unwrap(), 0);
        assert_eq!(product_price(Product::DayPass, None).unwrap(), 40_000);
        assert_eq!(product_price(Product::ThreeDayPass, None).unwrap(), 90_000);
        assert_eq!(product_price(Product::MonthlyPass, None).unwrap(), 300_000);
    }

    #[test]
    fn refuses_what_has_no_price() {
        assert_eq!(single_fare(1, 1, None), Err(TicketError::SameStation));
        assert_eq!(single_fare(1, 15, None), Err(TicketError::UnknownStation(15)));
        assert_eq!(product_price(Product::SingleJourney, None), Err(TicketError::StationsRequired));
        assert_eq!(price(Product::SingleJourney, Some(1), None, None), Err(TicketError::StationsRequired));
        assert_eq!(price(Product::DayPass, Some(1), Some(2), None), Err(TicketError::StationsNotAllowed));
        assert_eq!(price(Product::SingleJourney, Some(3), Some(5), None).unwrap(), 7_000);
    }

    #[test]
    fn a_single_journey_covers_trips_inside_its_stretch() {
        assert!(covers(3, 8, 3, 8));
        assert!(covers(3, 8, 8, 3));
        assert!(covers(3, 8, 4, 6));
        assert!(!covers(3, 8, 2, 6));
        assert!(!covers(3, 8, 4, 9));
        assert!(!covers(3, 8, 4, 99));
    }
}
